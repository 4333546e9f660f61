/* The flash image and the seal: round trips, every corruption detected, every length bound
 * enforced (with a valid checksum, so the bound itself is what refuses), and the seal bound to
 * its key, salt, parameters and identity. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "blake2s.h"
#include "check.h"
#include "seal.h"
#include "store.h"
#include "vault.h"

static uint8_t img[2u << 20];
static audit_log log_a, log_b;
static uint8_t ident_pk[32], ident_sk[64];

static void fix_checksum(uint8_t *p, size_t len) {
    blake2s_ctx c;
    blake2s_init(&c);
    blake2s_update(&c, p, len - 32);
    blake2s_final(&c, p + len - 32);
}

static size_t build(int sealed, size_t ct_len, unsigned entries) {
    audit_reset(&log_a);
    for (unsigned i = 0; i < entries; i++)
        CHECK(audit_append(&log_a, ident_sk, 1000 + i, "sign_nks", "approved", ident_pk, NULL,
                           "a summary") == 0);
    seal_header h;
    memset(&h, 7, sizeof h);
    h.opslimit = 2;
    h.memlimit = 65536;
    static uint8_t ct[4096];
    memset(ct, 0xab, sizeof ct);
    size_t len = 0;
    CHECK(store_encode(img, sizeof img, &len, ident_sk, 7, &log_a, sealed, &h, ct, ct_len) == 0);
    return len;
}

static void test_round_trip(void) {
    static const unsigned counts[] = {0, 1, 5, 256, 300};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        size_t len = build(1, 100, counts[k]);
        store_image out;
        const char *why;
        CHECK(store_decode(img, len, 4096, &out, &log_b, &why) == 0);
        CHECK(memcmp(out.identity_seed, ident_sk, 32) == 0);
        CHECK_EQ(out.pin_retries, 7);
        CHECK(out.sealed && out.ct_len == 100 && out.seal.opslimit == 2 && out.seal.memlimit == 65536);
        CHECK_EQ(log_b.count, log_a.count);
        CHECK(memcmp(log_b.last, log_a.last, 32) == 0);
        for (uint64_t s = audit_oldest(&log_a); s < log_a.count; s++) {
            const audit_entry *x = audit_get(&log_a, s), *y = audit_get(&log_b, s);
            CHECK(x && y && x->body_len == y->body_len && memcmp(x->body, y->body, x->body_len) == 0 &&
                  memcmp(x->sig, y->sig, 64) == 0);
        }
    }
    size_t len = build(0, 0, 3);
    store_image out;
    const char *why;
    CHECK(store_decode(img, len, 4096, &out, &log_b, &why) == 0 && !out.sealed);
    /* It does not fit a buffer that is too small. */
    size_t small;
    CHECK(store_encode(img, 100, &small, ident_sk, 10, &log_a, 0, NULL, NULL, 0) == -1);
}

static void test_corruption(void) {
    size_t len = build(1, 64, 3);
    static uint8_t copy[1u << 16];
    store_image out;
    const char *why;
    /* Every single flipped byte is caught. */
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, img, len);
        copy[i] ^= 0x20;
        CHECK(store_decode(copy, len, 4096, &out, &log_b, &why) == -1);
    }
    /* Every truncation, and an extra byte. */
    for (size_t n = 0; n < len; n++) CHECK(store_decode(img, n, 4096, &out, &log_b, &why) == -1);
    memcpy(copy, img, len);
    copy[len] = 0;
    CHECK(store_decode(copy, len + 1, 4096, &out, &log_b, &why) == -1);
}

/* Edits a field, fixes the checksum, and expects a refusal naming `reason`. */
static void bound(size_t len, size_t off, const uint8_t *bytes, size_t n, const char *reason) {
    static uint8_t copy[1u << 16];
    memcpy(copy, img, len);
    memcpy(copy + off, bytes, n);
    fix_checksum(copy, len);
    store_image out;
    const char *why = NULL;
    int rc = store_decode(copy, len, 4096, &out, &log_b, &why);
    if (rc != -1) fprintf(stderr, "  offset %zu accepted (%s)\n", off, reason);
    CHECK(rc == -1);
    if (rc == -1 && strstr(why, reason) == NULL) {
        fprintf(stderr, "  offset %zu: got '%s', wanted '%s'\n", off, why, reason);
        CHECK(0);
    }
}

