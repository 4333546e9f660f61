/*
 * [S]B - [k]A for eight independent signatures at once, one per lane of AVX-512 IFMA vectors.
 *
 * Lanes must run the same instructions, so the recoding is by fixed windows rather than
 * wNAF: signed radix-2^5 digits for k (51 windows, digits in [-15, 16]) and signed
 * radix-2^8 digits for S (32 windows, digits in [-127, 128]). Window positions are the same
 * in every lane (multiples of 5 and of 8), so one loop of 250 doublings adds a -A multiple
 * every fifth step and a B multiple every eighth, in all lanes together; only the table
 * entry differs per lane, fetched with gathers (digit 0 fetches the identity entry, a
 * negative digit swaps the halves of the entry with a lane mask).
 *
 *   - A table (per lane): 0..16 times A in cached form (Y+X, Y-X, Z, 2dT), built with 15
 *     additions in the lanes; stored entry-major, lane-minor, so one index vector
 *     (16 * 10 * |d| + lane) fetches one limb for all eight lanes.
 *   - B table (shared, built once): 0..128 times B, affine niels (y+x, y-x, 2dxy), one
 *     padded row per entry: each lane loads its row and a transpose makes the limb vectors
 *     (cheaper than gathers, which win only for the per-lane A table).
 *
 * Cost per eight signatures: 250 doublings and 83 additions, about the point operations of
 * one scalar wNAF verification. The formulas (extended coordinates, a = -1) are complete,
 * so no input point needs special treatment: small-order and mixed-order A are computed
 * like any other, which is what makes the lane result equal the scalar one for every input.
 */
#define _DEFAULT_SOURCE 1
#include "ge_x8.h"

#include <pthread.h>
#include <string.h>

#include "fe_ifma.h"

#define A_W 5
#define A_WINDOWS 51 /* 51 * 5 = 255 bits >= 253 + the final carry */
#define A_ENTRIES 17 /* 0..16 */
#define B_W 8
#define B_WINDOWS 32
#define B_ENTRIES 129 /* 0..128 */

/* The scalar reference: the same result one signature at a time. */
static void dsm_scalar(ge_p3 out[8], const ge_p3 a[8], const sc k[8], const sc s[8]) {
    for (int j = 0; j < 8; j++) {
        ge_p3 neg_a;
        ge_cached table[GE_STRAUS_TABLE];
        ge_p3_neg(&neg_a, &a[j]);
        ge_straus_table(table, &neg_a);
        ge_double_scalarmult_table(&out[j], table, &k[j], &s[j]);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)

#include "ge8_ifma.h"

/* Signed fixed-window digits of a < 2^253: digits in [-(2^(w-1) - 1), 2^(w-1)], with
 * sum digit[i] 2^(w i) = a. windows * w >= 254, so the top digit absorbs the last carry. */
static void recode_fixed(int digit[], const sc *a, int w, int windows) {
    const uint64_t mask = ((uint64_t)1 << w) - 1, half = (uint64_t)1 << (w - 1);
    uint64_t carry = 0;
    for (int i = 0; i < windows; i++) {
        int pos = i * w, idx = pos / 64, bit = pos % 64;
        uint64_t buf = idx < 4 ? a->v[idx] >> bit : 0;
        if (bit > 64 - w && idx + 1 < 4) buf |= a->v[idx + 1] << (64 - bit);
        /* Branch-free: the digits are random, so branches would mispredict half the time. */
        uint64_t d = (buf & mask) + carry;
        carry = (half - d) >> 63; /* d > half */
        digit[i] = (int)d - (int)(carry << w);
    }
}

/* |d| * scale + offset, and bit `lane` of *neg set where d < 0: table indices and lane
 * masks without data-dependent branches. */
static inline int64_t digit_index(int d, int64_t scale, int64_t offset, __mmask8 *neg,
                                  int lane) {
    int sign = d >> 31; /* -1 or 0 */
    *neg = (__mmask8)(*neg | (unsigned)(sign & 1) << lane);
    return (int64_t)((d ^ sign) - sign) * scale + offset;
}

/* ---- the shared B table: j B for j = 0..128, affine niels, limbs carried ---- */

/* Rows of 16 limbs (15 used), so a lane's entry is two aligned vector loads. */
static _Alignas(64) uint64_t b_table[B_ENTRIES][16];
static pthread_once_t b_once = PTHREAD_ONCE_INIT;

static void b_table_init(void) {
    ge_p3 base, cur;
    ge_base_point(&base);
    ge_p3_identity(&cur);
    for (int j = 0; j < B_ENTRIES; j++) {
        ge_niels n;
        ge_p3_to_niels(&n, &cur); /* j = 0: the identity, (1, 1, 0) */
        fe_carry(&n.yplusx);
        fe_carry(&n.yminusx);
        fe_carry(&n.xy2d);
        memcpy(&b_table[j][0], n.yplusx.v, 40);
        memcpy(&b_table[j][5], n.yminusx.v, 40);
        memcpy(&b_table[j][10], n.xy2d.v, 40);
        ge_p3_add(&cur, &cur, &base);
    }
}

/* One B-table entry per lane: offset[j] = 16 |d_j|. */
IFMA_TARGET FE8_INLINE void fetch_niels_8(niels_8 *q, const int64_t offset[8]) {
    const uint64_t *row[8];
    for (int j = 0; j < 8; j++) row[j] = &b_table[0][0] + offset[j];
    __m512i limbs[2 * 8];
    fe8_load_rows(limbs, row, 16);
    for (int k = 0; k < 5; k++) {
        q->ypx.v[k] = limbs[k];
        q->ymx.v[k] = limbs[5 + k];
        q->xy2d.v[k] = limbs[10 + k];
    }
}

/* One A-table entry per lane: the table is u64[A_ENTRIES][20 limbs][8 lanes], and index
 * lane j = 160 |d_j| + j. */
IFMA_TARGET static inline void gather_cached_8(cached_8 *q, const uint64_t *table, __m512i index) {
    fe8 *f[4] = {&q->YpX, &q->YmX, &q->Z, &q->T2d};
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 5; k++)
            f[c]->v[k] = _mm512_i64gather_epi64(index, (const void *)(table + (5 * c + k) * 8), 8);
}

