/* Eight-way field exponentiation: AVX-512 IFMA when the CPU has it, portable otherwise. */
#ifndef TKA_FE_IFMA_H
#define TKA_FE_IFMA_H

#include "fe.h"

/* 1 if this CPU runs the AVX-512 IFMA path. */
int fe_ifma_available(void);

/* out[j] = in[j]^((p-5)/8) for j < 8 (the same result on every path). */
void fe_pow22523_x8(fe out[8], const fe in[8]);

#endif
