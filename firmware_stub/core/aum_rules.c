/* The tailnet-lock rules on the device's state (see aum_rules.h). Each function follows the
 * reference's order of checks, so the first failing rule and its text are the reference's. */
#include "aum_rules.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "blake2s.h"
#include "bytes.h"
#include "tka_native.h"

#define MAX_DISABLEMENT 32
#define DISABLEMENT_LEN 32
#define MAX_STATE_KEYS 512

void rules_kind_name(unsigned kind, char *out, size_t cap) {
    static const char *const names[] = {"invalid", "add-key", "remove-key", "no-op",
                                        "update-key", "checkpoint"};
    if (kind < sizeof names / sizeof names[0]) snprintf(out, cap, "%s", names[kind]);
    else snprintf(out, cap, "AUM?<%u>", kind);
}

void rules_key_kind_name(unsigned kind, char *out, size_t cap) {
    if (kind == 0) snprintf(out, cap, "invalid");
    else if (kind == 1) snprintf(out, cap, "25519");
    else snprintf(out, cap, "Key?<%u>", kind);
}

void rules_fmt_key(char *out, size_t cap, const uint8_t *bytes, size_t len, int is_null) {
    if (cap == 0) return;
    if (is_null) {
        snprintf(out, cap, "(null)");
        return;
    }
    static const char digits[] = "0123456789abcdef";
    size_t w = (size_t)snprintf(out, cap, "tlpub:");
    for (size_t i = 0; i < len && w + 2 < cap; i++) {
        out[w++] = digits[bytes[i] >> 4];
        out[w++] = digits[bytes[i] & 15];
    }
    out[w < cap ? w : cap - 1] = '\0';
}

/* Key validity (docs/format.md §5) in the reference's order. */
static int key_valid(uint64_t votes, size_t meta_bytes, unsigned kind, char *msg, size_t cap) {
    if (votes > RULES_MAX_KEY_VOTES) {
        snprintf(msg, cap, "excessive key weight: %" PRIu64 " > %d", votes, RULES_MAX_KEY_VOTES);
        return 0;
    }
    if (votes == 0) {
        snprintf(msg, cap, "key votes must be non-zero");
        return 0;
    }
    if (meta_bytes > RULES_MAX_META_BYTES) {
        snprintf(msg, cap, "key metadata too big (%zu > %d)", meta_bytes, RULES_MAX_META_BYTES);
        return 0;
    }
    if (kind != 1) {
        char name[24];
        rules_key_kind_name(kind, name, sizeof name);
        snprintf(msg, cap, "unrecognized key kind: %s", name);
        return 0;
    }
    return 1;
}

static int aum_key_valid(const tka_aum_key *k, char *msg, size_t cap) {
    return key_valid(k->votes, k->meta.total_bytes, k->kind, msg, cap);
}

