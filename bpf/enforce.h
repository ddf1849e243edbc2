/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * dpndncy enforce mode: map keys and values shared by bpf/enforce.inc.c and
 * agent-c/features/enforce_*.c. Every address is kept as 16 bytes, IPv4 as IPv4-mapped
 * IPv6 (::ffff:a.b.c.d), so a mapped destination is judged exactly like the
 * IPv4 one, and one trie serves both families.
 */
#ifndef DPNDNCY_ENFORCE_H
#define DPNDNCY_ENFORCE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* dp_connect.rule: fixed rules below DP_R_USER, policy entries from DP_R_USER on */
#define DP_R_NONE          0   /* observe mode: no rule */
#define DP_R_DEFAULT_DENY  1   /* enforced, nothing allowed it */
#define DP_R_METADATA      2   /* cloud metadata address */
#define DP_R_DNS_RESOLVER  3   /* port 53 to a resolver that is not sanctioned */
#define DP_R_DOT           4   /* port 853 (DNS over TLS) */
#define DP_R_DOH           5   /* known DNS-over-HTTPS address */
#define DP_R_LOOPBACK      6   /* allow: loopback */
#define DP_R_EXEMPT_CG     7   /* allow: process outside the enforced cgroup */
#define DP_R_EXEMPT_PID    8   /* allow: exempt process (CI runner) */
#define DP_R_RESOLVER      9   /* allow: port 53 to a sanctioned resolver */
#define DP_R_RAW_SOCKET    10  /* a raw or ICMP socket: its packets would not meet connect/sendmsg */
#define DP_R_NO_JOB        11  /* allow (daemon mode): a process of no CI job is not judged */
#define DP_R_DNS_BIND      12  /* bind() to port 53 or to a sanctioned resolver's address: a forged answer's source */
#define DP_R_SOCK_TYPE     13  /* socket() of a protocol no connect/sendmsg hook judges (MPTCP, UDP-Lite, SCTP, ...) */
#define DP_R_UNATTRIBUTED  14  /* daemon mode: no job, while attribution has been lost to a full map */
#define DP_R_USER          16  /* DP_R_USER + i: the agent's policy entry i */

#define DP_ENF_NAME   128  /* DNS names longer than 127 bytes are never allowed */
#define DP_ENF_PORTS  8    /* ports per name entry */
#define DP_ENF_BUF    512  /* DNS payload bytes parsed in the kernel */

/*
 * Policy slots: every allow / deny entry, learned address and name carries the slot of the
 * policy it belongs to. A single-job agent has one policy, slot 0. In daemon mode each
 * policy file is a slot and job_slot maps a job id to its slot (missing: 0, the default).
 * In the tries the slot comes first and always matches in full (32 bits of the prefix).
 */
#define DP_SLOT_BITS 32

/* LPM trie allow_any: slot, address prefix, any port. prefixlen = 32 + address bits (IPv4: 96 + n) */
struct dp_lpm_any {
	__u32 prefixlen;
	__u32 slot;
	__u8 addr[16];
};

/* LPM trie allow_port: slot, port (network order), address; prefixlen = 32 + 16 + address bits */
struct dp_lpm_port {
	__u32 prefixlen;
	__u32 slot;
	__u8 port[2];
	__u8 addr[16];
	__u8 pad[2];
};

/* hash deny_addr: always-denied addresses (metadata, DoH) of a slot */
struct dp_deny_key {
	__u32 slot;
	__u8 addr[16];
};

struct dp_enf_val {
	__u16 rule;
	__u16 pad;
};

/*
 * hash learned -> struct dp_learn_val: an address stays allowed until `expires` (boot ns): the
 * answer's TTL, at least learned_ttl_min (config learned-ttl-min, default 120 s: clients that
 * cache an answer for a while, such as the JVM's 30 s, still connect). Expired entries are
 * judged as absent, and removed by the agent (agent-c/features/enforce_verdict.c enforce_tick) so a full map
 * makes room.
 */
struct dp_learn_val {
	__u16 rule;
	__u16 pad;
	__u32 pad2;
	__u64 expires;
};

/* hash learned: an address a DNS answer gave an allowed name; port 0 = any port */
struct dp_learn_key {
	__u8 addr[16];
	__u16 port;        /* host order */
	__u16 pad;
	__u32 slot;
};

/*
 * LPM trie names: the DNS name lower-cased, reversed byte by byte ("www.example.com" ->
 * "moc.elpmaxe.www"), so a domain suffix is a key prefix. An exact name is stored with its
 * terminating NUL ("moc.elpmaxe.www\0"), a "*.example.com" wildcard as "moc.elpmaxe." (the
 * dot keeps label boundaries: it matches every subdomain, never the apex, never
 * "badexample.com"). Lookups use the whole key; the longest match decides.
 */
struct dp_name_key {
	__u32 prefixlen;   /* 32 (the slot) + name bits */
	__u32 slot;
	__u8 name[DP_ENF_NAME];
};

#define DP_NV_DENY 0x1     /* a known DoH name: answers are never learned */
#define DP_NV_ANY  0x2     /* learned for any port (but 853, which needs an explicit port) */

struct dp_name_val {
	__u16 rule;
	__u8 flags;
	__u8 nports;       /* explicit ports in ports[] */
	__u16 ports[DP_ENF_PORTS];   /* host order */
};

/* per-thread verdict of the enforce program, read by the observe program that runs next */
struct dp_judged {
	__u64 cookie;
	__u8 verdict;      /* 1 allow, 0 deny */
	__u8 pad;
	__u16 rule;
	__u32 pad2;
};

/* single-entry array enforce_stats (per cpu) */
struct dp_enf_stats {
	__u64 learned;       /* addresses inserted from DNS answers */
	__u64 learn_fail;    /* inserts that failed (map full) */
	__u64 dns_allowed;   /* answers of allowed names parsed */
	__u64 dns_other;     /* answers of names not allowed */
};

#endif
