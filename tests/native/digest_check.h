/* Shared by the hash tests: compare a digest with its expected lower-case hex, count failures. */
#ifndef TKA_TEST_DIGEST_CHECK_H
#define TKA_TEST_DIGEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

static void check_hex(const char *name, const uint8_t *got, size_t len, const char *want_hex) {
    char hex[2 * 64 + 1] = {0};
    for (size_t i = 0; i < len && i < 64; i++) snprintf(hex + 2 * i, 3, "%02x", got[i]);
    if (strcmp(hex, want_hex) != 0) {
        fprintf(stderr, "%s: got %s want %s\n", name, hex, want_hex);
        failures++;
    }
}

#endif
