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
#include "base/util.h"
#include "kernel/mounts.h"

/* A directory of its own, directly under /run, that exists only while the mount does: under the
 * state dir (/run/dpndncy/cgroup2) the parent was created and never removed, and /run/dpndncy
 * may be a systemd RuntimeDirectory that is not ours to remove. */
#define PRIVATE_CGROUP2 "/run/dpndncy-cgroup2"

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

static void set_adopted(const char *what, const char *path);

/* the source name of the mounts we make (`mount` shows "dpndncy on /sys/kernel/tracing"):
 * how a later agent tells a mount of ours, left by a killed agent, from somebody else's */
#define OUR_SOURCE "dpndncy"

/*
 * A mount we need is missing and we could not make it. EPERM/EACCES means no CAP_SYS_ADMIN (the
 * systemd unit's capability set, a container without it): say what to do, not only the errno.
 */
static void mount_error(char *errbuf, size_t errn, const char *name, const char *fstype,
			const char *path, const char *systemd_unit, int err)
{
	if (err == EPERM || err == EACCES)
		snprintf(errbuf, errn,
			 "%s is not mounted at %s and mounting it needs CAP_SYS_ADMIN (%s): mount it first "
			 "(`mount -t %s %s %s`; under systemd order the service After= and Wants= %s) "
			 "or run the agent with CAP_SYS_ADMIN",
			 name, path, strerror(err), fstype, fstype, path, systemd_unit);
	else
		snprintf(errbuf, errn, "cannot mount %s at %s: %s", name, path, strerror(err));
}

int mounts_setup(struct mounts *m, int need_bpffs, char *errbuf, size_t errn)
{
	memset(m, 0, sizeof(*m));
	if (!tracefs_ready()) {
		if (mount(OUR_SOURCE, "/sys/kernel/tracing", "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
			mount_error(errbuf, errn, "tracefs", "tracefs", "/sys/kernel/tracing",
				    "sys-kernel-tracing.mount", errno);
			return -1;
		}
		m->mounted_tracefs = 1;
		set_adopted("tracefs", "/sys/kernel/tracing");
	}
	if (!find_mount("cgroup2", NULL, m->cgroup2, sizeof(m->cgroup2))) {
		int r = mkdir_p(PRIVATE_CGROUP2, 0700);

		if (r < 0 || mount(OUR_SOURCE, PRIVATE_CGROUP2, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
			snprintf(errbuf, errn, "no cgroup v2 mount and cannot mount one at %s: %s",
				 PRIVATE_CGROUP2, strerror(r < 0 ? -r : errno));
			rmdir(PRIVATE_CGROUP2);
			mounts_teardown(m);
			return -1;
		}
		snprintf(m->cgroup2, sizeof(m->cgroup2), "%s", PRIVATE_CGROUP2);
		m->mounted_cgroup2 = 1;
		set_adopted("cgroup2", PRIVATE_CGROUP2);
	}
	if (need_bpffs && !find_mount("bpf", "/sys/fs/bpf", NULL, 0)) {
		if (mount(OUR_SOURCE, "/sys/fs/bpf", "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0) {
			mount_error(errbuf, errn, "bpffs", "bpf", "/sys/fs/bpf", "sys-fs-bpf.mount", errno);
			mounts_teardown(m);
			return -1;
		}
		m->mounted_bpffs = 1;
		set_adopted("bpffs", "/sys/fs/bpf");
	}
	return 0;
}

/*
 * Mounts are shared by every agent on the machine: one that found tracefs mounted by another
 * relies on it. An agent that mounts something leaves a marker at once (per mount namespace),
 * and whichever agent stops last, seeing a marker, a mount of ours (source "dpndncy") still on
 * top there, and no other agent alive, unmounts it. So a mount outlives its agent while another
 * agent still needs it, and is not leaked when its agent is SIGKILLed: the next agent out
 * removes it. A marker whose mount was replaced by somebody else's is dropped, never acted on.
 * (Mount ids would not do: the kernel reuses them.)
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

/* an agent of another mount namespace cannot use our mounts: it never keeps them alive */
static int same_mount_ns(long pid, ino_t self_ns)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", pid);
	return stat(path, &st) == 0 && st.st_ino == self_ns;
}

static int other_agent_alive(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	struct stat self_st;
	int found = 0;
	pid_t self = getpid();

	if (!d)
		return 0;
	if (stat("/proc/self/ns/mnt", &self_st) < 0) {
		closedir(d);
		return 0;
	}
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
			found = same_mount_ns(pid, self_st.st_ino) && holds_bpf(pid);
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

/* is the mount on top at path one of ours (source OUR_SOURCE)? */
static int ours_on_top(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], mp[4096], src[256];
	int ours = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - ");

		if (sscanf(line, "%*d %*d %*s %*s %4095s", mp) == 1 && !strcmp(mp, path) && sep &&
		    sscanf(sep + 3, "%*s %255s", src) == 1)
			ours = !strcmp(src, OUR_SOURCE); /* the last one listed is the one on top */
	}
	fclose(f);
	return ours;
}

static int adopted(const char *what)
{
	char p[128];

	adopt_path(p, sizeof(p), what);
	return access(p, F_OK) == 0;
}

/* path non-NULL: leave the marker; NULL: remove it */
static void set_adopted(const char *what, const char *path)
{
	char p[128];
	int fd;

	adopt_path(p, sizeof(p), what);
	if (!path) {
		unlink(p);
		rmdir(ADOPT_DIR); /* only when empty */
		return;
	}
	mkdir(ADOPT_DIR, 0700);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

/* 1: unmount it now; 0: leave it (not ours, or still needed by an agent that runs) */
static int release(int mounted_by_us, const char *what, const char *path)
{
	int marked = adopted(what);

	if (!mounted_by_us && !marked)
		return 0;
	if (!mounted_by_us && !ours_on_top(path)) {
		/* ours went away and something else is there now (or nothing): not ours to touch */
		set_adopted(what, NULL);
		return 0;
	}
	if (other_agent_alive()) {
		set_adopted(what, path);
		return 0;
	}
	set_adopted(what, NULL);
	return 1;
}

void mounts_teardown(const struct mounts *m)
{
	const char *cg = m->mounted_cgroup2 ? m->cgroup2 : PRIVATE_CGROUP2;

	if (release(m->mounted_bpffs, "bpffs", "/sys/fs/bpf"))
		umount2("/sys/fs/bpf", MNT_DETACH);
	if (release(m->mounted_cgroup2, "cgroup2", cg)) {
		umount2(cg, MNT_DETACH);
		rmdir(cg);
	}
	if (release(m->mounted_tracefs, "tracefs", "/sys/kernel/tracing"))
		umount2("/sys/kernel/tracing", MNT_DETACH);
}
