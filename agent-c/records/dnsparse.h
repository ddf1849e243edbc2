/* DNS messages as the packet hook copies them (agent-c/records/dnsparse.c). */
#ifndef DPNDNCY_RECORDS_DNSPARSE_H
#define DPNDNCY_RECORDS_DNSPARSE_H

#include <stddef.h>
#include <stdint.h>

struct dns_msg {
	char name[256];
	unsigned qtype;
	unsigned rcode;
	int is_response;
	int nans;
	char answers[32][48];
};
/* parse a DNS message (no TCP length prefix); 0 ok */
int dns_parse(const uint8_t *p, size_t n, struct dns_msg *m);
const char *dns_qtype_str(unsigned t, char *buf, size_t n);

#endif
