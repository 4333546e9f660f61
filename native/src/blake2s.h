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

/* RFC 7693's initial values (SHA-256's) and message schedule, shared with blake2s_x8.c. */
extern const uint32_t BLAKE2S_IV[8];
extern const uint8_t BLAKE2S_SIGMA[10][16];

/* The ten rounds over the caller's state v[16] and message words m[16], G(a, b, c, d, x, y)
 * being the quarter-round for its word type (a 32-bit word, or a vector of eight). Unrolled,
 * the schedule's indices are constants (scalar: 155 -> 135 ns a block, Zen 4). */
#if defined(__clang__)
#define BLAKE2S_UNROLL _Pragma("unroll")
#else
#define BLAKE2S_UNROLL _Pragma("GCC unroll 10")
#endif
#define BLAKE2S_ROUNDS(G, m)                                 \
    BLAKE2S_UNROLL                                           \
    for (int r_ = 0; r_ < 10; r_++) {                        \
        const uint8_t *s_ = BLAKE2S_SIGMA[r_];               \
        G(0, 4, 8, 12, (m)[s_[0]], (m)[s_[1]]);              \
        G(1, 5, 9, 13, (m)[s_[2]], (m)[s_[3]]);              \
        G(2, 6, 10, 14, (m)[s_[4]], (m)[s_[5]]);             \
        G(3, 7, 11, 15, (m)[s_[6]], (m)[s_[7]]);             \
        G(0, 5, 10, 15, (m)[s_[8]], (m)[s_[9]]);             \
        G(1, 6, 11, 12, (m)[s_[10]], (m)[s_[11]]);           \
        G(2, 7, 8, 13, (m)[s_[12]], (m)[s_[13]]);            \
        G(3, 4, 9, 14, (m)[s_[14]], (m)[s_[15]]);            \
    }

void blake2s_init(blake2s_ctx *ctx);
void blake2s_update(blake2s_ctx *ctx, const uint8_t *data, size_t len);
void blake2s_final(blake2s_ctx *ctx, uint8_t out[32]);

/* out[j] = BLAKE2s-256(msg[j][0..len[j])) for j < count (1..8), in AVX2 lanes where the CPU has
 * them (blake2s_x8.c). */
void blake2s_x8(uint8_t out[][32], const uint8_t *const msg[8], const size_t len[8], int count);

#endif
