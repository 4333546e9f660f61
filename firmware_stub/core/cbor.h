/*
 * The CBOR of calls (docs/appliance.md §2): a strict reader and a small writer.
 *
 * cbor_check() accepts one item that fills the buffer exactly and uses only what calls may use:
 * unsigned and negative integers that fit in 64 bits, byte and text strings (text valid UTF-8),
 * arrays, maps with unique text keys (at most CBOR_MAP_MAX entries), false, true and null;
 * definite lengths only, no tags, no floats, no other simple values, nesting at most
 * CBOR_DEPTH_MAX. The accessors below read items of a checked buffer and never fail
 * structurally; they report a wrong type instead.
 */
#ifndef FW_CBOR_H
#define FW_CBOR_H

#include <stddef.h>
#include <stdint.h>

#define CBOR_DEPTH_MAX 16
#define CBOR_MAP_MAX 64

enum {
    CB_UINT, CB_NINT, CB_BYTES, CB_TEXT, CB_ARRAY, CB_MAP, CB_FALSE, CB_TRUE, CB_NULL,
    CB_INVALID,
};

typedef struct {
    const uint8_t *p; /* the item's encoding, head included */
    size_t len;
} cbor_item;

/* 0 if buf is one acceptable item; else -1 and a static reason ("a tag", "invalid UTF-8", …). */
int cbor_check(const uint8_t *buf, size_t len, const char **why);

/* Accessors on items of a checked buffer. */
int cbor_type(cbor_item it);
int cbor_uint(cbor_item it, uint64_t *v);                          /* 0, or -1: not a uint */
int cbor_bytes(cbor_item it, const uint8_t **p, size_t *n);        /* byte string */
int cbor_text(cbor_item it, const uint8_t **p, size_t *n);         /* text string */
int cbor_bool(cbor_item it, int *v);
size_t cbor_count(cbor_item it); /* entries of an array or map, 0 for others */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    size_t left;
} cbor_iter;

/* Iterates an array's items or a map's key/value pairs (returns 1 per element, 0 at the end). */
int cbor_iter_init(cbor_item container, cbor_iter *it);            /* -1 if not a container */
int cbor_next(cbor_iter *it, cbor_item *item);
int cbor_next_pair(cbor_iter *it, cbor_item *key, cbor_item *value);

/* A map's value under a text key: 1 found, 0 not (or not a map). */
int cbor_map_find(cbor_item map, const char *key, cbor_item *value);
/* 1 if the item is a text string equal to `s`. */
int cbor_text_is(cbor_item it, const char *s);

/* 1 if text is valid UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). */
int utf8_valid(const uint8_t *p, size_t n);

/* Writer: shortest heads, definite lengths. Overflow is sticky and checked once at the end. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int overflow;
} cbor_writer;

void cw_init(cbor_writer *w, uint8_t *buf, size_t cap);
void cw_uint(cbor_writer *w, uint64_t v);
void cw_bytes(cbor_writer *w, const uint8_t *p, size_t n);
void cw_text(cbor_writer *w, const char *s);
void cw_textn(cbor_writer *w, const char *s, size_t n);
void cw_array(cbor_writer *w, size_t n);
void cw_map(cbor_writer *w, size_t n);
void cw_bool(cbor_writer *w, int v);
void cw_null(cbor_writer *w);
void cw_raw(cbor_writer *w, const uint8_t *p, size_t n); /* an already encoded item */

#endif
