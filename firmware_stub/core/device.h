/*
 * The device: what a board drives. A board calls device_boot() once, then feeds serial bytes
 * (device_serial_input), button presses (device_button) and a tick at least every 50 ms
 * (device_tick), and calls device_shutdown() before it stops. Everything the device does
 * goes out through board.h. The struct is complete so that a board can allocate it statically
 * (it is large: message buffers, the tracked authority, the audit log); only the core touches
 * its fields. Secrets are not in it: they live in the vault, in libsodium's guarded memory.
 */
#ifndef FW_DEVICE_H
#define FW_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "aum_reader.h"
#include "audit.h"
#include "authority.h"
#include "board.h"
#include "cbor.h"
#include "checks.h"
#include "errors.h"
#include "link.h"
#include "policy.h"
#include "screen.h"
#include "seal.h"
#include "vault.h"

#define FW_VERSION "0.1.0"
#define FW_PROTOCOL 1

#define DEV_MAX_MESSAGE (4u * 1024 * 1024)   /* largest request (info's max_message) */
#define DEV_TX_ARENA (2560u * 1024)          /* queued responses, bytes */
#define DEV_TX_QUEUE 8                       /* queued responses, count */
#define DEV_TX_RESERVE (256u * 1024)         /* a request is taken only with this much free */
#define DEV_SEAL_MAX (512u * 1024)           /* the sealed blob */
#ifdef AUTH_UPDATE_MAX
#define DEV_MAX_UPDATE AUTH_UPDATE_MAX       /* AUMs in one authority_update */
#else
#define DEV_MAX_UPDATE 512
#endif
#define DEV_PIN_MIN 6
#define DEV_HOST_SILENCE_MS 10000            /* a pending call is cancelled after this */
#define DEV_BUSY_INTERVAL_MS 1000

enum { DEV_BLANK = 0, DEV_LOCKED = 1, DEV_UNLOCKED = 2 };

/* What a call waiting for the person will do once answered. */
enum {
    PEND_NONE, PEND_SETUP, PEND_CHANGE_PIN, PEND_GENERATE_KEY, PEND_ENROLL, PEND_SIGN_NKS,
    PEND_SIGN_BATCH, PEND_SIGN_AUM, PEND_SET_POLICY, PEND_WIPE,
};

typedef struct {
    int kind;                 /* PEND_* */
    uint64_t id;
    uint8_t seq;              /* link seq of the request (BUSY names it) */
    char method[24];
    uint64_t deadline;        /* board_millis() when it times out */
    uint32_t timeout_ms;
    uint64_t last_busy;
    unsigned screen_no;
    int second;               /* a second confirmation is needed */
    int stage;                /* 1, or 2 during the second confirmation */
    int held_rx;              /* the rx buffer holding the request, or -1 */
    size_t held_len;
    int key;                  /* vault key index (signing) */
    sign_plan plan;
    size_t n_items;           /* sign_batch */
    tka_span aum;             /* sign_aum, enroll: into the held rx buffer */
    uint8_t aum_hash[32];     /* enroll */
    dev_policy policy;        /* set_policy: the new policy */
    char name[VAULT_NAME_MAX + 1];
    char summary[AUDIT_SUMMARY_MAX + 1];
} dev_pending;

typedef struct {
    size_t off, len;
} dev_txmsg;

typedef struct device {
    const char *board_name;   /* set by the board before device_boot ("host"); kept by boot */
    uint32_t kdf_opslimit;    /* for new seals; 0 before boot = docs/appliance.md §7's parameters */
    uint32_t kdf_memlimit;

    board *b;
    int booted;
    int state;                /* DEV_BLANK, DEV_LOCKED, DEV_UNLOCKED */
    vault *v;                 /* secure memory */
    uint8_t identity_pk[32];
    unsigned pin_retries;

    int sealed;
    seal_header seal;
    size_t seal_ct_len;
    uint8_t seal_ct[DEV_SEAL_MAX];
    uint8_t *plain;           /* secure memory, vault_plain_max() bytes */
    size_t plain_cap;

    dev_policy policy;
    dev_authority authority;
    audit_log audit;

    fw_link link;
    uint8_t rx[2][DEV_MAX_MESSAGE];
    int rx_cur;

    uint8_t tx[DEV_TX_ARENA];
    dev_txmsg txq[DEV_TX_QUEUE];
    unsigned txq_n;
    int tx_sending;

    dev_pending pend;         /* kind PEND_NONE: idle */
    screen scr;
    unsigned screen_no;
    uint64_t last_activity;
    int in_reset;             /* replies are dropped while a RESET is handled */

    int genesis_valid;        /* the last genesis this device signed (RAM only) */
    uint8_t genesis_sighash[32];
    uint8_t genesis_key[32];
    uint8_t genesis_sig[64];

    /* Scratch kept off the stack. */
    tka_aum aum_scratch;
    tka_span spans[POLICY_MAX_BATCH_MAX > DEV_MAX_UPDATE ? POLICY_MAX_BATCH_MAX : DEV_MAX_UPDATE];
    uint8_t sighashes[32 * POLICY_MAX_BATCH_MAX];
    uint8_t image[4 * 1024 + AUDIT_KEEP * (2 + AUDIT_BODY_MAX + 64) + DEV_SEAL_MAX];
    cbor_writer w;
    uint64_t reply_id;
} device;

/* Reads the flash and gets ready. First boot creates the identity key. A corrupt or unreadable
 * image is an error (err says why, in one line) and the image is never overwritten. */
int device_boot(device *d, board *b, dev_error *err);
void device_serial_input(device *d, const uint8_t *data, size_t len);
void device_button(device *d, int approve);
void device_tick(device *d);
/* Wipes every secret; the device must be booted again to be used. */
void device_shutdown(device *d);

/* For boards and tests: a screen is waiting for the person. */
int device_confirming(const device *d);

#endif
