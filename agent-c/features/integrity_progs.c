/*
 * Tamper evidence about the agent's own programs (agent-c/features/integrity.c says what is
 * reported): which programs are ours, a foreign program on a cgroup hook we use, one of our links
 * detached or pins removed, one of our programs gone from its hook.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kernel/bpfload.h"
#include "features/enforce_agent.h"
#include "features/integrity_int.h"

#define MAX_OURS 96
#define MAX_SEEN 128

static uint32_t our_ids[MAX_OURS];
static uint8_t our_tags[MAX_OURS][BPF_TAG_SIZE];
static int nours;
/* foreign program ids already reported, or present before we started */
static uint32_t seen_ids[MAX_SEEN];
static int nseen;
static uint8_t link_reported[MAX_LINKS];
static uint8_t pin_reported[MAX_LINKS];
static uint8_t prog_missing_reported[MAX_OURS];
static uint8_t integrity_cg_prog[MAX_OURS]; /* our_ids[k] was attached to a cgroup hook at start */

static int prog_info(int fd, struct bpf_prog_info *pi)
{
	uint32_t len = sizeof(*pi);

	memset(pi, 0, sizeof(*pi));
	return bpf_obj_get_info_by_fd(fd, pi, &len);
}

static int ours_by_id(uint32_t id)
{
	for (int i = 0; i < nours; i++)
		if (our_ids[i] == id)
			return i;
	return -1;
}

static void remember_ours(uint32_t prog_id)
{
	struct bpf_prog_info pi;
	int fd;

	if (!prog_id || ours_by_id(prog_id) >= 0 || nours >= MAX_OURS)
		return;
	fd = bpf_prog_get_fd_by_id(prog_id);
	if (fd < 0)
		return;
	if (prog_info(fd, &pi) == 0) {
		our_ids[nours] = prog_id;
		memcpy(our_tags[nours], pi.tag, BPF_TAG_SIZE);
		nours++;
	}
	close(fd);
}

static const enum bpf_attach_type cg_types[] = {
	BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT, BPF_CGROUP_UDP4_SENDMSG,
	BPF_CGROUP_UDP6_SENDMSG,  BPF_CGROUP_INET_INGRESS,  BPF_CGROUP_INET_EGRESS,
	BPF_CGROUP_INET_SOCK_CREATE, BPF_CGROUP_INET4_BIND, BPF_CGROUP_INET6_BIND,
};
static const char *const cg_type_names[] = {"connect4", "connect6", "sendmsg4", "sendmsg6", "ingress",
					    "egress",   "sock_create", "bind4", "bind6"};

static int seen(uint32_t id)
{
	for (int i = 0; i < nseen; i++)
		if (seen_ids[i] == id)
			return 1;
	return 0;
}

static void add_seen(uint32_t id)
{
	if (nseen < MAX_SEEN)
		seen_ids[nseen++] = id;
}

/* ids attached at a cgroup hook; returns count or -1 */
static int query(int cgfd, enum bpf_attach_type t, uint32_t *ids, uint32_t max)
{
	uint32_t cnt = max, aflags = 0;

	if (bpf_prog_query(cgfd, t, 0, &aflags, ids, &cnt) < 0)
		return -1;
	return (int)cnt;
}

