/* BTF, libc discovery, file-hook names, the feature probes (which load and attach for real, then
 * detach) and the `probe` JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "kernel/probe.h"
#include "kernel/bpfobj.h"
#include "exec.skel.h"
#include "connect.skel.h"
#include "file.skel.h"
#include "dns.skel.h"

const char *const file_hook_names[FH_COUNT] = {"lsm", "fentry", "kprobe", "tracepoint"};
const char *const file_hook_points[FH_COUNT] = {
	"lsm/file_open", "fentry/security_file_open", "kprobe/security_file_open",
	"tracepoint/syscalls/sys_exit_openat",
};

const char *btf_path(void)
{
	const char *p = getenv("DPNDNCY_BTF_PATH");

	return p && *p ? p : "/sys/kernel/btf/vmlinux";
}

int check_btf(char *errbuf, size_t n)
{
	struct stat st;

	if (stat(btf_path(), &st) < 0) {
		snprintf(errbuf, n, "kernel BTF not found at %s: this kernel needs CONFIG_DEBUG_INFO_BTF=y", btf_path());
		return -1;
	}
	return 0;
}

int parse_file_hook(const char *s)
{
	for (int i = 0; i < FH_COUNT; i++)
		if (strcmp(s, file_hook_names[i]) == 0)
			return i;
	return -2;
}

static int add_libc(char out[][256], int n, int max, const char *path)
{
	struct stat st, o;

	if (n >= max || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return n;
	for (int i = 0; i < n; i++)
		if (stat(out[i], &o) == 0 && o.st_dev == st.st_dev && o.st_ino == st.st_ino)
			return n; /* same file by another name */
	snprintf(out[n], 256, "%s", path);
	return n + 1;
}

/* every distinct libc on the host: ld.so.cache entries, then the usual paths */
int find_libcs(char out[][256], int max)
{
	static const char *const common[] = {
		"/lib/" LIBC_MULTIARCH "/libc.so.6", "/usr/lib/" LIBC_MULTIARCH "/libc.so.6",
		"/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/lib/libc.so.6", "/usr/lib/libc.so.6",
		"/lib/" MUSL_LOADER,
	};
	int n = 0;
	FILE *f = fopen("/etc/ld.so.cache", "rbe");

	if (f) {
		char buf[4096];
		size_t len = 0;
		int c;

		/* the cache's string table holds full paths: pick those naming libc.so.6 */
		while ((c = fgetc(f)) != EOF) {
			if (c == 0) {
				buf[len] = 0;
				if (len > 10 && buf[0] == '/' && strcmp(buf + len - 10, "/libc.so.6") == 0)
					n = add_libc(out, n, max, buf);
				len = 0;
			} else if (len < sizeof(buf) - 1) {
				buf[len++] = (char)c;
			} else {
				len = 0;
			}
		}
		fclose(f);
	}
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		n = add_libc(out, n, max, common[i]);
	return n;
}

static void why_or_null(struct sbuf *b, int ok, const char *why)
{
	if (ok)
		sb_puts(b, "null");
	else
		sb_json_cstr(b, why);
}

