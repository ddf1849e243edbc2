/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Enforce mode (included by connect.bpf.c, so these maps live in the same
 * object as the observe programs that report the verdicts).
 *
 * dp_enf_connect4/6, dp_enf_sendmsg4/6 are attached (multi) to the JOB's
 * cgroup only, never to the root. With multi attachment the kernel runs the
 * programs of the job's cgroup first, then the root's observe programs; every
 * program runs and any 0 makes the syscall fail with EPERM. The enforce
 * program leaves its verdict in `judged` (by thread), and the observe program
 * that runs right after puts it into the one connect record.
 *
 * dp_enf_dns (cgroup_skb/ingress, job cgroup) parses DNS responses from a
 * sanctioned resolver before the socket gets them: when the question is an
 * allowed name, every A/AAAA answer goes into `learned` before the program
 * returns, i.e. before the client can read the answer. No race.
 */
#ifndef DPNDNCY_ENFORCE_BPF_H
#define DPNDNCY_ENFORCE_BPF_H

#include "enforce.h"

#define ENF_MAX_CIDRS 16384
#define ENF_MAX_LEARNED 65536

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, ENF_MAX_CIDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct dp_lpm_any);
	__type(value, struct dp_enf_val);
} allow_any SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, ENF_MAX_CIDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct dp_lpm_port);
	__type(value, struct dp_enf_val);
} allow_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ENF_MAX_LEARNED);
	__type(key, struct dp_learn_key);
	__type(value, struct dp_learn_val);
} learned SEC(".maps");

/* set before load: the shortest time an answer's addresses stay allowed (seconds) */
const volatile __u32 learned_ttl_min = 120;

/* a learned entry that has not expired, or NULL */
static __always_inline struct dp_learn_val *learned_live(const struct dp_learn_key *k)
{
	struct dp_learn_val *v = bpf_map_lookup_elem(&learned, k);

	return v && v->expires > bpf_ktime_get_boot_ns() ? v : 0;
}

/* always-denied addresses (metadata, DoH) of a slot -> rule */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct dp_deny_key);
	__type(value, struct dp_enf_val);
} deny_addr SEC(".maps");

/*
 * Set before load in daemon mode: only processes of a CI job are judged. The cgroup the
 * daemon enforces on also holds the runner itself, other services of system.slice or the
 * pods of kubepods.slice; the default policy must never cut those off.
 */
const volatile __u8 judge_jobs_only = 0;

/* daemon mode: the current generation of the default policy's keys (agent-c/enforce.c enforce_apply) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} slot_default SEC(".maps");

/* the slot number the policy of a job is keyed by (a single-job agent: always 0, never reloaded) */
static __always_inline __u32 slot_of_job(__u32 job)
{
	__u32 zero = 0, *s;

	if (!track_jobs)
		return 0;
	s = job ? bpf_map_lookup_elem(&job_slot, &job) : 0;
	if (!s)
		s = bpf_map_lookup_elem(&slot_default, &zero);
	return s ? *s : 0;
}

/* sanctioned DNS resolvers */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u8[16]);
	__type(value, __u8);
} resolvers SEC(".maps");

/*
 * Exempt processes inside the enforced cgroup (the CI runner's own): tgid -> its start time in
 * clock ticks since boot, as /proc/<pid>/stat gives it. A pid alone would exempt whatever
 * process gets the number next; the start time is the process's own.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} exempt SEC(".maps");

#define DP_NSEC_PER_TICK 10000000ULL /* USER_HZ 100: the unit of /proc/<pid>/stat's starttime */

static __always_inline int is_exempt(__u32 tgid)
{
	__u64 *start = bpf_map_lookup_elem(&exempt, &tgid);
	struct task_struct *t;

	if (!start)
		return 0;
	t = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(t, group_leader, start_boottime) / DP_NSEC_PER_TICK == *start;
}

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct dp_name_key);
	__type(value, struct dp_name_val);
} names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);   /* tid */
	__type(value, struct dp_judged);
} judged SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_enf_stats);
} enforce_stats SEC(".maps");

