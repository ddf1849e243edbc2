/*
 * Config file and the sensitive-path rules (their kernel filter is agent-c/kernel/file_rules.c).
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

int has_wild(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '*' || s[i] == '?' || s[i] == '[')
			return 1;
	return 0;
}


void pat_split(const char *pat, struct pat_parts *pp)
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