void probe_json(const struct probe_result *r, struct sbuf *b)
{
	const char *conn = r->cgroup_ok ? "cgroup/connect4,connect6,sendmsg4,sendmsg6" : "tracepoint/syscalls/sys_enter_connect";
	char dns[200];

	snprintf(dns, sizeof(dns), "%s%s%s", r->uprobe_ok ? "uprobe/getaddrinfo" : "",
		 r->uprobe_ok && r->skb_ok ? "+" : "", r->skb_ok ? "cgroup_skb/ingress" : "");
	if (!dns[0])
		snprintf(dns, sizeof(dns), "none");

	sb_puts(b, "{\"version\":");
	sb_json_cstr(b, DPNDNCY_VERSION);
	sb_puts(b, ",\"commit\":");
	sb_json_cstr(b, DPNDNCY_COMMIT);
	sb_puts(b, ",\"kernel\":");
	sb_json_cstr(b, r->kernel);
	sb_printf(b, ",\"btf\":%s,\"btf_path\":", r->btf ? "true" : "false");
	sb_json_cstr(b, r->btf_path);

	sb_puts(b, ",\"attach\":{\"exec\":");
	sb_json_cstr(b, r->exec_ok ? "tracepoint/sched/sched_process_exec" : "none");
	sb_puts(b, ",\"connect\":");
	sb_json_cstr(b, conn);
	sb_puts(b, ",\"file\":");
	sb_json_cstr(b, r->file_choice >= 0 ? file_hook_points[r->file_choice] : "none");
	sb_puts(b, ",\"dns\":");
	sb_json_cstr(b, dns);
	sb_putc(b, '}');

	sb_puts(b, ",\"hooks\":{");
	/* exec */
	sb_puts(b, "\"exec\":{\"attach\":\"tracepoint/sched/sched_process_exec\",\"exit\":\"tracepoint/sched/sched_process_exit\",\"fork\":");
	sb_json_cstr(b, r->fork_raw_tp ? "raw_tracepoint/sched_process_fork" : "tracepoint/sched/sched_process_fork");
	sb_puts(b, ",\"unavailable\":{");
	if (!r->exec_ok) {
		sb_puts(b, "\"tracepoint/sched/sched_process_exec\":");
		sb_json_cstr(b, r->exec_why);
	} else if (!r->fork_raw_tp) {
		sb_puts(b, "\"raw_tracepoint/sched_process_fork\":");
		sb_json_cstr(b, r->fork_why);
	}
	sb_puts(b, "}}");
	/* connect */
	sb_puts(b, ",\"connect\":{\"attach\":");
	sb_json_cstr(b, conn);
	sb_puts(b, ",\"result\":");
	sb_json_cstr(b, r->file_choice == FH_TRACEPOINT || !r->cgroup_ok ? "tracepoint/syscalls/sys_exit_connect" : "none");
	sb_puts(b, ",\"state_change\":");
	sb_json_cstr(b, r->tcp_state_btf ? "tp_btf/inet_sock_set_state" : "tracepoint/sock/inet_sock_set_state");
	sb_puts(b, ",\"candidates\":[\"cgroup/connect4,connect6,sendmsg4,sendmsg6\",\"tracepoint/syscalls/sys_enter_connect\"]");
	sb_puts(b, ",\"unavailable\":{");
	if (!r->cgroup_ok) {
		sb_puts(b, "\"cgroup/connect4,connect6,sendmsg4,sendmsg6\":");
		sb_json_cstr(b, r->cgroup_why);
	}
	if (!r->tcp_state_btf) {
		sb_puts(b, r->cgroup_ok ? "" : ",");
		sb_puts(b, "\"tp_btf/inet_sock_set_state\":");
		sb_json_cstr(b, r->tcp_state_why);
	}
	sb_puts(b, "}}");
	/* file */
	sb_puts(b, ",\"file\":{\"attach\":");
	sb_json_cstr(b, r->file_choice >= 0 ? file_hook_points[r->file_choice] : "none");
	sb_puts(b, ",\"candidates\":[");
	for (int i = 0; i < FH_COUNT; i++) {
		if (i)
			sb_putc(b, ',');
		sb_json_cstr(b, file_hook_points[i]);
	}
	sb_puts(b, "],\"available\":{");
	for (int i = 0; i < FH_COUNT; i++) {
		if (i)
			sb_putc(b, ',');
		sb_json_cstr(b, file_hook_points[i]);
		sb_printf(b, ":%s", r->file_ok[i] ? "true" : "false");
	}
	sb_puts(b, "},\"unavailable\":{");
	{
		int first = 1;

		for (int i = 0; i < FH_COUNT; i++) {
			if (r->file_ok[i])
				continue;
			if (!first)
				sb_putc(b, ',');
			first = 0;
			sb_json_cstr(b, file_hook_points[i]);
			sb_putc(b, ':');
			sb_json_cstr(b, r->file_why[i]);
		}
	}
	sb_puts(b, "}}");
	/* dns */
	sb_puts(b, ",\"dns\":{\"attach\":");
	sb_json_cstr(b, dns);
	sb_puts(b, ",\"libc\":[");
	for (int i = 0; i < r->nlibc; i++) {
		if (i)
			sb_putc(b, ',');
		sb_json_cstr(b, r->libc[i]);
	}
	sb_puts(b, "],\"uprobe\":");
	why_or_null(b, r->uprobe_ok, r->uprobe_why);
	sb_puts(b, ",\"packet\":");
	why_or_null(b, r->skb_ok, r->skb_why);
	sb_puts(b, ",\"unavailable\":{");
	if (!r->uprobe_ok) {
		sb_puts(b, "\"uprobe/getaddrinfo\":");
		sb_json_cstr(b, r->uprobe_why);
	}
	if (!r->skb_ok) {
		if (!r->uprobe_ok)
			sb_putc(b, ',');
		sb_puts(b, "\"cgroup_skb/ingress\":");
		sb_json_cstr(b, r->skb_why);
	}
	sb_puts(b, "}}}}");
}

