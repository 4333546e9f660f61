/*
 * Straus multi-scalar multiplication in eight AVX-512 IFMA lanes, for the small ranges of
 * batch verification (up to 2,048 signatures: R points with 128-bit scalars, A points with
 * full-size ones, and B).
 *
 * Eight accumulators, one per lane, double together; they all stand at the same bit
 * position, so any nonzero digit of any term can be added into any lane. At each position the
 * nonzero digits of all terms (signed odd digits |d| <= 15 over the term's P..15P, and B's
 * width-8 NAF over static B..127B) are dealt to the lanes eight at a time, so the additions of
 * one step take ceil(count / 8) rounds whatever the terms; idle lanes of a last round add the
 * identity. At the end the eight lane results are summed. The formulas are complete, so
 * small-order, mixed-order and repeated points and the identity need no special case.
 *
 *   - Digits (straus_ifma): chosen position by position for all terms at once, width-5
 *     windows by default, narrower where that moves a term's next digit from a position whose
 *     rounds are full to one with a free slot (15% fewer rounds for a batch of 64).
 *   - Few full-size scalars (ge_straus_x8): split into 128-bit halves over P and [2^128]P
 *     (and B over B and [2^128]B), so the lanes double 128 times instead of 253.
 *   - Tables: each term's odd multiples are built in the lanes (eight terms at a time) and
 *     stored as rows of 24 limbs (Y+X, Y-X, Z, 2dT, padding), one row per (term, multiple);
 *     a round loads its eight rows and transposes them into limb vectors.
 */
#define _DEFAULT_SOURCE 1
#include "straus_x8.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fe_ifma.h"
#include "ge_x4.h"
#include "tka_native.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include "ge8_ifma.h"

#define TERM_W 5                   /* odd multiples P..15P */
#define TERM_ENTRIES 8
#define BASE_W 8                   /* odd multiples B..127B */
#define BASE_ENTRIES 64
#define IDENTITY_ROW (2 * BASE_ENTRIES)
/* At most this many full-size terms are split in two 128-bit halves (see ge_straus_x8): the
 * 128 doublings per split term (four-lane ge_x4 code, or scalar code without AVX-512 VL)
 * outweigh the 125 lane doublings saved from four terms on (two with the scalar doublings;
 * measured). */
#define SPLIT_MAX_X4 3
#define SPLIT_MAX_SCALAR 1
#define ROW 24                     /* limbs per stored cached point (20 used) */
#define POSITIONS 257              /* NAF digits of a scalar < 2^256 */
#define MAX_TERMS ((size_t)1 << 24)

/* Rows 0..63: (2i+1) B with Z = 1; rows 64..127: (2i+1) [2^128]B; row 128: the identity. */
static _Alignas(64) uint64_t base_rows[IDENTITY_ROW + 1][ROW];
static pthread_once_t base_rows_once = PTHREAD_ONCE_INIT;

static void put_row(uint64_t row[ROW], const fe *ypx, const fe *ymx, const fe *z, const fe *t2d) {
    const fe *f[4] = {ypx, ymx, z, t2d};
    memset(row, 0, ROW * sizeof(uint64_t));
    for (int c = 0; c < 4; c++) {
        fe v = *f[c];
        fe_carry(&v);
        memcpy(row + 5 * c, v.v, sizeof v.v);
    }
}

/* r = [2^128] p (128 doublings): in four lanes where available, else scalar. */
static void times_2_128(ge_p3 *r, const ge_p3 *p) {
    if (ge_x4_available()) {
        static const sc two128 = {{0, 0, 1, 0}}, zero = {{0, 0, 0, 0}};
        ge_double_scalarmult_x4(r, p, &two128, &zero);
        return;
    }
    ge_p2 q;
    ge_p1p1 t;
    ge_p3_to_p2(&q, p);
    for (int i = 0; i < 128; i++) {
        ge_dbl(&t, &q);
        if (i < 127) ge_p1p1_to_p2(&q, &t);
    }
    ge_p1p1_to_p3(r, &t);
}