/* DNS over TCP: message boundaries of the resolver streams of the job (see common.bpf.h) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   /* socket cookie */
	__type(value, struct dp_tcp_dns_flow);
} enf_tcp_flows SEC(".maps");

struct enf_scratch {
	__u32 p;             /* parse position, kept in map memory: the verifier then sees an unknown */
	__u32 pad;           /* scalar, and the states of the answer loop converge */
	__u8 buf[DP_ENF_BUF];
	__u8 dotted[DP_ENF_NAME];
	struct dp_name_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enf_scratch);
} enf_scratch SEC(".maps");

static __always_inline void addr16_from_ctx(struct bpf_sock_addr *ctx, int v6, __u8 a[16])
{
	if (v6) {
		__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];

		__builtin_memcpy(&a[0], &w0, 4);
		__builtin_memcpy(&a[4], &w1, 4);
		__builtin_memcpy(&a[8], &w2, 4);
		__builtin_memcpy(&a[12], &w3, 4);
	} else {
		__u32 w = ctx->user_ip4, z = 0, ff = bpf_htonl(0xffff);

		__builtin_memcpy(&a[0], &z, 4);
		__builtin_memcpy(&a[4], &z, 4);
		__builtin_memcpy(&a[8], &ff, 4);
		__builtin_memcpy(&a[12], &w, 4);
	}
}

static __always_inline int is_loopback(const __u8 a[16])
{
	__u64 hi, lo;

	__builtin_memcpy(&hi, &a[0], 8);
	__builtin_memcpy(&lo, &a[8], 8);
	if (hi != 0)
		return 0;
	/* ::1 */
	if (lo == ((__u64)bpf_htonl(1) << 32))
		return 1;
	/* ::ffff:127.0.0.0/8 */
	return a[8] == 0 && a[9] == 0 && a[10] == 0xff && a[11] == 0xff && a[12] == 127;
}

/* the verdict for (address, port) from a process of the enforced cgroup: 1 allow, 0 deny */
static __always_inline int enf_judge(const __u8 a[16], __u16 port_be, __u32 tgid, __u16 *rule)
{
	struct dp_enf_val *v;
	struct dp_learn_val *lv;
	struct dp_lpm_port kp = {};
	struct dp_lpm_any ka = {};
	struct dp_learn_key kl = {};
	struct dp_deny_key kd = {};
	__u16 port = bpf_ntohs(port_be);
	__u32 job = job_of(tgid), slot = slot_of_job(job);

	if (is_exempt(tgid)) {
		*rule = DP_R_EXEMPT_PID;
		return 1;
	}
	if (judge_jobs_only && !job) {
		if (!attrib_lost()) {
			*rule = DP_R_NO_JOB;
			return 1;
		}
		/* it may be a job's process whose job could not be recorded: the strictest policy */
		if (is_loopback(a)) {
			*rule = DP_R_LOOPBACK;
			return 1;
		}
		if (port == 53 && bpf_map_lookup_elem(&resolvers, a)) {
			*rule = DP_R_RESOLVER;
			return 1;
		}
		*rule = DP_R_UNATTRIBUTED;
		return 0;
	}
	if (is_loopback(a)) {
		*rule = DP_R_LOOPBACK;
		return 1;
	}
	if (port == 53) {
		if (bpf_map_lookup_elem(&resolvers, a)) {
			*rule = DP_R_RESOLVER;
			return 1;
		}
		*rule = DP_R_DNS_RESOLVER;
		return 0;
	}
	kd.slot = slot;
	__builtin_memcpy(kd.addr, a, 16);
	v = bpf_map_lookup_elem(&deny_addr, &kd);
	if (v) {
		*rule = v->rule;
		return 0;
	}
	/* a rule naming this very port */
	kp.prefixlen = DP_SLOT_BITS + 16 + 128;
	kp.slot = slot;
	__builtin_memcpy(kp.port, &port_be, 2);
	__builtin_memcpy(kp.addr, a, 16);
	v = bpf_map_lookup_elem(&allow_port, &kp);
	if (v) {
		*rule = v->rule;
		return 1;
	}
	__builtin_memcpy(kl.addr, a, 16);
	kl.port = port;
	kl.slot = slot;
	lv = learned_live(&kl);
	if (lv) {
		*rule = lv->rule;
		return 1;
	}
	if (port == 853) {
		/* DNS over TLS only where a rule names port 853 explicitly */
		*rule = DP_R_DOT;
		return 0;
	}
	ka.prefixlen = DP_SLOT_BITS + 128;
	ka.slot = slot;
	__builtin_memcpy(ka.addr, a, 16);
	v = bpf_map_lookup_elem(&allow_any, &ka);
	if (v) {
		*rule = v->rule;
		return 1;
	}
	kl.port = 0;
	lv = learned_live(&kl);
	if (lv) {
		*rule = lv->rule;
		return 1;
	}
	*rule = DP_R_DEFAULT_DENY;
	return 0;
}

