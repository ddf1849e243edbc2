/*
 * User-space process table: pid -> ppid, comm, filename. Seeded from /proc at
 * start, then kept by exec/fork/exit events, so that a process that lived a
 * millisecond is still known as somebody's parent. Dead entries are kept in a
 * FIFO and freed only when the FIFO is full (their children may still log).
 */
#include <stdio.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "records/proctab.h"

#define NBUCKETS 16384
#define DEAD_KEEP 16384

struct proc_ent {
	uint32_t pid, ppid;
	int dead;
	uint8_t enforced;  /* seen in the enforced cgroup (sticky: a later move out is an escape) */
	char comm[16];
	char *filename;
	struct proc_ent *next;
};

static struct proc_ent *buckets[NBUCKETS];
static uint32_t dead_fifo[DEAD_KEEP];
static unsigned dead_head, dead_count;

static struct proc_ent *find(uint32_t pid)
{
	struct proc_ent *e;

	for (e = buckets[pid % NBUCKETS]; e; e = e->next)
		if (e->pid == pid)
			return e;
	return NULL;
}

static void drop(uint32_t pid)
{
	struct proc_ent **pp = &buckets[pid % NBUCKETS];

	while (*pp) {
		if ((*pp)->pid == pid) {
			struct proc_ent *e = *pp;

			*pp = e->next;
			free(e->filename);
			free(e);
			return;
		}
		pp = &(*pp)->next;
	}
}

void proc_init(void)
{
	memset(buckets, 0, sizeof(buckets));
	dead_head = dead_count = 0;
}

void proc_set(uint32_t pid, uint32_t ppid, const char *comm, const char *filename)
{
	struct proc_ent *e = find(pid);

	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return;
		e->pid = pid;
		e->next = buckets[pid % NBUCKETS];
		buckets[pid % NBUCKETS] = e;
	}
	if (e->dead)
		e->enforced = 0; /* a reused pid */
	e->dead = 0;
	if (ppid)
		e->ppid = ppid;
	if (comm) {
		memset(e->comm, 0, sizeof(e->comm));
		strncpy(e->comm, comm, sizeof(e->comm) - 1);
	}
	if (filename) {
		free(e->filename);
		e->filename = strdup(filename);
	}
}

void proc_exit(uint32_t pid)
{
	struct proc_ent *e = find(pid);

	if (!e)
		return;
	e->dead = 1;
	if (dead_count == DEAD_KEEP) {
		uint32_t old = dead_fifo[dead_head];
		struct proc_ent *o = find(old);

		if (o && o->dead)
			drop(old);
		dead_fifo[dead_head] = pid;
		dead_head = (dead_head + 1) % DEAD_KEEP;
	} else {
		dead_fifo[(dead_head + dead_count) % DEAD_KEEP] = pid;
		dead_count++;
	}
}

/* read /proc/<pid>/stat: ppid and comm */
static int read_proc(uint32_t pid, uint32_t *ppid, char comm[16])
{
	char path[64], *s, *l, *r;
	unsigned pp = 0;
	char st;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	s = read_file_str(path, 1024);
	if (!s)
		return -1;
	l = strchr(s, '(');
	r = strrchr(s, ')');
	if (!l || !r || r < l || sscanf(r + 1, " %c %u", &st, &pp) != 2) {
		free(s);
		return -1;
	}
	memset(comm, 0, 16);
	memcpy(comm, l + 1, (size_t)(r - l - 1) < 15 ? (size_t)(r - l - 1) : 15);
	*ppid = pp;
	free(s);
	return 0;
}

static struct proc_ent *load(uint32_t pid)
{
	char comm[16], path[64], exe[4096];
	uint32_t ppid;
	ssize_t n;

	if (read_proc(pid, &ppid, comm) < 0)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0)
		exe[n] = 0;
	proc_set(pid, ppid, comm, n > 0 ? exe : NULL);
	return find(pid);
}

void proc_seed(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end;
		unsigned long pid = strtoul(de->d_name, &end, 10);

		if (*end || pid == 0)
			continue;
		load((uint32_t)pid);
	}
	closedir(d);
}

int proc_get(uint32_t pid, uint32_t *ppid, const char **comm, const char **filename)
{
	struct proc_ent *e = find(pid);

	if (!e)
		return -1;
	if (ppid)
		*ppid = e->ppid;
	if (comm)
		*comm = e->comm;
	if (filename)
		*filename = e->filename;
	return 0;
}

void proc_set_enforced(uint32_t pid)
{
	struct proc_ent *e = find(pid);

	if (e)
		e->enforced = 1;
}

void proc_clear_enforced(uint32_t pid)
{
	struct proc_ent *e = find(pid);

	if (e)
		e->enforced = 0;
}

int proc_was_enforced(uint32_t pid)
{
	struct proc_ent *e = find(pid);

	return e && e->enforced;
}

uint32_t proc_ppid_lookup(uint32_t pid)
{
	struct proc_ent *e = find(pid);

	if (!e)
		e = load(pid);
	return e ? e->ppid : 0;
}

void proc_ancestry(struct sbuf *b, uint32_t pid, uint32_t ppid)
{
	uint32_t cur = ppid;
	int first = 1;

	(void)pid;
	sb_putc(b, '[');
	for (int depth = 0; depth < 32 && cur; depth++) {
		struct proc_ent *e = find(cur);

		if (!e)
			e = load(cur);
		if (!first)
			sb_putc(b, ',');
		first = 0;
		SB_KEY_U64(b, "{\"pid\":", cur); /* several per record: no printf */
		sb_puts(b, ",\"comm\":");
		if (e)
			sb_json_str(b, e->comm, strnlen(e->comm, sizeof(e->comm)));
		else
			sb_puts(b, "\"\"");
		sb_putc(b, '}');
		if (!e || e->ppid == cur)
			break;
		cur = e->ppid;
	}
	sb_putc(b, ']');
}
