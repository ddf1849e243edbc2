/* What daemon.c and daemon_jobs.c share (commands/daemon*.c only). */
#ifndef DPNDNCY_COMMANDS_DAEMON_INT_H
#define DPNDNCY_COMMANDS_DAEMON_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dpndncy.h"
#include "base/sbuf.h"
#include "base/output.h"

struct session;

#define MAX_JOBS 1024
#define PT_SIZE (1 << 17)   /* tracked processes (open addressing, power of two) */

struct job {
	int used;
	uint32_t id;                 /* kernel job id (step_names key) */
	char key[DP_STEP_MAX];       /* "NAME=value" */
	char platform[40];
	char project[256], name[256];
	int identity;                /* project / name read from a process's environment */
	int id_tries;
	const char *policy;          /* policy file (relative), "default" */
	int slot;
	struct output out;
	uint64_t start_real_ns;
	uint64_t idle_since;         /* boottime ns when the last process went; 0 while alive */
	uint32_t nlive;
	uint32_t first_pid;
	uint64_t cgroup;
	uint64_t drops0[DP_KIND_MAX];
};

extern struct job J[MAX_JOBS];
extern int njobs_hi;             /* J[0..njobs_hi) may be used */

struct pt_ent {
	uint32_t pid;
	int16_t job;
	uint8_t state;               /* 0 empty, 1 used, 2 deleted */
	uint8_t pad;
};
extern struct pt_ent *PT;
extern uint64_t pt_rebuilds;

struct daemon_state {
	const char *jobs_dir;
	const char *policy_dir;
	uint64_t idle_ns;
	int enforce;
	struct session *s;
	uint64_t jobs_started, jobs_ended, reloads, reload_failures, deny, pt_full;
	uint64_t deny_unlogged;      /* denies of processes of no job: in no log, only in the control stream */
};
extern struct daemon_state D;

/* the control stream (daemon.c): a line begun, its fields into ctl, ended */
extern struct sbuf ctl;
void ctl_begin(const char *type);
void ctl_end(void);
void ctl_str_or_null(const char *key, const char *v);
void ctl_error(const char *msg);

/* daemon_jobs.c */
void job_assign_policy(struct job *j);
void job_close(int idx, const char *reason);
/* the event hooks (records/events.h struct event_hooks) */
struct output *job_route(const struct dp_hdr *h);
void job_on_fork(const struct dp_hdr *parent, uint32_t child);
void job_on_exit(const struct dp_hdr *h);
void job_on_deny(const struct dp_hdr *h, struct output *o, const char *line, size_t n);
void job_on_tamper(uint64_t real_ns, const char *body, size_t n);
/* every SWEEP_NS: processes whose exit was missed, identities not read yet */
void sweep(void);

#endif
