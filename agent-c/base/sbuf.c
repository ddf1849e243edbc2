/* Growable buffer and JSON string escaping: every line must be valid JSON
 * whatever bytes the kernel hands us (argv, comm, paths, DNS names). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "base/sbuf.h"

void sb_init(struct sbuf *b)
{
	b->p = NULL;
	b->len = b->cap = 0;
}

void sb_free(struct sbuf *b)
{
	free(b->p);
	sb_init(b);
}

void sb_reset(struct sbuf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = 0;
}

static void sb_grow_slow(struct sbuf *b, size_t need)
{
	size_t cap;
	char *np;

	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np) {
		/* out of memory: nothing sensible to do in a logging agent */
		abort();
	}
	b->p = np;
	b->cap = cap;
}

/* inline check, out-of-line growth: every put of every record passes here */
static inline void sb_grow(struct sbuf *b, size_t extra)
{
	size_t need = b->len + extra + 1;

	if (__builtin_expect(need > b->cap, 0))
		sb_grow_slow(b, need);
}

void sb_put(struct sbuf *b, const void *s, size_t n)
{
	sb_grow(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

void sb_putc(struct sbuf *b, char c)
{
	sb_grow(b, 1);
	b->p[b->len++] = c;
	b->p[b->len] = 0;
}

void sb_puts(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	sb_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* length of a valid UTF-8 sequence at s (max n bytes), 0 if invalid */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len, i;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0; /* overlong or surrogate */
	return len;
}

void sb_json_str(struct sbuf *b, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	sb_grow(b, n + 2);
	b->p[b->len++] = '"';
	while (i < n) {
		unsigned char c = s[i];
		size_t l, run;

		/* the common case, a run of printable ASCII that needs no escape: one copy */
		for (run = i; run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\'; run++)
			;
		if (run > i) {
			sb_put(b, s + i, run - i);
			i = run;
			continue;
		}
		if (c == '"' || c == '\\') {
			sb_putc(b, '\\');
			sb_putc(b, (char)c);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			switch (c) {
			case '\n': sb_puts(b, "\\n"); break;
			case '\r': sb_puts(b, "\\r"); break;
			case '\t': sb_puts(b, "\\t"); break;
			case '\b': sb_puts(b, "\\b"); break;
			case '\f': sb_puts(b, "\\f"); break;
			default: sb_printf(b, "\\u%04x", c); break;
			}
			i++;
		} else if (c < 0x80) {
			sb_putc(b, (char)c);
			i++;
		} else if ((l = utf8_len(s + i, n - i)) > 0) {
			sb_put(b, s + i, l);
			i += l;
		} else {
			/* invalid UTF-8 byte: keep its value visible as U+00XX */
			sb_printf(b, "\\u%04x", c);
			i++;
		}
	}
	sb_putc(b, '"');
}

void sb_json_cstr(struct sbuf *b, const char *s)
{
	sb_json_str(b, s, strlen(s));
}

void sb_key(struct sbuf *b, const char *key)
{
	sb_putc(b, ',');
	sb_putc(b, '"');
	sb_puts(b, key);
	sb_puts(b, "\":");
}

/* decimal without printf: the header of every record is mostly numbers (vfprintf was ~30 %
 * of the agent's CPU per event) */
void sb_put_u64(struct sbuf *b, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sb_put(b, tmp + sizeof(tmp) - n, (size_t)n);
}

/* ,"key":<v> (key given with its quotes and colon, e.g. ",\"pid\":") */
void sb_key_u64(struct sbuf *b, const char *key_colon, size_t klen, uint64_t v)
{
	sb_put(b, key_colon, klen);
	sb_put_u64(b, v);
}
