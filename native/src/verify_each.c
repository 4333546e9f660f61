/*
 * Many independent verifications (no batch equation), each with tka_verify's exact verdict,
 * sharing the expensive field work across a group of items: public keys (and, for ZIP-215,
 * R) are decoded eight at a time (interleaved or IFMA square roots), and the cofactorless
 * rule's final encodings share one inversion per group (Montgomery's trick). Rotation
 * signatures, which must follow Go's cofactorless rule exactly, have no sound batch form, so
 * this is how they are checked in bulk. With AVX-512 IFMA, the cofactorless [S]B - [k]A
 * runs for eight signatures at once in vector lanes (ge_x8.c); every step around it (the
 * S < L check, decoding A, k, the encoding compared byte for byte with R) is the scalar
 * rule's own code, so the verdicts are tka_verify's on both paths.
 */
#include <stdlib.h>
#include <string.h>

#include "ed25519_internal.h"
#include "fe_ifma.h"
#include "ge.h"
#include "ge_x4.h"
#include "ge_x8.h"
#include "sc.h"
#include "sha512_x8.h"
#include "tka_native.h"

#define GROUP 64
/* A lone live entry at the end of a group goes through the scalar code: an eight-lane run
 * costs about 1.5 scalar ones (and computes eight). */
#define X8_MIN_LANES 2

typedef struct {
    size_t item;
    ge_p3 a;
    ge_p3 r;
    ge_p3 p; /* [S]B - [k]A */
} pending;

/* Decode enc(j) for every pending entry into point(j), sixteen at a time (two interleaved
 * chains in IFMA lanes) while more than eight are left, then eight; clears ok for those that
 * fail. */
static void decode_all(pending *pend, int *ok, size_t count, const tka_batch_item *items,
                       int which_r) {
    for (size_t c = 0; c < count;) {
        const uint8_t *encs[16];
        ge_p3 pts[16];
        int oks[16];
        size_t width = count - c > 8 ? 16 : 8;
        size_t lanes = count - c < width ? count - c : width;
        for (size_t j = 0; j < width; j++) {
            const tka_batch_item *it = &items[pend[c + (j < lanes ? j : 0)].item];
            encs[j] = which_r ? it->sig : it->pk;
        }
        if (width == 16) ge_frombytes_lenient_x16(pts, oks, encs);
        else ge_frombytes_lenient_x8(pts, oks, encs);
        for (size_t j = 0; j < lanes; j++) {
            if (which_r) pend[c + j].r = pts[j];
            else pend[c + j].a = pts[j];
            ok[c + j] = ok[c + j] && oks[j];
        }
        c += lanes;
    }
}

