/*
 * tka_native.h — the one public header of the tka-signer C core.
 *
 * native/build.py feeds this file to cffi: it drops every preprocessor line except
 * `#define NAME <integer>` and everything inside `#ifdef __cplusplus` blocks, so keep the
 * declarations plain C that cffi's cdef parser understands (no macros in declarations).
 *
 * Return conventions: verification functions return 1 for a valid signature, 0 for an
 * invalid one (including wrong lengths and undecodable points); negative values are errors
 * of the call itself (bad rule, allocation failure).
 */
#ifndef TKA_NATIVE_H
#define TKA_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Ed25519 verification (native/src/ed25519_verify.c, batch.c) ---- */

/* Verification rules (docs/format.md §4). */
#define TKA_RULE_ZIP215 0        /* ed25519consensus: cofactored, lenient A and R, S < L */
#define TKA_RULE_COFACTORLESS 1  /* Go crypto/ed25519: S < L, lenient A, R byte-compared */

#define TKA_ERR_RULE -1          /* unknown rule */
#define TKA_ERR_NOMEM -2         /* allocation failed */
#define TKA_ERR_RANDOM -3        /* the OS CSPRNG failed */
#define TKA_ERR_ARG -4           /* a NULL array where n > 0 */

int tka_verify(const uint8_t *pk, size_t pk_len, const uint8_t *msg, size_t msg_len,
               const uint8_t *sig, size_t sig_len, int rule);

/* One batch entry: pk is 32 bytes, sig is 64 bytes, msg is msg_len bytes. */
typedef struct {
    const uint8_t *pk;
    const uint8_t *msg;
    size_t msg_len;
    const uint8_t *sig;
} tka_batch_item;

/* ZIP-215 batch verification. Writes verdicts[i] = 1 (valid) or 0 (invalid) for every item
 * (exactly what tka_verify(..., TKA_RULE_ZIP215) would say). Returns the number of valid
 * items (capped at INT32_MAX), or a negative TKA_ERR_* (then verdicts are unspecified).
 * Inputs above 65,536 items are verified in independent chunks of that size. Thread-safe;
 * no global state besides a table built once. */
int tka_verify_batch_zip215(const tka_batch_item *items, size_t n, uint8_t *verdicts);

/* The same batch over packed inputs (what the Python wrapper uses, to avoid building one
 * struct per signature): pks is n*32 bytes, sigs n*64 bytes, message i is
 * msgs[msg_offsets[i] .. msg_offsets[i+1]) (msg_offsets has n+1 entries). */
int tka_verify_batch_zip215_packed(const uint8_t *pks, const uint8_t *sigs, const uint8_t *msgs,
                                   const size_t *msg_offsets, size_t n, uint8_t *verdicts);

/* Each item verified on its own under `rule`: verdicts[i] is exactly what tka_verify would
 * say (1 or 0), for either rule, with no batching equation. Work is shared across items: keys
 * and R are decoded eight at a time, and for the cofactorless rule one field inversion serves
 * 64 items. The way to check many rotation (cofactorless) signatures. Returns the number of
 * valid items (capped at INT32_MAX) or a negative TKA_ERR_*. */
int tka_verify_each(const tka_batch_item *items, size_t n, uint8_t *verdicts, int rule);
int tka_verify_each_packed(const uint8_t *pks, const uint8_t *sigs, const uint8_t *msgs,
                           const size_t *msg_offsets, size_t n, uint8_t *verdicts, int rule);

/* Which optional code paths this CPU runs (bit set = in use). TKA_NATIVE_NO_IFMA=1 in the
 * environment (read once, at first use) turns the IFMA path off, TKA_NATIVE_NO_AVX2=1 the
 * AVX2 one (which runs where IFMA is absent or off). */
#define TKA_FEATURE_IFMA 1       /* AVX-512 IFMA lanes: square roots, Pippenger buckets, [S]B - [k]A */
#define TKA_FEATURE_AVX2 2       /* AVX2 four-lane field: single verification, square roots */
int tka_native_features(void);

