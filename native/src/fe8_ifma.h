/*
 * The AVX-512 IFMA eight-lane field primitives (radix 2^51, one field element per lane of
 * five 512-bit vectors), shared by fe_ifma.c (square roots, Pippenger buckets) and ge_x8.c
 * (eight-lane double-scalar multiplication), and the 8x8 word transpose both use to turn
 * eight records (table rows, buckets) into limb vectors and back. Include only under
 * `defined(__x86_64__) && defined(__GNUC__)`; call only when fe_ifma_available().
 *
 * Bounds: fe8_mul/fe8_sq inputs must have limbs < 2^52 (IFMA reads 52 bits), and fe8_sq's
 * limbs 2..4 below 2^51; every output here (fe8_mul, fe8_sq, fe8_add, fe8_sub, fe8_carry)
 * has limbs 0..1 at most 2^51 + 2^7 and limbs 2..4 below 2^51 (masked), so any output is a
 * valid input of either.
 */
#ifndef TKA_FE8_IFMA_H
#define TKA_FE8_IFMA_H

#include <immintrin.h>

#include "fe.h"

#define IFMA_TARGET __attribute__((target("avx512f,avx512ifma")))
/* Fully unrolled loops keep the column accumulators in registers instead of stack arrays
 * (2.5x faster at -O2). */
#if defined(__clang__)
#define IFMA_UNROLL _Pragma("unroll")
#else
#define IFMA_UNROLL _Pragma("GCC unroll 32")
#endif

/* Forced: GCC otherwise leaves some products out of line, passing operands through memory. */
#define FE8_INLINE static inline __attribute__((always_inline))

typedef struct {
    __m512i v[5];
} fe8;

IFMA_TARGET static inline __m512i times19(__m512i x) {
    return _mm512_add_epi64(_mm512_add_epi64(_mm512_slli_epi64(x, 4), _mm512_slli_epi64(x, 1)), x);
}

/* Columns c[0..9] (c[k] = lo[k] + 2 hi[k-1]) -> five carried limbs < 2^52. */
IFMA_TARGET FE8_INLINE void fe8_reduce(fe8 *h, const __m512i lo[9], const __m512i hi[9]) {
    const __m512i mask = _mm512_set1_epi64((long long)FE_MASK51);
    __m512i c[10];
    c[0] = lo[0];
    IFMA_UNROLL
    for (int k = 1; k < 9; k++) c[k] = _mm512_add_epi64(lo[k], _mm512_slli_epi64(hi[k - 1], 1));
    c[9] = _mm512_slli_epi64(hi[8], 1);
    __m512i r[5];
    IFMA_UNROLL
    for (int k = 0; k < 5; k++) r[k] = _mm512_add_epi64(c[k], times19(c[k + 5]));
    IFMA_UNROLL
    for (int k = 0; k < 4; k++) {
        r[k + 1] = _mm512_add_epi64(r[k + 1], _mm512_srli_epi64(r[k], 51));
        r[k] = _mm512_and_si512(r[k], mask);
    }
    r[0] = _mm512_add_epi64(r[0], times19(_mm512_srli_epi64(r[4], 51)));
    r[4] = _mm512_and_si512(r[4], mask);
    r[1] = _mm512_add_epi64(r[1], _mm512_srli_epi64(r[0], 51));
    r[0] = _mm512_and_si512(r[0], mask);
    IFMA_UNROLL
    for (int k = 0; k < 5; k++) h->v[k] = r[k];
}

IFMA_TARGET FE8_INLINE void fe8_mul(fe8 *h, const fe8 *f, const fe8 *g) {
    __m512i lo[9], hi[9];
    IFMA_UNROLL
    for (int k = 0; k < 9; k++) lo[k] = hi[k] = _mm512_setzero_si512();
    IFMA_UNROLL
    for (int i = 0; i < 5; i++)
        IFMA_UNROLL
        for (int j = 0; j < 5; j++) {
            lo[i + j] = _mm512_madd52lo_epu64(lo[i + j], f->v[i], g->v[j]);
            hi[i + j] = _mm512_madd52hi_epu64(hi[i + j], f->v[i], g->v[j]);
        }
    fe8_reduce(h, lo, hi);
}

/* Squaring. The cross products f_i f_j (i < j) count twice; for j >= 2 the factor 2 goes
 * into f_j before the products (2 f_j < 2^52 because limbs 2..4 of every value here are
 * < 2^51: fe8_reduce and fe8_carry mask them), which saves shifting most columns; only the
 * (0, 1) product is doubled after. Precondition: limbs 2..4 of f below 2^51. */
IFMA_TARGET FE8_INLINE void fe8_sq(fe8 *h, const fe8 *f) {
    __m512i lo[9], hi[9], f2[5];
    IFMA_UNROLL
    for (int k = 0; k < 9; k++) lo[k] = hi[k] = _mm512_setzero_si512();
    IFMA_UNROLL
    for (int j = 2; j < 5; j++) f2[j] = _mm512_add_epi64(f->v[j], f->v[j]);
    lo[1] = _mm512_slli_epi64(_mm512_madd52lo_epu64(lo[1], f->v[0], f->v[1]), 1);
    hi[1] = _mm512_slli_epi64(_mm512_madd52hi_epu64(hi[1], f->v[0], f->v[1]), 1);
    IFMA_UNROLL
    for (int i = 0; i < 5; i++)
        IFMA_UNROLL
        for (int j = (i + 1 > 2 ? i + 1 : 2); j < 5; j++) {
            lo[i + j] = _mm512_madd52lo_epu64(lo[i + j], f->v[i], f2[j]);
            hi[i + j] = _mm512_madd52hi_epu64(hi[i + j], f->v[i], f2[j]);
        }
    IFMA_UNROLL
    for (int i = 0; i < 5; i++) {
        lo[2 * i] = _mm512_madd52lo_epu64(lo[2 * i], f->v[i], f->v[i]);
        hi[2 * i] = _mm512_madd52hi_epu64(hi[2 * i], f->v[i], f->v[i]);
    }
    fe8_reduce(h, lo, hi);
}

