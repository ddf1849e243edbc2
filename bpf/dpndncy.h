/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * dpndncy: the kernel -> user space record layout, shared by bpf/ (compiled
 * with vmlinux.h) and agent-c/ (compiled with <linux/types.h>). Every record
 * starts with struct dp_hdr; `kind` says which struct follows. Keep fields
 * naturally aligned and sizes fixed: both sides must agree byte for byte.
 * The user-space JSON contract built from these is schema/event.v1.json.
 */
#ifndef DPNDNCY_H
#define DPNDNCY_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

enum dp_kind {
	DP_EXEC = 1,      /* sched_process_exec */
	DP_EXIT = 2,      /* sched_process_exit, thread-group leader only */
	DP_FORK = 3,      /* new process (not thread): feeds the process table */
	DP_CONNECT = 4,   /* cgroup connect4/6, sendmsg4/6 (or tracepoint fallback) */
	DP_FILE = 5,      /* sensitive-path open that passed the in-kernel filter */
	DP_DNS_LIBC = 6,  /* getaddrinfo() uprobe + uretprobe */
	DP_DNS_PKT = 7,   /* DNS response packet (source port 53) */
	DP_KIND_MAX = 8,
};

/* dp_hdr.flags */
#define DP_HF_NO_PPID   0x1  /* program type cannot read the task: ppid filled in user space */
#define DP_HF_NO_OWNER  0x2  /* packet: no socket owner known */

struct dp_hdr {
	__u32 kind;
	__u32 pid;   /* tgid */
	__u32 tid;
	__u32 ppid;  /* real_parent->tgid */
	__u32 uid;
	__u32 flags;
	__u64 ts;    /* bpf_ktime_get_boot_ns() */
	__u64 cgroup;
	char comm[16];
	__u32 step;  /* step id (0 = none): key of the step_names map, see DP_STEP_MAX */
	__u32 job;   /* job id (0 = none): daemon mode, key of step_names too, see DP_JOB_MARKERS */
};

#define DP_FNAME_MAX 256
#define DP_ARGS_MAX  1024

struct dp_exec {
	struct dp_hdr h;
	__u32 args_len;    /* bytes copied into args (NUL-separated argv strings) */
	__u32 args_total;  /* arg_end - arg_start: > args_len means truncated */
	char filename[DP_FNAME_MAX];
	char args[DP_ARGS_MAX];
};

struct dp_exit {
	struct dp_hdr h;
	__u32 exit_code;   /* task->exit_code: status << 8 | signal */
	__u32 pad;
};

struct dp_fork {
	struct dp_hdr h;   /* the parent */
	__u32 child_pid;
	__u32 pad;
};

/* dp_connect.op */
#define DP_OP_CONNECT 1
#define DP_OP_SENDMSG 2
#define DP_OP_SOCKET 3     /* enforce: a raw or ICMP socket refused at socket() (no destination yet) */
#define DP_OP_BIND 4       /* enforce: bind() refused (addr/port: the local address asked for) */
/* dp_connect.source */
#define DP_SRC_CGROUP 1
#define DP_SRC_TRACEPOINT 2

struct dp_connect {
	struct dp_hdr h;
	__u64 cookie;      /* socket cookie (0 from the tracepoint fallback) */
	__u16 family;      /* AF_INET / AF_INET6 as seen by the hook */
	__u16 port;        /* host byte order */
	__u8 proto;        /* IPPROTO_TCP / IPPROTO_UDP / other */
	__u8 op;
	__u8 mapped;       /* IPv4-mapped IPv6 destination */
	__u8 has_result;
	__s32 result;      /* 0 or -errno, valid when has_result */
	__u8 source;
	__u8 verdict;      /* 1 allow (observe mode: always), 0 deny (enforce mode) */
	__u16 rule;        /* enforce mode: DP_R_* of bpf/enforce.h, 0 in observe mode */
	__u8 addr[16];     /* IPv4 in the first 4 bytes, network order */
	__u8 pending;      /* 1: flushed at stop while still unresolved */
	__u8 pad2[7];
};

