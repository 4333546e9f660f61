/*
 * Node-key signatures in bulk (docs/format.md §7): one verdict and reason per (node key, NKS) pair,
 * equal to NodeKeyAuthorized for every input the canonical reader accepts.
 *
 * Per chunk of peers: read each NKS (nks_reader.c), walk its chain in the reference's order and
 * note either the first structural failure or the signature checks it needs; run all ZIP-215
 * checks (direct and credential levels) as one randomized batch and all cofactorless checks
 * (rotation levels) through verify_each; then give each peer the first failure in its walk
 * order. Computing every signature check before judging is safe because checks are pure: the
 * first failing step is the same as if they had run one by one. Chunks run on threads.
 *
 * tka_verify_peers_packed also describes each peer's bytes (tka_peer_info: the outer kind and
 * the shallowest forgeable wrapping key), read in the same pass, so that a caller auditing a
 * netmap needs no second decoder pass over every signature.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blake2s.h"
#include "nks_reader.h"
#include "tka_native.h"

#define MIN_PEERS_PER_THREAD 4096
#define MAX_THREADS 64
#define PEERS_PER_WINDOW 16384

enum { SIGKIND_DIRECT = 1, SIGKIND_ROTATION = 2, SIGKIND_CREDENTIAL = 3 };

typedef struct {
    size_t peer; /* index within the chunk */
    uint8_t depth;
    uint8_t cofactorless;
    const uint8_t *pk;
    const uint8_t *sig;
    const uint8_t *nks; /* the signed message is span's part of these bytes */
    nks_span span;
    uint8_t digest[32]; /* filled by hash_checks, eight at a time */
} pending_check;

typedef struct {
    pending_check *items;
    size_t len, cap;
    uint8_t *scratch; /* messages being hashed (hash_checks) */
    size_t scratch_cap;
} check_list;

static pending_check *check_list_push(check_list *list) {
    if (list->len == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 1024;
        pending_check *grown = realloc(list->items, cap * sizeof *grown);
        if (grown == NULL) return NULL;
        list->items = grown;
        list->cap = cap;
    }
    return &list->items[list->len++];
}

typedef struct {
    const uint8_t *trusted; /* n_trusted * 32 bytes, in the state's order */
    size_t n_trusted;
} trust_set;

static const uint8_t *find_trusted(const trust_set *trust, const nks_bytes *key_id) {
    if (key_id->len != 32) return NULL; /* every trusted key ID is a 32-byte Ed25519 key */
    for (size_t i = 0; i < trust->n_trusted; i++) {
        if (memcmp(trust->trusted + 32 * i, key_id->ptr, 32) == 0) return trust->trusted + 32 * i;
    }
    return NULL;
}

static void set_result(tka_peer_result *r, uint8_t code, unsigned depth, uint32_t aux) {
    r->code = code;
    r->depth = (uint8_t)depth;
    r->reserved = 0;
    r->aux = aux;
}

static int has_node_prefix(const nks_bytes *b) {
    return b->len >= 2 && b->ptr[0] == 'n' && b->ptr[1] == 'p';
}

/* Queues the signature check of level `depth` (its digest is taken later, with others');
 * 0 if out of memory. */
static int queue_check(check_list *checks, size_t peer, const uint8_t *data, const nks_chain *ch,
                       unsigned depth, const uint8_t *pk, int cofactorless) {
    pending_check *c = check_list_push(checks);
    if (c == NULL) return 0;
    c->peer = peer;
    c->depth = (uint8_t)depth;
    c->cofactorless = (uint8_t)cofactorless;
    c->pk = pk;
    c->sig = ch->levels[depth].signature.ptr;
    c->nks = data;
    nks_sig_span(ch, depth, &c->span);
    return 1;
}

/* Every queued check's digest, eight messages at a time (blake2s_x8.c). A message is the
 * level's bytes with its signature entry cut out, so most are copied into checks->scratch
 * first (grown as needed); 0 if out of memory. */
