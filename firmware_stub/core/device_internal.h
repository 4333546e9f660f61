/* What device.c, calls.c and confirm.c share; not for boards. */
#ifndef FW_DEVICE_INTERNAL_H
#define FW_DEVICE_INTERNAL_H

#include "device.h"

enum { V_APPROVED, V_DECLINED, V_TIMEOUT, V_CANCELLED };
const char *verdict_name(int verdict);
int verdict_error(int verdict); /* DEV_E_DECLINED, … */

/* One request being handled. */
typedef struct {
    int has_id;
    uint64_t id;
    uint8_t seq;
    const char *method;   /* NUL-terminated copy */
    int has_params;
    cbor_item params;
    size_t msg_len;
} dev_call;

/* device.c */
int dev_persist(device *d, dev_error *err);        /* writes the whole image */
int dev_log(device *d, const char *event, const char *verdict, const uint8_t *key,
            const uint8_t *sighash, const char *summary);
void dev_lock(device *d);
void dev_erase(device *d);                          /* lock keys, policy, authority: blank */
void dev_busy_working(device *d, uint8_t seq);      /* BUSY "working" before long work */
cbor_writer *reply_begin(device *d, uint64_t id);   /* {"id": id, "result": … */
void reply_end(device *d);
/* Error replies: plain (id null unless has_id), or with one extra field, a uint (`retries`) or
 * bytes (`head`). */
void reply_error(device *d, int has_id, uint64_t id, int code, const char *message);
void reply_error_uint(device *d, uint64_t id, int code, const char *message, const char *key,
                      uint64_t v);
void reply_error_bytes(device *d, uint64_t id, int code, const char *message, const char *key,
                       const uint8_t *b, size_t n);

/* calls.c */
void calls_handle(device *d, uint8_t seq, const uint8_t *msg, size_t len, int too_large);
void calls_complete(device *d, int verdict);        /* the pending call is answered */

/* confirm.c */
void confirm_begin(device *d, const dev_call *c, int kind, uint32_t timeout_s);
void confirm_end(device *d, int verdict);
void confirm_tick(device *d, uint64_t now);
uint32_t confirm_seconds_left(const device *d);

#endif