static void base_rows_init(void) {
    const ge_niels *odd = ge_base_odd_multiples();
    for (int i = 0; i < BASE_ENTRIES; i++)
        put_row(base_rows[i], &odd[i].yplusx, &odd[i].yminusx, &FE_ONE, &odd[i].xy2d);
    ge_p3 base, high, twice, cur;
    ge_base_point(&base);
    times_2_128(&high, &base);
    ge_dbl_p3(&twice, &high);
    cur = high;
    for (int i = 0; i < BASE_ENTRIES; i++) {
        ge_cached c;
        if (i > 0) ge_p3_add(&cur, &cur, &twice);
        ge_p3_to_cached(&c, &cur);
        put_row(base_rows[BASE_ENTRIES + i], &c.YplusX, &c.YminusX, &c.Z, &c.T2d);
    }
    put_row(base_rows[IDENTITY_ROW], &FE_ONE, &FE_ONE, &FE_ONE, &FE_ZERO);
}

/* B's width-8 NAF digits (sc_naf; the base scalar and its halves are < 2^253) as
 * (position, digit) pairs in position order; returns their number. */
static int naf_digits(uint16_t *pos_out, int8_t *dig_out, const sc *a) {
    int8_t naf[256];
    int top = sc_naf(naf, a, BASE_W), n = 0;
    for (int p = 0; p <= top; p++) {
        if (naf[p] == 0) continue;
        pos_out[n] = (uint16_t)p;
        dig_out[n++] = naf[p];
    }
    return n;
}

/* The odd multiples of terms 8g .. 8g+7 (term k is points[k] for k < m0, else
 * extra[k - m0]; lanes past m repeat the last term and are not stored) into
 * rows[(8g + j) * TERM_ENTRIES + e]. */
IFMA_TARGET static void build_tables_8(uint64_t *rows, const ge_p3 *points, size_t m0,
                                       const ge_p3 *extra, size_t m, size_t g) {
    const fe *x[8], *y[8], *z[8], *t[8];
    for (size_t j = 0; j < 8; j++) {
        size_t k = 8 * g + j < m ? 8 * g + j : m - 1;
        const ge_p3 *pt = k < m0 ? &points[k] : &extra[k - m0];
        x[j] = &pt->X;
        y[j] = &pt->Y;
        z[j] = &pt->Z;
        t[j] = &pt->T;
    }
    fe8 d2;
    fe8_broadcast(&d2, &FE_D2);
    p3_8 p, cur;
    fe8_load_lanes(&p.X, x);
    fe8_load_lanes(&p.Y, y);
    fe8_load_lanes(&p.Z, z);
    fe8_load_lanes(&p.T, t);
    p2_8 p2 = {p.X, p.Y, p.Z};
    p1p1_8 s;
    dbl_8(&s, &p2);
    p3_8 twice;
    p1p1_to_p3_8(&twice, &s);
    cached_8 c2, e;
    p3_to_cached_8(&c2, &twice, &d2);
    cur = p;
    for (int idx = 0; idx < TERM_ENTRIES; idx++) {
        if (idx > 0) {
            add_cached_8(&s, &cur, &c2, 0);
            p1p1_to_p3_8(&cur, &s);
        }
        p3_to_cached_8(&e, &cur, &d2);
        __m512i cols[24], out[24];
        const fe8 *f[4] = {&e.YpX, &e.YmX, &e.Z, &e.T2d};
        for (int c = 0; c < 4; c++)
            for (int k = 0; k < 5; k++) cols[5 * c + k] = f[c]->v[k];
        for (int k = 20; k < 24; k++) cols[k] = _mm512_setzero_si512();
        for (int b = 0; b < 3; b++) transpose_8x8(out + 8 * b, cols + 8 * b);
        for (size_t j = 0; j < 8 && 8 * g + j < m; j++) {
            uint64_t *row = rows + ((8 * g + j) * TERM_ENTRIES + (size_t)idx) * ROW;
            for (int b = 0; b < 3; b++) _mm512_store_si512((void *)(row + 8 * b), out[8 * b + j]);
        }
    }
}

