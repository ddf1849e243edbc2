/*
 * Daemon mode (docs/daemon.md): one agent for every CI job on the host.
 *
 * The kernel names each process's job (bpf/exec.bpf.c, job markers); every record header
 * carries the job id. Here records are routed to one log per job, jobs are opened when
 * first seen and closed once none of their processes has been alive for --job-idle
 * seconds, each job gets its policy slot in enforce mode, and a control stream of JSON
 * lines on stdout tells the supervisor (src/daemon/) what happened.
 */
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "agent.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "base/output.h"
#include "kernel/bpfload.h"
#include "kernel/pins.h"
#include "records/steps.h"
#include "records/containers.h"
#include "records/events.h"
#include "features/enforce_agent.h"
#include "commands/commands.h"
#include "commands/session.h"
#include "commands/state.h"
#include "commands/daemon_int.h"
#include "features/integrity.h"

#define SWEEP_NS 2000000000ull

struct daemon_state D;

static volatile sig_atomic_t stop_sig, hup_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
}

static void on_hup(int sig)
{
	(void)sig;
	hup_sig = 1;
}

/* ---- the control stream (schema/daemon-control.v1.json) ---- */

struct sbuf ctl;

void ctl_begin(const char *type)
{
	char ts[40];

	fmt_ts(ts, now_realtime_ns());
	sb_reset(&ctl);
	sb_printf(&ctl, "{\"type\":\"%s\",\"ts\":\"%s\"", type, ts);
}

void ctl_end(void)
{
	sb_puts(&ctl, "}\n");
	/* stdout is the supervisor's pipe; a supervisor that went away must not stop the tracing */
	if (fwrite(ctl.p, 1, ctl.len, stdout) != ctl.len || fflush(stdout) != 0)
		clearerr(stdout);
}

void ctl_str_or_null(const char *key, const char *v)
{
	sb_key(&ctl, key);
	if (v && v[0])
		sb_json_cstr(&ctl, v);
	else
		sb_puts(&ctl, "null");
}

void ctl_error(const char *msg)
{
	ctl_begin("error");
	sb_key(&ctl, "message");
	sb_json_cstr(&ctl, msg);
	ctl_end();
}

/*
 * Attribution lost to a full map (bpf/dpndncy.h, struct dp_attrib_stats): said once, loudly, when
 * it first happens; the kernel then judges every process without a job by the strictest policy.
 */
static struct dp_attrib_stats attrib;

static void check_attribution(void)
{
	static int said_jobs, said_steps;
	int fd = bpf_exec_map_fd(agent_session_bpf(D.s), "attrib_stats");
	uint32_t zero = 0;
	char msg[400];

	if (fd < 0 || bpf_map_lookup_elem(fd, &zero, &attrib) < 0)
		return;
	if (attrib.jobs_full && !said_jobs) {
		said_jobs = 1;
		snprintf(msg, sizeof(msg),
			 "attribution map full: %llu process(es) of a job could not be given their job; %s",
			 (unsigned long long)attrib.jobs_full,
			 D.enforce ? "every process without a job under the enforced cgroup is now judged by the strictest policy "
				     "(rule unattributed: nothing but loopback and the sanctioned resolvers) until the daemon restarts"
				   : "their records are not in any job's log");
		ctl_error(msg);
		err_msg("%s", msg);
	}
	if (attrib.steps_full && !said_steps) {
		said_steps = 1;
		snprintf(msg, sizeof(msg), "step map full: %llu process(es) could not be given their step (their records name none)",
			 (unsigned long long)attrib.steps_full);
		ctl_error(msg);
		err_msg("%s", msg);
	}
}

static void stats_line(void)
{
	uint64_t drops[DP_KIND_MAX], lost = 0;
	int active = 0;

	check_attribution();
	agent_session_drops(D.s, drops);
	for (int k = 0; k < DP_KIND_MAX; k++)
		lost += drops[k];
	for (int i = 0; i < njobs_hi; i++)
		active += J[i].used;
	ctl_begin("stats");
	sb_puts(&ctl, ",\"events\":{");
	for (int k = 0; k < SK_COUNT; k++)
		sb_printf(&ctl, "%s\"%s\":%llu", k ? "," : "", stat_kind_names[k], (unsigned long long)G.events[k]);
	sb_printf(&ctl,
		  "},\"verdicts\":{\"allow\":%llu,\"deny\":%llu},\"lost\":%llu,\"unattributed\":%llu,\"jobs_active\":%d,"
		  "\"jobs_started\":%llu,\"jobs_ended\":%llu,\"policy_reloads\":%llu,\"policy_reload_failures\":%llu,"
		  "\"untracked_processes\":%llu,\"process_table_rebuilds\":%llu",
		  /* every connect record that reached a job's log was allowed, but the denied ones */
		  (unsigned long long)(G.events[SK_CONNECT] - (D.deny - D.deny_unlogged)), (unsigned long long)D.deny,
		  (unsigned long long)lost,
		  (unsigned long long)G.unattributed, active, (unsigned long long)D.jobs_started,
		  (unsigned long long)D.jobs_ended, (unsigned long long)D.reloads, (unsigned long long)D.reload_failures,
		  (unsigned long long)D.pt_full, (unsigned long long)pt_rebuilds);
	sb_printf(&ctl, ",\"attribution_failures\":%llu,\"step_attribution_failures\":%llu",
		  (unsigned long long)attrib.jobs_full, (unsigned long long)attrib.steps_full);
	ctl_end();
}

