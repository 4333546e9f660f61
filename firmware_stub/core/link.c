#include "link.h"

#include <string.h>

#include "crc32.h"

static void put32be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32be(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

size_t link_encode_frame(uint8_t *out, size_t cap, uint8_t type, uint8_t flags, uint8_t seq,
                         uint32_t offset, const uint8_t *payload, size_t n) {
    uint8_t raw[LINK_FRAME_MAX];
    if (n > LINK_PAYLOAD_MAX) return 0;
    raw[0] = LINK_VERSION;
    raw[1] = type;
    raw[2] = flags;
    raw[3] = seq;
    put32be(raw + 4, offset);
    if (n > 0) memcpy(raw + LINK_HEADER, payload, n);
    uint32_t crc = crc32_update(0, raw, LINK_HEADER + n);
    uint8_t *c = raw + LINK_HEADER + n;
    c[0] = (uint8_t)crc, c[1] = (uint8_t)(crc >> 8), c[2] = (uint8_t)(crc >> 16);
    c[3] = (uint8_t)(crc >> 24);
    size_t enc = cobs_encode(raw, LINK_HEADER + n + 4, out, cap);
    if (enc == 0 || enc + 1 > cap) return 0;
    out[enc] = 0;
    return enc + 1;
}

static void emit(fw_link *l, uint8_t type, uint8_t flags, uint8_t seq, uint32_t offset,
                 const uint8_t *payload, size_t n) {
    size_t len = link_encode_frame(l->out_enc, sizeof l->out_enc, type, flags, seq, offset,
                                   payload, n);
    if (len > 0) l->cb.write(l->cb.ctx, l->out_enc, len);
}

static void rx_clear(fw_link *l) {
    l->rx_active = 0;
    l->rx_done = 0;
    l->rx_seq = 0;
    l->rx_got = 0;
}

static void flight_clear(fw_link *l);

static void tx_clear(fw_link *l) {
    l->tx_msg = NULL;
    l->tx_len = 0;
    l->tx_active = 0;
    l->tx_seq = 0;
    l->tx_next_seq = 0;
    l->tx_acked = l->tx_sent = l->tx_high = 0;
    l->tx_fin_sent = 0;
    l->tx_timeouts = 0;
    l->probe_valid = 0;
    flight_clear(l);
}

void link_init(fw_link *l, const link_callbacks *cb, uint8_t *rx_buf, size_t rx_max,
               uint64_t now) {
    l->cb = *cb;
    l->enc_len = 0;
    l->enc_overflow = 0;
    l->rx_buf = rx_buf;
    l->rx_max = rx_max;
    l->rx_high = 0;
    rx_clear(l);
    tx_clear(l);
    l->frag = LINK_FRAG_INITIAL;
    l->clean = 0;
    l->rto = LINK_RTO_INITIAL;
    l->srtt = l->rttvar = 0;
    l->have_rtt = 0;
    l->last_rx = now;
    memset(&l->stats, 0, sizeof l->stats);
}

void link_set_rx_buffer(fw_link *l, uint8_t *rx_buf) {
    l->rx_buf = rx_buf;
    l->rx_high = 0;
}

void link_reset(fw_link *l) {
    rx_clear(l);
    tx_clear(l);
    /* Fragment size and timeout describe the line, not the session: keep what was learnt. */
}

int link_tx_busy(const fw_link *l) { return l->tx_active; }

void link_send_reset(fw_link *l, int reply) {
    emit(l, LT_RESET, reply ? LF_REPLY : 0, 0, 0, NULL, 0);
}

void link_send_busy(fw_link *l, uint8_t seq, uint8_t reason) {
    emit(l, LT_BUSY, 0, seq, 0, &reason, 1);
}

void link_send_alive(fw_link *l) { emit(l, LT_ALIVE, 0, 0, 0, NULL, 0); }

/* ---- sender ---- */

static void flight_clear(fw_link *l) {
    l->flight_head = l->flight_count = 0;
    l->stale_naks = 0;
}

static void flight_push(fw_link *l, size_t end) {
    if (l->flight_count == LINK_FLIGHT_MAX) { /* cannot happen within the window; stay bounded */
        l->flight_head = (l->flight_head + 1) % LINK_FLIGHT_MAX;
        l->flight_count--;
    }
    l->flight_end[(l->flight_head + l->flight_count) % LINK_FLIGHT_MAX] = end;
    l->flight_count++;
}

/* Forget the frames the peer now has all of. */
static void flight_acked(fw_link *l, size_t acked) {
    while (l->flight_count > 0 && l->flight_end[l->flight_head] <= acked) {
        l->flight_head = (l->flight_head + 1) % LINK_FLIGHT_MAX;
        l->flight_count--;
    }
}

static void pump(fw_link *l, uint64_t now) {
    int sent_any = 0;
    while (l->tx_active && !l->tx_fin_sent) {
        size_t inflight = l->tx_sent - l->tx_acked;
        size_t left = l->tx_len - l->tx_sent;
        size_t n = l->frag;
        if (n > left) n = left;
        if (n > LINK_WINDOW - inflight) n = LINK_WINDOW - inflight;
        if (n == 0 && left > 0) break; /* window full */
        int fin = l->tx_sent + n == l->tx_len;
        emit(l, LT_DATA, fin ? LF_FIN : 0, l->tx_seq, (uint32_t)l->tx_sent,
             l->tx_msg + l->tx_sent, n);
        flight_push(l, l->tx_sent + n);
        l->stats.fragments_sent++;
        if (!l->probe_valid && l->tx_sent >= l->tx_high) {
            l->probe_valid = 1;
            l->probe_end = l->tx_sent + n;
            l->probe_time = now;
        }
        l->tx_sent += n;
        if (l->tx_sent > l->tx_high) l->tx_high = l->tx_sent;
        if (fin) l->tx_fin_sent = 1;
        sent_any = 1;
    }
    if (sent_any && l->tx_deadline <= now) l->tx_deadline = now + l->rto;
}

static void rewind_to_acked(fw_link *l, uint64_t now) {
    if (l->frag / 2 >= LINK_FRAG_MIN) l->frag /= 2;
    else l->frag = LINK_FRAG_MIN;
    l->clean = 0;
    l->tx_sent = l->tx_acked;
    l->tx_fin_sent = 0;
    l->probe_valid = 0;
    l->flight_head = l->flight_count = 0;
    l->stats.retransmissions++;
    l->tx_deadline = now + l->rto;
    pump(l, now);
}

static void rtt_sample(fw_link *l, uint32_t r) {
    /* RFC 6298 smoothing, in milliseconds. */
    if (!l->have_rtt) {
        l->srtt = r;
        l->rttvar = r / 2;
        l->have_rtt = 1;
    } else {
        uint32_t diff = l->srtt > r ? l->srtt - r : r - l->srtt;
        l->rttvar = (3 * l->rttvar + diff) / 4;
        l->srtt = (7 * l->srtt + r) / 8;
    }
    uint32_t rto = l->srtt + (4 * l->rttvar > 1 ? 4 * l->rttvar : 1);
    if (rto < LINK_RTO_MIN) rto = LINK_RTO_MIN;
    if (rto > LINK_RTO_MAX) rto = LINK_RTO_MAX;
    l->rto = rto;
}

static void progress(fw_link *l, size_t offset, uint64_t now) {
    l->tx_acked = offset;
    if (l->tx_sent < offset) l->tx_sent = offset;
    l->tx_timeouts = 0;
    flight_acked(l, offset);
    l->stale_naks = 0; /* NAKs for older points no longer matter; new ones are new losses */
    if (l->probe_valid && offset >= l->probe_end) {
        uint64_t r = now > l->probe_time ? now - l->probe_time : 0;
        rtt_sample(l, r > LINK_RTO_MAX ? LINK_RTO_MAX : (uint32_t)r);
        l->probe_valid = 0;
    }
    if (++l->clean >= LINK_CLEAN_TO_GROW) {
        l->clean = 0;
        l->frag = l->frag * 2 > LINK_FRAG_MAX ? LINK_FRAG_MAX : l->frag * 2;
    }
    l->tx_deadline = now + l->rto;
}

static void tx_finish(fw_link *l, int ok) {
    l->tx_active = 0;
    l->tx_msg = NULL;
    if (ok) l->stats.messages_out++;
    else l->stats.messages_failed++;
    l->cb.sent(l->cb.ctx, ok);
}

int link_send(fw_link *l, const uint8_t *msg, size_t len, uint64_t now) {
    if (l->tx_active) return -1;
    l->tx_msg = msg;
    l->tx_len = len;
    l->tx_active = 1;
    l->tx_seq = l->tx_next_seq++;
    l->tx_acked = l->tx_sent = l->tx_high = 0;
    l->tx_fin_sent = 0;
    l->tx_timeouts = 0;
    l->probe_valid = 0;
    flight_clear(l);
    l->tx_deadline = 0;
    pump(l, now);
    return 0;
}

static void on_ack(fw_link *l, uint8_t flags, uint8_t seq, uint32_t offset, uint64_t now) {
    if (!l->tx_active || seq != l->tx_seq || offset > l->tx_len) return;
    if (offset > l->tx_acked) progress(l, offset, now);
    if (flags & LF_FIN) {
        /* FIN with fewer bytes than sent: the peer refused the message (too large). */
        tx_finish(l, offset == l->tx_len);
        return;
    }
    pump(l, now);
}

static void on_nak(fw_link *l, uint8_t seq, uint32_t offset, uint64_t now) {
    if (!l->tx_active || seq != l->tx_seq || offset > l->tx_len) return;
    if (offset > l->tx_acked) progress(l, offset, now);
    if (offset < l->tx_acked) return; /* from before an acknowledgement we already have */
    /* The lost frame and every frame after it in the flight each draw one NAK for the same
     * point, and the line keeps order, so they all arrive before anything answering the
     * retransmission: go back on the first, absorb the rest, and go back again on one more
     * (the retransmission was lost too) instead of waiting for the doubled timer. */
    if (l->stale_naks > 0) {
        l->stale_naks--;
        return;
    }
    unsigned abandoned = l->flight_count;
    rewind_to_acked(l, now); /* empties the flight and sends the retransmission */
    l->stale_naks = abandoned > 0 ? abandoned - 1 : 0;
}

void link_tick(fw_link *l, uint64_t now) {
    if (!l->tx_active || now < l->tx_deadline) return;
    l->stats.timeouts++;
    if (++l->tx_timeouts >= LINK_MAX_TIMEOUTS) {
        tx_finish(l, 0);
        return;
    }
    l->rto = l->rto * 2 > LINK_RTO_MAX ? LINK_RTO_MAX : l->rto * 2;
    l->stale_naks = 0;
    rewind_to_acked(l, now);
}

/* ---- receiver ---- */

static void send_nak(fw_link *l, uint8_t seq, size_t offset) {
    l->stats.naks_sent++;
    emit(l, LT_NAK, 0, seq, (uint32_t)offset, NULL, 0);
}

static void on_data(fw_link *l, uint8_t flags, uint8_t seq, uint32_t offset,
                    const uint8_t *payload, size_t n) {
    if (!l->rx_active || seq != l->rx_seq) {
        if (offset != 0) {
            send_nak(l, seq, 0);
            return;
        }
        /* A new message; an incomplete one is abandoned. */
        l->rx_active = 1;
        l->rx_seq = seq;
        l->rx_got = 0;
        l->rx_done = 0;
    }
    if (l->rx_done) {
        emit(l, LT_ACK, LF_FIN, l->rx_seq, (uint32_t)l->rx_got, NULL, 0);
        return;
    }
    if (offset > l->rx_got) {
        send_nak(l, seq, l->rx_got);
        return;
    }
    size_t end = (size_t)offset + n;
    int fin = (flags & LF_FIN) != 0;
    int too_large = end > l->rx_max;
    if (fin && end < l->rx_got) {
        /* A FIN that ends before bytes we hold contradicts them: not our message. */
        emit(l, LT_ACK, 0, l->rx_seq, (uint32_t)l->rx_got, NULL, 0);
        return;
    }
    if ((fin || too_large) && !l->cb.can_deliver(l->cb.ctx)) return; /* held back */
    if (too_large) {
        /* FIN tells the sender to stop; the receiver answers "too large". */
        l->rx_done = 1;
        l->stats.messages_in++;
        emit(l, LT_ACK, LF_FIN, l->rx_seq, (uint32_t)l->rx_got, NULL, 0);
        l->cb.deliver(l->cb.ctx, l->rx_seq, l->rx_buf, l->rx_got, 1);
        return;
    }
    if (end > l->rx_got) {
        /* A retransmission with another fragment size may overlap what we hold: take the rest. */
        size_t skip = l->rx_got - offset;
        memcpy(l->rx_buf + l->rx_got, payload + skip, n - skip);
        l->rx_got = end;
        if (end > l->rx_high) l->rx_high = end;
    }
    if (fin) {
        l->rx_done = 1;
        l->stats.messages_in++;
        emit(l, LT_ACK, LF_FIN, l->rx_seq, (uint32_t)l->rx_got, NULL, 0);
        l->cb.deliver(l->cb.ctx, l->rx_seq, l->rx_buf, l->rx_got, 0);
        return;
    }
    emit(l, LT_ACK, 0, l->rx_seq, (uint32_t)l->rx_got, NULL, 0);
}

static void dropped(fw_link *l, uint64_t now) {
    l->stats.frames_dropped++;
    if (l->rx_active && !l->rx_done) send_nak(l, l->rx_seq, l->rx_got);
    /* Between messages the damaged frame may have been the first fragment of the host's next
     * one (seq one up), which no later fragment reports if the message is short. */
    else send_nak(l, (uint8_t)(l->rx_active ? l->rx_seq + 1 : 0), 0);
    /* While fragments are in flight, a damaged frame is most likely the host's ACK or NAK for
     * them: act as on a NAK for the acknowledged point rather than wait for the timer. */
    if (l->tx_active && l->flight_count > 0) on_nak(l, l->tx_seq, (uint32_t)l->tx_acked, now);
}

static void on_frame(fw_link *l, uint64_t now) {
    size_t len;
    if (l->enc_overflow || cobs_decode(l->enc, l->enc_len, l->frame, sizeof l->frame, &len) != 0 ||
        len < LINK_FRAME_MIN || len > LINK_FRAME_MAX) {
        dropped(l, now);
        return;
    }
    const uint8_t *f = l->frame;
    size_t n = len - LINK_FRAME_MIN;
    uint32_t want = crc32_update(0, f, len - 4);
    uint32_t got = (uint32_t)f[len - 4] | ((uint32_t)f[len - 3] << 8) |
                   ((uint32_t)f[len - 2] << 16) | ((uint32_t)f[len - 1] << 24);
    uint8_t type = f[1], flags = f[2], seq = f[3];
    if (want != got || f[0] != LINK_VERSION || type < LT_DATA || type > LT_ALIVE ||
        (flags & ~(LF_FIN | LF_REPLY)) != 0 || (type == LT_BUSY && n != 1) ||
        (type != LT_DATA && type != LT_BUSY && n != 0)) {
        dropped(l, now);
        return;
    }
    uint32_t offset = get32be(f + 4);
    l->stats.frames_in++;
    l->last_rx = now;
    switch (type) {
    case LT_DATA:
        on_data(l, flags, seq, offset, f + LINK_HEADER, n);
        break;
    case LT_ACK:
        on_ack(l, flags, seq, offset, now);
        break;
    case LT_NAK:
        on_nak(l, seq, offset, now);
        break;
    case LT_BUSY:
        if (l->cb.busy != NULL) l->cb.busy(l->cb.ctx, seq, f[LINK_HEADER]);
        break;
    case LT_RESET:
        if (flags & LF_REPLY) {
            l->cb.reset(l->cb.ctx, 1);
        } else {
            link_reset(l);
            l->cb.reset(l->cb.ctx, 0);
            link_send_reset(l, 1);
        }
        break;
    default: /* ALIVE: hearing it is all it is for */
        break;
    }
}

void link_input(fw_link *l, const uint8_t *data, size_t len, uint64_t now) {
    for (size_t i = 0; i < len; i++) {
        uint8_t b = data[i];
        if (b != 0) {
            if (l->enc_len < sizeof l->enc) l->enc[l->enc_len++] = b;
            else l->enc_overflow = 1;
            continue;
        }
        /* Empty frames (0x00 0x00) are padding a sender may use to resynchronise. */
        if (l->enc_len > 0 || l->enc_overflow) on_frame(l, now);
        l->enc_len = 0;
        l->enc_overflow = 0;
    }
}
