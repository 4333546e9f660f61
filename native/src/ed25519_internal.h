/* Internal pieces shared by single and batch verification (and usable by bulk NKS code). */
#ifndef TKA_ED25519_INTERNAL_H
#define TKA_ED25519_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ge.h"
#include "sc.h"
#include "tka_native.h"

/* k = SHA-512(r || a || msg) mod L, over the raw bytes. */
void ed25519_challenge(sc *k, const uint8_t r[32], const uint8_t a[32], const uint8_t *msg,
                       size_t msg_len);

/* ZIP-215 single verification with A already decoded from pk (lenient). 1/0, or
 * TKA_ERR_NOMEM. */
int ed25519_verify_zip215_decoded(const ge_p3 *a, const uint8_t pk[32], const uint8_t *msg,
                                  size_t msg_len, const uint8_t sig[64]);

/* Either rule's verdict (1/0) for a signature whose S the caller has checked (S < L) and
 * whose A and R are decoded (lenient), with half-length scalars (lattice.h) on the four-lane
 * path (ge_x4.h; meant for where it is available). A negative TKA_ERR_* only from the scalar
 * fallback's allocation. */
int ed25519_verify_decoded_pair(const ge_p3 *a, const ge_p3 *r, const uint8_t pk[32],
                                const uint8_t *msg, size_t msg_len, const uint8_t sig[64],
                                int rule);

/* Items pointing into packed buffers (see tka_verify_batch_zip215_packed); malloc'd, NULL on
 * allocation failure. */
tka_batch_item *tka_items_from_packed(const uint8_t *pks, const uint8_t *sigs,
                                      const uint8_t *msgs, const size_t *msg_offsets, size_t n);

/* Fill buf with len bytes from the OS CSPRNG (getrandom). 0 on success, -1 on failure. */
int tka_os_random(uint8_t *buf, size_t len);

#endif
