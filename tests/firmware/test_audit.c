/* The audit log: entries chained by BLAKE2s and signed by the identity key, the ring of 256,
 * the signed head with the host's nonce, ack and the force-audit condition. */
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "blake2s.h"
#include "cbor.h"
#include "check.h"

static audit_log lg;
static uint8_t pk[32], sk[64];

static int verify(const char *domain, size_t dlen, const uint8_t *body, size_t n,
                  const uint8_t sig[64]) {
    uint8_t msg[600];
    memcpy(msg, domain, dlen);
    memcpy(msg + dlen, body, n);
    return crypto_sign_verify_detached(sig, msg, dlen + n, pk) == 0;
}

static void hash(const uint8_t *p, size_t n, uint8_t out[32]) {
    blake2s_ctx c;
    blake2s_init(&c);
    blake2s_update(&c, p, n);
    blake2s_final(&c, out);
}

/* Checks what a host checks: signatures, seq, prev links, and the head. */
static void check_chain(void) {
    uint8_t prev[32] = {0};
    uint64_t first = audit_oldest(&lg);
    for (uint64_t s = first; s < lg.count; s++) {
        const audit_entry *e = audit_get(&lg, s);
        CHECK(e != NULL);
        if (e == NULL) return;
        CHECK(verify("tka-appliance audit v1", 23, e->body, e->body_len, e->sig));
        CHECK(cbor_check(e->body, e->body_len, NULL) == 0);
        cbor_item m = {e->body, e->body_len}, v;
        uint64_t seq;
        CHECK(cbor_map_find(m, "seq", &v) && cbor_uint(v, &seq) == 0 && seq == s);
        const uint8_t *p;
        size_t n;
        CHECK(cbor_map_find(m, "prev", &v) && cbor_bytes(v, &p, &n) == 0 && n == 32);
        if (s > first) CHECK(memcmp(p, prev, 32) == 0);
        if (s == 0) CHECK(memcmp(p, (uint8_t[32]){0}, 32) == 0);
        hash(e->body, e->body_len, prev);
    }
    if (lg.count > 0) CHECK(memcmp(prev, lg.last, 32) == 0);
}

