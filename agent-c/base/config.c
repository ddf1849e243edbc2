/*
 * Config file and the sensitive-path rules.
 *
 * Format: one directive per line, '#' starts a comment, fields split by blanks.
 *   mode observe                   observe | enforce (learn is not implemented); policy directives of
 *                                  enforce mode: agent-c/features/enforce_policy.c
 *   ringbuf-mb 4                   ring buffer size in MiB (power of two, 1..256); the agent's
 *                                  RSS grows by twice this (the data pages are mapped twice)
 *   file <rule-name> <pattern>     report opens of paths matching <pattern> as <rule-name>
 *   file-exclude <pattern>         never report paths matching <pattern>
 *   allow-comm <comm>              benign reader: drop file matches by the executables of that
 *                                  name in PATH (by inode, kernel side; never the comm itself)
 *   allow-exe <path>               benign reader: drop file matches by this executable (inode)
 * Patterns are globs over the absolute path: '*' and '?' stay inside one
 * component, '**' crosses directories, a leading "~/" means any home
 * directory ("**" + "/"). The kernel filter is derived from the last
 * component and its parent, so one of them must be literal (or the last may
 * be "prefix*").
 */
#include <stdio.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <string.h>

#include <bpf/bpf.h>

#include "agent.h"
#include "base/util.h"
#include "base/config.h"

static const struct {
	const char *name, *pattern;
} default_rules[] = {
	{"ssh-key", "**/.ssh/id_*"},
	{"ssh-key", "/etc/ssh/ssh_host_*_key"},
	{"aws-credentials", "**/.aws/credentials"},
	{"aws-config", "**/.aws/config"},
	{"gcloud", "**/.config/gcloud/**"},
	{"gcloud", "**/gcloud/**/adc.json"},
	{"azure", "**/.azure/**"},
	{"npmrc", "**/.npmrc"},
	{"pypirc", "**/.pypirc"},
	{"netrc", "**/.netrc"},
	{"docker-config", "**/.docker/config.json"},
	{"git-credentials", "**/.git-credentials"},
	{"kube-config", "**/.kube/config"},
	{"gh-token", "**/.config/gh/hosts.yml"},
	{"env-file", "**/.env"},
	{"env-file", "**/.env.*"},
	{"ai-config", "**/.claude.json"},
	{"ai-config", "**/.claude/.credentials.json"},
	{"ai-config", "**/.claude/settings.json"},
	{"ai-config", "**/.config/claude/**"},
	{"ai-config", "**/.cursor/mcp.json"},
	{"ai-config", "**/.codex/auth.json"},
	{"ai-config", "**/.gemini/oauth_creds.json"},
	{"ai-config", "**/.config/github-copilot/**"},
	{"shell-history", "**/.bash_history"},
	{"shell-history", "**/.zsh_history"},
	{"shell-history", "**/.sh_history"},
	{"proc-mem", "/proc/*/mem"},
	{"proc-mem", "/proc/*/task/*/mem"},
	{"proc-environ", "/proc/*/environ"},
	{"proc-environ", "/proc/*/task/*/environ"},
	/* tamper evidence: reported only when opened for writing (agent-c/features/integrity.c) */
	{"resolver-config", "/etc/resolv.conf"},
	{"resolver-config", "/run/systemd/resolve/stub-resolv.conf"},
	{"resolver-config", "/run/systemd/resolve/resolv.conf"},
	{"resolver-config", "/etc/systemd/resolved.conf"},
	{"resolver-config", "/etc/systemd/resolved.conf.d/**"},
	{"hosts-file", "/etc/hosts"},
	{"nsswitch-config", "/etc/nsswitch.conf"},
	{"docker-daemon-config", "/etc/docker/daemon.json"},
};

static const char *const default_excludes[] = {
	"**/.ssh/*.pub",
	"**/.env.example",
	"**/.env.sample",
	"**/.env.template",
};

