/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps and helpers every dpndncy BPF object shares. Each object declares the
 * same maps; the agent creates them once (with the first object it loads)
 * and hands the same fds to the others (bpf_map__reuse_fd), so there is one
 * ring buffer, one drop counter and one socket-owner table for all hooks.
 */
#ifndef DPNDNCY_COMMON_BPF_H
#define DPNDNCY_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "dpndncy.h"
#include "jobs.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define PROC_SUPER_MAGIC 0x9fa0

/* sized by the agent before load (bpf_map__set_max_entries) */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/*
 * Wake the agent only once a batch is waiting. A wakeup per record costs the traced process
 * an IPI and the agent a poll and a write per event (measured: ~19 us per loopback connect on
 * 2 vCPUs). The agent polls with a short timeout, so a quiet trickle is still drained within it.
 */
#define DP_WAKE_AT (256 << 10)
static __always_inline __u64 dp_rb_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= DP_WAKE_AT ? BPF_RB_FORCE_WAKEUP
									   : BPF_RB_NO_WAKEUP;
}

/* per-kind count of records lost because the ring buffer was full */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DP_KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* socket cookie -> process that connected / sent from it (DNS packet attribution) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct dp_sock_owner);
} sock_owner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_agent_cfg);
} agent_cfg SEC(".maps");

/* tgid -> step id (bpf/exec.bpf.c writes it at exec and fork, deletes it at exit) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u32);
} steps SEC(".maps");

/* daemon mode: job id -> policy slot (missing: slot 0, the default policy) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} job_slot SEC(".maps");

/* daemon mode: identity hash (project/name, or project) -> policy slot, see DP_ID_MAX */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u32);
} ident_slot SEC(".maps");

/* set before load: the agent's own tgid, whose events are not reported */
const volatile __u32 agent_tgid = 0;

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void count_drop(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &kind);
	if (n)
		*n += 1;
}

/* step id of a process, 0 when it has none */
static __always_inline __u32 step_of(__u32 tgid)
{
	__u32 *s = bpf_map_lookup_elem(&steps, &tgid);

	return s ? *s : 0;
}

static __always_inline int is_agent(__u64 pid_tgid)
{
	return (__u32)(pid_tgid >> 32) == agent_tgid;
}

static __always_inline void fill_hdr_ppid(struct dp_hdr *h, __u32 kind, __u64 pid_tgid, __u32 ppid)
{
	h->kind = kind;
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->ppid = ppid;
	h->uid = (__u32)bpf_get_current_uid_gid();
	h->flags = 0;
	h->ts = bpf_ktime_get_boot_ns();
	h->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	h->step = step_of(h->pid);
	h->job = job_of(h->pid);
}

/* header for program types that may read the current task (cgroup programs among them) */
static __always_inline void fill_hdr_task(struct dp_hdr *h, __u32 kind, __u64 pid_tgid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	fill_hdr_ppid(h, kind, pid_tgid, BPF_CORE_READ(task, real_parent, tgid));
}

/* the same for tracing programs (tracepoints, raw tracepoints, k/uprobes, LSM): through the
 * BTF-typed task the parent's pid is two plain loads, not two helper calls */
static __always_inline void fill_hdr_traced(struct dp_hdr *h, __u32 kind, __u64 pid_tgid)
{
	fill_hdr_ppid(h, kind, pid_tgid, bpf_get_current_task_btf()->real_parent->tgid);
}

/*
 * Can this packet's socket be getting a DNS answer (a packet from port 53)? Read from the
 * socket, not the packet: a connected socket (TCP, or UDP after connect()) only receives from
 * its peer's port, and a TCP listener receives handshakes, not answers. So only unconnected
 * UDP sockets and sockets whose peer is port 53 need their packets parsed; for every other
 * packet (all of a loopback TCP connect's, say) the cgroup_skb programs stop after two loads.
 * __sk_buff.remote_port holds the peer's port in network order in its upper 16 bits on little
 * endian (uapi bpf.h), hence the ntohl.
 */
static __always_inline int sock_may_get_dns(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	__u32 peer;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	peer = bpf_ntohl(skb->remote_port);
	if (sk->protocol == IPPROTO_TCP)
		return peer == 53;
	return peer == 0 || peer == 53;
}

/*
 * DNS over TCP: where the messages of a resolver's stream start. Every message is a 2-byte
 * length and that many bytes; a segment may start anywhere in one, and the bytes of a TXT
 * (or any) record are the asker's to choose, so a segment that merely begins like a DNS message
 * proves nothing: a job that picks a small TCP_MAXSEG can make one begin with a forged answer.
 * Boundaries are followed by sequence number from the SYN-ACK on (next = ISN + 1, then + 2 +
 * length for every message), which holds whatever the segmentation, for retransmits and out of
 * order segments too. A segment ahead of `next` (a gap) has no known boundary; a length prefix
 * split over two segments, or more than DP_TCP_MSGS messages in one segment, lose the stream:
 * nothing of it is parsed again (never guessed). Each program keeps its own map (both run on
 * the same packets). Only segments from port 53 of a TCP socket get here.
 */
struct dp_tcp_dns_flow {
	__u32 next;   /* sequence number of the next message's length prefix */
	__u32 ok;     /* 0: track lost */
};

#define DP_TCP_MSGS 8
#define TCP_FL_SYN 0x02
#define TCP_FL_ACK 0x10

/*
 * Offset in the segment's payload of the first message that starts in it (its length prefix),
 * and that message's length in *mlen; -1 when no known boundary lies in the segment.
 */
static __always_inline int tcp_dns_boundary(void *flows, __u64 cookie, struct __sk_buff *skb, __u32 poff,
					    __u32 plen, __u32 seq_be, __u8 tflags, __u32 *mlen)
{
	struct dp_tcp_dns_flow *f, nf = {};
	__u32 seq = bpf_ntohl(seq_be), b, first = 0;
	int have = 0;
	__s32 d;

	if (!cookie)
		return -1;
	if ((tflags & (TCP_FL_SYN | TCP_FL_ACK)) == (TCP_FL_SYN | TCP_FL_ACK)) {
		nf.next = seq + 1;
		nf.ok = 1;
		bpf_map_update_elem(flows, &cookie, &nf, BPF_ANY);
		return -1;
	}
	f = bpf_map_lookup_elem(flows, &cookie);
	if (!f || !f->ok || plen == 0)
		return -1;
	d = (__s32)(f->next - seq);
	if (d < 0 || (__u32)d >= plen)
		return -1; /* a gap before this segment, or no boundary in it (continuation, retransmit) */
	b = (__u32)d;
	for (int i = 0; i < DP_TCP_MSGS; i++) {
		__u8 lp[2];
		__u32 l;

		if (b + 2 > plen || bpf_skb_load_bytes(skb, poff + b, lp, 2) < 0) {
			f->ok = 0; /* the length prefix continues in the next segment */
			return have ? (int)first : -1;
		}
		l = ((__u32)lp[0] << 8) | lp[1];
		if (!have) {
			have = 1;
			first = b;
			*mlen = l;
		}
		b += 2 + l;
		if (b >= plen)
			break;
	}
	if (b < plen)
		f->ok = 0; /* more messages in one segment than we follow */
	else
		f->next = seq + b;
	return (int)first;
}

#endif
