/*
 * The agent session every command that traces runs: checks (nothing is attached if any fails),
 * the units above the kernel objects wired into the lower layers, attach, and the stop.
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

volatile sig_atomic_t got_stop_signal;
volatile sig_atomic_t last_signal;

static void on_signal(int sig)
{
	got_stop_signal = 1;
	last_signal = sig;
}

void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void abs_path(const char *in, char *out, size_t n)
{
	char cwd[4096];

	if (in[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		snprintf(out, n, "%s", in);
	else
		snprintf(out, n, "%s/%s", cwd, in);
}

/* ---------- the units above the kernel objects, as they plug into the lower layers ---------- */

/* config lines of the records and features: step-marker, ci-identity (steps.c), protect-pid
 * (integrity.c), container-cgroup, runtime-* (runtimes.c), the egress policy (enforce_policy.c) */
static const struct config_lines feature_lines = {
	.whole = steps_config_line,
	.tok = {integrity_config_line, runtimes_config_line, policy_config_line},
	.ntok = 3,
};

static int exec_loaded(const struct config *cfg, int step_cfg_fd, int step_names_fd, int steps_fd, char *errbuf,
		       size_t errn)
{
	if (steps_push_cfg(cfg, step_cfg_fd, errbuf, errn) < 0)
		return -1;
	steps_set_names_fd(step_names_fd);
	runtimes_set_steps_fd(steps_fd);
	return 0;
}

static int judged_cgroup(int i, const char *cg2root, char *path, size_t n, const char **what, int *slice)
{
	enum rt_cg_kind kind;

	if (runtimes_cgroup(i, cg2root, path, n, &kind) < 0)
		return -1;
	*what = kind == RT_CG_CONTAINERS ? "container-cgroup" : kind == RT_CG_SLICE ? "container-slice" : "runtime-cgroup";
	*slice = kind == RT_CG_SLICE;
	return 0;
}

static int judged_parent(int i, const char *cg2root, char *path, size_t n, int *is_parent)
{
	enum rt_cg_kind kind;

	if (runtimes_cgroup(i, cg2root, path, n, &kind) < 0)
		return -1;
	*is_parent = kind == RT_CG_CONTAINERS;
	return 0;
}

/* after the config is read (the values come from it) */
static void fill_hooks(struct bpf_hooks *h)
{
	*h = (struct bpf_hooks){
		.exec_loaded = exec_loaded,
		.learned_ttl_min = enforce_ttl_min(),
		.container_slices = runtimes_have_slices(),
		.connect_loaded = enforce_push,
		.judged_load = runtimes_bpf_load,
		.enforce_cgroup_fd = enforce_cgroup_fd,
		.judged_cgroup = judged_cgroup,
		.judged_attached = runtimes_cgroup_attached,
		.unload = runtimes_bpf_unload,
		.on_record = handle_event,
	};
	containers_set_sources(&(struct container_sources){
		.born_path = cgroup_born_path,
		.judged = judged_parent,
		.extra_json = container_extra_json,
	});
	RF = (struct record_features){
		.cgroup_enforced = integrity_cgroup_enforced,
		.rule_name = enforce_rule_name,
		.on_file = integrity_on_file,
		.start_json = enforce_json,
		.log_intact = integrity_log_intact,
		.stop_json = enforce_stats_json,
	};
}

/* ---------- shared preconditions: nothing is attached if any fails ---------- */


