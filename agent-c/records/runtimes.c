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
 *    (The client's connections: records/runtime_client.c.)
 *
 * 3. Daemon mode: the job. The kernel gives a container cgroup made by no job's process
 *    "pending" (bpf/containers.bpf.c, cg_job) and judges it by the default policy; the agent
 *    settles it here to the requester's job, or to no job (settle_job).
 */
#include <stdio.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <bpf/bpf.h>

#include "base/sbuf.h"
#include "base/util.h"
#include "kernel/bpfload.h"
#include "records/containers.h"
#include "records/runtime_client.h"
#include "records/runtimes.h"
#include "containers.skel.h"
#include "dpndncy.h"

static struct {
	int ncg;
	char cg[RT_MAX_CGROUPS][512];
	enum rt_cg_kind kind[RT_MAX_CGROUPS];
	int fd[RT_MAX_CGROUPS];
	int nsock;
	char sock[4][256];
	char docker_root[256];
} R;

static struct requester_maps KM = {-1, -1};
static int cg_job_fd = -1; /* daemon mode: the kernel's cgroup -> job map, else -1 */
static char cg_root[256];  /* the cgroup2 mount */
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

		if (R.kind[i] == RT_CG_RUNTIME)
			continue;
		runtimes_cgroup(i, cg2root, path, sizeof(path), &kind);
		/* bpf/containers.bpf.c: FNV-1a 64 of the path under the root, as the tracepoint names it */
		rel = path + strlen(cg2root);
		for (const char *c = rel; *c; c++)
			h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
		if (kind == RT_CG_CONTAINERS) {
			/* a container's id-named cgroup below it: its job is looked for (daemon mode) */
			if (!walk && bpf_map_update_elem(bpf_map__fd(cskel->maps.ct_parents), &h, &one, BPF_ANY) < 0) {
				snprintf(why, whyn, "cannot fill ct_parents: %s", strerror(errno));
				return -1;
			}
			continue;
		}
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

/*
 * Daemon mode: the runtime daemon serves every job, so its own egress (image pulls) is no job's
 * but must not be exempt: a pull from evil.example/x:<secret> would carry anything out. Its
 * cgroup's job is "unknown": judged by the default policy, which names the registries.
 */
static void runtime_cgroups_unknown(const char *cg2root)
{
	uint32_t unknown = DP_JOB_UNKNOWN;

	for (int i = 0; i < R.ncg; i++) {
		char path[600];
		enum rt_cg_kind kind;
		struct stat st;
		uint64_t id;

		runtimes_cgroup(i, cg2root, path, sizeof(path), &kind);
		if (kind != RT_CG_RUNTIME || stat(path, &st) < 0)
			continue;
		id = st.st_ino;
		bpf_map_update_elem(cg_job_fd, &id, &unknown, BPF_ANY);
	}
}

int runtimes_bpf_load(const struct judged_maps *m, const char *cg2root, char *why, size_t whyn)
{
	int err;

	cskel = containers_bpf__open();
	if (cskel) {
		cskel->rodata->track_jobs = m->track_jobs ? 1 : 0;
		/* a removed cgroup's job only matters where cgroups have jobs */
		bpf_program__set_autoload(cskel->progs.dp_cgroup_rmdir, m->track_jobs != 0);
	}
	KM.jobs_fd = m->jobs;
	if (!cskel || bpf_map__reuse_fd(cskel->maps.ct_judged_cg, m->judged) < 0 ||
	    bpf_map__reuse_fd(cskel->maps.jobs, m->jobs) < 0 || bpf_map__reuse_fd(cskel->maps.cg_job, m->cg_job) < 0 ||
	    bpf_map__reuse_fd(cskel->maps.attrib_stats, m->attrib_stats) < 0 || containers_bpf__load(cskel)) {
		snprintf(why, whyn, "cannot load bpf/containers.bpf.c: %s", strerror(errno));
		containers_bpf__destroy(cskel);
		cskel = NULL;
		return -1;
	}
	/* the slices, the tracepoint, then the scopes already there: one made meanwhile is marked by
	 * the tracepoint, the walk, or both */
	if (push_slices(m->judged, cg2root, 0, why, whyn) < 0) {
		containers_bpf__destroy(cskel);
		cskel = NULL;
		return -1;
	}
	if ((err = containers_bpf__attach(cskel))) {
		snprintf(why, whyn, "cannot attach tracepoint/cgroup/cgroup_mkdir, cgroup_rmdir: %s", strerror(-err));
		containers_bpf__destroy(cskel);
		cskel = NULL;
		return -1;
	}
	if (m->track_jobs) {
		cg_job_fd = m->cg_job;
		runtime_cgroups_unknown(cg2root);
	}
	snprintf(cg_root, sizeof(cg_root), "%s", cg2root);
	return push_slices(m->judged, cg2root, 1, why, whyn);
}

void runtimes_bpf_unload(void)
{
	containers_bpf__destroy(cskel);
	cskel = NULL;
	cg_job_fd = -1;
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
	KM.steps_fd = fd;
}

/* ---------- per container: requester, step, image (cached) ---------- */

#define ATTR_SLOTS 1024

struct attr {
	uint64_t cgid;
	uint32_t pid, step;
	uint32_t job;             /* daemon mode: the container's job (DP_JOB_PENDING: not found) */
	char image[160];
};

static struct attr attrs[ATTR_SLOTS];

/* daemon mode: the last job of a container id. dockerd restarts a container (--restart) with no
 * client connected; the restart is the job's that created it, not no job's */
#define IDJOB_SLOTS 256

static struct {
	char id[72];
	uint32_t job;
} idjob[IDJOB_SLOTS];
static unsigned idjob_next;

static uint32_t idjob_get(const char *id)
{
	for (int i = 0; i < IDJOB_SLOTS; i++)
		if (idjob[i].job && !strcmp(idjob[i].id, id))
			return idjob[i].job;
	return 0;
}

static void idjob_put(const char *id, uint32_t job)
{
	for (int i = 0; i < IDJOB_SLOTS; i++)
		if (idjob[i].job && !strcmp(idjob[i].id, id)) {
			idjob[i].job = job;
			return;
		}
	snprintf(idjob[idjob_next].id, sizeof(idjob[0].id), "%s", id);
	idjob[idjob_next].job = job;
	idjob_next = (idjob_next + 1) % IDJOB_SLOTS;
}

/* the processes of cgroup dir (and below) get job in the kernel's jobs map; how many changed */
static int claim_dir(const char *dir, uint32_t job, int depth)
{
	char p[700], *procs, *c;
	int changed = 0;
	DIR *d;
	struct dirent *de;

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	procs = read_file_str(p, 1 << 20);
	for (c = procs; c && *c;) {
		uint32_t pid = (uint32_t)strtoul(c, &c, 10), v = 0;

		while (*c == '\n')
			c++;
		if (pid && (bpf_map_lookup_elem(KM.jobs_fd, &pid, &v) < 0 || v != job) &&
		    bpf_map_update_elem(KM.jobs_fd, &pid, &job, BPF_ANY) == 0)
			changed++;
		if (!pid)
			break;
	}
	free(procs);
	d = depth < 8 ? opendir(dir) : NULL;
	while (d && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		changed += claim_dir(p, job, depth + 1);
	}
	if (d)
		closedir(d);
	return changed;
}

/*
 * The container's processes that took a job from their environment at exec before the cgroup
 * was settled (the environment is the job's own code: `docker run -e CI_JOB_ID=…` could name
 * another job) get the settled one. Again until nothing changes: a fork meanwhile inherits.
 */
static void claim_procs(uint64_t cgid, uint32_t job)
{
	char rel[256], dir[600];

	if (KM.jobs_fd < 0 || cgroup_born_path(cgid, rel, sizeof(rel)) < 0)
		return;
	snprintf(dir, sizeof(dir), "%s%s", cg_root, rel);
	for (int i = 0; i < 4 && claim_dir(dir, job, 0) > 0; i++)
		;
}

/*
 * Daemon mode: the job of container cgroup a->cgid, settled once, in the kernel (cg_job). An
 * entry that is not pending is the answer (the creator's job, or an earlier settlement: never
 * changed). A pending one takes the requester's job; with no requester connected, the job of an
 * earlier start of the same container; a requester of no job makes it no job's (the entry goes,
 * and a job its processes name in their environment stands: GitLab's Docker executor). Found
 * nothing: unknown, judged by the default policy, and that is said.
 */
static uint32_t settle_job(struct attr *a, const struct requester *req, const char *runtime, const char *id)
{
	uint32_t req_job = req->job;
	uint32_t v, job;
	int ours = !strcmp(runtime, "docker") || !strcmp(runtime, "buildkit");

	if (cg_job_fd < 0 || bpf_map_lookup_elem(cg_job_fd, &a->cgid, &v) < 0)
		return 0; /* made before the agent, or by no job for no job */
	if (v != DP_JOB_PENDING) {
		if (v && v < DP_JOB_UNKNOWN && id[0])
			idjob_put(id, v);
		return v;
	}
	job = req_job ? req_job : !a->pid && ours ? idjob_get(id) : 0;
	if (job) {
		/* the socket cannot say which of several clients asked: the newest connection's */
		if (req->njobs > 1)
			err_msg("container %s %.12s: clients of %d jobs were connected to the runtime's API socket; "
				"judged and logged as the job of pid %u (the newest connection)",
				runtime, id, req->njobs, a->pid);
		bpf_map_update_elem(cg_job_fd, &a->cgid, &job, BPF_EXIST);
		claim_procs(a->cgid, job);
		idjob_put(id, job);
		return job;
	}
	/* asked by no job's client; or a runtime with no API socket (Podman: the job's own
	 * containers descend from its `podman` and carry its job) */
	if (a->pid || !ours) {
		bpf_map_delete_elem(cg_job_fd, &a->cgid);
		return 0;
	}
	job = DP_JOB_UNKNOWN;
	bpf_map_update_elem(cg_job_fd, &a->cgid, &job, BPF_EXIST);
	claim_procs(a->cgid, job);
	err_msg("container %s %.12s: no client of the runtime's API socket found and no earlier start of it: "
		"judged by the default policy, and its records are in no job's log",
		runtime, id);
	return job;
}

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
	struct requester req = {0};

	if (a->cgid == cgid)
		return a;
	memset(a, 0, sizeof(*a));
	a->cgid = cgid;
	/* a BuildKit RUN container is dockerd's too: `docker build` holds the API socket meanwhile */
	if (!strcmp(runtime, "docker") || !strcmp(runtime, "buildkit")) {
		find_requester(R.sock, R.nsock, &KM, &req);
		a->pid = req.pid;
		a->step = req.step;
		if (runtime[0] == 'd')
			docker_image(id, a->image, sizeof(a->image));
	}
	a->job = settle_job(a, &req, runtime, id);
	if (getenv("DPNDNCY_DEBUG"))
		fprintf(stderr, "container %s %.12s: requested by pid %u (step id %u, job id %u), image '%s'\n", runtime, id,
			a->pid, a->step, a->job, a->image);
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
	if (container_lookup(id, 0, &ci)) {
		attr_get(id, ci.runtime, ci.id);
	} else if (cg_job_fd >= 0) {
		uint32_t v;

		/* id-named like a container's, but not one: no job's */
		if (bpf_map_lookup_elem(cg_job_fd, &id, &v) == 0 && v == DP_JOB_PENDING)
			bpf_map_delete_elem(cg_job_fd, &id);
	}
	return 0;
}

uint32_t container_job(uint64_t cgid, uint32_t pid)
{
	struct container_info ci;

	if (!cgid || !container_lookup(cgid, pid, &ci))
		return 0;
	return attr_get(cgid, ci.runtime, ci.id)->job;
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
