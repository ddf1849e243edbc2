/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Enforce mode's DNS learner (dp_enf_dns, cgroup_skb/ingress on the job's cgroup), with the
 * maps only it uses. A part of the connect object like bpf/enforce.inc.c, #included by
 * bpf/connect.bpf.c right after it (it fills `learned`, which the verdicts there read).
 *
 * It parses DNS responses from a sanctioned resolver before the socket gets them: when the
 * question is an allowed name, every A/AAAA answer goes into `learned` before the program
 * returns, i.e. before the client can read the answer. No race. The packet's headers are read
 * by dns_pkt_parse() (bpf/dns_pkt.bpf.h), as observe's dp_dns_ingress reads them.
 */

#include "dns_pkt.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct dp_name_key);
	__type(value, struct dp_name_val);
} names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_enf_stats);
} enforce_stats SEC(".maps");

/* DNS over TCP: message boundaries of the resolver streams of the job (see common.bpf.h) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   /* socket cookie */
	__type(value, struct dp_tcp_dns_flow);
} enf_tcp_flows SEC(".maps");

struct enf_scratch {
	__u32 p;             /* parse position, kept in map memory: the verifier then sees an unknown */
	__u32 pad;           /* scalar, and the states of the answer loop converge */
	__u8 buf[DP_ENF_BUF];
	__u8 dotted[DP_ENF_NAME];
	struct dp_name_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enf_scratch);
} enf_scratch SEC(".maps");
/* ---- DNS answers -> learned ---- */

static __always_inline __u8 sb(const struct enf_scratch *s, __u32 i)
{
	return s->buf[i & (DP_ENF_BUF - 1)];
}

static __always_inline void enf_stat(int which)
{
	__u32 zero = 0;
	struct dp_enf_stats *st = bpf_map_lookup_elem(&enforce_stats, &zero);

	if (!st)
		return;
	if (which == 0)
		st->learned++;
	else if (which == 1)
		st->learn_fail++;
	else if (which == 2)
		st->dns_allowed++;
	else
		st->dns_other++;
}

static __always_inline void learn(const __u8 a[16], const struct dp_name_val *nv, __u32 slot, __u32 ttl)
{
	struct dp_learn_key k = {};
	struct dp_learn_val v = {.rule = nv->rule};
	__u32 n = nv->nports;

	if (ttl < learned_ttl_min)
		ttl = learned_ttl_min;
	v.expires = bpf_ktime_get_boot_ns() + (__u64)ttl * 1000000000ULL;

	k.slot = slot;
	__builtin_memcpy(k.addr, a, 16);
	if (nv->flags & DP_NV_ANY) {
		k.port = 0;
		if (bpf_map_update_elem(&learned, &k, &v, BPF_ANY) == 0)
			enf_stat(0);
		else
			enf_stat(1);
	}
	for (__u32 i = 0; i < DP_ENF_PORTS; i++) {
		if (i >= n)
			break;
		k.port = nv->ports[i];
		if (bpf_map_update_elem(&learned, &k, &v, BPF_ANY) == 0)
			enf_stat(0);
		else
			enf_stat(1);
	}
}

struct ans_ctx {
	__u32 len;
	__u32 ancount;
	__u32 slot;
	struct dp_name_val val;
};

/* one answer record at ac->p; 1 stops the loop */
static long answer_cb(__u64 i, void *data)
{
	struct ans_ctx *ac = data;
	struct enf_scratch *s;
	__u32 zero = 0, p, len = ac->len, type, rdlen, j, ttl;
	__u8 a[16];

	if (i >= ac->ancount || len > DP_ENF_BUF)
		return 1;
	s = bpf_map_lookup_elem(&enf_scratch, &zero);
	if (!s)
		return 1;
	p = *(volatile __u32 *)&s->p;
	/* owner name: a pointer, or labels ending in a pointer or the root */
	for (j = 0; j < 32; j++) {
		__u8 c;

		if (p >= len)
			return 1;
		c = sb(s, p);
		if (c >= 0xc0) {
			p += 2;
			break;
		}
		if (c == 0) {
			p += 1;
			break;
		}
		p += 1 + c;
	}
	if (j == 32)
		return 1;
	*(volatile __u32 *)&s->p = p;
	p = *(volatile __u32 *)&s->p;
	if (p + 10 > len)
		return 1;
	type = ((__u32)sb(s, p) << 8) | sb(s, p + 1);
	ttl = ((__u32)sb(s, p + 4) << 24) | ((__u32)sb(s, p + 5) << 16) | ((__u32)sb(s, p + 6) << 8) | sb(s, p + 7);
	if (ttl & 0x80000000)
		ttl = 0; /* RFC 2181 */
	else if (ttl > 604800)
		ttl = 604800; /* a week is plenty */
	rdlen = ((__u32)sb(s, p + 8) << 8) | sb(s, p + 9);
	p += 10;
	if (p + rdlen > len)
		return 1;
	if (type == 1 && rdlen == 4) {
		__builtin_memset(a, 0, 10);
		a[10] = 0xff;
		a[11] = 0xff;
		a[12] = sb(s, p);
		a[13] = sb(s, p + 1);
		a[14] = sb(s, p + 2);
		a[15] = sb(s, p + 3);
		learn(a, &ac->val, ac->slot, ttl);
	} else if (type == 28 && rdlen == 16) {
		for (j = 0; j < 16; j++)
			a[j] = sb(s, p + j);
		learn(a, &ac->val, ac->slot, ttl);
	}
	*(volatile __u32 *)&s->p = p + rdlen;
	return 0;
}