static int hash_checks(check_list *checks) {
    for (size_t at = 0; at < checks->len; at += 8) {
        pending_check *group = &checks->items[at];
        int count = checks->len - at < 8 ? (int)(checks->len - at) : 8;
        size_t lens[8], need = 0;
        for (int j = 0; j < count; j++) {
            lens[j] = nks_span_len(&group[j].span);
            need += lens[j];
        }
        if (need > checks->scratch_cap) {
            uint8_t *grown = realloc(checks->scratch, need);
            if (grown == NULL) return 0;
            checks->scratch = grown;
            checks->scratch_cap = need;
        }
        const uint8_t *msgs[8];
        size_t used = 0;
        uint8_t digests[8][32];
        for (int j = 0; j < count; j++) {
            const pending_check *c = &group[j];
            if (c->span.cut_end == c->span.cut_start) {
                msgs[j] = c->nks + c->span.start; /* nothing cut: hash in place */
            } else {
                nks_span_copy(c->nks, &c->span, checks->scratch + used);
                msgs[j] = checks->scratch + used;
                used += lens[j];
            }
        }
        blake2s_x8(digests, msgs, lens, count);
        for (int j = 0; j < count; j++) memcpy(group[j].digest, digests[j], 32);
    }
    return 1;
}

/*
 * Everything NodeKeyAuthorized does except running signature equations, in its order: the
 * credential check, the authorizing key ID walk, trust lookup, then verify() level by level.
 * Leaves r = OK with the needed checks queued, or r = the first failure met before any
 * queued check could fail. Returns 0 only when out of memory.
 */
static int judge_structure(const uint8_t *node_key, const uint8_t *data, const nks_chain *ch,
                           const trust_set *trust, check_list *checks, size_t peer,
                           tka_peer_result *r) {
    const nks_level *lv = ch->levels;
    set_result(r, TKA_PEER_OK, 0, 0);
    if (lv[0].kind == SIGKIND_CREDENTIAL) {
        set_result(r, TKA_PEER_CREDENTIAL_ALONE, 0, 0);
        return 1;
    }
    const nks_bytes *key_id = NULL;
    for (unsigned i = 0; key_id == NULL; i++) {
        if (lv[i].kind == SIGKIND_DIRECT || lv[i].kind == SIGKIND_CREDENTIAL) {
            if (lv[i].key_id.ptr == NULL) {
                set_result(r, TKA_PEER_NO_KEY_ID, 0, 0);
                return 1;
            }
            key_id = &lv[i].key_id;
        } else if (lv[i].kind == SIGKIND_ROTATION) {
            if (!lv[i].has_nested) {
                set_result(r, TKA_PEER_ROTATION_NO_NESTED, 0, 0);
                return 1;
            }
        } else {
            set_result(r, TKA_PEER_UNHANDLED_KIND, 0, lv[i].kind);
            return 1;
        }
    }
    const uint8_t *trusted_pk = find_trusted(trust, key_id);
    if (trusted_pk == NULL) {
        set_result(r, TKA_PEER_KEY_NOT_FOUND, 0, 0);
        return 1;
    }

    static const uint8_t zero_key[32];
    const uint8_t *expected_key = node_key;
    for (unsigned d = 0; d < ch->count; d++) {
        const nks_level *level = &lv[d];
        if (level->kind != SIGKIND_CREDENTIAL &&
            (level->pubkey.len != 34 || !has_node_prefix(&level->pubkey) ||
             memcmp(level->pubkey.ptr + 2, expected_key, 32) != 0)) {
            set_result(r, TKA_PEER_WRONG_NODE_KEY, d, 0);
            return 1;
        }
        if (level->kind == SIGKIND_ROTATION) {
            /* The rotation key is the nearest WrappingPubkey down the chain. */
            const nks_bytes *rotation_key = NULL;
            for (unsigned j = d + 1; j < ch->count && rotation_key == NULL; j++) {
                if (lv[j].wrapping.ptr != NULL) {
                    rotation_key = &lv[j].wrapping;
                } else if (!(lv[j].kind == SIGKIND_ROTATION && lv[j].has_nested)) {
                    break;
                }
            }
            if (rotation_key == NULL) {
                set_result(r, TKA_PEER_MISSING_ROTATION_KEY, d, 0);
                return 1;
            }
            if (rotation_key->len != 32) {
                set_result(r, TKA_PEER_BAD_ROTATION_KEY_LENGTH, d, (uint32_t)rotation_key->len);
                return 1;
            }
            if (level->signature.len != 64) {
                set_result(r, TKA_PEER_BAD_SIGNATURE, d, 0);
                return 1;
            }
            if (!queue_check(checks, peer, data, ch, d, rotation_key->ptr, 1)) return 0;
            const nks_level *inner = &lv[d + 1];
            if (inner->kind == SIGKIND_CREDENTIAL) {
                expected_key = zero_key;
            } else if (!has_node_prefix(&inner->pubkey)) {
                set_result(r, TKA_PEER_NESTED_PUBKEY_PREFIX, d, 0);
                return 1;
            } else if (inner->pubkey.len != 34) {
                set_result(r, TKA_PEER_NESTED_PUBKEY_LENGTH, d, (uint32_t)inner->pubkey.len);
                return 1;
            } else {
                expected_key = inner->pubkey.ptr + 2;
            }
            continue;
        }
        /* Direct or credential: the end of the chain. */
        if (level->has_nested) {
            set_result(r, TKA_PEER_CANNOT_NEST, d, level->kind);
            return 1;
        }
        if (level->signature.len != 64) {
            set_result(r, TKA_PEER_BAD_SIGNATURE, d, 0);
            return 1;
        }
        if (d > 0 && level->kind == SIGKIND_CREDENTIAL && level->pubkey.ptr != NULL) {
            /* verify() skipped this Pubkey, but the reference's rotation details parse it after
             * every check passed: record that failure now; a failing check overwrites it. */
            if (!has_node_prefix(&level->pubkey)) {
                set_result(r, TKA_PEER_NESTED_PUBKEY_PREFIX, 0, 0);
            } else if (level->pubkey.len != 34) {
                set_result(r, TKA_PEER_NESTED_PUBKEY_LENGTH, 0, (uint32_t)level->pubkey.len);
            }
        }
        return queue_check(checks, peer, data, ch, d, trusted_pk, 0);
    }
    /* Not reachable: the key ID walk stops at a direct or credential level. */
    set_result(r, TKA_PEER_UNHANDLED_KIND, 0, 0);
    return 1;
}

