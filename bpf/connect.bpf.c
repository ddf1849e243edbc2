// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Outbound connects. The cgroup sock_addr programs on the cgroup v2 root see
 * the kernel's copy of the address for connect(), io_uring connects and
 * unconnected UDP sends, and are the verdict point of enforce mode (a later
 * issue). In observe mode they always return 1 (allow).
 *
 * The result of connect() is joined from sys_exit_connect by thread id: a
 * connect4/6 that runs inside a connect syscall (marked by sys_enter_connect)
 * parks its record in `pending`; sys_exit_connect emits it with the return
 * value. Outside a connect syscall (io_uring) the record is emitted at once
 * with no result.
 */
/*
 * TCP results need more than the syscall's return value: a non-blocking
 * connect returns -EINPROGRESS and the outcome arrives later. A TCP connect
 * made inside connect() is parked in tcp_pending (by socket cookie) and
 * resolved by whichever comes first with a final answer:
 *   sock/inet_sock_set_state leaving SYN_SENT (0, or -sk_err), or
 *   sys_exit_connect with anything but -EINPROGRESS (e.g. -ENETUNREACH before any SYN).
 * Deleting the parked entry decides who emits it, so it is emitted once.
 * Records still parked when the agent stops are flushed by user space with
 * no result.
 *
 * Enforce mode's programs are parts of this object (#included below, see
 * bpf/README.md): enforce.inc.c (verdicts), enforce_dns.inc.c (the DNS
 * learner), ct_gate.inc.c (the same verdicts gated to container slices).
 */
#include "common.bpf.h"

#define MAX_INFLIGHT 16384

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, __u32);   /* tid inside connect() */
	__type(value, __u8);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, __u32);   /* tid */
	__type(value, struct dp_connect);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, __u64);   /* socket cookie */
	__type(value, struct dp_connect);
} tcp_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, __u32);   /* tid inside connect() */
	__type(value, __u64); /* cookie parked in tcp_pending */
} tid_cookie SEC(".maps");

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

#include "enforce.inc.c"      /* enforce mode: verdict maps and programs */
#include "enforce_dns.inc.c"  /* enforce mode: the DNS learner */
#include "ct_gate.inc.c"      /* container slices: the same verdicts, gated to containers */

/* set at load time: whether sys_enter/exit_connect are attached */
const volatile __u8 want_result = 0;

static __always_inline int verdict(void)
{
	/* the root's programs never deny: enforce mode denies in the job cgroup's programs */
	return 1;
}

static __always_inline int enforcing(void)
{
	__u32 zero = 0;
	struct dp_agent_cfg *cfg = bpf_map_lookup_elem(&agent_cfg, &zero);

	return cfg && cfg->mode == DP_MODE_ENFORCE;
}

static __always_inline void fill_hdr_sock(struct dp_hdr *h, __u64 id)
{
	h->kind = DP_CONNECT;
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->ppid = 0;
	h->uid = (__u32)bpf_get_current_uid_gid();
	h->flags = DP_HF_NO_PPID;
	h->ts = bpf_ktime_get_boot_ns();
	h->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	h->step = step_of(h->pid);
	h->job = job_of(h->pid);
}

static __always_inline void remember_owner(struct dp_connect *c)
{
	struct dp_sock_owner o = {};

	o.pid = c->h.pid;
	o.tid = c->h.tid;
	o.uid = c->h.uid;
	o.step = c->h.step;
	o.job = c->h.job;
	o.cgroup = c->h.cgroup;
	__builtin_memcpy(o.comm, c->h.comm, sizeof(o.comm));
	bpf_map_update_elem(&sock_owner, &c->cookie, &o, BPF_ANY);
}

