/* event_rate RATE SECONDS PATH: opens PATH (a sensitive path: each open is one file event)
 * RATE times a second for SECONDS, paced in 1 ms ticks, so the agent sees a fixed event rate.
 * Prints "pid P ns T opens N behind B" (B: ticks that could not keep up). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "now_ns.h"

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: event_rate RATE SECONDS PATH\n");
		return 2;
	}
	long rate = atol(argv[1]);
	double secs = atof(argv[2]);
	long ticks = (long)(secs * 1000), opens = 0, behind = 0;
	long long t0 = now_ns();
	for (long t = 0; t < ticks; t++) {
		long due = rate * (t + 1) / 1000; /* opens due by the end of this tick */
		for (; opens < due; opens++) {
			int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
			if (fd >= 0) close(fd);
		}
		long long next = t0 + (t + 1) * 1000000LL, now = now_ns();
		if (now < next) {
			struct timespec ts = {.tv_sec = next / 1000000000LL, .tv_nsec = next % 1000000000LL};
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		} else {
			behind++;
		}
	}
	printf("pid %d ns %lld opens %ld behind %ld\n", (int)getpid(), now_ns() - t0, opens, behind);
	return 0;
}
