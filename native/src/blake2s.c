/*
 * BLAKE2s-256 (RFC 7693), unkeyed with the default parameter block: the hash of AUMs and
 * node-key signatures (docs/format.md §4). Our own implementation, free of library
 * dependencies; the bulk peer verifier hashes its many short messages eight at a time in
 * blake2s_x8.c, and falls back to this code without AVX2.
 */
#include "blake2s.h"

#include <string.h>

#include "tka_native.h"

/* The SHA-256 initial values, as RFC 7693 §2.6 prescribes. */
const uint32_t BLAKE2S_IV[8] = {
    0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
    0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
};

/* Message word schedule, RFC 7693 §2.7 (ten rounds). */
const uint8_t BLAKE2S_SIGMA[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

static inline uint32_t rotr32(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

#define G(a, b, c, d, x, y)            \
    do {                               \
        v[a] = v[a] + v[b] + (x);      \
        v[d] = rotr32(v[d] ^ v[a], 16); \
        v[c] = v[c] + v[d];            \
        v[b] = rotr32(v[b] ^ v[c], 12); \
        v[a] = v[a] + v[b] + (y);      \
        v[d] = rotr32(v[d] ^ v[a], 8);  \
        v[c] = v[c] + v[d];            \
        v[b] = rotr32(v[b] ^ v[c], 7);  \
    } while (0)

static void compress(blake2s_ctx *ctx, const uint8_t block[64], int last) {
    uint32_t m[16], v[16];
    for (int i = 0; i < 16; i++) m[i] = load_le32(block + 4 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = ctx->h[i];
        v[i + 8] = BLAKE2S_IV[i];
    }
    v[12] ^= ctx->t[0];
    v[13] ^= ctx->t[1];
    if (last) v[14] = ~v[14];
    BLAKE2S_ROUNDS(G, m);
    for (int i = 0; i < 8; i++) ctx->h[i] ^= v[i] ^ v[i + 8];
}

static void add_to_counter(blake2s_ctx *ctx, uint32_t n) {
    ctx->t[0] += n;
    if (ctx->t[0] < n) ctx->t[1]++;
}

void blake2s_init(blake2s_ctx *ctx) {
    memcpy(ctx->h, BLAKE2S_IV, sizeof ctx->h);
    /* Parameter block word 0: digest length 32, no key, fanout 1, depth 1. */
    ctx->h[0] ^= 0x01010000u ^ 32u;
    ctx->t[0] = ctx->t[1] = 0;
    ctx->buf_len = 0;
}

void blake2s_update(blake2s_ctx *ctx, const uint8_t *data, size_t len) {
    while (len > 0) {
        /* A full buffer is compressed only once more input arrives: the final block must
         * be compressed with the last-block flag, so it is never compressed early. */
        if (ctx->buf_len == sizeof ctx->buf) {
            add_to_counter(ctx, 64);
            compress(ctx, ctx->buf, 0);
            ctx->buf_len = 0;
        }
        size_t take = sizeof ctx->buf - ctx->buf_len;
        if (take > len) take = len;
        memcpy(ctx->buf + ctx->buf_len, data, take);
        ctx->buf_len += take;
        data += take;
        len -= take;
    }
}

void blake2s_final(blake2s_ctx *ctx, uint8_t out[32]) {
    add_to_counter(ctx, (uint32_t)ctx->buf_len);
    memset(ctx->buf + ctx->buf_len, 0, sizeof ctx->buf - ctx->buf_len);
    compress(ctx, ctx->buf, 1);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)ctx->h[i];
        out[4 * i + 1] = (uint8_t)(ctx->h[i] >> 8);
        out[4 * i + 2] = (uint8_t)(ctx->h[i] >> 16);
        out[4 * i + 3] = (uint8_t)(ctx->h[i] >> 24);
    }
}

void tka_blake2s(const uint8_t *data, size_t len, uint8_t out[32]) {
    blake2s_ctx ctx;
    blake2s_init(&ctx);
    blake2s_update(&ctx, data, len);
    blake2s_final(&ctx, out);
}
