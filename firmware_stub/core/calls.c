/* The calls of docs/appliance.md §2.2: the request envelope, parameters, and one function per
 * method. A method that needs the person shows its screen and leaves the call pending
 * (confirm.c); calls_complete() finishes it with the person's verdict. Every decision is logged
 * and persisted before its reply is queued. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "device_internal.h"
#include "store.h"

#define ATTEST_DOMAIN "tka-appliance attestation v1" /* + its NUL */

/* ---- parameters ---- */

enum { P_TEXT, P_BYTES, P_UINT, P_BOOL, P_ARRAY, P_MAP };

typedef struct {
    const char *name;
    int type;
    int required;
} pspec;

#define MAX_PARAMS 6

static const char *type_name(int t) {
    static const char *const names[] = {"a text string", "a byte string", "an unsigned integer",
                                        "a boolean", "an array", "a map"};
    return names[t];
}

static int type_ok(cbor_item v, int t) {
    int k = cbor_type(v);
    switch (t) {
    case P_TEXT: return k == CB_TEXT;
    case P_BYTES: return k == CB_BYTES;
    case P_UINT: return k == CB_UINT;
    case P_BOOL: return k == CB_TRUE || k == CB_FALSE;
    case P_ARRAY: return k == CB_ARRAY;
    default: return k == CB_MAP;
    }
}

/* Fills out[i] for each spec entry (present[i] = 0 when absent). Unknown or mistyped
 * parameters and missing required ones are answered with protocol_error: returns -1. */
