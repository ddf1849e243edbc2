/*
 * `status`: the background agent's counters.
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

/* ---------- status ---------- */

int cmd_status(struct opts *o)
{
	const char *dir = o->state_dir ? o->state_dir : DEFAULT_STATE_DIR;
	struct state st;
	char path[4200], *stats;
	struct sbuf b;

	sb_init(&b);
	if (state_read(dir, &st) < 0) {
		sb_puts(&b, "{\"running\":false,\"state_dir\":");
		sb_json_cstr(&b, dir);
		sb_putc(&b, '}');
		puts(b.p);
		sb_free(&b);
		return 0;
	}
	if (!(lock_held(dir) && pid_alive((pid_t)st.pid))) {
		sb_printf(&b, "{\"running\":false,\"stale\":true,\"pid\":%ld,\"since\":\"%s\",\"log\":", st.pid, st.since);
		sb_json_cstr(&b, st.log);
		sb_puts(&b, ",\"reason\":\"agent died without stopping; run stop to recover the log\",\"state_dir\":");
		sb_json_cstr(&b, dir);
		sb_putc(&b, '}');
		puts(b.p);
		sb_free(&b);
		return 0;
	}
	state_path(path, sizeof(path), dir, "stats.json");
	stats = read_file_str(path, 65536);
	sb_printf(&b, "{\"running\":true,\"pid\":%ld,\"since\":\"%s\",\"log\":", st.pid, st.since);
	sb_json_cstr(&b, st.log);
	sb_puts(&b, ",\"state_dir\":");
	sb_json_cstr(&b, dir);
	sb_printf(&b, ",\"counters\":%s", stats && stats[0] == '{' ? stats : "null");
	if (proc_state((pid_t)st.pid) == 'T')
		sb_puts(&b, ",\"stopped\":true,\"warning\":\"the agent is stopped (SIGSTOP?): it sees nothing until continued\"");
	sb_putc(&b, '}');
	puts(b.p);
	free(stats);
	sb_free(&b);
	return 0;
}
