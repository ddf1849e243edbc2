/* Ring buffer records -> NDJSON lines (schema/event.v1.json). */
#include <stdio.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "base/output.h"
#include "base/config.h"
#include "kernel/mounts.h"
#include "kernel/bpfload.h"
#include "records/dnsparse.h"
#include "records/proctab.h"
#include "records/steps.h"
#include "records/containers.h"
#include "records/container_libc.h"
#include "records/runtimes.h"
#include "records/events.h"

struct agent_ctx G;
struct event_hooks EH;
struct record_features RF;

/* the log the record being built goes to: G.out, or in daemon mode its job's (NULL: none) */
static struct output *CUR = &G.out;

const char *const stat_kind_names[SK_COUNT] = {"exec", "exit", "connect", "file", "dns", "agent"};

static struct sbuf line;

static uint64_t to_real(uint64_t boot_ns)
{
	return (uint64_t)((int64_t)boot_ns + G.boot_to_real);
}

static void put_common(struct sbuf *l, uint32_t pid, uint32_t tid, uint32_t ppid, uint32_t uid, const char *comm,
		       size_t commlen, uint64_t cgroup, uint32_t step)
{
	const char *sname;
	size_t sn = 0;

	SB_KEY_U64(l, ",\"pid\":", pid);
	SB_KEY_U64(l, ",\"tid\":", tid);
	SB_KEY_U64(l, ",\"ppid\":", ppid);
	SB_KEY_U64(l, ",\"uid\":", uid);
	sb_puts(l, ",\"comm\":");
	sb_json_str(l, comm, strnlen(comm, commlen));
	SB_KEY_U64(l, ",\"cgroup\":", cgroup);
	sb_puts(l, ",\"step\":");
	if (!step)
		step = container_step(cgroup, pid); /* a Docker container: its requester's (runtimes.c) */
	sname = step_name(step, &sn);
	if (sname)
		sb_json_str(l, sname, sn);
	else
		sb_puts(l, "null");
	container_json(l, cgroup, pid);
}

static uint32_t hdr_ppid(const struct dp_hdr *h)
{
	if (!(h->flags & DP_HF_NO_PPID))
		return h->ppid;
	return h->pid ? proc_ppid_lookup(h->pid) : 0;
}

static void begin(const char *kind, const struct dp_hdr *h, uint32_t *ppid_out)
{
	uint32_t ppid = hdr_ppid(h);

	const char *comm = h->comm, *pcomm = NULL;

	/* a non-leader thread (dig's isc workers, io_uring's iou-wrk) is named by its process */
	if (h->tid != h->pid && h->pid && proc_get(h->pid, NULL, &pcomm, NULL) == 0 && pcomm[0])
		comm = pcomm;
	CUR = EH.route ? EH.route(h) : &G.out;
	if (CUR)
		out_begin(CUR, &line, kind, to_real(h->ts));
	else {
		/* no job's log takes it: built for the control stream's deny line only (no seq) */
		char ts[40];

		fmt_ts(ts, to_real(h->ts));
		sb_reset(&line);
		sb_printf(&line, "{\"v\":1,\"kind\":\"%s\",\"ts\":\"%s\"", kind, ts);
	}
	put_common(&line, h->pid, h->tid, ppid, h->uid, comm, sizeof(h->comm), h->cgroup, h->step);
	if (ppid_out)
		*ppid_out = ppid;
}

static void commit(enum stat_kind k)
{
	if (!CUR) {
		G.unattributed++;
		return;
	}
	out_commit(CUR, &line, k);
	G.events[k]++;
}

static void on_exec(const struct dp_exec *e)
{
	uint32_t ppid;
	size_t off = 0, alen = e->args_len > DP_ARGS_MAX ? DP_ARGS_MAX : e->args_len;
	int argc = 0, truncated = e->args_total > e->args_len;
	size_t flen = strnlen(e->filename, sizeof(e->filename));
	char fname[DP_FNAME_MAX + 1];

	memcpy(fname, e->filename, flen);
	fname[flen] = 0;
	begin("exec", &e->h, &ppid);
	proc_set(e->h.pid, ppid, e->h.comm, fname);
	if (RF.cgroup_enforced && RF.cgroup_enforced(e->h.cgroup))
		proc_set_enforced(e->h.pid);
	containers_on_exec(e->h.pid);
	sb_key(&line, "filename");
	sb_json_str(&line, e->filename, flen);
	sb_puts(&line, ",\"argv\":[");
	while (off < alen) {
		size_t n = strnlen(e->args + off, alen - off);

		if (argc == 16) {
			truncated = 1;
			break;
		}
		if (argc)
			sb_putc(&line, ',');
		sb_json_str(&line, e->args + off, n);
		argc++;
		off += n + 1;
	}
	sb_putc(&line, ']');
	if (truncated)
		sb_puts(&line, ",\"truncated\":true");
	sb_puts(&line, ",\"ancestry\":");
	proc_ancestry(&line, e->h.pid, ppid);
	commit(SK_EXEC);
}

