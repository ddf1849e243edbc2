/*
 * `run -- CMD`: trace (and in enforce mode confine) one command for its life.
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

/* ---------- run ---------- */

int cmd_run(struct opts *o)
{
	struct session s;
	struct prep p;
	char err[600];
	pid_t child, parent;
	int rc, status = 0, code = 0, child_done = 0;
	uint64_t deadline = 0;

	if (!o->cmd || !o->cmd[0]) {
		err_msg("run: missing command (usage: run --log FILE -- CMD [ARGS...])");
		return EX_USAGE;
	}
	if ((rc = preflight(o, &p, 1)))
		return rc;
	install_signals();
	if (session_start(&s, &p, 0, err, sizeof(err)) < 0) {
		err_msg("%s", err);
		return EX_FAIL;
	}
	fflush(NULL);
	parent = getpid();
	child = fork();
	if (child < 0) {
		err_msg("fork: %s", strerror(errno));
		session_stop(&s, NULL);
		return EX_FAIL;
	}
	if (child == 0) {
		sigset_t none;

		/*
		 * enforce: `run` holds its programs by fd, not by pin, so if this agent dies its
		 * verdicts go with it. Fail closed: the command dies with the agent.
		 */
		if (G.cfg.mode == DP_MODE_ENFORCE &&
		    (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)) {
			err_msg("cannot tie %s to the agent's life; not running it unconfined", o->cmd[0]);
			_exit(126);
		}

		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (G.cfg.mode == DP_MODE_ENFORCE && enforce_join(err, sizeof(err)) < 0) {
			/* never run CMD unconfined */
			err_msg("%s; not running %s", err, o->cmd[0]);
			_exit(126);
		}
		execvp(o->cmd[0], o->cmd);
		err_msg("cannot run %s: %s", o->cmd[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	G.wait_pid = (uint32_t)child;
	for (;;) {
		/* records are submitted without wakeup until a batch waits (dp_rb_flags): the
		 * timeout is what drains a quiet trickle, and poll alone consumes only on wakeup */
		ring_buffer__poll(s.rb, 100);
		ring_buffer__consume(s.rb);
		out_flush(&G.out);
		integrity_tick(s.bpf);
		if (got_stop_signal) {
			got_stop_signal = 0;
			if (!child_done)
				kill(child, last_signal);
		}
		if (!child_done) {
			pid_t w = waitpid(child, &status, WNOHANG);

			if (w == child) {
				child_done = 1;
				code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
				deadline = now_boottime_ns() + 2000000000ull;
			}
		}
		if (child_done) {
			ring_buffer__consume(s.rb);
			if (G.wait_exit_seen || now_boottime_ns() > deadline)
				break;
		}
	}
	session_stop(&s, NULL);
	if (G.out.lost_lines)
		err_msg("warning: %llu log lines could not be written to %s (%s); the trace is incomplete",
			(unsigned long long)G.out.lost_lines, p.log, strerror(G.out.last_errno));
	return code;
}
