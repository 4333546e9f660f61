/* The eight-lane multi-scalar multiplication (straus_x8.c, small batch ranges) against the
 * scalar ge_straus_vartime: term counts around the lane width and up to 512, zero, 128-bit,
 * L - 1, 2^253 - 1 and random scalars, random (mostly mixed-order), prime-order, small-order
 * (every small-order encoding, canonical or not) and identity points, repeated points, with
 * and without a B scalar. Results are compared as group elements (encodings) and checked to
 * be consistent extended points. ctest runs it as is and with TKA_NATIVE_NO_IFMA=1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_ifma.h"
#include "ge.h"
#include "sc.h"
#include "straus_x8.h"

#define TEST_SEED 0x13198a2e03707344ULL
#include "ed25519_check.h"

static ge_p3 small[N_SMALL];

/* Scalar kinds: 0 zero, 1 one, 2 2^128 - 1, 3 L - 1, 4 2^253 - 1, 5 random 128-bit,
 * otherwise random mod L. */
static void make_scalar(sc *r, int which) {
    uint8_t b[64];
    memset(b, 0, sizeof b);
    switch (which) {
    case 0: break;
    case 1: b[0] = 1; break;
    case 2: memset(b, 0xff, 16); break;
    case 3: memcpy(b, L_BYTES, 32); b[0] -= 1; break;
    case 4: memset(b, 0xff, 32); b[31] = 0x1f; break;
    case 5: rnd_bytes(b, 16); break;
    default: rnd_bytes(b, 64); sc_from_bytes_wide(r, b); return;
    }
    sc_from_bytes(r, b);
}

static void random_point(ge_p3 *p) {
    uint8_t b[32];
    do rnd_bytes(b, 32);
    while (!ge_frombytes_lenient(p, b));
}

/* Point kinds: 0 random (mostly mixed order), 1 small order, 2 prime order, 3 identity,
 * 4 a repeat of an earlier point (or its negation), 5 random + small order, in a
 * non-normalised representation (Z != 1). */
static void make_point(ge_p3 *p, const ge_p3 *earlier, size_t j, int kind) {
    random_point(p);
    switch (kind) {
    case 1: *p = small[rnd64() % N_SMALL]; break;
    case 2: for (int i = 0; i < 3; i++) ge_dbl_p3(p, p); break;
    case 3: ge_p3_identity(p); break;
    case 4:
        if (j > 0) {
            *p = earlier[rnd64() % j];
            if (rnd64() & 1) ge_p3_neg(p, p);
        }
        break;
    case 5: {
        ge_p3 q = small[rnd64() % N_SMALL];
        ge_p3_add(p, p, &q);
        break;
    }
    default: break;
    }
}

static void check_case(const ge_p3 *pts, const sc *scs, size_t m, const sc *b) {
    ge_p3 got, want;
    CHECK(ge_straus_x8(&got, pts, scs, m, b) == 0);
    CHECK(ge_straus_vartime(&want, pts, scs, m, b) == 0);
    int same = same_point(&got, &want);
    CHECK(same);
    if (!same) fprintf(stderr, "  m = %zu, b %s\n", m, b ? "set" : "NULL");
    fe xy, tz;
    fe_mul(&xy, &got.X, &got.Y);
    fe_mul(&tz, &got.T, &got.Z);
    CHECK(fe_equal(&xy, &tz));
}

#define MAX_M 512

int main(void) {
    printf("straus_x8 path: %s\n", fe_ifma_available() ? "AVX-512 IFMA" : "scalar fallback");
    for (size_t i = 0; i < N_SMALL; i++) {
        uint8_t enc[32];
        unhex(enc, SMALL_HEX[i]);
        CHECK(ge_frombytes_lenient(&small[i], enc));
    }
    ge_p3 *pts = malloc(MAX_M * sizeof(ge_p3));
    sc *scs = malloc(MAX_M * sizeof(sc));
    if (pts == NULL || scs == NULL) return 2;

    /* Sizes around the lane width and the small-range bound, and a few random ones up to
     * 512; every size in several flavours. */
    size_t sizes[64];
    size_t nsizes = 0;
    const size_t fixed[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 129, 256, 257, 320, 512};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) sizes[nsizes++] = fixed[i];
    for (int i = 0; i < 6; i++) sizes[nsizes++] = 256 + (size_t)(rnd64() % 257);
    for (size_t si = 0; si < nsizes; si++) {
        size_t m = sizes[si];
        for (int flavour = 0; flavour < 6; flavour++) {
            for (size_t j = 0; j < m; j++) {
                int pk, sk;
                switch (flavour) {
                case 0: pk = 0; sk = 6; break;                           /* random, full */
                case 1: pk = 0; sk = 5; break;                           /* batch R terms */
                case 2: pk = (int)(rnd64() % 6); sk = (int)(rnd64() % 8); break; /* mixed */
                case 3: pk = (int)(rnd64() % 6); sk = (int)(rnd64() % 5); break; /* edges */
                case 4: pk = j < m / 2 ? 0 : 4; sk = j % 2 ? 5 : 6; break;       /* repeats */
                default: pk = 1; sk = (int)(rnd64() % 8); break;                 /* small order */
                }
                make_point(&pts[j], pts, j, pk);
                make_scalar(&scs[j], sk);
            }
            sc b;
            make_scalar(&b, flavour == 3 ? (int)(rnd64() % 5) : 6);
            check_case(pts, scs, m, &b);
            check_case(pts, scs, m, NULL);
        }
    }
    /* Batch shapes: 128-bit R terms plus one, two or three full-size A terms (one alone is
     * split into 128-bit halves, see straus_x8.c), A random, small or mixed order. */
    for (int round = 0; round < 24; round++) {
        size_t nr = (size_t[]){0, 1, 7, 8, 63, 64, 65, 256}[round % 8], na = 1 + (size_t)(round % 3);
        for (size_t j = 0; j < nr; j++) {
            make_point(&pts[j], pts, j, j % 7 == 3 ? 1 : 0);
            make_scalar(&scs[j], j % 5 == 0 ? 2 : 5);
        }
        for (size_t j = nr; j < nr + na; j++) {
            make_point(&pts[j], pts, j, (int)(rnd64() % 6));
            make_scalar(&scs[j], 3 + (int)(rnd64() % 5) % 4); /* L-1, 2^253-1, 128-bit, random */
        }
        sc bb;
        make_scalar(&bb, round % 2 ? 4 : 6);
        check_case(pts, scs, nr + na, &bb);
        check_case(pts, scs, nr + na, NULL);
    }
    /* All scalars zero, with and without B; B alone with edge scalars. */
    for (size_t j = 0; j < 65; j++) {
        random_point(&pts[j]);
        make_scalar(&scs[j], 0);
    }
    sc b;
    for (int k = 0; k < 7; k++) {
        make_scalar(&b, k);
        check_case(pts, scs, 65, &b);
        check_case(pts, scs, 0, &b);
    }
    check_case(pts, scs, 65, NULL);
    check_case(pts, scs, 0, NULL);
    /* One point repeated in every term, 2^253 - 1 each. */
    for (size_t j = 0; j < 300; j++) {
        pts[j] = pts[0];
        make_scalar(&scs[j], 4);
    }
    make_scalar(&b, 4);
    check_case(pts, scs, 300, &b);
    free(pts);
    free(scs);
    return test_report();
}
