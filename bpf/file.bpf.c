// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Sensitive file opens. One filter, four attach points (best first):
 *   lsm/file_open, fentry/security_file_open, kprobe/security_file_open
 *   (all give the struct file), and the fallback sys_exit_openat/openat2/open
 *   tracepoints, which find the struct file through the returned fd.
 * The agent loads exactly one of them.
 *
 * Filter, cheap on a miss: the last path component (dentry name) is looked
 * up by (length, first 16 bytes) in file_rules, then by each configured
 * prefix length; rules that also name the parent directory are looked up
 * with the parent's name; directory rules look at the parent and the
 * grandparent. Name bytes are read only when their length can match
 * (length bitmaps in file_cfg). Only on a hit is the absolute path built
 * (bounded dentry walk across mounts) and sent. The agent re-checks the full
 * path against the rule's pattern.
 */
#include "common.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct dp_file_key);
	__type(value, struct dp_file_val);
} file_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_file_cfg);
} file_cfg SEC(".maps");

/* benign readers (allow-exe, allow-comm) by executable: matches from them are dropped in the kernel */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct dp_exe_key);
	__type(value, __u8);
} allow_exe SEC(".maps");

static __always_inline int benign_reader(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct file *exe = BPF_CORE_READ(t, mm, exe_file);
	struct dp_exe_key k = {};

	if (!exe)
		return 0;
	k.ino = BPF_CORE_READ(exe, f_inode, i_ino);
	k.dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	return bpf_map_lookup_elem(&allow_exe, &k) != 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_file_key);
} key_scratch SEC(".maps");

/* file records are built here and sent trimmed to the path's length */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_file);
} file_scratch SEC(".maps");

