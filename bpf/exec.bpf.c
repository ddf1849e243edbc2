// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* exec / exit / fork: the process tree. */
#include "common.bpf.h"

/* exec records are built here and sent trimmed to their used length */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_exec);
} exec_scratch SEC(".maps");

/* ---- step attribution (see bpf/dpndncy.h) ---------------------------------- */

/* set before load: fork is seen by the tp fallback (reports threads too) */
const volatile __u8 fork_tp = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_step_cfg);
} step_cfg SEC(".maps");

/*
 * step id -> value; entries are written once and never change. LRU: values of steps and jobs
 * long gone make room (the agent keeps the names it has read; a value interned again gets its
 * id again), so a host running job after job never finds it full.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct dp_step_name);
} step_names SEC(".maps");

/*
 * A process without a step has its whole environment walked at every exec. The walk reads it
 * a chunk at a time (one bpf_probe_read_user per ENV_CHUNK bytes, where it was one
 * bpf_probe_read_user_str and one loop callback per string: those calls, not the copying,
 * were most of the exec program's time) and finds the strings in the chunk by their NULs,
 * ENV_WORDS words per callback. A marker compare reads 64 bytes from a string's start, hence
 * the slack after the chunk; a string is judged only once its NUL is in the buffer (or, longer
 * than a chunk, by its first ENV_CHUNK bytes), so stale bytes past the chunk never decide.
 */
#define ENV_CHUNK 4096
#define ENV_SLACK 64
#define ENV_CHUNKS 64  /* steps of the walk that move to the next chunk, at most */
#define ENV_NONE 0xffffffffU  /* env_walk.t inside a string that began in an earlier chunk */

struct env_walk {
	__u64 pos, end;
	__u64 val;       /* user address of the best marker's value */
	__u32 best;      /* index of the best marker found so far; DP_STEP_MARKERS: none */
	__u32 at_start;  /* pos is the start of a string */
	__u32 rd;        /* bytes of the current chunk (read at pos) */
	__u32 t;         /* offset in the chunk of the first string, or ENV_NONE */
	__u32 nnul;      /* NULs found in the chunk */
	__u32 si;        /* the next of them whose string is judged */
	__u32 have;      /* the chunk at pos is in the scratch buffer */
	__u32 nstr;      /* strings examined so far (at most cfg->max_vars) */
	__u64 jval;      /* user address of the best job marker's whole "NAME=value" string */
	__u32 jbest;     /* index of the best job marker so far; DP_JOB_MARKERS: none */
	__u8 want_step;  /* the process has no step yet */
	__u8 want_job;   /* the process has no job yet */
	__u16 pad;
	__u64 pval, nval;   /* the job's project / name values (user addresses) */
	__u32 pbest, nbest; /* best identity markers so far; DP_ID_MARKERS: none */
};

struct step_scratch {
	/* the walk's state lives here, not on the stack: the verifier then sees unknown scalars
	 * in it, and the states of the walk's callback converge (as enforce's DNS parser does) */
	struct env_walk w;
	char buf[ENV_CHUNK + ENV_SLACK];
	__u16 nul[ENV_CHUNK];  /* offsets of the chunk's NULs, in order */
	struct dp_step_name val;
	char id[DP_ID_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct step_scratch);
} step_scratch SEC(".maps");


/*
 * Does the string in buf (n bytes read, NUL included) start with marker m's
 * "NAME=" and a non-empty value? Branch-free masked compare of the first 64
 * bytes; bytes after the string's NUL are stale, but a string shorter than
 * "NAME=" has its NUL where the name has a non-NUL byte, so it cannot match.
 */
static __always_inline int match_marker(const char *buf, const struct dp_step_marker *m, long n)
{
	const __u64 *x = (const __u64 *)buf;
	__u64 d;

	if ((x[0] & m->mask[0]) != m->w[0])
		return 0;
	d = ((x[1] ^ m->w[1]) & m->mask[1]) | ((x[2] ^ m->w[2]) & m->mask[2]) |
	    ((x[3] ^ m->w[3]) & m->mask[3]) | ((x[4] ^ m->w[4]) & m->mask[4]) |
	    ((x[5] ^ m->w[5]) & m->mask[5]) | ((x[6] ^ m->w[6]) & m->mask[6]) |
	    ((x[7] ^ m->w[7]) & m->mask[7]);
	/* an empty value is no step: attribution degrades to the job, never to a wrong step */
	return d == 0 && m->len >= 2 && n - 1 > (long)m->len;
}

