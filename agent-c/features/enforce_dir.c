/*
 * Enforce mode, daemon mode's policy directory (docs/daemon.md): a slot per policy file, reloaded
 * without a window, and the job -> slot map.
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

/* ---- daemon mode: the policy directory (docs/daemon.md) ---- */

/* remove every key of `slot` from a map whose keys carry the slot at byte offset off */
static void purge_map(int fd, size_t keysz, size_t off, uint32_t slot)
{
	uint8_t next[sizeof(struct dp_name_key)], cur[sizeof(struct dp_name_key)];
	uint8_t *del = NULL;
	size_t ndel = 0, cap = 0;
	int have = 0;

	if (fd < 0 || keysz > sizeof(next))
		return;
	/* collect first: deleting while iterating would restart the walk */
	while (bpf_map_get_next_key(fd, have ? cur : NULL, next) == 0) {
		uint32_t ks;

		memcpy(&ks, next + off, 4);
		if (ks == slot) {
			if (ndel == cap) {
				uint8_t *n = realloc(del, (cap ? cap * 2 : 64) * keysz);

				if (!n)
					break;
				del = n;
				cap = cap ? cap * 2 : 64;
			}
			memcpy(del + ndel * keysz, next, keysz);
			ndel++;
		}
		memcpy(cur, next, keysz);
		have = 1;
	}
	for (size_t i = 0; i < ndel; i++)
		bpf_map_delete_elem(fd, del + i * keysz);
	free(del);
}

static void purge_slot(struct connect_bpf *conn, uint32_t slot)
{
	purge_map(bpf_map__fd(conn->maps.allow_any), sizeof(struct dp_lpm_any), offsetof(struct dp_lpm_any, slot), slot);
	purge_map(bpf_map__fd(conn->maps.allow_port), sizeof(struct dp_lpm_port), offsetof(struct dp_lpm_port, slot), slot);
	purge_map(bpf_map__fd(conn->maps.names), sizeof(struct dp_name_key), offsetof(struct dp_name_key, slot), slot);
	purge_map(bpf_map__fd(conn->maps.deny_addr), sizeof(struct dp_deny_key), offsetof(struct dp_deny_key, slot), slot);
	purge_map(bpf_map__fd(conn->maps.learned), sizeof(struct dp_learn_key), offsetof(struct dp_learn_key, slot), slot);
	for (int i = 0; i < P.n; i++)
		if (P.e[i].in_kernel && P.e[i].kgen == slot) {
			P.e[i].in_kernel = 0;
			P.e[i].freed_at = P.reloads;
		}
}

static uint64_t fnv64(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 0x100000001b3ULL;
	return h;
}

static int slot_by_rel(const char *rel)
{
	for (int i = 1; i < P.nslots; i++)
		if (P.slots[i].used && !strcmp(P.slots[i].rel, rel))
			return i;
	return -1;
}

/* parse one policy file into P.cur_slot; only allow-* lines (the rest is host-wide) */
static int parse_policy_file(const char *path, const char *text, char *errbuf, size_t errn)
{
	char *copy = strdup(text), *line, *p;
	int lineno = 0;

	if (!copy) {
		snprintf(errbuf, errn, "%s: out of memory", path);
		return -1;
	}
	/* strtok_r would skip empty lines and lose the line numbers: walk by hand */
	for (line = copy; line; line = p) {
		char *tok[4] = {0}, *tsave = NULL, *t, *hash, err[300];
		int n = 0, r;

		p = strchr(line, '\n');
		if (p)
			*p++ = 0;
		lineno++;
		hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		for (t = strtok_r(line, " \t\r", &tsave); t; t = strtok_r(NULL, " \t\r", &tsave)) {
			if (n == 4) {
				n++;
				break;
			}
			tok[n++] = t;
		}
		if (n == 0)
			continue;
		if (n > 4 || (strcmp(tok[0], "allow-host") && strcmp(tok[0], "allow-suffix") && strcmp(tok[0], "allow-cidr"))) {
			snprintf(errbuf, errn, "%s:%d: only allow-host, allow-suffix and allow-cidr belong in a job policy "
				 "(resolvers, metadata and exempt pids are host-wide: the daemon's --config)", path, lineno);
			free(copy);
			return -1;
		}
		r = policy_config_line(tok, n, err, sizeof(err));
		if (r < 0) {
			snprintf(errbuf, errn, "%s:%d: %s", path, lineno, err);
			free(copy);
			return -1;
		}
	}
	free(copy);
	return 0;
}

