/*
 * Eight-lane field arithmetic with AVX-512 IFMA (vpmadd52luq/vpmadd52huq).
 *
 * Batch verification spends most of its time in one square root per signature (the R
 * decompression), a chain of 252 squarings that cannot be shared between signatures. With
 * IFMA the chain runs for eight signatures in the lanes of 512-bit vectors. The
 * representation is the scalar code's radix 2^51 (limbs < 2^52, which IFMA multiplies
 * exactly); a 52x52-bit product's high half lands at bit 52 = 51 + 1, so high halves are
 * doubled into the next column, and 2^255 = 19 folds the top columns.
 *
 * The same lanes also run Pippenger's bucket additions eight at a time (buckets gathered,
 * updated with the mixed-addition formula, scattered back), the other half of a batch.
 *
 * Compiled for any x86-64 with a per-function target attribute and used only when the CPU
 * reports avx512f + avx512ifma at run time; elsewhere the portable four-lane code runs.
 */
#include "fe_ifma.h"

#include "ge_x4.h"
#include "ge_x4_avx2.h"

#include "tka_native.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <stdlib.h>

#include "fe8_ifma.h"
#include "ge8_ifma.h"

/* The chain runs k (1 or 2) independent eight-lane exponentiations side by side: one alone is
 * bound by the latency of each squaring, two interleaved keep the multipliers busier
 * (Zen 4: 20.2 -> 17.4 ns per eight-lane squaring). */
IFMA_TARGET FE8_INLINE void fe8_sqn_k(fe8 *h, const fe8 *f, int n, int k) {
    for (int j = 0; j < k; j++) fe8_sq(&h[j], &f[j]);
    for (int i = 1; i < n; i++)
        for (int j = 0; j < k; j++) fe8_sq(&h[j], &h[j]);
}

IFMA_TARGET FE8_INLINE void fe8_mul_k(fe8 *h, const fe8 *f, const fe8 *g, int k) {
    for (int j = 0; j < k; j++) fe8_mul(&h[j], &f[j], &g[j]);
}

IFMA_TARGET FE8_INLINE void fe8_pow22523_k(fe8 *out, const fe8 *z, int k) {
    fe8 z2[2], z9[2], z11[2], t[2], z5[2], z10[2], z20[2], z50[2], z100[2];
    fe8_sqn_k(z2, z, 1, k);
    fe8_sqn_k(t, z2, 2, k);
    fe8_mul_k(z9, t, z, k);
    fe8_mul_k(z11, z9, z2, k);
    fe8_sqn_k(t, z11, 1, k);
    fe8_mul_k(z5, t, z9, k);
    fe8_sqn_k(t, z5, 5, k);
    fe8_mul_k(z10, t, z5, k);
    fe8_sqn_k(t, z10, 10, k);
    fe8_mul_k(z20, t, z10, k);
    fe8_sqn_k(t, z20, 20, k);
    fe8_mul_k(t, t, z20, k);
    fe8_sqn_k(t, t, 10, k);
    fe8_mul_k(z50, t, z10, k);
    fe8_sqn_k(t, z50, 50, k);
    fe8_mul_k(z100, t, z50, k);
    fe8_sqn_k(t, z100, 100, k);
    fe8_mul_k(t, t, z100, k);
    fe8_sqn_k(t, t, 50, k);
    fe8_mul_k(t, t, z50, k);
    fe8_sqn_k(t, t, 2, k);
    fe8_mul_k(out, t, z, k);
}

IFMA_TARGET static void fe8_pow22523(fe8 *out, const fe8 *z) { fe8_pow22523_k(out, z, 1); }

IFMA_TARGET static void fe8_pow22523_2(fe8 out[2], const fe8 z[2]) { fe8_pow22523_k(out, z, 2); }

IFMA_TARGET static void pow22523_x8_ifma(fe out[8], const fe in[8]) {
    fe8 z, r;
    for (int i = 0; i < 5; i++) {
        z.v[i] = _mm512_set_epi64((long long)in[7].v[i], (long long)in[6].v[i],
                                  (long long)in[5].v[i], (long long)in[4].v[i],
                                  (long long)in[3].v[i], (long long)in[2].v[i],
                                  (long long)in[1].v[i], (long long)in[0].v[i]);
    }
    fe8_pow22523(&r, &z);
    for (int i = 0; i < 5; i++) {
        uint64_t lanes[8];
        _mm512_storeu_si512((void *)lanes, r.v[i]);
        for (int j = 0; j < 8; j++) out[j].v[i] = lanes[j];
    }
}

