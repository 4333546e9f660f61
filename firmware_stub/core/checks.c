/*
 * What the device agrees to sign (checks.h, docs/appliance.md §4.2–4.3). Each check parses the
 * host's bytes with the canonical readers, applies the tailnet-lock rules (aum_rules.c) and the
 * policy against the tracked authority, computes the sighash over the bytes it parsed, and
 * builds the screen. Refusals carry one line; rule violations use the reference's texts.
 *
 * Large values are static (the firmware is one thread): not reentrant.
 */
#include "checks.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "aum_rules.h"
#include "blake2s.h"
#include "deeplink.h"
#include "nks_reader.h"
#include "tka_native.h"

static tka_aum g_aum;
static auth_state g_parent, g_after;
static deeplink_result g_link;

enum { NKS_DIRECT = 1, NKS_ROTATION = 2, NKS_CREDENTIAL = 3 };

static const char *sig_kind_name(unsigned kind, char *buf, size_t cap) {
    static const char *const names[] = {"invalid", "direct", "rotation", "credential"};
    if (kind < 4) return names[kind];
    snprintf(buf, cap, "Sig?<%u>", kind);
    return buf;
}

static void key_text(char out[72], const uint8_t *pk) { fmt_tlpub(out, 72, pk); }

static void signer_line(screen *scr, const char *key_name, const uint8_t key_public[32]) {
    char label[120], pk[72];
    key_text(pk, key_public);
    snprintf(label, sizeof label, "Signing key: %s ", pk);
    screen_untrusted(scr, label, (const uint8_t *)key_name, key_name ? strlen(key_name) : 0);
}

static const char *class_text(int cls) {
    switch (cls) {
    case TKA_PK_NOT_POINT: return "is not a curve point";
    case TKA_PK_SMALL_ORDER: return "has small order";
    case TKA_PK_NONCANONICAL: return "is a non-canonical encoding";
    case TKA_PK_MIXED_ORDER: return "has a small-order component";
    default: return "is fine";
    }
}

/* ---- node-key signatures ---- */

typedef struct {
    unsigned kind;
    uint8_t node_key[32]; /* direct only */
    int has_rotation;
    uint8_t rotation[32];
    uint8_t sighash[32];
} nks_item;

/* The checks every unsigned NKS passes (docs/appliance.md §4.2), without the screen. */
static int check_one_nks(const uint8_t key_public[32], tka_span nks, nks_item *item,
                         const char *where, dev_error *err) {
    nks_chain chain;
    char kind_buf[16], pk[72];
    if (nks.ptr == NULL || !nks_read(nks.ptr, nks.len, &chain))
        return dev_fail(err, DEV_E_INVALID_MESSAGE,
                        "%snode-key signature is not in canonical CBOR", where);
    const nks_level *l = &chain.levels[0];
    item->kind = l->kind;
    if (l->kind != NKS_DIRECT && l->kind != NKS_CREDENTIAL)
        return dev_fail(err, DEV_E_INVALID_MESSAGE,
                        "%sthe device signs direct and credential signatures, not %s", where,
                        sig_kind_name(l->kind, kind_buf, sizeof kind_buf));
    if (l->has_nested)
        return dev_fail(err, DEV_E_INVALID_MESSAGE,
                        "%sinvalid signature: signatures of type %s cannot nest another signature",
                        where, sig_kind_name(l->kind, kind_buf, sizeof kind_buf));
    if (l->signature.ptr != NULL)
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "%sthe node-key signature is already signed",
                        where);
    if (l->key_id.ptr == NULL)
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "%sinvalid signature: no keyID present",
                        where);
    if (l->key_id.len != 32 || memcmp(l->key_id.ptr, key_public, 32) != 0) {
        key_text(pk, key_public);
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "%sits KeyID is not the signing key %s",
                        where, pk);
    }
    if (l->kind == NKS_DIRECT) {
        if (l->pubkey.ptr == NULL)
            return dev_fail(err, DEV_E_INVALID_MESSAGE, "%sa direct signature must name a node key",
                            where);
        if (l->pubkey.len != 34 || l->pubkey.ptr[0] != 'n' || l->pubkey.ptr[1] != 'p')
            return dev_fail(err, DEV_E_INVALID_MESSAGE,
                            "%sits Pubkey is not a node key (34 bytes starting with \"np\")", where);
        memcpy(item->node_key, l->pubkey.ptr + 2, 32);
    } else {
        if (l->pubkey.ptr != NULL)
            return dev_fail(err, DEV_E_INVALID_MESSAGE, "%sa credential names no node key", where);
        if (l->wrapping.ptr == NULL)
            return dev_fail(err, DEV_E_INVALID_MESSAGE, "%sa credential needs a wrapping key",
                            where);
    }
    item->has_rotation = l->wrapping.ptr != NULL;
    if (item->has_rotation) {
        if (l->wrapping.len != 32)
            return dev_fail(err, DEV_E_INVALID_MESSAGE, "%sbad rotation key length: %zu", where,
                            l->wrapping.len);
        memcpy(item->rotation, l->wrapping.ptr, 32);
    }
    nks_sig_hash(nks.ptr, &chain, 0, item->sighash);
    return DEV_OK;
}