/* ---- Node-key signatures in bulk (native/src/peers.c, nks_reader.c) ---- */

/* Per-peer outcome codes of tka_verify_peers. Each names the step of NodeKeyAuthorized
 * (docs/format.md §7) that failed; `depth` is the chain level it failed at (0 = outermost) and
 * `aux` carries the number the reference's message includes (a kind or a length). */
#define TKA_PEER_OK 0
#define TKA_PEER_UNCHECKED 1                /* not canonical CBOR: use the full decoder */
#define TKA_PEER_CREDENTIAL_ALONE 2         /* a credential cannot authorize a node */
#define TKA_PEER_NO_KEY_ID 3                /* direct/credential level without KeyID */
#define TKA_PEER_ROTATION_NO_NESTED 4       /* rotation level without a nested signature */
#define TKA_PEER_UNHANDLED_KIND 5           /* aux = the SigKind */
#define TKA_PEER_KEY_NOT_FOUND 6            /* the authorizing key is not trusted */
#define TKA_PEER_WRONG_NODE_KEY 7           /* Pubkey does not name the expected node key */
#define TKA_PEER_MISSING_ROTATION_KEY 8     /* no WrappingPubkey under a rotation */
#define TKA_PEER_BAD_ROTATION_KEY_LENGTH 9  /* aux = its length */
#define TKA_PEER_BAD_SIGNATURE 10           /* the signature equation failed */
#define TKA_PEER_NESTED_PUBKEY_PREFIX 11    /* nested Pubkey lacks the np prefix */
#define TKA_PEER_NESTED_PUBKEY_LENGTH 12    /* aux = the nested Pubkey's length */
#define TKA_PEER_CANNOT_NEST 13             /* aux = the kind that must not nest */

typedef struct {
    uint8_t code;
    uint8_t depth;
    uint16_t reserved;
    uint32_t aux;
} tka_peer_result;

/* NodeKeyAuthorized for n peers against one authority state. node_keys is n*32 bytes; the
 * NKS of peer i is nks[nks_offsets[i] .. nks_offsets[i+1]) (n+1 offsets); trusted_keys is
 * n_trusted*32 bytes of the state's Ed25519 keys. Direct and credential levels are checked
 * under ZIP-215 in one randomized batch, rotation levels under the cofactorless rule.
 * `threads` = 0 uses every online CPU; inputs are split in chunks of at least 4,096 peers.
 * Returns the number authorized, or a negative TKA_ERR_*. Peers marked TKA_PEER_UNCHECKED
 * were not judged: their bytes are not canonical, so only the full decoder can. */
int tka_verify_peers(const uint8_t *node_keys, const uint8_t *nks, const size_t *nks_offsets,
                     size_t n, const uint8_t *trusted_keys, size_t n_trusted, unsigned threads,
                     tka_peer_result *results);

/* What tka_verify_peers_packed says about each peer's bytes besides the verdict. For an NKS
 * the canonical reader read (flags has TKA_PEER_INFO_READ): its outer SigKind, and the
 * shallowest level whose WrappingPubkey is 32 bytes naming a small-order point (the all-zero
 * key included: anyone can sign a rotation on top of that level), with that level's kind and
 * TKA_PEER_INFO_WEAK_ZERO if the key is all-zero; weak_depth is TKA_PEER_NO_WEAK if none. */
#define TKA_PEER_NO_WEAK 255
#define TKA_PEER_INFO_READ 1
#define TKA_PEER_INFO_WEAK_ZERO 2

typedef struct {
    uint8_t kind;
    uint8_t weak_depth;
    uint8_t weak_kind;
    uint8_t flags;
} tka_peer_info;

/* tka_verify_peers over the same caller-packed buffers (read in place, nothing copied), also
 * filling info[i] for every peer when info is not NULL (in the same pass and threads). */
