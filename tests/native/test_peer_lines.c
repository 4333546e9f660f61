/*
 * tka_read_peer_lines (the peers-file reader of tka audit) and tka_verify_peers_packed's
 * per-peer description, under ASan/UBSan in ctest.
 *
 * The reader: known lines give the known peers (hex and base64 signatures, names, blanks,
 * comments); lines it must leave to the caller stop it at their start; every prefix of the text
 * and every one-byte change of it, read into buffers of every size from none to enough, stays
 * within its buffers and consumes whole lines only. The description: a direct signature with an
 * all-zero wrapping key, one with a small-order one, one with an ordinary key, and garbage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tka_native.h"

static int failures;
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#define KEY_A "nodekey:00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
#define KEY_B "nodekey:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static const char TEXT[] =
    "# exported\n"
    "\n"
    KEY_A " AAE+ # host-a.example\n"          /* base64 of 00 01 3e */
    "  " KEY_B "\t0a0B0c\t#\t spaced name \t\n" /* hex */
    KEY_A " QQ==\n"                           /* base64, padded, no name */
    "   # indented comment\n"
    KEY_B " QR== # non-canonical bits\n";     /* left to the caller */

typedef struct {
    uint8_t keys[32 * 8], sigs[256], names[256];
    size_t sig_ends[8], name_ends[8], lines[8];
    tka_peer_lines out;
} reader;

static void reader_init(reader *r, size_t max_peers, size_t sigs_cap, size_t names_cap) {
    memset(r, 0, sizeof *r);
    r->out.node_keys = r->keys;
    r->out.sigs = r->sigs;
    r->out.sigs_cap = sigs_cap;
    r->out.sig_ends = r->sig_ends;
    r->out.names = r->names;
    r->out.names_cap = names_cap;
    r->out.name_ends = r->name_ends;
    r->out.lines = r->lines;
    r->out.max_peers = max_peers;
}

static void test_known_lines(void) {
    reader r;
    reader_init(&r, 8, sizeof r.sigs, sizeof r.names);
    r.out.sig_base = 100;
    r.out.line_base = 10;
    size_t len = strlen(TEXT);
    size_t used = tka_read_peer_lines((const uint8_t *)TEXT, len, &r.out);
    const char *stop = strstr(TEXT, KEY_B " QR==");
    CHECK(used == (size_t)(stop - TEXT));
    CHECK(r.out.n_peers == 3 && r.out.n_lines == 6 && !r.out.full);
    CHECK(r.lines[0] == 13 && r.lines[1] == 14 && r.lines[2] == 15);
    static const uint8_t key_a[8] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
    CHECK(memcmp(r.keys, key_a, 8) == 0 && r.keys[31] == 0xff && r.keys[32] == 0xff);
    static const uint8_t sigs[] = {0x00, 0x01, 0x3e, 0x0a, 0x0b, 0x0c, 0x41};
    CHECK(r.out.sigs_used == sizeof sigs && memcmp(r.sigs, sigs, sizeof sigs) == 0);
    CHECK(r.sig_ends[0] == 103 && r.sig_ends[1] == 106 && r.sig_ends[2] == 107);
    const char *names = "host-a.examplespaced name";
    CHECK(r.out.names_used == strlen(names) && memcmp(r.names, names, strlen(names)) == 0);
    CHECK(r.name_ends[0] == 14 && r.name_ends[1] == 25 && r.name_ends[2] == 25);

    /* Lines it leaves to the caller: at their start, nothing of them taken. */
    static const char *const others[] = {
        KEY_A "\n",                     /* one word */
        KEY_A " AAEC extra\n",          /* three words (AAEC is hex) */
        KEY_A "#AAEC\n",                /* the comment starts inside the first word */
        KEY_A " AAE\n",                 /* not a multiple of four */
        KEY_A " A===\n",                /* padding too long */
        KEY_A " ====\n",                /* nothing but padding */
        KEY_A " AA=C\n",                /* padding inside */
        KEY_A " AAE-\n",                /* URL-safe alphabet */
        "nodekey:0011 AAEC\n",          /* short key */
        "NODEKEY:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff AAEC\n",
        KEY_A "g AAEC\n",               /* 65 digits */
        "xnodekey:00112233445566778899aabbccddeeff00112233445566778899aabbccddeef AAEC\n",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        reader_init(&r, 8, sizeof r.sigs, sizeof r.names);
        used = tka_read_peer_lines((const uint8_t *)others[i], strlen(others[i]), &r.out);
        CHECK(used == 0 && r.out.n_peers == 0 && r.out.n_lines == 0 && !r.out.full);
    }

    /* Full buffers: stops after what fits, says so. */
    reader_init(&r, 1, sizeof r.sigs, sizeof r.names);
    used = tka_read_peer_lines((const uint8_t *)TEXT, len, &r.out);
    CHECK(r.out.n_peers == 1 && r.out.full && used == (size_t)(strstr(TEXT, "  " KEY_B) - TEXT));
    reader_init(&r, 8, 4, sizeof r.names); /* room for the first signature only */
    used = tka_read_peer_lines((const uint8_t *)TEXT, len, &r.out);
    CHECK(r.out.n_peers == 1 && r.out.full);
    reader_init(&r, 8, 0, 0); /* a line that can never fit is the caller's, not "full" */
    used = tka_read_peer_lines((const uint8_t *)TEXT, len, &r.out);
    CHECK(r.out.n_peers == 0 && !r.out.full && r.out.n_lines == 2);
}

