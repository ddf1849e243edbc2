/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The headers of a packet that may carry a DNS answer, read once for both cgroup_skb programs
 * that read answers: dp_dns_ingress (bpf/dns.bpf.c, observe: records them) and dp_enf_dns
 * (bpf/enforce_dns.inc.c, enforce: learns the answered addresses). Both must accept the same
 * packets, so the rules live here only: IPv4 or IPv6, UDP or TCP from port 53, not an IPv4
 * fragment after the first. IPv6 extension headers are not walked (nexthdr must be UDP/TCP),
 * as before the two parsers were one. Include after common.bpf.h.
 */
#ifndef DP_DNS_PKT_BPF_H
#define DP_DNS_PKT_BPF_H

struct dns_pkt {
	__u8 saddr[16];  /* IPv4: in the first 4 bytes, or ::ffff:a.b.c.d with DNS_PKT_V4MAPPED */
	__u8 daddr[16];  /* the same form */
	__u32 family;    /* AF_INET / AF_INET6 */
	__u32 off;       /* offset of the transport payload (after the UDP or TCP header) */
	__u32 plen;      /* payload bytes: skb->len - off, 0 if none */
	__u32 seq_be;    /* TCP: the segment's sequence number, network order */
	__u16 sport;     /* host order (53 on success) */
	__u16 dport;
	__u8 proto;      /* IPPROTO_UDP / IPPROTO_TCP */
	__u8 tflags;     /* TCP flags */
};

/* IPv4 addresses as IPv4-mapped IPv6, the form enforce's maps (resolvers, learned) key on */
#define DNS_PKT_V4MAPPED 1

/*
 * 0 when skb is a UDP/TCP packet from port 53 (fills *p), -1 for anything else. sock_may_get_dns()
 * comes first: most packets (every one of a loopback TCP connect) stop there without a load.
 * `how` is a constant at each call site (the function is inlined), so only one address form
 * is compiled into each program.
 */
static __always_inline int dns_pkt_parse(struct __sk_buff *skb, struct dns_pkt *p, const int how)
{
	struct {
		__u16 sport;
		__u16 dport;
		__u32 seq;
		__u32 ack;
		__u8 doff_res;
		__u8 flags;
	} l4 = {};
	__u32 off;
	__u8 proto;

	if (!sock_may_get_dns(skb))
		return -1;
	__builtin_memset(p->saddr, 0, sizeof(p->saddr));
	__builtin_memset(p->daddr, 0, sizeof(p->daddr));
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			return -1;
		proto = ip.protocol;
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return -1;
		if (ip.frag_off & bpf_htons(0x1fff))
			return -1; /* not a first fragment: no transport header */
		p->family = AF_INET;
		off = ip.ihl * 4;
		if (how & DNS_PKT_V4MAPPED) {
			__u32 ff = bpf_htonl(0xffff);

			__builtin_memcpy(&p->saddr[8], &ff, 4);
			__builtin_memcpy(&p->saddr[12], &ip.saddr, 4);
			__builtin_memcpy(&p->daddr[8], &ff, 4);
			__builtin_memcpy(&p->daddr[12], &ip.daddr, 4);
		} else {
			__builtin_memcpy(p->saddr, &ip.saddr, 4);
			__builtin_memcpy(p->daddr, &ip.daddr, 4);
		}
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			return -1;
		proto = ip6.nexthdr;
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return -1;
		p->family = AF_INET6;
		off = sizeof(ip6);
		__builtin_memcpy(p->saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->daddr, &ip6.daddr, 16);
	} else {
		return -1;
	}
	/* UDP: the ports; TCP: the ports, sequence number, data offset and flags */
	if (bpf_skb_load_bytes(skb, off, &l4, proto == IPPROTO_TCP ? 14 : 4) < 0)
		return -1;
	if (l4.sport != bpf_htons(53))
		return -1;
	off += proto == IPPROTO_TCP ? (l4.doff_res >> 4) * 4 : 8;
	p->proto = proto;
	p->off = off;
	p->plen = skb->len > off ? skb->len - off : 0;
	p->seq_be = l4.seq;
	p->sport = bpf_ntohs(l4.sport);
	p->dport = bpf_ntohs(l4.dport);
	p->tflags = l4.flags;
	return 0;
}

#endif
