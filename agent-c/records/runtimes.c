/*
 * Container runtimes: enforcement beyond the job's cgroup, and who asked for a container.
 *
 * 1. Judged cgroups. A container's processes do not live in the job's cgroup: the runtime
 *    creates one per container under its own parent (/docker/<id>, a daemon's or a container's
 *    --cgroup-parent, <parent>/libpod-<id>). `container-cgroup PATH` names such a parent: the
 *    enforce programs (the same programs and maps that judge the job) are attached there too,
 *    with bpf_link (BPF_F_ALLOW_MULTI), before any container of the job starts. A cgroup made
 *    below it later inherits the effective programs at mkdir, before a process can be moved in,
 *    so there is no window between a container's creation and its first connect.
 *    `runtime-cgroup PATH` names the runtime daemon's own cgroup (dockerd + containerd): its
 *    egress is judged by the job's policy as well, which is what makes image pulls go only to
 *    registries the policy names, and Docker's embedded DNS (127.0.0.11, answered by dockerd,
 *    which forwards from its own sockets) reach only the sanctioned resolvers; the answers it
 *    gets are learned by the DNS program on that cgroup, so allowed names work in containers
 *    on user-defined networks.
 *
 * 2. Attribution. Podman has no daemon: the container descends from the `podman` process
 *    (podman -> conmon -> runtime -> container), so the kernel's fork inheritance gives it the
 *    step. A Docker container descends from containerd-shim, which belongs to no step. The
 *    step that asked is found through the daemon's API socket: when the first record of a new
 *    container is written, the established connections on the socket (sock_diag, in each
 *    client's network namespace: the daemon's end of a connection is made in the client's) give
 *    the client sockets, /proc gives their owners, and the
 *    kernel's steps map gives the owner's step. The client is connected while its container is
 *    created (`docker run`, `create` + `start`, `build`: the build's RUN containers are made
 *    while the CLI streams the build). Several clients at once: the one with a step and the
 *    newest connection. A label or the creation environment were not used: both are written
 *    by the client, which a job's own code controls, and neither exists for `docker build`.
 *    The image is the name the container was created from (config.v2.json in the data root).
 */
#include <stdio.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/netlink.h>
#undef MAX_LINKS /* netlink.h's, unrelated to agent.h's */
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include <bpf/bpf.h>

#include "base/sbuf.h"
#include "base/util.h"
#include "records/containers.h"
#include "records/runtimes.h"
#include "containers.skel.h"

static struct {
	int ncg;
	char cg[RT_MAX_CGROUPS][512];
	enum rt_cg_kind kind[RT_MAX_CGROUPS];
	int fd[RT_MAX_CGROUPS];
	int nsock;
	char sock[4][256];
	char docker_root[256];
} R;

static int steps_fd = -1;
static struct containers_bpf *cskel;

int runtimes_have_slices(void)
{
	for (int i = 0; i < R.ncg; i++)
		if (R.kind[i] == RT_CG_SLICE)
			return 1;
	return 0;
}

/* a container's scope directly below a slice: docker-<id>.scope, libpod-<id>.scope */
static int scope_name(const char *n)
{
	size_t l = strlen(n);

	return l > 13 && (!strncmp(n, "docker-", 7) || !strncmp(n, "libpod-", 7)) && !strcmp(n + l - 6, ".scope");
}

