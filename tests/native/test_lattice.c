/* lattice_halve_challenge (lattice.c): for random and edge challenges k, the halves it gives
 * satisfy what verification relies on, checked with points rather than integers: k2 is odd,
 * both are short, and [k2]([k]A) = [k1]A for points A of mixed order (so the relation holds
 * mod 8L, not only mod L). Where it declines, the caller's fallback is exercised instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ge.h"
#include "lattice.h"
#include "sc.h"

#define TEST_SEED 0x9e3779b97f4a7c15ULL
#include "ed25519_check.h"

static int bits(const sc *a) {
    for (int i = 3; i >= 0; i--)
        if (a->v[i]) return 64 * i + 64 - __builtin_clzll(a->v[i]);
    return 0;
}

static void mul(ge_p3 *out, const ge_p3 *p, const sc *a) {
    sc zero = {{0, 0, 0, 0}};
    if (ge_straus_vartime(out, p, a, 1, &zero) != 0) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
}

/* A point of mixed order: a random encoding (its small-order part is random too). */
static void mixed_point(ge_p3 *p) {
    uint8_t b[32];
    do
        for (int i = 0; i < 32; i++) b[i] = (uint8_t)rnd64();
    while (!ge_frombytes_lenient(p, b));
}

/* 1 if k was halved (and the halves checked), 0 if declined. */
static int longest = 0, over_136 = 0;

static int check_k(const sc *k) {
    sc k1, k2;
    int negative = -1;
    if (!lattice_halve_challenge(&k1, &k2, &negative, k)) {
        /* Declined: the full-length pair (k, 1), which the caller uses as it is. */
        CHECK(memcmp(&k1, k, sizeof k1) == 0);
        CHECK(k2.v[0] == 1 && k2.v[1] == 0 && k2.v[2] == 0 && k2.v[3] == 0 && negative == 0);
        return 0;
    }
    CHECK(negative == 0 || negative == 1);
    CHECK(k2.v[0] & 1);
    CHECK(bits(&k1) <= 128);
    int b = bits(&k2);
    if (b > longest) longest = b;
    over_136 += b > 136;
    for (int round = 0; round < 2; round++) {
        ge_p3 a, ka, lhs, rhs;
        mixed_point(&a);
        mul(&ka, &a, k);
        mul(&lhs, &ka, &k2);
        if (negative) ge_p3_neg(&lhs, &lhs);
        mul(&rhs, &a, &k1);
        CHECK(same_point(&lhs, &rhs));
    }
    return 1;
}

int main(void) {
    /* Edge challenges: tiny, around 2^128, L - 1, and powers of two whose first quotient is
     * huge (the case the reduction declines). */
    static const uint64_t L_LIMBS[4] = {0x5812631a5cf5d3edULL, 0x14def9dea2f79cd6ULL, 0,
                                        0x1000000000000000ULL};
    sc edge[12];
    memset(edge, 0, sizeof edge);
    edge[1].v[0] = 1;
    edge[2].v[0] = 2;
    edge[3].v[0] = 8;
    edge[4].v[0] = edge[4].v[1] = ~0ULL;                  /* 2^128 - 1 */
    edge[5].v[2] = 1;                                     /* 2^128 */
    edge[6].v[2] = 2;                                     /* 2^129 */
    memcpy(edge[7].v, L_LIMBS, sizeof L_LIMBS);
    edge[7].v[0] -= 1;                                    /* L - 1 */
    edge[8].v[3] = 1ULL << 8;                             /* 2^200 */
    edge[9].v[3] = 1ULL << 59;                            /* 2^251 */
    edge[10].v[0] = 3;
    edge[10].v[2] = 1;                                    /* 2^128 + 3 */
    memcpy(edge[11].v, L_LIMBS, sizeof L_LIMBS);
    edge[11].v[3] >>= 1;                                  /* about L / 2 */
    int halved_edges = 0;
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) halved_edges += check_k(&edge[i]);
    /* Tiny and 128-bit challenges halve trivially (k1 = k, k2 = 1). */
    CHECK(halved_edges >= 5);

    int halved = 0, total = 3000;
    for (int i = 0; i < total; i++) {
        uint8_t wide[64];
        for (int j = 0; j < 64; j++) wide[j] = (uint8_t)rnd64();
        sc k;
        sc_from_bytes_wide(&k, wide);
        halved += check_k(&k);
    }
    printf("halved %d of %d random challenges, %d of 12 edge ones; |k2| up to %d bits, %d over 136\n",
           halved, total, halved_edges, longest, over_136);
    /* Declining is for quotients above 2^40: essentially never for random challenges. And
     * short halves are the point: few |k2| much longer than 128 bits. */
    CHECK(halved >= total - 2);
    CHECK(over_136 <= total / 50);
    return test_report();
}
