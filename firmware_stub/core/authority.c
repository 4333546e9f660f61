/*
 * Authority tracking (authority.h, docs/appliance.md §4.1).
 *
 * The device keeps a linear history: the enrolled checkpoint or a later AUM as its oldest entry,
 * then the AUMs of its chain up to the head, each with its hash, kind, its weight at its
 * parent's state and its resulting state (compactly encoded in the arena). AUMs that lost fork
 * choice are not kept: fork choice is a total order (weight, then RemoveKey, then lowest hash)
 * among the children of one parent, so a newcomer only has to beat the child the chain already
 * follows.
 *
 * authority_update runs in three passes over the host's AUMs, and changes `a` only at the end:
 *   1. parse each canonically, hash it, skip those already known (in the history or earlier in
 *      the call), and find its parent: a history entry or an earlier AUM of the call;
 *   2. in order, verify each against the state at its parent and apply it (the reference's
 *      Inform: any failure refuses the whole call); a state is kept, encoded, only while later
 *      AUMs of the call still name it as parent, so a long linear chain needs one;
 *   3. walk from the oldest history entry choosing, at each AUM, the preferred child among the
 *      next history entry and the call's AUMs naming it; then replay the states of the new
 *      part of the chain and keep the newest AUTH_HISTORY_MAX entries that fit the arena.
 *
 * Large values are static (the firmware is one thread): not reentrant.
 */
#include "authority.h"

#include <stdio.h>
#include <string.h>

#include "aum_rules.h"
#include "bytes.h"
#include "checks.h"

#define LIVE_ARENA_MAX (160 * 1024) /* states of a call's AUMs that later ones build on */

static tka_aum g_aum;
static auth_state g_state_a, g_state_b;

/* ---- small helpers ---- */

static void hash_text(char out[53], const uint8_t h[32]) { fmt_aum_hash(out, 53, h); }

static int read_aum(tka_span s, tka_aum *out) {
    return s.ptr != NULL && tka_aum_read(s.ptr, s.len, out);
}

static void sig_hash(tka_span s, const tka_aum *aum, uint8_t out[32]) {
    tka_aum_sig_hash(s.ptr, s.len, aum, out);
}

static int history_state(const dev_authority *a, size_t i, auth_state *out) {
    const auth_entry *e = &a->history[i];
    return rules_state_decode(a->arena + e->state_offset, e->state_len, out);
}

void authority_reset(dev_authority *a) {
    a->enrolled = 0;
    a->n_history = 0;
    a->arena_used = 0;
    a->n_tentative = 0;
    memset(&a->head_state, 0, sizeof a->head_state);
    memset(a->history, 0, sizeof a->history);
}

int authority_is_enrolled(const dev_authority *a) { return a->enrolled != 0; }

const uint8_t *authority_head(const dev_authority *a) {
    return a->enrolled && a->n_history > 0 ? a->history[a->n_history - 1].hash : NULL;
}

const auth_state *authority_head_state(const dev_authority *a) {
    return a->enrolled ? &a->head_state : NULL;
}

size_t authority_history_len(const dev_authority *a) { return a->enrolled ? a->n_history : 0; }

const uint8_t *authority_history_hash(const dev_authority *a, size_t i) {
    return a->enrolled && i < a->n_history ? a->history[i].hash : NULL;
}

int authority_state_at(const dev_authority *a, const uint8_t hash[32], auth_state *out,
                       int *where) {
    if (!a->enrolled || a->n_history == 0) return 0;
    if (memcmp(a->history[a->n_history - 1].hash, hash, 32) == 0) {
        *out = a->head_state;
        *where = AUTH_AT_HEAD;
        return 1;
    }
    for (size_t i = a->n_tentative; i-- > 0;) {
        if (memcmp(a->tentative[i].hash, hash, 32) == 0) {
            *out = a->tentative[i].state;
            *where = AUTH_AT_TENTATIVE;
            return 1;
        }
    }
    for (size_t i = a->n_history - 1; i-- > 0;) {
        if (memcmp(a->history[i].hash, hash, 32) == 0) {
            if (!history_state(a, i, out)) return 0;
            *where = AUTH_AT_HISTORY;
            return 1;
        }
    }
    return 0;
}

