/*
 * Batch ZIP-215 verification.
 *
 * With random 128-bit z_i, all signatures in a set are valid (except with probability
 * about 2^-128) iff
 *     [8]( sum_i z_i R_i + sum_A (sum_{i: A_i = A} z_i k_i) A - (sum_i z_i S_i) B ) == 0.
 * Signatures sharing a public key share one A term (keys are grouped by their exact bytes),
 * the R terms go through Pippenger with 128-bit scalars, and the few A terms plus B through
 * Straus (or Pippenger when there are many distinct keys). Because the check is cofactored,
 * it agrees with single ZIP-215 verification, so on failure we bisect: with the z_i fixed the
 * combination is linear, so the right half's result follows from the whole and the left half
 * (one multi-scalar multiplication per level); small leaves are settled by exact single
 * verification. Ranges of at most small_range() signatures (small batches, deep bisection
 * levels) use one Straus pass over all their R, A and B terms instead.
 */
#define _DEFAULT_SOURCE 1
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ed25519_internal.h"
#include "fe_ifma.h"
#include "ge.h"
#include "sc.h"
#include "sha512_x8.h"
#include "straus_x8.h"
#include "tka_native.h"

#define LEAF_SIZE 4          /* ranges this small are settled by single verification */
#define STRAUS_MAX_KEYS 32   /* more distinct keys than this: A terms go through Pippenger */
/* Larger inputs are verified in independent chunks: memory stays around 16 MB, and beyond
 * this size Pippenger gains little per signature. */
#define BATCH_CHUNK 65536
/* Ranges up to small_range() signatures are checked with one Straus pass instead of
 * Pippenger: with the pass in eight IFMA lanes (straus_x8.c) it stays ahead to about 4,000
 * (n = 1000, 3 keys, from C: 300k -> 430k sig/s with 2048 instead of 256); the scalar pass
 * only to a few hundred (n = 1000, 3 keys, without IFMA, from C: 89k with 2048, 154k with 256). */
#define SMALL_RANGE 2048
#define SMALL_RANGE_SCALAR 256

static size_t small_range(void) { return fe_ifma_available() ? SMALL_RANGE : SMALL_RANGE_SCALAR; }

