/*
 * Containers: attribution (the libcs inside containers are container_libc.c).
 * Every record header carries the cgroup v2 id of the task, which is the inode
 *    number of its cgroup directory. The id is resolved to a path by walking the cgroup2 mount
 *    (at most once a second: new cgroups appear all the time) and the path is parsed for the
 *    container runtime, the container id and the Kubernetes pod uid. Results, "not a container"
 *    included, are cached (set-associative, bounded, least recently used evicted). A miss first
 *    asks the record's process (/proc/<pid>/cgroup, checked against the id by the directory's
 *    inode: one read and one stat), so a container started after the last walk is attributed
 *    from its first record; only when that fails (the process is gone or moved on) does it walk.
 *
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
#include "base/sbuf.h"
#include "base/util.h"
#include "kernel/mounts.h"
#include "kernel/probe.h"
#include "kernel/bpfload.h"
#include "records/containers.h"

/* ---------- the path parser (pure) ---------- */

static int is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* a BuildKit container id (moby's identity.NewID: 25 characters of base 36, lower case) */
static int is_buildkit_id(const char *s, size_t n)
{
	if (n != 25)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
			return 0;
	return 1;
}

/* a pod uid: hex digits and dashes ('_' in systemd slice names), 32..36 of them
 * (36: a UUID; 32: a static pod's hash) */
static int pod_uid(const char *s, size_t n, char out[37])
{
	if (n < 32 || n > 36)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i] == '_' ? '-' : s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-'))
			return 0;
		out[i] = c;
	}
	out[n] = 0;
	return 1;
}

static int has_prefix(const char *s, size_t n, const char *p, size_t *pl)
{
	*pl = strlen(p);
	return n >= *pl && memcmp(s, p, *pl) == 0;
}

static int has_suffix(const char *s, size_t n, const char *x)
{
	size_t xl = strlen(x);

	return n >= xl && memcmp(s + n - xl, x, xl) == 0;
}

/* systemd driver: <prefix><64 hex>.scope (cgroupfs: <prefix><64 hex>) */
static const struct {
	const char *prefix, *runtime;
} scopes[] = {
	{"docker-", "docker"},
	{"cri-containerd-", "containerd"},
	{"crio-", "cri-o"},
	{"libpod-", "podman"},
};

