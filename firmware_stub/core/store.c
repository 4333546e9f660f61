#include "store.h"

#include <string.h>

#include "blake2s.h"

size_t store_image_max(size_t ct_max) {
    return STORE_HEADER_LEN + STORE_SE_LEN + 8 + 8 + 2 +
           (size_t)AUDIT_KEEP * (2 + AUDIT_BODY_MAX + 64) + 1 + SEAL_SALT_LEN + 4 + 4 +
           SEAL_NONCE_LEN + 4 + ct_max + STORE_CHECKSUM_LEN;
}

typedef struct {
    uint8_t *p;
    size_t cap, len;
    int overflow;
} wbuf;

static void put(wbuf *w, const void *src, size_t n) {
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_be(wbuf *w, uint64_t v, size_t n) {
    uint8_t b[8];
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    put(w, b, n);
}

static void checksum(const uint8_t *p, size_t n, uint8_t out[32]) {
    blake2s_ctx c;
    blake2s_init(&c);
    blake2s_update(&c, p, n);
    blake2s_final(&c, out);
}

int store_encode(uint8_t *img, size_t cap, size_t *len, const uint8_t identity_seed[32],
                 unsigned pin_retries, const audit_log *log, int sealed, const seal_header *h,
                 const uint8_t *ct, size_t ct_len) {
    wbuf w = {img, cap, 0, 0};
    static const uint8_t zero[3] = {0, 0, 0};
    put(&w, STORE_MAGIC, 4);
    put_be(&w, STORE_VERSION, 2);
    put_be(&w, 0, 2);
    put_be(&w, 0, 4); /* length, patched below */
    put(&w, identity_seed, 32);
    put_be(&w, pin_retries, 1);
    put(&w, zero, 3);
    uint64_t oldest = audit_oldest(log);
    uint64_t kept = log->count - oldest;
    put_be(&w, log->count, 8);
    put_be(&w, log->acked, 8);
    put_be(&w, kept, 2);
    for (uint64_t s = oldest; s < log->count; s++) {
        const audit_entry *e = audit_get(log, s);
        put_be(&w, e->body_len, 2);
        put(&w, e->body, e->body_len);
        put(&w, e->sig, 64);
    }
    put_be(&w, sealed ? 1 : 0, 1);
    if (sealed) {
        put(&w, h->salt, SEAL_SALT_LEN);
        put_be(&w, h->opslimit, 4);
        put_be(&w, h->memlimit, 4);
        put(&w, h->nonce, SEAL_NONCE_LEN);
        put_be(&w, ct_len, 4);
        put(&w, ct, ct_len);
    }
    if (w.overflow || w.cap - w.len < STORE_CHECKSUM_LEN || w.len + STORE_CHECKSUM_LEN > UINT32_MAX)
        return -1;
    size_t total = w.len + STORE_CHECKSUM_LEN;
    img[8] = (uint8_t)(total >> 24), img[9] = (uint8_t)(total >> 16);
    img[10] = (uint8_t)(total >> 8), img[11] = (uint8_t)total;
    checksum(img, w.len, img + w.len);
    *len = total;
    return 0;
}

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} rbuf;

static int take(rbuf *r, size_t n, const uint8_t **out) {
    if (n > r->len - r->pos) return -1;
    *out = r->p + r->pos;
    r->pos += n;
    return 0;
}

static int take_be(rbuf *r, size_t n, uint64_t *v) {
    const uint8_t *b;
    if (take(r, n, &b) != 0) return -1;
    *v = 0;
    for (size_t i = 0; i < n; i++) *v = (*v << 8) | b[i];
    return 0;
}

#define BAD(reason)          \
    do {                     \
        *why = (reason);     \
        return -1;           \
    } while (0)

