/* The four-lane operations of ge_x4.h on AVX2 (radix 2^25.5), for CPUs without AVX-512 IFMA.
 * ge_x4.c dispatches to them; call them directly only where ge_x4_avx2_available(), and
 * only on x86-64 with GCC or Clang (elsewhere only the availability test exists). */
#ifndef TKA_GE_X4_AVX2_H
#define TKA_GE_X4_AVX2_H

#include "fe.h"
#include "ge.h"
#include "sc.h"

/* 1 if this CPU has AVX2 and TKA_NATIVE_NO_AVX2 is not set. */
int ge_x4_avx2_available(void);

/* As ge_double_scalarmult_x4 and ge_triple_scalarmult_x4 (same group elements). */
void ge_double_scalarmult_avx2(ge_p3 *out, const ge_p3 *p, const sc *a, const sc *b);
void ge_triple_scalarmult_avx2(ge_p3 *out, const ge_p3 *p, const sc *a, const ge_p3 *q,
                               const sc *b, const sc *c);

/* out[j] = z[j]^((p-5)/8), four at once. */
void fe_pow22523_avx2(fe out[4], const fe z[4]);

#endif
