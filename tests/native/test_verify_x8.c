/* The eight-lane cofactorless path (ge_x8.c, used by tka_verify_each) against the scalar
 * code: the double-scalar multiplication on random and edge scalars and points (small
 * order, mixed order, from non-canonical encodings), and tka_verify_each verdicts against
 * tka_verify on random mixes of valid and adversarial signatures (small-order and
 * non-canonical A, non-canonical R, S >= L, undecodable A, NULLs) at sizes that are not
 * multiples of eight. ctest runs it twice: with IFMA (where the CPU has it) and with
 * TKA_NATIVE_NO_IFMA=1. TKA_X8_SEED picks another random seed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed25519_internal.h"
#include "fe_ifma.h"
#include "ge.h"
#include "ge_x8.h"
#include "sc.h"
#include "tka_native.h"

static int failures = 0;
#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                              \
        }                                                                            \
    } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd64(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static void rnd_bytes(uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(rnd64() >> 32);
}

static const uint8_t L_BYTES[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                    0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                    0,    0,    0,    0,    0,    0,    0,    0,
                                    0,    0,    0,    0,    0,    0,    0,    0x10};

static void sc_random(sc *r) {
    uint8_t b[64];
    rnd_bytes(b, 64);
    sc_from_bytes_wide(r, b);
}

/* r = a * b mod L. */
static void sc_mul_mod(sc *r, const sc *a, const sc *b) {
    sc_wide w;
    memset(&w, 0, sizeof w);
    for (int i = 0; i < 4; i++) {
        tka_u128 carry = 0;
        for (int j = 0; j < 4; j++) {
            tka_u128 t = (tka_u128)a->v[i] * b->v[j] + w.v[i + j] + carry;
            w.v[i + j] = (uint64_t)t;
            carry = t >> 64;
        }
        w.v[i + 4] = (uint64_t)carry;
    }
    sc_reduce_wide(r, &w);
}

static void sc_add_mod(sc *r, const sc *a, const sc *b) {
    sc_wide w;
    memset(&w, 0, sizeof w);
    tka_u128 carry = 0;
    for (int i = 0; i < 4; i++) {
        tka_u128 t = (tka_u128)a->v[i] + b->v[i] + carry;
        w.v[i] = (uint64_t)t;
        carry = t >> 64;
    }
    w.v[4] = (uint64_t)carry;
    sc_reduce_wide(r, &w);
}

static void sc_to_bytes(uint8_t out[32], const sc *a) {
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) out[8 * i + j] = (uint8_t)(a->v[i] >> (8 * j));
}

static void mul_base(ge_p3 *out, const sc *a) { CHECK(ge_straus_vartime(out, NULL, NULL, 0, a) == 0); }
static void mul_point(ge_p3 *out, const ge_p3 *p, const sc *a) {
    CHECK(ge_straus_vartime(out, p, a, 1, NULL) == 0);
}
static void sc_small(sc *r, uint64_t v) {
    memset(r, 0, sizeof *r);
    r->v[0] = v;
}

static void unhex(uint8_t *out, const char *hex) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* Small-order encodings: canonical and not (y >= p, x = -0). */
#define N_SMALL 10
static const char *const SMALL_HEX[N_SMALL] = {
    "0100000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
};

static ge_p3 T8;         /* a point of order 8 */
static uint8_t T8_ENC[32];

static void random_point(ge_p3 *p, uint8_t enc[32]) {
    uint8_t b[32];
    do rnd_bytes(b, 32);
    while (!ge_frombytes_lenient(p, b));
    if (enc != NULL) memcpy(enc, b, 32);
}

static void find_torsion(void) {
    for (;;) {
        ge_p3 p, t, t4;
        sc l;
        random_point(&p, NULL);
        sc_from_bytes(&l, L_BYTES);
        mul_point(&t, &p, &l);
        t4 = t;
        for (int i = 0; i < 2; i++) ge_dbl_p3(&t4, &t4);
        if (!ge_p3_is_identity(&t4)) {
            T8 = t;
            ge_tobytes(T8_ENC, &T8);
            return;
        }
    }
}

static int same_point(const ge_p3 *a, const ge_p3 *b) {
    uint8_t x[32], y[32];
    ge_tobytes(x, a);
    ge_tobytes(y, b);
    return memcmp(x, y, 32) == 0;
}

/* ---- the multiplication itself ---- */

