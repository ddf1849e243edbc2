/*
 * SHA-256 for the log hash. Hashing every byte of the log was the largest single cost of
 * writing an event (40 % of the agent's CPU in a file-event flood, with libmd's portable
 * block function). Where the CPU has the SHA extensions (x86-64 Intel since Goldmont/Ice
 * Lake, AMD since Zen), blocks go through sha256rnds2/msg1/msg2, several times faster;
 * on arm64 with the ARMv8 SHA2 instructions likewise; elsewhere through libmd's
 * SHA256Transform. The choice is made once, and only after the
 * fast path reproduces a known digest, so a wrong fast path can never sign a wrong hash.
 */
#include <sha2.h>
#include <stdlib.h>
#include <string.h>

#include "base/sha256.h"

typedef void (*blocks_fn)(uint32_t h[8], const uint8_t *p, size_t nblocks);

static void blocks_portable(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
	for (; nblocks; nblocks--, p += 64)
		SHA256Transform(h, p);
}

#if defined(__x86_64__) || defined(__aarch64__)
static const uint32_t K[64] __attribute__((aligned(16))) = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
#endif

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>


/*
 * The SHA extensions keep the state as two vectors, ABEF and CDGH. Each group of four rounds
 * j takes message words w[4j..4j+3]; for j >= 4 they are computed from the four groups before
 * (msg1 adds sigma0, alignr brings w[t-7], msg2 adds sigma1), kept in a ring of four vectors.
 */
__attribute__((target("sha,sse4.1,ssse3")))
static void blocks_shani(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i t = _mm_loadu_si128((const __m128i *)&h[0]);     /* a b c d */
	__m128i s1 = _mm_loadu_si128((const __m128i *)&h[4]);    /* e f g h */
	__m128i s0;

	t = _mm_shuffle_epi32(t, 0xB1);                          /* b a d c */
	s1 = _mm_shuffle_epi32(s1, 0x1B);                        /* h g f e */
	s0 = _mm_alignr_epi8(t, s1, 8);                          /* ABEF */
	s1 = _mm_blend_epi16(s1, t, 0xF0);                       /* CDGH */

	for (; nblocks; nblocks--, p += 64) {
		__m128i a0 = s0, c0 = s1, w[4], m;

		for (int i = 0; i < 4; i++)
			w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
		for (int j = 0; j < 16; j++) {
			if (j >= 4)
				w[j & 3] = _mm_sha256msg2_epu32(
					_mm_add_epi32(_mm_sha256msg1_epu32(w[j & 3], w[(j + 1) & 3]),
						      _mm_alignr_epi8(w[(j + 3) & 3], w[(j + 2) & 3], 4)),
					w[(j + 3) & 3]);
			m = _mm_add_epi32(w[j & 3], _mm_load_si128((const __m128i *)&K[4 * j]));
			s1 = _mm_sha256rnds2_epu32(s1, s0, m);
			m = _mm_shuffle_epi32(m, 0x0E);
			s0 = _mm_sha256rnds2_epu32(s0, s1, m);
		}
		s0 = _mm_add_epi32(s0, a0);
		s1 = _mm_add_epi32(s1, c0);
	}

	t = _mm_shuffle_epi32(s0, 0x1B);                         /* FEBA */
	s1 = _mm_shuffle_epi32(s1, 0xB1);                        /* DCHG */
	s0 = _mm_blend_epi16(t, s1, 0xF0);                       /* DCBA */
	s1 = _mm_alignr_epi8(s1, t, 8);                          /* HGFE */
	_mm_storeu_si128((__m128i *)&h[0], s0);
	_mm_storeu_si128((__m128i *)&h[4], s1);
}

static int cpu_has_sha(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
		return 0;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return 0;
	return (b >> 29) & 1; /* CPUID.(EAX=7,ECX=0):EBX.SHA */
}
#endif

#if defined(__aarch64__)
#include <arm_neon.h>
#include <sys/auxv.h>
#ifndef HWCAP_SHA2
#define HWCAP_SHA2 (1 << 6)
#endif

/* ARMv8 SHA2 instructions (Graviton, Ampere, Cobalt, Apple): the state stays ABCD / EFGH;
 * the message ring is as in the x86 version, su0 adding sigma0 and su1 the rest. */