static void test_bounds(void) {
    size_t len = build(1, 64, 2);
    size_t audit = STORE_HEADER_LEN + STORE_SE_LEN; /* count(8) acked(8) kept(2) */
    size_t e0 = audit + 18;
    size_t body0 = ((size_t)img[e0] << 8) | img[e0 + 1];
    size_t e1 = e0 + 2 + body0 + 64;
    size_t body1 = ((size_t)img[e1] << 8) | img[e1 + 1];
    size_t seal = e1 + 2 + body1 + 64;
    bound(len, 0, (const uint8_t *)"XKAF", 4, "magic");
    bound(len, 4, (const uint8_t *)"\x00\x02", 2, "version");
    bound(len, 6, (const uint8_t *)"\x00\x01", 2, "flags");
    bound(len, 8, (const uint8_t *)"\x00\x00\x00\x10", 4, "length");
    bound(len, STORE_HEADER_LEN + 32, (const uint8_t *)"\x0b", 1, "secure-element");
    bound(len, STORE_HEADER_LEN + 33, (const uint8_t *)"\x01", 1, "secure-element");
    bound(len, audit + 16, (const uint8_t *)"\x01\x01", 2, "inconsistent");   /* kept 257 */
    bound(len, audit + 16, (const uint8_t *)"\x00\x03", 2, "inconsistent");   /* kept > count */
    bound(len, audit + 8, (const uint8_t *)"\0\0\0\0\0\0\0\x09", 8, "inconsistent"); /* acked */
    bound(len, e0, (const uint8_t *)"\x00\x00", 2, "bad length");            /* body 0 */
    bound(len, e0, (const uint8_t *)"\x02\x01", 2, "bad length");            /* body 513 */
    bound(len, e0, (const uint8_t *)"\x01\xff", 2, "truncated");             /* runs past */
    bound(len, seal, (const uint8_t *)"\x02", 1, "seal region");
    bound(len, seal + 1 + 16, (const uint8_t *)"\x00\x00\x00\x00", 4, "KDF");   /* ops 0 */
    bound(len, seal + 1 + 16, (const uint8_t *)"\x00\x00\x01\x00", 4, "KDF");   /* ops 256 */
    bound(len, seal + 1 + 20, (const uint8_t *)"\x00\x00\x00\x10", 4, "KDF");   /* mem 16 B */
    bound(len, seal + 1 + 20, (const uint8_t *)"\xff\xff\xff\xff", 4, "KDF");   /* 4 GiB */
    bound(len, seal + 1 + 24 + 24, (const uint8_t *)"\x00\x00\x00\x0f", 4, "bad length"); /* < tag */
    bound(len, seal + 1 + 24 + 24, (const uint8_t *)"\x00\x00\x20\x00", 4, "bad length"); /* > max */
    bound(len, seal + 1 + 24 + 24, (const uint8_t *)"\x00\x00\x00\x30", 4, "unexpected bytes");
    bound(len, seal + 1 + 24 + 24, (const uint8_t *)"\x00\x00\x0f\xff", 4, "truncated");
}

static void test_seal(void) {
    seal_header h;
    memset(&h, 0, sizeof h);
    randombytes_buf(h.salt, sizeof h.salt);
    randombytes_buf(h.nonce, sizeof h.nonce);
    h.opslimit = 1;
    h.memlimit = 8192;
    uint8_t k1[32], k2[32];
    CHECK(seal_derive(k1, (const uint8_t *)"123456", 6, &h) == 0);
    CHECK(seal_derive(k2, (const uint8_t *)"123457", 6, &h) == 0);
    CHECK(memcmp(k1, k2, 32) != 0);
    uint8_t k1b[32];
    CHECK(seal_derive(k1b, (const uint8_t *)"123456", 6, &h) == 0 && memcmp(k1, k1b, 32) == 0);
    /* Another salt: another key. */
    seal_header h2 = h;
    h2.salt[0] ^= 1;
    CHECK(seal_derive(k1b, (const uint8_t *)"123456", 6, &h2) == 0 && memcmp(k1, k1b, 32) != 0);
    /* Out-of-range parameters are refused before any work. */
    h2 = h;
    h2.opslimit = 0;
    CHECK(seal_derive(k1b, (const uint8_t *)"123456", 6, &h2) == -1);
    /* The docs' parameters really are what we use by default. */
    CHECK(SEAL_OPSLIMIT == 2 && SEAL_MEMLIMIT == 64u * 1024 * 1024);

    const uint8_t pt[] = "lock keys, policy and authority";
    uint8_t ct[sizeof pt + SEAL_TAG_LEN], back[sizeof pt];
    seal_encrypt(ct, pt, sizeof pt, k1, &h, ident_pk);
    CHECK(memcmp(ct, pt, sizeof pt) != 0);
    CHECK(seal_decrypt(back, ct, sizeof ct, k1, &h, ident_pk) == 0 && memcmp(back, pt, sizeof pt) == 0);
    CHECK(seal_decrypt(back, ct, sizeof ct, k2, &h, ident_pk) == -1); /* wrong PIN's key */
    /* Each bound field of the header, and the identity, is part of the seal. */
    seal_header t = h;
    t.salt[3] ^= 1;
    CHECK(seal_decrypt(back, ct, sizeof ct, k1, &t, ident_pk) == -1);
    t = h;
    t.opslimit = 3;
    CHECK(seal_decrypt(back, ct, sizeof ct, k1, &t, ident_pk) == -1);
    t = h;
    t.memlimit = 16384;
    CHECK(seal_decrypt(back, ct, sizeof ct, k1, &t, ident_pk) == -1);
    t = h;
    t.nonce[0] ^= 1;
    CHECK(seal_decrypt(back, ct, sizeof ct, k1, &t, ident_pk) == -1);
    uint8_t other[32];
    memcpy(other, ident_pk, 32);
    other[31] ^= 1;
    CHECK(seal_decrypt(back, ct, sizeof ct, k1, &h, other) == -1);
    for (size_t i = 0; i < sizeof ct; i++) {
        ct[i] ^= 4;
        CHECK(seal_decrypt(back, ct, sizeof ct, k1, &h, ident_pk) == -1);
        ct[i] ^= 4;
    }
    CHECK(seal_decrypt(back, ct, SEAL_TAG_LEN - 1, k1, &h, ident_pk) == -1);
}

