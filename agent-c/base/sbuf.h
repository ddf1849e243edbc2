/* A growable byte buffer and the JSON writers (agent-c/base/sbuf.c). */
#ifndef DPNDNCY_BASE_SBUF_H
#define DPNDNCY_BASE_SBUF_H

#include <stddef.h>
#include <stdint.h>

struct sbuf {
	char *p;
	size_t len, cap;
};
void sb_init(struct sbuf *b);
void sb_free(struct sbuf *b);
void sb_reset(struct sbuf *b);
void sb_putc(struct sbuf *b, char c);
void sb_put(struct sbuf *b, const void *s, size_t n);
void sb_puts(struct sbuf *b, const char *s);
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_put_u64(struct sbuf *b, uint64_t v);
void sb_key_u64(struct sbuf *b, const char *key_colon, size_t klen, uint64_t v);
/* sb_key_u64 with a string literal key: SB_KEY_U64(b, ",\"pid\":", pid) */
#define SB_KEY_U64(b, lit, v) sb_key_u64((b), (lit), sizeof(lit) - 1, (uint64_t)(v))
/* JSON string with quotes; arbitrary bytes: invalid UTF-8 -> \u00XX */
void sb_json_str(struct sbuf *b, const char *s, size_t n);
void sb_json_cstr(struct sbuf *b, const char *s);
/* "key": prefix with a leading comma */
void sb_key(struct sbuf *b, const char *key);

#endif
