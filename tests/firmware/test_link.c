/* The link layer of docs/appliance.md §1 between two fw_link ends over a simulated line that loses,
 * corrupts, duplicates, delays and reorders frames; and the receiver's rules frame by frame. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cobs.h"
#include "crc32.h"
#include "link.h"

#define QMAX 8192

typedef struct {
    uint8_t data[LINK_ENCODED_MAX + 1];
    size_t len;
    uint64_t at;
} pkt;

typedef struct ep ep;

typedef struct {
    pkt *q;
    size_t n;
    unsigned drop, corrupt, dup, reorder; /* per mille */
    int blackhole;
    uint64_t latency;
    ep *dst;
} chan;

struct ep {
    fw_link l;
    chan *out;
    uint8_t *rx;
    uint8_t *got;
    size_t got_len;
    unsigned delivered;
    int too_large;
    int sent_done, sent_ok;
    int accept; /* can_deliver */
    unsigned resets, reset_replies, busy;
    /* frames written, for the frame-level tests */
    uint8_t last[LINK_ENCODED_MAX + 1];
    size_t last_len;
    unsigned writes;
};

static uint64_t now;
static uint64_t rng = 88172645463325252u;

static unsigned roll(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % 1000);
}

static void push(chan *c, const uint8_t *b, size_t len) {
    if (c->n >= QMAX || c->blackhole) return;
    pkt *p = &c->q[c->n++];
    memcpy(p->data, b, len);
    p->len = len;
    p->at = now + c->latency;
}

static void ep_write(void *ctx, const uint8_t *b, size_t len) {
    ep *e = ctx;
    e->writes++;
    memcpy(e->last, b, len);
    e->last_len = len;
    chan *c = e->out;
    if (c == NULL) return;
    if (roll() < c->drop) return;
    size_t before = c->n;
    push(c, b, len);
    if (c->n > before && roll() < c->corrupt) {
        pkt *p = &c->q[c->n - 1];
        size_t i = (size_t)roll() % (len - 1); /* keep the delimiter */
        p->data[i] ^= (uint8_t)(1u << (roll() % 8));
        if (p->data[i] == 0) p->data[i] = 0x55;
    }
    if (roll() < c->dup) push(c, b, len);
    if (c->n >= 2 && roll() < c->reorder) {
        pkt t = c->q[c->n - 1];
        c->q[c->n - 1] = c->q[c->n - 2];
        c->q[c->n - 2] = t;
    }
}

static int ep_can(void *ctx) { return ((ep *)ctx)->accept; }

static void ep_deliver(void *ctx, uint8_t seq, const uint8_t *m, size_t len, int too_large) {
    ep *e = ctx;
    (void)seq;
    e->delivered++;
    e->too_large = too_large;
    e->got = realloc(e->got, len + 1);
    memcpy(e->got, m, len);
    e->got_len = len;
}

static void ep_sent(void *ctx, int ok) {
    ep *e = ctx;
    e->sent_done = 1;
    e->sent_ok = ok;
}

static void ep_reset(void *ctx, int reply) {
    ep *e = ctx;
    if (reply) e->reset_replies++;
    else e->resets++;
}

static void ep_busy(void *ctx, uint8_t seq, uint8_t reason) {
    (void)seq;
    (void)reason;
    ((ep *)ctx)->busy++;
}

static void ep_init(ep *e, chan *out, size_t rx_max) {
    memset(e, 0, sizeof *e);
    e->out = out;
    e->rx = malloc(rx_max ? rx_max : 1);
    e->accept = 1;
    link_callbacks cb = {e, ep_write, ep_can, ep_deliver, ep_sent, ep_reset, ep_busy};
    link_init(&e->l, &cb, e->rx, rx_max, now);
}

static void ep_free(ep *e) {
    free(e->rx);
    free(e->got);
}

static void chan_init(chan *c, ep *dst) {
    memset(c, 0, sizeof *c);
    c->q = malloc(sizeof(pkt) * QMAX);
    c->dst = dst;
}

/* Delivers frames that are due, in order. */
static void chan_step(chan *c) {
    size_t i = 0;
    while (i < c->n && c->q[i].at <= now) i++;
    /* Copy out first: delivery can enqueue more. */
    static pkt due[QMAX];
    memcpy(due, c->q, i * sizeof(pkt));
    memmove(c->q, c->q + i, (c->n - i) * sizeof(pkt));
    c->n -= i;
    for (size_t k = 0; k < i; k++) link_input(&c->dst->l, due[k].data, due[k].len, now);
}