__attribute__((target("+crypto")))
static void blocks_armv8(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
	uint32x4_t s0 = vld1q_u32(&h[0]), s1 = vld1q_u32(&h[4]);

	for (; nblocks; nblocks--, p += 64) {
		uint32x4_t a0 = s0, e0 = s1, w[4];

		for (int i = 0; i < 4; i++)
			w[i] = vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p + 16 * i)));
		for (int j = 0; j < 16; j++) {
			uint32x4_t wk, t;

			if (j >= 4)
				w[j & 3] = vsha256su1q_u32(vsha256su0q_u32(w[j & 3], w[(j + 1) & 3]), w[(j + 2) & 3],
							   w[(j + 3) & 3]);
			wk = vaddq_u32(w[j & 3], vld1q_u32(&K[4 * j]));
			t = s0;
			s0 = vsha256hq_u32(s0, s1, wk);
			s1 = vsha256h2q_u32(s1, t, wk);
		}
		s0 = vaddq_u32(s0, a0);
		s1 = vaddq_u32(s1, e0);
	}
	vst1q_u32(&h[0], s0);
	vst1q_u32(&h[4], s1);
}
#endif

static blocks_fn blocks;
static const char *impl = "portable";

static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

static void digest_with(blocks_fn f, const struct sha256 *c, uint8_t out[32]);

/* the fast path must give the portable path's digest of a multi-block message */
static int agrees(blocks_fn fast)
{
	static const char msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
				  "dpndncy: the log hash is what the attestation signs";
	struct sha256 c;
	uint8_t want[32], got[32];

	blocks = blocks_portable;
	sha256_init(&c);
	sha256_update(&c, msg, sizeof(msg) - 1);
	digest_with(blocks_portable, &c, want);
	blocks = fast;
	sha256_init(&c);
	sha256_update(&c, msg, sizeof(msg) - 1);
	digest_with(fast, &c, got);
	blocks = blocks_portable;
	return memcmp(want, got, 32) == 0;
}

static void choose(void)
{
	const char *force = getenv("DPNDNCY_SHA256"); /* "portable": tests both paths */
	int allowed = !(force && !strcmp(force, "portable"));

	blocks = blocks_portable;
#if defined(__x86_64__)
	if (allowed && cpu_has_sha() && agrees(blocks_shani)) {
		blocks = blocks_shani;
		impl = "sha-ni";
	}
#elif defined(__aarch64__)
	if (allowed && (getauxval(AT_HWCAP) & HWCAP_SHA2) && agrees(blocks_armv8)) {
		blocks = blocks_armv8;
		impl = "armv8-sha2";
	}
#endif
	(void)allowed;
}

const char *sha256_impl(void)
{
	if (!blocks)
		choose();
	return impl;
}

void sha256_init(struct sha256 *c)
{
	memcpy(c->h, H0, sizeof(H0));
	c->bytes = 0;
	c->n = 0;
}

void sha256_update(struct sha256 *c, const void *data, size_t n)
{
	const uint8_t *p = data;

	if (!blocks)
		choose();
	c->bytes += n;
	if (c->n) {
		size_t k = 64 - c->n < n ? 64 - c->n : n;

		memcpy(c->buf + c->n, p, k);
		c->n += k, p += k, n -= k;
		if (c->n < 64)
			return;
		blocks(c->h, c->buf, 1);
		c->n = 0;
	}
	if (n >= 64) {
		blocks(c->h, p, n / 64);
		p += n & ~(size_t)63;
		n &= 63;
	}
	memcpy(c->buf, p, n);
	c->n = n;
}

static void digest_with(blocks_fn f, const struct sha256 *c, uint8_t out[32])
{
	uint32_t h[8];
	uint8_t pad[128] = {0};
	size_t padlen = c->n < 56 ? 64 : 128;
	uint64_t bits = c->bytes * 8;

	memcpy(h, c->h, sizeof(h));
	memcpy(pad, c->buf, c->n);
	pad[c->n] = 0x80;
	for (int i = 0; i < 8; i++)
		pad[padlen - 1 - i] = (uint8_t)(bits >> (8 * i));
	f(h, pad, padlen / 64);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(h[i] >> 8);
		out[4 * i + 3] = (uint8_t)h[i];
	}
}

void sha256_digest(const struct sha256 *c, uint8_t out[32])
{
	if (!blocks)
		choose();
	digest_with(blocks, c, out);
}

void sha256_hex(const struct sha256 *c, char hex[65])
{
	static const char xd[] = "0123456789abcdef";
	uint8_t d[32];

	sha256_digest(c, d);
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = xd[d[i] >> 4];
		hex[2 * i + 1] = xd[d[i] & 15];
	}
	hex[64] = 0;
}
