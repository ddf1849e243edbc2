/*
 * Loading, attaching, pinning and tearing down the BPF objects (the feature probes, which
 * load and attach for real and then detach, are in probe.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "base/config.h"
#include "kernel/probe.h"
#include "kernel/bpfobj.h"
#include "kernel/bpfload.h"
#include "kernel/file_rules.h"
#include "kernel/pins.h"
#include "kernel/bpfload_int.h"


/* ---------- setup ---------- */

static int add_link(struct agent_bpf *a, struct bpf_link *l, const char *name, char *errbuf, size_t errn)
{
	if (!l) {
		int e = errno;

		snprintf(errbuf, errn, "cannot attach %s: %s%s%s", name, strerror(e),
			 last_libbpf_msg[0] ? " / " : "", last_libbpf_msg);
		return -1;
	}
	if (a->nlinks >= MAX_LINKS) {
		bpf_link__destroy(l);
		snprintf(errbuf, errn, "too many links");
		return -1;
	}
	a->links[a->nlinks] = l;
	snprintf(a->link_names[a->nlinks], sizeof(a->link_names[0]), "%s", name);
	a->nlinks++;
	return 0;
}

/* a map size the tests set from the environment (min .. 4M), or 0 */
static uint32_t env_entries(const char *name, long min)
{
	const char *e = getenv(name);
	long v = e ? strtol(e, NULL, 10) : 0;

	return v >= min && v <= (1 << 22) ? (uint32_t)v : 0;
}

static int reuse(struct bpf_map *dst, struct bpf_map *src)
{
	return bpf_map__reuse_fd(dst, bpf_map__fd(src));
}

/*
 * container-cgroup / runtime-cgroup (agent-c/records/runtimes.c): the same enforce programs, on each cgroup
 * where the job's containers (or their runtime daemon) live. Fails closed: a named cgroup that
 * cannot be judged stops the start. Never the cgroup v2 root we observe on (root).
 */
static int attach_runtime_cgroups(struct agent_bpf *a, const char *cg2root, const struct stat *root, char *errbuf,
				  size_t errn)
{
	char path[600], nm[64];
	const char *what;
	int slice;

	for (int i = 0; a->h->judged_cgroup(i, cg2root, path, sizeof(path), &what, &slice) == 0; i++) {
		struct stat st;
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0) {
			snprintf(errbuf, errn, "enforce: %s %s: %s (create it, or start the runtime with it as its cgroup parent, "
				 "before the agent)", what, path, strerror(errno));
			return -1;
		}
		if (fstat(fd, &st) < 0 || (st.st_ino == root->st_ino && st.st_dev == root->st_dev) || st.st_ino == 1) {
			close(fd);
			snprintf(errbuf, errn, "enforce: refusing to judge the cgroup v2 root (%s %s)", what, path);
			return -1;
		}
		a->h->judged_attached(i, fd);
#define RT_LINK(prog, tag)                                                                         \
		snprintf(nm, sizeof(nm), "ct%d_%s", i, tag);                                        \
		if (add_link(a, bpf_program__attach_cgroup(a->conn->progs.prog, fd), nm, errbuf, errn)) \
			return -1;
		/* the DNS learner only learns (never drops): ungated on a slice too */
		RT_LINK(dp_enf_dns, "enf_dns");
		if (slice) {
			RT_LINK(dp_ctg_connect4, "ctg_connect4");
			RT_LINK(dp_ctg_connect6, "ctg_connect6");
			RT_LINK(dp_ctg_sendmsg4, "ctg_sendmsg4");
			RT_LINK(dp_ctg_sendmsg6, "ctg_sendmsg6");
			RT_LINK(dp_ctg_sock_create, "ctg_sock_create");
			RT_LINK(dp_ctg_bind4, "ctg_bind4");
			RT_LINK(dp_ctg_bind6, "ctg_bind6");
			continue;
		}
		RT_LINK(dp_enf_connect4, "enf_connect4");
		RT_LINK(dp_enf_connect6, "enf_connect6");
		RT_LINK(dp_enf_sendmsg4, "enf_sendmsg4");
		RT_LINK(dp_enf_sendmsg6, "enf_sendmsg6");
		RT_LINK(dp_enf_sock_create, "enf_sock_create");
		RT_LINK(dp_enf_bind4, "enf_bind4");
		RT_LINK(dp_enf_bind6, "enf_bind6");
#undef RT_LINK
	}
	return 0;
}