static void run(chan *ab, chan *ba, ep *a, ep *b, uint64_t ms) {
    for (uint64_t t = 0; t < ms; t++) {
        now++;
        chan_step(ab);
        chan_step(ba);
        link_tick(&a->l, now);
        link_tick(&b->l, now);
    }
}

static uint8_t *pattern(size_t n, unsigned seed) {
    uint8_t *m = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) m[i] = (uint8_t)((i * 31 + seed) ^ (i >> 8));
    return m;
}

/* Sends one message a→b over the given impairments; returns 1 if it arrived intact and the
 * sender saw it complete. */
static int transfer(size_t n, unsigned drop, unsigned corrupt, unsigned dup, unsigned reorder,
                    uint64_t latency, link_stats *sender_stats, size_t *min_frag) {
    ep a, b;
    chan ab, ba;
    chan_init(&ab, &b);
    chan_init(&ba, &a);
    ep_init(&a, &ab, 1u << 20);
    ep_init(&b, &ba, 1u << 20);
    ab.drop = ba.drop = drop;
    ab.corrupt = ba.corrupt = corrupt;
    ab.dup = ba.dup = dup;
    ab.reorder = ba.reorder = reorder;
    ab.latency = ba.latency = latency;
    uint8_t *m = pattern(n, (unsigned)n);
    link_send(&a.l, m, n, now);
    size_t minf = a.l.frag;
    for (int t = 0; t < 600000 && !a.sent_done; t++) {
        run(&ab, &ba, &a, &b, 1);
        if (a.l.frag < minf) minf = a.l.frag;
    }
    int ok = a.sent_done && a.sent_ok && b.delivered == 1 && !b.too_large && b.got_len == n &&
             memcmp(b.got, m, n) == 0;
    if (sender_stats) *sender_stats = a.l.stats;
    if (min_frag) *min_frag = minf;
    free(m);
    free(ab.q);
    free(ba.q);
    ep_free(&a);
    ep_free(&b);
    return ok;
}

/* Decodes the last frame an end wrote. */
static int last_frame(const ep *e, uint8_t *type, uint8_t *flags, uint8_t *seq, uint32_t *off) {
    uint8_t raw[LINK_FRAME_MAX];
    size_t n;
    if (e->last_len < 2 || cobs_decode(e->last, e->last_len - 1, raw, sizeof raw, &n) != 0)
        return -1;
    *type = raw[1];
    *flags = raw[2];
    *seq = raw[3];
    *off = ((uint32_t)raw[4] << 24) | ((uint32_t)raw[5] << 16) | ((uint32_t)raw[6] << 8) | raw[7];
    return 0;
}

static void feed(ep *e, uint8_t type, uint8_t flags, uint8_t seq, uint32_t off, const uint8_t *p,
                 size_t n) {
    uint8_t f[LINK_ENCODED_MAX + 1];
    size_t len = link_encode_frame(f, sizeof f, type, flags, seq, off, p, n);
    link_input(&e->l, f, len, now);
}

/* A raw frame (before COBS), encoded and fed as is. */
static void feed_raw(ep *e, const uint8_t *raw, size_t n) {
    uint8_t f[2 * LINK_ENCODED_MAX];
    size_t len = cobs_encode(raw, n, f, sizeof f - 1);
    f[len++] = 0;
    link_input(&e->l, f, len, now);
}

