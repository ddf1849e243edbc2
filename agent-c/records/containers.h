/*
 * Containers (agent-c/containers.c): records of containerised processes are
 * attributed to their container (cgroup v2 id -> cgroup path -> runtime, id,
 * Kubernetes pod), and the libc inside a container's root filesystem gets the
 * getaddrinfo uprobes as well (the host's libc probes see only the host's file).
 */
#ifndef DPNDNCY_CONTAINERS_H
#define DPNDNCY_CONTAINERS_H

#include <stddef.h>
#include <stdint.h>

struct agent_bpf;
struct probe_result;
struct sbuf;

struct container_info {
	const char *runtime;   /* "docker", "containerd", "cri-o", "podman", "kubernetes" */
	char id[65];           /* the container id (64 hex), "" when only the pod is known */
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

/* container libcs: the agent's BPF handle + the host libcs already probed (uprobe DNS hook only) */
void containers_init(struct agent_bpf *a, const struct probe_result *pr);
/* every exec record: a new mount namespace with its own root gets its libcs probed */
void containers_on_exec(uint32_t pid);

#endif
