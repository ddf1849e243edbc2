/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Jobs (daemon mode, docs/daemon.md): which CI job a process belongs to. One definition for
 * every object that reads or writes it: the ones built on common.bpf.h, and containers.bpf.c,
 * which names a container cgroup's job when the cgroup is made. The agent creates the maps with
 * the exec object and hands the same fds to the others (bpf_map__reuse_fd), which needs the
 * definitions to agree.
 */
#ifndef DPNDNCY_JOBS_BPF_H
#define DPNDNCY_JOBS_BPF_H

/* tgid -> job id (bpf/exec.bpf.c: named at exec by the job marker, inherited at fork) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u32);
} jobs SEC(".maps");

/*
 * cgroup v2 id -> job id: the job of a process outside every job's process tree. A Docker
 * container descends from containerd-shim, not from the `docker` CLI of the job that asked for
 * it; its cgroup is the job's. Written when the cgroup is made (bpf/containers.bpf.c): the
 * creator's job, or DP_JOB_PENDING for a container's cgroup made by no job's process (runc
 * under containerd, systemd for a scope), which the agent then replaces with the job of the
 * runtime client that asked (agent-c/records/runtimes.c), with DP_JOB_UNKNOWN when it finds no
 * client, or deletes (no job's container).
 * Not LRU: an evicted entry would make a job's container a process of no job (not judged).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} cg_job SEC(".maps");

/* attribution lost to a full map (see struct dp_attrib_stats) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_attrib_stats);
} attrib_stats SEC(".maps");

/* set before load, daemon mode only: elsewhere the jobs maps stay empty, and the verifier drops
 * every lookup of them from the programs (one hash lookup less per event, fork and exit) */
const volatile __u8 track_jobs = 0;

/*
 * job id of the CURRENT task (tgid is its process; 0: none): its own, else its cgroup's (a
 * container's process). Callers run in the task's context: tracing and cgroup sock programs,
 * never cgroup_skb, whose packets carry the job of their socket's owner instead.
 */
static __always_inline __u32 job_of(__u32 tgid)
{
	__u64 cg;
	__u32 *j;

	if (!track_jobs)
		return 0;
	j = bpf_map_lookup_elem(&jobs, &tgid);
	if (j)
		return *j;
	cg = bpf_get_current_cgroup_id();
	j = bpf_map_lookup_elem(&cg_job, &cg);
	return j ? *j : 0;
}

/* the current task's cgroup has a job the agent or its creator gave it (not pending) */
static __always_inline int cgroup_job_settled(void)
{
	__u64 cg = bpf_get_current_cgroup_id();
	__u32 *j = bpf_map_lookup_elem(&cg_job, &cg);

	return j && *j != DP_JOB_PENDING;
}

/* has a job's process ever been left without its job (daemon mode)? */
static __always_inline int attrib_lost(void)
{
	__u32 zero = 0;
	struct dp_attrib_stats *st = bpf_map_lookup_elem(&attrib_stats, &zero);

	return !st || st->jobs_full != 0;
}

static __always_inline void attrib_fail(int job)
{
	__u32 zero = 0;
	struct dp_attrib_stats *st = bpf_map_lookup_elem(&attrib_stats, &zero);

	if (!st)
		return;
	if (job)
		__sync_fetch_and_add(&st->jobs_full, 1);
	else
		__sync_fetch_and_add(&st->steps_full, 1);
}

#endif