/* ---- enrollment ---- */

/* Bootstrap's checks (docs/format.md §6): a checkpoint with a state, verified against its own state. */
static int check_enroll(tka_span aum, screen *scr, uint8_t aum_hash[32], uint8_t sighash[32],
                        auth_state *state, dev_error *err) {
    char msg[DEV_ERROR_MESSAGE_MAX], kind[24];
    if (!read_aum(aum, &g_aum))
        return dev_fail(err, DEV_E_INVALID_MESSAGE,
                        "the AUM is not in canonical CBOR (the device reads nothing else)");
    if (g_aum.kind != KIND_CHECKPOINT) {
        rules_kind_name(g_aum.kind, kind, sizeof kind);
        return dev_fail(err, DEV_E_INVALID_MESSAGE,
                        "bootstrap AUMs must be checkpoint messages, got %s", kind);
    }
    if (!g_aum.has_state)
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "bootstrap AUM is missing state");
    if (!rules_static_validate(&g_aum, msg, sizeof msg))
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "invalid: %s", msg);
    if (!rules_state_from_aum(&g_aum.state, state, msg, sizeof msg))
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "%s", msg);
    sig_hash(aum, &g_aum, sighash);
    if (!rules_verify(state, &g_aum, sighash, 1, 1, msg, sizeof msg))
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "%s", msg);
    tka_aum_hash(aum.ptr, aum.len, aum_hash);
    if (scr != NULL) {
        char text[160];
        screen_reset(scr);
        screen_line(scr, "Enroll in this tailnet-lock authority?");
        hash_text(text, aum_hash);
        screen_line(scr, "Checkpoint: %s", text);
        if (g_aum.prev_is_null) {
            screen_line(scr, "Parent: none (the genesis)");
        } else {
            uint8_t prev[32] = {0};
            memcpy(prev, g_aum.prev.ptr, g_aum.prev.len < 32 ? g_aum.prev.len : 32);
            hash_text(text, prev);
            screen_line(scr, "Parent: %s", text);
        }
        screen_line(scr, "Trusted keys: %u", (unsigned)state->n_keys);
        for (size_t i = 0; i < state->n_keys; i++) {
            const auth_key *k = &state->keys[i];
            rules_fmt_key(text, sizeof text, k->public_key, k->public_len, k->public_is_null);
            screen_line(scr, "  %s votes %u", text, (unsigned)k->votes);
        }
        screen_line(scr, "Disablement values: %u", (unsigned)state->n_disablement);
        screen_line(scr, "StateID1: %llu", (unsigned long long)state->state_id1);
        screen_line(scr, "StateID2: %llu", (unsigned long long)state->state_id2);
        for (size_t i = 0; i < g_aum.n_signatures; i++) {
            rules_fmt_key(text, sizeof text, g_aum.signatures[i].key_id.ptr, 32, 0);
            screen_line(scr, "Signed by %s", text);
        }
        screen_line(scr, "Compare the checkpoint with `tka log` on a node you trust.");
    }
    return DEV_OK;
}

int authority_check_enroll(tka_span aum, screen *scr, uint8_t aum_hash[32], uint8_t sighash[32],
                           dev_error *err) {
    return check_enroll(aum, scr, aum_hash, sighash, &g_state_a, err);
}

int authority_enroll(dev_authority *a, tka_span aum, dev_error *err) {
    uint8_t h[32], s[32];
    int rc = check_enroll(aum, NULL, h, s, &g_state_a, err);
    if (rc != DEV_OK) return rc;
    size_t n = rules_state_encode(&g_state_a, a->arena, sizeof a->arena);
    if (n == 0) return dev_fail(err, DEV_E_TOO_LARGE, "the checkpoint's state does not fit");
    a->enrolled = 1;
    a->n_history = 1;
    memset(&a->history[0], 0, sizeof a->history[0]);
    memcpy(a->history[0].hash, h, 32);
    a->history[0].kind = KIND_CHECKPOINT;
    a->history[0].weight = 0;
    a->history[0].state_offset = 0;
    a->history[0].state_len = (uint32_t)n;
    a->arena_used = n;
    a->head_state = g_state_a;
    a->n_tentative = 0;
    return DEV_OK;
}

/* ---- updates ---- */

