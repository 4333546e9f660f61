/*
 * Error codes of the appliance's calls (docs/appliance.md §2.1) and the one error record every
 * core function fills: a code and a one-line message for the host (no secrets, ever).
 */
#ifndef FW_ERRORS_H
#define FW_ERRORS_H

#include <stddef.h>

enum {
    DEV_OK = 0,
    DEV_E_PROTOCOL = 1,
    DEV_E_UNKNOWN_METHOD = 2,
    DEV_E_DECLINED = 3,
    DEV_E_LOCKED = 4,
    DEV_E_WRONG_PIN = 5,
    DEV_E_POLICY = 6,
    DEV_E_BUSY = 7,
    DEV_E_TIMEOUT = 8,
    DEV_E_CANCELLED = 9,
    DEV_E_BAD_STATE = 10,
    DEV_E_NOT_FOUND = 11,
    DEV_E_INVALID_MESSAGE = 12,
    DEV_E_STALE_AUTHORITY = 13,
    DEV_E_AUDIT_FULL = 14,
    DEV_E_WIPED = 15,
    DEV_E_STORAGE = 16,
    DEV_E_TOO_LARGE = 17,
};

#define DEV_ERROR_MESSAGE_MAX 240

typedef struct {
    int code;
    char message[DEV_ERROR_MESSAGE_MAX];
} dev_error;

/* Records `code` and a printf-style message (truncated to fit) in `err` (may be NULL) and
 * returns `code`, so callers can write `return dev_fail(err, DEV_E_POLICY, "...", ...);`. */
int dev_fail(dev_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The code's name as in the protocol ("policy_refused"), "unknown" for others. */
const char *dev_error_name(int code);

#endif
