/*
 * Four-lane double-scalar multiplication (ge_x4.h). A point (X:Y:Z:T) lives as one fe4: limb k
 * of coordinate j in lane j of vector k (radix 2^51, as fe8_ifma.h). The extended formulas of
 * ge.h are regrouped so that every step multiplies four independent products at once:
 *
 *   doubling   (X, Y, Z, X+Y)^2 = (A, B, C, S); with E = A+B-S, F = 2C+A-B, G = A-B, H = A+B
 *              (ge_dbl's signs): (E, G, F, E) * (F, H, G, H) = (X3, Y3, Z3, T3)
 *   addition   (Y1-X1, Y1+X1, T1, Z1) * (Y2-X2, Y2+X2, 2d T2, 2 Z2) = (A, B, C, D); with
 *              E = B-A, F = D-C, G = D+C, H = B+A: (E, G, F, E) * (F, H, G, H) as above
 *
 * The lane shuffles are vpermq and masked adds; subtractions add 4p first, as fe8_sub does.
 */
#include "ge_x4.h"

#include <string.h>

#include "fe_ifma.h"
#include "ge_x4_avx2.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <pthread.h>

#define X4_TARGET __attribute__((target("avx512f,avx512vl,avx512ifma")))
#if defined(__clang__)
#define X4_UNROLL _Pragma("unroll")
#else
#define X4_UNROLL _Pragma("GCC unroll 32")
#endif

typedef struct {
    __m256i v[5];
} fe4;

/* Lane order of a permutation, for vpermq's immediate. */
#define LANES(a, b, c, d) ((a) | ((b) << 2) | ((c) << 4) | ((d) << 6))

X4_TARGET static inline __m256i x4_times19(__m256i x) {
    return _mm256_add_epi64(_mm256_add_epi64(_mm256_slli_epi64(x, 4), _mm256_slli_epi64(x, 1)), x);
}

/* Limbs back below 2^52 (limbs 1..4 below 2^51), so the result is a valid input of fe4_mul and
 * fe4_sq. Inputs below 2^63. */
X4_TARGET static inline void fe4_carry(fe4 *h) {
    const __m256i mask = _mm256_set1_epi64x((long long)FE_MASK51);
    X4_UNROLL
    for (int k = 0; k < 4; k++) {
        h->v[k + 1] = _mm256_add_epi64(h->v[k + 1], _mm256_srli_epi64(h->v[k], 51));
        h->v[k] = _mm256_and_si256(h->v[k], mask);
    }
    __m256i top = _mm256_srli_epi64(h->v[4], 51);
    h->v[4] = _mm256_and_si256(h->v[4], mask);
    h->v[0] = _mm256_add_epi64(h->v[0], x4_times19(top));
    h->v[1] = _mm256_add_epi64(h->v[1], _mm256_srli_epi64(h->v[0], 51));
    h->v[0] = _mm256_and_si256(h->v[0], mask);
}

/* Columns of a product -> carried limbs (limbs 0..1 at most 2^51 + 2^7, 2..4 below 2^51). */
X4_TARGET static inline void fe4_reduce(fe4 *h, const __m256i lo[9], const __m256i hi[9]) {
    const __m256i mask = _mm256_set1_epi64x((long long)FE_MASK51);
    __m256i c[10], r[5];
    c[0] = lo[0];
    X4_UNROLL
    for (int k = 1; k < 9; k++) c[k] = _mm256_add_epi64(lo[k], _mm256_slli_epi64(hi[k - 1], 1));
    c[9] = _mm256_slli_epi64(hi[8], 1);
    X4_UNROLL
    for (int k = 0; k < 5; k++) r[k] = _mm256_add_epi64(c[k], x4_times19(c[k + 5]));
    X4_UNROLL
    for (int k = 0; k < 4; k++) {
        r[k + 1] = _mm256_add_epi64(r[k + 1], _mm256_srli_epi64(r[k], 51));
        r[k] = _mm256_and_si256(r[k], mask);
    }
    r[0] = _mm256_add_epi64(r[0], x4_times19(_mm256_srli_epi64(r[4], 51)));
    r[4] = _mm256_and_si256(r[4], mask);
    r[1] = _mm256_add_epi64(r[1], _mm256_srli_epi64(r[0], 51));
    r[0] = _mm256_and_si256(r[0], mask);
    X4_UNROLL
    for (int k = 0; k < 5; k++) h->v[k] = r[k];
}

