/* Servers for the VM matrix (static), all in one poll loop on the VM's loopback:
 *
 *   tcp:ADDR:PORT   accept, send "hello\n", close
 *   udp:ADDR:PORT   echo each datagram
 *   dns:ADDR:PORT   a tiny authoritative DNS server over UDP answering from --zone FILE
 *                   (lines "NAME A|AAAA ADDRESS"); any other name gets NXDOMAIN
 *
 * usage: vmserve --zone FILE --ready FILE SPEC...
 * Creates the --ready file once every socket is bound; prints "QUERY udp NAME QTYPE" per query. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXS 32
#define MAXZ 128

enum { TCP, UDP, DNS };
static struct {
	char name[256];
	int type; /* 1 or 28 */
	unsigned char addr[16];
} zone[MAXZ];
static int nzone;

static void load_zone(const char *path) {
	FILE *f = fopen(path, "r");
	char line[512], name[256], type[8], addr[64];
	if (!f) {
		perror(path);
		exit(2);
	}
	while (fgets(line, sizeof line, f) && nzone < MAXZ) {
		if (sscanf(line, "%255s %7s %63s", name, type, addr) != 3) continue;
		int t = strcmp(type, "AAAA") == 0 ? 28 : 1;
		if (inet_pton(t == 1 ? AF_INET : AF_INET6, addr, zone[nzone].addr) != 1) continue;
		snprintf(zone[nzone].name, sizeof zone[nzone].name, "%s", name);
		zone[nzone].type = t;
		nzone++;
	}
	fclose(f);
}

static int listen_on(const char *spec, int *kind) {
	char buf[128];
	snprintf(buf, sizeof buf, "%s", spec);
	char *rest = strchr(buf, ':');
	if (!rest) return -1;
	*rest++ = 0;
	*kind = strcmp(buf, "tcp") == 0 ? TCP : strcmp(buf, "udp") == 0 ? UDP : DNS;
	char *colon = strrchr(rest, ':');
	if (!colon) return -1;
	*colon = 0;
	int port = atoi(colon + 1);
	char *a = rest;
	if (*a == '[') {
		a++;
		char *e = strchr(a, ']');
		if (e) *e = 0;
	}
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int fam = strchr(a, ':') ? AF_INET6 : AF_INET;
	if (fam == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		inet_pton(AF_INET6, a, &s6->sin6_addr);
		len = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		inet_pton(AF_INET, a, &s4->sin_addr);
		len = sizeof *s4;
	}
	int s = socket(fam, *kind == TCP ? SOCK_STREAM : SOCK_DGRAM, 0);
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fam == AF_INET6) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(s, (struct sockaddr *)&ss, len) != 0 || (*kind == TCP && listen(s, 64) != 0)) {
		perror(spec);
		exit(2);
	}
	return s;
}

static void dns_answer(int s) {
	unsigned char q[1500], r[1500];
	struct sockaddr_storage peer;
	socklen_t pl = sizeof peer;
	ssize_t n = recvfrom(s, q, sizeof q, 0, (struct sockaddr *)&peer, &pl);
	if (n < 17) return;
	size_t off = 12;
	char name[256];
	size_t nl = 0;
	while (off < (size_t)n && q[off]) {
		size_t l = q[off++];
		if (off + l > (size_t)n || nl + l + 1 >= sizeof name) return;
		if (nl) name[nl++] = '.';
		memcpy(name + nl, q + off, l);
		nl += l;
		off += l;
	}
	name[nl] = 0;
	off++;
	if (off + 4 > (size_t)n) return;
	int qtype = q[off] << 8 | q[off + 1];
	off += 4;
	printf("QUERY udp %s %s\n", name, qtype == 1 ? "A" : qtype == 28 ? "AAAA" : "OTHER");
	fflush(stdout);
	int found = 0, count = 0;
	size_t m = off;
	memcpy(r, q, off);
	for (int i = 0; i < nzone; i++) {
		if (strcasecmp(zone[i].name, name) != 0) continue;
		found = 1;
		if (zone[i].type != qtype) continue;
		int rdlen = qtype == 1 ? 4 : 16;
		unsigned char rr[12] = {0xc0, 0x0c, 0, (unsigned char)qtype, 0, 1, 0, 0, 0, 60, 0, (unsigned char)rdlen};
		memcpy(r + m, rr, sizeof rr);
		m += sizeof rr;
		memcpy(r + m, zone[i].addr, rdlen);
		m += rdlen;
		count++;
	}
	/* QR, AA, RD copied, RA, rcode NXDOMAIN when the name is unknown */
	r[2] = 0x80 | 0x04 | (q[2] & 0x01);
	r[3] = 0x80 | (found ? 0 : 3);
	r[4] = 0, r[5] = 1, r[6] = 0, r[7] = (unsigned char)count;
	memset(r + 8, 0, 4);
	sendto(s, r, m, 0, (struct sockaddr *)&peer, pl);
}

int main(int argc, char **argv) {
	struct pollfd p[MAXS];
	int kinds[MAXS], n = 0;
	const char *ready = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--zone") == 0 && i + 1 < argc) load_zone(argv[++i]);
		else if (strcmp(argv[i], "--ready") == 0 && i + 1 < argc) ready = argv[++i];
		else if (n < MAXS) {
			p[n].fd = listen_on(argv[i], &kinds[n]);
			p[n].events = POLLIN;
			if (p[n].fd < 0) {
				fprintf(stderr, "vmserve: bad spec %s\n", argv[i]);
				return 2;
			}
			n++;
		}
	}
	if (ready) fclose(fopen(ready, "w"));
	printf("READY\n");
	fflush(stdout);
	for (;;) {
		if (poll(p, n, -1) < 0) continue;
		for (int i = 0; i < n; i++) {
			if (!(p[i].revents & POLLIN)) continue;
			if (kinds[i] == TCP) {
				int c = accept(p[i].fd, NULL, NULL);
				if (c >= 0) {
					(void)!write(c, "hello\n", 6);
					close(c);
				}
			} else if (kinds[i] == UDP) {
				char buf[512];
				struct sockaddr_storage peer;
				socklen_t pl = sizeof peer;
				ssize_t m = recvfrom(p[i].fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &pl);
				if (m >= 0) sendto(p[i].fd, buf, m, 0, (struct sockaddr *)&peer, pl);
			} else {
				dns_answer(p[i].fd);
			}
		}
	}
}
