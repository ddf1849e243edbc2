/* dns_loop N: N DNS exchanges over UDP on 127.0.0.1:53 with a responder of its own (one socket
 * bound to :53 answers each query with one A record). Run it in a network namespace of its own
 * (`unshare -n`, loopback up): port 53 there is nobody else's. Each exchange is two packets,
 * a query and an answer, so the DNS packet hooks run on both. Prints "pid P ns T". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "now_ns.h"

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 20000;
	/* query: id 0x1234, RD, one question bench.example. A IN */
	static const unsigned char q[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
					  5, 'b', 'e', 'n', 'c', 'h', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0,
					  0, 1, 0, 1};
	unsigned char a[sizeof q + 16];
	memcpy(a, q, sizeof q);
	a[2] = 0x81, a[3] = 0x80, a[7] = 1; /* response, RA, one answer */
	static const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 10};
	memcpy(a + sizeof q, rr, sizeof rr);

	int s = socket(AF_INET, SOCK_DGRAM, 0), c = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (s < 0 || c < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa)) {
		perror("dns_loop: bind 127.0.0.1:53 (run it in a network namespace of its own)");
		return 1;
	}
	unsigned char buf[512];
	long long t0 = now_ns();
	for (long i = 0; i < n; i++) {
		struct sockaddr_in from;
		socklen_t fl = sizeof from;
		if (sendto(c, q, sizeof q, 0, (struct sockaddr *)&sa, sizeof sa) < 0) return 2;
		if (recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl) < 0) return 3;
		if (sendto(s, a, sizeof q + sizeof rr, 0, (struct sockaddr *)&from, fl) < 0) return 4;
		if (recv(c, buf, sizeof buf, 0) < 0) return 5;
	}
	printf("pid %d ns %lld\n", (int)getpid(), now_ns() - t0);
	return 0;
}
