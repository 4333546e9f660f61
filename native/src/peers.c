/*
 * Node-key signatures in bulk (spec §7.3): one verdict and reason per (node key, NKS) pair,
 * equal to NodeKeyAuthorized for every input the canonical reader accepts.
 *
 * Per chunk of peers: read each NKS (nks_reader.c), walk its chain in the reference's order and
 * note either the first structural failure or the signature checks it needs; run all ZIP-215
 * checks (direct and credential levels) as one randomized batch and all cofactorless checks
 * (rotation levels) through verify_each; then give each peer the first failure in its walk
 * order. Computing every signature check before judging is safe because checks are pure: the
 * first failing step is the same as if they had run one by one. Chunks run on threads.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    uint8_t digest[32];
} pending_check;

typedef struct {
    pending_check *items;
    size_t len, cap;
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

/* Queues the signature check of level `depth`; 0 if out of memory. */
static int queue_check(check_list *checks, size_t peer, const uint8_t *data, const nks_chain *ch,
                       unsigned depth, const uint8_t *pk, int cofactorless) {
    pending_check *c = check_list_push(checks);
    if (c == NULL) return 0;
    c->peer = peer;
    c->depth = (uint8_t)depth;
    c->cofactorless = (uint8_t)cofactorless;
    c->pk = pk;
    c->sig = ch->levels[depth].signature.ptr;
    nks_sig_hash(data, ch, depth, c->digest);
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

typedef struct {
    const uint8_t *node_keys;
    const uint8_t *nks;
    const size_t *nks_offsets;
    trust_set trust;
    size_t start, end;
    tka_peer_result *results;
    int status; /* number authorized, or a negative TKA_ERR_* */
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
            continue;
        }
        if (!judge_structure(job->node_keys + 32 * p, data, chain, &job->trust, checks, i,
                             &results[i])) {
            return TKA_ERR_NOMEM;
        }
    }
    int rc = run_checks(checks, 0, results, failed);
    return rc < 0 ? rc : run_checks(checks, 1, results, failed);
}

static void *run_chunk(void *arg) {
    chunk_job *job = arg;
    /* Windows of PEERS_PER_WINDOW bound the queued checks (up to 16 per peer) while keeping
     * batches large enough to run at full speed. */
    check_list checks = {NULL, 0, 0};
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
                              n * k / t, n * (k + 1) / t, results, 0};
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