struct agent_bpf *bpf_setup(const struct config *cfg, const struct probe_result *pr, const char *cgroup_path,
			    int pin, const struct bpf_hooks *h, char *errbuf, size_t errn, struct attach_info *ai)
{
	struct agent_bpf *a = calloc(1, sizeof(*a));
	const struct bpf_program *keep[32]; /* every program of connect.bpf.c that can be kept at once fits */
	uint32_t self = (uint32_t)getpid(), zero = 0, v;
	struct dp_agent_cfg acfg = {.mode = (uint32_t)cfg->mode, .agent_tgid = self};
	int err, nk, want_result, result_kp;
	struct bpf_program *tcp_state;
	const char *tcp_state_at;
	char nm[64];

	libbpf_setup();
	if (!a) {
		snprintf(errbuf, errn, "out of memory");
		return NULL;
	}
	a->cgroup_fd = -1;
	a->h = h;
	memset(ai, 0, sizeof(*ai));

	/* exec: creates the shared maps */
	a->exec = bpfobj_open_exec();
	if (!a->exec)
		goto open_fail;
	a->exec->rodata->agent_tgid = self;
	a->exec->rodata->track_jobs = cfg->daemon ? 1 : 0;
	a->exec->rodata->fork_tp = pr->fork_raw_tp ? 0 : 1;
	bpf_map__set_max_entries(a->exec->maps.events, cfg->ringbuf_mb << 20);
	/* processes with a step / job at once (default 32768); smaller only to test a full map */
	if ((v = env_entries("DPNDNCY_PROC_MAP_ENTRIES", 64))) {
		bpf_map__set_max_entries(a->exec->maps.steps, v);
		bpf_map__set_max_entries(a->exec->maps.jobs, v);
	}
	nk = 0;
	keep[nk++] = a->exec->progs.dp_exec;
	keep[nk++] = a->exec->progs.dp_exit;
	keep[nk++] = pr->fork_raw_tp ? a->exec->progs.dp_fork : a->exec->progs.dp_fork_tp;
	only_autoload(a->exec->obj, keep, nk);
	if ((err = exec_bpf__load(a->exec)))
		goto load_fail;
	if (bpf_map_update_elem(bpf_map__fd(a->exec->maps.agent_cfg), &zero, &acfg, 0) < 0)
		goto load_fail;
	/* step attribution: markers before the exec hook is attached */
	if (h->exec_loaded(cfg, bpf_map__fd(a->exec->maps.step_cfg), bpf_map__fd(a->exec->maps.step_names),
			   bpf_map__fd(a->exec->maps.steps), errbuf, errn) < 0)
		goto fail;

#define SHARE(skel)                                                                  \
	do {                                                                         \
		if (reuse(skel->maps.events, a->exec->maps.events) ||               \
		    reuse(skel->maps.drops, a->exec->maps.drops) ||                 \
		    reuse(skel->maps.sock_owner, a->exec->maps.sock_owner) ||       \
		    reuse(skel->maps.steps, a->exec->maps.steps) ||                 \
		    reuse(skel->maps.jobs, a->exec->maps.jobs) ||                   \
		    reuse(skel->maps.cg_job, a->exec->maps.cg_job) ||               \
		    reuse(skel->maps.job_slot, a->exec->maps.job_slot) ||           \
		    reuse(skel->maps.ident_slot, a->exec->maps.ident_slot) ||       \
		    reuse(skel->maps.attrib_stats, a->exec->maps.attrib_stats) ||   \
		    reuse(skel->maps.agent_cfg, a->exec->maps.agent_cfg))           \
			goto load_fail;                                              \
		skel->rodata->agent_tgid = self;                                     \
		skel->rodata->track_jobs = cfg->daemon ? 1 : 0;                      \
	} while (0)

	/* connect */
	a->conn = bpfobj_open_connect();
	if (!a->conn)
		goto open_fail;
	SHARE(a->conn);
	/* addresses learned from DNS at once (default 65536); smaller only to test a full map */
	if ((v = env_entries("DPNDNCY_LEARNED_MAP_ENTRIES", 16)))
		bpf_map__set_max_entries(a->conn->maps.learned, v);
	/* the result join needs syscall tracepoints: only where the file hook already pays for them */
	want_result = pr->file_choice == FH_TRACEPOINT || getenv("DPNDNCY_CONNECT_RESULT");
	/* elsewhere the result comes from a kprobe pair on connect(2), where kprobes work */
	result_kp = !want_result && pr->file_ok[FH_KPROBE] && !getenv("DPNDNCY_NO_CONNECT_RESULT");
	/* the result of a TCP connect that leaves SYN_SENT: the BTF tracepoint where it loads */
	tcp_state = pr->tcp_state_btf ? a->conn->progs.dp_tcp_state_btf : a->conn->progs.dp_tcp_state;
	tcp_state_at = pr->tcp_state_btf ? "tp_btf/inet_sock_set_state" : "tracepoint/sock/inet_sock_set_state";
	nk = 0;
	if (pr->cgroup_ok) {
		keep[nk++] = a->conn->progs.dp_connect4;
		keep[nk++] = a->conn->progs.dp_connect6;
		keep[nk++] = a->conn->progs.dp_sendmsg4;
		keep[nk++] = a->conn->progs.dp_sendmsg6;
		if (want_result) {
			keep[nk++] = a->conn->progs.dp_enter_connect;
			keep[nk++] = a->conn->progs.dp_exit_connect;
			keep[nk++] = tcp_state;
		} else if (result_kp) {
			keep[nk++] = a->conn->progs.dp_enter_connect_k;
			keep[nk++] = a->conn->progs.dp_exit_connect_k;
			keep[nk++] = tcp_state;
		}
		a->conn->rodata->want_result = want_result || result_kp ? 1 : 0;
		/* tests: the exit's fallback (the socket by its fd) on every connect */
		a->conn->rodata->exit_by_fd = getenv("DPNDNCY_TEST_CONNECT_EXIT_BY_FD") ? 1 : 0;
		a->conn->rodata->verdicts_loaded = cfg->mode == DP_MODE_ENFORCE;
		a->conn->rodata->judge_jobs_only = cfg->daemon ? 1 : 0;
		a->conn->rodata->learned_ttl_min = h->learned_ttl_min;
	} else {
		keep[nk++] = a->conn->progs.dp_enter_connect_tp;
		keep[nk++] = a->conn->progs.dp_exit_connect_tp;
		keep[nk++] = tcp_state;
	}
	if (cfg->mode == DP_MODE_ENFORCE) {
		/* the verdict programs, attached to the job's cgroup below (agent-c/features/enforce_cgroup.c, enforce_maps.c) */
		if (!pr->cgroup_ok) {
			snprintf(errbuf, errn, "enforce mode needs cgroup connect4/6 + sendmsg4/6 programs: %s", pr->cgroup_why);
			goto fail;
		}
		keep[nk++] = a->conn->progs.dp_enf_connect4;
		keep[nk++] = a->conn->progs.dp_enf_connect6;
		keep[nk++] = a->conn->progs.dp_enf_sendmsg4;
		keep[nk++] = a->conn->progs.dp_enf_sendmsg6;
		keep[nk++] = a->conn->progs.dp_enf_dns;
		keep[nk++] = a->conn->progs.dp_enf_sock_create;
		keep[nk++] = a->conn->progs.dp_enf_bind4;
		keep[nk++] = a->conn->progs.dp_enf_bind6;
		if (h->container_slices) {
			/* container-slice: the same verdicts, gated to container cgroups (bpf/ct_gate.inc.c) */
			keep[nk++] = a->conn->progs.dp_ctg_connect4;
			keep[nk++] = a->conn->progs.dp_ctg_connect6;
			keep[nk++] = a->conn->progs.dp_ctg_sendmsg4;
			keep[nk++] = a->conn->progs.dp_ctg_sendmsg6;
			keep[nk++] = a->conn->progs.dp_ctg_sock_create;
			keep[nk++] = a->conn->progs.dp_ctg_bind4;
			keep[nk++] = a->conn->progs.dp_ctg_bind6;
		}
	}
	only_autoload(a->conn->obj, keep, nk);
	if ((err = connect_bpf__load(a->conn)))
		goto load_fail;
	if (cfg->mode == DP_MODE_ENFORCE && h->connect_loaded(a->conn, errbuf, errn) < 0)
		goto fail;
	{
		char w[300];

		/* cgroups named at birth (bpf/containers.bpf.c), before any hook is attached. Fatal only
		 * in enforce mode with container slices (it marks a container's scope) or as a daemon
		 * (it names a container's job) */
		struct judged_maps jm = {bpf_map__fd(a->conn->maps.ct_judged_cg), bpf_map__fd(a->exec->maps.jobs),
					 bpf_map__fd(a->exec->maps.cg_job), bpf_map__fd(a->exec->maps.attrib_stats),
					 cfg->daemon};

		if (h->judged_load(&jm, cgroup_path, w, sizeof(w)) < 0) {
			/* daemon mode: without it a job's Docker container would be no job's, not judged */
			if (cfg->mode == DP_MODE_ENFORCE && (h->container_slices || cfg->daemon)) {
				snprintf(errbuf, errn, "enforce: %s needs %s", cfg->daemon ? "daemon mode" : "container-slice", w);
				goto fail;
			}
			err_msg("containers: %s; a container gone before its records are read may lose its attribution", w);
		}
	}

	/* file */
	a->file = bpfobj_open_file();
	if (!a->file)
		goto open_fail;
	SHARE(a->file);
	file_hook_progs(a->file, pr->file_choice, keep, &nk);
	only_autoload(a->file->obj, keep, nk);
	if ((err = file_bpf__load(a->file)))
		goto load_fail;
	if (config_push_file_rules(cfg, bpf_map__fd(a->file->maps.file_rules), bpf_map__fd(a->file->maps.file_cfg),
				   bpf_map__fd(a->file->maps.allow_exe), errbuf, errn) < 0)
		goto fail;

	/* dns */
	a->dns = bpfobj_open_dns();
	if (!a->dns)
		goto open_fail;
	SHARE(a->dns);
	nk = 0;
	if (pr->uprobe_ok) {
		keep[nk++] = a->dns->progs.dp_gai_enter;
		keep[nk++] = a->dns->progs.dp_gai_exit;
	}
	if (pr->skb_ok)
		keep[nk++] = a->dns->progs.dp_dns_ingress;
	only_autoload(a->dns->obj, keep, nk);
	if ((err = dns_bpf__load(a->dns)))
		goto load_fail;

	/* ---- attach ---- */
	if (add_link(a, bpf_program__attach(a->exec->progs.dp_exec), "exec", errbuf, errn) ||
	    add_link(a, bpf_program__attach(a->exec->progs.dp_exit), "exit", errbuf, errn))
		goto fail;
	if (pr->fork_raw_tp) {
		if (add_link(a, bpf_program__attach(a->exec->progs.dp_fork), "fork", errbuf, errn))
			goto fail;
	} else if (add_link(a, bpf_program__attach(a->exec->progs.dp_fork_tp), "fork", errbuf, errn)) {
		goto fail;
	}
	snprintf(ai->exec, sizeof(ai->exec), "tracepoint/sched/sched_process_exec");
	snprintf(ai->exitp, sizeof(ai->exitp), "tracepoint/sched/sched_process_exit");
	snprintf(ai->fork, sizeof(ai->fork), "%s",
		 pr->fork_raw_tp ? "raw_tracepoint/sched_process_fork" : "tracepoint/sched/sched_process_fork");

	if (pr->cgroup_ok || pr->skb_ok) {
		a->cgroup_fd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (a->cgroup_fd < 0) {
			snprintf(errbuf, errn, "cannot open cgroup v2 root %s: %s", cgroup_path, strerror(errno));
			goto fail;
		}
	}
	if (pr->cgroup_ok) {
		if (add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_connect4, a->cgroup_fd), "connect4", errbuf, errn) ||
		    add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_connect6, a->cgroup_fd), "connect6", errbuf, errn) ||
		    add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_sendmsg4, a->cgroup_fd), "sendmsg4", errbuf, errn) ||
		    add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_sendmsg6, a->cgroup_fd), "sendmsg6", errbuf, errn))
			goto fail;
		snprintf(ai->connect, sizeof(ai->connect), "cgroup/connect4,connect6,sendmsg4,sendmsg6");
		if (cfg->mode == DP_MODE_ENFORCE) {
			int efd = h->enforce_cgroup_fd();
			/* job cgroup only (never the root); the DNS learner first, then the verdicts */
			struct stat es, rs;

			if (efd < 0) {
				snprintf(errbuf, errn, "enforce: no job cgroup");
				goto fail;
			}
			/* second guard (enforce_prepare checked the path): never the root we observe on */
			if (fstat(efd, &es) < 0 || fstat(a->cgroup_fd, &rs) < 0 ||
			    (es.st_ino == rs.st_ino && es.st_dev == rs.st_dev)) {
				snprintf(errbuf, errn, "enforce: refusing to attach to the cgroup v2 root");
				goto fail;
			}
			if (add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_enf_dns, efd), "enf_dns", errbuf, errn) ||
			    add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_enf_connect4, efd), "enf_connect4", errbuf, errn) ||
			    add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_enf_connect6, efd), "enf_connect6", errbuf, errn) ||
			    add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_enf_sendmsg4, efd), "enf_sendmsg4", errbuf, errn) ||
			    add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_enf_sendmsg6, efd), "enf_sendmsg6", errbuf, errn) ||
			    add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_enf_sock_create, efd), "enf_sock_create", errbuf, errn) ||
			    add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_enf_bind4, efd), "enf_bind4", errbuf, errn) ||
			    add_link(a, bpf_program__attach_cgroup(a->conn->progs.dp_enf_bind6, efd), "enf_bind6", errbuf, errn))
				goto fail;
			if (attach_runtime_cgroups(a, cgroup_path, &rs, errbuf, errn) < 0)
				goto fail;
		}
		if (want_result) {
			if (add_link(a, bpf_program__attach(a->conn->progs.dp_enter_connect), "enter_connect", errbuf, errn) ||
			    add_link(a, bpf_program__attach(a->conn->progs.dp_exit_connect), "exit_connect", errbuf, errn) ||
			    add_link(a, bpf_program__attach(tcp_state), "tcp_state", errbuf, errn))
				goto fail;
			a->enter_tp = 1;
			snprintf(ai->connect_result, sizeof(ai->connect_result), "tracepoint/syscalls/sys_exit_connect+%s",
				 tcp_state_at);
		} else if (result_kp &&
			   add_link(a, bpf_program__attach(a->conn->progs.dp_exit_connect_k), "exit_connect", errbuf, errn) == 0 &&
			   add_link(a, bpf_program__attach(a->conn->progs.dp_enter_connect_k), "enter_connect", errbuf, errn) == 0) {
			/* exit first: an exit probe without the entry one finds nothing parked and does nothing,
			 * while an entry probe without the exit one would hold every record back */
			if (add_link(a, bpf_program__attach(tcp_state), "tcp_state", errbuf, errn))
				goto fail;
			snprintf(ai->connect_result, sizeof(ai->connect_result), "kretsyscall/connect+%s", tcp_state_at);
		} else {
			snprintf(ai->connect_result, sizeof(ai->connect_result), "none");
		}
	} else {
		if (add_link(a, bpf_program__attach(a->conn->progs.dp_enter_connect_tp), "enter_connect", errbuf, errn) ||
		    add_link(a, bpf_program__attach(a->conn->progs.dp_exit_connect_tp), "exit_connect", errbuf, errn) ||
		    add_link(a, bpf_program__attach(tcp_state), "tcp_state", errbuf, errn))
			goto fail;
		snprintf(ai->connect, sizeof(ai->connect), "tracepoint/syscalls/sys_enter_connect");
		snprintf(ai->connect_result, sizeof(ai->connect_result), "tracepoint/syscalls/sys_exit_connect+%s",
			 tcp_state_at);
	}

	{
		const struct bpf_program *fp[4];
		int nf;

		file_hook_progs(a->file, pr->file_choice, fp, &nf);
		for (int i = 0; i < nf; i++) {
			snprintf(nm, sizeof(nm), "file_%s", bpf_program__name(fp[i]) + 3);
			if (add_link(a, bpf_program__attach((struct bpf_program *)fp[i]), nm, errbuf, errn))
				goto fail;
		}
		snprintf(ai->file, sizeof(ai->file), "%s", file_hook_points[pr->file_choice]);
	}

	ai->dns[0] = 0;
	/* a breakpoint in every process that maps libc costs each exec ~30 us of CPU on our VM
	 * (bench/exec-cost): DPNDNCY_NO_GAI_UPROBE=1 leaves DNS to the packets */
	a->gai_off = getenv("DPNDNCY_NO_GAI_UPROBE") != NULL;
	if (pr->uprobe_ok && !a->gai_off) {
		for (int i = 0; i < pr->nlibc; i++) {
			LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = "getaddrinfo");
			LIBBPF_OPTS(bpf_uprobe_opts, ur, .func_name = "getaddrinfo", .retprobe = true);

			snprintf(nm, sizeof(nm), "gai_enter_%d", i);
			if (add_link(a, bpf_program__attach_uprobe_opts(a->dns->progs.dp_gai_enter, -1, pr->libc[i], 0, &uo),
				     nm, errbuf, errn))
				goto fail;
			snprintf(nm, sizeof(nm), "gai_exit_%d", i);
			if (add_link(a, bpf_program__attach_uprobe_opts(a->dns->progs.dp_gai_exit, -1, pr->libc[i], 0, &ur),
				     nm, errbuf, errn))
				goto fail;
		}
		snprintf(ai->dns, sizeof(ai->dns), "uprobe/getaddrinfo");
	}
	if (pr->skb_ok) {
		if (add_link(a, bpf_program__attach_cgroup(a->dns->progs.dp_dns_ingress, a->cgroup_fd), "dns_ingress",
			     errbuf, errn))
			goto fail;
		snprintf(ai->dns_packet, sizeof(ai->dns_packet), "cgroup_skb/ingress");
		size_t l = strlen(ai->dns);
		snprintf(ai->dns + l, sizeof(ai->dns) - l, "%s%s", l ? "+" : "", "cgroup_skb/ingress");
	}
	if (!ai->dns[0])
		snprintf(ai->dns, sizeof(ai->dns), "none");

	/* ---- pin (start mode): stop can remove everything even if we are killed ---- */
	if (pin) {
		char path[512];

		/* one directory per agent: several agents (other state dirs) may run side by side */
		snprintf(a->pin_dir, sizeof(a->pin_dir), "%s/%u", PIN_DIR, self);
		unpin_all(a->pin_dir);
		if (mkdir_p(a->pin_dir, 0700) < 0) {
			snprintf(errbuf, errn, "cannot create %s: %s", a->pin_dir, strerror(errno));
			goto fail;
		}
		for (int i = 0; i < a->nlinks; i++) {
			snprintf(path, sizeof(path), "%s/%s", a->pin_dir, a->link_names[i]);
			if (bpf_link__pin(a->links[i], path) < 0) {
				/* legacy (non-bpf_link) attachments cannot be pinned: fd-only, dies with us */
				continue;
			}
		}
		a->pinned = 1;
	}
	return a;

