#include "mem_board.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cbor.h"

#define HOST_RX_MAX (8u * 1024 * 1024)

void mem_board_init(board *b, uint64_t seed) {
    memset(b, 0, sizeof *b);
    b->now_ms = 1000;
    b->unix_time = 1767225600; /* 2026-01-01 */
    for (int i = 0; i < 8; i++) b->rng_state[i] = (uint8_t)(seed >> (8 * i));
}

void mem_board_free(board *b) {
    free(b->flash);
    free(b->serial);
    b->flash = b->serial = NULL;
}

void mem_board_set_flash(board *b, const uint8_t *image, size_t len) {
    free(b->flash);
    b->flash = NULL;
    b->flash_len = 0;
    if (image == NULL) return;
    b->flash = malloc(len ? len : 1);
    memcpy(b->flash, image, len);
    b->flash_len = len;
}

size_t mem_board_take_serial(board *b, uint8_t **out) {
    *out = b->serial;
    size_t n = b->serial_len;
    b->serial_len = 0;
    return n;
}

int mem_board_screen_has(const board *b, const char *needle) {
    for (unsigned i = 0; i < b->n_lines; i++)
        if (strstr(b->lines[i], needle) != NULL) return 1;
    return 0;
}

int board_serial_write(board *b, const uint8_t *data, size_t len) {
    if (b->serial_hook != NULL) b->serial_hook(data, len);
    if (b->serial_len + len > b->serial_cap) {
        size_t cap = b->serial_cap ? b->serial_cap : 65536;
        while (cap < b->serial_len + len) cap *= 2;
        b->serial = realloc(b->serial, cap);
        b->serial_cap = cap;
    }
    memcpy(b->serial + b->serial_len, data, len);
    b->serial_len += len;
    return 0;
}

int board_flash_read(board *b, uint8_t *buf, size_t cap, size_t *len) {
    if (b->fail_reads) return -1;
    if (b->flash == NULL) return 1;
    if (b->flash_len > cap) return -1;
    memcpy(buf, b->flash, b->flash_len);
    *len = b->flash_len;
    return 0;
}

int board_flash_write(board *b, const uint8_t *image, size_t len) {
    if (b->fail_writes) return -1;
    if (b->fail_write_at > 0 && --b->fail_write_at == 0) return -1;
    if (b->cut_armed) {
        if (b->cut_after == 0) return 0;
        b->cut_after--;
    }
    mem_board_set_flash(b, image, len);
    b->flash_writes++;
    return 0;
}

void board_screen_show(board *b, unsigned screen_no, const char *const *lines, unsigned n) {
    b->screens_shown++;
    b->screen_no = screen_no;
    b->screen_pending = 1;
    b->n_lines = n > SCREEN_MAX_LINES ? SCREEN_MAX_LINES : n;
    for (unsigned i = 0; i < b->n_lines; i++) snprintf(b->lines[i], SCREEN_LINE_MAX, "%s", lines[i]);
}

void board_screen_done(board *b, unsigned screen_no, const char *verdict) {
    b->screen_pending = 0;
    b->done_no = screen_no;
    snprintf(b->done_verdict, sizeof b->done_verdict, "%s", verdict);
}

uint64_t board_millis(board *b) {
    b->now_ms += b->millis_step;
    return b->now_ms;
}
uint64_t board_unix_time(board *b) { return b->unix_time + b->now_ms / 1000; }

int board_random(board *b, uint8_t *out, size_t len) {
    if (b->rng_fail) return -1;
    /* A ratchet: reproducible runs, distinct outputs. */
    randombytes_buf_deterministic(out, len, b->rng_state);
    crypto_generichash(b->rng_state, 32, b->rng_state, 32, NULL, 0);
    return 0;
}

void board_log(board *b, const char *line) {
    b->n_logs++;
    snprintf(b->last_log, sizeof b->last_log, "%s", line);
}

/* ---- host peer ---- */

