/*
 * The tailnet-lock rules on the device's own state representation (internal to authority.c and
 * checks.c): static validation (docs/format.md §5), verifying an AUM against the state at its parent
 * (docs/format.md §6, ZIP-215 against the key's public bytes from that state), applying it (docs/format.md §6), weight
 * and fork choice (docs/format.md §6, §8), and the compact encoding of states kept in the history arena
 * and the flash blob. Error texts are the reference's (verifier/validate.py, machine.py), so a
 * refusal reads like `tailscale lock`'s; `msg` receives them (cap >= DEV_ERROR_MESSAGE_MAX).
 *
 * Not reentrant where noted: large scratch values are static (the firmware is one thread).
 */
#ifndef FW_AUM_RULES_H
#define FW_AUM_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "aum_reader.h"
#include "authority.h"

#define RULES_MAX_KEY_VOTES 4096
#define RULES_MAX_META_BYTES 512
#define RULES_MSG_MAX 200 /* leaves room for the "update N invalid: " prefixes */

enum { KIND_ADD_KEY = 1, KIND_REMOVE_KEY = 2, KIND_NO_OP = 3, KIND_UPDATE_KEY = 4,
       KIND_CHECKPOINT = 5 };

/* The reference's names: "add-key" …, "AUM?<N>" for unknown kinds; key kinds "25519" … */
void rules_kind_name(unsigned kind, char *out, size_t cap);
void rules_key_kind_name(unsigned kind, char *out, size_t cap);

/* Static validation (docs/format.md §5); 1 if valid, else 0 with the reference's text (no prefix). */
int rules_static_validate(const tka_aum *aum, char *msg, size_t cap);

/* Index of the first key whose public bytes (null read as empty) equal id, or -1 (GetKey). */
int rules_find_key(const auth_state *s, const uint8_t *id, size_t len);

/* aumVerify (docs/format.md §6) against `parent` (for a genesis: the AUM's own state). `require_signed` = 0
 * skips "unsigned AUM" (an AUM the device is about to sign). 1 if valid, else 0 and msg. */
int rules_verify(const auth_state *parent, const tka_aum *aum, const uint8_t sighash[32],
                 int genesis, int require_signed, char *msg, size_t cap);

/* applyVerifiedAUM (docs/format.md §6): *out = the state after `aum`, applied to `parent` whose hash is
 * `parent_hash` (NULL for a genesis: nothing to match). Also refuses (0) what the device cannot
 * hold: more than AUTH_MAX_KEYS keys or a public key longer than AUTH_PUBLIC_MAX. */
int rules_apply(const auth_state *parent, const uint8_t *parent_hash, const tka_aum *aum,
                auth_state *out, char *msg, size_t cap);

/* The parent as the reference's Parent() reads it: 0 if PrevAUMHash is null or empty (no
 * parent), else 1 and its bytes left-aligned in 32 (cut or zero-padded). */
static inline int rules_has_parent(const tka_aum *aum) {
    return !aum->prev_is_null && aum->prev.len > 0;
}
void rules_parent_hash(const tka_aum *aum, uint8_t out[32]);

/* A checkpoint's state in the device's form (the state of a genesis); 0 and msg when a key
 * does not fit. The state must have passed static validation. */
int rules_state_from_aum(const tka_aum_state *st, auth_state *out, char *msg, size_t cap);

/* Weight (docs/format.md §6): votes of the distinct keys of `s` that signed `aum`. */
uint64_t rules_weight(const auth_state *s, const tka_aum *aum);

/* Fork choice (docs/format.md §8): 1 if (wa, ka, ha) is preferred over (wb, kb, hb). */
int rules_fork_prefers(uint64_t wa, unsigned ka, const uint8_t ha[32], uint64_t wb, unsigned kb,
                       const uint8_t hb[32]);

/* Hash of the AUM `data` (read into `aum`) with one more signature {key, sig} appended. */
void rules_hash_with_signature(const uint8_t *data, size_t len, const tka_aum *aum,
                               const uint8_t key[32], const uint8_t sig[64], uint8_t out[32]);

/* The compact state encoding: little-endian counts and IDs, disablement values, then per key
 * flags (bit 0: public is null), public length, kind, votes (16 bits), metadata bytes (16
 * bits) and the public bytes. */
size_t rules_state_encoded_len(const auth_state *s);
size_t rules_state_encode(const auth_state *s, uint8_t *out, size_t cap); /* 0 if cap short */
int rules_state_decode(const uint8_t *in, size_t len, auth_state *out);   /* 1 if well formed */

/* Where authority_state_at found a hash (authority.c). */
enum { AUTH_AT_HEAD = 0, AUTH_AT_TENTATIVE = 1, AUTH_AT_HISTORY = 2 };

/* The state after the AUM `hash` if the device knows it: the head, an AUM signed this session
 * (tentative, newest first) or an older history entry. 1 and *out, *where; 0 if unknown. */
int authority_state_at(const dev_authority *a, const uint8_t hash[32], auth_state *out,
                       int *where);

/* "tlpub:" + lower-case hex of any number of bytes, "(null)" for a null key. */
void rules_fmt_key(char *out, size_t cap, const uint8_t *bytes, size_t len, int is_null);

#endif
