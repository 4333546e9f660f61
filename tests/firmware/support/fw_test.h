/* Shared fixture of the device-level tests: one device on the in-memory board with the host's
 * end attached, and small builders for call parameters. */
#ifndef FW_TEST_H
#define FW_TEST_H

#include <string.h>

#include "cbor.h"
#include "check.h"
#include "device.h"
#include "mem_board.h"

extern device fx_dev;
extern board fx_board;
extern host_peer fx_peer;

/* A fresh board and device (fast KDF unless real_kdf), booted, RESET done. */
void fx_boot(uint64_t seed, int real_kdf);
/* Power cycle: the device boots again from the same flash. Returns device_boot's result. */
int fx_reboot(void);
void fx_teardown(void);

/* Calls: no params / a prepared params map; answer 1 yes, 0 no, -1 nobody answers. */
int fx_call(const char *method, int answer);
int fx_callp(const char *method, const cbor_writer *params, int answer);
/* The last reply's error code (0 = result). */
int fx_code(void);
int fx_result_uint(const char *key, uint64_t *v);
int fx_result_text_is(const char *key, const char *want);
int fx_result_bool(const char *key, int *v);

/* Params builder. */
typedef struct {
    uint8_t buf[1u << 16];
    cbor_writer w;
} fx_params;
void fx_params_begin(fx_params *p, size_t entries);
void fx_text(fx_params *p, const char *k, const char *v);
void fx_uint(fx_params *p, const char *k, uint64_t v);
void fx_bytes(fx_params *p, const char *k, const uint8_t *b, size_t n);
void fx_bool(fx_params *p, const char *k, int v);

/* setup with PIN "123456" approved (or the given PIN). */
void fx_setup(const char *pin);
/* Counts audit entries with that event and verdict, reading the log through the device. */
int fx_audit_count(const char *event, const char *verdict);

#endif
