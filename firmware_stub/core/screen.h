/*
 * What the device shows the person: a screen of text lines, built on the device from the bytes
 * it is about to sign, and the text forms tailnet lock uses (tlpub:, nodekey:, the short node
 * form of `tka status`, base32 AUM hashes). Text that comes from the host (names, metadata,
 * deeplink fields) goes through screen_untrusted(), which escapes control and invisible
 * characters so it cannot redraw or disguise the screen.
 */
#ifndef FW_SCREEN_H
#define FW_SCREEN_H

#include <stddef.h>
#include <stdint.h>

#define SCREEN_MAX_LINES 64
#define SCREEN_LINE_MAX 200

typedef struct {
    char line[SCREEN_MAX_LINES][SCREEN_LINE_MAX];
    unsigned n;
    int truncated; /* lines were dropped or cut: the last line says so */
} screen;

void screen_reset(screen *s);

/* One line of device-made text (printf-style). */
void screen_line(screen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One line: `label` followed by host-supplied bytes, escaped (see screen_escape). */
void screen_untrusted(screen *s, const char *label, const uint8_t *text, size_t len);

/* Writes `text` into out (NUL-terminated, cut to fit) keeping printable UTF-8 and turning
 * control characters, invisible/bidirectional formatting characters, backslashes and invalid
 * UTF-8 into \xNN or \u{NNNN} escapes. Returns the length written. */
size_t screen_escape(char *out, size_t cap, const uint8_t *text, size_t len);

/* Text forms; each writes a NUL-terminated string into out (cap must be large enough:
 * hex 2n+1, tlpub 71, nodekey 73, short 8, base32 hash 53). */
void fmt_hex(char *out, size_t cap, const uint8_t *bytes, size_t n);
void fmt_tlpub(char *out, size_t cap, const uint8_t public_key[32]);
void fmt_nodekey(char *out, size_t cap, const uint8_t node_key[32]);
void fmt_node_short(char *out, size_t cap, const uint8_t node_key[32]); /* "[abcde]", "" for 0 */
void fmt_aum_hash(char *out, size_t cap, const uint8_t hash[32]);        /* base32, 52 chars */

#endif