static int verify_group(const tka_batch_item *items, size_t n, uint8_t *verdicts, int rule) {
    pending pend[GROUP];
    int ok[GROUP];
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        const tka_batch_item *it = &items[i];
        verdicts[i] = 0;
        if (it->pk == NULL || it->sig == NULL || (it->msg == NULL && it->msg_len != 0)) continue;
        if (!sc_is_canonical(it->sig + 32)) continue;
        pend[count].item = i;
        ok[count] = 1;
        count++;
    }
    decode_all(pend, ok, count, items, 0);
    /* With AVX2 lanes but no IFMA, each check runs the half-length equation over A and R
     * (ed25519_verify_decoded_pair, as tka_verify does there), which needs R for both rules:
     * from C, n = 16,000 cofactorless, 19.6k -> 26.5k/s against the scalar [S]B - [k]A. */
    const int pairs = !fe_ifma_available() && ge_x4_available();
    if (rule == TKA_RULE_ZIP215 || pairs) decode_all(pend, ok, count, items, 1);
    if (pairs) {
        int valid = 0;
        for (size_t j = 0; j < count; j++) {
            if (!ok[j]) continue; /* an R that decodes to no point fails both rules */
            const tka_batch_item *it = &items[pend[j].item];
            int v = ed25519_verify_decoded_pair(&pend[j].a, &pend[j].r, it->pk, it->msg,
                                                it->msg_len, it->sig, rule);
            verdicts[pend[j].item] = v == 1;
            valid += v == 1;
        }
        return valid;
    }
    /* With IFMA, the cofactorless [S]B - [k]A of the decoded entries run eight at a time
     * in vector lanes (ge_x8.c); a short tail runs through the scalar code below. */
    uint8_t done[GROUP];
    memset(done, 0, sizeof done);
    if (rule == TKA_RULE_COFACTORLESS && fe_ifma_available()) {
        size_t live[GROUP], nlive = 0;
        for (size_t j = 0; j < count; j++)
            if (ok[j]) live[nlive++] = j;
        for (size_t c = 0; c + X8_MIN_LANES <= nlive; c += 8) {
            size_t lanes = nlive - c < 8 ? nlive - c : 8;
            ge_p3 a[8], p[8];
            sc s[8], k[8];
            const uint8_t *ch_r[8], *ch_a[8], *ch_msg[8];
            size_t ch_len[8];
            for (size_t l = 0; l < 8; l++) {
                /* Idle lanes repeat the first one; their results are dropped. */
                size_t j = live[c + (l < lanes ? l : 0)];
                const tka_batch_item *it = &items[pend[j].item];
                a[l] = pend[j].a;
                sc_from_bytes(&s[l], it->sig + 32);
                ch_r[l] = it->sig;
                ch_a[l] = it->pk;
                ch_msg[l] = it->msg;
                ch_len[l] = it->msg_len;
            }
            /* The challenges hashed eight at a time too (sha512_x8.c). */
            ed25519_challenge_x8(k, ch_r, ch_a, ch_msg, ch_len, lanes);
            for (size_t l = lanes; l < 8; l++) k[l] = k[0];
            ge_double_scalarmult_base_x8(p, a, k, s);
            for (size_t l = 0; l < lanes; l++) {
                pend[live[c + l]].p = p[l];
                done[live[c + l]] = 1;
            }
        }
    }
    fe zprod[GROUP]; /* prefix products of the Z coordinates, for one shared inversion */
    size_t nprod = 0;
    for (size_t j = 0; j < count; j++) {
        if (!ok[j]) continue;
        const tka_batch_item *it = &items[pend[j].item];
        if (!done[j]) {
            ge_p3 neg_a;
            ge_cached table[GE_STRAUS_TABLE];
            sc s, k;
            ge_p3_neg(&neg_a, &pend[j].a);
            ge_straus_table(table, &neg_a);
            sc_from_bytes(&s, it->sig + 32);
            ed25519_challenge(&k, it->sig, it->pk, it->msg, it->msg_len);
            ge_double_scalarmult_table(&pend[j].p, table, &k, &s);
        }
        if (rule == TKA_RULE_ZIP215) {
            ge_cached rc;
            ge_p1p1 t;
            ge_p3 d;
            ge_p3_to_cached(&rc, &pend[j].r);
            ge_add_cached(&t, &pend[j].p, &rc, 1);
            ge_p1p1_to_p3(&d, &t);
            for (int i = 0; i < 3; i++) ge_dbl_p3(&d, &d);
            verdicts[pend[j].item] = (uint8_t)ge_p3_is_identity(&d);
        } else {
            if (nprod == 0) zprod[0] = pend[j].p.Z;
            else fe_mul(&zprod[nprod], &zprod[nprod - 1], &pend[j].p.Z);
            nprod++;
        }
    }
    if (rule == TKA_RULE_COFACTORLESS && nprod > 0) {
        /* inv = 1 / (Z_1 ... Z_m); walking back, Z_j^-1 = inv * prefix_{j-1}, then
         * inv *= Z_j. Z of a point is never 0. */
        fe inv;
        fe_invert(&inv, &zprod[nprod - 1]);
        for (size_t j = count; j-- > 0;) {
            if (!ok[j]) continue;
            nprod--;
            fe zinv, x, y;
            if (nprod > 0) fe_mul(&zinv, &inv, &zprod[nprod - 1]);
            else zinv = inv;
            fe_mul(&inv, &inv, &pend[j].p.Z);
            fe_mul(&x, &pend[j].p.X, &zinv);
            fe_mul(&y, &pend[j].p.Y, &zinv);
            uint8_t enc[32];
            fe_tobytes(enc, &y);
            enc[31] ^= (uint8_t)(fe_is_negative(&x) << 7);
            const tka_batch_item *it = &items[pend[j].item];
            verdicts[pend[j].item] = memcmp(enc, it->sig, 32) == 0;
        }
    }
    int valid = 0;
    for (size_t i = 0; i < n; i++) valid += verdicts[i];
    return valid;
}

int tka_verify_each(const tka_batch_item *items, size_t n, uint8_t *verdicts, int rule) {
    if (rule != TKA_RULE_ZIP215 && rule != TKA_RULE_COFACTORLESS) return TKA_ERR_RULE;
    if (n == 0) return 0;
    if (items == NULL || verdicts == NULL) return TKA_ERR_ARG;
    long valid = 0;
    for (size_t start = 0; start < n; start += GROUP) {
        size_t len = n - start < GROUP ? n - start : GROUP;
        valid += verify_group(items + start, len, verdicts + start, rule);
    }
    return valid > INT32_MAX ? INT32_MAX : (int)valid;
}

int tka_verify_each_packed(const uint8_t *pks, const uint8_t *sigs, const uint8_t *msgs,
                           const size_t *msg_offsets, size_t n, uint8_t *verdicts, int rule) {
    if (rule != TKA_RULE_ZIP215 && rule != TKA_RULE_COFACTORLESS) return TKA_ERR_RULE;
    if (n == 0) return 0;
    if (pks == NULL || sigs == NULL || msg_offsets == NULL || verdicts == NULL)
        return TKA_ERR_ARG;
    tka_batch_item *items = tka_items_from_packed(pks, sigs, msgs, msg_offsets, n);
    if (items == NULL) return TKA_ERR_NOMEM;
    int rc = tka_verify_each(items, n, verdicts, rule);
    free(items);
    return rc;
}
