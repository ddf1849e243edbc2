/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Container slices (a part of the connect object like bpf/enforce.inc.c, #included by
 * bpf/connect.bpf.c after it; not a header): the enforce verdict, gated
 * to container cgroups. A runtime with the systemd cgroup driver puts each container in
 * <slice>/docker-<id>.scope (libpod-<id>.scope for podman), next to every other service of
 * system.slice / machine.slice, which a job's default-deny must never judge. These programs are
 * attached to such a slice (`container-slice`, agent-c/records/runtimes.c) instead of dp_enf_*: a
 * process is judged only when its cgroup, or an ancestor below the slice, is marked in
 * ct_judged_cg. bpf/containers.bpf.c marks a container's scope at its mkdir, before a process
 * can be moved in: no window before a container's first connect. Anything else in the slice
 * is allowed with rule exempt-cgroup, as a process outside the enforced cgroup would be.
 */
#define CT_GATE_LEVELS 16

#include "ct_judged.bpf.h"

/* 1: the current task is in a marked container cgroup (or below one) */
static __always_inline int ct_judged(void)
{
	for (int l = 1; l <= CT_GATE_LEVELS; l++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(l);

		if (!id)
			return 0; /* past the task's own level */
		if (bpf_map_lookup_elem(&ct_judged_cg, &id))
			return 1;
	}
	return 0;
}

static __always_inline int ct_gate_sock(struct bpf_sock_addr *ctx, int v6)
{
	if (!ct_judged()) {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct dp_judged j = {.cookie = bpf_get_socket_cookie(ctx), .verdict = 1, .rule = DP_R_EXEMPT_CG};

		/* the observe program reports this connect as allowed, outside what is judged */
		bpf_map_update_elem(&judged, &tid, &j, BPF_ANY);
		return 1;
	}
	return enf_sock(ctx, v6);
}

SEC("cgroup/connect4")
int dp_ctg_connect4(struct bpf_sock_addr *ctx)
{
	return ct_gate_sock(ctx, 0);
}

SEC("cgroup/connect6")
int dp_ctg_connect6(struct bpf_sock_addr *ctx)
{
	return ct_gate_sock(ctx, 1);
}

SEC("cgroup/sendmsg4")
int dp_ctg_sendmsg4(struct bpf_sock_addr *ctx)
{
	return ct_gate_sock(ctx, 0);
}

SEC("cgroup/sendmsg6")
int dp_ctg_sendmsg6(struct bpf_sock_addr *ctx)
{
	return ct_gate_sock(ctx, 1);
}

/* socket() and bind() in a container of the slice: the job cgroup's verdicts (enforce.inc.c),
 * the same functions, so the two cannot drift apart */
SEC("cgroup/sock_create")
int dp_ctg_sock_create(struct bpf_sock *ctx)
{
	return ct_judged() ? enf_sock_create(ctx) : 1;
}

SEC("cgroup/bind4")
int dp_ctg_bind4(struct bpf_sock_addr *ctx)
{
	return ct_judged() ? enf_bind(ctx, 0) : 1;
}

SEC("cgroup/bind6")
int dp_ctg_bind6(struct bpf_sock_addr *ctx)
{
	return ct_judged() ? enf_bind(ctx, 1) : 1;
}
