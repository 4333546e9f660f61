/* C tests of the Ed25519 core (run under ASan/UBSan by `make test-c`): RFC 8032 vectors,
 * rules on edge inputs, batch verdicts with bad entries at every position class. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed25519_internal.h"
#include "fe_ifma.h"
#include "ge.h"
#include "sc.h"
#include "tka_native.h"

static int failures = 0;
#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                  \
        }                                                                \
    } while (0)

static void unhex(uint8_t *out, const char *hex) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* RFC 8032 §7.1, TEST 1 (empty message) and TEST 2 (one byte 0x72). */
static void test_rfc8032(void) {
    uint8_t pk[32], sig[64], msg[1] = {0x72};
    unhex(pk, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    unhex(sig, "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    CHECK(tka_verify(pk, 32, NULL, 0, sig, 64, TKA_RULE_ZIP215) == 1);
    CHECK(tka_verify(pk, 32, NULL, 0, sig, 64, TKA_RULE_COFACTORLESS) == 1);
    CHECK(tka_verify(pk, 32, msg, 1, sig, 64, TKA_RULE_ZIP215) == 0);
    unhex(pk, "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
    unhex(sig, "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
    CHECK(tka_verify(pk, 32, msg, 1, sig, 64, TKA_RULE_ZIP215) == 1);
    CHECK(tka_verify(pk, 32, msg, 1, sig, 64, TKA_RULE_COFACTORLESS) == 1);
    /* Wrong lengths, NULLs and an unknown rule. */
    CHECK(tka_verify(pk, 31, msg, 1, sig, 64, TKA_RULE_ZIP215) == 0);
    CHECK(tka_verify(pk, 32, msg, 1, sig, 63, TKA_RULE_ZIP215) == 0);
    CHECK(tka_verify(NULL, 32, msg, 1, sig, 64, TKA_RULE_ZIP215) == 0);
    CHECK(tka_verify(pk, 32, NULL, 1, sig, 64, TKA_RULE_ZIP215) == 0);
    CHECK(tka_verify(pk, 32, msg, 1, sig, 64, 7) == TKA_ERR_RULE);
    /* S + L: same value mod L, rejected by both rules. */
    uint8_t big[64];
    memcpy(big, sig, 64);
    static const uint8_t l_bytes[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                        0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0x10};
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        unsigned v = big[32 + i] + l_bytes[i] + carry;
        big[32 + i] = (uint8_t)v;
        carry = v >> 8;
    }
    CHECK(tka_verify(pk, 32, msg, 1, big, 64, TKA_RULE_ZIP215) == 0);
    CHECK(tka_verify(pk, 32, msg, 1, big, 64, TKA_RULE_COFACTORLESS) == 0);
}

/* The identity as A and R ("-0" and canonical), S = 0: ZIP-215 accepts; Go's rule accepts
 * the canonical R (encode(identity) matches) but not the "-0" one. */
static void test_identity_edge(void) {
    uint8_t pk[32] = {1}, sig[64] = {1};
    uint8_t msg[5] = {'Z', 'c', 'a', 's', 'h'};
    CHECK(tka_verify(pk, 32, msg, 5, sig, 64, TKA_RULE_ZIP215) == 1);
    CHECK(tka_verify(pk, 32, msg, 5, sig, 64, TKA_RULE_COFACTORLESS) == 1);
    sig[31] = 0x80; /* R = "-0" */
    CHECK(tka_verify(pk, 32, msg, 5, sig, 64, TKA_RULE_ZIP215) == 1);
    CHECK(tka_verify(pk, 32, msg, 5, sig, 64, TKA_RULE_COFACTORLESS) == 0);
    /* y = 2 is not on the curve (u/v not a square): undecodable R. */
    uint8_t bad_r[64] = {2};
    CHECK(tka_verify(pk, 32, msg, 5, bad_r, 64, TKA_RULE_ZIP215) == 0);
}

/* Sign with a 128-bit secret scalar using the core's own arithmetic (tests the batch
 * against single verification, which the RFC vectors above anchor). */
static void sign128(uint8_t pk[32], uint8_t sig[64], const uint8_t *msg, size_t len, uint64_t a0,
                    uint64_t a1, uint64_t r0) {
    sc a = {{a0, a1, 0, 0}}, r = {{r0, 3, 0, 0}}, k;
    ge_p3 A, R;
    ge_straus_vartime(&A, NULL, NULL, 0, &a);
    ge_straus_vartime(&R, NULL, NULL, 0, &r);
    ge_tobytes(pk, &A);
    ge_tobytes(sig, &R);
    ed25519_challenge(&k, sig, pk, msg, len);
    sc_wide acc = {{r.v[0], r.v[1], 0, 0, 0, 0, 0, 0}};
    sc_wide_muladd128(&acc, &a, &k);
    sc s;
    sc_reduce_wide(&s, &acc);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) sig[32 + 8 * i + j] = (uint8_t)(s.v[i] >> (8 * j));
}

static void test_batch(size_t n, size_t nkeys) {
    uint8_t *pks = malloc(32 * n), *sigs = malloc(64 * n), *msgs = malloc(32 * n);
    uint8_t *verdicts = malloc(n);
    tka_batch_item *items = calloc(n, sizeof *items); /* zeroed: GCC -O1 cannot see n > 0 */
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < 32; j++) msgs[32 * i + j] = (uint8_t)(i * 31 + (size_t)j * 7);
        sign128(pks + 32 * i, sigs + 64 * i, msgs + 32 * i, 32, 1000 + i % nkeys, 77, 5 + i);
        items[i] = (tka_batch_item){pks + 32 * i, msgs + 32 * i, 32, sigs + 64 * i};
        CHECK(tka_verify(pks + 32 * i, 32, msgs + 32 * i, 32, sigs + 64 * i, 64,
                         TKA_RULE_ZIP215) == 1);
    }
    CHECK(tka_verify_batch_zip215(items, n, verdicts) == (int)n);
    for (size_t i = 0; i < n; i++) CHECK(verdicts[i] == 1);
    /* Break the first, the last and every 17th; the verdicts must say exactly which. */
    for (size_t i = 0; i < n; i++)
        if (i == 0 || i == n - 1 || i % 17 == 5) msgs[32 * i] ^= 1;
    int good = tka_verify_batch_zip215(items, n, verdicts);
    int expected_good = 0;
    for (size_t i = 0; i < n; i++) {
        int bad = (i == 0 || i == n - 1 || i % 17 == 5);
        expected_good += !bad;
        CHECK(verdicts[i] == !bad);
    }
    CHECK(good == expected_good);
    free(pks);
    free(sigs);
    free(msgs);
    free(verdicts);
    free(items);
}

