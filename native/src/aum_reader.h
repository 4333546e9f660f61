/*
 * Bounded reader for AUMs in canonical CBOR (spec: AUM, Key, State, Signature maps), internal
 * interface shared by the verifier's C core and the appliance firmware.
 *
 * It accepts exactly the bytes the canonical encoder produces for *some* AUM model (valid or not
 * under static validation): shortest heads, definite lengths, integer struct keys in ascending
 * order with the reference's presence rules (always-present fields present, omitempty fields
 * omitted when empty), metadata maps with unique text keys in canonical order and valid UTF-8,
 * no tags, no floats, no trailing bytes, and at most the bounds below. Anything else is "not
 * canonical" (0): the firmware refuses it and the verifier leaves it to its full decoder. So
 * whatever this reader accepts decodes to one model in the full decoder and re-encodes to the
 * same bytes, which lets the hash and sighash be taken over (slices of) the input.
 *
 * Validation (spec "static validation") is NOT done here: a zero-length parent, a key of kind
 * 7 or 5,000 votes read fine; callers validate.
 */
#ifndef TKA_AUM_READER_H
#define TKA_AUM_READER_H

#include <stddef.h>
#include <stdint.h>

/* Bounds beyond the reference's (which are larger); inputs beyond them are "not canonical". */
#define TKA_AUM_MAX_KEYS 512          /* keys in a checkpoint state (the reference's limit) */
#define TKA_AUM_MAX_DISABLEMENT 32    /* disablement values (the reference's limit) */
#define TKA_AUM_MAX_SIGNATURES 64     /* signatures on one AUM */
#define TKA_AUM_MAX_META_ENTRIES 64   /* entries in one metadata map */

typedef struct {
    const uint8_t *ptr; /* NULL when absent or CBOR null */
    size_t len;
} tka_span;

/* A metadata map (Key.Meta, AUM.Meta): the encoded map and what validation needs of it. */
typedef struct {
    tka_span encoded;   /* the whole map including its head; ptr NULL when absent */
    size_t entries;
    size_t total_bytes; /* sum over entries of len(key) + len(value), for the 512-byte rule */
} tka_meta;

typedef struct {
    unsigned kind;       /* 0..255 */
    uint64_t votes;
    int public_is_null;  /* Public encoded as null (then public_key.ptr is NULL) */
    tka_span public_key; /* may be empty (len 0, ptr non-NULL) when encoded as 0x40 */
    tka_meta meta;       /* key 12, omitted when empty */
} tka_aum_key;

typedef struct {
    int last_hash_is_null;           /* LastAUMHash null (required inside a checkpoint) */
    tka_span last_hash;
    int disablement_is_null;
    size_t n_disablement;
    tka_span disablement[TKA_AUM_MAX_DISABLEMENT];
    int keys_is_null;
    size_t n_keys;
    tka_aum_key keys[TKA_AUM_MAX_KEYS];
    uint64_t state_id1;              /* 0 when omitted */
    uint64_t state_id2;
} tka_aum_state;

typedef struct {
    int key_id_is_null;
    tka_span key_id;
    int signature_is_null;
    tka_span signature;
} tka_aum_signature;

typedef struct {
    unsigned kind;                 /* MessageKind 0..255 */
    int prev_is_null;              /* PrevAUMHash null: a parentless (genesis) AUM */
    tka_span prev;                 /* may be empty (0x40): present-but-empty, invalid later */
    int has_key;
    tka_aum_key key;               /* key 3 */
    tka_span key_id;               /* key 4, ptr NULL when omitted */
    int has_state;
    tka_aum_state state;           /* key 5 */
    int has_votes;
    uint64_t votes;                /* key 6 */
    tka_meta meta;                 /* key 7, omitted when empty */
    size_t n_signatures;
    tka_aum_signature signatures[TKA_AUM_MAX_SIGNATURES]; /* key 23 */
    /* Offsets into the input, for hashing without re-encoding. */
    size_t entries;                /* entries of the top-level map */
    size_t sigs_entry_start;       /* the key-23 entry (key byte through array end), if present */
} tka_aum;

/* 1 if `data` is a canonical AUM (filling `out`), 0 otherwise. Never reads outside data.
 * `out` is large (a state holds up to 512 keys): callers keep it off small stacks. */
int tka_aum_read(const uint8_t *data, size_t len, tka_aum *out);

/* BLAKE2s-256 of the AUM without its Signatures (the digest every signature covers). */
void tka_aum_sig_hash(const uint8_t *data, size_t len, const tka_aum *aum, uint8_t out[32]);

/* BLAKE2s-256 of the whole AUM: its identity (a canonical input is its own re-encoding). */
void tka_aum_hash(const uint8_t *data, size_t len, uint8_t out[32]);

/* Iterates a metadata map read by tka_aum_read: *pos starts at 0; returns 1 and sets key and
 * value (text, not NUL-terminated) for each entry in order, 0 at the end. */
int tka_meta_next(const tka_meta *meta, size_t *pos, tka_span *key, tka_span *value);

#endif
