/* What loading (bpfload.c) and probing (probe.c) share: libbpf's messages, which programs load. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <bpf/libbpf.h>

#include "kernel/bpfobj.h"
#include "exec.skel.h"
#include "connect.skel.h"
#include "file.skel.h"
#include "dns.skel.h"

/* libbpf messages: kept (last line) for error reasons, printed only with DPNDNCY_DEBUG */
char last_libbpf_msg[512];

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;
	va_list cp;

	va_copy(cp, ap);
	if (getenv("DPNDNCY_DEBUG"))
		vfprintf(stderr, fmt, cp);
	va_end(cp);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (level == LIBBPF_DEBUG)
		return 0;
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	if (n)
		snprintf(last_libbpf_msg, sizeof(last_libbpf_msg), "%s", buf);
	return 0;
}

void libbpf_setup(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	libbpf_set_print(libbpf_print);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
}

void only_autoload(struct bpf_object *obj, const struct bpf_program *const *keep, int nkeep)
{
	struct bpf_program *p;

	bpf_object__for_each_program(p, obj) {
		int on = 0;

		for (int i = 0; i < nkeep; i++)
			if (keep[i] == p)
				on = 1;
		bpf_program__set_autoload(p, on);
	}
}

int tp_exists(const char *cat, const char *name)
{
	char p[256];
	struct stat st;

	snprintf(p, sizeof(p), "/sys/kernel/tracing/events/%s/%s", cat, name);
	if (stat(p, &st) == 0)
		return 1;
	snprintf(p, sizeof(p), "/sys/kernel/debug/tracing/events/%s/%s", cat, name);
	return stat(p, &st) == 0;
}

void file_hook_progs(struct file_bpf *s, int fh, const struct bpf_program **progs, int *n)
{
	*n = 0;
	switch (fh) {
	case FH_LSM: progs[(*n)++] = s->progs.dp_lsm_file_open; break;
	case FH_FENTRY: progs[(*n)++] = s->progs.dp_fentry_file_open; break;
	case FH_KPROBE: progs[(*n)++] = s->progs.dp_kprobe_file_open; break;
	default:
		progs[(*n)++] = s->progs.dp_exit_openat;
		if (tp_exists("syscalls", "sys_exit_openat2"))
			progs[(*n)++] = s->progs.dp_exit_openat2;
		if (tp_exists("syscalls", "sys_exit_open"))
			progs[(*n)++] = s->progs.dp_exit_open;
	}
}

/* one file opens the objects: a skeleton's __open embeds the whole object (its ELF bytes) in
 * every file that calls it, which would put them in the binary twice (probe.c, bpfload.c) */
struct exec_bpf *bpfobj_open_exec(void)
{
	return exec_bpf__open();
}

struct connect_bpf *bpfobj_open_connect(void)
{
	return connect_bpf__open();
}

struct file_bpf *bpfobj_open_file(void)
{
	return file_bpf__open();
}

struct dns_bpf *bpfobj_open_dns(void)
{
	return dns_bpf__open();
}
