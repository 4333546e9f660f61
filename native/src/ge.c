/* Point decoding/encoding, the base-point table, and the two variable-time multi-scalar
 * multiplications (Straus for a few full-size scalars, Pippenger for many). */
#define _DEFAULT_SOURCE 1
#include "ge.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fe_ifma.h"
#include "tka_native.h"

/* Everything before the exponentiation: y, u = y^2 - 1, v = d y^2 + 1, v^3, and u v^7. */
void ge_decode_prepare(fe *y, fe *u, fe *v, fe *v3, fe *uv7, const uint8_t s[32]) {
    fe y2, v7;
    fe_frombytes(y, s);
    fe_sq(&y2, y);
    fe_sub(u, &y2, &FE_ONE);
    fe_mul(v, &y2, &FE_D);
    fe_add(v, v, &FE_ONE);
    fe_sq(v3, v);
    fe_mul(v3, v3, v);
    fe_sq(&v7, v3);
    fe_mul(&v7, &v7, v);
    fe_mul(uv7, u, &v7);
}

/* Given t = (u v^7)^((p-5)/8), finish: x = u v^3 t is sqrt(u/v) up to a factor sqrt(-1). */
int ge_decode_finish(ge_p3 *p, const fe *y, const fe *u, const fe *v, const fe *v3,
                     const fe *t, const uint8_t s[32]) {
    fe x, vxx;
    fe_mul(&x, u, v3);
    fe_mul(&x, &x, t);
    fe_sq(&vxx, &x);
    fe_mul(&vxx, &vxx, v);
    if (!fe_equal(&vxx, u)) {
        fe neg_u;
        fe_neg(&neg_u, u);
        if (!fe_equal(&vxx, &neg_u)) return 0; /* u/v is not a square: not a point */
        fe_mul(&x, &x, &FE_SQRTM1);
    }
    /* Pick the root whose parity matches the sign bit; for x = 0 both are 0 ("-0"). */
    if (fe_is_negative(&x) != (s[31] >> 7)) fe_neg(&x, &x);
    p->X = x;
    p->Y = *y;
    fe_carry(&p->Y);
    p->Z = FE_ONE;
    fe_mul(&p->T, &x, y);
    return 1;
}

int ge_frombytes_lenient(ge_p3 *p, const uint8_t s[32]) {
    fe y, u, v, v3, uv7, t;
    ge_decode_prepare(&y, &u, &v, &v3, &uv7, s);
    fe_pow22523(&t, &uv7);
    return ge_decode_finish(p, &y, &u, &v, &v3, &t, s);
}

_Static_assert(FE_LANES * 2 == 8, "fe_pow22523_x8 runs two four-lane chains");

void ge_frombytes_lenient_x8(ge_p3 *p, int *ok, const uint8_t *const *s) {
    fe y[8], u[8], v[8], v3[8], uv7[8], t[8];
    for (int j = 0; j < 8; j++) ge_decode_prepare(&y[j], &u[j], &v[j], &v3[j], &uv7[j], s[j]);
    fe_pow22523_x8(t, uv7);
    for (int j = 0; j < 8; j++)
        ok[j] = ge_decode_finish(&p[j], &y[j], &u[j], &v[j], &v3[j], &t[j], s[j]);
}

void ge_frombytes_lenient_x16(ge_p3 *p, int *ok, const uint8_t *const *s) {
    if (!fe_ifma_available()) {
        ge_frombytes_lenient_x8(p, ok, s);
        ge_frombytes_lenient_x8(p + 8, ok + 8, s + 8);
        return;
    }
    ge_decode_x16(p, ok, s);
}

int ge_is_canonical_encoding(const uint8_t s[32], const ge_p3 *decoded) {
    /* y >= p: 2^255 - 19 .. 2^255 - 1 in the low 255 bits. */
    int y_high = s[0] >= 0xed && (s[31] & 0x7f) == 0x7f;
    for (int i = 1; i < 31 && y_high; i++) y_high = s[i] == 0xff;
    if (y_high) return 0;
    return !((s[31] >> 7) && fe_is_zero(&decoded->X)); /* no "-0" */
}

