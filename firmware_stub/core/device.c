/* The device's life: boot from flash, the link glue and response queue, timers, persistence,
 * locking and erasing. The calls themselves are in calls.c, confirmation in confirm.c. */
#include "device.h"

#include <string.h>

#include <sodium.h>

#include "device_internal.h"
#include "store.h"

/* ---- response queue ---- */

static size_t tx_used(const device *d) {
    if (d->txq_n == 0) return 0;
    const dev_txmsg *m = &d->txq[d->txq_n - 1];
    return m->off + m->len;
}

static void tx_kick(device *d) {
    if (d->tx_sending || d->txq_n == 0 || link_tx_busy(&d->link)) return;
    d->tx_sending = 1;
    link_send(&d->link, d->tx + d->txq[0].off, d->txq[0].len, board_millis(d->b));
}

static void on_sent(void *ctx, int ok) {
    device *d = ctx;
    if (!ok) board_log(d->b, "link: a response was given up (no acknowledgement)");
    if (d->txq_n == 0) return;
    /* Drop the front; the rest move to the start (they are small next to the arena). */
    size_t front = d->txq[0].len;
    size_t rest = tx_used(d) - front;
    memmove(d->tx, d->tx + front, rest);
    for (unsigned i = 1; i < d->txq_n; i++) {
        d->txq[i - 1] = d->txq[i];
        d->txq[i - 1].off -= front;
    }
    d->txq_n--;
    d->tx_sending = 0;
    tx_kick(d);
}

cbor_writer *reply_begin(device *d, uint64_t id) {
    size_t used = tx_used(d);
    cw_init(&d->w, d->tx + used, sizeof d->tx - used);
    if (d->txq_n >= DEV_TX_QUEUE) d->w.overflow = 1;
    d->reply_id = id;
    cw_map(&d->w, 2);
    cw_text(&d->w, "id");
    cw_uint(&d->w, id);
    cw_text(&d->w, "result");
    return &d->w;
}

static void enqueue(device *d) {
    if (d->in_reset) return; /* RESET drops every response, this one too */
    d->txq[d->txq_n].off = tx_used(d);
    d->txq[d->txq_n].len = d->w.len;
    d->txq_n++;
    tx_kick(d);
}

static void error_begin(device *d, int has_id, uint64_t id, int code, const char *message,
                        int extra) {
    char safe[DEV_ERROR_MESSAGE_MAX];
    size_t n = strlen(message);
    if (!utf8_valid((const uint8_t *)message, n)) {
        screen_escape(safe, sizeof safe, (const uint8_t *)message, n);
        message = safe;
    }
    size_t used = tx_used(d);
    cw_init(&d->w, d->tx + used, sizeof d->tx - used);
    cw_map(&d->w, 2);
    cw_text(&d->w, "id");
    if (has_id) cw_uint(&d->w, id);
    else cw_null(&d->w);
    cw_text(&d->w, "error");
    cw_map(&d->w, 2 + (extra ? 1 : 0));
    cw_text(&d->w, "code");
    cw_uint(&d->w, (uint64_t)code);
    cw_text(&d->w, "message");
    cw_text(&d->w, message);
}

static void error_end(device *d) {
    if (d->w.overflow || d->txq_n >= DEV_TX_QUEUE) {
        board_log(d->b, "device: no room for a response; dropped");
        return;
    }
    enqueue(d);
}

void reply_error(device *d, int has_id, uint64_t id, int code, const char *message) {
    error_begin(d, has_id, id, code, message, 0);
    error_end(d);
}

void reply_error_uint(device *d, uint64_t id, int code, const char *message, const char *key,
                      uint64_t v) {
    error_begin(d, 1, id, code, message, 1);
    cw_text(&d->w, key);
    cw_uint(&d->w, v);
    error_end(d);
}

void reply_error_bytes(device *d, uint64_t id, int code, const char *message, const char *key,
                       const uint8_t *b, size_t n) {
    error_begin(d, 1, id, code, message, 1);
    cw_text(&d->w, key);
    cw_bytes(&d->w, b, n);
    error_end(d);
}

void reply_end(device *d) {
    if (d->w.overflow) {
        /* Only a response beyond every bound gets here. */
        reply_error(d, 1, d->reply_id, DEV_E_TOO_LARGE,
                    "the response does not fit the device's buffer");
        return;
    }
    enqueue(d);
}

/* ---- link callbacks ---- */

static void on_write(void *ctx, const uint8_t *bytes, size_t len) {
    device *d = ctx;
    board_serial_write(d->b, bytes, len);
}

static int can_deliver(void *ctx) {
    device *d = ctx;
    /* Room for this request's response, a cancelled call's and the pending one's. */
    return d->txq_n + 3 <= DEV_TX_QUEUE && sizeof d->tx - tx_used(d) >= DEV_TX_RESERVE;
}