/* the slices into the kernel (ct_slices), and the container scopes already in them marked */
static int push_slices(int judged_fd, const char *cg2root, int walk, char *why, size_t whyn)
{
	int fd = bpf_map__fd(cskel->maps.ct_slices);
	uint32_t k = 0;
	uint8_t one = 1;

	for (int i = 0; i < R.ncg; i++) {
		char path[600];
		const char *rel;
		uint64_t h = 0xcbf29ce484222325ULL;
		enum rt_cg_kind kind;
		DIR *d;
		struct dirent *de;

		if (R.kind[i] != RT_CG_SLICE)
			continue;
		runtimes_cgroup(i, cg2root, path, sizeof(path), &kind);
		/* bpf/containers.bpf.c: FNV-1a 64 of the path under the root, as the tracepoint names it */
		rel = path + strlen(cg2root);
		for (const char *c = rel; *c; c++)
			h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
		if (k >= 8 || !*rel || strlen(rel) > 200) {
			snprintf(why, whyn, "container-slice %s: at most 8 slices, paths under 200 bytes", R.cg[i]);
			return -1;
		}
		if (!walk && bpf_map_update_elem(fd, &h, &one, BPF_ANY) < 0) {
			snprintf(why, whyn, "cannot fill ct_slices: %s", strerror(errno));
			return -1;
		}
		k++;
		/* containers started before the agent (a job's service containers) */
		d = walk ? opendir(path) : NULL;
		while (d && (de = readdir(d))) {
			struct stat st;
			uint64_t id;

			if (!scope_name(de->d_name) || fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
				continue;
			id = st.st_ino;
			bpf_map_update_elem(judged_fd, &id, &one, BPF_ANY);
		}
		if (d)
			closedir(d);
	}
	return 0;
}

int runtimes_bpf_load(int judged_fd, const char *cg2root, char *why, size_t whyn)
{
	int err;

	cskel = containers_bpf__open();
	if (!cskel || bpf_map__reuse_fd(cskel->maps.ct_judged_cg, judged_fd) < 0 || containers_bpf__load(cskel)) {
		snprintf(why, whyn, "cannot load bpf/containers.bpf.c: %s", strerror(errno));
		containers_bpf__destroy(cskel);
		cskel = NULL;
		return -1;
	}
	/* the slices, the tracepoint, then the scopes already there: one made meanwhile is marked by
	 * the tracepoint, the walk, or both */
	if (push_slices(judged_fd, cg2root, 0, why, whyn) < 0) {
		containers_bpf__destroy(cskel);
		cskel = NULL;
		return -1;
	}
	if ((err = containers_bpf__attach(cskel))) {
		snprintf(why, whyn, "cannot attach tracepoint/cgroup/cgroup_mkdir: %s", strerror(-err));
		containers_bpf__destroy(cskel);
		cskel = NULL;
		return -1;
	}
	return push_slices(judged_fd, cg2root, 1, why, whyn);
}

void runtimes_bpf_unload(void)
{
	containers_bpf__destroy(cskel);
	cskel = NULL;
}

int cgroup_born_path(uint64_t id, char *out, size_t n)
{
	char v[256];

	if (!cskel || bpf_map_lookup_elem(bpf_map__fd(cskel->maps.cg_born), &id, v) < 0)
		return -1;
	v[sizeof(v) - 1] = 0;
	snprintf(out, n, "%s", v);
	return 0;
}

int runtimes_config_line(char **tok, int n, char *why, size_t whyn)
{
	const char *d = tok[0];

	if (strcmp(d, "container-cgroup") && strcmp(d, "container-slice") && strcmp(d, "runtime-cgroup") &&
	    strcmp(d, "runtime-socket") && strcmp(d, "docker-root"))
		return 0;
	if (n != 2) {
		snprintf(why, whyn, "wrong number of arguments for '%s'", d);
		return -1;
	}
	if (!strcmp(d, "container-cgroup") || !strcmp(d, "runtime-cgroup") || !strcmp(d, "container-slice")) {
		if (R.ncg >= RT_MAX_CGROUPS) {
			snprintf(why, whyn, "too many container-cgroup / container-slice / runtime-cgroup lines (max %d)",
				 RT_MAX_CGROUPS);
			return -1;
		}
		if (strlen(tok[1]) >= sizeof(R.cg[0]) || strstr(tok[1], "..") || !tok[1][0] || !strcmp(tok[1], "/")) {
			snprintf(why, whyn, "%s: \"%s\" is not a cgroup path below the cgroup v2 root", d, tok[1]);
			return -1;
		}
		snprintf(R.cg[R.ncg], sizeof(R.cg[0]), "%s", tok[1]);
		R.kind[R.ncg] = !strcmp(d, "container-cgroup") ? RT_CG_CONTAINERS
				: !strcmp(d, "container-slice") ? RT_CG_SLICE : RT_CG_RUNTIME;
		R.fd[R.ncg] = -1;
		R.ncg++;
		return 1;
	}
	if (tok[1][0] != '/' || strlen(tok[1]) >= sizeof(R.sock[0])) {
		snprintf(why, whyn, "%s needs an absolute path", d);
		return -1;
	}
	if (!strcmp(d, "docker-root")) {
		snprintf(R.docker_root, sizeof(R.docker_root), "%s", tok[1]);
		return 1;
	}
	if (R.nsock >= 4) {
		snprintf(why, whyn, "too many runtime-socket lines (max 4)");
		return -1;
	}
	snprintf(R.sock[R.nsock++], sizeof(R.sock[0]), "%s", tok[1]);
	return 1;
}

int runtimes_cgroup(int i, const char *cg2root, char *path, size_t n, enum rt_cg_kind *kind)
{
	if (i < 0 || i >= R.ncg)
		return -1;
	if (R.cg[i][0] == '/' && strncmp(R.cg[i], cg2root, strlen(cg2root)) == 0)
		snprintf(path, n, "%s", R.cg[i]);
	else
		snprintf(path, n, "%s%s%s", cg2root, R.cg[i][0] == '/' ? "" : "/", R.cg[i]);
	*kind = R.kind[i];
	return 0;
}

void runtimes_cgroup_attached(int i, int fd)
{
	if (i >= 0 && i < R.ncg)
		R.fd[i] = fd;
}

int runtimes_cgroup_fd(int i)
{
	return i >= 0 && i < R.ncg ? R.fd[i] : -1;
}

void runtimes_set_steps_fd(int fd)
{
	steps_fd = fd;
}

/* ---------- the client of the runtime's API socket ---------- */

struct sockown {
	uint64_t ino;
	uint32_t pid;
};

struct scan {
	struct sockown *own;
	size_t nown, cap;
	int nsfd[32];             /* network namespaces of the processes (ours first) */
	uint64_t nsino[32];
	int nns;
};

static int is_daemon_comm(const char *c)
{
	return !strcmp(c, "dockerd") || !strcmp(c, "containerd") || !strncmp(c, "containerd-shim", 15);
}

static void add_ns(struct scan *s, const char *nspath)
{
	struct stat st;
	int fd;

	if (s->nns >= 32 || stat(nspath, &st) < 0)
		return;
	for (int i = 0; i < s->nns; i++)
		if (s->nsino[i] == (uint64_t)st.st_ino)
			return;
	fd = open(nspath, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	s->nsino[s->nns] = st.st_ino;
	s->nsfd[s->nns++] = fd;
}

/* every process's socket fds (inode -> pid), and the network namespaces they are in */
static void scan_proc(struct scan *s)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	add_ns(s, "/proc/self/ns/net");
	if (!d)
		return;
	while ((de = readdir(d))) {
		char p[300], comm[32] = "", link[64];
		uint32_t pid;
		DIR *fdd;
		struct dirent *fe;
		int cf;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		pid = (uint32_t)strtoul(de->d_name, NULL, 10);
		snprintf(p, sizeof(p), "/proc/%u/comm", pid);
		cf = open(p, O_RDONLY | O_CLOEXEC);
		if (cf >= 0) {
			ssize_t r = read(cf, comm, sizeof(comm) - 1);

			close(cf);
			comm[r > 0 ? r : 0] = 0;
			if (r > 0 && comm[r - 1] == '\n')
				comm[r - 1] = 0;
		}
		if (is_daemon_comm(comm))
			continue; /* the daemon's own ends are never the client */
		/* the daemon's end of a connection lives in the CLIENT's network namespace */
		snprintf(p, sizeof(p), "/proc/%u/ns/net", pid);
		add_ns(s, p);
		snprintf(p, sizeof(p), "/proc/%u/fd", pid);
		fdd = opendir(p);
		if (!fdd)
			continue;
		while ((fe = readdir(fdd))) {
			char fp[340];
			ssize_t l;

			if (fe->d_name[0] == '.')
				continue;
			snprintf(fp, sizeof(fp), "/proc/%u/fd/%s", pid, fe->d_name);
			l = readlink(fp, link, sizeof(link) - 1);
			if (l < 9)
				continue;
			link[l] = 0;
			if (strncmp(link, "socket:[", 8))
				continue;
			if (s->nown == s->cap) {
				size_t nc = s->cap ? s->cap * 2 : 256;
				struct sockown *no = realloc(s->own, nc * sizeof(*no));

				if (!no)
					break;
				s->own = no;
				s->cap = nc;
			}
			s->own[s->nown].ino = strtoull(link + 8, NULL, 10);
			s->own[s->nown++].pid = pid;
		}
		closedir(fdd);
	}
	closedir(d);
}

static uint32_t owner_of(const struct scan *s, uint64_t ino)
{
	for (size_t i = 0; i < s->nown; i++)
		if (s->own[i].ino == ino)
			return s->own[i].pid;
	return 0;
}

struct best {
	uint32_t pid, step;
	uint64_t ino;             /* of the daemon's end: newer connections have higher inodes */
};

static uint32_t step_of_pid(uint32_t pid)
{
	uint32_t st = 0;

	if (steps_fd < 0 || bpf_map_lookup_elem(steps_fd, &pid, &st) < 0)
		return 0;
	return st;
}

/* established unix sockets in namespace nsfd bound to one of the API socket files: their peers */
static void dump_ns(int nsfd, const struct stat *socks, int nsocks, const struct scan *s, struct best *b)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req r;
	} req;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	char buf[16384];
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), fd;

	if (self < 0)
		return;
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		close(self);
		return;
	}
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (setns(self, CLONE_NEWNET) < 0)
		err_msg("containers: cannot return to the agent's network namespace: %s", strerror(errno));
	close(self);
	if (fd < 0)
		return;
	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.r.sdiag_family = AF_UNIX;
	req.r.udiag_states = 1u << 1; /* TCP_ESTABLISHED */
	req.r.udiag_show = UDIAG_SHOW_VFS | UDIAG_SHOW_PEER;
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h;

		if (n <= 0)
			break;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct unix_diag_msg *m;
			struct rtattr *a;
			int alen, bound = 0;
			uint32_t peer = 0;

			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
				goto done;
			m = NLMSG_DATA(h);
			a = (struct rtattr *)(m + 1);
			alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
				if (a->rta_type == UNIX_DIAG_VFS && RTA_PAYLOAD(a) >= sizeof(struct unix_diag_vfs)) {
					struct unix_diag_vfs *v = RTA_DATA(a);

					for (int i = 0; i < nsocks; i++)
						/* the kernel's dev_t (major << 20 | minor), not stat's encoding */
						if (v->udiag_vfs_ino == socks[i].st_ino &&
						    v->udiag_vfs_dev >> 20 == major(socks[i].st_dev) &&
						    (v->udiag_vfs_dev & 0xfffff) == minor(socks[i].st_dev))
							bound = 1;
				} else if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= 4) {
					memcpy(&peer, RTA_DATA(a), 4);
				}
			}
			if (bound && peer) {
				uint32_t pid = owner_of(s, peer), st;

				if (!pid)
					continue;
				st = step_of_pid(pid);
				/* a client with a step beats one without; then the newest connection */
				if (!b->pid || (st && !b->step) || ((!!st == !!b->step) && m->udiag_ino > b->ino)) {
					b->pid = pid;
					b->step = st;
					b->ino = m->udiag_ino;
				}
			}
		}
	}