/* the first marker wins: once every wanted walk has found its first one, the walk stops */
static __always_inline int env_done(const struct env_walk *w, const struct dp_step_cfg *cfg)
{
	return (!w->want_step || w->best == 0) &&
	       (!w->want_job || (w->jbest == 0 && (!cfg->nproj || w->pbest == 0) && (!cfg->nname || w->nbest == 0)));
}

/* one environment string: s its first bytes in the chunk, n its length with the NUL (larger
 * than the chunk for a string longer than it), at user address u */
static __always_inline void env_string(struct env_walk *w, const struct dp_step_cfg *cfg, const char *s, long n,
				       __u64 u)
{
	if (n <= 2)
		return;
	for (__u32 j = 0; j < DP_STEP_MARKERS; j++) {
		if (!w->want_step || j >= cfg->nmarkers || j >= w->best)
			break;
		if (match_marker(s, &cfg->m[j], n)) {
			w->best = j;
			w->val = u + (cfg->m[j].len & (DP_STEP_NAME - 1));
			break;
		}
	}
	for (__u32 j = 0; j < DP_JOB_MARKERS; j++) {
		if (!w->want_job || j >= cfg->njob || j >= w->jbest)
			break;
		if (match_marker(s, &cfg->j[j], n)) {
			w->jbest = j;
			w->jval = u;
			break;
		}
	}
	for (__u32 j = 0; j < DP_ID_MARKERS; j++) {
		if (!w->want_job || j >= cfg->nproj || j >= w->pbest)
			break;
		if (match_marker(s, &cfg->p[j], n)) {
			w->pbest = j;
			w->pval = u + (cfg->p[j].len & (DP_STEP_NAME - 1));
			break;
		}
	}
	for (__u32 j = 0; j < DP_ID_MARKERS; j++) {
		if (!w->want_job || j >= cfg->nname || j >= w->nbest)
			break;
		if (match_marker(s, &cfg->n[j], n)) {
			w->nbest = j;
			w->nval = u + (cfg->n[j].len & (DP_STEP_NAME - 1));
			break;
		}
	}
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

#define ENV_WORDS 16  /* words scanned per callback: a callback costs more than a word */

/* words ENV_WORDS*k.. of the chunk: the offsets of their NULs go to sc->nul */
static long env_words(__u64 k, void *arg)
{
	struct step_scratch *sc;
	struct env_walk *w;
	__u32 zero = 0, rd;

	sc = bpf_map_lookup_elem(&step_scratch, &zero);
	if (!sc)
		return 1;
	w = &sc->w;
	rd = w->rd;
	for (__u32 q = 0; q < ENV_WORDS; q++) {
		__u32 off = ((__u32)k * ENV_WORDS + q) * 8;
		__u64 v;

		if (off >= rd || off >= ENV_CHUNK)
			return 1;
		__builtin_memcpy(&v, &sc->buf[off & (ENV_CHUNK - 1)], 8);
		if (!((v - ONES) & ~v & HIGHS))
			continue; /* no NUL in these 8 bytes: the usual case */
		for (__u32 b = 0; b < 8; b++) {
			if (off + b >= rd)
				return 1; /* bytes past the chunk are stale */
			if ((v >> (8 * b)) & 0xff)
				continue;
			sc->nul[w->nnul & (ENV_CHUNK - 1)] = off + b;
			w->nnul++;
		}
	}
	return 0;
}

/* read the chunk at w->pos and find its NULs */
static __always_inline int env_read_chunk(struct env_walk *w, struct step_scratch *sc)
{
	__u64 rd;

	if (w->pos >= w->end)
		return -1;
	rd = w->end - w->pos;
	if (rd > ENV_CHUNK)
		rd = ENV_CHUNK;
	barrier_var(rd);
	if (rd == 0 || rd > ENV_CHUNK)
		return -1;
	if (bpf_probe_read_user(sc->buf, rd, (void *)w->pos) < 0)
		return -1;
	w->rd = rd;
	w->t = w->at_start ? 0 : ENV_NONE; /* inside a long string: the next NUL ends it */
	w->nnul = 0;
	w->si = 0;
	bpf_loop((rd + 8 * ENV_WORDS - 1) / (8 * ENV_WORDS), env_words, 0, 0);
	return w->nnul > ENV_CHUNK ? -1 : 0;
}

/*
 * One step of the walk: the next string of the chunk, or (all of its strings judged) the
 * move to the next chunk; 1 stops the walk.
 */
static long env_next(__u64 i, void *arg)
{
	struct dp_step_cfg *cfg;
	struct step_scratch *sc;
	struct env_walk *w;
	__u32 zero = 0, t, z, si;

	cfg = bpf_map_lookup_elem(&step_cfg, &zero);
	sc = bpf_map_lookup_elem(&step_scratch, &zero);
	if (!cfg || !sc)
		return 1;
	w = &sc->w;
	if (!w->have) {
		if (env_read_chunk(w, sc) < 0)
			return 1;
		w->have = 1;
	}
	si = w->si;
	if (si < w->nnul) {
		w->si = si + 1;
		z = sc->nul[si & (ENV_CHUNK - 1)];
		t = si ? (__u32)sc->nul[(si - 1) & (ENV_CHUNK - 1)] + 1 : w->t;
		if (t >= ENV_CHUNK || t > z)
			return 0; /* the end of a string judged in an earlier chunk */
		barrier_var(t); /* keeps the mask below: the verifier needs it for the pointer */
		t &= ENV_CHUNK - 1;
		env_string(w, cfg, &sc->buf[t], (long)(z - t) + 1, w->pos + t);
		return ++w->nstr >= cfg->max_vars || env_done(w, cfg);
	}
	/* every string of the chunk judged: where the next chunk starts */
	w->have = 0;
	if (w->nnul)
		w->t = (__u32)sc->nul[(w->nnul - 1) & (ENV_CHUNK - 1)] + 1; /* the string after the last NUL */
	if (w->t == 0) {
		if (w->rd < ENV_CHUNK)
			return 1; /* no NUL before env_end: not a valid environment */
		/* a string longer than the chunk: judged by its start, as if cut there */
		env_string(w, cfg, sc->buf, ENV_CHUNK + 1, w->pos);
		if (++w->nstr >= cfg->max_vars || env_done(w, cfg))
			return 1;
		w->pos += w->rd;
		w->at_start = 0;
	} else if (w->t < w->rd) {
		/* the last string runs past the chunk: the next chunk starts with it */
		w->pos += w->t;
		w->at_start = 1;
	} else {
		w->pos += w->rd;
		w->at_start = w->t == w->rd; /* ENV_NONE: no NUL in the chunk, still inside a long string */
	}
	return 0;
}

static __always_inline int name_eq(const struct dp_step_name *a, const struct dp_step_name *b)
{
	const __u64 *x = (const __u64 *)a->s, *y = (const __u64 *)b->s;

	for (int k = 0; k < DP_STEP_MAX / 8; k++)
		if (x[k] != y[k])
			return 0;
	return 1;
}

/* id of a step value: a hash of it, probed linearly past other values; 0 when the table is full */
static __always_inline __u32 intern_step(const struct dp_step_name *val)
{
	const __u64 *x = (const __u64 *)val->s;
	__u64 h = 0xcbf29ce484222325ULL;
	__u32 id;

	for (int k = 0; k < DP_STEP_MAX / 8; k++)
		h = (h ^ x[k]) * 0x100000001b3ULL;
	id = (__u32)(h ^ (h >> 32));
	for (int k = 0; k < 4; k++, id++) {
		struct dp_step_name *cur;

		if (!id || id >= DP_JOB_UNKNOWN) /* 0 is "none", the others a cgroup's job not known */
			id = 1;
		cur = bpf_map_lookup_elem(&step_names, &id);
		if (!cur && bpf_map_update_elem(&step_names, &id, val, BPF_NOEXIST) == 0)
			return id;
		if (!cur)
			cur = bpf_map_lookup_elem(&step_names, &id); /* lost a race: who won? */
		if (cur && name_eq(cur, val))
			return id;
	}
	return 0;
}

/* job id -> project / name ids (daemon mode): user space names a job even when its processes are gone */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct dp_job_ident);
} job_ident SEC(".maps");

