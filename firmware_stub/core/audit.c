#include "audit.h"

#include <string.h>

#include <sodium.h>

#include "blake2s.h"
#include "screen.h"

const char AUDIT_ENTRY_DOMAIN[] = "tka-appliance audit v1"; /* + its NUL */
const char AUDIT_HEAD_DOMAIN[] = "tka-appliance log-head v1";

void audit_reset(audit_log *log) {
    log->count = 0;
    log->acked = 0;
    memset(log->last, 0, sizeof log->last);
}

static void hash(const uint8_t *p, size_t n, uint8_t out[32]) {
    blake2s_ctx c;
    blake2s_init(&c);
    blake2s_update(&c, p, n);
    blake2s_final(&c, out);
}

static void sign_domain(uint8_t sig[64], const char *domain, size_t dlen, const uint8_t *body,
                        size_t n, const uint8_t sk[64]) {
    uint8_t msg[32 + AUDIT_BODY_MAX];
    memcpy(msg, domain, dlen); /* dlen counts the NUL */
    memcpy(msg + dlen, body, n);
    crypto_sign_detached(sig, NULL, msg, dlen + n, sk);
}

/* Longest prefix of s (at most max bytes) that does not split a UTF-8 character. */
static size_t cut_utf8(const char *s, size_t len, size_t max) {
    if (len <= max) return len;
    size_t n = max;
    while (n > 0 && ((uint8_t)s[n] & 0xc0) == 0x80) n--;
    return n;
}

int audit_append(audit_log *log, const uint8_t identity_sk[64], uint64_t time,
                 const char *event, const char *verdict, const uint8_t *key,
                 const uint8_t *sighash, const char *summary) {
    char text[AUDIT_SUMMARY_MAX + 1];
    size_t slen = strlen(summary);
    if (utf8_valid((const uint8_t *)summary, slen)) {
        slen = cut_utf8(summary, slen, AUDIT_SUMMARY_MAX);
        memcpy(text, summary, slen);
        text[slen] = '\0';
    } else {
        slen = screen_escape(text, sizeof text, (const uint8_t *)summary, slen);
    }
    audit_entry *e = &log->ring[log->count % AUDIT_KEEP];
    uint8_t prev[32];
    memcpy(prev, log->last, 32); /* zero for entry 0 */
    cbor_writer w;
    cw_init(&w, e->body, sizeof e->body);
    cw_map(&w, 6 + (key != NULL) + (sighash != NULL));
    cw_text(&w, "seq");
    cw_uint(&w, log->count);
    cw_text(&w, "prev");
    cw_bytes(&w, prev, 32);
    cw_text(&w, "time");
    cw_uint(&w, time);
    cw_text(&w, "event");
    cw_text(&w, event);
    cw_text(&w, "verdict");
    cw_text(&w, verdict);
    if (key != NULL) {
        cw_text(&w, "key");
        cw_bytes(&w, key, 32);
    }
    if (sighash != NULL) {
        cw_text(&w, "sighash");
        cw_bytes(&w, sighash, 32);
    }
    cw_text(&w, "summary");
    cw_textn(&w, text, slen);
    if (w.overflow) return -1; /* the ring slot is overwritten only once count moves */
    e->body_len = (uint16_t)w.len;
    sign_domain(e->sig, AUDIT_ENTRY_DOMAIN, AUDIT_ENTRY_DOMAIN_LEN, e->body, w.len, identity_sk);
    hash(e->body, w.len, log->last);
    log->count++;
    return 0;
}

uint64_t audit_oldest(const audit_log *log) {
    return log->count > AUDIT_KEEP ? log->count - AUDIT_KEEP : 0;
}

uint64_t audit_unread(const audit_log *log) {
    uint64_t oldest = audit_oldest(log);
    return log->acked > oldest ? log->acked : oldest;
}

int audit_full(const audit_log *log) { return log->count - audit_unread(log) >= AUDIT_KEEP; }

const audit_entry *audit_get(const audit_log *log, uint64_t seq) {
    if (seq >= log->count || seq < audit_oldest(log)) return NULL;
    return &log->ring[seq % AUDIT_KEEP];
}

int audit_ack(audit_log *log, uint64_t seq) {
    if (seq >= log->count) return -1;
    if (seq + 1 > log->acked) log->acked = seq + 1;
    return 0;
}

void audit_write_head(const audit_log *log, const uint8_t identity_sk[64], const uint8_t *nonce,
                      size_t nonce_len, cbor_writer *w) {
    uint8_t body[160];
    cbor_writer b;
    cw_init(&b, body, sizeof body);
    cw_map(&b, 5);
    cw_text(&b, "count");
    cw_uint(&b, log->count);
    cw_text(&b, "last");
    cw_bytes(&b, log->last, 32);
    cw_text(&b, "oldest");
    cw_uint(&b, audit_oldest(log));
    cw_text(&b, "unread");
    cw_uint(&b, audit_unread(log));
    cw_text(&b, "nonce");
    cw_bytes(&b, nonce, nonce_len > AUDIT_NONCE_MAX ? AUDIT_NONCE_MAX : nonce_len);
    uint8_t sig[64];
    sign_domain(sig, AUDIT_HEAD_DOMAIN, AUDIT_HEAD_DOMAIN_LEN, body, b.len, identity_sk);
    cw_map(w, 2);
    cw_text(w, "body");
    cw_bytes(w, body, b.len);
    cw_text(w, "sig");
    cw_bytes(w, sig, 64);
}

void audit_loaded(audit_log *log) {
    if (log->count == 0) {
        memset(log->last, 0, 32);
        return;
    }
    const audit_entry *e = &log->ring[(log->count - 1) % AUDIT_KEEP];
    hash(e->body, e->body_len, log->last);
}