static void scalar_ref(ge_p3 *out, const ge_p3 *a, const sc *k, const sc *s) {
    ge_p3 neg_a;
    ge_cached table[GE_STRAUS_TABLE];
    ge_p3_neg(&neg_a, a);
    ge_straus_table(table, &neg_a);
    ge_double_scalarmult_table(out, table, k, s);
}

static void edge_scalar(sc *r, int which) {
    uint8_t b[32];
    memset(b, 0, 32);
    switch (which % 14) {
    case 0: break;                                  /* 0 */
    case 1: b[0] = 1; break;                        /* 1 */
    case 2: memcpy(b, L_BYTES, 32); b[0] -= 1; break; /* L - 1 */
    case 3: memcpy(b, L_BYTES, 32); b[0] -= 2; break; /* L - 2 */
    case 4: b[31] = 0x10; break;                    /* 2^252 */
    case 5: memset(b, 0xff, 32); b[31] = 0x1f; break; /* 2^253 - 1 */
    case 6: memset(b, 0x80, 32); b[31] = 0x10; break; /* every radix-2^8 digit 128 */
    case 7: memset(b, 0x81, 32); b[31] = 0x11; break; /* digits -127 with carries */
    case 8: memset(b, 0x7f, 32); b[31] = 0x0f; break;
    case 9: /* bits 4, 9, 14, ...: every radix-2^5 digit 16 */
        for (int i = 4; i < 253; i += 5) b[i / 8] |= (uint8_t)(1u << (i % 8));
        break;
    case 10: /* 10001 repeated: radix-2^5 digits 17 -> -15 with carries */
        for (int i = 0; i < 253; i += 5) {
            b[i / 8] |= (uint8_t)(1u << (i % 8));
            if (i + 4 < 253) b[(i + 4) / 8] |= (uint8_t)(1u << ((i + 4) % 8));
        }
        break;
    case 11: memset(b, 0xff, 32); b[31] = 0x0f; break; /* 2^252 - 1 */
    case 12: b[0] = 0x10; break;                    /* 16 */
    default: b[0] = 0x11; break;                    /* 17 */
    }
    sc_from_bytes(r, b);
}

static void test_multiplication(void) {
    for (int round = 0; round < 60; round++) {
        ge_p3 a[8], out[8];
        sc k[8], s[8];
        for (int j = 0; j < 8; j++) {
            int kind = (int)(rnd64() % 6);
            if (kind == 0) { /* prime order */
                sc x;
                sc_random(&x);
                mul_base(&a[j], &x);
            } else if (kind == 1) { /* small order, maybe non-canonical */
                uint8_t e[32];
                unhex(e, SMALL_HEX[rnd64() % N_SMALL]);
                CHECK(ge_frombytes_lenient(&a[j], e));
            } else if (kind == 2) { /* a multiple of the order-8 point */
                sc m;
                sc_small(&m, rnd64() % 8);
                mul_point(&a[j], &T8, &m);
            } else { /* random, usually mixed order; non-canonical y sometimes */
                uint8_t e[32];
                random_point(&a[j], e);
            }
            if (round < 14) {
                edge_scalar(&k[j], round + j);
                edge_scalar(&s[j], round + 3 * j + 1);
            } else if (round < 28) {
                edge_scalar(&k[j], (int)(rnd64() % 14));
                sc_random(&s[j]);
            } else {
                sc_random(&k[j]);
                sc_random(&s[j]);
            }
        }
        ge_double_scalarmult_base_x8(out, a, k, s);
        for (int j = 0; j < 8; j++) {
            ge_p3 ref;
            scalar_ref(&ref, &a[j], &k[j], &s[j]);
            CHECK(same_point(&out[j], &ref));
        }
    }
}

/* ---- verify_each against tka_verify ---- */

typedef struct {
    uint8_t pk[32], sig[64], msg[32];
    size_t msg_len;
    int null_pk, null_sig;
} case_t;

/* R = enc([r]B - [c]T8), S = r + k x for A = enc([x]B + [m]T8): valid when [k]T8 = [c]T8. */
static void sign_mixed(case_t *c, const sc *x, uint64_t m, uint64_t guess) {
    ge_p3 xb, tm, a, rb, tc, neg, rp;
    sc ms, cs, r, k, kx, s;
    mul_base(&xb, x);
    sc_small(&ms, m);
    mul_point(&tm, &T8, &ms);
    ge_p3_add(&a, &xb, &tm);
    ge_tobytes(c->pk, &a);
    sc_random(&r);
    mul_base(&rb, &r);
    sc_small(&cs, guess);
    mul_point(&tc, &T8, &cs);
    ge_p3_neg(&neg, &tc);
    ge_p3_add(&rp, &rb, &neg);
    ge_tobytes(c->sig, &rp);
    ed25519_challenge(&k, c->sig, c->pk, c->msg, c->msg_len);
    sc_mul_mod(&kx, &k, x);
    sc_add_mod(&s, &r, &kx);
    sc_to_bytes(c->sig + 32, &s);
}

