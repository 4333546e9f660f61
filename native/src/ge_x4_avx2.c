/*
 * The four-lane point arithmetic of ge_x4.c for CPUs with AVX2 but without AVX-512 IFMA (Zen
 * 3, most Intel client parts), on the ten-limb field of fe4_avx2.h: lane j holds coordinate
 * j of the point (X, Y, Z, T), or the j-th of four independent elements in the exponentiation
 * chains. The point formulas are the regrouped ones of ge_x4.c (a doubling is one four-lane
 * squaring and one four-lane multiplication, an addition two multiplications); masked lane
 * additions become blends.
 */
/* GCC leaves its first scheduling pass off on x86; here, where every field element is ten
 * vectors and AVX2 has sixteen registers, scheduling for register pressure spills far less:
 * [a]P + [b]B 40 -> 30 us, the four-lane exponentiation 6.8 -> 6.0 us (Zen 3, GCC 12). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("schedule-insns", "sched-pressure")
#endif

#include "ge_x4_avx2.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <pthread.h>

#include "fe4_avx2.h"

/* From the products (A, B, C, D) of an addition: (E, G, F, E) and (F, H, G, H) with
 * E = B-A, F = D-C, G = D+C, H = B+A. */
A4_TARGET static inline void a4_finish_add(fe4 *w1, fe4 *w2, const fe4 *m) {
    A4_UNROLL
    for (int k = 0; k < 10; k++) {
        __m256i p4 = p4_limb(k);
        __m256i a1 = _mm256_add_epi64(_mm256_permute4x64_epi64(m->v[k], LANES(1, 3, 3, 1)), p4);
        __m256i b1 = _mm256_permute4x64_epi64(m->v[k], LANES(0, 2, 2, 0));
        a1 = ADD_IN(a1, 0x2, b1);
        w1->v[k] = SUB_IN(a1, 0xd, b1);
        __m256i a2 = _mm256_add_epi64(_mm256_permute4x64_epi64(m->v[k], LANES(3, 1, 3, 1)), p4);
        __m256i b2 = _mm256_permute4x64_epi64(m->v[k], LANES(2, 0, 2, 0));
        a2 = ADD_IN(a2, 0xe, b2);
        w2->v[k] = SUB_IN(a2, 0x1, b2);
    }
    fe4_carry(w2); /* w1 is a first factor */
}

/* r = 2p (T of p unused). */
A4_TARGET static void a4_dbl(fe4 *r, const fe4 *p) {
    fe4 v, sq, w1, w2;
    A4_UNROLL
    for (int k = 0; k < 10; k++) {
        __m256i x = _mm256_permute4x64_epi64(p->v[k], LANES(0, 1, 2, 0));
        __m256i y = _mm256_permute4x64_epi64(p->v[k], LANES(0, 1, 2, 1));
        v.v[k] = ADD_IN(x, 0x8, y); /* (X, Y, Z, X + Y), limbs below 2^27 */
    }
    fe4_sq(&sq, &v); /* (A, B, C, S) */
    A4_UNROLL
    for (int k = 0; k < 10; k++) {
        __m256i p4 = p4_limb(k);
        __m256i a = _mm256_add_epi64(_mm256_permute4x64_epi64(sq.v[k], LANES(0, 0, 0, 0)), p4);
        __m256i b = _mm256_permute4x64_epi64(sq.v[k], LANES(1, 1, 1, 1));
        __m256i e = _mm256_permute4x64_epi64(sq.v[k], LANES(3, 3, 2, 3)); /* S, S, C, S */
        /* w1 = (E, G, F, E) = (A+B-S, A-B, A-B+2C, A+B-S) */
        __m256i t = ADD_IN(a, 0x9, b);
        t = SUB_IN(t, 0x6, b);
        t = SUB_IN(t, 0x9, e);
        w1.v[k] = ADD_IN(t, 0x4, _mm256_add_epi64(e, e));
        /* w2 = (F, H, G, H) = (A-B+2C, A+B, A-B, A+B) */
        __m256i c2 = _mm256_permute4x64_epi64(sq.v[k], LANES(2, 2, 2, 2));
        __m256i u = ADD_IN(a, 0xa, b);
        u = SUB_IN(u, 0x5, b);
        w2.v[k] = ADD_IN(u, 0x1, _mm256_add_epi64(c2, c2));
    }
    fe4_carry(&w2); /* w1 is a first factor */
    fe4_mul(r, &w1, &w2);
}