static void test_receiver_rules(void) {
    ep r;
    ep_init(&r, NULL, 100);
    uint8_t t, fl, sq;
    uint32_t off;
    const uint8_t *hello = (const uint8_t *)"hello world";

    /* A fragment of an unknown message that does not start at 0: NAK(seq, 0). */
    feed(&r, LT_DATA, 0, 7, 5, hello, 3);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_NAK && sq == 7 && off == 0);
    CHECK_EQ(r.delivered, 0);

    /* In order: ACK(got). */
    feed(&r, LT_DATA, 0, 7, 0, hello, 5);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_ACK && sq == 7 && off == 5 && fl == 0);
    /* A gap: NAK(got). */
    feed(&r, LT_DATA, 0, 7, 8, hello + 8, 3);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_NAK && off == 5);
    /* A duplicate: ACK(got), nothing appended. */
    feed(&r, LT_DATA, 0, 7, 0, hello, 3);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_ACK && off == 5);
    /* Overlapping the end of what we hold (another fragment size): the rest is taken. */
    feed(&r, LT_DATA, 0, 7, 3, hello + 3, 5);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_ACK && off == 8);
    /* The last fragment: delivered, ACK with FIN. */
    feed(&r, LT_DATA, LF_FIN, 7, 8, hello + 8, 3);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_ACK && (fl & LF_FIN) && off == 11);
    CHECK(r.delivered == 1 && r.got_len == 11 && memcmp(r.got, hello, 11) == 0);
    /* A retransmission of the delivered message: ACK FIN again, not delivered twice. */
    feed(&r, LT_DATA, LF_FIN, 7, 8, hello + 8, 3);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_ACK && (fl & LF_FIN) && off == 11);
    CHECK_EQ(r.delivered, 1);

    /* An empty message: one DATA with FIN and no payload. */
    feed(&r, LT_DATA, LF_FIN, 8, 0, NULL, 0);
    CHECK(r.delivered == 2 && r.got_len == 0);

    /* A new message abandons an incomplete one. */
    feed(&r, LT_DATA, 0, 9, 0, hello, 4);
    feed(&r, LT_DATA, LF_FIN, 10, 0, hello, 2);
    CHECK(r.delivered == 3 && r.got_len == 2);

    /* Too large (limit 100): ACK with FIN at what was held, delivered as too large. */
    uint8_t big[LINK_PAYLOAD_MAX];
    memset(big, 'x', sizeof big);
    feed(&r, LT_DATA, 0, 11, 0, big, 60);
    feed(&r, LT_DATA, 0, 11, 60, big, 60);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_ACK && (fl & LF_FIN) && off == 60);
    CHECK(r.delivered == 4 && r.too_large);
    feed(&r, LT_DATA, 0, 11, 120, big, 60); /* the sender did not stop yet: FIN again */
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_ACK && (fl & LF_FIN));
    CHECK_EQ(r.delivered, 4);

    /* Held back: a receiver that cannot take a message leaves its FIN unacknowledged. */
    r.accept = 0;
    unsigned w = r.writes;
    feed(&r, LT_DATA, LF_FIN, 12, 0, hello, 5);
    CHECK_EQ(r.writes, w);
    CHECK_EQ(r.delivered, 4);
    r.accept = 1;
    feed(&r, LT_DATA, LF_FIN, 12, 0, hello, 5);
    CHECK(r.delivered == 5 && r.got_len == 5);

    /* Dropped frames: each counted; while a message is being received, one NAK each. */
    feed(&r, LT_DATA, 0, 13, 0, hello, 4);
    uint64_t dropped = r.l.stats.frames_dropped, naks = r.l.stats.naks_sent;
    uint8_t raw[LINK_FRAME_MAX + 8];
    size_t n = 0;
    raw[0] = 1, raw[1] = LT_DATA, raw[2] = 0, raw[3] = 13;
    memset(raw + 4, 0, 4);
    memcpy(raw + 8, hello, 4);
    uint32_t crc = crc32_update(0, raw, 12);
    memcpy(raw + 12, &crc, 4); /* little-endian host assumed by this test */
    raw[13] ^= 1;              /* bad CRC */
    feed_raw(&r, raw, 16);
    raw[13] ^= 1;
    raw[0] = 2; /* wrong version (CRC recomputed) */
    crc = crc32_update(0, raw, 12);
    memcpy(raw + 12, &crc, 4);
    feed_raw(&r, raw, 16);
    raw[0] = 1, raw[1] = 9; /* unknown type */
    crc = crc32_update(0, raw, 12);
    memcpy(raw + 12, &crc, 4);
    feed_raw(&r, raw, 16);
    raw[1] = LT_DATA, raw[2] = 0x80; /* reserved flag */
    crc = crc32_update(0, raw, 12);
    memcpy(raw + 12, &crc, 4);
    feed_raw(&r, raw, 16);
    raw[2] = 0;
    feed_raw(&r, raw, 11); /* shorter than 12 */
    raw[1] = LT_ACK;       /* ACK with a payload */
    crc = crc32_update(0, raw, 12);
    memcpy(raw + 12, &crc, 4);
    feed_raw(&r, raw, 16);
    static uint8_t huge[LINK_FRAME_MAX + 100];
    memset(huge, 0x41, sizeof huge); /* longer than 1036 */
    feed_raw(&r, huge, sizeof huge);
    link_input(&r.l, (const uint8_t *)"\x03\x00", 2, now); /* bad COBS (block past end) */
    n = 7 + 1;
    CHECK_EQ(r.l.stats.frames_dropped - dropped, n);
    CHECK_EQ(r.l.stats.naks_sent - naks, n);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_NAK && sq == 13 && off == 4);
    /* Empty frames are padding, not drops. */
    link_input(&r.l, (const uint8_t *)"\x00\x00\x00", 3, now);
    CHECK_EQ(r.l.stats.frames_dropped - dropped, n);
    /* Between messages a dropped frame may have been the next message's first fragment:
     * NAK(next seq, 0). */
    feed(&r, LT_DATA, LF_FIN, 13, 4, hello + 4, 1);
    CHECK(r.delivered == 6);
    link_input(&r.l, (const uint8_t *)"\x03\x00", 2, now);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_NAK && sq == 14 && off == 0);

    /* RESET: reset, answer with REPLY; the next message numbers from anything at offset 0. */
    feed(&r, LT_RESET, 0, 0, 0, NULL, 0);
    CHECK(last_frame(&r, &t, &fl, &sq, &off) == 0 && t == LT_RESET && (fl & LF_REPLY));
    CHECK_EQ(r.resets, 1);
    CHECK_EQ(r.l.rx_active, 0);
    feed(&r, LT_BUSY, 0, 0, 0, (const uint8_t *)"\x01", 1);
    CHECK_EQ(r.busy, 1);
    feed(&r, LT_BUSY, 0, 0, 0, (const uint8_t *)"\x01\x02", 2); /* BUSY has one byte */
    CHECK_EQ(r.busy, 1);
    ep_free(&r);
}

