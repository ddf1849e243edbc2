// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Tamper evidence: ptrace and process_vm_readv/writev aimed at a protected
 * process (the agent itself, and the pids named by `protect-pid`). The filter
 * is in the kernel: a syscall whose target is not in protect_pids costs one
 * hash lookup. Hits are not sent through the ring buffer; they are counted in
 * tamper_hits (one entry per tracer, target, syscall and request), which the
 * agent's once-a-second integrity check reads and turns into `tamper` events.
 * A full hits table still counts in tamper_overflow, so a flood cannot hide.
 *
 * Only the maps below: no ring buffer, no drop counters (the shared `steps`
 * map is handed over by the agent so a hit names the tracer's CI step).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "dpndncy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PTRACE_TRACEME 0

/* pid -> 1: the agent and the protected processes */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} protect_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct dp_tamper_key);
	__type(value, struct dp_tamper_hit);
} tamper_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tamper_overflow SEC(".maps");

/* the shared step table (reused from the exec object) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u32);
} steps SEC(".maps");

/* the connect object's per-CPU connect() entry mark (bpf/connect_mark.bpf.h), handed over by
 * the agent when the raw sys_enter program below writes it: where that program runs for every
 * syscall anyway, each connect is spared the sys_enter_connect tracepoint's run */
#include "connect_mark.bpf.h"

/* set before load: write the connect() entry mark (the agent then detaches sys_enter_connect) */
const volatile __u8 connect_entry = 0;
/* set before load: the agent's tgid, whose connects are not recorded (as in bpf/common.bpf.h) */
const volatile __u32 agent_tgid = 0;

static __always_inline int record(__u32 target, __u32 sys, __u32 req, __u64 arg)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dp_tamper_key k = {};
	struct dp_tamper_hit *h, nh = {};
	struct task_struct *task;
	__u32 tgid = id >> 32, *st, zero = 0;
	__u64 *ov;

	k.tracer = tgid;
	k.target = target;
	k.sys = sys;
	k.req = req;
	h = bpf_map_lookup_elem(&tamper_hits, &k);
	if (h) {
		__sync_fetch_and_add(&h->count, 1);
		return 0;
	}
	task = (struct task_struct *)bpf_get_current_task();
	nh.ts = bpf_ktime_get_boot_ns();
	nh.count = 1;
	nh.tid = (__u32)id;
	nh.ppid = BPF_CORE_READ(task, real_parent, tgid);
	nh.uid = (__u32)bpf_get_current_uid_gid();
	nh.cgroup = bpf_get_current_cgroup_id();
	st = bpf_map_lookup_elem(&steps, &tgid);
	nh.step = st ? *st : 0;
	nh.arg = arg;
	bpf_get_current_comm(nh.comm, sizeof(nh.comm));
	if (bpf_map_update_elem(&tamper_hits, &k, &nh, BPF_NOEXIST) < 0) {
		h = bpf_map_lookup_elem(&tamper_hits, &k);
		if (h) {
			__sync_fetch_and_add(&h->count, 1);
		} else {
			ov = bpf_map_lookup_elem(&tamper_overflow, &zero);
			if (ov)
				__sync_fetch_and_add(ov, 1);
		}
	}
	return 0;
}

static __always_inline int hit(__u32 target, __u32 sys, __u32 req)
{
	if (!bpf_map_lookup_elem(&protect_pids, &target))
		return 0;
	return record(target, sys, req, 0);
}

/*
 * A process of the job that writes itself (or another of the job's processes) into a cgroup
 * outside the enforced one leaves judgement (root can). Moves are rare; every move on the
 * cgroup v2 hierarchy (hierarchy id 0) is counted here, and the agent, which knows from the
 * records where each process was, reports the ones that left the enforced cgroup. The
 * tracepoint fires after the move and cannot refuse it.
 */
SEC("tp/cgroup/cgroup_attach_task")
int dp_cgroup_attach(struct trace_event_raw_cgroup_migrate *ctx)
{
	if (ctx->dst_root != 0)
		return 0; /* a cgroup v1 hierarchy: not what enforcement is attached to */
	return record((__u32)ctx->pid, DP_TS_CGROUP_MOVE, (__u32)ctx->dst_id, ctx->dst_id);
}

/*
 * AF_PACKET sockets (root, CAP_NET_RAW) send and receive whole frames: their packets meet no
 * connect/sendmsg hook, and cgroup/sock_create never runs for that family, so enforce mode
 * cannot refuse them (README "Limits"); a job that opens one can send anywhere or inject DNS
 * answers. They are rare on a CI host (a DHCP client now and then), so every one is counted
 * and the agent reports those of the enforced cgroup. Where kprobes exist, packet_create sees
 * every way in (socket(2), io_uring); elsewhere sys_enter_socket, which misses io_uring.
 */
#define DP_AF_PACKET 17

SEC("kprobe/packet_create")
int BPF_KPROBE(dp_packet_create_k, struct net *net, struct socket *sock, int protocol, int kern)
{
	if (kern)
		return 0; /* the kernel's own */
	return record(bpf_get_current_pid_tgid() >> 32, DP_TS_PACKET_SOCKET, (__u32)BPF_CORE_READ(sock, type),
		      (__u64)(__u16)protocol);
}