/* table[e] = e a[j] in lane j (cached form), e = 0..16; 15 additions in the lanes. */
IFMA_TARGET static void build_table_8(uint64_t table[A_ENTRIES][20][8], const ge_p3 a[8]) {
    fe8 d2;
    fe8_broadcast(&d2, &FE_D2);
    p3_8 pa;
    {
        const fe *x[8], *y[8], *z[8], *t[8];
        for (int j = 0; j < 8; j++) {
            x[j] = &a[j].X;
            y[j] = &a[j].Y;
            z[j] = &a[j].Z;
            t[j] = &a[j].T;
        }
        fe8_load_lanes(&pa.X, x);
        fe8_load_lanes(&pa.Y, y);
        fe8_load_lanes(&pa.Z, z);
        fe8_load_lanes(&pa.T, t);
    }
    cached_8 ca, e;
    p3_to_cached_8(&ca, &pa, &d2);
    p3_8 cur = pa;
    for (int idx = 0; idx < A_ENTRIES; idx++) {
        if (idx == 0) {
            fe8_set_small(&e.YpX, 1);
            fe8_set_small(&e.YmX, 1);
            fe8_set_small(&e.Z, 1);
            fe8_set_small(&e.T2d, 0);
        } else if (idx == 1) {
            e = ca;
        } else {
            p1p1_8 t;
            add_cached_8(&t, &cur, &ca, 0);
            p1p1_to_p3_8(&cur, &t);
            p3_to_cached_8(&e, &cur, &d2);
        }
        const fe8 *f[4] = {&e.YpX, &e.YmX, &e.Z, &e.T2d};
        for (int c = 0; c < 4; c++)
            for (int k = 0; k < 5; k++)
                _mm512_store_si512((void *)table[idx][5 * c + k], f[c]->v[k]);
    }
}

IFMA_TARGET static void dsm_ifma(ge_p3 out[8], const ge_p3 a[8], const int64_t a_index[A_WINDOWS][8],
                                 const __mmask8 a_neg[A_WINDOWS], const int64_t b_index[B_WINDOWS][8],
                                 const __mmask8 b_neg[B_WINDOWS]) {
    /* The A table, built in the lanes: entry e holds e A. */
    _Alignas(64) uint64_t table[A_ENTRIES][20][8];
    build_table_8(table, a);

    /* The joint double-and-add loop; t starts as the identity (E = 0, F = G = H = 1). */
    p1p1_8 t;
    p1p1_identity_8(&t);
    p2_8 acc2;
    p3_8 acc3;
    for (int i = (A_WINDOWS - 1) * A_W; i >= 0; i--) {
        if (i != (A_WINDOWS - 1) * A_W) dbl_8(&t, &acc2);
        if (i % A_W == 0) {
            cached_8 q;
            int w = i / A_W;
            gather_cached_8(&q, &table[0][0][0], _mm512_loadu_si512((const void *)a_index[w]));
            p1p1_to_p3_8(&acc3, &t);
            add_cached_8(&t, &acc3, &q, a_neg[w]);
        }
        if (i % B_W == 0) {
            niels_8 q;
            int w = i / B_W;
            fetch_niels_8(&q, b_index[w]);
            p1p1_to_p3_8(&acc3, &t);
            add_niels_8(&t, &acc3, &q, b_neg[w]);
        }
        if (i > 0) p1p1_to_p2_8(&acc2, &t);
    }
    p1p1_to_p3_8(&acc3, &t);
    store_p3_8(out, &acc3);
}

