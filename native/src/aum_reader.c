/* Bounded canonical reader for AUMs; see aum_reader.h for what it accepts.
 *
 * The shape is fixed (AUM → Key | State → Keys → Key → Meta, AUM → Signatures → Signature), so
 * each level has its own function and nothing recurses on input-controlled depth. Every length
 * is compared with what remains of the input before it is used; nothing is allocated. The
 * parse can run without an output (out == NULL: tka_aum_is_canonical, tka_aum_hashes), which
 * keeps the 45 KB tka_aum off the caller's stack; large arrays are then read into one-element
 * scratch values and dropped. */
#include "aum_reader.h"

#include <string.h>

#include "blake2s.h"
#include "cbor_head.h"
#include "tka_native.h"

/* What sighash needs, known with or without an output. */
typedef struct {
    size_t entries;
    size_t sigs_entry_start;
    size_t n_signatures;
} aum_shape;

static int read_uint(cbor_cursor *c, uint64_t *v) { return cbor_head(c, 0, v); }

static int read_small_uint(cbor_cursor *c, unsigned *v) {
    uint64_t x;
    if (!read_uint(c, &x) || x > 255) return 0; /* 8-bit fields: larger values overflow */
    *v = (unsigned)x;
    return 1;
}

/* A one-byte struct key (all keys used here are below 24). */
static int expect_key(cbor_cursor *c, uint8_t key) {
    if (c->pos >= c->len || c->data[c->pos] != key) return 0;
    c->pos++;
    return 1;
}

static int take_null(cbor_cursor *c) {
    if (c->pos < c->len && c->data[c->pos] == 0xf6) {
        c->pos++;
        return 1;
    }
    return 0;
}

static int read_string(cbor_cursor *c, unsigned major, tka_span *out) {
    uint64_t n;
    if (!cbor_head(c, major, &n)) return 0;
    if (n > c->len - c->pos) return 0;
    out->ptr = c->data + c->pos;
    out->len = (size_t)n;
    c->pos += (size_t)n;
    return 1;
}

/* A non-omitempty byte slice: null, or a byte string of any length (0x40 included). */
static int read_opt_bytes(cbor_cursor *c, int *is_null, tka_span *out) {
    if (take_null(c)) {
        *is_null = 1;
        out->ptr = NULL;
        out->len = 0;
        return 1;
    }
    *is_null = 0;
    return read_string(c, 2, out);
}

/* UTF-8 as Go's utf8.Valid (and Python's strict decoder) define it: shortest forms only, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF. */
static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf; /* range of the first continuation byte */
        if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            need = 2;
            if (b == 0xe0) lo = 0xa0;      /* overlong below U+0800 */
            else if (b == 0xed) hi = 0x9f; /* surrogates */
        } else if (b >= 0xf0 && b <= 0xf4) {
            need = 3;
            if (b == 0xf0) lo = 0x90;      /* overlong below U+10000 */
            else if (b == 0xf4) hi = 0x8f; /* above U+10FFFF */
        } else {
            return 0; /* continuation byte, C0/C1 (overlong), F5..FF */
        }
        if (n - i - 1 < need) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80) return 0;
        i += need + 1;
    }
    return 1;
}

static int read_text(cbor_cursor *c, tka_span *out) {
    return read_string(c, 3, out) && utf8_valid(out->ptr, out->len);
}

/* Bytewise order of two encoded keys (a proper prefix sorts first); 1 if a < b strictly. */
static int encoded_less(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
    size_t n = alen < blen ? alen : blen;
    int cmp = memcmp(a, b, n);
    return cmp < 0 || (cmp == 0 && alen < blen);
}

/* A map[string]string under an omitempty key: 1..TKA_AUM_MAX_META_ENTRIES entries, keys in
 * strictly ascending CTAP2 order (so unique), keys and values valid UTF-8. */
static int read_meta(cbor_cursor *c, tka_meta *m) {
    size_t start = c->pos;
    uint64_t n;
    if (!cbor_head(c, 5, &n) || n == 0 || n > TKA_AUM_MAX_META_ENTRIES) return 0;
    size_t total = 0, prev_start = 0, prev_len = 0;
    for (uint64_t i = 0; i < n; i++) {
        size_t key_start = c->pos;
        tka_span key, value;
        if (!read_text(c, &key)) return 0;
        size_t key_len = c->pos - key_start;
        if (i > 0 && !encoded_less(c->data + prev_start, prev_len, c->data + key_start, key_len))
            return 0;
        prev_start = key_start;
        prev_len = key_len;
        if (!read_text(c, &value)) return 0;
        total += key.len + value.len; /* bounded by the input length */
    }
    m->encoded.ptr = c->data + start;
    m->encoded.len = c->pos - start;
    m->entries = (size_t)n;
    m->total_bytes = total;
    return 1;
}