static void on_exit_ev(const struct dp_exit *e)
{
	unsigned sig = e->exit_code & 0x7f, status = (e->exit_code >> 8) & 0xff;

	begin("exit", &e->h, NULL);
	sb_printf(&line, ",\"code\":%u", sig ? 128 + sig : status);
	if (sig)
		sb_printf(&line, ",\"signal\":%u", sig);
	commit(SK_EXIT);
	if (EH.exit)
		EH.exit(&e->h);
	proc_exit(e->h.pid);
	if (G.wait_pid && e->h.pid == G.wait_pid)
		G.wait_exit_seen = 1;
}

static void on_fork(const struct dp_fork *e)
{
	const char *fn = NULL;
	char comm[17];

	memcpy(comm, e->h.comm, 16);
	comm[16] = 0;
	proc_get(e->h.pid, NULL, NULL, &fn);
	proc_set(e->child_pid, e->h.pid, comm, fn);
	if (RF.cgroup_enforced && RF.cgroup_enforced(e->h.cgroup)) {
		proc_set_enforced(e->h.pid);
		proc_set_enforced(e->child_pid); /* a fork child starts in its parent's cgroup */
	}
	G.forks++;
	if (EH.fork)
		EH.fork(&e->h, e->child_pid);
}

static void on_connect(const struct dp_connect *c)
{
	char addr[64];
	uint32_t ppid;

	begin("connect", &c->h, &ppid);
	fmt_addr(addr, sizeof(addr), c->family, c->addr);
	sb_printf(&line, ",\"proto\":\"%s\",\"family\":\"%s\",\"addr\":\"%s\",\"port\":%u,\"mapped\":%s",
		  c->proto == 6 ? "tcp" : c->proto == 17 ? "udp" : "other", c->family == 10 ? "inet6" : "inet", addr,
		  c->port, c->mapped ? "true" : "false");
	if (c->has_result)
		sb_printf(&line, ",\"result\":%d", c->result);
	else
		sb_puts(&line, ",\"result\":null");
	sb_printf(&line, ",\"op\":\"%s\",\"source\":\"%s\",\"verdict\":\"%s\"",
		  c->op == DP_OP_SENDMSG ? "sendmsg" : c->op == DP_OP_SOCKET ? "socket" : c->op == DP_OP_BIND ? "bind" : "connect",
		  c->source == DP_SRC_TRACEPOINT ? "tracepoint" : "cgroup", c->verdict ? "allow" : "deny");
	if (c->rule) {
		sb_puts(&line, ",\"rule\":");
		sb_json_cstr(&line, RF.rule_name(c->rule));
	}
	if (c->pending) /* flushed at stop, its result still unknown (schema: pending) */
		sb_puts(&line, ",\"pending\":true");
	sb_puts(&line, ",\"ancestry\":");
	proc_ancestry(&line, c->h.pid, ppid);
	/* a deny is reported even when no log takes the record (daemon: a process of no job) */
	if (EH.deny && !c->verdict)
		EH.deny(&c->h, CUR, line.p, line.len);
	commit(SK_CONNECT);
}