/* the id of the string at user address uaddr (cut at DP_STEP_MAX - 1 bytes); 0 when none */
static __always_inline __u32 intern_user(__u64 uaddr)
{
	struct step_scratch *sc;
	__u32 zero = 0;

	sc = bpf_map_lookup_elem(&step_scratch, &zero);
	if (!sc)
		return 0;
	/* NUL padded: the padding is part of the key */
	__builtin_memset(&sc->val, 0, sizeof(sc->val));
	if (bpf_probe_read_user_str(sc->val.s, sizeof(sc->val.s), (void *)uaddr) <= 1)
		return 0;
	return intern_step(&sc->val);
}

/* intern the string at user address uaddr into map m[tgid]; a failure is counted (attrib_stats) */
static __always_inline void attrib_set(void *m, __u32 tgid, __u64 uaddr, int job)
{
	__u32 id = intern_user(uaddr);

	if (!id || bpf_map_update_elem(m, &tgid, &id, BPF_ANY) != 0)
		attrib_fail(job);
}

/* FNV-1a of the identity value at uaddr (cut at DP_ID_MAX - 1 bytes) folded into h */
static __always_inline __u64 ident_hash(struct step_scratch *sc, __u64 uaddr, __u64 h)
{
	long n = bpf_probe_read_user_str(sc->id, sizeof(sc->id), (void *)uaddr);

	for (int i = 0; i < DP_ID_MAX - 1; i++) {
		if (i >= n - 1)
			break;
		h = (h ^ (__u8)sc->id[i]) * DP_FNV_PRIME;
	}
	return h;
}