open_fail:
	snprintf(errbuf, errn, "cannot open BPF object: %s", strerror(errno));
	goto fail;
load_fail:
	snprintf(errbuf, errn, "cannot load BPF programs: %s%s%s", strerror(errno), last_libbpf_msg[0] ? " / " : "",
		 last_libbpf_msg);
fail:
	bpf_teardown(a);
	return NULL;
}

/* connect records still waiting for a result at stop: log them without one */
void bpf_flush_pending(struct agent_bpf *a)
{
	struct bpf_map *maps[2];
	struct dp_connect rec;

	if (!a || !a->conn)
		return;
	maps[0] = a->conn->maps.pending;
	maps[1] = a->conn->maps.parked;
	for (int m = 0; m < 2; m++) {
		int fd = bpf_map__fd(maps[m]);
		size_t ks = bpf_map__key_size(maps[m]);
		uint64_t key = 0, next = 0;
		void *prev = NULL;

		if (fd < 0)
			continue;
		/* collect first, then delete: deleting while walking restarts the walk */
		while (bpf_map_get_next_key(fd, prev, &next) == 0) {
			if (bpf_map_lookup_elem(fd, &next, &rec) == 0) {
				rec.has_result = 0;
				rec.pending = 1;
				a->h->on_record(NULL, &rec, sizeof(rec));
			}
			memcpy(&key, &next, ks);
			prev = &key;
		}
		prev = NULL;
		while (bpf_map_get_next_key(fd, NULL, &next) == 0)
			if (bpf_map_delete_elem(fd, &next) < 0)
				break;
	}
}