static void test_sender_rules(void) {
    ep s;
    ep_init(&s, NULL, 100);
    uint8_t *m = pattern(3000, 1);
    link_send(&s.l, m, 3000, now);
    /* The window: at most 4096 bytes, with 256-byte fragments all 3000 go out at once. */
    CHECK_EQ(s.l.tx_sent, 3000);
    CHECK_EQ(link_send(&s.l, m, 10, now), -1); /* one message at a time */
    /* An ACK moves the acknowledged point forward, never back. */
    feed(&s, LT_ACK, 0, 0, 1000, NULL, 0);
    CHECK_EQ(s.l.tx_acked, 1000);
    feed(&s, LT_ACK, 0, 0, 500, NULL, 0);
    CHECK_EQ(s.l.tx_acked, 1000);
    /* ACKs for another message are ignored. */
    feed(&s, LT_ACK, 0, 5, 2000, NULL, 0);
    CHECK_EQ(s.l.tx_acked, 1000);
    /* A NAK: back to the acknowledged point, half the fragment size. */
    size_t frag = s.l.frag;
    feed(&s, LT_NAK, 0, 0, 1200, NULL, 0);
    CHECK_EQ(s.l.tx_acked, 1200);
    CHECK_EQ(s.l.frag, frag / 2);
    /* The same NAK again (one per frame after the gap): no second rewind. The abandoned
     * flight held 8 frames past 1200 (ends 1280 ... 3000): the one holding byte 1200 was lost,
     * the 7 after it each draw one more NAK for 1200. */
    uint64_t rt = s.l.stats.retransmissions;
    for (int i = 0; i < 7; i++) feed(&s, LT_NAK, 0, 0, 1200, NULL, 0);
    CHECK_EQ(s.l.stats.retransmissions, rt);
    /* One more NAK for the same point: the retransmission was lost too; go back at once
     * rather than after the doubled timer. */
    feed(&s, LT_NAK, 0, 0, 1200, NULL, 0);
    CHECK_EQ(s.l.stats.retransmissions, rt + 1);
    CHECK_EQ(s.l.tx_acked, 1200);
    /* FIN with L: complete. */
    feed(&s, LT_ACK, LF_FIN, 0, 3000, NULL, 0);
    CHECK(s.sent_done && s.sent_ok);
    /* A peer that refuses (FIN short of L): complete, not ok. */
    s.sent_done = 0;
    link_send(&s.l, m, 3000, now);
    CHECK_EQ(s.l.tx_seq, 1);
    /* A damaged frame while fragments are in flight is taken for a lost ACK or NAK: back to
     * the acknowledged point at once; the old flight's NAKs are then absorbed as after a NAK. */
    rt = s.l.stats.retransmissions;
    static const uint8_t noise[] = {0x05, 0x11, 0x22, 0x33, 0x44, 0x00};
    link_input(&s.l, noise, sizeof noise, now);
    CHECK_EQ(s.l.stats.frames_dropped, 1);
    CHECK_EQ(s.l.stats.retransmissions, rt + 1);
    feed(&s, LT_NAK, 0, 1, 0, NULL, 0);
    CHECK_EQ(s.l.stats.retransmissions, rt + 1);
    feed(&s, LT_ACK, LF_FIN, 1, 256, NULL, 0);
    CHECK(s.sent_done && !s.sent_ok);
    /* Nobody answers: 12 timeouts in a row, then it gives up, within about 10 s. */
    s.sent_done = 0;
    uint64_t start = now;
    link_send(&s.l, m, 100, now);
    while (!s.sent_done && now - start < 60000) link_tick(&s.l, ++now);
    CHECK(s.sent_done && !s.sent_ok);
    CHECK(now - start < 12000);
    CHECK_EQ(s.l.frag, LINK_FRAG_MIN);
    CHECK_EQ(s.l.rto, LINK_RTO_MAX);
    free(m);
    ep_free(&s);
}

