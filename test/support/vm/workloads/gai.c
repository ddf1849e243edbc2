/* DNS workload for the VM matrix, linked DYNAMICALLY against the host's glibc so that the
 * agent's getaddrinfo uprobe in libc.so.6 sees it: getaddrinfo(NAME, "443", FAMILY,
 * SOCK_STREAM), one line per address, or "gaierror N" when the lookup fails.
 *
 * usage: gai NAME any|4|6 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: gai NAME any|4|6\n");
		return 2;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	hints.ai_family = strcmp(argv[2], "4") == 0 ? AF_INET : strcmp(argv[2], "6") == 0 ? AF_INET6 : AF_UNSPEC;
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(argv[1], "443", &hints, &res);
	if (rc != 0) {
		printf("gaierror %d\n", rc);
		return 0;
	}
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		char buf[64];
		const void *p = a->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
		                                        : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
		printf("%s\n", inet_ntop(a->ai_family, p, buf, sizeof buf));
	}
	freeaddrinfo(res);
	return 0;
}
