/* The four-lane code (ge_x4.c, single verification with a key seen once) against the scalar
 * code: the double- and triple-scalar multiplications with random and edge scalars, random
 * points, small-order points from every small-order encoding (canonical or not), and
 * mixed-order points; the four-lane decoding (1 to 4 encodings) against ge_frombytes_lenient;
 * then tka_verify verdicts for new, repeated and cached keys against verdicts computed from the
 * definitions of both rules, on signatures whose A and R carry small-order parts and whose R
 * comes in non-canonical encodings. ctest runs it as is, with TKA_NATIVE_NO_IFMA=1 (AVX2 where the CPU has it) and with
 * TKA_NATIVE_NO_IFMA=1 TKA_NATIVE_NO_AVX2=1 (scalar). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed25519_internal.h"
#include "ge.h"
#include "ge_x4.h"
#include "sc.h"
#include "tka_native.h"

#define TEST_SEED 0x243f6a8885a308d3ULL
#include "ed25519_check.h"

static void scalar_ref(ge_p3 *out, const ge_p3 *p, const sc *a, const sc *b) {
    ge_cached table[GE_STRAUS_TABLE];
    ge_straus_table(table, p);
    ge_double_scalarmult_table(out, table, a, b);
}

static void random_scalar(sc *r, int which) {
    uint8_t b[64];
    memset(b, 0, sizeof b);
    switch (which) {
    case 0: break;                                      /* 0 */
    case 1: b[0] = 1; break;                            /* 1 */
    case 2: memcpy(b, L_BYTES, 32); b[0] -= 1; break;   /* L - 1 */
    case 3: memset(b, 0xff, 32); b[31] = 0x1f; break;   /* 2^253 - 1 */
    case 4: memset(b, 0x55, 32); b[31] = 0x15; break;   /* alternating bits */
    default: rnd_bytes(b, 64); sc_from_bytes_wide(r, b); return;
    }
    sc_from_bytes(r, b);
}

static void random_point(ge_p3 *p) {
    uint8_t b[32];
    do rnd_bytes(b, 32);
    while (!ge_frombytes_lenient(p, b));
}

static void check_one(const ge_p3 *p, const sc *a, const sc *b) {
    ge_p3 got, want;
    ge_double_scalarmult_x4(&got, p, a, b);
    scalar_ref(&want, p, a, b);
    CHECK(same_point(&got, &want));
    /* The result must also be a usable extended point: T/Z = X/Z * Y/Z. */
    fe xy, tz;
    fe_mul(&xy, &got.X, &got.Y);
    fe_mul(&tz, &got.T, &got.Z);
    CHECK(fe_equal(&xy, &tz));
}

static void check_triple(const ge_p3 *p, const sc *a, const ge_p3 *q, const sc *b, const sc *c) {
    ge_p3 got, want;
    CHECK(ge_triple_scalarmult_x4(&got, p, a, q, b, c) == 0);
    const ge_p3 points[2] = {*p, *q};
    const sc scalars[2] = {*a, *b};
    CHECK(ge_straus_vartime(&want, points, scalars, 2, c) == 0);
    CHECK(same_point(&got, &want));
}

/* A short scalar (the lattice halves are about 128 bits; the loop must also handle longer). */
static void short_scalar(sc *r, int bits) {
    random_scalar(r, 5);
    for (int i = 0; i < 4; i++) {
        int lo = 64 * i;
        if (bits <= lo) r->v[i] = 0;
        else if (bits < lo + 64) r->v[i] &= (1ULL << (bits - lo)) - 1;
    }
}

/* ge_frombytes_lenient_x4 (every lane count, idle lanes included) and _x16 (the whole decoding
 * in IFMA lanes where available) against the scalar decoder: small-order and non-canonical
 * encodings, the other sign bit ("-0" for x = 0), random bytes (about half not points). */
