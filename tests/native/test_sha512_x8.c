/* The eight-lane SHA-512 challenges against the one-at-a-time ones: every lane count, message
 * lengths on both sides of the one-block limit, lanes with different lengths, and the raw
 * lane compression against tka_sha512. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed25519_internal.h"
#include "sha512_x8.h"
#include "tka_native.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fill(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)next();
}

static int failures = 0;

static void check_group(size_t lanes, const size_t lens[8]) {
    uint8_t r[8][32], a[8][32], m[8][200];
    const uint8_t *rp[8], *ap[8], *mp[8];
    for (size_t j = 0; j < 8; j++) {
        fill(r[j], 32);
        fill(a[j], 32);
        fill(m[j], sizeof m[j]);
        rp[j] = r[j];
        ap[j] = a[j];
        mp[j] = m[j];
    }
    sc got[8], want;
    memset(got, 0xAA, sizeof got);
    ed25519_challenge_x8(got, rp, ap, mp, lens, lanes);
    for (size_t j = 0; j < lanes; j++) {
        ed25519_challenge(&want, r[j], a[j], m[j], lens[j]);
        if (memcmp(&got[j], &want, sizeof want) != 0) {
            fprintf(stderr, "FAIL lanes=%zu lane %zu len %zu\n", lanes, j, lens[j]);
            failures++;
        }
    }
    /* Lanes beyond `lanes` are never written. */
    for (size_t j = lanes; j < 8; j++) {
        uint8_t untouched[sizeof(sc)];
        memset(untouched, 0xAA, sizeof untouched);
        if (memcmp(&got[j], untouched, sizeof untouched) != 0) {
            fprintf(stderr, "FAIL lanes=%zu wrote lane %zu\n", lanes, j);
            failures++;
        }
    }
}

static void check_raw_lanes(void) {
    uint8_t blocks[8][128], out[8][64], want[64];
    for (int round = 0; round < 64; round++) {
        size_t lens[8];
        for (int j = 0; j < 8; j++) {
            lens[j] = (size_t)(next() % 112); /* 0..111: one block after padding */
            memset(blocks[j], 0, 128);
            fill(blocks[j], lens[j]);
            blocks[j][lens[j]] = 0x80;
            uint64_t bits = (uint64_t)lens[j] * 8;
            for (int i = 0; i < 8; i++) blocks[j][127 - i] = (uint8_t)(bits >> (8 * i));
        }
        if (!sha512_x8_oneblock(out, blocks)) {
            printf("test_sha512_x8: lanes not in use (no AVX-512, or TKA_NATIVE_NO_IFMA set)\n");
            return;
        }
        for (int j = 0; j < 8; j++) {
            tka_sha512(blocks[j], lens[j], want);
            if (memcmp(out[j], want, 64) != 0) {
                fprintf(stderr, "FAIL raw lane %d len %zu\n", j, lens[j]);
                failures++;
            }
        }
    }
}

int main(void) {
    check_raw_lanes();
    size_t lens[8];
    for (size_t lanes = 1; lanes <= 8; lanes++) {
        for (size_t j = 0; j < 8; j++) lens[j] = 32;
        check_group(lanes, lens);
        for (size_t j = 0; j < 8; j++) lens[j] = 0;
        check_group(lanes, lens);
        for (size_t j = 0; j < 8; j++) lens[j] = SHA512_X8_MAX_MSG;
        check_group(lanes, lens);
    }
    /* One lane over the limit sends the whole group down the one-at-a-time path. */
    for (size_t over = 0; over < 8; over++) {
        for (size_t j = 0; j < 8; j++) lens[j] = 32;
        lens[over] = SHA512_X8_MAX_MSG + 1 + over * 20;
        check_group(8, lens);
    }
    for (int round = 0; round < 500; round++) {
        size_t lanes = 1 + (size_t)(next() % 8);
        for (size_t j = 0; j < 8; j++) lens[j] = (size_t)(next() % (SHA512_X8_MAX_MSG + 1));
        if (round % 10 == 0) lens[next() % lanes] = (size_t)(next() % 200);
        check_group(lanes, lens);
    }
    if (failures) {
        fprintf(stderr, "test_sha512_x8: %d failures\n", failures);
        return 1;
    }
    printf("test_sha512_x8: ok\n");
    return 0;
}