enum { PARENT_HISTORY = 0, PARENT_BATCH = 1 };

typedef struct {
    uint8_t hash[32];
    int skip;              /* already known: ignored, never verified (as the reference) */
    int parent_kind;
    size_t parent;         /* index into the history or the call */
    uint8_t kind;
    uint64_t weight;       /* at the parent's state */
    unsigned children;     /* later AUMs of the call naming it, not yet verified */
    int has_state;         /* its resulting state is in the live arena */
    size_t state_offset, state_len;
} batch_node;

static batch_node g_nodes[AUTH_UPDATE_MAX];
static uint8_t g_live[LIVE_ARENA_MAX];
static size_t g_live_used;
static size_t g_chain[AUTH_UPDATE_MAX];          /* the call's AUMs on the new chain */
static auth_entry g_new_history[AUTH_HISTORY_MAX];
static uint8_t g_new_arena[AUTH_ARENA_MAX];

/* Keeps node i's state (in g_state_b) while later AUMs need it; compacts when full. */
static int live_store(size_t i, size_t n, const auth_state *s) {
    size_t need = rules_state_encoded_len(s);
    if (LIVE_ARENA_MAX - g_live_used < need) {
        size_t w = 0; /* allocation order is index order: compacting keeps it */
        for (size_t j = 0; j < n; j++) {
            if (!g_nodes[j].has_state) continue;
            memmove(g_live + w, g_live + g_nodes[j].state_offset, g_nodes[j].state_len);
            g_nodes[j].state_offset = w;
            w += g_nodes[j].state_len;
        }
        g_live_used = w;
        if (LIVE_ARENA_MAX - g_live_used < need) return 0;
    }
    rules_state_encode(s, g_live + g_live_used, need);
    g_nodes[i].has_state = 1;
    g_nodes[i].state_offset = g_live_used;
    g_nodes[i].state_len = need;
    g_live_used += need;
    return 1;
}

static void live_free(size_t i) {
    batch_node *b = &g_nodes[i];
    if (!b->has_state) return;
    b->has_state = 0;
    if (b->state_offset + b->state_len == g_live_used) g_live_used = b->state_offset;
}

static int find_in_history(const dev_authority *a, const uint8_t *h, size_t *at) {
    for (size_t i = a->n_history; i-- > 0;) {
        if (memcmp(a->history[i].hash, h, 32) == 0) {
            *at = i;
            return 1;
        }
    }
    return 0;
}

static int find_in_batch(size_t before, const uint8_t *h, size_t *at) {
    for (size_t j = before; j-- > 0;) {
        if (!g_nodes[j].skip && memcmp(g_nodes[j].hash, h, 32) == 0) {
            *at = j;
            return 1;
        }
    }
    return 0;
}

