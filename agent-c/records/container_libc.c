/*
 * Containers: their libcs (attribution is containers.c).
 *
 * The getaddrinfo uprobes attached at start sit on the host's libc files; a container has its
 * own libc (another inode) that they do not see. On every exec the process's mount namespace
 * and root are compared with those already handled; a new root that is not the host's (pid 1's)
 * is searched for glibc and musl, and each libc file not probed yet (the host's included;
 * containers of one image share the file under their overlayfs mounts: see file_id) gets the
 * probes too, up to MAX_CONTAINER_LIBCS. Whatever cannot be probed (static binaries, no libc
 * found, the cap) is still covered by the packet-level DNS hook on the cgroup v2 root.
 */
#include <stdio.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "agent.h"
#include "base/util.h"
#include "kernel/probe.h"
#include "kernel/bpfload.h"
#include "records/container_libc.h"

#define MAX_CONTAINER_LIBCS 256
#define MAX_ROOTS 512

struct fid {
	uint64_t dev, ino;
	uint64_t size, mtime;     /* overlayfs only (dev 0 there) */
};

static struct agent_bpf *abpf;
static struct fid probed[MAX_CONTAINER_LIBCS + 16];  /* libc files with the probes: host's first */
static int nprobed, ncontainer_libcs, cap_said;
static struct fid host_root;
static struct {
	uint64_t mntns;
	struct fid root;
} roots[MAX_ROOTS];                                 /* (mount namespace, root) already handled */
static unsigned nroots, roots_next;

/*
 * Which file a probe on fd lands on. A uprobe sits on the real inode under overlayfs (every
 * container image), which every container of an image shares, while stat() there reports each
 * mount's own st_dev (with the real st_ino when the layers share a filesystem, as Docker's and
 * containerd's do). So an overlayfs file is known by inode, size and mtime, without the device;
 * any other file by device and inode.
 */
#define OVERLAYFS_MAGIC 0x794c7630

static int file_id(int fd, struct fid *id)
{
	struct stat st;
	struct statfs sf;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	memset(id, 0, sizeof(*id));
	id->ino = st.st_ino;
	if (fstatfs(fd, &sf) == 0 && sf.f_type == OVERLAYFS_MAGIC) {
		id->size = (uint64_t)st.st_size;
		id->mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
	} else {
		id->dev = st.st_dev;
	}
	return 0;
}

static int is_probed(const struct fid *id)
{
	for (int i = 0; i < nprobed; i++)
		if (probed[i].dev == id->dev && probed[i].ino == id->ino && probed[i].size == id->size &&
		    probed[i].mtime == id->mtime)
			return 1;
	return 0;
}

void containers_init(struct agent_bpf *a, const struct probe_result *pr)
{
	struct stat st;
	const char *off = getenv("DPNDNCY_NO_CONTAINER_LIBC");

	if (off && *off && strcmp(off, "0") != 0)
		return;
	/* pid 1's root, not ours: the agent may run in a container (hostPID); ours when pid 1's
	 * cannot be read (ptrace access checks of a more privileged pid 1) */
	if (stat("/proc/1/root", &st) < 0 && stat("/proc/self/root", &st) < 0)
		return;
	host_root.dev = st.st_dev;
	host_root.ino = st.st_ino;
	for (int i = 0; i < pr->nlibc && nprobed < 16; i++) {
		int fd = open(pr->libc[i], O_RDONLY | O_CLOEXEC);

		if (fd >= 0 && file_id(fd, &probed[nprobed]) == 0)
			nprobed++;
		if (fd >= 0)
			close(fd);
	}
	abpf = a;
}

/* a path inside the root: absolute symlinks stay in it (openat2 RESOLVE_IN_ROOT, Linux 5.6) */
static int open_in_root(int rootfd, const char *rel)
{
	static int no_openat2;
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	if (!no_openat2) {
		fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
		if (fd >= 0 || errno != ENOSYS)
			return (int)fd;
		no_openat2 = 1;
	}
	/* older kernels: a symlink may then lead out to the host's file, which dedupe skips */
	return openat(rootfd, rel, O_RDONLY | O_CLOEXEC);
}