/* Every prefix and every one-byte change, into exact-size heap buffers (ASan sees overruns). */
static void test_hostile_inputs(void) {
    size_t len = strlen(TEXT);
    uint8_t *copy = malloc(len);
    if (copy == NULL) abort();
    static const uint8_t bytes[] = {0, '\n', ' ', '#', '=', 'g', 0xff};
    for (size_t cut = 0; cut <= len; cut++) {
        for (size_t at = 0; at < cut + 1; at++) {
            for (size_t b = 0; b < sizeof bytes; b++) {
                if (at == cut && b > 0) break; /* the plain prefix, once */
                uint8_t *text = malloc(cut ? cut : 1);
                if (text == NULL) abort();
                memcpy(text, TEXT, cut);
                if (at < cut) text[at] = bytes[b];
                for (size_t cap = 0; cap <= 16; cap += 8) {
                    size_t max_peers = cap / 4;
                    tka_peer_lines out = {0};
                    out.node_keys = malloc(32 * max_peers + 1);
                    out.sigs = malloc(cap + 1);
                    out.names = malloc(cap + 1);
                    out.sig_ends = malloc(sizeof(size_t) * max_peers + 1);
                    out.name_ends = malloc(sizeof(size_t) * max_peers + 1);
                    out.lines = malloc(sizeof(size_t) * max_peers + 1);
                    out.sigs_cap = cap;
                    out.names_cap = cap;
                    out.max_peers = max_peers;
                    size_t used = tka_read_peer_lines(text, cut, &out);
                    CHECK(used <= cut && out.n_peers <= max_peers);
                    CHECK(out.sigs_used <= cap && out.names_used <= cap);
                    CHECK(used == cut || used == 0 || text[used - 1] == '\n');
                    free(out.node_keys);
                    free(out.sigs);
                    free(out.names);
                    free(out.sig_ends);
                    free(out.name_ends);
                    free(out.lines);
                }
                free(text);
            }
        }
    }
    free(copy);
    tka_peer_lines none = {0};
    CHECK(tka_read_peer_lines(NULL, 5, &none) == 0);
}

static size_t unhex(const char *hex, uint8_t *out) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) abort();
        out[i] = (uint8_t)v;
    }
    return n;
}

/* Direct signatures (kind 1, Pubkey "np"+node, KeyID, a dummy Signature, WrappingPubkey). */
static size_t direct_nks(uint8_t *out, const uint8_t node[32], const uint8_t wrapping[32]) {
    size_t n = 0;
    out[n++] = 0xa5;
    out[n++] = 0x01, out[n++] = 0x01;
    out[n++] = 0x02, out[n++] = 0x58, out[n++] = 34, out[n++] = 'n', out[n++] = 'p';
    memcpy(out + n, node, 32), n += 32;
    out[n++] = 0x03, out[n++] = 0x58, out[n++] = 32;
    memset(out + n, 0x11, 32), n += 32;
    out[n++] = 0x04, out[n++] = 0x58, out[n++] = 64;
    memset(out + n, 0x22, 64), n += 64;
    out[n++] = 0x06, out[n++] = 0x58, out[n++] = 32;
    memcpy(out + n, wrapping, 32), n += 32;
    return n;
}

static void test_packed_description(void) {
    uint8_t node_keys[4 * 32] = {0}, blob[4 * 200], wrapping[3][32] = {{0}};
    unhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", wrapping[1]);
    unhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", wrapping[2]);
    size_t offsets[5] = {0};
    for (int i = 0; i < 3; i++) {
        offsets[i + 1] = offsets[i] + direct_nks(blob + offsets[i], node_keys + 32 * i, wrapping[i]);
    }
    memcpy(blob + offsets[3], "garbage", 7);
    offsets[4] = offsets[3] + 7;
    uint8_t trusted[32];
    memset(trusted, 0x11, 32);
    tka_peer_result with[4], without[4];
    tka_peer_info info[4];
    memset(info, 0xaa, sizeof info);
    int a = tka_verify_peers_packed(node_keys, blob, offsets, 4, trusted, 1, 1, with, info);
    int b = tka_verify_peers(node_keys, blob, offsets, 4, trusted, 1, 1, without);
    CHECK(a == b && a == 0 && memcmp(with, without, sizeof with) == 0);
    CHECK(info[0].flags == (TKA_PEER_INFO_READ | TKA_PEER_INFO_WEAK_ZERO));
    CHECK(info[0].kind == 1 && info[0].weak_depth == 0 && info[0].weak_kind == 1);
    CHECK(info[1].flags == TKA_PEER_INFO_READ && info[1].weak_depth == 0);
    CHECK(info[2].flags == TKA_PEER_INFO_READ && info[2].weak_depth == TKA_PEER_NO_WEAK);
    CHECK(info[3].flags == 0 && with[3].code == TKA_PEER_UNCHECKED);
}

int main(void) {
    test_known_lines();
    test_hostile_inputs();
    test_packed_description();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    puts("test_peer_lines: ok");
    return 0;
}
