/*
 * Single Ed25519 verification with the two rules tailnet lock needs (docs/format.md §4):
 *
 *   TKA_RULE_ZIP215        ed25519consensus: S < L; A and R decoded leniently (non-canonical
 *                          and small-order encodings accepted); [8](S B - R - k A) == 0.
 *   TKA_RULE_COFACTORLESS  Go crypto/ed25519: S < L; A decoded leniently; R never decoded,
 *                          compared byte for byte with encode(S B - k A).
 *
 * k = SHA-512(R || A || M) over the bytes exactly as received, reduced mod L.
 */
#include <string.h>

#include "ed25519_internal.h"
#include "ge.h"
#include "ge_x4.h"
#include "ge_x8.h"
#include "lattice.h"
#include "sc.h"
#include "sha512.h"
#include "tka_native.h"

void ed25519_challenge(sc *k, const uint8_t r[32], const uint8_t a[32], const uint8_t *msg,
                       size_t msg_len) {
    sha512_ctx ctx;
    uint8_t h[64];
    sha512_init(&ctx);
    sha512_update(&ctx, r, 32);
    sha512_update(&ctx, a, 32);
    if (msg_len > 0) sha512_update(&ctx, msg, msg_len);
    sha512_final(&ctx, h);
    sc_from_bytes_wide(k, h);
}

/* Everything after A is known, given -A and the Straus table of -A (or, where split is not
 * NULL, its eight-lane table; where neg_a_table is NULL, the four-lane path builds its own):
 * [S]B - [k]A, then the rule. */
static int verify_with_table(const ge_p3 *neg_a, const ge_cached *neg_a_table,
                             const ge_split_table *split, const uint8_t pk[32],
                             const uint8_t *msg, size_t msg_len, const uint8_t sig[64], int rule) {
    sc s, k;
    ge_p3 p;
    if (!sc_is_canonical(sig + 32)) return 0;
    ge_p3 r;
    if (rule == TKA_RULE_ZIP215) {
        int ok;
        ge_frombytes_lenient_x4(&r, &ok, &sig, 1);
        if (!ok) return 0;
    }
    sc_from_bytes(&s, sig + 32);
    ed25519_challenge(&k, sig, pk, msg, msg_len);
    if (split != NULL) ge_double_scalarmult_split(&p, split, &k, &s); /* p = S B - k A */
    else if (neg_a_table == NULL) ge_double_scalarmult_x4(&p, neg_a, &k, &s);
    else ge_double_scalarmult_table(&p, neg_a_table, &k, &s);
    if (rule == TKA_RULE_COFACTORLESS) {
        uint8_t rcheck[32];
        ge_x4_tobytes(rcheck, &p);
        return memcmp(rcheck, sig, 32) == 0;
    }
    /* ZIP-215: subtract R, then clear the cofactor before the identity test. */
    ge_cached rc;
    ge_p1p1 t;
    ge_p3_to_cached(&rc, &r);
    ge_add_cached(&t, &p, &rc, 1);
    ge_p1p1_to_p3(&p, &t);
    for (int i = 0; i < 3; i++) ge_dbl_p3(&p, &p);
    return ge_p3_is_identity(&p);
}

/* A key seen for the first time (with the four-lane path): the equation runs with
 * half-length scalars (lattice.h) over R's point, so R is decoded, together with A. Go's
 * rule compares encode([S]B - [k]A) with R's bytes; that equals comparing the points when R's
 * bytes are the canonical encoding of the point they decode to (y < p, no "-0") and can
 * never hold otherwise, so those are refused first. */
int ed25519_verify_decoded_pair(const ge_p3 *a, const ge_p3 *r, const uint8_t pk[32],
                                const uint8_t *msg, size_t msg_len, const uint8_t sig[64],
                                int rule) {
    if (rule == TKA_RULE_COFACTORLESS && !ge_is_canonical_encoding(sig, r)) return 0;
    sc s, k, k1, k2, c;
    int k2_negative;
    sc_from_bytes(&s, sig + 32);
    ed25519_challenge(&k, sig, pk, msg, msg_len);
    (void)lattice_halve_challenge(&k1, &k2, &k2_negative, &k);
    /* [k2]([S]B - [k]A - R) = [k2 S]B - [k1]A - [k2]R; for k2 < 0 its negation, with |k2|. */
    sc_mul(&c, &k2, &s);
    ge_p3 a_term, neg_r, y;
    if (k2_negative) a_term = *a;
    else ge_p3_neg(&a_term, a);
    ge_p3_neg(&neg_r, r);
    int rc = ge_triple_scalarmult_x4(&y, &a_term, &k1, &neg_r, &k2, &c);
    if (rc != 0) return rc;
    if (rule == TKA_RULE_ZIP215)
        for (int i = 0; i < 3; i++) ge_dbl_p3(&y, &y);
    return ge_p3_is_identity(&y);
}