int bpf_ringbuf_fd(struct agent_bpf *a)
{
	return bpf_map__fd(a->exec->maps.events);
}

void bpf_read_drops(struct agent_bpf *a, uint64_t drops[DP_KIND_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;

	memset(drops, 0, sizeof(uint64_t) * DP_KIND_MAX);
	if (ncpu <= 0 || !a || !a->exec)
		return;
	vals = calloc((size_t)ncpu, sizeof(uint64_t));
	if (!vals)
		return;
	for (uint32_t k = 0; k < DP_KIND_MAX; k++) {
		if (bpf_map_lookup_elem(bpf_map__fd(a->exec->maps.drops), &k, vals) == 0)
			for (int c = 0; c < ncpu; c++)
				drops[k] += vals[c];
	}
	free(vals);
}

void bpf_teardown(struct agent_bpf *a)
{
	if (!a)
		return;
	if (a->h)
		a->h->unload();
	/* detach cgroup programs first: nothing that sits in the connect path may outlive us */
	for (int i = a->nlinks - 1; i >= 0; i--) {
		if (a->pinned)
			bpf_link__unpin(a->links[i]);
		bpf_link__destroy(a->links[i]);
	}
	a->nlinks = 0;
	if (a->pinned)
		unpin_all(a->pin_dir);
	if (a->cgroup_fd >= 0)
		close(a->cgroup_fd);
	dns_bpf__destroy(a->dns);
	file_bpf__destroy(a->file);
	connect_bpf__destroy(a->conn);
	exec_bpf__destroy(a->exec);
	free(a);
}

/* ---- container libcs (agent-c/records/container_libc.c): one more libc gets the getaddrinfo probes ---- */

int bpf_attach_libc(struct agent_bpf *a, const char *path, char *errbuf, size_t errn)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = "getaddrinfo");
	LIBBPF_OPTS(bpf_uprobe_opts, ur, .func_name = "getaddrinfo", .retprobe = true);
	char nm[64], pinp[512];
	int first = a ? a->nlinks : 0;

	if (!a || !a->dns) {
		snprintf(errbuf, errn, "no DNS programs loaded");
		return -1;
	}
	if (a->gai_off) {
		snprintf(errbuf, errn, "getaddrinfo uprobes are off (DPNDNCY_NO_GAI_UPROBE)");
		return -1;
	}
	if (a->nlinks + 2 > MAX_LINKS) {
		snprintf(errbuf, errn, "too many links (%d)", MAX_LINKS);
		return -1;
	}
	last_libbpf_msg[0] = 0;
	/* the path (/proc/<pid>/root/...) is resolved to its inode now: the probe outlives the process */
	snprintf(nm, sizeof(nm), "gai_enter_c%d", first);
	if (add_link(a, bpf_program__attach_uprobe_opts(a->dns->progs.dp_gai_enter, -1, path, 0, &uo), nm, errbuf, errn))
		return -1;
	snprintf(nm, sizeof(nm), "gai_exit_c%d", first);
	if (add_link(a, bpf_program__attach_uprobe_opts(a->dns->progs.dp_gai_exit, -1, path, 0, &ur), nm, errbuf, errn)) {
		bpf_link__destroy(a->links[--a->nlinks]);
		return -1;
	}
	if (a->pinned)
		for (int i = first; i < a->nlinks; i++) {
			snprintf(pinp, sizeof(pinp), "%s/%s", a->pin_dir, a->link_names[i]);
			bpf_link__pin(a->links[i], pinp); /* legacy attachments cannot be pinned: fd-only */
		}
	return 0;
}
