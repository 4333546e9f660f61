/* Ed25519 challenges k = SHA-512(R || A || M) mod L for eight signatures at once. */
#ifndef TKA_SHA512_X8_H
#define TKA_SHA512_X8_H

#include <stddef.h>
#include <stdint.h>

#include "sc.h"

/* Longest message whose challenge input (64 + len bytes, padding, 16-byte length) fits one
 * SHA-512 block; tailnet lock signs 32-byte digests. */
#define SHA512_X8_MAX_MSG 47

/* k[j] = SHA-512(r[j] || a[j] || msg[j]) mod L for j < lanes (lanes <= 8), exactly as
 * ed25519_challenge computes each. Eight one-block messages run in the lanes of AVX-512
 * vectors where the CPU has them (the same gate as the IFMA field code, so
 * TKA_NATIVE_NO_IFMA=1 also selects the portable path here); anything else is hashed one
 * at a time. */
void ed25519_challenge_x8(sc k[8], const uint8_t *const r[8], const uint8_t *const a[8],
                          const uint8_t *const msg[8], const size_t msg_len[8], size_t lanes);

/* The lane compression itself, for tests: out[j] = SHA-512 of the one-block message
 * blocks[j] (already padded). Returns 0 without touching out when the CPU lacks AVX-512F. */
int sha512_x8_oneblock(uint8_t out[8][64], const uint8_t blocks[8][128]);

#endif