static void test_batch_malformed(void) {
    uint8_t v[3] = {9, 9, 9};
    CHECK(tka_verify_batch_zip215(NULL, 0, v) == 0);
    CHECK(tka_verify_batch_zip215(NULL, 2, v) == TKA_ERR_ARG);
    CHECK(tka_verify_each(NULL, 2, v, TKA_RULE_COFACTORLESS) == TKA_ERR_ARG);
    tka_batch_item items[3];
    uint8_t zeros[64] = {0}, sbig[64];
    memset(sbig, 0xff, 64);
    items[0] = (tka_batch_item){NULL, NULL, 0, zeros};
    items[1] = (tka_batch_item){zeros, NULL, 5, zeros}; /* NULL message with a length */
    items[2] = (tka_batch_item){zeros, NULL, 0, sbig};  /* S >= L */
    CHECK(tka_verify_batch_zip215(items, 3, v) == 0);
    CHECK(v[0] == 0 && v[1] == 0 && v[2] == 0);
    size_t offsets[2] = {5, 2}; /* backwards: invalid, no out-of-range read */
    CHECK(tka_verify_batch_zip215_packed(zeros, zeros, zeros, offsets, 1, v) == 0);
}

/* The eight-way exponentiation (IFMA where the CPU has it) equals the scalar one, also for
 * inputs with loose limbs and values >= p. */