struct found {
	char rel[512];
};

/* every *.conf below dir (relative paths), depth-limited; -1 on a read error */
static int find_confs(const char *dir, const char *rel, struct found *out, int *n, int max, int depth,
		      char *errbuf, size_t errn)
{
	char path[4200];
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "%s%s%s", dir, rel[0] ? "/" : "", rel);
	d = opendir(path);
	if (!d) {
		snprintf(errbuf, errn, "policy directory %s: %s", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		char sub[600];
		struct stat st;
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue; /* also the supervisor's temporary trees */
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		snprintf(path, sizeof(path), "%s/%s", dir, sub);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (depth < 8 && find_confs(dir, sub, out, n, max, depth + 1, errbuf, errn) < 0) {
				closedir(d);
				return -1;
			}
		} else if (S_ISREG(st.st_mode) && l > 5 && !strcmp(de->d_name + l - 5, ".conf")) {
			if (*n >= max) {
				snprintf(errbuf, errn, "policy directory %s: more than %d policies", dir, max - 1);
				closedir(d);
				return -1;
			}
			snprintf(out[(*n)++].rel, sizeof(out[0].rel), "%s", sub);
		}
	}
	closedir(d);
	return 0;
}

int enforce_load_dir(const char *dir, int *changed, char *errbuf, size_t errn)
{
	static struct found f[MAX_SLOTS];
	static struct slot saved[MAX_SLOTS];
	int nf = 0, old_n = P.n, old_nslots = P.nslots ? P.nslots : 1, nchanged = 0;
	uint8_t live_before[MAX_ENTRIES / 8 + 1];

	if (changed)
		*changed = 0;
	P.reloads++;
	if (find_confs(dir, "", f, &nf, MAX_SLOTS, 0, errbuf, errn) < 0)
		return -1;
	memcpy(saved, P.slots, sizeof(saved));
	for (int i = 0; i < P.n; i++)
		live_before[i / 8] = (uint8_t)((live_before[i / 8] & ~(1 << (i % 8))) | (P.e[i].live << (i % 8)));
	if (P.nslots == 0) {
		P.nslots = 1;
		snprintf(P.slots[0].rel, sizeof(P.slots[0].rel), "default.conf");
		P.slots[0].used = 1;
	}
	for (int i = 0; i < P.nslots; i++)
		P.slots[i].seen = 0;
	P.slots[0].seen = 1;
	for (int i = 0; i < nf; i++) {
		char path[4200], *text;
		uint64_t h;
		int slot;

		snprintf(path, sizeof(path), "%s/%s", dir, f[i].rel);
		text = read_file_str(path, 1 << 20);
		if (!text) {
			snprintf(errbuf, errn, "%s: %s", path, strerror(errno ? errno : EIO));
			goto fail;
		}
		h = fnv64(text, strlen(text));
		slot = !strcmp(f[i].rel, "default.conf") ? 0 : slot_by_rel(f[i].rel);
		if (slot < 0) {
			for (slot = 1; slot < P.nslots && P.slots[slot].used; slot++)
				;
			if (slot >= MAX_SLOTS) {
				free(text);
				snprintf(errbuf, errn, "policy directory %s: more than %d policies", dir, MAX_SLOTS - 1);
				goto fail;
			}
			if (slot == P.nslots)
				P.nslots++;
			memset(&P.slots[slot], 0, sizeof(P.slots[slot]));
			snprintf(P.slots[slot].rel, sizeof(P.slots[slot].rel), "%s", f[i].rel);
			P.slots[slot].used = 1;
			P.slots[slot].hash = h ^ 1; /* new: differs */
		}
		P.slots[slot].seen = 1;
		if (P.slots[slot].hash != h) {
			/* changed: the file's old entries stop counting, the new ones are appended */
			for (int e = 0; e < old_n; e++)
				if (P.e[e].slot == slot && P.e[e].from_dir)
					P.e[e].live = 0;
			P.cur_slot = slot;
			if (parse_policy_file(path, text, errbuf, errn) < 0) {
				free(text);
				goto fail;
			}
			P.slots[slot].hash = h;
			P.slots[slot].dirty = 1;
			nchanged++;
		}
		free(text);
	}
	/* files gone: their slots go, and so does a default.conf that was removed */
	for (int i = 0; i < P.nslots; i++) {
		if (P.slots[i].seen || !P.slots[i].used)
			continue;
		for (int e = 0; e < old_n; e++)
			if (P.e[e].slot == i && P.e[e].from_dir)
				P.e[e].live = 0;
		P.slots[i].used = 0;
		P.slots[i].dirty = 1;
		nchanged++;
	}
	{
		int has_default = 0;

		for (int i = 0; i < nf; i++)
			if (!strcmp(f[i].rel, "default.conf"))
				has_default = 1;
		if (!has_default && saved[0].hash) {
			for (int e = 0; e < old_n; e++)
				if (P.e[e].slot == 0 && P.e[e].from_dir)
					P.e[e].live = 0;
			P.slots[0].hash = 0;
			P.slots[0].dirty = 1;
			nchanged++;
		}
	}
	P.cur_slot = 0;
	P.slots[0].used = 1;
	if (changed)
		*changed = nchanged;
	return 0;
fail:
	/* nothing changes: the policies in force stay (a reload never fails open) */
	P.cur_slot = 0;
	P.n = old_n;
	memcpy(P.slots, saved, sizeof(saved));
	P.nslots = old_nslots;
	for (int i = 0; i < old_n; i++)
		P.e[i].live = (uint8_t)((live_before[i / 8] >> (i % 8)) & 1);
	return -1;
}

