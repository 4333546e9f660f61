/* Scalars mod L = 2^252 + 27742317777372353535851937790883648493 (four 64-bit limbs). */
#ifndef TKA_SC_H
#define TKA_SC_H

#include <stdint.h>

typedef struct { uint64_t v[4]; } sc;
/* An unreduced accumulator of up to 512 bits (sums of 128-bit x 253-bit products). */
typedef struct { uint64_t v[8]; } sc_wide;

/* 1 if the little-endian 32-byte s is < L. */
int sc_is_canonical(const uint8_t s[32]);
/* Load 32 bytes without reduction (callers check sc_is_canonical first). */
void sc_from_bytes(sc *r, const uint8_t s[32]);
/* r = 64-byte little-endian value mod L (for SHA-512 outputs). */
void sc_from_bytes_wide(sc *r, const uint8_t s[64]);
void sc_reduce_wide(sc *r, const sc_wide *x);
/* acc += a * b, where a < 2^128 (limbs 2, 3 zero) and b < 2^256; acc must stay < 2^512. */
void sc_wide_muladd128(sc_wide *acc, const sc *a, const sc *b);
/* r = a * b mod L (a, b < 2^256). */
void sc_mul(sc *r, const sc *a, const sc *b);
/* r = -a mod L (a < L). */
void sc_negate(sc *r, const sc *a);
int sc_is_zero(const sc *a);
/* Width-w non-adjacent form of a < 2^255: naf[i] odd in (-2^(w-1), 2^(w-1)) or 0.
 * Returns the index of the highest non-zero digit, or -1 if a == 0. */
int sc_naf(int8_t naf[256], const sc *a, int w);

#endif
