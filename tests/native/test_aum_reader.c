/* The bounded canonical AUM reader (native/src/aum_reader.c): every field's edge cases, the
 * bounds, non-canonical variants (non-shortest heads, unsorted or duplicate keys, text keys,
 * indefinite lengths, tags, nulls where not allowed, trailing bytes, invalid UTF-8, unsorted
 * or duplicate metadata keys), every truncation of a large AUM in an exactly-sized buffer (so
 * ASan sees any read past the end), the fields it reports, and hash/sighash by slicing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aum_reader.h"
#include "blake2s.h"
#include "tka_native.h"

static int failures = 0;

#define EXPECT(cond, what)                                    \
    do {                                                      \
        if (!(cond)) {                                        \
            fprintf(stderr, "line %d: %s\n", __LINE__, what); \
            failures++;                                       \
        }                                                     \
    } while (0)

/* ---- a growable byte buffer and a few encoders, written for the tests ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *grown = realloc(b->p, cap);
        if (grown == NULL) abort();
        b->p = grown;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_byte(buf *b, uint8_t v) { put(b, &v, 1); }

static void put_head(buf *b, unsigned major, uint64_t v) {
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) {
        put_byte(b, m | (uint8_t)v);
        return;
    }
    int width = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffULL ? 4 : 8;
    put_byte(b, m | (uint8_t)(width == 1 ? 24 : width == 2 ? 25 : width == 4 ? 26 : 27));
    for (int i = width - 1; i >= 0; i--) put_byte(b, (uint8_t)(v >> (8 * i)));
}

static void put_bytes(buf *b, const uint8_t *data, size_t n) {
    put_head(b, 2, n);
    put(b, data, n);
}

static void put_text(buf *b, const char *s) {
    put_head(b, 3, strlen(s));
    put(b, s, strlen(s));
}

static void put_hex(buf *b, const char *hex) {
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        if (sscanf(p, "%2x", &v) != 1) abort();
        put_byte(b, (uint8_t)v);
        p += 2;
    }
}

static void filled(uint8_t *out, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(seed + 7 * i);
}

/* Key {1: 1, 2: votes, 3: 32-byte public[, 12: {"purpose": "x"}]} */
static void put_key(buf *b, uint64_t votes, uint8_t seed, int with_meta) {
    uint8_t pk[32];
    filled(pk, 32, seed);
    put_head(b, 5, with_meta ? 4 : 3);
    put_hex(b, "01 01 02");
    put_head(b, 0, votes);
    put_byte(b, 0x03);
    put_bytes(b, pk, 32);
    if (with_meta) {
        put_hex(b, "0c a1");
        put_text(b, "purpose");
        put_text(b, "x");
    }
}

/* State {1: null, 2: [n_dis values], 3: [n_keys keys], 4: 7, 5: 2^40} */
static void put_state(buf *b, size_t n_dis, size_t n_keys) {
    put_hex(b, "a5 01 f6 02");
    put_head(b, 4, n_dis);
    for (size_t i = 0; i < n_dis; i++) {
        uint8_t v[32];
        filled(v, 32, (uint8_t)(100 + i));
        put_bytes(b, v, 32);
    }
    put_byte(b, 0x03);
    put_head(b, 4, n_keys);
    for (size_t i = 0; i < n_keys; i++) put_key(b, 1 + i % 4096, (uint8_t)i, i % 3 == 0);
    put_hex(b, "04 07 05");
    put_head(b, 0, 1ULL << 40);
}

static void put_signatures(buf *b, size_t n) {
    put_byte(b, 0x17);
    put_head(b, 4, n);
    for (size_t i = 0; i < n; i++) {
        uint8_t id[32], sig[64];
        filled(id, 32, (uint8_t)(3 * i));
        filled(sig, 64, (uint8_t)(5 * i));
        put_hex(b, "a2 01");
        put_bytes(b, id, 32);
        put_byte(b, 0x02);
        put_bytes(b, sig, 64);
    }
}