done:
	close(fd);
}

static void find_requester(uint32_t *pid, uint32_t *step)
{
	static const char *const dflt[] = {"/run/docker.sock", "/var/run/docker.sock"};
	struct stat socks[8];
	struct scan s;
	struct best b = {0};
	int nsocks = 0;

	*pid = 0;
	*step = 0;
	for (int i = 0; i < R.nsock; i++)
		if (stat(R.sock[i], &socks[nsocks]) == 0 && S_ISSOCK(socks[nsocks].st_mode))
			nsocks++;
	if (!R.nsock)
		for (size_t i = 0; i < 2; i++)
			if (stat(dflt[i], &socks[nsocks]) == 0 && S_ISSOCK(socks[nsocks].st_mode))
				nsocks++;
	if (!nsocks)
		return;
	memset(&s, 0, sizeof(s));
	scan_proc(&s);
	for (int i = 0; i < s.nns; i++) {
		dump_ns(s.nsfd[i], socks, nsocks, &s, &b);
		close(s.nsfd[i]);
	}
	free(s.own);
	*pid = b.pid;
	*step = b.step;
}

/* ---------- per container: requester, step, image (cached) ---------- */

#define ATTR_SLOTS 1024

struct attr {
	uint64_t cgid;
	uint32_t pid, step;
	char image[160];
};

