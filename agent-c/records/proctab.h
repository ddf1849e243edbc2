/* The process table: pid -> parent, comm, executable (agent-c/records/proctab.c). */
#ifndef DPNDNCY_RECORDS_PROCTAB_H
#define DPNDNCY_RECORDS_PROCTAB_H

#include <stdint.h>

struct sbuf;

struct proc_ent;
void proc_init(void);
void proc_seed(void);
void proc_set(uint32_t pid, uint32_t ppid, const char *comm, const char *filename);
void proc_exit(uint32_t pid);
int proc_get(uint32_t pid, uint32_t *ppid, const char **comm, const char **filename);
/* JSON array of ancestors of pid (its parent first) */
void proc_ancestry(struct sbuf *b, uint32_t pid, uint32_t ppid);
uint32_t proc_ppid_lookup(uint32_t pid);
/* a process seen in the enforced cgroup (records carry their cgroup): a later move out of it is
 * reported (integrity.c) */
void proc_set_enforced(uint32_t pid);
void proc_clear_enforced(uint32_t pid);
int proc_was_enforced(uint32_t pid);

#endif