/* The canonical representative (limbs < 2^51, value < p), as fe_tobytes computes it. */
IFMA_TARGET FE8_INLINE void fe8_freeze(fe8 *h) {
    const __m512i mask = _mm512_set1_epi64((long long)FE_MASK51);
    fe8_carry(h);
    fe8_carry(h);
    /* Now h < 2^255 + small; q = 1 exactly when h >= p. */
    __m512i q = _mm512_srli_epi64(_mm512_add_epi64(h->v[0], _mm512_set1_epi64(19)), 51);
    for (int k = 1; k < 5; k++) q = _mm512_srli_epi64(_mm512_add_epi64(h->v[k], q), 51);
    h->v[0] = _mm512_add_epi64(h->v[0], times19(q));
    for (int k = 0; k < 4; k++) {
        h->v[k + 1] = _mm512_add_epi64(h->v[k + 1], _mm512_srli_epi64(h->v[k], 51));
        h->v[k] = _mm512_and_si512(h->v[k], mask);
    }
    h->v[4] = _mm512_and_si512(h->v[4], mask);
}

/* Lanes where f = 0 mod p. */
IFMA_TARGET FE8_INLINE __mmask8 fe8_is_zero(const fe8 *f) {
    fe8 t = *f;
    fe8_freeze(&t);
    __m512i any = _mm512_or_si512(_mm512_or_si512(t.v[0], t.v[1]),
                                  _mm512_or_si512(_mm512_or_si512(t.v[2], t.v[3]), t.v[4]));
    return _mm512_cmpeq_epi64_mask(any, _mm512_setzero_si512());
}

/* Sixteen decodings in two eight-lane halves, the scalar ge_frombytes_lenient step for step:
 * y, u = y^2 - 1, v = d y^2 + 1, t = (u v^7)^((p-5)/8) (both halves' chains interleaved),
 * x = u v^3 t, then x or x sqrt(-1) by whether v x^2 is u or -u (neither: not a point), and the
 * root whose parity matches the sign bit. */
IFMA_TARGET static void decode_x16_ifma(ge_p3 p[16], int ok[16], const uint8_t *const s[16]) {
    fe8 y8[2], u8[2], v8[2], v3[2], uv7[2], t[2], one, d, sqrtm1, zero;
    fe8_set_small(&one, 1);
    fe8_set_small(&zero, 0);
    fe8_broadcast(&d, &FE_D);
    fe8_broadcast(&sqrtm1, &FE_SQRTM1);
    for (int h = 0; h < 2; h++) {
        fe y[8];
        const fe *rows[8];
        for (int j = 0; j < 8; j++) {
            fe_frombytes(&y[j], s[8 * h + j]);
            rows[j] = &y[j];
        }
        fe8_load_lanes(&y8[h], rows);
        fe8 y2, v7;
        fe8_sq(&y2, &y8[h]);
        fe8_sub(&u8[h], &y2, &one);
        fe8_mul(&v8[h], &y2, &d);
        fe8_add(&v8[h], &v8[h], &one);
        fe8_sq(&v3[h], &v8[h]);
        fe8_mul(&v3[h], &v3[h], &v8[h]);
        fe8_sq(&v7, &v3[h]);
        fe8_mul(&v7, &v7, &v8[h]);
        fe8_mul(&uv7[h], &u8[h], &v7);
    }
    fe8_pow22523_2(t, uv7);
    for (int h = 0; h < 2; h++) {
        fe8 x, vxx, diff, sum, rotated, parity_of, negated, tt;
        fe8_mul(&x, &u8[h], &v3[h]);
        fe8_mul(&x, &x, &t[h]);
        fe8_sq(&vxx, &x);
        fe8_mul(&vxx, &vxx, &v8[h]);
        fe8_sub(&diff, &vxx, &u8[h]);
        fe8_add(&sum, &vxx, &u8[h]);
        const __mmask8 root = fe8_is_zero(&diff);
        const __mmask8 other = (__mmask8)(fe8_is_zero(&sum) & ~root);
        fe8_mul(&rotated, &x, &sqrtm1);
        for (int k = 0; k < 5; k++) x.v[k] = _mm512_mask_blend_epi64(other, x.v[k], rotated.v[k]);
        parity_of = x;
        fe8_freeze(&parity_of);
        __mmask8 sign = 0;
        for (int j = 0; j < 8; j++) sign |= (__mmask8)((s[8 * h + j][31] >> 7) << j);
        const __mmask8 odd = _mm512_test_epi64_mask(parity_of.v[0], _mm512_set1_epi64(1));
        fe8_sub(&negated, &zero, &x);
        for (int k = 0; k < 5; k++)
            x.v[k] = _mm512_mask_blend_epi64((__mmask8)(odd ^ sign), x.v[k], negated.v[k]);
        fe8_mul(&tt, &x, &y8[h]);
        p3_8 out;
        out.X = x;
        out.Y = y8[h];
        fe8_set_small(&out.Z, 1);
        out.T = tt;
        store_p3_8(p + 8 * h, &out);
        const __mmask8 good = root | other;
        for (int j = 0; j < 8; j++) ok[8 * h + j] = (good >> j) & 1;
    }
}