/* Checks acceptance on an exactly-sized heap copy, so a read past the end trips ASan. */
static int accepts(const uint8_t *data, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL) abort();
    if (len) memcpy(copy, data, len);
    static tka_aum aum; /* large: never on the stack */
    int got = tka_aum_read(copy, len, &aum);
    int canon = tka_aum_is_canonical(copy, len);
    uint8_t h[32], s[32];
    int hashed = tka_aum_hashes(copy, len, h, s);
    free(copy);
    if (got != canon || got != hashed) {
        fprintf(stderr, "read %d, is_canonical %d, hashes %d disagree\n", got, canon, hashed);
        failures++;
    }
    return got;
}

/* ---- table of small cases ---- */

typedef struct {
    const char *name;
    const char *hex;
    int canonical;
} reader_case;

#define H32 "5820 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define H31 "581f 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"
#define SIG64                                                                         \
    "5840 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"           \
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static const reader_case CASES[] = {
    /* the top-level map, kind and parent */
    {"genesis no-op", "a2 0103 02f6", 1},
    {"kind 0, present-but-empty parent", "a2 0100 0240", 1},
    {"kind 255", "a2 0118ff 02f6", 1},
    {"kind 256 overflows MessageKind", "a2 01190100 02f6", 0},
    {"kind in a non-shortest head", "a2 011803 02f6", 0},
    {"kind as a 4-byte head", "a2 011a00000003 02f6", 0},
    {"negative kind", "a2 0120 02f6", 0},
    {"kind null", "a2 01f6 02f6", 0},
    {"kind false", "a2 01f4 02f6", 0},
    {"kind simple value", "a2 01e5 02f6", 0},
    {"kind float", "a2 01f93c00 02f6", 0},
    {"no parent entry", "a1 0103", 0},
    {"no kind entry", "a1 02f6", 0},
    {"empty map", "a0", 0},
    {"empty input", "", 0},
    {"parent of 32 bytes", "a2 0101 02" H32, 1},
    {"parent of 31 bytes (checked later, by validation)", "a2 0101 02" H31, 1},
    {"parent of one byte", "a2 0101 0241aa", 1},
    {"parent length in a non-shortest head", "a2 0101 025801aa", 0},
    {"parent as an indefinite byte string", "a2 0101 025f41aaff", 0},
    {"parent as text", "a2 0101 026161", 0},
    {"parent undefined", "a2 0101 02f7", 0},
    {"parent as an array of bytes", "a2 0101 028100", 0},
    {"parent longer than the input", "a2 0101 0258ff00", 0},
    {"parent length beyond 2^32", "a2 0101 025b0000000100000000", 0},
    {"tag before the map", "c0 a2 0103 02f6", 0},
    {"tag on the parent", "a2 0103 02 d818 40", 0},
    {"trailing byte", "a2 0103 02f6 00", 0},
    {"trailing map", "a2 0103 02f6 a0", 0},
    {"map head in a long form", "b802 0103 02f6", 0},
    {"indefinite map", "bf 0103 02f6 ff", 0},
    {"not a map", "82 0103", 0},
    {"keys out of order", "a2 02f6 0103", 0},
    {"duplicate kind", "a3 0103 0103 02f6", 0},
    {"text key \"1\"", "a3 0103 02f6 613103", 0},
    {"key 1 in a long head", "a2 180103 02f6", 0},
    {"unknown key 8", "a3 0103 02f6 0800", 0},
    {"unknown key 0", "a3 0000 0103 02f6", 0},
    {"negative key", "a3 0103 02f6 2000", 0},
    {"byte string key", "a3 0103 02f6 410100", 0},
    {"more entries than present", "a3 0103 02f6", 0},
    {"count 9", "a9 0103 02f6", 0},
    /* key 4: KeyID */
    {"KeyID of one byte", "a3 0102 02f6 0441aa", 1},
    {"KeyID empty (omitted when empty)", "a3 0102 02f6 0440", 0},
    {"KeyID null", "a3 0102 02f6 04f6", 0},
    {"KeyID as text", "a3 0102 02f6 046161", 0},
    /* key 6: Votes */
    {"votes present 0", "a3 0104 02f6 0600", 1},
    {"votes 2^64-1", "a3 0104 02f6 061bffffffffffffffff", 1},
    {"votes 2^32", "a3 0104 02f6 061b0000000100000000", 1},
    {"votes 2^32 in a non-shortest head", "a3 0104 02f6 061b00000000ffffffff", 0},
    {"votes 24 in a non-shortest head", "a3 0104 02f6 06190018", 0},
    {"votes negative", "a3 0104 02f6 0620", 0},
    {"votes null", "a3 0104 02f6 06f6", 0},
    {"votes float", "a3 0104 02f6 06f93c00", 0},
    {"votes truncated", "a3 0104 02f6 061a0000", 0},
    /* key 7: Meta */
    {"meta one entry", "a3 0104 02f6 07a1 6161 6162", 1},
    {"meta empty values", "a3 0104 02f6 07a2 616160 616260", 1},
    {"meta empty key", "a3 0104 02f6 07a1 60 6161", 1},
    {"meta empty map (omitted when empty)", "a3 0104 02f6 07a0", 0},
    {"meta null", "a3 0104 02f6 07f6", 0},
    {"meta unsorted", "a3 0104 02f6 07a2 616260 616160", 0},
    {"meta duplicate keys", "a3 0104 02f6 07a2 616160 616160", 0},
    {"meta length-first order", "a3 0104 02f6 07a2 617a60 62616160", 1},
    {"meta length-first order reversed", "a3 0104 02f6 07a2 62616160 617a60", 0},
    {"meta shorter key first", "a3 0104 02f6 07a2 616160 62616160", 1},
    {"meta key as bytes", "a3 0104 02f6 07a1 416160", 0},
    {"meta value as bytes", "a3 0104 02f6 07a1 616140", 0},
    {"meta value null", "a3 0104 02f6 07a1 6161f6", 0},
    {"meta key integer", "a3 0104 02f6 07a1 0160", 0},
    {"meta indefinite text", "a3 0104 02f6 07a1 7f6161ff 60", 0},
    {"meta text length non-shortest", "a3 0104 02f6 07a1 780161 60", 0},
    {"meta map head non-shortest", "a3 0104 02f6 07b801 616160", 0},
    {"meta two-byte UTF-8", "a3 0104 02f6 07a1 6161 62c3a9", 1},
    {"meta three-byte UTF-8", "a3 0104 02f6 07a1 6161 63e282ac", 1},
    {"meta four-byte UTF-8", "a3 0104 02f6 07a1 6161 64f09f9880", 1},
    {"meta U+10FFFF", "a3 0104 02f6 07a1 6161 64f48fbfbf", 1},
    {"meta U+FFFF", "a3 0104 02f6 07a1 6161 63efbfbf", 1},
    {"meta U+D7FF", "a3 0104 02f6 07a1 6161 63ed9fbf", 1},
    {"meta U+E000", "a3 0104 02f6 07a1 6161 63ee8080", 1},
    {"meta NUL and controls are valid UTF-8", "a3 0104 02f6 07a1 6161 62001b", 1},
    {"meta key invalid byte ff", "a3 0104 02f6 07a1 61ff 60", 0},
    {"meta value lone continuation", "a3 0104 02f6 07a1 6161 6180", 0},
    {"meta overlong NUL c0 80", "a3 0104 02f6 07a1 6161 62c080", 0},
    {"meta overlong c1 bf", "a3 0104 02f6 07a1 6161 62c1bf", 0},
    {"meta overlong three-byte e0 80 80", "a3 0104 02f6 07a1 6161 63e08080", 0},
    {"meta overlong e0 9f bf", "a3 0104 02f6 07a1 6161 63e09fbf", 0},
    {"meta overlong four-byte f0 8f bf bf", "a3 0104 02f6 07a1 6161 64f08fbfbf", 0},
    {"meta surrogate U+D800", "a3 0104 02f6 07a1 6161 63eda080", 0},
    {"meta surrogate U+DFFF", "a3 0104 02f6 07a1 6161 63edbfbf", 0},
    {"meta above U+10FFFF", "a3 0104 02f6 07a1 6161 64f4908080", 0},
    {"meta f5 lead", "a3 0104 02f6 07a1 6161 64f5808080", 0},
    {"meta truncated sequence", "a3 0104 02f6 07a1 6161 62e282", 0},
    {"meta sequence cut by the string end", "a3 0104 02f6 07a2 6161 61e2 616282", 0},
    {"meta bad second continuation", "a3 0104 02f6 07a1 6161 63e2ac41", 0},
    /* key 3: Key */
    {"key from the spec", "a3 0101 02f6 03a3 0100 0200 03f6", 1},
    {"key with empty public", "a3 0101 02f6 03a3 0101 0201 0340", 1},
    {"key with metadata", "a3 0101 02f6 03a4 0101 0201 0340 0ca1 616160", 1},
    {"key with empty metadata", "a3 0101 02f6 03a4 0101 0201 0340 0ca0", 0},
    {"key without public", "a3 0101 02f6 03a2 0101 0201", 0},
    {"key without votes", "a3 0101 02f6 03a2 0101 03f6", 0},
    {"key kind 256", "a3 0101 02f6 03a3 01190100 0201 03f6", 0},
    {"key kind 255", "a3 0101 02f6 03a3 0118ff 0201 03f6", 1},
    {"key votes 2^64-1", "a3 0101 02f6 03a3 0101 021bffffffffffffffff 03f6", 1},
    {"key unknown field 4", "a3 0101 02f6 03a4 0101 0201 03f6 0400", 0},
    {"key fields unsorted", "a3 0101 02f6 03a3 0201 0101 03f6", 0},
    {"key metadata under key 7", "a3 0101 02f6 03a4 0101 0201 03f6 07a1 616160", 0},
    {"key null", "a3 0101 02f6 03f6", 0},
    {"key as an array", "a3 0101 02f6 0380", 0},
    {"key public as text", "a3 0101 02f6 03a3 0101 0201 036161", 0},
    {"key public undefined", "a3 0101 02f6 03a3 0101 0201 03f7", 0},
    {"key kind null", "a3 0101 02f6 03a3 01f6 0201 03f6", 0},
    /* key 5: State */
    {"state all null", "a3 0105 02f6 05a3 01f6 02f6 03f6", 1},
    {"state empty arrays", "a3 0105 02f6 05a3 01f6 0280 0380", 1},
    {"state last hash of 32 bytes", "a3 0105 02f6 05a3 01" H32 " 02f6 03f6", 1},
    {"state last hash of 31 bytes (padded by the decoder)", "a3 0105 02f6 05a3 01" H31 " 02f6 03f6",
     0},
    {"state last hash empty", "a3 0105 02f6 05a3 0140 02f6 03f6", 0},
    {"state disablement value of one byte", "a3 0105 02f6 05a3 01f6 028141aa 03f6", 1},
    {"state disablement value empty", "a3 0105 02f6 05a3 01f6 028140 03f6", 1},
    {"state disablement value null", "a3 0105 02f6 05a3 01f6 0281f6 03f6", 0},
    {"state disablement value an integer", "a3 0105 02f6 05a3 01f6 028100 03f6", 0},
    {"state disablement not an array", "a3 0105 02f6 05a3 01f6 0240 03f6", 0},
    {"state disablement indefinite", "a3 0105 02f6 05a3 01f6 029f41aaff 03f6", 0},
    {"state key null", "a3 0105 02f6 05a3 01f6 02f6 0381f6", 0},
    {"state key", "a3 0105 02f6 05a3 01f6 02f6 0381a3 0101 0201 03f6", 1},
    {"state ids", "a3 0105 02f6 05a5 01f6 02f6 03f6 0401 0502", 1},
    {"state id1 only", "a3 0105 02f6 05a4 01f6 02f6 03f6 0401", 1},
    {"state id2 only", "a3 0105 02f6 05a4 01f6 02f6 03f6 0502", 1},
    {"state id 2^64-1", "a3 0105 02f6 05a4 01f6 02f6 03f6 041bffffffffffffffff", 1},
    {"state id zero (omitted when zero)", "a3 0105 02f6 05a4 01f6 02f6 03f6 0400", 0},
    {"state ids unsorted", "a3 0105 02f6 05a5 01f6 02f6 03f6 0502 0401", 0},
    {"state ids duplicate", "a3 0105 02f6 05a5 01f6 02f6 03f6 0401 0401", 0},
    {"state unknown key 6", "a3 0105 02f6 05a4 01f6 02f6 03f6 0601", 0},
    {"state without keys entry", "a3 0105 02f6 05a2 01f6 02f6", 0},
    {"state without last hash entry", "a3 0105 02f6 05a2 02f6 03f6", 0},
    {"state six entries", "a3 0105 02f6 05a6 01f6 02f6 03f6 0401 0502 0601", 0},
    {"state null", "a3 0105 02f6 05f6", 0},
    {"state id null", "a3 0105 02f6 05a4 01f6 02f6 03f6 04f6", 0},
    /* key 23: Signatures */
    {"signature all null", "a3 0103 02f6 1781a2 01f6 02f6", 1},
    {"signature full", "a3 0103 02f6 1781a2 01" H32 " 02" SIG64, 1},
    {"signature empty strings", "a3 0103 02f6 1781a2 0140 0240", 1},
    {"signatures empty (omitted when empty)", "a3 0103 02f6 1780", 0},
    {"signatures null", "a3 0103 02f6 17f6", 0},
    {"signature null element", "a3 0103 02f6 1781f6", 0},
    {"signature one field", "a3 0103 02f6 1781a1 01f6", 0},
    {"signature three fields", "a3 0103 02f6 1781a3 01f6 02f6 03f6", 0},
    {"signature fields unsorted", "a3 0103 02f6 1781a2 02f6 01f6", 0},
    {"signatures array head non-shortest", "a3 0103 02f6 179801a2 01f6 02f6", 0},
    {"signatures indefinite array", "a3 0103 02f6 179fa2 01f6 02f6ff", 0},
    {"signatures key 23 in a long head", "a3 0103 02f6 181781a2 01f6 02f6", 0},
    {"signatures before key 7", "a4 0104 02f6 1781a2 01f6 02f6 07a1 616160", 0},
    {"two signatures", "a3 0103 02f6 1782a2 01f6 02f6 a2 0140 0240", 1},
    /* every field at once, in order */
    {"all fields", "a8 0101 02" H32 " 03a3 0101 0201 03f6 0441aa 05a3 01f6 02f6 03f6 0600 07a1 616160"
                   " 1781a2 01f6 02f6", 1},
    {"all fields, state before key", "a8 0101 02" H32 " 05a3 01f6 02f6 03f6 03a3 0101 0201 03f6 0441aa"
                                     " 0600 07a1 616160 1781a2 01f6 02f6", 0},
};

