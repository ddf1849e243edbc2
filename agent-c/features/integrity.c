/*
 * Tamper evidence. Everything found here becomes a `tamper` line in the log
 * ({"what": short stable code, "detail": human text}), so the signed trace
 * carries it and the summarizer's integrity section reports it.
 *
 * Checked about once a second (integrity_tick) and once more before the stop
 * record (integrity_final):
 *   link-detached        one of our cgroup links was detached (bpftool link detach)
 *   pin-removed          a pin under our pin dir was unlinked
 *   program-detached     one of our programs is no longer attached to its cgroup hook
 *   foreign-bpf-program  another program appeared on a cgroup hook we use (connect4/6,
 *                        sendmsg4/6, ingress, egress) of the cgroup v2 root or the
 *                        enforced cgroup after the agent started
 *   ptrace / process-vm-access   ptrace or process_vm_readv/writev aimed at the agent or a
 *                        `protect-pid` (bpf/tamper.bpf.c counts them in the kernel)
 *   clock-jump           CLOCK_REALTIME moved more than 2 s against CLOCK_BOOTTIME
 *   agent-stalled        the agent did not run for more than 5 s (SIGSTOP, or starved)
 *   log-modified         the log on disk is not what the agent wrote (size each second;
 *                        size and SHA-256 at stop, which also sets log_intact:false)
 * From the file hook (integrity_on_file):
 *   proc-mem-access / proc-environ-access   /proc/<pid>/mem or environ of a protected pid
 *   resolver-config-write, hosts-write, nsswitch-write, docker-config-write
 */
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "base/sha256.h"
#include "base/output.h"
#include "kernel/bpfload.h"
#include "records/proctab.h"
#include "records/steps.h"
#include "records/containers.h"
#include "records/events.h"
#include "features/enforce_agent.h"
#include "features/integrity.h"
#include "features/integrity_int.h"
#include "tamper.skel.h"

#define MAX_PROTECT 32
#define CLOCK_JUMP_NS 2000000000ll
#define STALL_NS 5000000000ull

static uint32_t protect[MAX_PROTECT];
static int nprotect;

static struct tamper_bpf *tskel;
static char tamper_attach[256];
static int tamper_kprobes; /* the ptrace hooks are kprobes (no syscall tracepoints of ours) */

const char *integrity_attach(void)
{
	return tamper_attach;
}
static struct bpf_link *tlinks[6];
static int ntlinks;

static uint64_t last_check_boot, last_check_real, last_tick_boot;
static uint64_t reported_size = (uint64_t)-1;
static uint64_t tamper_written;
static uint64_t overflow_reported;
static int log_intact = 1;
static int active;

static struct sbuf tl;

/* ---------- config ---------- */

int integrity_config_line(char **tok, int n, char *why, size_t whyn)
{
	char *end;
	long v;

	if (strcmp(tok[0], "protect-pid") != 0)
		return 0;
	if (n != 2) {
		snprintf(why, whyn, "protect-pid takes one pid");
		return -1;
	}
	errno = 0;
	v = strtol(tok[1], &end, 10);
	if (errno || *end || v <= 0 || v > 0x3fffffff) {
		snprintf(why, whyn, "protect-pid: '%s' is not a process id", tok[1]);
		return -1;
	}
	if (nprotect >= MAX_PROTECT - 1) {
		snprintf(why, whyn, "protect-pid: too many (max %d)", MAX_PROTECT - 1);
		return -1;
	}
	protect[nprotect++] = (uint32_t)v;
	return 1;
}

static int is_protected(uint32_t pid)
{
	if (pid == G.self_pid)
		return 1;
	for (int i = 0; i < nprotect; i++)
		if (protect[i] == pid)
			return 1;
	return 0;
}

/* ---------- the tamper line ---------- */