/*
 * The 32-byte encodings of small-order points, with the sign bit (bit 255) cleared: y is 0, 1,
 * p - 1, or +-y8 with y8^2 = (-1 + sqrt(1 + d)) / d (the order-8 points, y = 0 being the order-4
 * ones), and y + p for y < 19 (y = 0, 1: the only values with a second, non-canonical encoding
 * below 2^255). Every point of order 1, 2, 4 or 8 has one of these y, so a key whose low 255
 * bits are not in this list is not small-order; tka_public_key_class decides the rest.
 * tests/native/test_peers_packed.py derives the list again.
 */
static const uint8_t small_order_y[7][32] = {
    {0},
    {1},
    {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
     0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
     0xfc, 0x05},
    {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
     0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
     0x03, 0x7a},
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0x7f},
    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0x7f},
    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0x7f},
};

static int is_small_order_key(const nks_bytes *key) {
    if (key->len != 32) return 0;
    uint8_t y[32];
    memcpy(y, key->ptr, 32);
    y[31] &= 0x7f;
    for (size_t i = 0; i < sizeof small_order_y / sizeof small_order_y[0]; i++) {
        if (memcmp(y, small_order_y[i], 32) == 0) {
            return tka_public_key_class(key->ptr) == TKA_PK_SMALL_ORDER;
        }
    }
    return 0;
}

/* The outer kind and the shallowest level whose wrapping key anyone can sign with. */
static void describe(const nks_chain *ch, tka_peer_info *info) {
    info->kind = (uint8_t)ch->levels[0].kind;
    info->weak_depth = TKA_PEER_NO_WEAK;
    info->weak_kind = 0;
    info->flags = TKA_PEER_INFO_READ;
    for (unsigned d = 0; d < ch->count; d++) {
        const nks_bytes *wrapping = &ch->levels[d].wrapping;
        if (!is_small_order_key(wrapping)) continue;
        static const uint8_t zero[32];
        info->weak_depth = (uint8_t)d;
        info->weak_kind = (uint8_t)ch->levels[d].kind;
        if (memcmp(wrapping->ptr, zero, 32) == 0) info->flags |= TKA_PEER_INFO_WEAK_ZERO;
        return;
    }
}

typedef struct {
    const uint8_t *node_keys;
    const uint8_t *nks;
    const size_t *nks_offsets;
    trust_set trust;
    size_t start, end;
    tka_peer_result *results;
    tka_peer_info *info; /* NULL: not asked for */
    int status;          /* number authorized, or a negative TKA_ERR_* */
} chunk_job;