void ge_tobytes(uint8_t s[32], const ge_p3 *p) {
    fe zinv, x, y;
    fe_invert(&zinv, &p->Z);
    fe_mul(&x, &p->X, &zinv);
    fe_mul(&y, &p->Y, &zinv);
    fe_tobytes(s, &y);
    s[31] ^= (uint8_t)(fe_is_negative(&x) << 7);
}

/* ---- base point tables ---- */

static ge_niels base_odd[64]; /* (2i+1) B */
static pthread_once_t base_once = PTHREAD_ONCE_INIT;

void ge_base_point(ge_p3 *b) {
    static const uint8_t b_bytes[32] = {
        0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
        0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    };
    (void)ge_frombytes_lenient(b, b_bytes);
}

void ge_p3_to_niels(ge_niels *r, const ge_p3 *p) {
    fe zinv;
    ge_p3 aff;
    fe_invert(&zinv, &p->Z);
    fe_mul(&aff.X, &p->X, &zinv);
    fe_mul(&aff.Y, &p->Y, &zinv);
    aff.Z = FE_ONE;
    fe_mul(&aff.T, &aff.X, &aff.Y);
    ge_affine_p3_to_niels(r, &aff);
}

static void base_init(void) {
    ge_p3 base_point;
    ge_base_point(&base_point);
    ge_p3 b2, cur = base_point;
    ge_dbl_p3(&b2, &base_point);
    for (int i = 0; i < 64; i++) {
        ge_p3_to_niels(&base_odd[i], &cur);
        ge_p3_add(&cur, &cur, &b2);
    }
}

const ge_niels *ge_base_odd_multiples(void) {
    pthread_once(&base_once, base_init);
    return base_odd;
}

/* ---- Straus ---- */

#define STRAUS_W 5        /* odd multiples P..15P per variable point (GE_STRAUS_TABLE) */
#define BASE_W 8          /* odd multiples B..127B, precomputed */
#define STRAUS_STACK_TERMS 4

void ge_straus_table(ge_cached table[GE_STRAUS_TABLE], const ge_p3 *p) {
    ge_p3 p2, cur = *p;
    ge_dbl_p3(&p2, p);
    ge_p3_to_cached(&table[0], &cur);
    for (int i = 1; i < GE_STRAUS_TABLE; i++) {
        ge_p3_add(&cur, &cur, &p2);
        ge_p3_to_cached(&table[i], &cur);
    }
}

/* The shared double-and-add loop over precomputed tables and NAFs (bnaf may be NULL). */
static void straus_core(ge_p3 *out, const ge_cached (*tables)[GE_STRAUS_TABLE],
                        const int8_t (*nafs)[256], size_t m, const int8_t *bnaf, int top) {
    ge_p3_identity(out);
    if (top < 0) return;
    const ge_niels *btab = ge_base_odd_multiples();
    ge_p2 acc;
    ge_p1p1 t;
    ge_p3 u;
    ge_p2_identity(&acc);
    for (int i = top; i >= 0; i--) {
        ge_dbl(&t, &acc);
        for (size_t j = 0; j < m; j++) {
            int d = nafs[j][i];
            if (d == 0) continue;
            ge_p1p1_to_p3(&u, &t);
            if (d > 0) ge_add_cached(&t, &u, &tables[j][d / 2], 0);
            else ge_add_cached(&t, &u, &tables[j][(-d) / 2], 1);
        }
        if (bnaf != NULL && bnaf[i] != 0) {
            int d = bnaf[i];
            ge_p1p1_to_p3(&u, &t);
            if (d > 0) ge_add_niels(&t, &u, &btab[d / 2], 0);
            else ge_add_niels(&t, &u, &btab[(-d) / 2], 1);
        }
        if (i > 0) ge_p1p1_to_p2(&acc, &t);
    }
    ge_p1p1_to_p3(out, &t);
}

