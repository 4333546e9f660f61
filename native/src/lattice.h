/* Half-size scalars for one verification equation (lattice reduction in dimension 2).
 *
 * For the challenge k, find k1 and an odd k2, both about 128 bits, with k1 = k2 k (mod 8L).
 * Multiplying the equation [S]B - [k]A - R by k2 then gives [k2 S mod L]B - [k1]A - [k2]R:
 * every point is in the group of order 8L, so [k2 k]A = [k1]A exactly (small-order parts
 * included), and an odd k2 (0 < |k2| < L) multiplies by a unit of Z/8L, so the product is the
 * identity exactly when the original is, and so is its cofactor multiple. Half-length scalars
 * halve the doublings of the verification loop. */
#ifndef TKA_LATTICE_H
#define TKA_LATTICE_H

#include "sc.h"

/* k < L. Writes k1 >= 0, |k2| and whether k2 < 0, always a valid pair. Returns 1 when they
 * are halves: k1 < 2^128, and |k2| < 2^127 about two times in three, a few bits longer almost
 * always, < 2^253 always. Returns 0 in the rare case the reduction meets a long division it
 * does not handle (a quotient above 2^40): then k1 = k and k2 = 1. */
int lattice_halve_challenge(sc *k1, sc *k2_abs, int *k2_negative, const sc *k);

#endif