static void table_cases(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        buf b = {0};
        put_hex(&b, CASES[i].hex);
        int got = accepts(b.p, b.n);
        if (got != CASES[i].canonical) {
            fprintf(stderr, "%s: reader said %d, want %d\n", CASES[i].name, got,
                    CASES[i].canonical);
            failures++;
        }
        free(b.p);
    }
}

/* ---- bounds ---- */

static void checkpoint(buf *b, size_t n_dis, size_t n_keys, size_t n_sigs) {
    put_head(b, 5, n_sigs ? 4 : 3);
    put_hex(b, "01 05 02 f6 05");
    put_state(b, n_dis, n_keys);
    if (n_sigs) put_signatures(b, n_sigs);
}

static void bounds(void) {
    struct {
        size_t dis, keys, sigs;
        int want;
    } cases[] = {
        {32, 1, 1, 1},   {33, 1, 1, 0},   {1, 512, 1, 1}, {1, 513, 1, 0},
        {1, 1, 64, 1},   {1, 1, 65, 0},   {0, 0, 0, 1},   {32, 512, 64, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b = {0};
        checkpoint(&b, cases[i].dis, cases[i].keys, cases[i].sigs);
        int got = accepts(b.p, b.n);
        if (got != cases[i].want) {
            fprintf(stderr, "bounds %zu dis, %zu keys, %zu sigs: got %d want %d\n", cases[i].dis,
                    cases[i].keys, cases[i].sigs, got, cases[i].want);
            failures++;
        }
        free(b.p);
    }
    for (size_t entries = 63; entries <= 65; entries++) {
        buf b = {0};
        put_hex(&b, "a3 0104 02f6 07");
        put_head(&b, 5, entries);
        for (size_t i = 0; i < entries; i++) {
            char key[24];
            snprintf(key, sizeof key, "k%03zu", i); /* equal lengths, ascending bytes */
            put_text(&b, key);
            put_text(&b, "v");
        }
        EXPECT(accepts(b.p, b.n) == (entries <= TKA_AUM_MAX_META_ENTRIES), "meta entry bound");
        free(b.p);
    }
    /* A map head claiming more metadata entries than the input holds. */
    buf b = {0};
    put_hex(&b, "a3 0104 02f6 07 b8 40 6161 60");
    EXPECT(!accepts(b.p, b.n), "meta head beyond the input");
    free(b.p);
}

/* ---- one large AUM: fields, truncations, single-byte damage ---- */

static void large_aum(buf *b, int with_sigs) {
    put_head(b, 5, with_sigs ? 8 : 7);
    put_hex(b, "01 05 02 " H32 " 03");
    put_key(b, 4096, 9, 1);
    put_hex(b, "04 41 aa 05");
    put_state(b, 3, 5);
    put_hex(b, "06 19 1000 07 a2");
    put_text(b, "z");
    put_text(b, "\xc3\xa9t\xc3\xa9");
    put_text(b, "ab");
    put_text(b, "");
    if (with_sigs) put_signatures(b, 3);
}

static void fields(void) {
    buf b = {0};
    large_aum(&b, 1);
    static tka_aum aum;
    EXPECT(tka_aum_read(b.p, b.n, &aum) == 1, "large AUM accepted");
    EXPECT(aum.kind == 5 && !aum.prev_is_null && aum.prev.len == 32, "kind and parent");
    EXPECT(aum.has_key && aum.key.kind == 1 && aum.key.votes == 4096, "key");
    EXPECT(aum.key.public_key.len == 32 && !aum.key.public_is_null, "key public");
    EXPECT(aum.key.meta.entries == 1 && aum.key.meta.total_bytes == 8, "key metadata");
    EXPECT(aum.key_id.len == 1 && aum.key_id.ptr[0] == 0xaa, "key id");
    EXPECT(aum.has_state && aum.state.last_hash_is_null && aum.state.n_disablement == 3,
           "state disablement");
    EXPECT(aum.state.n_keys == 5 && aum.state.keys[4].votes == 5, "state keys");
    EXPECT(aum.state.state_id1 == 7 && aum.state.state_id2 == (1ULL << 40), "state ids");
    EXPECT(aum.has_votes && aum.votes == 4096, "votes");
    EXPECT(aum.meta.entries == 2 && aum.meta.total_bytes == 1 + 5 + 2 + 0, "metadata sizes");
    EXPECT(aum.n_signatures == 3 && aum.signatures[2].key_id.len == 32 &&
               aum.signatures[2].signature.len == 64 && !aum.signatures[0].key_id_is_null,
           "signatures");
    /* Metadata in canonical order: "z" before "ab" (shorter first). */
    size_t pos = 0;
    tka_span k, v;
    EXPECT(tka_meta_next(&aum.meta, &pos, &k, &v) && k.len == 1 && k.ptr[0] == 'z' && v.len == 5,
           "first metadata entry");
    EXPECT(tka_meta_next(&aum.meta, &pos, &k, &v) && k.len == 2 && v.len == 0,
           "second metadata entry");
    EXPECT(!tka_meta_next(&aum.meta, &pos, &k, &v), "metadata ends");
    pos = 0;
    tka_meta none = {{NULL, 0}, 0, 0};
    EXPECT(!tka_meta_next(&none, &pos, &k, &v), "absent metadata has no entries");

    /* Hash of the whole; sighash = hash of the same AUM encoded without signatures. */
    buf unsigned_aum = {0};
    large_aum(&unsigned_aum, 0);
    uint8_t want_hash[32], want_sig[32], got_hash[32], got_sig[32];
    tka_blake2s(b.p, b.n, want_hash);
    tka_blake2s(unsigned_aum.p, unsigned_aum.n, want_sig);
    tka_aum_hash(b.p, b.n, got_hash);
    tka_aum_sig_hash(b.p, b.n, &aum, got_sig);
    EXPECT(memcmp(want_hash, got_hash, 32) == 0, "hash of the whole AUM");
    EXPECT(memcmp(want_sig, got_sig, 32) == 0, "sighash without the signatures");
    uint8_t h2[32], s2[32];
    EXPECT(tka_aum_hashes(b.p, b.n, h2, s2) == 1 && memcmp(h2, want_hash, 32) == 0 &&
               memcmp(s2, want_sig, 32) == 0,
           "tka_aum_hashes");
    /* Without signatures the sighash is the hash. */
    EXPECT(tka_aum_read(unsigned_aum.p, unsigned_aum.n, &aum) == 1, "unsigned large AUM");
    tka_aum_sig_hash(unsigned_aum.p, unsigned_aum.n, &aum, got_sig);
    EXPECT(memcmp(got_sig, want_sig, 32) == 0, "sighash of an unsigned AUM");
    /* 24 signatures: a two-byte array head, still sliced correctly. */
    buf many = {0}, many_unsigned = {0};
    checkpoint(&many, 1, 1, 24);
    checkpoint(&many_unsigned, 1, 1, 0);
    EXPECT(tka_aum_hashes(many.p, many.n, h2, s2) == 1, "24 signatures");
    tka_blake2s(many_unsigned.p, many_unsigned.n, want_sig);
    EXPECT(memcmp(s2, want_sig, 32) == 0, "sighash with a two-byte signatures head");

    /* Every truncation is refused (and read within bounds). */
    for (size_t cut = 0; cut < b.n; cut++) {
        if (accepts(b.p, cut)) {
            fprintf(stderr, "truncation to %zu of %zu bytes accepted\n", cut, b.n);
            failures++;
        }
    }
    /* Single-byte damage: never crashes; whatever survives still hashes consistently. */
    for (size_t i = 0; i < b.n; i++) {
        for (unsigned delta = 1; delta < 256; delta += 37) {
            uint8_t saved = b.p[i];
            b.p[i] = (uint8_t)(saved + delta);
            (void)accepts(b.p, b.n);
            b.p[i] = saved;
        }
    }
    free(b.p);
    free(unsigned_aum.p);
    free(many.p);
    free(many_unsigned.p);
}

/* A NULL pointer with length 0 is simply not an AUM. */
static void degenerate(void) {
    uint8_t h[32], s[32];
    EXPECT(tka_aum_is_canonical(NULL, 0) == 0, "NULL input");
    EXPECT(tka_aum_hashes(NULL, 0, h, s) == 0, "NULL input hashes");
}

int main(void) {
    table_cases();
    bounds();
    fields();
    degenerate();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_aum_reader: ok\n");
    return 0;
}
