/* The NDJSON log: numbered lines, hashed as written (agent-c/base/output.c). */
#ifndef DPNDNCY_BASE_OUTPUT_H
#define DPNDNCY_BASE_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"

struct output {
	int fd;
	char path[4096];
	uint64_t seq;            /* next line index */
	uint64_t bytes;          /* bytes in the file (= hashed) */
	uint64_t lost_lines;     /* lines that failed to reach the file */
	int last_errno;
	struct sbuf buf;         /* pending complete lines */
	uint64_t buf_lines;
	uint64_t buf_kind[8];    /* pending lines per kind (index given to out_commit) */
	uint64_t kind_written[8];/* lines per kind that reached the file */
	void *sha;               /* SHA2_CTX */
};
int out_open(struct output *o, const char *path, int truncate, char *errbuf, size_t errn);
/* start a line: writes {"v":1,"kind":...,"ts":...,"seq":N */
void out_begin(struct output *o, struct sbuf *line, const char *kind, uint64_t real_ns);
void out_commit(struct output *o, struct sbuf *line, unsigned kind);
int out_flush(struct output *o);
void out_sha_hex(struct output *o, char hex[65]);
void out_close(struct output *o);

#endif
