/* Ed25519 verification — interim stub so the extension links; the real code lands next. */
#include "tka_native.h"

int tka_verify(const uint8_t *pk, size_t pk_len, const uint8_t *msg, size_t msg_len,
               const uint8_t *sig, size_t sig_len, int rule) {
    (void)pk; (void)pk_len; (void)msg; (void)msg_len; (void)sig; (void)sig_len;
    if (rule != TKA_RULE_ZIP215 && rule != TKA_RULE_COFACTORLESS) return TKA_ERR_RULE;
    return 0;
}

int tka_verify_batch_zip215(const tka_batch_item *items, size_t n, uint8_t *verdicts) {
    (void)items;
    for (size_t i = 0; i < n; i++) verdicts[i] = 0;
    return 0;
}
