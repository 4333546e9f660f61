/* CRC-32 (IEEE 802.3 / zlib): the check value, known strings, and incremental use. */
#include <string.h>

#include "check.h"
#include "crc32.h"

int main(void) {
    CHECK_EQ(crc32_update(0, (const uint8_t *)"123456789", 9), 0xCBF43926u);
    CHECK_EQ(crc32_update(0, (const uint8_t *)"", 0), 0);
    CHECK_EQ(crc32_update(0, (const uint8_t *)"a", 1), 0xE8B7BE43u);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    CHECK_EQ(crc32_update(0, (const uint8_t *)fox, strlen(fox)), 0x414FA339u);
    /* In pieces: the same as at once. */
    uint32_t c = crc32_update(0, (const uint8_t *)fox, 10);
    c = crc32_update(c, (const uint8_t *)fox + 10, strlen(fox) - 10);
    CHECK_EQ(c, 0x414FA339u);
    uint8_t zeros[32] = {0};
    CHECK_EQ(crc32_update(0, zeros, 32), 0x190A55ADu);
    /* One flipped bit changes it. */
    uint8_t m[9];
    memcpy(m, "123456789", 9);
    m[4] ^= 1;
    CHECK(crc32_update(0, m, 9) != 0xCBF43926u);
    return check_report("test_crc32");
}
