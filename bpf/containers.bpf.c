// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Container cgroups, named at birth: every cgroup made in the cgroup v2 hierarchy while the
 * agent runs is recorded (id -> path) when it is made, before any process can be moved in.
 * agent-c/containers.c resolves a record's cgroup id through this map first, so a container
 * that ran for a millisecond and whose cgroup was removed (`docker run --rm`, a failed
 * connect) before its records were read is still attributed to its container, without
 * walking the hierarchy. A tracepoint that fires on cgroup creation only: no hot-path cost.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CT_PATH 256

struct ct_path {
	char s[CT_PATH];
};

/* cgroup v2 id -> its path under the hierarchy's root (LRU: old entries make room) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct ct_path);
} cg_born SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_path);
} cg_scratch SEC(".maps");

SEC("tp/cgroup/cgroup_mkdir")
int dp_cgroup_mkdir(struct trace_event_raw_cgroup *ctx)
{
	__u32 zero = 0, off;
	__u64 id;
	struct ct_path *p;

	/* hierarchy id 0 is the cgroup v2 (default) hierarchy; v1 copies are not ours */
	if (ctx->root != 0)
		return 0;
	p = bpf_map_lookup_elem(&cg_scratch, &zero);
	if (!p)
		return 0;
	off = ctx->__data_loc_path & 0xffff;
	if (bpf_probe_read_kernel_str(p->s, sizeof(p->s), (void *)ctx + off) < 0)
		return 0;
	id = ctx->id;
	bpf_map_update_elem(&cg_born, &id, p, BPF_ANY);
	return 0;
}
