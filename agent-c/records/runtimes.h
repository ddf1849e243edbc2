/*
 * Container runtimes (agent-c/records/runtimes.c, docs/containers.md): the cgroups where a runtime puts
 * the job's containers (and the runtime daemon's own cgroup) are judged by the job's policy in
 * enforce mode, and a Docker container's records carry the step of the client that asked the
 * daemon for it (the peer of the daemon's API socket) and the image it was created from.
 */
#ifndef DPNDNCY_RUNTIMES_H
#define DPNDNCY_RUNTIMES_H

#include <stddef.h>
#include <stdint.h>

struct sbuf;
struct judged_maps;

#define RT_MAX_CGROUPS 8

enum rt_cg_kind { RT_CG_CONTAINERS, RT_CG_RUNTIME, RT_CG_SLICE };

/* container-cgroup, container-slice, runtime-cgroup, runtime-socket, docker-root: 1 taken, 0 not ours, -1 bad */
int runtimes_config_line(char **tok, int n, char *why, size_t whyn);

/* the i-th judged cgroup (absolute: relative paths are joined to the cgroup2 mount); 0 ok, -1 past the end */
int runtimes_cgroup(int i, const char *cg2root, char *path, size_t n, enum rt_cg_kind *kind);
/* bpfload.c, once attached: the open fd of the i-th judged cgroup (kept for the integrity check) */
void runtimes_cgroup_attached(int i, int fd);
int runtimes_cgroup_fd(int i);

/* bpf/containers.bpf.c: cgroups named when they are made (tracepoint cgroup_mkdir); 0 ok */
/* m: the maps it shares (the connect object's ct_judged_cg, the exec object's jobs maps);
 * cg2root: the cgroup2 mount. Container slices are written into the kernel and their existing
 * container scopes marked; in daemon mode a new container cgroup's job is settled (cg_job) */
int runtimes_bpf_load(const struct judged_maps *m, const char *cg2root, char *why, size_t whyn);
int runtimes_have_slices(void);
void runtimes_bpf_unload(void);
/* the path (under the cgroup2 root) cgroup `id` was made with while the agent ran; 0 found */
int cgroup_born_path(uint64_t id, char *out, size_t n);

/* the ring buffer of cgroups made (-1: none) and its callback (agent.c adds it to its ring_buffer):
 * a new container's requester is looked up at once */
int runtimes_born_rb_fd(void);
int runtimes_on_born(void *ctx, void *data, size_t len);

/* the kernel's steps map (tgid -> step id), for the step of the client that asked for a container */
void runtimes_set_steps_fd(int fd);

/* a record in container cgroup cgid with no step of its own: the step of the container's
 * requester (0: none known) */
uint32_t container_step(uint64_t cgid, uint32_t pid);
/* daemon mode: the job of container cgroup cgid (its requester's; 0 none, DP_JOB_UNKNOWN not
 * found), for a record whose header says the kernel did not know it yet */
uint32_t container_job(uint64_t cgid, uint32_t pid);
/* ,"image":..,"requested_by":.. for a container (called by container_json) */
void container_extra_json(struct sbuf *b, const char *runtime, const char *id, uint64_t cgid);

/* ,"containers":{..} in the start record: what is judged, where the attribution comes from */
void containers_start_json(struct sbuf *b);

/* pure, for the tests' sake: the image name in a Docker config.v2.json text ("" none) */
void docker_config_image(const char *json, char *out, size_t n);

#endif
