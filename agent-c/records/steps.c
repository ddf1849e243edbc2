/*
 * Step attribution, user-space side: the `step-marker` and `ci-identity`
 * config directives, the marker table pushed to the kernel (bpf/exec.bpf.c
 * reads the environment at exec), and step id -> string for the log.
 *
 *   step-marker NAME           environment variable that names the step (repeatable, up to 8;
 *                              the order is the priority: the first one present wins).
 *                              None configured: DPNDNCY_STEP only.
 *   ci-identity {JSON object}  the CI job identity, copied into the agent start record as `ci`
 *                              (the rest of the line, verbatim; must be one strict JSON object).
 */
#include <stdio.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <bpf/bpf.h>

#include "agent.h"
#include "base/sbuf.h"
#include "base/config.h"
#include "records/steps.h"

static const char *const default_markers[] = {"DPNDNCY_STEP"};

/* ---- a strict JSON validator (RFC 8259), for ci-identity ---- */

struct jp {
	const unsigned char *p, *end;
	int depth;
};

static void ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int lit(struct jp *j, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, s, n) != 0)
		return -1;
	j->p += n;
	return 0;
}

/* one UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF) */
static int utf8(struct jp *j)
{
	const unsigned char *p = j->p;
	unsigned c = *p, n, cp, min;

	if (c < 0x80)
		n = 0, cp = c, min = 0;
	else if ((c & 0xe0) == 0xc0)
		n = 1, cp = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		n = 2, cp = c & 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		n = 3, cp = c & 0x07, min = 0x10000;
	else
		return -1;
	if ((size_t)(j->end - p) <= n)
		return -1;
	for (unsigned i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	j->p += n + 1;
	return 0;
}

static int jstring(struct jp *j)
{
	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	while (j->p < j->end) {
		unsigned char c = *j->p;

		if (c == '"') {
			j->p++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			j->p++;
			if (j->p >= j->end)
				return -1;
			c = *j->p++;
			if (c == 'u') {
				for (int i = 0; i < 4; i++, j->p++)
					if (j->p >= j->end || !isxdigit(*j->p))
						return -1;
			} else if (!strchr("\"\\/bfnrt", c) || !c) {
				return -1;
			}
			continue;
		}
		if (utf8(j) < 0)
			return -1;
	}
	return -1;
}

static int jnumber(struct jp *j)
{
	const unsigned char *s = j->p;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (j->p < j->end && *j->p >= '1' && *j->p <= '9')
		while (j->p < j->end && isdigit(*j->p))
			j->p++;
	else
		return -1;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || !isdigit(*j->p))
			return -1;
		while (j->p < j->end && isdigit(*j->p))
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || !isdigit(*j->p))
			return -1;
		while (j->p < j->end && isdigit(*j->p))
			j->p++;
	}
	return j->p > s ? 0 : -1;
}

static int jvalue(struct jp *j);

static int jcontainer(struct jp *j, char open, char close)
{
	if (++j->depth > 16)
		return -1;
	j->p++; /* open */
	ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		j->depth--;
		return 0;
	}
	for (;;) {
		if (open == '{') {
			if (jstring(j) < 0)
				return -1;
			ws(j);
			if (j->p >= j->end || *j->p != ':')
				return -1;
			j->p++;
			ws(j);
		}
		if (jvalue(j) < 0)
			return -1;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			ws(j);
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			j->depth--;
			return 0;
		}
		return -1;
	}
}

static int jvalue(struct jp *j)
{
	if (j->p >= j->end)
		return -1;
	switch (*j->p) {
	case '{': return jcontainer(j, '{', '}');
	case '[': return jcontainer(j, '[', ']');
	case '"': return jstring(j);
	case 't': return lit(j, "true");
	case 'f': return lit(j, "false");
	case 'n': return lit(j, "null");
	default: return jnumber(j);
	}
}

/* 0 when s[0..n) is exactly one JSON object (surrounding blanks allowed) */
int json_object_valid(const char *s, size_t n)
{
	struct jp j = {(const unsigned char *)s, (const unsigned char *)s + n, 0};

	ws(&j);
	if (j.p >= j.end || *j.p != '{' || jvalue(&j) < 0)
		return -1;
	ws(&j);
	return j.p == j.end ? 0 : -1;
}

/* ---- config directives ---- */

static int valid_var_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n + 2 > DP_STEP_NAME || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return 0;
	return 1;
}

/*
 * Handles `step-marker` and `ci-identity` lines (raw, before comment
 * stripping: JSON may hold '#'). 1 handled, 0 not ours, -1 error in errbuf.
 */
