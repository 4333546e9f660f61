/*
 * Signing deeplinks (docs/format.md §9, verifier/deeplink.py): `tailscale://sign-device/v1/?nk=…&tp=…&
 * dn=…&os=…&em=…&hm=…`, whose HMAC-SHA-256 (keyed by the 8-byte little-endian StateID1, over
 * nk‖tp‖dn‖os‖em) proves that someone who knows the authority's StateID1 made it.
 *
 * Parsing follows the reference's steps and messages: scheme `tailscale` (case-insensitive),
 * host exactly `sign-device`, an escaped path that splits on "/" into exactly three parts with
 * `v1` in the middle, query parameters split on "&" and "=" and form-decoded ("+" is a space,
 * %XX a byte), the first value of each name; nk, tp, dn, em and hm must be non-empty (the
 * reference tests dn where it meant os, so an absent os is accepted and MACed as empty);
 * hm is hex (either case) and must equal the MAC, compared in constant time.
 *
 * Stricter than the reference, on input no generator produces (the link is refused): bytes
 * outside printable ASCII (0x21..0x7e), a ";" in the query, a malformed %-escape, decoded
 * values that are not valid UTF-8, links longer than DEEPLINK_MAX.
 */
#ifndef FW_DEEPLINK_H
#define FW_DEEPLINK_H

#include <stddef.h>
#include <stdint.h>

#define DEEPLINK_MAX 4096

typedef struct {
    const uint8_t *ptr; /* into deeplink_result.buf; not NUL-terminated */
    size_t len;
} deeplink_text;

typedef struct {
    int valid;
    char error[160];         /* why not, when !valid */
    deeplink_text node_key;  /* nk, e.g. "nodekey:…" */
    deeplink_text tlpub;     /* tp */
    deeplink_text device_name, os_name, email;
    uint8_t buf[DEEPLINK_MAX]; /* the decoded values */
} deeplink_result;

/* Validates `url` (len bytes) against `state_id1`; fills *out (valid or not). Returns valid. */
int deeplink_validate(const uint8_t *url, size_t len, uint64_t state_id1, deeplink_result *out);

/* Parses "nodekey:<64 hex>" (either case) into 32 bytes; 1 on success. */
int deeplink_parse_node_key(const deeplink_text *t, uint8_t out[32]);
/* Parses "tlpub:<64 hex>" or "nlpub:<64 hex>" into 32 bytes; 1 on success. */
int deeplink_parse_tlpub(const deeplink_text *t, uint8_t out[32]);

#endif
