/*
 * The kernel filter of the file rules (base/config.c parses them): the file object's maps
 * filled from each pattern's last component and its parent, and the inodes of the benign
 * readers (allow-comm, allow-exe).
 */
#include <stdio.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "agent.h"
#include "dpndncy.h"
#include "base/util.h"
#include "base/config.h"
#include "kernel/file_rules.h"

/* the first 16 bytes of a name as the two little-endian words the kernel compares */
static void name_words(const char *name, size_t len, __u64 *lo, __u64 *hi)
{
	uint8_t b[16] = {0};

	memcpy(b, name, len < 16 ? len : 16);
	*lo = *hi = 0;
	for (int i = 7; i >= 0; i--) {
		*lo = *lo << 8 | b[i];
		*hi = *hi << 8 | b[8 + i];
	}
}

static void bloom_set(__u64 bloom[4], const char *name, size_t len)
{
	__u64 lo, hi, h, l = len > 255 ? 255 : len;

	name_words(name, len, &lo, &hi);
	h = DP_NAME_HASH(lo, hi, l);
	bloom[(h >> 6) & 3] |= 1ull << (h & 63);
}

static void key_name(struct dp_file_key *k, const char *name, size_t len)
{
	memcpy(k->name, name, len < DP_FK_NAME ? len : DP_FK_NAME);
	k->len = len > 255 ? 255 : (uint8_t)len;
}

static void key_parent(struct dp_file_key *k, const char *name)
{
	size_t len = strlen(name);

	memcpy(k->parent, name, len < DP_FK_NAME ? len : DP_FK_NAME);
	k->plen = len > 255 ? 255 : (uint8_t)len;
}

static int put_rule(int fd, const struct dp_file_key *k, uint16_t rule, uint16_t flags, uint16_t set_flags)
{
	struct dp_file_val v = {0};

	if (bpf_map_lookup_elem(fd, k, &v) == 0) {
		if (rule) {
			if (v.rule) {
				/* two rules share a key: keep one, clear PROC unless both are PROC */
				if (!(flags & DP_FV_PROC))
					v.flags &= (uint16_t)~DP_FV_PROC;
			} else {
				v.rule = rule;
				v.flags = (uint16_t)((v.flags & DP_FV_HAS_P) | flags);
			}
		}
		v.flags |= set_flags;
	} else {
		v.rule = rule;
		v.flags = (uint16_t)(flags | set_flags);
	}
	return bpf_map_update_elem(fd, k, &v, BPF_ANY);
}

/*
 * Benign readers are matched in the kernel by the inode of the executable a process runs
 * (bpf/file.bpf.c), never by comm: a comm is whatever the process says it is.
 */
static int allow_exe_file(int fd, const char *path)
{
	struct dp_exe_key k;
	struct stat st;
	uint8_t one = 1;

	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	memset(&k, 0, sizeof(k));
	k.ino = (uint64_t)st.st_ino;
	k.dev = (uint32_t)((major(st.st_dev) << 20) | minor(st.st_dev)); /* the kernel's s_dev */
	return bpf_map_update_elem(fd, &k, &one, BPF_ANY);
}

/* allow-comm NAME: the executables a process of that comm would run: NAME in PATH and the
 * system directories (a comm is cut at 15 bytes: for a 15-byte NAME, every file it begins) */
