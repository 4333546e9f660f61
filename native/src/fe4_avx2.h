/*
 * Four-lane field arithmetic mod 2^255 - 19 on AVX2 (ge_x4_avx2.c): ten limbs in
 * radix 2^25.5 (26, 25, 26, ... bits), limb k in vector k, one field element per 64-bit lane.
 * AVX2 has no 52-bit multiplier, only 32x32 -> 64 (vpmuludq). Two limbs of this radix are
 * exactly one limb of fe.h's radix 2^51, so converting is a shift and a mask.
 *
 * Bounds: after fe4_carry even limbs are below 2^26, odd ones below 2^25 + 2^18 ("carried").
 * vpmuludq ignores the high half of each lane, so every operand it sees must stay below 2^32,
 * and a column of products below 2^64: fe4_mul takes a first factor with limbs below 2^29
 * and a carried second one (19 g < 2^30.3), fe4_sq limbs below 2^27 (19 f < 2^31.3). So the
 * sums and differences the point formulas feed in as first factors or squares need no carry
 * of their own. Subtractions add 4p first, so no lane goes negative.
 */
#ifndef TKA_FE4_AVX2_H
#define TKA_FE4_AVX2_H

#include <immintrin.h>
#include <stdint.h>

#include "fe.h"

#define A4_TARGET __attribute__((target("avx2")))
#if defined(__clang__)
#define A4_UNROLL _Pragma("unroll")
#else
#define A4_UNROLL _Pragma("GCC unroll 100")
#endif

typedef struct {
    __m256i v[10];
} fe4;

#define LANES(a, b, c, d) ((a) | ((b) << 2) | ((c) << 4) | ((d) << 6))
/* A four-bit lane mask as the eight-bit dword mask of vpblendd. */
#define DW(m) ((((m) & 1) * 3) | (((m) & 2) * 6) | (((m) & 4) * 12) | (((m) & 8) * 24))

static inline int limb_bits(int k) { return (k & 1) ? 25 : 26; }

A4_TARGET static inline __m256i a4_times19(__m256i x) {
    return _mm256_add_epi64(_mm256_add_epi64(_mm256_slli_epi64(x, 4), _mm256_slli_epi64(x, 1)), x);
}

/* Limbs back to the bounds above; any limbs below 2^62. */
A4_TARGET static inline void fe4_carry(fe4 *h) {
    static const int order[12] = {0, 4, 1, 5, 2, 6, 3, 7, 4, 8, 9, 0};
    const __m256i m26 = _mm256_set1_epi64x((1LL << 26) - 1);
    const __m256i m25 = _mm256_set1_epi64x((1LL << 25) - 1);
    A4_UNROLL
    for (int s = 0; s < 12; s++) {
        int k = order[s];
        __m256i c = _mm256_srli_epi64(h->v[k], limb_bits(k));
        h->v[k] = _mm256_and_si256(h->v[k], (k & 1) ? m25 : m26);
        if (k == 9) h->v[0] = _mm256_add_epi64(h->v[0], a4_times19(c));
        else h->v[k + 1] = _mm256_add_epi64(h->v[k + 1], c);
    }
}

/* h = f g. A product of limbs i and j lands at column i + j, doubled when both are odd (their
 * offsets each round down by half a bit); columns from 10 up wrap to column - 10 times 19. */
A4_TARGET static inline void fe4_mul(fe4 *h, const fe4 *f, const fe4 *g) {
    __m256i f2[10], g19[10], c[10];
    A4_UNROLL
    for (int k = 0; k < 10; k++) {
        f2[k] = (k & 1) ? _mm256_add_epi64(f->v[k], f->v[k]) : f->v[k];
        g19[k] = a4_times19(g->v[k]);
        c[k] = _mm256_setzero_si256();
    }
    A4_UNROLL
    for (int i = 0; i < 10; i++)
        A4_UNROLL
        for (int j = 0; j < 10; j++) {
            __m256i a = (i & j & 1) ? f2[i] : f->v[i];
            if (i + j < 10) c[i + j] = _mm256_add_epi64(c[i + j], _mm256_mul_epu32(a, g->v[j]));
            else c[i + j - 10] = _mm256_add_epi64(c[i + j - 10], _mm256_mul_epu32(a, g19[j]));
        }
    A4_UNROLL
    for (int k = 0; k < 10; k++) h->v[k] = c[k];
    fe4_carry(h);
}