/* Lane j of q = the cached point in row ptr[j]. */
IFMA_TARGET FE8_INLINE void fetch_cached_8(cached_8 *q, const uint64_t *const ptr[8]) {
    __m512i limbs[24];
    fe8_load_rows(limbs, ptr, 24);
    for (int k = 0; k < 5; k++) {
        q->YpX.v[k] = limbs[k];
        q->YmX.v[k] = limbs[5 + k];
        q->Z.v[k] = limbs[10 + k];
        q->T2d.v[k] = limbs[15 + k];
    }
}

/* Slots: (row << 2) | (from the base table << 1) | negative. */
IFMA_TARGET static void straus_loop(ge_p3 *out, const uint64_t *rows, const uint32_t *slots,
                                    const uint32_t *start, int top) {
    p1p1_8 t;
    p1p1_identity_8(&t);
    p2_8 acc2;
    fe8_set_small(&acc2.X, 0);
    fe8_set_small(&acc2.Y, 1);
    fe8_set_small(&acc2.Z, 1);
    p3_8 acc3;
    const uint64_t *identity = base_rows[IDENTITY_ROW];
    for (int i = top; i >= 0; i--) {
        if (i != top) dbl_8(&t, &acc2);
        for (uint32_t s = start[i]; s < start[i + 1]; s += 8) {
            const uint64_t *ptr[8];
            __mmask8 neg = 0;
            for (uint32_t j = 0; j < 8; j++) {
                if (s + j < start[i + 1]) {
                    uint32_t v = slots[s + j];
                    const uint64_t *base = (v & 2) ? &base_rows[0][0] : rows;
                    ptr[j] = base + (size_t)(v >> 2) * ROW;
                    neg = (__mmask8)(neg | (v & 1) << j);
                } else {
                    ptr[j] = identity;
                }
            }
            cached_8 q;
            fetch_cached_8(&q, ptr);
            p1p1_to_p3_8(&acc3, &t);
            add_cached_8(&t, &acc3, &q, neg);
        }
        if (i > 0) p1p1_to_p2_8(&acc2, &t);
    }
    p1p1_to_p3_8(&acc3, &t);
    ge_p3 lanes[8];
    store_p3_8(lanes, &acc3);
    *out = lanes[0];
    for (int j = 1; j < 8; j++) ge_p3_add(out, out, &lanes[j]);
}

/* The lowest position >= pos where a term's remaining value (bits of x from pos, plus carry)
 * is odd, or POSITIONS if it is zero from there on. */
static int next_odd(const uint64_t x[4], int pos, uint64_t carry) {
    while (pos < POSITIONS) {
        int idx = pos / 64, bit = pos % 64;
        uint64_t rest = ((idx < 4 ? x[idx] : 0) ^ (0 - carry)) >> bit;
        if (rest != 0) return pos + __builtin_ctzll(rest);
        pos += 64 - bit;
    }
    return POSITIONS;
}

static uint64_t window_at(const uint64_t x[4], int pos, int w) {
    int idx = pos / 64, bit = pos % 64;
    uint64_t buf = idx < 4 ? x[idx] >> bit : 0;
    if (bit > 64 - w && idx + 1 < 4) buf |= x[idx + 1] << (64 - bit);
    return buf & (((uint64_t)1 << w) - 1);
}

/* out = sum_j scalars[j] term[j] + b_scalar B + b_high [2^128]B, where term[j] is points[j]
 * for j < m0 and extra[j - m0] after (b_scalar, b_high may be NULL).
 *
 * The terms' signed digits (odd, |d| <= 15) are chosen position by position for all terms
 * at once, and balanced for the lanes: a digit normally takes a width-5 window (wNAF), but
 * when that would land the term's next digit on a position whose additions fill whole rounds
 * (a ninth digit would open a round for itself), a window of 4 or 3 bits (either sign) that
 * lands on a position with a free slot is taken instead. About 10% more digits, 15% fewer
 * rounds for a batch of 64. Any such representation gives the same sum. */
