/*
 * libFuzzer target for the native core's input parsers and verifiers. The first byte picks
 * what the rest of the input feeds:
 *
 *   0  nks_read, the bounded canonical NKS reader. Oracle: whatever it accepts, re-encoded
 *      canonically by the independent encoder below, is the input again, and each level's
 *      sighash equals BLAKE2s of that level re-encoded without its signature.
 *   1  tka_verify_peers on the input as a peer's NKS (its own Pubkey and KeyID are used as
 *      node key and trusted key, to get past the cheap checks). Oracle: three copies of the
 *      same peer get one result, on one thread and on two, and codes stay in range.
 *   2  the single verifiers on (pk, sig, msg) taken from the input. Oracle: the ZIP-215 batch
 *      (with a known-good signature beside it) and verify_each agree with tka_verify.
 *   3  tka_aum_read, the bounded canonical AUM reader. Oracle: whatever it accepts, re-encoded
 *      by the independent encoder below from the fields it reports, is the input again (the
 *      encoder re-checks metadata order and UTF-8 its own way); the sighash equals BLAKE2s of
 *      the re-encoding without signatures; tka_aum_is_canonical and tka_aum_hashes agree. On
 *      32-byte inputs it also runs tka_public_key_class (classes stay in range, OK keys
 *      re-encode to themselves).
 *
 * Built with clang -fsanitize=fuzzer (make fuzz), and replayed over the committed corpus by
 * fuzz_replay in ctest with gcc's sanitizers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aum_reader.h"
#include "nks_reader.h"
#include "tka_native.h"

#define CHECK(cond) \
    do {            \
        if (!(cond)) abort(); \
    } while (0)

/* --- an encoder written apart from the reader: shortest heads, ascending keys --- */

static size_t put_head(uint8_t *out, unsigned major, uint64_t value) {
    uint8_t m = (uint8_t)(major << 5);
    if (value < 24) {
        out[0] = m | (uint8_t)value;
        return 1;
    }
    int width = value <= 0xff ? 1 : value <= 0xffff ? 2 : value <= 0xffffffffULL ? 4 : 8;
    out[0] = m | (uint8_t)(width == 1 ? 24 : width == 2 ? 25 : width == 4 ? 26 : 27);
    for (int i = 0; i < width; i++) out[1 + i] = (uint8_t)(value >> (8 * (width - 1 - i)));
    return 1 + (size_t)width;
}

static size_t put_field(uint8_t *out, unsigned key, const nks_bytes *b) {
    if (b->ptr == NULL) return 0;
    out[0] = (uint8_t)key;
    size_t n = 1 + put_head(out + 1, 2, b->len);
    memcpy(out + n, b->ptr, b->len);
    return n + b->len;
}

/* Level i (and everything nested in it), optionally without its own signature. */
static size_t encode_level(const nks_chain *ch, unsigned i, int with_signature, uint8_t *out) {
    const nks_level *l = &ch->levels[i];
    int with_sig = with_signature && l->signature.ptr != NULL;
    uint64_t count = 1 + (l->pubkey.ptr != NULL) + (l->key_id.ptr != NULL) + with_sig +
                     (l->has_nested != 0) + (l->wrapping.ptr != NULL);
    size_t n = put_head(out, 5, count);
    out[n++] = 0x01;
    n += put_head(out + n, 0, l->kind);
    n += put_field(out + n, 2, &l->pubkey);
    n += put_field(out + n, 3, &l->key_id);
    if (with_sig) n += put_field(out + n, 4, &l->signature);
    if (l->has_nested) {
        out[n++] = 0x05;
        n += encode_level(ch, i + 1, 1, out + n);
    }
    n += put_field(out + n, 6, &l->wrapping);
    return n;
}

static void fuzz_reader(const uint8_t *data, size_t len) {
    nks_chain chain;
    int accepted = nks_read(data, len, &chain);
    CHECK(accepted == tka_nks_is_canonical(data, len));
    if (!accepted) return;
    CHECK(chain.count >= 1 && chain.count <= TKA_NKS_MAX_LEVELS);
    /* Re-encoding never grows beyond the input plus a head per level. */
    uint8_t *buf = malloc(len + 16 * TKA_NKS_MAX_LEVELS);
    CHECK(buf != NULL);
    size_t n = encode_level(&chain, 0, 1, buf);
    CHECK(n == len && memcmp(buf, data, len) == 0);
    for (unsigned i = 0; i < chain.count; i++) {
        uint8_t want[32], got[32];
        size_t m = encode_level(&chain, i, 0, buf);
        tka_blake2s(buf, m, want);
        nks_sig_hash(data, &chain, i, got);
        CHECK(memcmp(want, got, 32) == 0);
        /* The span the bulk path hashes later holds exactly that message. */
        nks_span span;
        nks_sig_span(&chain, i, &span);
        CHECK(nks_span_len(&span) == m);
        uint8_t *copy = malloc(m + 1);
        CHECK(copy != NULL);
        nks_span_copy(data, &span, copy);
        CHECK(memcmp(copy, buf, m) == 0);
        free(copy);
    }
    free(buf);
}