/* What needs the authority: head, trust, rotation-key class (docs/appliance.md §4.2, in that order). */
static int check_nks_policy(const dev_authority *a, const uint8_t key_public[32],
                            const uint8_t head[32], const nks_item *item, const char *where,
                            dev_error *err) {
    char pk[72], h1[53], h2[53];
    const uint8_t *ours = authority_head(a);
    if (head == NULL || memcmp(head, ours, 32) != 0) {
        fmt_aum_hash(h2, sizeof h2, ours);
        if (head != NULL) fmt_aum_hash(h1, sizeof h1, head);
        else snprintf(h1, sizeof h1, "(none)");
        return dev_fail(err, DEV_E_STALE_AUTHORITY, "head %s is not the device's head %s", h1, h2);
    }
    if (rules_find_key(&a->head_state, key_public, 32) < 0) {
        key_text(pk, key_public);
        return dev_fail(err, DEV_E_POLICY, "%sthe signing key %s is not trusted at the head",
                        where, pk);
    }
    if (item->has_rotation) {
        int cls = tka_public_key_class(item->rotation);
        if (cls != TKA_PK_OK) {
            int zero = 1;
            for (int i = 0; i < 32; i++) zero &= item->rotation[i] == 0;
            key_text(pk, item->rotation);
            return dev_fail(err, DEV_E_POLICY,
                            "%s%s key %s %s: anyone could forge rotations with it", where,
                            item->kind == NKS_CREDENTIAL ? "the wrapping" : "the rotation", pk,
                            zero ? "is all zero" : class_text(cls));
        }
    }
    return DEV_OK;
}

static int check_deeplink(const dev_authority *a, tka_span link, const nks_item *item,
                          dev_error *err) {
    if (item->kind != NKS_DIRECT)
        return dev_fail(err, DEV_E_INVALID_MESSAGE,
                        "a deeplink names a node, and a credential names none");
    if (!deeplink_validate(link.ptr, link.len, a->head_state.state_id1, &g_link))
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "deeplink: %s", g_link.error);
    uint8_t nk[32], tp[32];
    if (!deeplink_parse_node_key(&g_link.node_key, nk) || memcmp(nk, item->node_key, 32) != 0)
        return dev_fail(err, DEV_E_INVALID_MESSAGE,
                        "the deeplink names another node key than the signature");
    if (!deeplink_parse_tlpub(&g_link.tlpub, tp) || !item->has_rotation ||
        memcmp(tp, item->rotation, 32) != 0)
        return dev_fail(err, DEV_E_INVALID_MESSAGE,
                        "the deeplink names another rotation key than the signature");
    return DEV_OK;
}

static void node_lines(screen *scr, const char *label, const uint8_t node_key[32]) {
    char full[73], short_form[8];
    fmt_nodekey(full, sizeof full, node_key);
    fmt_node_short(short_form, sizeof short_form, node_key);
    screen_line(scr, "%s%s", label, full);
    screen_line(scr, "  short form: %s", short_form);
}