int authority_update(dev_authority *a, const tka_span *aums, size_t n, unsigned *applied,
                     unsigned *ignored, dev_error *err) {
    char msg[DEV_ERROR_MESSAGE_MAX], text[53];
    if (applied != NULL) *applied = 0;
    if (ignored != NULL) *ignored = 0;
    if (!a->enrolled) return dev_fail(err, DEV_E_BAD_STATE, "not enrolled in an authority");
    if (n == 0) return dev_fail(err, DEV_E_INVALID_MESSAGE, "inform called with empty slice");
    if (n > AUTH_UPDATE_MAX)
        return dev_fail(err, DEV_E_TOO_LARGE, "%zu AUMs in one update; the device takes at most %d",
                        n, AUTH_UPDATE_MAX);

    /* Pass 1: parse, hash, find parents. */
    for (size_t i = 0; i < n; i++) {
        batch_node *b = &g_nodes[i];
        memset(b, 0, sizeof *b);
        if (!read_aum(aums[i], &g_aum))
            return dev_fail(err, DEV_E_INVALID_MESSAGE,
                            "update %zu: not in canonical CBOR (the device reads nothing else)", i);
        tka_aum_hash(aums[i].ptr, aums[i].len, b->hash);
        b->kind = (uint8_t)g_aum.kind;
        size_t at;
        if (find_in_history(a, b->hash, &at) || find_in_batch(i, b->hash, &at)) {
            b->skip = 1;
            continue;
        }
        if (!rules_has_parent(&g_aum))
            return dev_fail(err, DEV_E_INVALID_MESSAGE, "update %zu: missing parent", i);
        uint8_t parent[32];
        rules_parent_hash(&g_aum, parent);
        if (find_in_history(a, parent, &at)) {
            b->parent_kind = PARENT_HISTORY;
            b->parent = at;
        } else if (find_in_batch(i, parent, &at)) {
            b->parent_kind = PARENT_BATCH;
            b->parent = at;
            g_nodes[at].children++;
        } else {
            hash_text(text, parent);
            return dev_fail(err, DEV_E_STALE_AUTHORITY,
                            "update %zu: its parent %s is not in the device's history: feed the "
                            "AUMs before it, or re-enroll",
                            i, text);
        }
    }

    /* Pass 2: verify and apply in order, against the state at each parent. */
    g_live_used = 0;
    for (size_t i = 0; i < n; i++) {
        batch_node *b = &g_nodes[i];
        if (b->skip) continue;
        read_aum(aums[i], &g_aum);
        int ok = b->parent_kind == PARENT_HISTORY
                     ? history_state(a, b->parent, &g_state_a)
                     : rules_state_decode(g_live + g_nodes[b->parent].state_offset,
                                          g_nodes[b->parent].state_len, &g_state_a);
        if (!ok) return dev_fail(err, DEV_E_STORAGE, "update %zu: a kept state is corrupt", i);
        uint8_t sh[32];
        sig_hash(aums[i], &g_aum, sh);
        if (!rules_verify(&g_state_a, &g_aum, sh, 0, 1, msg, sizeof msg))
            return dev_fail(err, DEV_E_INVALID_MESSAGE, "update %zu invalid: %s", i, msg);
        b->weight = rules_weight(&g_state_a, &g_aum);
        const uint8_t *parent_hash = b->parent_kind == PARENT_HISTORY
                                         ? a->history[b->parent].hash
                                         : g_nodes[b->parent].hash;
        if (!rules_apply(&g_state_a, parent_hash, &g_aum, &g_state_b, msg, sizeof msg))
            return dev_fail(err, DEV_E_INVALID_MESSAGE, "update %zu cannot be applied: %s", i, msg);
        if (b->parent_kind == PARENT_BATCH && --g_nodes[b->parent].children == 0)
            live_free(b->parent);
        if (b->children > 0 && !live_store(i, n, &g_state_b))
            return dev_fail(err, DEV_E_TOO_LARGE,
                            "update %zu: the states this update builds on do not fit the "
                            "device's memory; feed fewer AUMs at a time",
                            i);
    }

    /* Pass 3: fork choice from the oldest history entry. */
    size_t on_history = 1, k = 0; /* history entries, then g_chain[0..k) */
    int cur_batch = 0;
    size_t cur = 0;
    for (;;) {
        int best_batch = -1;
        size_t best = 0;
        uint64_t bw = 0;
        unsigned bk = 0;
        const uint8_t *bh = NULL;
        if (!cur_batch && cur + 1 < a->n_history) {
            best_batch = 0;
            best = cur + 1;
            bw = a->history[best].weight;
            bk = a->history[best].kind;
            bh = a->history[best].hash;
        }
        for (size_t j = 0; j < n; j++) {
            const batch_node *b = &g_nodes[j];
            if (b->skip || b->parent != cur || b->parent_kind != (cur_batch ? PARENT_BATCH
                                                                            : PARENT_HISTORY))
                continue;
            if (best_batch < 0 || rules_fork_prefers(b->weight, b->kind, b->hash, bw, bk, bh)) {
                best_batch = 1;
                best = j;
                bw = b->weight;
                bk = b->kind;
                bh = b->hash;
            }
        }
        if (best_batch < 0) break;
        if (best_batch == 0) {
            on_history++;
        } else {
            g_chain[k++] = best;
            cur_batch = 1;
        }
        cur = best;
    }

    if (k > 0) {
        /* Sizes of the new part's states, by replay from the fork point. */
        auth_state *s = &g_state_a, *t = &g_state_b;
        if (!history_state(a, on_history - 1, s))
            return dev_fail(err, DEV_E_STORAGE, "a kept state is corrupt");
        size_t total_len = on_history + k;
        size_t keep_from = total_len, count = 0, bytes = 0;
        /* Newest first: the new part, then the kept history. */
        static size_t sizes[AUTH_UPDATE_MAX];
        for (size_t j = 0; j < k; j++) {
            read_aum(aums[g_chain[j]], &g_aum);
            const uint8_t *ph = j == 0 ? a->history[on_history - 1].hash : g_nodes[g_chain[j - 1]].hash;
            if (!rules_apply(s, ph, &g_aum, t, msg, sizeof msg))
                return dev_fail(err, DEV_E_INVALID_MESSAGE, "replay failed: %s", msg);
            sizes[j] = rules_state_encoded_len(t);
            auth_state *swap = s;
            s = t;
            t = swap;
        }
        for (size_t p = total_len; p-- > 0;) {
            size_t sz = p >= on_history ? sizes[p - on_history] : a->history[p].state_len;
            if (count == AUTH_HISTORY_MAX || bytes + sz > AUTH_ARENA_MAX) break;
            count++;
            bytes += sz;
            keep_from = p;
        }
        if (count == 0)
            return dev_fail(err, DEV_E_TOO_LARGE, "the new head's state does not fit the device");
        /* Build the new history and arena. */
        size_t w = 0, e = 0;
        for (size_t p = keep_from; p < on_history; p++) {
            const auth_entry *old = &a->history[p];
            g_new_history[e] = *old;
            g_new_history[e].state_offset = (uint32_t)w;
            memcpy(g_new_arena + w, a->arena + old->state_offset, old->state_len);
            w += old->state_len;
            e++;
        }
        s = &g_state_a;
        t = &g_state_b;
        history_state(a, on_history - 1, s);
        for (size_t j = 0; j < k; j++) {
            read_aum(aums[g_chain[j]], &g_aum);
            const uint8_t *ph = j == 0 ? a->history[on_history - 1].hash : g_nodes[g_chain[j - 1]].hash;
            rules_apply(s, ph, &g_aum, t, msg, sizeof msg);
            auth_state *swap = s;
            s = t;
            t = swap;
            if (on_history + j < keep_from) continue;
            const batch_node *b = &g_nodes[g_chain[j]];
            auth_entry *ne = &g_new_history[e++];
            memset(ne, 0, sizeof *ne);
            memcpy(ne->hash, b->hash, 32);
            ne->kind = b->kind;
            ne->weight = b->weight;
            ne->state_offset = (uint32_t)w;
            ne->state_len = (uint32_t)rules_state_encode(s, g_new_arena + w, AUTH_ARENA_MAX - w);
            w += ne->state_len;
        }
        /* Commit: nothing below can fail. */
        memcpy(a->history, g_new_history, e * sizeof g_new_history[0]);
        a->n_history = e;
        memcpy(a->arena, g_new_arena, w);
        a->arena_used = w;
        a->head_state = *s;
    }
    a->n_tentative = 0;
    if (applied != NULL) *applied = (unsigned)k;
    if (ignored != NULL) *ignored = (unsigned)(n - k);
    return DEV_OK;
}

