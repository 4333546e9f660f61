/* One double-scalar multiplication with the point's four coordinates side by side in the
 * four lanes of 256-bit AVX-512 IFMA vectors: each doubling or addition of the Straus loop is
 * two four-lane field multiplications instead of eight scalar ones. For a key seen once,
 * where the eight-lane split table (ge_x8.h) would cost more than it saves. */
#ifndef TKA_GE_X4_H
#define TKA_GE_X4_H

#include "ge.h"
#include "sc.h"

/* 1 if this CPU runs the four-lane path (AVX-512 F, VL and IFMA; not TKA_NATIVE_NO_IFMA). */
int ge_x4_available(void);

/* out = [a]P + [b]B, the same group element as ge_double_scalarmult_table with P's table
 * (coordinates may differ by a common factor). P may be any curve point (small order, mixed
 * order, from a non-canonical encoding); scalars < 2^255. Falls back to the scalar code where
 * ge_x4_available() is 0. */
void ge_double_scalarmult_x4(ge_p3 *out, const ge_p3 *p, const sc *a, const sc *b);

#endif
