// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * DNS, two ways:
 *  - libc: uprobe + uretprobe on getaddrinfo() in every libc found, system-wide;
 *  - packet: cgroup_skb/ingress on the cgroup v2 root copies every UDP/TCP
 *    packet from source port 53 (first DP_PKT_MAX payload bytes) for programs
 *    that bypass libc. It runs before the socket receives the answer, which
 *    is where enforce mode will learn allowed addresses. Always returns 1.
 */
#include "common.bpf.h"
#include "dns_pkt.bpf.h"

/* glibc and musl layout of struct addrinfo on LP64 (x86_64 and aarch64 alike) */
struct gai_ai {
	int ai_flags;
	int ai_family;
	int ai_socktype;
	int ai_protocol;
	__u32 ai_addrlen;
	void *ai_addr;
	char *ai_canonname;
	struct gai_ai *ai_next;
};

struct gai_call {
	void *res;           /* struct addrinfo ** */
	__u16 family;
	char name[DP_DNS_NAME_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);  /* tid */
	__type(value, struct gai_call);
} gai_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gai_call);
} gai_scratch SEC(".maps");

static __always_inline int same16(const __u8 *x, const __u8 *y)
{
	__u64 x0, x1, y0, y1;

	__builtin_memcpy(&x0, x, 8);
	__builtin_memcpy(&x1, x + 8, 8);
	__builtin_memcpy(&y0, y, 8);
	__builtin_memcpy(&y1, y + 8, 8);
	return x0 == y0 && x1 == y1;
}

SEC("uprobe")
int BPF_KPROBE(dp_gai_enter, const char *node, const char *service, const struct gai_ai *hints, void *res)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, zero = 0;
	struct gai_call *c;

	if (!node || is_agent(id))
		return 0;
	c = bpf_map_lookup_elem(&gai_scratch, &zero);
	if (!c)
		return 0;
	c->res = res;
	c->family = 0;
	if (hints) {
		int fam = 0;

		bpf_probe_read_user(&fam, sizeof(fam), &hints->ai_family);
		c->family = fam;
	}
	if (bpf_probe_read_user_str(c->name, sizeof(c->name), node) < 0)
		return 0;
	bpf_map_update_elem(&gai_calls, &tid, c, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(dp_gai_exit, int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct gai_call *c;
	struct dp_dns_libc *e;
	struct gai_ai *ai = 0;

	c = bpf_map_lookup_elem(&gai_calls, &tid);
	if (!c)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DP_DNS_LIBC);
		bpf_map_delete_elem(&gai_calls, &tid);
		return 0;
	}
	fill_hdr_traced(&e->h, DP_DNS_LIBC, id);
	e->ret = ret;
	e->family_hint = c->family;
	__builtin_memcpy(e->name, c->name, sizeof(e->name));
	__builtin_memset(e->addrs, 0, sizeof(e->addrs));
	if (ret == 0 && c->res)
		bpf_probe_read_user(&ai, sizeof(ai), c->res);
	/* the count lives in the record (volatile): keeps verification linear */
	e->naddr = 0;
	for (int i = 0; i < 32 && ai; i++) {
		volatile __u16 *pn = &e->naddr;
		struct gai_ai cur;
		__u16 fam = 0;
		__u8 a[16] = {};
		__u32 cnt;

		if (bpf_probe_read_user(&cur, sizeof(cur), ai) < 0)
			break;
		ai = cur.ai_next;
		if (cur.ai_addr && cur.ai_family == AF_INET) {
			bpf_probe_read_user(a, 4, cur.ai_addr + 4);   /* sin_addr */
			fam = AF_INET;
		} else if (cur.ai_addr && cur.ai_family == AF_INET6) {
			bpf_probe_read_user(a, 16, cur.ai_addr + 8);  /* sin6_addr */
			fam = AF_INET6;
		}
		if (!fam)
			continue;
		cnt = *pn;
		if (cnt >= DP_DNS_ADDRS)
			break;
		if (cnt) {
			/* glibc repeats each address once per socket type: skip repeats of the last one */
			__u32 last = (cnt - 1) & (DP_DNS_ADDRS - 1);

			if (e->addrs[last].family == fam && same16(e->addrs[last].addr, a))
				continue;
		}
		cnt &= DP_DNS_ADDRS - 1;
		e->addrs[cnt].family = fam;
		e->addrs[cnt].pad = 0;
		__builtin_memcpy(e->addrs[cnt].addr, a, 16);
		*pn = cnt + 1;
	}
	bpf_ringbuf_submit(e, dp_rb_flags());
	bpf_map_delete_elem(&gai_calls, &tid);
	return 0;
}