/* Inputs: limbs below 2^52. */
X4_TARGET static inline void fe4_mul(fe4 *h, const fe4 *f, const fe4 *g) {
    __m256i lo[9], hi[9];
    X4_UNROLL
    for (int k = 0; k < 9; k++) lo[k] = hi[k] = _mm256_setzero_si256();
    X4_UNROLL
    for (int i = 0; i < 5; i++)
        X4_UNROLL
        for (int j = 0; j < 5; j++) {
            lo[i + j] = _mm256_madd52lo_epu64(lo[i + j], f->v[i], g->v[j]);
            hi[i + j] = _mm256_madd52hi_epu64(hi[i + j], f->v[i], g->v[j]);
        }
    fe4_reduce(h, lo, hi);
}

/* Input: limbs below 2^52, limbs 2..4 below 2^51 (doubled before the cross products). */
X4_TARGET static inline void fe4_sq(fe4 *h, const fe4 *f) {
    __m256i lo[9], hi[9], f2[5];
    X4_UNROLL
    for (int k = 0; k < 9; k++) lo[k] = hi[k] = _mm256_setzero_si256();
    X4_UNROLL
    for (int j = 2; j < 5; j++) f2[j] = _mm256_add_epi64(f->v[j], f->v[j]);
    lo[1] = _mm256_slli_epi64(_mm256_madd52lo_epu64(lo[1], f->v[0], f->v[1]), 1);
    hi[1] = _mm256_slli_epi64(_mm256_madd52hi_epu64(hi[1], f->v[0], f->v[1]), 1);
    X4_UNROLL
    for (int i = 0; i < 5; i++)
        X4_UNROLL
        for (int j = (i + 1 > 2 ? i + 1 : 2); j < 5; j++) {
            lo[i + j] = _mm256_madd52lo_epu64(lo[i + j], f->v[i], f2[j]);
            hi[i + j] = _mm256_madd52hi_epu64(hi[i + j], f->v[i], f2[j]);
        }
    X4_UNROLL
    for (int i = 0; i < 5; i++) {
        lo[2 * i] = _mm256_madd52lo_epu64(lo[2 * i], f->v[i], f->v[i]);
        hi[2 * i] = _mm256_madd52hi_epu64(hi[2 * i], f->v[i], f->v[i]);
    }
    fe4_reduce(h, lo, hi);
}

X4_TARGET static inline __m256i p4_limb(int k) {
    return _mm256_set1_epi64x(k == 0 ? 0x1fffffffffffb4LL : 0x1ffffffffffffcLL);
}

/* From the products (A, B, C, D) of an addition: (E, G, F, E) and (F, H, G, H) with
 * E = B-A, F = D-C, G = D+C, H = B+A. */
X4_TARGET static inline void x4_finish_add(fe4 *w1, fe4 *w2, const fe4 *m) {
    X4_UNROLL
    for (int k = 0; k < 5; k++) {
        __m256i p4 = p4_limb(k);
        /* w1 = (B, D, D, B) + 4p, then -A, +C, -C, -A */
        __m256i a1 = _mm256_add_epi64(_mm256_permute4x64_epi64(m->v[k], LANES(1, 3, 3, 1)), p4);
        __m256i b1 = _mm256_permute4x64_epi64(m->v[k], LANES(0, 2, 2, 0));
        a1 = _mm256_mask_add_epi64(a1, 0x2, a1, b1);
        w1->v[k] = _mm256_mask_sub_epi64(a1, 0xd, a1, b1);
        /* w2 = (D, B, D, B) + 4p, then -C, +A, +C, +A */
        __m256i a2 = _mm256_add_epi64(_mm256_permute4x64_epi64(m->v[k], LANES(3, 1, 3, 1)), p4);
        __m256i b2 = _mm256_permute4x64_epi64(m->v[k], LANES(2, 0, 2, 0));
        a2 = _mm256_mask_add_epi64(a2, 0xe, a2, b2);
        w2->v[k] = _mm256_mask_sub_epi64(a2, 0x1, a2, b2);
    }
    fe4_carry(w1);
    fe4_carry(w2);
}

