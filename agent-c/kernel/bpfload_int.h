/* The loaded objects and their links: shared by bpfload.c (load, attach, teardown) and
 * bpflinks.c (what the other layers may ask of them), nothing else. Include kernel/bpfload.h
 * first (MAX_LINKS, struct bpf_hooks). */
#ifndef DPNDNCY_KERNEL_BPFLOAD_INT_H
#define DPNDNCY_KERNEL_BPFLOAD_INT_H

#include "exec.skel.h"
#include "connect.skel.h"
#include "file.skel.h"
#include "dns.skel.h"

struct agent_bpf {
	struct exec_bpf *exec;
	struct connect_bpf *conn;
	struct file_bpf *file;
	struct dns_bpf *dns;
	struct bpf_link *links[MAX_LINKS];
	char link_names[MAX_LINKS][64];
	int nlinks;
	int cgroup_fd;
	const struct bpf_hooks *h;
	int pinned;
	int gai_off; /* DPNDNCY_NO_GAI_UPROBE: no getaddrinfo uprobes, not even on container libcs */
	int enter_tp; /* the link "enter_connect" is tp/syscalls/sys_enter_connect (cgroup path) */
	char pin_dir[128];
};

#endif