/* ---- AUMs signed this session ---- */

int authority_note_signed_aum(dev_authority *a, tka_span aum, const uint8_t key_public[32],
                              const uint8_t signature[64], dev_error *err) {
    char msg[DEV_ERROR_MESSAGE_MAX];
    if (!a->enrolled) return dev_fail(err, DEV_E_BAD_STATE, "not enrolled in an authority");
    if (!read_aum(aum, &g_aum))
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "the AUM is not in canonical CBOR");
    if (!rules_has_parent(&g_aum)) return DEV_OK; /* a genesis: not on top of anything */
    uint8_t parent[32];
    rules_parent_hash(&g_aum, parent);
    int where;
    if (!authority_state_at(a, parent, &g_state_a, &where) || where == AUTH_AT_HISTORY)
        return DEV_OK; /* not on top of the head: nothing later builds on it */
    uint8_t h[32];
    rules_hash_with_signature(aum.ptr, aum.len, &g_aum, key_public, signature, h);
    for (size_t i = 0; i < a->n_tentative; i++)
        if (memcmp(a->tentative[i].hash, h, 32) == 0) return DEV_OK;
    if (a->n_tentative >= AUTH_TENTATIVE_MAX)
        return dev_fail(err, DEV_E_TOO_LARGE,
                        "the device remembers at most %d AUMs signed in one session; feed them "
                        "with authority_update",
                        AUTH_TENTATIVE_MAX);
    if (!rules_apply(&g_state_a, parent, &g_aum, &g_state_b, msg, sizeof msg))
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "%s", msg);
    auth_tentative *t = &a->tentative[a->n_tentative++];
    memcpy(t->hash, h, 32);
    t->state = g_state_b;
    return DEV_OK;
}

