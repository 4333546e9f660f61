/*
 * A driver for the firmware's tailnet-lock rules (authority.c, checks.c, deeplink.c), used by
 * tests/firmware/test_authority_rules.py: one command per line on stdin, one JSON object per
 * line on stdout. Byte arguments are hex; "-" is an absent argument; lists are comma-separated.
 *
 *   reset                                  forget the authority
 *   policy <cosigners> <max_batch>
 *   enroll <aum>                           authority_check_enroll, then authority_enroll
 *   update <aum>[,<aum>…]                  authority_update
 *   state                                  head, history and the head state
 *   check_nks <key> <nks> <head> <deeplink|->
 *   check_batch <key> <head> <nks>[,<nks>…]
 *   check_aum <key> <aum>
 *   note <aum> <key> <signature>           authority_note_signed_aum
 *   drop                                   authority_drop_tentative
 *   roundtrip                              serialize, deserialize into a copy, compare
 *   load <blob>                            authority_deserialize (corrupt-blob tests)
 *   deeplink <state_id1> <url>             deeplink_validate
 *
 * Every result has "code" (0 = ok), "error" (the code's name) and "message".
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authority.h"
#include "checks.h"
#include "deeplink.h"
#include "policy.h"
#include "screen.h"

static dev_authority g_auth, g_copy;
static dev_policy g_policy;
static screen g_screen;
static uint8_t g_blob[1 << 18];
static uint8_t g_blob2[1 << 18];

/* ---- input ---- */

typedef struct {
    uint8_t *p;
    size_t n;
} bytes;

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "-" → absent (p NULL). Exits on malformed hex: a harness bug, not a test outcome. */
static bytes unhex(const char *s) {
    bytes b = {NULL, 0};
    if (s == NULL || strcmp(s, "-") == 0) return b;
    size_t n = strlen(s);
    if (n % 2) {
        fprintf(stderr, "odd hex length\n");
        exit(2);
    }
    b.p = malloc(n / 2 + 1);
    if (b.p == NULL) exit(2);
    for (size_t i = 0; i < n / 2; i++) {
        int h = hexval(s[2 * i]), l = hexval(s[2 * i + 1]);
        if (h < 0 || l < 0) {
            fprintf(stderr, "bad hex\n");
            exit(2);
        }
        b.p[i] = (uint8_t)(h * 16 + l);
    }
    b.n = n / 2;
    return b;
}

/* Splits a comma-separated hex list; returns the count (at most cap). */
static size_t unhex_list(char *s, bytes *out, size_t cap) {
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok != NULL && n < cap; tok = strtok(NULL, ",")) out[n++] = unhex(tok);
    return n;
}

static tka_span span(bytes b) { return (tka_span){b.p, b.n}; }

/* ---- output ---- */

static void json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void json_cstr(const char *s) { json_string(s, strlen(s)); }

static void json_hex(const uint8_t *b, size_t n) {
    if (b == NULL) {
        printf("null");
        return;
    }
    putchar('"');
    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
    putchar('"');
}

static void begin(const char *cmd, int code, const dev_error *err) {
    printf("{\"cmd\":");
    json_cstr(cmd);
    printf(",\"code\":%d,\"error\":", code);
    json_cstr(dev_error_name(code));
    printf(",\"message\":");
    json_cstr(code == DEV_OK ? "" : err->message);
}

static void screen_field(const screen *s) {
    printf(",\"screen\":[");
    for (unsigned i = 0; i < s->n; i++) {
        if (i) putchar(',');
        json_cstr(s->line[i]);
    }
    printf("],\"truncated\":%s", s->truncated ? "true" : "false");
}

static void head_fields(const dev_authority *a) {
    printf(",\"enrolled\":%s,\"head\":", authority_is_enrolled(a) ? "true" : "false");
    json_hex(authority_head(a), 32);
    printf(",\"history\":[");
    for (size_t i = 0; i < authority_history_len(a); i++) {
        if (i) putchar(',');
        json_hex(authority_history_hash(a, i), 32);
    }
    printf("]");
}

