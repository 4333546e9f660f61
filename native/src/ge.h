/*
 * edwards25519 group arithmetic in extended twisted Edwards coordinates (a = -1),
 * Hisil–Wong–Carter–Dawson formulas. Variable time: verification only handles public data.
 *
 *   ge_p3     (X:Y:Z:T) with x = X/Z, y = Y/Z, xy = T/Z
 *   ge_p2     (X:Y:Z), enough input for doubling
 *   ge_p1p1   the "completed" result (E, F, G, H) of an addition or doubling;
 *             X = E*F, Y = G*H, Z = F*G, T = E*H
 *   ge_cached (Y+X, Y-X, Z, 2d*T), a p3 point ready to be added
 *   ge_niels  (y+x, y-x, 2d*x*y) for an affine point (Z = 1), the cheapest to add
 */
#ifndef TKA_GE_H
#define TKA_GE_H

#include <stddef.h>
#include <stdint.h>

#include "fe.h"
#include "sc.h"

typedef struct { fe X, Y, Z, T; } ge_p3;
typedef struct { fe X, Y, Z; } ge_p2;
typedef struct { fe E, F, G, H; } ge_p1p1;
typedef struct { fe YplusX, YminusX, Z, T2d; } ge_cached;
typedef struct { fe yplusx, yminusx, xy2d; } ge_niels;

static inline void ge_p3_identity(ge_p3 *p) {
    p->X = FE_ZERO; p->Y = FE_ONE; p->Z = FE_ONE; p->T = FE_ZERO;
}

static inline void ge_p2_identity(ge_p2 *p) {
    p->X = FE_ZERO; p->Y = FE_ONE; p->Z = FE_ONE;
}

static inline void ge_p1p1_to_p3(ge_p3 *r, const ge_p1p1 *p) {
    fe_mul(&r->X, &p->E, &p->F);
    fe_mul(&r->Y, &p->G, &p->H);
    fe_mul(&r->Z, &p->F, &p->G);
    fe_mul(&r->T, &p->E, &p->H);
}

static inline void ge_p1p1_to_p2(ge_p2 *r, const ge_p1p1 *p) {
    fe_mul(&r->X, &p->E, &p->F);
    fe_mul(&r->Y, &p->G, &p->H);
    fe_mul(&r->Z, &p->F, &p->G);
}

static inline void ge_p3_to_p2(ge_p2 *r, const ge_p3 *p) {
    r->X = p->X; r->Y = p->Y; r->Z = p->Z;
}

static inline void ge_p3_to_cached(ge_cached *r, const ge_p3 *p) {
    fe_add(&r->YplusX, &p->Y, &p->X);
    fe_carry(&r->YplusX);
    fe_sub(&r->YminusX, &p->Y, &p->X);
    r->Z = p->Z;
    fe_mul(&r->T2d, &p->T, &FE_D2);
}

/* For a point with Z = 1 (freshly decoded): no inversion needed. */
static inline void ge_affine_p3_to_niels(ge_niels *r, const ge_p3 *p) {
    fe_add(&r->yplusx, &p->Y, &p->X);
    fe_carry(&r->yplusx);
    fe_sub(&r->yminusx, &p->Y, &p->X);
    fe_mul(&r->xy2d, &p->T, &FE_D2);
}

/* r = 2p. With A = X^2, B = Y^2: E = A+B-(X+Y)^2, F = 2Z^2+A-B, G = A-B, H = A+B
 * (each the negation of the textbook value, which leaves the products unchanged). */
static inline void ge_dbl(ge_p1p1 *r, const ge_p2 *p) {
    fe a, b, c, s;
    fe_sq(&a, &p->X);
    fe_sq(&b, &p->Y);
    fe_sq(&c, &p->Z);
    fe_add(&c, &c, &c);
    fe_add(&s, &p->X, &p->Y);
    fe_sq(&s, &s);
    fe_add(&r->H, &a, &b);
    fe_sub(&r->E, &r->H, &s);
    fe_sub(&r->G, &a, &b);
    fe_add(&r->F, &c, &r->G);
}

static inline void ge_dbl_p3(ge_p3 *r, const ge_p3 *p) {
    ge_p2 q;
    ge_p1p1 t;
    ge_p3_to_p2(&q, p);
    ge_dbl(&t, &q);
    ge_p1p1_to_p3(r, &t);
}

/* r = p + q (sign = +1) or p - q (sign = -1) for a cached q. */
static inline void ge_add_cached(ge_p1p1 *r, const ge_p3 *p, const ge_cached *q, int negate) {
    fe a, b, c, d, ypx, ymx;
    fe_add(&ypx, &p->Y, &p->X);
    fe_sub(&ymx, &p->Y, &p->X);
    fe_mul(&a, &ymx, negate ? &q->YplusX : &q->YminusX);
    fe_mul(&b, &ypx, negate ? &q->YminusX : &q->YplusX);
    fe_mul(&c, &p->T, &q->T2d);
    fe_mul(&d, &p->Z, &q->Z);
    fe_add(&d, &d, &d);
    fe_sub(&r->E, &b, &a);
    fe_add(&r->H, &b, &a);
    if (negate) {
        fe_add(&r->F, &d, &c);
        fe_sub(&r->G, &d, &c);
    } else {
        fe_sub(&r->F, &d, &c);
        fe_add(&r->G, &d, &c);
    }
}

