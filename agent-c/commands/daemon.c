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
#include "features/integrity.h"

#define MAX_JOBS 1024
#define PT_SIZE (1 << 17)   /* tracked processes (open addressing, power of two) */
#define SWEEP_NS 2000000000ull

struct job {
	int used;
	uint32_t id;                 /* kernel job id (step_names key) */
	char key[DP_STEP_MAX];       /* "NAME=value" */
	char platform[40];
	char project[256], name[256];
	int identity;                /* project / name read from a process's environment */
	int id_tries;
	const char *policy;          /* policy file (relative), "default" */
	int slot;
	struct output out;
	uint64_t start_real_ns;
	uint64_t idle_since;         /* boottime ns when the last process went; 0 while alive */
	uint32_t nlive;
	uint32_t first_pid;
	uint64_t cgroup;
	uint64_t drops0[DP_KIND_MAX];
};

static struct job J[MAX_JOBS];
static int njobs_hi;             /* J[0..njobs_hi) may be used */
static int last_job = -1;        /* the job of the previous record: most records follow their neighbour */

struct pt_ent {
	uint32_t pid;
	int16_t job;
	uint8_t state;               /* 0 empty, 1 used, 2 deleted */
	uint8_t pad;
};
static struct pt_ent *PT;
static uint32_t pt_dead;         /* deleted slots: lookups walk over them until the table is rebuilt */
static uint64_t pt_rebuilds;

static struct {
	const char *jobs_dir;
	const char *policy_dir;
	uint64_t idle_ns;
	int enforce;
	struct session *s;
	uint64_t jobs_started, jobs_ended, reloads, reload_failures, deny, pt_full;
	uint64_t deny_unlogged;      /* denies of processes of no job: in no log, only in the control stream */
} D;

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

static struct sbuf ctl;

static void ctl_begin(const char *type)
{
	char ts[40];

	fmt_ts(ts, now_realtime_ns());
	sb_reset(&ctl);
	sb_printf(&ctl, "{\"type\":\"%s\",\"ts\":\"%s\"", type, ts);
}

static void ctl_end(void)
{
	sb_puts(&ctl, "}\n");
	/* stdout is the supervisor's pipe; a supervisor that went away must not stop the tracing */
	if (fwrite(ctl.p, 1, ctl.len, stdout) != ctl.len || fflush(stdout) != 0)
		clearerr(stdout);
}

static void ctl_str_or_null(const char *key, const char *v)
{
	sb_key(&ctl, key);
	if (v && v[0])
		sb_json_cstr(&ctl, v);
	else
		sb_puts(&ctl, "null");
}

static void ctl_error(const char *msg)
{
	ctl_begin("error");
	sb_key(&ctl, "message");
	sb_json_cstr(&ctl, msg);
	ctl_end();
}

/* ---- process table: pid -> job ---- */

static uint32_t pt_hash(uint32_t pid)
{
	return (pid * 2654435761u) & (PT_SIZE - 1);
}

static int pt_find(uint32_t pid)
{
	for (uint32_t i = pt_hash(pid), n = 0; n < PT_SIZE; i = (i + 1) & (PT_SIZE - 1), n++) {
		if (PT[i].state == 0)
			return -1;
		if (PT[i].state == 1 && PT[i].pid == pid)
			return (int)i;
	}
	return -1;
}

static void pt_put(uint32_t pid, int job)
{
	int at = pt_find(pid);

	if (at >= 0) {
		if (PT[at].job == job)
			return;
		/* a reused pid of another job */
		if (J[PT[at].job].used && J[PT[at].job].nlive)
			J[PT[at].job].nlive--;
		PT[at].job = (int16_t)job;
		J[job].nlive++;
		J[job].idle_since = 0;
		return;
	}
	for (uint32_t i = pt_hash(pid), n = 0; n < PT_SIZE; i = (i + 1) & (PT_SIZE - 1), n++) {
		if (PT[i].state != 1) {
			if (PT[i].state == 2)
				pt_dead--;
			PT[i].pid = pid;
			PT[i].job = (int16_t)job;
			PT[i].state = 1;
			J[job].nlive++;
			J[job].idle_since = 0;
			return;
		}
	}
	D.pt_full++; /* the job then ends by idleness of the processes we do track */
}

static void pt_drop(int at)
{
	struct job *j = &J[PT[at].job];

	PT[at].state = 2;
	pt_dead++;
	if (j->used && j->nlive && --j->nlive == 0)
		j->idle_since = now_boottime_ns();
}

/*
 * Deleted slots make lookups longer (a miss walks to the next empty slot): once they are an
 * eighth of the table, start afresh. New processes reuse deleted slots only where their probe
 * starts, so with pids spread over the table the deleted share still creeps up.
 */
