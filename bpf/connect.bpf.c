// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Outbound connects. The cgroup sock_addr programs on the cgroup v2 root see
 * the kernel's copy of the address for connect(), io_uring connects and
 * unconnected UDP sends, and are the verdict point of enforce mode (a later
 * issue). In observe mode they always return 1 (allow).
 *
 * The result of connect() comes from its exit: a connect4/6 that runs inside a connect
 * syscall (marked per CPU by its entry hook, bpf/connect_mark.bpf.h) parks its record in
 * `parked` by socket cookie; the syscall's exit emits it with the return value. Outside a
 * connect syscall (io_uring) the record is emitted at once with no result.
 *
 * TCP results need more than the syscall's return value: a non-blocking connect returns
 * -EINPROGRESS and the outcome arrives later. A parked TCP record is resolved by whichever
 * comes first with a final answer:
 *   sock/inet_sock_set_state leaving SYN_SENT (0, or -sk_err), or
 *   the syscall's exit with anything but -EINPROGRESS (e.g. -ENETUNREACH before any SYN).
 * Deleting the parked entry decides who emits it, so it is emitted once (emit_parked).
 * Records still parked when the agent stops are flushed by user space with no result.
 * (The syscall-tracepoint fallback, without cgroup programs, joins by thread: inflight,
 * pending.)
 *
 * Enforce mode's programs are parts of this object (#included below, see
 * bpf/README.md): enforce.inc.c (verdicts), enforce_dns.inc.c (the DNS
 * learner), ct_gate.inc.c (the same verdicts gated to container slices).
 */
#include "common.bpf.h"
#include "connect_mark.bpf.h"

#define MAX_INFLIGHT 16384

/*
 * The syscall-tracepoint fallback (no cgroup programs): threads inside connect(), with the
 * cookie (socket address) of the TCP record they parked, 0 while there is none; and their
 * other records, by thread.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, __u32);   /* tid inside connect() */
	__type(value, __u64); /* cookie parked in `parked`, or 0 */
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, __u32);   /* tid */
	__type(value, struct dp_connect);
} pending SEC(".maps");

/* records waiting for their result, by socket cookie (by socket address from the fallback) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, __u64);
	__type(value, struct dp_connect);
} parked SEC(".maps");

struct udp_dest {
	__u64 cookie;
	__u16 family;
	__u16 port;
	__u32 pad;
	__u8 addr[16];
};

/* unconnected UDP: report each new destination of a socket once */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct udp_dest);
	__type(value, __u8);
} udp_seen SEC(".maps");

/*
 * Daemon mode: network namespace (cookie) -> the job of a container that asked Docker's embedded
 * resolver (127.0.0.11:53) in it. dockerd forwards the query from a socket it makes in that same
 * namespace, as no job's process: the answer it gets (from a sanctioned resolver, the only answers
 * learned) is learned for the container's job. LRU: a lost entry makes the answer the default
 * policy's (fail closed).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} dns_netns_job SEC(".maps");

#include "enforce.inc.c"      /* enforce mode: verdict maps and programs */
#include "enforce_dns.inc.c"  /* enforce mode: the DNS learner */
#include "ct_gate.inc.c"      /* container slices: the same verdicts, gated to containers */

/* set at load time: whether sys_enter/exit_connect are attached */
const volatile __u8 want_result = 0;
/* set at load time: enforce mode, whose verdict programs (job cgroup, container slices) leave
 * their verdicts in `judged`; elsewhere nothing writes it, and the lookup is skipped */
const volatile __u8 verdicts_loaded = 0;

static __always_inline int verdict(void)
{
	/* the root's programs never deny: enforce mode denies in the job cgroup's programs */
	return 1;
}

/* sock_addr programs may not read the task: no parent (sys_exit_connect adds it to parked records) */
static __always_inline void fill_hdr_sock(struct dp_hdr *h, __u64 id)
{
	fill_hdr_ppid(h, DP_CONNECT, id, 0);
	h->flags = DP_HF_NO_PPID;
}

/* the job whose policy learns the answers a socket to port 53 gets: its owner's, or (daemon mode)
 * for dockerd's forward of Docker's embedded resolver, the job of the container that asked */
