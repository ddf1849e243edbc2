/* Tamper evidence (agent-c/features/integrity.c). */
#ifndef DPNDNCY_INTEGRITY_H
#define DPNDNCY_INTEGRITY_H

#include <stddef.h>
#include <stdint.h>

#include "dpndncy.h"

struct agent_bpf;
struct bpf_link;

/* config: `protect-pid PID`; 1 handled, 0 not ours, -1 error (why) */
int integrity_config_line(char **tok, int n, char *why, size_t whyn);
/* after bpf_setup: load the ptrace hooks, note our programs, fill the write-only rule map */
int integrity_start(struct agent_bpf *a, char *errbuf, size_t errn);
/* every loop iteration; checks run about once a second */
void integrity_tick(struct agent_bpf *a);
/* is cgroup id the enforced cgroup or below it (cached; 0 outside enforce mode) */
int integrity_cgroup_enforced(uint64_t id);
/* before the stop record: a last check and the log's size and SHA-256 against the file */
void integrity_final(struct agent_bpf *a);
void integrity_fini(void);
int integrity_log_intact(void);
/* where the ptrace / process_vm_* hooks went (for the start record's attach.tamper) */
const char *integrity_attach(void);
uint64_t integrity_tamper_count(void);
/* a file event was written: tamper when it touches a protected pid or resolver config for writing */
void integrity_on_file(const char *rule, const char *path, uint32_t flags, const struct dp_hdr *h, uint32_t ppid);
int integrity_write_rule(const char *rule_name);

#endif
