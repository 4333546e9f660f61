/* One double-scalar multiplication with the point's four coordinates side by side in the
 * four lanes of 256-bit AVX-512 IFMA vectors: each doubling or addition of the Straus loop is
 * two four-lane field multiplications instead of eight scalar ones. For a key seen once,
 * where the eight-lane split table (ge_x8.h) would cost more than it saves. */
#ifndef TKA_GE_X4_H
#define TKA_GE_X4_H

#include "ge.h"
#include "sc.h"

/* 1 if this CPU runs a four-lane path: AVX-512 F, VL and IFMA (this file; not
 * TKA_NATIVE_NO_IFMA), else AVX2 (ge_x4_avx2.c; not TKA_NATIVE_NO_AVX2). */
int ge_x4_available(void);

/* out = [a]P + [b]B, the same group element as ge_double_scalarmult_table with P's table
 * (coordinates may differ by a common factor). P may be any curve point (small order, mixed
 * order, from a non-canonical encoding); scalars < 2^255. Falls back to the scalar code where
 * ge_x4_available() is 0. */
void ge_double_scalarmult_x4(ge_p3 *out, const ge_p3 *p, const sc *a, const sc *b);

/* out = [a]P + [b]Q + [c]B, for a verification equation with half-length scalars
 * (lattice.h): P and Q any curve points, a and b < 2^255 (the loop runs as long as the
 * longest), c < 2^256, whose halves at bit 128 use tables of B and [2^128]B. Returns 0, or
 * TKA_ERR_NOMEM from the scalar fallback. */
int ge_triple_scalarmult_x4(ge_p3 *out, const ge_p3 *p, const sc *a, const ge_p3 *q,
                            const sc *b, const sc *c);

/* out[j] = z[j]^((p-5)/8) for four independent z, one per lane (interleaved scalar chains
 * where the lanes are unavailable). */
void fe_pow22523_x4(fe out[4], const fe z[4]);

/* ge_frombytes_lenient of count (1..4) encodings, their square roots in one four-lane chain
 * (with IFMA about a fifth faster than the scalar chain even for one; with AVX2 a single
 * encoding takes the scalar chain, which is faster alone); ok[j] is 1 or 0. */
void ge_frombytes_lenient_x4(ge_p3 *p, int *ok, const uint8_t *const *s, int count);

/* ge_tobytes with the inversion on the four-lane chain (the scalar code without the lanes). */
void ge_x4_tobytes(uint8_t s[32], const ge_p3 *p);

#endif
