/*
 * Field arithmetic mod p = 2^255 - 19, radix 2^51 (five 64-bit limbs, 128-bit products).
 *
 * Header-only so the compiler inlines it into the group and verification code. Limbs are
 * kept loosely reduced: fe_mul/fe_sq/fe_sub/fe_carry return limbs < 2^51 + 2^13; inputs to
 * fe_mul/fe_sq may have limbs up to 2^54 (fe_add of two reduced values is fine). Only
 * fe_tobytes and the predicates built on it produce the canonical value.
 */
#ifndef TKA_FE_H
#define TKA_FE_H

#include <stdint.h>
#include <string.h>

__extension__ typedef unsigned __int128 tka_u128;

typedef struct {
    uint64_t v[5];
} fe;

#define FE_MASK51 ((uint64_t)0x7ffffffffffffULL)

static const fe FE_ZERO = {{0, 0, 0, 0, 0}};
static const fe FE_ONE = {{1, 0, 0, 0, 0}};
/* d = -121665/121666, 2d, and sqrt(-1) = 2^((p-1)/4). */
static const fe FE_D = {{0x34dca135978a3ULL, 0x1a8283b156ebdULL, 0x5e7a26001c029ULL,
                         0x739c663a03cbbULL, 0x52036cee2b6ffULL}};
static const fe FE_D2 = {{0x69b9426b2f159ULL, 0x35050762add7aULL, 0x3cf44c0038052ULL,
                          0x6738cc7407977ULL, 0x2406d9dc56dffULL}};
static const fe FE_SQRTM1 = {{0x61b274a0ea0b0ULL, 0xd5a5fc8f189dULL, 0x7ef5e9cbd0c60ULL,
                              0x78595a6804c9eULL, 0x2b8324804fc1dULL}};

static inline void fe_carry(fe *h) {
    uint64_t c;
    c = h->v[0] >> 51; h->v[0] &= FE_MASK51; h->v[1] += c;
    c = h->v[1] >> 51; h->v[1] &= FE_MASK51; h->v[2] += c;
    c = h->v[2] >> 51; h->v[2] &= FE_MASK51; h->v[3] += c;
    c = h->v[3] >> 51; h->v[3] &= FE_MASK51; h->v[4] += c;
    c = h->v[4] >> 51; h->v[4] &= FE_MASK51; h->v[0] += 19 * c;
}

static inline void fe_add(fe *h, const fe *f, const fe *g) {
    for (int i = 0; i < 5; i++) h->v[i] = f->v[i] + g->v[i];
}

/* h = f - g, computed as f + 4p - g so no limb underflows (g limbs < 2^53). */
static inline void fe_sub(fe *h, const fe *f, const fe *g) {
    h->v[0] = (f->v[0] + 0x1fffffffffffb4ULL) - g->v[0];
    h->v[1] = (f->v[1] + 0x1ffffffffffffcULL) - g->v[1];
    h->v[2] = (f->v[2] + 0x1ffffffffffffcULL) - g->v[2];
    h->v[3] = (f->v[3] + 0x1ffffffffffffcULL) - g->v[3];
    h->v[4] = (f->v[4] + 0x1ffffffffffffcULL) - g->v[4];
    fe_carry(h);
}

static inline void fe_neg(fe *h, const fe *f) { fe_sub(h, &FE_ZERO, f); }

static inline void fe_reduce_wide(fe *h, tka_u128 r0, tka_u128 r1, tka_u128 r2, tka_u128 r3,
                                  tka_u128 r4) {
    /* With input limbs < 2^54 every r_i < 2^115, so each carry fits in 64 bits, and the top
     * carry (r4 has no factor 19) is < 2^60, so 19 times it fits too. */
    r1 += (uint64_t)(r0 >> 51);
    r2 += (uint64_t)(r1 >> 51);
    r3 += (uint64_t)(r2 >> 51);
    r4 += (uint64_t)(r3 >> 51);
    uint64_t h0 = ((uint64_t)r0 & FE_MASK51) + 19 * (uint64_t)(r4 >> 51);
    h->v[1] = ((uint64_t)r1 & FE_MASK51) + (h0 >> 51);
    h->v[0] = h0 & FE_MASK51;
    h->v[2] = (uint64_t)r2 & FE_MASK51;
    h->v[3] = (uint64_t)r3 & FE_MASK51;
    h->v[4] = (uint64_t)r4 & FE_MASK51;
}