static void on_file(const struct dp_file *f)
{
	char path[DP_PATH_BUF + 8];
	const char *comps[64];
	size_t len = f->path_len > DP_PATH_BUF ? DP_PATH_BUF : f->path_len, off = 0, w = 0;
	int n = 0;
	const char *rule, *exe = NULL, *comm = NULL;
	char commbuf[17];
	uint32_t ppid;

	while (off < len && n < 64) {
		size_t l = strnlen(f->path + off, len - off);

		comps[n++] = f->path + off;
		off += l + 1;
	}
	for (int i = n - 1; i >= 0; i--) {
		size_t l = strnlen(comps[i], (size_t)(f->path + len - comps[i]));

		if (w + l + 2 >= sizeof(path))
			break;
		path[w++] = '/';
		memcpy(path + w, comps[i], l);
		w += l;
	}
	if (w == 0)
		path[w++] = '/';
	path[w] = 0;

	/* O_PATH fds cannot read, O_DIRECTORY ones only list: not a secret read */
	if (f->flags & (010000000 /* O_PATH */ | 0200000 /* O_DIRECTORY */)) {
		G.file_filtered++;
		return;
	}
	memcpy(commbuf, f->h.comm, 16);
	commbuf[16] = 0;
	comm = commbuf;
	proc_get(f->h.pid, NULL, NULL, &exe);
	rule = config_check_file(&G.cfg, path, exe, comm, f->h.pid);
	if (!rule) {
		G.file_filtered++;
		return;
	}
	begin("file", &f->h, &ppid);
	sb_key(&line, "path");
	sb_json_str(&line, path, w);
	sb_printf(&line, ",\"flags\":%u,\"rule\":", f->flags);
	sb_json_cstr(&line, rule);
	if (f->pflags & DP_FF_TRUNC)
		sb_puts(&line, ",\"path_truncated\":true");
	sb_puts(&line, ",\"ancestry\":");
	proc_ancestry(&line, f->h.pid, ppid);
	commit(SK_FILE);
	if (RF.on_file)
		RF.on_file(rule, path, f->flags, &f->h, ppid);
}

static void on_dns_libc(const struct dp_dns_libc *d)
{
	uint32_t ppid;
	unsigned n = d->naddr > DP_DNS_ADDRS ? DP_DNS_ADDRS : d->naddr;
	int first = 1;

	begin("dns", &d->h, &ppid);
	sb_key(&line, "name");
	sb_json_str(&line, d->name, strnlen(d->name, sizeof(d->name)));
	sb_printf(&line, ",\"qtype\":\"%s\",\"answers\":[",
		  d->family_hint == 2 ? "A" : d->family_hint == 10 ? "AAAA" : "ANY");
	for (unsigned i = 0; i < n; i++) {
		char a[64];

		/* glibc may repeat an address non-adjacently: print each once */
		int dup = 0;
		for (unsigned j = 0; j < i; j++)
			if (d->addrs[j].family == d->addrs[i].family && !memcmp(d->addrs[j].addr, d->addrs[i].addr, 16))
				dup = 1;
		if (dup)
			continue;
		fmt_addr(a, sizeof(a), d->addrs[i].family, d->addrs[i].addr);
		sb_printf(&line, "%s\"%s\"", first ? "" : ",", a);
		first = 0;
	}
	sb_puts(&line, "],\"source\":\"libc\"");
	if (d->ret != 0)
		sb_printf(&line, ",\"gai_error\":%d", d->ret);
	sb_puts(&line, ",\"ancestry\":");
	proc_ancestry(&line, d->h.pid, ppid);
	commit(SK_DNS);
}

static void on_dns_pkt(const struct dp_dns_pkt *p)
{
	struct dns_msg m;
	const uint8_t *data = p->data;
	size_t n = p->caplen > DP_PKT_MAX ? DP_PKT_MAX : p->caplen;
	char server[64], qt[16];
	uint32_t ppid;

	int truncated = p->caplen < p->len;

	/*
	 * Only the message the kernel found at a known boundary (UDP: the datagram; TCP: the
	 * length-prefixed message its stream tracking says starts in this segment, bpf/common.bpf.h).
	 * A TCP segment that merely looks like the start of a message may be bytes of a record.
	 */
	if (p->msg_off == DP_NO_MSG || p->msg_off >= n) {
		G.dns_unparsed++;
		return;
	}
	data += p->msg_off;
	n -= p->msg_off;
	if (n > p->msg_len)
		n = p->msg_len;
	else if (n < p->msg_len)
		truncated = 1;
	if (dns_parse(data, n, &m) < 0 || !m.is_response) {
		G.dns_unparsed++;
		return;
	}
	begin("dns", &p->h, &ppid);
	sb_key(&line, "name");
	sb_json_cstr(&line, m.name);
	sb_printf(&line, ",\"qtype\":\"%s\",\"answers\":[", dns_qtype_str(m.qtype, qt, sizeof(qt)));
	for (int i = 0; i < m.nans; i++)
		sb_printf(&line, "%s\"%s\"", i ? "," : "", m.answers[i]);
	fmt_addr(server, sizeof(server), p->family, p->saddr);
	sb_printf(&line, "],\"source\":\"packet\",\"rcode\":%u,\"server\":\"%s\",\"transport\":\"%s\"", m.rcode, server,
		  p->proto == 6 ? "tcp" : "udp");
	if (truncated)
		sb_puts(&line, ",\"truncated\":true");
	sb_puts(&line, ",\"ancestry\":");
	proc_ancestry(&line, p->h.pid, ppid);
	commit(SK_DNS);
}

