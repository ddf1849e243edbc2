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
#include "dpndncy.h"
#include "jobs.bpf.h"

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

/*
 * Container cgroups (`container-cgroup`: a runtime's --cgroup-parent), by the same hash: in
 * daemon mode an id-named cgroup made directly below one is a container's whose job the agent
 * must find (cg_job = DP_JOB_PENDING until it has).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u64);
	__type(value, __u8);
} ct_parents SEC(".maps");

struct walk {
	struct ct_path *p;
	__u32 n;          /* path length, NUL excluded */
	__u32 last;       /* index of the last '/' */
	__u64 h;          /* FNV-1a 64 of p->s[0, last), once hashed */
	__u8 hashed;
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

struct idchk {
	struct ct_path *p;
	__u32 from, to;
	__u8 hex, b36;
};

static long id_char(__u64 i, void *data)
{
	struct idchk *c = data;
	__u32 k = c->from + (__u32)i;
	char ch;

	if (k >= c->to)
		return 1;
	ch = c->p->s[k & (CT_PATH - 1)];
	if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
		c->hex = 0;
	if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z')))
		c->b36 = 0;
	return 0;
}

/* p->s[from, to) is a container id: Docker's and Podman's (64 hex), BuildKit's (25 base-36) */
static __always_inline int id_like(struct ct_path *p, __u32 from, __u32 to)
{
	struct idchk c = {.p = p, .from = from, .to = to, .hex = 1, .b36 = 1};

	if (to < from || (to - from != 64 && to - from != 25))
		return 0;
	bpf_loop(64, id_char, &c, 0);
	return to - from == 64 ? c.hex : c.b36;
}

/* the parent's hash, computed the first time a map is asked (most cgroups made need none) */
static __always_inline __u64 *parent_hash(struct walk *w)
{
	if (!w->hashed) {
		bpf_loop(CT_PATH, hash_prefix, w, 0);
		w->hashed = 1;
	}
	return &w->h;
}

/* the last component (after w->last) is <prefix><id>.scope, prefix docker- or libpod- */
static __always_inline int scope_named(struct walk *w)
{
	if (w->last == 0 || w->last + 14 > w->n)
		return 0;
	if (!at(w->p, w->last + 1, "docker-", 7) && !at(w->p, w->last + 1, "libpod-", 7))
		return 0;
	return at(w->p, w->n - 6, ".scope", 6);
}

/* <slice>/docker-<id>.scope or <slice>/libpod-<id>.scope */
static __always_inline int in_slice_scope(struct walk *w)
{
	return scope_named(w) && bpf_map_lookup_elem(&ct_slices, parent_hash(w)) != 0;
}

/* the parent's path (p->s[0, w->last)) ends in /name */
static __always_inline int parent_is(struct walk *w, const char *name, __u32 n)
{
	return w->last >= n && at(w->p, w->last - n, name, n);
}

/*
 * A container's cgroup, as agent-c/records/containers.c names them: docker-<id>.scope and
 * libpod-<id>.scope anywhere; <id> below docker/ (cgroupfs driver), buildkit/ (a RUN line),
 * libpod_parent/ or a container-cgroup parent.
 */
static __always_inline int container_named(struct walk *w)
{
	if (scope_named(w))
		return id_like(w->p, w->last + 8, w->n - 6);
	if (!id_like(w->p, w->last + 1, w->n))
		return 0;
	return parent_is(w, "/docker", 7) || parent_is(w, "/buildkit", 9) || parent_is(w, "/libpod_parent", 14) ||
	       bpf_map_lookup_elem(&ct_parents, parent_hash(w)) != 0;
}

/*
 * Daemon mode: the job of a cgroup made now. The creator's, when it has one (Podman's runtime
 * descends from the job's `podman`; a nested runtime runs in its container's cgroup); else, for
 * a container's cgroup, "pending" until the agent has found the client that asked. Before any
 * process can join it, so the container's first connect is never judged as no job's.
 */
static __always_inline void cgroup_job_at_mkdir(struct walk *w, __u64 id)
{
	__u32 job = job_of((__u32)(bpf_get_current_pid_tgid() >> 32));

	/* unknown: a process of the runtime daemon's own cgroup (runc under containerd), or of a
	 * container no client was found for: its containers are looked up all the same */
	if ((!job || job == DP_JOB_UNKNOWN) && container_named(w))
		job = DP_JOB_PENDING;
	if (job && bpf_map_update_elem(&cg_job, &id, &job, BPF_ANY) != 0)
		attrib_fail(1); /* full: judged as lost attribution (the strictest policy), not as no job */
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
	if (n - 1 >= 16 && n < CT_PATH) {
		struct walk w = {.p = p, .n = (__u32)(n - 1), .h = 0xcbf29ce484222325ULL};

		bpf_loop(CT_PATH, last_slash, &w, 0);
		if (in_slice_scope(&w))
			bpf_map_update_elem(&ct_judged_cg, &id, &one, BPF_ANY);
		/* before the agent is told: its answer replaces "pending", never the reverse */
		if (track_jobs)
			cgroup_job_at_mkdir(&w, id);
	}
	bpf_map_update_elem(&cg_born, &id, p, BPF_ANY);
	bpf_ringbuf_output(&cg_born_rb, &id, sizeof(id), BPF_RB_FORCE_WAKEUP);
	return 0;
}

/* daemon mode: a removed cgroup's job goes with it (cgroup ids are never reused) */
SEC("tp/cgroup/cgroup_rmdir")
int dp_cgroup_rmdir(struct trace_event_raw_cgroup *ctx)
{
	__u64 id = ctx->id;

	if (track_jobs && ctx->root == 0)
		bpf_map_delete_elem(&cg_job, &id);
	return 0;
}
