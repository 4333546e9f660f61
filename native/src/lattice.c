/*
 * lattice.h: the extended Euclidean algorithm on (8L, k), stopped halfway.
 *
 * The remainders r_i and cofactors t_i keep r_i = t_i k (mod 8L), and |t_i| r_(i-1) <= 8L.
 * At the first r_i below 2^128 the previous remainder is at least 2^128, so |t_i| < 2^127:
 * (k1, k2) = (r_i, t_i). When t_i is even, one more step gives an odd t_(i+1) (consecutive
 * cofactors are coprime), still short unless r_i is unusually small (then |t_(i+1)| is up
 * to 8L / r_i: longer, still correct).
 *
 * Values are 256-bit, little-endian limbs; cofactors are two's complement (|t| < 2^255).
 * Most steps run in Lehmer rounds on the leading 62 bits (lehmer_round); the rest, near
 * 2^128 or where a round cannot decide, are single division steps whose quotient is
 * estimated in double precision and corrected by a few subtractions. The rare step whose
 * quotient exceeds 2^40 gives up instead.
 */
#include "lattice.h"

#include <string.h>

typedef struct {
    uint64_t v[4];
} u256;

__extension__ typedef unsigned __int128 lattice_u128;

/* 8L. */
static const u256 EIGHT_L = {{0xc09318d2e7ae9f68ULL, 0xa6f7cef517bce6b2ULL, 0, 0x8000000000000000ULL}};

static int bit_length(const u256 *a) {
    for (int i = 3; i >= 0; i--)
        if (a->v[i] != 0) return 64 * i + 64 - __builtin_clzll(a->v[i]);
    return 0;
}

static int less_than(const u256 *a, const u256 *b) {
    for (int i = 3; i >= 0; i--)
        if (a->v[i] != b->v[i]) return a->v[i] < b->v[i];
    return 0;
}

static void sub_in_place(u256 *a, const u256 *b) {
    uint64_t borrow = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t x = a->v[i], y = b->v[i];
        uint64_t d = x - y - borrow;
        borrow = (x < y) | ((x == y) & borrow);
        a->v[i] = d;
    }
}

/* out = q b, modulo 2^256. */
static void mul_small(u256 *out, const u256 *b, uint64_t q) {
    uint64_t carry = 0;
    for (int i = 0; i < 4; i++) {
        lattice_u128 p = (lattice_u128)b->v[i] * q + carry;
        out->v[i] = (uint64_t)p;
        carry = (uint64_t)(p >> 64);
    }
}

/* a -= q b, modulo 2^256. */
static void sub_multiple(u256 *a, const u256 *b, uint64_t q) {
    u256 prod;
    mul_small(&prod, b, q);
    sub_in_place(a, &prod);
}

static int is_negative(const u256 *t) { return (int)(t->v[3] >> 63); }

static void negate(u256 *t) {
    u256 zero = {{0, 0, 0, 0}};
    sub_in_place(&zero, t);
    *t = zero;
}

/* Bits [shift, shift + 128) of a. */
static lattice_u128 bits_from(const u256 *a, int shift) {
    lattice_u128 r = 0;
    for (int i = 3; i >= 0; i--) {
        int pos = 64 * i - shift; /* where limb i lands */
        if (pos >= 128 || pos <= -64) continue;
        if (pos >= 0) r |= (lattice_u128)a->v[i] << pos;
        else r |= (lattice_u128)(a->v[i] >> -pos);
    }
    return r;
}

/* (r0, t0) -= q (r1, t1) with q = floor(r0 / r1), r0 >= r1 > 0. 0 if q is too large. */
static int division_step(u256 *r0, u256 *t0, const u256 *r1, const u256 *t1) {
    int n0 = bit_length(r0), n1 = bit_length(r1);
    int spread = n0 - n1;
    if (spread > 40) return 0;
    if (spread > 1) {
        /* Leading bits: b has 64 significant bits (or all of r1), a at most 104. */
        int shift = n1 > 64 ? n1 - 64 : 0;
        lattice_u128 top = bits_from(r0, shift);
        double a = (double)(uint64_t)(top >> 64) * 0x1p64 + (double)(uint64_t)top;
        double b = (double)(uint64_t)bits_from(r1, shift);
        uint64_t q = (uint64_t)(a / (b + 1.0));
        if (q > 0) q--; /* an underestimate despite rounding */
        sub_multiple(r0, r1, q);
        sub_multiple(t0, t1, q);
    }
    while (!less_than(r0, r1)) {
        sub_in_place(r0, r1);
        sub_in_place(t0, t1);
    }
    return 1;
}

/* out = a x, modulo 2^256 (two's complement for a < 0). */
static void mul_signed(u256 *out, const u256 *x, int64_t a) {
    mul_small(out, x, a < 0 ? (uint64_t)0 - (uint64_t)a : (uint64_t)a);
    if (a < 0) negate(out);
}