int ed25519_verify_zip215_decoded(const ge_p3 *a, const uint8_t pk[32], const uint8_t *msg,
                                  size_t msg_len, const uint8_t sig[64]) {
    ge_p3 neg_a;
    ge_p3_neg(&neg_a, a);
    if (ge_x4_available())
        return verify_with_table(&neg_a, NULL, NULL, pk, msg, msg_len, sig, TKA_RULE_ZIP215);
    ge_cached table[GE_STRAUS_TABLE];
    ge_straus_table(table, &neg_a);
    return verify_with_table(&neg_a, table, NULL, pk, msg, msg_len, sig, TKA_RULE_ZIP215);
}

/* Verifiers see the same few keys again and again (authority keys), so each thread keeps the
 * decoded tables of its last few keys, found by exact bytes. Decoding a key is a square root
 * plus seven additions, about a tenth of a verification. With AVX-512 IFMA, a key seen a
 * second time also gets -A's eight-lane table (ge_x8.h: 245 doublings, about one scalar
 * verification, so a key used once does not pay for it), after which each verification runs
 * its [S]B - [k]A across the lanes, about three times faster. */
#define KEY_CACHE_SIZE 4
typedef struct {
    uint8_t pk[32];
    int valid;
    int has_split;
    ge_p3 neg_a;
    ge_cached neg_a_table[GE_STRAUS_TABLE];
    ge_split_table split;
} key_cache_entry;
static _Thread_local key_cache_entry key_cache[KEY_CACHE_SIZE];
static _Thread_local unsigned key_cache_next;

/* The cache entry for pk, or NULL if it is not cached. */
static const key_cache_entry *key_find(const uint8_t pk[32]) {
    for (int i = 0; i < KEY_CACHE_SIZE; i++) {
        key_cache_entry *e = &key_cache[i];
        if (!e->valid || memcmp(e->pk, pk, 32) != 0) continue;
        if (!e->has_split && ge_split_available()) {
            ge_split_table_init(&e->split, &e->neg_a);
            e->has_split = 1;
        }
        return e;
    }
    return NULL;
}

static const key_cache_entry *key_store(const uint8_t pk[32], const ge_p3 *a) {
    key_cache_entry *e = &key_cache[key_cache_next++ % KEY_CACHE_SIZE];
    memcpy(e->pk, pk, 32);
    ge_p3_neg(&e->neg_a, a);
    /* The four-lane path needs no scalar table (it builds its own in the lanes). */
    if (!ge_x4_available()) ge_straus_table(e->neg_a_table, &e->neg_a);
    e->has_split = 0;
    e->valid = 1;
    return e;
}

int tka_verify(const uint8_t *pk, size_t pk_len, const uint8_t *msg, size_t msg_len,
               const uint8_t *sig, size_t sig_len, int rule) {
    if (rule != TKA_RULE_ZIP215 && rule != TKA_RULE_COFACTORLESS) return TKA_ERR_RULE;
    if (pk == NULL || sig == NULL || pk_len != 32 || sig_len != 64) return 0;
    if (msg == NULL && msg_len != 0) return 0;
    /* Cheapest rejection first: a non-canonical S needs no point decoding. */
    if (!sc_is_canonical(sig + 32)) return 0;
    const key_cache_entry *e = key_find(pk);
    if (e == NULL && ge_x4_available()) {
        const uint8_t *encodings[2] = {pk, sig};
        ge_p3 points[2];
        int ok[2];
        ge_frombytes_lenient_x4(points, ok, encodings, 2);
        if (!ok[0]) return 0;
        (void)key_store(pk, &points[0]);
        /* Every point has an encoding, so an R that decodes to none fails both rules. */
        if (!ok[1]) return 0;
        return ed25519_verify_decoded_pair(&points[0], &points[1], pk, msg, msg_len, sig, rule);
    }
    if (e == NULL) {
        ge_p3 a;
        if (!ge_frombytes_lenient(&a, pk)) return 0;
        e = key_store(pk, &a);
    }
    if (!e->has_split && ge_x4_available()) {
        /* Four lanes without the eight-lane table (AVX2): the half-length equation, with R
         * decoded in the lanes, beats [S]B - [k]A at full length (about 1.25x). */
        ge_p3 a, r;
        int ok;
        ge_frombytes_lenient_x4(&r, &ok, &sig, 1);
        if (!ok) return 0;
        ge_p3_neg(&a, &e->neg_a);
        return ed25519_verify_decoded_pair(&a, &r, pk, msg, msg_len, sig, rule);
    }
    return verify_with_table(&e->neg_a, ge_x4_available() ? NULL : e->neg_a_table,
                             e->has_split ? &e->split : NULL, pk, msg, msg_len, sig, rule);
}
