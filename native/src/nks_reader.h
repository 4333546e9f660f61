/*
 * Bounded reader for node-key signatures in canonical CBOR (docs/format.md §2, §3), internal interface.
 *
 * It accepts exactly the bytes our encoder (and the reference's) would produce for a
 * NodeKeySignature: a map of 1..6 entries with ascending single-byte integer keys 1..6, key 1
 * always present, shortest-form heads, non-empty byte strings, a nested map under key 5, at
 * most TKA_NKS_MAX_LEVELS nested maps and no trailing bytes. Anything else — including bytes
 * the reference's lenient decoder would still accept — is reported as "not canonical", and the
 * caller leaves that signature to the full decoder. So whatever this reader accepts decodes to
 * the same value in the full decoder and re-encodes to the same bytes, which is what lets the
 * signature hashes be taken over slices of the input.
 */
#ifndef TKA_NKS_READER_H
#define TKA_NKS_READER_H

#include <stddef.h>
#include <stdint.h>

/* The decoder's nesting limit (docs/format.md §2): one CBOR nesting level per NKS map. */
#define TKA_NKS_MAX_LEVELS 16

typedef struct {
    const uint8_t *ptr; /* NULL and len 0 when the field is absent */
    size_t len;
} nks_bytes;

/* One map of a rotation chain; level 0 is the outermost. */
typedef struct {
    unsigned kind;          /* SigKind, 0..255 */
    nks_bytes pubkey;       /* key 2 */
    nks_bytes key_id;       /* key 3 */
    nks_bytes signature;    /* key 4 */
    nks_bytes wrapping;     /* key 6 */
    int has_nested;         /* key 5 present (then level + 1 exists) */
    size_t map_start;       /* offsets into the input: this map's bytes */
    size_t map_end;
    size_t sig_entry_start; /* the key-4 entry (key byte through value), if present */
    size_t sig_entry_end;
    unsigned entries;       /* number of map entries */
} nks_level;

typedef struct {
    nks_level levels[TKA_NKS_MAX_LEVELS];
    unsigned count;
} nks_chain;

/* 1 if `data` is a canonical NKS (filling `out`), 0 otherwise. Never reads outside data. */
int nks_read(const uint8_t *data, size_t len, nks_chain *out);

/* BLAKE2s-256 of level `i`'s encoding without its own Signature (docs/format.md §4). */
void nks_sig_hash(const uint8_t *data, const nks_chain *chain, unsigned i, uint8_t out[32]);

/* Where that message lies: the bytes [start, end) of the input with [cut_start, cut_end) (the
 * signature entry) left out and, when something is cut, the first byte replaced by `head`
 * (the map head with one entry fewer). nks_sig_hash hashes it in pieces; the bulk path copies
 * it out and hashes many at once. */
typedef struct {
    size_t start, cut_start, cut_end, end;
    uint8_t head;
} nks_span;

void nks_sig_span(const nks_chain *chain, unsigned i, nks_span *out);

/* The message's length, and the message itself written to out (room for that length). */
size_t nks_span_len(const nks_span *span);
void nks_span_copy(const uint8_t *data, const nks_span *span, uint8_t *out);

#endif
