/* connect_loop N [ADDR]: N blocking TCP connects to a listener of its own on 127.0.0.1 (or the
 * IPv4 ADDR, e.g. a documentation address on a dummy device in a private network namespace),
 * each accepted and both ends closed. Prints "pid P ns <total elapsed>". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "now_ns.h"

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 20000;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (argc > 2 && inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1)
		return 4;
	socklen_t sl = sizeof sa;
	if (bind(l, (struct sockaddr *)&sa, sizeof sa) || listen(l, 64) ||
	    getsockname(l, (struct sockaddr *)&sa, &sl))
		return 1;
	struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* RST on close: no TIME_WAIT pile-up */
	long long t0 = now_ns();
	for (long i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof sa)) return 2;
		int a = accept(l, NULL, NULL);
		if (a < 0) return 3;
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		close(c);
		close(a);
	}
	printf("pid %d ns %lld\n", (int)getpid(), now_ns() - t0);
	return 0;
}
