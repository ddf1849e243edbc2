/*
 * cgroup v2 id -> 1: a container's cgroup below a container slice. One definition for the two
 * objects that use it: containers.bpf.c marks a scope at its mkdir, connect.bpf.c's ct_gate
 * judges its processes; the agent hands the connect object's map to the other before load
 * (bpf_map__reuse_fd), which needs both definitions to agree.
 */
#ifndef DPNDNCY_CT_JUDGED_BPF_H
#define DPNDNCY_CT_JUDGED_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} ct_judged_cg SEC(".maps");

#endif
