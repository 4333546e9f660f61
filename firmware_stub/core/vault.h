/*
 * The device's secrets in RAM and the layout of what the seal protects (docs/appliance.md
 * §7.2). The vault lives in libsodium's guarded, locked memory (sodium_malloc) and is wiped with
 * sodium_memzero on lock, wipe and shutdown. Nothing here leaves the device: lock keys are
 * generated here and only their public halves are ever returned.
 */
#ifndef FW_VAULT_H
#define FW_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "authority.h"
#include "policy.h"
#include "seal.h"

#define VAULT_MAX_KEYS 16
#define VAULT_NAME_MAX 32
#define VAULT_PIN_MAX 64
#define VAULT_PLAIN_VERSION 1

typedef struct {
    char name[VAULT_NAME_MAX + 1];
    uint8_t seed[32];
    uint8_t sk[64];
    uint8_t pk[32];
    uint64_t created;
    uint64_t signatures;
} vault_key;

typedef struct {
    uint8_t identity_sk[64];     /* from the secure-element region */
    uint8_t seal_key[SEAL_KEY_LEN];
    int have_seal_key;           /* unlocked */
    uint8_t trial_key[SEAL_KEY_LEN]; /* derived from a PIN being checked */
    uint8_t pin[VAULT_PIN_MAX];  /* a PIN of the call being handled */
    size_t pin_len;
    uint8_t new_pin[VAULT_PIN_MAX];
    size_t new_pin_len;
    unsigned n_keys;
    vault_key keys[VAULT_MAX_KEYS];
} vault;

vault *vault_alloc(void);           /* NULL if secure memory cannot be had */
void vault_free(vault *v);
void vault_lock(vault *v);          /* forgets the seal key, lock keys and PINs */
void vault_forget_pins(vault *v);

/* 1 if name is 1..32 characters of a-z 0-9 . _ - */
int vault_name_ok(const uint8_t *name, size_t len);
int vault_find(const vault *v, const uint8_t *name, size_t len); /* index or -1 */
/* Adds a key from a 32-byte seed; index, or -1 when full. */
int vault_add_key(vault *v, const char *name, const uint8_t seed[32], uint64_t created);

/* Largest plaintext the seal protects. */
size_t vault_plain_max(void);
/* The sealed plaintext: version, policy, lock keys, authority. 0, or -1 if it does not fit. */
int vault_serialize(const vault *v, const dev_policy *p, const dev_authority *a, uint8_t *out,
                    size_t cap, size_t *len);
/* Loads it back (keys into v, policy, authority). 0, or -1 with a static reason. */
int vault_deserialize(vault *v, dev_policy *p, dev_authority *a, const uint8_t *in, size_t len,
                      const char **why);

/* 1 if every field is in its range of docs/appliance.md §5. */
int policy_valid(const dev_policy *p);

#endif