SEC("tp/syscalls/sys_enter_socket")
int dp_socket_tp(struct trace_event_raw_sys_enter *ctx)
{
	if ((long)ctx->args[0] != DP_AF_PACKET)
		return 0;
	return record(bpf_get_current_pid_tgid() >> 32, DP_TS_PACKET_SOCKET, (__u32)ctx->args[1] & 0xf,
		      (__u64)(__u16)ctx->args[2]);
}

/*
 * Preferred: kprobes on the syscall functions (libbpf's ksyscall). A syscall tracepoint, even
 * one for a syscall nobody makes, puts every syscall of every process on the traced slow path
 * (DESIGN §6); a kprobe costs only the calls of its own function. The tracepoints below are the
 * fallback for kernels without kprobes, where the file hook uses syscall tracepoints anyway.
 */
SEC("ksyscall/ptrace")
int BPF_KSYSCALL(dp_ptrace_k, long req, long pid)
{
	if (req == PTRACE_TRACEME)
		return 0;
	return hit((__u32)pid, DP_TS_PTRACE, (__u32)req);
}

SEC("ksyscall/process_vm_readv")
int BPF_KSYSCALL(dp_vm_readv_k, long pid)
{
	return hit((__u32)pid, DP_TS_VM_READV, 0);
}

SEC("ksyscall/process_vm_writev")
int BPF_KSYSCALL(dp_vm_writev_k, long pid)
{
	return hit((__u32)pid, DP_TS_VM_WRITEV, 0);
}

#if defined(__TARGET_ARCH_x86)
/*
 * 32-bit syscalls (an ia32 binary, or int 0x80 from a 64-bit one) reach neither the ksyscall
 * probes (on __x64_sys_*) nor the tracepoints below: x86 leaves compat syscalls out of the
 * per-syscall tracepoints. raw_syscalls/sys_enter sees them, with i386 numbers. It runs for
 * every syscall, so it is attached only with the tracepoint fallback (where every syscall is
 * on the traced slow path anyway) and leaves after a few compares for all but four numbers;
 * the fourth, 64-bit connect(), is the connect object's entry mark (connect_entered).
 */
#define NR32_PTRACE 26
#define NR32_PROCESS_VM_READV 347
#define NR32_PROCESS_VM_WRITEV 348
#define NR64_CONNECT 42   /* i386's 42 is pipe: told apart by TS_COMPAT */
#define TS_COMPAT 0x0002

/* connect() entered: what bpf/connect.bpf.c's enter_connect() does, for 64-bit callers */
static __always_inline int connect_entered(void)
{
	__u64 id = bpf_get_current_pid_tgid();

	/* BTF-typed: a plain load, this runs on every connect */
	if (bpf_get_current_task_btf()->thread_info.status & TS_COMPAT)
		return 0; /* i386 pipe() */
	if ((__u32)(id >> 32) != agent_tgid)
		connect_mark_set((__u32)id);
	return 0;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(dp_sys_enter32, struct pt_regs *regs, long id)
{
	struct task_struct *t;

	if (id == NR64_CONNECT && connect_entry)
		return connect_entered();
	if (id != NR32_PTRACE && id != NR32_PROCESS_VM_READV && id != NR32_PROCESS_VM_WRITEV)
		return 0;
	t = (struct task_struct *)bpf_get_current_task();
	if (!(BPF_CORE_READ(t, thread_info.status) & TS_COMPAT))
		return 0; /* 64-bit msync (26): not ours */
	if (id == NR32_PTRACE) {
		long req = BPF_CORE_READ(regs, bx);

		if (req == PTRACE_TRACEME)
			return 0;
		return hit((__u32)BPF_CORE_READ(regs, cx), DP_TS_PTRACE, (__u32)req);
	}
	return hit((__u32)BPF_CORE_READ(regs, bx), id == NR32_PROCESS_VM_READV ? DP_TS_VM_READV : DP_TS_VM_WRITEV, 0);
}

/*
 * Where kprobes exist: every ptrace attach, process_vm_* and /proc/<pid>/mem access goes through
 * __ptrace_may_access -> security_ptrace_access_check, whatever the syscall entry. Only 32-bit
 * callers are reported from here (64-bit ones are the ksyscall probes' above, with the request).
 */
SEC("kprobe/security_ptrace_access_check")
int BPF_KPROBE(dp_ptrace_check_k, struct task_struct *child, unsigned int mode)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();

	if (!(BPF_CORE_READ(t, thread_info.status) & TS_COMPAT))
		return 0;
	return hit((__u32)BPF_CORE_READ(child, tgid), DP_TS_PTRACE32, mode);
}
#endif /* __TARGET_ARCH_x86: arm64's compat (aarch32) entry is not covered yet */

SEC("tp/syscalls/sys_enter_ptrace")
int dp_ptrace(struct trace_event_raw_sys_enter *ctx)
{
	long req = (long)ctx->args[0];

	if (req == PTRACE_TRACEME)
		return 0;
	return hit((__u32)ctx->args[1], DP_TS_PTRACE, (__u32)req);
}

SEC("tp/syscalls/sys_enter_process_vm_readv")
int dp_vm_readv(struct trace_event_raw_sys_enter *ctx)
{
	return hit((__u32)ctx->args[0], DP_TS_VM_READV, 0);
}

SEC("tp/syscalls/sys_enter_process_vm_writev")
int dp_vm_writev(struct trace_event_raw_sys_enter *ctx)
{
	return hit((__u32)ctx->args[0], DP_TS_VM_WRITEV, 0);
}