/* r = 2p (T of p unused). */
X4_TARGET static void x4_dbl(fe4 *r, const fe4 *p) {
    fe4 v, sq, w1, w2;
    X4_UNROLL
    for (int k = 0; k < 5; k++) {
        /* (X, Y, Z, X + Y) */
        __m256i x = _mm256_permute4x64_epi64(p->v[k], LANES(0, 1, 2, 0));
        __m256i y = _mm256_permute4x64_epi64(p->v[k], LANES(0, 1, 2, 1));
        v.v[k] = _mm256_mask_add_epi64(x, 0x8, x, y);
    }
    fe4_carry(&v);
    fe4_sq(&sq, &v); /* (A, B, C, S) */
    X4_UNROLL
    for (int k = 0; k < 5; k++) {
        __m256i p4 = p4_limb(k);
        __m256i a = _mm256_add_epi64(_mm256_permute4x64_epi64(sq.v[k], LANES(0, 0, 0, 0)), p4);
        __m256i b = _mm256_permute4x64_epi64(sq.v[k], LANES(1, 1, 1, 1));
        __m256i e = _mm256_permute4x64_epi64(sq.v[k], LANES(3, 3, 2, 3)); /* S, S, C, S */
        /* w1 = (E, G, F, E) = (A+B-S, A-B, A-B+2C, A+B-S) */
        __m256i t = _mm256_mask_add_epi64(a, 0x9, a, b);
        t = _mm256_mask_sub_epi64(t, 0x6, t, b);
        t = _mm256_mask_sub_epi64(t, 0x9, t, e);
        w1.v[k] = _mm256_mask_add_epi64(t, 0x4, t, _mm256_add_epi64(e, e));
        /* w2 = (F, H, G, H) = (A-B+2C, A+B, A-B, A+B) */
        __m256i c2 = _mm256_permute4x64_epi64(sq.v[k], LANES(2, 2, 2, 2));
        __m256i u = _mm256_mask_add_epi64(a, 0xa, a, b);
        u = _mm256_mask_sub_epi64(u, 0x5, u, b);
        w2.v[k] = _mm256_mask_add_epi64(u, 0x1, u, _mm256_add_epi64(c2, c2));
    }
    fe4_carry(&w1);
    fe4_carry(&w2);
    fe4_mul(r, &w1, &w2);
}

/* r = p + q for q in cached form (Y-X, Y+X, 2d T, 2Z). */
X4_TARGET static void x4_add(fe4 *r, const fe4 *p, const fe4 *q) {
    fe4 u, m, w1, w2;
    X4_UNROLL
    for (int k = 0; k < 5; k++) {
        /* (Y - X, Y + X, T, Z) */
        __m256i y = _mm256_permute4x64_epi64(p->v[k], LANES(1, 1, 3, 2));
        __m256i x = _mm256_permute4x64_epi64(p->v[k], LANES(0, 0, 0, 0));
        y = _mm256_mask_add_epi64(y, 0x1, y, p4_limb(k));
        y = _mm256_mask_sub_epi64(y, 0x1, y, x);
        u.v[k] = _mm256_mask_add_epi64(y, 0x2, y, x);
    }
    fe4_carry(&u);
    fe4_mul(&m, &u, q);
    x4_finish_add(&w1, &w2, &m);
    fe4_mul(r, &w1, &w2);
}