/* FNV-1a over a value cut like the kernel cuts it (DP_ID_MAX - 1 bytes), folded into h */
static uint64_t ident_fold(uint64_t h, const char *s, size_t n)
{
	if (n > DP_ID_MAX - 1)
		n = DP_ID_MAX - 1;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * DP_FNV_PRIME;
	return h;
}

/* the kernel's table for a new job's first exec: hash(project/name) or hash(project) -> slot */
void push_ident(struct connect_bpf *conn)
{
	int fd = bpf_map__fd(conn->maps.ident_slot);
	uint64_t next;

	/* rebuilt whole: it is small, and a stale entry would name a slot that moved */
	while (bpf_map_get_next_key(fd, NULL, &next) == 0)
		if (bpf_map_delete_elem(fd, &next) < 0)
			break;
	for (int s = 1; s < P.nslots; s++) {
		const char *rel = P.slots[s].rel, *slash = strrchr(rel, '/');
		size_t rl = strlen(rel);
		uint64_t h;
		uint32_t v = P.phys[s];

		if (!P.slots[s].used || !slash || rl < 6)
			continue;
		/* "P/default.conf" -> project P; "P/N.conf" -> project P, name N */
		h = ident_fold(DP_FNV_OFFSET, rel, (size_t)(slash - rel));
		if (strcmp(slash + 1, "default.conf") != 0)
			h = ident_fold((h ^ '/') * DP_FNV_PRIME, slash + 1, rl - (size_t)(slash + 1 - rel) - 5);
		bpf_map_update_elem(fd, &h, &v, BPF_ANY);
	}
}

