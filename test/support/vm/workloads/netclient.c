/* Connect workload for the VM matrix (static): the operations of the host tests'
 * fixtures/netclient.py, one per argument, done in order:
 *
 *   tcp:ADDR:PORT      blocking TCP connect (AF_INET6 socket when ADDR has a colon), read the
 *                      server's greeting, close
 *   tcpnb:ADDR:PORT    non-blocking TCP connect (EINPROGRESS, then poll for the outcome)
 *   tcpfail:ADDR:PORT  blocking TCP connect expected to fail; prints the errno
 *   udp:ADDR:PORT      sendto() on an unconnected UDP socket and wait for the echo
 *   udp2:ADDR:PORT     two sendto() calls to the same destination on one unconnected socket
 *   udpc:ADDR:PORT     connect() a UDP socket, then send() and wait for the echo
 *   sock:KIND          socket() only, KIND one of icmp4 icmp6 (ICMP "ping" sockets), raw4
 *                      (SOCK_RAW, IPPROTO_UDP), raw6 (SOCK_RAW, IPPROTO_RAW): enforce mode
 *                      refuses these at socket() (cgroup/sock_create)
 *
 * ADDR may be bracketed ([::1]). Prints "OK op" or "ERR errno op" per operation; exits 1 when
 * an operation other than tcpfail fails (or a tcpfail succeeds). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int dest(const char *spec, struct sockaddr_storage *ss, socklen_t *len) {
	char addr[128];
	const char *colon = strrchr(spec, ':');
	if (!colon || (size_t)(colon - spec) >= sizeof addr) return -1;
	memcpy(addr, spec, colon - spec);
	addr[colon - spec] = 0;
	char *a = addr;
	if (a[0] == '[') {
		a++;
		char *e = strchr(a, ']');
		if (e) *e = 0;
	}
	int port = atoi(colon + 1);
	memset(ss, 0, sizeof *ss);
	if (strchr(a, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, a, &s6->sin6_addr) != 1) return -1;
		*len = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, a, &s4->sin_addr) != 1) return -1;
		*len = sizeof *s4;
	}
	return 0;
}

static void timeouts(int s) {
	struct timeval tv = {.tv_sec = 5};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static int sock_only(const char *what) {
	static const struct { const char *name; int family, type, proto; } k[] = {
		{"icmp4", AF_INET, SOCK_DGRAM, IPPROTO_ICMP},
		{"icmp6", AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6},
		{"raw4", AF_INET, SOCK_RAW, IPPROTO_UDP},
		{"raw6", AF_INET6, SOCK_RAW, IPPROTO_RAW},
	};
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		if (strcmp(what, k[i].name) != 0) continue;
		int s = socket(k[i].family, k[i].type, k[i].proto);
		if (s < 0) return errno;
		close(s);
		return 0;
	}
	return EINVAL;
}

/* 0 on success, else an errno */
static int op(const char *kind, const char *spec) {
	if (strcmp(kind, "sock") == 0) return sock_only(spec);
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[64];
	if (dest(spec, &ss, &len) != 0) return EINVAL;
	int tcp = strncmp(kind, "tcp", 3) == 0;
	int s = socket(ss.ss_family, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
	if (s < 0) return errno;
	timeouts(s);
	int err = 0;
	if (strcmp(kind, "tcp") == 0 || strcmp(kind, "tcpfail") == 0) {
		if (connect(s, (struct sockaddr *)&ss, len) != 0 || recv(s, buf, sizeof buf, 0) < 0) err = errno;
	} else if (strcmp(kind, "tcpnb") == 0) {
		fcntl(s, F_SETFL, O_NONBLOCK);
		if (connect(s, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS) {
			err = errno;
		} else {
			struct pollfd p = {.fd = s, .events = POLLOUT};
			poll(&p, 1, 5000);
			socklen_t el = sizeof err;
			getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
		}
	} else if (strcmp(kind, "udpc") == 0) {
		if (connect(s, (struct sockaddr *)&ss, len) != 0 || send(s, "ping", 4, 0) != 4 ||
		    recv(s, buf, sizeof buf, 0) < 0)
			err = errno;
	} else if (strcmp(kind, "udp") == 0 || strcmp(kind, "udp2") == 0) {
		int n = kind[3] == '2' ? 2 : 1;
		for (int i = 0; i < n && !err; i++)
			if (sendto(s, "ping", 4, 0, (struct sockaddr *)&ss, len) != 4 ||
			    recvfrom(s, buf, sizeof buf, 0, NULL, NULL) < 0)
				err = errno;
	} else {
		err = EINVAL;
	}
	close(s);
	return err;
}

int main(int argc, char **argv) {
	int bad = 0;
	for (int i = 1; i < argc; i++) {
		char kind[16];
		const char *c = strchr(argv[i], ':');
		if (!c || (size_t)(c - argv[i]) >= sizeof kind) {
			fprintf(stderr, "netclient: bad operation %s\n", argv[i]);
			return 2;
		}
		memcpy(kind, argv[i], c - argv[i]);
		kind[c - argv[i]] = 0;
		int err = op(kind, c + 1);
		if (err) printf("ERR %d %s\n", err, argv[i]);
		else printf("OK %s\n", argv[i]);
		fflush(stdout);
		if ((err != 0) != (strcmp(kind, "tcpfail") == 0)) bad = 1;
	}
	return bad;
}