static int get_params(device *d, const dev_call *c, const pspec *spec, size_t n, cbor_item *out,
                      int *present) {
    char msg[DEV_ERROR_MESSAGE_MAX];
    for (size_t i = 0; i < n; i++) present[i] = 0;
    if (c->has_params) {
        cbor_iter it;
        cbor_item k, v;
        cbor_iter_init(c->params, &it);
        while (cbor_next_pair(&it, &k, &v)) {
            size_t i = 0;
            while (i < n && !cbor_text_is(k, spec[i].name)) i++;
            if (i == n) {
                const uint8_t *kp;
                size_t kn;
                char shown[64];
                cbor_text(k, &kp, &kn);
                screen_escape(shown, sizeof shown, kp, kn);
                snprintf(msg, sizeof msg, "unknown parameter '%s' for %s", shown, c->method);
                reply_error(d, 1, c->id, DEV_E_PROTOCOL, msg);
                return -1;
            }
            if (!type_ok(v, spec[i].type)) {
                snprintf(msg, sizeof msg, "parameter '%s' must be %s", spec[i].name,
                         type_name(spec[i].type));
                reply_error(d, 1, c->id, DEV_E_PROTOCOL, msg);
                return -1;
            }
            out[i] = v;
            present[i] = 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (spec[i].required && !present[i]) {
            snprintf(msg, sizeof msg, "missing parameter '%s'", spec[i].name);
            reply_error(d, 1, c->id, DEV_E_PROTOCOL, msg);
            return -1;
        }
    }
    return 0;
}

static int no_params(device *d, const dev_call *c) {
    cbor_item out[1];
    int present[1];
    return get_params(d, c, NULL, 0, out, present);
}

static void fail(device *d, const dev_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(device *d, const dev_call *c, int code, const char *fmt, ...) {
    char msg[DEV_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_error(d, 1, c->id, code, msg);
}

/* A refusal from the checks or the authority: stale_authority carries the device's head. */
static void reply_dev_error(device *d, uint64_t id, const dev_error *err) {
    const uint8_t *head = authority_head(&d->authority);
    if (err->code == DEV_E_STALE_AUTHORITY && head != NULL)
        reply_error_bytes(d, id, err->code, err->message, "head", head, 32);
    else reply_error(d, 1, id, err->code, err->message);
}

static int need_unlocked(device *d, const dev_call *c) {
    if (d->state == DEV_UNLOCKED) return 0;
    if (d->state == DEV_BLANK) fail(d, c, DEV_E_BAD_STATE, "the device is not set up: call setup");
    else fail(d, c, DEV_E_LOCKED, "the device is locked: call unlock");
    return -1;
}

/* The device-side timeout: the policy's, shortened by the call's `timeout` if it gave one. */
static int call_timeout(device *d, const dev_call *c, cbor_item t, int present, uint32_t *out) {
    *out = d->policy.confirm_timeout;
    if (!present) return 0;
    uint64_t v;
    cbor_uint(t, &v);
    if (v == 0) {
        fail(d, c, DEV_E_PROTOCOL, "timeout must be at least 1 second");
        return -1;
    }
    if (v < *out) *out = (uint32_t)v;
    return 0;
}

static void text_of(cbor_item it, const uint8_t **p, size_t *n) {
    if (cbor_text(it, p, n) != 0) *p = NULL, *n = 0;
}

static void bytes_of(cbor_item it, const uint8_t **p, size_t *n) {
    if (cbor_bytes(it, p, n) != 0) *p = NULL, *n = 0;
}

static uint64_t uint_of(cbor_item it) {
    uint64_t v = 0;
    cbor_uint(it, &v);
    return v;
}

/* Stores a decision and makes it durable; on failure answers `storage` and returns -1. */
static int log_and_persist(device *d, uint64_t id, const char *event, const char *verdict,
                           const uint8_t *key, const uint8_t *sighash, const char *summary) {
    dev_error err;
    if (dev_log(d, event, verdict, key, sighash, summary) != 0) {
        reply_error(d, 1, id, DEV_E_STORAGE, "the audit entry could not be written");
        return -1;
    }
    if (dev_persist(d, &err) != DEV_OK) {
        reply_error(d, 1, id, err.code, err.message);
        return -1;
    }
    return 0;
}

/* ---- PIN ---- */

/* One PIN attempt, counted before it is checked. 1: right (the derived key is in
 * v->trial_key, and for unlock the plaintext in d->plain); 0: wrong or error, answered. */
static int pin_attempt(device *d, const dev_call *c, const uint8_t *pin, size_t n, int unlock) {
    dev_error err;
    vault *v = d->v;
    if (d->pin_retries == 0) {
        fail(d, c, DEV_E_WIPED, "too many wrong PINs: the device erased its keys");
        return 0;
    }
    d->pin_retries--;
    if (dev_persist(d, &err) != DEV_OK) {
        d->pin_retries++; /* flash still holds the old count and the PIN was not tried */
        reply_error(d, 1, c->id, err.code, err.message);
        return 0;
    }
    dev_busy_working(d, c->seq);
    if (seal_derive(v->trial_key, pin, n, &d->seal) != 0) {
        fail(d, c, DEV_E_STORAGE, "the PIN could not be checked (no memory for the KDF)");
        return 0;
    }
    int right;
    if (unlock)
        right = seal_decrypt(d->plain, d->seal_ct, d->seal_ct_len, v->trial_key, &d->seal,
                             d->identity_pk) == 0;
    else right = sodium_memcmp(v->trial_key, v->seal_key, SEAL_KEY_LEN) == 0;
    if (right) {
        d->pin_retries = STORE_PIN_TRIES;
        return 1;
    }
    sodium_memzero(v->trial_key, sizeof v->trial_key);
    char summary[80];
    snprintf(summary, sizeof summary, "wrong PIN (%u attempts left)", d->pin_retries);
    dev_log(d, "pin", "refused", NULL, NULL, summary);
    if (d->pin_retries == 0) {
        dev_erase(d);
        dev_log(d, "wipe", "applied", NULL, NULL,
                "10 wrong PINs: lock keys, policy and authority erased");
        dev_persist(d, &err);
        fail(d, c, DEV_E_WIPED, "too many wrong PINs: the device erased its keys");
        return 0;
    }
    dev_persist(d, &err);
    reply_error_uint(d, c->id, DEV_E_WRONG_PIN, "wrong PIN", "retries", d->pin_retries);
    return 0;
}

/* ---- methods without confirmation ---- */

static const char *state_name(int s) {
    return s == DEV_BLANK ? "blank" : s == DEV_LOCKED ? "locked" : "unlocked";
}

static void m_info(device *d, const dev_call *c) {
    if (no_params(d, c)) return;
    cbor_writer *w = reply_begin(d, c->id);
    int unlocked = d->state == DEV_UNLOCKED;
    cw_map(w, 7 + unlocked);
    cw_text(w, "protocol");
    cw_uint(w, FW_PROTOCOL);
    cw_text(w, "firmware");
    cw_text(w, FW_VERSION);
    cw_text(w, "board");
    cw_text(w, d->board_name ? d->board_name : "unknown");
    cw_text(w, "identity");
    cw_bytes(w, d->identity_pk, 32);
    cw_text(w, "state");
    cw_text(w, state_name(d->state));
    cw_text(w, "pin_retries");
    cw_uint(w, d->pin_retries);
    cw_text(w, "max_message");
    cw_uint(w, DEV_MAX_MESSAGE);
    if (unlocked) {
        cw_text(w, "enrolled");
        cw_bool(w, authority_is_enrolled(&d->authority));
    }
    reply_end(d);
}

static void m_status(device *d, const dev_call *c) {
    if (no_params(d, c)) return;
    int confirming = d->pend.kind != PEND_NONE;
    cbor_writer *w = reply_begin(d, c->id);
    cw_map(w, 2 + confirming);
    cw_text(w, "state");
    cw_text(w, confirming ? "confirming" : "idle");
    cw_text(w, "locked");
    cw_bool(w, d->state != DEV_UNLOCKED);
    if (confirming) {
        cw_text(w, "pending");
        cw_map(w, 3);
        cw_text(w, "id");
        cw_uint(w, d->pend.id);
        cw_text(w, "method");
        cw_text(w, d->pend.method);
        cw_text(w, "seconds_left");
        cw_uint(w, confirm_seconds_left(d));
    }
    reply_end(d);
}

static void m_cancel(device *d, const dev_call *c) {
    if (no_params(d, c)) return;
    int was = d->pend.kind != PEND_NONE;
    /* The cancelled call is answered first: calls are answered in order. */
    if (was) confirm_end(d, V_CANCELLED);
    cbor_writer *w = reply_begin(d, c->id);
    cw_map(w, 1);
    cw_text(w, "cancelled");
    cw_bool(w, was);
    reply_end(d);
}

static void m_unlock(device *d, const dev_call *c) {
    static const pspec spec[] = {{"pin", P_TEXT, 1}};
    cbor_item p[1];
    int has[1];
    if (get_params(d, c, spec, 1, p, has)) return;
    if (d->state == DEV_BLANK) { fail(d, c, DEV_E_BAD_STATE, "the device is not set up: call setup"); return; }
    if (d->state == DEV_UNLOCKED) { fail(d, c, DEV_E_BAD_STATE, "the device is already unlocked"); return; }
    const uint8_t *pin;
    size_t n;
    text_of(p[0], &pin, &n);
    if (n < 1 || n > VAULT_PIN_MAX) { fail(d, c, DEV_E_PROTOCOL, "pin must be 1-64 bytes"); return; }
    if (pin_attempt(d, c, pin, n, 1) != 1) return;
    const char *why = NULL;
    size_t pt_len = d->seal_ct_len - SEAL_TAG_LEN;
    int bad = vault_deserialize(d->v, &d->policy, &d->authority, d->plain, pt_len, &why);
    sodium_memzero(d->plain, pt_len);
    dev_error err;
    if (bad) {
        dev_lock(d);
        dev_persist(d, &err); /* the retry counter is reset: the PIN was right */
        { fail(d, c, DEV_E_STORAGE, "the sealed state is malformed: %s", why); return; }
    }
    memcpy(d->v->seal_key, d->v->trial_key, SEAL_KEY_LEN);
    sodium_memzero(d->v->trial_key, SEAL_KEY_LEN);
    d->v->have_seal_key = 1;
    d->state = DEV_UNLOCKED;
    if (dev_persist(d, &err) != DEV_OK) {
        dev_lock(d);
        { reply_error(d, 1, c->id, err.code, err.message); return; }
    }
    cbor_writer *w = reply_begin(d, c->id);
    cw_map(w, 0);
    reply_end(d);
}

static void m_lock(device *d, const dev_call *c) {
    if (no_params(d, c)) return;
    if (d->state == DEV_UNLOCKED) dev_lock(d);
    cbor_writer *w = reply_begin(d, c->id);
    cw_map(w, 0);
    reply_end(d);
}

static void m_list_keys(device *d, const dev_call *c) {
    if (no_params(d, c) || need_unlocked(d, c)) return;
    cbor_writer *w = reply_begin(d, c->id);
    cw_map(w, 1);
    cw_text(w, "keys");
    cw_array(w, d->v->n_keys);
    for (unsigned i = 0; i < d->v->n_keys; i++) {
        const vault_key *k = &d->v->keys[i];
        cw_map(w, 4);
        cw_text(w, "name");
        cw_text(w, k->name);
        cw_text(w, "public");
        cw_bytes(w, k->pk, 32);
        cw_text(w, "created");
        cw_uint(w, k->created);
        cw_text(w, "signatures");
        cw_uint(w, k->signatures);
    }
    reply_end(d);
}

static void m_authority(device *d, const dev_call *c) {
    if (no_params(d, c) || need_unlocked(d, c)) return;
    const dev_authority *a = &d->authority;
    cbor_writer *w = reply_begin(d, c->id);
    if (!authority_is_enrolled(a)) {
        cw_map(w, 1);
        cw_text(w, "enrolled");
        cw_bool(w, 0);
        reply_end(d);
        return;
    }
    const auth_state *s = authority_head_state(a);
    cw_map(w, 7);
    cw_text(w, "enrolled");
    cw_bool(w, 1);
    cw_text(w, "head");
    cw_bytes(w, authority_head(a), 32);
    cw_text(w, "state_id1");
    cw_uint(w, s->state_id1);
    cw_text(w, "state_id2");
    cw_uint(w, s->state_id2);
    cw_text(w, "keys");
    cw_array(w, s->n_keys);
    for (unsigned i = 0; i < s->n_keys; i++) {
        cw_map(w, 2);
        cw_text(w, "public");
        cw_bytes(w, s->keys[i].public_key, s->keys[i].public_len);
        cw_text(w, "votes");
        cw_uint(w, s->keys[i].votes);
    }
    cw_text(w, "disablement_values");
    cw_uint(w, s->n_disablement);
    cw_text(w, "history");
    size_t n = authority_history_len(a);
    cw_array(w, n);
    for (size_t i = 0; i < n; i++) cw_bytes(w, authority_history_hash(a, i), 32);
    reply_end(d);
}

static void m_authority_update(device *d, const dev_call *c) {
    static const pspec spec[] = {{"aums", P_ARRAY, 1}};
    cbor_item p[1];
    int has[1];
    if (get_params(d, c, spec, 1, p, has) || need_unlocked(d, c)) return;
    size_t n = cbor_count(p[0]);
    if (n > DEV_MAX_UPDATE) { fail(d, c, DEV_E_TOO_LARGE, "at most %d AUMs per update", DEV_MAX_UPDATE); return; }
    cbor_iter it;
    cbor_item item;
    size_t i = 0;
    cbor_iter_init(p[0], &it);
    while (cbor_next(&it, &item)) {
        if (cbor_type(item) != CB_BYTES) { fail(d, c, DEV_E_PROTOCOL, "aums[%zu] must be a byte string", i); return; }
        bytes_of(item, &d->spans[i].ptr, &d->spans[i].len);
        i++;
    }
    uint8_t before[32] = {0};
    int was = authority_is_enrolled(&d->authority);
    if (was) memcpy(before, authority_head(&d->authority), 32);
    unsigned applied = 0, ignored = 0;
    dev_error err;
    if (authority_update(&d->authority, d->spans, n, &applied, &ignored, &err) != DEV_OK)
        { reply_dev_error(d, c->id, &err); return; }
    const uint8_t *head = authority_head(&d->authority);
    if (applied > 0 && head != NULL) {
        if (!was || memcmp(before, head, 32) != 0) {
            char h[53], summary[120];
            fmt_aum_hash(h, sizeof h, head);
            snprintf(summary, sizeof summary, "head moved to %s (%u applied, %u ignored)", h,
                     applied, ignored);
            if (dev_log(d, "authority_update", "applied", NULL, NULL, summary) != 0)
                { fail(d, c, DEV_E_STORAGE, "the audit entry could not be written"); return; }
        }
        if (dev_persist(d, &err) != DEV_OK) { reply_error(d, 1, c->id, err.code, err.message); return; }
    }
    cbor_writer *w = reply_begin(d, c->id);
    cw_map(w, 3);
    cw_text(w, "head");
    if (head != NULL) cw_bytes(w, head, 32);
    else cw_null(w);
    cw_text(w, "applied");
    cw_uint(w, applied);
    cw_text(w, "ignored");
    cw_uint(w, ignored);
    reply_end(d);
}

static void write_policy(cbor_writer *w, const dev_policy *p) {
    cw_map(w, 5);
    cw_text(w, "cosigners");
    cw_uint(w, p->cosigners);
    cw_text(w, "max_batch");
    cw_uint(w, p->max_batch);
    cw_text(w, "confirm_timeout");
    cw_uint(w, p->confirm_timeout);
    cw_text(w, "auto_lock");
    cw_uint(w, p->auto_lock);
    cw_text(w, "force_audit");
    cw_bool(w, p->force_audit != 0);
}

static void m_get_policy(device *d, const dev_call *c) {
    if (no_params(d, c) || need_unlocked(d, c)) return;
    cbor_writer *w = reply_begin(d, c->id);
    cw_map(w, 1);
    cw_text(w, "policy");
    write_policy(w, &d->policy);
    reply_end(d);
}

static void m_audit_log(device *d, const dev_call *c) {
    static const pspec spec[] = {
        {"start", P_UINT, 0}, {"limit", P_UINT, 0}, {"nonce", P_BYTES, 0}, {"ack", P_UINT, 0}};
    cbor_item p[4];
    int has[4];
    if (get_params(d, c, spec, 4, p, has)) return;
    uint64_t limit = has[1] ? uint_of(p[1]) : 64;
    if (limit < 1 || limit > 64) { fail(d, c, DEV_E_PROTOCOL, "limit must be 1-64"); return; }
    const uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    if (has[2]) bytes_of(p[2], &nonce, &nonce_len);
    if (nonce_len > AUDIT_NONCE_MAX) { fail(d, c, DEV_E_PROTOCOL, "nonce must be at most 32 bytes"); return; }
    if (has[3]) {
        if (d->state != DEV_UNLOCKED) { fail(d, c, DEV_E_LOCKED, "ack needs the device unlocked"); return; }
        uint64_t ack = uint_of(p[3]);
        if (audit_ack(&d->audit, ack) != 0)
            { fail(d, c, DEV_E_PROTOCOL, "ack %llu names an entry not yet written",
                        (unsigned long long)ack); return; }
        dev_error err;
        if (dev_persist(d, &err) != DEV_OK) { reply_error(d, 1, c->id, err.code, err.message); return; }
    }
    uint64_t oldest = audit_oldest(&d->audit);
    uint64_t start = has[0] ? uint_of(p[0]) : oldest;
    if (start < oldest) start = oldest;
    uint64_t end = d->audit.count;
    if (start > end) start = end;
    if (end - start > limit) end = start + limit;
    cbor_writer *w = reply_begin(d, c->id);
    cw_map(w, 2);
    cw_text(w, "entries");
    cw_array(w, (size_t)(end - start));
    for (uint64_t s = start; s < end; s++) {
        const audit_entry *e = audit_get(&d->audit, s);
        cw_map(w, 2);
        cw_text(w, "body");
        cw_bytes(w, e->body, e->body_len);
        cw_text(w, "sig");
        cw_bytes(w, e->sig, 64);
    }
    cw_text(w, "head");
    audit_write_head(&d->audit, d->v->identity_sk, nonce, nonce_len, w);
    reply_end(d);
}

/* ---- methods that wait for the person ---- */

static void m_setup(device *d, const dev_call *c) {
    static const pspec spec[] = {{"pin", P_TEXT, 1}};
    cbor_item p[1];
    int has[1];
    if (get_params(d, c, spec, 1, p, has)) return;
    if (d->state != DEV_BLANK) { fail(d, c, DEV_E_BAD_STATE, "the device is already set up"); return; }
    const uint8_t *pin;
    size_t n;
    text_of(p[0], &pin, &n);
    if (n < DEV_PIN_MIN || n > VAULT_PIN_MAX) { fail(d, c, DEV_E_PROTOCOL, "pin must be 6-64 bytes"); return; }
    memcpy(d->v->pin, pin, n);
    d->v->pin_len = n;
    char id[65];
    fmt_hex(id, sizeof id, d->identity_pk, 32);
    screen_reset(&d->scr);
    screen_line(&d->scr, "SET UP THIS APPLIANCE");
    screen_line(&d->scr, "Identity key:");
    screen_line(&d->scr, "%s", id);
    screen_line(&d->scr, "Check it against what the host shows.");
    screen_line(&d->scr, "The PIN chosen on the host will seal the keys.");
    confirm_begin(d, c, PEND_SETUP, d->policy.confirm_timeout);
}

static void m_change_pin(device *d, const dev_call *c) {
    static const pspec spec[] = {{"pin", P_TEXT, 1}, {"new_pin", P_TEXT, 1}};
    cbor_item p[2];
    int has[2];
    if (get_params(d, c, spec, 2, p, has) || need_unlocked(d, c)) return;
    const uint8_t *pin, *np;
    size_t n, nn;
    text_of(p[0], &pin, &n);
    text_of(p[1], &np, &nn);
    if (n < 1 || n > VAULT_PIN_MAX) { fail(d, c, DEV_E_PROTOCOL, "pin must be 1-64 bytes"); return; }
    if (nn < DEV_PIN_MIN || nn > VAULT_PIN_MAX)
        { fail(d, c, DEV_E_PROTOCOL, "new_pin must be 6-64 bytes"); return; }
    if (pin_attempt(d, c, pin, n, 0) != 1) return;
    sodium_memzero(d->v->trial_key, SEAL_KEY_LEN);
    dev_error err;
    if (dev_persist(d, &err) != DEV_OK) { reply_error(d, 1, c->id, err.code, err.message); return; }
    memcpy(d->v->new_pin, np, nn);
    d->v->new_pin_len = nn;
    screen_reset(&d->scr);
    screen_line(&d->scr, "CHANGE THE PIN");
    screen_line(&d->scr, "The keys will be sealed under the new PIN.");
    confirm_begin(d, c, PEND_CHANGE_PIN, d->policy.confirm_timeout);
}

static void m_generate_key(device *d, const dev_call *c) {
    static const pspec spec[] = {{"name", P_TEXT, 1}};
    cbor_item p[1];
    int has[1];
    if (get_params(d, c, spec, 1, p, has) || need_unlocked(d, c)) return;
    const uint8_t *name;
    size_t n;
    text_of(p[0], &name, &n);
    if (!vault_name_ok(name, n))
        { fail(d, c, DEV_E_PROTOCOL, "name must be 1-32 characters of a-z 0-9 . _ -"); return; }
    if (vault_find(d->v, name, n) >= 0)
        { fail(d, c, DEV_E_BAD_STATE, "a key named '%.*s' exists", (int)n, name); return; }
    if (d->v->n_keys >= VAULT_MAX_KEYS)
        { fail(d, c, DEV_E_BAD_STATE, "the device holds %d keys, the most it can", VAULT_MAX_KEYS); return; }
    memcpy(d->pend.name, name, n);
    d->pend.name[n] = '\0';
    screen_reset(&d->scr);
    screen_line(&d->scr, "GENERATE A LOCK KEY");
    screen_line(&d->scr, "Name: %s", d->pend.name);
    screen_line(&d->scr, "The private key is made here and never leaves this device.");
    confirm_begin(d, c, PEND_GENERATE_KEY, d->policy.confirm_timeout);
}

/* 1 if the AUM carries exactly the signature this device made over the genesis it signed. */
static int carries_our_genesis_signature(device *d, tka_span aum) {
    if (!tka_aum_read(aum.ptr, aum.len, &d->aum_scratch)) return 0;
    for (size_t i = 0; i < d->aum_scratch.n_signatures; i++) {
        const tka_aum_signature *s = &d->aum_scratch.signatures[i];
        if (s->key_id.ptr != NULL && s->key_id.len == 32 && s->signature.ptr != NULL &&
            s->signature.len == 64 && memcmp(s->key_id.ptr, d->genesis_key, 32) == 0 &&
            memcmp(s->signature.ptr, d->genesis_sig, 64) == 0)
            return 1;
    }
    return 0;
}

static void finish_enroll(device *d, uint64_t id, tka_span aum, const uint8_t hash[32],
                          const char *how) {
    dev_error err;
    char h[53], summary[AUDIT_SUMMARY_MAX + 1];
    fmt_aum_hash(h, sizeof h, hash);
    if (authority_enroll(&d->authority, aum, &err) != DEV_OK) {
        snprintf(summary, sizeof summary, "enroll %s: %.120s", h, err.message);
        dev_log(d, "enroll", "refused", NULL, NULL, summary);
        dev_persist(d, NULL);
        { reply_dev_error(d, id, &err); return; }
    }
    d->genesis_valid = 0;
    snprintf(summary, sizeof summary, "enrolled at %s (%s)", h, how);
    if (log_and_persist(d, id, "enroll", "approved", NULL, NULL, summary) != 0) return;
    cbor_writer *w = reply_begin(d, id);
    cw_map(w, 1);
    cw_text(w, "head");
    cw_bytes(w, authority_head(&d->authority), 32);
    reply_end(d);
}

static void m_enroll(device *d, const dev_call *c) {
    static const pspec spec[] = {{"aum", P_BYTES, 1}, {"replace", P_BOOL, 0}};
    cbor_item p[2];
    int has[2];
    if (get_params(d, c, spec, 2, p, has) || need_unlocked(d, c)) return;
    int replace = 0;
    if (has[1]) cbor_bool(p[1], &replace);
    if (authority_is_enrolled(&d->authority) && !replace)
        { fail(d, c, DEV_E_BAD_STATE, "the device is already enrolled (pass replace to re-enroll)"); return; }
    tka_span aum;
    bytes_of(p[0], &aum.ptr, &aum.len);
    uint8_t sighash[32];
    dev_error err;
    screen_reset(&d->scr);
    if (authority_check_enroll(aum, &d->scr, d->pend.aum_hash, sighash, &err) != DEV_OK) {
        char summary[AUDIT_SUMMARY_MAX + 1];
        snprintf(summary, sizeof summary, "enroll refused: %.160s", err.message);
        dev_log(d, "enroll", "refused", NULL, NULL, summary);
        dev_persist(d, NULL);
        { reply_dev_error(d, c->id, &err); return; }
    }
    if (d->genesis_valid && memcmp(sighash, d->genesis_sighash, 32) == 0 &&
        carries_our_genesis_signature(d, aum)) {
        /* tka init: the person already confirmed this genesis when the device signed it. */
        { finish_enroll(d, c->id, aum, d->pend.aum_hash, "the genesis this device signed"); return; }
    }
    d->pend.aum = aum;
    confirm_begin(d, c, PEND_ENROLL, d->policy.confirm_timeout);
}

/* Signing calls share the preamble: the key by name and the force-audit refusal. */
static int signing_key(device *d, const dev_call *c, cbor_item name_item) {
    const uint8_t *name;
    size_t n;
    text_of(name_item, &name, &n);
    int k = vault_find(d->v, name, n);
    if (k < 0) {
        char shown[80];
        screen_escape(shown, sizeof shown, name, n);
        fail(d, c, DEV_E_NOT_FOUND, "no key named '%s'", shown);
        return -1;
    }
    if (d->policy.force_audit && audit_full(&d->audit)) {
        /* Not logged: the entry would overwrite an unread one, which is what is refused. */
        fail(d, c, DEV_E_AUDIT_FULL, "force_audit: read and ack the audit log first");
        return -1;
    }
    return k;
}

static void refused(device *d, const dev_call *c, const char *event, int key,
                    const dev_error *err) {
    char summary[AUDIT_SUMMARY_MAX + 1];
    snprintf(summary, sizeof summary, "%s refused: %.160s", event, err->message);
    dev_log(d, event, "refused", d->v->keys[key].pk, NULL, summary);
    dev_persist(d, NULL);
    reply_dev_error(d, c->id, err);
}

static int head_param(device *d, const dev_call *c, cbor_item it, const uint8_t **head) {
    size_t n;
    bytes_of(it, head, &n);
    if (n != 32) {
        fail(d, c, DEV_E_PROTOCOL, "head must be 32 bytes");
        return -1;
    }
    return 0;
}

static void m_sign_nks(device *d, const dev_call *c) {
    static const pspec spec[] = {{"key", P_TEXT, 1}, {"nks", P_BYTES, 1}, {"head", P_BYTES, 1},
                                 {"deeplink", P_TEXT, 0}, {"timeout", P_UINT, 0}};
    cbor_item p[5];
    int has[5];
    if (get_params(d, c, spec, 5, p, has) || need_unlocked(d, c)) return;
    const uint8_t *head;
    uint32_t timeout;
    if (head_param(d, c, p[2], &head) || call_timeout(d, c, p[4], has[4], &timeout)) return;
    int k = signing_key(d, c, p[0]);
    if (k < 0) return;
    tka_span nks, link = {NULL, 0};
    bytes_of(p[1], &nks.ptr, &nks.len);
    if (has[3]) text_of(p[3], &link.ptr, &link.len);
    dev_error err;
    screen_reset(&d->scr);
    if (check_sign_nks(&d->authority, &d->policy, d->v->keys[k].name, d->v->keys[k].pk, nks, head,
                       link, &d->scr, &d->pend.plan, &err) != DEV_OK)
        { refused(d, c, "sign_nks", k, &err); return; }
    d->pend.key = k;
    d->pend.second = d->pend.plan.second_confirmation;
    confirm_begin(d, c, PEND_SIGN_NKS, timeout);
}

static void m_sign_batch(device *d, const dev_call *c) {
    static const pspec spec[] = {
        {"key", P_TEXT, 1}, {"head", P_BYTES, 1}, {"items", P_ARRAY, 1}, {"timeout", P_UINT, 0}};
    cbor_item p[4];
    int has[4];
    if (get_params(d, c, spec, 4, p, has) || need_unlocked(d, c)) return;
    const uint8_t *head;
    uint32_t timeout;
    if (head_param(d, c, p[1], &head) || call_timeout(d, c, p[3], has[3], &timeout)) return;
    size_t n = cbor_count(p[2]);
    cbor_iter it;
    cbor_item item;
    size_t i = 0;
    cbor_iter_init(p[2], &it);
    while (cbor_next(&it, &item)) {
        if (cbor_type(item) != CB_BYTES) { fail(d, c, DEV_E_PROTOCOL, "items[%zu] must be a byte string", i); return; }
        if (i < POLICY_MAX_BATCH_MAX) bytes_of(item, &d->spans[i].ptr, &d->spans[i].len);
        i++;
    }
    int k = signing_key(d, c, p[0]);
    if (k < 0) return;
    dev_error err;
    if (n > d->policy.max_batch || n > POLICY_MAX_BATCH_MAX) {
        dev_fail(&err, DEV_E_POLICY, "%zu items exceed the policy's max_batch of %u", n,
                 (unsigned)d->policy.max_batch);
        { refused(d, c, "sign_batch", k, &err); return; }
    }
    screen_reset(&d->scr);
    if (check_sign_batch(&d->authority, &d->policy, d->v->keys[k].name, d->v->keys[k].pk, d->spans,
                         n, head, &d->scr, d->sighashes, &d->pend.plan, &err) != DEV_OK)
        { refused(d, c, "sign_batch", k, &err); return; }
    d->pend.key = k;
    d->pend.n_items = n;
    d->pend.second = d->pend.plan.second_confirmation;
    confirm_begin(d, c, PEND_SIGN_BATCH, timeout);
}

static void m_sign_aum(device *d, const dev_call *c) {
    static const pspec spec[] = {{"key", P_TEXT, 1}, {"aum", P_BYTES, 1}, {"timeout", P_UINT, 0}};
    cbor_item p[3];
    int has[3];
    if (get_params(d, c, spec, 3, p, has) || need_unlocked(d, c)) return;
    uint32_t timeout;
    if (call_timeout(d, c, p[2], has[2], &timeout)) return;
    int k = signing_key(d, c, p[0]);
    if (k < 0) return;
    tka_span aum;
    bytes_of(p[1], &aum.ptr, &aum.len);
    dev_error err;
    screen_reset(&d->scr);
    if (check_sign_aum(&d->authority, &d->policy, d->v->keys[k].name, d->v->keys[k].pk, aum,
                       &d->scr, &d->pend.plan, &err) != DEV_OK)
        { refused(d, c, "sign_aum", k, &err); return; }

    d->pend.key = k;
    d->pend.aum = aum;
    d->pend.second = d->pend.plan.second_confirmation;
    confirm_begin(d, c, PEND_SIGN_AUM, timeout);
}

/* Reads the changes of set_policy into `out` (a copy of the current policy). */
static int policy_changes(device *d, const dev_call *c, cbor_item map, dev_policy *out) {
    static const struct {
        const char *name;
        uint32_t min, max;
    } f[] = {{"cosigners", 1, POLICY_COSIGNERS_MAX},
             {"max_batch", 1, POLICY_MAX_BATCH_MAX},
             {"confirm_timeout", POLICY_CONFIRM_TIMEOUT_MIN, POLICY_CONFIRM_TIMEOUT_MAX},
             {"auto_lock", 0, POLICY_AUTO_LOCK_MAX},
             {"force_audit", 0, 1}};
    uint32_t *slot[] = {&out->cosigners, &out->max_batch, &out->confirm_timeout, &out->auto_lock,
                        &out->force_audit};
    cbor_iter it;
    cbor_item k, v;
    cbor_iter_init(map, &it);
    while (cbor_next_pair(&it, &k, &v)) {
        size_t i = 0;
        while (i < 5 && !cbor_text_is(k, f[i].name)) i++;
        if (i == 5) {
            const uint8_t *kp;
            size_t kn;
            char shown[64];
            cbor_text(k, &kp, &kn);
            screen_escape(shown, sizeof shown, kp, kn);
            fail(d, c, DEV_E_PROTOCOL, "unknown policy field '%s'", shown);
            return -1;
        }
        if (i == 4) {
            int b;
            if (cbor_bool(v, &b) != 0) {
                fail(d, c, DEV_E_PROTOCOL, "policy field 'force_audit' must be a boolean");
                return -1;
            }
            *slot[i] = (uint32_t)b;
            continue;
        }
        uint64_t x;
        if (cbor_uint(v, &x) != 0 || x < f[i].min || x > f[i].max) {
            fail(d, c, DEV_E_PROTOCOL, "policy field '%s' must be an integer in %u-%u", f[i].name,
                 (unsigned)f[i].min, (unsigned)f[i].max);
            return -1;
        }
        *slot[i] = (uint32_t)x;
    }
    return 0;
}

/* Screen lines and the audit summary of a policy change. Returns the number of changes. */
static int describe_policy(const dev_policy *a, const dev_policy *b, screen *scr, char *summary,
                           size_t cap) {
    const char *names[] = {"cosigners", "max_batch", "confirm_timeout", "auto_lock", "force_audit"};
    const uint32_t va[] = {a->cosigners, a->max_batch, a->confirm_timeout, a->auto_lock, a->force_audit};
    const uint32_t vb[] = {b->cosigners, b->max_batch, b->confirm_timeout, b->auto_lock, b->force_audit};
    int changes = 0;
    size_t w = 0;
    summary[0] = '\0';
    for (int i = 0; i < 5; i++) {
        if (va[i] == vb[i]) continue;
        char from[16], to[16];
        if (i == 4) {
            snprintf(from, sizeof from, "%s", va[i] ? "on" : "off");
            snprintf(to, sizeof to, "%s", vb[i] ? "on" : "off");
        } else {
            snprintf(from, sizeof from, "%u", (unsigned)va[i]);
            snprintf(to, sizeof to, "%u", (unsigned)vb[i]);
        }
        screen_line(scr, "%s: %s -> %s", names[i], from, to);
        int n = snprintf(summary + w, cap - w, "%s%s %s->%s", changes ? ", " : "", names[i], from, to);
        if (n > 0 && (size_t)n < cap - w) w += (size_t)n;
        changes++;
    }
    return changes;
}

static void m_set_policy(device *d, const dev_call *c) {
    static const pspec spec[] = {{"policy", P_MAP, 1}};
    cbor_item p[1];
    int has[1];
    if (get_params(d, c, spec, 1, p, has) || need_unlocked(d, c)) return;
    dev_policy next = d->policy;
    if (policy_changes(d, c, p[0], &next)) return;
    screen_reset(&d->scr);
    screen_line(&d->scr, "CHANGE THE SIGNING POLICY");
    if (describe_policy(&d->policy, &next, &d->scr, d->pend.summary, sizeof d->pend.summary) == 0) {
        cbor_writer *w = reply_begin(d, c->id); /* nothing changes: nothing to confirm */
        cw_map(w, 1);
        cw_text(w, "policy");
        write_policy(w, &d->policy);
        reply_end(d);
        return;
    }
    d->pend.policy = next;
    confirm_begin(d, c, PEND_SET_POLICY, d->policy.confirm_timeout);
}

static void m_wipe(device *d, const dev_call *c) {
    if (no_params(d, c)) return;
    screen_reset(&d->scr);
    screen_line(&d->scr, "WIPE THIS APPLIANCE");
    screen_line(&d->scr, "Erases every lock key, the policy and the authority.");
    screen_line(&d->scr, "The identity key and the audit log stay.");
    screen_line(&d->scr, "This cannot be undone.");
    confirm_begin(d, c, PEND_WIPE, d->policy.confirm_timeout);
}

/* ---- completion of a pending call ---- */

static void empty_result(device *d, uint64_t id) {
    cbor_writer *w = reply_begin(d, id);
    cw_map(w, 0);
    reply_end(d);
}

static void complete_setup(device *d, const dev_pending *p) {
    dev_error err;
    seal_header h;
    memset(&h, 0, sizeof h);
    h.opslimit = d->kdf_opslimit;
    h.memlimit = d->kdf_memlimit;
    if (board_random(d->b, h.salt, sizeof h.salt) != 0)
        { reply_error(d, 1, p->id, DEV_E_STORAGE, "the device's random source failed"); return; }
    dev_busy_working(d, p->seq);
    if (seal_derive(d->v->seal_key, d->v->pin, d->v->pin_len, &h) != 0)
        { reply_error(d, 1, p->id, DEV_E_STORAGE, "no memory for the PIN KDF"); return; }
    d->seal = h;
    d->v->have_seal_key = 1;
    d->v->n_keys = 0;
    policy_defaults(&d->policy);
    authority_reset(&d->authority);
    d->pin_retries = STORE_PIN_TRIES;
    d->state = DEV_UNLOCKED;
    if (dev_log(d, "setup", "approved", NULL, NULL, "device set up with a new PIN") != 0)
        dev_fail(&err, DEV_E_STORAGE, "the audit entry could not be written");
    else if (dev_persist(d, &err) == DEV_OK)
        err.code = DEV_OK;
    if (err.code != DEV_OK) {
        dev_erase(d); /* flash still says blank: so does RAM */
        reply_error(d, 1, p->id, err.code, err.message);
        return;
    }
    cbor_writer *w = reply_begin(d, p->id);
    cw_map(w, 1);
    cw_text(w, "identity");
    cw_bytes(w, d->identity_pk, 32);
    reply_end(d);
}

static void complete_change_pin(device *d, const dev_pending *p) {
    seal_header h = d->seal;
    uint8_t old_key[SEAL_KEY_LEN];
    if (board_random(d->b, h.salt, sizeof h.salt) != 0)
        { reply_error(d, 1, p->id, DEV_E_STORAGE, "the device's random source failed"); return; }
    h.opslimit = d->kdf_opslimit;
    h.memlimit = d->kdf_memlimit;
    dev_busy_working(d, p->seq);
    if (seal_derive(d->v->trial_key, d->v->new_pin, d->v->new_pin_len, &h) != 0)
        { reply_error(d, 1, p->id, DEV_E_STORAGE, "no memory for the PIN KDF"); return; }
    seal_header old = d->seal;
    memcpy(old_key, d->v->seal_key, SEAL_KEY_LEN);
    d->seal = h;
    memcpy(d->v->seal_key, d->v->trial_key, SEAL_KEY_LEN);
    if (log_and_persist(d, p->id, "change_pin", "approved", NULL, NULL, "PIN changed") != 0) {
        d->seal = old; /* flash still holds the old seal */
        memcpy(d->v->seal_key, old_key, SEAL_KEY_LEN);
    } else {
        empty_result(d, p->id);
    }
    sodium_memzero(old_key, sizeof old_key);
}

static void complete_generate_key(device *d, const dev_pending *p) {
    uint8_t seed[32];
    if (board_random(d->b, seed, sizeof seed) != 0)
        { reply_error(d, 1, p->id, DEV_E_STORAGE, "the device's random source failed"); return; }
    uint64_t created = board_unix_time(d->b);
    int k = vault_add_key(d->v, p->name, seed, created);
    sodium_memzero(seed, sizeof seed);
    if (k < 0) { reply_error(d, 1, p->id, DEV_E_BAD_STATE, "no room for another key"); return; }
    const vault_key *key = &d->v->keys[k];
    /* The statement: who made the key (identity), which key, when. */
    uint8_t msg[sizeof ATTEST_DOMAIN + 256];
    memcpy(msg, ATTEST_DOMAIN, sizeof ATTEST_DOMAIN);
    cbor_writer s;
    cw_init(&s, msg + sizeof ATTEST_DOMAIN, sizeof msg - sizeof ATTEST_DOMAIN);
    cw_map(&s, 6);
    cw_text(&s, "v");
    cw_uint(&s, 1);
    cw_text(&s, "kind");
    cw_text(&s, "tka-appliance-key");
    cw_text(&s, "identity");
    cw_bytes(&s, d->identity_pk, 32);
    cw_text(&s, "name");
    cw_text(&s, key->name);
    cw_text(&s, "public");
    cw_bytes(&s, key->pk, 32);
    cw_text(&s, "created");
    cw_uint(&s, created);
    uint8_t att[64];
    crypto_sign_detached(att, NULL, msg, sizeof ATTEST_DOMAIN + s.len, d->v->identity_sk);
    char summary[80];
    snprintf(summary, sizeof summary, "generated key '%s'", key->name);
    if (log_and_persist(d, p->id, "generate_key", "approved", key->pk, NULL, summary) != 0) {
        /* Not durable: the key must not exist in RAM either. */
        d->v->n_keys--;
        sodium_memzero(&d->v->keys[k], sizeof d->v->keys[k]);
        return;
    }
    cbor_writer *w = reply_begin(d, p->id);
    cw_map(w, 4);
    cw_text(w, "name");
    cw_text(w, key->name);
    cw_text(w, "public");
    cw_bytes(w, key->pk, 32);
    cw_text(w, "statement");
    cw_bytes(w, msg + sizeof ATTEST_DOMAIN, s.len);
    cw_text(w, "attestation");
    cw_bytes(w, att, 64);
    reply_end(d);
}

static const char *sign_event(int kind) {
    return kind == PEND_SIGN_NKS ? "sign_nks" : kind == PEND_SIGN_BATCH ? "sign_batch" : "sign_aum";
}

static void complete_sign(device *d, const dev_pending *p) {
    vault_key *key = &d->v->keys[p->key];
    uint8_t sig[64];
    if (p->kind != PEND_SIGN_BATCH) {
        crypto_sign_detached(sig, NULL, p->plan.sighash, 32, key->sk);
        key->signatures++;
    } else {
        key->signatures += p->n_items;
    }
    if (p->kind == PEND_SIGN_AUM) {
        if (p->plan.is_genesis) {
            d->genesis_valid = 1;
            memcpy(d->genesis_sighash, p->plan.sighash, 32);
            memcpy(d->genesis_key, key->pk, 32);
            memcpy(d->genesis_sig, sig, 64);
        } else {
            dev_error err;
            if (authority_note_signed_aum(&d->authority, p->aum, key->pk, sig, &err) != DEV_OK)
                board_log(d->b, "device: the signed AUM could not be noted for chaining");
        }
    }
    if (log_and_persist(d, p->id, sign_event(p->kind), "approved", key->pk, p->plan.sighash,
                        p->plan.summary) != 0)
        return; /* no signature leaves without its durable audit entry */
    cbor_writer *w = reply_begin(d, p->id);
    cw_map(w, 3);
    cw_text(w, "key");
    cw_bytes(w, key->pk, 32);
    if (p->kind == PEND_SIGN_BATCH) {
        if (p->n_items > 256) dev_busy_working(d, p->seq); /* about 25 µs per signature */
        cw_text(w, "digest");
        cw_bytes(w, p->plan.sighash, 32);
        cw_text(w, "signatures");
        cw_array(w, p->n_items);
        for (size_t i = 0; i < p->n_items && !w->overflow; i++) {
            crypto_sign_detached(sig, NULL, d->sighashes + 32 * i, 32, key->sk);
            cw_bytes(w, sig, 64);
        }
    } else {
        cw_text(w, "sighash");
        cw_bytes(w, p->plan.sighash, 32);
        cw_text(w, "signature");
        cw_bytes(w, sig, 64);
    }
    sodium_memzero(sig, sizeof sig);
    reply_end(d);
}

static void complete_set_policy(device *d, const dev_pending *p) {
    dev_policy old = d->policy;
    d->policy = p->policy;
    if (log_and_persist(d, p->id, "set_policy", "approved", NULL, NULL, p->summary) != 0) {
        d->policy = old;
        return;
    }
    cbor_writer *w = reply_begin(d, p->id);
    cw_map(w, 1);
    cw_text(w, "policy");
    write_policy(w, &d->policy);
    reply_end(d);
}

static void complete_wipe(device *d, const dev_pending *p) {
    dev_erase(d);
    if (log_and_persist(d, p->id, "wipe", "approved", NULL, NULL,
                        "wiped by the person: lock keys, policy and authority erased") != 0)
        return;
    empty_result(d, p->id);
}

static const char *pending_event(int kind) {
    switch (kind) {
    case PEND_SETUP: return "setup";
    case PEND_CHANGE_PIN: return "change_pin";
    case PEND_GENERATE_KEY: return "generate_key";
    case PEND_ENROLL: return "enroll";
    case PEND_SET_POLICY: return "set_policy";
    case PEND_WIPE: return "wipe";
    default: return sign_event(kind);
    }
}

void calls_complete(device *d, int verdict) {
    const dev_pending *p = &d->pend;
    if (verdict == V_APPROVED) {
        switch (p->kind) {
        case PEND_SETUP: { complete_setup(d, p); return; }
        case PEND_CHANGE_PIN: { complete_change_pin(d, p); return; }
        case PEND_GENERATE_KEY: { complete_generate_key(d, p); return; }
        case PEND_ENROLL:
            { finish_enroll(d, p->id, p->aum, p->aum_hash, "confirmed by the person"); return; }
        case PEND_SET_POLICY: { complete_set_policy(d, p); return; }
        case PEND_WIPE: { complete_wipe(d, p); return; }
        default: { complete_sign(d, p); return; }
        }
    }
    /* The person (or the clock, or the host) said no: log it, then answer. */
    char summary[AUDIT_SUMMARY_MAX + 1];
    const uint8_t *key = NULL, *sighash = NULL;
    int signing = p->kind == PEND_SIGN_NKS || p->kind == PEND_SIGN_BATCH || p->kind == PEND_SIGN_AUM;
    if (signing) {
        key = d->v->keys[p->key].pk;
        sighash = p->plan.sighash;
        snprintf(summary, sizeof summary, "%s", p->plan.summary);
    } else if (p->kind == PEND_GENERATE_KEY) {
        snprintf(summary, sizeof summary, "generate key '%s'", p->name);
    } else if (p->kind == PEND_SET_POLICY) {
        snprintf(summary, sizeof summary, "%s", p->summary);
    } else if (p->kind == PEND_ENROLL) {
        char h[53];
        fmt_aum_hash(h, sizeof h, p->aum_hash);
        snprintf(summary, sizeof summary, "enroll at %s", h);
    } else {
        snprintf(summary, sizeof summary, "%s", pending_event(p->kind));
    }
    dev_error err;
    int code = verdict_error(verdict);
    const char *msg = verdict == V_DECLINED  ? "the person declined on the device"
                      : verdict == V_TIMEOUT ? "the person did not answer in time"
                                             : "the call was cancelled";
    if (d->state == DEV_BLANK && p->kind != PEND_SETUP && p->kind != PEND_WIPE) {
        /* Only reachable if the device was erased meanwhile; nothing to log against. */
        { reply_error(d, 1, p->id, code, msg); return; }
    }
    dev_log(d, pending_event(p->kind), verdict_name(verdict), key, sighash, summary);
    if (dev_persist(d, &err) != DEV_OK) { reply_error(d, 1, p->id, err.code, err.message); return; }
    reply_error(d, 1, p->id, code, msg);
}

/* ---- the envelope ---- */

typedef struct {
    const char *name;
    void (*fn)(device *d, const dev_call *c);
    int while_pending; /* answered while another call waits for the person */
    int idle;          /* does not count as activity for auto-lock */
} method;

static const method methods[] = {
    {"info", m_info, 1, 1},
    {"status", m_status, 1, 1},
    {"cancel", m_cancel, 1, 0},
    {"setup", m_setup, 0, 0},
    {"unlock", m_unlock, 0, 0},
    {"lock", m_lock, 0, 0},
    {"change_pin", m_change_pin, 0, 0},
    {"generate_key", m_generate_key, 0, 0},
    {"list_keys", m_list_keys, 0, 0},
    {"enroll", m_enroll, 0, 0},
    {"authority", m_authority, 0, 0},
    {"authority_update", m_authority_update, 0, 0},
    {"sign_nks", m_sign_nks, 0, 0},
    {"sign_batch", m_sign_batch, 0, 0},
    {"sign_aum", m_sign_aum, 0, 0},
    {"audit_log", m_audit_log, 0, 0},
    {"get_policy", m_get_policy, 0, 0},
    {"set_policy", m_set_policy, 0, 0},
    {"wipe", m_wipe, 0, 0},
};

void calls_handle(device *d, uint8_t seq, const uint8_t *msg, size_t len, int too_large) {
    char text[DEV_ERROR_MESSAGE_MAX];
    if (too_large) {
        snprintf(text, sizeof text, "the request exceeds max_message (%u bytes)", DEV_MAX_MESSAGE);
        { reply_error(d, 0, 0, DEV_E_TOO_LARGE, text); return; }
    }
    const char *why = NULL;
    if (cbor_check(msg, len, &why) != 0) {
        snprintf(text, sizeof text, "malformed request: %s", why);
        { reply_error(d, 0, 0, DEV_E_PROTOCOL, text); return; }
    }
    cbor_item top = {msg, len};
    if (cbor_type(top) != CB_MAP)
        { reply_error(d, 0, 0, DEV_E_PROTOCOL, "a request is a CBOR map"); return; }
    dev_call c;
    memset(&c, 0, sizeof c);
    c.seq = seq;
    c.msg_len = len;
    c.method = "";
    cbor_item v;
    if (!cbor_map_find(top, "id", &v) || cbor_uint(v, &c.id) != 0)
        { reply_error(d, 0, 0, DEV_E_PROTOCOL, "a request needs an unsigned integer id"); return; }
    c.has_id = 1;
    cbor_iter it;
    cbor_item k;
    cbor_iter_init(top, &it);
    while (cbor_next_pair(&it, &k, &v)) {
        if (!cbor_text_is(k, "id") && !cbor_text_is(k, "method") && !cbor_text_is(k, "params"))
            { reply_error(d, 1, c.id, DEV_E_PROTOCOL,
                               "a request has only id, method and params"); return; }
    }
    const uint8_t *mp;
    size_t mn;
    if (!cbor_map_find(top, "method", &v) || cbor_text(v, &mp, &mn) != 0)
        { reply_error(d, 1, c.id, DEV_E_PROTOCOL, "a request needs a text method"); return; }
    if (cbor_map_find(top, "params", &c.params)) {
        if (cbor_type(c.params) != CB_MAP)
            { reply_error(d, 1, c.id, DEV_E_PROTOCOL, "params must be a map"); return; }
        c.has_params = 1;
    }
    const method *m = NULL;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strlen(methods[i].name) == mn && memcmp(methods[i].name, mp, mn) == 0) m = &methods[i];
    }
    if (m == NULL) {
        char shown[64];
        screen_escape(shown, sizeof shown, mp, mn);
        snprintf(text, sizeof text, "no method '%s'", shown);
        { reply_error(d, 1, c.id, DEV_E_UNKNOWN_METHOD, text); return; }
    }
    c.method = m->name;
    if (d->pend.kind != PEND_NONE && !m->while_pending) {
        snprintf(text, sizeof text, "another call (%s) is waiting for the person", d->pend.method);
        { reply_error(d, 1, c.id, DEV_E_BUSY, text); return; }
    }
    if (!m->idle) d->last_activity = board_millis(d->b);
    m->fn(d, &c);
}