#define DP_PATH_MAX  1024  /* path bytes copied (components, leaf first) */
#define DP_NAME_MAX  256
#define DP_PATH_BUF  (DP_PATH_MAX + DP_NAME_MAX)

/* dp_file.pflags */
#define DP_FF_TRUNC  0x1   /* path walk hit its bound: path is cut at the top */

struct dp_file {
	struct dp_hdr h;
	__u32 flags;       /* open flags */
	__u16 rule;        /* rule id (index into the agent's rule table) */
	__u16 ncomp;       /* components in path */
	__u32 path_len;    /* bytes used in path */
	__u32 pflags;
	/* path components, leaf first, each NUL-terminated: "id_rsa\0.ssh\0root\0" */
	char path[DP_PATH_BUF];
};

#define DP_DNS_NAME_MAX 256
#define DP_DNS_ADDRS 16

struct dp_dns_addr {
	__u16 family;
	__u16 pad;
	__u8 addr[16];
};

struct dp_dns_libc {
	struct dp_hdr h;
	__s32 ret;         /* getaddrinfo() return value (0 ok, EAI_* < 0) */
	__u16 family_hint; /* hints->ai_family, 0 when no hints */
	__u16 naddr;
	char name[DP_DNS_NAME_MAX];
	struct dp_dns_addr addrs[DP_DNS_ADDRS];
};

#define DP_PKT_MAX 512
#define DP_NO_MSG 0xffff  /* dp_dns_pkt.msg_off: a TCP segment with no known message start */

struct dp_dns_pkt {
	struct dp_hdr h;
	__u64 cookie;
	__u16 family;      /* AF_INET / AF_INET6 */
	__u8 proto;        /* IPPROTO_UDP / IPPROTO_TCP */
	__u8 pad;
	__u16 sport;
	__u16 dport;
	__u32 len;         /* transport payload length */
	__u32 caplen;      /* bytes copied into data */
	__u16 msg_off;     /* where the DNS message starts in data; DP_NO_MSG: no message starts here */
	__u16 msg_len;     /* its length (TCP: from its length prefix) */
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 data[DP_PKT_MAX];
};

/* --- maps shared by user space and the programs ---------------------- */

/* owner of a socket, recorded by connect/sendmsg hooks, used to attribute DNS packets */
struct dp_sock_owner {
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 step;        /* the owner's step id when it connected / sent */
	__u64 cgroup;
	char comm[16];
	__u32 job;         /* the owner's job id (daemon mode) */
	__u32 learn_job;   /* daemon mode, not 0: the job whose policy learns the answers instead (dockerd
			    * forwarding Docker's embedded resolver: the asking container's, bpf/connect.bpf.c) */
};

/* file filter: key of the file_rules hash map */
#define DP_FK_EXACT    1   /* basename == name */
#define DP_FK_EXACT_P  2   /* basename == name, parent dir == parent */
#define DP_FK_PREFIX   3   /* basename starts with name[0..len) */
#define DP_FK_PREFIX_P 4   /* ... and parent dir == parent */
#define DP_FK_DIR      5   /* parent or grandparent dir == name */
#define DP_FK_NAME     16  /* bytes of a name kept in a key */

struct dp_file_key {
	__u8 type;
	__u8 len;          /* name length (capped at 255), prefix length for PREFIX */
	__u8 plen;         /* parent name length for *_P */
	__u8 pad;
	__u8 name[DP_FK_NAME];
	__u8 parent[DP_FK_NAME];
};

/* dp_file_val.flags */
#define DP_FV_HAS_P    0x1  /* (basename entry) rules needing the parent exist */
#define DP_FV_PROC     0x2  /* /proc/<pid>/...: only when pid is another process */

struct dp_file_val {
	__u16 rule;        /* 0 = no rule at this level (only DP_FV_HAS_P) */
	__u16 flags;
};

#define DP_MAX_PREFIXES 8