int tka_verify_peers_packed(const uint8_t *node_keys, const uint8_t *nks,
                            const size_t *nks_offsets, size_t n, const uint8_t *trusted_keys,
                            size_t n_trusted, unsigned threads, tka_peer_result *results,
                            tka_peer_info *info);

/* Lines of a peers file (`tka audit --peers`), the usual ones only: `nodekey:<64 hex digits>`,
 * blanks (spaces, tabs), a signature in hex (an even number of hex digits) or in canonical
 * standard base64, optionally blanks, `#` and a name (blanks around it dropped); blank and
 * `#` lines are skipped. `text` must hold no line break but `\n`. The caller sizes the buffers:
 * max_peers node keys (32 bytes each), sig_ends, name_ends and lines; sigs_cap and names_cap
 * bytes. Reading stops at the end, when max_peers are read or a buffer is full, or at the first
 * other line (left to the caller's general rule); the return value is how many bytes of
 * `text` were consumed, always whole lines. Out: n_peers, n_lines (lines consumed), each
 * peer's line number (line_base + 1 for the first line of `text`), the decoded signatures and
 * the names concatenated, with their end offsets (plus sig_base and name_base: where the
 * caller's own buffers are, so the offsets can be appended to them as they are). */
typedef struct {
    uint8_t *node_keys;
    uint8_t *sigs;
    size_t sigs_cap;
    size_t *sig_ends;
    uint8_t *names;
    size_t names_cap;
    size_t *name_ends;
    size_t *lines;
    size_t max_peers;
    size_t sig_base;
    size_t name_base;
    size_t line_base;
    size_t n_peers;
    size_t n_lines;
    size_t sigs_used;
    size_t names_used;
    size_t full; /* out: 1 if reading stopped because a buffer was full */
} tka_peer_lines;

size_t tka_read_peer_lines(const uint8_t *text, size_t len, tka_peer_lines *out);

/* BLAKE2s-256 (native/src/blake2s.c), exposed for tests. */
void tka_blake2s(const uint8_t *data, size_t len, uint8_t out[32]);

/* 1 if `data` is a node-key signature in canonical form the bulk path can judge (fuzzing
 * and differential tests use it), else 0. */
int tka_nks_is_canonical(const uint8_t *data, size_t len);

/* ---- AUMs (native/src/aum_reader.c) ---- */

/* 1 if `data` is an AUM in the canonical form the bounded reader accepts (exactly the bytes
 * the canonical encoder produces for some AUM model, within the reader's bounds), else 0.
 * Fuzzing and differential tests use it; nothing is allocated. */
int tka_aum_is_canonical(const uint8_t *data, size_t len);

/* For a canonical AUM: writes its hash (BLAKE2s-256 of the whole encoding) and its sighash
 * (of the encoding without Signatures) and returns 1; returns 0 (writing nothing) otherwise. */
int tka_aum_hashes(const uint8_t *data, size_t len, uint8_t hash[32], uint8_t sig_hash[32]);

/* ---- Public-key classes (native/src/pk_class.c) ---- */

/* What a 32-byte Ed25519 public key is, checked in this order (the first that applies):
 * not a point (no x for the encoded y), small order ([8]A is the identity; includes the
 * all-zero key and the non-canonical encodings of small-order points), a non-canonical
 * encoding (y >= p, or x = 0 with the sign bit set; no such encoding names a prime-order
 * point, so these are all mixed-order points), mixed order (a torsion component: [L]A is not
 * the identity), else OK: the canonical encoding of a point of prime order L, what honest key
 * generation produces. */
#define TKA_PK_OK 0
#define TKA_PK_NOT_POINT 1
#define TKA_PK_SMALL_ORDER 2
#define TKA_PK_MIXED_ORDER 3
#define TKA_PK_NONCANONICAL 4

int tka_public_key_class(const uint8_t pk[32]);

/* SHA-512 (native/src/sha512.c), exposed for tests. */
void tka_sha512(const uint8_t *data, size_t len, uint8_t out[64]);

#ifdef __cplusplus
}
#endif

#endif /* TKA_NATIVE_H */