/* ---- Pippenger bucket additions, eight buckets at a time ---- */

_Static_assert(sizeof(ge_p3) == 20 * sizeof(uint64_t), "a bucket is loaded as 20 words");
_Static_assert(sizeof(ge_niels) == 15 * sizeof(uint64_t), "a point is loaded as 15 words");

IFMA_TARGET static void bucket_madd8_ifma(ge_p3 *buckets, const uint32_t bucket_index[8],
                                          const ge_niels *points, const uint32_t point_index[8],
                                          uint8_t negate_mask) {
    /* ge_p3 is 20 limbs (X, Y, Z, T), ge_niels 15 (y+x, y-x, 2dxy). Records are loaded as
     * rows and transposed into limb vectors (gathers and scatters are several times
     * slower), and the eight distinct buckets written back the same way. */
    uint64_t *brow[8];
    const uint64_t *prow[8];
    for (int j = 0; j < 8; j++) {
        brow[j] = (uint64_t *)(void *)&buckets[bucket_index[j]];
        prow[j] = (const uint64_t *)(const void *)&points[point_index[j]];
    }
    __m512i bw[24], pw[16];
    fe8_load_rows(bw, (const uint64_t *const *)brow, 20);
    fe8_load_rows(pw, prow, 15);
    fe8 X, Y, Z, T, qp, qm, qxy;
    for (int k = 0; k < 5; k++) {
        X.v[k] = bw[k];
        Y.v[k] = bw[5 + k];
        Z.v[k] = bw[10 + k];
        T.v[k] = bw[15 + k];
        qp.v[k] = pw[k];
        qm.v[k] = pw[5 + k];
        qxy.v[k] = pw[10 + k];
    }
    /* Subtracting q = adding -q: swap y+x and y-x, negate 2dxy, lane by lane. */
    if (negate_mask != 0) {
        fe8 zero, neg_xy;
        for (int k = 0; k < 5; k++) zero.v[k] = _mm512_setzero_si512();
        fe8_sub(&neg_xy, &zero, &qxy);
        for (int k = 0; k < 5; k++) {
            __m512i p = qp.v[k], m = qm.v[k];
            qp.v[k] = _mm512_mask_blend_epi64(negate_mask, p, m);
            qm.v[k] = _mm512_mask_blend_epi64(negate_mask, m, p);
            qxy.v[k] = _mm512_mask_blend_epi64(negate_mask, qxy.v[k], neg_xy.v[k]);
        }
    }
    fe8 ypx, ymx, a, b, c, d, E, F, G, H;
    fe8_add(&ypx, &Y, &X);
    fe8_sub(&ymx, &Y, &X);
    fe8_mul(&a, &ymx, &qm);
    fe8_mul(&b, &ypx, &qp);
    fe8_mul(&c, &T, &qxy);
    fe8_add(&d, &Z, &Z);
    fe8_sub(&E, &b, &a);
    fe8_add(&H, &b, &a);
    fe8_sub(&F, &d, &c);
    fe8_add(&G, &d, &c);
    fe8_mul(&X, &E, &F);
    fe8_mul(&Y, &G, &H);
    fe8_mul(&Z, &F, &G);
    fe8_mul(&T, &E, &H);
    for (int k = 0; k < 5; k++) {
        bw[k] = X.v[k];
        bw[5 + k] = Y.v[k];
        bw[10 + k] = Z.v[k];
        bw[15 + k] = T.v[k];
    }
    fe8_store_rows(brow, bw, 20);
}

void ge_bucket_madd8(ge_p3 *buckets, const uint32_t bucket_index[8], const ge_niels *points,
                     const uint32_t point_index[8], uint8_t negate_mask) {
    bucket_madd8_ifma(buckets, bucket_index, points, point_index, negate_mask);
}

/* Pippenger's running sums, eight segments at a time: lane j walks buckets
 * [j*seg, (j+1)*seg) from the top down, ending with running_j = sum of its buckets and
 * sum_j = sum_t (t+1) bucket[j*seg + t]. Then sum_b (b+1) bucket[b]
 *     = sum_j sum_j + seg * sum_j j * running_j,
 * and the last sum is itself a running sum over the eight lanes. */