int handle_event(void *ctx, void *data, size_t len)
{
	const struct dp_hdr *h = data;

	(void)ctx;
	if (len < sizeof(*h))
		return 0;
	switch (h->kind) {
	case DP_EXEC: {
		/* trimmed to the argv bytes used */
		const struct dp_exec *e = data;

		if (len >= offsetof(struct dp_exec, args) && e->args_len <= len - offsetof(struct dp_exec, args))
			on_exec(e);
		break;
	}
	case DP_EXIT:
		if (len >= sizeof(struct dp_exit))
			on_exit_ev(data);
		break;
	case DP_FORK:
		if (len >= sizeof(struct dp_fork))
			on_fork(data);
		break;
	case DP_CONNECT:
		if (len >= sizeof(struct dp_connect))
			on_connect(data);
		break;
	case DP_FILE: {
		/* trimmed to the path bytes used */
		const struct dp_file *f = data;

		if (len >= offsetof(struct dp_file, path) && f->path_len <= len - offsetof(struct dp_file, path))
			on_file(f);
		break;
	}
	case DP_DNS_LIBC:
		if (len >= sizeof(struct dp_dns_libc))
			on_dns_libc(data);
		break;
	case DP_DNS_PKT:
		if (len >= sizeof(struct dp_dns_pkt))
			on_dns_pkt(data);
		break;
	}
	return 0;
}

static uint64_t own_cgroup_id(void)
{
	char *s = read_file_str("/proc/self/cgroup", 8192), *p, path[4096], mnt[256];
	struct {
		uint64_t ino;
	} r = {0};

	if (!s)
		return 0;
	p = strstr(s, "0::");
	if (p && find_mount("cgroup2", NULL, mnt, sizeof(mnt))) {
		char *e = strchr(p + 3, '\n');
		struct stat st;

		if (e)
			*e = 0;
		snprintf(path, sizeof(path), "%s%s", mnt, p + 3);
		if (stat(path, &st) == 0)
			r.ino = st.st_ino;
	}
	free(s);
	return r.ino;
}

static void agent_line(const char *event, uint64_t ts)
{
	char me[64];

	snprintf(me, sizeof(me), "%s", PROG);
	out_begin(CUR, &line, "agent", ts);
	put_common(&line, G.self_pid, G.self_pid, (uint32_t)getppid(), (uint32_t)getuid(), me, sizeof(me),
		   own_cgroup_id(), 0);
	sb_printf(&line, ",\"event\":\"%s\",\"version\":", event);
	sb_json_cstr(&line, DPNDNCY_VERSION);
	sb_puts(&line, ",\"commit\":");
	sb_json_cstr(&line, DPNDNCY_COMMIT);
}

void write_agent_start(struct agent_ctx *g, const struct attach_info *ai, const char *kernel)
{
	write_agent_start_to(&G.out, g->start_real_ns, ai, kernel, NULL);
}

void write_agent_start_to(struct output *o, uint64_t ts, const struct attach_info *ai, const char *kernel,
			  const char *job_json)
{
	CUR = o;
	agent_line("start", ts);
	sb_puts(&line, ",\"kernel\":");
	sb_json_cstr(&line, kernel);
	sb_printf(&line, ",\"mode\":\"%s\",\"attach\":", G.cfg.mode == DP_MODE_ENFORCE ? "enforce" : "observe");
	attach_json(ai, &line);
	if (G.cfg.mode == DP_MODE_ENFORCE) {
		sb_puts(&line, ",\"enforce\":");
		RF.start_json(&line);
	}
	sb_puts(&line, ",\"policy_sha256\":null,\"config\":");
	if (G.cfg.path[0])
		sb_json_cstr(&line, G.cfg.path);
	else
		sb_puts(&line, "null");
	sb_printf(&line, ",\"ringbuf_mb\":%u", G.cfg.ringbuf_mb);
	containers_start_json(&line);
	steps_start_json(&G.cfg, &line, job_json != NULL);
	if (job_json)
		sb_puts(&line, job_json); /* daemon mode: ,"job":{..},"ci":{..} */
	commit(SK_AGENT);
	out_flush(CUR);
	CUR = &G.out;
}

