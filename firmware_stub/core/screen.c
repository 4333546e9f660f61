#include "screen.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void screen_reset(screen *s) {
    s->n = 0;
    s->truncated = 0;
}

static char *next_line(screen *s) {
    if (s->n >= SCREEN_MAX_LINES) {
        s->truncated = 1;
        return NULL;
    }
    return s->line[s->n++];
}

static void mark_truncated(screen *s) {
    /* The person must know the screen is incomplete; the last slot says so. */
    s->truncated = 1;
    snprintf(s->line[SCREEN_MAX_LINES - 1], SCREEN_LINE_MAX, "(more not shown)");
}

void screen_line(screen *s, const char *fmt, ...) {
    char *line = next_line(s);
    if (line == NULL) {
        mark_truncated(s);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, SCREEN_LINE_MAX, fmt, ap);
    va_end(ap);
    if (n >= SCREEN_LINE_MAX) {
        /* Cut lines end in "…" so a cut hex string is never mistaken for a whole one. */
        memcpy(line + SCREEN_LINE_MAX - 4, "...", 4);
    }
}

/* Length of the UTF-8 sequence at p (1..4) and its code point, or 0 if invalid. */
static size_t utf8_decode(const uint8_t *p, size_t avail, uint32_t *cp) {
    uint8_t b = p[0];
    size_t n;
    uint32_t min;
    if (b < 0x80) {
        *cp = b;
        return 1;
    } else if ((b & 0xe0) == 0xc0) {
        n = 2, min = 0x80, *cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
        n = 3, min = 0x800, *cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
        n = 4, min = 0x10000, *cp = b & 0x07;
    } else {
        return 0;
    }
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        *cp = (*cp << 6) | (p[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) return 0;
    return n;
}

static int invisible(uint32_t cp) {
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == 0xad ||
           (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
           (cp >= 0x2060 && cp <= 0x2069) || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb);
}

size_t screen_escape(char *out, size_t cap, const uint8_t *text, size_t len) {
    size_t w = 0;
    if (cap == 0) return 0;
    for (size_t i = 0; i < len;) {
        char esc[16];
        const char *piece;
        size_t piece_len;
        uint32_t cp;
        size_t n = utf8_decode(text + i, len - i, &cp);
        if (n == 0) {
            snprintf(esc, sizeof esc, "\\x%02x", text[i]);
            piece = esc, piece_len = strlen(esc), n = 1;
        } else if (cp == '\\') {
            piece = "\\\\", piece_len = 2;
        } else if (invisible(cp)) {
            if (cp < 0x100) snprintf(esc, sizeof esc, "\\x%02x", (unsigned)cp);
            else snprintf(esc, sizeof esc, "\\u{%04x}", (unsigned)cp);
            piece = esc, piece_len = strlen(esc);
        } else {
            piece = (const char *)text + i, piece_len = n;
        }
        if (w + piece_len + 1 > cap) break; /* never split an escape or a character */
        memcpy(out + w, piece, piece_len);
        w += piece_len;
        i += n;
    }
    out[w] = '\0';
    return w;
}

void screen_untrusted(screen *s, const char *label, const uint8_t *text, size_t len) {
    char escaped[SCREEN_LINE_MAX];
    size_t label_len = strlen(label);
    if (label_len >= SCREEN_LINE_MAX) label_len = SCREEN_LINE_MAX - 1;
    size_t w = screen_escape(escaped, SCREEN_LINE_MAX - label_len, text, len);
    (void)w;
    screen_line(s, "%.*s%s", (int)label_len, label, escaped);
}

void fmt_hex(char *out, size_t cap, const uint8_t *bytes, size_t n) {
    static const char digits[] = "0123456789abcdef";
    size_t w = 0;
    for (size_t i = 0; i < n && w + 2 < cap; i++) {
        out[w++] = digits[bytes[i] >> 4];
        out[w++] = digits[bytes[i] & 15];
    }
    if (cap > 0) out[w] = '\0';
}

static void prefixed_hex(char *out, size_t cap, const char *prefix, const uint8_t *b, size_t n) {
    size_t p = strlen(prefix);
    if (cap <= p) {
        if (cap > 0) out[0] = '\0';
        return;
    }
    memcpy(out, prefix, p);
    fmt_hex(out + p, cap - p, b, n);
}

void fmt_tlpub(char *out, size_t cap, const uint8_t public_key[32]) {
    prefixed_hex(out, cap, "tlpub:", public_key, 32);
}

void fmt_nodekey(char *out, size_t cap, const uint8_t node_key[32]) {
    prefixed_hex(out, cap, "nodekey:", node_key, 32);
}

void fmt_node_short(char *out, size_t cap, const uint8_t node_key[32]) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (cap < 8) {
        if (cap > 0) out[0] = '\0';
        return;
    }
    int zero = 1;
    for (int i = 0; i < 32; i++) zero &= node_key[i] == 0;
    if (zero) {
        out[0] = '\0'; /* the reference renders the zero key as the empty string */
        return;
    }
    /* The first five base64 characters cover the first 30 bits (bytes 0..3). */
    uint32_t v = ((uint32_t)node_key[0] << 24) | ((uint32_t)node_key[1] << 16) |
                 ((uint32_t)node_key[2] << 8) | node_key[3];
    out[0] = '[';
    for (int i = 0; i < 5; i++) out[1 + i] = b64[(v >> (26 - 6 * i)) & 63];
    out[6] = ']';
    out[7] = '\0';
}

void fmt_aum_hash(char *out, size_t cap, const uint8_t hash[32]) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    size_t w = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (int i = 0; i < 32; i++) {
        acc = (acc << 8) | hash[i];
        bits += 8;
        while (bits >= 5 && w + 1 < cap) {
            out[w++] = alphabet[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0 && w + 1 < cap) out[w++] = alphabet[(acc << (5 - bits)) & 31];
    if (cap > 0) out[w] = '\0';
}