int container_parse(const char *path, struct container_info *ci)
{
	const char *p = path, *prev = NULL;
	size_t prevn = 0;
	int kube = 0, found = 0;

	memset(ci, 0, sizeof(*ci));
	while (*p) {
		const char *c;
		size_t n, pl;
		char uid[37];

		while (*p == '/')
			p++;
		c = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - c);
		if (!n)
			break;
		/* Kubernetes: the pod slice (systemd) or pod directory (cgroupfs) */
		if (n == 8 && memcmp(c, "kubepods", 8) == 0) {
			kube = 1;
		} else if (has_prefix(c, n, "kubepods", &pl) && has_suffix(c, n, ".slice")) {
			const char *q = c + pl;
			size_t qn = n - pl - 6;
			const char *pod = qn >= 4 ? memmem(q, qn, "-pod", 4) : NULL;

			kube = 1;
			/* kubepods-pod<uid>.slice (guaranteed) or kubepods-<qos>-pod<uid>.slice */
			if (pod && pod_uid(pod + 4, (size_t)(q + qn - (pod + 4)), uid))
				memcpy(ci->pod, uid, sizeof(uid));
		} else if (kube && has_prefix(c, n, "pod", &pl) && pod_uid(c + pl, n - pl, uid)) {
			memcpy(ci->pod, uid, sizeof(uid));
		}
		/* the container itself: the innermost match wins (docker in docker) */
		for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++)
			if (has_prefix(c, n, scopes[i].prefix, &pl) &&
			    (is_hex64(c + pl, n - pl) || /* cgroupfs driver: crio-<id> */
			     (has_suffix(c, n, ".scope") && is_hex64(c + pl, n - pl - 6)))) {
				ci->runtime = scopes[i].runtime;
				memcpy(ci->id, c + pl, 64);
				ci->id[64] = 0;
				found = 1;
			}
		/* BuildKit under the systemd driver: moby hands it "<slice>:docker:", so docker-<id>.scope */
		if (has_prefix(c, n, "docker-", &pl) && has_suffix(c, n, ".scope") && is_buildkit_id(c + pl, n - pl - 6)) {
			ci->runtime = "buildkit";
			memcpy(ci->id, c + pl, 25);
			ci->id[25] = 0;
			found = 1;
		}
		/* dockerd's BuildKit runs each RUN line in <cgroup parent>/buildkit/<id> */
		if (prev && prevn == 8 && memcmp(prev, "buildkit", 8) == 0 && is_buildkit_id(c, n)) {
			ci->runtime = "buildkit";
			memcpy(ci->id, c, n);
			ci->id[n] = 0;
			found = 1;
		}
		/* cgroupfs driver: /docker/<id>, /kubepods/<qos>/pod<uid>/<id> (runtime unknown) */
		if (is_hex64(c, n)) {
			if (prev && prevn == 6 && memcmp(prev, "docker", 6) == 0) {
				ci->runtime = "docker";
			} else if (kube && ci->pod[0]) {
				ci->runtime = "kubernetes";
			} else {
				prev = c;
				prevn = n;
				continue;
			}
			memcpy(ci->id, c, 64);
			ci->id[64] = 0;
			found = 1;
		}
		prev = c;
		prevn = n;
	}
	if (!found)
		memset(ci, 0, sizeof(*ci));
	return found;
}

/* ---------- cgroup id -> container, cached ---------- */

static int parse_in_parents(const char *rel, struct container_info *ci);

#define CACHE_SETS 256
#define CACHE_WAYS 4
#define WALK_EVERY_NS 1000000000ULL
#define WALK_MAX_DEPTH 48

struct centry {
	uint64_t id;              /* 0: empty slot */
	uint64_t used;            /* LRU clock */
	int is_ct;
	struct container_info ci;
};

static struct centry cache[CACHE_SETS][CACHE_WAYS];
static uint64_t clock_now;
static uint64_t last_walk_ns;
static int walked;
static char cg_mnt[256];

static struct centry *cache_find(uint64_t id)
{
	struct centry *set = cache[(id * 0x9E3779B97F4A7C15ULL) >> 56];

	for (int w = 0; w < CACHE_WAYS; w++)
		if (set[w].id == id) {
			set[w].used = ++clock_now;
			return &set[w];
		}
	return NULL;
}

static void cache_put(uint64_t id, const struct container_info *ci)
{
	struct centry *set = cache[(id * 0x9E3779B97F4A7C15ULL) >> 56], *e = NULL;

	for (int w = 0; w < CACHE_WAYS && !e; w++)
		if (set[w].id == id || set[w].id == 0)
			e = &set[w];
	if (!e) {
		e = &set[0];
		for (int w = 1; w < CACHE_WAYS; w++)
			if (set[w].used < e->used)
				e = &set[w];
	}
	e->id = id;
	e->used = ++clock_now;
	e->is_ct = ci != NULL;
	if (ci)
		e->ci = *ci;
	else
		memset(&e->ci, 0, sizeof(e->ci));
}

static int cgroup_mount(void)
{
	if (!cg_mnt[0] && !find_mount("cgroup2", NULL, cg_mnt, sizeof(cg_mnt)))
		return 0;
	return 1;
}

/* depth-first over the cgroup2 mount: every container cgroup goes into the cache; 1 when
 * `want` was seen (its path in found) */