static void test_pow_x8(void) {
    uint64_t state = 0x243f6a8885a308d3ULL;
    for (int round = 0; round < 200; round++) {
        fe in[8], out[8];
        for (int j = 0; j < 8; j++) {
            for (int i = 0; i < 5; i++) {
                state = state * 6364136223846793005ULL + 1442695040888963407ULL;
                uint64_t bound = (round % 3 == 0) ? FE_MASK51 : ((uint64_t)1 << 53) - 1;
                in[j].v[i] = (state >> 7) & bound;
            }
        }
        if (round == 1) /* p itself, p + 1, all-ones limbs, zero */
            for (int j = 0; j < 4; j++) {
                in[j] = (fe){{FE_MASK51 - 18 + (uint64_t)j, FE_MASK51, FE_MASK51, FE_MASK51, FE_MASK51}};
                in[j + 4] = j == 0 ? FE_ZERO : (fe){{FE_MASK51, FE_MASK51, FE_MASK51, FE_MASK51, FE_MASK51}};
            }
        fe_pow22523_x8(out, in);
        for (int j = 0; j < 8; j++) {
            fe want;
            fe_pow22523(&want, &in[j]);
            uint8_t a[32], b[32];
            fe_tobytes(a, &out[j]);
            fe_tobytes(b, &want);
            CHECK(memcmp(a, b, 32) == 0);
        }
    }
    printf("pow x8 path: %s\n", fe_ifma_available() ? "avx512ifma" : "portable");
}

/* Pippenger (IFMA bucket lanes where available) equals Straus on the same terms, for sizes
 * that give few buckets (many repeats within a lane group) and many. */
/* sparse: scalars below 2^16 although nbits is larger, so the top windows have no used bucket
 * and the low ones few (unused buckets must count as the identity in the weighted sums). */
static void test_pippenger_matches_straus(size_t n, int nbits, int sparse) {
    ge_p3 *pts = malloc(n * sizeof(ge_p3));
    ge_niels *niels = malloc(n * sizeof(ge_niels));
    sc *scalars = malloc(n * sizeof(sc));
    uint64_t state = 0x9e3779b97f4a7c15ULL ^ n;
    for (size_t i = 0; i < n; i++) {
        sc k = {{i * 7919 + 3, i, 0, 0}};
        ge_p3 q;
        ge_straus_vartime(&q, NULL, NULL, 0, &k);
        uint8_t enc[32];
        ge_tobytes(enc, &q);
        CHECK(ge_frombytes_lenient(&pts[i], enc) == 1); /* affine, Z = 1 */
        ge_affine_p3_to_niels(&niels[i], &pts[i]);
        for (int l = 0; l < 4; l++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            scalars[i].v[l] = state;
        }
        if (nbits == 128) scalars[i].v[2] = scalars[i].v[3] = 0;
        else scalars[i].v[3] &= 0x0fffffffffffffffULL;
        if (sparse) {
            scalars[i].v[0] &= 0xffff;
            scalars[i].v[1] = scalars[i].v[2] = scalars[i].v[3] = 0;
        }
    }
    ge_p3 a, b;
    CHECK(ge_pippenger_vartime(&a, niels, scalars, n, nbits) == 0);
    CHECK(ge_straus_vartime(&b, pts, scalars, n, NULL) == 0);
    uint8_t ea[32], eb[32];
    ge_tobytes(ea, &a);
    ge_tobytes(eb, &b);
    CHECK(memcmp(ea, eb, 32) == 0);
    free(pts);
    free(niels);
    free(scalars);
}

/* Lenient decoding: y + p (for y < 19, the only values with room below 2^255) decodes exactly
 * like y, and re-encodes canonically as y. */
