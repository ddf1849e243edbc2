/* exec_loop N: fork + execv("/bin/true") + wait, N times. Prints "ns <total elapsed>". */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "now_ns.h"

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 2000;
	char *args[] = {"/bin/true", NULL};
	long long t0 = now_ns();
	for (long i = 0; i < n; i++) {
		pid_t p = fork();
		if (p == 0) {
			execv("/bin/true", args);
			_exit(127);
		}
		int st;
		if (p < 0 || waitpid(p, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) return 1;
	}
	printf("pid %d ns %lld\n", (int)getpid(), now_ns() - t0);
	return 0;
}
