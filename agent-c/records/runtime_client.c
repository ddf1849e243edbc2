/*
 * Who asked a container runtime daemon for a container: the client connected to its API
 * socket (agent-c/records/runtimes.c says when and why this is asked). The established
 * connections on the socket (sock_diag, in each client's network namespace: the daemon's end
 * of a connection is made in the client's) give the client sockets, /proc gives their owners,
 * and the kernel's steps and jobs maps give the owner's step and job. Several clients at once:
 * one with a step or a job, then the newest connection.
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
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include <bpf/bpf.h>

#include "base/util.h"
#include "records/runtime_client.h"

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
	struct requester r;
	uint32_t jobs[8];         /* the distinct jobs of the clients connected (daemon mode) */
	int njobs;
	uint64_t ino;             /* of the daemon's end: newer connections have higher inodes */
};

/* tgid -> value in a kernel map of the agent (steps, jobs); 0 none */
static uint32_t of_pid(int fd, uint32_t pid)
{
	uint32_t v = 0;

	if (fd < 0 || bpf_map_lookup_elem(fd, &pid, &v) < 0)
		return 0;
	return v;
}

/* established unix sockets in namespace nsfd bound to one of the API socket files: their peers */
static void dump_ns(int nsfd, const struct stat *socks, int nsocks, const struct scan *s, const struct requester_maps *km,
		    struct best *b)
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
				uint32_t pid = owner_of(s, peer), st, jb;
				int mine, theirs;

				if (!pid)
					continue;
				st = of_pid(km->steps_fd, pid);
				jb = of_pid(km->jobs_fd, pid);
				/* a client of a step or a job beats one of neither; then the newest connection */
				if (jb) {
					int k = 0;

					while (k < b->njobs && b->jobs[k] != jb)
						k++;
					if (k == b->njobs && b->njobs < 8)
						b->jobs[b->njobs++] = jb;
				}
				mine = st || jb;
				theirs = b->r.step || b->r.job;
				if (!b->r.pid || (mine && !theirs) || (mine == theirs && m->udiag_ino > b->ino)) {
					b->r = (struct requester){.pid = pid, .step = st, .job = jb};
					b->ino = m->udiag_ino;
				}
			}
		}
	}
done:
	close(fd);
}

void find_requester(const char (*sock)[256], int nsock, const struct requester_maps *km, struct requester *out)
{
	static const char *const dflt[] = {"/run/docker.sock", "/var/run/docker.sock"};
	struct stat socks[8];
	struct scan s;
	struct best b = {0};
	int nsocks = 0;

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < nsock && nsocks < 8; i++)
		if (stat(sock[i], &socks[nsocks]) == 0 && S_ISSOCK(socks[nsocks].st_mode))
			nsocks++;
	if (!nsock)
		for (size_t i = 0; i < 2; i++)
			if (stat(dflt[i], &socks[nsocks]) == 0 && S_ISSOCK(socks[nsocks].st_mode))
				nsocks++;
	if (!nsocks)
		return;
	memset(&s, 0, sizeof(s));
	scan_proc(&s);
	for (int i = 0; i < s.nns; i++) {
		dump_ns(s.nsfd[i], socks, nsocks, &s, km, &b);
		close(s.nsfd[i]);
	}
	free(s.own);
	*out = b.r;
	out->njobs = b.njobs;
}