/* a "prefix*" rule compared in registers: (name & mask) == value */
struct dp_file_prefix {
	__u64 lo, hi;      /* prefix bytes, zero padded (little endian words of name[0..16)) */
	__u64 mlo, mhi;    /* masks covering the prefix length */
	__u32 len;
	__u32 pad;
};

/*
 * Bloom bit of a name for the miss path: one bit of a 256-bit set per
 * (length, first 16 bytes). The agent computes the same (agent-c/kernel/file_rules.c).
 */
#define DP_HASH_K 0x9E3779B97F4A7C15ULL
#define DP_NAME_HASH(lo, hi, len) \
	(((((lo) ^ ((hi) * DP_HASH_K) ^ (__u64)(len)) * DP_HASH_K) >> 56) & 0xff)

/* single-entry array map file_cfg */
struct dp_file_cfg {
	__u64 exact_lens;      /* bit n: an EXACT(_P) rule with name length n (63 = >= 63) */
	__u64 dir_lens;        /* bit n: a DIR rule with name length n */
	__u64 exact_bloom[4];  /* DP_NAME_HASH bits of EXACT(_P) basenames */
	__u64 dir_bloom[4];    /* DP_NAME_HASH bits of DIR names */
	__u32 nprefix;
	__u32 pad;
	struct dp_file_prefix prefix[DP_MAX_PREFIXES];
};

/* single-entry array map agent_cfg: knobs enforce mode will grow into */
#define DP_MODE_OBSERVE 0
#define DP_MODE_LEARN   1
#define DP_MODE_ENFORCE 2

struct dp_agent_cfg {
	__u32 mode;        /* observe: programs never deny */
	__u32 agent_tgid;
};

/*
 * Step attribution (bpf/exec.bpf.c). A process exec'd with a configured
 * marker variable in its environment (and no step yet) gets the step named by
 * the variable's value; fork copies the step to the child; exec keeps it.
 * steps: tgid -> step id. step_names: step id -> value (NUL padded), written
 * once by the kernel (BPF_NOEXIST) before any record carries the id; the agent
 * reads it to print the string. Ids are a hash of the value, probed linearly.
 */
#define DP_STEP_MAX      64   /* value bytes kept, NUL included */
#define DP_STEP_MARKERS  8    /* marker variables, in priority order */
#define DP_STEP_NAME     64   /* marker "NAME=" bytes, NUL included */

struct dp_step_name {
	char s[DP_STEP_MAX];
};

struct dp_step_marker {
	__u64 w[DP_STEP_NAME / 8];     /* "NAME=" as little-endian words, zero padded */
	__u64 mask[DP_STEP_NAME / 8];  /* the bytes of w that count (strlen("NAME=") of them) */
	__u32 len;                     /* strlen("NAME=") */
	__u32 pad;
};

/*
 * Job attribution (daemon mode, docs/daemon.md): the same walk also looks for job markers.
 * A job's id names the whole "NAME=value" string (so CI_JOB_ID=7 and BUILDKITE_JOB_ID=7
 * differ); jobs: tgid -> job id, inherited and kept exactly like steps.
 */
#define DP_JOB_MARKERS   4
/*
 * cg_job (bpf/jobs.bpf.h): a container cgroup's job is the job of the client that asked the
 * runtime for it. Until the agent has looked for that client the cgroup holds DP_JOB_PENDING;
 * when it found none, DP_JOB_UNKNOWN. Both are jobs with no policy of their own: judged by the
 * default policy, never exempt. Pending still lets a process take a job from its environment
 * at exec (GitLab's Docker executor gives its job containers CI_JOB_ID; the agent overrides that
 * with the requester's job when it finds one); unknown does not. No job id is either value.
 */
#define DP_JOB_PENDING   0xffffffffu
#define DP_JOB_UNKNOWN   0xfffffffeu
#define DP_ID_MARKERS    4    /* job-identity project / name variables */
#define DP_ID_MAX        128  /* identity value bytes hashed (NUL included) */