int check_sign_nks(const dev_authority *a, const dev_policy *p, const char *key_name,
                   const uint8_t key_public[32], tka_span nks, const uint8_t head[32],
                   tka_span deeplink, screen *scr, sign_plan *plan, dev_error *err) {
    (void)p;
    nks_item item;
    memset(plan, 0, sizeof *plan);
    if (!authority_is_enrolled(a))
        return dev_fail(err, DEV_E_BAD_STATE, "not enrolled in an authority");
    int rc = check_one_nks(key_public, nks, &item, "", err);
    if (rc == DEV_OK) rc = check_nks_policy(a, key_public, head, &item, "", err);
    if (rc == DEV_OK && deeplink.ptr != NULL) rc = check_deeplink(a, deeplink, &item, err);
    if (rc != DEV_OK) return rc;

    char text[160], short_form[8];
    screen_reset(scr);
    if (item.kind == NKS_DIRECT) {
        screen_line(scr, "Authorize a node (direct node-key signature)");
        node_lines(scr, "Node key: ", item.node_key);
        if (item.has_rotation) {
            key_text(text, item.rotation);
            screen_line(scr, "Rotation key: %s", text);
        } else {
            screen_line(scr, "Rotation key: none (the node cannot rotate its key)");
        }
    } else {
        screen_line(scr, "Issue a credential (pre-signed auth key)");
        key_text(text, item.rotation);
        screen_line(scr, "Wrapping key: %s", text);
        screen_line(scr, "Whoever holds the wrapping key can add nodes to the tailnet.");
    }
    signer_line(scr, key_name, key_public);
    fmt_aum_hash(text, 53, head);
    screen_line(scr, "Head: %s", text);
    if (deeplink.ptr != NULL) {
        screen_line(scr, "Deeplink verified with the authority's StateID1:");
        screen_untrusted(scr, "  Device: ", g_link.device_name.ptr, g_link.device_name.len);
        screen_untrusted(scr, "  OS: ", g_link.os_name.ptr, g_link.os_name.len);
        screen_untrusted(scr, "  Login: ", g_link.email.ptr, g_link.email.len);
    }
    memcpy(plan->sighash, item.sighash, 32);
    if (item.kind == NKS_DIRECT) {
        fmt_node_short(short_form, sizeof short_form, item.node_key);
        fmt_nodekey(text, 73, item.node_key);
        snprintf(plan->summary, sizeof plan->summary, "sign_nks direct %.7s %.72s", short_form, text);
    } else {
        key_text(text, item.rotation);
        snprintf(plan->summary, sizeof plan->summary, "sign_nks credential wrapping %.70s", text);
    }
    return DEV_OK;
}

int check_sign_batch(const dev_authority *a, const dev_policy *p, const char *key_name,
                     const uint8_t key_public[32], const tka_span *items, size_t n,
                     const uint8_t head[32], screen *scr, uint8_t *sighashes, sign_plan *plan,
                     dev_error *err) {
    memset(plan, 0, sizeof *plan);
    if (!authority_is_enrolled(a))
        return dev_fail(err, DEV_E_BAD_STATE, "not enrolled in an authority");
    if (n == 0) return dev_fail(err, DEV_E_INVALID_MESSAGE, "the batch is empty");
    if (n > p->max_batch)
        return dev_fail(err, DEV_E_POLICY, "%zu signatures exceed the policy's max_batch of %" PRIu32,
                        n, p->max_batch);
    uint8_t first[32] = {0}, last[32] = {0};
    unsigned with_rotation = 0;
    for (size_t i = 0; i < n; i++) {
        nks_item item;
        char where[32];
        snprintf(where, sizeof where, "item %zu: ", i);
        int rc = check_one_nks(key_public, items[i], &item, where, err);
        if (rc == DEV_OK && item.kind != NKS_DIRECT)
            rc = dev_fail(err, DEV_E_POLICY,
                          "item %zu: credentials are signed one at a time (sign_nks)", i);
        if (rc == DEV_OK) rc = check_nks_policy(a, key_public, head, &item, where, err);
        if (rc != DEV_OK) return rc;
        memcpy(sighashes + 32 * i, item.sighash, 32);
        if (i == 0) memcpy(first, item.node_key, 32);
        memcpy(last, item.node_key, 32);
        with_rotation += item.has_rotation != 0;
    }
    blake2s_ctx ctx;
    blake2s_init(&ctx);
    blake2s_update(&ctx, sighashes, 32 * n);
    blake2s_final(&ctx, plan->sighash);

    char text[160];
    screen_reset(scr);
    screen_line(scr, "Authorize %zu nodes (direct node-key signatures)", n);
    node_lines(scr, "First: ", first);
    node_lines(scr, "Last: ", last);
    screen_line(scr, "With a rotation key: %u of %zu", with_rotation, n);
    signer_line(scr, key_name, key_public);
    fmt_aum_hash(text, 53, head);
    screen_line(scr, "Head: %s", text);
    fmt_hex(text, sizeof text, plan->sighash, 32);
    screen_line(scr, "Batch digest: %s", text);
    snprintf(plan->summary, sizeof plan->summary, "sign_batch %zu nodes digest %.16s", n, text);
    return DEV_OK;
}

