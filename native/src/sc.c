/* Scalar arithmetic mod L: Barrett reduction of 512-bit values, products for the batch
 * coefficients, and wNAF recoding. Variable time (all inputs are public). */
#include "sc.h"

#include <string.h>

#include "fe.h" /* tka_u128 */

static const uint64_t L_LIMBS[4] = {0x5812631a5cf5d3edULL, 0x14def9dea2f79cd6ULL, 0, 0x1000000000000000ULL};
/* mu = floor(2^512 / L), 5 limbs. */
static const uint64_t MU[5] = {0xed9ce5a30a2c131bULL, 0x2106215d086329a7ULL, 0xffffffffffffffebULL,
                               0xffffffffffffffffULL, 0xfULL};

static uint64_t load64_le(const uint8_t *p) {
    uint64_t x = 0;
    for (int j = 7; j >= 0; j--) x = (x << 8) | p[j];
    return x;
}

int sc_is_canonical(const uint8_t s[32]) {
    for (int i = 3; i >= 0; i--) {
        uint64_t w = load64_le(s + 8 * i);
        if (w < L_LIMBS[i]) return 1;
        if (w > L_LIMBS[i]) return 0;
    }
    return 0; /* equal to L */
}

void sc_from_bytes(sc *r, const uint8_t s[32]) {
    for (int i = 0; i < 4; i++) r->v[i] = load64_le(s + 8 * i);
}

/* out[0..na+nb) = a * b (schoolbook). */
static void mp_mul(uint64_t *out, const uint64_t *a, int na, const uint64_t *b, int nb) {
    memset(out, 0, sizeof(uint64_t) * (size_t)(na + nb));
    for (int i = 0; i < na; i++) {
        uint64_t carry = 0;
        for (int j = 0; j < nb; j++) {
            tka_u128 t = (tka_u128)a[i] * b[j] + out[i + j] + carry;
            out[i + j] = (uint64_t)t;
            carry = (uint64_t)(t >> 64);
        }
        out[i + nb] = carry;
    }
}

/* r -= b over n limbs; returns the borrow. */
static uint64_t mp_sub(uint64_t *r, const uint64_t *b, int n) {
    uint64_t borrow = 0;
    for (int i = 0; i < n; i++) {
        tka_u128 t = (tka_u128)r[i] - b[i] - borrow;
        r[i] = (uint64_t)t;
        borrow = (uint64_t)(t >> 64) & 1;
    }
    return borrow;
}

static int ge_L5(const uint64_t r[5]) {
    if (r[4] != 0) return 1;
    for (int i = 3; i >= 0; i--) {
        if (r[i] > L_LIMBS[i]) return 1;
        if (r[i] < L_LIMBS[i]) return 0;
    }
    return 1;
}

/* Barrett reduction (HAC 14.42, base 2^64, k = 4). */
void sc_reduce_wide(sc *r, const sc_wide *x) {
    uint64_t q2[10], r2[9], rr[5];
    mp_mul(q2, x->v + 3, 5, MU, 5);
    /* q3 = q2 >> 320 = q2[5..9]; r2 = (q3 * L) mod 2^320. */
    mp_mul(r2, q2 + 5, 5, L_LIMBS, 4);
    memcpy(rr, x->v, sizeof rr);
    mp_sub(rr, r2, 5); /* mod 2^320: the borrow is irrelevant */
    uint64_t l5[5] = {L_LIMBS[0], L_LIMBS[1], L_LIMBS[2], L_LIMBS[3], 0};
    while (ge_L5(rr)) mp_sub(rr, l5, 5);
    memcpy(r->v, rr, sizeof r->v);
}

void sc_from_bytes_wide(sc *r, const uint8_t s[64]) {
    sc_wide w;
    for (int i = 0; i < 8; i++) w.v[i] = load64_le(s + 8 * i);
    sc_reduce_wide(r, &w);
}

void sc_wide_muladd128(sc_wide *acc, const sc *a, const sc *b) {
    uint64_t p[6];
    mp_mul(p, a->v, 2, b->v, 4);
    uint64_t carry = 0;
    for (int i = 0; i < 8; i++) {
        tka_u128 t = (tka_u128)acc->v[i] + (i < 6 ? p[i] : 0) + carry;
        acc->v[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
}

void sc_mul(sc *r, const sc *a, const sc *b) {
    sc_wide product;
    mp_mul(product.v, a->v, 4, b->v, 4);
    sc_reduce_wide(r, &product);
}

int sc_is_zero(const sc *a) { return (a->v[0] | a->v[1] | a->v[2] | a->v[3]) == 0; }

void sc_negate(sc *r, const sc *a) {
    if (sc_is_zero(a)) {
        *r = *a;
        return;
    }
    uint64_t t[4] = {L_LIMBS[0], L_LIMBS[1], L_LIMBS[2], L_LIMBS[3]};
    mp_sub(t, a->v, 4);
    memcpy(r->v, t, sizeof t);
}

int sc_naf(int8_t naf[256], const sc *a, int w) {
    uint64_t x[5] = {a->v[0], a->v[1], a->v[2], a->v[3], 0};
    const uint64_t width = (uint64_t)1 << w, mask = width - 1;
    memset(naf, 0, 256);
    int top = -1;
    uint64_t carry = 0;
    int pos = 0;
    while (pos < 256) {
        int idx = pos / 64, bit = pos % 64;
        uint64_t buf = x[idx] >> bit;
        if (bit > 64 - w) buf |= x[idx + 1] << (64 - bit);
        uint64_t window = carry + (buf & mask);
        if ((window & 1) == 0) {
            /* Without a carry, a run of zero bits is all zero digits: skip it at once (the
             * upper half of a 128-bit scalar is one step, not 128). */
            if (carry == 0) pos += buf != 0 ? __builtin_ctzll(buf) : 64 - bit;
            else pos++;
            continue;
        }
        if (window < width / 2) {
            carry = 0;
            naf[pos] = (int8_t)window;
        } else {
            carry = 1;
            naf[pos] = (int8_t)((int64_t)window - (int64_t)width);
        }
        top = pos;
        pos += w;
    }
    return top;
}
