/* cgroup v2, tracefs and bpffs mounts (agent-c/kernel/mounts.c). */
#ifndef DPNDNCY_KERNEL_MOUNTS_H
#define DPNDNCY_KERNEL_MOUNTS_H

#include <stddef.h>

struct mounts {
	char cgroup2[256];       /* path of a cgroup v2 mount */
	int mounted_cgroup2;     /* we mounted it (unmount at stop) */
	int mounted_tracefs;     /* we mounted /sys/kernel/tracing */
	int mounted_bpffs;       /* we mounted /sys/fs/bpf */
};
int find_mount(const char *fstype, const char *want_path, char *out, size_t n);
int mounts_setup(struct mounts *m, int need_bpffs, char *errbuf, size_t errn);
void mounts_teardown(const struct mounts *m);

#endif
