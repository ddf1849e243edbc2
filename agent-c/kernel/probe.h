/* Which attach point per hook: BTF, libc discovery, the feature probes, the `probe` JSON. */
#ifndef DPNDNCY_KERNEL_PROBE_H
#define DPNDNCY_KERNEL_PROBE_H

#include <stddef.h>

#include "kernel/bpfobj.h"

struct sbuf;

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
	int tcp_state_btf;     /* tp_btf/inet_sock_set_state, else the classic tracepoint */
	char tcp_state_why[200];
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

#endif