void tamper_emit(const struct actor *a, const char *what, const char *detail)
{
	struct actor self = {.pid = G.self_pid, .tid = G.self_pid, .ppid = (uint32_t)getppid(),
			     .uid = (uint32_t)getuid(), .comm = PROG, .commlen = sizeof(PROG)};
	uint64_t real = now_realtime_ns();
	const char *sname;
	size_t sn = 0;

	if (!a)
		a = &self;
	if (a->boot_ts)
		real = (uint64_t)((int64_t)a->boot_ts + G.boot_to_real);
	size_t hl;

	out_begin(&G.out, &tl, "tamper", real);
	hl = tl.len;
	sb_printf(&tl, ",\"pid\":%u,\"tid\":%u,\"ppid\":%u,\"uid\":%u,\"comm\":", a->pid, a->tid, a->ppid, a->uid);
	sb_json_str(&tl, a->comm, strnlen(a->comm, a->commlen));
	sb_printf(&tl, ",\"cgroup\":%llu,\"step\":", (unsigned long long)a->cgroup);
	sname = a->step ? step_name(a->step, &sn) : NULL;
	if (sname)
		sb_json_str(&tl, sname, sn);
	else
		sb_puts(&tl, "null");
	sb_puts(&tl, ",\"what\":");
	sb_json_cstr(&tl, what);
	sb_puts(&tl, ",\"detail\":");
	sb_json_cstr(&tl, detail);
	if (a != &self) {
		sb_puts(&tl, ",\"ancestry\":");
		proc_ancestry(&tl, a->pid, a->ppid);
	}
	/* daemon mode: tampering with the agent concerns every job it watches */
	if (EH.tamper)
		EH.tamper(real, tl.p + hl, tl.len - hl);
	out_commit(&G.out, &tl, SK_COUNT); /* not one of the stat kinds */
	tamper_written++;
}

/* ---------- file hook: /proc/<pid>/mem of a protected pid, resolver config writes ---------- */

static const struct {
	const char *rule, *what;
} write_rules[] = {
	{"resolver-config", "resolver-config-write"},
	{"hosts-file", "hosts-write"},
	{"nsswitch-config", "nsswitch-write"},
	{"docker-daemon-config", "docker-config-write"},
};

int integrity_write_rule(const char *rule_name)
{
	for (size_t i = 0; i < sizeof(write_rules) / sizeof(write_rules[0]); i++)
		if (strcmp(rule_name, write_rules[i].rule) == 0)
			return 1;
	return 0;
}

/* /proc/<pid>/<leaf> or /proc/<pid>/task/<tid>/<leaf> -> pid, leaf */
static long proc_target(const char *path, const char **leaf)
{
	const char *p;
	char *end;
	long pid;

	if (strncmp(path, "/proc/", 6) != 0)
		return -1;
	pid = strtol(path + 6, &end, 10);
	if (end == path + 6 || *end != '/')
		return -1;
	p = end + 1;
	if (strncmp(p, "task/", 5) == 0) {
		p = strchr(p + 5, '/');
		if (!p)
			return -1;
		p++;
	}
	*leaf = p;
	return pid;
}

void integrity_on_file(const char *rule, const char *path, uint32_t flags, const struct dp_hdr *h, uint32_t ppid)
{
	struct actor a = {.pid = h->pid, .tid = h->tid, .ppid = ppid, .uid = h->uid, .step = h->step,
			  .cgroup = h->cgroup, .comm = h->comm, .commlen = sizeof(h->comm), .boot_ts = h->ts};
	char detail[1200];
	const char *leaf = NULL;
	long target;

	if (!rule)
		return;
	if (strcmp(rule, "proc-mem") == 0 || strcmp(rule, "proc-environ") == 0) {
		target = proc_target(path, &leaf);
		if (target <= 0 || !is_protected((uint32_t)target))
			return;
		snprintf(detail, sizeof(detail), "%.16s (pid %u) opened %s of %s pid %ld (flags 0x%x)", h->comm, h->pid,
			 path, (uint32_t)target == G.self_pid ? "the agent," : "protected", target, flags);
		tamper_emit(&a, strcmp(rule, "proc-mem") == 0 ? "proc-mem-access" : "proc-environ-access", detail);
		return;
	}
	for (size_t i = 0; i < sizeof(write_rules) / sizeof(write_rules[0]); i++) {
		if (strcmp(rule, write_rules[i].rule) != 0)
			continue;
		if (!(flags & DP_OPEN_WRITE_FLAGS))
			return;
		snprintf(detail, sizeof(detail), "%.16s (pid %u) opened %s for writing during the job (flags 0%o)", h->comm,
			 h->pid, path, flags);
		tamper_emit(&a, write_rules[i].what, detail);
		return;
	}
}