static __always_inline __u32 dns_job(struct bpf_sock_addr *ctx, const struct dp_connect *c)
{
	__u32 job = c->h.job, *j;
	__u64 ns;

	if (!track_jobs)
		return job;
	ns = bpf_get_netns_cookie(ctx);
	if (c->family == AF_INET && c->addr[0] == 127 && c->addr[1] == 0 && c->addr[2] == 0 && c->addr[3] == 11) {
		/* never the host's namespace: dockerd's own lookups (pulls) there stay no job's */
		if (job && job < DP_JOB_UNKNOWN && ns != bpf_get_netns_cookie(NULL))
			bpf_map_update_elem(&dns_netns_job, &ns, &job, BPF_ANY);
		return job;
	}
	if (!job || job >= DP_JOB_UNKNOWN) {
		j = bpf_map_lookup_elem(&dns_netns_job, &ns);
		if (j)
			return *j;
	}
	return job;
}

static __always_inline void remember_owner(struct dp_connect *c, __u32 learn_job)
{
	struct dp_sock_owner o = {};

	o.pid = c->h.pid;
	o.tid = c->h.tid;
	o.uid = c->h.uid;
	o.step = c->h.step;
	o.job = c->h.job;
	/* the records of dockerd's socket stay no job's (a job's log would keep dockerd as its own
	 * process, and the job would never end): only the learning is the container's job's */
	o.learn_job = learn_job != c->h.job ? learn_job : 0;
	o.cgroup = c->h.cgroup;
	__builtin_memcpy(o.comm, c->h.comm, sizeof(o.comm));
	bpf_map_update_elem(&sock_owner, &c->cookie, &o, BPF_ANY);
}

static __always_inline int handle(struct bpf_sock_addr *ctx, int v6, __u8 op)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dp_connect c = {};
	__u32 tid = (__u32)id, zero = 0;
	struct dp_connect_mark *m;
	struct dp_judged *j;

	if (is_agent(id))
		return verdict();

	c.cookie = bpf_get_socket_cookie(ctx);
	c.port = bpf_ntohs((__u16)ctx->user_port);
	c.op = op;
	c.source = DP_SRC_CGROUP;
	c.verdict = 1;
	if (ctx->type == SOCK_STREAM)
		c.proto = IPPROTO_TCP;
	else if (ctx->type == SOCK_DGRAM)
		c.proto = IPPROTO_UDP;
	else
		c.proto = ctx->protocol;
	if (v6) {
		__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
		__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];

		if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
			c.family = AF_INET;
			c.mapped = 1;
			__builtin_memcpy(&c.addr[0], &a3, 4);
		} else {
			c.family = AF_INET6;
			__builtin_memcpy(&c.addr[0], &a0, 4);
			__builtin_memcpy(&c.addr[4], &a1, 4);
			__builtin_memcpy(&c.addr[8], &a2, 4);
			__builtin_memcpy(&c.addr[12], &a3, 4);
		}
	} else {
		__u32 a = ctx->user_ip4;

		c.family = AF_INET;
		__builtin_memcpy(&c.addr[0], &a, 4);
		/* an IPv6 socket sending to ::ffff:a.b.c.d lands in sendmsg4 */
		if (ctx->family == AF_INET6)
			c.mapped = 1;
	}

	/* enforce mode: the job cgroup's program ran just before us and left its verdict */
	if (verdicts_loaded) {
		j = bpf_map_lookup_elem(&judged, &tid);
		if (j && j->cookie == c.cookie) {
			c.verdict = j->verdict;
			c.rule = j->rule;
			bpf_map_delete_elem(&judged, &tid);
		} else {
			c.rule = DP_R_EXEMPT_CG; /* no verdict: outside the enforced cgroup */
		}
	}

	if (op == DP_OP_SENDMSG) {
		struct udp_dest k = {};
		__u8 one = 1;

		k.cookie = c.cookie;
		k.pad = c.verdict;
		k.family = c.family;
		k.port = c.port;
		__builtin_memcpy(k.addr, c.addr, 16);
		if (bpf_map_lookup_elem(&udp_seen, &k))
			return verdict(); /* not a new destination for this socket */
		bpf_map_update_elem(&udp_seen, &k, &one, BPF_ANY);
	}

	fill_hdr_sock(&c.h, id);
	/* only DNS answers (source port 53) are attributed through the socket's owner: keeping
	 * an owner for every other socket cost an LRU update (~0.2 us) per connect */
	if (c.port == 53)
		remember_owner(&c, dns_job(ctx, &c));

	if (!c.verdict) {
		/* denied: the caller gets EPERM, known now */
		c.has_result = 1;
		c.result = -1;
	} else if (op == DP_OP_CONNECT && want_result && (m = bpf_map_lookup_elem(&connect_mark, &zero)) &&
		   m->tid == tid && c.h.ts - m->ts < DP_MARK_MAX_AGE_NS) {
		/* inside connect(), on the CPU it entered on: the exit takes the cookie from the mark */
		if (bpf_map_update_elem(&parked, &c.cookie, &c, BPF_ANY) == 0) {
			m->cookie = c.cookie;
			return verdict();
		}
	}
	if (bpf_ringbuf_output(&events, &c, sizeof(c), dp_rb_flags()))
		count_drop(DP_CONNECT);
	return verdict();
}

