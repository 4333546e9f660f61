/* Signing deeplinks: parse and HMAC check (see deeplink.h). */
#include "deeplink.h"

#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

enum { F_NK, F_TP, F_DN, F_OS, F_EM, F_HM, F_COUNT };
static const char *const NAMES[F_COUNT] = {"nk", "tp", "dn", "os", "em", "hm"};

static uint8_t g_scratch[DEEPLINK_MAX]; /* names and ignored values, decoded */

static int fail(deeplink_result *out, const char *fmt, const char *arg) {
    out->valid = 0;
    snprintf(out->error, sizeof out->error, fmt, arg);
    return 0;
}

/* Python's repr() of a printable-ASCII string, so messages read like the verifier's. */
static void repr(char *out, size_t cap, const uint8_t *s, size_t n) {
    int has_single = memchr(s, '\'', n) != NULL, has_double = memchr(s, '"', n) != NULL;
    char q = has_single && !has_double ? '"' : '\'';
    size_t w = 0;
    if (cap < 4) {
        if (cap) out[0] = '\0';
        return;
    }
    out[w++] = q;
    for (size_t i = 0; i < n && w + 4 < cap; i++) {
        if (s[i] == '\\' || s[i] == (uint8_t)q) out[w++] = '\\';
        out[w++] = (char)s[i];
    }
    out[w++] = q;
    out[w] = '\0';
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Form decoding ("+" → space, %XX → byte) of s[0..n) into out; -1 on a malformed escape. */
static long form_decode(const uint8_t *s, size_t n, uint8_t *out) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[w++] = ' ';
        } else if (s[i] == '%') {
            if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) return -1;
            out[w++] = (uint8_t)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[w++] = s[i];
        }
    }
    return (long)w;
}

static int utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0xc2 && b <= 0xdf) need = 1;
        else if (b >= 0xe0 && b <= 0xef) need = 2, lo = b == 0xe0 ? 0xa0 : 0x80, hi = b == 0xed ? 0x9f : 0xbf;
        else if (b >= 0xf0 && b <= 0xf4) need = 3, lo = b == 0xf0 ? 0x90 : 0x80, hi = b == 0xf4 ? 0x8f : 0xbf;
        else return 0;
        if (n - i - 1 < need || s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80) return 0;
        i += need + 1;
    }
    return 1;
}

static int scheme_char(uint8_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '-' || c == '.';
}