int preflight(struct opts *o, struct prep *p, int need_log)
{
	char err[600];

	memset(p, 0, sizeof(*p));
	p->force_file = -1;
	if (o->mode && strcmp(o->mode, "observe") != 0 && strcmp(o->mode, "enforce") != 0) {
		if (strcmp(o->mode, "learn") == 0)
			err_msg("--mode %s is not implemented yet (observe, enforce)", o->mode);
		else
			err_msg("unknown --mode '%s' (observe, learn, enforce)", o->mode);
		return EX_USAGE;
	}
	{
		const char *fh = o->file_hook ? o->file_hook : getenv("DPNDNCY_FORCE_FILE_HOOK");

		if (fh && *fh) {
			p->force_file = parse_file_hook(fh);
			if (p->force_file < 0) {
				err_msg("unknown file hook '%s' (lsm, fentry, kprobe, tracepoint)", fh);
				return EX_USAGE;
			}
		}
	}
	if (need_log && !o->log) {
		err_msg("--log FILE is required");
		return EX_USAGE;
	}
	if (geteuid() != 0) {
		err_msg("must run as root (loading BPF programs needs CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)");
		return EX_FAIL;
	}
	if (check_btf(err, sizeof(err)) < 0) {
		err_msg("%s", err);
		return EX_FAIL;
	}
	config_defaults(&G.cfg);
	if (o->config) {
		abs_path(o->config, p->config, sizeof(p->config));
		if (config_load(&G.cfg, p->config, &feature_lines, err, sizeof(err)) < 0) {
			err_msg("%s", err);
			return EX_FAIL;
		}
	}
	/* enforce mode: --mode enforce or "mode enforce" in the config; never silently observe */
	if (o->mode && strcmp(o->mode, "enforce") == 0) {
		G.cfg.mode = DP_MODE_ENFORCE;
	} else if (o->mode && G.cfg.mode == DP_MODE_ENFORCE) {
		err_msg("--mode %s conflicts with 'mode enforce' in %s", o->mode, p->config);
		return EX_USAGE;
	}
	if (o->cgroup && G.cfg.mode != DP_MODE_ENFORCE) {
		err_msg("--cgroup is only for --mode enforce");
		return EX_USAGE;
	}
	enforce_set_cgroup(o->cgroup);
	if (o->log)
		abs_path(o->log, p->log, sizeof(p->log));
	return 0;
}

/* ---------- the agent session ---------- */


static void hwm(const char *where)
{
	char *st;

	if (!getenv("DPNDNCY_DEBUG_RSS"))
		return;
	st = read_file_str("/proc/self/status", 8192);
	if (st) {
		char *h = strstr(st, "VmHWM:"), *r = strstr(st, "VmRSS:");
		fprintf(stderr, "rss %s: %.24s %.24s\n", where, h ? h : "", r ? r : "");
		free(st);
	}
}

int session_start(struct session *s, struct prep *p, int pin, char *err, size_t errn)
{
	memset(s, 0, sizeof(*s));
	kernel_release(s->kernel, sizeof(s->kernel));
	G.self_pid = (uint32_t)getpid();
	if (out_open(&G.out, p->log, 1, err, errn) < 0)
		return -1;
	if (mounts_setup(&s->m, pin, err, errn) < 0)
		goto fail_out;
	snprintf(s->pr.kernel, sizeof(s->pr.kernel), "%s", s->kernel);
	hwm("begin");
	if (probe_all(&s->pr, p->force_file, s->m.cgroup2, err, errn) < 0)
		goto fail_mounts;
	if (G.cfg.mode == DP_MODE_ENFORCE && enforce_prepare(s->m.cgroup2, err, errn) < 0)
		goto fail_mounts;
	malloc_trim(0); /* the probes parsed the kernel's BTF: give that memory back */
	hwm("probed");
	proc_init();
	proc_seed();
	hwm("seeded");
	/* the start record is dated before the first hook is attached: every event follows it */
	G.start_real_ns = now_realtime_ns();
	G.start_boot_ns = now_boottime_ns();
	G.boot_to_real = (int64_t)G.start_real_ns - (int64_t)G.start_boot_ns;
	fill_hooks(&s->hooks);
	s->bpf = bpf_setup(&G.cfg, &s->pr, s->m.cgroup2, pin, &s->hooks, err, errn, &s->ai);
	if (!s->bpf)
		goto fail_mounts;
	if (s->pr.uprobe_ok)
		containers_init(s->bpf, &s->pr);
	malloc_trim(0);
	hwm("loaded");
	/* tamper evidence (agent-c/features/integrity.c) first: loading its object parses the kernel's BTF
	 * again, and that transient heap should not stack on top of the mapped ring buffer */
	if (integrity_start(s->bpf, err, errn) < 0)
		goto fail_bpf;
	snprintf(s->ai.tamper, sizeof(s->ai.tamper), "%s", integrity_attach());
	malloc_trim(0);
	s->rb = ring_buffer__new(bpf_ringbuf_fd(s->bpf), handle_event, NULL, NULL);
	if (!s->rb) {
		snprintf(err, errn, "cannot open the ring buffer: %s", strerror(errno));
		integrity_fini();
		goto fail_bpf;
	}
	/* new container cgroups wake us at once (agent-c/records/runtimes.c); attribution only */
	if (runtimes_born_rb_fd() >= 0 && ring_buffer__add(s->rb, runtimes_born_rb_fd(), runtimes_on_born, NULL) < 0)
		err_msg("containers: cannot watch new cgroups: %s", strerror(errno));
	write_agent_start(&G, &s->ai, s->kernel);
	hwm("started");
	if (G.out.lost_lines) {
		snprintf(err, errn, "cannot write the log %s: %s", G.out.path, strerror(G.out.last_errno));
		goto fail_rb;
	}
	return 0;
fail_rb:
	integrity_fini();
	ring_buffer__free(s->rb);
fail_bpf:
	bpf_teardown(s->bpf);
fail_mounts:
	enforce_cleanup();
	mounts_teardown(&s->m);
fail_out:
	out_close(&G.out);
	return -1;
}