/* ---------- probes ---------- */

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ESRCH: return "ESRCH";
	case E2BIG: return "E2BIG";
	case 524: return "ENOTSUPP";
	case EBUSY: return "EBUSY";
	case ENODEV: return "ENODEV";
	default: return "errno";
	}
}

static void why(char *out, size_t n, const char *step, int err)
{
	if (err < 0)
		err = -err;
	snprintf(out, n, "%s failed: %s (%s %d)", step, err == 524 ? "operation not supported" : strerror(err),
		 errname(err), err);
}

/* is "bpf" among the active LSMs? securityfs is mounted privately for a moment if need be */
static int lsm_bpf_active(char *reason, size_t n)
{
	char *s = read_file_str("/sys/kernel/security/lsm", 4096);
	int on;

	if (!s) {
		char dir[] = "/tmp/dpndncy-secfs-XXXXXX";

		if (mkdtemp(dir)) {
			if (mount("securityfs", dir, "securityfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) {
				char path[64];

				snprintf(path, sizeof(path), "%s/lsm", dir);
				s = read_file_str(path, 4096);
				umount2(dir, MNT_DETACH);
			}
			rmdir(dir);
		}
	}
	if (!s) {
		snprintf(reason, n, "cannot read the active LSM list (securityfs)");
		return 0;
	}
	on = strstr(s, "bpf") != NULL;
	if (!on)
		snprintf(reason, n, "BPF LSM not active (active LSMs: %.120s; boot with lsm=...,bpf)", s);
	free(s);
	return on;
}

static struct file_bpf *file_open_small(void)
{
	struct file_bpf *s = bpfobj_open_file();

	if (s) {
		bpf_map__set_max_entries(s->maps.events, 4096);
		bpf_map__set_max_entries(s->maps.file_rules, 1);
	}
	return s;
}

/*
 * A BPF helper the kernel lacks: named with the release that added it, so a refusal says which
 * feature is missing rather than the verifier's "invalid func unknown#181".
 */
static int helper_missing(enum bpf_prog_type t, enum bpf_func_id id, const char *name, const char *since,
			  const char *use, char *reason, size_t n)
{
	if (libbpf_probe_bpf_helper(t, id, NULL) > 0)
		return 0;
	snprintf(reason, n, "this kernel lacks the %s BPF helper (Linux %s+), which %s", name, since, use);
	return 1;
}

/* load + attach one file hook variant, then detach; 0 ok */
static int probe_file_hook(int fh, char *reason, size_t n)
{
	const struct bpf_program *progs[4];
	struct bpf_link *links[4] = {0};
	struct file_bpf *s;
	int np, err = 0;

	if (fh == FH_LSM && !lsm_bpf_active(reason, n))
		return -1;
	if (fh == FH_KPROBE && access("/sys/bus/event_source/devices/kprobe/type", F_OK) != 0 &&
	    access("/sys/kernel/tracing/kprobe_events", F_OK) != 0 &&
	    access("/sys/kernel/debug/tracing/kprobe_events", F_OK) != 0) {
		snprintf(reason, n, "kprobes unavailable: no kprobe PMU and no kprobe_events (CONFIG_KPROBES off?)");
		return -1;
	}
	if (fh == FH_TRACEPOINT && !tp_exists("syscalls", "sys_exit_openat")) {
		snprintf(reason, n, "tracepoint syscalls/sys_exit_openat not found (no tracefs or CONFIG_FTRACE_SYSCALLS off)");
		return -1;
	}
	if (fh == FH_TRACEPOINT &&
	    helper_missing(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_task_pt_regs, "bpf_task_pt_regs", "5.15",
			   "the openat exit tracepoints need to read the path argument", reason, n))
		return -1;
	s = file_open_small();
	if (!s) {
		why(reason, n, "open", errno);
		return -1;
	}
	file_hook_progs(s, fh, progs, &np);
	only_autoload(s->obj, progs, np);
	err = file_bpf__load(s);
	if (err) {
		why(reason, n, "load", err);
		goto out;
	}
	for (int i = 0; i < np; i++) {
		links[i] = bpf_program__attach((struct bpf_program *)progs[i]);
		if (!links[i]) {
			err = -errno;
			why(reason, n, "attach", err);
			goto out;
		}
	}
out:
	for (int i = 0; i < np; i++)
		bpf_link__destroy(links[i]);
	file_bpf__destroy(s);
	return err ? -1 : 0;
}

/* load obj with prog alone, attach it, detach: 0 when the kernel takes both */
static int load_attach_one(struct bpf_object *obj, struct bpf_program *prog, struct bpf_map *events,
			   char *reason, size_t n)
{
	const struct bpf_program *keep[1] = {prog};
	struct bpf_link *l;
	int err;

	bpf_map__set_max_entries(events, 4096);
	only_autoload(obj, keep, 1);
	err = bpf_object__load(obj);
	if (err) {
		why(reason, n, "load", err);
		return -1;
	}
	l = bpf_program__attach(prog);
	if (!l) {
		why(reason, n, "attach", errno);
		return -1;
	}
	bpf_link__destroy(l);
	return 0;
}

static int probe_fork_raw(char *reason, size_t n)
{
	struct exec_bpf *s = bpfobj_open_exec();
	int r;

	if (!s) {
		why(reason, n, "open", errno);
		return -1;
	}
	r = load_attach_one(s->obj, s->progs.dp_fork, s->maps.events, reason, n);
	exec_bpf__destroy(s);
	return r;
}

/* the BTF flavour of inet_sock_set_state (bpf/connect.bpf.c): needs the tracepoint's BTF */
static int probe_tcp_state_btf(char *reason, size_t n)
{
	struct connect_bpf *s = bpfobj_open_connect();
	int r;

	if (!s) {
		why(reason, n, "open", errno);
		return -1;
	}
	r = load_attach_one(s->obj, s->progs.dp_tcp_state_btf, s->maps.events, reason, n);
	connect_bpf__destroy(s);
	return r;
}

static int probe_cgroup(const char *cgroup_path, char *reason, size_t n)
{
	struct connect_bpf *s = bpfobj_open_connect();
	const struct bpf_program *keep[1];
	struct bpf_link *l;
	int err, fd;

	if (!s) {
		why(reason, n, "open", errno);
		return -1;
	}
	bpf_map__set_max_entries(s->maps.events, 4096);
	keep[0] = s->progs.dp_connect4;
	only_autoload(s->obj, keep, 1);
	err = connect_bpf__load(s);
	if (err) {
		why(reason, n, "load", err);
		connect_bpf__destroy(s);
		return -1;
	}
	fd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		why(reason, n, "open cgroup v2 root", errno);
		connect_bpf__destroy(s);
		return -1;
	}
	l = bpf_program__attach_cgroup(s->progs.dp_connect4, fd);
	if (!l)
		why(reason, n, "attach", errno);
	bpf_link__destroy(l);
	close(fd);
	connect_bpf__destroy(s);
	return l ? 0 : -1;
}

