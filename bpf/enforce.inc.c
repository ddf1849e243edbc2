/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Enforce mode: the verdict maps and programs. NOT a header: a part of the connect object,
 * #included once by bpf/connect.bpf.c (".inc.c": code that is compiled only as part of the
 * file that includes it; the Makefile builds every *.bpf.c alone, never an *.inc.c). It is a
 * part of connect.bpf.c rather than an object of its own because the observe programs there
 * read `judged` right after these programs write it, and one object shares its maps without
 * the agent handing file descriptors from one object to another. The DNS learner of the same
 * mode is bpf/enforce_dns.inc.c; the container-slice gate over these verdicts bpf/ct_gate.inc.c.
 *
 * dp_enf_connect4/6, dp_enf_sendmsg4/6 are attached (multi) to the JOB's
 * cgroup only, never to the root. With multi attachment the kernel runs the
 * programs of the job's cgroup first, then the root's observe programs; every
 * program runs and any 0 makes the syscall fail with EPERM. The enforce
 * program leaves its verdict in `judged` (by thread), and the observe program
 * that runs right after puts it into the one connect record.
 * dp_enf_sock_create and dp_enf_bind4/6 refuse what no verdict above could judge.
 */

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

/* daemon mode: the current generation of the default policy's keys (agent-c/features/enforce_dir.c enforce_apply) */
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
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);   /* tid */
	__type(value, struct dp_judged);
} judged SEC(".maps");


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

/* one verdict for the job's cgroup and for container slices (bpf/ct_gate.inc.c) */
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

