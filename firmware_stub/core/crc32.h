/* CRC-32 as IEEE 802.3 and zlib's crc32 (reflected polynomial 0xEDB88320): the frame check of
 * docs/appliance.md §1. */
#ifndef FW_CRC32_H
#define FW_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* crc32_update(0, data, len) is the CRC of data; pass the previous result to continue. */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len);

#endif