/* Key {1: Kind, 2: Votes, 3: Public (null or bytes), 12: Meta (omitted when empty)}. */
static int read_key(cbor_cursor *c, tka_aum_key *k) {
    uint64_t n;
    if (!cbor_head(c, 5, &n) || (n != 3 && n != 4)) return 0;
    memset(k, 0, sizeof *k);
    if (!expect_key(c, 0x01) || !read_small_uint(c, &k->kind)) return 0;
    if (!expect_key(c, 0x02) || !read_uint(c, &k->votes)) return 0;
    if (!expect_key(c, 0x03) || !read_opt_bytes(c, &k->public_is_null, &k->public_key)) return 0;
    if (n == 4 && (!expect_key(c, 0x0c) || !read_meta(c, &k->meta))) return 0;
    return 1;
}

/* Signature {1: KeyID, 2: Signature}, both null or bytes. */
static int read_signature(cbor_cursor *c, tka_aum_signature *s) {
    uint64_t n;
    if (!cbor_head(c, 5, &n) || n != 2) return 0;
    if (!expect_key(c, 0x01) || !read_opt_bytes(c, &s->key_id_is_null, &s->key_id)) return 0;
    if (!expect_key(c, 0x02) || !read_opt_bytes(c, &s->signature_is_null, &s->signature)) return 0;
    return 1;
}

/* State {1: LastAUMHash, 2: DisablementValues, 3: Keys, 4: StateID1, 5: StateID2}. `st` may be
 * NULL (validate only). */
static int read_state(cbor_cursor *c, tka_aum_state *st) {
    uint64_t n;
    if (!cbor_head(c, 5, &n) || n < 3 || n > 5) return 0;
    int is_null;
    tka_span span;
    /* LastAUMHash decodes into a fixed 32-byte array: only null or exactly 32 bytes survive
     * the round trip. */
    if (!expect_key(c, 0x01) || !read_opt_bytes(c, &is_null, &span)) return 0;
    if (!is_null && span.len != 32) return 0;
    if (st != NULL) {
        st->last_hash_is_null = is_null;
        st->last_hash = span;
    }
    if (!expect_key(c, 0x02)) return 0;
    if (take_null(c)) {
        if (st != NULL) {
            st->disablement_is_null = 1;
            st->n_disablement = 0;
        }
    } else {
        uint64_t m;
        if (!cbor_head(c, 4, &m) || m > TKA_AUM_MAX_DISABLEMENT) return 0;
        for (uint64_t i = 0; i < m; i++) {
            tka_span v;
            if (!read_string(c, 2, &v)) return 0;
            if (st != NULL) st->disablement[i] = v;
        }
        if (st != NULL) {
            st->disablement_is_null = 0;
            st->n_disablement = (size_t)m;
        }
    }
    if (!expect_key(c, 0x03)) return 0;
    if (take_null(c)) {
        if (st != NULL) {
            st->keys_is_null = 1;
            st->n_keys = 0;
        }
    } else {
        uint64_t m;
        if (!cbor_head(c, 4, &m) || m > TKA_AUM_MAX_KEYS) return 0;
        for (uint64_t i = 0; i < m; i++) {
            tka_aum_key scratch;
            if (!read_key(c, st != NULL ? &st->keys[i] : &scratch)) return 0;
        }
        if (st != NULL) {
            st->keys_is_null = 0;
            st->n_keys = (size_t)m;
        }
    }
    uint64_t ids[2] = {0, 0};
    unsigned last = 3;
    for (uint64_t i = 3; i < n; i++) {
        if (c->pos >= c->len) return 0;
        unsigned key = c->data[c->pos];
        if (key <= last || key > 5) return 0;
        c->pos++;
        last = key;
        if (!read_uint(c, &ids[key - 4]) || ids[key - 4] == 0) return 0; /* omitted if 0 */
    }
    if (st != NULL) {
        st->state_id1 = ids[0];
        st->state_id2 = ids[1];
    }
    return 1;
}