static void state_fields(const dev_authority *a) {
    head_fields(a);
    const auth_state *s = authority_head_state(a);
    if (s == NULL) return;
    printf(",\"keys\":[");
    for (size_t i = 0; i < s->n_keys; i++) {
        const auth_key *k = &s->keys[i];
        if (i) putchar(',');
        printf("{\"public\":");
        if (k->public_is_null) printf("null");
        else json_hex(k->public_key, k->public_len);
        printf(",\"kind\":%u,\"votes\":%u,\"meta_bytes\":%u}", k->kind, k->votes, k->meta_bytes);
    }
    printf("],\"disablement\":[");
    for (size_t i = 0; i < s->n_disablement; i++) {
        if (i) putchar(',');
        json_hex(s->disablement[i], 32);
    }
    printf("],\"state_id1\":\"%llu\",\"state_id2\":\"%llu\",\"tentative\":%zu",
           (unsigned long long)s->state_id1, (unsigned long long)s->state_id2, a->n_tentative);
}

static void plan_fields(const sign_plan *p) {
    printf(",\"sighash\":");
    json_hex(p->sighash, 32);
    printf(",\"is_genesis\":%s,\"second_confirmation\":%s,\"summary\":",
           p->is_genesis ? "true" : "false", p->second_confirmation ? "true" : "false");
    json_cstr(p->summary);
}

static void end(void) {
    printf("}\n");
    fflush(stdout);
}

/* ---- commands ---- */

#define MAX_ITEMS 20001

static bytes g_items[MAX_ITEMS];
static tka_span g_spans[MAX_ITEMS];
static uint8_t g_sighashes[32 * MAX_ITEMS];
static deeplink_result g_link;

static void free_items(size_t n) {
    for (size_t i = 0; i < n; i++) free(g_items[i].p);
}

static void cmd_enroll(char *arg) {
    bytes aum = unhex(arg);
    dev_error err = {0, ""};
    uint8_t h[32], s[32];
    screen_reset(&g_screen);
    int code = authority_check_enroll(span(aum), &g_screen, h, s, &err);
    int checked = code == DEV_OK;
    if (checked) code = authority_enroll(&g_auth, span(aum), &err);
    begin("enroll", code, &err);
    if (checked) {
        printf(",\"hash\":");
        json_hex(h, 32);
        printf(",\"sighash\":");
        json_hex(s, 32);
        screen_field(&g_screen);
    }
    state_fields(&g_auth);
    end();
    free(aum.p);
}

static void cmd_update(char *arg) {
    size_t n = arg != NULL ? unhex_list(arg, g_items, MAX_ITEMS) : 0;
    for (size_t i = 0; i < n; i++) g_spans[i] = span(g_items[i]);
    dev_error err = {0, ""};
    unsigned applied = 99, ignored = 99;
    int code = authority_update(&g_auth, g_spans, n, &applied, &ignored, &err);
    begin("update", code, &err);
    printf(",\"applied\":%u,\"ignored\":%u", applied, ignored);
    state_fields(&g_auth);
    end();
    free_items(n);
}

static void cmd_check_nks(char *key_hex, char *nks_hex, char *head_hex, char *link_hex) {
    bytes key = unhex(key_hex), nks = unhex(nks_hex), head = unhex(head_hex),
          link = unhex(link_hex);
    dev_error err = {0, ""};
    sign_plan plan;
    screen_reset(&g_screen);
    int code = key.n != 32 || (head.p != NULL && head.n != 32)
                   ? dev_fail(&err, DEV_E_PROTOCOL, "harness: key and head are 32 bytes")
                   : check_sign_nks(&g_auth, &g_policy, "test-key", key.p, span(nks), head.p,
                                    span(link), &g_screen, &plan, &err);
    begin("check_nks", code, &err);
    if (code == DEV_OK) {
        plan_fields(&plan);
        screen_field(&g_screen);
    }
    end();
    free(key.p);
    free(nks.p);
    free(head.p);
    free(link.p);
}

