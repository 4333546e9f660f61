/*
 * Consistent Overhead Byte Stuffing (docs/appliance.md §1): frames contain no 0x00 byte, so a
 * 0x00 always marks the end of a frame and a receiver resynchronises after line noise.
 */
#ifndef FW_COBS_H
#define FW_COBS_H

#include <stddef.h>
#include <stdint.h>

/* Worst case of cobs_encode for n input bytes (one code byte per 254 bytes, plus one). */
#define COBS_ENCODED_MAX(n) ((n) + (n) / 254 + 1)

/* Encodes `len` bytes into out (without the 0x00 delimiter). Returns the encoded length, or 0
 * if `cap` is smaller than COBS_ENCODED_MAX(len). */
size_t cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* Decodes one frame (without its delimiter). Returns 0 and sets *out_len, or -1 if the input
 * is not a valid encoding (a 0x00 byte, a block running past the end) or does not fit `cap`. */
int cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

#endif
