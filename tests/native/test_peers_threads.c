/*
 * tka_verify_peers across threads and windows: 17,000 peers (direct signatures and, every
 * eighth, a one-step rotation; made by tests/native/nks_corpus.py with fixed seeds and
 * repeated), a corrupted outer signature every 997 peers, judged on 1, 2 and 4 threads. Every
 * run must give every peer the same result: the corrupted ones BAD_SIGNATURE at depth 0, the
 * others OK. Runs under ASan/UBSan in ctest, and `make test-c` runs it once more from a
 * ThreadSanitizer build (build/tsan, -DTKA_TSAN=ON).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tka_native.h"

static const char *TRUSTED = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
static const char *NODE[2] = {
    "f85387c2de012a16af6e4b40f1c6a1ba84b71062b255e387ddd92eafce3153b3",
    "414c5b63bbc08adc05b9afaecd5a6c364f98fb26ddc423765cfa1aa9c801d32d",
};
static const char *NKS[2] = {
    "a401010258226e70f85387c2de012a16af6e4b40f1c6a1ba84b71062b255e387ddd92eafce3153b3035820"
    "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b80458403578e836d36dc35b"
    "8cdf57f95ac3c58aef01c99fd10b737c0a0f352bf2bf73187eb6ceb18b5b114c3c00d78c2743f2f399d697"
    "1d490e265911e07e53ac439006",
    "a401020258226e70414c5b63bbc08adc05b9afaecd5a6c364f98fb26ddc423765cfa1aa9c801d32d045840"
    "4e2ed192576b612e5f1320d2e3fa533a6f04991f2b8ef470a6d575c4adc6474639f9ae91d49f0384526628"
    "ce5c32070f423fbaffc88b179639c43b73a5014b0305a501010258226e7043bafb9c2cdaa196b325793777"
    "c0e8ca456de9e68d15cfc98e23bd5f3aeb83d203582003a107bff3ce10be1d70dd18e74bc09967e4d6309b"
    "a50d5f1ddc8664125531b8045840ef304aa473cb5d0a98e05729dd4a74e7f35126cb867726c0f4b9794e1e"
    "bf194b3c889866a42a18f4be831378f44eff6e71ebf11f092e85affa17933270c120040658202a70029af7"
    "7a1ba58c888a5a3f0ab63f3f5f9ffd74e539603273a5c10542a8b2",
};

#define PEERS 17000
#define BAD_EVERY 997

static size_t unhex(const char *hex, uint8_t *out) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) abort();
        out[i] = (uint8_t)v;
    }
    return n;
}

int main(void) {
    uint8_t trusted[32], node[2][32], nks[2][512];
    size_t nks_len[2];
    unhex(TRUSTED, trusted);
    for (int k = 0; k < 2; k++) {
        unhex(NODE[k], node[k]);
        nks_len[k] = unhex(NKS[k], nks[k]);
    }
    uint8_t *node_keys = malloc(32 * (size_t)PEERS);
    uint8_t *blob = malloc(512 * (size_t)PEERS);
    size_t *offsets = malloc((PEERS + 1) * sizeof *offsets);
    tka_peer_result *expected = malloc(PEERS * sizeof *expected);
    tka_peer_result *got = malloc(PEERS * sizeof *got);
    if (!node_keys || !blob || !offsets || !expected || !got) return 1;
    size_t used = 0;
    for (size_t i = 0; i < PEERS; i++) {
        int k = i % 8 == 1;
        memcpy(node_keys + 32 * i, node[k], 32);
        offsets[i] = used;
        memcpy(blob + used, nks[k], nks_len[k]);
        /* Flip a bit of the outermost signature (key 4's value: 78 bytes into the direct
         * signature, after kind, Pubkey and KeyID; 43 into the rotation, after kind and
         * Pubkey). */
        static const size_t sig_at[2] = {78, 43};
        if (i % BAD_EVERY == 0) blob[used + sig_at[k] + 10] ^= 0x10;
        used += nks_len[k];
    }
    offsets[PEERS] = used;
    int failures = 0;
    int want_ok = PEERS - (PEERS + BAD_EVERY - 1) / BAD_EVERY;
    unsigned runs[] = {1, 2, 4};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        tka_peer_result *out = r == 0 ? expected : got;
        int ok = tka_verify_peers(node_keys, blob, offsets, PEERS, trusted, 1, runs[r], out);
        if (ok != want_ok) {
            fprintf(stderr, "%u threads: %d authorized, want %d\n", runs[r], ok, want_ok);
            failures++;
        }
        for (size_t i = 0; i < PEERS; i++) {
            int bad = i % BAD_EVERY == 0;
            if ((out[i].code == TKA_PEER_BAD_SIGNATURE && out[i].depth == 0) != bad ||
                (!bad && out[i].code != TKA_PEER_OK) ||
                memcmp(&out[i], &expected[i], sizeof out[i]) != 0) {
                fprintf(stderr, "%u threads: peer %zu code %d depth %d\n", runs[r], i,
                        out[i].code, out[i].depth);
                failures++;
                break;
            }
        }
    }
    free(node_keys);
    free(blob);
    free(offsets);
    free(expected);
    free(got);
    return failures ? 1 : 0;
}