static void cmd_check_batch(char *key_hex, char *head_hex, char *list) {
    bytes key = unhex(key_hex), head = unhex(head_hex);
    size_t n = list != NULL && strcmp(list, "-") != 0 ? unhex_list(list, g_items, MAX_ITEMS) : 0;
    for (size_t i = 0; i < n; i++) g_spans[i] = span(g_items[i]);
    dev_error err = {0, ""};
    sign_plan plan;
    screen_reset(&g_screen);
    int code = check_sign_batch(&g_auth, &g_policy, "test-key", key.p, g_spans, n, head.p,
                                &g_screen, g_sighashes, &plan, &err);
    begin("check_batch", code, &err);
    if (code == DEV_OK) {
        plan_fields(&plan);
        printf(",\"sighashes\":[");
        for (size_t i = 0; i < n; i++) {
            if (i) putchar(',');
            json_hex(g_sighashes + 32 * i, 32);
        }
        printf("]");
        screen_field(&g_screen);
    }
    end();
    free(key.p);
    free(head.p);
    free_items(n);
}

static void cmd_check_aum(char *key_hex, char *aum_hex) {
    bytes key = unhex(key_hex), aum = unhex(aum_hex);
    dev_error err = {0, ""};
    sign_plan plan;
    screen_reset(&g_screen);
    int code = check_sign_aum(&g_auth, &g_policy, "test-key", key.p, span(aum), &g_screen, &plan,
                              &err);
    begin("check_aum", code, &err);
    if (code == DEV_OK) {
        plan_fields(&plan);
        screen_field(&g_screen);
    }
    end();
    free(key.p);
    free(aum.p);
}

static void cmd_note(char *aum_hex, char *key_hex, char *sig_hex) {
    bytes aum = unhex(aum_hex), key = unhex(key_hex), sig = unhex(sig_hex);
    dev_error err = {0, ""};
    int code = authority_note_signed_aum(&g_auth, span(aum), key.p, sig.p, &err);
    begin("note", code, &err);
    state_fields(&g_auth);
    end();
    free(aum.p);
    free(key.p);
    free(sig.p);
}

static int same_state(const auth_state *x, const auth_state *y) {
    if (x->n_keys != y->n_keys || x->n_disablement != y->n_disablement ||
        x->state_id1 != y->state_id1 || x->state_id2 != y->state_id2)
        return 0;
    for (size_t i = 0; i < x->n_keys; i++) {
        const auth_key *a = &x->keys[i], *b = &y->keys[i];
        if (a->public_len != b->public_len || a->public_is_null != b->public_is_null ||
            a->kind != b->kind || a->votes != b->votes || a->meta_bytes != b->meta_bytes ||
            memcmp(a->public_key, b->public_key, a->public_len) != 0)
            return 0;
    }
    return memcmp(x->disablement, y->disablement, 32 * (size_t)x->n_disablement) == 0;
}

static void cmd_roundtrip(void) {
    size_t len = 0, len2 = 0;
    dev_error err = {0, ""};
    int code = authority_serialize(&g_auth, g_blob, sizeof g_blob, &len);
    if (code == DEV_OK) code = authority_deserialize(&g_copy, g_blob, len, &err);
    if (code == DEV_OK) code = authority_serialize(&g_copy, g_blob2, sizeof g_blob2, &len2);
    int same = code == DEV_OK && len == len2 && memcmp(g_blob, g_blob2, len) == 0 &&
               authority_is_enrolled(&g_copy) == authority_is_enrolled(&g_auth) &&
               (!authority_is_enrolled(&g_auth) || same_state(&g_copy.head_state, &g_auth.head_state));
    begin("roundtrip", code, &err);
    printf(",\"same\":%s,\"len\":%zu,\"max\":%zu,\"blob\":", same ? "true" : "false", len,
           authority_serialized_max());
    json_hex(g_blob, len);
    state_fields(&g_copy);
    end();
}

