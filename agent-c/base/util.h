/* Messages, files, clocks, addresses (agent-c/base/util.c). */
#ifndef DPNDNCY_BASE_UTIL_H
#define DPNDNCY_BASE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

void err_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int mkdir_p(const char *path, mode_t mode);
int write_file(const char *path, const char *data, size_t n);
char *read_file_str(const char *path, size_t max);
void kernel_release(char *buf, size_t n);
uint64_t now_realtime_ns(void);
uint64_t now_boottime_ns(void);
void fmt_ts(char out[40], uint64_t realtime_ns);
void fmt_addr(char *out, size_t n, int family, const uint8_t *addr);
int pid_alive(pid_t pid);

#endif