/* rule id -> 1: report only opens for writing (resolver config, /etc/hosts: tamper evidence) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u8);
} file_rule_wr SEC(".maps");

static __always_inline int len_bit(__u64 mask, __u32 len)
{
	if (len > 63)
		len = 63;
	return (mask >> len) & 1;
}

static __always_inline int bloom_bit(const __u64 *bloom, __u64 lo, __u64 hi, __u32 len)
{
	__u64 h = DP_NAME_HASH(lo, hi, len > 255 ? 255 : len);

	return (bloom[(h >> 6) & 3] >> (h & 63)) & 1;
}

static __always_inline void read_name16(__u8 *dst, const unsigned char *name, __u32 len)
{
	__builtin_memset(dst, 0, DP_FK_NAME);
	if (len > DP_FK_NAME)
		len = DP_FK_NAME;
	barrier_var(len);
	if (len > DP_FK_NAME)
		return;
	bpf_probe_read_kernel(dst, len, name);
}

/* digits-only name -> number, or -1 */
static __always_inline long parse_pid(const __u8 *s, __u32 len)
{
	long v = 0;

	if (len == 0 || len > 10)
		return -1;
	for (int i = 0; i < 10; i++) {
		if (i >= len)
			break;
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* /proc/<pid>/<leaf> or /proc/<pid>/task/<tid>/<leaf> of ANOTHER process */
static __always_inline int proc_other(struct dentry *d, __u32 self)
{
	struct dentry *p = BPF_CORE_READ(d, d_parent);
	__u8 buf[DP_FK_NAME];
	__u32 len;
	long pid;

	if (BPF_CORE_READ(d, d_sb, s_magic) != PROC_SUPER_MAGIC)
		return 0;
	len = BPF_CORE_READ(p, d_name.len);
	read_name16(buf, BPF_CORE_READ(p, d_name.name), len);
	pid = parse_pid(buf, len);
	if (pid < 0)
		return 0;
	/* task/<tid>/: the owning process is two levels up */
	{
		struct dentry *gp = BPF_CORE_READ(p, d_parent);
		__u32 glen = BPF_CORE_READ(gp, d_name.len);

		if (glen == 4) {
			read_name16(buf, BPF_CORE_READ(gp, d_name.name), glen);
			if (buf[0] == 't' && buf[1] == 'a' && buf[2] == 's' && buf[3] == 'k') {
				struct dentry *ggp = BPF_CORE_READ(gp, d_parent);

				len = BPF_CORE_READ(ggp, d_name.len);
				read_name16(buf, BPF_CORE_READ(ggp, d_name.name), len);
				pid = parse_pid(buf, len);
				if (pid < 0)
					return 0;
			}
		}
	}
	return pid != self;
}

/*
 * A dentry's parent and name. Every miss reads them for up to three levels, and each
 * bpf_probe_read_kernel is a helper call that costs more than the compares around it, so
 * where d_name follows d_parent (every kernel so far; CO-RE checks it at load) both come in
 * one read.
 */
struct dent_pn {
	struct dentry *parent;
	struct qstr name;
};

static __always_inline int read_dent(struct dentry *d, struct dentry **parent, struct qstr *q)
{
	if (bpf_core_field_offset(struct dentry, d_name) == bpf_core_field_offset(struct dentry, d_parent) + 8 &&
	    bpf_core_field_size(struct dentry, d_name) == sizeof(struct qstr)) {
		struct dent_pn pn;

		if (bpf_probe_read_kernel(&pn, sizeof(pn), (void *)d + bpf_core_field_offset(struct dentry, d_parent)))
			return -1;
		*parent = pn.parent;
		*q = pn.name;
		return 0;
	}
	if (BPF_CORE_READ_INTO(q, d, d_name))
		return -1;
	*parent = BPF_CORE_READ(d, d_parent);
	return 0;
}

/* rule that needs the parent dir: look it up with the parent's name */
static __always_inline __u32 match_parent(struct dp_file_key *k, struct dentry *p, __u8 type)
{
	struct dp_file_val *v;
	struct qstr q;

	if (BPF_CORE_READ_INTO(&q, p, d_name))
		return 0;
	k->type = type;
	k->plen = q.len > 255 ? 255 : q.len;
	read_name16(k->parent, q.name, q.len);
	v = bpf_map_lookup_elem(&file_rules, k);
	return v ? v->rule : 0;
}

/*
 * Rule id (> 0) for the dentry, or 0. The miss path costs a handful of
 * kernel reads and register compares: a map lookup happens only when a
 * name's length and bloom bit (or a prefix) say it may match.
 */
static __always_inline __u32 match(struct dentry *d, __u32 self)
{
	__u32 zero = 0, len;
	struct dp_file_cfg *cfg = bpf_map_lookup_elem(&file_cfg, &zero);
	struct dp_file_key *k;
	struct dp_file_val *v;
	struct dentry *p;
	struct qstr q;
	__u64 lo = 0, hi = 0;
	__u32 r;

	if (!cfg)
		return 0;
	if (read_dent(d, &p, &q))
		return 0;
	len = q.len;

	if (len_bit(cfg->exact_lens, len) || cfg->nprefix) {
		__u8 name[DP_FK_NAME];

		read_name16(name, q.name, len);
		__builtin_memcpy(&lo, &name[0], 8);
		__builtin_memcpy(&hi, &name[8], 8);

		if (len_bit(cfg->exact_lens, len) && bloom_bit(cfg->exact_bloom, lo, hi, len)) {
			k = bpf_map_lookup_elem(&key_scratch, &zero);
			if (!k)
				return 0;
			__builtin_memset(k, 0, sizeof(*k));
			__builtin_memcpy(k->name, name, DP_FK_NAME);
			k->len = len > 255 ? 255 : len;
			k->type = DP_FK_EXACT;
			v = bpf_map_lookup_elem(&file_rules, k);
			if (v) {
				if (v->rule && (!(v->flags & DP_FV_PROC) || proc_other(d, self)))
					return v->rule;
				if ((v->flags & DP_FV_HAS_P) && (r = match_parent(k, p, DP_FK_EXACT_P)))
					return r;
			}
		}
		for (int i = 0; i < DP_MAX_PREFIXES; i++) {
			struct dp_file_prefix *px;

			if (i >= cfg->nprefix)
				break;
			px = &cfg->prefix[i];
			if (px->len > len || (lo & px->mlo) != px->lo || (hi & px->mhi) != px->hi)
				continue;
			k = bpf_map_lookup_elem(&key_scratch, &zero);
			if (!k)
				return 0;
			__builtin_memset(k, 0, sizeof(*k));
			__builtin_memcpy(&k->name[0], &px->lo, 8);
			__builtin_memcpy(&k->name[8], &px->hi, 8);
			k->len = px->len;
			k->type = DP_FK_PREFIX;
			v = bpf_map_lookup_elem(&file_rules, k);
			if (!v)
				continue;
			if (v->rule)
				return v->rule;
			if ((v->flags & DP_FV_HAS_P) && (r = match_parent(k, p, DP_FK_PREFIX_P)))
				return r;
		}
	}

	/* directory rules: parent, then grandparent */
	if (cfg->dir_lens) {
		for (int i = 0; i < 2; i++) {
			struct dentry *pp;

			if (read_dent(p, &pp, &q))
				return 0;
			if (len_bit(cfg->dir_lens, q.len)) {
				__u8 name[DP_FK_NAME];

				read_name16(name, q.name, q.len);
				__builtin_memcpy(&lo, &name[0], 8);
				__builtin_memcpy(&hi, &name[8], 8);
				if (bloom_bit(cfg->dir_bloom, lo, hi, q.len)) {
					k = bpf_map_lookup_elem(&key_scratch, &zero);
					if (!k)
						return 0;
					__builtin_memset(k, 0, sizeof(*k));
					__builtin_memcpy(k->name, name, DP_FK_NAME);
					k->type = DP_FK_DIR;
					k->len = q.len > 255 ? 255 : q.len;
					v = bpf_map_lookup_elem(&file_rules, k);
					if (v && v->rule)
						return v->rule;
				}
			}
			p = pp;
		}
	}
	return 0;
}

/*
 * Absolute path, leaf first, components NUL-separated; walks up across mounts.
 * The write offset lives in the record (volatile access), not in a register:
 * the verifier then does not carry a distinct offset range per path through
 * the loop, and the walk verifies in linear time.
 */
static __always_inline void build_path(struct dp_file *e, struct file *f)
{
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct vfsmount *vmnt = BPF_CORE_READ(f, f_path.mnt);
	struct mount *mnt = container_of(vmnt, struct mount, mnt);
	struct dentry *mnt_root = BPF_CORE_READ(vmnt, mnt_root);
	volatile __u32 *plen = &e->path_len;

	e->pflags = DP_FF_TRUNC;
	e->path_len = 0;
	e->ncomp = 0;
	for (int i = 0; i < 40; i++) {
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		const unsigned char *name;
		__u32 off;
		long n;

		if (d == mnt_root || d == parent) {
			struct mount *mp = BPF_CORE_READ(mnt, mnt_parent);

			if (mp == mnt || d != mnt_root) {
				e->pflags = 0; /* reached the root */
				break;
			}
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mp;
			mnt_root = BPF_CORE_READ(mp, mnt.mnt_root);
			continue;
		}
		off = *plen;
		if (off >= DP_PATH_MAX)
			break;
		name = BPF_CORE_READ(d, d_name.name);
		n = bpf_probe_read_kernel_str(&e->path[off & (DP_PATH_MAX - 1)], DP_NAME_MAX, name);
		if (n <= 0)
			break;
		*plen = off + (__u32)n;
		e->ncomp++;
		d = parent;
	}
}

/* flags: known (LSM/fentry/kprobe: the file's f_flags) or read from the syscall's registers on a hit */
#define FLAGS_FROM_FILE   0
#define FLAGS_OPENAT      1
#define FLAGS_OPENAT2     2
#define FLAGS_OPEN        3

static __always_inline __u32 open_flags(struct file *f, int how)
{
	struct pt_regs *regs;
	__u64 fl = 0;

	if (how == FLAGS_FROM_FILE)
		return BPF_CORE_READ(f, f_flags);
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	/* PT_REGS_PARMn_CORE: the syscall's nth argument register for __TARGET_ARCH (dx/si on x86,
	 * regs[2]/regs[1] on arm64, where user x0..x2 still hold the arguments inside the call) */
	if (how == FLAGS_OPENAT)       /* openat(dfd, path, flags, mode) */
		return PT_REGS_PARM3_CORE(regs);
	if (how == FLAGS_OPEN)         /* open(path, flags, mode): x86 only, arm64 has no open(2) */
		return PT_REGS_PARM2_CORE(regs);
	/* openat2(dfd, path, struct open_how *how, size): how->flags is the first u64 */
	bpf_probe_read_user(&fl, sizeof(fl), (void *)PT_REGS_PARM3_CORE(regs));
	return fl;
}

static __always_inline int handle_file(struct file *f, int how, __u64 id)
{
	struct dentry *d;
	struct dp_file *e;
	__u32 rule, zero = 0;
	__u64 size;

	if (!f)
		return 0;
	d = BPF_CORE_READ(f, f_path.dentry);
	if (!d)
		return 0;
	rule = match(d, id >> 32);
	if (!rule)
		return 0;
	{
		__u8 *wr = bpf_map_lookup_elem(&file_rule_wr, &rule);

		if (wr && *wr && !(open_flags(f, how) & DP_OPEN_WRITE_FLAGS))
			return 0;
	}
	if (benign_reader())
		return 0;
	e = bpf_map_lookup_elem(&file_scratch, &zero);
	if (!e)
		return 0;
	fill_hdr_traced(&e->h, DP_FILE, id);
	e->flags = open_flags(f, how);
	e->rule = rule;
	build_path(e, f);
	size = sizeof(*e) - DP_PATH_BUF + e->path_len;
	barrier_var(size);
	if (size > sizeof(*e))
		size = sizeof(*e);
	if (bpf_ringbuf_output(&events, e, size, dp_rb_flags()))
		count_drop(DP_FILE);
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(dp_lsm_file_open, struct file *file)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (!is_agent(id))
		handle_file(file, FLAGS_FROM_FILE, id);
	return 0; /* never deny */
}

SEC("fentry/security_file_open")
int BPF_PROG(dp_fentry_file_open, struct file *file)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (!is_agent(id))
		handle_file(file, FLAGS_FROM_FILE, id);
	return 0;
}

SEC("kprobe/security_file_open")
int BPF_KPROBE(dp_kprobe_file_open, struct file *file)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (!is_agent(id))
		handle_file(file, FLAGS_FROM_FILE, id);
	return 0;
}