static int straus_ifma(ge_p3 *out, const ge_p3 *points, size_t m0, const ge_p3 *extra,
                       const sc *scalars, size_t m, const sc *b_scalar, const sc *b_high) {
    size_t groups = (m + 7) / 8;
    size_t row_bytes = groups * 8 * TERM_ENTRIES * ROW * sizeof(uint64_t);
    /* Digits are at least 3 positions apart. */
    size_t dig_cap = m * (POSITIONS / 3 + 1) + 2 * (POSITIONS / BASE_W + 1);
    uint64_t *rows = row_bytes ? aligned_alloc(64, row_bytes) : NULL;
    uint32_t *slots = malloc(dig_cap * sizeof(uint32_t));
    uint32_t *link = malloc((m + 1) * sizeof(uint32_t));
    uint8_t *carry = malloc(m + 1);
    uint16_t bpos[2][POSITIONS / BASE_W + 1];
    int8_t bdig[2][POSITIONS / BASE_W + 1];
    int nb[2] = {0, 0}, bat[2] = {0, 0};
    int rc = TKA_ERR_NOMEM;
    if ((row_bytes && rows == NULL) || slots == NULL || link == NULL || carry == NULL) goto done;
    /* cnt[p]: digits known to fall on position p (B's, and the terms' next digits). */
    uint32_t cnt[POSITIONS + 1], head[POSITIONS + 1], start[POSITIONS + 2];
    memset(cnt, 0, sizeof cnt);
    for (int p = 0; p <= POSITIONS; p++) head[p] = UINT32_MAX;
    for (int half = 0; half < 2; half++) {
        const sc *bs = half ? b_high : b_scalar;
        if (bs == NULL) continue;
        nb[half] = naf_digits(bpos[half], bdig[half], bs);
        for (int k = 0; k < nb[half]; k++) cnt[bpos[half][k]]++;
    }
    for (size_t t = 0; t < m; t++) {
        int q = next_odd(scalars[t].v, 0, 0);
        carry[t] = 0;
        link[t] = head[q];
        head[q] = (uint32_t)t;
        cnt[q]++;
    }
    size_t ns = 0;
    int top = -1;
    for (int p = 0; p < POSITIONS; p++) {
        start[p] = (uint32_t)ns;
        for (int half = 0; half < 2; half++)
            while (bat[half] < nb[half] && bpos[half][bat[half]] == p) {
                int d = bdig[half][bat[half]++];
                uint32_t mag = (uint32_t)(d < 0 ? -d : d);
                slots[ns++] = (((uint32_t)half * BASE_ENTRIES + mag / 2) << 2) | 2 | (d < 0);
            }
        for (uint32_t t = head[p]; t != UINT32_MAX;) {
            uint32_t after = link[t];
            const uint64_t *x = scalars[t].v;
            uint64_t c = carry[t];
            /* The width-5 choice, then narrower ones if it lands on a full position. */
            uint64_t win = c + window_at(x, p, TERM_W);
            uint64_t c5 = (16 - win) >> 63;
            int d = (int)win - (int)(c5 << TERM_W);
            uint64_t cout = c5;
            int q = next_odd(x, p + TERM_W, c5);
            if (q < POSITIONS && cnt[q] % 8 == 0) {
                for (int w = TERM_W - 1; w >= 3; w--) {
                    uint64_t wv = c + window_at(x, p, w);
                    for (uint64_t co = 0; co < 2; co++) {
                        int q2 = next_odd(x, p + w, co);
                        if (q2 >= POSITIONS || cnt[q2] % 8 != 0) {
                            d = (int)wv - (int)(co << w);
                            cout = co;
                            q = q2;
                            goto chosen;
                        }
                    }
                }
            }
        chosen:
            carry[t] = (uint8_t)cout;
            {
                uint32_t mag = (uint32_t)(d < 0 ? -d : d);
                slots[ns++] = ((t * TERM_ENTRIES + mag / 2) << 2) | (d < 0);
            }
            link[t] = head[q];
            head[q] = t;
            cnt[q]++;
            t = after;
        }
        if (ns > start[p]) top = p;
    }
    start[POSITIONS] = (uint32_t)ns;
    if (top < 0) {
        ge_p3_identity(out);
        rc = 0;
        goto done;
    }
    for (size_t g = 0; g < groups; g++) build_tables_8(rows, points, m0, extra, m, g);
    straus_loop(out, rows, slots, start, top);
    rc = 0;
done:
    free(rows);
    free(slots);
    free(link);
    free(carry);
    return rc;
}