static void test_transfers(void) {
    static const size_t sizes[] = {0, 1, 255, 256, 257, 1024, 4096, 5000, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        CHECK(transfer(sizes[i], 0, 0, 0, 0, 2, NULL, NULL));
    link_stats st;
    size_t minf;
    /* Loss: retransmissions, and the fragment size shrinks. */
    CHECK(transfer(60000, 100, 0, 0, 0, 3, &st, &minf));
    CHECK(st.retransmissions > 0);
    CHECK(minf < LINK_FRAG_INITIAL);
    /* Corruption: frames fail their CRC or COBS and are dropped; NAKs bring them back. */
    CHECK(transfer(60000, 0, 100, 0, 0, 3, &st, NULL));
    CHECK(st.retransmissions > 0);
    /* Duplicates and reordering. */
    CHECK(transfer(60000, 0, 0, 200, 0, 3, NULL, NULL));
    CHECK(transfer(60000, 0, 0, 0, 200, 3, NULL, NULL));
    /* All at once, with a long round trip. */
    CHECK(transfer(30000, 50, 50, 50, 50, 150, &st, NULL));
    /* Very lossy: still gets there. */
    CHECK(transfer(20000, 300, 0, 0, 0, 5, NULL, NULL));
}

static void test_adaptation(void) {
    ep a, b;
    chan ab, ba;
    chan_init(&ab, &b);
    chan_init(&ba, &a);
    ep_init(&a, &ab, 1u << 20);
    ep_init(&b, &ba, 1u << 20);
    /* A clean line: the fragment size doubles after 16 clean fragments, up to 1024. */
    ab.latency = ba.latency = 1;
    uint8_t *m = pattern(200000, 3);
    link_send(&a.l, m, 200000, now);
    while (!a.sent_done) run(&ab, &ba, &a, &b, 1);
    CHECK(a.sent_ok);
    CHECK_EQ(a.l.frag, LINK_FRAG_MAX);
    /* The timeout follows the round trip: short line, floor of 20 ms. */
    CHECK(a.l.rto >= LINK_RTO_MIN && a.l.rto < 100);
    /* A slow line (300 ms each way): the timeout grows above the round trip. */
    ab.latency = ba.latency = 300;
    a.sent_done = 0;
    link_send(&a.l, m, 20000, now);
    while (!a.sent_done) run(&ab, &ba, &a, &b, 1);
    CHECK(a.sent_ok);
    CHECK(a.l.rto > 600 && a.l.rto <= LINK_RTO_MAX);

    /* A RESET in the middle of a message: both ends start over at seq 0. */
    ab.latency = ba.latency = 1;
    a.sent_done = 0;
    link_send(&a.l, m, 100000, now);
    run(&ab, &ba, &a, &b, 5);
    link_reset(&a.l);
    link_send_reset(&a.l, 0);
    run(&ab, &ba, &a, &b, 20);
    CHECK_EQ(b.resets, 1);
    CHECK_EQ(a.reset_replies, 1);
    ab.n = ba.n = 0;
    unsigned before = b.delivered;
    link_send(&a.l, m, 777, now);
    CHECK_EQ(a.l.tx_seq, 0);
    while (!a.sent_done) run(&ab, &ba, &a, &b, 1);
    CHECK(a.sent_ok && b.delivered == before + 1 && b.got_len == 777);

    /* Backpressure: a receiver that holds back completes once it can. */
    b.accept = 0;
    a.sent_done = 0;
    link_send(&a.l, m, 600, now);
    run(&ab, &ba, &a, &b, 300);
    CHECK(!a.sent_done);
    b.accept = 1;
    while (!a.sent_done) run(&ab, &ba, &a, &b, 1);
    CHECK(a.sent_ok && b.got_len == 600);
    free(m);
    free(ab.q);
    free(ba.q);
    ep_free(&a);
    ep_free(&b);
}

int main(void) {
    test_receiver_rules();
    test_sender_rules();
    test_transfers();
    test_adaptation();
    return check_report("test_link");
}