int main(void) {
    if (sodium_init() < 0) return 1;
    crypto_sign_keypair(pk, sk);
    CHECK(strlen(AUDIT_ENTRY_DOMAIN) + 1 == AUDIT_ENTRY_DOMAIN_LEN);
    CHECK(strlen(AUDIT_HEAD_DOMAIN) + 1 == AUDIT_HEAD_DOMAIN_LEN);
    audit_reset(&lg);
    CHECK(audit_get(&lg, 0) == NULL);
    uint8_t key[32], sh[32];
    memset(key, 1, 32);
    memset(sh, 2, 32);
    CHECK(audit_append(&lg, sk, 100, "sign_nks", "approved", key, sh, "signed node key") == 0);
    CHECK(audit_append(&lg, sk, 101, "pin", "refused", NULL, NULL, "wrong PIN") == 0);
    check_chain();
    /* Optional fields appear only when given; text fields are what was passed. */
    cbor_item m = {audit_get(&lg, 1)->body, audit_get(&lg, 1)->body_len}, v;
    CHECK(!cbor_map_find(m, "key", &v) && !cbor_map_find(m, "sighash", &v));
    CHECK(cbor_map_find(m, "verdict", &v) && cbor_text_is(v, "refused"));
    m = (cbor_item){audit_get(&lg, 0)->body, audit_get(&lg, 0)->body_len};
    CHECK(cbor_map_find(m, "sighash", &v) && cbor_map_find(m, "time", &v));
    /* A summary that is not UTF-8 is escaped; a long one is cut on a character boundary. */
    CHECK(audit_append(&lg, sk, 102, "x", "y", NULL, NULL, "bad \xff byte") == 0);
    m = (cbor_item){audit_get(&lg, 2)->body, audit_get(&lg, 2)->body_len};
    CHECK(cbor_map_find(m, "summary", &v) && cbor_text_is(v, "bad \\xff byte"));
    char longtext[400];
    memset(longtext, 0, sizeof longtext);
    for (int i = 0; i < 150; i++) memcpy(longtext + 2 * i, "\xc3\xa9", 2); /* é × 150 */
    CHECK(audit_append(&lg, sk, 103, "x", "y", NULL, NULL, longtext) == 0);
    CHECK(cbor_check(audit_get(&lg, 3)->body, audit_get(&lg, 3)->body_len, NULL) == 0);

    /* The ring: after 300 entries the oldest kept is 44, the chain still verifies. */
    while (lg.count < 300) CHECK(audit_append(&lg, sk, 200, "e", "v", key, NULL, "s") == 0);
    CHECK_EQ(audit_oldest(&lg), 44);
    CHECK(audit_get(&lg, 43) == NULL && audit_get(&lg, 44) != NULL && audit_get(&lg, 300) == NULL);
    check_chain();

    /* Unread and force-audit: nothing was acked, so all 256 kept are unread: full. */
    CHECK_EQ(audit_unread(&lg), 44);
    CHECK(audit_full(&lg));
    CHECK(audit_ack(&lg, 300) == -1); /* not written yet */
    CHECK(audit_ack(&lg, 100) == 0);
    CHECK_EQ(audit_unread(&lg), 101);
    CHECK(!audit_full(&lg));
    CHECK(audit_ack(&lg, 50) == 0); /* never backwards */
    CHECK_EQ(audit_unread(&lg), 101);
    /* 101 more entries fill it again (256 unread). */
    while (!audit_full(&lg)) CHECK(audit_append(&lg, sk, 300, "e", "v", NULL, NULL, "s") == 0);
    CHECK_EQ(lg.count, 101 + 256);

    /* The head: signed over its body, carrying the nonce and the counters. */
    uint8_t buf[512];
    cbor_writer w;
    cw_init(&w, buf, sizeof buf);
    audit_write_head(&lg, sk, (const uint8_t *)"nonce-123", 9, &w);
    CHECK(!w.overflow && cbor_check(buf, w.len, NULL) == 0);
    cbor_item head = {buf, w.len}, body, sig;
    const uint8_t *bp, *sp;
    size_t bn, sn;
    CHECK(cbor_map_find(head, "body", &body) && cbor_bytes(body, &bp, &bn) == 0);
    CHECK(cbor_map_find(head, "sig", &sig) && cbor_bytes(sig, &sp, &sn) == 0 && sn == 64);
    CHECK(verify("tka-appliance log-head v1", 26, bp, bn, sp));
    CHECK(!verify("tka-appliance audit v1", 23, bp, bn, sp)); /* domains are separate */
    cbor_item hb = {bp, bn};
    uint64_t count, oldest, unread;
    CHECK(cbor_map_find(hb, "count", &v) && cbor_uint(v, &count) == 0 && count == lg.count);
    CHECK(cbor_map_find(hb, "oldest", &v) && cbor_uint(v, &oldest) == 0 && oldest == audit_oldest(&lg));
    CHECK(cbor_map_find(hb, "unread", &v) && cbor_uint(v, &unread) == 0 && unread == 101);
    CHECK(cbor_map_find(hb, "nonce", &v) && cbor_bytes(v, &bp, &bn) == 0 && bn == 9 && memcmp(bp, "nonce-123", 9) == 0);
    CHECK(cbor_map_find(hb, "last", &v) && cbor_bytes(v, &bp, &bn) == 0 && memcmp(bp, lg.last, 32) == 0);
    /* A rewritten entry breaks its signature and the chain. */
    audit_entry *e = &lg.ring[200 % AUDIT_KEEP];
    e->body[e->body_len - 1] ^= 1;
    CHECK(!verify("tka-appliance audit v1", 23, e->body, e->body_len, e->sig));
    /* After loading from flash, `last` is recomputed from the newest body. */
    uint8_t saved[32];
    memcpy(saved, lg.last, 32);
    memset(lg.last, 0, 32);
    audit_loaded(&lg);
    CHECK(memcmp(saved, lg.last, 32) == 0);
    return check_report("test_audit");
}