/* A = a small-order encoding, S = 0: the check is R = enc(-[k]A), so R = the canonical
 * identity, or one of its non-canonical encodings, or a guess at -[k]A. */
static void sign_small(case_t *c) {
    unhex(c->pk, SMALL_HEX[rnd64() % N_SMALL]);
    memset(c->sig + 32, 0, 32);
    int how = (int)(rnd64() % 4);
    if (how < 3) {
        unhex(c->sig, SMALL_HEX[how == 0 ? 0 : how == 1 ? 1 : 2]);
    } else {
        ge_p3 a, ka, neg;
        sc k;
        CHECK(ge_frombytes_lenient(&a, c->pk));
        rnd_bytes(c->sig, 32);
        /* Try R such that the hash makes it right: R = enc(-[k]A) for the k of a guess. */
        for (int tries = 0; tries < 8; tries++) {
            ed25519_challenge(&k, c->sig, c->pk, c->msg, c->msg_len);
            mul_point(&ka, &a, &k);
            ge_p3_neg(&neg, &ka);
            uint8_t want[32];
            ge_tobytes(want, &neg);
            if (memcmp(want, c->sig, 32) == 0) break;
            memcpy(c->sig, want, 32);
        }
    }
    /* Sometimes a non-zero S (then [S]B has prime order and the check fails). */
    if (rnd64() % 4 == 0) {
        sc s;
        sc_random(&s);
        sc_to_bytes(c->sig + 32, &s);
    }
}

static void make_case(case_t *c, int kind) {
    memset(c, 0, sizeof *c);
    c->msg_len = rnd64() % 3 == 0 ? rnd64() % 33 : 32;
    rnd_bytes(c->msg, 32);
    sc x;
    sc_random(&x);
    switch (kind) {
    case 0: /* valid, prime-order key */
    case 1:
    case 2:
        sign_mixed(c, &x, 0, 0);
        break;
    case 3: { /* mixed-order key: valid when the guess matches */
        uint64_t m = 1 + rnd64() % 7;
        for (int t = 0; t < 16; t++) {
            sign_mixed(c, &x, m, rnd64() % 8);
            if (tka_verify(c->pk, 32, c->msg, c->msg_len, c->sig, 64, TKA_RULE_COFACTORLESS) == 1)
                break;
        }
        break;
    }
    case 4: /* small-order key, some valid */
        sign_small(c);
        break;
    case 5: { /* valid signature, then S + L (same value mod L) or S >= L otherwise */
        sign_mixed(c, &x, 0, 0);
        int how = (int)(rnd64() % 3);
        if (how == 0) {
            unsigned carry = 0;
            for (int i = 0; i < 32; i++) {
                unsigned v = c->sig[32 + i] + L_BYTES[i] + carry;
                c->sig[32 + i] = (uint8_t)v;
                carry = v >> 8;
            }
        } else if (how == 1) {
            memcpy(c->sig + 32, L_BYTES, 32);
        } else {
            c->sig[63] |= 0xe0;
        }
        break;
    }
    case 6: { /* non-canonical R: y >= p, or the identity's "-0"; or a valid one with the
               * sign bit flipped */
        sign_mixed(c, &x, 0, 0);
        int how = (int)(rnd64() % 3);
        if (how == 0) unhex(c->sig, SMALL_HEX[1 + rnd64() % 3]);
        else if (how == 1) c->sig[31] ^= 0x80;
        else {
            memset(c->sig, 0xff, 32);
            c->sig[0] = (uint8_t)(0xed + rnd64() % 0x12);
            c->sig[31] = (rnd64() & 1) ? 0xff : 0x7f;
        }
        break;
    }
    case 7: { /* non-canonical A encodings of arbitrary points (y >= p) with a signature
               * computed as if the key were its canonical form */
        sign_mixed(c, &x, 0, 0);
        memset(c->pk, 0xff, 32);
        c->pk[0] = (uint8_t)(0xed + rnd64() % 0x12);
        c->pk[31] = (rnd64() & 1) ? 0xff : 0x7f;
        break;
    }
    case 8: /* A not a point (most random bytes half the time) or a corrupted message */
        sign_mixed(c, &x, 0, 0);
        if (rnd64() & 1) rnd_bytes(c->pk, 32);
        else c->msg[rnd64() % 32] ^= 1;
        break;
    case 9: /* a flipped bit in S or R */
        sign_mixed(c, &x, 0, 0);
        c->sig[rnd64() % 64] ^= (uint8_t)(1u << (rnd64() % 8));
        break;
    default: /* NULL pointers */
        sign_mixed(c, &x, 0, 0);
        if (rnd64() & 1) c->null_pk = 1;
        else c->null_sig = 1;
        break;
    }
}