static int walk(int dfd, char *path, size_t len, int depth, uint64_t want, char *found, size_t fn)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int hit = 0;

	if (!d) {
		close(dfd);
		return 0;
	}
	while ((de = readdir(d))) {
		struct stat st;
		struct container_info ci;
		size_t nl;
		int sub;

		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		nl = strlen(de->d_name);
		if (len + 1 + nl + 1 > 4096)
			continue;
		path[len] = '/';
		memcpy(path + len + 1, de->d_name, nl + 1);
		if ((uint64_t)st.st_ino == want) {
			snprintf(found, fn, "%s", path);
			hit = 1;
		}
		if (container_parse(path, &ci))
			cache_put((uint64_t)st.st_ino, &ci);
		if (depth < WALK_MAX_DEPTH) {
			sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (sub >= 0 && walk(sub, path, len + 1 + nl, depth + 1, want, found, fn))
				hit = 1;
		}
		path[len] = 0;
	}
	closedir(d);
	return hit;
}

static void resolve_by_walk(uint64_t id)
{
	char path[4096], found[4096];
	struct container_info ci;
	int fd;

	last_walk_ns = now_boottime_ns();
	walked = 1;
	if (!cgroup_mount())
		goto none;
	fd = open(cg_mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		cg_mnt[0] = 0; /* a private mount of ours may be gone (stop): look again next time */
		goto none;
	}
	path[0] = 0;
	found[0] = 0;
	if (walk(fd, path, 0, 0, id, found, sizeof(found)) && container_parse(found, &ci)) {
		cache_put(id, &ci);
		return;
	}
none:
	cache_put(id, NULL);
}

/* the cgroup path (relative to the cgroup2 mount) /proc/<pid>/cgroup names, when it is still
 * the cgroup `id` (the process may have moved); 1 found */
static int pid_cgroup(uint32_t pid, uint64_t id, char *rel, size_t n)
{
	char f[64], path[4400];
	char *s, *p, *e;
	struct stat st;
	int ok = 0;

	if (!pid || !cgroup_mount())
		return 0;
	snprintf(f, sizeof(f), "/proc/%u/cgroup", pid);
	s = read_file_str(f, 16384);
	if (!s)
		return 0;
	for (p = s; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, "0::", 3) == 0)
			break;
	if (p) {
		p += 3;
		e = strchr(p, '\n');
		if (e)
			*e = 0;
		snprintf(path, sizeof(path), "%s%s", cg_mnt, p);
		if (stat(path, &st) == 0 && (uint64_t)st.st_ino == id) {
			snprintf(rel, n, "%s", p);
			ok = 1;
		}
	}
	free(s);
	return ok;
}

/* the process names its cgroup itself; 1 resolved (cached) */
static int resolve_by_pid(uint32_t pid, uint64_t id)
{
	char rel[4096];
	struct container_info ci;

	if (!pid_cgroup(pid, id, rel, sizeof(rel)))
		return 0;
	cache_put(id, parse_in_parents(rel, &ci) ? &ci : NULL);
	return 1;
}

