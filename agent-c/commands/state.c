/*
 * The state directory of `start` (default /run/dpndncy), which `stop` and `status` read:
 *   agent.lock   flock()ed by the running agent for its whole life
 *   state        key=value: pid, since, log, mounts we made, pin dir
 *   stats.json   counters, refreshed every second (for `status`)
 *   stop.json    final statistics written by the agent as it stops (for `stop`)
 *   agent.err    the background agent's stderr
 */
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <malloc.h>

#include <bpf/libbpf.h>

#include "agent.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "base/sha256.h"
#include "base/output.h"
#include "base/config.h"
#include "kernel/mounts.h"
#include "kernel/probe.h"
#include "kernel/bpfload.h"
#include "kernel/pins.h"
#include "records/proctab.h"
#include "records/steps.h"
#include "records/containers.h"
#include "records/container_libc.h"
#include "records/runtimes.h"
#include "records/events.h"
#include "features/enforce_agent.h"
#include "features/integrity.h"
#include "commands/commands.h"
#include "commands/session.h"
#include "commands/state.h"

/* ---------- state directory ---------- */


void state_path(char *out, size_t n, const char *dir, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

int state_read(const char *dir, struct state *st)
{
	char path[4200], *s, *line, *save = NULL;

	memset(st, 0, sizeof(*st));
	state_path(path, sizeof(path), dir, "state");
	s = read_file_str(path, 65536);
	if (!s)
		return -1;
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		if (!eq)
			continue;
		*eq = 0;
		if (!strcmp(line, "pid"))
			st->pid = strtol(eq + 1, NULL, 10);
		else if (!strcmp(line, "since"))
			snprintf(st->since, sizeof(st->since), "%s", eq + 1);
		else if (!strcmp(line, "log"))
			snprintf(st->log, sizeof(st->log), "%s", eq + 1);
		else if (!strcmp(line, "mounted_tracefs"))
			st->mounted_tracefs = atoi(eq + 1);
		else if (!strcmp(line, "mounted_bpffs"))
			st->mounted_bpffs = atoi(eq + 1);
		else if (!strcmp(line, "mounted_cgroup2"))
			snprintf(st->mounted_cgroup2, sizeof(st->mounted_cgroup2), "%s", eq + 1);
		else if (!strcmp(line, "pin_dir"))
			snprintf(st->pin_dir, sizeof(st->pin_dir), "%s", eq + 1);
		else if (!strcmp(line, "start_real_ns"))
			st->start_real_ns = strtoull(eq + 1, NULL, 10);
	}
	free(s);
	return st->pid > 0 ? 0 : -1;
}

void state_remove(const char *dir)
{
	static const char *const files[] = {"state", "stats.json", "stop.json", "agent.pid", "enforce"};
	char path[4200];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		state_path(path, sizeof(path), dir, files[i]);
		unlink(path);
	}
}

/* 1 if an agent holds the lock in dir */
int lock_held(const char *dir)
{
	char path[4200];
	int fd, held;

	state_path(path, sizeof(path), dir, "agent.lock");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return held;
}

/* ---------- the daemon's state dir: `stop --state-dir` can recover a daemon that died ---------- */

static int daemon_lockfd = -1;

int agent_state_claim(const char *dir, long *old_pid, char *old_pin, size_t n)
{
	char path[4200];
	struct state st;

	*old_pid = 0;
	old_pin[0] = 0;
	if (mkdir_p(dir, 0700) < 0) {
		err_msg("cannot create state directory %s: %s", dir, strerror(errno));
		return -1;
	}
	state_path(path, sizeof(path), dir, "agent.lock");
	daemon_lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (daemon_lockfd < 0 || flock(daemon_lockfd, LOCK_EX | LOCK_NB) < 0) {
		err_msg("an agent is already running with state dir %s", dir);
		return -1;
	}
	/* a predecessor that died: its pins (its enforcement, kept while it was down) go once we are
	 * armed; what it mounted is left to the mount markers (agent-c/kernel/mounts.c) */
	if (state_read(dir, &st) == 0) {
		*old_pid = st.pid;
		snprintf(old_pin, n, "%s", st.pin_dir);
	}
	return 0;
}

int agent_state_write(const char *dir, struct session *s)
{
	char path[4200], ts[40];
	struct sbuf b;
	int rc;

	sb_init(&b);
	fmt_ts(ts, G.start_real_ns);
	sb_printf(&b, "pid=%d\nsince=%s\nstart_real_ns=%llu\nlog=%s\nmounted_tracefs=%d\nmounted_bpffs=%d\nmounted_cgroup2=%s\npin_dir=%s\n",
		  (int)getpid(), ts, (unsigned long long)G.start_real_ns, G.out.path, s->m.mounted_tracefs,
		  s->m.mounted_bpffs, s->m.mounted_cgroup2 ? s->m.cgroup2 : "", bpf_pin_dir(s->bpf));
	state_path(path, sizeof(path), dir, "state");
	rc = write_file(path, b.p, b.len);
	sb_free(&b);
	return rc;
}

void agent_state_clear(const char *dir)
{
	state_remove(dir);
}

/* 'T' when the process is stopped (SIGSTOP) or traced, else its state letter, 0 when unknown */
char proc_state(pid_t pid)
{
	char path[64], *s, *p;
	char c = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	s = read_file_str(path, 4096);
	if (s && (p = strrchr(s, ')')) && p[1] == ' ')
		c = p[2];
	free(s);
	return c == 't' ? 'T' : c;
}
