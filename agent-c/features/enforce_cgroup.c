/*
 * Enforce mode, the job cgroup: made (or checked, --cgroup) and joined before the command runs,
 * removed after; its path kept in the state dir for a `stop` after SIGKILL.
 */
#include <stdio.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "dpndncy.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "features/enforce_agent.h"
#include "features/enforce_state.h"
#include "enforce.h"
#include "connect.skel.h"

static int cg_fd = -1; /* the job cgroup, once opened */

/* ---- the job cgroup ---- */

void enforce_set_cgroup(const char *path)
{
	P.want_cgroup = path;
}

const char *enforce_cgroup_path(void)
{
	return P.cgroup;
}

int enforce_cgroup_fd(void)
{
	return cg_fd;
}

int enforce_prepare(const char *root, char *errbuf, size_t errn)
{
	struct statfs sf;
	struct stat st, rst;

	if (P.want_cgroup) {
		if (P.want_cgroup[0] == '/')
			snprintf(P.cgroup, sizeof(P.cgroup), "%s", P.want_cgroup);
		else
			snprintf(P.cgroup, sizeof(P.cgroup), "%s/%s", root, P.want_cgroup);
	} else {
		snprintf(P.cgroup, sizeof(P.cgroup), "%s/dpndncy-%d", root, (int)getpid());
		if (mkdir(P.cgroup, 0755) < 0) {
			snprintf(errbuf, errn, "enforce: cannot create cgroup %s: %s", P.cgroup, strerror(errno));
			P.cgroup[0] = 0;
			return -1;
		}
		P.created = 1;
	}
	if (statfs(P.cgroup, &sf) < 0 || stat(P.cgroup, &st) < 0) {
		snprintf(errbuf, errn, "enforce: cgroup %s: %s", P.cgroup, strerror(errno));
		goto fail;
	}
	if (sf.f_type != CGROUP2_SUPER_MAGIC || !S_ISDIR(st.st_mode)) {
		snprintf(errbuf, errn, "enforce: %s is not a cgroup v2 directory", P.cgroup);
		goto fail;
	}
	/* never the root: a default-deny there would cut the whole machine off */
	if (stat(root, &rst) == 0 && rst.st_ino == st.st_ino && rst.st_dev == st.st_dev) {
		snprintf(errbuf, errn, "enforce: refusing to enforce on the cgroup v2 root %s", P.cgroup);
		goto fail;
	}
	if (st.st_ino == 1) {
		snprintf(errbuf, errn, "enforce: refusing to enforce on a cgroup v2 root (%s)", P.cgroup);
		goto fail;
	}
	cg_fd = open(P.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		snprintf(errbuf, errn, "enforce: cannot open cgroup %s: %s", P.cgroup, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	enforce_cleanup();
	return -1;
}

int enforce_join(char *errbuf, size_t errn)
{
	char path[4200], pid[32];
	int fd, n;
	ssize_t w;

	snprintf(path, sizeof(path), "%s/cgroup.procs", P.cgroup);
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(errbuf, errn, "enforce: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	w = write(fd, pid, (size_t)n);
	if (w != n) {
		snprintf(errbuf, errn, "enforce: cannot move into cgroup %s: %s", P.cgroup, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* move every process still in cg to its parent cgroup, then remove cg */
static void remove_cgroup(const char *cg)
{
	char path[4200], parent[4200], *s, *line, *save = NULL, *slash;

	if (rmdir(cg) == 0 || errno == ENOENT)
		return;
	snprintf(parent, sizeof(parent), "%s", cg);
	slash = strrchr(parent, '/');
	if (!slash)
		return;
	*slash = 0;
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	s = read_file_str(path, 1 << 20);
	if (s) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", parent);
		for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			int fd = open(path, O_WRONLY | O_CLOEXEC);

			if (fd >= 0) {
				if (write(fd, line, strlen(line)) < 0) {
					/* gone meanwhile */
				}
				close(fd);
			}
		}
		free(s);
	}
	for (int i = 0; i < 20 && rmdir(cg) < 0 && errno == EBUSY; i++)
		usleep(10000);
}

void enforce_cleanup(void)
{
	if (cg_fd >= 0) {
		close(cg_fd);
		cg_fd = -1;
	}
	if (P.created && P.cgroup[0])
		remove_cgroup(P.cgroup);
	P.created = 0;
}

void enforce_write_state(const char *dir)
{
	char path[4200], buf[4200];
	int n;

	if (!P.cgroup[0])
		return;
	snprintf(path, sizeof(path), "%s/enforce", dir);
	n = snprintf(buf, sizeof(buf), "cgroup=%s\ncreated=%d\n", P.cgroup, P.created);
	write_file(path, buf, (size_t)n);
}

void enforce_recover(const char *dir)
{
	char path[4200], *s, *c, *nl;

	snprintf(path, sizeof(path), "%s/enforce", dir);
	s = read_file_str(path, 8192);
	if (!s)
		return;
	c = strstr(s, "cgroup=");
	if (c && strstr(s, "created=1")) {
		c += 7;
		nl = strchr(c, '\n');
		if (nl)
			*nl = 0;
		if (strncmp(c, "/", 1) == 0 && strstr(c, "/dpndncy-"))
			remove_cgroup(c);
	}
	free(s);
	unlink(path);
}
