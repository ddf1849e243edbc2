// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* exec / exit / fork: the process tree. */
#include "common.bpf.h"

/* exec records are built here and sent trimmed to their used length */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_exec);
} exec_scratch SEC(".maps");

SEC("tp/sched/sched_process_exec")
int dp_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct dp_exec *e;
	unsigned long start, end, len;
	unsigned int off;

	__u32 zero = 0;
	__u64 size;

	if (is_agent(id))
		return 0;
	e = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!e)
		return 0;
	fill_hdr_task(&e->h, DP_EXEC, id);
	off = ctx->__data_loc_filename & 0xFFFF;
	if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + off) < 0)
		e->filename[0] = 0;

	task = (struct task_struct *)bpf_get_current_task();
	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	len = end > start ? end - start : 0;
	e->args_total = len;
	if (len > DP_ARGS_MAX)
		len = DP_ARGS_MAX;
	barrier_var(len);
	if (len > DP_ARGS_MAX)
		len = 0;
	if (len && bpf_probe_read_user(e->args, len, (void *)start) < 0)
		len = 0;
	e->args_len = len;
	size = sizeof(*e) - DP_ARGS_MAX + len;
	barrier_var(size);
	if (size > sizeof(*e))
		size = sizeof(*e);
	if (bpf_ringbuf_output(&events, e, size, 0))
		count_drop(DP_EXEC);
	return 0;
}

SEC("tp/sched/sched_process_exit")
int dp_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct dp_exit *e;

	if ((__u32)id != (__u32)(id >> 32) || is_agent(id))
		return 0; /* threads other than the group leader */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DP_EXIT);
		return 0;
	}
	fill_hdr_task(&e->h, DP_EXIT, id);
	task = (struct task_struct *)bpf_get_current_task();
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* raw tracepoint: gives the child task, so threads can be told from processes */
SEC("raw_tp/sched_process_fork")
int BPF_PROG(dp_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dp_fork *e;
	__u32 cpid, ctgid;

	cpid = BPF_CORE_READ(child, pid);
	ctgid = BPF_CORE_READ(child, tgid);
	if (cpid != ctgid || is_agent(id))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DP_FORK);
		return 0;
	}
	fill_hdr_task(&e->h, DP_FORK, id);
	e->child_pid = cpid;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* fallback where raw tracepoints are refused: threads are reported too */
SEC("tp/sched/sched_process_fork")
int dp_fork_tp(struct trace_event_raw_sched_process_fork *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dp_fork *e;

	if (is_agent(id))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DP_FORK);
		return 0;
	}
	fill_hdr_task(&e->h, DP_FORK, id);
	e->child_pid = ctx->child_pid;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
