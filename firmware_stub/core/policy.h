/* The device's signing policy (docs/appliance.md §5). */
#ifndef FW_POLICY_H
#define FW_POLICY_H

#include <stdint.h>

typedef struct {
    uint32_t cosigners;        /* M: key changes need M-1 valid signatures by others first */
    uint32_t max_batch;        /* most node-key signatures in one sign_batch */
    uint32_t confirm_timeout;  /* seconds the device waits for the person */
    uint32_t auto_lock;        /* seconds of idleness before locking; 0 = never */
    uint32_t force_audit;      /* 1: refuse to sign while unread entries would be overwritten */
} dev_policy;

#define POLICY_COSIGNERS_MAX 16
#define POLICY_MAX_BATCH_MAX 20000
#define POLICY_CONFIRM_TIMEOUT_MIN 10
#define POLICY_CONFIRM_TIMEOUT_MAX 600
#define POLICY_AUTO_LOCK_MAX 86400

static inline void policy_defaults(dev_policy *p) {
    p->cosigners = 1;
    p->max_batch = 5000;
    p->confirm_timeout = 90;
    p->auto_lock = 900;
    p->force_audit = 0;
}

#endif
