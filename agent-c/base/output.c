/*
 * The NDJSON log. Lines are built whole, buffered, and written in chunks.
 * The running SHA-256 covers exactly the bytes that reached the file. A
 * chunk that fails (disk full, I/O error) is cut back off the file so no
 * half line remains; its lines are counted as lost and the agent carries on.
 */
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "base/sha256.h"
#include "base/output.h"

#define FLUSH_AT (256 * 1024)

int out_open(struct output *o, const char *path, int truncate, char *errbuf, size_t errn)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND);

	memset(o, 0, sizeof(*o));
	o->fd = -1;
	snprintf(o->path, sizeof(o->path), "%s", path);
	o->fd = open(path, flags, 0644);
	if (o->fd < 0) {
		snprintf(errbuf, errn, "cannot open log %s for writing: %s", path, strerror(errno));
		return -1;
	}
	o->sha = calloc(1, sizeof(struct sha256));
	if (!o->sha) {
		close(o->fd);
		o->fd = -1;
		snprintf(errbuf, errn, "out of memory");
		return -1;
	}
	sha256_init((struct sha256 *)o->sha);
	sb_init(&o->buf);
	return 0;
}

void out_begin(struct output *o, struct sbuf *line, const char *kind, uint64_t real_ns)
{
	char ts[40];

	fmt_ts(ts, real_ns);
	sb_reset(line);
	sb_puts(line, "{\"v\":1,\"kind\":\"");
	sb_puts(line, kind);
	sb_puts(line, "\",\"ts\":\"");
	sb_puts(line, ts);
	sb_putc(line, '"');
	SB_KEY_U64(line, ",\"seq\":", o->seq++);
}

void out_commit(struct output *o, struct sbuf *line, unsigned kind)
{
	sb_put(&o->buf, line->p, line->len);
	sb_put(&o->buf, "}\n", 2);
	o->buf_lines++;
	o->buf_kind[kind & 7]++;
	if (o->buf.len >= FLUSH_AT)
		out_flush(o);
}

int out_flush(struct output *o)
{
	size_t done = 0;
	ssize_t w;

	if (o->buf.len == 0)
		return 0;
	if (o->fd < 0)
		goto lost;
	while (done < o->buf.len) {
		w = write(o->fd, o->buf.p + done, o->buf.len - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			o->last_errno = errno;
			/* no half lines: cut the file back to the last complete chunk */
			if (done && ftruncate(o->fd, (off_t)o->bytes) == 0)
				lseek(o->fd, (off_t)o->bytes, SEEK_SET);
			else if (done)
				/* could not cut: keep the hash honest about what is in the file */
				sha256_update((struct sha256 *)o->sha, o->buf.p, done), o->bytes += done;
			goto lost;
		}
		done += (size_t)w;
	}
	sha256_update((struct sha256 *)o->sha, o->buf.p, o->buf.len);
	o->bytes += o->buf.len;
	for (int k = 0; k < 8; k++) {
		o->kind_written[k] += o->buf_kind[k];
		o->buf_kind[k] = 0;
	}
	o->buf_lines = 0;
	sb_reset(&o->buf);
	return 0;
lost:
	o->lost_lines += o->buf_lines;
	memset(o->buf_kind, 0, sizeof(o->buf_kind));
	o->buf_lines = 0;
	sb_reset(&o->buf);
	return -1;
}

void out_sha_hex(struct output *o, char hex[65])
{
	sha256_hex((const struct sha256 *)o->sha, hex);
}

void out_close(struct output *o)
{
	out_flush(o);
	if (o->fd >= 0) {
		fsync(o->fd);
		close(o->fd);
		o->fd = -1;
	}
	free(o->sha);
	o->sha = NULL;
	sb_free(&o->buf);
}
