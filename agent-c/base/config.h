/* The config file (agent-c/base/config.c documents the format). */
#ifndef DPNDNCY_BASE_CONFIG_H
#define DPNDNCY_BASE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "dpndncy.h"

#define MAX_RULES 256
#define MAX_RULE_NAMES 128
struct file_rule {
	char pattern[256];
	uint16_t id;           /* rule name id (index into rule_names, from 1) */
	uint16_t kflags;       /* DP_FV_PROC etc */
};
struct config {
	char path[512];
	int mode;              /* DP_MODE_* */
	unsigned ringbuf_mb;
	int nrules;
	struct file_rule rules[MAX_RULES];
	int nnames;
	char rule_names[MAX_RULE_NAMES][48];
	int nexclude;
	char exclude[64][256];
	int nallow_comm;
	char allow_comm[64][16];
	int nallow_exe;
	char allow_exe[64][256];
	int nstep_markers;     /* step-marker lines (0: the default, DPNDNCY_STEP) */
	char step_markers[DP_STEP_MARKERS][DP_STEP_NAME];
	char ci_identity[3072]; /* ci-identity: a validated JSON object, or "" */
	/* daemon mode (docs/daemon.md) */
	int daemon;            /* set by `daemon`: job markers are pushed to the kernel */
	int njob_markers;      /* job-marker lines (0: DPNDNCY_JOB) */
	char job_markers[DP_JOB_MARKERS][DP_STEP_NAME];
	char job_platform[DP_JOB_MARKERS][40];  /* job-marker NAME PLATFORM: the start record's ci.platform */
	int nid_project, nid_name;  /* job-identity project|name VAR (0: DPNDNCY_PROJECT / DPNDNCY_JOB_NAME) */
	char id_project[8][64], id_name[8][64];
};
/* The lines of the units above (steps, integrity, runtimes, the egress policy) reach them through
 * this table, which the command fills: whole sees each line before '#' is cut (a value may hold
 * one), tok[] each tokenised line in order. Each: 1 taken, 0 not ours, -1 error (whole: errbuf
 * with FILE:LINE; tok: why, which config_load prefixes with FILE:LINE). */
struct config_lines {
	int (*whole)(struct config *c, const char *line, const char *path, int lineno, char *errbuf, size_t errn);
	int (*tok[4])(char **tok, int n, char *why, size_t whyn);
	int ntok;
};
int config_load(struct config *c, const char *path, const struct config_lines *cl, char *errbuf, size_t errn);
void config_defaults(struct config *c);
/* a pattern's last component and its parent's (what the kernel filter matches on) */
struct pat_parts {
	char last[256];
	char parent[256];
	int has_parent;
};
void pat_split(const char *pat, struct pat_parts *pp);
/* a glob character among s[0..n) */
int has_wild(const char *s, size_t n);
/* user-space check of a resolved path; returns rule name or NULL when dropped */
const char *config_check_file(const struct config *c, const char *path, const char *exe, const char *comm, uint32_t pid);
int glob_match(const char *pat, const char *s);

#endif