/* ---------- moves out of the enforced cgroup ---------- */

/* is cgroup id `id` the enforced cgroup or below it? (pid: a process that is in it now, or 0) */
static int in_enforced(uint64_t id, uint32_t pid)
{
	const char *base = enforce_cgroup_path();
	char path[4200];
	size_t bl = strlen(base);
	struct stat st;

	if (!id || !bl)
		return 0;
	if (stat(base, &st) == 0 && (uint64_t)st.st_ino == id)
		return 1;
	if (cgroup_path_of(id, pid, path, sizeof(path)) < 0)
		return 0;
	return !strncmp(path, base, bl) && path[bl] == '/';
}

/*
 * A move on the cgroup v2 hierarchy (bpf/tamper.bpf.c): reported when the process was last seen
 * in the enforced cgroup (or below it) and went somewhere outside it: from there on nothing
 * judges its egress. Moves into the job (the action moving the runner in) are not news.
 */
static void cgroup_move(const struct actor *a, const struct dp_tamper_key *k, const struct dp_tamper_hit *hit)
{
	char detail[600], dst[4200];
	const char *comm = NULL;

	/* the agent's own moves (into the job at start, leftovers out at stop) are not news */
	if (!enforce_cgroup_path()[0] || k->tracer == G.self_pid || !proc_was_enforced(k->target) ||
	    in_enforced(hit->arg, k->target))
		return;
	if (cgroup_path_of(hit->arg, k->target, dst, sizeof(dst)) < 0)
		snprintf(dst, sizeof(dst), "cgroup id %llu", (unsigned long long)hit->arg);
	proc_get(k->target, NULL, &comm, NULL);
	snprintf(detail, sizeof(detail),
		 "%.16s (pid %u) moved process %u (%.16s) out of the enforced cgroup %s into %s: its egress is no longer judged",
		 hit->comm, k->tracer, k->target, comm && comm[0] ? comm : "?", enforce_cgroup_path(), dst);
	tamper_emit(a, "cgroup-escape", detail);
	proc_clear_enforced(k->target); /* reported once: a second move is not a second escape */
}

/* records carry their process's cgroup: is this one the enforced cgroup or below it? (cached) */
int integrity_cgroup_enforced(uint64_t id)
{
	static uint64_t ids[64];
	static uint8_t val[64];
	static unsigned n;

	if (!id || !enforce_cgroup_path()[0])
		return 0;
	for (unsigned i = 0; i < n && i < 64; i++)
		if (ids[i] == id)
			return val[i];
	ids[n % 64] = id;
	val[n % 64] = (uint8_t)in_enforced(id, 0);
	return val[(n++) % 64];
}

