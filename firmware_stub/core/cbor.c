#include "cbor.h"

#include <string.h>

/* Reads a head at p (avail bytes). Returns its length, 0 if truncated or reserved. */
static size_t head(const uint8_t *p, size_t avail, int *major, uint8_t *info, uint64_t *arg) {
    if (avail < 1) return 0;
    *major = p[0] >> 5;
    *info = p[0] & 31;
    if (*info < 24) {
        *arg = *info;
        return 1;
    }
    size_t extra;
    switch (*info) {
    case 24: extra = 1; break;
    case 25: extra = 2; break;
    case 26: extra = 4; break;
    case 27: extra = 8; break;
    default: return 0; /* 28..30 reserved, 31 indefinite: neither is accepted */
    }
    if (avail < 1 + extra) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < extra; i++) v = (v << 8) | p[1 + i];
    *arg = v;
    return 1 + extra;
}

int utf8_valid(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((b & 0xe0) == 0xc0) len = 2, cp = b & 0x1f, min = 0x80;
        else if ((b & 0xf0) == 0xe0) len = 3, cp = b & 0x0f, min = 0x800;
        else if ((b & 0xf8) == 0xf0) len = 4, cp = b & 0x07, min = 0x10000;
        else return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

typedef struct {
    const uint8_t *buf;
    size_t len;
    const char *why;
} checker;

static int fail(checker *c, const char *why) {
    c->why = why;
    return -1;
}

/* Checks the item at *pos, advancing it. `depth` counts the containers around it. */
static int check_item(checker *c, size_t *pos, unsigned depth) {
    int major;
    uint8_t info;
    uint64_t arg;
    size_t h = head(c->buf + *pos, c->len - *pos, &major, &info, &arg);
    if (h == 0) {
        if (c->len - *pos >= 1 && (c->buf[*pos] & 31) == 31) return fail(c, "an indefinite length");
        return fail(c, "a truncated or reserved head");
    }
    *pos += h;
    switch (major) {
    case 0:
        return 0;
    case 1:
        if (arg > (uint64_t)INT64_MAX) return fail(c, "an integer beyond 64 bits");
        return 0;
    case 2:
    case 3:
        if (arg > c->len - *pos) return fail(c, "a string running past the end");
        if (major == 3 && !utf8_valid(c->buf + *pos, (size_t)arg)) return fail(c, "invalid UTF-8");
        *pos += (size_t)arg;
        return 0;
    case 4:
    case 5: {
        if (depth + 1 > CBOR_DEPTH_MAX) return fail(c, "nesting deeper than 16");
        if (major == 5 && arg > CBOR_MAP_MAX) return fail(c, "a map with too many entries");
        /* Every element takes at least one byte: a count beyond what is left is a lie. */
        if (arg > c->len - *pos) return fail(c, "a container running past the end");
        size_t keys[CBOR_MAP_MAX];
        for (uint64_t i = 0; i < arg; i++) {
            if (major == 5) {
                size_t kpos = *pos;
                int km = 0;
                uint8_t ki = 0;
                uint64_t ka = 0;
                size_t kh = head(c->buf + kpos, c->len - kpos, &km, &ki, &ka);
                if (kh == 0 || km != 3) return fail(c, "a map key that is not a text string");
                if (check_item(c, pos, depth + 1) != 0) return -1;
                size_t klen = *pos - kpos;
                for (uint64_t j = 0; j < i; j++) {
                    /* Same encoding = same key, heads included: a non-shortest head would
                     * hide a duplicate, so compare decoded text. */
                    const uint8_t *a = c->buf + kpos + kh;
                    size_t alen = klen - kh;
                    size_t opos = keys[j];
                    int om = 0;
                    uint8_t oi = 0;
                    uint64_t oa = 0;
                    size_t oh = head(c->buf + opos, c->len - opos, &om, &oi, &oa);
                    if (oa == alen && memcmp(c->buf + opos + oh, a, alen) == 0)
                        return fail(c, "a duplicate map key");
                }
                keys[i] = kpos;
            }
            if (check_item(c, pos, depth + 1) != 0) return -1;
        }
        return 0;
    }
    case 6:
        return fail(c, "a tag");
    default:
        if (info == 20 || info == 21 || info == 22) return 0;
        if (info >= 25 && info <= 27) return fail(c, "a float");
        return fail(c, "a simple value other than false, true and null");
    }
}

int cbor_check(const uint8_t *buf, size_t len, const char **why) {
    checker c = {buf, len, NULL};
    size_t pos = 0;
    if (len == 0) {
        if (why) *why = "an empty message";
        return -1;
    }
    if (check_item(&c, &pos, 0) != 0) {
        if (why) *why = c.why;
        return -1;
    }
    if (pos != len) {
        if (why) *why = "bytes after the item";
        return -1;
    }
    return 0;
}

/* Length of a checked item at p. */
static size_t item_len(const uint8_t *p, size_t avail) {
    int major;
    uint8_t info;
    uint64_t arg;
    size_t h = head(p, avail, &major, &info, &arg);
    if (h == 0) return avail; /* unreachable on checked data */
    if (major == 2 || major == 3) return h + (size_t)arg;
    if (major == 4 || major == 5) {
        size_t pos = h;
        uint64_t n = major == 5 ? arg * 2 : arg;
        for (uint64_t i = 0; i < n && pos < avail; i++) pos += item_len(p + pos, avail - pos);
        return pos;
    }
    return h;
}

int cbor_type(cbor_item it) {
    int major;
    uint8_t info;
    uint64_t arg;
    if (head(it.p, it.len, &major, &info, &arg) == 0) return CB_INVALID;
    switch (major) {
    case 0: return CB_UINT;
    case 1: return CB_NINT;
    case 2: return CB_BYTES;
    case 3: return CB_TEXT;
    case 4: return CB_ARRAY;
    case 5: return CB_MAP;
    case 7:
        if (info == 20) return CB_FALSE;
        if (info == 21) return CB_TRUE;
        if (info == 22) return CB_NULL;
        return CB_INVALID;
    default: return CB_INVALID;
    }
}

int cbor_uint(cbor_item it, uint64_t *v) {
    int major;
    uint8_t info;
    if (head(it.p, it.len, &major, &info, v) == 0 || major != 0) return -1;
    return 0;
}

static int string_of(cbor_item it, int want, const uint8_t **p, size_t *n) {
    int major;
    uint8_t info;
    uint64_t arg;
    size_t h = head(it.p, it.len, &major, &info, &arg);
    if (h == 0 || major != want || arg > it.len - h) return -1;
    *p = it.p + h;
    *n = (size_t)arg;
    return 0;
}

int cbor_bytes(cbor_item it, const uint8_t **p, size_t *n) { return string_of(it, 2, p, n); }
int cbor_text(cbor_item it, const uint8_t **p, size_t *n) { return string_of(it, 3, p, n); }

int cbor_bool(cbor_item it, int *v) {
    int t = cbor_type(it);
    if (t != CB_FALSE && t != CB_TRUE) return -1;
    *v = t == CB_TRUE;
    return 0;
}

size_t cbor_count(cbor_item it) {
    int major;
    uint8_t info;
    uint64_t arg;
    if (head(it.p, it.len, &major, &info, &arg) == 0 || (major != 4 && major != 5)) return 0;
    return (size_t)arg;
}

int cbor_iter_init(cbor_item container, cbor_iter *it) {
    int major;
    uint8_t info;
    uint64_t arg;
    size_t h = head(container.p, container.len, &major, &info, &arg);
    if (h == 0 || (major != 4 && major != 5)) return -1;
    it->p = container.p + h;
    it->end = container.p + container.len;
    it->left = (size_t)(major == 5 ? arg * 2 : arg);
    return 0;
}

int cbor_next(cbor_iter *it, cbor_item *item) {
    if (it->left == 0 || it->p >= it->end) return 0;
    size_t avail = (size_t)(it->end - it->p);
    size_t n = item_len(it->p, avail);
    if (n > avail) n = avail;
    item->p = it->p;
    item->len = n;
    it->p += n;
    it->left--;
    return 1;
}

int cbor_next_pair(cbor_iter *it, cbor_item *key, cbor_item *value) {
    return cbor_next(it, key) && cbor_next(it, value);
}

int cbor_text_is(cbor_item it, const char *s) {
    const uint8_t *p;
    size_t n;
    if (cbor_text(it, &p, &n) != 0) return 0;
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

int cbor_map_find(cbor_item map, const char *key, cbor_item *value) {
    cbor_iter it;
    cbor_item k, v;
    if (cbor_type(map) != CB_MAP || cbor_iter_init(map, &it) != 0) return 0;
    while (cbor_next_pair(&it, &k, &v)) {
        if (cbor_text_is(k, key)) {
            *value = v;
            return 1;
        }
    }
    return 0;
}

/* ---- writer ---- */

void cw_init(cbor_writer *w, uint8_t *buf, size_t cap) {
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = 0;
}

void cw_raw(cbor_writer *w, const uint8_t *p, size_t n) {
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    if (n > 0) memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void cw_head(cbor_writer *w, int major, uint64_t v) {
    uint8_t h[9];
    size_t n;
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) {
        h[0] = m | (uint8_t)v, n = 1;
    } else if (v <= 0xff) {
        h[0] = m | 24, h[1] = (uint8_t)v, n = 2;
    } else if (v <= 0xffff) {
        h[0] = m | 25, n = 3;
        for (int i = 0; i < 2; i++) h[1 + i] = (uint8_t)(v >> (8 * (1 - i)));
    } else if (v <= 0xffffffffu) {
        h[0] = m | 26, n = 5;
        for (int i = 0; i < 4; i++) h[1 + i] = (uint8_t)(v >> (8 * (3 - i)));
    } else {
        h[0] = m | 27, n = 9;
        for (int i = 0; i < 8; i++) h[1 + i] = (uint8_t)(v >> (8 * (7 - i)));
    }
    cw_raw(w, h, n);
}

void cw_uint(cbor_writer *w, uint64_t v) { cw_head(w, 0, v); }

void cw_bytes(cbor_writer *w, const uint8_t *p, size_t n) {
    cw_head(w, 2, n);
    cw_raw(w, p, n);
}

void cw_textn(cbor_writer *w, const char *s, size_t n) {
    cw_head(w, 3, n);
    cw_raw(w, (const uint8_t *)s, n);
}

void cw_text(cbor_writer *w, const char *s) { cw_textn(w, s, strlen(s)); }
void cw_array(cbor_writer *w, size_t n) { cw_head(w, 4, n); }
void cw_map(cbor_writer *w, size_t n) { cw_head(w, 5, n); }

void cw_bool(cbor_writer *w, int v) {
    uint8_t b = v ? 0xf5 : 0xf4;
    cw_raw(w, &b, 1);
}

void cw_null(cbor_writer *w) {
    uint8_t b = 0xf6;
    cw_raw(w, &b, 1);
}
