/* What loading (bpfload.c) and probing (probe.c) share (agent-c/kernel/bpfobj.c). */
#ifndef DPNDNCY_KERNEL_BPFOBJ_H
#define DPNDNCY_KERNEL_BPFOBJ_H

/* the attach points of the file hook, best first (names in probe.c) */
enum file_hook { FH_LSM, FH_FENTRY, FH_KPROBE, FH_TRACEPOINT, FH_COUNT };

struct bpf_object;
struct bpf_program;
struct exec_bpf;
struct connect_bpf;
struct file_bpf;
struct dns_bpf;

/* the skeletons opened, their objects' bytes in one place (bpfobj.c says why) */
struct exec_bpf *bpfobj_open_exec(void);
struct connect_bpf *bpfobj_open_connect(void);
struct file_bpf *bpfobj_open_file(void);
struct dns_bpf *bpfobj_open_dns(void);

/* libbpf's last message (warnings and errors; debug ones only on stderr with DPNDNCY_DEBUG),
 * for error reasons: "" when none */
extern char last_libbpf_msg[512];
/* libbpf's print hook and strict mode, once */
void libbpf_setup(void);
/* of obj's programs only keep[] load */
void only_autoload(struct bpf_object *obj, const struct bpf_program *const *keep, int nkeep);
/* the tracepoint cat/name exists (tracefs or debugfs) */
int tp_exists(const char *cat, const char *name);
/* the programs of file hook fh (FH_*) in the file object: *n of them */
void file_hook_progs(struct file_bpf *s, int fh, const struct bpf_program **progs, int *n);

#endif
