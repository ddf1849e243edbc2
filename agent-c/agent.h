/* dpndncy agent: shared declarations. */
#ifndef DPNDNCY_AGENT_H
#define DPNDNCY_AGENT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "dpndncy.h"

#ifndef DPNDNCY_VERSION
#define DPNDNCY_VERSION "0.0.0"
#endif
#ifndef DPNDNCY_COMMIT
#define DPNDNCY_COMMIT "unknown"
#endif

#define PROG "dpndncy-agent"

/* The multiarch directory and musl loader name of this build's architecture: where the
 * getaddrinfo uprobe looks for libc when ld.so.cache does not name one. */
#if defined(__aarch64__)
#define LIBC_MULTIARCH "aarch64-linux-gnu"
#define MUSL_LOADER "ld-musl-aarch64.so.1"
#elif defined(__x86_64__)
#define LIBC_MULTIARCH "x86_64-linux-gnu"
#define MUSL_LOADER "ld-musl-x86_64.so.1"
#else
#error "dpndncy-agent: builds for x86_64 and aarch64 only"
#endif
#define DEFAULT_STATE_DIR "/run/dpndncy"
#define PIN_DIR "/sys/fs/bpf/dpndncy"

/* exit codes */
#define EX_FAIL 1        /* error: nothing attached */
#define EX_USAGE 2       /* bad command line */
#define EX_INCOMPLETE 3  /* stop: agent had died, trace recovered but incomplete */

/* ---- sbuf.c: growable byte buffer + JSON helpers ---- */
struct sbuf {
	char *p;
	size_t len, cap;
};
void sb_init(struct sbuf *b);
void sb_free(struct sbuf *b);
void sb_reset(struct sbuf *b);
void sb_putc(struct sbuf *b, char c);
void sb_put(struct sbuf *b, const void *s, size_t n);
void sb_puts(struct sbuf *b, const char *s);
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_put_u64(struct sbuf *b, uint64_t v);
void sb_key_u64(struct sbuf *b, const char *key_colon, size_t klen, uint64_t v);
/* sb_key_u64 with a string literal key: SB_KEY_U64(b, ",\"pid\":", pid) */
#define SB_KEY_U64(b, lit, v) sb_key_u64((b), (lit), sizeof(lit) - 1, (uint64_t)(v))
/* JSON string with quotes; arbitrary bytes: invalid UTF-8 -> \u00XX */
void sb_json_str(struct sbuf *b, const char *s, size_t n);
void sb_json_cstr(struct sbuf *b, const char *s);
/* "key": prefix with a leading comma */
void sb_key(struct sbuf *b, const char *key);

/* ---- util.c ---- */
void err_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int mkdir_p(const char *path, mode_t mode);
int write_file(const char *path, const char *data, size_t n);
char *read_file_str(const char *path, size_t max);
void kernel_release(char *buf, size_t n);
uint64_t now_realtime_ns(void);
uint64_t now_boottime_ns(void);
void fmt_ts(char out[40], uint64_t realtime_ns);
void fmt_addr(char *out, size_t n, int family, const uint8_t *addr);
int pid_alive(pid_t pid);

/* ---- mounts.c ---- */
struct mounts {
	char cgroup2[256];       /* path of a cgroup v2 mount */
	int mounted_cgroup2;     /* we mounted it (unmount at stop) */
	int mounted_tracefs;     /* we mounted /sys/kernel/tracing */
	int mounted_bpffs;       /* we mounted /sys/fs/bpf */
};
int find_mount(const char *fstype, const char *want_path, char *out, size_t n);
int mounts_setup(struct mounts *m, int need_bpffs, char *errbuf, size_t errn);
void mounts_teardown(const struct mounts *m);

/* ---- config.c ---- */
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
/* fill the kernel filter maps */
int config_push_file_rules(const struct config *c, int rules_fd, int cfg_fd, int allow_fd, char *errbuf, size_t errn);
/* user-space check of a resolved path; returns rule name or NULL when dropped */
const char *config_check_file(const struct config *c, const char *path, const char *exe, const char *comm, uint32_t pid);
int glob_match(const char *pat, const char *s);

