/* Container libcs get the getaddrinfo uprobes too (agent-c/records/container_libc.c). */
#ifndef DPNDNCY_RECORDS_CONTAINER_LIBC_H
#define DPNDNCY_RECORDS_CONTAINER_LIBC_H

#include <stdint.h>

struct agent_bpf;
struct probe_result;

/* container libcs: the agent's BPF handle + the host libcs already probed (uprobe DNS hook only) */
void containers_init(struct agent_bpf *a, const struct probe_result *pr);
/* every exec record: a new mount namespace with its own root gets its libcs probed */
void containers_on_exec(uint32_t pid);

#endif