/* every job_slot entry that holds generation `from` now holds `to` (0: deleted, the default) */
static void repoint_jobs(uint32_t from, uint32_t to)
{
	int fd = bpf_map__fd(CONN->maps.job_slot);
	uint32_t cur, next, v;
	int have = 0;

	while (bpf_map_get_next_key(fd, have ? &cur : NULL, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &v) == 0 && v == from) {
			if (to)
				bpf_map_update_elem(fd, &next, &to, BPF_EXIST);
			else
				bpf_map_delete_elem(fd, &next);
		}
		cur = next;
		have = 1;
	}
}

int enforce_apply(char *errbuf, size_t errn)
{
	int rc = 0, fd_def;
	uint32_t zero = 0;

	if (!CONN)
		return 0;
	fd_def = bpf_map__fd(CONN->maps.slot_default);
	for (int s = 0; s < P.nslots; s++) {
		uint32_t old = P.phys[s], np = 0;
		int keep = s == 0 || P.slots[s].used;

		if (!P.slots[s].dirty)
			continue;
		P.slots[s].dirty = 0;
		if (keep) {
			np = P.next_phys++;
			if (P.next_phys < MAX_SLOTS)
				P.next_phys = MAX_SLOTS; /* wrapped (after 4 billion reloads): skip the first numbers */
			if (push_slot(CONN, s, np, errbuf, errn) < 0) {
				purge_slot(CONN, np); /* the old generation stays in force */
				rc = -1;
				continue;
			}
			if (s == 0)
				bpf_map_update_elem(fd_def, &zero, &np, BPF_ANY);
		}
		/* a removed policy's jobs fall back to the default (the daemon reassigns them) */
		repoint_jobs(old, keep ? np : 0);
		P.phys[s] = keep ? np : old;
		push_ident(CONN);
		purge_slot(CONN, old);
		/* a job that took the old number from ident_slot at its first exec meanwhile */
		repoint_jobs(old, keep ? np : 0);
		if (!keep)
			P.phys[s] = (uint32_t)s; /* unused: a new policy in this slot starts afresh */
	}
	push_ident(CONN);
	return rc;
}

int enforce_policies(void)
{
	int n = 0;

	for (int s = 1; s < P.nslots; s++)
		n += P.slots[s].used;
	return n + (P.slots[0].hash != 0);
}

/* a path component we accept from a job's environment: no "..", no "/" in a job name */
static int safe_rel(const char *s, int allow_slash)
{
	if (!s || !s[0] || s[0] == '/' || s[0] == '.')
		return 0;
	if (strstr(s, "/.") || strstr(s, "//") || (!allow_slash && strchr(s, '/')))
		return 0;
	return strlen(s) < 400;
}

int enforce_slot_for(const char *project, const char *name, const char **rel)
{
	char want[512];
	int s;

	if (rel)
		*rel = "default";
	if (!safe_rel(project, 1))
		return 0;
	if (safe_rel(name, 0)) {
		snprintf(want, sizeof(want), "%s/%s.conf", project, name);
		if ((s = slot_by_rel(want)) > 0) {
			if (rel)
				*rel = P.slots[s].rel;
			return s;
		}
	}
	snprintf(want, sizeof(want), "%s/default.conf", project);
	if ((s = slot_by_rel(want)) > 0) {
		if (rel)
			*rel = P.slots[s].rel;
		return s;
	}
	return 0;
}

int enforce_set_job(uint32_t job, int slot)
{
	uint32_t v = (uint32_t)slot;

	if (!CONN || !job)
		return 0;
	if (slot == 0)
		return bpf_map_delete_elem(bpf_map__fd(CONN->maps.job_slot), &job) < 0 && errno != ENOENT ? -1 : 0;
	v = P.phys[slot];
	return bpf_map_update_elem(bpf_map__fd(CONN->maps.job_slot), &job, &v, BPF_ANY);
}
