/* File workload for the VM matrix (static): the opens that the host's file tests make with
 * python, without python. Each argument group is one operation, done in order:
 *
 *   dirfd DIR NAME   open DIR, then openat(dirfd, NAME, O_RDONLY)
 *   sysopen PATH     the raw open(2) syscall (SYS_open), O_RDONLY; arm64 has no open(2), only
 *                    openat(2), so there it is the raw openat(AT_FDCWD, PATH) syscall
 *   openat2 PATH     the raw openat2(2) syscall, AT_FDCWD, O_RDONLY
 *
 * Exits 1 when an open fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct how {
	uint64_t flags, mode, resolve;
};

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		long fd = -1;
		const char *what = argv[i];
		if (strcmp(what, "dirfd") == 0 && i + 2 < argc) {
			int d = open(argv[i + 1], O_RDONLY | O_DIRECTORY);
			if (d >= 0) {
				fd = openat(d, argv[i + 2], O_RDONLY);
				close(d);
			}
			i += 2;
		} else if (strcmp(what, "sysopen") == 0 && i + 1 < argc) {
#ifdef SYS_open
			fd = syscall(SYS_open, argv[++i], O_RDONLY);
#else
			fd = syscall(SYS_openat, AT_FDCWD, argv[++i], O_RDONLY);
#endif
		} else if (strcmp(what, "openat2") == 0 && i + 1 < argc) {
			struct how how = {.flags = O_RDONLY};
			fd = syscall(SYS_openat2, AT_FDCWD, argv[++i], &how, sizeof how);
		} else {
			fprintf(stderr, "fileops: bad operation %s\n", what);
			return 2;
		}
		if (fd < 0) {
			fprintf(stderr, "fileops: %s %s: %s\n", what, argv[i], strerror(errno));
			return 1;
		}
		close((int)fd);
		printf("OK %s %s\n", what, argv[i]);
	}
	return 0;
}