/* The cached form (Y-X, Y+X, 2d T, 2Z) of p, and of -p = (-X, Y, Z, -T): (Y+X, Y-X, -2d T, 2Z). */
X4_TARGET static void x4_to_cached(fe4 *pos, fe4 *neg, const fe4 *p) {
    static const fe FE_TWO = {{2, 0, 0, 0, 0}};
    fe4 u, factors;
    X4_UNROLL
    for (int k = 0; k < 5; k++) {
        __m256i y = _mm256_permute4x64_epi64(p->v[k], LANES(1, 1, 3, 2));
        __m256i x = _mm256_permute4x64_epi64(p->v[k], LANES(0, 0, 0, 0));
        y = _mm256_mask_add_epi64(y, 0x1, y, p4_limb(k));
        y = _mm256_mask_sub_epi64(y, 0x1, y, x);
        u.v[k] = _mm256_mask_add_epi64(y, 0x2, y, x);
        factors.v[k] = _mm256_set_epi64x((long long)FE_TWO.v[k], (long long)FE_D2.v[k],
                                         (long long)FE_ONE.v[k], (long long)FE_ONE.v[k]);
    }
    fe4_carry(&u);
    fe4_mul(pos, &u, &factors);
    X4_UNROLL
    for (int k = 0; k < 5; k++) {
        __m256i swapped = _mm256_permute4x64_epi64(pos->v[k], LANES(1, 0, 2, 3));
        neg->v[k] = _mm256_mask_sub_epi64(swapped, 0x4, p4_limb(k), swapped);
    }
    fe4_carry(neg);
}

X4_TARGET static void x4_from_p3(fe4 *r, const ge_p3 *p) {
    X4_UNROLL
    for (int k = 0; k < 5; k++)
        r->v[k] = _mm256_set_epi64x((long long)p->T.v[k], (long long)p->Z.v[k],
                                    (long long)p->Y.v[k], (long long)p->X.v[k]);
    fe4_carry(r); /* the scalar code leaves limbs up to 2^51 + 2^13 */
}

X4_TARGET static void x4_to_p3(ge_p3 *r, const fe4 *p) {
    _Alignas(32) uint64_t lanes[4];
    for (int k = 0; k < 5; k++) {
        _mm256_store_si256((__m256i *)(void *)lanes, p->v[k]);
        r->X.v[k] = lanes[0];
        r->Y.v[k] = lanes[1];
        r->Z.v[k] = lanes[2];
        r->T.v[k] = lanes[3];
    }
}

/* +-B, +-3B, ..., +-127B in cached form, for width-8 NAF digits of the base scalar; kept as
 * plain limbs so the table needs no vector type outside the target functions. */
#define X4_BASE_ODD 64
static _Alignas(32) uint64_t base_table[X4_BASE_ODD][2][5][4];
static pthread_once_t base_table_once = PTHREAD_ONCE_INIT;

X4_TARGET static void x4_store(uint64_t out[5][4], const fe4 *f) {
    for (int k = 0; k < 5; k++) _mm256_store_si256((__m256i *)(void *)out[k], f->v[k]);
}

X4_TARGET static void x4_load(fe4 *f, const uint64_t in[5][4]) {
    X4_UNROLL
    for (int k = 0; k < 5; k++) f->v[k] = _mm256_load_si256((const __m256i *)(const void *)in[k]);
}

X4_TARGET static void base_table_init(void) {
    const ge_niels *odd = ge_base_odd_multiples();
    for (int i = 0; i < X4_BASE_ODD; i++) {
        /* An affine niels point (y+x, y-x, 2d xy) with Z = 1: cached (y-x, y+x, 2d xy, 2). */
        fe4 pos, neg;
        fe y_minus_x = odd[i].yminusx, y_plus_x = odd[i].yplusx, t2d = odd[i].xy2d;
        fe_carry(&y_minus_x);
        fe_carry(&y_plus_x);
        fe_carry(&t2d);
        for (int k = 0; k < 5; k++)
            pos.v[k] = _mm256_set_epi64x(k == 0 ? 2 : 0, (long long)t2d.v[k],
                                         (long long)y_plus_x.v[k], (long long)y_minus_x.v[k]);
        for (int k = 0; k < 5; k++) {
            __m256i swapped = _mm256_permute4x64_epi64(pos.v[k], LANES(1, 0, 2, 3));
            neg.v[k] = _mm256_mask_sub_epi64(swapped, 0x4, p4_limb(k), swapped);
        }
        fe4_carry(&neg);
        x4_store(base_table[i][0], &pos);
        x4_store(base_table[i][1], &neg);
    }
}