static void on_deliver(void *ctx, uint8_t seq, const uint8_t *msg, size_t len, int too_large) {
    device *d = ctx;
    int buf = d->rx_cur;
    calls_handle(d, seq, msg, len, too_large);
    /* The request may hold a PIN: wipe it, unless a pending call keeps it (then confirm.c
     * wipes it when the call ends). */
    if (d->pend.kind == PEND_NONE || d->pend.held_rx != buf) {
        size_t n = d->link.rx_high > len ? d->link.rx_high : len;
        if (n > DEV_MAX_MESSAGE) n = DEV_MAX_MESSAGE;
        sodium_memzero(d->rx[buf], n);
        d->link.rx_high = 0;
    }
}

static void on_reset(void *ctx, int reply) {
    device *d = ctx;
    if (reply) return; /* the device never sends RESET */
    d->in_reset = 1;
    if (d->pend.kind != PEND_NONE) confirm_end(d, V_CANCELLED);
    d->in_reset = 0;
    d->txq_n = 0;
    d->tx_sending = 0;
    if (d->state == DEV_UNLOCKED) authority_drop_tentative(&d->authority);
    sodium_memzero(d->rx[d->rx_cur], sizeof d->rx[d->rx_cur]);
    d->link.rx_high = 0;
    board_log(d->b, "link: RESET from the host");
}

/* ---- persistence and audit ---- */

int dev_log(device *d, const char *event, const char *verdict, const uint8_t *key,
            const uint8_t *sighash, const char *summary) {
    return audit_append(&d->audit, d->v->identity_sk, board_unix_time(d->b), event, verdict, key,
                        sighash, summary);
}

int dev_persist(device *d, dev_error *err) {
    if (d->state == DEV_UNLOCKED) {
        size_t pl = 0;
        if (vault_serialize(d->v, &d->policy, &d->authority, d->plain, d->plain_cap, &pl) != 0 ||
            pl + SEAL_TAG_LEN > sizeof d->seal_ct) {
            sodium_memzero(d->plain, d->plain_cap);
            return dev_fail(err, DEV_E_STORAGE, "the device's state does not fit its flash");
        }
        if (board_random(d->b, d->seal.nonce, SEAL_NONCE_LEN) != 0) {
            sodium_memzero(d->plain, pl);
            return dev_fail(err, DEV_E_STORAGE, "the device's random source failed");
        }
        seal_encrypt(d->seal_ct, d->plain, pl, d->v->seal_key, &d->seal, d->identity_pk);
        sodium_memzero(d->plain, pl);
        d->seal_ct_len = pl + SEAL_TAG_LEN;
        d->sealed = 1;
    }
    size_t len = 0;
    int rc = store_encode(d->image, sizeof d->image, &len, d->v->identity_sk, d->pin_retries,
                          &d->audit, d->sealed, &d->seal, d->seal_ct, d->seal_ct_len);
    if (rc == 0) rc = board_flash_write(d->b, d->image, len);
    /* The image buffer held the identity seed: do not leave it there. */
    sodium_memzero(d->image + STORE_HEADER_LEN, 32);
    if (rc != 0) return dev_fail(err, DEV_E_STORAGE, "the device could not write its flash");
    return DEV_OK;
}

void dev_lock(device *d) {
    vault_lock(d->v);
    if (d->state == DEV_UNLOCKED) d->state = DEV_LOCKED;
    policy_defaults(&d->policy);
    authority_reset(&d->authority);
    d->genesis_valid = 0;
}

void dev_erase(device *d) {
    vault_lock(d->v);
    d->sealed = 0;
    sodium_memzero(d->seal_ct, sizeof d->seal_ct);
    d->seal_ct_len = 0;
    memset(&d->seal, 0, sizeof d->seal);
    policy_defaults(&d->policy);
    authority_reset(&d->authority);
    d->genesis_valid = 0;
    d->pin_retries = STORE_PIN_TRIES;
    d->state = DEV_BLANK;
}

void dev_busy_working(device *d, uint8_t seq) { link_send_busy(&d->link, seq, 2); }

/* ---- the board's API ---- */

static int boot_fail(device *d, dev_error *err, const char *msg, const char *why) {
    dev_fail(err, DEV_E_STORAGE, "%s%s%s", msg, why ? ": " : "", why ? why : "");
    device_shutdown(d);
    return -1;
}

