/* The bounded canonical NKS reader: what it accepts and refuses, nesting at the decoder's limit,
 * the signature hash taken over slices, and tka_verify_peers on every truncation of an input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nks_reader.h"
#include "tka_native.h"

static int failures = 0;

#define EXPECT(cond, what)                                  \
    do {                                                    \
        if (!(cond)) {                                      \
            fprintf(stderr, "line %d: %s\n", __LINE__, what); \
            failures++;                                     \
        }                                                   \
    } while (0)

typedef struct {
    const char *name;
    const char *hex;
    int canonical;
} reader_case;

static size_t unhex(const char *hex, uint8_t *out) {
    size_t n = 0;
    for (const char *p = hex; p[0] && p[1]; p += 2) {
        while (*p == ' ') p++;
        unsigned v;
        if (sscanf(p, "%2x", &v) != 1) break;
        out[n++] = (uint8_t)v;
    }
    return n;
}

static const reader_case CASES[] = {
    {"kind only", "a10101", 1},
    {"kind 200", "a10118c8", 1},
    {"kind in a long head", "a1011801", 0},
    {"kind 256 (does not fit SigKind)", "a101190100", 0},
    {"empty map", "a0", 0},
    {"no kind", "a1024100", 0},
    {"duplicate key", "a201010101", 0},
    {"keys out of order", "a20241000101", 0},
    {"empty byte string", "a20101 0240", 0},
    {"trailing byte", "a1010100", 0},
    {"truncated", "a101", 0},
    {"map head in long form", "b8010101", 0},
    {"text key", "a1613101", 0},
    {"null nested", "a2010105f6", 0},
    {"indefinite byte string", "a20101025f41aaff", 0},
    {"unknown key 7", "a20101074100", 0},
    {"key 6 after the nested map", "a3010205 a10101 0641cc", 1},
    {"key 4 after the nested map", "a3010205a10101 0441cc", 0},
    {"nested map not a map", "a20102 0541aa", 0},
    {"byte string longer than the input", "a20101 0258ff00", 0},
    {"byte string length in a long head", "a20101 02580100", 0},
    {"tag", "c0a10101", 0},
};

static void reader_cases(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        uint8_t buf[64];
        size_t n = unhex(CASES[i].hex, buf);
        nks_chain chain;
        int got = nks_read(buf, n, &chain);
        if (got != CASES[i].canonical) {
            fprintf(stderr, "%s: reader said %d, want %d\n", CASES[i].name, got, CASES[i].canonical);
            failures++;
        }
    }
}

/* n maps nested under key 5, the innermost {1: 1}. */
static size_t nested_maps(unsigned n, uint8_t *out) {
    size_t len = 0;
    for (unsigned i = 1; i < n; i++) {
        memcpy(out + len, "\xa2\x01\x02\x05", 4);
        len += 4;
    }
    memcpy(out + len, "\xa1\x01\x01", 3);
    return len + 3;
}

static void nesting_limit(void) {
    uint8_t buf[128];
    nks_chain chain;
    size_t n = nested_maps(TKA_NKS_MAX_LEVELS, buf);
    EXPECT(nks_read(buf, n, &chain) == 1 && chain.count == TKA_NKS_MAX_LEVELS,
           "16 nested maps are within the decoder's limit");
    EXPECT(chain.levels[0].kind == 2 && chain.levels[15].kind == 1, "kinds at both ends");
    n = nested_maps(TKA_NKS_MAX_LEVELS + 1, buf);
    EXPECT(nks_read(buf, n, &chain) == 0, "17 nested maps exceed it");
}