/* Runs `n` checks of one rule (selected from `all`) and marks the first failure per peer. */
static int run_checks(const check_list *all, int cofactorless, tka_peer_result *results,
                      uint8_t *failed) {
    size_t n = 0;
    for (size_t k = 0; k < all->len; k++) n += all->items[k].cofactorless == cofactorless;
    if (n == 0) return 0;
    tka_batch_item *items = malloc(n * sizeof *items);
    size_t *owner = malloc(n * sizeof *owner);
    uint8_t *verdicts = malloc(n);
    int rc = TKA_ERR_NOMEM;
    if (items != NULL && owner != NULL && verdicts != NULL) {
        size_t m = 0;
        for (size_t k = 0; k < all->len; k++) {
            const pending_check *c = &all->items[k];
            if (c->cofactorless != cofactorless) continue;
            items[m] = (tka_batch_item){c->pk, c->digest, 32, c->sig};
            owner[m++] = k;
        }
        rc = cofactorless ? tka_verify_each(items, n, verdicts, TKA_RULE_COFACTORLESS)
                          : tka_verify_batch_zip215(items, n, verdicts);
        if (rc >= 0) {
            rc = 0;
            for (size_t m2 = 0; m2 < n; m2++) {
                const pending_check *c = &all->items[owner[m2]];
                if (verdicts[m2]) continue;
                /* Checks are queued in walk order, so the shallowest failure is the first. */
                if (!failed[c->peer] || c->depth < results[c->peer].depth) {
                    failed[c->peer] = 1;
                    set_result(&results[c->peer], TKA_PEER_BAD_SIGNATURE, c->depth, 0);
                }
            }
        }
    }
    free(items);
    free(owner);
    free(verdicts);
    return rc;
}

/* Peers [start, start + count): read, walk, then run the queued checks. Returns 0 or a
 * negative TKA_ERR_*. `checks` is reused (emptied) and `failed` has room for `count`. */
static int judge_window(const chunk_job *job, size_t start, size_t count, check_list *checks,
                        uint8_t *failed, nks_chain *chain) {
    tka_peer_result *results = job->results + start;
    checks->len = 0;
    memset(failed, 0, count);
    for (size_t i = 0; i < count; i++) {
        size_t p = start + i;
        const uint8_t *data = job->nks + job->nks_offsets[p];
        size_t len = job->nks_offsets[p + 1] - job->nks_offsets[p];
        if (!nks_read(data, len, chain)) {
            set_result(&results[i], TKA_PEER_UNCHECKED, 0, 0);
            if (job->info != NULL) job->info[p] = (tka_peer_info){0, TKA_PEER_NO_WEAK, 0, 0};
            continue;
        }
        if (job->info != NULL) describe(chain, &job->info[p]);
        if (!judge_structure(job->node_keys + 32 * p, data, chain, &job->trust, checks, i,
                             &results[i])) {
            return TKA_ERR_NOMEM;
        }
    }
    if (!hash_checks(checks)) return TKA_ERR_NOMEM;
    int rc = run_checks(checks, 0, results, failed);
    return rc < 0 ? rc : run_checks(checks, 1, results, failed);
}

static void *run_chunk(void *arg) {
    chunk_job *job = arg;
    /* Windows of PEERS_PER_WINDOW bound the queued checks (up to 16 per peer) while keeping
     * batches large enough to run at full speed. */
    check_list checks = {NULL, 0, 0, NULL, 0};
    uint8_t *failed = malloc(PEERS_PER_WINDOW);
    nks_chain *chain = malloc(sizeof *chain);
    job->status = TKA_ERR_NOMEM;
    if (failed != NULL && chain != NULL) {
        int authorized = 0, rc = 0;
        for (size_t at = job->start; at < job->end && rc == 0; at += PEERS_PER_WINDOW) {
            size_t count = job->end - at < PEERS_PER_WINDOW ? job->end - at : PEERS_PER_WINDOW;
            rc = judge_window(job, at, count, &checks, failed, chain);
            for (size_t i = 0; i < count; i++) authorized += job->results[at + i].code == TKA_PEER_OK;
        }
        job->status = rc < 0 ? rc : authorized;
    }
    free(checks.items);
    free(checks.scratch);
    free(failed);
    free(chain);
    return NULL;
}

static unsigned online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1u : (unsigned)n;
}

int tka_verify_peers(const uint8_t *node_keys, const uint8_t *nks, const size_t *nks_offsets,
                     size_t n, const uint8_t *trusted_keys, size_t n_trusted, unsigned threads,
                     tka_peer_result *results) {
    return tka_verify_peers_packed(node_keys, nks, nks_offsets, n, trusted_keys, n_trusted,
                                   threads, results, NULL);
}

