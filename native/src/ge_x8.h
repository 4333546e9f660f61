/* Eight independent double-scalar multiplications at once (AVX-512 IFMA lanes). */
#ifndef TKA_GE_X8_H
#define TKA_GE_X8_H

#include "ge.h"
#include "sc.h"

/* out[j] = [s[j]]B - [k[j]]A[j] for j < 8: what the cofactorless rule encodes and compares
 * with R. Every scalar must be < 2^253 (S < L and k mod L are); the A[j] may be any curve
 * points (small order, mixed order, from non-canonical encodings), in any extended
 * representation. The result is the same group element as ge_double_scalarmult_table's (the
 * coordinates may differ by a common factor). With IFMA it runs in the lanes of 512-bit
 * vectors; elsewhere it loops over the scalar code. */
void ge_double_scalarmult_base_x8(ge_p3 out[8], const ge_p3 a[8], const sc k[8], const sc s[8]);

/* One verification's [a]P + [b]B spread over the eight lanes (lane l takes bits 35l..35l+34
 * of both scalars), for a point P verified against again and again: its table holds, in
 * lane l, 0..16 times [2^(35 l)]P. Only when ge_split_available() (AVX-512 IFMA); scalars
 * < 2^253. */
typedef struct {
    _Alignas(64) uint64_t t[17][20][8];
} ge_split_table;
int ge_split_available(void);
void ge_split_table_init(ge_split_table *table, const ge_p3 *p);
void ge_double_scalarmult_split(ge_p3 *out, const ge_split_table *table, const sc *a,
                                const sc *b);

#endif
