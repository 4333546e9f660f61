#include "fw_test.h"

#include <stdlib.h>

device fx_dev;
board fx_board;
host_peer fx_peer;

static void attach(void) {
    peer_init(&fx_peer, &fx_dev, &fx_board);
    CHECK(peer_reset(&fx_peer) == 0);
}

void fx_boot(uint64_t seed, int real_kdf) {
    mem_board_init(&fx_board, seed);
    fx_dev.board_name = "mem";
    fx_dev.kdf_opslimit = real_kdf ? 0 : 1;
    fx_dev.kdf_memlimit = real_kdf ? 0 : 8192;
    dev_error err;
    int rc = device_boot(&fx_dev, &fx_board, &err);
    CHECK(rc == 0);
    if (rc != 0) fprintf(stderr, "boot: %s\n", err.message);
    attach();
}

int fx_reboot(void) {
    device_shutdown(&fx_dev);
    peer_free(&fx_peer);
    dev_error err;
    int rc = device_boot(&fx_dev, &fx_board, &err);
    if (rc == 0) attach();
    return rc;
}

void fx_teardown(void) {
    device_shutdown(&fx_dev);
    peer_free(&fx_peer);
    mem_board_free(&fx_board);
}

int fx_call(const char *method, int answer) {
    return peer_call(&fx_peer, method, NULL, 0, answer);
}

int fx_callp(const char *method, const cbor_writer *params, int answer) {
    return peer_call(&fx_peer, method, params->buf, params->len, answer);
}

int fx_code(void) { return reply_code(&fx_peer); }

int fx_result_uint(const char *key, uint64_t *v) {
    cbor_item it;
    return reply_field(&fx_peer, key, &it) == 0 && cbor_uint(it, v) == 0 ? 0 : -1;
}

int fx_result_text_is(const char *key, const char *want) {
    cbor_item it;
    return reply_field(&fx_peer, key, &it) == 0 && cbor_text_is(it, want);
}

int fx_result_bool(const char *key, int *v) {
    cbor_item it;
    return reply_field(&fx_peer, key, &it) == 0 && cbor_bool(it, v) == 0 ? 0 : -1;
}

void fx_params_begin(fx_params *p, size_t entries) {
    cw_init(&p->w, p->buf, sizeof p->buf);
    cw_map(&p->w, entries);
}

void fx_text(fx_params *p, const char *k, const char *v) {
    cw_text(&p->w, k);
    cw_text(&p->w, v);
}

void fx_uint(fx_params *p, const char *k, uint64_t v) {
    cw_text(&p->w, k);
    cw_uint(&p->w, v);
}

void fx_bytes(fx_params *p, const char *k, const uint8_t *b, size_t n) {
    cw_text(&p->w, k);
    cw_bytes(&p->w, b, n);
}

void fx_bool(fx_params *p, const char *k, int v) {
    cw_text(&p->w, k);
    cw_bool(&p->w, v);
}

void fx_setup(const char *pin) {
    static fx_params p;
    fx_params_begin(&p, 1);
    fx_text(&p, "pin", pin ? pin : "123456");
    CHECK(fx_callp("setup", &p.w, 1) == 0);
    CHECK_EQ(fx_code(), 0);
}

int fx_audit_count(const char *event, const char *verdict) {
    int found = 0;
    static fx_params p;
    uint64_t start = 0;
    for (;;) {
        fx_params_begin(&p, 1);
        fx_uint(&p, "start", start);
        if (fx_callp("audit_log", &p.w, -1) != 0 || fx_code() != 0) return -1;
        cbor_item entries, e, body, v;
        if (reply_field(&fx_peer, "entries", &entries) != 0) return -1;
        cbor_iter it;
        cbor_iter_init(entries, &it);
        size_t n = 0;
        while (cbor_next(&it, &e)) {
            const uint8_t *b;
            size_t bl;
            uint64_t seq = 0;
            n++;
            if (!cbor_map_find(e, "body", &body) || cbor_bytes(body, &b, &bl) != 0) return -1;
            cbor_item m = {b, bl};
            if (cbor_map_find(m, "seq", &v)) cbor_uint(v, &seq);
            start = seq + 1;
            if (cbor_map_find(m, "event", &v) && cbor_text_is(v, event) &&
                cbor_map_find(m, "verdict", &v) && cbor_text_is(v, verdict))
                found++;
        }
        if (n == 0) break;
    }
    return found;
}
