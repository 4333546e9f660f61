#include "errors.h"

#include <stdarg.h>
#include <stdio.h>

int dev_fail(dev_error *err, int code, const char *fmt, ...) {
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *dev_error_name(int code) {
    static const char *const names[] = {
        "ok", "protocol_error", "unknown_method", "declined", "locked", "wrong_pin",
        "policy_refused", "busy", "timeout", "cancelled", "bad_state", "not_found",
        "invalid_message", "stale_authority", "audit_full", "wiped", "storage", "too_large",
    };
    if (code < 0 || (size_t)code >= sizeof names / sizeof names[0]) return "unknown";
    return names[code];
}
