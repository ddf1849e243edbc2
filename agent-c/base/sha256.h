/* SHA-256 of the log: the CPU's SHA instructions where it has them (x86, arm64), libmd elsewhere. */
#ifndef DPNDNCY_SHA256_H
#define DPNDNCY_SHA256_H
#include <stddef.h>
#include <stdint.h>

struct sha256 {
	uint32_t h[8];
	uint64_t bytes;    /* total fed */
	uint8_t buf[64];   /* a partial block */
	size_t n;          /* bytes in buf */
};

void sha256_init(struct sha256 *c);
void sha256_update(struct sha256 *c, const void *p, size_t n);
/* the digest of what was fed so far; c is left as it was (the log keeps hashing) */
void sha256_digest(const struct sha256 *c, uint8_t out[32]);
void sha256_hex(const struct sha256 *c, char hex[65]);
/* "sha-ni", "armv8-sha2" or "portable": which block function this process uses */
const char *sha256_impl(void);

#endif