void progs_check_cgroup(int cgfd, const char *where, int baseline)
{
	uint32_t ids[64];

	if (cgfd < 0)
		return;
	for (size_t t = 0; t < sizeof(cg_types) / sizeof(cg_types[0]); t++) {
		int n = query(cgfd, cg_types[t], ids, 64);

		for (int i = 0; i < n; i++) {
			struct bpf_prog_info pi;
			char detail[512];
			int fd, same_tag = 0;

			if (ours_by_id(ids[i]) >= 0 || seen(ids[i]))
				continue;
			add_seen(ids[i]);
			if (baseline)
				continue;
			fd = bpf_prog_get_fd_by_id(ids[i]);
			memset(&pi, 0, sizeof(pi));
			if (fd >= 0) {
				prog_info(fd, &pi);
				close(fd);
				/* the same bytecode as one of ours: another dpndncy agent side by side */
				for (int k = 0; k < nours; k++)
					if (!memcmp(our_tags[k], pi.tag, BPF_TAG_SIZE))
						same_tag = 1;
			}
			if (same_tag)
				continue;
			snprintf(detail, sizeof(detail),
				 "BPF program id %u (name '%.16s', type %u) was attached to the %s hook of %s after the agent started",
				 ids[i], pi.name, pi.type, cg_type_names[t], where);
			tamper_emit(NULL, "foreign-bpf-program", detail);
		}
	}
}

/* the programs behind our links are ours (the cgroup ones are checked for presence) */
void progs_remember_links(struct agent_bpf *a)
{
	struct bpf_link *l;
	const char *name;

	for (int i = 0; bpf_link_at(a, i, &l, &name) == 0; i++) {
		struct bpf_link_info li;
		uint32_t len = sizeof(li);

		memset(&li, 0, sizeof(li));
		if (bpf_obj_get_info_by_fd(bpf_link__fd(l), &li, &len) == 0) {
			remember_ours(li.prog_id);
			if (li.type == BPF_LINK_TYPE_CGROUP) {
				int k = ours_by_id(li.prog_id);

				if (k >= 0)
					integrity_cg_prog[k] = 1;
			}
		}
	}
}

void progs_check_links(struct agent_bpf *a)
{
	struct bpf_link *l;
	const char *name;

	for (int i = 0; i < MAX_LINKS && bpf_link_at(a, i, &l, &name) == 0; i++) {
		struct bpf_link_info li;
		uint32_t len = sizeof(li);
		const char *pin = bpf_link__pin_path(l);
		struct stat st;
		char detail[600];

		memset(&li, 0, sizeof(li));
		if (!link_reported[i] && bpf_obj_get_info_by_fd(bpf_link__fd(l), &li, &len) == 0 &&
		    li.type == BPF_LINK_TYPE_CGROUP && li.cgroup.cgroup_id == 0) {
			link_reported[i] = 1;
			snprintf(detail, sizeof(detail), "the agent's cgroup link '%s' (link id %u, program id %u) was detached",
				 name, li.id, li.prog_id);
			tamper_emit(NULL, "link-detached", detail);
		}
		if (pin && !pin_reported[i] && stat(pin, &st) < 0 && errno == ENOENT) {
			pin_reported[i] = 1;
			snprintf(detail, sizeof(detail), "the pin %s of the agent's link '%s' was removed", pin, name);
			tamper_emit(NULL, "pin-removed", detail);
		}
	}
	/* every program of ours that was attached to a cgroup hook at start is still listed there */
	{
		int cgfd = bpf_root_cgroup_fd(a), efd = enforce_cgroup_fd();
		int fds[2] = {cgfd, efd};
		static uint8_t present[MAX_OURS];

		memset(present, 0, sizeof(present));
		for (int c = 0; c < 2; c++) {
			uint32_t ids[64];

			if (fds[c] < 0)
				continue;
			for (size_t t = 0; t < sizeof(cg_types) / sizeof(cg_types[0]); t++) {
				int n = query(fds[c], cg_types[t], ids, 64);

				for (int i = 0; i < n; i++) {
					int k = ours_by_id(ids[i]);

					if (k >= 0)
						present[k] = 1;
				}
			}
		}
		for (int k = 0; k < nours; k++) {
			char detail[300];

			if (!integrity_cg_prog[k] || present[k] || prog_missing_reported[k])
				continue;
			prog_missing_reported[k] = 1;
			snprintf(detail, sizeof(detail), "the agent's program id %u is no longer attached to its cgroup hook",
				 our_ids[k]);
			tamper_emit(NULL, "program-detached", detail);
		}
	}
}