static void reload(void)
{
	char err[800] = "";
	int changed = 0, ok;

	ok = enforce_load_dir(D.policy_dir, &changed, err, sizeof(err)) == 0;
	if (ok && enforce_apply(err, sizeof(err)) < 0)
		ok = 0;
	if (ok) {
		for (int i = 0; i < njobs_hi; i++)
			if (J[i].used)
				job_assign_policy(&J[i]);
		D.reloads++;
	} else {
		D.reload_failures++;
	}
	ctl_begin("policy-reload");
	sb_printf(&ctl, ",\"ok\":%s,\"policies\":%d", ok ? "true" : "false", enforce_policies());
	if (!ok) {
		sb_key(&ctl, "error");
		sb_json_cstr(&ctl, err);
	}
	ctl_end();
	if (!ok)
		err_msg("policy reload refused, the policies in force stay: %s", err);
}

static void deny_counting(const struct dp_hdr *h, struct output *o, const char *line, size_t n)
{
	D.deny++;
	if (!o)
		D.deny_unlogged++;
	job_on_deny(h, o, line, n);
}

int cmd_daemon(struct opts *o)
{
	char err[800], host_log[4200], jobs_dir[4096], policy_dir[4096];
	struct sigaction sa;
	struct stat st;
	uint64_t next_stats = 0, next_sweep = 0;
	char state_dir[4096], old_pin[256];
	long old_pid = 0;
	int rc;

	if (!o->jobs_dir) {
		err_msg("daemon: --jobs-dir DIR is required");
		return EX_USAGE;
	}
	if (!realpath(o->jobs_dir, jobs_dir) || stat(jobs_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		err_msg("daemon: --jobs-dir %s: not a directory", o->jobs_dir);
		return EX_FAIL;
	}
	D.jobs_dir = jobs_dir;
	D.idle_ns = 10ull * 1000000000ull;
	if (o->job_idle) {
		char *end;
		double v = strtod(o->job_idle, &end);

		if (*end || v < 0.1 || v > 86400) {
			err_msg("daemon: --job-idle needs seconds between 0.1 and 86400, not '%s'", o->job_idle);
			return EX_USAGE;
		}
		D.idle_ns = (uint64_t)(v * 1e9);
	}
	snprintf(host_log, sizeof(host_log), "%s/daemon-%llu.ndjson", jobs_dir, (unsigned long long)now_realtime_ns());
	o->log = host_log;
	if ((rc = agent_preflight(o)))
		return rc;
	D.enforce = G.cfg.mode == DP_MODE_ENFORCE;
	if (D.enforce && !o->cgroup) {
		err_msg("daemon: --mode enforce needs --cgroup PATH (the cgroup the jobs run under)");
		return EX_USAGE;
	}
	if (o->policy_dir && !D.enforce) {
		err_msg("daemon: --policy-dir is only for --mode enforce");
		return EX_USAGE;
	}
	if (D.enforce && o->policy_dir) {
		int changed;

		/* not resolved: the supervisor swaps a symlink to the generation in force, and a
		 * reload must follow it (relative paths are made absolute, that is all) */
		if (o->policy_dir[0] == '/')
			snprintf(policy_dir, sizeof(policy_dir), "%s", o->policy_dir);
		else if (getcwd(policy_dir, sizeof(policy_dir) - 512))
			snprintf(policy_dir + strlen(policy_dir), 512, "/%s", o->policy_dir);
		else
			snprintf(policy_dir, sizeof(policy_dir), "%s", o->policy_dir);
		D.policy_dir = policy_dir;
		/* before anything is attached: a broken policy directory refuses to start */
		if (enforce_load_dir(D.policy_dir, &changed, err, sizeof(err)) < 0) {
			err_msg("%s", err);
			return EX_FAIL;
		}
	}
	G.cfg.daemon = 1;
	PT = calloc(PT_SIZE, sizeof(*PT));
	if (!PT) {
		err_msg("daemon: out of memory");
		return EX_FAIL;
	}
	sb_init(&ctl);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	{
		const char *sd = o->state_dir ? o->state_dir : "/run/dpndncy-daemon";

		if (sd[0] == '/')
			snprintf(state_dir, sizeof(state_dir), "%s", sd);
		else if (!getcwd(state_dir, sizeof(state_dir) - 512) ||
			 snprintf(state_dir + strlen(state_dir), 512, "/%s", sd) < 0)
			snprintf(state_dir, sizeof(state_dir), "%s", sd);
	}
	if (agent_state_claim(state_dir, &old_pid, old_pin, sizeof(old_pin)) < 0)
		return EX_FAIL;
	/*
	 * enforce: pinned links, so that the verdicts outlive a crash of this process (jobs are then
	 * unobserved, never unconfined) until the next daemon takes over or `stop` removes them
	 */
	D.s = agent_session_start(D.enforce, err, sizeof(err));
	if (!D.s) {
		err_msg("%s", err);
		return EX_FAIL;
	}
	if (agent_state_write(state_dir, D.s) < 0) {
		err_msg("cannot write the state file in %s: %s", state_dir, strerror(errno));
		agent_session_stop(D.s);
		return EX_FAIL;
	}
	/* armed: a dead predecessor's enforcement (ANDed with ours until now) can go */
	if (old_pin[0])
		unpin_all(old_pin);
	EH = (struct event_hooks){
		.route = job_route, .fork = job_on_fork, .exit = job_on_exit, .deny = deny_counting, .tamper = job_on_tamper};

	ctl_begin("daemon-start");
	sb_printf(&ctl, ",\"pid\":%d,\"mode\":\"%s\"", (int)getpid(), D.enforce ? "enforce" : "observe");
	ctl_str_or_null("jobs_dir", D.jobs_dir);
	ctl_str_or_null("policy_dir", D.policy_dir);
	ctl_str_or_null("cgroup", D.enforce ? enforce_cgroup_path() : NULL);
	ctl_str_or_null("log", G.out.path);
	sb_puts(&ctl, ",\"attach\":");
	attach_json(agent_session_attach(D.s), &ctl);
	ctl_str_or_null("kernel", agent_session_kernel(D.s));
	if (D.enforce)
		sb_printf(&ctl, ",\"policies\":%d", enforce_policies());
	ctl_str_or_null("state_dir", state_dir);
	if (old_pid) {
		/* said loudly: jobs ran unobserved (and, in enforce mode, under the old verdicts) */
		sb_printf(&ctl, ",\"predecessor\":{\"pid\":%ld,\"pins_removed\":", old_pid);
		sb_json_cstr(&ctl, old_pin);
		sb_putc(&ctl, '}');
		err_msg("a previous daemon (pid %ld) died without stopping; its pinned programs%s%s are removed now",
			old_pid, old_pin[0] ? " in " : "", old_pin);
	}
	ctl_end();

	while (!stop_sig) {
		uint64_t now;

		agent_session_poll(D.s, 100);
		out_flush(&G.out);
		for (int i = 0; i < njobs_hi; i++)
			if (J[i].used)
				out_flush(&J[i].out);
		if (hup_sig) {
			hup_sig = 0;
			if (D.policy_dir)
				reload();
			else
				ctl_error("SIGHUP: no --policy-dir to reload");
		}
		now = now_boottime_ns();
		if (now >= next_sweep) {
			sweep();
			next_sweep = now + SWEEP_NS;
		}
		for (int i = 0; i < njobs_hi; i++)
			if (J[i].used && !J[i].nlive && J[i].idle_since && now - J[i].idle_since >= D.idle_ns)
				job_close(i, "idle");
		if (now >= next_stats) {
			stats_line();
			next_stats = now + 1000000000ull;
		}
	}
	/* stop: every job's log is closed complete, then the daemon's own */
	agent_session_drain(D.s);
	{
		int closed = 0;

		for (int i = 0; i < njobs_hi; i++)
			if (J[i].used) {
				job_close(i, "daemon-stop");
				closed++;
			}
		memset(&EH, 0, sizeof(EH)); /* the host log's stop record is the agent's own */
		ctl_begin("daemon-stop");
		sb_printf(&ctl, ",\"jobs_closed\":%d,\"jobs_started\":%llu", closed, (unsigned long long)D.jobs_started);
		sb_puts(&ctl, ",\"events\":{");
		for (int k = 0; k < SK_COUNT; k++)
			sb_printf(&ctl, "%s\"%s\":%llu", k ? "," : "", stat_kind_names[k], (unsigned long long)G.events[k]);
		{
			uint64_t drops[DP_KIND_MAX], lost = 0;

			agent_session_drops(D.s, drops);
			for (int k = 0; k < DP_KIND_MAX; k++)
				lost += drops[k];
			sb_printf(&ctl, "},\"lost\":%llu", (unsigned long long)lost);
		}
		ctl_end();
	}
	agent_session_stop(D.s);
	agent_state_clear(state_dir);
	free(PT);
	sb_free(&ctl);
	return 0;
}