/* a new job's policy slot, from its project (and name) when a policy names them */
static __always_inline void job_policy_at_exec(const struct env_walk *w, __u32 job)
{
	struct step_scratch *sc;
	__u32 zero = 0, *slot;
	__u64 hp, hn;

	if (w->pbest >= DP_ID_MARKERS)
		return;
	sc = bpf_map_lookup_elem(&step_scratch, &zero);
	if (!sc)
		return;
	hp = ident_hash(sc, w->pval, DP_FNV_OFFSET);
	slot = 0;
	if (w->nbest < DP_ID_MARKERS) {
		hn = ident_hash(sc, w->nval, (hp ^ '/') * DP_FNV_PRIME);
		slot = bpf_map_lookup_elem(&ident_slot, &hn);
	}
	if (!slot)
		slot = bpf_map_lookup_elem(&ident_slot, &hp);
	if (slot) {
		__u32 v = *slot;

		bpf_map_update_elem(&job_slot, &job, &v, BPF_ANY);
	}
}

/*
 * A process that has a step keeps it. One that has none takes it from its
 * new environment: the first configured marker present with a non-empty value.
 * Jobs (daemon mode) likewise, from the job markers, in the same walk.
 */
static __always_inline void step_at_exec(struct task_struct *task, __u32 tgid)
{
	struct env_walk w = {};
	struct dp_step_cfg *cfg;
	struct step_scratch *sc;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&step_cfg, &zero);
	if (!cfg)
		return;
	w.want_step = cfg->nmarkers && !bpf_map_lookup_elem(&steps, &tgid);
	/* in a container cgroup whose job the agent has settled, the environment claims nothing */
	w.want_job = track_jobs && cfg->njob && !bpf_map_lookup_elem(&jobs, &tgid) && !cgroup_job_settled();
	if (!w.want_step && !w.want_job)
		return;
	w.pos = task->mm->env_start;
	w.end = task->mm->env_end;
	w.best = DP_STEP_MARKERS;
	w.jbest = DP_JOB_MARKERS;
	w.pbest = DP_ID_MARKERS;
	w.nbest = DP_ID_MARKERS;
	w.at_start = 1;
	sc = bpf_map_lookup_elem(&step_scratch, &zero);
	if (!sc)
		return;
	__builtin_memcpy(&sc->w, &w, sizeof(w));
	bpf_loop(cfg->max_vars + ENV_CHUNKS, env_next, 0, 0);
	__builtin_memcpy(&w, &sc->w, sizeof(w));
	if (w.want_step && w.best < DP_STEP_MARKERS)
		attrib_set(&steps, tgid, w.val, 0);
	if (w.want_job && w.jbest < DP_JOB_MARKERS) {
		attrib_set(&jobs, tgid, w.jval, 1);
		/* a job already known keeps the slot the agent gave it */
		__u32 job = job_of(tgid);

		if (job && !bpf_map_lookup_elem(&job_slot, &job))
			job_policy_at_exec(&w, job);
		if (job && !bpf_map_lookup_elem(&job_ident, &job)) {
			struct dp_job_ident ji = {};

			if (w.pbest < DP_ID_MARKERS)
				ji.project = intern_user(w.pval);
			if (w.nbest < DP_ID_MARKERS)
				ji.name = intern_user(w.nval);
			bpf_map_update_elem(&job_ident, &job, &ji, BPF_NOEXIST);
		}
	}
}