int ge_straus_vartime(ge_p3 *out, const ge_p3 *points, const sc *scalars, size_t m,
                      const sc *b_scalar) {
    ge_cached stack_tables[STRAUS_STACK_TERMS][GE_STRAUS_TABLE];
    int8_t stack_nafs[STRAUS_STACK_TERMS][256];
    ge_cached (*tables)[GE_STRAUS_TABLE] = stack_tables;
    int8_t (*nafs)[256] = stack_nafs;
    void *heap = NULL;
    if (m > STRAUS_STACK_TERMS) {
        heap = malloc(m * (sizeof(ge_cached) * GE_STRAUS_TABLE + 256));
        if (heap == NULL) return TKA_ERR_NOMEM;
        tables = (ge_cached(*)[GE_STRAUS_TABLE])heap;
        nafs = (int8_t(*)[256])((uint8_t *)heap + m * sizeof(ge_cached) * GE_STRAUS_TABLE);
    }
    int8_t bnaf[256];
    int top = -1;
    if (b_scalar != NULL) top = sc_naf(bnaf, b_scalar, BASE_W);
    for (size_t j = 0; j < m; j++) {
        int t = sc_naf(nafs[j], &scalars[j], STRAUS_W);
        if (t > top) top = t;
        ge_straus_table(tables[j], &points[j]);
    }
    straus_core(out, (const ge_cached(*)[GE_STRAUS_TABLE])tables, (const int8_t(*)[256])nafs, m,
                b_scalar != NULL ? bnaf : NULL, top);
    free(heap);
    return 0;
}

void ge_double_scalarmult_table(ge_p3 *out, const ge_cached table[GE_STRAUS_TABLE], const sc *a,
                                const sc *b) {
    int8_t anaf[1][256], bnaf[256];
    int top = sc_naf(anaf[0], a, STRAUS_W);
    int tb = sc_naf(bnaf, b, BASE_W);
    if (tb > top) top = tb;
    straus_core(out, (const ge_cached(*)[GE_STRAUS_TABLE])table, (const int8_t(*)[256])anaf, 1,
                bnaf, top);
}

/* ---- Pippenger ---- */

/* Rough cost in field multiplications of a window width c, to pick the best one: per window,
 * n mixed additions (7 multiplications) and two full additions per bucket for the running
 * sums (9 each, taken as 13 with the bookkeeping). With IFMA both run in eight lanes, but the
 * running sums transpose twice as many words per multiplication, so buckets weigh relatively
 * less (15 against 7; from C at n = 65,536 this picks c = 13, 570k against 548k sig/s). */
static double pippenger_cost(size_t n, int nbits, int c, double bucket_weight) {
    int windows = (nbits + 1 + c - 1) / c;
    double buckets = (double)((size_t)1 << (c - 1));
    return windows * (7.0 * (double)n + bucket_weight * buckets + 7.0 * c);
}

static int pippenger_window(size_t n, int nbits, int lanes) {
    const double weight = lanes ? 15.0 : 26.0;
    int best = 2;
    for (int c = 3; c <= 16; c++)
        if (pippenger_cost(n, nbits, c, weight) < pippenger_cost(n, nbits, best, weight)) best = c;
    return best;
}

/* Run the (fewer than eight) queued bucket additions one by one. */
static void pippenger_flush(ge_p3 *buckets, const ge_niels *points, const uint32_t *qb,
                            const uint32_t *qp, uint8_t qneg, int queued) {
    for (int q = 0; q < queued; q++) {
        ge_p1p1 t;
        ge_add_niels(&t, &buckets[qb[q]], &points[qp[q]], (qneg >> q) & 1);
        ge_p1p1_to_p3(&buckets[qb[q]], &t);
    }
}