IFMA_TARGET static void bucket_weighted_sum_ifma(ge_p3 *out, const ge_p3 *buckets, size_t nbuckets) {
    const size_t seg = nbuckets / 8;
    fe8 d2;
    fe8_broadcast(&d2, &FE_D2);
    p3_8 running, sum;
    fe8_set_small(&running.X, 0);
    fe8_set_small(&running.Y, 1);
    fe8_set_small(&running.Z, 1);
    fe8_set_small(&running.T, 0);
    sum = running;
    for (size_t t = seg; t-- > 0;) {
        const uint64_t *row[8];
        for (int j = 0; j < 8; j++) row[j] = (const uint64_t *)(const void *)&buckets[(size_t)j * seg + t];
        __m512i w[24];
        fe8_load_rows(w, row, 20);
        p3_8 b;
        for (int k = 0; k < 5; k++) {
            b.X.v[k] = w[k];
            b.Y.v[k] = w[5 + k];
            b.Z.v[k] = w[10 + k];
            b.T.v[k] = w[15 + k];
        }
        cached_8 c;
        p1p1_8 r;
        p3_to_cached_8(&c, &b, &d2);
        add_cached_8(&r, &running, &c, 0);
        p1p1_to_p3_8(&running, &r);
        p3_to_cached_8(&c, &running, &d2);
        add_cached_8(&r, &sum, &c, 0);
        p1p1_to_p3_8(&sum, &r);
    }
    ge_p3 runs[8], sums[8];
    store_p3_8(runs, &running);
    store_p3_8(sums, &sum);
    /* weighted = sum_j j * running_j, from lane 7 down. */
    ge_p3 acc = runs[7], weighted = runs[7];
    for (int j = 6; j >= 1; j--) {
        ge_p3_add(&acc, &acc, &runs[j]);
        ge_p3_add(&weighted, &weighted, &acc);
    }
    for (size_t s = seg; s > 1; s >>= 1) ge_dbl_p3(&weighted, &weighted);
    for (int j = 0; j < 8; j++) ge_p3_add(&weighted, &weighted, &sums[j]);
    *out = weighted;
}

void ge_bucket_weighted_sum8(ge_p3 *out, const ge_p3 *buckets, size_t nbuckets) {
    bucket_weighted_sum_ifma(out, buckets, nbuckets);
}

int fe_ifma_available(void) {
    /* TKA_NATIVE_NO_IFMA=1 forces the portable path (to test it on IFMA machines). A race
     * between threads on first use only computes the same value twice. */
    static volatile int cached = -1;
    if (cached < 0) {
        const char *off = getenv("TKA_NATIVE_NO_IFMA");
        __builtin_cpu_init();
        cached = (off == NULL || off[0] == '\0' || off[0] == '0') &&
                 __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
    }
    return cached;
}

void fe_pow22523_x8(fe out[8], const fe in[8]) {
    if (fe_ifma_available()) {
        /* IFMA multiplies only the low 52 bits of each limb: carry the inputs first. */
        fe carried[8];
        for (int j = 0; j < 8; j++) {
            carried[j] = in[j];
            fe_carry(&carried[j]);
        }
        pow22523_x8_ifma(out, carried);
        return;
    }
    /* Four lanes at a time: AVX2 where the CPU has it, else interleaved scalar chains. */
    fe_pow22523_x4(out, in);
    fe_pow22523_x4(out + 4, in + 4);
}

void ge_decode_x16(ge_p3 p[16], int ok[16], const uint8_t *const s[16]) { decode_x16_ifma(p, ok, s); }

#else /* not x86-64 GCC/Clang: portable code only */

void ge_bucket_madd8(ge_p3 *buckets, const uint32_t bucket_index[8], const ge_niels *points,
                     const uint32_t point_index[8], uint8_t negate_mask) {
    for (int j = 0; j < 8; j++) {
        ge_p1p1 t;
        ge_add_niels(&t, &buckets[bucket_index[j]], &points[point_index[j]], (negate_mask >> j) & 1);
        ge_p1p1_to_p3(&buckets[bucket_index[j]], &t);
    }
}

void ge_bucket_weighted_sum8(ge_p3 *out, const ge_p3 *buckets, size_t nbuckets) {
    ge_p3 running, sum;
    ge_p3_identity(&running);
    ge_p3_identity(&sum);
    for (size_t b = nbuckets; b-- > 0;) {
        ge_p3_add(&running, &running, &buckets[b]);
        ge_p3_add(&sum, &sum, &running);
    }
    *out = sum;
}

int fe_ifma_available(void) { return 0; }

void fe_pow22523_x8(fe out[8], const fe in[8]) {
    fe_pow22523_lanes(out, in);
    fe_pow22523_lanes(out + FE_LANES, in + FE_LANES);
}

void ge_decode_x16(ge_p3 p[16], int ok[16], const uint8_t *const s[16]) {
    ge_frombytes_lenient_x8(p, ok, s); /* never called without IFMA; correct all the same */
    ge_frombytes_lenient_x8(p + 8, ok + 8, s + 8);
}

#endif

int tka_native_features(void) {
    if (fe_ifma_available()) return TKA_FEATURE_IFMA;
    return ge_x4_avx2_available() ? TKA_FEATURE_AVX2 : 0;
}
