/*
 * `probe`: which attach point each hook would use here, as JSON.
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

/* ---------- probe ---------- */

int cmd_probe(struct opts *o)
{
	struct probe_result r;
	struct mounts m;
	struct sbuf b;
	char err[600];
	int force = -1;

	memset(&r, 0, sizeof(r));
	kernel_release(r.kernel, sizeof(r.kernel));
	snprintf(r.btf_path, sizeof(r.btf_path), "%s", btf_path());
	r.btf = check_btf(err, sizeof(err)) == 0;
	{
		const char *fh = o->file_hook ? o->file_hook : getenv("DPNDNCY_FORCE_FILE_HOOK");

		if (fh && *fh && (force = parse_file_hook(fh)) < 0) {
			err_msg("unknown file hook '%s' (lsm, fentry, kprobe, tracepoint)", fh);
			return EX_USAGE;
		}
	}
	if (geteuid() != 0) {
		err_msg("must run as root to probe (feature probes load BPF programs)");
		return EX_FAIL;
	}
	if (!r.btf) {
		/* nothing can load without BTF: say so in the JSON too */
		sb_init(&b);
		sb_puts(&b, "{\"version\":");
		sb_json_cstr(&b, DPNDNCY_VERSION);
		sb_puts(&b, ",\"commit\":");
		sb_json_cstr(&b, DPNDNCY_COMMIT);
		sb_puts(&b, ",\"kernel\":");
		sb_json_cstr(&b, r.kernel);
		sb_puts(&b, ",\"btf\":false,\"btf_path\":");
		sb_json_cstr(&b, r.btf_path);
		sb_puts(&b, ",\"error\":");
		sb_json_cstr(&b, err);
		sb_putc(&b, '}');
		puts(b.p);
		sb_free(&b);
		err_msg("%s", err);
		return EX_FAIL;
	}
	if (mounts_setup(&m, 0, err, sizeof(err)) < 0) {
		err_msg("%s", err);
		return EX_FAIL;
	}
	if (probe_all(&r, force, m.cgroup2, err, sizeof(err)) < 0 && force >= 0 && r.exec_ok) {
		mounts_teardown(&m);
		err_msg("%s", err);
		return EX_FAIL;
	}
	mounts_teardown(&m);
	sb_init(&b);
	probe_json(&r, &b);
	puts(b.p);
	sb_free(&b);
	if (!r.exec_ok) {
		/* a kernel the agent refuses: the JSON says which hook, the exit code that it is refused */
		err_msg("%s", err);
		return EX_FAIL;
	}
	return 0;
}
