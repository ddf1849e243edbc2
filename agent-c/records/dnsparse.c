/* DNS message parser for packets copied by the cgroup_skb hook (RFC 1035). */
#include <stdio.h>
#include <arpa/inet.h>
#include <string.h>

#include "agent.h"
#include "records/dnsparse.h"

static unsigned rd16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* decode a (possibly compressed) name at *off; advances *off past it */
static int read_name(const uint8_t *p, size_t n, size_t *off, char *out, size_t outn)
{
	size_t o = *off, w = 0;
	int jumped = 0, hops = 0;

	out[0] = 0;
	for (;;) {
		unsigned l;

		if (o >= n)
			return -1;
		l = p[o];
		if ((l & 0xC0) == 0xC0) {
			if (o + 1 >= n || ++hops > 16)
				return -1;
			if (!jumped)
				*off = o + 2;
			jumped = 1;
			o = ((l & 0x3F) << 8) | p[o + 1];
			continue;
		}
		if (l & 0xC0)
			return -1;
		o++;
		if (l == 0)
			break;
		if (o + l > n)
			return -1;
		if (w && w + 1 < outn)
			out[w++] = '.';
		for (unsigned i = 0; i < l && w + 1 < outn; i++)
			out[w++] = (char)p[o + i];
		o += l;
	}
	out[w] = 0;
	if (!jumped)
		*off = o;
	if (w == 0 && outn > 1) {
		out[0] = '.';
		out[1] = 0;
	}
	return 0;
}

int dns_parse(const uint8_t *p, size_t n, struct dns_msg *m)
{
	size_t off = 12;
	unsigned qd, an;
	char tmp[256];

	memset(m, 0, sizeof(*m));
	if (n < 12)
		return -1;
	m->is_response = (p[2] & 0x80) != 0;
	m->rcode = p[3] & 0x0F;
	qd = rd16(p + 4);
	an = rd16(p + 6);
	if (qd < 1)
		return -1;
	for (unsigned i = 0; i < qd; i++) {
		if (read_name(p, n, &off, i == 0 ? m->name : tmp, i == 0 ? sizeof(m->name) : sizeof(tmp)) < 0)
			return -1;
		if (off + 4 > n)
			return -1;
		if (i == 0)
			m->qtype = rd16(p + off);
		off += 4;
	}
	for (unsigned i = 0; i < an; i++) {
		unsigned type, rdlen;

		if (read_name(p, n, &off, tmp, sizeof(tmp)) < 0 || off + 10 > n)
			break; /* truncated capture: keep what we have */
		type = rd16(p + off);
		rdlen = rd16(p + off + 8);
		off += 10;
		if (off + rdlen > n)
			break;
		if (m->nans < 32) {
			if (type == 1 && rdlen == 4)
				inet_ntop(AF_INET, p + off, m->answers[m->nans++], sizeof(m->answers[0]));
			else if (type == 28 && rdlen == 16)
				inet_ntop(AF_INET6, p + off, m->answers[m->nans++], sizeof(m->answers[0]));
		}
		off += rdlen;
	}
	return 0;
}

const char *dns_qtype_str(unsigned t, char *buf, size_t n)
{
	switch (t) {
	case 1: return "A";
	case 28: return "AAAA";
	case 5: return "CNAME";
	case 15: return "MX";
	case 16: return "TXT";
	case 2: return "NS";
	case 6: return "SOA";
	case 12: return "PTR";
	case 33: return "SRV";
	case 65: return "HTTPS";
	case 64: return "SVCB";
	case 255: return "ANY";
	default:
		snprintf(buf, n, "TYPE%u", t);
		return buf;
	}
}