static inline void fe_mul(fe *h, const fe *f, const fe *g) {
    const uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    const uint64_t g0 = g->v[0], g1 = g->v[1], g2 = g->v[2], g3 = g->v[3], g4 = g->v[4];
    const uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
    tka_u128 r0 = (tka_u128)f0 * g0 + (tka_u128)f1 * g4_19 + (tka_u128)f2 * g3_19 +
                  (tka_u128)f3 * g2_19 + (tka_u128)f4 * g1_19;
    tka_u128 r1 = (tka_u128)f0 * g1 + (tka_u128)f1 * g0 + (tka_u128)f2 * g4_19 +
                  (tka_u128)f3 * g3_19 + (tka_u128)f4 * g2_19;
    tka_u128 r2 = (tka_u128)f0 * g2 + (tka_u128)f1 * g1 + (tka_u128)f2 * g0 +
                  (tka_u128)f3 * g4_19 + (tka_u128)f4 * g3_19;
    tka_u128 r3 = (tka_u128)f0 * g3 + (tka_u128)f1 * g2 + (tka_u128)f2 * g1 +
                  (tka_u128)f3 * g0 + (tka_u128)f4 * g4_19;
    tka_u128 r4 = (tka_u128)f0 * g4 + (tka_u128)f1 * g3 + (tka_u128)f2 * g2 +
                  (tka_u128)f3 * g1 + (tka_u128)f4 * g0;
    fe_reduce_wide(h, r0, r1, r2, r3, r4);
}

static inline void fe_sq(fe *h, const fe *f) {
    const uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    const uint64_t f0_2 = 2 * f0, f1_2 = 2 * f1;
    const uint64_t f3_19 = 19 * f3, f4_19 = 19 * f4;
    tka_u128 r0 = (tka_u128)f0 * f0 + (tka_u128)f1_2 * f4_19 + (tka_u128)(2 * f2) * f3_19;
    tka_u128 r1 = (tka_u128)f0_2 * f1 + (tka_u128)(2 * f2) * f4_19 + (tka_u128)f3 * f3_19;
    tka_u128 r2 = (tka_u128)f0_2 * f2 + (tka_u128)f1 * f1 + (tka_u128)(2 * f3) * f4_19;
    tka_u128 r3 = (tka_u128)f0_2 * f3 + (tka_u128)f1_2 * f2 + (tka_u128)f4 * f4_19;
    tka_u128 r4 = (tka_u128)f0_2 * f4 + (tka_u128)f1_2 * f3 + (tka_u128)f2 * f2;
    fe_reduce_wide(h, r0, r1, r2, r3, r4);
}

static inline void fe_sqn(fe *h, const fe *f, int n) {
    fe_sq(h, f);
    for (int i = 1; i < n; i++) fe_sq(h, h);
}

/* Bit 255 is ignored, and values in [p, 2^255) are accepted: they stay congruent mod p,
 * which is exactly the lenient decoding ZIP-215 and Go's SetBytes ask for. */
static inline void fe_frombytes(fe *h, const uint8_t s[32]) {
    uint64_t w[4];
    for (int i = 0; i < 4; i++) {
        uint64_t x = 0;
        for (int j = 7; j >= 0; j--) x = (x << 8) | s[8 * i + j];
        w[i] = x;
    }
    h->v[0] = w[0] & FE_MASK51;
    h->v[1] = ((w[0] >> 51) | (w[1] << 13)) & FE_MASK51;
    h->v[2] = ((w[1] >> 38) | (w[2] << 26)) & FE_MASK51;
    h->v[3] = ((w[2] >> 25) | (w[3] << 39)) & FE_MASK51;
    h->v[4] = (w[3] >> 12) & FE_MASK51;
}

/* Canonical little-endian encoding (value fully reduced mod p, bit 255 clear). */
static inline void fe_tobytes(uint8_t s[32], const fe *f) {
    fe h = *f;
    fe_carry(&h);
    fe_carry(&h);
    /* Now h < 2^255 + small; q = 1 exactly when h >= p. */
    uint64_t q = (h.v[0] + 19) >> 51;
    q = (h.v[1] + q) >> 51;
    q = (h.v[2] + q) >> 51;
    q = (h.v[3] + q) >> 51;
    q = (h.v[4] + q) >> 51;
    h.v[0] += 19 * q;
    uint64_t c;
    c = h.v[0] >> 51; h.v[0] &= FE_MASK51; h.v[1] += c;
    c = h.v[1] >> 51; h.v[1] &= FE_MASK51; h.v[2] += c;
    c = h.v[2] >> 51; h.v[2] &= FE_MASK51; h.v[3] += c;
    c = h.v[3] >> 51; h.v[3] &= FE_MASK51; h.v[4] += c;
    h.v[4] &= FE_MASK51;
    uint64_t w[4];
    w[0] = h.v[0] | (h.v[1] << 51);
    w[1] = (h.v[1] >> 13) | (h.v[2] << 38);
    w[2] = (h.v[2] >> 26) | (h.v[3] << 25);
    w[3] = (h.v[3] >> 39) | (h.v[4] << 12);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) s[8 * i + j] = (uint8_t)(w[i] >> (8 * j));
}

