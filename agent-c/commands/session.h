/* The agent session: checks, attach, the ring-buffer loop (agent-c/commands/session.c). */
#ifndef DPNDNCY_COMMANDS_SESSION_H
#define DPNDNCY_COMMANDS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "dpndncy.h"

struct opts;
struct agent_bpf;
struct attach_info;

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