/* [2^128]B's odd multiples +-[2^128]B, ..., +-127 [2^128]B, for the top half of a base scalar
 * split at bit 128 (ge_triple_scalarmult_x4). */
static _Alignas(32) uint64_t base128_table[X4_BASE_ODD][2][5][4];

X4_TARGET static void base128_table_init(void) {
    ge_p3 q, q2, cur;
    ge_base_point(&q);
    for (int i = 0; i < 128; i++) ge_dbl_p3(&q, &q);
    ge_dbl_p3(&q2, &q);
    cur = q;
    for (int i = 0; i < X4_BASE_ODD; i++) {
        fe4 pt, pos, neg;
        x4_from_p3(&pt, &cur);
        x4_to_cached(&pos, &neg, &pt);
        x4_store(base128_table[i][0], &pos);
        x4_store(base128_table[i][1], &neg);
        ge_p3_add(&cur, &cur, &q2);
    }
}

static void base_table_init_once(void) {
    base_table_init();
    base128_table_init();
}

#define X4_A_ODD 8 /* width-5 NAF: P, 3P, ..., 15P */

/* P, 3P, ..., 15P in cached form, each with its negation. */
X4_TARGET static void x4_odd_table(fe4 table[X4_A_ODD][2], const ge_p3 *p) {
    fe4 pt, p2, cur, p2_cached, unused;
    x4_from_p3(&pt, p);
    x4_dbl(&p2, &pt);
    x4_to_cached(&p2_cached, &unused, &p2);
    cur = pt;
    x4_to_cached(&table[0][0], &table[0][1], &cur);
    for (int i = 1; i < X4_A_ODD; i++) {
        x4_add(&cur, &cur, &p2_cached);
        x4_to_cached(&table[i][0], &table[i][1], &cur);
    }
}

X4_TARGET static inline void x4_add_digit(fe4 *acc, const fe4 table[X4_A_ODD][2], int d) {
    if (d > 0) x4_add(acc, acc, &table[d / 2][0]);
    else if (d < 0) x4_add(acc, acc, &table[(-d) / 2][1]);
}

X4_TARGET static inline void x4_add_base_digit(fe4 *acc, const uint64_t tab[][2][5][4], int d) {
    if (d == 0) return;
    fe4 entry;
    x4_load(&entry, tab[(d > 0 ? d : -d) / 2][d < 0]);
    x4_add(acc, acc, &entry);
}

X4_TARGET static void x4_identity(fe4 *acc) {
    ge_p3 identity;
    ge_p3_identity(&identity);
    x4_from_p3(acc, &identity);
}

X4_TARGET static void double_scalarmult_x4(ge_p3 *out, const ge_p3 *p, const sc *a,
                                           const sc *b) {
    pthread_once(&base_table_once, base_table_init_once);
    int8_t anaf[256], bnaf[256];
    int top = sc_naf(anaf, a, 5);
    int tb = sc_naf(bnaf, b, 8);
    if (tb > top) top = tb;
    if (top < 0) {
        ge_p3_identity(out);
        return;
    }
    fe4 table[X4_A_ODD][2], acc;
    x4_odd_table(table, p);
    x4_identity(&acc);
    for (int i = top; i >= 0; i--) {
        x4_dbl(&acc, &acc);
        x4_add_digit(&acc, table, anaf[i]);
        x4_add_base_digit(&acc, base_table, bnaf[i]);
    }
    x4_to_p3(out, &acc);
}

