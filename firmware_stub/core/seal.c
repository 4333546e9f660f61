#include "seal.h"

#include <string.h>

#include <sodium.h>

#define AD_DOMAIN "tka-appliance seal v1"
#define AD_LEN (sizeof AD_DOMAIN + 2 + SEAL_SALT_LEN + 4 + 4 + 32)

int seal_params_ok(uint32_t opslimit, uint32_t memlimit) {
    return opslimit >= crypto_pwhash_argon2id_OPSLIMIT_MIN && opslimit <= SEAL_OPSLIMIT_MAX &&
           memlimit >= SEAL_MEMLIMIT_MIN && memlimit <= SEAL_MEMLIMIT_MAX;
}

int seal_derive(uint8_t key[SEAL_KEY_LEN], const uint8_t *pin, size_t pin_len,
                const seal_header *h) {
    if (!seal_params_ok(h->opslimit, h->memlimit)) return -1;
    return crypto_pwhash(key, SEAL_KEY_LEN, (const char *)pin, pin_len, h->salt, h->opslimit,
                         h->memlimit, crypto_pwhash_ALG_ARGON2ID13) == 0
               ? 0
               : -1;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* "tka-appliance seal v1\0" ‖ version (2, BE) ‖ salt ‖ opslimit ‖ memlimit ‖ identity public */
static void associated(uint8_t ad[AD_LEN], const seal_header *h, const uint8_t identity[32]) {
    size_t o = sizeof AD_DOMAIN;
    memcpy(ad, AD_DOMAIN, o);
    ad[o++] = 0;
    ad[o++] = SEAL_VERSION;
    memcpy(ad + o, h->salt, SEAL_SALT_LEN);
    o += SEAL_SALT_LEN;
    put32(ad + o, h->opslimit);
    put32(ad + o + 4, h->memlimit);
    memcpy(ad + o + 8, identity, 32);
}

void seal_encrypt(uint8_t *ct, const uint8_t *pt, size_t pt_len, const uint8_t key[SEAL_KEY_LEN],
                  const seal_header *h, const uint8_t identity_public[32]) {
    uint8_t ad[AD_LEN];
    associated(ad, h, identity_public);
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, pt, pt_len, ad, sizeof ad, NULL,
                                               h->nonce, key);
}

int seal_decrypt(uint8_t *pt, const uint8_t *ct, size_t ct_len, const uint8_t key[SEAL_KEY_LEN],
                 const seal_header *h, const uint8_t identity_public[32]) {
    uint8_t ad[AD_LEN];
    if (ct_len < SEAL_TAG_LEN) return -1;
    associated(ad, h, identity_public);
    return crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, ct_len, ad, sizeof ad,
                                                      h->nonce, key) == 0
               ? 0
               : -1;
}