int steps_config_line(struct config *c, const char *line, const char *path, int lineno, char *errbuf, size_t errn)
{
	const char *p = line;
	size_t n;

	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, "ci-identity", 11) == 0 && (p[11] == ' ' || p[11] == '\t')) {
		p += 12;
		n = strlen(p);
		while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		while (n && (*p == ' ' || *p == '\t'))
			p++, n--;
		if (n >= sizeof(c->ci_identity) || json_object_valid(p, n) < 0) {
			snprintf(errbuf, errn, "%s:%d: ci-identity needs one JSON object on the line (at most %zu bytes)",
				 path, lineno, sizeof(c->ci_identity) - 1);
			return -1;
		}
		memcpy(c->ci_identity, p, n);
		c->ci_identity[n] = 0;
		return 1;
	}
	if (strncmp(p, "job-marker", 10) == 0 && (p[10] == ' ' || p[10] == '\t' || p[10] == '\n' || !p[10])) {
		char name[128] = "", plat[40] = "", extra[8] = "";
		int nt = sscanf(p + 10, "%127s %39s %7s", name, plat, extra);

		if (nt < 1 || nt > 2 || name[0] == '#' || !valid_var_name(name) || (nt == 2 && !valid_var_name(plat))) {
			snprintf(errbuf, errn, "%s:%d: job-marker needs an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most %d bytes) and optionally the platform it belongs to",
				 path, lineno, DP_STEP_NAME - 2);
			return -1;
		}
		for (int i = 0; i < c->njob_markers; i++)
			if (strcmp(c->job_markers[i], name) == 0) {
				snprintf(errbuf, errn, "%s:%d: job-marker %s given twice", path, lineno, name);
				return -1;
			}
		if (c->njob_markers >= DP_JOB_MARKERS) {
			snprintf(errbuf, errn, "%s:%d: at most %d job-marker lines", path, lineno, DP_JOB_MARKERS);
			return -1;
		}
		snprintf(c->job_platform[c->njob_markers], sizeof(c->job_platform[0]), "%s", nt == 2 ? plat : "");
		snprintf(c->job_markers[c->njob_markers++], DP_STEP_NAME, "%s", name);
		return 1;
	}
	if (strncmp(p, "job-identity", 12) == 0 && (p[12] == ' ' || p[12] == '\t' || p[12] == '\n' || !p[12])) {
		char what[16] = "", name[128] = "", extra[8] = "";
		int proj;

		if (sscanf(p + 12, "%15s %127s %7s", what, name, extra) != 2 ||
		    (strcmp(what, "project") && strcmp(what, "name")) || !valid_var_name(name)) {
			snprintf(errbuf, errn, "%s:%d: job-identity needs 'project' or 'name' and one environment variable name",
				 path, lineno);
			return -1;
		}
		proj = !strcmp(what, "project");
		if ((proj ? c->nid_project : c->nid_name) >= DP_ID_MARKERS) {
			snprintf(errbuf, errn, "%s:%d: at most %d job-identity %s lines", path, lineno, DP_ID_MARKERS, what);
			return -1;
		}
		if (proj)
			snprintf(c->id_project[c->nid_project++], 64, "%s", name);
		else
			snprintf(c->id_name[c->nid_name++], 64, "%s", name);
		return 1;
	}
	if (strncmp(p, "step-marker", 11) == 0 && (p[11] == ' ' || p[11] == '\t' || p[11] == '\n' || !p[11])) {
		char name[128] = "", extra[8] = "";
		const char *hash = strchr(p, '#');
		char buf[1024];

		n = hash ? (size_t)(hash - p) : strlen(p);
		if (n >= sizeof(buf))
			n = sizeof(buf) - 1;
		memcpy(buf, p, n);
		buf[n] = 0;
		if (sscanf(buf + 11, "%127s %7s", name, extra) != 1 || !valid_var_name(name)) {
			snprintf(errbuf, errn, "%s:%d: step-marker needs one environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most %d bytes)",
				 path, lineno, DP_STEP_NAME - 2);
			return -1;
		}
		for (int i = 0; i < c->nstep_markers; i++)
			if (strcmp(c->step_markers[i], name) == 0) {
				snprintf(errbuf, errn, "%s:%d: step-marker %s given twice", path, lineno, name);
				return -1;
			}
		if (c->nstep_markers >= DP_STEP_MARKERS) {
			snprintf(errbuf, errn, "%s:%d: at most %d step-marker lines", path, lineno, DP_STEP_MARKERS);
			return -1;
		}
		snprintf(c->step_markers[c->nstep_markers++], DP_STEP_NAME, "%s", name);
		return 1;
	}
	return 0;
}

