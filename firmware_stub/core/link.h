/*
 * The link layer of docs/appliance.md §1: CRC-checked COBS frames carrying messages in
 * fragments, acknowledged by bytes (go-back-N), with NAK on dropped frames, RESET, BUSY and
 * ALIVE. One fw_link is one end of the line: a receiver for the messages coming in and a sender
 * for the messages going out. The device uses it; the tests also use one as the host's end.
 *
 * No clock of its own: every call that may act on time takes `now` in milliseconds.
 */
#ifndef FW_LINK_H
#define FW_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "cobs.h"

#define LINK_VERSION 1
#define LINK_HEADER 8
#define LINK_PAYLOAD_MAX 1024
#define LINK_FRAME_MIN 12
#define LINK_FRAME_MAX (LINK_HEADER + LINK_PAYLOAD_MAX + 4)
#define LINK_ENCODED_MAX COBS_ENCODED_MAX(LINK_FRAME_MAX)

enum { LT_DATA = 1, LT_ACK = 2, LT_NAK = 3, LT_BUSY = 4, LT_RESET = 5, LT_ALIVE = 6 };
#define LF_FIN 0x01
#define LF_REPLY 0x02

/* Sender parameters (docs/appliance.md §1). */
#define LINK_WINDOW 4096          /* unacknowledged bytes in flight */
#define LINK_FRAG_INITIAL 256
#define LINK_FRAG_MIN 32
#define LINK_FRAG_MAX LINK_PAYLOAD_MAX
#define LINK_CLEAN_TO_GROW 16     /* clean fragments before the fragment size doubles */
#define LINK_RTO_INITIAL 100
#define LINK_RTO_MIN 20
#define LINK_RTO_MAX 1000
#define LINK_MAX_TIMEOUTS 12      /* timeouts in a row without progress: give up */
#define LINK_FLIGHT_MAX (LINK_WINDOW / LINK_FRAG_MIN + 2) /* frames a full window can hold */

typedef struct {
    void *ctx;
    /* One encoded frame, delimiter included. */
    void (*write)(void *ctx, const uint8_t *bytes, size_t len);
    /* Asked before a fragment would complete an incoming message: 0 holds it back unacknowledged
     * (the peer retransmits later), so a receiver that cannot take a message now pushes back. */
    int (*can_deliver)(void *ctx);
    /* A complete incoming message (too_large: it exceeded the limit; msg holds its first bytes).
     * The bytes stay valid until the next call into the link. */
    void (*deliver)(void *ctx, uint8_t seq, const uint8_t *msg, size_t len, int too_large);
    /* The outgoing message is finished: ok = acknowledged whole, 0 = given up or refused. */
    void (*sent)(void *ctx, int ok);
    /* RESET heard (reply = 0; the link has already reset itself and answers after this
     * returns) or the answer to ours (reply = 1). */
    void (*reset)(void *ctx, int reply);
    /* BUSY heard (the host's end uses it). May be NULL. */
    void (*busy)(void *ctx, uint8_t seq, uint8_t reason);
} link_callbacks;

typedef struct {
    uint64_t frames_in;       /* valid frames */
    uint64_t frames_dropped;  /* bad COBS, length, CRC, version, type or flags */
    uint64_t naks_sent;
    uint64_t fragments_sent;  /* DATA frames, first transmissions and retransmissions */
    uint64_t retransmissions; /* rewinds (NAK or timeout) */
    uint64_t timeouts;
    uint64_t messages_in;
    uint64_t messages_out;    /* acknowledged whole */
    uint64_t messages_failed; /* given up or refused by the peer */
} link_stats;

typedef struct {
    link_callbacks cb;

    /* Frame decoder: bytes up to the next 0x00. */
    uint8_t enc[LINK_ENCODED_MAX];
    size_t enc_len;
    int enc_overflow;
    uint8_t frame[LINK_FRAME_MAX];
    uint8_t out_raw[LINK_FRAME_MAX];
    uint8_t out_enc[LINK_ENCODED_MAX + 1];

    /* Receiver. */
    uint8_t *rx_buf;
    size_t rx_max;
    int rx_active;            /* a current message exists */
    int rx_done;
    uint8_t rx_seq;
    size_t rx_got;
    size_t rx_high;           /* bytes of rx_buf written since it was set (to wipe them) */

    /* Sender. */
    const uint8_t *tx_msg;
    size_t tx_len;
    int tx_active;
    uint8_t tx_seq;           /* of the current message */
    uint8_t tx_next_seq;
    size_t tx_acked;          /* the peer has bytes [0, tx_acked) */
    size_t tx_sent;           /* next byte to send */
    size_t tx_high;           /* bytes beyond this were never sent (Karn: only they time the RTT) */
    int tx_fin_sent;
    uint64_t tx_deadline;
    unsigned tx_timeouts;
    size_t frag;
    unsigned clean;
    uint32_t rto;
    uint32_t srtt, rttvar;
    int have_rtt;
    int probe_valid;
    size_t probe_end;
    uint64_t probe_time;
    /* Ends of the DATA frames in flight (oldest first), so that a go-back knows how many NAKs
     * the abandoned flight can still draw for the same point. */
    size_t flight_end[LINK_FLIGHT_MAX];
    unsigned flight_head, flight_count;
    unsigned stale_naks;      /* NAKs for the acknowledged point still due from an old flight */

    uint64_t last_rx;         /* time of the last valid frame */
    link_stats stats;
} fw_link;

void link_init(fw_link *l, const link_callbacks *cb, uint8_t *rx_buf, size_t rx_max,
               uint64_t now);
/* Points the receiver at another buffer (between messages, e.g. when the delivered one must be
 * kept while the next arrives). */
void link_set_rx_buffer(fw_link *l, uint8_t *rx_buf);

/* Bytes from the line. */
void link_input(fw_link *l, const uint8_t *data, size_t len, uint64_t now);
/* Timers (retransmission). */
void link_tick(fw_link *l, uint64_t now);

/* Starts sending a message (the bytes must stay valid until the `sent` callback). Returns -1
 * if a message is still in flight. */
int link_send(fw_link *l, const uint8_t *msg, size_t len, uint64_t now);
int link_tx_busy(const fw_link *l);

/* Both directions back to the start: next seq 0, no current message; an outgoing message is
 * dropped without a `sent` callback. */
void link_reset(fw_link *l);

void link_send_reset(fw_link *l, int reply);
void link_send_busy(fw_link *l, uint8_t seq, uint8_t reason);
void link_send_alive(fw_link *l);

/* Builds one frame into `out` (COBS-encoded, delimiter included; cap ≥ LINK_ENCODED_MAX + 1).
 * Returns its length, 0 if the payload is too long. Used by the link and by tests. */
size_t link_encode_frame(uint8_t *out, size_t cap, uint8_t type, uint8_t flags, uint8_t seq,
                         uint32_t offset, const uint8_t *payload, size_t n);

#endif