int tka_os_random(uint8_t *buf, size_t len) {
    while (len > 0) {
        ssize_t got = getrandom(buf, len, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += got;
        len -= (size_t)got;
    }
    return 0;
}

typedef struct {
    uint8_t bytes[32];
    ge_p3 point;
    ge_niels niels;
    int ok;
} batch_key;

typedef struct {
    const tka_batch_item *items;
    uint8_t *verdicts;
    batch_key *keys; /* grows as distinct keys appear */
    size_t nkeys, keys_cap;
    /* Per prepared signature (only those that passed the cheap checks), index-aligned. */
    size_t m;
    size_t *item_index;
    uint32_t *key_index;
    ge_niels *r_niels;
    sc *z;
    sc *s;
    sc *k;
    /* Scratch for one check. */
    sc_wide *key_acc;
    uint8_t *key_touched;
    uint32_t *touched_list;
    ge_p3 *a_points;
    ge_niels *a_niels;
    sc *a_scalars;
    ge_p3 *small_points; /* 2 * min(m, small_range()) terms: R and A */
    sc *small_scalars;
} batch_ctx;

/* Open-addressing map from key bytes to key index; seeded so inputs can't force collisions. */
typedef struct {
    uint32_t *slots; /* key index + 1, 0 = empty */
    size_t mask;
    uint64_t seed;
} key_map;

static uint64_t key_hash(const uint8_t b[32], uint64_t seed) {
    uint64_t h = seed;
    for (int i = 0; i < 4; i++) {
        uint64_t w;
        memcpy(&w, b + 8 * i, 8);
        h ^= w;
        h *= 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    return h;
}

#define KEY_NOMEM (UINT32_MAX - 1)

/* Returns the key index for pk (added on first sight, not yet decoded), or KEY_NOMEM if the
 * key table can't grow. */
static uint32_t key_lookup(batch_ctx *ctx, key_map *map, const uint8_t pk[32]) {
    size_t pos = (size_t)key_hash(pk, map->seed) & map->mask;
    for (;;) {
        uint32_t slot = map->slots[pos];
        if (slot == 0) break;
        batch_key *k = &ctx->keys[slot - 1];
        if (memcmp(k->bytes, pk, 32) == 0) return slot - 1;
        pos = (pos + 1) & map->mask;
    }
    if (ctx->nkeys == ctx->keys_cap) {
        size_t cap = ctx->keys_cap ? 2 * ctx->keys_cap : 16;
        batch_key *grown = realloc(ctx->keys, cap * sizeof(batch_key));
        if (grown == NULL) return KEY_NOMEM;
        ctx->keys = grown;
        ctx->keys_cap = cap;
    }
    batch_key *k = &ctx->keys[ctx->nkeys];
    memcpy(k->bytes, pk, 32);
    k->ok = 0; /* decoded later, eight keys at a time (decode_keys) */
    map->slots[pos] = (uint32_t)(ctx->nkeys + 1);
    ctx->nkeys++;
    return (uint32_t)(ctx->nkeys - 1);
}

/* Decode every key found, eight at a time (the square roots run in parallel lanes). */
static void decode_keys(batch_ctx *ctx) {
    for (size_t c = 0; c < ctx->nkeys; c += 8) {
        const uint8_t *encs[8];
        ge_p3 pts[8];
        int ok[8];
        size_t lanes = ctx->nkeys - c < 8 ? ctx->nkeys - c : 8;
        for (size_t j = 0; j < 8; j++) encs[j] = ctx->keys[c + (j < lanes ? j : 0)].bytes;
        ge_frombytes_lenient_x8(pts, ok, encs);
        for (size_t j = 0; j < lanes; j++) {
            batch_key *k = &ctx->keys[c + j];
            k->ok = ok[j];
            if (!k->ok) continue;
            k->point = pts[j];
            ge_affine_p3_to_niels(&k->niels, &k->point);
        }
    }
}

/* Back from (y+x, y-x, 2dxy) of an affine point to extended coordinates (x = (a - b)/2). */
static void niels_to_p3(ge_p3 *r, const ge_niels *q) {
    static const fe half = {{0x7fffffffffff7ULL, 0x7ffffffffffffULL, 0x7ffffffffffffULL,
                             0x7ffffffffffffULL, 0x3ffffffffffffULL}};
    fe t;
    fe_sub(&t, &q->yplusx, &q->yminusx);
    fe_mul(&r->X, &t, &half);
    fe_add(&t, &q->yplusx, &q->yminusx);
    fe_mul(&r->Y, &t, &half);
    r->Z = FE_ONE;
    fe_mul(&r->T, &r->X, &r->Y);
}

static int cleared_is_identity(const ge_p3 *p) {
    ge_p3 t = *p;
    for (int i = 0; i < 3; i++) ge_dbl_p3(&t, &t);
    return ge_p3_is_identity(&t);
}

/* 1 if every prepared signature in [lo, hi) passes the combined check, 0 if not, <0 error.
 * *sum_out receives the combination before the cofactor is cleared. */
static int check_range(batch_ctx *ctx, size_t lo, size_t hi, ge_p3 *sum_out) {
    sc_wide b_acc;
    memset(&b_acc, 0, sizeof b_acc);
    size_t ntouched = 0;
    for (size_t i = lo; i < hi; i++) {
        uint32_t key = ctx->key_index[i];
        if (!ctx->key_touched[key]) {
            ctx->key_touched[key] = 1;
            memset(&ctx->key_acc[key], 0, sizeof(sc_wide));
            ctx->touched_list[ntouched++] = key;
        }
        sc_wide_muladd128(&ctx->key_acc[key], &ctx->z[i], &ctx->k[i]);
        sc_wide_muladd128(&b_acc, &ctx->z[i], &ctx->s[i]);
    }
    sc b_scalar;
    sc_reduce_wide(&b_scalar, &b_acc);
    sc_negate(&b_scalar, &b_scalar);
    for (size_t j = 0; j < ntouched; j++) {
        uint32_t key = ctx->touched_list[j];
        ctx->key_touched[key] = 0;
        sc_reduce_wide(&ctx->a_scalars[j], &ctx->key_acc[key]);
        ctx->a_points[j] = ctx->keys[key].point;
        ctx->a_niels[j] = ctx->keys[key].niels;
    }
    ge_p3 sum, part;
    int rc;
    if (hi - lo <= small_range()) { /* then also ntouched <= small_range() */
        /* Few terms: one Straus pass over R, A and B terms together beats Pippenger (in
         * eight IFMA lanes where available: straus_x8.c). */
        size_t m = hi - lo;
        for (size_t i = 0; i < m; i++) {
            niels_to_p3(&ctx->small_points[i], &ctx->r_niels[lo + i]);
            ctx->small_scalars[i] = ctx->z[lo + i];
        }
        for (size_t j = 0; j < ntouched; j++) {
            ctx->small_points[m + j] = ctx->a_points[j];
            ctx->small_scalars[m + j] = ctx->a_scalars[j];
        }
        rc = ge_straus_x8(&sum, ctx->small_points, ctx->small_scalars, m + ntouched, &b_scalar);
        if (rc != 0) return rc;
        *sum_out = sum;
        return cleared_is_identity(&sum);
    }
    rc = ge_pippenger_vartime(&sum, ctx->r_niels + lo, ctx->z + lo, hi - lo, 128);
    if (rc != 0) return rc;
    if (ntouched <= STRAUS_MAX_KEYS) {
        rc = ge_straus_vartime(&part, ctx->a_points, ctx->a_scalars, ntouched, &b_scalar);
        if (rc != 0) return rc;
        ge_p3_add(&sum, &sum, &part);
    } else {
        rc = ge_pippenger_vartime(&part, ctx->a_niels, ctx->a_scalars, ntouched, 253);
        if (rc != 0) return rc;
        ge_p3_add(&sum, &sum, &part);
        rc = ge_straus_vartime(&part, NULL, NULL, 0, &b_scalar);
        if (rc != 0) return rc;
        ge_p3_add(&sum, &sum, &part);
    }
    *sum_out = sum;
    return cleared_is_identity(&sum);
}

static void mark_valid(batch_ctx *ctx, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) ctx->verdicts[ctx->item_index[i]] = 1;
}

/* [lo, hi) is known to contain at least one invalid signature; *whole is its combination.
 * The combination is linear in the signatures (the z_i stay fixed), so the right half's is
 * whole - left up to multiples of [L]A, which are torsion and vanish with the cofactor:
 * one multi-scalar multiplication per level settles both halves. */
static int resolve(batch_ctx *ctx, size_t lo, size_t hi, const ge_p3 *whole) {
    if (hi - lo <= LEAF_SIZE) {
        for (size_t i = lo; i < hi; i++) {
            const tka_batch_item *it = &ctx->items[ctx->item_index[i]];
            int ok = ed25519_verify_zip215_decoded(&ctx->keys[ctx->key_index[i]].point, it->pk,
                                                   it->msg, it->msg_len, it->sig);
            if (ok < 0) return ok;
            ctx->verdicts[ctx->item_index[i]] = (uint8_t)ok;
        }
        return 0;
    }
    size_t mid = lo + (hi - lo) / 2;
    ge_p3 left_sum, right_sum;
    int left = check_range(ctx, lo, mid, &left_sum);
    if (left < 0) return left;
    ge_cached lc;
    ge_p1p1 t;
    ge_p3_to_cached(&lc, &left_sum);
    ge_add_cached(&t, whole, &lc, 1);
    ge_p1p1_to_p3(&right_sum, &t);
    int right = cleared_is_identity(&right_sum);
    if (left) mark_valid(ctx, lo, mid);
    else {
        int rc = resolve(ctx, lo, mid, &left_sum);
        if (rc < 0) return rc;
    }
    if (right) {
        mark_valid(ctx, mid, hi);
        return 0;
    }
    return resolve(ctx, mid, hi, &right_sum);
}

static void batch_free(batch_ctx *ctx, key_map *map) {
    free(ctx->keys);
    free(ctx->item_index);
    free(ctx->key_index);
    free(ctx->r_niels);
    free(ctx->z);
    free(ctx->s);
    free(ctx->k);
    free(ctx->key_acc);
    free(ctx->key_touched);
    free(ctx->touched_list);
    free(ctx->a_points);
    free(ctx->a_niels);
    free(ctx->a_scalars);
    free(ctx->small_points);
    free(ctx->small_scalars);
    free(map->slots);
}

/* One chunk of at most BATCH_CHUNK items. */
static int verify_chunk(const tka_batch_item *items, size_t n, uint8_t *verdicts) {
    memset(verdicts, 0, n);
    batch_ctx ctx;
    key_map map;
    memset(&ctx, 0, sizeof ctx);
    memset(&map, 0, sizeof map);
    ctx.items = items;
    ctx.verdicts = verdicts;
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    map.mask = cap - 1;
    map.slots = calloc(cap, sizeof(uint32_t));
    ctx.item_index = malloc(n * sizeof(size_t));
    ctx.key_index = malloc(n * sizeof(uint32_t));
    ctx.r_niels = malloc(n * sizeof(ge_niels));
    ctx.z = malloc(n * sizeof(sc));
    ctx.s = malloc(n * sizeof(sc));
    ctx.k = malloc(n * sizeof(sc));
    int rc = TKA_ERR_NOMEM;
    if (map.slots == NULL || ctx.item_index == NULL || ctx.key_index == NULL ||
        ctx.r_niels == NULL || ctx.z == NULL || ctx.s == NULL || ctx.k == NULL)
        goto done;
    if (tka_os_random((uint8_t *)&map.seed, sizeof map.seed) != 0) {
        rc = TKA_ERR_RANDOM;
        goto done;
    }

    /* Cheap per-signature checks first (lengths, S < L, A decodes); failures are final
     * verdicts of 0. Survivors are provisionally listed in ctx.item_index. */
    size_t candidates = 0;
    for (size_t i = 0; i < n; i++) {
        const tka_batch_item *it = &items[i];
        if (it->pk == NULL || it->sig == NULL || (it->msg == NULL && it->msg_len != 0)) continue;
        if (!sc_is_canonical(it->sig + 32)) continue;
        uint32_t key = key_lookup(&ctx, &map, it->pk);
        if (key == KEY_NOMEM) {
            rc = TKA_ERR_NOMEM;
            goto done;
        }
        ctx.item_index[candidates] = i;
        ctx.key_index[candidates] = key;
        candidates++;
    }
    /* Keys that don't decode make their signatures invalid. */
    decode_keys(&ctx);
    size_t kept = 0;
    for (size_t c = 0; c < candidates; c++) {
        if (!ctx.keys[ctx.key_index[c]].ok) continue;
        ctx.item_index[kept] = ctx.item_index[c];
        ctx.key_index[kept] = ctx.key_index[c];
        kept++;
    }
    candidates = kept;
    /* Decode R sixteen at a time (the square roots dominate the cost of a batch; in IFMA lanes
     * two chains of eight run interleaved), and keep the signatures whose R decodes,
     * compacting the arrays in place. */
    for (size_t c = 0; c < candidates; c += 16) {
        const uint8_t *encs[16];
        ge_p3 r[16];
        int ok[16];
        size_t lanes = candidates - c < 16 ? candidates - c : 16;
        for (size_t j = 0; j < 16; j++)
            encs[j] = items[ctx.item_index[c + (j < lanes ? j : 0)]].sig;
        ge_frombytes_lenient_x16(r, ok, encs);
        /* The kept signatures' challenges, hashed eight together (sha512_x8.c). */
        const uint8_t *ch_r[16], *ch_a[16], *ch_msg[16];
        size_t ch_len[16], kept_here = 0, first = ctx.m;
        for (size_t j = 0; j < lanes; j++) {
            if (!ok[j]) continue;
            size_t i = ctx.item_index[c + j];
            const tka_batch_item *it = &items[i];
            size_t dst = ctx.m++;
            ctx.item_index[dst] = i;
            ctx.key_index[dst] = ctx.key_index[c + j];
            ge_affine_p3_to_niels(&ctx.r_niels[dst], &r[j]);
            sc_from_bytes(&ctx.s[dst], it->sig + 32);
            ch_r[kept_here] = it->sig;
            ch_a[kept_here] = it->pk;
            ch_msg[kept_here] = it->msg;
            ch_len[kept_here] = it->msg_len;
            kept_here++;
        }
        for (size_t g = 0; g < kept_here; g += 8)
            ed25519_challenge_x8(&ctx.k[first + g], ch_r + g, ch_a + g, ch_msg + g, ch_len + g,
                                 kept_here - g < 8 ? kept_here - g : 8);
    }
    rc = 0;
    if (ctx.m == 0) goto done;

    /* 128-bit coefficients from the OS CSPRNG; a zero one would drop its signature. */
    uint8_t *rnd = malloc(ctx.m * 16);
    if (rnd == NULL) {
        rc = TKA_ERR_NOMEM;
        goto done;
    }
    if (tka_os_random(rnd, ctx.m * 16) != 0) {
        free(rnd);
        rc = TKA_ERR_RANDOM;
        goto done;
    }
    for (size_t j = 0; j < ctx.m; j++) {
        memcpy(&ctx.z[j].v[0], rnd + 16 * j, 8);
        memcpy(&ctx.z[j].v[1], rnd + 16 * j + 8, 8);
        ctx.z[j].v[2] = ctx.z[j].v[3] = 0;
        if (ctx.z[j].v[0] == 0 && ctx.z[j].v[1] == 0) ctx.z[j].v[0] = 1;
    }
    free(rnd);

    ctx.key_acc = malloc(ctx.nkeys * sizeof(sc_wide));
    ctx.key_touched = calloc(ctx.nkeys, 1);
    ctx.touched_list = malloc(ctx.nkeys * sizeof(uint32_t));
    ctx.a_points = malloc(ctx.nkeys * sizeof(ge_p3));
    ctx.a_niels = malloc(ctx.nkeys * sizeof(ge_niels));
    ctx.a_scalars = malloc(ctx.nkeys * sizeof(sc));
    /* Room for the R and A terms of the largest range check_range passes to Straus. */
    size_t small_terms = 2 * (ctx.m < small_range() ? ctx.m : small_range());
    ctx.small_points = malloc(small_terms * sizeof(ge_p3));
    ctx.small_scalars = malloc(small_terms * sizeof(sc));
    if (ctx.small_points == NULL || ctx.small_scalars == NULL || ctx.key_acc == NULL || ctx.key_touched == NULL || ctx.touched_list == NULL ||
        ctx.a_points == NULL || ctx.a_niels == NULL || ctx.a_scalars == NULL) {
        rc = TKA_ERR_NOMEM;
        goto done;
    }
    ge_p3 whole;
    rc = check_range(&ctx, 0, ctx.m, &whole);
    if (rc == 1) {
        mark_valid(&ctx, 0, ctx.m);
        rc = 0;
    } else if (rc == 0) {
        rc = resolve(&ctx, 0, ctx.m, &whole);
    }

done:
    batch_free(&ctx, &map);
    if (rc < 0) return rc;
    int valid = 0;
    for (size_t i = 0; i < n; i++) valid += verdicts[i];
    return valid;
}

int tka_verify_batch_zip215(const tka_batch_item *items, size_t n, uint8_t *verdicts) {
    if (n == 0) return 0;
    if (items == NULL || verdicts == NULL) return TKA_ERR_ARG;
    long valid = 0;
    for (size_t start = 0; start < n; start += BATCH_CHUNK) {
        size_t len = n - start < BATCH_CHUNK ? n - start : BATCH_CHUNK;
        int rc = verify_chunk(items + start, len, verdicts + start);
        if (rc < 0) return rc;
        valid += rc;
    }
    return valid > INT32_MAX ? INT32_MAX : (int)valid;
}

tka_batch_item *tka_items_from_packed(const uint8_t *pks, const uint8_t *sigs,
                                      const uint8_t *msgs, const size_t *msg_offsets, size_t n) {
    tka_batch_item *items = malloc(n * sizeof(tka_batch_item));
    if (items == NULL) return NULL;
    static const uint8_t empty[1] = {0};
    for (size_t i = 0; i < n; i++) {
        size_t start = msg_offsets[i], end = msg_offsets[i + 1];
        items[i].pk = pks + 32 * i;
        items[i].sig = sigs + 64 * i;
        /* Offsets that run backwards make an item invalid rather than reading out of range. */
        if (end < start) {
            items[i].msg = NULL;
            items[i].msg_len = 1;
        } else {
            items[i].msg = (msgs != NULL && end > start) ? msgs + start : empty;
            items[i].msg_len = end - start;
        }
    }
    return items;
}

int tka_verify_batch_zip215_packed(const uint8_t *pks, const uint8_t *sigs, const uint8_t *msgs,
                                   const size_t *msg_offsets, size_t n, uint8_t *verdicts) {
    if (n == 0) return 0;
    if (pks == NULL || sigs == NULL || msg_offsets == NULL || verdicts == NULL)
        return TKA_ERR_ARG;
    tka_batch_item *items = tka_items_from_packed(pks, sigs, msgs, msg_offsets, n);
    if (items == NULL) return TKA_ERR_NOMEM;
    int rc = tka_verify_batch_zip215(items, n, verdicts);
    free(items);
    return rc;
}