static void check_tamper_hits(void)
{
	struct dp_tamper_key k, next, *prev = NULL;
	struct dp_tamper_hit hit;
	int fd;
	uint32_t zero = 0;
	uint64_t ov = 0;

	if (!tskel)
		return;
	fd = bpf_map__fd(tskel->maps.tamper_hits);
	/* collect, report, delete: a repeat after the report is a new entry (reported again) */
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &hit) == 0) {
			struct actor a = {.pid = k.tracer, .tid = hit.tid, .ppid = hit.ppid, .uid = hit.uid, .step = hit.step,
					  .cgroup = hit.cgroup, .comm = hit.comm, .commlen = sizeof(hit.comm), .boot_ts = hit.ts};
			char detail[512];
			const char *whom = k.target == G.self_pid ? "the agent" : "protected process";

			if (k.sys == DP_TS_CGROUP_MOVE) {
				cgroup_move(&a, &k, &hit);
				continue;
			}
			if (k.sys == DP_TS_PACKET_SOCKET) {
				/* only the enforced cgroup's: a DHCP client of the host is not the job */
				if (k.tracer != G.self_pid && in_enforced(hit.cgroup, k.tracer)) {
					snprintf(detail, sizeof(detail),
						 "%.16s (pid %u) in the enforced cgroup opened an AF_PACKET socket (type %u, "
						 "protocol 0x%04llx), %llu time(s): its frames meet no connect/sendmsg hook, "
						 "so its egress (and any DNS answer it injects) is not judged",
						 hit.comm, k.tracer, k.req, (unsigned long long)__builtin_bswap16((uint16_t)hit.arg),
						 (unsigned long long)hit.count);
					tamper_emit(&a, "packet-socket", detail);
				}
				continue;
			}
			if (k.sys == DP_TS_PTRACE32)
				snprintf(detail, sizeof(detail),
					 "%.16s (pid %u) was given ptrace access (mode 0x%x: ptrace, process_vm_* or "
					 "/proc/<pid>/mem) by a 32-bit syscall on %s (pid %u), %llu time(s)",
					 hit.comm, k.tracer, k.req, whom, k.target, (unsigned long long)hit.count);
			else if (k.sys == DP_TS_PTRACE)
				snprintf(detail, sizeof(detail), "%.16s (pid %u) called ptrace(request %u) on %s (pid %u), %llu time(s)",
					 hit.comm, k.tracer, k.req, whom, k.target, (unsigned long long)hit.count);
			else
				snprintf(detail, sizeof(detail), "%.16s (pid %u) called process_vm_%s on %s (pid %u), %llu time(s)",
					 hit.comm, k.tracer, k.sys == DP_TS_VM_READV ? "readv" : "writev", whom, k.target,
					 (unsigned long long)hit.count);
			tamper_emit(&a, k.sys == DP_TS_PTRACE || k.sys == DP_TS_PTRACE32 ? "ptrace" : "process-vm-access", detail);
		}
	}
	while (bpf_map_get_next_key(fd, NULL, &next) == 0)
		if (bpf_map_delete_elem(fd, &next) < 0)
			break;
	if (bpf_map_lookup_elem(bpf_map__fd(tskel->maps.tamper_overflow), &zero, &ov) == 0 && ov > overflow_reported) {
		char detail[200];

		snprintf(detail, sizeof(detail), "%llu more ptrace/process_vm calls on protected processes (table full)",
			 (unsigned long long)(ov - overflow_reported));
		tamper_emit(NULL, "ptrace", detail);
		overflow_reported = ov;
	}
}

