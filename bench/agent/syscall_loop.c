/* syscall_loop N: N getppid() syscalls, which no dpndncy hook looks at. Any slowdown is the tax
 * every syscall pays once a syscall tracepoint program is attached anywhere (the kernel then
 * sends every syscall through the traced slow path; DESIGN §6). Prints "pid P ns T". */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "now_ns.h"

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	long long t0 = now_ns();
	for (long i = 0; i < n; i++) syscall(SYS_getppid);
	printf("pid %d ns %lld\n", (int)getpid(), now_ns() - t0);
	return 0;
}