int device_boot(device *d, board *b, dev_error *err) {
    d->b = b;
    d->booted = 0;
    d->v = NULL;
    d->plain = NULL;
    if (d->kdf_opslimit == 0 || !seal_params_ok(d->kdf_opslimit, d->kdf_memlimit)) {
        d->kdf_opslimit = SEAL_OPSLIMIT;
        d->kdf_memlimit = SEAL_MEMLIMIT;
    }
    if (sodium_init() < 0) return boot_fail(d, err, "libsodium could not start", NULL);
    if (vault_plain_max() + SEAL_TAG_LEN > DEV_SEAL_MAX ||
        store_image_max(DEV_SEAL_MAX) > sizeof d->image)
        return boot_fail(d, err, "the firmware's size limits are inconsistent", NULL);
    d->v = vault_alloc();
    d->plain_cap = vault_plain_max();
    d->plain = sodium_malloc(d->plain_cap);
    if (d->v == NULL || d->plain == NULL) return boot_fail(d, err, "no secure memory", NULL);

    d->state = DEV_BLANK;
    d->sealed = 0;
    d->seal_ct_len = 0;
    memset(&d->seal, 0, sizeof d->seal);
    policy_defaults(&d->policy);
    authority_reset(&d->authority);
    audit_reset(&d->audit);
    memset(&d->pend, 0, sizeof d->pend);
    d->pend.kind = PEND_NONE;
    d->pend.held_rx = -1;
    d->screen_no = 0;
    d->txq_n = 0;
    d->tx_sending = 0;
    d->in_reset = 0;
    d->genesis_valid = 0;
    d->rx_cur = 0;

    size_t len = 0;
    int r = board_flash_read(b, d->image, sizeof d->image, &len);
    if (r < 0) return boot_fail(d, err, "the flash cannot be read", NULL);
    uint8_t seed[32];
    if (r == 1) {
        /* First boot: the identity key is made now and never changes. */
        if (board_random(b, seed, sizeof seed) != 0)
            return boot_fail(d, err, "the random source failed", NULL);
        crypto_sign_seed_keypair(d->identity_pk, d->v->identity_sk, seed);
        sodium_memzero(seed, sizeof seed);
        d->pin_retries = STORE_PIN_TRIES;
        if (dev_persist(d, err) != DEV_OK)
            return boot_fail(d, err, "the first flash image could not be written", NULL);
        board_log(b, "device: first boot, identity key created");
    } else {
        store_image img;
        const char *why = NULL;
        if (store_decode(d->image, len, DEV_SEAL_MAX, &img, &d->audit, &why) != 0) {
            sodium_memzero(d->image, len);
            return boot_fail(d, err, "the flash image is corrupt", why);
        }
        memcpy(seed, img.identity_seed, 32);
        crypto_sign_seed_keypair(d->identity_pk, d->v->identity_sk, seed);
        sodium_memzero(seed, sizeof seed);
        d->pin_retries = img.pin_retries;
        if (img.sealed) {
            d->sealed = 1;
            d->seal = img.seal;
            memcpy(d->seal_ct, img.ct, img.ct_len);
            d->seal_ct_len = img.ct_len;
            d->state = DEV_LOCKED;
        }
        sodium_memzero(d->image, len);
    }
    link_init(&d->link,
              &(link_callbacks){d, on_write, can_deliver, on_deliver, on_sent, on_reset, NULL},
              d->rx[0], DEV_MAX_MESSAGE, board_millis(b));
    d->last_activity = board_millis(b);
    d->booted = 1;
    if (d->state == DEV_LOCKED && d->pin_retries == 0) {
        /* Power was cut after the last PIN attempt was counted: that attempt is spent. */
        dev_erase(d);
        dev_log(d, "wipe", "applied", NULL, NULL,
                "10 wrong PINs: lock keys, policy and authority erased");
        if (dev_persist(d, err) != DEV_OK) return boot_fail(d, err, "the wipe could not be written", NULL);
    }
    return 0;
}

void device_serial_input(device *d, const uint8_t *data, size_t len) {
    if (!d->booted) return;
    link_input(&d->link, data, len, board_millis(d->b));
}

void device_tick(device *d) {
    if (!d->booted) return;
    uint64_t now = board_millis(d->b);
    link_tick(&d->link, now);
    confirm_tick(d, now);
    /* last_activity may be a little later than `now` (set while this tick ran): not idle. */
    if (d->state == DEV_UNLOCKED && d->pend.kind == PEND_NONE && d->policy.auto_lock > 0 &&
        now > d->last_activity && now - d->last_activity >= (uint64_t)d->policy.auto_lock * 1000) {
        dev_lock(d);
        board_log(d->b, "device: locked after idleness");
    }
    tx_kick(d);
}

int device_confirming(const device *d) { return d->booted && d->pend.kind != PEND_NONE; }

void device_shutdown(device *d) {
    if (d->booted && d->pend.kind != PEND_NONE) {
        d->in_reset = 1; /* no one will read the reply */
        confirm_end(d, V_CANCELLED);
        d->in_reset = 0;
    }
    if (d->v != NULL) vault_free(d->v);
    d->v = NULL;
    if (d->plain != NULL) {
        sodium_memzero(d->plain, d->plain_cap);
        sodium_free(d->plain);
    }
    d->plain = NULL;
    if (d->booted) {
        sodium_memzero(d->rx, sizeof d->rx);
        sodium_memzero(d->image, sizeof d->image);
    }
    d->booted = 0;
}
