/*
 * `stop`: the background agent stopped, or after SIGKILL its trace recovered and its kernel state
 * undone.
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

/* ---------- stop ---------- */

/* the agent is gone: undo its pins and mounts, close its log with complete:false */
static int recover(const char *dir, struct state *st)
{
	char reason[256], sha[65], ts[40];
	struct sbuf line, out;
	uint64_t counts[SK_COUNT] = {0}, lines = 0;
	int fd;
	off_t end;
	struct sha256 ctx;
	char *buf;
	size_t cap = 1 << 16, used = 0, keep = 0;
	ssize_t r;

	snprintf(reason, sizeof(reason), "agent (pid %ld) died without stopping (killed?); trace recovered by stop",
		 st->pid);
	if (st->pin_dir[0])
		unpin_all(st->pin_dir);
	enforce_recover(dir);
	{
		struct mounts m;

		memset(&m, 0, sizeof(m));
		m.mounted_tracefs = st->mounted_tracefs;
		m.mounted_bpffs = st->mounted_bpffs;
		if (st->mounted_cgroup2[0]) {
			m.mounted_cgroup2 = 1;
			snprintf(m.cgroup2, sizeof(m.cgroup2), "%s", st->mounted_cgroup2);
		}
		mounts_teardown(&m);
	}

	fd = open(st->log, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err_msg("trace is incomplete: agent (pid %ld) died; cannot open its log %s: %s", st->pid, st->log,
			strerror(errno));
		return EX_INCOMPLETE;
	}
	/* hash and count whole lines; cut a trailing partial line */
	sha256_init(&ctx);
	buf = malloc(cap);
	end = 0;
	while (buf && (r = read(fd, buf + used, cap - used)) > 0) {
		size_t i, start = 0;

		used += (size_t)r;
		for (i = 0; i < used; i++) {
			if (buf[i] != '\n')
				continue;
			{
				char *k = memmem(buf + start, i - start, "\"kind\":\"", 8);

				if (k)
					for (int j = 0; j < SK_COUNT; j++) {
						size_t kl = strlen(stat_kind_names[j]);

						if (!strncmp(k + 8, stat_kind_names[j], kl) && k[8 + kl] == '"')
							counts[j]++;
					}
			}
			lines++;
			start = i + 1;
		}
		sha256_update(&ctx, buf, start);
		end += (off_t)start;
		keep = used - start;
		memmove(buf, buf + start, keep);
		used = keep;
		if (used == cap) { /* a monstrous line: give up counting it */
			sha256_update(&ctx, buf, used);
			end += (off_t)used;
			used = 0;
		}
	}
	free(buf);
	if (ftruncate(fd, end) < 0) {
		/* keep going: the record below still says what happened */
	}
	lseek(fd, end, SEEK_SET);
	sha256_hex(&ctx, sha);

	fmt_ts(ts, now_realtime_ns());
	sb_init(&line);
	sb_printf(&line,
		  "{\"v\":1,\"kind\":\"agent\",\"ts\":\"%s\",\"seq\":%llu,\"pid\":%d,\"tid\":%d,\"ppid\":%d,\"uid\":%d,"
		  "\"comm\":\"%s\",\"cgroup\":0,\"step\":null,\"event\":\"stop\",\"version\":\"%s\",\"commit\":\"%s\"",
		  ts, (unsigned long long)lines, (int)getpid(), (int)getpid(), (int)getppid(), (int)getuid(), PROG,
		  DPNDNCY_VERSION, DPNDNCY_COMMIT);
	sb_init(&out);
	sb_puts(&out, "\"events\":{");
	for (int k = 0; k < SK_COUNT; k++)
		sb_printf(&out, "%s\"%s\":%llu", k ? "," : "", stat_kind_names[k], (unsigned long long)counts[k]);
	sb_puts(&out, "},\"lost\":{}");
	sb_printf(&out, ",\"duration_s\":%.3f,\"log_sha256\":\"%s\",\"complete\":false,\"reason\":",
		  st->start_real_ns ? (double)(now_realtime_ns() - st->start_real_ns) / 1e9 : 0.0, sha);
	sb_json_cstr(&out, reason);
	sb_putc(&line, ',');
	sb_put(&line, out.p, out.len);
	sb_puts(&line, "}\n");
	if (write(fd, line.p, line.len) != (ssize_t)line.len)
		err_msg("cannot append the stop record to %s: %s", st->log, strerror(errno));
	fsync(fd);
	close(fd);

	printf("{\"running\":false,\"log\":");
	sb_reset(&line);
	sb_json_cstr(&line, st->log);
	printf("%s,%s}\n", line.p, out.p);
	sb_free(&line);
	sb_free(&out);
	state_remove(dir);
	err_msg("trace is incomplete: the agent (pid %ld) died without stopping; pins and mounts removed, log closed with complete:false",
		st->pid);
	return EX_INCOMPLETE;
}

int cmd_stop(struct opts *o)
{
	const char *dir = o->state_dir ? o->state_dir : DEFAULT_STATE_DIR;
	struct state st;
	char path[4200], *js;

	if (geteuid() != 0) {
		err_msg("must run as root");
		return EX_FAIL;
	}
	if (state_read(dir, &st) < 0) {
		err_msg("no agent running (no state in %s)", dir);
		return EX_FAIL;
	}
	if (lock_held(dir) && pid_alive((pid_t)st.pid)) {
		if (kill((pid_t)st.pid, SIGTERM) < 0) {
			err_msg("cannot signal agent pid %ld: %s", st.pid, strerror(errno));
			return EX_FAIL;
		}
		if (proc_state((pid_t)st.pid) == 'T') {
			/* stopped (SIGSTOP): it records the stall itself (agent-stalled) once it runs again */
			err_msg("warning: the agent (pid %ld) was stopped (SIGSTOP?); continuing it so it can stop", st.pid);
			kill((pid_t)st.pid, SIGCONT);
		}
		/* it drains, writes the stop record, detaches, unmounts, then exits */
		for (int i = 0; i < 1200 && lock_held(dir); i++)
			usleep(50000);
		if (lock_held(dir)) {
			err_msg("agent pid %ld did not stop within 60 s", st.pid);
			return EX_FAIL;
		}
	}
	state_path(path, sizeof(path), dir, "stop.json");
	js = read_file_str(path, 65536);
	if (js && js[0] == '{') {
		size_t n = strlen(js);

		while (n && js[n - 1] == '\n')
			js[--n] = 0;
		puts(js);
		free(js);
		state_remove(dir);
		return 0;
	}
	free(js);
	return recover(dir, &st);
}