static void pt_rebuild(void)
{
	struct pt_ent *old = PT, *fresh = calloc(PT_SIZE, sizeof(*PT));

	if (!fresh)
		return; /* try again at the next sweep */
	PT = fresh;
	pt_dead = 0;
	pt_rebuilds++;
	for (uint32_t i = 0; i < PT_SIZE; i++) {
		if (old[i].state != 1)
			continue;
		for (uint32_t k = pt_hash(old[i].pid), n = 0; n < PT_SIZE; k = (k + 1) & (PT_SIZE - 1), n++) {
			if (PT[k].state == 0) {
				PT[k] = old[i];
				break;
			}
		}
	}
	free(old);
}

/* ---- jobs ---- */

static void sanitize(char *out, size_t n, const char *in)
{
	size_t k = 0;

	for (size_t i = 0; in[i] && k + 1 < n; i++) {
		char c = in[i];

		out[k++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
				   c == '_' || c == '.'
			       ? c
			       : '_';
	}
	out[k] = 0;
}

/* first of the configured variables present in environ (NUL-separated, n bytes) */
static int env_pick(const char *env, size_t n, char vars[][64], int nvars, const char *dflt, char *out, size_t outn)
{
	const char *one[1] = {dflt};
	int count = nvars ? nvars : 1;

	for (int v = 0; v < count; v++) {
		const char *name = nvars ? vars[v] : one[0];
		size_t nl = strlen(name);

		for (size_t off = 0; off < n;) {
			const char *s = env + off;
			size_t sl = strnlen(s, n - off);

			if (sl > nl && !strncmp(s, name, nl) && s[nl] == '=' && s[nl + 1]) {
				snprintf(out, outn, "%.*s", (int)(sl - nl - 1), s + nl + 1);
				return 1;
			}
			off += sl + 1;
		}
	}
	return 0;
}

/* project and job name from the environment of pid; 1 when read */
static int read_identity(struct job *j, uint32_t pid)
{
	char path[64];
	int fd;
	char *buf;
	ssize_t n, got = 0;
	const size_t cap = 1 << 20;

	snprintf(path, sizeof(path), "/proc/%u/environ", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return 0;
	}
	while ((n = read(fd, buf + got, cap - (size_t)got)) > 0 && (size_t)(got += n) < cap)
		;
	close(fd);
	if (got <= 0) { /* a zombie, or a kernel thread */
		free(buf);
		return 0;
	}
	env_pick(buf, (size_t)got, G.cfg.id_project, G.cfg.nid_project, "DPNDNCY_PROJECT", j->project,
		 sizeof(j->project));
	env_pick(buf, (size_t)got, G.cfg.id_name, G.cfg.nid_name, "DPNDNCY_JOB_NAME", j->name, sizeof(j->name));
	free(buf);
	return 1;
}

/* the identity the kernel read at the job's first exec (values cut at 63 bytes): for jobs
 * whose processes are gone before their environment could be read */
static int kernel_identity(struct job *j)
{
	struct dp_job_ident ji;
	int fd = bpf_exec_map_fd(agent_session_bpf(D.s), "job_ident");
	const char *v;
	size_t n = 0;

	if (fd < 0 || bpf_map_lookup_elem(fd, &j->id, &ji) < 0)
		return 0;
	if (ji.project && (v = step_name(ji.project, &n)))
		snprintf(j->project, sizeof(j->project), "%.*s", (int)n, v);
	if (ji.name && (v = step_name(ji.name, &n)))
		snprintf(j->name, sizeof(j->name), "%.*s", (int)n, v);
	return ji.project || ji.name;
}

static void job_assign_policy(struct job *j)
{
	if (!D.enforce)
		return;
	j->slot = enforce_slot_for(j->project, j->name, &j->policy);
	if (enforce_set_job(j->id, j->slot) < 0) {
		char msg[600];

		snprintf(msg, sizeof(msg), "job %s: cannot set its policy (%s): it stays on the default policy", j->key,
			 strerror(errno));
		ctl_error(msg);
	}
}

static void job_json(struct sbuf *b, const struct job *j, int with_ci)
{
	sb_puts(b, ",\"job\":{\"key\":");
	sb_json_cstr(b, j->key);
	sb_puts(b, ",\"project\":");
	if (j->project[0])
		sb_json_cstr(b, j->project);
	else
		sb_puts(b, "null");
	sb_puts(b, ",\"name\":");
	if (j->name[0])
		sb_json_cstr(b, j->name);
	else
		sb_puts(b, "null");
	sb_puts(b, ",\"policy\":");
	if (D.enforce)
		sb_json_cstr(b, j->policy ? j->policy : "default");
	else
		sb_puts(b, "null");
	sb_puts(b, "}");
	if (with_ci) {
		/* the job's identity as far as the daemon knows it (the supervisor may know more) */
		sb_puts(b, ",\"ci\":{\"platform\":");
		sb_json_cstr(b, j->platform[0] ? j->platform : "self-hosted");
		if (j->project[0]) {
			sb_puts(b, ",\"repository\":");
			sb_json_cstr(b, j->project);
		}
		if (j->name[0]) {
			sb_puts(b, ",\"jobName\":");
			sb_json_cstr(b, j->name);
		}
		sb_puts(b, ",\"jobId\":");
		sb_json_cstr(b, j->key);
		sb_puts(b, "}");
	}
}

static int job_find(uint32_t id)
{
	if (last_job >= 0 && J[last_job].used && J[last_job].id == id)
		return last_job;
	for (int i = 0; i < njobs_hi; i++)
		if (J[i].used && J[i].id == id)
			return last_job = i;
	return -1;
}

static int job_open(const struct dp_hdr *h)
{
	const char *key;
	size_t kn = 0;
	struct job *j;
	char err[600], fname[200], path[4200];
	struct sbuf js;
	int idx = -1;

	for (int i = 0; i < MAX_JOBS; i++)
		if (!J[i].used) {
			idx = i;
			break;
		}
	if (idx < 0) {
		snprintf(err, sizeof(err), "more than %d jobs at once: records of a new job are not logged", MAX_JOBS);
		ctl_error(err);
		return -1;
	}
	j = &J[idx];
	memset(j, 0, sizeof(*j));
	key = step_name(h->job, &kn);
	snprintf(j->key, sizeof(j->key), "%.*s", (int)(key ? kn : 0), key ? key : "");
	if (!j->key[0])
		snprintf(j->key, sizeof(j->key), "job-%u", h->job);
	for (int m = 0; m < G.cfg.njob_markers; m++) {
		size_t ml = strlen(G.cfg.job_markers[m]);

		if (!strncmp(j->key, G.cfg.job_markers[m], ml) && j->key[ml] == '=')
			snprintf(j->platform, sizeof(j->platform), "%s", G.cfg.job_platform[m]);
	}
	j->id = h->job;
	j->first_pid = h->pid;
	j->cgroup = h->cgroup;
	/* dated by the record that opened it, so that no record of the job precedes its start */
	j->start_real_ns = (uint64_t)((int64_t)h->ts + G.boot_to_real);
	if (!h->ts || j->start_real_ns > now_realtime_ns())
		j->start_real_ns = now_realtime_ns();
	j->policy = "default";
	j->identity = read_identity(j, h->pid) || kernel_identity(j);
	j->id_tries = 1;
	sanitize(fname, sizeof(fname) - 40, j->key);
	snprintf(path, sizeof(path), "%s/%s-%llu.ndjson", D.jobs_dir, fname, (unsigned long long)j->start_real_ns);
	if (out_open(&j->out, path, 1, err, sizeof(err)) < 0) {
		ctl_error(err);
		return -1;
	}
	/* jobs of many projects share the host: argv in one job's log is nobody else's business */
	if (fchmod(j->out.fd, 0600) < 0) {
		snprintf(err, sizeof(err), "cannot restrict %s to its owner: %s", path, strerror(errno));
		ctl_error(err);
	}
	j->used = 1;
	if (idx >= njobs_hi)
		njobs_hi = idx + 1;
	agent_session_drops(D.s, j->drops0);
	job_assign_policy(j);
	sb_init(&js);
	job_json(&js, j, 1);
	write_agent_start_to(&j->out, j->start_real_ns, agent_session_attach(D.s), agent_session_kernel(D.s), js.p);
	sb_free(&js);
	D.jobs_started++;

	ctl_begin("job-start");
	ctl_str_or_null("job", j->key);
	ctl_str_or_null("log", j->out.path);
	sb_printf(&ctl, ",\"pid\":%u", h->pid);
	{
		char cg[4096];

		ctl_str_or_null("cgroup", cgroup_path_of(h->cgroup, h->pid, cg, sizeof(cg)) == 0 ? cg : NULL);
	}
	{
		struct sbuf c;

		sb_init(&c);
		container_json(&c, h->cgroup, h->pid); /* ,"container":{..} or nothing */
		if (c.len)
			sb_put(&ctl, c.p, c.len);
		else
			sb_puts(&ctl, ",\"container\":null");
		sb_free(&c);
	}
	ctl_str_or_null("project", j->project);
	ctl_str_or_null("name", j->name);
	ctl_str_or_null("policy", D.enforce ? j->policy : NULL);
	ctl_end();
	return last_job = idx;
}

static void job_close(int idx, const char *reason)
{
	struct job *j = &J[idx];
	uint64_t drops[DP_KIND_MAX], lost = 0;
	struct sbuf js, stats;
	char sha[65];

	agent_session_drops(D.s, drops);
	for (int k = 0; k < DP_KIND_MAX; k++) {
		/* host-wide losses while the job ran: they may have been this job's */
		drops[k] -= j->drops0[k];
		lost += drops[k];
	}
	sb_init(&js);
	sb_init(&stats);
	job_json(&js, j, 0);
	write_agent_stop_to(&j->out, j->start_real_ns, drops, js.p, &stats);
	out_sha_hex(&j->out, sha);
	lost += j->out.lost_lines;
	ctl_begin("job-end");
	ctl_str_or_null("job", j->key);
	ctl_str_or_null("log", j->out.path);
	ctl_str_or_null("reason", reason);
	ctl_str_or_null("project", j->project);
	ctl_str_or_null("name", j->name);
	sb_printf(&ctl, ",\"complete\":%s,\"events\":{", lost ? "false" : "true");
	for (int k = 0; k < SK_COUNT; k++)
		sb_printf(&ctl, "%s\"%s\":%llu", k ? "," : "", stat_kind_names[k], (unsigned long long)j->out.kind_written[k]);
	sb_printf(&ctl, "},\"lost\":%llu,\"duration_s\":%.3f", (unsigned long long)lost,
		  (double)(now_realtime_ns() - j->start_real_ns) / 1e9);
	/* the hash of every byte before the stop record, as in the stop record itself */
	{
		const char *p = strstr(stats.p ? stats.p : "", "\"log_sha256\":\"");

		if (p)
			sb_printf(&ctl, ",\"log_sha256\":\"%.64s\"", p + 14);
	}
	ctl_end();
	sb_free(&js);
	sb_free(&stats);
	out_close(&j->out);
	if (D.enforce)
		enforce_set_job(j->id, 0);
	for (uint32_t i = 0; i < PT_SIZE; i++)
		if (PT[i].state == 1 && PT[i].job == idx) {
			PT[i].state = 2;
			pt_dead++;
		}
	j->used = 0;
	if (last_job == idx)
		last_job = -1;
	D.jobs_ended++;
}

/* ---- event hooks (agent-c/events.c) ---- */

static struct output *route(const struct dp_hdr *h)
{
	int idx;

	if (!h->job)
		return NULL;
	idx = job_find(h->job);
	if (idx < 0 && (idx = job_open(h)) < 0)
		return NULL;
	if (h->pid)
		pt_put(h->pid, idx);
	return &J[idx].out;
}

static void on_fork(const struct dp_hdr *parent, uint32_t child)
{
	int idx;

	if (!parent->job)
		return;
	idx = job_find(parent->job);
	if (idx < 0 && (idx = job_open(parent)) < 0)
		return;
	pt_put(parent->pid, idx);
	pt_put(child, idx);
}

static void on_exit_rec(const struct dp_hdr *h)
{
	int at = pt_find(h->pid);

	if (at >= 0)
		pt_drop(at);
}

static void on_deny(const struct dp_hdr *h, struct output *o, const char *line, size_t n)
{
	int idx = job_find(h->job);

	ctl_begin("deny");
	if (idx >= 0) {
		ctl_str_or_null("job", J[idx].key);
		ctl_str_or_null("project", J[idx].project);
		ctl_str_or_null("name", J[idx].name);
	}
	(void)o;
	sb_puts(&ctl, ",\"record\":");
	sb_put(&ctl, line, n);
	sb_putc(&ctl, '}');
	ctl_end();
}

static void on_tamper(uint64_t real_ns, const char *body, size_t n)
{
	struct sbuf l;

	sb_init(&l);
	for (int i = 0; i < njobs_hi; i++) {
		if (!J[i].used)
			continue;
		out_begin(&J[i].out, &l, "tamper", real_ns);
		sb_put(&l, body, n);
		out_commit(&J[i].out, &l, SK_COUNT);
	}
	sb_free(&l);
}

/* ---- periodic work ---- */

static void sweep(void)
{
	if (pt_dead > PT_SIZE / 8)
		pt_rebuild();
	/* processes whose exit we missed (lost records): gone from /proc means gone */
	for (uint32_t i = 0; i < PT_SIZE; i++)
		if (PT[i].state == 1 && kill((pid_t)PT[i].pid, 0) < 0 && errno == ESRCH)
			pt_drop((int)i);
	for (int i = 0; i < njobs_hi; i++) {
		struct job *j = &J[i];

		/* the first process may have been gone already: try the others */
		if (j->used && !j->identity && j->id_tries < 20) {
			for (uint32_t k = 0; k < PT_SIZE && !j->identity; k++)
				if (PT[k].state == 1 && PT[k].job == i)
					j->identity = read_identity(j, PT[k].pid);
			j->id_tries++;
			if (j->identity)
				job_assign_policy(j);
		}
	}
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
	on_deny(h, o, line, n);
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
		.route = route, .fork = on_fork, .exit = on_exit_rec, .deny = deny_counting, .tamper = on_tamper};

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