/* (Y - X, Y + X, T, Z) of p, a first factor (limbs below 2^29). */
A4_TARGET static inline void a4_sum_diff(fe4 *u, const fe4 *p) {
    A4_UNROLL
    for (int k = 0; k < 10; k++) {
        __m256i y = _mm256_permute4x64_epi64(p->v[k], LANES(1, 1, 3, 2));
        __m256i x = _mm256_permute4x64_epi64(p->v[k], LANES(0, 0, 0, 0));
        y = ADD_IN(y, 0x1, p4_limb(k));
        y = SUB_IN(y, 0x1, x);
        u->v[k] = ADD_IN(y, 0x2, x);
    }
}

/* r = p + q for q in cached form (Y-X, Y+X, 2d T, 2Z). */
A4_TARGET static void a4_add(fe4 *r, const fe4 *p, const fe4 *q) {
    fe4 u, m, w1, w2;
    a4_sum_diff(&u, p);
    fe4_mul(&m, &u, q);
    a4_finish_add(&w1, &w2, &m);
    fe4_mul(r, &w1, &w2);
}

A4_TARGET static void a4_from_p3(fe4 *r, const ge_p3 *p) {
    fe4_from_fe(r, &p->X, &p->Y, &p->Z, &p->T);
}

A4_TARGET static void a4_to_p3(ge_p3 *r, const fe4 *p) {
    fe4_to_fe(&r->X, &r->Y, &r->Z, &r->T, p);
}

/* The cached form (Y-X, Y+X, 2d T, 2Z) of p, and of -p: (Y+X, Y-X, -2d T, 2Z). */
A4_TARGET static void a4_to_cached(fe4 *pos, fe4 *neg, const fe4 *p) {
    static const fe FE_TWO = {{2, 0, 0, 0, 0}};
    fe4 u, factors;
    a4_sum_diff(&u, p);
    fe4_from_fe(&factors, &FE_ONE, &FE_ONE, &FE_D2, &FE_TWO);
    fe4_mul(pos, &u, &factors);
    A4_UNROLL
    for (int k = 0; k < 10; k++) {
        __m256i swapped = _mm256_permute4x64_epi64(pos->v[k], LANES(1, 0, 2, 3));
        neg->v[k] = _mm256_blend_epi32(swapped, _mm256_sub_epi64(p4_limb(k), swapped), DW(0x4));
    }
    fe4_carry(neg);
}

/* Static cached tables of +-B, +-3B, ..., +-127B and of the same multiples of [2^128]B, as
 * plain limbs. */
#define A4_BASE_ODD 64
typedef uint64_t a4_entry[10][4];
static _Alignas(32) a4_entry base_table[A4_BASE_ODD][2];
static _Alignas(32) a4_entry base128_table[A4_BASE_ODD][2];
static pthread_once_t base_tables_once = PTHREAD_ONCE_INIT;

A4_TARGET static void a4_store(a4_entry out, const fe4 *f) {
    for (int k = 0; k < 10; k++) _mm256_store_si256((__m256i *)(void *)out[k], f->v[k]);
}

A4_TARGET static inline void a4_load(fe4 *f, const a4_entry in) {
    A4_UNROLL
    for (int k = 0; k < 10; k++) f->v[k] = _mm256_load_si256((const __m256i *)(const void *)in[k]);
}

/* Odd multiples q, 3q, ..., (2 count - 1) q of a point, cached with their negations. */
A4_TARGET static void a4_odd_multiples(fe4 (*table)[2], int count, const ge_p3 *q) {
    fe4 pt, q2, q2_cached, unused;
    a4_from_p3(&pt, q);
    a4_dbl(&q2, &pt);
    a4_to_cached(&q2_cached, &unused, &q2);
    a4_to_cached(&table[0][0], &table[0][1], &pt);
    for (int i = 1; i < count; i++) {
        a4_add(&pt, &pt, &q2_cached);
        a4_to_cached(&table[i][0], &table[i][1], &pt);
    }
}

A4_TARGET static void base_tables_init(void) {
    fe4 (*tmp)[2] = aligned_alloc(32, sizeof(fe4) * 2 * A4_BASE_ODD);
    if (tmp == NULL) abort(); /* 40 KiB, once per process */
    ge_p3 b;
    ge_base_point(&b);
    a4_odd_multiples(tmp, A4_BASE_ODD, &b);
    for (int i = 0; i < A4_BASE_ODD; i++)
        for (int s = 0; s < 2; s++) a4_store(base_table[i][s], &tmp[i][s]);
    for (int i = 0; i < 128; i++) ge_dbl_p3(&b, &b);
    a4_odd_multiples(tmp, A4_BASE_ODD, &b);
    for (int i = 0; i < A4_BASE_ODD; i++)
        for (int s = 0; s < 2; s++) a4_store(base128_table[i][s], &tmp[i][s]);
    free(tmp);
}

