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
    /* Eight at once (AVX2 lanes where available) = one at a time, for every lane count and
     * lengths that put the lanes' last blocks at different positions. */
    static uint8_t msgs[8][300];
    uint64_t state = 0x243f6a8885a308d3ULL;
    for (int j = 0; j < 8; j++)
        for (size_t i = 0; i < sizeof msgs[j]; i++)
            msgs[j][i] = (uint8_t)((state = state * 6364136223846793005ULL + 1442695040888963407ULL) >> 56);
    for (int round = 0; round < 400; round++) {
        const uint8_t *ptrs[8];
        size_t lens[8];
        uint8_t got[8][32];
        int count = 1 + round % 8;
        for (int j = 0; j < 8; j++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t l = (size_t)(state >> 33) % 301;
            if (round % 5 == 0) l = 64 * (size_t)(j % 5); /* exact block multiples, 0 included */
            lens[j] = l;
            ptrs[j] = msgs[(j + round) % 8];
        }
        blake2s_x8(got, ptrs, lens, count);
        for (int j = 0; j < count; j++) {
            tka_blake2s(ptrs[j], lens[j], whole);
            if (memcmp(got[j], whole, 32) != 0) {
                fprintf(stderr, "x8: lane %d of %d, length %zu differs\n", j, count, lens[j]);
                failures++;
            }
        }
    }
    if (failures) fprintf(stderr, "%d failures\n", failures);
    return failures ? 1 : 0;
}
