/*
 * Sealing (docs/appliance.md §7): the PIN goes through Argon2id (libsodium crypto_pwhash) with a
 * random salt; the derived key seals the device's secret state with XChaCha20-Poly1305. The
 * associated data binds the format version, the salt, the KDF parameters and the identity
 * public key, so none of them can be swapped without the seal failing.
 */
#ifndef FW_SEAL_H
#define FW_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define SEAL_VERSION 1
#define SEAL_SALT_LEN 16
#define SEAL_NONCE_LEN 24
#define SEAL_KEY_LEN 32
#define SEAL_TAG_LEN 16

/* The KDF parameters of docs/appliance.md §7; boards (and tests) may choose others, which are stored with
 * the seal and bound by it. */
#define SEAL_OPSLIMIT 2
#define SEAL_MEMLIMIT (64u * 1024 * 1024)
/* What an image may ask for: enough to refuse a tampered image that demands gigabytes. */
#define SEAL_OPSLIMIT_MAX 16
#define SEAL_MEMLIMIT_MIN 8192u
#define SEAL_MEMLIMIT_MAX (1024u * 1024 * 1024)

typedef struct {
    uint8_t salt[SEAL_SALT_LEN];
    uint32_t opslimit;
    uint32_t memlimit; /* bytes */
    uint8_t nonce[SEAL_NONCE_LEN];
} seal_header;

/* 1 if the parameters are within the bounds above. */
int seal_params_ok(uint32_t opslimit, uint32_t memlimit);

/* Argon2id of the PIN under the header's salt and parameters. 0, or -1 (out of memory). */
int seal_derive(uint8_t key[SEAL_KEY_LEN], const uint8_t *pin, size_t pin_len,
                const seal_header *h);

/* ct receives pt_len + SEAL_TAG_LEN bytes; the nonce in h must be fresh. */
void seal_encrypt(uint8_t *ct, const uint8_t *pt, size_t pt_len, const uint8_t key[SEAL_KEY_LEN],
                  const seal_header *h, const uint8_t identity_public[32]);
/* 0 and pt (ct_len - SEAL_TAG_LEN bytes), or -1 if the key, header or ciphertext is wrong. */
int seal_decrypt(uint8_t *pt, const uint8_t *ct, size_t ct_len, const uint8_t key[SEAL_KEY_LEN],
                 const seal_header *h, const uint8_t identity_public[32]);

#endif