/*
 * The policy of a job is chosen in the kernel at its first exec, so that its first connect
 * is already judged by it: the walk also reads the job's project and name variables, and
 * ident_slot maps dp_ident_hash(project "/" name) or dp_ident_hash(project) to a slot.
 * FNV-1a 64 over the bytes (each value cut at DP_ID_MAX - 1 bytes); agent-c/features/enforce_dir.c
 * computes the same.
 */
/*
 * attrib_stats (single-entry array, shared): attribution that could not be recorded because a
 * map was full. A process of a job that gets no jobs entry would otherwise pass as a process
 * of no job, which daemon mode does not judge: once jobs_full is non-zero, enforce judges every
 * process without a job by the strictest policy (DP_R_UNATTRIBUTED), and the agent reports it.
 */
struct dp_attrib_stats {
	__u64 jobs_full;     /* a job's process (fork or exec) got no jobs entry */
	__u64 steps_full;    /* a step's process got no steps entry (its records name no step) */
};

/* job_ident: job id -> its project and name as step_names ids (0: absent), set at its first exec */
struct dp_job_ident {
	__u32 project;
	__u32 name;
};

#define DP_FNV_OFFSET 0xcbf29ce484222325ULL
#define DP_FNV_PRIME  0x100000001b3ULL

/* single-entry array map step_cfg */
struct dp_step_cfg {
	__u32 nmarkers;    /* step markers in m[]; with njob == 0 too: no env walk */
	__u32 max_vars;    /* environment strings examined per exec */
	struct dp_step_marker m[DP_STEP_MARKERS];
	__u32 njob;        /* job markers in j[] */
	__u32 jpad;
	struct dp_step_marker j[DP_JOB_MARKERS];
	__u32 nproj, nname;    /* identity markers in p[], n[] (daemon enforce mode) */
	struct dp_step_marker p[DP_ID_MARKERS];
	struct dp_step_marker n[DP_ID_MARKERS];
};

/*
 * Tamper evidence (bpf/tamper.bpf.c): ptrace / process_vm_readv / writev aimed
 * at a protected pid, counted per (tracer, target, syscall, request) in the
 * tamper_hits hash; the agent polls it and writes `tamper` events.
 */
#define DP_TS_PTRACE    1
#define DP_TS_VM_READV  2
#define DP_TS_VM_WRITEV 3
#define DP_TS_PTRACE32  5  /* a 32-bit syscall passed ptrace's access check on a protected pid (req: mode) */
#define DP_TS_PACKET_SOCKET 6  /* an AF_PACKET socket was created (target: the caller, req: type, arg:
				* protocol); user space reports it when the caller is in the enforced cgroup */
#define DP_TS_CGROUP_MOVE 4  /* a process moved to another cgroup v2 cgroup (target: its pid, req: low
			      * 32 bits of the destination's id, arg: the id); user space decides if it left the job */

struct dp_tamper_key {
	__u32 tracer;      /* tgid of the caller */
	__u32 target;      /* the protected pid */
	__u32 sys;         /* DP_TS_* */
	__u32 req;         /* ptrace request (0 for process_vm_*) */
};

struct dp_tamper_hit {
	__u64 ts;          /* first hit, bpf_ktime_get_boot_ns() */
	__u64 count;
	__u64 cgroup;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 step;
	char comm[16];
	__u64 arg;         /* DP_TS_CGROUP_MOVE: the destination cgroup id */
};

/*
 * allow_exe (bpf/file.bpf.c): benign readers by executable, the inode of current->mm->exe_file.
 * A comm is the process's to choose (prctl PR_SET_NAME, or exec of a file of that name); the
 * executable it runs is not. dev is the kernel's encoding (major << 20 | minor).
 */
struct dp_exe_key {
	__u64 ino;
	__u32 dev;
	__u32 pad;
};

/* file_rule_wr (bpf/file.bpf.c): rule id -> 1 when the rule reports only opens for writing */
#define DP_OPEN_WRITE_FLAGS 01103  /* O_WRONLY | O_RDWR | O_CREAT | O_TRUNC */

#endif /* DPNDNCY_H */
