/* SHA-512 (FIPS 180-4), internal interface. */
#ifndef TKA_SHA512_H
#define TKA_SHA512_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t state[8];
    uint64_t total_len; /* bytes absorbed so far (messages < 2^61 bytes) */
    uint8_t buf[128];
    size_t buf_len;
} sha512_ctx;

/* The 80 round constants of FIPS 180-4 (shared with the eight-lane code). */
extern const uint64_t sha512_round_constants[80];

void sha512_init(sha512_ctx *ctx);
void sha512_update(sha512_ctx *ctx, const uint8_t *data, size_t len);
void sha512_final(sha512_ctx *ctx, uint8_t out[64]);

#endif