int cgroup_path_of(uint64_t id, uint32_t pid, char *out, size_t n)
{
	char rel[4096], found[4096];
	int fd;

	if (!id || !cgroup_mount())
		return -1;
	if (pid_cgroup(pid, id, rel, sizeof(rel))) {
		snprintf(out, n, "%s%s", cg_mnt, rel);
		return 0;
	}
	fd = open(cg_mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rel[0] = 0;
	found[0] = 0;
	if (!walk(fd, rel, 0, 0, id, found, sizeof(found)))
		return -1;
	snprintf(out, n, "%s%s", cg_mnt, found);
	return 0;
}

/* the runtimes' part (runtimes.c, above this unit), through the session */
static struct container_sources SRC;

void containers_set_sources(const struct container_sources *src)
{
	SRC = *src;
}

static int judged(int i, const char *cg2root, char *path, size_t n, int *is_parent)
{
	return SRC.judged ? SRC.judged(i, cg2root, path, n, is_parent) : -1;
}

/* a path, also as a child of a container-cgroup: dockerd --cgroup-parent=/P makes P/<id>,
 * a name that does not say "docker"; 1 container */
static int parse_in_parents(const char *rel, struct container_info *ci)
{
	char path[600];
	int is_parent;
	const char *last;

	if (container_parse(rel, ci))
		return 1;
	last = strrchr(rel, '/');
	if (!last || !is_hex64(last + 1, strlen(last + 1)))
		return 0;
	for (int i = 0; judged(i, cg_mnt, path, sizeof(path), &is_parent) == 0; i++) {
		size_t pl = strlen(path) - strlen(cg_mnt);

		if (is_parent && (size_t)(last - rel) == pl && !memcmp(rel, path + strlen(cg_mnt), pl)) {
			memset(ci, 0, sizeof(*ci));
			ci->runtime = "docker";
			memcpy(ci->id, last + 1, 65);
			return 1;
		}
	}
	return 0;
}

/* bpf/containers.bpf.c named it when it was made (it may be gone by now); 1 resolved */
static int resolve_born(uint64_t id)
{
	char rel[300];
	struct container_info ci;

	if (!cgroup_mount() || !SRC.born_path || SRC.born_path(id, rel, sizeof(rel)) < 0)
		return 0;
	cache_put(id, parse_in_parents(rel, &ci) ? &ci : NULL);
	return 1;
}

/* the children of each container-cgroup (agent-c/records/runtimes.c); 1 when id is one of them */
static int resolve_in_parents(uint64_t id)
{
	char path[600], rel[1200];
	int is_parent;

	if (!cgroup_mount())
		return 0;
	for (int i = 0; judged(i, cg_mnt, path, sizeof(path), &is_parent) == 0; i++) {
		DIR *d;
		struct dirent *de;
		int hit = 0;

		if (!is_parent || !(d = opendir(path)))
			continue;
		while (!hit && (de = readdir(d))) {
			struct stat st;
			struct container_info ci;

			if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISDIR(st.st_mode) || (uint64_t)st.st_ino != id)
				continue;
			snprintf(rel, sizeof(rel), "%s/%s", path + strlen(cg_mnt), de->d_name);
			cache_put(id, parse_in_parents(rel, &ci) ? &ci : NULL);
			hit = 1;
		}
		closedir(d);
		if (hit)
			return 1;
	}
	return 0;
}

static const struct centry *lookup(uint64_t id, uint32_t pid)
{
	const struct centry *e;

	if (!id)
		return NULL;
	e = cache_find(id);
	if (e)
		return e;
	if (resolve_born(id) || resolve_by_pid(pid, id))
		return cache_find(id);
	/* a container gone before its records were read (short-lived: docker run --rm): the
	 * children of the configured container parents are a short list, not throttled */
	if (resolve_in_parents(id))
		return cache_find(id);
	if (!walked || now_boottime_ns() - last_walk_ns >= WALK_EVERY_NS) {
		resolve_by_walk(id);
		return cache_find(id);
	}
	return NULL; /* not known yet: asked again at the next record */
}

int container_lookup(uint64_t cgid, uint32_t pid, struct container_info *out)
{
	const struct centry *e = lookup(cgid, pid);

	if (!e || !e->is_ct)
		return 0;
	*out = e->ci;
	return 1;
}

void container_json(struct sbuf *b, uint64_t cgid, uint32_t pid)
{
	const struct centry *e = lookup(cgid, pid);

	if (!e || !e->is_ct)
		return;
	sb_puts(b, ",\"container\":{\"runtime\":");
	sb_json_cstr(b, e->ci.runtime);
	sb_puts(b, ",\"id\":");
	sb_json_cstr(b, e->ci.id);
	sb_puts(b, ",\"pod\":");
	if (e->ci.pod[0])
		sb_json_cstr(b, e->ci.pod);
	else
		sb_puts(b, "null");
	if (SRC.extra_json)
		SRC.extra_json(b, e->ci.runtime, e->ci.id, cgid);
	sb_putc(b, '}');
}