static void peer_write(void *ctx, const uint8_t *bytes, size_t len) {
    host_peer *p = ctx;
    if (p->to_dev_len + len > p->to_dev_cap) {
        size_t cap = p->to_dev_cap ? p->to_dev_cap : 65536;
        while (cap < p->to_dev_len + len) cap *= 2;
        p->to_dev = realloc(p->to_dev, cap);
        p->to_dev_cap = cap;
    }
    memcpy(p->to_dev + p->to_dev_len, bytes, len);
    p->to_dev_len += len;
}

static int peer_can_deliver(void *ctx) {
    (void)ctx;
    return 1;
}

static void peer_deliver(void *ctx, uint8_t seq, const uint8_t *msg, size_t len, int too_large) {
    host_peer *p = ctx;
    (void)seq;
    if (too_large) return;
    p->reply = realloc(p->reply, len ? len : 1);
    memcpy(p->reply, msg, len);
    p->reply_len = len;
    p->have_reply = 1;
    p->replies++;
}

static void peer_sent(void *ctx, int ok) {
    host_peer *p = ctx;
    p->tx_done = 1;
    p->tx_ok = ok;
}

static void peer_on_reset(void *ctx, int reply) {
    host_peer *p = ctx;
    if (reply) p->reset_answered = 1;
}

static void peer_busy(void *ctx, uint8_t seq, uint8_t reason) {
    host_peer *p = ctx;
    (void)seq;
    p->busy_seen++;
    p->busy_reason = reason;
}

void peer_init(host_peer *p, device *d, board *b) {
    memset(p, 0, sizeof *p);
    p->d = d;
    p->b = b;
    p->rx = malloc(HOST_RX_MAX);
    p->next_id = 1;
    p->noise = 0x9e3779b97f4a7c15u;
    link_callbacks cb = {p, peer_write, peer_can_deliver, peer_deliver, peer_sent, peer_on_reset,
                         peer_busy};
    link_init(&p->link, &cb, p->rx, HOST_RX_MAX, b->now_ms);
}

void peer_free(host_peer *p) {
    free(p->rx);
    free(p->to_dev);
    free(p->tx);
    free(p->reply);
    memset(p, 0, sizeof *p);
}

static unsigned chance(host_peer *p) {
    p->noise ^= p->noise << 13;
    p->noise ^= p->noise >> 7;
    p->noise ^= p->noise << 17;
    return (unsigned)(p->noise % 1000);
}

/* Applies the impairment to a byte stream in place; returns the new length. */
static size_t impair(host_peer *p, uint8_t *buf, size_t len) {
    if (p->drop_per_mille == 0 && p->flip_per_mille == 0) return len;
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (chance(p) < p->drop_per_mille) continue;
        uint8_t c = buf[i];
        if (chance(p) < p->flip_per_mille) c ^= (uint8_t)(1u << (chance(p) % 8));
        buf[w++] = c;
    }
    return w;
}

void peer_pump(host_peer *p) {
    uint8_t *tmp = NULL;
    size_t tmp_cap = 0;
    for (int round = 0; round < 100000; round++) {
        int moved = 0;
        if (p->to_dev_len > 0) {
            size_t n = p->to_dev_len;
            if (n > tmp_cap) {
                tmp = realloc(tmp, n);
                tmp_cap = n;
            }
            memcpy(tmp, p->to_dev, n);
            p->to_dev_len = 0;
            n = impair(p, tmp, n);
            device_serial_input(p->d, tmp, n);
            moved = 1;
        }
        uint8_t *out;
        size_t n = mem_board_take_serial(p->b, &out);
        if (n > 0) {
            if (n > tmp_cap) {
                tmp = realloc(tmp, n);
                tmp_cap = n;
            }
            memcpy(tmp, out, n);
            n = impair(p, tmp, n);
            link_input(&p->link, tmp, n, p->b->now_ms);
            moved = 1;
        }
        if (!moved) break;
    }
    free(tmp);
}

void peer_sleep(host_peer *p, uint64_t ms) {
    for (uint64_t t = 0; t < ms; t += 10) {
        p->b->now_ms += 10;
        link_tick(&p->link, p->b->now_ms);
        device_tick(p->d);
        peer_pump(p);
    }
}

