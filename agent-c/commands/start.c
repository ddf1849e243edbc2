/*
 * `start`: the agent in the background, its state in the state directory (state.c).
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

/* ---------- start ---------- */

static void daemon_main(struct opts *o, struct prep *p, const char *dir, int notify)
{
	struct session s;
	char err[600], path[4200], ts[40];
	struct sbuf b, stats;
	uint64_t next_stats = 0;
	FILE *nf = fdopen(notify, "w");

	install_signals();
	(void)o;
	if (session_start(&s, p, 1, err, sizeof(err)) < 0) {
		fprintf(nf, "ERR %s\n", err);
		fclose(nf);
		_exit(EX_FAIL);
	}
	/* record what stop must undo if we are killed */
	sb_init(&b);
	fmt_ts(ts, G.start_real_ns);
	sb_printf(&b, "pid=%d\nsince=%s\nstart_real_ns=%llu\nlog=%s\nmounted_tracefs=%d\nmounted_bpffs=%d\nmounted_cgroup2=%s\npin_dir=%s\n",
		  (int)getpid(), ts, (unsigned long long)G.start_real_ns, G.out.path, s.m.mounted_tracefs,
		  s.m.mounted_bpffs, s.m.mounted_cgroup2 ? s.m.cgroup2 : "", bpf_pin_dir(s.bpf));
	state_path(path, sizeof(path), dir, "state");
	if (write_file(path, b.p, b.len) < 0) {
		fprintf(nf, "ERR cannot write state file %s: %s\n", path, strerror(errno));
		fclose(nf);
		session_stop(&s, NULL);
		unlink(path);
		_exit(EX_FAIL);
	}
	sb_reset(&b);
	sb_printf(&b, "%d\n", (int)getpid());
	state_path(path, sizeof(path), dir, "agent.pid");
	write_file(path, b.p, b.len);
	enforce_write_state(dir);
	state_path(path, sizeof(path), dir, "stop.json");
	unlink(path);

	sb_reset(&b);
	sb_printf(&b, "{\"pid\":%d,\"since\":\"%s\",\"log\":", (int)getpid(), ts);
	sb_json_cstr(&b, G.out.path);
	sb_puts(&b, ",\"state_dir\":");
	sb_json_cstr(&b, dir);
	sb_printf(&b, ",\"mode\":\"%s\",\"kernel\":", G.cfg.mode == DP_MODE_ENFORCE ? "enforce" : "observe");
	sb_json_cstr(&b, s.kernel);
	sb_puts(&b, ",\"attach\":");
	attach_json(&s.ai, &b);
	if (G.cfg.mode == DP_MODE_ENFORCE) {
		sb_puts(&b, ",\"cgroup\":");
		sb_json_cstr(&b, enforce_cgroup_path());
		sb_puts(&b, ",\"enforce\":");
		enforce_json(&b);
	}
	sb_putc(&b, '}');
	fprintf(nf, "OK %s\n", b.p);
	fclose(nf);
	sb_free(&b);

	sb_init(&stats);
	while (!got_stop_signal) {
		ring_buffer__poll(s.rb, 200);
		ring_buffer__consume(s.rb); /* see the run loop: no wakeup per record */
		out_flush(&G.out);
		integrity_tick(s.bpf);
		if (now_boottime_ns() >= next_stats) {
			sb_reset(&stats);
			stats_json(&stats, &s);
			state_path(path, sizeof(path), dir, "stats.json");
			write_file(path, stats.p, stats.len);
			next_stats = now_boottime_ns() + 1000000000ull;
		}
	}
	sb_reset(&stats);
	session_stop(&s, &stats);
	state_path(path, sizeof(path), dir, "stop.json");
	write_file(path, stats.p, stats.len);
	state_path(path, sizeof(path), dir, "state");
	unlink(path);
	state_path(path, sizeof(path), dir, "stats.json");
	unlink(path);
	state_path(path, sizeof(path), dir, "agent.pid");
	unlink(path);
	sb_free(&stats);
	_exit(0);
}

int cmd_start(struct opts *o)
{
	const char *dir = o->state_dir ? o->state_dir : DEFAULT_STATE_DIR;
	char path[4200], adir[4096], buf[8192];
	struct prep p;
	struct state st;
	int rc, lockfd, pfd[2];
	pid_t pid;
	size_t got = 0;
	ssize_t r;

	if ((rc = preflight(o, &p, 1)))
		return rc;
	abs_path(dir, adir, sizeof(adir));
	dir = adir;
	if (mkdir_p(dir, 0700) < 0) {
		err_msg("cannot create state directory %s: %s", dir, strerror(errno));
		return EX_FAIL;
	}
	state_path(path, sizeof(path), dir, "agent.lock");
	lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0) {
		err_msg("cannot open %s: %s", path, strerror(errno));
		return EX_FAIL;
	}
	if (flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		err_msg("an agent is already running (state dir %s%s); stop it first", dir,
			state_read(dir, &st) == 0 ? "" : ", pid unknown");
		close(lockfd);
		return EX_FAIL;
	}
	if (state_read(dir, &st) == 0) {
		err_msg("a previous agent (pid %ld) died without stopping; run '%s stop --state-dir %s' to recover its log first",
			st.pid, PROG, dir);
		close(lockfd);
		return EX_FAIL;
	}
	/* the log must be writable before we go to the background */
	{
		int fd = open(p.log, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0) {
			err_msg("cannot open log %s for writing: %s", p.log, strerror(errno));
			close(lockfd);
			return EX_FAIL;
		}
		close(fd);
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		err_msg("pipe: %s", strerror(errno));
		return EX_FAIL;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		err_msg("fork: %s", strerror(errno));
		return EX_FAIL;
	}
	if (pid == 0) {
		int nul, errfd;

		close(pfd[0]);
		setsid();
		pid = fork();
		if (pid != 0)
			_exit(pid < 0 ? EX_FAIL : 0);
		/* the agent: keeps lockfd (the flock) for its whole life */
		if (chdir("/") < 0) {
			/* ignore */
		}
		umask(022);
		nul = open("/dev/null", O_RDWR);
		state_path(path, sizeof(path), dir, "agent.err");
		errfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(errfd >= 0 ? errfd : nul, 2);
		}
		daemon_main(o, &p, dir, pfd[1]);
		_exit(0);
	}
	close(pfd[1]);
	close(lockfd);
	waitpid(pid, NULL, 0);
	while (got < sizeof(buf) - 1 && (r = read(pfd[0], buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		got += (size_t)r;
	}
	close(pfd[0]);
	buf[got] = 0;
	if (got >= 3 && strncmp(buf, "OK ", 3) == 0) {
		fputs(buf + 3, stdout);
		return 0;
	}
	if (got >= 4 && strncmp(buf, "ERR ", 4) == 0) {
		char *nl = strchr(buf, '\n');

		if (nl)
			*nl = 0;
		err_msg("%s", buf + 4);
		return EX_FAIL;
	}
	err_msg("the agent exited during start (see %s/agent.err)", dir);
	return EX_FAIL;
}
