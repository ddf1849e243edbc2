/*
 * The client of a container runtime's API socket that asked for a container
 * (agent-c/records/runtime_client.c).
 */
#ifndef DPNDNCY_RUNTIME_CLIENT_H
#define DPNDNCY_RUNTIME_CLIENT_H

#include <stdint.h>

struct requester {
	uint32_t pid, step, job; /* 0: none found / none known */
	int njobs;               /* the distinct jobs among the connected clients: more than 1, a guess */
};

/* the kernel's tgid -> step and tgid -> job maps (-1: none) */
struct requester_maps {
	int steps_fd, jobs_fd;
};

/* the client now connected to one of the sockets (none named: Docker's default paths) */
void find_requester(const char (*sock)[256], int nsock, const struct requester_maps *km, struct requester *out);

#endif