static void base_tables_init_once(void) { base_tables_init(); }

#define A4_POINT_ODD 8 /* width-5 NAF: P, 3P, ..., 15P */

A4_TARGET static inline void a4_add_digit(fe4 *acc, const fe4 table[A4_POINT_ODD][2], int d) {
    if (d > 0) a4_add(acc, acc, &table[d / 2][0]);
    else if (d < 0) a4_add(acc, acc, &table[(-d) / 2][1]);
}

A4_TARGET static inline void a4_add_base_digit(fe4 *acc, const a4_entry tab[][2], int d) {
    if (d == 0) return;
    fe4 entry;
    a4_load(&entry, tab[(d > 0 ? d : -d) / 2][d < 0]);
    a4_add(acc, acc, &entry);
}

A4_TARGET static void a4_identity(fe4 *acc) {
    ge_p3 identity;
    ge_p3_identity(&identity);
    a4_from_p3(acc, &identity);
}

A4_TARGET void ge_double_scalarmult_avx2(ge_p3 *out, const ge_p3 *p, const sc *a, const sc *b) {
    pthread_once(&base_tables_once, base_tables_init_once);
    int8_t anaf[256], bnaf[256];
    int top = sc_naf(anaf, a, 5), t;
    if ((t = sc_naf(bnaf, b, 8)) > top) top = t;
    if (top < 0) {
        ge_p3_identity(out);
        return;
    }
    fe4 table[A4_POINT_ODD][2], acc;
    a4_odd_multiples(table, A4_POINT_ODD, p);
    a4_identity(&acc);
    for (int i = top; i >= 0; i--) {
        a4_dbl(&acc, &acc);
        a4_add_digit(&acc, table, anaf[i]);
        a4_add_base_digit(&acc, base_table, bnaf[i]);
    }
    a4_to_p3(out, &acc);
}

A4_TARGET void ge_triple_scalarmult_avx2(ge_p3 *out, const ge_p3 *p, const sc *a, const ge_p3 *q,
                                         const sc *b, const sc *c) {
    pthread_once(&base_tables_once, base_tables_init_once);
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
    fe4 ptable[A4_POINT_ODD][2], qtable[A4_POINT_ODD][2], acc;
    a4_odd_multiples(ptable, A4_POINT_ODD, p);
    a4_odd_multiples(qtable, A4_POINT_ODD, q);
    a4_identity(&acc);
    for (int i = top; i >= 0; i--) {
        a4_dbl(&acc, &acc);
        a4_add_digit(&acc, ptable, anaf[i]);
        a4_add_digit(&acc, qtable, bnaf[i]);
        a4_add_base_digit(&acc, base_table, lo_naf[i]);
        a4_add_base_digit(&acc, base128_table, hi_naf[i]);
    }
    a4_to_p3(out, &acc);
}

A4_TARGET static void fe4_sqn(fe4 *h, const fe4 *f, int n) {
    fe4_sq(h, f);
    for (int i = 1; i < n; i++) fe4_sq(h, h);
}

/* t = x^(2^250 - 1), lane-wise (the square root's prefix; an inversion alone is faster on the
 * scalar chain). A second chain interleaved with this one (eight inputs) measured no faster:
 * the four lanes already keep the multiplier busy. */
A4_TARGET static void fe4_pow2_250_1(fe4 *t, const fe4 *x) {
    fe4 z2, z9, z11, z5, z10, z20, z50, z100;
    fe4_sq(&z2, x);
    fe4_sqn(t, &z2, 2);
    fe4_mul(&z9, t, x);
    fe4_mul(&z11, &z9, &z2);
    fe4_sq(t, &z11);
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

A4_TARGET void fe_pow22523_avx2(fe out[4], const fe z[4]) {
    fe4 x, t;
    fe4_from_fe(&x, &z[0], &z[1], &z[2], &z[3]);
    fe4_pow2_250_1(&t, &x);
    fe4_sqn(&t, &t, 2);
    fe4_mul(&t, &t, &x); /* 2^252 - 3 */
    fe4_to_fe(&out[0], &out[1], &out[2], &out[3], &t);
}

int ge_x4_avx2_available(void) {
    /* TKA_NATIVE_NO_AVX2=1 forces the scalar code (to test it on AVX2 machines). */
    static volatile int cached = -1;
    if (cached < 0) {
        const char *off = getenv("TKA_NATIVE_NO_AVX2");
        __builtin_cpu_init();
        cached = (off == NULL || off[0] == '\0' || off[0] == '0') && __builtin_cpu_supports("avx2");
    }
    return cached;
}

#else /* not x86-64 GCC/Clang */

int ge_x4_avx2_available(void) { return 0; }

#endif
