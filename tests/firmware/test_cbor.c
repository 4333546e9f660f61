/* The strict CBOR reader of calls: every malformed class refused, the accepted subset read
 * back, the writer's heads, and random bytes never crash the reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor.h"
#include "check.h"

static int ok(const char *hex) {
    uint8_t buf[512];
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        buf[i] = (uint8_t)v;
    }
    return cbor_check(buf, n, NULL) == 0;
}

static int rejected_because(const uint8_t *b, size_t n, const char *want) {
    const char *why = NULL;
    if (cbor_check(b, n, &why) == 0) return 0;
    return want == NULL || (why != NULL && strstr(why, want) != NULL);
}

static void test_classes(void) {
    /* Accepted. */
    CHECK(ok("00"));
    CHECK(ok("1b7fffffffffffffff"));
    CHECK(ok("3b7fffffffffffffff"));   /* -2^63 */
    CHECK(ok("1805"));                 /* non-shortest heads are fine */
    CHECK(ok("f4") && ok("f5") && ok("f6"));
    CHECK(ok("4100") && ok("40") && ok("60") && ok("80") && ok("a0"));
    CHECK(ok("6548656c6c6f"));
    CHECK(ok("63e282ac"));             /* € */
    CHECK(ok("64f0908d88"));           /* U+10348 */
    CHECK(ok("a2616101616202"));
    CHECK(ok("a1626964a1616183010203"));
    /* Refused, one per class. */
    CHECK(!ok(""));
    CHECK(!ok("18"));                  /* truncated head */
    CHECK(!ok("1c") && !ok("1d") && !ok("1e")); /* reserved additional info */
    CHECK(!ok("5f4100ff") && !ok("7f6100ff") && !ok("9f00ff") && !ok("bf616100ff")); /* indefinite */
    CHECK(!ok("c000") && !ok("d8200a"));           /* tags */
    CHECK(!ok("f90000") && !ok("fa00000000") && !ok("fb0000000000000000")); /* floats */
    CHECK(!ok("f7") && !ok("e0") && !ok("f820") && !ok("ff")); /* other simple values, break */
    CHECK(!ok("3b8000000000000000"));  /* a negative integer beyond 64 bits */
    CHECK(!ok("456162"));              /* string past the end */
    CHECK(!ok("62c328"));              /* bad continuation */
    CHECK(!ok("62c0af"));              /* overlong */
    CHECK(!ok("63eda080"));            /* surrogate */
    CHECK(!ok("64f4908080"));          /* above U+10FFFF */
    CHECK(!ok("61ff"));
    CHECK(!ok("a10102"));              /* integer key */
    CHECK(!ok("a1410102"));            /* byte-string key */
    CHECK(!ok("a2616101616102"));      /* duplicate key */
    CHECK(!ok("a261610178016102"));    /* duplicate hidden behind a longer head */
    CHECK(!ok("9affffffff"));          /* count past the end */
    CHECK(!ok("a3616100"));            /* map count past the end */
    CHECK(!ok("0000"));                /* trailing bytes */
    CHECK(ok("8100"));
    /* Depth: 16 nested arrays are fine, 17 are not. */
    uint8_t deep[40];
    memset(deep, 0x81, 16);
    deep[16] = 0;
    CHECK(cbor_check(deep, 17, NULL) == 0);
    memset(deep, 0x81, 17);
    deep[17] = 0;
    CHECK(rejected_because(deep, 18, "nesting"));
    /* Map size: 64 entries fine, 65 not. */
    uint8_t map[2 + 65 * 4];
    for (int entries = 64; entries <= 65; entries++) {
        size_t n = 0;
        map[n++] = 0xb8, map[n++] = (uint8_t)entries;
        /* The explicit bound keeps GCC 12's -O2 overflow warning from misfiring here. */
        for (int i = 0; i < entries && n + 4 <= sizeof map; i++)
            map[n++] = 0x62, map[n++] = 'k', map[n++] = (uint8_t)(0x21 + i), map[n++] = 0;
        if (entries == 64) CHECK(cbor_check(map, n, NULL) == 0);
        else CHECK(rejected_because(map, n, "too many"));
    }
    CHECK(rejected_because((const uint8_t *)"\xc1\x00", 2, "tag"));
    CHECK(rejected_because((const uint8_t *)"\xfa\0\0\0\0", 5, "float"));
    CHECK(rejected_because((const uint8_t *)"\x62\xc3\x28", 3, "UTF-8"));
    CHECK(rejected_because((const uint8_t *)"\xa2\x61\x61\x01\x61\x61\x02", 7, "duplicate"));
    CHECK(rejected_because((const uint8_t *)"\x5f\x41\x00\xff", 4, "indefinite"));
}

