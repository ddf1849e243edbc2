/* BTF, libc discovery, file-hook names and the `probe` JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "base/sbuf.h"
#include "kernel/probe.h"

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
	sb_puts(b, ",\"candidates\":[\"cgroup/connect4,connect6,sendmsg4,sendmsg6\",\"tracepoint/syscalls/sys_enter_connect\"]");
	sb_puts(b, ",\"unavailable\":{");
	if (!r->cgroup_ok) {
		sb_puts(b, "\"cgroup/connect4,connect6,sendmsg4,sendmsg6\":");
		sb_json_cstr(b, r->cgroup_why);
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