SEC("cgroup/connect4")
int dp_connect4(struct bpf_sock_addr *ctx)
{
	return handle(ctx, 0, DP_OP_CONNECT);
}

SEC("cgroup/connect6")
int dp_connect6(struct bpf_sock_addr *ctx)
{
	return handle(ctx, 1, DP_OP_CONNECT);
}

SEC("cgroup/sendmsg4")
int dp_sendmsg4(struct bpf_sock_addr *ctx)
{
	return handle(ctx, 0, DP_OP_SENDMSG);
}

SEC("cgroup/sendmsg6")
int dp_sendmsg6(struct bpf_sock_addr *ctx)
{
	return handle(ctx, 1, DP_OP_SENDMSG);
}

static __always_inline int enter_connect(void)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (!is_agent(id))
		connect_mark_set((__u32)id);
	return 0;
}

SEC("tp/syscalls/sys_enter_connect")
int dp_enter_connect(void *ctx)
{
	return enter_connect();
}

/* the connecting thread's parent: only a program running in that thread may read it */
static __always_inline void set_ppid(struct dp_connect *e)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	e->h.ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->h.flags &= ~DP_HF_NO_PPID;
}

/*
 * The one way out for a parked connect record: map[key] is copied into the ring buffer with
 * its result and deleted. Race rule, the same for every caller: a record may be resolved by
 * two programs at once (a TCP record by the state change, in softirq on any CPU, and by
 * sys_exit_connect in the connecting thread), so the delete decides; the program whose
 * delete succeeds submits, the other discards its copy. A full ring buffer loses the record
 * (counted) and drops the entry, so nothing emits it later with a stale result.
 *   p:         map[key] if the caller has looked it up already, else NULL
 *   in_thread: the caller runs in the connecting thread (sys_exit_connect), which names the
 *              parent; the state change runs in whatever context the packet arrived in.
 */
static __always_inline void emit_parked(void *map, const void *key, struct dp_connect *p, int in_thread,
					__u8 has_result, __s32 result)
{
	struct dp_connect *e;

	if (!p)
		p = bpf_map_lookup_elem(map, key);
	if (!p)
		return; /* already emitted by the other side of the race */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DP_CONNECT);
		bpf_map_delete_elem(map, key);
		return;
	}
	__builtin_memcpy(e, p, sizeof(*e));
	if (bpf_map_delete_elem(map, key) != 0) {
		bpf_ringbuf_discard(e, 0); /* the other side won between our lookup and delete */
		return;
	}
	if (in_thread)
		set_ppid(e);
	e->has_result = has_result;
	e->result = result;
	bpf_ringbuf_submit(e, dp_rb_flags());
}

/* set at load time, for the tests of fd_cookie(): every exit finds its socket by the fd */
const volatile __u8 exit_by_fd = 0;

/* the socket behind the connect's fd argument, for an exit that runs on another CPU than the
 * cgroup program did (the thread slept and woke elsewhere): its cookie, or 0 */