/* DNS over TCP: message boundaries per resolver stream (bpf/common.bpf.h) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   /* socket cookie */
	__type(value, struct dp_tcp_dns_flow);
} tcp_flows SEC(".maps");

SEC("cgroup_skb/ingress")
int dp_dns_ingress(struct __sk_buff *skb)
{
	struct dp_dns_pkt *e;
	struct dp_sock_owner *o;
	struct dns_pkt pk;
	__u32 off, plen, mlen = 0, msg_off = DP_NO_MSG, msg_len = 0;
	__u64 cookie;

	if (dns_pkt_parse(skb, &pk, 0) < 0)
		return 1;
	off = pk.off;
	plen = pk.plen;
	cookie = bpf_get_socket_cookie(skb);
	if (pk.proto == IPPROTO_TCP) {
		/* where a message starts, if one does (bpf/common.bpf.h); the SYN-ACK starts the count */
		int b = tcp_dns_boundary(&tcp_flows, cookie, skb, off, plen, pk.seq_be, pk.tflags, &mlen);

		if (b >= 0 && b + 2 < DP_PKT_MAX) {
			msg_off = (__u32)b + 2;
			msg_len = mlen;
		}
	} else {
		msg_off = 0;
		msg_len = plen;
	}
	if (plen == 0)
		return 1; /* no payload (TCP ACK etc.) */

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DP_DNS_PKT);
		return 1;
	}
	e->h.kind = DP_DNS_PKT;
	e->h.ts = bpf_ktime_get_boot_ns();
	e->h.flags = DP_HF_NO_PPID;
	o = cookie ? bpf_map_lookup_elem(&sock_owner, &cookie) : 0;
	if (o) {
		e->h.pid = o->pid;
		e->h.tid = o->tid;
		e->h.uid = o->uid;
		e->h.cgroup = o->cgroup;
		__builtin_memcpy(e->h.comm, o->comm, sizeof(e->h.comm));
		e->h.step = o->step;
		e->h.job = o->job;
	} else {
		e->h.pid = 0;
		e->h.tid = 0;
		e->h.uid = 0;
		e->h.cgroup = 0;
		__builtin_memset(e->h.comm, 0, sizeof(e->h.comm));
		e->h.flags |= DP_HF_NO_OWNER;
		e->h.step = 0;
		e->h.job = 0;
	}
	e->h.ppid = 0;
	e->cookie = cookie;
	e->family = pk.family;
	e->proto = pk.proto;
	e->pad = 0;
	e->sport = pk.sport;
	e->dport = pk.dport;
	e->len = plen;
	e->msg_off = msg_off;
	e->msg_len = msg_len > 0xffff ? 0xffff : msg_len;
	__builtin_memcpy(e->saddr, pk.saddr, 16);
	__builtin_memcpy(e->daddr, pk.daddr, 16);
	{
		/* plen >= 1 here; written so that older verifiers (6.1) see 1 <= cl <= DP_PKT_MAX */
		__u64 cl = plen > DP_PKT_MAX ? DP_PKT_MAX : plen;

		barrier_var(cl);
		cl = ((cl - 1) & (DP_PKT_MAX - 1)) + 1;
		if (bpf_skb_load_bytes(skb, off, e->data, cl) < 0)
			cl = 0;
		e->caplen = cl;
	}
	bpf_ringbuf_submit(e, dp_rb_flags());
	return 1;
}