int integrity_start(struct agent_bpf *a, char *errbuf, size_t errn)
{
	uint8_t one = 1;
	int fd, cfd, err;

	sb_init(&tl);
	active = 1;
	last_check_boot = last_tick_boot = now_boottime_ns();
	last_check_real = now_realtime_ns();
	protect[nprotect++] = G.self_pid;

	/* write-only file rules (resolver config, /etc/hosts, ...) */
	fd = bpf_file_map_fd(a, "file_rule_wr");
	if (fd >= 0)
		for (int i = 0; i < G.cfg.nrules; i++) {
			uint32_t rid = (uint32_t)(i + 1);
			int nid = G.cfg.rules[i].id;

			if (nid >= 1 && nid <= G.cfg.nnames && integrity_write_rule(G.cfg.rule_names[nid - 1]))
				bpf_map_update_elem(fd, &rid, &one, BPF_ANY);
		}

	/* our programs: the ids behind our links (cgroup ones are checked for presence) */
	progs_remember_links(a);

	/* ptrace / process_vm_* on protected pids */
	tskel = tamper_bpf__open();
	if (!tskel) {
		snprintf(errbuf, errn, "cannot open the tamper BPF object: %s", strerror(errno));
		return -1;
	}
	/* where sys_enter_connect marks connect() entries, the raw sys_enter program (if attached
	 * below) takes that over: one program run less per connect (bpf/tamper.bpf.c) */
	cfd = bpf_connect_entry_fd(a);
	tskel->rodata->agent_tgid = G.self_pid;
	tskel->rodata->connect_entry = cfd >= 0 && !getenv("DPNDNCY_NO_TAMPER32");
	fd = bpf_exec_map_fd(a, "steps");
	if (fd < 0 || bpf_map__reuse_fd(tskel->maps.steps, fd) < 0 ||
	    (cfd >= 0 && bpf_map__reuse_fd(tskel->maps.connect_mark, cfd) < 0) || (err = tamper_bpf__load(tskel))) {
		snprintf(errbuf, errn, "cannot load the tamper BPF programs: %s", strerror(errno));
		tamper_bpf__destroy(tskel);
		tskel = NULL;
		return -1;
	}
	for (int i = 0; i < nprotect; i++)
		bpf_map_update_elem(bpf_map__fd(tskel->maps.protect_pids), &protect[i], &one, BPF_ANY);
	{
		/* kprobes first: no global syscall slow path (bpf/tamper.bpf.c); tracepoints where
		 * kprobes are missing. All three of one kind, never a mix. */
		struct bpf_program *kp[3] = {tskel->progs.dp_ptrace_k, tskel->progs.dp_vm_readv_k,
					     tskel->progs.dp_vm_writev_k};
		struct bpf_program *tp[3] = {tskel->progs.dp_ptrace, tskel->progs.dp_vm_readv, tskel->progs.dp_vm_writev};
		int i, first = ntlinks;

		for (i = 0; i < 3 && !getenv("DPNDNCY_FORCE_TAMPER_TRACEPOINT"); i++) {
			tlinks[ntlinks] = bpf_program__attach(kp[i]);
			if (!tlinks[ntlinks])
				break;
			ntlinks++;
		}
		if (i == 3) {
			tamper_kprobes = 1;
			snprintf(tamper_attach, sizeof(tamper_attach), "ksyscall/ptrace,process_vm_readv,process_vm_writev");
#if defined(__x86_64__) /* the ia32 programs exist only in the x86 build (bpf/tamper.bpf.c) */
			/* their 32-bit callers, which the __x64_sys_* probes never see */
			tlinks[ntlinks] = bpf_program__attach(tskel->progs.dp_ptrace_check_k);
			if (tlinks[ntlinks]) {
				size_t l = strlen(tamper_attach);

				ntlinks++;
				snprintf(tamper_attach + l, sizeof(tamper_attach) - l,
					 "+kprobe/security_ptrace_access_check(ia32)");
			} else {
				err_msg("warning: cannot attach kprobe/security_ptrace_access_check (%s): 32-bit ptrace is not "
					"reported", strerror(errno));
			}
#endif
		} else {
			while (ntlinks > first)
				bpf_link__destroy(tlinks[--ntlinks]);
			for (i = 0; i < 3; i++) {
				tlinks[ntlinks] = bpf_program__attach(tp[i]);
				if (!tlinks[ntlinks]) {
					snprintf(errbuf, errn, "cannot attach %s: %s", bpf_program__name(tp[i]), strerror(errno));
					integrity_fini();
					return -1;
				}
				ntlinks++;
			}
			snprintf(tamper_attach, sizeof(tamper_attach),
				 "tracepoint/syscalls/sys_enter_ptrace,process_vm_readv,process_vm_writev");
			/* their 32-bit versions, which those tracepoints never see (bpf/tamper.bpf.c); it costs
			 * every syscall about 55 ns more here (on top of the slow path the tracepoints put them on),
			 * DPNDNCY_NO_TAMPER32=1 leaves it out */
#if defined(__x86_64__)
			tlinks[ntlinks] = getenv("DPNDNCY_NO_TAMPER32") ? NULL : bpf_program__attach(tskel->progs.dp_sys_enter32);
			if (tlinks[ntlinks]) {
				size_t l = strlen(tamper_attach);

				ntlinks++;
				snprintf(tamper_attach + l, sizeof(tamper_attach) - l, "+raw_tracepoint/sys_enter(ia32%s)",
					 tskel->rodata->connect_entry ? ",connect entry" : "");
				if (tskel->rodata->connect_entry)
					bpf_connect_entry_moved(a);
			} else {
				err_msg("warning: cannot attach raw_tracepoint/sys_enter (%s): 32-bit ptrace is not reported",
					strerror(errno));
			}
#endif
		}
	}
	if (G.cfg.mode == DP_MODE_ENFORCE && enforce_cgroup_path()[0]) {
		/* moves out of the enforced cgroup (reported, not refused: the tracepoint comes after) */
		tlinks[ntlinks] = bpf_program__attach(tskel->progs.dp_cgroup_attach);
		if (tlinks[ntlinks]) {
			size_t l = strlen(tamper_attach);

			ntlinks++;
			snprintf(tamper_attach + l, sizeof(tamper_attach) - l, "+tracepoint/cgroup/cgroup_attach_task");
		} else
			err_msg("warning: cannot attach tracepoint/cgroup/cgroup_attach_task (%s): a process leaving the "
				"enforced cgroup would not be reported", strerror(errno));
		/* AF_PACKET sockets, which nothing can refuse here: reported. The kprobe where the ptrace
		 * hooks are kprobes; the syscall tracepoint only where syscall tracepoints are in use
		 * anyway (it would put every syscall on the slow path, DESIGN §6) */
		tlinks[ntlinks] = tamper_kprobes ? bpf_program__attach(tskel->progs.dp_packet_create_k)
						 : bpf_program__attach(tskel->progs.dp_socket_tp);
		if (tlinks[ntlinks]) {
			size_t l = strlen(tamper_attach);

			ntlinks++;
			snprintf(tamper_attach + l, sizeof(tamper_attach) - l, "%s",
				 tamper_kprobes ? "+kprobe/packet_create" : "+tracepoint/syscalls/sys_enter_socket(AF_PACKET)");
		} else
			err_msg("warning: cannot attach %s (%s): an AF_PACKET socket in the enforced cgroup would not be reported",
				tamper_kprobes ? "kprobe/packet_create" : "tracepoint/syscalls/sys_enter_socket", strerror(errno));
	}
	/* programs already on the hooks are not the job's doing: only new ones are reported */
	progs_check_cgroup(bpf_root_cgroup_fd(a), "the cgroup v2 root", 1);
	progs_check_cgroup(enforce_cgroup_fd(), "the enforced cgroup", 1);
	return 0;
}

