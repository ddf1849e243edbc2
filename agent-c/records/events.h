/* Ring buffer records -> NDJSON lines, and the agent's start/stop records (agent-c/records/events.c). */
#ifndef DPNDNCY_RECORDS_EVENTS_H
#define DPNDNCY_RECORDS_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "dpndncy.h"
#include "base/config.h"
#include "base/output.h"

struct attach_info;
struct sbuf;

enum stat_kind { SK_EXEC, SK_EXIT, SK_CONNECT, SK_FILE, SK_DNS, SK_AGENT, SK_COUNT };
extern const char *const stat_kind_names[SK_COUNT];
struct agent_ctx {
	struct output out;
	struct config cfg;
	int64_t boot_to_real;     /* realtime - boottime, ns */
	uint64_t events[SK_COUNT];
	uint64_t forks;
	uint64_t file_filtered;   /* kernel candidates dropped by the user-space check */
	uint64_t dns_unparsed;
	uint64_t unattributed;    /* daemon mode: records of processes without a job (not logged) */
	uint32_t self_pid;
	/* exit tracking for `run` */
	uint32_t wait_pid;
	int wait_exit_seen;
	uint64_t start_real_ns;
	uint64_t start_boot_ns;
};
extern struct agent_ctx G;

/* daemon mode (agent-c/commands/daemon.c) plugs in here; all NULL otherwise */
struct event_hooks {
	/* the log a record goes to; NULL: nobody's (dropped, counted in G.unattributed) */
	struct output *(*route)(const struct dp_hdr *h);
	void (*fork)(const struct dp_hdr *parent, uint32_t child);
	void (*exit)(const struct dp_hdr *h);
	/* a denied connect, its line (without the closing brace) as it goes into log o */
	void (*deny)(const struct dp_hdr *h, struct output *o, const char *line, size_t n);
	/* a tamper record written to the agent's own log: its fields after "seq" */
	void (*tamper)(uint64_t real_ns, const char *body, size_t n);
};
extern struct event_hooks EH;

/* what the features above (enforce, integrity) add to records; set by the session, NULL: none */
struct record_features {
	int (*cgroup_enforced)(uint64_t cgid);        /* exec/fork in the enforced cgroup: remembered */
	const char *(*rule_name)(uint16_t rule);       /* a connect record's rule id -> its name */
	/* a file record written: the integrity checks see it */
	void (*on_file)(const char *rule, const char *path, uint32_t flags, const struct dp_hdr *h, uint32_t ppid);
	void (*start_json)(struct sbuf *b);            /* enforce mode: the start record's "enforce" */
	int (*log_intact)(void);                       /* the stop record's log_intact (NULL: true) */
	void (*stop_json)(struct sbuf *b);             /* enforce mode: the stop record's policy counters */
};
extern struct record_features RF;

int handle_event(void *ctx, void *data, size_t len);
void write_agent_start(struct agent_ctx *g, const struct attach_info *ai, const char *kernel);
/* the start record into log o at ts; job_json (daemon): ",\"job\":{..}" appended */
void write_agent_start_to(struct output *o, uint64_t ts, const struct attach_info *ai, const char *kernel,
			  const char *job_json);
/* stop record; fills stats JSON (events/lost/duration/log_sha256/complete) into statsb too */
void write_agent_stop(struct agent_ctx *g, const uint64_t drops[DP_KIND_MAX], struct sbuf *statsb);
void write_agent_stop_to(struct output *o, uint64_t start_real_ns, const uint64_t drops[DP_KIND_MAX],
			 const char *job_json, struct sbuf *statsb);

#endif