static void cap_reached(const char *why)
{
	if (cap_said)
		return;
	cap_said = 1;
	err_msg("container libcs: %s; lookups through further container libcs are seen by the "
		"packet-level DNS hook only", why);
}

static void try_libc(int rootfd, uint32_t pid, const char *rel)
{
	struct fid id;
	char fdpath[64], err[512];
	int fd;

	if (ncontainer_libcs >= MAX_CONTAINER_LIBCS) {
		cap_reached("the cap of 256 probed container libcs is reached");
		return;
	}
	fd = open_in_root(rootfd, rel);
	if (fd < 0)
		return;
	if (file_id(fd, &id) < 0 || is_probed(&id)) {
		close(fd);
		return;
	}
	/* the probe holds the inode: valid after the process and this fd are gone */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	if (bpf_attach_libc(abpf, fdpath, err, sizeof(err)) == 0) {
		probed[nprobed++] = id;
		ncontainer_libcs++;
		if (getenv("DPNDNCY_DEBUG"))
			fprintf(stderr, "container libc probed: /proc/%u/root/%s\n", pid, rel);
	} else if (strstr(err, "too many links")) {
		cap_reached(err);
	} else if (getenv("DPNDNCY_DEBUG")) {
		fprintf(stderr, "container libc /proc/%u/root/%s not probed: %s\n", pid, rel, err);
	}
	close(fd);
}

/* the container's /etc/ld.so.cache: every path naming libc.so.6 (as probe.c reads the host's) */
static void libcs_from_ldcache(int rootfd, uint32_t pid)
{
	int fd = open_in_root(rootfd, "etc/ld.so.cache");
	char buf[65536], name[512];
	size_t len = 0;
	ssize_t n;
	int found = 0;

	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0 && found < 8)
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == 0) {
				name[len] = 0;
				if (len > 10 && name[0] == '/' && strcmp(name + len - 10, "/libc.so.6") == 0 &&
				    found++ < 8)
					try_libc(rootfd, pid, name + 1);
				len = 0;
			} else if (len < sizeof(name) - 1) {
				name[len++] = buf[i];
			} else {
				len = 0;
			}
		}
	close(fd);
}

void containers_on_exec(uint32_t pid)
{
	static const char *const common[] = {
		"lib/" LIBC_MULTIARCH "/libc.so.6", "usr/lib/" LIBC_MULTIARCH "/libc.so.6",
		"lib64/libc.so.6", "usr/lib64/libc.so.6", "lib/libc.so.6", "usr/lib/libc.so.6",
		"lib/" MUSL_LOADER, "usr/lib/" MUSL_LOADER,
	};
	char path[64];
	struct stat ns, root;
	int rootfd;

	if (!abpf)
		return;
	/* the hot path: one stat (almost every exec has the host's root), then the namespace */
	snprintf(path, sizeof(path), "/proc/%u/root", pid);
	if (stat(path, &root) < 0)
		return;
	if ((uint64_t)root.st_dev == host_root.dev && (uint64_t)root.st_ino == host_root.ino)
		return;
	{
		char nspath[64];

		snprintf(nspath, sizeof(nspath), "/proc/%u/ns/mnt", pid);
		if (stat(nspath, &ns) < 0)
			return;
	}
	for (unsigned i = 0; i < nroots; i++)
		if (roots[i].mntns == (uint64_t)ns.st_ino && roots[i].root.dev == (uint64_t)root.st_dev &&
		    roots[i].root.ino == (uint64_t)root.st_ino)
			return;
	/* a new root (a container's, or a chroot in a namespace): remember it, oldest evicted */
	roots[roots_next].mntns = ns.st_ino;
	roots[roots_next].root.dev = root.st_dev;
	roots[roots_next].root.ino = root.st_ino;
	roots_next = (roots_next + 1) % MAX_ROOTS;
	if (nroots < MAX_ROOTS)
		nroots++;
	rootfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return;
	libcs_from_ldcache(rootfd, pid);
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		try_libc(rootfd, pid, common[i]);
	close(rootfd);
}