/* ---- AUMs ---- */

static int key_in_state(const auth_state *s, const auth_key *k) {
    for (size_t i = 0; i < s->n_keys; i++) {
        const auth_key *o = &s->keys[i];
        if (o->public_is_null == k->public_is_null && o->public_len == k->public_len &&
            memcmp(o->public_key, k->public_key, k->public_len) == 0)
            return (int)i;
    }
    return -1;
}

static int disablement_in(const auth_state *s, const uint8_t v[32]) {
    for (size_t i = 0; i < s->n_disablement; i++)
        if (memcmp(s->disablement[i], v, 32) == 0) return 1;
    return 0;
}

static void meta_lines(screen *scr, const tka_meta *m) {
    size_t pos = 0;
    tka_span k, v;
    while (tka_meta_next(m, &pos, &k, &v)) {
        char key[80], label[100];
        screen_escape(key, sizeof key, k.ptr, k.len);
        snprintf(label, sizeof label, "    %s = ", key);
        screen_untrusted(scr, label, v.ptr, v.len);
    }
}

static void state_key_text(char *out, size_t cap, const auth_key *k) {
    rules_fmt_key(out, cap, k->public_key, k->public_len, k->public_is_null);
}

/* The checkpoint's changes against `base` (NULL: everything is new). Returns whether the keys
 * (set or votes) or the disablement values change; *dropped counts lost disablement values. */
static int checkpoint_lines(screen *scr, const auth_state *base, const auth_state *after,
                            unsigned *dropped) {
    char text[160];
    int changes = 0;
    unsigned unchanged = 0, added_dis = 0;
    *dropped = 0;
    screen_line(scr, "Checkpoint state: %u keys, %u disablement values", (unsigned)after->n_keys,
                (unsigned)after->n_disablement);
    for (size_t i = 0; i < after->n_keys; i++) {
        const auth_key *k = &after->keys[i];
        int j = base != NULL ? key_in_state(base, k) : -1;
        state_key_text(text, sizeof text, k);
        if (j < 0) {
            screen_line(scr, "  add %s votes %u", text, (unsigned)k->votes);
            changes = 1;
        } else if (base->keys[j].votes != k->votes) {
            screen_line(scr, "  re-weight %s votes %u -> %u", text, (unsigned)base->keys[j].votes,
                        (unsigned)k->votes);
            changes = 1;
        } else {
            unchanged++;
        }
    }
    if (base != NULL) {
        for (size_t i = 0; i < base->n_keys; i++) {
            if (key_in_state(after, &base->keys[i]) >= 0) continue;
            state_key_text(text, sizeof text, &base->keys[i]);
            screen_line(scr, "  remove %s (votes %u)", text, (unsigned)base->keys[i].votes);
            changes = 1;
        }
        for (size_t i = 0; i < base->n_disablement; i++)
            *dropped += !disablement_in(after, base->disablement[i]);
        for (size_t i = 0; i < after->n_disablement; i++)
            added_dis += !disablement_in(base, after->disablement[i]);
    } else {
        added_dis = after->n_disablement;
    }
    if (unchanged) screen_line(scr, "  unchanged: %u keys", unchanged);
    screen_line(scr, "Disablement values: %u (added %u, dropped %u)",
                (unsigned)after->n_disablement, added_dis, *dropped);
    if (added_dis || *dropped) changes = 1;
    screen_line(scr, "StateID1: %" PRIu64, after->state_id1);
    screen_line(scr, "StateID2: %" PRIu64, after->state_id2);
    if (*dropped)
        screen_line(scr, "WARNING: drops %u disablement value(s): the device asks twice", *dropped);
    return changes;
}