static void fuzz_peers(const uint8_t *data, size_t len) {
    uint8_t node_keys[3 * 32] = {0};
    uint8_t trusted[2 * 32];
    memset(trusted, 0x42, 32);
    memset(trusted + 32, 0, 32);
    nks_chain chain;
    if (nks_read(data, len, &chain)) {
        const nks_level *top = &chain.levels[0];
        if (top->pubkey.len == 34) {
            for (int k = 0; k < 3; k++) memcpy(node_keys + 32 * k, top->pubkey.ptr + 2, 32);
        }
        for (unsigned i = 0; i < chain.count; i++) {
            if (chain.levels[i].key_id.len == 32) memcpy(trusted + 32, chain.levels[i].key_id.ptr, 32);
        }
    }
    uint8_t *blob = malloc(3 * len + 1);
    CHECK(blob != NULL);
    for (int k = 0; k < 3; k++) memcpy(blob + k * len, data, len);
    size_t offsets[4] = {0, len, 2 * len, 3 * len};
    tka_peer_result one[3], two[3];
    int a = tka_verify_peers(node_keys, blob, offsets, 3, trusted, 2, 1, one);
    int b = tka_verify_peers(node_keys, blob, offsets, 3, trusted, 2, 2, two);
    CHECK(a >= 0 && a == b && (a == 0 || a == 3));
    for (int k = 0; k < 3; k++) {
        CHECK(one[k].code <= TKA_PEER_CANNOT_NEST && one[k].depth < TKA_NKS_MAX_LEVELS);
        CHECK(memcmp(&one[k], &one[0], sizeof one[0]) == 0);
        CHECK(memcmp(&two[k], &one[0], sizeof one[0]) == 0);
    }
    free(blob);
}

/* RFC 8032 §7.1 TEST 1: a valid signature of the empty message. */
static const uint8_t GOOD_PK[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a};
static const uint8_t GOOD_SIG[64] = {
    0xe5, 0x56, 0x43, 0x00, 0xc3, 0x60, 0xac, 0x72, 0x90, 0x86, 0xe2, 0xcc, 0x80, 0x6e, 0x82, 0x8a,
    0x84, 0x87, 0x7f, 0x1e, 0xb8, 0xe5, 0xd9, 0x74, 0xd8, 0x73, 0xe0, 0x65, 0x22, 0x49, 0x01, 0x55,
    0x5f, 0xb8, 0x82, 0x15, 0x90, 0xa3, 0x3b, 0xac, 0xc6, 0x1e, 0x39, 0x70, 0x1c, 0xf9, 0xb4, 0x6b,
    0xd2, 0x5b, 0xf5, 0xf0, 0x59, 0x5b, 0xbe, 0x24, 0x65, 0x51, 0x41, 0x43, 0x8e, 0x7a, 0x10, 0x0b};

static void fuzz_verify(const uint8_t *data, size_t len) {
    if (len < 96) {
        /* Short inputs: every length split must be an invalid signature, not a crash. */
        size_t pk_len = len / 3, sig_len = len - pk_len;
        CHECK(tka_verify(data, pk_len, NULL, 0, data + pk_len, sig_len, TKA_RULE_ZIP215) == 0);
        return;
    }
    const uint8_t *pk = data, *sig = data + 32, *msg = data + 96;
    size_t msg_len = len - 96;
    int zip = tka_verify(pk, 32, msg, msg_len, sig, 64, TKA_RULE_ZIP215);
    int cof = tka_verify(pk, 32, msg, msg_len, sig, 64, TKA_RULE_COFACTORLESS);
    CHECK((zip == 0 || zip == 1) && (cof == 0 || cof == 1));
    CHECK(!cof || zip); /* the cofactorless equation implies the cofactored one */
    tka_batch_item items[2] = {{pk, msg, msg_len, sig}, {GOOD_PK, (const uint8_t *)"", 0, GOOD_SIG}};
    uint8_t verdicts[2];
    CHECK(tka_verify_batch_zip215(items, 2, verdicts) == zip + 1);
    CHECK(verdicts[0] == zip && verdicts[1] == 1);
    CHECK(tka_verify_each(items, 2, verdicts, TKA_RULE_COFACTORLESS) == cof + 1);
    CHECK(verdicts[0] == cof && verdicts[1] == 1);
}