static void check_log_size(void)
{
	struct stat st;
	char detail[300];

	if (G.out.fd < 0 || G.out.buf.len || fstat(G.out.fd, &st) < 0)
		return;
	if ((uint64_t)st.st_size == G.out.bytes || (uint64_t)st.st_size == reported_size)
		return;
	reported_size = (uint64_t)st.st_size;
	log_intact = 0;
	snprintf(detail, sizeof(detail), "the log %s is %llu bytes on disk; the agent wrote %llu (truncated or appended to by someone else)",
		 G.out.path, (unsigned long long)st.st_size, (unsigned long long)G.out.bytes);
	tamper_emit(NULL, "log-modified", detail);
}

static void checks(struct agent_bpf *a, uint64_t boot)
{
	uint64_t real = now_realtime_ns();

	if (G.cfg.mode == DP_MODE_ENFORCE)
		enforce_tick(); /* not integrity, but the same once-a-second beat */
	int64_t skew = ((int64_t)real - (int64_t)last_check_real) - ((int64_t)boot - (int64_t)last_check_boot);

	if (skew > CLOCK_JUMP_NS || skew < -CLOCK_JUMP_NS) {
		char detail[300];

		snprintf(detail, sizeof(detail),
			 "the wall clock (CLOCK_REALTIME) moved %+.3f s against CLOCK_BOOTTIME within %.3f s; event times stay on the start's offset",
			 (double)skew / 1e9, (double)(boot - last_check_boot) / 1e9);
		tamper_emit(NULL, "clock-jump", detail);
	}
	last_check_real = real;
	last_check_boot = boot;
	check_tamper_hits();
	progs_check_links(a);
	progs_check_cgroup(bpf_root_cgroup_fd(a), "the cgroup v2 root", 0);
	progs_check_cgroup(enforce_cgroup_fd(), "the enforced cgroup", 0);
	out_flush(&G.out);
	check_log_size();
}

