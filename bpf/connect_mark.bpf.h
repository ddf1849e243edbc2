/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * "This thread has entered connect()", per CPU: written by the syscall's entry hook
 * (sys_enter_connect, the connect kprobe, or the ia32 watch's raw sys_enter program, which
 * runs for every syscall anyway: bpf/tamper.bpf.c), read by the cgroup connect program that
 * runs inside the same syscall, which parks its record for the syscall's exit and leaves the
 * socket's cookie here; the exit, on the same CPU, takes it. A per-CPU slot costs no hash
 * update (three per connect before: the mark, its lookup, its delete). A thread that slept
 * and woke on another CPU between entry and cgroup program finds no mark of its own: its
 * record goes out at once without a result, never with a wrong one; one that moved between
 * the cgroup program and the exit has its socket found by the syscall's fd instead.
 */
#ifndef DPNDNCY_CONNECT_MARK_BPF_H
#define DPNDNCY_CONNECT_MARK_BPF_H

struct dp_connect_mark {
	__u32 tid;     /* the thread inside connect(); 0 once its exit took the mark */
	__u32 pad;
	__u64 ts;      /* boot ns of the entry */
	__u64 cookie;  /* the socket whose record the cgroup program parked, or 0 */
};

/* older marks are not taken: a stale one (its exit ran on another CPU) must not catch a later
 * io_uring connect of the same thread, whose record would then wait for an exit that never comes */
#define DP_MARK_MAX_AGE_NS (10ULL * 1000 * 1000)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_connect_mark);
} connect_mark SEC(".maps");

static __always_inline void connect_mark_set(__u32 tid)
{
	__u32 zero = 0;
	struct dp_connect_mark *m = bpf_map_lookup_elem(&connect_mark, &zero);

	if (m) {
		m->tid = tid;
		m->ts = bpf_ktime_get_boot_ns();
		m->cookie = 0;
	}
}

#endif