int tka_verify_peers_packed(const uint8_t *node_keys, const uint8_t *nks,
                            const size_t *nks_offsets, size_t n, const uint8_t *trusted_keys,
                            size_t n_trusted, unsigned threads, tka_peer_result *results,
                            tka_peer_info *info) {
    if (n == 0) return 0;
    if (node_keys == NULL || nks_offsets == NULL || results == NULL ||
        (n_trusted > 0 && trusted_keys == NULL)) {
        return TKA_ERR_ARG;
    }
    if (threads == 0) threads = online_cpus();
    size_t by_size = (n + MIN_PEERS_PER_THREAD - 1) / MIN_PEERS_PER_THREAD;
    size_t t = threads < by_size ? threads : by_size;
    if (t > MAX_THREADS) t = MAX_THREADS;
    if (t < 1) t = 1;

    chunk_job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (size_t k = 0; k < t; k++) {
        jobs[k] = (chunk_job){node_keys, nks, nks_offsets, {trusted_keys, n_trusted},
                              n * k / t, n * (k + 1) / t, results, info, 0};
    }
    /* Chunk 0 runs on the calling thread; a thread that cannot start runs here too. */
    for (size_t k = 1; k < t; k++) {
        started[k] = pthread_create(&tids[k], NULL, run_chunk, &jobs[k]) == 0;
    }
    run_chunk(&jobs[0]);
    for (size_t k = 1; k < t; k++) {
        if (started[k]) {
            pthread_join(tids[k], NULL);
        } else {
            run_chunk(&jobs[k]);
        }
    }
    long total = 0;
    for (size_t k = 0; k < t; k++) {
        if (jobs[k].status < 0) return jobs[k].status;
        total += jobs[k].status;
    }
    return total > INT32_MAX ? INT32_MAX : (int)total;
}

/* ---- Peers-file lines (tka audit), read without a Python step per line ---- */

/* Character classes, built once (pthread_once). */
enum { CH_HEX = 1, CH_B64 = 2, CH_BLANK = 4, CH_STOP = 8 /* blank, '#', '\n' */ };
static uint8_t char_class[256], hex_value[256], b64_value[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
    for (int c = 0; c < 256; c++) {
        uint8_t cls = 0, hex = 0, b64 = 0;
        if (c >= '0' && c <= '9') cls |= CH_HEX, hex = (uint8_t)(c - '0'), b64 = (uint8_t)(c - '0' + 52);
        if (c >= 'a' && c <= 'f') cls |= CH_HEX, hex = (uint8_t)(c - 'a' + 10);
        if (c >= 'A' && c <= 'F') cls |= CH_HEX, hex = (uint8_t)(c - 'A' + 10);
        if (c >= 'A' && c <= 'Z') cls |= CH_B64, b64 = (uint8_t)(c - 'A');
        if (c >= 'a' && c <= 'z') cls |= CH_B64, b64 = (uint8_t)(c - 'a' + 26);
        if (c >= '0' && c <= '9') cls |= CH_B64;
        if (c == '+') cls |= CH_B64, b64 = 62;
        if (c == '/') cls |= CH_B64, b64 = 63;
        if (c == ' ' || c == '\t') cls |= CH_BLANK | CH_STOP;
        if (c == '#' || c == '\n') cls |= CH_STOP;
        char_class[c] = cls;
        hex_value[c] = hex;
        b64_value[c] = b64;
    }
}

static int is_blank(uint8_t c) { return (char_class[c] & CH_BLANK) != 0; }

static int all_hex(const uint8_t *in, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (!(char_class[in[i]] & CH_HEX)) return 0;
    }
    return 1;
}

static void hex_decode(const uint8_t *in, size_t len, uint8_t *out) {
    for (size_t i = 0; i + 1 < len; i += 2) {
        out[i / 2] = (uint8_t)(hex_value[in[i]] << 4 | hex_value[in[i + 1]]);
    }
}

/* Standard base64 in its one canonical spelling (a multiple of 4 characters, `=` only as the
 * last one or two, unused bits zero) into out; the decoded length, or SIZE_MAX for anything
 * else (which the caller leaves to the general rule). */