static struct attr attrs[ATTR_SLOTS];

void docker_config_image(const char *json, char *out, size_t n)
{
	const char *c = strstr(json, "\"Config\":{"), *i, *e;
	size_t l;

	out[0] = 0;
	if (!c)
		return;
	i = strstr(c, "\"Image\":\"");
	if (!i)
		return;
	i += 9;
	e = strchr(i, '"');
	if (!e)
		return;
	l = (size_t)(e - i);
	if (l >= n)
		l = n - 1;
	memcpy(out, i, l);
	out[l] = 0;
}

static void docker_image(const char *id, char *out, size_t n)
{
	char path[512], *s;

	out[0] = 0;
	snprintf(path, sizeof(path), "%s/containers/%s/config.v2.json", R.docker_root[0] ? R.docker_root : "/var/lib/docker",
		 id);
	s = read_file_str(path, 1 << 20);
	if (!s)
		return;
	docker_config_image(s, out, n);
	free(s);
}

static struct attr *attr_get(uint64_t cgid, const char *runtime, const char *id)
{
	struct attr *a = &attrs[(cgid * 0x9E3779B97F4A7C15ULL) >> 54];

	if (a->cgid == cgid)
		return a;
	memset(a, 0, sizeof(*a));
	a->cgid = cgid;
	/* a BuildKit RUN container is dockerd's too: `docker build` holds the API socket meanwhile */
	if (!strcmp(runtime, "docker") || !strcmp(runtime, "buildkit")) {
		find_requester(&a->pid, &a->step);
		if (runtime[0] == 'd')
			docker_image(id, a->image, sizeof(a->image));
		if (getenv("DPNDNCY_DEBUG"))
			fprintf(stderr, "container %.12s: requested by pid %u (step id %u), image '%s'\n", id, a->pid, a->step,
				a->image);
	}
	return a;
}

