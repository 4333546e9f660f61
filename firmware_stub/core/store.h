/*
 * The flash image (docs/appliance.md §7.1): one versioned, checksummed blob holding the
 * "secure element" region (identity key, PIN retry counter), the audit log and the sealed
 * state. Every length is checked against the image and a fixed bound before use; a bad image
 * is reported, never repaired.
 */
#ifndef FW_STORE_H
#define FW_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "seal.h"

#define STORE_MAGIC "TKAF"
#define STORE_VERSION 1
#define STORE_HEADER_LEN 12
#define STORE_SE_LEN 36
#define STORE_CHECKSUM_LEN 32
#define STORE_PIN_TRIES 10

typedef struct {
    const uint8_t *identity_seed; /* points into the image */
    unsigned pin_retries;
    int sealed;
    seal_header seal;
    const uint8_t *ct;            /* points into the image */
    size_t ct_len;
} store_image;

/* Largest image for a sealed blob of at most ct_max bytes. */
size_t store_image_max(size_t ct_max);

/* Parses an image, filling `out` and the audit log. 0, or -1 with a static reason. */
int store_decode(const uint8_t *img, size_t len, size_t ct_max, store_image *out, audit_log *log,
                 const char **why);

/* Writes an image into img (cap bytes). 0 and *len, or -1 if it does not fit. */
int store_encode(uint8_t *img, size_t cap, size_t *len, const uint8_t identity_seed[32],
                 unsigned pin_retries, const audit_log *log, int sealed, const seal_header *h,
                 const uint8_t *ct, size_t ct_len);

#endif