static void check_decode_lanes(int width) {
    for (int round = 0; round < 200; round++) {
        uint8_t enc[16][32];
        const uint8_t *ptrs[16];
        for (int j = 0; j < width; j++) {
            if (rnd64() % 3 == 0) unhex(enc[j], SMALL_HEX[rnd64() % N_SMALL]);
            else rnd_bytes(enc[j], 32);
            if (rnd64() % 8 == 0) enc[j][31] ^= 0x80;
            ptrs[j] = enc[j];
        }
        ge_p3 got[16];
        int ok[16];
        int count = width == 4 ? 1 + round % 4 : 16;
        if (width == 4) ge_frombytes_lenient_x4(got, ok, ptrs, count);
        else ge_frombytes_lenient_x16(got, ok, ptrs);
        for (int j = 0; j < count; j++) {
            ge_p3 want;
            int want_ok = ge_frombytes_lenient(&want, enc[j]);
            CHECK(ok[j] == want_ok);
            if (ok[j] && want_ok) {
                CHECK(same_point(&got[j], &want));
                CHECK(fe_equal(&got[j].Z, &FE_ONE));
                fe xy;
                fe_mul(&xy, &got[j].X, &got[j].Y);
                CHECK(fe_equal(&got[j].T, &xy));
            }
        }
    }
}

/* s = r + k a mod L. */
static void sc_muladd(sc *s, const sc *k, const sc *a, const sc *r) {
    sc ka;
    sc_mul(&ka, k, a);
    sc_wide w;
    memset(&w, 0, sizeof w);
    unsigned __int128 carry = 0;
    for (int i = 0; i < 4; i++) {
        carry += (unsigned __int128)ka.v[i] + r->v[i];
        w.v[i] = (uint64_t)carry;
        carry >>= 64;
    }
    w.v[4] = (uint64_t)carry;
    sc_reduce_wide(s, &w);
}

static void base_mul(ge_p3 *out, const sc *a) {
    CHECK(ge_straus_vartime(out, NULL, NULL, 0, a) == 0);
}

/* Both rules from their definitions, with the scalar code. */
static int reference_verdict(const uint8_t pk[32], const uint8_t *msg, size_t len,
                             const uint8_t sig[64], int rule) {
    ge_p3 a, r, p;
    if (!sc_is_canonical(sig + 32) || !ge_frombytes_lenient(&a, pk)) return 0;
    sc s, k;
    sc_from_bytes(&s, sig + 32);
    ed25519_challenge(&k, sig, pk, msg, len);
    ge_p3 neg_a;
    ge_p3_neg(&neg_a, &a);
    scalar_ref(&p, &neg_a, &k, &s); /* [S]B - [k]A */
    if (rule == TKA_RULE_COFACTORLESS) {
        uint8_t enc[32];
        ge_tobytes(enc, &p);
        return memcmp(enc, sig, 32) == 0;
    }
    if (!ge_frombytes_lenient(&r, sig)) return 0;
    ge_p3 neg_r;
    ge_p3_neg(&neg_r, &r);
    ge_p3_add(&p, &p, &neg_r);
    for (int i = 0; i < 3; i++) ge_dbl_p3(&p, &p);
    return ge_p3_is_identity(&p);
}

/* Signatures with A = [a]B + T_A and R = [r]B + T_R (T small order, R sometimes given by one
 * of the small-order encodings, canonical or not), S = r + k a: ZIP-215 accepts all of them,
 * the cofactorless rule those where T_R = -[k]T_A and R's bytes are canonical. Then broken
 * copies. Each key is new to tka_verify's cache the first time, then repeated. */
