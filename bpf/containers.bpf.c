// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Container cgroups, named at birth: every cgroup made in the cgroup v2 hierarchy while the
 * agent runs is recorded (id -> path) when it is made, before any process can be moved in.
 * agent-c/records/containers.c resolves a record's cgroup id through this map first, so a container
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

/* the id of each cgroup made, with a forced wakeup: the agent learns of a new container at its
 * creation (and finds the client that asked while it is still connected), not at the next
 * drain of the event ring buffer, by which time a `docker run --rm` may be gone */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} cg_born_rb SEC(".maps");

/*
 * Container slices (`container-slice`, agent-c/records/runtimes.c), by the FNV-1a 64 hash of their path
 * under the root ("/system.slice"): a cgroup made directly below one, named docker-<id>.scope or
 * libpod-<id>.scope, is a container's and is marked in ct_judged_cg.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u64);
	__type(value, __u8);
} ct_slices SEC(".maps");

#include "ct_judged.bpf.h"

struct walk {
	struct ct_path *p;
	__u32 n;          /* path length, NUL excluded */
	__u32 last;       /* index of the last '/' */
	__u64 h;          /* FNV-1a 64 of p->s[0, last) */
};

static long last_slash(__u64 i, void *data)
{
	struct walk *w = data;

	if (i >= w->n)
		return 1;
	if (w->p->s[i & (CT_PATH - 1)] == '/')
		w->last = (__u32)i;
	return 0;
}

static long hash_prefix(__u64 i, void *data)
{
	struct walk *w = data;

	if (i >= w->last)
		return 1;
	w->h = (w->h ^ (__u8)w->p->s[i & (CT_PATH - 1)]) * 0x100000001b3ULL;
	return 0;
}

static __always_inline int at(const struct ct_path *p, __u32 i, const char *s, __u32 n)
{
	for (__u32 k = 0; k < n; k++)
		if (p->s[(i + k) & (CT_PATH - 1)] != s[k])
			return 0;
	return 1;
}

/* <slice>/docker-<id>.scope or <slice>/libpod-<id>.scope */
static __always_inline int in_slice_scope(struct ct_path *p, __u32 n)
{
	struct walk w = {.p = p, .n = n, .h = 0xcbf29ce484222325ULL};

	if (n < 16 || n >= CT_PATH)
		return 0;
	bpf_loop(CT_PATH, last_slash, &w, 0);
	if (w.last == 0 || w.last + 14 > n)
		return 0;
	if (!at(p, w.last + 1, "docker-", 7) && !at(p, w.last + 1, "libpod-", 7))
		return 0;
	if (!at(p, n - 6, ".scope", 6))
		return 0;
	bpf_loop(CT_PATH, hash_prefix, &w, 0);
	return bpf_map_lookup_elem(&ct_slices, &w.h) != 0;
}

SEC("tp/cgroup/cgroup_mkdir")
int dp_cgroup_mkdir(struct trace_event_raw_cgroup *ctx)
{
	__u32 zero = 0, off;
	__u8 one = 1;
	long n;
	__u64 id;
	struct ct_path *p;

	/* hierarchy id 0 is the cgroup v2 (default) hierarchy; v1 copies are not ours */
	if (ctx->root != 0)
		return 0;
	p = bpf_map_lookup_elem(&cg_scratch, &zero);
	if (!p)
		return 0;
	off = ctx->__data_loc_path & 0xffff;
	n = bpf_probe_read_kernel_str(p->s, sizeof(p->s), (void *)ctx + off);
	if (n <= 1)
		return 0;
	id = ctx->id;
	bpf_map_update_elem(&cg_born, &id, p, BPF_ANY);
	bpf_ringbuf_output(&cg_born_rb, &id, sizeof(id), BPF_RB_FORCE_WAKEUP);
	if (in_slice_scope(p, (__u32)(n - 1)))
		bpf_map_update_elem(&ct_judged_cg, &id, &one, BPF_ANY);
	return 0;
}
