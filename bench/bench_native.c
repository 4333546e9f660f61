/*
 * The native core timed from C, with no Python in the loop: single verification (both
 * rules), many independent cofactorless checks (tka_verify_each, how rotation levels are
 * checked), the ZIP-215 batch at several sizes, and tka_verify_peers on a 100,000-peer
 * netmap.
 * Inputs come from bench/make_native_inputs.py; `make bench-c` builds and runs everything.
 *
 *     bench_native INPUT_DIR
 *
 * Single verification runs twice: on signatures.bin (three keys, each seen again and again)
 * and on fresh.bin (a key of its own per signature).
 *
 * Each figure is the fastest of several repetitions (the machine is shared).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tka_native.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint8_t *read_all(const char *dir, const char *name, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "bench_native: cannot open %s: run bench/make_native_inputs.py first\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)size);
    if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "bench_native: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void row(const char *name, size_t count, double seconds) {
    printf("| %-44s | %10.0f | %8.3f |\n", name, (double)count / seconds, seconds * 1e3);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: bench_native INPUT_DIR\n");
        return 2;
    }
    size_t len;
    uint8_t *sigs = read_all(argv[1], "signatures.bin", &len);
    if (len < 8 || memcmp(sigs, "TKAS", 4) != 0) return 2;
    size_t n = le32(sigs + 4);
    if (len != 8 + n * 128) return 2;
    tka_batch_item *items = malloc(n * sizeof *items);
    uint8_t *verdicts = malloc(n);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *rec = sigs + 8 + 128 * i;
        items[i] = (tka_batch_item){rec, rec + 96, 32, rec + 32};
    }
    printf("| what | items/s | ms |\n|---|---:|---:|\n");

    const size_t singles = 5000;
    for (int rule = 0; rule <= 1; rule++) {
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            for (size_t i = 0; i < singles; i++) {
                const tka_batch_item *it = &items[i];
                if (tka_verify(it->pk, 32, it->msg, 32, it->sig, 64, rule) != 1) return 1;
            }
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        row(rule == TKA_RULE_ZIP215 ? "tka_verify zip215" : "tka_verify cofactorless", singles, best);
    }
    {
        size_t flen;
        uint8_t *fresh = read_all(argv[1], "fresh.bin", &flen);
        if (flen < 8 || memcmp(fresh, "TKAS", 4) != 0) return 2;
        size_t nf = le32(fresh + 4);
        if (flen != 8 + nf * 128) return 2;
        for (int rule = 0; rule <= 1; rule++) {
            double best = 1e9;
            for (int rep = 0; rep < 5; rep++) {
                double t0 = now();
                for (size_t i = 0; i < nf; i++) {
                    const uint8_t *rec = fresh + 8 + 128 * i;
                    if (tka_verify(rec, 32, rec + 96, 32, rec + 32, 64, rule) != 1) return 1;
                }
                double dt = now() - t0;
                if (dt < best) best = dt;
            }
            row(rule == TKA_RULE_ZIP215 ? "tka_verify zip215, a new key each"
                                        : "tka_verify cofactorless, a new key each",
                nf, best);
        }
        free(fresh);
    }
    /* Many independent cofactorless checks (how rotation levels are verified). */
    {
        const size_t m = n < 16000 ? n : 16000;
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            if (tka_verify_each(items, m, verdicts, TKA_RULE_COFACTORLESS) != (int)m) return 1;
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        char name[64];
        snprintf(name, sizeof name, "tka_verify_each cofactorless n=%zu", m);
        row(name, m, best);
    }
    const size_t sizes[] = {64, 1000, 16000, 100000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t m = sizes[s] < n ? sizes[s] : n;
        int reps = m >= 16000 ? 3 : 10;
        double best = 1e9;
        for (int rep = 0; rep < reps; rep++) {
            double t0 = now();
            if (tka_verify_batch_zip215(items, m, verdicts) != (int)m) return 1;
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        char name[64];
        snprintf(name, sizeof name, "tka_verify_batch_zip215 n=%zu, 3 keys", m);
        row(name, m, best);
    }

    uint8_t *peers = read_all(argv[1], "peers.bin", &len);
    if (len < 40 || memcmp(peers, "TKAP", 4) != 0) return 2;
    size_t np = le32(peers + 4);
    const uint8_t *trusted = peers + 8;
    uint8_t *node_keys = malloc(32 * np);
    size_t *offsets = malloc((np + 1) * sizeof *offsets);
    uint8_t *blob = malloc(len);
    tka_peer_result *results = malloc(np * sizeof *results);
    size_t at = 40, used = 0;
    for (size_t i = 0; i < np; i++) {
        memcpy(node_keys + 32 * i, peers + at, 32);
        uint32_t l = le32(peers + at + 32);
        offsets[i] = used;
        memcpy(blob + used, peers + at + 36, l);
        used += l;
        at += 36 + l;
    }
    offsets[np] = used;
    for (unsigned threads = 1; threads <= 2; threads++) {
        double best = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            if (tka_verify_peers(node_keys, blob, offsets, np, trusted, 1, threads, results) !=
                (int)np) {
                return 1;
            }
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        char name[64];
        snprintf(name, sizeof name, "tka_verify_peers %zu direct, %u thread%s", np, threads,
                 threads > 1 ? "s" : "");
        row(name, np, best);
    }
    free(items);
    free(verdicts);
    free(sigs);
    free(peers);
    free(node_keys);
    free(offsets);
    free(blob);
    free(results);
    return 0;
}