static void cmd_load(char *blob_hex) {
    bytes blob = unhex(blob_hex);
    dev_error err = {0, ""};
    int code = authority_deserialize(&g_auth, blob.p ? blob.p : (const uint8_t *)"", blob.n, &err);
    begin("load", code, &err);
    state_fields(&g_auth);
    end();
    free(blob.p);
}

static void cmd_deeplink(char *sid, char *url_hex) {
    bytes url = unhex(url_hex);
    unsigned long long id = strtoull(sid, NULL, 10);
    deeplink_validate(url.p, url.n, (uint64_t)id, &g_link);
    printf("{\"cmd\":\"deeplink\",\"valid\":%s,\"error\":", g_link.valid ? "true" : "false");
    json_cstr(g_link.valid ? "" : g_link.error);
    if (g_link.valid) {
        const deeplink_text *f[5] = {&g_link.node_key, &g_link.tlpub, &g_link.device_name,
                                     &g_link.os_name, &g_link.email};
        const char *names[5] = {"nk", "tp", "dn", "os", "em"};
        for (int i = 0; i < 5; i++) {
            printf(",\"%s\":", names[i]);
            json_hex(f[i]->ptr, f[i]->len);
        }
    }
    end();
    free(url.p);
}

int main(void) {
    policy_defaults(&g_policy);
    authority_reset(&g_auth);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        char *save = NULL;
        char *cmd = strtok_r(line, " \t\r\n", &save);
        if (cmd == NULL) continue;
        char *a1 = strtok_r(NULL, " \t\r\n", &save);
        char *a2 = strtok_r(NULL, " \t\r\n", &save);
        char *a3 = strtok_r(NULL, " \t\r\n", &save);
        char *a4 = strtok_r(NULL, " \t\r\n", &save);
        dev_error none = {0, ""};
        if (strcmp(cmd, "reset") == 0) {
            authority_reset(&g_auth);
            begin("reset", DEV_OK, &none);
            end();
        } else if (strcmp(cmd, "policy") == 0) {
            g_policy.cosigners = (uint32_t)strtoul(a1, NULL, 10);
            g_policy.max_batch = (uint32_t)strtoul(a2, NULL, 10);
            begin("policy", DEV_OK, &none);
            end();
        } else if (strcmp(cmd, "enroll") == 0) {
            cmd_enroll(a1);
        } else if (strcmp(cmd, "update") == 0) {
            cmd_update(a1 != NULL && strcmp(a1, "-") != 0 ? a1 : NULL);
        } else if (strcmp(cmd, "state") == 0) {
            begin("state", DEV_OK, &none);
            state_fields(&g_auth);
            end();
        } else if (strcmp(cmd, "check_nks") == 0) {
            cmd_check_nks(a1, a2, a3, a4);
        } else if (strcmp(cmd, "check_batch") == 0) {
            cmd_check_batch(a1, a2, a3);
        } else if (strcmp(cmd, "check_aum") == 0) {
            cmd_check_aum(a1, a2);
        } else if (strcmp(cmd, "note") == 0) {
            cmd_note(a1, a2, a3);
        } else if (strcmp(cmd, "drop") == 0) {
            authority_drop_tentative(&g_auth);
            begin("drop", DEV_OK, &none);
            state_fields(&g_auth);
            end();
        } else if (strcmp(cmd, "roundtrip") == 0) {
            cmd_roundtrip();
        } else if (strcmp(cmd, "load") == 0) {
            cmd_load(a1);
        } else if (strcmp(cmd, "deeplink") == 0) {
            cmd_deeplink(a1, a2);
        } else {
            fprintf(stderr, "unknown command %s\n", cmd);
            return 2;
        }
    }
    free(line);
    return 0;
}