static dev_authority auth_a, auth_b;

static void test_vault(void) {
    vault *v = vault_alloc();
    CHECK(v != NULL);
    CHECK(vault_name_ok((const uint8_t *)"ops-key_1.a", 11));
    CHECK(!vault_name_ok((const uint8_t *)"Ops", 3) && !vault_name_ok((const uint8_t *)"", 0));
    CHECK(!vault_name_ok((const uint8_t *)"a b", 3));
    CHECK(!vault_name_ok((const uint8_t *)"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 33));
    uint8_t seed[32];
    for (int i = 0; i < VAULT_MAX_KEYS; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        memset(seed, i + 1, 32);
        CHECK_EQ(vault_add_key(v, name, seed, 1000 + (uint64_t)i), i);
    }
    CHECK_EQ(vault_add_key(v, "full", seed, 0), -1);
    v->keys[3].signatures = 99;
    dev_policy p, q;
    policy_defaults(&p);
    p.cosigners = 3;
    p.force_audit = 1;
    authority_reset(&auth_a);
    size_t cap = vault_plain_max(), len = 0;
    uint8_t *plain = malloc(cap);
    CHECK(vault_serialize(v, &p, &auth_a, plain, cap, &len) == 0);
    vault *w = vault_alloc();
    const char *why = NULL;
    CHECK(vault_deserialize(w, &q, &auth_b, plain, len, &why) == 0);
    CHECK(memcmp(&p, &q, sizeof p) == 0);
    CHECK_EQ(w->n_keys, VAULT_MAX_KEYS);
    CHECK(strcmp(w->keys[5].name, "k5") == 0 && memcmp(w->keys[5].pk, v->keys[5].pk, 32) == 0);
    CHECK(memcmp(w->keys[5].sk, v->keys[5].sk, 64) == 0 && w->keys[3].signatures == 99);
    CHECK_EQ(w->keys[7].created, 1007);
    /* Malformed plaintexts are refused (they can only come from a seal that opened, but the
     * reader must not trust them either). */
    for (size_t n = 0; n < len; n += 7) CHECK(vault_deserialize(w, &q, &auth_b, plain, n, &why) == -1);
    plain[1 + 0] = 0xff; /* cosigners out of range */
    CHECK(vault_deserialize(w, &q, &auth_b, plain, len, &why) == -1);
    /* Locking wipes the keys. */
    vault_lock(v);
    CHECK(v->n_keys == 0 && !v->have_seal_key);
    uint8_t zero[64] = {0};
    CHECK(memcmp(v->keys[0].sk, zero, 64) == 0 && memcmp(v->keys[0].seed, zero, 32) == 0);
    free(plain);
    vault_free(v);
    vault_free(w);
}

int main(void) {
    if (sodium_init() < 0) return 1;
    crypto_sign_keypair(ident_pk, ident_sk);
    test_round_trip();
    test_corruption();
    test_bounds();
    test_seal();
    test_vault();
    return check_report("test_store");
}
