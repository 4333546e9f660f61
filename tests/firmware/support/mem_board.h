/*
 * An in-memory board for the firmware's tests and fuzz target: flash in a buffer (with
 * injectable failures), a clock the test moves, deterministic randomness, the screen captured,
 * serial output collected. And a host peer: the host's end of the link (a second fw_link) with
 * helpers to make calls and read replies.
 */
#ifndef FW_MEM_BOARD_H
#define FW_MEM_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "device.h"
#include "link.h"
#include "screen.h"

struct board {
    uint64_t now_ms;
    unsigned millis_step;    /* each board_millis() call moves the clock (work takes time) */
    uint64_t unix_time;

    uint8_t *flash;          /* NULL: no image yet */
    size_t flash_len;
    size_t flash_cap;
    unsigned flash_writes;   /* successful writes */
    int fail_writes;         /* every write fails */
    unsigned fail_write_at;  /* the Nth write from now fails (1 = next), 0 = none */
    int fail_reads;
    /* A power cut: after `cut_after` more writes, writes are lost (they "succeed" but the flash
     * keeps the last image written before the cut). */
    int cut_armed;
    unsigned cut_after;

    /* Called with each write the device makes (one frame per call), e.g. to check it. */
    void (*serial_hook)(const uint8_t *data, size_t len);
    uint8_t *serial;         /* bytes the device wrote, not yet taken */
    size_t serial_len, serial_cap;

    uint8_t rng_state[32];
    int rng_fail;

    unsigned screens_shown;
    unsigned screen_no;
    int screen_pending;
    unsigned n_lines;
    char lines[SCREEN_MAX_LINES][SCREEN_LINE_MAX];
    unsigned done_no;
    char done_verdict[16];

    unsigned n_logs;
    char last_log[256];
};

void mem_board_init(board *b, uint64_t seed);
void mem_board_free(board *b);
void mem_board_set_flash(board *b, const uint8_t *image, size_t len);
/* Takes what the device wrote to the serial line (returns its length; *out valid until the
 * next write). */
size_t mem_board_take_serial(board *b, uint8_t **out);
/* 1 if a screen line contains `needle`. */
int mem_board_screen_has(const board *b, const char *needle);

/* ---- the host's end ---- */

typedef struct {
    device *d;
    board *b;
    fw_link link;
    uint8_t *rx;             /* replies (8 MiB, the host's limit) */
    uint8_t *to_dev;         /* host frames not yet given to the device */
    size_t to_dev_len, to_dev_cap;
    uint8_t *tx;             /* the request in flight (the link resends from it) */
    size_t tx_cap;
    uint8_t *reply;          /* the last complete reply */
    size_t reply_len;
    int have_reply;
    unsigned replies;
    int reset_answered;
    unsigned busy_seen;
    uint8_t busy_reason;
    int tx_done, tx_ok;
    /* Line impairment, for link tests: each byte is dropped / flipped with this chance in
     * 1/1000, from a deterministic generator. */
    unsigned drop_per_mille, flip_per_mille;
    uint64_t noise;
    uint64_t next_id;
} host_peer;

void peer_init(host_peer *p, device *d, board *b);
void peer_free(host_peer *p);
/* Moves bytes both ways until the line is quiet (with impairment applied). */
void peer_pump(host_peer *p);
/* Moves time forward in 10 ms steps, ticking both ends and pumping. */
void peer_sleep(host_peer *p, uint64_t ms);
int peer_reset(host_peer *p); /* 0 when the device answered RESET */
/* Sends one raw request message (copied: the caller's buffer may go) and waits (simulated time, at most wait_ms) for a reply.
 * Returns 0 with p->reply set, -1 if none came. */
int peer_send(host_peer *p, const uint8_t *msg, size_t len);
int peer_wait_reply(host_peer *p, uint64_t wait_ms);
int peer_roundtrip(host_peer *p, const uint8_t *msg, size_t len, uint64_t wait_ms);

/* Builds {"id": next_id, "method": m, "params": <params_cbor>} (params_cbor may be NULL). */
size_t peer_request(host_peer *p, uint8_t *out, size_t cap, const char *method,
                    const uint8_t *params_cbor, size_t params_len);
/* One call with the person answering every screen with `answer` (1 yes, 0 no, -1 never). */
int peer_call(host_peer *p, const char *method, const uint8_t *params, size_t params_len,
              int answer);

/* Reading the last reply: its error code (0 if a result), and result fields. */
int reply_code(const host_peer *p);
int reply_result(const host_peer *p, cbor_item *result);
int reply_field(const host_peer *p, const char *key, cbor_item *value); /* in result or error */

#endif