int glob_match(const char *p, const char *s)
{
	for (;;) {
		if (*p == 0)
			return *s == 0;
		if (p[0] == '*' && p[1] == '*') {
			const char *t = s;

			p += 2;
			if (*p == '/') { /* zero or more directories */
				p++;
				for (;;) {
					if (glob_match(p, t))
						return 1;
					t = strchr(t, '/');
					if (!t)
						return 0;
					t++;
				}
			}
			for (;; t++) {
				if (glob_match(p, t))
					return 1;
				if (!*t)
					return 0;
			}
		}
		if (*p == '*') {
			const char *t = s;

			p++;
			for (;; t++) {
				if (glob_match(p, t))
					return 1;
				if (!*t || *t == '/')
					return 0;
			}
		}
		if (*p == '?') {
			if (!*s || *s == '/')
				return 0;
			p++;
			s++;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
}

static int rule_name_id(struct config *c, const char *name)
{
	for (int i = 0; i < c->nnames; i++)
		if (strcmp(c->rule_names[i], name) == 0)
			return i + 1;
	if (c->nnames >= MAX_RULE_NAMES)
		return -1;
	snprintf(c->rule_names[c->nnames], sizeof(c->rule_names[0]), "%s", name);
	return ++c->nnames;
}

static int has_wild(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '*' || s[i] == '?' || s[i] == '[')
			return 1;
	return 0;
}

/* split pattern into last component and parent component */
struct pat_parts {
	char last[256];
	char parent[256];
	int has_parent;
};

static void pat_split(const char *pat, struct pat_parts *pp)
{
	const char *e = pat + strlen(pat), *s, *ps;

	memset(pp, 0, sizeof(*pp));
	s = e;
	while (s > pat && s[-1] != '/')
		s--;
	snprintf(pp->last, sizeof(pp->last), "%.*s", (int)(e - s), s);
	if (s > pat) {
		const char *pe = s - 1;

		ps = pe;
		while (ps > pat && ps[-1] != '/')
			ps--;
		if (pe > ps) {
			snprintf(pp->parent, sizeof(pp->parent), "%.*s", (int)(pe - ps), ps);
			pp->has_parent = 1;
		}
	}
}

/* can the kernel filter this pattern? 0 ok, else message */
static const char *pat_check(const char *pat)
{
	struct pat_parts pp;

	if (pat[0] != '/' && strncmp(pat, "**/", 3) != 0)
		return "pattern must be absolute (start with /, ~/ or **/)";
	pat_split(pat, &pp);
	if (!pp.last[0])
		return "pattern must not end with /";
	if (!has_wild(pp.last, strlen(pp.last)))
		return NULL;
	if (pp.last[0] != '*' && pp.last[0] != '?' && pp.last[0] != '[')
		return NULL; /* prefix */
	if (pp.has_parent && !has_wild(pp.parent, strlen(pp.parent)))
		return NULL; /* directory rule */
	return "pattern needs a literal last component, a \"prefix*\" last component or a literal parent directory";
}

static int add_rule(struct config *c, const char *name, const char *pattern, char *errbuf, size_t errn)
{
	struct file_rule *r;
	const char *why;
	char expanded[256];
	int id;

	if (strncmp(pattern, "~/", 2) == 0)
		snprintf(expanded, sizeof(expanded), "**/%s", pattern + 2);
	else
		snprintf(expanded, sizeof(expanded), "%s", pattern);
	why = pat_check(expanded);
	if (why) {
		snprintf(errbuf, errn, "%s", why);
		return -1;
	}
	if (c->nrules >= MAX_RULES) {
		snprintf(errbuf, errn, "too many file rules (max %d)", MAX_RULES);
		return -1;
	}
	id = rule_name_id(c, name);
	if (id < 0) {
		snprintf(errbuf, errn, "too many rule names (max %d)", MAX_RULE_NAMES);
		return -1;
	}
	r = &c->rules[c->nrules++];
	snprintf(r->pattern, sizeof(r->pattern), "%s", expanded);
	r->id = (uint16_t)id;
	r->kflags = strncmp(expanded, "/proc/", 6) == 0 ? DP_FV_PROC : 0;
	return 0;
}

void config_defaults(struct config *c)
{
	char err[256];

	memset(c, 0, sizeof(*c));
	c->mode = DP_MODE_OBSERVE;
	c->ringbuf_mb = 4;
	for (size_t i = 0; i < sizeof(default_rules) / sizeof(default_rules[0]); i++)
		add_rule(c, default_rules[i].name, default_rules[i].pattern, err, sizeof(err));
	for (size_t i = 0; i < sizeof(default_excludes) / sizeof(default_excludes[0]); i++)
		snprintf(c->exclude[c->nexclude++], sizeof(c->exclude[0]), "%s", default_excludes[i]);
}

/* the first handler that takes a tokenised line: 1 taken, 0 none, -1 error (why) */
static int feature_line(const struct config_lines *cl, char **tok, int n, char *why, size_t whyn)
{
	for (int i = 0; cl && i < cl->ntok; i++) {
		int r = cl->tok[i](tok, n, why, whyn);

		if (r)
			return r;
	}
	return 0;
}

int config_load(struct config *c, const char *path, const struct config_lines *cl, char *errbuf, size_t errn)
{
	FILE *f;
	char line[4096], why[256];
	int lineno = 0;

	snprintf(c->path, sizeof(c->path), "%s", path);
	f = fopen(path, "re");
	if (!f) {
		snprintf(errbuf, errn, "cannot read config %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *tok[4] = {0}, *save = NULL, *p, *hash;
		int n = 0, pol;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(errbuf, errn, "%s:%d: line too long", path, lineno);
			goto bad;
		}
		switch (cl && cl->whole ? cl->whole(c, line, path, lineno, errbuf, errn) : 0) {
		case 1: continue;   /* step-marker, ci-identity (agent-c/records/steps.c) */
		case -1: goto bad;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		for (p = strtok_r(line, " \t\r\n", &save); p; p = strtok_r(NULL, " \t\r\n", &save)) {
			if (n == 4) {
				n++;
				break;
			}
			tok[n++] = p;
		}
		if (n == 0)
			continue;
		if (strcmp(tok[0], "mode") == 0 && n == 2) {
			if (strcmp(tok[1], "observe") == 0)
				c->mode = DP_MODE_OBSERVE;
			else if (strcmp(tok[1], "enforce") == 0)
				c->mode = DP_MODE_ENFORCE;
			else if (strcmp(tok[1], "learn") == 0) {
				snprintf(errbuf, errn, "%s:%d: mode %s is not implemented yet (observe, enforce)", path, lineno, tok[1]);
				goto bad;
			} else {
				snprintf(errbuf, errn, "%s:%d: unknown mode '%s' (observe, learn, enforce)", path, lineno, tok[1]);
				goto bad;
			}
		} else if (strcmp(tok[0], "ringbuf-mb") == 0 && n == 2) {
			char *end;
			unsigned long v = strtoul(tok[1], &end, 10);

			if (*end || v < 1 || v > 256 || (v & (v - 1))) {
				snprintf(errbuf, errn, "%s:%d: ringbuf-mb must be a power of two from 1 to 256", path, lineno);
				goto bad;
			}
			c->ringbuf_mb = (unsigned)v;
		} else if (strcmp(tok[0], "file") == 0 && n == 3) {
			if (strlen(tok[1]) >= sizeof(c->rule_names[0]) || strlen(tok[2]) >= 250) {
				snprintf(errbuf, errn, "%s:%d: rule name or pattern too long", path, lineno);
				goto bad;
			}
			if (add_rule(c, tok[1], tok[2], why, sizeof(why)) < 0) {
				snprintf(errbuf, errn, "%s:%d: %s", path, lineno, why);
				goto bad;
			}
		} else if (strcmp(tok[0], "file-exclude") == 0 && n == 2) {
			if (c->nexclude >= 64 || strlen(tok[1]) >= 250) {
				snprintf(errbuf, errn, "%s:%d: too many excludes or pattern too long", path, lineno);
				goto bad;
			}
			if (strncmp(tok[1], "~/", 2) == 0)
				snprintf(c->exclude[c->nexclude++], sizeof(c->exclude[0]), "**/%s", tok[1] + 2);
			else
				snprintf(c->exclude[c->nexclude++], sizeof(c->exclude[0]), "%s", tok[1]);
		} else if (strcmp(tok[0], "allow-comm") == 0 && n == 2) {
			if (c->nallow_comm >= 64 || strlen(tok[1]) > 15) {
				snprintf(errbuf, errn, "%s:%d: allow-comm: too many, or comm longer than 15 bytes", path, lineno);
				goto bad;
			}
			snprintf(c->allow_comm[c->nallow_comm++], 16, "%s", tok[1]);
		} else if (strcmp(tok[0], "allow-exe") == 0 && n == 2) {
			if (c->nallow_exe >= 64 || tok[1][0] != '/' || strlen(tok[1]) >= 250) {
				snprintf(errbuf, errn, "%s:%d: allow-exe needs an absolute path (max 64 entries)", path, lineno);
				goto bad;
			}
			snprintf(c->allow_exe[c->nallow_exe++], sizeof(c->allow_exe[0]), "%s", tok[1]);
		} else if ((pol = feature_line(cl, tok, n, why, sizeof(why))) != 0) {
			/* protect-pid (agent-c/features/integrity.c); container-cgroup, runtime-cgroup, runtime-socket,
			 * docker-root (agent-c/records/runtimes.c); egress policy: allow-host, allow-suffix, allow-cidr,
			 * dns-resolver, ... (agent-c/features/enforce_policy.c) */
			if (pol < 0) {
				snprintf(errbuf, errn, "%s:%d: %s", path, lineno, why);
				goto bad;
			}
		} else {
			static const char *const known[] = {"mode", "ringbuf-mb", "file", "file-exclude", "allow-comm", "allow-exe"};
			int k = 0;

			for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
				if (strcmp(tok[0], known[i]) == 0)
					k = 1;
			if (k)
				snprintf(errbuf, errn, "%s:%d: wrong number of arguments for '%s'", path, lineno, tok[0]);
			else
				snprintf(errbuf, errn, "%s:%d: unknown directive '%s'", path, lineno, tok[0]);
			goto bad;
		}
	}
	fclose(f);
	return 0;
bad:
	fclose(f);
	return -1;
}

/* ---- kernel filter ---- */

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

/* /proc/<n>/... -> n, else 0 */
static uint32_t proc_path_pid(const char *path)
{
	unsigned long v = 0;
	const char *p;

	if (strncmp(path, "/proc/", 6) != 0)
		return 0;
	for (p = path + 6; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (unsigned long)(*p - '0');
	if (p == path + 6 || *p != '/')
		return 0;
	if (strncmp(p, "/task/", 6) == 0)
		return (uint32_t)v; /* owner is v */
	return (uint32_t)v;
}

const char *config_check_file(const struct config *c, const char *path, const char *exe, const char *comm, uint32_t pid)
{
	for (int i = 0; i < c->nexclude; i++)
		if (glob_match(c->exclude[i], path))
			return NULL;
	/* allow-comm / allow-exe are matched in the kernel by the executable's inode: a comm or a
	 * path seen here could be the process's own choice (prctl, a bind mount over the path) */
	(void)exe;
	(void)comm;
	for (int i = 0; i < c->nrules; i++) {
		const struct file_rule *r = &c->rules[i];

		if (!glob_match(r->pattern, path))
			continue;
		if ((r->kflags & DP_FV_PROC) && proc_path_pid(path) == pid)
			continue; /* a process reading its own /proc entry */
		return c->rule_names[r->id - 1];
	}
	return NULL;
}