/* {"events":{..},"lost":{..},"duration_s":..,"log_sha256":..,"complete":true} body, without braces */
static void stats_body(struct sbuf *b, const struct output *o, const uint64_t drops[DP_KIND_MAX], const char *sha,
		       double dur)
{
	sb_puts(b, "\"events\":{");
	for (int k = 0; k < SK_COUNT; k++)
		sb_printf(b, "%s\"%s\":%llu", k ? "," : "", stat_kind_names[k], (unsigned long long)o->kind_written[k]);
	if (o->kind_written[SK_COUNT]) /* tamper lines (agent-c/features/integrity.c) */
		sb_printf(b, ",\"tamper\":%llu", (unsigned long long)o->kind_written[SK_COUNT]);
	sb_printf(b,
		  "},\"lost\":{\"exec\":%llu,\"exit\":%llu,\"fork\":%llu,\"connect\":%llu,\"file\":%llu,\"dns\":%llu,"
		  "\"write\":%llu}",
		  (unsigned long long)drops[DP_EXEC], (unsigned long long)drops[DP_EXIT], (unsigned long long)drops[DP_FORK],
		  (unsigned long long)drops[DP_CONNECT], (unsigned long long)drops[DP_FILE],
		  (unsigned long long)(drops[DP_DNS_LIBC] + drops[DP_DNS_PKT]), (unsigned long long)o->lost_lines);
	sb_printf(b, ",\"duration_s\":%.3f,\"log_sha256\":\"%s\",\"complete\":true", dur, sha);
	/* the integrity checks watch the agent's own log; a daemon's job logs are sealed by the hash */
	if (o == &G.out) {
		int intact = RF.log_intact ? RF.log_intact() : 1;

		sb_printf(b, ",\"log_intact\":%s", intact ? "true" : "false");
		if (!intact)
			sb_puts(b, ",\"reason\":\"log-modified: the log file on disk is not what the agent wrote\"");
	}
	if (o == &G.out && G.cfg.mode == DP_MODE_ENFORCE)
		RF.stop_json(b);
	sb_printf(b, ",\"forks\":%llu,\"file_filtered\":%llu,\"dns_unparsed\":%llu", (unsigned long long)G.forks,
		  (unsigned long long)G.file_filtered, (unsigned long long)G.dns_unparsed);
}

void write_agent_stop(struct agent_ctx *g, const uint64_t drops[DP_KIND_MAX], struct sbuf *statsb)
{
	write_agent_stop_to(&G.out, g->start_real_ns, drops, NULL, statsb);
}

void write_agent_stop_to(struct output *o, uint64_t start_real_ns, const uint64_t drops[DP_KIND_MAX],
			 const char *job_json, struct sbuf *statsb)
{
	char sha[65];
	double dur = (double)(now_realtime_ns() - start_real_ns) / 1e9;
	uint64_t lost_before;
	struct sbuf body;

	CUR = o;
	out_flush(o);
	out_sha_hex(o, sha);
	sb_init(&body);
	stats_body(&body, o, drops, sha, dur);
	agent_line("stop", now_realtime_ns());
	sb_putc(&line, ',');
	sb_put(&line, body.p, body.len);
	if (job_json)
		sb_puts(&line, job_json);
	commit(SK_AGENT);
	lost_before = o->lost_lines;
	out_flush(o);
	CUR = &G.out;
	if (statsb) {
		/* the same figures as the stop record */
		sb_puts(statsb, "{\"running\":false,\"log\":");
		sb_json_cstr(statsb, o->path);
		sb_putc(statsb, ',');
		sb_put(statsb, body.p, body.len);
		sb_printf(statsb, ",\"stop_record_written\":%s", o->lost_lines != lost_before ? "false" : "true");
		sb_putc(statsb, '}');
	}
	sb_free(&body);
}