/* ---- steps.c: step attribution (step-marker, ci-identity; step id -> string) ---- */
int steps_config_line(struct config *c, const char *line, const char *path, int lineno, char *errbuf, size_t errn);
int json_object_valid(const char *s, size_t n);
int steps_push_cfg(const struct config *c, int cfg_fd, char *errbuf, size_t errn);
void steps_start_json(const struct config *c, struct sbuf *b, int skip_ci);
void steps_set_names_fd(int fd);
const char *step_name(uint32_t id, size_t *n);

/* ---- proctab.c ---- */
struct proc_ent;
void proc_init(void);
void proc_seed(void);
void proc_set(uint32_t pid, uint32_t ppid, const char *comm, const char *filename);
void proc_exit(uint32_t pid);
int proc_get(uint32_t pid, uint32_t *ppid, const char **comm, const char **filename);
/* JSON array of ancestors of pid (its parent first) */
void proc_ancestry(struct sbuf *b, uint32_t pid, uint32_t ppid);
uint32_t proc_ppid_lookup(uint32_t pid);
/* a process seen in the enforced cgroup (records carry their cgroup): a later move out of it is
 * reported (integrity.c) */
void proc_set_enforced(uint32_t pid);
void proc_clear_enforced(uint32_t pid);
int proc_was_enforced(uint32_t pid);

/* ---- dnsparse.c ---- */
struct dns_msg {
	char name[256];
	unsigned qtype;
	unsigned rcode;
	int is_response;
	int nans;
	char answers[32][48];
};
/* parse a DNS message (no TCP length prefix); 0 ok */
int dns_parse(const uint8_t *p, size_t n, struct dns_msg *m);
const char *dns_qtype_str(unsigned t, char *buf, size_t n);

/* ---- output.c: the NDJSON log ---- */
struct output {
	int fd;
	char path[4096];
	uint64_t seq;            /* next line index */
	uint64_t bytes;          /* bytes in the file (= hashed) */
	uint64_t lost_lines;     /* lines that failed to reach the file */
	int last_errno;
	struct sbuf buf;         /* pending complete lines */
	uint64_t buf_lines;
	uint64_t buf_kind[8];    /* pending lines per kind (index given to out_commit) */
	uint64_t kind_written[8];/* lines per kind that reached the file */
	void *sha;               /* SHA2_CTX */
};
int out_open(struct output *o, const char *path, int truncate, char *errbuf, size_t errn);
/* start a line: writes {"v":1,"kind":...,"ts":...,"seq":N */
void out_begin(struct output *o, struct sbuf *line, const char *kind, uint64_t real_ns);
void out_commit(struct output *o, struct sbuf *line, unsigned kind);
int out_flush(struct output *o);
void out_sha_hex(struct output *o, char hex[65]);
void out_close(struct output *o);

/* ---- probe.c: which attach point per hook ---- */
enum file_hook { FH_LSM, FH_FENTRY, FH_KPROBE, FH_TRACEPOINT, FH_COUNT };
extern const char *const file_hook_names[FH_COUNT];
extern const char *const file_hook_points[FH_COUNT];
struct probe_result {
	char kernel[128];
	int btf;
	char btf_path[256];
	int file_ok[FH_COUNT];
	char file_why[FH_COUNT][200];
	int file_choice;
	int fork_raw_tp;
	char fork_why[200];
	int exec_ok;           /* the helpers every run needs (bpf_loop) */
	char exec_why[200];
	int cgroup_ok;
	char cgroup_why[200];
	int uprobe_ok;
	char libc[8][256];
	int nlibc;
	char uprobe_why[200];
	int skb_ok;
	char skb_why[200];
};
const char *btf_path(void);
int check_btf(char *errbuf, size_t n);
int parse_file_hook(const char *s);
/* force: -1 none, else FH_* */
int probe_all(struct probe_result *r, int force_file, const char *cgroup_path, char *errbuf, size_t errn);
void probe_json(const struct probe_result *r, struct sbuf *b);
int find_libcs(char out[][256], int max);

/* ---- bpfload.c ---- */
/* links an agent holds: its hooks (about 16) and two per probed container libc (256 at most) */
#define MAX_LINKS (64 + 2 * 256)
struct agent_bpf;
struct attach_info {
	char exec[128], exitp[128], fork[128], connect[160], connect_result[128];
	char file[128], dns[160], dns_packet[128];
	char tamper[256];      /* filled after integrity_start (as long as integrity.c's tamper_attach) */
};
/*
 * What the layers above add while the objects load and attach, each where the kernel needs it
 * (everything before the first program is attached); the session (agent.c) fills it. bpfload.c
 * names none of them.
 */
