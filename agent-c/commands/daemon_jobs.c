/*
 * Daemon mode, its jobs (agent-c/commands/daemon.c says what the daemon does): the process
 * table (pid -> job), a job's identity and policy, its log opened and closed, the event hooks
 * that route each record to its job's log.
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
#include "records/runtimes.h"
#include "records/events.h"
#include "features/enforce_agent.h"
#include "commands/commands.h"
#include "commands/session.h"
#include "commands/state.h"
#include "commands/daemon_int.h"
#include "features/integrity.h"

struct job J[MAX_JOBS];
int njobs_hi;             /* J[0..njobs_hi) may be used */
static int last_job = -1;        /* the job of the previous record: most records follow their neighbour */

struct pt_ent *PT;
static uint32_t pt_dead;         /* deleted slots: lookups walk over them until the table is rebuilt */
uint64_t pt_rebuilds;

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

void job_assign_policy(struct job *j)
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

/* a record's job: a container's cgroup still "pending" in the kernel when the record was made
 * has its job found by now (runtimes.c), or none; "unknown" is no job's log */
static uint32_t job_of_hdr(const struct dp_hdr *h)
{
	uint32_t j;

	if (h->job < DP_JOB_UNKNOWN)
		return h->job;
	j = container_job(h->cgroup, h->pid);
	return j >= DP_JOB_UNKNOWN ? 0 : j;
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
	key = step_name(job_of_hdr(h), &kn);
	snprintf(j->key, sizeof(j->key), "%.*s", (int)(key ? kn : 0), key ? key : "");
	if (!j->key[0])
		snprintf(j->key, sizeof(j->key), "job-%u", job_of_hdr(h));
	for (int m = 0; m < G.cfg.njob_markers; m++) {
		size_t ml = strlen(G.cfg.job_markers[m]);

		if (!strncmp(j->key, G.cfg.job_markers[m], ml) && j->key[ml] == '=')
			snprintf(j->platform, sizeof(j->platform), "%s", G.cfg.job_platform[m]);
	}
	j->id = job_of_hdr(h);
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

void job_close(int idx, const char *reason)
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

/* ---- event hooks (agent-c/records/events.c) ---- */

struct output *job_route(const struct dp_hdr *h)
{
	uint32_t job = job_of_hdr(h);
	int idx;

	if (!job)
		return NULL;
	idx = job_find(job);
	if (idx < 0 && (idx = job_open(h)) < 0)
		return NULL;
	if (h->pid)
		pt_put(h->pid, idx);
	return &J[idx].out;
}

void job_on_fork(const struct dp_hdr *parent, uint32_t child)
{
	uint32_t job = job_of_hdr(parent);
	int idx;

	if (!job)
		return;
	idx = job_find(job);
	if (idx < 0 && (idx = job_open(parent)) < 0)
		return;
	pt_put(parent->pid, idx);
	pt_put(child, idx);
}

void job_on_exit(const struct dp_hdr *h)
{
	int at = pt_find(h->pid);

	if (at >= 0)
		pt_drop(at);
}

void job_on_deny(const struct dp_hdr *h, struct output *o, const char *line, size_t n)
{
	int idx = job_find(job_of_hdr(h));

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

void job_on_tamper(uint64_t real_ns, const char *body, size_t n)
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

void sweep(void)
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