static __always_inline int enf_sock(struct bpf_sock_addr *ctx, int v6)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct dp_judged j = {};
	__u8 a[16];
	__u16 rule = 0;
	int ok;

	addr16_from_ctx(ctx, v6, a);
	ok = enf_judge(a, (__u16)ctx->user_port, (__u32)(id >> 32), &rule);
	j.cookie = bpf_get_socket_cookie(ctx);
	j.verdict = ok;
	j.rule = rule;
	bpf_map_update_elem(&judged, &tid, &j, BPF_ANY);
	return ok ? 1 : 0;
}

SEC("cgroup/connect4")
int dp_enf_connect4(struct bpf_sock_addr *ctx)
{
	return enf_sock(ctx, 0);
}

SEC("cgroup/connect6")
int dp_enf_connect6(struct bpf_sock_addr *ctx)
{
	return enf_sock(ctx, 1);
}

SEC("cgroup/sendmsg4")
int dp_enf_sendmsg4(struct bpf_sock_addr *ctx)
{
	return enf_sock(ctx, 0);
}

SEC("cgroup/sendmsg6")
int dp_enf_sendmsg6(struct bpf_sock_addr *ctx)
{
	return enf_sock(ctx, 1);
}

/* processes of the enforced cgroup that are not judged: the runner's own, and (daemon) no job's */
static __always_inline int enf_unjudged(__u32 tgid)
{
	return is_exempt(tgid) || (judge_jobs_only && !job_of(tgid) && !attrib_lost());
}

/* a deny record for an operation refused before it had a destination (socket) or with none (bind) */
static __always_inline void enf_refusal(__u64 id, __u16 family, __u8 proto, __u8 op, __u16 rule, const __u8 a[16],
					__u16 port, __u8 mapped)
{
	struct dp_connect *c = bpf_ringbuf_reserve(&events, sizeof(*c), 0);

	if (!c) {
		count_drop(DP_CONNECT);
		return;
	}
	__builtin_memset(c, 0, sizeof(*c));
	fill_hdr_task(&c->h, DP_CONNECT, id);
	c->family = family;
	c->proto = proto;
	c->op = op;
	c->port = port;
	c->has_result = 1;
	c->result = -1; /* -EPERM */
	c->source = DP_SRC_CGROUP;
	c->verdict = 0;
	c->rule = rule;
	c->mapped = mapped;
	if (a) {
		if (family == AF_INET) {
			__builtin_memcpy(c->addr, &a[12], 4);
		} else {
			__builtin_memcpy(c->addr, a, 16);
		}
	}
	bpf_ringbuf_submit(c, dp_rb_flags());
}

/*
 * socket() in the enforced cgroup is an allowlist: only TCP and UDP sockets of AF_INET and
 * AF_INET6, whose every connect and datagram meets the hooks above. Raw and ICMP ("ping")
 * sockets, MPTCP (extra subflows to addresses the server advertises), UDP-Lite, SCTP and
 * whatever else a later kernel adds are refused. This hook only runs for the inet families;
 * AF_UNIX and AF_NETLINK never send to the network, and AF_PACKET and the other families are
 * outside it (README "Limits"). Exempt processes (the runner's own) may still create them.
 */