X4_TARGET static void triple_scalarmult_x4(ge_p3 *out, const ge_p3 *p, const sc *a,
                                           const ge_p3 *q, const sc *b, const sc *c) {
    pthread_once(&base_table_once, base_table_init_once);
    int8_t anaf[256], bnaf[256], lo_naf[256], hi_naf[256];
    sc c_lo = {{c->v[0], c->v[1], 0, 0}}, c_hi = {{c->v[2], c->v[3], 0, 0}};
    int top = sc_naf(anaf, a, 5), t;
    if ((t = sc_naf(bnaf, b, 5)) > top) top = t;
    if ((t = sc_naf(lo_naf, &c_lo, 8)) > top) top = t;
    if ((t = sc_naf(hi_naf, &c_hi, 8)) > top) top = t;
    if (top < 0) {
        ge_p3_identity(out);
        return;
    }
    fe4 ptable[X4_A_ODD][2], qtable[X4_A_ODD][2], acc;
    x4_odd_table(ptable, p);
    x4_odd_table(qtable, q);
    x4_identity(&acc);
    for (int i = top; i >= 0; i--) {
        x4_dbl(&acc, &acc);
        x4_add_digit(&acc, ptable, anaf[i]);
        x4_add_digit(&acc, qtable, bnaf[i]);
        x4_add_base_digit(&acc, base_table, lo_naf[i]);
        x4_add_base_digit(&acc, base128_table, hi_naf[i]);
    }
    x4_to_p3(out, &acc);
}

/* Four independent z^((p-5)/8), one per lane (the chain of ge.h's fe_pow22523). */
X4_TARGET static void fe4_sqn(fe4 *h, const fe4 *f, int n) {
    fe4_sq(h, f);
    for (int i = 1; i < n; i++) fe4_sq(h, h);
}

/* t = x^(2^250 - 1) and x^11 (the shared prefix of inversion and square root), lane-wise. */
X4_TARGET static void fe4_pow2_250_1(fe4 *t, fe4 *z11, const fe4 *x) {
    fe4 z2, z9, z5, z10, z20, z50, z100;
    fe4_sq(&z2, x);
    fe4_sqn(t, &z2, 2);
    fe4_mul(&z9, t, x);
    fe4_mul(z11, &z9, &z2);
    fe4_sq(t, z11);
    fe4_mul(&z5, t, &z9);
    fe4_sqn(t, &z5, 5);
    fe4_mul(&z10, t, &z5);
    fe4_sqn(t, &z10, 10);
    fe4_mul(&z20, t, &z10);
    fe4_sqn(t, &z20, 20);
    fe4_mul(t, t, &z20);
    fe4_sqn(t, t, 10);
    fe4_mul(&z50, t, &z10);
    fe4_sqn(t, &z50, 50);
    fe4_mul(&z100, t, &z50);
    fe4_sqn(t, &z100, 100);
    fe4_mul(t, t, &z100);
    fe4_sqn(t, t, 50);
    fe4_mul(t, t, &z50);
}

X4_TARGET static void fe4_from_lanes(fe4 *x, const fe z[4]) {
    X4_UNROLL
    for (int k = 0; k < 5; k++)
        x->v[k] = _mm256_set_epi64x((long long)z[3].v[k], (long long)z[2].v[k],
                                    (long long)z[1].v[k], (long long)z[0].v[k]);
    fe4_carry(x);
}

X4_TARGET static void fe4_to_lanes(fe out[4], const fe4 *t) {
    _Alignas(32) uint64_t lanes[4];
    for (int k = 0; k < 5; k++) {
        _mm256_store_si256((__m256i *)(void *)lanes, t->v[k]);
        for (int j = 0; j < 4; j++) out[j].v[k] = lanes[j];
    }
}

X4_TARGET static void pow22523_x4(fe out[4], const fe z[4]) {
    fe4 x, t, z11;
    fe4_from_lanes(&x, z);
    fe4_pow2_250_1(&t, &z11, &x);
    fe4_sqn(&t, &t, 2);
    fe4_mul(&t, &t, &x); /* 2^252 - 3 */
    fe4_to_lanes(out, &t);
}

X4_TARGET static void invert_x4(fe out[4], const fe z[4]) {
    fe4 x, t, z11;
    fe4_from_lanes(&x, z);
    fe4_pow2_250_1(&t, &z11, &x);
    fe4_sqn(&t, &t, 5);
    fe4_mul(&t, &t, &z11); /* 2^255 - 21 */
    fe4_to_lanes(out, &t);
}

/* 1 where the lanes are AVX-512 IFMA ones (this file), else AVX2 (ge_x4_avx2.c) or none. */
static int x4_ifma(void) {
    static volatile int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = fe_ifma_available() && __builtin_cpu_supports("avx512vl");
    }
    return cached;
}

int ge_x4_available(void) { return x4_ifma() || ge_x4_avx2_available(); }