static int spans_equal(const tka_span *a, const tka_span *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

/* KeyIDs as the reference compares them: `Public or b""`, so null equals empty. */
static int publics_equal(const tka_aum_key *a, const tka_aum_key *b) {
    return spans_equal(&a->public_key, &b->public_key);
}

/* Checkpoint state validation (docs/format.md §5), without the "checkpoint state: " prefix. */
static int state_valid(const tka_aum_state *st, char *msg, size_t cap) {
    if (!st->last_hash_is_null) {
        snprintf(msg, cap, "cannot specify a parent AUM");
        return 0;
    }
    if (st->n_disablement == 0) {
        snprintf(msg, cap, "at least one disablement secret required");
        return 0;
    }
    if (st->n_disablement > MAX_DISABLEMENT) { /* the reader's bound makes this unreachable */
        snprintf(msg, cap, "too many disablement values (%zu, max %d)", st->n_disablement,
                 MAX_DISABLEMENT);
        return 0;
    }
    /* The reference's order: each value's length, then its first duplicate anywhere in the
     * list (so "disablement[0]: duplicates disablement[4]"). */
    for (size_t i = 0; i < st->n_disablement; i++) {
        if (st->disablement[i].len != DISABLEMENT_LEN) {
            snprintf(msg, cap, "disablement[%zu]: invalid length (got %zu, want %d)", i,
                     st->disablement[i].len, DISABLEMENT_LEN);
            return 0;
        }
        for (size_t j = 0; j < st->n_disablement; j++) {
            if (j != i && spans_equal(&st->disablement[j], &st->disablement[i])) {
                snprintf(msg, cap, "disablement[%zu]: duplicates disablement[%zu]", i, j);
                return 0;
            }
        }
    }
    if (st->n_keys == 0) {
        snprintf(msg, cap, "at least one key is required");
        return 0;
    }
    if (st->n_keys > MAX_STATE_KEYS) {
        snprintf(msg, cap, "too many keys (%zu, max %d)", st->n_keys, MAX_STATE_KEYS);
        return 0;
    }
    /* Every key's validity first, then duplicates the same way as the values. */
    for (size_t i = 0; i < st->n_keys; i++) {
        char why[RULES_MSG_MAX];
        if (!aum_key_valid(&st->keys[i], why, sizeof why)) {
            snprintf(msg, cap, "key[%zu]: %s", i, why);
            return 0;
        }
    }
    for (size_t i = 0; i < st->n_keys; i++) {
        for (size_t j = 0; j < st->n_keys; j++) {
            if (j != i && publics_equal(&st->keys[j], &st->keys[i])) {
                snprintf(msg, cap, "key[%zu]: duplicates key[%zu]", i, j);
                return 0;
            }
        }
    }
    return 1;
}

int rules_static_validate(const tka_aum *aum, char *msg, size_t cap) {
    if (aum->has_key && !aum_key_valid(&aum->key, msg, cap)) return 0;
    if (!aum->prev_is_null && aum->prev.len == 0) {
        snprintf(msg, cap, "absent parent must be represented by a nil slice");
        return 0;
    }
    for (size_t i = 0; i < aum->n_signatures; i++) {
        if (aum->signatures[i].key_id.len != 32 || aum->signatures[i].signature.len != 64) {
            snprintf(msg, cap, "signature %zu has missing keyID or malformed signature", i);
            return 0;
        }
    }
    if (aum->has_state) {
        char why[RULES_MSG_MAX];
        if (!state_valid(&aum->state, why, sizeof why)) {
            snprintf(msg, cap, "checkpoint state: %s", why);
            return 0;
        }
    }
    /* Present means non-nil in the decoded model: KeyID and Meta are omitted when empty, so
     * in canonical bytes "present" is "non-empty". */
    int has_key_id = aum->key_id.ptr != NULL, has_meta = aum->meta.encoded.ptr != NULL;
    switch (aum->kind) {
    case KIND_ADD_KEY:
        if (!aum->has_key) {
            snprintf(msg, cap, "AddKey AUMs must contain a key");
            return 0;
        }
        if (has_key_id || aum->has_state || aum->has_votes || has_meta) {
            snprintf(msg, cap, "AddKey AUMs may only specify a Key");
            return 0;
        }
        break;
    case KIND_REMOVE_KEY:
        if (!has_key_id) {
            snprintf(msg, cap, "RemoveKey AUMs must specify a key ID");
            return 0;
        }
        if (aum->has_key || aum->has_state || aum->has_votes || has_meta) {
            snprintf(msg, cap, "RemoveKey AUMs may only specify a KeyID");
            return 0;
        }
        break;
    case KIND_UPDATE_KEY:
        if (!has_key_id) {
            snprintf(msg, cap, "UpdateKey AUMs must specify a key ID");
            return 0;
        }
        if (!has_meta && !aum->has_votes) {
            snprintf(msg, cap, "UpdateKey AUMs must contain an update to votes or key metadata");
            return 0;
        }
        if (aum->has_key || aum->has_state) {
            snprintf(msg, cap, "UpdateKey AUMs may only specify KeyID, Votes, and Meta");
            return 0;
        }
        break;
    case KIND_CHECKPOINT:
        if (!aum->has_state) {
            snprintf(msg, cap, "Checkpoint AUMs must specify the state");
            return 0;
        }
        if (has_key_id || aum->has_key || aum->has_votes || has_meta) {
            snprintf(msg, cap, "Checkpoint AUMs may only specify State");
            return 0;
        }
        break;
    default:
        break; /* NoOp and unknown kinds: no restrictions */
    }
    return 1;
}

int rules_find_key(const auth_state *s, const uint8_t *id, size_t len) {
    /* Every key of a validated state is Ed25519 (kind 1), so the reference's stop at a key of
     * another kind never happens here; a null Public compares as empty. */
    for (size_t i = 0; i < s->n_keys; i++) {
        const auth_key *k = &s->keys[i];
        if (k->public_len != len) continue;
        if (len == 0 || memcmp(k->public_key, id, len) == 0) return (int)i;
    }
    return -1;
}

int rules_verify(const auth_state *parent, const tka_aum *aum, const uint8_t sighash[32],
                 int genesis, int require_signed, char *msg, size_t cap) {
    char why[RULES_MSG_MAX];
    if (!rules_static_validate(aum, why, sizeof why)) {
        snprintf(msg, cap, "invalid: %s", why);
        return 0;
    }
    /* The parent itself is matched by the caller, which looks the state up by that hash. */
    if (!genesis && aum->prev_is_null) {
        snprintf(msg, cap, "aum has no parent");
        return 0;
    }
    if (require_signed && aum->n_signatures == 0) {
        snprintf(msg, cap, "unsigned AUM");
        return 0;
    }
    for (size_t i = 0; i < aum->n_signatures; i++) {
        const tka_aum_signature *sig = &aum->signatures[i];
        int k = rules_find_key(parent, sig->key_id.ptr, sig->key_id.len);
        if (k < 0) {
            snprintf(msg, cap, "bad keyID on signature %zu: key not found", i);
            return 0;
        }
        const auth_key *key = &parent->keys[k];
        if (tka_verify(key->public_key, key->public_len, sighash, 32, sig->signature.ptr,
                       sig->signature.len, TKA_RULE_ZIP215) != 1) {
            snprintf(msg, cap, "signature %zu: invalid signature", i);
            return 0;
        }
    }
    if (aum->kind == KIND_REMOVE_KEY && parent->n_keys == 1 && parent->keys[0].kind == 1 &&
        parent->keys[0].public_len == aum->key_id.len &&
        memcmp(parent->keys[0].public_key, aum->key_id.ptr, aum->key_id.len) == 0) {
        snprintf(msg, cap, "cannot remove the last key in the state");
        return 0;
    }
    return 1;
}

/* One key of an AUM in the device's form; 0 if its public key is longer than it keeps. */
static int key_from_aum(const tka_aum_key *k, auth_key *out) {
    if (k->public_key.len > AUTH_PUBLIC_MAX) return 0;
    memset(out, 0, sizeof *out);
    out->public_is_null = (uint8_t)(k->public_is_null != 0);
    out->public_len = (uint8_t)k->public_key.len;
    if (k->public_key.len) memcpy(out->public_key, k->public_key.ptr, k->public_key.len);
    out->kind = (uint8_t)k->kind;
    /* Validated keys have votes in 1..4096 and at most 512 metadata bytes. */
    out->votes = (uint16_t)(k->votes > UINT16_MAX ? UINT16_MAX : k->votes);
    out->meta_bytes = (uint16_t)(k->meta.total_bytes > UINT16_MAX ? UINT16_MAX
                                                                   : k->meta.total_bytes);
    return 1;
}

static void too_long(char *msg, size_t cap, const char *what, size_t len) {
    snprintf(msg, cap, "%s has a %zu-byte public key; the device keeps at most %d bytes", what, len,
             AUTH_PUBLIC_MAX);
}

int rules_state_from_aum(const tka_aum_state *st, auth_state *out, char *msg, size_t cap) {
    if (st->n_keys > AUTH_MAX_KEYS || st->n_disablement > TKA_AUM_MAX_DISABLEMENT) {
        snprintf(msg, cap, "the state has more keys or disablement values than the device holds");
        return 0;
    }
    out->n_keys = 0;
    for (size_t i = 0; i < st->n_keys; i++) {
        if (!key_from_aum(&st->keys[i], &out->keys[i])) {
            char what[40];
            snprintf(what, sizeof what, "key[%zu]", i);
            too_long(msg, cap, what, st->keys[i].public_key.len);
            return 0;
        }
    }
    out->n_keys = (uint16_t)st->n_keys;
    out->n_disablement = (uint8_t)st->n_disablement;
    for (size_t i = 0; i < st->n_disablement; i++) {
        memset(out->disablement[i], 0, 32);
        size_t n = st->disablement[i].len < 32 ? st->disablement[i].len : 32;
        if (n) memcpy(out->disablement[i], st->disablement[i].ptr, n);
    }
    out->state_id1 = st->state_id1;
    out->state_id2 = st->state_id2;
    return 1;
}

static void copy_state(auth_state *out, const auth_state *in) {
    out->n_keys = in->n_keys;
    memcpy(out->keys, in->keys, in->n_keys * sizeof in->keys[0]);
    out->n_disablement = in->n_disablement;
    memcpy(out->disablement, in->disablement, in->n_disablement * sizeof in->disablement[0]);
    out->state_id1 = in->state_id1;
    out->state_id2 = in->state_id2;
}

int rules_apply(const auth_state *parent, const uint8_t *parent_hash, const tka_aum *aum,
                auth_state *out, char *msg, size_t cap) {
    /* The raw PrevAUMHash against the state's hash: walks read parents left-aligned in 32
     * bytes, only this step compares the bytes as they are. */
    if (parent_hash != NULL &&
        (aum->prev_is_null || aum->prev.len != 32 || memcmp(aum->prev.ptr, parent_hash, 32) != 0)) {
        snprintf(msg, cap, "parent AUMHash mismatch");
        return 0;
    }
    if (aum->kind == KIND_CHECKPOINT) {
        if (!aum->has_state) {
            snprintf(msg, cap, "Checkpoint AUMs must specify the state");
            return 0;
        }
        if (aum->state.state_id1 != parent->state_id1 || aum->state.state_id2 != parent->state_id2) {
            snprintf(msg, cap, "checkpointed state has an incorrect stateID");
            return 0;
        }
        return rules_state_from_aum(&aum->state, out, msg, cap);
    }
    if (out != parent) copy_state(out, parent);
    switch (aum->kind) {
    case KIND_ADD_KEY: {
        if (!aum->has_key) {
            snprintf(msg, cap, "AddKey AUMs must contain a key");
            return 0;
        }
        /* The reference looks up `Public or b""`: a null public finds an empty one. */
        if (rules_find_key(parent, aum->key.public_key.ptr, aum->key.public_key.len) >= 0) {
            snprintf(msg, cap, "key already exists");
            return 0;
        }
        if (out->n_keys >= AUTH_MAX_KEYS) {
            snprintf(msg, cap, "the state already holds %d keys, the most the device keeps",
                     AUTH_MAX_KEYS);
            return 0;
        }
        if (!key_from_aum(&aum->key, &out->keys[out->n_keys])) {
            too_long(msg, cap, "the key", aum->key.public_key.len);
            return 0;
        }
        out->n_keys++;
        return 1;
    }
    case KIND_UPDATE_KEY: {
        int i = rules_find_key(parent, aum->key_id.ptr, aum->key_id.len);
        if (i < 0) {
            snprintf(msg, cap, "key not found");
            return 0;
        }
        auth_key *k = &out->keys[i];
        uint64_t votes = aum->has_votes ? aum->votes : k->votes;
        size_t meta_bytes = aum->meta.encoded.ptr != NULL ? aum->meta.total_bytes : k->meta_bytes;
        char why[RULES_MSG_MAX];
        if (!key_valid(votes, meta_bytes, k->kind, why, sizeof why)) {
            snprintf(msg, cap, "updated key fails validation: %s", why);
            return 0;
        }
        k->votes = (uint16_t)votes;
        k->meta_bytes = (uint16_t)meta_bytes;
        return 1;
    }
    case KIND_REMOVE_KEY: {
        int i = rules_find_key(parent, aum->key_id.ptr, aum->key_id.len);
        if (i < 0) {
            snprintf(msg, cap, "key not found");
            return 0;
        }
        memmove(&out->keys[i], &out->keys[i + 1],
                (size_t)(out->n_keys - (size_t)i - 1) * sizeof out->keys[0]);
        out->n_keys--;
        return 1;
    }
    default:
        return 1; /* NoOp and unknown kinds only move the head */
    }
}

uint64_t rules_weight(const auth_state *s, const tka_aum *aum) {
    uint64_t total = 0;
    for (size_t i = 0; i < aum->n_signatures; i++) {
        const tka_span *id = &aum->signatures[i].key_id;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = spans_equal(&aum->signatures[j].key_id, id);
        if (seen) continue;
        int k = rules_find_key(s, id->ptr, id->len);
        if (k >= 0) total += s->keys[k].votes;
    }
    return total;
}

int rules_fork_prefers(uint64_t wa, unsigned ka, const uint8_t ha[32], uint64_t wb, unsigned kb,
                       const uint8_t hb[32]) {
    if (wa != wb) return wa > wb;
    if (ka != kb) {
        if (ka == KIND_REMOVE_KEY) return 1;
        if (kb == KIND_REMOVE_KEY) return 0;
    }
    return memcmp(ha, hb, 32) < 0;
}

void rules_parent_hash(const tka_aum *aum, uint8_t out[32]) {
    memset(out, 0, 32);
    if (!aum->prev_is_null && aum->prev.len > 0)
        memcpy(out, aum->prev.ptr, aum->prev.len < 32 ? aum->prev.len : 32);
}

void rules_hash_with_signature(const uint8_t *data, size_t len, const tka_aum *aum,
                               const uint8_t key[32], const uint8_t sig[64], uint8_t out[32]) {
    uint8_t entry[1 + 2 + 32 + 1 + 2 + 64 + 1];
    size_t e = 0;
    entry[e++] = 0xa2;
    entry[e++] = 0x01;
    entry[e++] = 0x58;
    entry[e++] = 0x20;
    memcpy(entry + e, key, 32);
    e += 32;
    entry[e++] = 0x02;
    entry[e++] = 0x58;
    entry[e++] = 0x40;
    memcpy(entry + e, sig, 64);
    e += 64;
    blake2s_ctx ctx;
    blake2s_init(&ctx);
    if (aum->n_signatures == 0) {
        uint8_t head = (uint8_t)(0xa0u | (aum->entries + 1)), tail[2] = {0x17, 0x81};
        blake2s_update(&ctx, &head, 1);
        blake2s_update(&ctx, data + 1, len - 1);
        blake2s_update(&ctx, tail, 2);
    } else {
        size_t array_at = aum->sigs_entry_start + 1;
        size_t old_head = aum->n_signatures < 24 ? 1 : 2;
        size_t n = aum->n_signatures + 1;
        uint8_t head[2];
        size_t head_len;
        if (n < 24) {
            head[0] = (uint8_t)(0x80u | n);
            head_len = 1;
        } else {
            head[0] = 0x98;
            head[1] = (uint8_t)n;
            head_len = 2;
        }
        blake2s_update(&ctx, data, array_at);
        blake2s_update(&ctx, head, head_len);
        blake2s_update(&ctx, data + array_at + old_head, len - array_at - old_head);
    }
    blake2s_update(&ctx, entry, e);
    blake2s_final(&ctx, out);
}

/* ---- compact state encoding ---- */

#define STATE_HEADER (2 + 1 + 8 + 8)
#define KEY_HEADER (1 + 1 + 1 + 2 + 2)

size_t rules_state_encoded_len(const auth_state *s) {
    size_t n = STATE_HEADER + (size_t)s->n_disablement * 32;
    for (size_t i = 0; i < s->n_keys; i++) n += KEY_HEADER + s->keys[i].public_len;
    return n;
}

size_t rules_state_encode(const auth_state *s, uint8_t *out, size_t cap) {
    size_t need = rules_state_encoded_len(s);
    if (need > cap) return 0;
    size_t w = 0;
    put_le(out + w, s->n_keys, 2);
    w += 2;
    out[w++] = s->n_disablement;
    put_le(out + w, s->state_id1, 8);
    w += 8;
    put_le(out + w, s->state_id2, 8);
    w += 8;
    for (size_t i = 0; i < s->n_disablement; i++, w += 32) memcpy(out + w, s->disablement[i], 32);
    for (size_t i = 0; i < s->n_keys; i++) {
        const auth_key *k = &s->keys[i];
        out[w++] = k->public_is_null ? 1 : 0;
        out[w++] = k->public_len;
        out[w++] = k->kind;
        put_le(out + w, k->votes, 2);
        w += 2;
        put_le(out + w, k->meta_bytes, 2);
        w += 2;
        memcpy(out + w, k->public_key, k->public_len);
        w += k->public_len;
    }
    return w;
}

int rules_state_decode(const uint8_t *in, size_t len, auth_state *out) {
    if (len < STATE_HEADER) return 0;
    size_t r = 0;
    size_t n_keys = (size_t)get_le(in, 2);
    size_t n_dis = in[2];
    r = 3;
    if (n_keys > AUTH_MAX_KEYS || n_dis > TKA_AUM_MAX_DISABLEMENT) return 0;
    out->state_id1 = get_le(in + r, 8);
    r += 8;
    out->state_id2 = get_le(in + r, 8);
    r += 8;
    if ((len - r) / 32 < n_dis) return 0;
    for (size_t i = 0; i < n_dis; i++, r += 32) memcpy(out->disablement[i], in + r, 32);
    for (size_t i = 0; i < n_keys; i++) {
        if (len - r < KEY_HEADER) return 0;
        auth_key *k = &out->keys[i];
        memset(k, 0, sizeof *k);
        if (in[r] > 1) return 0;
        k->public_is_null = in[r];
        k->public_len = in[r + 1];
        k->kind = in[r + 2];
        k->votes = (uint16_t)get_le(in + r + 3, 2);
        k->meta_bytes = (uint16_t)get_le(in + r + 5, 2);
        r += KEY_HEADER;
        if (k->public_len > AUTH_PUBLIC_MAX || (k->public_is_null && k->public_len != 0) ||
            len - r < k->public_len)
            return 0;
        memcpy(k->public_key, in + r, k->public_len);
        r += k->public_len;
    }
    if (r != len) return 0;
    out->n_keys = (uint16_t)n_keys;
    out->n_disablement = (uint8_t)n_dis;
    return 1;
}