static void sig_hash_slices(void) {
    uint8_t with_sig[16], without[16], got[32], want[32];
    size_t n = unhex("a30101 0341aa 0441bb", with_sig);
    size_t m = unhex("a20101 0341aa", without);
    nks_chain chain;
    EXPECT(nks_read(with_sig, n, &chain) == 1, "reads a signed level");
    nks_sig_hash(with_sig, &chain, 0, got);
    tka_blake2s(without, m, want);
    EXPECT(memcmp(got, want, 32) == 0, "sighash drops the signature entry and fixes the head");
    EXPECT(nks_read(without, m, &chain) == 1, "reads an unsigned level");
    nks_sig_hash(without, &chain, 0, got);
    EXPECT(memcmp(got, want, 32) == 0, "sighash of an unsigned level is the hash of its bytes");
    /* The span the bulk path hashes later (blake2s_x8) holds the same message. */
    const uint8_t *inputs[2] = {with_sig, without};
    size_t lens[2] = {n, m};
    for (int k = 0; k < 2; k++) {
        nks_span span;
        uint8_t msg[16];
        EXPECT(nks_read(inputs[k], lens[k], &chain) == 1, "reads the level again");
        nks_sig_span(&chain, 0, &span);
        EXPECT(nks_span_len(&span) == m, "the span's length is the message's");
        nks_span_copy(inputs[k], &span, msg);
        EXPECT(memcmp(msg, without, m) == 0, "the span's bytes are the message");
    }
}

/* A two-level rotation chain with a trusted key ID and made-up signatures: every prefix is
 * judged (UNCHECKED when cut short) without reading past it; the whole input fails on the
 * outer signature, at depth 0. */
static void every_truncation(void) {
    uint8_t data[512];
    size_t n = 0;
    uint8_t node[32], trusted[32], rotation[32], sig[64];
    memset(node, 0x11, 32);
    memset(trusted, 0x22, 32);
    memset(rotation, 0x33, 32);
    memset(sig, 0x01, 64);
    data[n++] = 0xa4; /* rotation: kind, pubkey, signature, nested */
    data[n++] = 0x01; data[n++] = 0x02;
    data[n++] = 0x02; data[n++] = 0x58; data[n++] = 34; data[n++] = 'n'; data[n++] = 'p';
    memcpy(data + n, node, 32); n += 32;
    data[n++] = 0x04; data[n++] = 0x58; data[n++] = 64; memcpy(data + n, sig, 64); n += 64;
    data[n++] = 0x05;
    data[n++] = 0xa5; /* direct: kind, pubkey, key ID, signature, wrapping key */
    data[n++] = 0x01; data[n++] = 0x01;
    data[n++] = 0x02; data[n++] = 0x58; data[n++] = 34; data[n++] = 'n'; data[n++] = 'p';
    memset(data + n, 0x44, 32); n += 32;
    data[n++] = 0x03; data[n++] = 0x58; data[n++] = 32; memcpy(data + n, trusted, 32); n += 32;
    data[n++] = 0x04; data[n++] = 0x58; data[n++] = 64; memcpy(data + n, sig, 64); n += 64;
    data[n++] = 0x06; data[n++] = 0x58; data[n++] = 32; memcpy(data + n, rotation, 32); n += 32;

    for (size_t len = 0; len <= n; len++) {
        /* A fresh heap copy of exactly len bytes, so ASan sees any read past the end. */
        uint8_t *copy = malloc(len ? len : 1);
        if (copy == NULL) abort();
        memcpy(copy, data, len);
        size_t offsets[2] = {0, len};
        tka_peer_result r;
        int rc = tka_verify_peers(node, copy, offsets, 1, trusted, 1, 1, &r);
        EXPECT(rc == 0, "no prefix is authorized");
        if (len < n) EXPECT(r.code == TKA_PEER_UNCHECKED, "a cut input is left to the decoder");
        else EXPECT(r.code == TKA_PEER_BAD_SIGNATURE && r.depth == 0, "outer signature fails");
        free(copy);
    }
}

int main(void) {
    reader_cases();
    nesting_limit();
    sig_hash_slices();
    every_truncation();
    if (failures) fprintf(stderr, "%d failures\n", failures);
    return failures ? 1 : 0;
}
