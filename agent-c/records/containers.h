/*
 * Containers (agent-c/records/containers.c): records of containerised processes are
 * attributed to their container (cgroup v2 id -> cgroup path -> runtime, id, Kubernetes pod).
 * The libc inside a container's root filesystem is records/container_libc.h.
 */
#ifndef DPNDNCY_CONTAINERS_H
#define DPNDNCY_CONTAINERS_H

#include <stddef.h>
#include <stdint.h>

struct sbuf;

struct container_info {
	const char *runtime;   /* "docker", "containerd", "cri-o", "podman", "kubernetes" */
	char id[65];           /* the container id (64 hex; BuildKit: 25 base 36), "" when only the pod is known */
	char pod[37];          /* Kubernetes pod uid (with dashes), "" when none */
};

/* pure: parse a cgroup v2 path (relative to the cgroup2 mount); 1 container, 0 not */
int container_parse(const char *path, struct container_info *ci);

/* appends ,"container":{"runtime":..,"id":..,"pod":..|null} when cgid is a container's cgroup */
/* pid: the record's process, whose /proc/<pid>/cgroup names a cgroup not seen yet (0: none) */
void container_json(struct sbuf *b, uint64_t cgid, uint32_t pid);
/* the container of cgroup cgid (1), or none (0) */
int container_lookup(uint64_t cgid, uint32_t pid, struct container_info *out);

/* the path of cgroup `id` under the cgroup2 mount: from pid's /proc/<pid>/cgroup when it still
 * names it, else a walk of the hierarchy; 0 ok */
int cgroup_path_of(uint64_t id, uint32_t pid, char *out, size_t n);

/* What attribution learns from the runtimes (runtimes.c, a unit above this one), set by the
 * session; NULL members: nothing known */
struct container_sources {
	/* bpf/containers.bpf.c named cgroup id at birth: its path under the cgroup2 root; 0 found */
	int (*born_path)(uint64_t id, char *out, size_t n);
	/* the i-th judged cgroup (absolute, under cg2root), *is_parent when a container-cgroup
	 * (containers are made below it); 0 ok, -1 past the end */
	int (*judged)(int i, const char *cg2root, char *path, size_t n, int *is_parent);
	/* ,"image":..,"requested_by":.. of a container */
	void (*extra_json)(struct sbuf *b, const char *runtime, const char *id, uint64_t cgid);
};
void containers_set_sources(const struct container_sources *src);

#endif
