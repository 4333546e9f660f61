/*
 * The tailnet-lock authority the device tracks (docs/appliance.md §4.1): enrolled from a
 * checkpoint the person confirms, then advanced only by AUMs that verify under the reference's
 * rules (static validation, signatures by keys trusted at the parent under ZIP-215, the state
 * machine, fork choice). The device keeps the hashes and states of the most recent part of its
 * chain (the history), enough to judge a revocation that forks from a recent AUM.
 *
 * The struct is complete so that the device can hold it statically; only authority.c and
 * checks.c touch its fields.
 */
#ifndef FW_AUTHORITY_H
#define FW_AUTHORITY_H

#include <stddef.h>
#include <stdint.h>

#include "aum_reader.h"
#include "errors.h"
#include "screen.h"

#define AUTH_MAX_KEYS TKA_AUM_MAX_KEYS
#define AUTH_PUBLIC_MAX 64      /* longer public keys are refused as unsupported */
#define AUTH_HISTORY_MAX 64     /* AUMs of the chain the device remembers */
#define AUTH_ARENA_MAX (96 * 1024) /* encoded states of those AUMs */
#define AUTH_TENTATIVE_MAX 64   /* AUMs signed this session on top of the head */
#define AUTH_UPDATE_MAX 512     /* AUMs in one authority_update call */

typedef struct {
    uint8_t public_key[AUTH_PUBLIC_MAX];
    uint8_t public_len;
    uint8_t public_is_null; /* Public was null (len 0): such a key never matches a KeyID */
    uint8_t kind;
    uint16_t votes;
    uint16_t meta_bytes; /* Σ len(key)+len(value) of its metadata (what validation needs) */
} auth_key;

typedef struct {
    auth_key keys[AUTH_MAX_KEYS]; /* in the reference's order */
    uint16_t n_keys;
    uint8_t disablement[TKA_AUM_MAX_DISABLEMENT][32];
    uint8_t n_disablement;
    uint64_t state_id1;
    uint64_t state_id2;
} auth_state;

typedef struct {
    uint8_t hash[32];
    uint8_t kind;
    uint64_t weight;       /* its weight at its parent's state (fork choice) */
    uint32_t state_offset; /* its resulting state, encoded in the arena */
    uint32_t state_len;
} auth_entry;

typedef struct {
    uint8_t hash[32];      /* hash of the AUM with our signature appended */
    auth_state state;      /* state after it */
} auth_tentative;

typedef struct {
    int enrolled;
    size_t n_history;                    /* oldest first; the last entry is the head */
    auth_entry history[AUTH_HISTORY_MAX];
    size_t arena_used;
    uint8_t arena[AUTH_ARENA_MAX];
    auth_state head_state;               /* decoded state at the head */
    size_t n_tentative;
    auth_tentative tentative[AUTH_TENTATIVE_MAX];
} dev_authority;

void authority_reset(dev_authority *a); /* not enrolled */
int authority_is_enrolled(const dev_authority *a);
const uint8_t *authority_head(const dev_authority *a);          /* NULL when not enrolled */
const auth_state *authority_head_state(const dev_authority *a); /* NULL when not enrolled */
size_t authority_history_len(const dev_authority *a);
const uint8_t *authority_history_hash(const dev_authority *a, size_t i); /* 0 = oldest */

/* Enrollment: checks that `aum` is a checkpoint signed (validly, ZIP-215) by at least one key of
 * its own state and passes static validation; fills the screen the person confirms (hash, keys,
 * votes, disablement values, StateIDs) and its hash. Changes nothing. */
int authority_check_enroll(tka_span aum, screen *scr, uint8_t aum_hash[32], uint8_t sighash[32],
                           dev_error *err);
/* Replaces whatever was enrolled with `aum` (already checked) as the only history entry. */
int authority_enroll(dev_authority *a, tka_span aum, dev_error *err);

/* Feeds AUMs, oldest first (docs/appliance.md §4.1), at most AUTH_UPDATE_MAX. All or nothing:
 * on any error `a` is unchanged (invalid_message with the reference's Inform text; a parent
 * that is neither in the history nor earlier in the call: stale_authority). `applied` counts
 * AUMs now on the chain, `ignored` those already known or that lost fork choice. On success
 * drops tentative AUMs. Not reentrant (static scratch). */
int authority_update(dev_authority *a, const tka_span *aums, size_t n, unsigned *applied,
                     unsigned *ignored, dev_error *err);

/* Persistence inside the sealed flash blob (tentative AUMs are not persisted): "TKAA", version
 * 1, enrolled flag, history entries, then the arena of encoded states; deserialize checks every
 * offset, length and state and leaves `a` reset (storage error) when anything is off. */
size_t authority_serialized_max(void);
int authority_serialize(const dev_authority *a, uint8_t *out, size_t cap, size_t *len);
int authority_deserialize(dev_authority *a, const uint8_t *in, size_t len, dev_error *err);

#endif
