/* dpndncy agent: enforce mode, what the rest of the agent uses (agent-c/features/enforce_*.c). */
#ifndef DPNDNCY_AGENT_ENFORCE_H
#define DPNDNCY_AGENT_ENFORCE_H

#include <stddef.h>
#include <stdint.h>

#include "enforce.h"

struct connect_bpf;
struct sbuf;

/*
 * A config line that belongs to the egress policy: allow-host, allow-suffix, allow-cidr,
 * dns-resolver, allow-metadata, exempt-pid. 0: not ours, 1: taken, -1: error in errbuf
 * (without the FILE:LINE prefix, which the caller adds).
 */
int policy_config_line(char **tok, int n, char *errbuf, size_t errn);
/* number of policy directives seen (an enforce-mode agent with none denies everything) */
int policy_entries(void);

/* --cgroup PATH for start (NULL: the agent creates <cgroup2>/dpndncy-<pid>) */
void enforce_set_cgroup(const char *path);
/* create or check the job cgroup and open it; nothing attached yet. 0 ok */
int enforce_prepare(const char *cgroup2_root, char *errbuf, size_t errn);
int enforce_cgroup_fd(void);
const char *enforce_cgroup_path(void);
/* fill the allow / deny maps of the loaded connect object. 0 ok */
int enforce_push(struct connect_bpf *conn, char *errbuf, size_t errn);
/* in the child of `run`, before exec: move ourselves into the job cgroup. 0 ok */
int enforce_join(char *errbuf, size_t errn);
/* after the programs are detached: remove the cgroup we created (processes left are moved up) */
void enforce_cleanup(void);
/* state for `stop` after SIGKILL: written into dir/enforce, undone by enforce_recover */
void enforce_write_state(const char *dir);
void enforce_recover(const char *dir);
/* rule id of a connect record -> its name ("default-deny", "allow-host example.com", ...) */
const char *enforce_rule_name(uint16_t rule);
/* JSON object describing the armed policy, for the start record / start output */
void enforce_json(struct sbuf *b);

/*
 * Daemon mode (docs/daemon.md): policy slots from a directory of *.conf files.
 * enforce_load_dir (re)reads DIR: unchanged files keep their slot and entries, changed ones
 * are replaced; on any error nothing changes (-1, FILE:LINE in errbuf). *changed: slots
 * touched. enforce_apply then replaces the kernel entries of the touched slots (after
 * enforce_push armed the maps). enforce_slot_for: the most specific policy for a job
 * (DIR/<project>/<name>.conf, DIR/<project>/default.conf, else 0 = default), *rel its file.
 * enforce_set_job: job_slot[job] = slot (0 deletes).
 */
int enforce_load_dir(const char *dir, int *changed, char *errbuf, size_t errn);
int enforce_apply(char *errbuf, size_t errn);
int enforce_policies(void);
int enforce_slot_for(const char *project, const char *name, const char **rel);
int enforce_set_job(uint32_t job, int slot);

/* learned-ttl-min (seconds), set into the connect object before load */
uint32_t enforce_ttl_min(void);
/* about once a second: a full learned map is said (once) and expired entries removed */
void enforce_tick(void);
/* stop record: ,"learned":{"inserted":N,"failed":N,"expired":N} (nothing before enforce_push) */
void enforce_stats_json(struct sbuf *b);

#endif