int ge_straus_x8(ge_p3 *out, const ge_p3 *points, const sc *scalars, size_t m,
                 const sc *b_scalar) {
    if (!fe_ifma_available() || m > MAX_TERMS)
        return ge_straus_vartime(out, points, scalars, m, b_scalar);
    pthread_once(&base_rows_once, base_rows_init);
    /* With few full-size scalars (the A terms of a batch with few keys; the R terms' are
     * 128-bit), 125 of the lanes' 253 doublings would serve them and B alone: split each
     * into s_lo P + s_hi [2^128]P ([2^128]P by times_2_128), and B's into two terms over
     * static tables, so the lanes double only 128 times. */
    const size_t split_max = ge_x4_available() ? SPLIT_MAX_X4 : SPLIT_MAX_SCALAR;
    size_t nlong = 0;
    for (size_t j = 0; j < m && nlong <= split_max; j++)
        nlong += (scalars[j].v[2] | scalars[j].v[3]) != 0;
    int b_long = b_scalar != NULL && (b_scalar->v[2] | b_scalar->v[3]) != 0;
    if (nlong > split_max || (nlong == 0 && !b_long))
        return straus_ifma(out, points, m, NULL, scalars, m, b_scalar, NULL);
    /* The split terms' [2^128]P follow the given points; scalars are copied (low halves). */
    ge_p3 high[SPLIT_MAX_X4 > SPLIT_MAX_SCALAR ? SPLIT_MAX_X4 : SPLIT_MAX_SCALAR];
    sc *scs = malloc((m + nlong + 1) * sizeof(sc)); /* + 1: never malloc(0) */
    if (scs == NULL) return TKA_ERR_NOMEM;
    if (m > 0) memcpy(scs, scalars, m * sizeof(sc));
    size_t n = m;
    for (size_t j = 0; j < m; j++) {
        if ((scalars[j].v[2] | scalars[j].v[3]) == 0) continue;
        times_2_128(&high[n - m], &points[j]);
        scs[n] = (sc){{scalars[j].v[2], scalars[j].v[3], 0, 0}};
        scs[j].v[2] = scs[j].v[3] = 0;
        n++;
    }
    sc b_lo, b_hi;
    const sc *bl = b_scalar, *bh = NULL;
    if (b_long) {
        b_lo = (sc){{b_scalar->v[0], b_scalar->v[1], 0, 0}};
        b_hi = (sc){{b_scalar->v[2], b_scalar->v[3], 0, 0}};
        bl = &b_lo;
        bh = &b_hi;
    }
    int rc = straus_ifma(out, points, m, high, scs, n, bl, bh);
    free(scs);
    return rc;
}

#else /* not x86-64 GCC/Clang: the scalar code */

int ge_straus_x8(ge_p3 *out, const ge_p3 *points, const sc *scalars, size_t m,
                 const sc *b_scalar) {
    return ge_straus_vartime(out, points, scalars, m, b_scalar);
}

#endif
