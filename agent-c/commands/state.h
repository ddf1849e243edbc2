/* The state directory of `start` (agent-c/commands/state.c says what is in it). */
#ifndef DPNDNCY_COMMANDS_STATE_H
#define DPNDNCY_COMMANDS_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct session;

struct state {
	long pid;
	char since[64];
	char log[4096];
	int mounted_tracefs, mounted_bpffs;
	char mounted_cgroup2[256];
	char pin_dir[256];
	uint64_t start_real_ns;
};

/* dir/name */
void state_path(char *out, size_t n, const char *dir, const char *name);
/* the state file; 0 when it names a pid */
int state_read(const char *dir, struct state *st);
/* the files a stopped agent leaves */
void state_remove(const char *dir);
/* 'T' when the process is stopped (SIGSTOP) or traced, else its state letter, 0 when unknown */
char proc_state(pid_t pid);
/* 1 if an agent holds the lock in dir */
int lock_held(const char *dir);

/* daemon state dir (the format of `start`): lock it, and name a dead predecessor's pins */
int agent_state_claim(const char *dir, long *old_pid, char *old_pin, size_t n);
int agent_state_write(const char *dir, struct session *s);
void agent_state_clear(const char *dir);

#endif