void authority_drop_tentative(dev_authority *a) { a->n_tentative = 0; }

/* ---- persistence ---- */

#define SER_MAGIC "TKAA"
#define SER_VERSION 1
#define SER_HEADER (4 + 1 + 1 + 2 + 4)
#define SER_ENTRY (32 + 1 + 8 + 4 + 4)

size_t authority_serialized_max(void) {
    return SER_HEADER + (size_t)AUTH_HISTORY_MAX * SER_ENTRY + AUTH_ARENA_MAX;
}

int authority_serialize(const dev_authority *a, uint8_t *out, size_t cap, size_t *len) {
    size_t n_history = a->enrolled ? a->n_history : 0, arena = a->enrolled ? a->arena_used : 0;
    size_t need = SER_HEADER + n_history * SER_ENTRY + arena;
    *len = 0;
    if (cap < need) return DEV_E_TOO_LARGE;
    memcpy(out, SER_MAGIC, 4);
    out[4] = SER_VERSION;
    out[5] = a->enrolled ? 1 : 0;
    put_le(out + 6, n_history, 2);
    put_le(out + 8, arena, 4);
    size_t w = SER_HEADER;
    for (size_t i = 0; i < n_history; i++) {
        const auth_entry *e = &a->history[i];
        memcpy(out + w, e->hash, 32);
        out[w + 32] = e->kind;
        put_le(out + w + 33, e->weight, 8);
        put_le(out + w + 41, e->state_offset, 4);
        put_le(out + w + 45, e->state_len, 4);
        w += SER_ENTRY;
    }
    memcpy(out + w, a->arena, arena);
    *len = w + arena;
    return DEV_OK;
}

int authority_deserialize(dev_authority *a, const uint8_t *in, size_t len, dev_error *err) {
    authority_reset(a);
    if (len < SER_HEADER || memcmp(in, SER_MAGIC, 4) != 0 || in[4] != SER_VERSION || in[5] > 1)
        return dev_fail(err, DEV_E_STORAGE, "the stored authority has an unknown format");
    size_t n_history = (size_t)get_le(in + 6, 2), arena = (size_t)get_le(in + 8, 4);
    int enrolled = in[5];
    if (n_history > AUTH_HISTORY_MAX || arena > AUTH_ARENA_MAX ||
        (enrolled ? n_history == 0 : (n_history != 0 || arena != 0)) ||
        len != SER_HEADER + n_history * SER_ENTRY + arena)
        return dev_fail(err, DEV_E_STORAGE, "the stored authority is corrupt");
    size_t r = SER_HEADER;
    const uint8_t *arena_in = in + SER_HEADER + n_history * SER_ENTRY;
    for (size_t i = 0; i < n_history; i++, r += SER_ENTRY) {
        auth_entry *e = &a->history[i];
        memcpy(e->hash, in + r, 32);
        e->kind = in[r + 32];
        e->weight = get_le(in + r + 33, 8);
        e->state_offset = (uint32_t)get_le(in + r + 41, 4);
        e->state_len = (uint32_t)get_le(in + r + 45, 4);
        if (e->state_offset > arena || e->state_len > arena - e->state_offset ||
            !rules_state_decode(arena_in + e->state_offset, e->state_len, &g_state_a)) {
            authority_reset(a);
            return dev_fail(err, DEV_E_STORAGE, "the stored authority is corrupt");
        }
    }
    memcpy(a->arena, arena_in, arena);
    a->arena_used = arena;
    a->n_history = n_history;
    if (enrolled) {
        history_state(a, n_history - 1, &a->head_state);
        a->enrolled = 1;
    }
    return DEV_OK;
}