/* recode_fixed for the eight lanes at once: index[i] = |digit_i| * scale (+ lane where
 * add_lane), bit j of neg[i] set where lane j's digit is positive (negate_positive) or
 * negative (otherwise). The same digits as recode_fixed, branch-free in vectors. */
IFMA_TARGET static void recode_lanes(int64_t index[][8], __mmask8 neg[], const sc v[8], int w,
                                     int windows, int64_t scale, int add_lane,
                                     int negate_positive) {
    __m512i limb[4];
    for (int l = 0; l < 4; l++)
        limb[l] = _mm512_setr_epi64((long long)v[0].v[l], (long long)v[1].v[l],
                                    (long long)v[2].v[l], (long long)v[3].v[l],
                                    (long long)v[4].v[l], (long long)v[5].v[l],
                                    (long long)v[6].v[l], (long long)v[7].v[l]);
    const __m512i mask = _mm512_set1_epi64((1LL << w) - 1), radix = _mm512_set1_epi64(1LL << w);
    const __m512i half = _mm512_set1_epi64(1LL << (w - 1)), one = _mm512_set1_epi64(1);
    const __m512i zero = _mm512_setzero_si512(), vscale = _mm512_set1_epi64(scale);
    const __m512i lanes = add_lane ? _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7) : zero;
    __m512i carry = zero;
    for (int i = 0; i < windows; i++) {
        int pos = i * w, idx = pos / 64, bit = pos % 64;
        __m512i buf = idx < 4 ? _mm512_srlv_epi64(limb[idx], _mm512_set1_epi64(bit)) : zero;
        if (bit > 64 - w && idx + 1 < 4) {
            __m512i next = _mm512_sllv_epi64(limb[idx + 1], _mm512_set1_epi64(64 - bit));
            buf = _mm512_or_si512(buf, next);
        }
        __m512i d = _mm512_add_epi64(_mm512_and_si512(buf, mask), carry);
        __mmask8 borrow = _mm512_cmpgt_epu64_mask(d, half); /* digit d - 2^w < 0 (or 0) */
        carry = _mm512_maskz_mov_epi64(borrow, one);
        __m512i magnitude = _mm512_mask_sub_epi64(d, borrow, radix, d);
        __mmask8 nonzero = _mm512_test_epi64_mask(magnitude, magnitude);
        neg[i] = (__mmask8)((negate_positive ? ~borrow : borrow) & nonzero);
        _mm512_store_si512((void *)index[i], _mm512_madd52lo_epu64(lanes, magnitude, vscale));
    }
}

void ge_double_scalarmult_base_x8(ge_p3 out[8], const ge_p3 a[8], const sc k[8], const sc s[8]) {
    if (!fe_ifma_available()) {
        dsm_scalar(out, a, k, s);
        return;
    }
    pthread_once(&b_once, b_table_init);
    _Alignas(64) int64_t a_index[A_WINDOWS][8];
    _Alignas(64) int64_t b_index[B_WINDOWS][8];
    __mmask8 a_neg[A_WINDOWS], b_neg[B_WINDOWS];
    /* We add -d A: negate where d > 0. */
    recode_lanes(a_index, a_neg, k, A_W, A_WINDOWS, 160, 1, 1);
    recode_lanes(b_index, b_neg, s, B_W, B_WINDOWS, 16, 0, 0);
    dsm_ifma(out, a, (const int64_t(*)[8])a_index, a_neg, (const int64_t(*)[8])b_index, b_neg);
}

/* ---- one verification spread over the lanes ---- */

/* Lane l covers radix-2^5 digits 7l .. 7l+6 of both scalars, i.e. bits 35l .. 35l+34, so it
 * multiplies [2^(35 l)]P and [2^(35 l)]B: 30 doublings and 14 additions per lane, then the
 * eight lane results are summed. */
#define SPLIT_DIGITS 7
#define SPLIT_WINDOWS (8 * SPLIT_DIGITS) /* 56 >= 51 radix-2^5 digits of a 253-bit scalar */

static _Alignas(64) uint64_t b_split[A_ENTRIES][20][8];
static pthread_once_t b_split_once = PTHREAD_ONCE_INIT;