static size_t b64_decode(const uint8_t *in, size_t len, uint8_t *out) {
    if (len == 0 || len % 4 != 0) return SIZE_MAX;
    size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    size_t body = len - pad;
    for (size_t i = 0; i < body; i++) {
        if (!(char_class[in[i]] & CH_B64)) return SIZE_MAX;
    }
    size_t n = 0, i = 0;
    for (; i + 4 <= body; i += 4) {
        uint32_t v = (uint32_t)b64_value[in[i]] << 18 | (uint32_t)b64_value[in[i + 1]] << 12 |
                     (uint32_t)b64_value[in[i + 2]] << 6 | b64_value[in[i + 3]];
        out[n++] = (uint8_t)(v >> 16);
        out[n++] = (uint8_t)(v >> 8);
        out[n++] = (uint8_t)v;
    }
    if (pad == 2) {
        uint32_t v = (uint32_t)b64_value[in[i]] << 18 | (uint32_t)b64_value[in[i + 1]] << 12;
        if (v & 0xffff) return SIZE_MAX;
        out[n++] = (uint8_t)(v >> 16);
    } else if (pad == 1) {
        uint32_t v = (uint32_t)b64_value[in[i]] << 18 | (uint32_t)b64_value[in[i + 1]] << 12 |
                     (uint32_t)b64_value[in[i + 2]] << 6;
        if (v & 0xff) return SIZE_MAX;
        out[n++] = (uint8_t)(v >> 16);
        out[n++] = (uint8_t)(v >> 8);
    }
    return n;
}

static size_t word_end(const uint8_t *text, size_t p, size_t eol) {
    while (p < eol && !(char_class[text[p]] & CH_STOP)) p++;
    return p;
}

size_t tka_read_peer_lines(const uint8_t *text, size_t len, tka_peer_lines *out) {
    size_t at = 0;
    out->n_peers = 0;
    out->n_lines = 0;
    out->sigs_used = 0;
    out->names_used = 0;
    out->full = 0;
    if (text == NULL || out->node_keys == NULL || out->sigs == NULL || out->sig_ends == NULL ||
        out->names == NULL || out->name_ends == NULL || out->lines == NULL) {
        return 0;
    }
    pthread_once(&tables_once, build_tables);
    while (at < len) {
        if (out->n_peers == out->max_peers) {
            out->full = 1;
            break;
        }
        const uint8_t *nl = memchr(text + at, '\n', len - at);
        size_t eol = nl != NULL ? (size_t)(nl - text) : len;
        size_t next = nl != NULL ? eol + 1 : len;
        size_t p = at;
        while (p < eol && is_blank(text[p])) p++;
        if (p == eol || text[p] == '#') { /* blank or comment */
            out->n_lines++;
            at = next;
            continue;
        }
        size_t key = p;
        p = word_end(text, p, eol);
        if (p - key != 72 || memcmp(text + key, "nodekey:", 8) != 0 || !all_hex(text + key + 8, 64) ||
            p == eol || !is_blank(text[p])) {
            break;
        }
        while (p < eol && is_blank(text[p])) p++;
        size_t sig = p;
        p = word_end(text, p, eol);
        size_t sig_chars = p - sig;
        while (p < eol && is_blank(text[p])) p++;
        if (sig_chars == 0 || (p < eol && text[p] != '#')) break; /* one word, or three */
        size_t name = p, name_end = p;
        if (p < eol) {
            name = p + 1;
            name_end = eol;
            while (name < name_end && is_blank(text[name])) name++;
            while (name_end > name && is_blank(text[name_end - 1])) name_end--;
        }
        /* Room for the worst case: hex is half its length, base64 three quarters. */
        if (out->sigs_cap - out->sigs_used < sig_chars ||
            out->names_cap - out->names_used < name_end - name) {
            out->full = out->n_peers > 0; /* else this line cannot fit at all: the caller's */
            break;
        }
        uint8_t *sig_out = out->sigs + out->sigs_used;
        size_t sig_len;
        if (sig_chars % 2 == 0 && all_hex(text + sig, sig_chars)) {
            hex_decode(text + sig, sig_chars, sig_out);
            sig_len = sig_chars / 2;
        } else {
            sig_len = b64_decode(text + sig, sig_chars, sig_out);
            if (sig_len == SIZE_MAX) break;
        }
        size_t k = out->n_peers++;
        hex_decode(text + key + 8, 64, out->node_keys + 32 * k);
        out->sigs_used += sig_len;
        out->sig_ends[k] = out->sig_base + out->sigs_used;
        memcpy(out->names + out->names_used, text + name, name_end - name);
        out->names_used += name_end - name;
        out->name_ends[k] = out->name_base + out->names_used;
        out->lines[k] = out->line_base + ++out->n_lines;
        at = next;
    }
    return at;
}
