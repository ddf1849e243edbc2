/* tracefs, cgroup v2 and bpffs: mount what is missing, unmount only that. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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

/*
 * Mounts are shared by every agent on the machine: one that found tracefs mounted by another
 * relies on it. So an agent that mounted something and stops while another agent still runs
 * does not unmount it; it leaves an "adopted" marker instead, and whichever agent stops last
 * (seeing the marker and no other agent alive) unmounts it. Markers are per mount namespace.
 */
#define ADOPT_DIR "/run/dpndncy-mounts"

/* does pid hold BPF programs or links (an armed agent, not a `stop` client or a `start`
 * still waiting for its daemon)? */
static int holds_bpf(long pid)
{
	char dir[64], path[128], target[64];
	struct dirent *de;
	DIR *d;
	int found = 0;

	snprintf(dir, sizeof(dir), "/proc/%ld/fd", pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		found = !strcmp(target, "anon_inode:bpf-link") || !strcmp(target, "anon_inode:bpf-prog");
	}
	closedir(d);
	return found;
}

static int other_agent_alive(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = 0;
	pid_t self = getpid();

	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		char path[64], comm[32] = "";
		long pid = strtol(de->d_name, NULL, 10);
		FILE *f;

		if (pid <= 0 || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, "dpndncy-agent\n"))
			found = holds_bpf(pid);
		fclose(f);
	}
	closedir(d);
	return found;
}

static void adopt_path(char *out, size_t n, const char *what)
{
	struct stat st;
	unsigned long long ns = stat("/proc/self/ns/mnt", &st) == 0 ? (unsigned long long)st.st_ino : 0;

	snprintf(out, n, ADOPT_DIR "/%llu-%s", ns, what);
}

static int adopted(const char *what)
{
	char p[128];

	adopt_path(p, sizeof(p), what);
	return access(p, F_OK) == 0;
}

static void set_adopted(const char *what, int on)
{
	char p[128];
	int fd;

	adopt_path(p, sizeof(p), what);
	if (!on) {
		unlink(p);
		rmdir(ADOPT_DIR); /* only when empty */
		return;
	}
	mkdir(ADOPT_DIR, 0700);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

/* 1: unmount it now; 0: leave it (not ours, or handed over to an agent still running) */
static int release(int mounted_by_us, const char *what)
{
	if (!mounted_by_us && !adopted(what))
		return 0;
	if (other_agent_alive()) {
		set_adopted(what, 1);
		return 0;
	}
	set_adopted(what, 0);
	return 1;
}

void mounts_teardown(const struct mounts *m)
{
	if (release(m->mounted_bpffs, "bpffs"))
		umount2("/sys/fs/bpf", MNT_DETACH);
	if (release(m->mounted_cgroup2, "cgroup2")) {
		const char *path = m->mounted_cgroup2 ? m->cgroup2 : PRIVATE_CGROUP2;

		umount2(path, MNT_DETACH);
		rmdir(path);
	}
	if (release(m->mounted_tracefs, "tracefs"))
		umount2("/sys/kernel/tracing", MNT_DETACH);
}
