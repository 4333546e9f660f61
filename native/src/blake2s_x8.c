/*
 * BLAKE2s-256 of up to eight messages at once, one message per 32-bit lane of AVX2 vectors.
 *
 * verify_peers hashes every signature level it checks (one to three blocks each); one at a
 * time that was 14% of the bulk path (570 cycles a block). In lanes the sixteen state words
 * are vectors, so the rounds run for eight messages in the time of about one, and messages of
 * different lengths simply stop updating their lane after their last block. Without AVX2 (or
 * with TKA_NATIVE_NO_AVX2=1) each message goes through the scalar code.
 */
#include <string.h>

#include "blake2s.h"
#include "ge_x4_avx2.h"
#include "tka_native.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2_TARGET __attribute__((target("avx2")))

AVX2_TARGET static inline __m256i rotr16(__m256i x) {
    const __m256i k = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3,
                                       0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    return _mm256_shuffle_epi8(x, k);
}

AVX2_TARGET static inline __m256i rotr8(__m256i x) {
    const __m256i k = _mm256_setr_epi8(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, 1, 2,
                                       3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
    return _mm256_shuffle_epi8(x, k);
}

#define ROTR(x, n) _mm256_or_si256(_mm256_srli_epi32((x), (n)), _mm256_slli_epi32((x), 32 - (n)))

#define G8(a, b, c, d, x, y)                                              \
    do {                                                                  \
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), (x));       \
        v[d] = rotr16(_mm256_xor_si256(v[d], v[a]));                      \
        v[c] = _mm256_add_epi32(v[c], v[d]);                              \
        v[b] = ROTR(_mm256_xor_si256(v[b], v[c]), 12);                    \
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), (y));       \
        v[d] = rotr8(_mm256_xor_si256(v[d], v[a]));                       \
        v[c] = _mm256_add_epi32(v[c], v[d]);                              \
        v[b] = ROTR(_mm256_xor_si256(v[b], v[c]), 7);                     \
    } while (0)

/* rows[j] = eight 32-bit words of lane j -> cols[k] = word k of every lane (its own inverse). */
AVX2_TARGET static inline void transpose8(__m256i cols[8], const __m256i rows[8]) {
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(rows[i], rows[i + 1]);
        t[i + 1] = _mm256_unpackhi_epi32(rows[i], rows[i + 1]);
    }
    for (int i = 0; i < 8; i += 4)
        for (int o = 0; o < 2; o++) {
            u[i + o] = _mm256_unpacklo_epi64(t[i + o], t[i + 2 + o]);
            u[i + 2 + o] = _mm256_unpackhi_epi64(t[i + o], t[i + 2 + o]);
        }
    /* u[0]: words 0 of lanes 0-3 | 4-7 mixed by 128-bit halves; join the halves. */
    static const int order[4] = {0, 2, 1, 3};
    for (int k = 0; k < 4; k++) {
        cols[k] = _mm256_permute2x128_si256(u[order[k]], u[4 + order[k]], 0x20);
        cols[k + 4] = _mm256_permute2x128_si256(u[order[k]], u[4 + order[k]], 0x31);
    }
}

AVX2_TARGET static void blake2s_x8_avx2(uint8_t out[][32], const uint8_t *const msg[8],
                                        const size_t len[8], int count) {
    size_t blocks[8], most = 0;
    for (int j = 0; j < 8; j++) {
        size_t l = j < count ? len[j] : 0;
        blocks[j] = j < count ? (l == 0 ? 1 : (l + 63) / 64) : 0;
        if (blocks[j] > most) most = blocks[j];
    }
    __m256i h[8];
    for (int i = 0; i < 8; i++) h[i] = _mm256_set1_epi32((int)BLAKE2S_IV[i]);
    /* Parameter block word 0: digest length 32, no key, fanout 1, depth 1. */
    h[0] = _mm256_xor_si256(h[0], _mm256_set1_epi32(0x01010000 ^ 32));
    _Alignas(32) uint32_t block[8][16];
    _Alignas(32) uint32_t t0[8], t1[8], last[8], live[8];
    for (size_t b = 0; b < most; b++) {
        for (int j = 0; j < 8; j++) {
            live[j] = b < blocks[j] ? 0xffffffffu : 0;
            last[j] = b + 1 == blocks[j] ? 0xffffffffu : 0;
            if (!live[j]) {
                t0[j] = t1[j] = 0;
                continue;
            }
            size_t at = 64 * b, end = at + 64 < len[j] ? at + 64 : len[j];
            uint64_t counted = (uint64_t)end;
            t0[j] = (uint32_t)counted;
            t1[j] = (uint32_t)(counted >> 32);
            if (end - at == 64) {
                memcpy(block[j], msg[j] + at, 64);
            } else {
                memset(block[j], 0, 64);
                if (end > at) memcpy(block[j], msg[j] + at, end - at);
            }
        }
        __m256i rows[8], m[16];
        for (int j = 0; j < 8; j++) rows[j] = _mm256_load_si256((const __m256i *)(void *)&block[j][0]);
        transpose8(m, rows);
        for (int j = 0; j < 8; j++) rows[j] = _mm256_load_si256((const __m256i *)(void *)&block[j][8]);
        transpose8(m + 8, rows);
        __m256i v[16];
        for (int i = 0; i < 8; i++) {
            v[i] = h[i];
            v[i + 8] = _mm256_set1_epi32((int)BLAKE2S_IV[i]);
        }
        v[12] = _mm256_xor_si256(v[12], _mm256_load_si256((const __m256i *)(void *)t0));
        v[13] = _mm256_xor_si256(v[13], _mm256_load_si256((const __m256i *)(void *)t1));
        v[14] = _mm256_xor_si256(v[14], _mm256_load_si256((const __m256i *)(void *)last));
        BLAKE2S_ROUNDS(G8, m);
        const __m256i keep = _mm256_load_si256((const __m256i *)(void *)live);
        for (int i = 0; i < 8; i++) {
            __m256i next = _mm256_xor_si256(h[i], _mm256_xor_si256(v[i], v[i + 8]));
            h[i] = _mm256_blendv_epi8(h[i], next, keep);
        }
    }
    __m256i words[8];
    transpose8(words, h); /* words[j]: the eight state words of lane j, little-endian */
    for (int j = 0; j < count; j++) _mm256_storeu_si256((__m256i *)(void *)out[j], words[j]);
}

void blake2s_x8(uint8_t out[][32], const uint8_t *const msg[8], const size_t len[8], int count) {
    if (count < 1 || count > 8) return;
    if (ge_x4_avx2_available()) {
        blake2s_x8_avx2(out, msg, len, count);
        return;
    }
    for (int j = 0; j < count; j++) tka_blake2s(msg[j], len[j], out[j]);
}

#else /* not x86-64 GCC/Clang: one at a time */

void blake2s_x8(uint8_t out[][32], const uint8_t *const msg[8], const size_t len[8], int count) {
    for (int j = 0; j < count && j < 8; j++) tka_blake2s(msg[j], len[j], out[j]);
}

#endif
