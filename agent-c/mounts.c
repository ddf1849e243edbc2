/* tracefs, cgroup v2 and bpffs: mount what is missing, unmount only that. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define PRIVATE_CGROUP2 DEFAULT_STATE_DIR "/cgroup2"

/* first mount of fstype (at want_path if given) -> out; 1 found, 0 not */
int find_mount(const char *fstype, const char *want_path, char *out, size_t n)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char line[4096];
	int found = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char dev[256], path[2048], type[64];

		if (sscanf(line, "%255s %2047s %63s", dev, path, type) != 3)
			continue;
		if (strcmp(type, fstype) != 0)
			continue;
		if (want_path && strcmp(path, want_path) != 0)
			continue;
		if (out)
			snprintf(out, n, "%s", path);
		found = 1;
		break;
	}
	fclose(f);
	return found;
}

static int tracefs_ready(void)
{
	struct stat st;

	return stat("/sys/kernel/tracing/events", &st) == 0 ||
	       stat("/sys/kernel/debug/tracing/events", &st) == 0;
}

int mounts_setup(struct mounts *m, int need_bpffs, char *errbuf, size_t errn)
{
	memset(m, 0, sizeof(*m));
	if (!tracefs_ready()) {
		if (mount("tracefs", "/sys/kernel/tracing", "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
			snprintf(errbuf, errn, "cannot mount tracefs at /sys/kernel/tracing: %s", strerror(errno));
			return -1;
		}
		m->mounted_tracefs = 1;
	}
	if (!find_mount("cgroup2", NULL, m->cgroup2, sizeof(m->cgroup2))) {
		int r = mkdir_p(PRIVATE_CGROUP2, 0700);

		if (r < 0 || mount("cgroup2", PRIVATE_CGROUP2, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
			snprintf(errbuf, errn, "no cgroup v2 mount and cannot mount one at %s: %s",
				 PRIVATE_CGROUP2, strerror(r < 0 ? -r : errno));
			mounts_teardown(m);
			return -1;
		}
		snprintf(m->cgroup2, sizeof(m->cgroup2), "%s", PRIVATE_CGROUP2);
		m->mounted_cgroup2 = 1;
	}
	if (need_bpffs && !find_mount("bpf", "/sys/fs/bpf", NULL, 0)) {
		if (mount("bpf", "/sys/fs/bpf", "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0) {
			snprintf(errbuf, errn, "cannot mount bpffs at /sys/fs/bpf: %s", strerror(errno));
			mounts_teardown(m);
			return -1;
		}
		m->mounted_bpffs = 1;
	}
	return 0;
}

void mounts_teardown(const struct mounts *m)
{
	/*
	 * Strictly what we mounted. Another agent that found our bpffs mounted loses its pins
	 * with it (its links stay held by its fds): acceptable in observe mode, where a pin only
	 * serves the cleanup after SIGKILL; never a leaked mount.
	 */
	if (m->mounted_bpffs)
		umount2("/sys/fs/bpf", MNT_DETACH);
	if (m->mounted_cgroup2) {
		umount2(m->cgroup2, MNT_DETACH);
		rmdir(m->cgroup2);
	}
	if (m->mounted_tracefs)
		umount2("/sys/kernel/tracing", MNT_DETACH);
}
