/* The agent session: checks, attach, the ring-buffer loop (agent-c/commands/session.c). */
#ifndef DPNDNCY_COMMANDS_SESSION_H
#define DPNDNCY_COMMANDS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <signal.h>

#include "dpndncy.h"
#include "kernel/mounts.h"
#include "kernel/probe.h"
#include "kernel/bpfload.h"

struct opts;
struct sbuf;
struct ring_buffer;

/* SIGTERM/SIGINT/SIGHUP set got_stop_signal (last_signal: which); SIGPIPE ignored */
extern volatile sig_atomic_t got_stop_signal;
extern volatile sig_atomic_t last_signal;
void install_signals(void);
/* in made absolute against the working directory */
void abs_path(const char *in, char *out, size_t n);

/* what the checks found (absolute paths) */
struct prep {
	char log[4096];
	char config[4096];
	int force_file;
};
/* the checks (config loaded into G.cfg); 0 or the exit code. need_log: --log is required */
int preflight(struct opts *o, struct prep *p, int need_log);

struct session {
	struct mounts m;
	struct agent_bpf *bpf;
	struct ring_buffer *rb;
	struct attach_info ai;
	struct probe_result pr;
	struct bpf_hooks hooks;
	char kernel[128];
};
/* mounts, probes, the job cgroup, attach, the ring buffer, the start record; 0 ok. pin: links
 * pinned (start, daemon: enforcement outlives a crash) */
int session_start(struct session *s, struct prep *p, int pin, char *err, size_t errn);
/* drain, the stop record (its figures into stats when not NULL), detach, unmount */
void session_stop(struct session *s, struct sbuf *stats);
/* the figures `status` reads (stats.json) */
void stats_json(struct sbuf *b, struct session *s);

/* the session of `run`, for daemon mode: checks (config loaded into G.cfg), then attach */
struct session;
int agent_preflight(struct opts *o);
/* pin: links pinned (daemon enforce mode: enforcement outlives a crash) */
struct session *agent_session_start(int pin, char *err, size_t errn);
/* drain the ring buffer (timeout ms), tamper checks; 0 */
void agent_session_poll(struct session *s, int timeout_ms);
void agent_session_drain(struct session *s);
void agent_session_drops(struct session *s, uint64_t drops[DP_KIND_MAX]);
const struct attach_info *agent_session_attach(struct session *s);
const char *agent_session_kernel(struct session *s);
struct agent_bpf *agent_session_bpf(struct session *s);
void agent_session_stop(struct session *s);

#endif
