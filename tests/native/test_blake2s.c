/* BLAKE2s-256 against RFC 7693's example and published digests, and streaming = one-shot. */
#include <stdio.h>
#include <string.h>

#include "blake2s.h"
#include "digest_check.h"
#include "tka_native.h"

int main(void) {
    uint8_t out[32];
    /* RFC 7693 Appendix B. */
    tka_blake2s((const uint8_t *)"abc", 3, out);
    check_hex("abc", out, 32, "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
    tka_blake2s((const uint8_t *)"", 0, out);
    check_hex("empty", out, 32, "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9");

    /* Streaming in every split of a 200-byte input (crossing block boundaries at 64 and 128)
     * gives the one-shot digest: the last block must be held back until final(). */
    uint8_t data[200], whole[32];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof data; len++) {
        tka_blake2s(data, len, whole);
        for (size_t cut = 0; cut <= len; cut += 1 + cut / 16) {
            blake2s_ctx ctx;
            blake2s_init(&ctx);
            blake2s_update(&ctx, data, cut);
            blake2s_update(&ctx, data + cut, len - cut);
            blake2s_final(&ctx, out);
            if (memcmp(out, whole, 32) != 0) {
                fprintf(stderr, "split %zu/%zu differs\n", cut, len);
                failures++;
            }
        }
    }
    if (failures) fprintf(stderr, "%d failures\n", failures);
    return failures ? 1 : 0;
}