/* h = f^2: each unordered pair once, its factor (2 for a cross product, 2 more when both limbs
 * are odd) on the first operand and the 19 of a wrapped column on the second. */
A4_TARGET static inline void fe4_sq(fe4 *h, const fe4 *f) {
    __m256i f2[10], f4[10], f19[10], c[10];
    A4_UNROLL
    for (int k = 0; k < 10; k++) {
        f2[k] = _mm256_add_epi64(f->v[k], f->v[k]);
        f4[k] = _mm256_add_epi64(f2[k], f2[k]);
        f19[k] = a4_times19(f->v[k]);
        c[k] = _mm256_setzero_si256();
    }
    A4_UNROLL
    for (int i = 0; i < 10; i++)
        A4_UNROLL
        for (int j = i; j < 10; j++) {
            int factor = (i == j ? 1 : 2) * ((i & j & 1) ? 2 : 1);
            int wrap = i + j >= 10;
            __m256i a = factor == 4 ? f4[i] : factor == 2 ? f2[i] : f->v[i];
            __m256i b = wrap ? f19[j] : f->v[j];
            int col = wrap ? i + j - 10 : i + j;
            c[col] = _mm256_add_epi64(c[col], _mm256_mul_epu32(a, b));
        }
    A4_UNROLL
    for (int k = 0; k < 10; k++) h->v[k] = c[k];
    fe4_carry(h);
}

A4_TARGET static inline __m256i p4_limb(int k) {
    /* 4p in this radix: 4 (2^26 - 19), then 4 (2^25 - 1) and 4 (2^26 - 1) alternately. */
    return _mm256_set1_epi64x(k == 0 ? (1LL << 28) - 76 : (k & 1) ? (1LL << 27) - 4 : (1LL << 28) - 4);
}

/* a with b added (subtracted) in the lanes of the immediate mask m. */
#define ADD_IN(a, m, b) _mm256_blend_epi32((a), _mm256_add_epi64((a), (b)), DW(m))
#define SUB_IN(a, m, b) _mm256_blend_epi32((a), _mm256_sub_epi64((a), (b)), DW(m))

/* h = f + g and h = f + 4p - g (g carried), lane-wise; the results are not carried. */
A4_TARGET static inline void fe4_add(fe4 *h, const fe4 *f, const fe4 *g) {
    A4_UNROLL
    for (int k = 0; k < 10; k++) h->v[k] = _mm256_add_epi64(f->v[k], g->v[k]);
}

A4_TARGET static inline void fe4_sub(fe4 *h, const fe4 *f, const fe4 *g) {
    A4_UNROLL
    for (int k = 0; k < 10; k++)
        h->v[k] = _mm256_sub_epi64(_mm256_add_epi64(f->v[k], p4_limb(k)), g->v[k]);
}

/* Lane j of the result holds z[j] (radix 2^51 limbs below 2^54). */
A4_TARGET static inline void fe4_from_fe(fe4 *r, const fe *z0, const fe *z1, const fe *z2, const fe *z3) {
    const __m256i m26 = _mm256_set1_epi64x((1LL << 26) - 1);
    A4_UNROLL
    for (int k = 0; k < 5; k++) {
        __m256i w = _mm256_set_epi64x((long long)z3->v[k], (long long)z2->v[k],
                                      (long long)z1->v[k], (long long)z0->v[k]);
        r->v[2 * k] = _mm256_and_si256(w, m26);
        r->v[2 * k + 1] = _mm256_srli_epi64(w, 26);
    }
    fe4_carry(r);
}

/* The four lanes as radix-2^51 elements, carried to fe.h's bounds (limbs < 2^51 + 2^13). */
A4_TARGET static inline void fe4_to_fe(fe *z0, fe *z1, fe *z2, fe *z3, const fe4 *f) {
    _Alignas(32) uint64_t lanes[4];
    fe *out[4] = {z0, z1, z2, z3};
    for (int k = 0; k < 5; k++) {
        __m256i w = _mm256_add_epi64(f->v[2 * k], _mm256_slli_epi64(f->v[2 * k + 1], 26));
        _mm256_store_si256((__m256i *)(void *)lanes, w);
        for (int j = 0; j < 4; j++) out[j]->v[k] = lanes[j];
    }
    for (int j = 0; j < 4; j++) fe_carry(out[j]);
}

#endif