static inline int fe_is_zero(const fe *f) {
    uint8_t s[32];
    fe_tobytes(s, f);
    uint8_t acc = 0;
    for (int i = 0; i < 32; i++) acc |= s[i];
    return acc == 0;
}

static inline int fe_is_negative(const fe *f) {
    uint8_t s[32];
    fe_tobytes(s, f);
    return s[0] & 1;
}

static inline int fe_equal(const fe *f, const fe *g) {
    fe d;
    fe_sub(&d, f, g);
    return fe_is_zero(&d);
}

/* z^(2^250 - 1), and z^11 on the side: the shared prefix of inversion and square root. */
static inline void fe_pow2_250_1(fe *out, fe *z11, const fe *z) {
    fe z2, z9, t, z5, z10, z20, z50, z100;
    fe_sq(&z2, z);
    fe_sqn(&t, &z2, 2);
    fe_mul(&z9, &t, z);
    fe_mul(z11, &z9, &z2);
    fe_sq(&t, z11);
    fe_mul(&z5, &t, &z9); /* 2^5 - 1 */
    fe_sqn(&t, &z5, 5);
    fe_mul(&z10, &t, &z5); /* 2^10 - 1 */
    fe_sqn(&t, &z10, 10);
    fe_mul(&z20, &t, &z10); /* 2^20 - 1 */
    fe_sqn(&t, &z20, 20);
    fe_mul(&t, &t, &z20); /* 2^40 - 1 */
    fe_sqn(&t, &t, 10);
    fe_mul(&z50, &t, &z10); /* 2^50 - 1 */
    fe_sqn(&t, &z50, 50);
    fe_mul(&z100, &t, &z50); /* 2^100 - 1 */
    fe_sqn(&t, &z100, 100);
    fe_mul(&t, &t, &z100); /* 2^200 - 1 */
    fe_sqn(&t, &t, 50);
    fe_mul(out, &t, &z50); /* 2^250 - 1 */
}

/* 1/z = z^(p-2) = z^(2^255 - 21). */
static inline void fe_invert(fe *out, const fe *z) {
    fe t, z11;
    fe_pow2_250_1(&t, &z11, z);
    fe_sqn(&t, &t, 5);
    fe_mul(out, &t, &z11);
}

/* z^((p-5)/8) = z^(2^252 - 3). */
static inline void fe_pow22523(fe *out, const fe *z) {
    fe t, z11;
    fe_pow2_250_1(&t, &z11, z);
    fe_sqn(&t, &t, 2);
    fe_mul(out, &t, z);
}

/* The same exponentiations on FE_LANES independent inputs at once. One dependent chain of
 * squarings leaves the multiplier idle most of the time; interleaving four chains keeps it
 * busy (about 30% faster per element on the development machine). */
#define FE_LANES 4

static inline void fe_sqn_lanes(fe *h, const fe *f, int n) {
    for (int j = 0; j < FE_LANES; j++) fe_sq(&h[j], &f[j]);
    for (int i = 1; i < n; i++)
        for (int j = 0; j < FE_LANES; j++) fe_sq(&h[j], &h[j]);
}

static inline void fe_mul_lanes(fe *h, const fe *f, const fe *g) {
    for (int j = 0; j < FE_LANES; j++) fe_mul(&h[j], &f[j], &g[j]);
}

/* out[j] = z[j]^((p-5)/8) for j < FE_LANES. */
static inline void fe_pow22523_lanes(fe *out, const fe *z) {
    fe z2[FE_LANES], z9[FE_LANES], z11[FE_LANES], t[FE_LANES], z5[FE_LANES], z10[FE_LANES];
    fe z20[FE_LANES], z50[FE_LANES], z100[FE_LANES];
    fe_sqn_lanes(z2, z, 1);
    fe_sqn_lanes(t, z2, 2);
    fe_mul_lanes(z9, t, z);
    fe_mul_lanes(z11, z9, z2);
    fe_sqn_lanes(t, z11, 1);
    fe_mul_lanes(z5, t, z9);
    fe_sqn_lanes(t, z5, 5);
    fe_mul_lanes(z10, t, z5);
    fe_sqn_lanes(t, z10, 10);
    fe_mul_lanes(z20, t, z10);
    fe_sqn_lanes(t, z20, 20);
    fe_mul_lanes(t, t, z20);
    fe_sqn_lanes(t, t, 10);
    fe_mul_lanes(z50, t, z10);
    fe_sqn_lanes(t, z50, 50);
    fe_mul_lanes(z100, t, z50);
    fe_sqn_lanes(t, z100, 100);
    fe_mul_lanes(t, t, z100);
    fe_sqn_lanes(t, t, 50);
    fe_mul_lanes(t, t, z50);
    fe_sqn_lanes(t, t, 2);
    fe_mul_lanes(out, t, z);
}

#endif