static int probe_dns(const struct probe_result *r, const char *cgroup_path, int uprobe, char *reason, size_t n)
{
	struct dns_bpf *s = bpfobj_open_dns();
	const struct bpf_program *keep[1];
	struct bpf_link *l;
	int err, fd = -1;

	if (!s) {
		why(reason, n, "open", errno);
		return -1;
	}
	bpf_map__set_max_entries(s->maps.events, 4096);
	keep[0] = uprobe ? s->progs.dp_gai_enter : s->progs.dp_dns_ingress;
	only_autoload(s->obj, keep, 1);
	err = dns_bpf__load(s);
	if (err) {
		why(reason, n, "load", err);
		dns_bpf__destroy(s);
		return -1;
	}
	if (uprobe) {
		LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = "getaddrinfo");
		l = bpf_program__attach_uprobe_opts(s->progs.dp_gai_enter, -1, r->libc[0], 0, &uo);
	} else {
		fd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		l = fd < 0 ? NULL : bpf_program__attach_cgroup(s->progs.dp_dns_ingress, fd);
	}
	if (!l)
		why(reason, n, "attach", errno);
	bpf_link__destroy(l);
	if (fd >= 0)
		close(fd);
	dns_bpf__destroy(s);
	return l ? 0 : -1;
}

int probe_all(struct probe_result *r, int force_file, const char *cgroup_path, char *errbuf, size_t errn)
{
	libbpf_setup();
	r->file_choice = -1;
	/*
	 * The exec hook (always loaded) walks the environment with bpf_loop, and so does enforce
	 * mode's DNS answer parser: without it nothing can load, so the agent refuses (below, after
	 * the other probes, which only load and detach, so that `probe` still says what else works)
	 * rather than half-attach.
	 */
	r->exec_ok = !helper_missing(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_loop, "bpf_loop", "5.17",
				     "the exec hook needs to read the environment (step attribution)", r->exec_why,
				     sizeof(r->exec_why));
	for (int fh = 0; fh < FH_COUNT; fh++) {
		r->file_ok[fh] = probe_file_hook(fh, r->file_why[fh], sizeof(r->file_why[fh])) == 0;
		if (r->file_ok[fh] && r->file_choice < 0 && (force_file < 0 || force_file == fh))
			r->file_choice = fh;
	}
	r->fork_raw_tp = probe_fork_raw(r->fork_why, sizeof(r->fork_why)) == 0;
	r->cgroup_ok = probe_cgroup(cgroup_path, r->cgroup_why, sizeof(r->cgroup_why)) == 0;
	if (getenv("DPNDNCY_FORCE_TCP_STATE_TP")) /* for tests of the classic tracepoint */
		snprintf(r->tcp_state_why, sizeof(r->tcp_state_why), "not used: DPNDNCY_FORCE_TCP_STATE_TP");
	else
		r->tcp_state_btf = probe_tcp_state_btf(r->tcp_state_why, sizeof(r->tcp_state_why)) == 0;
	{
		/* for tests of the fallback: DPNDNCY_FORCE_CONNECT_HOOK=tracepoint */
		const char *fc = getenv("DPNDNCY_FORCE_CONNECT_HOOK");

		if (fc && strcmp(fc, "tracepoint") == 0 && r->cgroup_ok) {
			r->cgroup_ok = 0;
			snprintf(r->cgroup_why, sizeof(r->cgroup_why), "not used: DPNDNCY_FORCE_CONNECT_HOOK=tracepoint");
		}
	}
	r->nlibc = find_libcs(r->libc, 8);
	if (r->nlibc == 0) {
		snprintf(r->uprobe_why, sizeof(r->uprobe_why), "no libc found (ld.so.cache / common paths)");
		r->uprobe_ok = 0;
	} else {
		r->uprobe_ok = probe_dns(r, cgroup_path, 1, r->uprobe_why, sizeof(r->uprobe_why)) == 0;
	}
	r->skb_ok = probe_dns(r, cgroup_path, 0, r->skb_why, sizeof(r->skb_why)) == 0;
	if (!r->exec_ok) {
		snprintf(errbuf, errn, "unsupported kernel %s: %s", r->kernel, r->exec_why);
		return -1;
	}
	if (force_file >= 0 && r->file_choice < 0) {
		snprintf(errbuf, errn, "forced file hook %s is unavailable: %s", file_hook_names[force_file],
			 r->file_why[force_file]);
		return -1;
	}
	if (r->file_choice < 0) {
		snprintf(errbuf, errn, "no file hook can be attached (tracepoint: %s)", r->file_why[FH_TRACEPOINT]);
		return -1;
	}
	if (!r->cgroup_ok && !tp_exists("syscalls", "sys_enter_connect")) {
		snprintf(errbuf, errn, "no connect hook can be attached (cgroup: %s)", r->cgroup_why);
		return -1;
	}
	return 0;
}
