/* One variable-time multi-scalar multiplication spread over eight AVX-512 IFMA lanes. */
#ifndef TKA_STRAUS_X8_H
#define TKA_STRAUS_X8_H

#include <stddef.h>

#include "ge.h"
#include "sc.h"

/* out = sum_j scalars[j] * points[j] + b_scalar * B (b_scalar may be NULL): the same group
 * element as ge_straus_vartime (coordinates may differ by a common factor), for scalars
 * < 2^255 and any curve points. With IFMA, eight lane accumulators share the doublings and
 * split every step's additions between them; elsewhere it is ge_straus_vartime. Returns 0 or
 * TKA_ERR_NOMEM. */
int ge_straus_x8(ge_p3 *out, const ge_p3 *points, const sc *scalars, size_t m,
                 const sc *b_scalar);

#endif