static void check_verdicts(const ge_p3 small[N_SMALL]) {
    int accepted[2] = {0, 0}, total = 0;
    for (int round = 0; round < 600; round++) {
        sc a, r, k, s;
        random_scalar(&a, 5);
        random_scalar(&r, 5);
        ge_p3 pa, pr;
        base_mul(&pa, &a);
        base_mul(&pr, &r);
        if (round % 3 != 0 && round >= 16) ge_p3_add(&pa, &pa, &small[rnd64() % N_SMALL]);
        uint8_t pk[32], sig[64], msg[40];
        ge_tobytes(pk, &pa);
        int kind = round < 16 ? 0 : (int)(rnd64() % 4);
        if (kind == 0) {
            /* R small order: r = 0 (first every encoding with a torsion-free A, so that the
             * equation holds and only the encoding can refuse) */
            unhex(sig, SMALL_HEX[round < 16 ? round % N_SMALL : rnd64() % N_SMALL]);
            memset(&r, 0, sizeof r);
        } else {
            if (kind == 1) ge_p3_add(&pr, &pr, &small[rnd64() % N_SMALL]);
            ge_tobytes(sig, &pr);
        }
        size_t len = (size_t)(rnd64() % sizeof msg);
        rnd_bytes(msg, len);
        ed25519_challenge(&k, sig, pk, msg, len);
        sc_muladd(&s, &k, &a, &r);
        uint8_t sb[64];
        memset(sb, 0, sizeof sb);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 8; j++) sb[8 * i + j] = (uint8_t)(s.v[i] >> (8 * j));
        memcpy(sig + 32, sb, 32);
        if (round >= 16 && rnd64() % 4 == 0) { /* a broken copy: one bit of R, S or the message */
            int where = (int)(rnd64() % 3);
            if (where == 0) sig[rnd64() % 32] ^= (uint8_t)(1u << (rnd64() % 8));
            else if (where == 1) sig[32 + rnd64() % 31] ^= (uint8_t)(1u << (rnd64() % 8));
            else if (len > 0) msg[rnd64() % len] ^= 1;
        }
        /* Each rule meets the key first (the new-key path) in every other round. */
        for (int step = 0; step < 2; step++) {
            int rule = (round + step) % 2;
            int want = reference_verdict(pk, msg, len, sig, rule);
            accepted[rule] += want;
            /* New key, then the same key again (cached), then once more (split table). */
            for (int rep = 0; rep < 3; rep++) CHECK(tka_verify(pk, 32, msg, len, sig, 64, rule) == want);
        }
        total++;
    }
    printf("verdicts: %d signatures, ZIP-215 accepted %d, cofactorless %d\n", total, accepted[0],
           accepted[1]);
    /* The cases must be mixed for the comparison to mean anything. */
    CHECK(accepted[0] > total / 2 && accepted[0] < total);
    CHECK(accepted[1] > total / 8 && accepted[1] < accepted[0]);
}

int main(void) {
    int features = tka_native_features();
    printf("four-lane path: %s\n", (features & TKA_FEATURE_IFMA)   ? "AVX-512 IFMA"
                                   : (features & TKA_FEATURE_AVX2) ? "AVX2"
                                                                   : "scalar fallback");
    ge_p3 small[N_SMALL];
    for (size_t i = 0; i < N_SMALL; i++) {
        uint8_t enc[32];
        unhex(enc, SMALL_HEX[i]);
        CHECK(ge_frombytes_lenient(&small[i], enc));
    }
    for (int round = 0; round < 400; round++) {
        ge_p3 p;
        int kind = round % 4;
        random_point(&p); /* random encodings: mostly mixed order */
        if (kind == 1) {
            ge_p3 q = small[rnd64() % N_SMALL];
            p = q;
        } else if (kind == 2) { /* prime order: [8] of a random point */
            for (int i = 0; i < 3; i++) ge_dbl_p3(&p, &p);
        }
        sc a, b;
        random_scalar(&a, round < 40 ? round % 5 : 5 + (int)(rnd64() % 4));
        random_scalar(&b, round < 40 ? (round / 5) % 5 : 5 + (int)(rnd64() % 4));
        check_one(&p, &a, &b);
    }
    for (int round = 0; round < 300; round++) {
        ge_p3 p, q;
        random_point(&p);
        random_point(&q);
        if (round % 5 == 1) p = small[rnd64() % N_SMALL];
        if (round % 5 == 2) q = small[rnd64() % N_SMALL];
        if (round % 5 == 3) q = p;
        sc a, b, c;
        if (round < 25) {
            random_scalar(&a, round % 5);
            random_scalar(&b, (round / 5) % 5);
            random_scalar(&c, 5 + round % 4);
        } else {
            short_scalar(&a, 1 + (int)(rnd64() % 140));
            short_scalar(&b, 1 + (int)(rnd64() % 140));
            random_scalar(&c, 5);
            if (round % 7 == 0) { /* 2^253 <= c < 2^255 (the reference's limit): a long top half */
                memset(c.v + 2, 0xff, 16);
                c.v[3] >>= 1;
            }
        }
        check_triple(&p, &a, &q, &b, &c);
    }
    check_decode_lanes(4);
    check_decode_lanes(16);
    check_verdicts(small);
    return test_report();
}