int runtimes_born_rb_fd(void)
{
	return cskel ? bpf_map__fd(cskel->maps.cg_born_rb) : -1;
}

int runtimes_on_born(void *ctx, void *data, size_t len)
{
	struct container_info ci;
	uint64_t id;

	(void)ctx;
	if (len < sizeof(id))
		return 0;
	memcpy(&id, data, sizeof(id));
	/* a container's cgroup (named by cg_born): its requester now, while it is connected */
	if (container_lookup(id, 0, &ci))
		attr_get(id, ci.runtime, ci.id);
	return 0;
}

uint32_t container_step(uint64_t cgid, uint32_t pid)
{
	struct container_info ci;

	if (!cgid || !container_lookup(cgid, pid, &ci))
		return 0;
	return attr_get(cgid, ci.runtime, ci.id)->step;
}

void container_extra_json(struct sbuf *b, const char *runtime, const char *id, uint64_t cgid)
{
	struct attr *a = attr_get(cgid, runtime, id);

	/* only what is known: absent, not null, for other runtimes and for a requester not found */
	if (a->image[0]) {
		sb_puts(b, ",\"image\":");
		sb_json_cstr(b, a->image);
	}
	if (a->pid)
		sb_printf(b, ",\"requested_by\":%u", a->pid);
}

void containers_start_json(struct sbuf *b)
{
	if (!R.ncg && !R.nsock && !R.docker_root[0])
		return;
	sb_puts(b, ",\"containers\":{\"judged_cgroups\":[");
	for (int i = 0; i < R.ncg; i++) {
		sb_printf(b, "%s{\"path\":", i ? "," : "");
		sb_json_cstr(b, R.cg[i]);
		sb_printf(b, ",\"kind\":\"%s\"}",
			  R.kind[i] == RT_CG_CONTAINERS ? "containers" : R.kind[i] == RT_CG_SLICE ? "slice" : "runtime");
	}
	sb_puts(b, "],\"runtime_sockets\":[");
	for (int i = 0; i < R.nsock; i++) {
		if (i)
			sb_putc(b, ',');
		sb_json_cstr(b, R.sock[i]);
	}
	sb_puts(b, "]}");
}