static __always_inline int handle(struct bpf_sock_addr *ctx, int v6, __u8 op)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dp_connect c = {};
	__u32 tid = (__u32)id;
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
	j = bpf_map_lookup_elem(&judged, &tid);
	if (j && j->cookie == c.cookie) {
		c.verdict = j->verdict;
		c.rule = j->rule;
		bpf_map_delete_elem(&judged, &tid);
	} else if (enforcing()) {
		c.rule = DP_R_EXEMPT_CG;
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
		remember_owner(&c);

	if (!c.verdict) {
		/* denied: the caller gets EPERM, known now */
		c.has_result = 1;
		c.result = -1;
	} else if (op == DP_OP_CONNECT && want_result && bpf_map_lookup_elem(&inflight, &tid)) {
		if (c.proto == IPPROTO_TCP) {
			if (bpf_map_update_elem(&tcp_pending, &c.cookie, &c, BPF_ANY) == 0) {
				bpf_map_update_elem(&tid_cookie, &tid, &c.cookie, BPF_ANY);
				return verdict();
			}
		} else if (bpf_map_update_elem(&pending, &tid, &c, BPF_ANY) == 0) {
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

SEC("tp/syscalls/sys_enter_connect")
int dp_enter_connect(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u8 one = 1;

	if (is_agent(id))
		return 0;
	bpf_map_update_elem(&inflight, &tid, &one, BPF_ANY);
	return 0;
}

static __always_inline int exit_connect(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct task_struct *task;
	struct dp_connect *p, *e;
	__u64 *cookie;

	if (is_agent(id))
		return 0;
	bpf_map_delete_elem(&inflight, &tid);
	cookie = bpf_map_lookup_elem(&tid_cookie, &tid);
	if (cookie) {
		__u64 ck = *cookie;

		bpf_map_delete_elem(&tid_cookie, &tid);
		p = bpf_map_lookup_elem(&tcp_pending, &ck);
		if (!p)
			return 0; /* already resolved by the state change */
		task = (struct task_struct *)bpf_get_current_task();
		if (ret == -115) { /* EINPROGRESS: the state change will tell */
			p->h.ppid = BPF_CORE_READ(task, real_parent, tgid);
			p->h.flags &= ~DP_HF_NO_PPID;
			return 0;
		}
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			count_drop(DP_CONNECT);
			bpf_map_delete_elem(&tcp_pending, &ck);
			return 0;
		}
		__builtin_memcpy(e, p, sizeof(*e));
		if (bpf_map_delete_elem(&tcp_pending, &ck) != 0) {
			bpf_ringbuf_discard(e, 0); /* the state change won the race */
			return 0;
		}
		e->h.ppid = BPF_CORE_READ(task, real_parent, tgid);
		e->h.flags &= ~DP_HF_NO_PPID;
		e->has_result = 1;
		e->result = (__s32)ret;
		bpf_ringbuf_submit(e, dp_rb_flags());
		return 0;
	}
	p = bpf_map_lookup_elem(&pending, &tid);
	if (!p)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DP_CONNECT);
		bpf_map_delete_elem(&pending, &tid);
		return 0;
	}
	__builtin_memcpy(e, p, sizeof(*e));
	task = (struct task_struct *)bpf_get_current_task();
	e->h.ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->h.flags &= ~DP_HF_NO_PPID;
	e->has_result = 1;
	e->result = (__s32)ret;
	bpf_ringbuf_submit(e, dp_rb_flags());
	bpf_map_delete_elem(&pending, &tid);
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
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u8 one = 1;

	if (is_agent(id))
		return 0;
	bpf_map_update_elem(&inflight, &tid, &one, BPF_ANY);
	return 0;
}

SEC("kretsyscall/connect")
int BPF_KRETPROBE(dp_exit_connect_k, long ret)
{
	return exit_connect(ret);
}

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2

SEC("tp/sock/inet_sock_set_state")
int dp_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock *sk;
	struct dp_connect *p, *e;
	__u64 ck;
	int err;

	if (ctx->oldstate != TCP_SYN_SENT || ctx->protocol != IPPROTO_TCP)
		return 0;
	sk = (struct sock *)ctx->skaddr;
	ck = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	p = ck ? bpf_map_lookup_elem(&tcp_pending, &ck) : 0;
	if (!p) {
		/* the syscall fallback parks by socket address */
		ck = (__u64)(unsigned long)ctx->skaddr;
		p = bpf_map_lookup_elem(&tcp_pending, &ck);
		if (!p)
			return 0;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DP_CONNECT);
		bpf_map_delete_elem(&tcp_pending, &ck);
		return 0;
	}
	__builtin_memcpy(e, p, sizeof(*e));
	if (bpf_map_delete_elem(&tcp_pending, &ck) != 0) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	if (ctx->newstate == TCP_ESTABLISHED) {
		e->has_result = 1;
		e->result = 0;
	} else {
		err = BPF_CORE_READ(sk, sk_err);
		e->has_result = err != 0;
		e->result = -err;
	}
	bpf_ringbuf_submit(e, dp_rb_flags());
	return 0;
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
	fill_hdr_task(&c.h, DP_CONNECT, id);
	if (c.proto == IPPROTO_TCP && c.cookie &&
	    bpf_map_update_elem(&tcp_pending, &c.cookie, &c, BPF_ANY) == 0) {
		/* resolved by the state change or by sys_exit_connect, as in the cgroup path */
		bpf_map_update_elem(&tid_cookie, &tid, &c.cookie, BPF_ANY);
		return 0;
	}
	bpf_map_update_elem(&pending, &tid, &c, BPF_ANY);
	return 0;
}

SEC("tp/syscalls/sys_exit_connect")
int dp_exit_connect_tp(struct trace_event_raw_sys_exit *ctx)
{
	return exit_connect(ctx->ret);
}