int store_decode(const uint8_t *img, size_t len, size_t ct_max, store_image *out, audit_log *log,
                 const char **why) {
    if (len < STORE_HEADER_LEN + STORE_SE_LEN + STORE_CHECKSUM_LEN) BAD("the image is truncated");
    if (memcmp(img, STORE_MAGIC, 4) != 0) BAD("not a tka-appliance flash image (bad magic)");
    uint32_t version = ((uint32_t)img[4] << 8) | img[5];
    if (version != STORE_VERSION) BAD("unsupported flash image version");
    uint32_t total = ((uint32_t)img[8] << 24) | ((uint32_t)img[9] << 16) |
                     ((uint32_t)img[10] << 8) | img[11];
    if (total != len) BAD("the image length does not match its header");
    uint8_t sum[32];
    checksum(img, len - STORE_CHECKSUM_LEN, sum);
    if (memcmp(sum, img + len - STORE_CHECKSUM_LEN, 32) != 0) BAD("the image checksum is wrong");
    if (img[6] != 0 || img[7] != 0) BAD("unknown flags in the image header");

    rbuf r = {img, len - STORE_CHECKSUM_LEN, STORE_HEADER_LEN};
    const uint8_t *se;
    if (take(&r, STORE_SE_LEN, &se) != 0) BAD("the image is truncated");
    out->identity_seed = se;
    out->pin_retries = se[32];
    if (out->pin_retries > STORE_PIN_TRIES || se[33] || se[34] || se[35])
        BAD("the secure-element region is malformed");

    uint64_t count, acked, kept;
    if (take_be(&r, 8, &count) || take_be(&r, 8, &acked) || take_be(&r, 2, &kept))
        BAD("the audit region is truncated");
    if (kept > AUDIT_KEEP || kept > count || acked > count ||
        (count > AUDIT_KEEP && kept != AUDIT_KEEP) || (count <= AUDIT_KEEP && kept != count))
        BAD("the audit region's counters are inconsistent");
    audit_reset(log);
    log->count = count;
    log->acked = acked;
    for (uint64_t s = count - kept; s < count; s++) {
        uint64_t blen;
        const uint8_t *body, *sig;
        if (take_be(&r, 2, &blen) != 0) BAD("the audit region is truncated");
        if (blen == 0 || blen > AUDIT_BODY_MAX) BAD("an audit entry has a bad length");
        if (take(&r, (size_t)blen, &body) || take(&r, 64, &sig)) BAD("the audit region is truncated");
        audit_entry *e = &log->ring[s % AUDIT_KEEP];
        e->body_len = (uint16_t)blen;
        memcpy(e->body, body, (size_t)blen);
        memcpy(e->sig, sig, 64);
    }
    audit_loaded(log);

    uint64_t sealed;
    if (take_be(&r, 1, &sealed) != 0 || sealed > 1) BAD("the seal region is malformed");
    out->sealed = (int)sealed;
    out->ct = NULL;
    out->ct_len = 0;
    if (sealed) {
        const uint8_t *salt, *nonce;
        uint64_t ops, mem, ctl;
        if (take(&r, SEAL_SALT_LEN, &salt) || take_be(&r, 4, &ops) || take_be(&r, 4, &mem) ||
            take(&r, SEAL_NONCE_LEN, &nonce) || take_be(&r, 4, &ctl))
            BAD("the seal region is truncated");
        if (!seal_params_ok((uint32_t)ops, (uint32_t)mem)) BAD("the seal's KDF parameters are out of range");
        if (ctl < SEAL_TAG_LEN || ctl > ct_max) BAD("the sealed blob has a bad length");
        if (take(&r, (size_t)ctl, &out->ct) != 0) BAD("the seal region is truncated");
        memcpy(out->seal.salt, salt, SEAL_SALT_LEN);
        out->seal.opslimit = (uint32_t)ops;
        out->seal.memlimit = (uint32_t)mem;
        memcpy(out->seal.nonce, nonce, SEAL_NONCE_LEN);
        out->ct_len = (size_t)ctl;
    }
    if (r.pos != r.len) BAD("unexpected bytes at the end of the image");
    return 0;
}