/* The AUM map; `out` may be NULL. */
static int read_aum(const uint8_t *data, size_t len, tka_aum *out, aum_shape *shape) {
    cbor_cursor c = {data, len, 0};
    memset(shape, 0, sizeof *shape);
    if (data == NULL || len == 0) return 0;
    uint64_t entries;
    if (!cbor_head(&c, 5, &entries) || entries < 2 || entries > 8) return 0;
    shape->entries = (size_t)entries;
    unsigned kind;
    if (!expect_key(&c, 0x01) || !read_small_uint(&c, &kind)) return 0;
    int prev_is_null;
    tka_span prev;
    if (!expect_key(&c, 0x02) || !read_opt_bytes(&c, &prev_is_null, &prev)) return 0;
    if (out != NULL) {
        out->kind = kind;
        out->prev_is_null = prev_is_null;
        out->prev = prev;
    }
    unsigned last = 2;
    for (uint64_t i = 2; i < entries; i++) {
        if (c.pos >= c.len) return 0;
        unsigned key = data[c.pos];
        if (key <= last) return 0;
        size_t entry_start = c.pos++;
        last = key;
        switch (key) {
        case 3: {
            tka_aum_key k;
            if (!read_key(&c, &k)) return 0;
            if (out != NULL) {
                out->has_key = 1;
                out->key = k;
            }
            break;
        }
        case 4: {
            tka_span id;
            if (!read_string(&c, 2, &id) || id.len == 0) return 0; /* omitted when empty */
            if (out != NULL) out->key_id = id;
            break;
        }
        case 5:
            if (!read_state(&c, out != NULL ? &out->state : NULL)) return 0;
            if (out != NULL) out->has_state = 1;
            break;
        case 6: {
            uint64_t votes;
            if (!read_uint(&c, &votes)) return 0; /* a pointer: a present 0 is kept */
            if (out != NULL) {
                out->has_votes = 1;
                out->votes = votes;
            }
            break;
        }
        case 7: {
            tka_meta m;
            if (!read_meta(&c, &m)) return 0;
            if (out != NULL) out->meta = m;
            break;
        }
        case 0x17: {
            uint64_t m;
            if (!cbor_head(&c, 4, &m) || m == 0 || m > TKA_AUM_MAX_SIGNATURES) return 0;
            for (uint64_t s = 0; s < m; s++) {
                tka_aum_signature scratch;
                if (!read_signature(&c, out != NULL ? &out->signatures[s] : &scratch)) return 0;
            }
            shape->sigs_entry_start = entry_start;
            shape->n_signatures = (size_t)m;
            break;
        }
        default:
            return 0; /* unknown keys are dropped by a re-encoding */
        }
    }
    if (c.pos != len) return 0;
    if (out != NULL) {
        out->n_signatures = shape->n_signatures;
        out->entries = shape->entries;
        out->sigs_entry_start = shape->sigs_entry_start;
    }
    return 1;
}

int tka_aum_read(const uint8_t *data, size_t len, tka_aum *out) {
    memset(out, 0, sizeof *out); /* absent fields read as NULL spans and zero counts */
    aum_shape shape;
    return read_aum(data, len, out, &shape);
}

static void sig_hash_shape(const uint8_t *data, size_t len, const aum_shape *shape,
                           uint8_t out[32]) {
    blake2s_ctx ctx;
    blake2s_init(&ctx);
    if (shape->n_signatures == 0) {
        blake2s_update(&ctx, data, len);
    } else {
        /* Key 23 is the last entry, and a canonical map of at most 8 entries has a one-byte
         * head: drop the entry and lower the count. */
        uint8_t head = (uint8_t)(0xa0u | (shape->entries - 1));
        blake2s_update(&ctx, &head, 1);
        blake2s_update(&ctx, data + 1, shape->sigs_entry_start - 1);
    }
    blake2s_final(&ctx, out);
}

void tka_aum_sig_hash(const uint8_t *data, size_t len, const tka_aum *aum, uint8_t out[32]) {
    aum_shape shape = {aum->entries, aum->sigs_entry_start, aum->n_signatures};
    sig_hash_shape(data, len, &shape, out);
}

void tka_aum_hash(const uint8_t *data, size_t len, uint8_t out[32]) {
    blake2s_ctx ctx;
    blake2s_init(&ctx);
    blake2s_update(&ctx, data, len);
    blake2s_final(&ctx, out);
}

int tka_meta_next(const tka_meta *meta, size_t *pos, tka_span *key, tka_span *value) {
    if (meta->encoded.ptr == NULL) return 0;
    cbor_cursor c = {meta->encoded.ptr, meta->encoded.len, *pos};
    if (c.pos == 0) {
        uint64_t n;
        if (!cbor_head(&c, 5, &n)) return 0;
    }
    if (c.pos >= c.len) return 0;
    if (!read_string(&c, 3, key) || !read_string(&c, 3, value)) return 0;
    *pos = c.pos;
    return 1;
}

int tka_aum_is_canonical(const uint8_t *data, size_t len) {
    aum_shape shape;
    return read_aum(data, len, NULL, &shape);
}

int tka_aum_hashes(const uint8_t *data, size_t len, uint8_t hash[32], uint8_t sig_hash[32]) {
    aum_shape shape;
    if (!read_aum(data, len, NULL, &shape)) return 0;
    tka_aum_hash(data, len, hash);
    sig_hash_shape(data, len, &shape, sig_hash);
    return 1;
}
