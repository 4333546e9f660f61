/*
 * Single Ed25519 verification with the two rules tailnet lock needs (spec §4.3):
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

int ed25519_verify_zip215_decoded(const ge_p3 *a, const uint8_t pk[32], const uint8_t *msg,
                                  size_t msg_len, const uint8_t sig[64]) {
    ge_p3 r, neg_a, p;
    sc s, k;
    if (!sc_is_canonical(sig + 32)) return 0;
    if (!ge_frombytes_lenient(&r, sig)) return 0;
    sc_from_bytes(&s, sig + 32);
    ed25519_challenge(&k, sig, pk, msg, msg_len);
    ge_p3_neg(&neg_a, a);
    if (ge_straus_vartime(&p, &neg_a, &k, 1, &s) != 0) return TKA_ERR_NOMEM;
    /* p = S B - k A; subtract R, then clear the cofactor before the identity test. */
    ge_cached rc;
    ge_p1p1 t;
    ge_p3_to_cached(&rc, &r);
    ge_add_cached(&t, &p, &rc, 1);
    ge_p1p1_to_p3(&p, &t);
    for (int i = 0; i < 3; i++) ge_dbl_p3(&p, &p);
    return ge_p3_is_identity(&p);
}

static int verify_cofactorless(const ge_p3 *a, const uint8_t pk[32], const uint8_t *msg,
                               size_t msg_len, const uint8_t sig[64]) {
    ge_p3 neg_a, p;
    sc s, k;
    uint8_t rcheck[32];
    if (!sc_is_canonical(sig + 32)) return 0;
    sc_from_bytes(&s, sig + 32);
    ed25519_challenge(&k, sig, pk, msg, msg_len);
    ge_p3_neg(&neg_a, a);
    if (ge_straus_vartime(&p, &neg_a, &k, 1, &s) != 0) return TKA_ERR_NOMEM;
    ge_tobytes(rcheck, &p);
    return memcmp(rcheck, sig, 32) == 0;
}

int tka_verify(const uint8_t *pk, size_t pk_len, const uint8_t *msg, size_t msg_len,
               const uint8_t *sig, size_t sig_len, int rule) {
    if (rule != TKA_RULE_ZIP215 && rule != TKA_RULE_COFACTORLESS) return TKA_ERR_RULE;
    if (pk == NULL || sig == NULL || pk_len != 32 || sig_len != 64) return 0;
    if (msg == NULL && msg_len != 0) return 0;
    /* Cheapest rejection first: a non-canonical S needs no point decoding. */
    if (!sc_is_canonical(sig + 32)) return 0;
    ge_p3 a;
    if (!ge_frombytes_lenient(&a, pk)) return 0;
    if (rule == TKA_RULE_ZIP215) return ed25519_verify_zip215_decoded(&a, pk, msg, msg_len, sig);
    return verify_cofactorless(&a, pk, msg, msg_len, sig);
}
