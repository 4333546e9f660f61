/* BLAKE2s-256 (RFC 7693), unkeyed, internal interface. */
#ifndef TKA_BLAKE2S_H
#define TKA_BLAKE2S_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint32_t t[2];  /* bytes compressed so far, 64-bit counter in two words */
    uint8_t buf[64];
    size_t buf_len; /* 0..64: the last block is held back until final() */
} blake2s_ctx;

void blake2s_init(blake2s_ctx *ctx);
void blake2s_update(blake2s_ctx *ctx, const uint8_t *data, size_t len);
void blake2s_final(blake2s_ctx *ctx, uint8_t out[32]);

/* out[j] = BLAKE2s-256(msg[j][0..len[j])) for j < count (1..8), in AVX2 lanes where the CPU has
 * them (blake2s_x8.c). */
void blake2s_x8(uint8_t out[][32], const uint8_t *const msg[8], const size_t len[8], int count);

#endif