/* out = a x + b y mod 2^256 (exact where the true value is in range), as a x - (-b) y. */
static void combine(u256 *out, int64_t a, const u256 *x, int64_t b, const u256 *y) {
    u256 by;
    mul_signed(out, x, a);
    mul_signed(&by, y, -b); /* |b| < 2^62: no overflow */
    sub_in_place(out, &by);
}

/* Lehmer's round (Knuth's Algorithm L): the Euclidean steps that the leading 62 bits of
 * (r0, r1) determine, run on single words and applied to both pairs at once as one 2x2
 * matrix. It stops where a quotient is uncertain, and before the remainder could drop below
 * 2^130 (the exact steps near 2^128 are left to division_step). Returns 0 if it did nothing.
 * Requires r0 >= r1 and bit_length(r0) > 128. */
static int lehmer_round(u256 *r0, u256 *t0, u256 *r1, u256 *t1) {
    /* x, y < 2^62 and the cofactors a..d stay within 2^62 in magnitude (they are bounded by
     * the leading word), so every sum below fits an int64 and products wrap harmlessly. */
    int shift = bit_length(r0) - 62;
    if (130 - shift > 61) return 0; /* too close to 2^128 for a round to make progress */
    const uint64_t low62 = ((uint64_t)1 << 62) - 1;
    int64_t x = (int64_t)((uint64_t)bits_from(r0, shift) & low62);
    int64_t y = (int64_t)((uint64_t)bits_from(r1, shift) & low62);
    const int64_t floor_y = shift >= 130 ? 0 : (int64_t)1 << (130 - shift); /* <= 2^61 */
    int64_t a = 1, b = 0, c = 0, d = 1;
    int steps = 0;
    for (;;) {
        int64_t yc = y + c, yd = y + d, xa = x + a, xb = x + b;
        if (yc <= 0 || yd <= 0 || xa < 0 || xb < 0) break;
        uint64_t q = (uint64_t)xa / (uint64_t)yc;
        if (q != (uint64_t)xb / (uint64_t)yd) break;
        int64_t y_next = (int64_t)((uint64_t)x - q * (uint64_t)y);
        int64_t slack = (c < 0 ? -c : c) + (d < 0 ? -d : d);
        if (slack >= ((int64_t)1 << 62) || y_next < floor_y + slack) break;
        int64_t t = (int64_t)((uint64_t)a - q * (uint64_t)c);
        a = c;
        c = t;
        t = (int64_t)((uint64_t)b - q * (uint64_t)d);
        b = d;
        d = t;
        x = y;
        y = y_next;
        steps++;
    }
    if (steps == 0 || b == 0) return 0;
    u256 nr0, nr1, nt0, nt1;
    combine(&nr0, a, r0, b, r1);
    combine(&nr1, c, r0, d, r1);
    /* Any doubt (it should not happen): leave the steps to division_step. */
    if (less_than(&nr0, &nr1) || bit_length(&nr1) <= 128 || is_negative(&nr0) || is_negative(&nr1))
        return 0;
    combine(&nt0, a, t0, b, t1);
    combine(&nt1, c, t0, d, t1);
    *r0 = nr0;
    *r1 = nr1;
    *t0 = nt0;
    *t1 = nt1;
    return 1;
}

static int halve(sc *k1, sc *k2_abs, int *k2_negative, const sc *k) {
    u256 r0 = EIGHT_L, r1, t0 = {{0, 0, 0, 0}}, t1 = {{1, 0, 0, 0}};
    memcpy(r1.v, k->v, sizeof r1.v);
    while (bit_length(&r1) > 128) {
        if (lehmer_round(&r0, &t0, &r1, &t1)) continue;
        if (!division_step(&r0, &t0, &r1, &t1)) return 0;
        u256 r = r0, t = t0;
        r0 = r1;
        t0 = t1;
        r1 = r;
        t1 = t;
    }
    if ((t1.v[0] & 1) == 0) {
        /* One more step: t0 - q t1 is odd because t0 and t1 are coprime. */
        if (bit_length(&r1) == 0 || !division_step(&r0, &t0, &r1, &t1)) return 0;
        r1 = r0;
        t1 = t0;
    }
    int negative = is_negative(&t1);
    if (negative) negate(&t1);
    if (bit_length(&t1) > 252) return 0; /* never seen; keeps every caller's scalar < 2^253 */
    memcpy(k1->v, r1.v, sizeof k1->v);
    memcpy(k2_abs->v, t1.v, sizeof k2_abs->v);
    *k2_negative = negative;
    return 1;
}

int lattice_halve_challenge(sc *k1, sc *k2_abs, int *k2_negative, const sc *k) {
    if (halve(k1, k2_abs, k2_negative, k)) return 1;
    *k1 = *k; /* k1 = 1 k: the full-length equation */
    memset(k2_abs, 0, sizeof *k2_abs);
    k2_abs->v[0] = 1;
    *k2_negative = 0;
    return 0;
}
