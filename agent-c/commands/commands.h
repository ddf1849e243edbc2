/* The commands main.c dispatches to (agent-c/commands/). */
#ifndef DPNDNCY_COMMANDS_COMMANDS_H
#define DPNDNCY_COMMANDS_COMMANDS_H
struct opts {
	const char *log;
	const char *state_dir;
	const char *config;
	const char *mode;
	const char *file_hook;
	const char *cgroup;      /* start --mode enforce: the cgroup to enforce on */
	const char *jobs_dir;    /* daemon */
	const char *policy_dir;  /* daemon, enforce */
	const char *job_idle;    /* daemon: seconds */
	char **cmd;
	int foreground;
};
int cmd_probe(struct opts *o);
int cmd_run(struct opts *o);
int cmd_start(struct opts *o);
int cmd_stop(struct opts *o);
int cmd_status(struct opts *o);
int cmd_daemon(struct opts *o);   /* agent-c/commands/daemon.c */

#endif
