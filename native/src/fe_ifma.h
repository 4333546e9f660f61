/* Eight-way field exponentiation: AVX-512 IFMA when the CPU has it, portable otherwise. */
#ifndef TKA_FE_IFMA_H
#define TKA_FE_IFMA_H

#include "fe.h"
#include "ge.h"

/* 1 if this CPU runs the AVX-512 IFMA path. */
int fe_ifma_available(void);

/* out[j] = in[j]^((p-5)/8) for j < 8 (the same result on every path). */
void fe_pow22523_x8(fe out[8], const fe in[8]);

/* buckets[bucket_index[j]] += points[point_index[j]] (or -= where bit j of negate_mask is set)
 * for eight DISTINCT bucket indices, in AVX-512 IFMA lanes. Call only when
 * fe_ifma_available(); bucket limbs must be < 2^52 (any output of the field code is). */
void ge_bucket_madd8(ge_p3 *buckets, const uint32_t bucket_index[8], const ge_niels *points,
                     const uint32_t point_index[8], uint8_t negate_mask);

/* out = sum_b (b+1) buckets[b] (Pippenger's weighted bucket sum), eight segments in IFMA lanes.
 * nbuckets must be a power of two >= 8 and every bucket set (the identity where unused).
 * Call only when fe_ifma_available(). */
void ge_bucket_weighted_sum8(ge_p3 *out, const ge_p3 *buckets, size_t nbuckets);

/* ge_frombytes_lenient of sixteen encodings s[j], all in IFMA lanes (two exponentiation
 * chains interleaved). Call only when fe_ifma_available(). */
void ge_decode_x16(ge_p3 p[16], int ok[16], const uint8_t *const s[16]);

#endif