int deeplink_validate(const uint8_t *url, size_t len, uint64_t state_id1, deeplink_result *out) {
    char shown[120];
    memset(out, 0, offsetof(deeplink_result, buf));
    if (url == NULL || len == 0) return fail(out, "%s", "empty deeplink");
    if (len > DEEPLINK_MAX) return fail(out, "%s", "deeplink too long");
    for (size_t i = 0; i < len; i++)
        if (url[i] < 0x21 || url[i] > 0x7e)
            return fail(out, "%s", "deeplink holds a byte that is not printable ASCII");

    /* Scheme: letters, digits, "+-." up to the first ":", starting with a letter. */
    size_t pos = 0;
    const uint8_t *colon = memchr(url, ':', len);
    size_t scheme_len = 0;
    if (colon != NULL && colon > url &&
        ((url[0] | 0x20) >= 'a' && (url[0] | 0x20) <= 'z')) {
        size_t i = 0, end = (size_t)(colon - url);
        while (i < end && scheme_char(url[i])) i++;
        if (i == end) scheme_len = end;
    }
    char scheme[64];
    size_t shown_len = scheme_len < sizeof scheme - 1 ? scheme_len : sizeof scheme - 1;
    for (size_t i = 0; i < shown_len; i++) {
        uint8_t c = url[i];
        scheme[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    scheme[shown_len] = '\0';
    if (scheme_len != 9 || strcmp(scheme, "tailscale") != 0) {
        repr(shown, sizeof shown, (const uint8_t *)scheme, shown_len);
        return fail(out, "unhandled scheme %s", shown);
    }
    pos = scheme_len + 1;

    /* Host: after "//", up to the first "/", "?" or "#". */
    size_t host_start = pos, host_len = 0;
    if (len - pos >= 2 && url[pos] == '/' && url[pos + 1] == '/') {
        host_start = pos + 2;
        size_t i = host_start;
        while (i < len && url[i] != '/' && url[i] != '?' && url[i] != '#') i++;
        host_len = i - host_start;
        pos = i;
    }
    if (host_len != strlen("sign-device") || memcmp(url + host_start, "sign-device", host_len) != 0) {
        repr(shown, sizeof shown, url + host_start, host_len);
        return fail(out, "unhandled host %s", shown);
    }

    /* Path up to "?" or "#"; the query only if "?" comes first. */
    size_t path_start = pos;
    while (pos < len && url[pos] != '?' && url[pos] != '#') pos++;
    size_t path_len = pos - path_start;
    size_t query_start = pos, query_len = 0;
    if (pos < len && url[pos] == '?') {
        query_start = pos + 1;
        size_t i = query_start;
        while (i < len && url[i] != '#') i++;
        query_len = i - query_start;
    }
    const uint8_t *path = url + path_start;
    size_t slashes = 0, first = 0, second = 0;
    for (size_t i = 0; i < path_len; i++) {
        if (path[i] != '/') continue;
        if (slashes == 0) first = i;
        else if (slashes == 1) second = i;
        slashes++;
    }
    if (slashes != 2 || second - first - 1 != 2 || memcmp(path + first + 1, "v1", 2) != 0) {
        repr(shown, sizeof shown, path, path_len);
        return fail(out, "unhandled path %s", shown);
    }

    /* Query: "&"-separated name=value pairs; the first value of each name counts. */
    const uint8_t *query = url + query_start;
    if (memchr(query, ';', query_len) != NULL)
        return fail(out, "%s", "deeplink query holds a \";\"");
    deeplink_text values[F_COUNT];
    int seen[F_COUNT] = {0};
    size_t used = 0;
    for (size_t i = 0; i < query_len;) {
        size_t end = i;
        while (end < query_len && query[end] != '&') end++;
        if (end > i) {
            const uint8_t *eq = memchr(query + i, '=', end - i);
            size_t name_len = eq != NULL ? (size_t)(eq - (query + i)) : end - i;
            long nlen = form_decode(query + i, name_len, g_scratch);
            if (nlen < 0) return fail(out, "%s", "malformed %-escape in the deeplink query");
            int which = -1;
            for (int f = 0; f < F_COUNT && nlen == 2; f++)
                if (memcmp(g_scratch, NAMES[f], 2) == 0) which = f;
            const uint8_t *val = eq != NULL ? eq + 1 : query + end;
            size_t val_len = (size_t)(query + end - val);
            int keep = which >= 0 && !seen[which];
            /* Decoding never grows a value, so the kept ones fit buf (len <= DEEPLINK_MAX). */
            uint8_t *dst = keep ? out->buf + used : g_scratch;
            long vlen = form_decode(val, val_len, dst);
            if (vlen < 0) return fail(out, "%s", "malformed %-escape in the deeplink query");
            if (keep) {
                if (!utf8_valid(dst, (size_t)vlen))
                    return fail(out, "%s", "a deeplink value is not valid UTF-8");
                values[which].ptr = dst;
                values[which].len = (size_t)vlen;
                used += (size_t)vlen;
                seen[which] = 1;
            }
        }
        i = end + 1;
    }
    for (int f = 0; f < F_COUNT; f++) {
        if (!seen[f]) {
            values[f].ptr = out->buf;
            values[f].len = 0;
        }
    }
    /* The reference checks dn twice and never os (docs/format.md §9). */
    static const int required[] = {F_NK, F_TP, F_DN, F_EM, F_HM};
    for (size_t r = 0; r < sizeof required / sizeof required[0]; r++)
        if (values[required[r]].len == 0) return fail(out, "missing %s", NAMES[required[r]]);

    const deeplink_text *hm = &values[F_HM];
    uint8_t *given = g_scratch; /* hm->len / 2 <= DEEPLINK_MAX / 2 */
    if (hm->len % 2 != 0) return fail(out, "%s", "could not hex-decode hmac");
    for (size_t i = 0; i < hm->len / 2; i++) {
        int h = hexval(hm->ptr[2 * i]), l = hexval(hm->ptr[2 * i + 1]);
        if (h < 0 || l < 0) return fail(out, "%s", "could not hex-decode hmac");
        given[i] = (uint8_t)(h * 16 + l);
    }
    uint8_t key[8], mac[crypto_auth_hmacsha256_BYTES];
    for (int i = 0; i < 8; i++) key[i] = (uint8_t)(state_id1 >> (8 * i));
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, sizeof key);
    static const int macced[] = {F_NK, F_TP, F_DN, F_OS, F_EM};
    for (size_t m = 0; m < sizeof macced / sizeof macced[0]; m++)
        crypto_auth_hmacsha256_update(&st, values[macced[m]].ptr, values[macced[m]].len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
    if (hm->len / 2 != sizeof mac || sodium_memcmp(given, mac, sizeof mac) != 0)
        return fail(out, "%s", "hmac authentication failed");

    out->node_key = values[F_NK];
    out->tlpub = values[F_TP];
    out->device_name = values[F_DN];
    out->os_name = values[F_OS];
    out->email = values[F_EM];
    out->valid = 1;
    return 1;
}

static int parse_prefixed(const deeplink_text *t, const char *prefix, uint8_t out[32]) {
    size_t p = strlen(prefix);
    if (t->len != p + 64 || memcmp(t->ptr, prefix, p) != 0) return 0;
    for (size_t i = 0; i < 32; i++) {
        int h = hexval(t->ptr[p + 2 * i]), l = hexval(t->ptr[p + 2 * i + 1]);
        if (h < 0 || l < 0) return 0;
        out[i] = (uint8_t)(h * 16 + l);
    }
    return 1;
}

int deeplink_parse_node_key(const deeplink_text *t, uint8_t out[32]) {
    return parse_prefixed(t, "nodekey:", out);
}

int deeplink_parse_tlpub(const deeplink_text *t, uint8_t out[32]) {
    return parse_prefixed(t, "nlpub:", out) || parse_prefixed(t, "tlpub:", out);
}