/* pts[l] = [2^(35 l)] p. */
static void split_points(ge_p3 pts[8], const ge_p3 *p) {
    pts[0] = *p;
    for (int l = 1; l < 8; l++) {
        ge_p2 q;
        ge_p1p1 t;
        ge_p3_to_p2(&q, &pts[l - 1]);
        for (int i = 0; i < 5 * SPLIT_DIGITS; i++) {
            ge_dbl(&t, &q);
            if (i + 1 < 5 * SPLIT_DIGITS) ge_p1p1_to_p2(&q, &t);
        }
        ge_p1p1_to_p3(&pts[l], &t);
    }
}

static void b_split_init(void) {
    ge_p3 base, pts[8];
    ge_base_point(&base);
    split_points(pts, &base);
    build_table_8(b_split, pts);
}

IFMA_TARGET static void split_ifma(ge_p3 lanes_out[8], const uint64_t (*ptab)[20][8],
                                   const int64_t p_index[SPLIT_DIGITS][8],
                                   const __mmask8 p_neg[SPLIT_DIGITS],
                                   const int64_t b_index[SPLIT_DIGITS][8],
                                   const __mmask8 b_neg[SPLIT_DIGITS]) {
    p1p1_8 t;
    p1p1_identity_8(&t);
    p2_8 acc2;
    p3_8 acc3;
    const int top = (SPLIT_DIGITS - 1) * A_W;
    for (int i = top; i >= 0; i--) {
        if (i != top) dbl_8(&t, &acc2);
        if (i % A_W == 0) {
            cached_8 q;
            int w = i / A_W;
            gather_cached_8(&q, &ptab[0][0][0], _mm512_loadu_si512((const void *)p_index[w]));
            p1p1_to_p3_8(&acc3, &t);
            add_cached_8(&t, &acc3, &q, p_neg[w]);
            gather_cached_8(&q, &b_split[0][0][0], _mm512_loadu_si512((const void *)b_index[w]));
            p1p1_to_p3_8(&acc3, &t);
            add_cached_8(&t, &acc3, &q, b_neg[w]);
        }
        if (i > 0) p1p1_to_p2_8(&acc2, &t);
    }
    p1p1_to_p3_8(&acc3, &t);
    store_p3_8(lanes_out, &acc3);
}

int ge_split_available(void) { return fe_ifma_available(); }

void ge_split_table_init(ge_split_table *table, const ge_p3 *p) {
    ge_p3 pts[8];
    split_points(pts, p);
    build_table_8(table->t, pts);
}

void ge_double_scalarmult_split(ge_p3 *out, const ge_split_table *table, const sc *a,
                                const sc *b) {
    pthread_once(&b_split_once, b_split_init);
    int da[SPLIT_WINDOWS], db[SPLIT_WINDOWS];
    recode_fixed(da, a, A_W, SPLIT_WINDOWS);
    recode_fixed(db, b, A_W, SPLIT_WINDOWS);
    _Alignas(64) int64_t p_index[SPLIT_DIGITS][8];
    _Alignas(64) int64_t b_index[SPLIT_DIGITS][8];
    __mmask8 p_neg[SPLIT_DIGITS], b_neg[SPLIT_DIGITS];
    memset(p_neg, 0, sizeof p_neg);
    memset(b_neg, 0, sizeof b_neg);
    for (int l = 0; l < 8; l++)
        for (int w = 0; w < SPLIT_DIGITS; w++) {
            p_index[w][l] = digit_index(da[SPLIT_DIGITS * l + w], 160, l, &p_neg[w], l);
            b_index[w][l] = digit_index(db[SPLIT_DIGITS * l + w], 160, l, &b_neg[w], l);
        }
    ge_p3 lanes[8];
    split_ifma(lanes, (const uint64_t(*)[20][8])table->t, (const int64_t(*)[8])p_index, p_neg,
               (const int64_t(*)[8])b_index, b_neg);
    *out = lanes[0];
    for (int l = 1; l < 8; l++) ge_p3_add(out, out, &lanes[l]);
}

#else /* not x86-64 GCC/Clang: the scalar code */

void ge_double_scalarmult_base_x8(ge_p3 out[8], const ge_p3 a[8], const sc k[8], const sc s[8]) {
    dsm_scalar(out, a, k, s);
}

int ge_split_available(void) { return 0; }

void ge_split_table_init(ge_split_table *table, const ge_p3 *p) {
    (void)table;
    (void)p;
}

void ge_double_scalarmult_split(ge_p3 *out, const ge_split_table *table, const sc *a,
                                const sc *b) {
    (void)table;
    (void)a;
    (void)b;
    ge_p3_identity(out); /* never called: ge_split_available() is 0 */
}

#endif
