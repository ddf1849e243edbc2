/* Small helpers: errors, files, clocks, addresses. */
#include <stdarg.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "base/util.h"

void err_msg(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* one line, always */
	for (i = 0; buf[i]; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	fprintf(stderr, "%s: %s\n", PROG, buf);
}

int mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];
	size_t n = strlen(path);
	char *p;

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, mode) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* atomic replace: write path.tmp then rename */
int write_file(const char *path, const char *data, size_t n)
{
	char tmp[4200];
	int fd;
	ssize_t w;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (n) {
		w = write(fd, data, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			close(fd);
			unlink(tmp);
			return e;
		}
		data += w;
		n -= (size_t)w;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	return 0;
}

char *read_file_str(const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;
	size_t len = 0;
	ssize_t r;

	if (fd < 0)
		return NULL;
	buf = malloc(max + 1);
	if (!buf) {
		close(fd);
		return NULL;
	}
	while (len < max && (r = read(fd, buf + len, max - len)) > 0)
		len += (size_t)r;
	close(fd);
	buf[len] = 0;
	return buf;
}

void kernel_release(char *buf, size_t n)
{
	struct utsname u;

	if (uname(&u) == 0)
		snprintf(buf, n, "%s", u.release);
	else
		snprintf(buf, n, "unknown");
}

static uint64_t clk(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t now_realtime_ns(void)
{
	return clk(CLOCK_REALTIME);
}

uint64_t now_boottime_ns(void)
{
	return clk(CLOCK_BOOTTIME);
}

void fmt_ts(char out[40], uint64_t ns)
{
	/* every record has a timestamp: the date and time of day are formatted once per second
	 * (gmtime_r + strftime were ~3 % of the agent's CPU), the nanoseconds by hand */
	static __thread time_t last_s = (time_t)-1;
	static __thread char prefix[32];
	static __thread size_t plen;
	time_t s = (time_t)(ns / 1000000000ull);
	unsigned frac = (unsigned)(ns % 1000000000ull);

	if (s != last_s) {
		struct tm tm;

		gmtime_r(&s, &tm);
		plen = strftime(prefix, sizeof(prefix), "%Y-%m-%dT%H:%M:%S", &tm);
		last_s = s;
	}
	memcpy(out, prefix, plen);
	out[plen] = '.';
	for (int i = 9; i >= 1; i--, frac /= 10)
		out[plen + i] = (char)('0' + frac % 10);
	out[plen + 10] = 'Z';
	out[plen + 11] = 0;
}

void fmt_addr(char *out, size_t n, int family, const uint8_t *addr)
{
	if (!inet_ntop(family == 10 ? AF_INET6 : AF_INET, addr, out, (socklen_t)n))
		snprintf(out, n, "?");
}

int pid_alive(pid_t pid)
{
	char path[64], *s, *p;
	int alive;

	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	/* a zombie is not alive */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	s = read_file_str(path, 512);
	if (!s)
		return 0;
	p = strrchr(s, ')');
	alive = !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
	free(s);
	return alive;
}