static void test_accessors(void) {
    uint8_t buf[256];
    cbor_writer w;
    cw_init(&w, buf, sizeof buf);
    cw_map(&w, 4);
    cw_text(&w, "id");
    cw_uint(&w, 1234567890123ull);
    cw_text(&w, "list");
    cw_array(&w, 3);
    cw_bytes(&w, (const uint8_t *)"\x01\x02", 2);
    cw_bool(&w, 1);
    cw_null(&w);
    cw_text(&w, "name");
    cw_text(&w, "k1");
    cw_text(&w, "m");
    cw_map(&w, 0);
    CHECK(!w.overflow);
    CHECK(cbor_check(buf, w.len, NULL) == 0);
    cbor_item top = {buf, w.len}, v, e;
    uint64_t u;
    CHECK(cbor_map_find(top, "id", &v) && cbor_uint(v, &u) == 0 && u == 1234567890123ull);
    CHECK(!cbor_map_find(top, "missing", &v));
    CHECK(cbor_map_find(top, "name", &v) && cbor_text_is(v, "k1") && !cbor_text_is(v, "k"));
    CHECK(cbor_map_find(top, "list", &v) && cbor_type(v) == CB_ARRAY && cbor_count(v) == 3);
    cbor_iter it;
    CHECK(cbor_iter_init(v, &it) == 0);
    const uint8_t *p;
    size_t n;
    CHECK(cbor_next(&it, &e) && cbor_bytes(e, &p, &n) == 0 && n == 2 && p[1] == 2);
    int b;
    CHECK(cbor_next(&it, &e) && cbor_bool(e, &b) == 0 && b == 1);
    CHECK(cbor_next(&it, &e) && cbor_type(e) == CB_NULL);
    CHECK(!cbor_next(&it, &e));
    CHECK(cbor_map_find(top, "m", &v) && cbor_type(v) == CB_MAP && cbor_count(v) == 0);
    /* Wrong types are reported, not misread. */
    CHECK(cbor_map_find(top, "name", &v) && cbor_uint(v, &u) == -1 && cbor_bytes(v, &p, &n) == -1);
}

static void test_writer_heads(void) {
    static const struct {
        uint64_t v;
        size_t len;
    } cases[] = {{0, 1},      {23, 1},         {24, 2},          {255, 2},
                 {256, 3},    {65535, 3},      {65536, 5},       {0xffffffffu, 5},
                 {0x100000000ull, 9}, {UINT64_MAX, 9}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[16];
        cbor_writer w;
        cw_init(&w, buf, sizeof buf);
        cw_uint(&w, cases[i].v);
        CHECK_EQ(w.len, cases[i].len);
        uint64_t back;
        cbor_item it = {buf, w.len};
        CHECK(cbor_check(buf, w.len, NULL) == 0 && cbor_uint(it, &back) == 0 && back == cases[i].v);
    }
    uint8_t small[4];
    cbor_writer w;
    cw_init(&w, small, sizeof small);
    cw_text(&w, "toolong");
    CHECK(w.overflow);
    cw_uint(&w, 1); /* sticky */
    CHECK(w.overflow && w.len <= sizeof small);
}

static void test_random(void) {
    /* Random and mutated bytes: the reader answers, never crashes (ASan watches), and what it
     * accepts can be walked without leaving the buffer. */
    srand(11);
    uint8_t buf[64];
    unsigned accepted = 0;
    for (int round = 0; round < 200000; round++) {
        size_t n = 1 + (size_t)(rand() % 24);
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rand();
        if (round % 2) buf[0] = (uint8_t)(0x80 | (rand() % 0x40)); /* bias to containers */
        uint8_t *copy = malloc(n);
        memcpy(copy, buf, n);
        if (cbor_check(copy, n, NULL) == 0) {
            accepted++;
            cbor_item it = {copy, n}, e;
            cbor_iter iter;
            if (cbor_iter_init(it, &iter) == 0)
                while (cbor_next(&iter, &e)) CHECK(e.p >= copy && e.p + e.len <= copy + n);
        }
        free(copy);
    }
    CHECK(accepted > 0);
}

int main(void) {
    test_classes();
    test_accessors();
    test_writer_heads();
    test_random();
    return check_report("test_cbor");
}
