/* open_loop N PATH: open(PATH, O_RDONLY) + close, N times. Prints "ns <total elapsed>". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "now_ns.h"

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	const char *path = argc > 2 ? argv[2] : "/etc/hostname";
	long long t0 = now_ns();
	for (long i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY);
		if (fd < 0) return 1;
		close(fd);
	}
	printf("pid %d ns %lld\n", (int)getpid(), now_ns() - t0);
	return 0;
}