static __always_inline __u64 fd_cookie(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	struct fdtable *fdt = task->files->fdt;
	long fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
	struct file **fds = fdt->fd;
	struct file *f = 0;
	struct socket *sock;

	if (fd < 0 || fd >= fdt->max_fds || !fds || bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) < 0 || !f)
		return 0;
	sock = BPF_CORE_READ(f, private_data);
	/* another thread may have put something else at that fd since: the record's tid is checked */
	return BPF_CORE_READ(sock, sk, __sk_common.skc_cookie.counter);
}

/* the cgroup path's exit: the mark this CPU holds names the record its cgroup program parked */
static __always_inline int exit_connect(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, zero = 0;
	struct dp_connect_mark *m;
	struct dp_connect *p;
	__u64 ck;

	if (is_agent(id))
		return 0;
	m = bpf_map_lookup_elem(&connect_mark, &zero);
	if (m && m->tid == tid && !exit_by_fd) {
		ck = m->cookie; /* 0: nothing parked (not an inet socket, refused, ...) */
		m->tid = 0;
	} else {
		ck = fd_cookie(); /* woke on another CPU (see connect_mark.bpf.h): rare */
	}
	p = ck ? bpf_map_lookup_elem(&parked, &ck) : 0;
	if (!p || p->h.tid != tid)
		return 0; /* not parked, or the state change emitted it already */
	if (ret == -115 && p->proto == IPPROTO_TCP) {
		set_ppid(p); /* EINPROGRESS: the state change will tell; it cannot name the parent */
		return 0;
	}
	emit_parked(&parked, &ck, p, 1, 1, (__s32)ret);
	return 0;
}

/* the fallback's exit: its entry program parked the record and marked the thread in inflight */
static __always_inline int exit_connect_tp(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 *in, ck;
	struct dp_connect *p;

	if (is_agent(id))
		return 0;
	in = bpf_map_lookup_elem(&inflight, &tid);
	ck = in ? *in : 0;
	bpf_map_delete_elem(&inflight, &tid);
	if (ck) {
		/* TCP, raced by the state change (emit_parked) */
		if (ret == -115) {
			p = bpf_map_lookup_elem(&parked, &ck);
			if (p)
				set_ppid(p);
			return 0;
		}
		emit_parked(&parked, &ck, 0, 1, 1, (__s32)ret);
		return 0;
	}
	/* UDP and other connects: keyed by this thread, nobody else resolves them */
	emit_parked(&pending, &tid, 0, 1, 1, (__s32)ret);
	return 0;
}

SEC("tp/syscalls/sys_exit_connect")
int dp_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	return exit_connect(ctx->ret);
}

/*
 * The same result where the kernel has kprobes: a kprobe / kretprobe pair on the connect
 * syscall costs only connect calls, where a syscall tracepoint puts every syscall of every
 * process on the traced slow path (DESIGN §6). Used when the file hook does not need syscall
 * tracepoints anyway.
 */
SEC("ksyscall/connect")
int BPF_KSYSCALL(dp_enter_connect_k, long fd)
{
	return enter_connect();
}

SEC("kretsyscall/connect")
int BPF_KRETPROBE(dp_exit_connect_k, long ret)
{
	return exit_connect(ret);
}

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2

/* a TCP socket left SYN_SENT: its parked record goes out with the result. sk is BTF-typed in
 * the tp_btf program (its fields are plain loads there), a bare address in the classic one. */
static __always_inline int syn_sent_left(struct sock *sk, int newstate, int typed)
{
	struct dp_connect *p;
	__u64 ck;
	int err;

	ck = typed ? sk->__sk_common.skc_cookie.counter : BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	p = ck ? bpf_map_lookup_elem(&parked, &ck) : 0;
	if (!p) {
		/* the syscall fallback parks by socket address */
		ck = (__u64)(unsigned long)sk;
		p = bpf_map_lookup_elem(&parked, &ck);
		if (!p)
			return 0;
	}
	/* raced by sys_exit_connect (emit_parked); not in the connecting thread */
	if (newstate == TCP_ESTABLISHED) {
		emit_parked(&parked, &ck, p, 0, 1, 0);
	} else {
		err = typed ? sk->sk_err : BPF_CORE_READ(sk, sk_err);
		emit_parked(&parked, &ck, p, 0, err != 0, -err);
	}
	return 0;
}