/* The rules from the scalar primitives only (no key cache, no lanes). */
static int ref_verify(const tka_batch_item *it, int rule) {
    if (it->pk == NULL || it->sig == NULL) return 0;
    if (!sc_is_canonical(it->sig + 32)) return 0;
    ge_p3 a;
    if (!ge_frombytes_lenient(&a, it->pk)) return 0;
    if (rule == TKA_RULE_ZIP215)
        return ed25519_verify_zip215_decoded(&a, it->pk, it->msg, it->msg_len, it->sig);
    sc s, k;
    ge_p3 p;
    sc_from_bytes(&s, it->sig + 32);
    ed25519_challenge(&k, it->sig, it->pk, it->msg, it->msg_len);
    scalar_ref(&p, &a, &k, &s);
    uint8_t enc[32];
    ge_tobytes(enc, &p);
    return memcmp(enc, it->sig, 32) == 0;
}

static int accepted_total = 0, checked_total = 0;

static void check_cases(const case_t *cases, size_t n) {
    tka_batch_item *items = calloc(n, sizeof *items);
    uint8_t *verdicts = calloc(n, 1), *zv = calloc(n, 1);
    int expect_valid = 0, expect_zip = 0;
    for (size_t i = 0; i < n; i++) {
        const case_t *c = &cases[i];
        items[i] = (tka_batch_item){.pk = c->null_pk ? NULL : c->pk, .msg = c->msg,
                                    .msg_len = c->msg_len, .sig = c->null_sig ? NULL : c->sig};
    }
    int got = tka_verify_each(items, n, verdicts, TKA_RULE_COFACTORLESS);
    int got_zip = tka_verify_each(items, n, zv, TKA_RULE_ZIP215);
    for (size_t i = 0; i < n; i++) {
        const tka_batch_item *it = &items[i];
        int want = tka_verify(it->pk, 32, it->msg, it->msg_len, it->sig, 64, TKA_RULE_COFACTORLESS);
        int want_zip = tka_verify(it->pk, 32, it->msg, it->msg_len, it->sig, 64, TKA_RULE_ZIP215);
        if (verdicts[i] != want) {
            fprintf(stderr, "item %zu of %zu: verify_each %d, tka_verify %d\n", i, n, verdicts[i],
                    want);
        }
        CHECK(verdicts[i] == want);
        CHECK(zv[i] == want_zip);
        CHECK(want == ref_verify(it, TKA_RULE_COFACTORLESS));
        CHECK(want_zip == ref_verify(it, TKA_RULE_ZIP215));
        CHECK(!want || want_zip); /* cofactorless implies ZIP-215 */
        expect_valid += want;
        expect_zip += want_zip;
    }
    CHECK(got == expect_valid);
    CHECK(got_zip == expect_zip);
    accepted_total += expect_valid;
    checked_total += (int)n;
    free(items);
    free(verdicts);
    free(zv);
}

/* The single-verification lanes (ge_double_scalarmult_split): [a]P + [b]B. */
static void test_split(void) {
    if (!ge_split_available()) return;
    static ge_split_table table;
    for (int round = 0; round < 40; round++) {
        ge_p3 p;
        int kind = round % 4;
        if (kind == 0) {
            sc x;
            sc_random(&x);
            mul_base(&p, &x);
        } else if (kind == 1) {
            uint8_t e[32];
            unhex(e, SMALL_HEX[rnd64() % N_SMALL]);
            CHECK(ge_frombytes_lenient(&p, e));
        } else {
            random_point(&p, NULL);
        }
        ge_split_table_init(&table, &p);
        for (int t = 0; t < 6; t++) {
            sc a, b;
            if (t < 3) {
                edge_scalar(&a, round + t);
                edge_scalar(&b, 3 * round + t + 5);
            } else {
                sc_random(&a);
                sc_random(&b);
            }
            ge_p3 got, want, neg;
            ge_double_scalarmult_split(&got, &table, &a, &b);
            /* scalar_ref computes [b]B - [a]Q; with Q = -P that is [a]P + [b]B. */
            ge_p3_neg(&neg, &p);
            scalar_ref(&want, &neg, &a, &b);
            CHECK(same_point(&got, &want));
        }
    }
}