/* --- mode 3: an AUM encoder written apart from the reader --- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} obuf;

static void ob_put(obuf *b, const uint8_t *data, size_t n) {
    CHECK(b->n + n <= b->cap);
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void ob_head(obuf *b, unsigned major, uint64_t v) {
    uint8_t tmp[9];
    size_t n = put_head(tmp, major, v);
    ob_put(b, tmp, n);
}

static void ob_byte(obuf *b, uint8_t v) { ob_put(b, &v, 1); }

static void ob_opt_bytes(obuf *b, int is_null, const tka_span *s) {
    if (is_null) {
        CHECK(s->ptr == NULL);
        ob_byte(b, 0xf6);
        return;
    }
    CHECK(s->ptr != NULL);
    ob_head(b, 2, s->len);
    ob_put(b, s->ptr, s->len);
}

/* Decodes one code point the long way and checks its range (not the reader's method). */
static int utf8_ok(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len;
        if (s[i] < 0x80) cp = s[i], len = 1;
        else if ((s[i] & 0xe0) == 0xc0) cp = s[i] & 0x1fu, len = 2;
        else if ((s[i] & 0xf0) == 0xe0) cp = s[i] & 0x0fu, len = 3;
        else if ((s[i] & 0xf8) == 0xf0) cp = s[i] & 0x07u, len = 4;
        else return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

static void ob_meta(obuf *b, const tka_meta *m) {
    CHECK(m->encoded.ptr != NULL && m->entries >= 1 && m->entries <= TKA_AUM_MAX_META_ENTRIES);
    ob_head(b, 5, m->entries);
    size_t pos = 0, count = 0, total = 0;
    tka_span k, v;
    size_t prev_start = 0, prev_len = 0; /* the previous key's encoding, in b */
    while (tka_meta_next(m, &pos, &k, &v)) {
        CHECK(utf8_ok(k.ptr, k.len) && utf8_ok(v.ptr, v.len));
        size_t start = b->n;
        ob_head(b, 3, k.len);
        ob_put(b, k.ptr, k.len);
        /* Strictly ascending encoded keys, compared bytewise (a proper prefix first). */
        size_t enc_len = b->n - start;
        if (count > 0) {
            size_t common = enc_len < prev_len ? enc_len : prev_len;
            int c = memcmp(b->p + prev_start, b->p + start, common);
            CHECK(c < 0 || (c == 0 && prev_len < enc_len));
        }
        prev_start = start;
        prev_len = enc_len;
        ob_head(b, 3, v.len);
        ob_put(b, v.ptr, v.len);
        total += k.len + v.len;
        count++;
    }
    CHECK(count == m->entries && total == m->total_bytes);
}

static void ob_key(obuf *b, const tka_aum_key *k) {
    CHECK(k->kind <= 255);
    int meta = k->meta.encoded.ptr != NULL;
    ob_head(b, 5, 3 + (uint64_t)meta);
    ob_byte(b, 0x01);
    ob_head(b, 0, k->kind);
    ob_byte(b, 0x02);
    ob_head(b, 0, k->votes);
    ob_byte(b, 0x03);
    ob_opt_bytes(b, k->public_is_null, &k->public_key);
    if (meta) {
        ob_byte(b, 0x0c);
        ob_meta(b, &k->meta);
    }
}

static void ob_state(obuf *b, const tka_aum_state *st) {
    ob_head(b, 5, 3 + (uint64_t)(st->state_id1 != 0) + (uint64_t)(st->state_id2 != 0));
    ob_byte(b, 0x01);
    CHECK(st->last_hash_is_null || st->last_hash.len == 32);
    ob_opt_bytes(b, st->last_hash_is_null, &st->last_hash);
    ob_byte(b, 0x02);
    if (st->disablement_is_null) {
        CHECK(st->n_disablement == 0);
        ob_byte(b, 0xf6);
    } else {
        CHECK(st->n_disablement <= TKA_AUM_MAX_DISABLEMENT);
        ob_head(b, 4, st->n_disablement);
        for (size_t i = 0; i < st->n_disablement; i++) ob_opt_bytes(b, 0, &st->disablement[i]);
    }
    ob_byte(b, 0x03);
    if (st->keys_is_null) {
        CHECK(st->n_keys == 0);
        ob_byte(b, 0xf6);
    } else {
        CHECK(st->n_keys <= TKA_AUM_MAX_KEYS);
        ob_head(b, 4, st->n_keys);
        for (size_t i = 0; i < st->n_keys; i++) ob_key(b, &st->keys[i]);
    }
    if (st->state_id1) {
        ob_byte(b, 0x04);
        ob_head(b, 0, st->state_id1);
    }
    if (st->state_id2) {
        ob_byte(b, 0x05);
        ob_head(b, 0, st->state_id2);
    }
}

static void ob_aum(obuf *b, const tka_aum *a, int with_signatures) {
    int sigs = with_signatures && a->n_signatures > 0;
    uint64_t count = 2 + (uint64_t)(a->has_key != 0) + (uint64_t)(a->key_id.ptr != NULL) +
                     (uint64_t)(a->has_state != 0) + (uint64_t)(a->has_votes != 0) +
                     (uint64_t)(a->meta.encoded.ptr != NULL) + (uint64_t)sigs;
    ob_head(b, 5, count);
    ob_byte(b, 0x01);
    ob_head(b, 0, a->kind);
    ob_byte(b, 0x02);
    ob_opt_bytes(b, a->prev_is_null, &a->prev);
    if (a->has_key) {
        ob_byte(b, 0x03);
        ob_key(b, &a->key);
    }
    if (a->key_id.ptr != NULL) {
        CHECK(a->key_id.len > 0);
        ob_byte(b, 0x04);
        ob_opt_bytes(b, 0, &a->key_id);
    }
    if (a->has_state) {
        ob_byte(b, 0x05);
        ob_state(b, &a->state);
    }
    if (a->has_votes) {
        ob_byte(b, 0x06);
        ob_head(b, 0, a->votes);
    }
    if (a->meta.encoded.ptr != NULL) {
        ob_byte(b, 0x07);
        ob_meta(b, &a->meta);
    }
    if (sigs) {
        CHECK(a->n_signatures <= TKA_AUM_MAX_SIGNATURES);
        ob_byte(b, 0x17);
        ob_head(b, 4, a->n_signatures);
        for (size_t i = 0; i < a->n_signatures; i++) {
            const tka_aum_signature *s = &a->signatures[i];
            ob_head(b, 5, 2);
            ob_byte(b, 0x01);
            ob_opt_bytes(b, s->key_id_is_null, &s->key_id);
            ob_byte(b, 0x02);
            ob_opt_bytes(b, s->signature_is_null, &s->signature);
        }
    }
}

static void fuzz_aum(const uint8_t *data, size_t len) {
    static tka_aum aum; /* about 45 KB: not on the stack */
    int accepted = tka_aum_read(data, len, &aum);
    CHECK(accepted == tka_aum_is_canonical(data, len));
    uint8_t hash[32], sig_hash[32];
    CHECK(accepted == tka_aum_hashes(data, len, hash, sig_hash));
    if (len == 32) {
        int cls = tka_public_key_class(data);
        CHECK(cls >= TKA_PK_OK && cls <= TKA_PK_NONCANONICAL);
    }
    if (!accepted) return;
    /* The re-encoding is never longer than the input. */
    obuf b = {malloc(len), 0, len};
    CHECK(b.p != NULL);
    ob_aum(&b, &aum, 1);
    CHECK(b.n == len && memcmp(b.p, data, len) == 0);
    uint8_t want[32], got[32];
    tka_blake2s(data, len, want);
    CHECK(memcmp(want, hash, 32) == 0);
    b.n = 0;
    ob_aum(&b, &aum, 0);
    tka_blake2s(b.p, b.n, want);
    tka_aum_sig_hash(data, len, &aum, got);
    CHECK(memcmp(want, got, 32) == 0 && memcmp(want, sig_hash, 32) == 0);
    free(b.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    if (len == 0) return 0;
    const uint8_t *rest = data + 1;
    size_t n = len - 1;
    switch (data[0] % 4) {
    case 0: fuzz_reader(rest, n); break;
    case 1: fuzz_peers(rest, n); break;
    case 2: fuzz_verify(rest, n); break;
    default: fuzz_aum(rest, n); break;
    }
    return 0;
}
