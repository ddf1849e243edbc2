/* What integrity.c and integrity_progs.c share (features/integrity_*.c only). */
#ifndef DPNDNCY_FEATURES_INTEGRITY_INT_H
#define DPNDNCY_FEATURES_INTEGRITY_INT_H

#include <stddef.h>
#include <stdint.h>

struct agent_bpf;

/* who did it (NULL: nobody known, the agent found it) */
struct actor {
	uint32_t pid, tid, ppid, uid, step;
	uint64_t cgroup;
	const char *comm;
	size_t commlen;
	uint64_t boot_ts; /* 0: now */
};

/* a tamper line: what (a short stable code) and detail (human text) */
void tamper_emit(const struct actor *a, const char *what, const char *detail);

/* integrity_progs.c: after attach, the programs behind our links are ours */
void progs_remember_links(struct agent_bpf *a);
/* a program not ours on a cgroup hook of cgfd (where: its name in the detail); baseline: the
 * ones there now are noted, not reported */
void progs_check_cgroup(int cgfd, const char *where, int baseline);
/* our links detached, pins removed, cgroup programs gone */
void progs_check_links(struct agent_bpf *a);

#endif
