/*
 * SHA-512 eight messages at a time for Ed25519 challenges.
 *
 * A batch spends one SHA-512 compression per signature on k = SHA-512(R || A || M): with
 * tailnet lock's 32-byte messages that is 96 bytes, one block. SHA-512 works on 64-bit words,
 * so eight independent blocks fill the eight lanes of a 512-bit vector exactly; AVX-512F has
 * the 64-bit rotate (vprorq) and three-input logic (vpternlogq) the rounds need. Blocks are
 * loaded word by word (big-endian) into lanes; nothing is shared between lanes, so a lane's
 * digest is bit for bit the scalar one.
 */
#include "sha512_x8.h"

#include <string.h>

#include "ed25519_internal.h"
#include "fe_ifma.h"
#include "sha512.h"

static const uint64_t sha512_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define X8_TARGET __attribute__((target("avx512f")))

static inline uint64_t load_be64(const uint8_t *p) {
    uint64_t x;
    memcpy(&x, p, 8);
    return __builtin_bswap64(x);
}

X8_TARGET static inline __m512i xor3(__m512i a, __m512i b, __m512i c) {
    return _mm512_ternarylogic_epi64(a, b, c, 0x96);
}

X8_TARGET static void compress_x8(__m512i state[8], const uint8_t blocks[8][128]) {
    __m512i w[16];
    for (int t = 0; t < 16; t++)
        w[t] = _mm512_set_epi64(
            (long long)load_be64(blocks[7] + 8 * t), (long long)load_be64(blocks[6] + 8 * t),
            (long long)load_be64(blocks[5] + 8 * t), (long long)load_be64(blocks[4] + 8 * t),
            (long long)load_be64(blocks[3] + 8 * t), (long long)load_be64(blocks[2] + 8 * t),
            (long long)load_be64(blocks[1] + 8 * t), (long long)load_be64(blocks[0] + 8 * t));
    __m512i a = state[0], b = state[1], c = state[2], d = state[3];
    __m512i e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 80; t++) {
        __m512i wt;
        if (t < 16) {
            wt = w[t];
        } else {
            /* The schedule in a ring of 16: w[t] = s1(w[t-2]) + w[t-7] + s0(w[t-15]) + w[t-16]. */
            __m512i w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
            __m512i s0 = xor3(_mm512_ror_epi64(w15, 1), _mm512_ror_epi64(w15, 8),
                              _mm512_srli_epi64(w15, 7));
            __m512i s1 = xor3(_mm512_ror_epi64(w2, 19), _mm512_ror_epi64(w2, 61),
                              _mm512_srli_epi64(w2, 6));
            wt = _mm512_add_epi64(_mm512_add_epi64(w[t & 15], s0),
                                  _mm512_add_epi64(w[(t - 7) & 15], s1));
            w[t & 15] = wt;
        }
        __m512i big_s1 =
            xor3(_mm512_ror_epi64(e, 14), _mm512_ror_epi64(e, 18), _mm512_ror_epi64(e, 41));
        __m512i ch = _mm512_ternarylogic_epi64(e, f, g, 0xCA);  /* e ? f : g */
        __m512i t1 = _mm512_add_epi64(
            _mm512_add_epi64(h, big_s1),
            _mm512_add_epi64(ch, _mm512_add_epi64(
                                     _mm512_set1_epi64((long long)sha512_round_constants[t]), wt)));
        __m512i big_s0 =
            xor3(_mm512_ror_epi64(a, 28), _mm512_ror_epi64(a, 34), _mm512_ror_epi64(a, 39));
        __m512i maj = _mm512_ternarylogic_epi64(a, b, c, 0xE8);  /* majority */
        __m512i t2 = _mm512_add_epi64(big_s0, maj);
        h = g;
        g = f;
        f = e;
        e = _mm512_add_epi64(d, t1);
        d = c;
        c = b;
        b = a;
        a = _mm512_add_epi64(t1, t2);
    }
    state[0] = _mm512_add_epi64(state[0], a);
    state[1] = _mm512_add_epi64(state[1], b);
    state[2] = _mm512_add_epi64(state[2], c);
    state[3] = _mm512_add_epi64(state[3], d);
    state[4] = _mm512_add_epi64(state[4], e);
    state[5] = _mm512_add_epi64(state[5], f);
    state[6] = _mm512_add_epi64(state[6], g);
    state[7] = _mm512_add_epi64(state[7], h);
}

X8_TARGET static void oneblock_x8(uint8_t out[8][64], const uint8_t blocks[8][128]) {
    __m512i state[8];
    for (int i = 0; i < 8; i++) state[i] = _mm512_set1_epi64((long long)sha512_iv[i]);
    compress_x8(state, blocks);
    uint64_t words[8][8]; /* words[i][lane] */
    for (int i = 0; i < 8; i++) _mm512_storeu_si512((void *)words[i], state[i]);
    for (int lane = 0; lane < 8; lane++)
        for (int i = 0; i < 8; i++) {
            uint64_t be = __builtin_bswap64(words[i][lane]);
            memcpy(out[lane] + 8 * i, &be, 8);
        }
}

static int lanes_available(void) { return fe_ifma_available(); }

#else /* not x86-64 GCC/Clang: no lanes */

static int lanes_available(void) { return 0; }
static void oneblock_x8(uint8_t out[8][64], const uint8_t blocks[8][128]) {
    (void)out;
    (void)blocks;
}

#endif

int sha512_x8_oneblock(uint8_t out[8][64], const uint8_t blocks[8][128]) {
    if (!lanes_available()) return 0;
    oneblock_x8(out, blocks);
    return 1;
}

/* R || A || M, the 0x80 marker, zeros, and the 128-bit big-endian bit length. */
static void pad_challenge(uint8_t block[128], const uint8_t r[32], const uint8_t a[32],
                          const uint8_t *msg, size_t msg_len) {
    size_t len = 64 + msg_len;
    memset(block, 0, 128);
    memcpy(block, r, 32);
    memcpy(block + 32, a, 32);
    if (msg_len > 0) memcpy(block + 64, msg, msg_len);
    block[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) block[127 - i] = (uint8_t)(bits >> (8 * i));
}

void ed25519_challenge_x8(sc k[8], const uint8_t *const r[8], const uint8_t *const a[8],
                          const uint8_t *const msg[8], const size_t msg_len[8], size_t lanes) {
    int one_block = lanes > 1 && lanes_available();
    for (size_t j = 0; j < lanes && one_block; j++) one_block = msg_len[j] <= SHA512_X8_MAX_MSG;
    if (!one_block) {
        for (size_t j = 0; j < lanes; j++) ed25519_challenge(&k[j], r[j], a[j], msg[j], msg_len[j]);
        return;
    }
    uint8_t blocks[8][128];
    uint8_t digests[8][64];
    for (size_t j = 0; j < 8; j++) {
        size_t src = j < lanes ? j : 0; /* idle lanes repeat lane 0; their output is dropped */
        pad_challenge(blocks[j], r[src], a[src], msg[src], msg_len[src]);
    }
    oneblock_x8(digests, blocks);
    for (size_t j = 0; j < lanes; j++) sc_from_bytes_wide(&k[j], digests[j]);
}