static __always_inline int enf_sock_create(struct bpf_sock *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 type = ctx->type, proto = ctx->protocol;

	if (ctx->family != AF_INET && ctx->family != AF_INET6)
		return 1;
	if ((type == SOCK_STREAM && proto == IPPROTO_TCP) || (type == SOCK_DGRAM && proto == IPPROTO_UDP))
		return 1;
	if (enf_unjudged((__u32)(id >> 32)))
		return 1;
	/* raw and ICMP: the rule they always had; the rest: a protocol we do not judge */
	enf_refusal(id, ctx->family, proto == IPPROTO_TCP ? IPPROTO_TCP : proto == IPPROTO_UDP ? IPPROTO_UDP : 0,
		    DP_OP_SOCKET,
		    type == SOCK_RAW || (type == SOCK_DGRAM && (proto == 1 || proto == 58)) ? DP_R_RAW_SOCKET
											 : DP_R_SOCK_TYPE,
		    0, 0, 0);
	return 0;
}

/* one verdict for the job's cgroup and for container slices (bpf/ct_gate.bpf.h) */
SEC("cgroup/sock_create")
int dp_enf_sock_create(struct bpf_sock *ctx)
{
	return enf_sock_create(ctx);
}

/*
 * bind(): a process of the job that holds port 53, or a sanctioned resolver's address, could
 * answer the job's own queries with whatever it likes, and the learner below would believe
 * the answer's source. Refused; the job's other servers bind as usual.
 */
static __always_inline int enf_bind(struct bpf_sock_addr *ctx, int v6)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u8 a[16];

	addr16_from_ctx(ctx, v6, a);
	if (ctx->user_port != bpf_htons(53) && !bpf_map_lookup_elem(&resolvers, a))
		return 1;
	if (enf_unjudged((__u32)(id >> 32)))
		return 1;
	{
		int mapped = v6 && a[0] == 0 && a[10] == 0xff && a[11] == 0xff && !a[1] && !a[2] && !a[3] && !a[4] &&
			     !a[5] && !a[6] && !a[7] && !a[8] && !a[9];

		enf_refusal(id, mapped || !v6 ? AF_INET : AF_INET6, ctx->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP,
			    DP_OP_BIND, DP_R_DNS_BIND, a, bpf_ntohs((__u16)ctx->user_port), mapped);
	}
	return 0;
}

SEC("cgroup/bind4")
int dp_enf_bind4(struct bpf_sock_addr *ctx)
{
	return enf_bind(ctx, 0);
}

SEC("cgroup/bind6")
int dp_enf_bind6(struct bpf_sock_addr *ctx)
{
	return enf_bind(ctx, 1);
}

/* ---- DNS answers -> learned ---- */

static __always_inline __u8 sb(const struct enf_scratch *s, __u32 i)
{
	return s->buf[i & (DP_ENF_BUF - 1)];
}

static __always_inline void enf_stat(int which)
{
	__u32 zero = 0;
	struct dp_enf_stats *st = bpf_map_lookup_elem(&enforce_stats, &zero);

	if (!st)
		return;
	if (which == 0)
		st->learned++;
	else if (which == 1)
		st->learn_fail++;
	else if (which == 2)
		st->dns_allowed++;
	else
		st->dns_other++;
}

static __always_inline void learn(const __u8 a[16], const struct dp_name_val *nv, __u32 slot, __u32 ttl)
{
	struct dp_learn_key k = {};
	struct dp_learn_val v = {.rule = nv->rule};
	__u32 n = nv->nports;

	if (ttl < learned_ttl_min)
		ttl = learned_ttl_min;
	v.expires = bpf_ktime_get_boot_ns() + (__u64)ttl * 1000000000ULL;

	k.slot = slot;
	__builtin_memcpy(k.addr, a, 16);
	if (nv->flags & DP_NV_ANY) {
		k.port = 0;
		if (bpf_map_update_elem(&learned, &k, &v, BPF_ANY) == 0)
			enf_stat(0);
		else
			enf_stat(1);
	}
	for (__u32 i = 0; i < DP_ENF_PORTS; i++) {
		if (i >= n)
			break;
		k.port = nv->ports[i];
		if (bpf_map_update_elem(&learned, &k, &v, BPF_ANY) == 0)
			enf_stat(0);
		else
			enf_stat(1);
	}
}