SEC("cgroup_skb/ingress")
int dp_enf_dns(struct __sk_buff *skb)
{
	struct enf_scratch *s;
	struct dp_name_val *nv, val;
	struct dp_sock_owner *o;
	struct dns_pkt pk;
	__u32 off, plen, zero = 0, len, p, next, n, i, ancount, done, slot;
	__u64 cookie;

	if (dns_pkt_parse(skb, &pk, DNS_PKT_V4MAPPED) < 0)
		return 1;
	/* only answers from a sanctioned resolver teach us anything */
	if (!bpf_map_lookup_elem(&resolvers, pk.saddr))
		return 1;
	/* the policy of the job that asked: the socket's owner (recorded at connect / sendmsg) */
	cookie = bpf_get_socket_cookie(skb);
	o = cookie ? bpf_map_lookup_elem(&sock_owner, &cookie) : 0;
	slot = slot_of_job(o ? (o->learn_job ? o->learn_job : o->job) : 0);
	off = pk.off;
	plen = pk.plen;
	if (pk.proto == IPPROTO_TCP) {
		__u32 mlen = 0;
		int b;

		/* only a whole message that starts at a known boundary of the stream */
		b = tcp_dns_boundary(&enf_tcp_flows, cookie, skb, off, plen, pk.seq_be, pk.tflags, &mlen);
		if (b < 0 || (__u32)b + 2 + mlen > plen)
			return 1;
		off += (__u32)b + 2;
		plen = mlen;
	}
	if (plen <= 12)
		return 1;
	s = bpf_map_lookup_elem(&enf_scratch, &zero);
	if (!s)
		return 1;
	{
		__u64 cl = plen > DP_ENF_BUF ? DP_ENF_BUF : plen;

		barrier_var(cl);
		cl = ((cl - 1) & (DP_ENF_BUF - 1)) + 1;
		if (bpf_skb_load_bytes(skb, off, s->buf, cl) < 0)
			return 1;
		len = cl;
	}
	/* header: a response (QR), NOERROR, one question */
	if (!(sb(s, 2) & 0x80) || (sb(s, 3) & 0x0f) != 0 || sb(s, 4) != 0 || sb(s, 5) != 1)
		return 1;
	ancount = ((__u32)sb(s, 6) << 8) | sb(s, 7);

	/* question name -> dotted, lower case */
	p = 12;
	next = 12;
	n = 0;
	done = 0;
	for (i = 0; i < DP_ENF_NAME + 1; i++) {
		__u8 c;

		if (p >= len)
			return 1;
		c = sb(s, p);
		if (p == next) {
			if (c == 0) {
				done = 1;
				break;
			}
			if (c >= 64)
				return 1; /* compression or extended label in a question: not ours */
			next = p + c + 1;
			if (i > 0) {
				if (n >= DP_ENF_NAME - 1)
					return 1;
				s->dotted[n & (DP_ENF_NAME - 1)] = '.';
				n++;
			}
		} else {
			if (n >= DP_ENF_NAME - 1)
				return 1;
			if (c >= 'A' && c <= 'Z')
				c += 32;
			s->dotted[n & (DP_ENF_NAME - 1)] = c;
			n++;
		}
		p++;
	}
	if (!done || n == 0)
		return 1;
	/* reversed into the trie key, NUL padded */
	__builtin_memset(&s->key, 0, sizeof(s->key));
	for (i = 0; i < DP_ENF_NAME; i++) {
		if (i >= n)
			break;
		s->key.name[i & (DP_ENF_NAME - 1)] = s->dotted[(n - 1 - i) & (DP_ENF_NAME - 1)];
	}
	s->key.prefixlen = DP_SLOT_BITS + DP_ENF_NAME * 8;
	s->key.slot = slot;
	nv = bpf_map_lookup_elem(&names, &s->key);
	if (!nv || (nv->flags & DP_NV_DENY)) {
		enf_stat(3);
		return 1;
	}
	__builtin_memcpy(&val, nv, sizeof(val));
	enf_stat(2);
	p += 1 + 4; /* the root label, QTYPE, QCLASS */

	/* answers: every A / AAAA (the chain of CNAMEs answers the allowed question) */
	{
		struct ans_ctx ac = {.len = len, .ancount = ancount, .slot = slot};

		s->p = p;

		__builtin_memcpy(&ac.val, &val, sizeof(val));
		bpf_loop(24, answer_cb, &ac, 0);
	}
	return 1;
}

