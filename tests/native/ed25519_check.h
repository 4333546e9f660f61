/* Shared by the C tests of the Ed25519 core: a CHECK macro that counts failures, a seeded
 * xorshift generator, the group order's bytes, and the small-order encodings (canonical and
 * not: y >= p, x = -0), and point equality. Define TEST_SEED before including it to give a test its own seed. */
#ifndef TKA_TEST_ED25519_CHECK_H
#define TKA_TEST_ED25519_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ge.h"

#define TEST_UNUSED __attribute__((unused))

static int failures = 0;
#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                              \
        }                                                                            \
    } while (0)

#ifndef TEST_SEED
#define TEST_SEED 0x9e3779b97f4a7c15ULL
#endif
static uint64_t rng = TEST_SEED;

static inline uint64_t rnd64(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static inline void rnd_bytes(uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(rnd64() >> 32);
}

static const uint8_t L_BYTES[32] TEST_UNUSED = {
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};

static const char *const SMALL_HEX[] TEST_UNUSED = {
    "0100000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
};
#define N_SMALL (sizeof SMALL_HEX / sizeof SMALL_HEX[0])

/* 32 bytes from 64 hex digits. */
static inline void unhex(uint8_t *out, const char *hex) {
    for (size_t i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* The same group element (compared by encoding). */
static inline int same_point(const ge_p3 *x, const ge_p3 *y) {
    uint8_t ex[32], ey[32];
    ge_tobytes(ex, x);
    ge_tobytes(ey, y);
    return memcmp(ex, ey, 32) == 0;
}

/* main's exit status: 1 and the count if anything failed, else "ok". */
static inline int test_report(void) {
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}

#endif