/* fork: the child gets the parent's entry in m, or none (clears a stale entry of a reused pid) */
static __always_inline void inherit(void *m, __u32 ptgid, __u32 child, int job)
{
	__u32 *s = bpf_map_lookup_elem(m, &ptgid);

	if (s) {
		__u32 v = *s;

		if (bpf_map_update_elem(m, &child, &v, BPF_ANY) != 0)
			attrib_fail(job); /* full: the child would pass as a process of no job */
	} else {
		bpf_map_delete_elem(m, &child);
	}
}

/* fork: the child process gets the parent's step and job */
static __always_inline void step_at_fork(__u32 ptgid, __u32 child)
{
	inherit(&steps, ptgid, child, 0);
	if (track_jobs)
		inherit(&jobs, ptgid, child, 1);
}

SEC("tp/sched/sched_process_exec")
int dp_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct dp_exec *e;
	unsigned long start, end, len;
	unsigned int off;

	__u32 zero = 0;
	__u64 size;

	if (is_agent(id))
		return 0;
	/* BTF-typed: task->mm->... are plain loads (a fault reads 0), not a helper call each */
	task = bpf_get_current_task_btf();
	step_at_exec(task, id >> 32);
	e = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!e)
		return 0;
	fill_hdr_traced(&e->h, DP_EXEC, id);
	off = ctx->__data_loc_filename & 0xFFFF;
	if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + off) < 0)
		e->filename[0] = 0;

	start = task->mm->arg_start;
	end = task->mm->arg_end;
	len = end > start ? end - start : 0;
	e->args_total = len;
	if (len > DP_ARGS_MAX)
		len = DP_ARGS_MAX;
	barrier_var(len);
	if (len > DP_ARGS_MAX)
		len = 0;
	if (len && bpf_probe_read_user(e->args, len, (void *)start) < 0)
		len = 0;
	e->args_len = len;
	size = sizeof(*e) - DP_ARGS_MAX + len;
	barrier_var(size);
	if (size > sizeof(*e))
		size = sizeof(*e);
	if (bpf_ringbuf_output(&events, e, size, dp_rb_flags()))
		count_drop(DP_EXEC);
	return 0;
}

SEC("tp/sched/sched_process_exit")
int dp_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = bpf_get_current_task_btf(); /* plain loads, see fill_hdr_traced */
	__u32 tgid = id >> 32, tid = (__u32)id;
	/* do_exit() has decremented signal->live: 0 means the last thread of the process */
	int group_dead = task->signal->live.counter == 0;
	struct dp_exit *e;

	if (tid == tgid && !is_agent(id)) { /* threads other than the group leader: no record */
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (e) {
			fill_hdr_traced(&e->h, DP_EXIT, id);
			e->exit_code = task->exit_code;
			e->pad = 0;
			bpf_ringbuf_submit(e, dp_rb_flags());
		} else {
			count_drop(DP_EXIT);
		}
	}
	if (group_dead) {
		bpf_map_delete_elem(&steps, &tgid);
		if (track_jobs)
			bpf_map_delete_elem(&jobs, &tgid);
	} else if (fork_tp && tid != tgid) {
		/* the tp fallback gave this thread entries */
		bpf_map_delete_elem(&steps, &tid);
		if (track_jobs)
			bpf_map_delete_elem(&jobs, &tid);
	}
	return 0;
}

/* raw tracepoint: gives the child task, so threads can be told from processes */
SEC("raw_tp/sched_process_fork")
int BPF_PROG(dp_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dp_fork *e;
	__u32 cpid, ctgid;

	cpid = BPF_CORE_READ(child, pid);
	ctgid = BPF_CORE_READ(child, tgid);
	if (cpid != ctgid)
		return 0;
	step_at_fork(id >> 32, cpid);
	if (is_agent(id))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DP_FORK);
		return 0;
	}
	fill_hdr_traced(&e->h, DP_FORK, id);
	e->child_pid = cpid;
	e->pad = 0;
	bpf_ringbuf_submit(e, dp_rb_flags());
	return 0;
}

/* fallback where raw tracepoints are refused: threads are reported too */
SEC("tp/sched/sched_process_fork")
int dp_fork_tp(struct trace_event_raw_sched_process_fork *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dp_fork *e;

	step_at_fork(id >> 32, ctx->child_pid); /* threads too: their entries go at thread exit */
	if (is_agent(id))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DP_FORK);
		return 0;
	}
	fill_hdr_traced(&e->h, DP_FORK, id);
	e->child_pid = ctx->child_pid;
	e->pad = 0;
	bpf_ringbuf_submit(e, dp_rb_flags());
	return 0;
}