int peer_reset(host_peer *p) {
    p->reset_answered = 0;
    for (int i = 0; i < 10 && !p->reset_answered; i++) {
        link_reset(&p->link);
        link_send_reset(&p->link, 0);
        peer_pump(p);
        if (!p->reset_answered) peer_sleep(p, 200);
    }
    return p->reset_answered ? 0 : -1;
}

int peer_send(host_peer *p, const uint8_t *msg, size_t len) {
    if (link_tx_busy(&p->link)) return -1;
    if (len > p->tx_cap) {
        p->tx = realloc(p->tx, len);
        p->tx_cap = len;
    }
    if (len > 0) memcpy(p->tx, msg, len);
    p->have_reply = 0;
    p->tx_done = 0;
    if (link_send(&p->link, p->tx, len, p->b->now_ms) != 0) return -1;
    peer_pump(p);
    return 0;
}

int peer_wait_reply(host_peer *p, uint64_t wait_ms) {
    for (uint64_t t = 0; !p->have_reply && t < wait_ms; t += 10) peer_sleep(p, 10);
    return p->have_reply ? 0 : -1;
}

int peer_roundtrip(host_peer *p, const uint8_t *msg, size_t len, uint64_t wait_ms) {
    if (peer_send(p, msg, len) != 0) return -1;
    return peer_wait_reply(p, wait_ms);
}

size_t peer_request(host_peer *p, uint8_t *out, size_t cap, const char *method,
                    const uint8_t *params_cbor, size_t params_len) {
    cbor_writer w;
    cw_init(&w, out, cap);
    cw_map(&w, params_cbor ? 3 : 2);
    cw_text(&w, "id");
    cw_uint(&w, p->next_id++);
    cw_text(&w, "method");
    cw_text(&w, method);
    if (params_cbor) {
        cw_text(&w, "params");
        cw_raw(&w, params_cbor, params_len);
    }
    return w.overflow ? 0 : w.len;
}

int peer_call(host_peer *p, const char *method, const uint8_t *params, size_t params_len,
              int answer) {
    size_t cap = params_len + 256;
    uint8_t *req = malloc(cap);
    size_t n = peer_request(p, req, cap, method, params, params_len);
    unsigned shown = p->b->screens_shown;
    int rc = peer_send(p, req, n);
    free(req);
    if (rc != 0) return -1;
    for (int i = 0; i < 20000 && !p->have_reply; i++) {
        if (answer >= 0 && p->b->screen_pending && p->b->screens_shown != shown) {
            shown = p->b->screens_shown;
            device_button(p->d, answer);
            peer_pump(p);
            continue;
        }
        peer_sleep(p, 10);
        /* Like the real host: ALIVE every second while waiting. */
        if (i % 100 == 99) {
            link_send_alive(&p->link);
            peer_pump(p);
        }
    }
    return p->have_reply ? 0 : -1;
}

static int top(const host_peer *p, cbor_item *m) {
    if (!p->have_reply || cbor_check(p->reply, p->reply_len, NULL) != 0) return -1;
    m->p = p->reply;
    m->len = p->reply_len;
    return cbor_type(*m) == CB_MAP ? 0 : -1;
}

int reply_code(const host_peer *p) {
    cbor_item m, e, c;
    uint64_t code;
    if (top(p, &m) != 0) return -1;
    if (!cbor_map_find(m, "error", &e)) return 0;
    if (!cbor_map_find(e, "code", &c) || cbor_uint(c, &code) != 0) return -1;
    return (int)code;
}

int reply_result(const host_peer *p, cbor_item *result) {
    cbor_item m;
    if (top(p, &m) != 0) return -1;
    return cbor_map_find(m, "result", result) ? 0 : -1;
}

int reply_field(const host_peer *p, const char *key, cbor_item *value) {
    cbor_item m, r;
    if (top(p, &m) != 0) return -1;
    if (!cbor_map_find(m, "result", &r) && !cbor_map_find(m, "error", &r)) return -1;
    return cbor_map_find(r, key, value) ? 0 : -1;
}