struct connect_bpf;
struct bpf_hooks {
	/* exec object loaded: the step markers into step_cfg (0 ok), the step maps to the records */
	int (*exec_loaded)(const struct config *cfg, int step_cfg_fd, int step_names_fd, int steps_fd, char *errbuf,
			   size_t errn);
	uint32_t learned_ttl_min;   /* seconds, set into the connect object before it loads */
	int container_slices;       /* enforce mode: container slices are judged (gated programs loaded) */
	/* enforce mode, connect object loaded: the policy maps (0 ok) */
	int (*connect_loaded)(struct connect_bpf *conn, char *errbuf, size_t errn);
	/* connect object loaded: the cgroup-birth object (<0 with why: fatal only with container slices) */
	int (*judged_load)(int judged_fd, const char *cg2root, char *why, size_t whyn);
	/* enforce mode: the job cgroup's open fd */
	int (*enforce_cgroup_fd)(void);
	/* enforce mode: the i-th further judged cgroup (0 ok, -1 past the end), what it is called in
	 * errors, whether it is a slice (gated programs); and its fd once attached */
	int (*judged_cgroup)(int i, const char *cg2root, char *path, size_t n, const char **what, int *slice);
	void (*judged_attached)(int i, int fd);
	void (*unload)(void);       /* teardown, before the links go */
	/* connect records still parked at stop (bpf_flush_pending) */
	int (*on_record)(void *ctx, void *data, size_t len);
};
struct agent_bpf *bpf_setup(const struct config *cfg, const struct probe_result *pr, const char *cgroup_path,
			    int pin, const struct bpf_hooks *h, char *errbuf, size_t errn, struct attach_info *ai);
int bpf_ringbuf_fd(struct agent_bpf *a);
void bpf_flush_pending(struct agent_bpf *a);
void bpf_read_drops(struct agent_bpf *a, uint64_t drops[DP_KIND_MAX]);
void bpf_teardown(struct agent_bpf *a);
void unpin_all(const char *dir);
const char *bpf_pin_dir(struct agent_bpf *a);
void attach_json(const struct attach_info *ai, struct sbuf *b);

/* ---- events.c ---- */
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

/* daemon mode (agent-c/daemon.c) plugs in here; all NULL otherwise */
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

/* ---- agent.c: the main loop, run/start/stop/status ---- */
struct opts {
	const char *log;
	const char *state_dir;
	const char *config;
	const char *mode;
	const char *file_hook;
	const char *cgroup;      /* start --mode enforce: the cgroup to enforce on */
	const char *jobs_dir;    /* daemon */
	const char *policy_dir;  /* daemon, enforce */
	const char *job_idle;    /* daemon: seconds */
	char **cmd;
	int foreground;
};
int cmd_probe(struct opts *o);
int cmd_run(struct opts *o);
int cmd_start(struct opts *o);
int cmd_stop(struct opts *o);
int cmd_status(struct opts *o);
int cmd_daemon(struct opts *o);   /* agent-c/daemon.c */

/* the session of `run`, for daemon mode: checks (config loaded into G.cfg), then attach */
struct session;
int agent_preflight(struct opts *o);
/* pin: links pinned (daemon enforce mode: enforcement outlives a crash) */
struct session *agent_session_start(int pin, char *err, size_t errn);
/* daemon state dir (the format of `start`): lock it, and name a dead predecessor's pins */
int agent_state_claim(const char *dir, long *old_pid, char *old_pin, size_t n);
int agent_state_write(const char *dir, struct session *s);
void agent_state_clear(const char *dir);
/* drain the ring buffer (timeout ms), tamper checks; 0 */
void agent_session_poll(struct session *s, int timeout_ms);
void agent_session_drain(struct session *s);
void agent_session_drops(struct session *s, uint64_t drops[DP_KIND_MAX]);
const struct attach_info *agent_session_attach(struct session *s);
const char *agent_session_kernel(struct session *s);
struct agent_bpf *agent_session_bpf(struct session *s);
void agent_session_stop(struct session *s);

#endif