int check_sign_aum(const dev_authority *a, const dev_policy *p, const char *key_name,
                   const uint8_t key_public[32], tka_span aum, screen *scr, sign_plan *plan,
                   dev_error *err) {
    char msg[DEV_ERROR_MESSAGE_MAX], kind[24], text[160], pk[72];
    memset(plan, 0, sizeof *plan);
    if (aum.ptr == NULL || !tka_aum_read(aum.ptr, aum.len, &g_aum))
        return dev_fail(err, DEV_E_INVALID_MESSAGE,
                        "the AUM is not in canonical CBOR (the device reads nothing else)");
    rules_kind_name(g_aum.kind, kind, sizeof kind);
    if (g_aum.kind < KIND_ADD_KEY || g_aum.kind > KIND_CHECKPOINT)
        return dev_fail(err, DEV_E_POLICY, "the device does not sign AUMs of kind %s", kind);

    /* Static validation first, as aumVerify; then the state at the parent. */
    if (!rules_static_validate(&g_aum, msg, sizeof msg))
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "invalid: %s", msg);
    int genesis = g_aum.prev_is_null, where = AUTH_AT_HEAD;
    uint8_t parent_hash[32] = {0};
    const auth_state *base = NULL; /* what the screen compares a checkpoint with */
    uint8_t sighash[32];
    tka_aum_sig_hash(aum.ptr, aum.len, &g_aum, sighash);
    if (genesis) {
        if (g_aum.kind != KIND_CHECKPOINT || !g_aum.has_state)
            return dev_fail(err, DEV_E_INVALID_MESSAGE, "invalid genesis update: %s", kind);
        if (!rules_state_from_aum(&g_aum.state, &g_parent, msg, sizeof msg))
            return dev_fail(err, DEV_E_INVALID_MESSAGE, "%s", msg);
    } else {
        if (!authority_is_enrolled(a))
            return dev_fail(err, DEV_E_BAD_STATE, "not enrolled in an authority");
        rules_parent_hash(&g_aum, parent_hash);
        if (!authority_state_at(a, parent_hash, &g_parent, &where)) {
            fmt_aum_hash(text, 53, parent_hash);
            return dev_fail(err, DEV_E_STALE_AUTHORITY,
                            "the AUM's parent %s is not in the device's history", text);
        }
        if (where == AUTH_AT_HISTORY && g_aum.kind != KIND_CHECKPOINT) {
            fmt_aum_hash(text, 53, authority_head(a));
            return dev_fail(err, DEV_E_STALE_AUTHORITY,
                            "the AUM's parent is not the device's head %s (only a checkpoint may "
                            "fork from an older AUM)",
                            text);
        }
        base = where == AUTH_AT_HISTORY ? &a->head_state : &g_parent;
    }
    if (!rules_verify(&g_parent, &g_aum, sighash, genesis, 0, msg, sizeof msg))
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "%s", msg);
    if (!rules_apply(&g_parent, genesis ? NULL : parent_hash, &g_aum, &g_after, msg, sizeof msg))
        return dev_fail(err, DEV_E_INVALID_MESSAGE, "%s", msg);

    /* Policy. */
    key_text(pk, key_public);
    if (rules_find_key(&g_parent, key_public, 32) < 0)
        return dev_fail(err, DEV_E_POLICY,
                        genesis ? "the genesis state does not list the signing key %s"
                                : "the signing key %s is not trusted at the AUM's parent",
                        pk);
    size_t others = 0;
    for (size_t i = 0; i < g_aum.n_signatures; i++) {
        const tka_span *id = &g_aum.signatures[i].key_id;
        if (memcmp(id->ptr, key_public, 32) == 0)
            return dev_fail(err, DEV_E_POLICY, "the AUM already carries a signature by %s", pk);
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = memcmp(g_aum.signatures[j].key_id.ptr, id->ptr, 32) == 0;
        others += !dup;
    }
    if (g_aum.n_signatures >= TKA_AUM_MAX_SIGNATURES)
        return dev_fail(err, DEV_E_POLICY, "the AUM already carries %d signatures, the most the "
                        "device reads", TKA_AUM_MAX_SIGNATURES);

    /* The screen (the checkpoint lines also tell whether the keys change). */
    screen_reset(scr);
    screen_line(scr, "Sign an authority update: %s", kind);
    signer_line(scr, key_name, key_public);
    if (genesis) {
        screen_line(scr, "Parent: none (a new authority: tka init)");
    } else {
        fmt_aum_hash(text, 53, parent_hash);
        screen_line(scr, "Parent: %s", text);
        if (where == AUTH_AT_HISTORY)
            screen_line(scr, "Forks from an older AUM: replaces the chain after it (revocation)");
        else if (where == AUTH_AT_TENTATIVE)
            screen_line(scr, "  (an AUM signed on this device in this session)");
    }
    screen_line(scr, "Signatures already present: %zu", g_aum.n_signatures);
    for (size_t i = 0; i < g_aum.n_signatures; i++) {
        int k = rules_find_key(&g_parent, g_aum.signatures[i].key_id.ptr, 32);
        key_text(text, g_aum.signatures[i].key_id.ptr);
        screen_line(scr, "  by %s (votes %u)", text, (unsigned)g_parent.keys[k].votes);
    }
    int changes_keys = 1;
    unsigned dropped = 0;
    switch (g_aum.kind) {
    case KIND_ADD_KEY: {
        const tka_aum_key *k = &g_aum.key;
        rules_fmt_key(text, sizeof text, k->public_key.ptr, k->public_key.len, k->public_is_null);
        screen_line(scr, "Add key %s", text);
        screen_line(scr, "  votes %" PRIu64, k->votes);
        if (k->meta.encoded.ptr != NULL) {
            screen_line(scr, "  metadata:");
            meta_lines(scr, &k->meta);
        }
        break;
    }
    case KIND_REMOVE_KEY: {
        int k = rules_find_key(&g_parent, g_aum.key_id.ptr, g_aum.key_id.len);
        rules_fmt_key(text, sizeof text, g_aum.key_id.ptr, g_aum.key_id.len, 0);
        screen_line(scr, "Remove key %s (votes %u)", text, (unsigned)g_parent.keys[k].votes);
        break;
    }
    case KIND_UPDATE_KEY: {
        int k = rules_find_key(&g_parent, g_aum.key_id.ptr, g_aum.key_id.len);
        rules_fmt_key(text, sizeof text, g_aum.key_id.ptr, g_aum.key_id.len, 0);
        screen_line(scr, "Update key %s", text);
        if (g_aum.has_votes)
            screen_line(scr, "  votes %u -> %" PRIu64, (unsigned)g_parent.keys[k].votes,
                        g_aum.votes);
        else
            screen_line(scr, "  votes unchanged (%u)", (unsigned)g_parent.keys[k].votes);
        if (g_aum.meta.encoded.ptr != NULL) {
            screen_line(scr, "  metadata replaced by:");
            meta_lines(scr, &g_aum.meta);
        } else {
            screen_line(scr, "  metadata unchanged");
        }
        break;
    }
    case KIND_CHECKPOINT:
        changes_keys = checkpoint_lines(scr, base, &g_after, &dropped);
        plan->second_confirmation = dropped > 0;
        break;
    default:
        screen_line(scr, "No change (a no-op AUM)");
        changes_keys = 0;
        break;
    }
    if (changes_keys && p->cosigners > 1 && others + 1 < p->cosigners) {
        return dev_fail(err, DEV_E_POLICY,
                        "the policy wants %" PRIu32 " signers of a key change: this AUM carries "
                        "%zu by other trusted keys, it needs %" PRIu32 " first",
                        p->cosigners, others, p->cosigners - 1);
    }
    plan->is_genesis = genesis;
    memcpy(plan->sighash, sighash, 32);
    if (genesis) snprintf(text, sizeof text, "genesis");
    else fmt_aum_hash(text, 53, parent_hash);
    snprintf(plan->summary, sizeof plan->summary, "sign_aum %s parent %.16s signatures %zu", kind,
             text, g_aum.n_signatures);
    return DEV_OK;
}