/* r = p + q or p - q for an affine (niels) q. */
static inline void ge_add_niels(ge_p1p1 *r, const ge_p3 *p, const ge_niels *q, int negate) {
    fe a, b, c, d, ypx, ymx;
    fe_add(&ypx, &p->Y, &p->X);
    fe_sub(&ymx, &p->Y, &p->X);
    fe_mul(&a, &ymx, negate ? &q->yplusx : &q->yminusx);
    fe_mul(&b, &ypx, negate ? &q->yminusx : &q->yplusx);
    fe_mul(&c, &p->T, &q->xy2d);
    fe_add(&d, &p->Z, &p->Z);
    fe_sub(&r->E, &b, &a);
    fe_add(&r->H, &b, &a);
    if (negate) {
        fe_add(&r->F, &d, &c);
        fe_sub(&r->G, &d, &c);
    } else {
        fe_sub(&r->F, &d, &c);
        fe_add(&r->G, &d, &c);
    }
}

static inline void ge_p3_add(ge_p3 *r, const ge_p3 *p, const ge_p3 *q) {
    ge_cached qc;
    ge_p1p1 t;
    ge_p3_to_cached(&qc, q);
    ge_add_cached(&t, p, &qc, 0);
    ge_p1p1_to_p3(r, &t);
}

static inline void ge_p3_neg(ge_p3 *r, const ge_p3 *p) {
    fe_neg(&r->X, &p->X);
    r->Y = p->Y;
    r->Z = p->Z;
    fe_neg(&r->T, &p->T);
}

/* Projective identity test: X == 0 and Y == Z. */
static inline int ge_p3_is_identity(const ge_p3 *p) {
    return fe_is_zero(&p->X) && fe_equal(&p->Y, &p->Z);
}

/* Lenient decoding as in ZIP-215 / Go's edwards25519 SetBytes: y is taken mod p (so
 * y >= p is accepted), x = -0 is accepted; only y with no matching x is rejected.
 * Returns 1 on success with Z = 1, T = x*y. */
int ge_frombytes_lenient(ge_p3 *p, const uint8_t s[32]);

/* The same for 8 encodings at once (the square roots run interleaved, or in AVX-512 IFMA
 * lanes where available); ok[j] is 1 or 0. */
void ge_frombytes_lenient_x8(ge_p3 *p, int *ok, const uint8_t *const *s);
/* Sixteen at once: with IFMA the whole decoding runs in lanes, two exponentiation chains
 * interleaved; otherwise two calls of the above. */
void ge_frombytes_lenient_x16(ge_p3 *p, int *ok, const uint8_t *const *s);
/* 1 if s is exactly ge_tobytes of the point it decoded to (decoded = ge_frombytes_lenient's
 * result): y < p and no "-0" (x = 0 with the sign bit set). Comparing points then equals
 * comparing encodings, as Go's cofactorless rule does with R. */
int ge_is_canonical_encoding(const uint8_t s[32], const ge_p3 *decoded);

/* The two halves of decoding around its exponentiation t = uv7^((p-5)/8), for the versions
 * that raise several encodings' uv7 at once in vector lanes (ge_x4.c). */
void ge_decode_prepare(fe *y, fe *u, fe *v, fe *v3, fe *uv7, const uint8_t s[32]);
int ge_decode_finish(ge_p3 *p, const fe *y, const fe *u, const fe *v, const fe *v3,
                     const fe *t, const uint8_t s[32]);

/* Canonical encoding. */
void ge_tobytes(uint8_t s[32], const ge_p3 *p);

/* The base point B. */
void ge_base_point(ge_p3 *b);
/* Any p (one inversion to Z = 1) as an affine niels point. */
void ge_p3_to_niels(ge_niels *r, const ge_p3 *p);

/* The odd multiples B, 3B, ..., 127B of the base point (affine, for width-8 NAF). */
const ge_niels *ge_base_odd_multiples(void);

/* Odd multiples P, 3P, ..., 15P: the width-5 NAF table of one Straus term. */
#define GE_STRAUS_TABLE 8
void ge_straus_table(ge_cached table[GE_STRAUS_TABLE], const ge_p3 *p);

/* out = a * P + b * B, given P's table (so a cached table saves decoding and precomputation). */
void ge_double_scalarmult_table(ge_p3 *out, const ge_cached table[GE_STRAUS_TABLE], const sc *a,
                                const sc *b);

/* Variable-time Straus / wNAF: out = sum_j scalars[j] * points[j] + b_scalar * B.
 * b_scalar may be NULL. Returns 0 on success, TKA_ERR_NOMEM if scratch can't be allocated. */
int ge_straus_vartime(ge_p3 *out, const ge_p3 *points, const sc *scalars, size_t m,
                      const sc *b_scalar);

/* Variable-time Pippenger (signed buckets): out = sum_i scalars[i] * points[i], where every
 * scalar is < 2^nbits. The window width is chosen from n and nbits. Returns 0 or
 * TKA_ERR_NOMEM. */
int ge_pippenger_vartime(ge_p3 *out, const ge_niels *points, const sc *scalars, size_t n,
                         int nbits);

#endif