void integrity_tick(struct agent_bpf *a)
{
	uint64_t boot = now_boottime_ns();

	if (!active)
		return;
	if (boot - last_tick_boot > STALL_NS) {
		char detail[200];

		snprintf(detail, sizeof(detail), "the agent did not run for %.1f s (stopped with SIGSTOP, or starved of CPU)",
			 (double)(boot - last_tick_boot) / 1e9);
		tamper_emit(NULL, "agent-stalled", detail);
	}
	last_tick_boot = boot;
	if (boot - last_check_boot >= 1000000000ull)
		checks(a, boot);
}

/* the log on disk against what the agent wrote: size and SHA-256 */
static void check_log_hash(void)
{
	char want[65], got[65], detail[600];
	struct sha256 ctx;
	uint8_t *buf;
	uint64_t off = 0;
	struct stat st;
	int fd;

	out_flush(&G.out);
	if (G.out.fd < 0 || fstat(G.out.fd, &st) < 0)
		return;
	out_sha_hex(&G.out, want);
	fd = open(G.out.path, O_RDONLY | O_CLOEXEC);
	buf = malloc(1 << 16);
	if (fd < 0 || !buf) {
		snprintf(detail, sizeof(detail), "cannot reopen the log %s to check it: %s", G.out.path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(buf);
		log_intact = 0;
		tamper_emit(NULL, "log-modified", detail);
		return;
	}
	sha256_init(&ctx);
	while (off < G.out.bytes) {
		size_t want_n = G.out.bytes - off > (1 << 16) ? (1 << 16) : (size_t)(G.out.bytes - off);
		ssize_t r = pread(fd, buf, want_n, (off_t)off);

		if (r <= 0)
			break;
		sha256_update(&ctx, buf, (size_t)r);
		off += (uint64_t)r;
	}
	close(fd);
	free(buf);
	sha256_hex(&ctx, got);
	if ((uint64_t)st.st_size == G.out.bytes && off == G.out.bytes && strcmp(want, got) == 0)
		return;
	log_intact = 0;
	snprintf(detail, sizeof(detail),
		 "at stop the log %s on disk (%llu bytes, sha256 of the first %llu: %s) is not what the agent wrote (%llu bytes, sha256 %s)",
		 G.out.path, (unsigned long long)st.st_size, (unsigned long long)off, got, (unsigned long long)G.out.bytes,
		 want);
	tamper_emit(NULL, "log-modified", detail);
}

void integrity_final(struct agent_bpf *a)
{
	if (!active)
		return;
	integrity_tick(a);
	checks(a, now_boottime_ns());
	check_log_hash();
}

int integrity_log_intact(void)
{
	return log_intact;
}

uint64_t integrity_tamper_count(void)
{
	return tamper_written;
}

void integrity_fini(void)
{
	for (int i = ntlinks - 1; i >= 0; i--)
		bpf_link__destroy(tlinks[i]);
	ntlinks = 0;
	tamper_bpf__destroy(tskel);
	tskel = NULL;
	active = 0;
}
