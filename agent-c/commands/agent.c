/*
 * The agent proper: checks, attach, the ring-buffer loop, and the run /
 * start / stop / status commands with their state directory.
 *
 * State directory (default /run/dpndncy):
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

static volatile sig_atomic_t got_stop_signal;
static volatile sig_atomic_t last_signal;

static void on_signal(int sig)
{
	got_stop_signal = 1;
	last_signal = sig;
}

static void install_signals(void)
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

static void abs_path(const char *in, char *out, size_t n)
{
	char cwd[4096];

	if (in[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		snprintf(out, n, "%s", in);
	else
		snprintf(out, n, "%s/%s", cwd, in);
}

/* ---------- the units above the kernel objects, as they plug into the lower layers ---------- */

/* config lines of the records and features: step-marker, ci-identity (steps.c), protect-pid
 * (integrity.c), container-cgroup, runtime-* (runtimes.c), the egress policy (enforce.c) */
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

struct prep {
	char log[4096];
	char config[4096];
	int force_file;
};

static int preflight(struct opts *o, struct prep *p, int need_log)
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

struct session {
	struct mounts m;
	struct agent_bpf *bpf;
	struct ring_buffer *rb;
	struct attach_info ai;
	struct probe_result pr;
	struct bpf_hooks hooks;
	char kernel[128];
};

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

static int session_start(struct session *s, struct prep *p, int pin, char *err, size_t errn)
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
	/* tamper evidence (agent-c/integrity.c) first: loading its object parses the kernel's BTF
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
	/* new container cgroups wake us at once (agent-c/runtimes.c); attribution only */
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

static void session_stop(struct session *s, struct sbuf *stats)
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

static void stats_json(struct sbuf *b, struct session *s)
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

/* ---------- the session, for daemon mode (agent-c/daemon.c) ---------- */

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

/* ---------- state directory ---------- */

struct state {
	long pid;
	char since[64];
	char log[4096];
	int mounted_tracefs, mounted_bpffs;
	char mounted_cgroup2[256];
	char pin_dir[256];
	uint64_t start_real_ns;
};

static void state_path(char *out, size_t n, const char *dir, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static int state_read(const char *dir, struct state *st)
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

static void state_remove(const char *dir)
{
	static const char *const files[] = {"state", "stats.json", "stop.json", "agent.pid", "enforce"};
	char path[4200];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		state_path(path, sizeof(path), dir, files[i]);
		unlink(path);
	}
}

/* 1 if an agent holds the lock in dir */
static int lock_held(const char *dir)
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
	 * armed; what it mounted is left to the mount markers (agent-c/mounts.c) */
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

/* ---------- stop ---------- */

/* 'T' when the process is stopped (SIGSTOP) or traced, else its state letter, 0 when unknown */
static char proc_state(pid_t pid)
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