static int allow_comm_exes(int fd, const char *name)
{
	static const char sys_dirs[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	const char *env = getenv("PATH");
	char dirs[8192], *save = NULL, *d;
	size_t nl = strlen(name);
	int found = 0;

	snprintf(dirs, sizeof(dirs), "%s:%s", env ? env : "", sys_dirs);
	for (d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char path[4200];

		if (d[0] != '/')
			continue; /* a relative PATH entry depends on the cwd: not an executable we can name */
		if (nl < 15) {
			snprintf(path, sizeof(path), "%s/%s", d, name);
			if (access(path, X_OK) == 0 && allow_exe_file(fd, path) == 0)
				found++;
		} else {
			DIR *dir = opendir(d);
			struct dirent *de;

			while (dir && (de = readdir(dir))) {
				if (strncmp(de->d_name, name, 15) != 0)
					continue;
				snprintf(path, sizeof(path), "%s/%s", d, de->d_name);
				if (access(path, X_OK) == 0 && allow_exe_file(fd, path) == 0)
					found++;
			}
			if (dir)
				closedir(dir);
		}
	}
	return found;
}

int config_push_file_rules(const struct config *c, int rules_fd, int cfg_fd, int allow_fd, char *errbuf, size_t errn)
{
	struct dp_file_cfg fc;
	uint32_t zero = 0;

	memset(&fc, 0, sizeof(fc));
	for (int i = 0; i < c->nrules; i++) {
		const struct file_rule *r = &c->rules[i];
		struct pat_parts pp;
		struct dp_file_key k;
		uint16_t rid = (uint16_t)(i + 1);
		int lit_parent;
		size_t ll;

		pat_split(r->pattern, &pp);
		ll = strlen(pp.last);
		lit_parent = pp.has_parent && !has_wild(pp.parent, strlen(pp.parent));
		memset(&k, 0, sizeof(k));
		if (!has_wild(pp.last, ll)) {
			key_name(&k, pp.last, ll);
			fc.exact_lens |= 1ull << (ll > 63 ? 63 : ll);
			bloom_set(fc.exact_bloom, pp.last, ll);
			if (lit_parent) {
				k.type = DP_FK_EXACT;
				if (put_rule(rules_fd, &k, 0, 0, DP_FV_HAS_P) < 0)
					goto fail;
				k.type = DP_FK_EXACT_P;
				key_parent(&k, pp.parent);
			} else {
				k.type = DP_FK_EXACT;
			}
			if (put_rule(rules_fd, &k, rid, r->kflags, 0) < 0)
				goto fail;
		} else if (pp.last[0] != '*' && pp.last[0] != '?' && pp.last[0] != '[') {
			size_t pl = strcspn(pp.last, "*?[");
			struct dp_file_prefix px;
			unsigned j;

			if (pl > DP_FK_NAME)
				pl = DP_FK_NAME;
			memset(&px, 0, sizeof(px));
			name_words(pp.last, pl, &px.lo, &px.hi);
			name_words("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", pl, &px.mlo, &px.mhi);
			px.len = (uint32_t)pl;
			for (j = 0; j < fc.nprefix; j++)
				if (fc.prefix[j].len == px.len && fc.prefix[j].lo == px.lo && fc.prefix[j].hi == px.hi)
					break;
			if (j == fc.nprefix) {
				if (fc.nprefix >= DP_MAX_PREFIXES) {
					snprintf(errbuf, errn, "too many distinct \"prefix*\" file rules (max %d)", DP_MAX_PREFIXES);
					return -1;
				}
				fc.prefix[fc.nprefix++] = px;
			}
			memcpy(k.name, pp.last, pl);
			k.len = (uint8_t)pl;
			if (lit_parent) {
				k.type = DP_FK_PREFIX;
				if (put_rule(rules_fd, &k, 0, 0, DP_FV_HAS_P) < 0)
					goto fail;
				k.type = DP_FK_PREFIX_P;
				key_parent(&k, pp.parent);
			} else {
				k.type = DP_FK_PREFIX;
			}
			if (put_rule(rules_fd, &k, rid, r->kflags, 0) < 0)
				goto fail;
		} else {
			size_t pl = strlen(pp.parent);

			k.type = DP_FK_DIR;
			key_name(&k, pp.parent, pl);
			fc.dir_lens |= 1ull << (pl > 63 ? 63 : pl);
			bloom_set(fc.dir_bloom, pp.parent, pl);
			if (put_rule(rules_fd, &k, rid, r->kflags, 0) < 0)
				goto fail;
		}
	}
	if (bpf_map_update_elem(cfg_fd, &zero, &fc, BPF_ANY) < 0)
		goto fail;
	for (int i = 0; i < c->nallow_exe; i++) {
		if (allow_exe_file(allow_fd, c->allow_exe[i]) < 0)
			err_msg("warning: allow-exe %s: %s: its opens are reported", c->allow_exe[i], strerror(errno));
	}
	for (int i = 0; i < c->nallow_comm; i++) {
		if (allow_comm_exes(allow_fd, c->allow_comm[i]) == 0)
			err_msg("warning: allow-comm %s: no executable of that name in PATH (or /usr/bin, /bin, /usr/sbin, "
				"/sbin): its opens are reported", c->allow_comm[i]);
	}
	return 0;
fail:
	snprintf(errbuf, errn, "cannot fill the file filter maps: %s", strerror(errno));
	return -1;
}
