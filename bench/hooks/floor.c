/*
 * floor N: what kernel.bpf_stats_enabled counts for a program that does nothing.
 *
 * The kernel times every run of a program between two clock reads (with bpf_stats on), so a
 * program's ns/run includes the cost of the timing itself. This loads an empty program
 * (r0 = 0; exit) on raw_syscalls/sys_enter, which every syscall runs, makes N getppid()
 * syscalls, and prints "runs R ns T" for it: T/R is the floor under every per-run figure
 * bench/hooks prints. Built and run by bench/hooks/bench.ts (root, bpf_stats on).
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
		{.code = BPF_JMP | BPF_EXIT},
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts);
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd, tp;

	fd = bpf_prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, "floor_empty", "GPL", insns, 2, &opts);
	if (fd < 0) {
		perror("floor: bpf_prog_load");
		return 1;
	}
	tp = bpf_raw_tracepoint_open("sys_enter", fd);
	if (tp < 0) {
		perror("floor: bpf_raw_tracepoint_open sys_enter");
		return 1;
	}
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		perror("floor: bpf_obj_get_info_by_fd");
		return 1;
	}
	printf("runs %llu ns %llu\n", (unsigned long long)info.run_cnt, (unsigned long long)info.run_time_ns);
	return 0; /* exit closes both fds: the program is detached and freed */
}