struct ans_ctx {
	__u32 len;
	__u32 ancount;
	__u32 slot;
	struct dp_name_val val;
};

/* one answer record at ac->p; 1 stops the loop */
static long answer_cb(__u64 i, void *data)
{
	struct ans_ctx *ac = data;
	struct enf_scratch *s;
	__u32 zero = 0, p, len = ac->len, type, rdlen, j, ttl;
	__u8 a[16];

	if (i >= ac->ancount || len > DP_ENF_BUF)
		return 1;
	s = bpf_map_lookup_elem(&enf_scratch, &zero);
	if (!s)
		return 1;
	p = *(volatile __u32 *)&s->p;
	/* owner name: a pointer, or labels ending in a pointer or the root */
	for (j = 0; j < 32; j++) {
		__u8 c;

		if (p >= len)
			return 1;
		c = sb(s, p);
		if (c >= 0xc0) {
			p += 2;
			break;
		}
		if (c == 0) {
			p += 1;
			break;
		}
		p += 1 + c;
	}
	if (j == 32)
		return 1;
	*(volatile __u32 *)&s->p = p;
	p = *(volatile __u32 *)&s->p;
	if (p + 10 > len)
		return 1;
	type = ((__u32)sb(s, p) << 8) | sb(s, p + 1);
	ttl = ((__u32)sb(s, p + 4) << 24) | ((__u32)sb(s, p + 5) << 16) | ((__u32)sb(s, p + 6) << 8) | sb(s, p + 7);
	if (ttl & 0x80000000)
		ttl = 0; /* RFC 2181 */
	else if (ttl > 604800)
		ttl = 604800; /* a week is plenty */
	rdlen = ((__u32)sb(s, p + 8) << 8) | sb(s, p + 9);
	p += 10;
	if (p + rdlen > len)
		return 1;
	if (type == 1 && rdlen == 4) {
		__builtin_memset(a, 0, 10);
		a[10] = 0xff;
		a[11] = 0xff;
		a[12] = sb(s, p);
		a[13] = sb(s, p + 1);
		a[14] = sb(s, p + 2);
		a[15] = sb(s, p + 3);
		learn(a, &ac->val, ac->slot, ttl);
	} else if (type == 28 && rdlen == 16) {
		for (j = 0; j < 16; j++)
			a[j] = sb(s, p + j);
		learn(a, &ac->val, ac->slot, ttl);
	}
	*(volatile __u32 *)&s->p = p + rdlen;
	return 0;
}