/* the markers in force: the configured ones, else the default */
static int markers(const struct config *c, const char *out[DP_STEP_MARKERS])
{
	int n = 0;

	if (c->nstep_markers) {
		for (int i = 0; i < c->nstep_markers; i++)
			out[n++] = c->step_markers[i];
	} else {
		for (size_t i = 0; i < sizeof(default_markers) / sizeof(default_markers[0]); i++)
			out[n++] = default_markers[i];
	}
	return n;
}

/* "NAME=" as masked little-endian words for the kernel's compare */
static void marker_words(struct dp_step_marker *d, const char *var)
{
	size_t len = strlen(var);
	char name[DP_STEP_NAME] = {0};

	memcpy(name, var, len);
	name[len] = '=';
	d->len = (uint32_t)len + 1;
	for (unsigned b = 0; b < d->len; b++) {
		d->w[b / 8] |= (uint64_t)(unsigned char)name[b] << (8 * (b % 8));
		d->mask[b / 8] |= (uint64_t)0xff << (8 * (b % 8));
	}
}

static const char *const default_job_marker = "DPNDNCY_JOB";

int steps_push_cfg(const struct config *c, int cfg_fd, char *errbuf, size_t errn)
{
	struct dp_step_cfg k;
	const char *m[DP_STEP_MARKERS];
	uint32_t zero = 0;
	int n = markers(c, m);

	memset(&k, 0, sizeof(k));
	k.nmarkers = (uint32_t)n;
	k.max_vars = 4096;
	for (int i = 0; i < n; i++)
		marker_words(&k.m[i], m[i]);
	/* job markers only in daemon mode: a single-job agent has no use for them */
	if (c->daemon) {
		if (c->njob_markers) {
			k.njob = (uint32_t)c->njob_markers;
			for (int i = 0; i < c->njob_markers; i++)
				marker_words(&k.j[i], c->job_markers[i]);
		} else {
			k.njob = 1;
			marker_words(&k.j[0], default_job_marker);
		}
		/* the identity variables, for the kernel's choice of a new job's policy */
		k.nproj = (uint32_t)(c->nid_project ? c->nid_project : 1);
		for (uint32_t i = 0; i < k.nproj && i < DP_ID_MARKERS; i++)
			marker_words(&k.p[i], c->nid_project ? c->id_project[i] : "DPNDNCY_PROJECT");
		k.nname = (uint32_t)(c->nid_name ? c->nid_name : 1);
		for (uint32_t i = 0; i < k.nname && i < DP_ID_MARKERS; i++)
			marker_words(&k.n[i], c->nid_name ? c->id_name[i] : "DPNDNCY_JOB_NAME");
		if (k.nproj > DP_ID_MARKERS)
			k.nproj = DP_ID_MARKERS;
		if (k.nname > DP_ID_MARKERS)
			k.nname = DP_ID_MARKERS;
	}
	if (bpf_map_update_elem(cfg_fd, &zero, &k, 0) < 0) {
		snprintf(errbuf, errn, "step_cfg map update: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- start record ---- */

/* skip_ci: a daemon's job log carries the job's own identity instead */
void steps_start_json(const struct config *c, struct sbuf *b, int skip_ci)
{
	const char *m[DP_STEP_MARKERS];
	int n = markers(c, m);

	sb_puts(b, ",\"step_markers\":[");
	for (int i = 0; i < n; i++) {
		if (i)
			sb_putc(b, ',');
		sb_json_cstr(b, m[i]);
	}
	sb_putc(b, ']');
	if (c->ci_identity[0] && !skip_ci) {
		sb_puts(b, ",\"ci\":");
		sb_puts(b, c->ci_identity);
	}
}

/* ---- step id -> string ---- */

#define CACHE 4096 /* power of two, >= the kernel's step_names */

static struct {
	uint32_t id;
	uint8_t len;
	char s[DP_STEP_MAX];
} cache[CACHE];
static int names_fd = -1;

void steps_set_names_fd(int fd)
{
	names_fd = fd;
}

/* the step's value (n bytes), or NULL when unknown */
const char *step_name(uint32_t id, size_t *n)
{
	struct dp_step_name v;

	if (!id)
		return NULL;
	for (uint32_t i = 0; i < CACHE; i++) {
		uint32_t slot = (id + i) & (CACHE - 1);

		if (cache[slot].id == id) {
			*n = cache[slot].len;
			return cache[slot].s;
		}
		if (cache[slot].id)
			continue;
		/* written by the kernel before any record carried the id; never changes */
		if (names_fd < 0 || bpf_map_lookup_elem(names_fd, &id, &v) < 0)
			return NULL;
		cache[slot].id = id;
		cache[slot].len = (uint8_t)strnlen(v.s, sizeof(v.s));
		memcpy(cache[slot].s, v.s, sizeof(v.s));
		*n = cache[slot].len;
		return cache[slot].s;
	}
	return NULL;
}