/* tracepoint fallback: the opened fd -> struct file */
static __always_inline int handle_exit_open(struct trace_event_raw_sys_exit *ctx, int how)
{
	__u64 id = bpf_get_current_pid_tgid();
	long fd = ctx->ret;
	struct task_struct *task;
	struct fdtable *fdt;
	struct file **fds;
	struct file *f = 0;
	unsigned int max;

	if (fd < 0 || is_agent(id))
		return 0;
	/* the fd table through the BTF-typed task: plain loads (a fault reads 0), where
	 * BPF_CORE_READ would make a helper call per pointer; fd[] itself holds untyped pointers */
	task = bpf_get_current_task_btf();
	fdt = task->files->fdt;
	max = fdt->max_fds;
	if (fd >= max)
		return 0;
	fds = fdt->fd;
	if (!fds || bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) < 0 || !f)
		return 0;
	return handle_file(f, how, id);
}

SEC("tp/syscalls/sys_exit_openat")
int dp_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return handle_exit_open(ctx, FLAGS_OPENAT);
}

SEC("tp/syscalls/sys_exit_openat2")
int dp_exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return handle_exit_open(ctx, FLAGS_OPENAT2);
}

SEC("tp/syscalls/sys_exit_open")
int dp_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	return handle_exit_open(ctx, FLAGS_OPEN);
}