SEC("cgroup_skb/ingress")
int dp_enf_dns(struct __sk_buff *skb)
{
	struct enf_scratch *s;
	struct dp_name_val *nv, val;
	struct dp_sock_owner *o;
	__u8 proto, saddr[16] = {};
	__u32 off, plen, zero = 0, len, p, next, n, i, ancount, done, slot;
	__u64 cookie;
	struct {
		__u16 sport;
		__u16 dport;
		__u32 seq;
		__u32 ack;
		__u8 doff_res;
		__u8 flags;
	} l4 = {};

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		__u32 ff = bpf_htonl(0xffff);

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			return 1;
		proto = ip.protocol;
		if ((proto != IPPROTO_UDP && proto != IPPROTO_TCP) || (ip.frag_off & bpf_htons(0x1fff)))
			return 1;
		off = ip.ihl * 4;
		__builtin_memcpy(&saddr[8], &ff, 4);
		__builtin_memcpy(&saddr[12], &ip.saddr, 4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			return 1;
		proto = ip6.nexthdr;
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return 1;
		off = sizeof(ip6);
		__builtin_memcpy(saddr, &ip6.saddr, 16);
	} else {
		return 1;
	}
	if (bpf_skb_load_bytes(skb, off, &l4, proto == IPPROTO_TCP ? 14 : 4) < 0)
		return 1;
	if (l4.sport != bpf_htons(53))
		return 1;
	/* only answers from a sanctioned resolver teach us anything */
	if (!bpf_map_lookup_elem(&resolvers, saddr))
		return 1;
	/* the policy of the job that asked: the socket's owner (recorded at connect / sendmsg) */
	cookie = bpf_get_socket_cookie(skb);
	o = cookie ? bpf_map_lookup_elem(&sock_owner, &cookie) : 0;
	slot = slot_of_job(o ? o->job : 0);
	if (proto == IPPROTO_TCP) {
		__u32 mlen = 0;
		int b;

		off += (l4.doff_res >> 4) * 4;
		plen = skb->len > off ? skb->len - off : 0;
		/* only a whole message that starts at a known boundary of the stream */
		b = tcp_dns_boundary(&enf_tcp_flows, cookie, skb, off, plen, l4.seq, l4.flags, &mlen);
		if (b < 0 || (__u32)b + 2 + mlen > plen)
			return 1;
		off += (__u32)b + 2;
		plen = mlen;
	} else {
		off += 8;
		plen = skb->len > off ? skb->len - off : 0;
	}
	if (plen <= 12)
		return 1;
	s = bpf_map_lookup_elem(&enf_scratch, &zero);
	if (!s)
		return 1;
	{
		__u64 cl = plen > DP_ENF_BUF ? DP_ENF_BUF : plen;

		barrier_var(cl);
		cl = ((cl - 1) & (DP_ENF_BUF - 1)) + 1;
		if (bpf_skb_load_bytes(skb, off, s->buf, cl) < 0)
			return 1;
		len = cl;
	}
	/* header: a response (QR), NOERROR, one question */
	if (!(sb(s, 2) & 0x80) || (sb(s, 3) & 0x0f) != 0 || sb(s, 4) != 0 || sb(s, 5) != 1)
		return 1;
	ancount = ((__u32)sb(s, 6) << 8) | sb(s, 7);

	/* question name -> dotted, lower case */
	p = 12;
	next = 12;
	n = 0;
	done = 0;
	for (i = 0; i < DP_ENF_NAME + 1; i++) {
		__u8 c;

		if (p >= len)
			return 1;
		c = sb(s, p);
		if (p == next) {
			if (c == 0) {
				done = 1;
				break;
			}
			if (c >= 64)
				return 1; /* compression or extended label in a question: not ours */
			next = p + c + 1;
			if (i > 0) {
				if (n >= DP_ENF_NAME - 1)
					return 1;
				s->dotted[n & (DP_ENF_NAME - 1)] = '.';
				n++;
			}
		} else {
			if (n >= DP_ENF_NAME - 1)
				return 1;
			if (c >= 'A' && c <= 'Z')
				c += 32;
			s->dotted[n & (DP_ENF_NAME - 1)] = c;
			n++;
		}
		p++;
	}
	if (!done || n == 0)
		return 1;
	/* reversed into the trie key, NUL padded */
	__builtin_memset(&s->key, 0, sizeof(s->key));
	for (i = 0; i < DP_ENF_NAME; i++) {
		if (i >= n)
			break;
		s->key.name[i & (DP_ENF_NAME - 1)] = s->dotted[(n - 1 - i) & (DP_ENF_NAME - 1)];
	}
	s->key.prefixlen = DP_SLOT_BITS + DP_ENF_NAME * 8;
	s->key.slot = slot;
	nv = bpf_map_lookup_elem(&names, &s->key);
	if (!nv || (nv->flags & DP_NV_DENY)) {
		enf_stat(3);
		return 1;
	}
	__builtin_memcpy(&val, nv, sizeof(val));
	enf_stat(2);
	p += 1 + 4; /* the root label, QTYPE, QCLASS */

	/* answers: every A / AAAA (the chain of CNAMEs answers the allowed question) */
	{
		struct ans_ctx ac = {.len = len, .ancount = ancount, .slot = slot};

		s->p = p;

		__builtin_memcpy(&ac.val, &val, sizeof(val));
		bpf_loop(24, answer_cb, &ac, 0);
	}
	return 1;
}

#endif
