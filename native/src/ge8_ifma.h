/*
 * Eight-lane group arithmetic in AVX-512 IFMA vectors (one point per lane, extended
 * coordinates, the same formulas as ge.h), shared by ge_x8.c (eight independent
 * double-scalar multiplications) and straus_x8.c (one multi-scalar multiplication spread over
 * the lanes). Include only under `defined(__x86_64__) && defined(__GNUC__)`; call only when
 * fe_ifma_available().
 */
#ifndef TKA_GE8_IFMA_H
#define TKA_GE8_IFMA_H

#include "fe8_ifma.h"
#include "ge.h"

typedef struct { fe8 X, Y, Z, T; } p3_8;
typedef struct { fe8 X, Y, Z; } p2_8;
typedef struct { fe8 E, F, G, H; } p1p1_8;
typedef struct { fe8 YpX, YmX, Z, T2d; } cached_8;
typedef struct { fe8 ypx, ymx, xy2d; } niels_8;

IFMA_TARGET static inline void fe8_set_small(fe8 *h, uint64_t v0) {
    h->v[0] = _mm512_set1_epi64((long long)v0);
    for (int k = 1; k < 5; k++) h->v[k] = _mm512_setzero_si512();
}

IFMA_TARGET static inline void fe8_broadcast(fe8 *h, const fe *f) {
    for (int k = 0; k < 5; k++) h->v[k] = _mm512_set1_epi64((long long)f->v[k]);
}

/* Lane j of h = in[j] (limbs carried below 2^52 first). */
IFMA_TARGET static inline void fe8_load_lanes(fe8 *h, const fe *in[8]) {
    fe c[8];
    for (int j = 0; j < 8; j++) {
        c[j] = *in[j];
        fe_carry(&c[j]);
    }
    for (int k = 0; k < 5; k++)
        h->v[k] = _mm512_set_epi64((long long)c[7].v[k], (long long)c[6].v[k],
                                   (long long)c[5].v[k], (long long)c[4].v[k],
                                   (long long)c[3].v[k], (long long)c[2].v[k],
                                   (long long)c[1].v[k], (long long)c[0].v[k]);
}

IFMA_TARGET static inline void fe8_store_lanes(fe *out[8], const fe8 *h) {
    uint64_t lanes[8];
    for (int k = 0; k < 5; k++) {
        _mm512_storeu_si512((void *)lanes, h->v[k]);
        for (int j = 0; j < 8; j++) out[j]->v[k] = lanes[j];
    }
}

/* The identity as a p1p1 (E = 0, F = G = H = 1), where the double-and-add loops start. */
IFMA_TARGET static inline void p1p1_identity_8(p1p1_8 *t) {
    fe8_set_small(&t->E, 0);
    fe8_set_small(&t->F, 1);
    fe8_set_small(&t->G, 1);
    fe8_set_small(&t->H, 1);
}

IFMA_TARGET FE8_INLINE void p1p1_to_p3_8(p3_8 *r, const p1p1_8 *p) {
    fe8_mul(&r->X, &p->E, &p->F);
    fe8_mul(&r->Y, &p->G, &p->H);
    fe8_mul(&r->Z, &p->F, &p->G);
    fe8_mul(&r->T, &p->E, &p->H);
}

IFMA_TARGET FE8_INLINE void p1p1_to_p2_8(p2_8 *r, const p1p1_8 *p) {
    fe8_mul(&r->X, &p->E, &p->F);
    fe8_mul(&r->Y, &p->G, &p->H);
    fe8_mul(&r->Z, &p->F, &p->G);
}

/* Uncarried sums for expressions carried once at their end (fe8_carry). Each result feeds
 * only fe8_mul, so it needs limbs < 2^52 only: every such sum here has limbs < 2^54, and
 * fe8_carry of those gives limbs 1..4 < 2^51 and limb 0 < 2^51 + 2^8. */
IFMA_TARGET static inline void fe8_add_uncarried(fe8 *h, const fe8 *f, const fe8 *g) {
    for (int k = 0; k < 5; k++) h->v[k] = _mm512_add_epi64(f->v[k], g->v[k]);
}

/* f + 4p - g, not carried (g limbs < 2^53 - 76, so no limb goes below 0). */
IFMA_TARGET static inline void fe8_sub_uncarried(fe8 *h, const fe8 *f, const fe8 *g) {
    const __m512i p4_0 = _mm512_set1_epi64(0x1fffffffffffb4LL);
    const __m512i p4_k = _mm512_set1_epi64(0x1ffffffffffffcLL);
    for (int k = 0; k < 5; k++)
        h->v[k] = _mm512_sub_epi64(_mm512_add_epi64(f->v[k], k == 0 ? p4_0 : p4_k), g->v[k]);
}

IFMA_TARGET static inline void fe8_carried(fe8 *h, const fe8 *f) {
    *h = *f;
    fe8_carry(h);
}

/* The scalar ge_dbl, lane by lane: H = A+B, E = H-(X+Y)^2, G = A-B, F = 2C+G, with H and G
 * also kept uncarried so E and F cost one carry each. */
