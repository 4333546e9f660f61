/* COBS: the published example vectors (Cheshire & Baker; the Wikipedia table), round trips of
 * every length around the 254-byte block boundary, and malformed encodings refused. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cobs.h"

static void vector(const uint8_t *in, size_t n, const uint8_t *want, size_t wn) {
    uint8_t enc[600], dec[600];
    size_t e = cobs_encode(in, n, enc, sizeof enc);
    CHECK_EQ(e, wn);
    CHECK(e == wn && memcmp(enc, want, wn) == 0);
    size_t d = 0;
    CHECK_EQ(cobs_decode(want, wn, dec, sizeof dec, &d), 0);
    CHECK(d == n && memcmp(dec, in, n) == 0);
}

int main(void) {
    /* Short vectors. */
    vector((const uint8_t *)"\x00", 1, (const uint8_t *)"\x01\x01", 2);
    vector((const uint8_t *)"\x00\x00", 2, (const uint8_t *)"\x01\x01\x01", 3);
    vector((const uint8_t *)"\x00\x11\x00", 3, (const uint8_t *)"\x01\x02\x11\x01", 4);
    vector((const uint8_t *)"\x11\x22\x00\x33", 4, (const uint8_t *)"\x03\x11\x22\x02\x33", 5);
    vector((const uint8_t *)"\x11\x22\x33\x44", 4, (const uint8_t *)"\x05\x11\x22\x33\x44", 5);
    vector((const uint8_t *)"\x11\x00\x00\x00", 4, (const uint8_t *)"\x02\x11\x01\x01\x01", 5);
    vector((const uint8_t *)"", 0, (const uint8_t *)"\x01", 1);

    /* The long vectors: 01..FE; 00 01..FE; 01..FF; 02..FF 00; 03..FF 00 01. */
    uint8_t in[300], want[300];
    for (int i = 0; i < 254; i++) in[i] = (uint8_t)(i + 1);
    want[0] = 0xff;
    memcpy(want + 1, in, 254);
    vector(in, 254, want, 255);

    in[0] = 0;
    for (int i = 1; i < 255; i++) in[i] = (uint8_t)i;
    want[0] = 0x01;
    want[1] = 0xff;
    for (int i = 0; i < 254; i++) want[2 + i] = (uint8_t)(i + 1);
    vector(in, 255, want, 256);

    for (int i = 0; i < 255; i++) in[i] = (uint8_t)(i + 1);
    want[0] = 0xff;
    for (int i = 0; i < 254; i++) want[1 + i] = (uint8_t)(i + 1);
    want[255] = 0x02;
    want[256] = 0xff;
    vector(in, 255, want, 257);

    for (int i = 0; i < 254; i++) in[i] = (uint8_t)(i + 2);
    in[254] = 0;
    want[0] = 0xff;
    for (int i = 0; i < 254; i++) want[1 + i] = (uint8_t)(i + 2);
    want[255] = 0x01;
    want[256] = 0x01;
    vector(in, 255, want, 257);

    for (int i = 0; i < 253; i++) in[i] = (uint8_t)(i + 3);
    in[253] = 0;
    in[254] = 1;
    want[0] = 0xfe;
    for (int i = 0; i < 253; i++) want[1 + i] = (uint8_t)(i + 3);
    want[254] = 0x02;
    want[255] = 0x01;
    vector(in, 255, want, 256);

    /* Round trips, lengths 0..1100, random bytes with a share of zeros; never a zero inside. */
    srand(7);
    static uint8_t buf[1100], enc[COBS_ENCODED_MAX(1100)], dec[1100];
    for (size_t n = 0; n <= 1100; n++) {
        for (size_t i = 0; i < n; i++) buf[i] = (rand() % 4 == 0) ? 0 : (uint8_t)rand();
        size_t e = cobs_encode(buf, n, enc, sizeof enc);
        CHECK(e > 0 && e <= COBS_ENCODED_MAX(n));
        CHECK(memchr(enc, 0, e) == NULL);
        size_t d = 0;
        CHECK_EQ(cobs_decode(enc, e, dec, sizeof dec, &d), 0);
        CHECK(d == n && memcmp(dec, buf, n) == 0);
    }

    /* Refused: a zero byte, a block running past the end, output that does not fit, a too
     * small encode buffer. */
    size_t d;
    CHECK_EQ(cobs_decode((const uint8_t *)"\x03\x11\x00", 3, dec, sizeof dec, &d), -1);
    CHECK_EQ(cobs_decode((const uint8_t *)"\x00", 1, dec, sizeof dec, &d), -1);
    CHECK_EQ(cobs_decode((const uint8_t *)"\x05\x11\x22", 3, dec, sizeof dec, &d), -1);
    CHECK_EQ(cobs_decode((const uint8_t *)"\x03\x11\x22\x02\x33", 5, dec, 3, &d), -1);
    CHECK_EQ(cobs_decode((const uint8_t *)"\x03\x11\x22\x02\x33", 5, dec, 4, &d), 0);
    CHECK_EQ(cobs_encode(buf, 254, enc, 254), 0);
    return check_report("test_cobs");
}