static void test_noncanonical_y(void) {
    static const uint8_t p_bytes[32] = {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    int decodable = 0;
    for (int y = 0; y < 19; y++)
        for (int sign = 0; sign < 2; sign++) {
            uint8_t canon[32] = {(uint8_t)y}, big[32];
            canon[31] = (uint8_t)(sign << 7);
            memcpy(big, p_bytes, 32);
            big[0] = (uint8_t)(big[0] + y); /* 0xed + y < 0x100 for y < 19 */
            big[31] |= (uint8_t)(sign << 7);
            ge_p3 a, b;
            int ok_a = ge_frombytes_lenient(&a, canon), ok_b = ge_frombytes_lenient(&b, big);
            CHECK(ok_a == ok_b);
            if (!ok_a) continue;
            decodable++;
            uint8_t ea[32], eb[32];
            ge_tobytes(ea, &a);
            ge_tobytes(eb, &b);
            CHECK(memcmp(ea, eb, 32) == 0);
            CHECK(ea[0] == y); /* canonical y, same value */
        }
    CHECK(decodable > 2); /* y = 0 and y = 1 at least, with both signs */
}

/* Random garbage (random lengths, bytes, mutated valid signatures) through every entry point
 * under the sanitizers: verdicts are 0 or 1, never a crash, and batch equals single. */
static void test_garbage(void) {
    enum { N = 600 };
    static uint8_t pks[N][33], sigs[N][65], msgs[N][40];
    tka_batch_item items[N];
    uint8_t verdicts[N];
    uint64_t state = 0x0123456789abcdefULL;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 33; j++) pks[i][j] = (uint8_t)((state = state * 6364136223846793005ULL + 1) >> 56);
        for (int j = 0; j < 65; j++) sigs[i][j] = (uint8_t)((state = state * 6364136223846793005ULL + 1) >> 56);
        for (int j = 0; j < 40; j++) msgs[i][j] = (uint8_t)((state = state * 6364136223846793005ULL + 1) >> 56);
        size_t msg_len = (size_t)(i % 41);
        if (i % 7 == 1) sigs[i][63] &= 0x0f; /* S < 2^252: passes the cheap check more often */
        if (i % 3 == 0) { /* a valid signature, then maybe one flipped bit */
            sign128(pks[i], sigs[i], msgs[i], msg_len, 99 + (uint64_t)i % 5, 1, (uint64_t)i);
            if (i % 2) sigs[i][(i / 2) % 64] ^= (uint8_t)(1u << (i % 8));
        }
        items[i] = (tka_batch_item){pks[i], msgs[i], msg_len, sigs[i]};
        size_t pk_len = (i % 11 == 5) ? 33 : 32, sig_len = (i % 13 == 6) ? 65 : 64;
        int a = tka_verify(pks[i], pk_len, msgs[i], items[i].msg_len, sigs[i], sig_len, TKA_RULE_ZIP215);
        int b = tka_verify(pks[i], pk_len, msgs[i], items[i].msg_len, sigs[i], sig_len,
                           TKA_RULE_COFACTORLESS);
        CHECK(a == 0 || a == 1);
        CHECK(b == 0 || b == 1);
        CHECK(!(b == 1 && a == 0)); /* Go-valid implies ZIP-215-valid */
    }
    int good = tka_verify_batch_zip215(items, N, verdicts);
    CHECK(good >= 0);
    int count = 0;
    for (int i = 0; i < N; i++) {
        int single = tka_verify(items[i].pk, 32, items[i].msg, items[i].msg_len, items[i].sig, 64,
                                TKA_RULE_ZIP215);
        CHECK(verdicts[i] == single);
        count += verdicts[i];
    }
    CHECK(count == good);
    CHECK(count > N / 10); /* the valid third mostly survives (half get a flipped bit) */
    /* tka_verify_each: per-item verdicts equal to tka_verify under both rules. */
    for (int rule = 0; rule < 2; rule++) {
        uint8_t each[N];
        int n_ok = tka_verify_each(items, N, each, rule);
        int sum = 0;
        for (int i = 0; i < N; i++) {
            int single = tka_verify(items[i].pk, 32, items[i].msg, items[i].msg_len, items[i].sig,
                                    64, rule);
            CHECK(each[i] == single);
            sum += each[i];
        }
        CHECK(n_ok == sum);
    }
    uint8_t dummy[1];
    CHECK(tka_verify_each(items, 1, dummy, 5) == TKA_ERR_RULE);
}

int main(void) {
    test_pow_x8();
    test_garbage();
    test_noncanonical_y();
    test_pippenger_matches_straus(9, 128, 0);
    test_pippenger_matches_straus(100, 128, 0);
    test_pippenger_matches_straus(1500, 128, 0);
    test_pippenger_matches_straus(1500, 128, 1);
    test_pippenger_matches_straus(20000, 128, 0); /* 2^11 buckets, the weighted sums in lanes */
    test_pippenger_matches_straus(70, 252, 0);
    test_rfc8032();
    test_identity_edge();
    test_batch(1, 1);
    test_batch(40, 1);
    test_batch(300, 3);
    test_batch(200, 50); /* > 32 distinct keys: A terms through Pippenger */
    test_batch_malformed();
    if (failures == 0) printf("ed25519: all ok\n");
    return failures == 0 ? 0 : 1;
}