IFMA_TARGET FE8_INLINE void fe8_carry(fe8 *h) {
    const __m512i mask = _mm512_set1_epi64((long long)FE_MASK51);
    IFMA_UNROLL
    for (int k = 0; k < 4; k++) {
        h->v[k + 1] = _mm512_add_epi64(h->v[k + 1], _mm512_srli_epi64(h->v[k], 51));
        h->v[k] = _mm512_and_si512(h->v[k], mask);
    }
    __m512i top = _mm512_srli_epi64(h->v[4], 51);
    h->v[4] = _mm512_and_si512(h->v[4], mask);
    h->v[0] = _mm512_add_epi64(h->v[0], times19(top));
}

/* h = f + g, carried so the result is a valid IFMA input (limbs < 2^52). */
IFMA_TARGET FE8_INLINE void fe8_add(fe8 *h, const fe8 *f, const fe8 *g) {
    IFMA_UNROLL
    for (int k = 0; k < 5; k++) h->v[k] = _mm512_add_epi64(f->v[k], g->v[k]);
    fe8_carry(h);
}

/* h = f + 4p - g, carried (f, g limbs < 2^52). */
IFMA_TARGET FE8_INLINE void fe8_sub(fe8 *h, const fe8 *f, const fe8 *g) {
    const __m512i p4_0 = _mm512_set1_epi64(0x1fffffffffffb4LL);
    const __m512i p4_k = _mm512_set1_epi64(0x1ffffffffffffcLL);
    IFMA_UNROLL
    for (int k = 0; k < 5; k++)
        h->v[k] = _mm512_sub_epi64(_mm512_add_epi64(f->v[k], k == 0 ? p4_0 : p4_k), g->v[k]);
    fe8_carry(h);
}

/* rows[j] (eight limbs of lane j) -> cols[k] (limb k of every lane): an 8x8 transpose of
 * 64-bit words in three shuffle stages (its own inverse). */
IFMA_TARGET FE8_INLINE void transpose_8x8(__m512i cols[8], const __m512i rows[8]) {
    const __m512i pick_0_1 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i pick_2_3 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    __m512i t[8], u[8];
    for (int i = 0; i < 8; i += 2) { /* t[i]: words 0 2 4 6 of rows i, i+1; t[i+1]: 1 3 5 7 */
        t[i] = _mm512_unpacklo_epi64(rows[i], rows[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi64(rows[i], rows[i + 1]);
    }
    for (int h = 0; h < 8; h += 4) /* u[h+o]: words o, 4+o of rows h..h+3; u[h+2+o]: 2+o, 6+o */
        for (int o = 0; o < 2; o++) {
            u[h + o] = _mm512_permutex2var_epi64(t[h + o], pick_0_1, t[h + 2 + o]);
            u[h + 2 + o] = _mm512_permutex2var_epi64(t[h + o], pick_2_3, t[h + 2 + o]);
        }
    for (int k = 0; k < 4; k++) {
        cols[k] = _mm512_shuffle_i64x2(u[k], u[4 + k], 0x44);
        cols[k + 4] = _mm512_shuffle_i64x2(u[k], u[4 + k], 0xee);
    }
}

/* Words 0..limbs-1 of eight records (lane j's at row[j]) as word vectors, rounded up to whole
 * blocks of eight: row loads and one transpose per block, several times cheaper than
 * gathering each word. A last partial block is loaded masked, so nothing past a record is
 * read (masked-off words come out 0). */
IFMA_TARGET FE8_INLINE void fe8_load_rows(__m512i *words, const uint64_t *const row[8], int limbs) {
    for (int b = 0; 8 * b < limbs; b++) {
        int left = limbs - 8 * b;
        __mmask8 m = left >= 8 ? (__mmask8)0xff : (__mmask8)((1u << left) - 1);
        __m512i rows[8];
        for (int j = 0; j < 8; j++) rows[j] = _mm512_maskz_loadu_epi64(m, (const void *)(row[j] + 8 * b));
        transpose_8x8(words + 8 * b, rows);
    }
}

/* The inverse: words 0..limbs-1 back into the eight records (masked the same way). */
IFMA_TARGET FE8_INLINE void fe8_store_rows(uint64_t *const row[8], const __m512i *words, int limbs) {
    for (int b = 0; 8 * b < limbs; b++) {
        int left = limbs - 8 * b;
        __mmask8 m = left >= 8 ? (__mmask8)0xff : (__mmask8)((1u << left) - 1);
        __m512i cols[8], rows[8];
        for (int k = 0; k < 8; k++) cols[k] = k < left ? words[8 * b + k] : _mm512_setzero_si512();
        transpose_8x8(rows, cols);
        for (int j = 0; j < 8; j++) _mm512_mask_storeu_epi64((void *)(row[j] + 8 * b), m, rows[j]);
    }
}

#endif