void session_stop(struct session *s, struct sbuf *stats)
{
	uint64_t drops[DP_KIND_MAX];

	ring_buffer__consume(s->rb);
	bpf_flush_pending(s->bpf);
	ring_buffer__consume(s->rb);
	integrity_final(s->bpf); /* last tamper checks, log size and hash against the file */
	bpf_read_drops(s->bpf, drops);
	write_agent_stop(&G, drops, stats);
	out_close(&G.out);
	integrity_fini();
	ring_buffer__free(s->rb);
	bpf_teardown(s->bpf);
	enforce_cleanup();
	mounts_teardown(&s->m);
}

void stats_json(struct sbuf *b, struct session *s)
{
	uint64_t drops[DP_KIND_MAX];

	bpf_read_drops(s->bpf, drops);
	sb_puts(b, "{\"events\":{");
	for (int k = 0; k < SK_COUNT; k++)
		sb_printf(b, "%s\"%s\":%llu", k ? "," : "", stat_kind_names[k],
			  (unsigned long long)G.out.kind_written[k]);
	sb_printf(b,
		  "},\"lost\":{\"exec\":%llu,\"exit\":%llu,\"fork\":%llu,\"connect\":%llu,\"file\":%llu,\"dns\":%llu,"
		  "\"write\":%llu},\"lines\":%llu,\"bytes\":%llu,\"duration_s\":%.3f}",
		  (unsigned long long)drops[DP_EXEC], (unsigned long long)drops[DP_EXIT], (unsigned long long)drops[DP_FORK],
		  (unsigned long long)drops[DP_CONNECT], (unsigned long long)drops[DP_FILE],
		  (unsigned long long)(drops[DP_DNS_LIBC] + drops[DP_DNS_PKT]), (unsigned long long)G.out.lost_lines,
		  (unsigned long long)G.out.seq, (unsigned long long)G.out.bytes,
		  (double)(now_realtime_ns() - G.start_real_ns) / 1e9);
}

/* ---------- the session, for daemon mode (agent-c/commands/daemon.c) ---------- */

static struct prep daemon_prep;
static struct session daemon_sess;

int agent_preflight(struct opts *o)
{
	return preflight(o, &daemon_prep, 1);
}

struct session *agent_session_start(int pin, char *err, size_t errn)
{
	return session_start(&daemon_sess, &daemon_prep, pin, err, errn) < 0 ? NULL : &daemon_sess;
}

void agent_session_poll(struct session *s, int timeout_ms)
{
	ring_buffer__poll(s->rb, timeout_ms);
	ring_buffer__consume(s->rb);
	integrity_tick(s->bpf);
}

void agent_session_drain(struct session *s)
{
	ring_buffer__consume(s->rb);
	bpf_flush_pending(s->bpf);
	ring_buffer__consume(s->rb);
}

void agent_session_drops(struct session *s, uint64_t drops[DP_KIND_MAX])
{
	bpf_read_drops(s->bpf, drops);
}

const struct attach_info *agent_session_attach(struct session *s)
{
	return &s->ai;
}

struct agent_bpf *agent_session_bpf(struct session *s)
{
	return s->bpf;
}

const char *agent_session_kernel(struct session *s)
{
	return s->kernel;
}

void agent_session_stop(struct session *s)
{
	session_stop(s, NULL);
}