/*
 * Preferred where the kernel has BTF for the tracepoint: a BTF tracepoint gets the arguments
 * as they are, where for the classic one the kernel fills a 12-field trace record (both
 * addresses included) before every run. It fires for every state change of every TCP socket
 * on the machine, six per loopback connect, and all but one leave at the first compare.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(dp_tcp_state_btf, struct sock *sk, int oldstate, int newstate)
{
	if (oldstate != TCP_SYN_SENT || BPF_CORE_READ_BITFIELD(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	return syn_sent_left(sk, newstate, 1);
}

SEC("tp/sock/inet_sock_set_state")
int dp_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->oldstate != TCP_SYN_SENT || ctx->protocol != IPPROTO_TCP)
		return 0;
	return syn_sent_left((struct sock *)ctx->skaddr, ctx->newstate, 0);
}

/*
 * Fallback where cgroup sock_addr programs cannot be attached: the syscall's
 * user-space sockaddr. Misses io_uring and sendto; reported as source
 * "tracepoint". Pairs with dp_exit_connect_tp for the result.
 */
struct sockaddr_any {
	__u16 family;
	__u16 port;
	__u32 a4;           /* sin_addr, or sin6_flowinfo */
	__u8 a6[16];        /* sin6_addr */
};

SEC("tp/syscalls/sys_enter_connect")
int dp_enter_connect_tp(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct dp_connect c = {};
	struct sockaddr_any sa = {};
	void *uaddr = (void *)ctx->args[1];

	if (is_agent(id))
		return 0;
	if (bpf_probe_read_user(&sa, sizeof(sa), uaddr) < 0)
		return 0;
	if (sa.family == AF_INET) {
		c.family = AF_INET;
		__builtin_memcpy(c.addr, &sa.a4, 4);
	} else if (sa.family == AF_INET6) {
		__u32 w[4];

		__builtin_memcpy(w, sa.a6, 16);
		if (w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff)) {
			c.family = AF_INET;
			c.mapped = 1;
			__builtin_memcpy(c.addr, &w[3], 4);
		} else {
			c.family = AF_INET6;
			__builtin_memcpy(c.addr, sa.a6, 16);
		}
	} else {
		return 0;
	}
	c.port = bpf_ntohs(sa.port);
	c.op = DP_OP_CONNECT;
	c.source = DP_SRC_TRACEPOINT;
	c.verdict = 1;
	{
		/* protocol from the socket behind the fd */
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
		long fd = (long)ctx->args[0];
		struct file **fds = BPF_CORE_READ(fdt, fd);
		struct file *f = 0;
		struct socket *sock;
		short type = 0;

		if (fd >= 0 && fd < BPF_CORE_READ(fdt, max_fds) &&
		    bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) == 0 && f) {
			sock = BPF_CORE_READ(f, private_data);
			type = BPF_CORE_READ(sock, type);
			c.cookie = (__u64)(unsigned long)BPF_CORE_READ(sock, sk);
		}
		c.proto = type == SOCK_STREAM ? IPPROTO_TCP : type == SOCK_DGRAM ? IPPROTO_UDP : 0;
	}
	fill_hdr_traced(&c.h, DP_CONNECT, id);
	if (c.proto == IPPROTO_TCP && c.cookie &&
	    bpf_map_update_elem(&parked, &c.cookie, &c, BPF_ANY) == 0) {
		/* resolved by the state change or by sys_exit_connect, as in the cgroup path */
		bpf_map_update_elem(&inflight, &tid, &c.cookie, BPF_ANY);
		return 0;
	}
	bpf_map_update_elem(&pending, &tid, &c, BPF_ANY);
	return 0;
}

SEC("tp/syscalls/sys_exit_connect")
int dp_exit_connect_tp(struct trace_event_raw_sys_exit *ctx)
{
	return exit_connect_tp(ctx->ret);
}