/* Many signatures under one key (the per-thread key cache hits): tka_verify against the
 * reference, valid and corrupted. */
static void test_cached_key(void) {
    sc x;
    sc_random(&x);
    for (int i = 0; i < 300; i++) {
        case_t c;
        memset(&c, 0, sizeof c);
        c.msg_len = 32;
        rnd_bytes(c.msg, 32);
        sign_mixed(&c, &x, (uint64_t)(i % 3 == 0 ? 2 : 0), rnd64() % 8);
        if (i % 5 == 1) c.sig[rnd64() % 64] ^= 1;
        tka_batch_item it = {.pk = c.pk, .msg = c.msg, .msg_len = 32, .sig = c.sig};
        for (int rule = 0; rule <= 1; rule++)
            CHECK(tka_verify(c.pk, 32, c.msg, 32, c.sig, 64, rule) == ref_verify(&it, rule));
    }
}

static void test_verify_each(void) {
    static const size_t sizes[] = {1, 2, 3, 5, 7, 8, 9, 10, 11, 13, 15, 16, 17, 23, 31, 63, 64,
                                   65, 66, 71, 72, 100, 129, 257, 700};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        case_t *cases = malloc(n * sizeof *cases);
        for (int variant = 0; variant < 3; variant++) {
            for (size_t i = 0; i < n; i++) {
                int kind;
                if (variant == 0) kind = (int)(rnd64() % 11);          /* every kind */
                else if (variant == 1) kind = (int)(rnd64() % 3);       /* all valid */
                else kind = (rnd64() % 4 == 0) ? 3 + (int)(rnd64() % 8) : 0; /* mostly valid */
                make_case(&cases[i], kind);
            }
            check_cases(cases, n);
        }
        free(cases);
    }
    /* One bad item at every position of a group of 64 (and of the tail). */
    case_t cases[75];
    for (size_t bad = 0; bad < 75; bad += 3) {
        for (size_t i = 0; i < 75; i++) make_case(&cases[i], i == bad ? 9 : 0);
        check_cases(cases, 75);
    }
}

/* The packed entry point gives the same verdicts. */
static void test_packed(void) {
    enum { N = 43 };
    case_t cases[N];
    uint8_t pks[32 * N], sigs[64 * N], msgs[32 * N], v1[N], v2[N];
    size_t offsets[N + 1];
    tka_batch_item items[N];
    size_t at = 0;
    for (size_t i = 0; i < N; i++) {
        make_case(&cases[i], (int)(rnd64() % 10));
        memcpy(pks + 32 * i, cases[i].pk, 32);
        memcpy(sigs + 64 * i, cases[i].sig, 64);
        offsets[i] = at;
        memcpy(msgs + at, cases[i].msg, cases[i].msg_len);
        at += cases[i].msg_len;
        items[i] = (tka_batch_item){.pk = cases[i].pk, .msg = cases[i].msg,
                                    .msg_len = cases[i].msg_len, .sig = cases[i].sig};
    }
    offsets[N] = at;
    int a = tka_verify_each_packed(pks, sigs, msgs, offsets, N, v1, TKA_RULE_COFACTORLESS);
    int b = tka_verify_each(items, N, v2, TKA_RULE_COFACTORLESS);
    CHECK(a == b);
    CHECK(memcmp(v1, v2, N) == 0);
}

int main(void) {
    const char *seed = getenv("TKA_X8_SEED");
    if (seed != NULL && seed[0] != '\0') rng ^= strtoull(seed, NULL, 0) * 0x2545f4914f6cdd1dULL;
    printf("test_verify_x8: %s path\n", fe_ifma_available() ? "AVX-512 IFMA" : "portable");
    find_torsion();
    test_multiplication();
    test_split();
    test_cached_key();
    test_verify_each();
    test_packed();
    printf("test_verify_x8: %d items compared, %d accepted\n", checked_total, accepted_total);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("test_verify_x8: ok\n");
    return 0;
}
