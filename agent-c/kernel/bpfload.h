/* Loading, attaching, pinning and tearing down the BPF objects (agent-c/kernel/bpfload.c). */
#ifndef DPNDNCY_KERNEL_BPFLOAD_H
#define DPNDNCY_KERNEL_BPFLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "dpndncy.h"
#include "kernel/attachinfo.h"

struct config;
struct probe_result;
struct sbuf;
struct bpf_link;

/* links an agent holds: its hooks (about 16) and two per probed container libc (256 at most) */
#define MAX_LINKS (64 + 2 * 256)
struct agent_bpf;
/*
 * What the layers above add while the objects load and attach, each where the kernel needs it
 * (everything before the first program is attached); the session (commands/session.c) fills it. bpfload.c
 * names none of them.
 */
struct connect_bpf;
/* the maps of the loaded objects that the cgroup-birth object (bpf/containers.bpf.c) shares */
struct judged_maps {
	int judged;       /* connect: ct_judged_cg */
	int jobs;         /* exec: jobs, cg_job, attrib_stats */
	int cg_job;
	int attrib_stats;
	int track_jobs;   /* daemon mode */
};
struct bpf_hooks {
	/* exec object loaded: the step markers into step_cfg (0 ok), the step maps to the records */
	int (*exec_loaded)(const struct config *cfg, int step_cfg_fd, int step_names_fd, int steps_fd, char *errbuf,
			   size_t errn);
	uint32_t learned_ttl_min;   /* seconds, set into the connect object before it loads */
	int container_slices;       /* enforce mode: container slices are judged (gated programs loaded) */
	/* enforce mode, connect object loaded: the policy maps (0 ok) */
	int (*connect_loaded)(struct connect_bpf *conn, char *errbuf, size_t errn);
	/* connect object loaded: the cgroup-birth object (<0 with why: fatal only with container slices) */
	int (*judged_load)(const struct judged_maps *m, const char *cg2root, char *why, size_t whyn);
	/* enforce mode: the job cgroup's open fd */
	int (*enforce_cgroup_fd)(void);
	/* enforce mode: the i-th further judged cgroup (0 ok, -1 past the end), what it is called in
	 * errors, whether it is a slice (gated programs); and its fd once attached */
	int (*judged_cgroup)(int i, const char *cg2root, char *path, size_t n, const char **what, int *slice);
	void (*judged_attached)(int i, int fd);
	void (*unload)(void);       /* teardown, before the links go */
	/* connect records still parked at stop (bpf_flush_pending) */
	int (*on_record)(void *ctx, void *data, size_t len);
};
struct agent_bpf *bpf_setup(const struct config *cfg, const struct probe_result *pr, const char *cgroup_path,
			    int pin, const struct bpf_hooks *h, char *errbuf, size_t errn, struct attach_info *ai);
int bpf_ringbuf_fd(struct agent_bpf *a);
void bpf_flush_pending(struct agent_bpf *a);
void bpf_read_drops(struct agent_bpf *a, uint64_t drops[DP_KIND_MAX]);
void bpf_teardown(struct agent_bpf *a);
const char *bpf_pin_dir(struct agent_bpf *a);

/* one more libc (a container's, by path) gets the getaddrinfo uprobe + uretprobe; 0 ok */
int bpf_attach_libc(struct agent_bpf *a, const char *path, char *errbuf, size_t errn);

/* for the integrity checks: the i-th link, the observed cgroup v2 root, maps by name */
int bpf_link_at(struct agent_bpf *a, int i, struct bpf_link **l, const char **name);
int bpf_root_cgroup_fd(struct agent_bpf *a);
int bpf_exec_map_fd(struct agent_bpf *a, const char *name);
int bpf_file_map_fd(struct agent_bpf *a, const char *name);
/* connect() entry marks (bpf/tamper.bpf.c takes them over): the map's fd or -1, and the handover */
int bpf_connect_entry_fd(struct agent_bpf *a);
void bpf_connect_entry_moved(struct agent_bpf *a);

#endif
