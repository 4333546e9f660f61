/*
 * What the device agrees to sign and what it shows first (docs/appliance.md §4.2–4.3). Each
 * check parses the host's bytes canonically, applies the tailnet-lock rules and the policy
 * against the tracked authority, computes the sighash itself and fills the screen; it signs
 * nothing and changes nothing. The caller shows the screen, waits for the person, signs
 * `plan.sighash` and logs `plan.summary`.
 */
#ifndef FW_CHECKS_H
#define FW_CHECKS_H

#include <stddef.h>
#include <stdint.h>

#include "authority.h"
#include "errors.h"
#include "policy.h"
#include "screen.h"

typedef struct {
    uint8_t sighash[32];     /* what will be signed (sign_batch: the batch digest) */
    int is_genesis;          /* sign_aum: a parentless checkpoint (tka init) */
    int second_confirmation; /* needs a second "yes" (a checkpoint dropping disablement values) */
    char summary[160];       /* one line for the audit log */
} sign_plan;

/* One unsigned direct or credential NKS by `key_public` under `head`; `deeplink.ptr` NULL when
 * the host passed none. */
int check_sign_nks(const dev_authority *a, const dev_policy *p, const char *key_name,
                   const uint8_t key_public[32], tka_span nks, const uint8_t head[32],
                   tka_span deeplink, screen *scr, sign_plan *plan, dev_error *err);

/* `n` unsigned NKSs, confirmed once; writes each one's sighash to sighashes[32*i] and the batch
 * digest (BLAKE2s-256 of the concatenated sighashes) to plan->sighash. */
int check_sign_batch(const dev_authority *a, const dev_policy *p, const char *key_name,
                     const uint8_t key_public[32], const tka_span *items, size_t n,
                     const uint8_t head[32], screen *scr, uint8_t *sighashes, sign_plan *plan,
                     dev_error *err);

/* One AUM (possibly carrying other keys' signatures) to be signed by `key_public`. */
int check_sign_aum(const dev_authority *a, const dev_policy *p, const char *key_name,
                   const uint8_t key_public[32], tka_span aum, screen *scr, sign_plan *plan,
                   dev_error *err);

/* After signing an AUM on top of the head (or of a tentative AUM): remember it with our
 * signature appended, so the next AUM of the same session may build on it. Not persisted;
 * dropped by authority_update(), authority_drop_tentative() (lock, RESET) and enrollment. */
int authority_note_signed_aum(dev_authority *a, tka_span aum, const uint8_t key_public[32],
                              const uint8_t signature[64], dev_error *err);
void authority_drop_tentative(dev_authority *a);

#endif
