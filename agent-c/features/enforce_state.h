/*
 * Enforce mode's shared state (agent-c/features/enforce_*.c only; the rest of the agent uses
 * enforce_agent.h): the policy entries and slots, as parsed (enforce_policy.c), pushed into the
 * maps (enforce_maps.c), reloaded from a policy directory (enforce_dir.c) and reported
 * (enforce_verdict.c).
 */
#ifndef DPNDNCY_FEATURES_ENFORCE_STATE_H
#define DPNDNCY_FEATURES_ENFORCE_STATE_H

#include <stddef.h>
#include <stdint.h>

struct connect_bpf;

/*
 * entries of every policy, over every reload. A rule id is an index here, so an entry a reload
 * replaced keeps its name while the kernel or the ring buffer may still hold its id; it is reused
 * only once no kernel key names it (purged) and a later reload has begun (see new_entry).
 */
#define MAX_ENTRIES 16384
#define MAX_RESOLVERS 16
#define MAX_EXEMPT 32
#define MAX_SLOTS 256

enum ent_kind { E_HOST, E_SUFFIX, E_CIDR };

struct entry {
	enum ent_kind kind;
	char name[256];        /* host / suffix, lower case, no trailing dot */
	uint8_t addr[16];      /* cidr: mapped form for IPv4 */
	int prefix;            /* cidr: bits over the 16-byte form */
	uint16_t port;         /* 0 = any */
	uint16_t slot;         /* the policy it belongs to (0: the config file / default.conf) */
	uint8_t live;          /* 0: replaced by a reload (kept so old rule ids keep their names) */
	uint8_t from_dir;      /* read from the policy directory (replaced when its file changes) */
	uint8_t in_kernel;     /* kernel keys of generation kgen name this entry's rule id */
	uint32_t kgen;
	uint32_t freed_at;     /* the reload during which its last kernel keys were purged */
	char text[300];        /* rule name as reported */
};

/* daemon mode: a policy file of the policy directory is a slot; slot 0 is the default */
struct slot {
	char rel[512];         /* path relative to the policy dir ("" = unused, "default.conf" for 0) */
	uint64_t hash;         /* of the file's bytes: an unchanged file keeps its entries */
	int used;
	int dirty;             /* kernel entries must be replaced */
	int seen;              /* present in the directory read now */
};

struct enforce_state {
	int n;
	struct entry e[MAX_ENTRIES];
	int nres;
	uint8_t res[MAX_RESOLVERS][16];
	int res_from_conf;
	int allow_metadata;
	int nexempt;
	uint32_t exempt[MAX_EXEMPT];
	int directives;
	uint32_t ttl_min;      /* learned-ttl-min (0: the default, 120 s) */
	uint64_t learn_fail_seen, expired; /* enforce_tick: map-full failures already said, entries removed */
	uint64_t next_sweep, pressure_until;
	int said_full;
	int cur_slot;          /* slot new entries go to */
	uint32_t reloads;      /* policy directory reads so far */
	int nslots;
	struct slot slots[MAX_SLOTS];
	/*
	 * The kernel keys of slot s carry phys[s], its current generation. A reload pushes a
	 * slot's new entries under a fresh number, then points the slot's jobs at it (one map write
	 * per job, so each job sees the old policy or the new one, whole), then purges the old
	 * number: no window without entries, and a learner still working from the old names can only
	 * add to a generation no job uses any more. Numbers are not reused.
	 */
	uint32_t phys[MAX_SLOTS];
	uint32_t next_phys;
	/* job cgroup */
	const char *want_cgroup;
	char cgroup[4096];
	int created;
};
/* zero-initialised on purpose: a non-zero initialiser would put its ~2.4 MB in .data */
extern struct enforce_state P;
extern struct connect_bpf *CONN; /* the loaded connect object, once pushed (enforce_maps.c) */

/* enforce_policy.c: an address as 16 bytes (IPv4 mapped; *is4 set); 0 ok */
int parse_ip16(const char *s, uint8_t out[16], int *is4);
/* enforce_policy.c: one more sanctioned resolver; 0 ok */
int add_resolver(const char *s, char *errbuf, size_t errn);
/* enforce_maps.c: slot's entries into the kernel under key slot ks; 0 ok */
int push_slot(struct connect_bpf *conn, int slot, uint32_t ks, char *errbuf, size_t errn);
/* enforce_dir.c: the job identity slots (job-identity -> slot) into the kernel */
void push_ident(struct connect_bpf *conn);

#endif