IFMA_TARGET FE8_INLINE void dbl_8(p1p1_8 *r, const p2_8 *p) {
    fe8 a, b, c, s, h, g;
    fe8_sq(&a, &p->X);
    fe8_sq(&b, &p->Y);
    fe8_sq(&c, &p->Z);
    fe8_add(&s, &p->X, &p->Y);
    fe8_sq(&s, &s);
    fe8_add_uncarried(&h, &a, &b);
    fe8_carried(&r->H, &h);
    fe8_sub_uncarried(&r->E, &h, &s);
    fe8_carry(&r->E);
    fe8_sub_uncarried(&g, &a, &b);
    fe8_carried(&r->G, &g);
    fe8_add_uncarried(&g, &g, &c);
    fe8_add_uncarried(&r->F, &g, &c);
    fe8_carry(&r->F);
}

IFMA_TARGET static inline void p3_to_cached_8(cached_8 *r, const p3_8 *p, const fe8 *d2) {
    fe8_add(&r->YpX, &p->Y, &p->X);
    fe8_sub(&r->YmX, &p->Y, &p->X);
    r->Z = p->Z;
    fe8_mul(&r->T2d, &p->T, d2);
}

/* Where neg is set, the lanes of q's (y+x, y-x) halves are swapped (adding -q). */
IFMA_TARGET static inline void blend_halves_8(fe8 *qp, fe8 *qm, const fe8 *ypx, const fe8 *ymx,
                                              __mmask8 neg) {
    for (int k = 0; k < 5; k++) {
        qp->v[k] = _mm512_mask_blend_epi64(neg, ypx->v[k], ymx->v[k]);
        qm->v[k] = _mm512_mask_blend_epi64(neg, ymx->v[k], ypx->v[k]);
    }
}

/* The common end of both additions from a = (Y-X) qm, b = (Y+X) qp, c = T q.2dT, d = 2 Z q.Z
 * (d uncarried, limbs < 2^53): F and G swapped where neg is set (the same as negating 2dT). */
IFMA_TARGET FE8_INLINE void add_finish_8(p1p1_8 *r, const fe8 *a, const fe8 *b, const fe8 *c,
                                            const fe8 *d, __mmask8 neg) {
    fe8 f0, g0;
    fe8_sub(&r->E, b, a);
    fe8_add(&r->H, b, a);
    fe8_sub_uncarried(&f0, d, c);
    fe8_carry(&f0);
    fe8_add_uncarried(&g0, d, c);
    fe8_carry(&g0);
    for (int k = 0; k < 5; k++) {
        r->F.v[k] = _mm512_mask_blend_epi64(neg, f0.v[k], g0.v[k]);
        r->G.v[k] = _mm512_mask_blend_epi64(neg, g0.v[k], f0.v[k]);
    }
}

/* r = p + q in lanes where neg is clear, p - q where it is set. */
IFMA_TARGET FE8_INLINE void add_cached_8(p1p1_8 *r, const p3_8 *p, const cached_8 *q,
                                            __mmask8 neg) {
    fe8 qp, qm, ypx, ymx, a, b, c, d;
    blend_halves_8(&qp, &qm, &q->YpX, &q->YmX, neg);
    fe8_add(&ypx, &p->Y, &p->X);
    fe8_sub(&ymx, &p->Y, &p->X);
    fe8_mul(&a, &ymx, &qm);
    fe8_mul(&b, &ypx, &qp);
    fe8_mul(&c, &p->T, &q->T2d);
    fe8_mul(&d, &p->Z, &q->Z);
    fe8_add_uncarried(&d, &d, &d);
    add_finish_8(r, &a, &b, &c, &d, neg);
}

/* The same with an affine (niels) q: 2Z instead of 2 Z q.Z. */
IFMA_TARGET FE8_INLINE void add_niels_8(p1p1_8 *r, const p3_8 *p, const niels_8 *q,
                                           __mmask8 neg) {
    fe8 qp, qm, ypx, ymx, a, b, c, d;
    blend_halves_8(&qp, &qm, &q->ypx, &q->ymx, neg);
    fe8_add(&ypx, &p->Y, &p->X);
    fe8_sub(&ymx, &p->Y, &p->X);
    fe8_mul(&a, &ymx, &qm);
    fe8_mul(&b, &ypx, &qp);
    fe8_mul(&c, &p->T, &q->xy2d);
    fe8_add_uncarried(&d, &p->Z, &p->Z);
    add_finish_8(r, &a, &b, &c, &d, neg);
}

IFMA_TARGET static inline void store_p3_8(ge_p3 out[8], const p3_8 *p) {
    fe *x[8], *y[8], *z[8], *tt[8];
    for (int j = 0; j < 8; j++) {
        x[j] = &out[j].X;
        y[j] = &out[j].Y;
        z[j] = &out[j].Z;
        tt[j] = &out[j].T;
    }
    fe8_store_lanes(x, &p->X);
    fe8_store_lanes(y, &p->Y);
    fe8_store_lanes(z, &p->Z);
    fe8_store_lanes(tt, &p->T);
}

#endif