int ge_pippenger_vartime(ge_p3 *out, const ge_niels *points, const sc *scalars, size_t n,
                         int nbits) {
    ge_p3_identity(out);
    if (n == 0) return 0;
    const int ifma = fe_ifma_available() && n <= UINT32_MAX;
    const int c = pippenger_window(n, nbits, ifma);
    const int windows = (nbits + 1 + c - 1) / c;
    const size_t nbuckets = (size_t)1 << (c - 1);
    const uint64_t mask = ((uint64_t)1 << c) - 1;
    int16_t *digits = malloc(sizeof(int16_t) * n * (size_t)windows);
    ge_p3 *buckets = malloc(sizeof(ge_p3) * nbuckets);
    uint8_t *used = malloc(nbuckets);
    if (digits == NULL || buckets == NULL || used == NULL) {
        free(digits);
        free(buckets);
        free(used);
        return TKA_ERR_NOMEM;
    }
    /* Signed digits in [-(2^(c-1) - 1), 2^(c-1)]: with windows*c >= nbits+1 the top digit
     * never needs a carry out. Stored window-major for a sequential inner loop. */
    for (size_t i = 0; i < n; i++) {
        const uint64_t *x = scalars[i].v;
        uint64_t carry = 0;
        for (int w = 0; w < windows; w++) {
            int pos = w * c, idx = pos / 64, bit = pos % 64;
            uint64_t buf = idx < 4 ? x[idx] >> bit : 0;
            if (bit > 64 - c && idx + 1 < 4) buf |= x[idx + 1] << (64 - bit);
            uint64_t d = (buf & mask) + carry;
            if (d > nbuckets) {
                digits[(size_t)w * n + i] = (int16_t)((int64_t)d - (int64_t)(mask + 1));
                carry = 1;
            } else {
                digits[(size_t)w * n + i] = (int16_t)d;
                carry = 0;
            }
        }
    }
    int first = 1;
    for (int w = windows - 1; w >= 0; w--) {
        if (!first)
            for (int k = 0; k < c; k++) ge_dbl_p3(out, out);
        memset(used, 0, nbuckets);
        const int16_t *dw = digits + (size_t)w * n;
        ge_p1p1 t;
        /* With IFMA, additions are queued and run eight at a time, as long as the eight
         * target distinct buckets (a repeat flushes the queue first). */
        uint32_t qb[8], qp[8];
        uint8_t qneg = 0;
        int queued = 0;
        for (size_t i = 0; i < n; i++) {
            int d = dw[i];
            if (d == 0) continue;
            size_t b = (size_t)(d > 0 ? d : -d) - 1;
            if (!used[b]) {
                ge_p3_identity(&buckets[b]);
                used[b] = 1;
            }
            if (!ifma) {
                ge_add_niels(&t, &buckets[b], &points[i], d < 0);
                ge_p1p1_to_p3(&buckets[b], &t);
                continue;
            }
            for (int q = 0; q < queued; q++)
                if (qb[q] == b) {
                    pippenger_flush(buckets, points, qb, qp, qneg, queued);
                    queued = 0;
                    qneg = 0;
                    break;
                }
            qb[queued] = (uint32_t)b;
            qp[queued] = (uint32_t)i;
            if (d < 0) qneg |= (uint8_t)(1u << queued);
            if (++queued == 8) {
                ge_bucket_madd8(buckets, qb, points, qp, qneg);
                queued = 0;
                qneg = 0;
            }
        }
        pippenger_flush(buckets, points, qb, qp, qneg, queued);
        if (ifma && nbuckets >= 64) {
            ge_p3 sum;
            for (size_t b = 0; b < nbuckets; b++)
                if (!used[b]) ge_p3_identity(&buckets[b]);
            ge_bucket_weighted_sum8(&sum, buckets, nbuckets);
            ge_p3_add(out, out, &sum);
            first = 0;
            continue;
        }
        /* sum_b (b+1) * bucket[b] by running sums from the top bucket down. */
        ge_p3 running, sum;
        int have_running = 0, have_sum = 0;
        for (size_t b = nbuckets; b-- > 0;) {
            if (used[b]) {
                if (have_running) ge_p3_add(&running, &running, &buckets[b]);
                else running = buckets[b];
                have_running = 1;
            }
            if (have_running) {
                if (have_sum) ge_p3_add(&sum, &sum, &running);
                else sum = running;
                have_sum = 1;
            }
        }
        if (have_sum) ge_p3_add(out, out, &sum);
        first = 0;
    }
    free(digits);
    free(buckets);
    free(used);
    return 0;
}
