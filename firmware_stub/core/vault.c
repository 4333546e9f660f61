#include "vault.h"

#include <string.h>

#include <sodium.h>

vault *vault_alloc(void) {
    vault *v = sodium_malloc(sizeof *v);
    if (v == NULL) return NULL;
    sodium_memzero(v, sizeof *v);
    return v;
}

void vault_free(vault *v) {
    if (v == NULL) return;
    sodium_memzero(v, sizeof *v);
    sodium_free(v);
}

void vault_forget_pins(vault *v) {
    sodium_memzero(v->trial_key, sizeof v->trial_key);
    sodium_memzero(v->pin, sizeof v->pin);
    sodium_memzero(v->new_pin, sizeof v->new_pin);
    v->pin_len = v->new_pin_len = 0;
}

void vault_lock(vault *v) {
    sodium_memzero(v->seal_key, sizeof v->seal_key);
    v->have_seal_key = 0;
    sodium_memzero(v->keys, sizeof v->keys);
    v->n_keys = 0;
    vault_forget_pins(v);
}

int vault_name_ok(const uint8_t *name, size_t len) {
    if (len < 1 || len > VAULT_NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

int vault_find(const vault *v, const uint8_t *name, size_t len) {
    for (unsigned i = 0; i < v->n_keys; i++) {
        if (strlen(v->keys[i].name) == len && memcmp(v->keys[i].name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

int vault_add_key(vault *v, const char *name, const uint8_t seed[32], uint64_t created) {
    if (v->n_keys >= VAULT_MAX_KEYS) return -1;
    vault_key *k = &v->keys[v->n_keys];
    size_t n = strlen(name);
    if (n > VAULT_NAME_MAX) return -1;
    memcpy(k->name, name, n);
    k->name[n] = '\0';
    memcpy(k->seed, seed, 32);
    crypto_sign_seed_keypair(k->pk, k->sk, k->seed);
    k->created = created;
    k->signatures = 0;
    return (int)v->n_keys++;
}

int policy_valid(const dev_policy *p) {
    return p->cosigners >= 1 && p->cosigners <= POLICY_COSIGNERS_MAX && p->max_batch >= 1 &&
           p->max_batch <= POLICY_MAX_BATCH_MAX && p->confirm_timeout >= POLICY_CONFIRM_TIMEOUT_MIN &&
           p->confirm_timeout <= POLICY_CONFIRM_TIMEOUT_MAX && p->auto_lock <= POLICY_AUTO_LOCK_MAX &&
           p->force_audit <= 1;
}

#define KEY_RECORD (1 + VAULT_NAME_MAX + 32 + 8 + 8)
#define PLAIN_FIXED (1 + 5 * 4 + 1)

size_t vault_plain_max(void) {
    return PLAIN_FIXED + VAULT_MAX_KEYS * KEY_RECORD + 4 + authority_serialized_max();
}

static void put_be(uint8_t *p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

int vault_serialize(const vault *v, const dev_policy *p, const dev_authority *a, uint8_t *out,
                    size_t cap, size_t *len) {
    size_t o = 0;
    if (cap < PLAIN_FIXED + v->n_keys * KEY_RECORD + 4) return -1;
    out[o++] = VAULT_PLAIN_VERSION;
    const uint32_t fields[5] = {p->cosigners, p->max_batch, p->confirm_timeout, p->auto_lock,
                                p->force_audit};
    for (int i = 0; i < 5; i++, o += 4) put_be(out + o, fields[i], 4);
    out[o++] = (uint8_t)v->n_keys;
    for (unsigned i = 0; i < v->n_keys; i++) {
        const vault_key *k = &v->keys[i];
        size_t n = strlen(k->name);
        out[o++] = (uint8_t)n;
        memcpy(out + o, k->name, n);
        o += n;
        memcpy(out + o, k->seed, 32);
        o += 32;
        put_be(out + o, k->created, 8);
        put_be(out + o + 8, k->signatures, 8);
        o += 16;
    }
    size_t alen = 0;
    if (authority_serialize(a, out + o + 4, cap - o - 4, &alen) != 0) return -1;
    if (alen > cap - o - 4 || alen > UINT32_MAX) return -1;
    put_be(out + o, alen, 4);
    *len = o + 4 + alen;
    return 0;
}

#define BAD(reason)      \
    do {                 \
        *why = (reason); \
        return -1;       \
    } while (0)

int vault_deserialize(vault *v, dev_policy *p, dev_authority *a, const uint8_t *in, size_t len,
                      const char **why) {
    size_t o = 0;
    if (len < PLAIN_FIXED) BAD("the sealed state is truncated");
    if (in[o++] != VAULT_PLAIN_VERSION) BAD("unsupported sealed state version");
    dev_policy pol;
    pol.cosigners = (uint32_t)get_be(in + 1, 4);
    pol.max_batch = (uint32_t)get_be(in + 5, 4);
    pol.confirm_timeout = (uint32_t)get_be(in + 9, 4);
    pol.auto_lock = (uint32_t)get_be(in + 13, 4);
    pol.force_audit = (uint32_t)get_be(in + 17, 4);
    o += 20;
    if (!policy_valid(&pol)) BAD("the sealed policy is out of range");
    unsigned n = in[o++];
    if (n > VAULT_MAX_KEYS) BAD("the sealed state holds too many keys");
    /* Only the keys are replaced: the seal key and the PIN being checked stay. */
    sodium_memzero(v->keys, sizeof v->keys);
    v->n_keys = 0;
    for (unsigned i = 0; i < n; i++) {
        if (len - o < 1) BAD("the sealed state is truncated");
        size_t nl = in[o++];
        if (!vault_name_ok(in + o, nl) || len - o < nl + 48) BAD("a sealed key record is malformed");
        if (vault_find(v, in + o, nl) >= 0) BAD("two sealed keys have the same name");
        char name[VAULT_NAME_MAX + 1];
        memcpy(name, in + o, nl);
        name[nl] = '\0';
        o += nl;
        int idx = vault_add_key(v, name, in + o, get_be(in + o + 32, 8));
        v->keys[idx].signatures = get_be(in + o + 40, 8);
        o += 48;
    }
    if (len - o < 4) BAD("the sealed state is truncated");
    uint64_t alen = get_be(in + o, 4);
    o += 4;
    if (alen != len - o) BAD("the sealed authority has a bad length");
    dev_error err;
    if (authority_deserialize(a, in + o, (size_t)alen, &err) != 0) BAD("the sealed authority is malformed");
    *p = pol;
    return 0;
}