void ge_double_scalarmult_x4(ge_p3 *out, const ge_p3 *p, const sc *a, const sc *b) {
    if (x4_ifma()) {
        double_scalarmult_x4(out, p, a, b);
        return;
    }
    if (ge_x4_avx2_available()) {
        ge_double_scalarmult_avx2(out, p, a, b);
        return;
    }
    ge_cached table[GE_STRAUS_TABLE];
    ge_straus_table(table, p);
    ge_double_scalarmult_table(out, table, a, b);
}

int ge_triple_scalarmult_x4(ge_p3 *out, const ge_p3 *p, const sc *a, const ge_p3 *q,
                            const sc *b, const sc *c) {
    if (x4_ifma()) {
        triple_scalarmult_x4(out, p, a, q, b, c);
        return 0;
    }
    if (ge_x4_avx2_available()) {
        ge_triple_scalarmult_avx2(out, p, a, q, b, c);
        return 0;
    }
    const ge_p3 points[2] = {*p, *q};
    const sc scalars[2] = {*a, *b};
    return ge_straus_vartime(out, points, scalars, 2, c);
}

void fe_pow22523_x4(fe out[4], const fe z[4]) {
    if (x4_ifma()) pow22523_x4(out, z);
    else if (ge_x4_avx2_available()) fe_pow22523_avx2(out, z);
    else fe_pow22523_lanes(out, z);
}

void ge_x4_tobytes(uint8_t s[32], const ge_p3 *p) {
    /* One inversion alone: without IFMA the scalar chain is the faster (as for one root). */
    if (!x4_ifma()) {
        ge_tobytes(s, p);
        return;
    }
    fe z[4] = {p->Z, p->Z, p->Z, p->Z}, zinv[4], x, y;
    invert_x4(zinv, z);
    fe_mul(&x, &p->X, &zinv[0]);
    fe_mul(&y, &p->Y, &zinv[0]);
    fe_tobytes(s, &y);
    s[31] ^= (uint8_t)(fe_is_negative(&x) << 7);
}

#else /* not x86-64 GCC/Clang: the scalar code */

static int x4_ifma(void) { return 0; }

int ge_x4_available(void) { return 0; }

int ge_triple_scalarmult_x4(ge_p3 *out, const ge_p3 *p, const sc *a, const ge_p3 *q,
                            const sc *b, const sc *c) {
    const ge_p3 points[2] = {*p, *q};
    const sc scalars[2] = {*a, *b};
    return ge_straus_vartime(out, points, scalars, 2, c);
}

void fe_pow22523_x4(fe out[4], const fe z[4]) { fe_pow22523_lanes(out, z); }

void ge_x4_tobytes(uint8_t s[32], const ge_p3 *p) { ge_tobytes(s, p); }

void ge_double_scalarmult_x4(ge_p3 *out, const ge_p3 *p, const sc *a, const sc *b) {
    ge_cached table[GE_STRAUS_TABLE];
    ge_straus_table(table, p);
    ge_double_scalarmult_table(out, table, a, b);
}

#endif

_Static_assert(FE_LANES == 4, "the fallback of fe_pow22523_x4 is four interleaved chains");

void ge_frombytes_lenient_x4(ge_p3 *p, int *ok, const uint8_t *const *s, int count) {
    if (count < 1 || count > 4) return;
    /* One root alone: the scalar chain beats the AVX2 lanes (5.6 against 7.1 us). */
    if (count == 1 && !x4_ifma()) {
        ok[0] = ge_frombytes_lenient(&p[0], s[0]);
        return;
    }
    fe y[4], u[4], v[4], v3[4], uv7[4], t[4];
    for (int j = 0; j < count; j++) ge_decode_prepare(&y[j], &u[j], &v[j], &v3[j], &uv7[j], s[j]);
    for (int j = count; j < 4; j++) uv7[j] = uv7[0]; /* idle lanes */
    fe_pow22523_x4(t, uv7);
    for (int j = 0; j < count; j++)
        ok[j] = ge_decode_finish(&p[j], &y[j], &u[j], &v[j], &v3[j], &t[j], s[j]);
}
