/*
 * Fuzz target for the appliance firmware: arbitrary bytes into the frame decoder and link
 * receiver, the call CBOR reader and the dispatcher, with the AUM/NKS readers behind the
 * signing calls. The device is booted once on the in-memory board, set up, given a lock key and
 * enrolled in a genesis that also trusts a harness key K; each input starts from that flash
 * image (boot + unlock), so runs are reproducible.
 *
 * Invariants checked (abort on violation): every frame the device writes is a valid frame;
 * every reply the host receives is a CBOR map with an id (uint or null) and exactly one of
 * result / error{code 1..17, message text}; the device never leaves a call pending after the
 * input's button presses and time have run out.
 *
 * The first byte selects the mode:
 *   0  raw serial bytes, fed in chunks
 *   1  one request message (properly framed); byte 1 chooses how the person answers
 *   2  a script: [op][len][data…] (0 message, 1 yes, 2 no, 3 sleep data[0]×100 ms, 4 RESET,
 *      5 raw serial bytes, 6 status, 7 cancel)
 *   3  a template call: byte 1 = template (low 3 bits) and answer (high bits), the rest the
 *      payload, in which 32×0xEE becomes the device's key, 32×0xDD its head, 32×0xBB K's key,
 *      and 64×0xCC K's signature over the payload's AUM sighash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "aum_reader.h"
#include "blake2s.h"
#include "cbor.h"
#include "cobs.h"
#include "crc32.h"
#include "device.h"
#include "link.h"
#include "mem_board.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static device dev;
static board brd;
static host_peer peer;
static uint8_t *snapshot;
static size_t snapshot_len;
static uint64_t snapshot_now;
static uint8_t rng_snapshot[32];
static uint8_t dev_pk[32], k_pk[32], k_sk[64], head[32];
static int ready;

static void die(const char *why) {
    fprintf(stderr, "fuzz_firmware: invariant broken: %s\n", why);
    abort();
}

/* Every write of the device is exactly one valid frame. */
static void check_frame(const uint8_t *b, size_t n) {
    uint8_t raw[LINK_FRAME_MAX];
    size_t rl;
    if (n < 2 || b[n - 1] != 0 || memchr(b, 0, n - 1) != NULL) die("a write that is not one frame");
    if (cobs_decode(b, n - 1, raw, sizeof raw, &rl) != 0) die("a frame that is not COBS");
    if (rl < LINK_FRAME_MIN || rl > LINK_FRAME_MAX) die("a frame of bad length");
    uint32_t crc = (uint32_t)raw[rl - 4] | ((uint32_t)raw[rl - 3] << 8) |
                   ((uint32_t)raw[rl - 2] << 16) | ((uint32_t)raw[rl - 1] << 24);
    if (crc32_update(0, raw, rl - 4) != crc) die("a frame with a bad CRC");
    if (raw[0] != LINK_VERSION || raw[1] < LT_DATA || raw[1] > LT_ALIVE || (raw[2] & ~3))
        die("a frame with a bad header");
}

static unsigned checked_replies;

/* Every reply is well-formed. */
static void check_replies(void) {
    if (peer.replies == checked_replies) return;
    checked_replies = peer.replies;
    if (cbor_check(peer.reply, peer.reply_len, NULL) != 0) die("a reply that is not valid CBOR");
    cbor_item m = {peer.reply, peer.reply_len}, id, r, e, c, msg;
    if (cbor_type(m) != CB_MAP) die("a reply that is not a map");
    if (!cbor_map_find(m, "id", &id) || (cbor_type(id) != CB_UINT && cbor_type(id) != CB_NULL))
        die("a reply without an id");
    int has_r = cbor_map_find(m, "result", &r), has_e = cbor_map_find(m, "error", &e);
    if (has_r == has_e || cbor_count(m) != 2) die("a reply without exactly one of result/error");
    if (getenv("FUZZ_FIRMWARE_DEBUG") != NULL) {
        uint64_t code = 0;
        if (has_e && cbor_map_find(e, "code", &c)) cbor_uint(c, &code);
        fprintf(stderr, "  reply: %s %llu\n", has_e ? "error" : "result", (unsigned long long)code);
        if (has_e && cbor_map_find(e, "message", &msg)) {
            const uint8_t *t;
            size_t tn;
            cbor_text(msg, &t, &tn);
            fprintf(stderr, "         %.*s\n", (int)tn, (const char *)t);
        }
    }
    if (has_e) {
        uint64_t code;
        if (!cbor_map_find(e, "code", &c) || cbor_uint(c, &code) != 0 || code < 1 || code > 17)
            die("an error without a valid code");
        if (!cbor_map_find(e, "message", &msg) || cbor_type(msg) != CB_TEXT)
            die("an error without a message");
    }
}

static void pump(void) {
    peer_pump(&peer);
    check_replies();
}

static void sleep_ms(uint64_t ms, int alive) {
    for (uint64_t t = 0; t < ms; t += 100) {
        peer_sleep(&peer, 100);
        if (alive && t % 1000 == 900) {
            link_send_alive(&peer.link);
            pump();
        }
        check_replies();
    }
}

static void send_msg(const uint8_t *m, size_t n) {
    if (link_tx_busy(&peer.link)) sleep_ms(2000, 1);
    if (link_tx_busy(&peer.link)) return;
    peer_send(&peer, m, n); /* copies: the link resends from its own buffer */
    check_replies();
}

static size_t request(uint8_t *out, size_t cap, const char *method, const uint8_t *params,
                      size_t plen) {
    return peer_request(&peer, out, cap, method, params, plen);
}

static void simple_call(const char *method) {
    uint8_t req[64];
    size_t n = request(req, sizeof req, method, NULL, 0);
    send_msg(req, n);
}

/* How the person (and the host) answer a pending call. */
static void answer(unsigned how) {
    for (int round = 0; round < 3 && device_confirming(&dev); round++) {
        switch (how % 8) {
        case 0:
        case 1: device_button(&dev, 1); break;
        case 2: device_button(&dev, 0); break;
        case 3: sleep_ms(92000, 1); break;            /* the person never answers */
        case 4: simple_call("cancel"); break;
        case 5: peer_reset(&peer); break;
        case 6: sleep_ms(11000, 0); break;            /* the host goes silent */
        default: simple_call("status"); device_button(&dev, 1); break;
        }
        pump();
        how >>= 3;
    }
    sleep_ms(300, 1);
}

/* ---- set-up once ---- */

static void call_params(const char *method, const cbor_writer *w, int yes) {
    static uint8_t req[1 << 14];
    size_t n = request(req, sizeof req, method, w->buf, w->len);
    send_msg(req, n);
    if (yes && device_confirming(&dev)) {
        device_button(&dev, 1);
        pump();
    }
    sleep_ms(200, 1);
}

static size_t genesis(uint8_t *out, size_t cap, const uint8_t *sig) {
    cbor_writer w;
    uint8_t dis[32];
    memset(dis, 0xd1, 32);
    cw_init(&w, out, cap);
    cw_map(&w, sig ? 4 : 3);
    cw_uint(&w, 1), cw_uint(&w, 5), cw_uint(&w, 2), cw_null(&w), cw_uint(&w, 5);
    cw_map(&w, 5);
    cw_uint(&w, 1), cw_null(&w);
    cw_uint(&w, 2), cw_array(&w, 1), cw_bytes(&w, dis, 32);
    cw_uint(&w, 3), cw_array(&w, 2);
    cw_map(&w, 3), cw_uint(&w, 1), cw_uint(&w, 1), cw_uint(&w, 2), cw_uint(&w, 1), cw_uint(&w, 3),
        cw_bytes(&w, dev_pk, 32);
    cw_map(&w, 3), cw_uint(&w, 1), cw_uint(&w, 1), cw_uint(&w, 2), cw_uint(&w, 2), cw_uint(&w, 3),
        cw_bytes(&w, k_pk, 32);
    cw_uint(&w, 4), cw_uint(&w, 1111), cw_uint(&w, 5), cw_uint(&w, 2222);
    if (sig) {
        cw_uint(&w, 23), cw_array(&w, 1), cw_map(&w, 2);
        cw_uint(&w, 1), cw_bytes(&w, k_pk, 32), cw_uint(&w, 2), cw_bytes(&w, sig, 64);
    }
    return w.len;
}

static void unlock(void) {
    uint8_t p[32];
    cbor_writer w;
    cw_init(&w, p, sizeof p);
    cw_map(&w, 1), cw_text(&w, "pin"), cw_text(&w, "123456");
    call_params("unlock", &w, 0);
}

static void boot_device(void) {
    dev.board_name = "fuzz";
    dev.kdf_opslimit = 1;
    dev.kdf_memlimit = 8192;
    dev_error err;
    if (device_boot(&dev, &brd, &err) != 0) die("the device did not boot");
    peer_init(&peer, &dev, &brd);
    checked_replies = 0;
    peer_reset(&peer);
}

static void init(void) {
    if (sodium_init() < 0) die("libsodium");
    mem_board_init(&brd, 4242);
    brd.serial_hook = check_frame;
    boot_device();
    uint8_t buf[256];
    cbor_writer w;
    cw_init(&w, buf, sizeof buf);
    cw_map(&w, 1), cw_text(&w, "pin"), cw_text(&w, "123456");
    call_params("setup", &w, 1);
    cw_init(&w, buf, sizeof buf);
    cw_map(&w, 1), cw_text(&w, "name"), cw_text(&w, "lock");
    call_params("generate_key", &w, 1);
    if (dev.state != DEV_UNLOCKED || dev.v->n_keys != 1) die("set-up failed");
    memcpy(dev_pk, dev.v->keys[0].pk, 32);
    uint8_t seed[32];
    memset(seed, 1, 32);
    crypto_sign_seed_keypair(k_pk, k_sk, seed);
    static uint8_t g[512], gs[512];
    size_t gl = genesis(g, sizeof g, NULL);
    uint8_t sh[32], sig[64];
    blake2s_ctx c;
    blake2s_init(&c);
    blake2s_update(&c, g, gl);
    blake2s_final(&c, sh);
    crypto_sign_detached(sig, NULL, sh, 32, k_sk);
    size_t gsl = genesis(gs, sizeof gs, sig);
    static uint8_t pbuf[1024];
    cw_init(&w, pbuf, sizeof pbuf);
    cw_map(&w, 1), cw_text(&w, "aum"), cw_bytes(&w, gs, gsl);
    call_params("enroll", &w, 1);
    if (!authority_is_enrolled(&dev.authority)) die("enrollment failed");
    memcpy(head, authority_head(&dev.authority), 32);
    snapshot = malloc(brd.flash_len);
    memcpy(snapshot, brd.flash, brd.flash_len);
    snapshot_len = brd.flash_len;
    snapshot_now = brd.now_ms;
    memcpy(rng_snapshot, brd.rng_state, 32);
    ready = 1;
}

static void restore(void) {
    device_shutdown(&dev);
    peer_free(&peer);
    mem_board_set_flash(&brd, snapshot, snapshot_len);
    brd.now_ms = snapshot_now;
    memcpy(brd.rng_state, rng_snapshot, 32);
    brd.fail_writes = 0;
    brd.screen_pending = 0;
    boot_device();
    unlock();
    if (dev.state != DEV_UNLOCKED) die("unlock failed");
}

/* ---- templates ---- */

static void subst_keys(uint8_t *p, size_t n) {
    for (size_t i = 0; i + 32 <= n; i++) {
        int run = 1;
        uint8_t b = p[i];
        if (b != 0xee && b != 0xdd && b != 0xbb && b != 0xcc) continue;
        size_t need = b == 0xcc ? 64 : 32;
        if (i + need > n) continue;
        for (size_t k = 1; k < need && run; k++) run = p[i + k] == b;
        if (!run) continue;
        if (b == 0xee) memcpy(p + i, dev_pk, 32);
        else if (b == 0xdd) memcpy(p + i, head, 32);
        else if (b == 0xbb) memcpy(p + i, k_pk, 32);
        else continue; /* signatures after everything else is in place */
        i += need - 1;
    }
}

static void subst_sigs(uint8_t *p, size_t n) {
    static tka_aum aum;
    for (size_t i = 0; i + 64 <= n; i++) {
        size_t k = 0;
        while (k < 64 && p[i + k] == 0xcc) k++;
        if (k < 64) continue;
        /* Sign what the AUM's sighash would be with a zero signature there. */
        memset(p + i, 0, 64);
        if (tka_aum_read(p, n, &aum)) {
            uint8_t sh[32];
            tka_aum_sig_hash(p, n, &aum, sh);
            crypto_sign_detached(p + i, NULL, sh, 32, k_sk);
        }
        i += 63;
    }
}

/* Splits payload into items by 2-byte big-endian length prefixes. */
static size_t split(const uint8_t *p, size_t n, tka_span *out, size_t max) {
    size_t k = 0, pos = 0;
    while (pos + 2 <= n && k < max) {
        size_t l = ((size_t)p[pos] << 8) | p[pos + 1];
        pos += 2;
        if (l > n - pos) l = n - pos;
        out[k].ptr = p + pos;
        out[k].len = l;
        k++;
        pos += l;
    }
    return k;
}

static void template_call(unsigned t, uint8_t *p, size_t n) {
    static uint8_t params[1 << 17], req[(1 << 17) + 256];
    static tka_span items[64];
    cbor_writer w;
    cw_init(&w, params, sizeof params);
    const char *method;
    subst_keys(p, n);
    if (t != 3 && t != 4) subst_sigs(p, n);
    switch (t) {
    case 0:
        method = "sign_nks";
        cw_map(&w, 3), cw_text(&w, "key"), cw_text(&w, "lock");
        cw_text(&w, "nks"), cw_bytes(&w, p, n), cw_text(&w, "head"), cw_bytes(&w, head, 32);
        break;
    case 1:
        method = "sign_aum";
        cw_map(&w, 2), cw_text(&w, "key"), cw_text(&w, "lock"), cw_text(&w, "aum"), cw_bytes(&w, p, n);
        break;
    case 2:
        method = "enroll";
        cw_map(&w, 2), cw_text(&w, "aum"), cw_bytes(&w, p, n), cw_text(&w, "replace"), cw_bool(&w, 1);
        break;
    case 3: {
        method = "authority_update";
        size_t k = split(p, n, items, 64);
        for (size_t i = 0; i < k; i++) subst_sigs((uint8_t *)items[i].ptr, items[i].len);
        cw_map(&w, 1), cw_text(&w, "aums"), cw_array(&w, k);
        for (size_t i = 0; i < k; i++) cw_bytes(&w, items[i].ptr, items[i].len);
        break;
    }
    case 4: {
        method = "sign_batch";
        size_t k = split(p, n, items, 64);
        cw_map(&w, 3), cw_text(&w, "key"), cw_text(&w, "lock"), cw_text(&w, "head");
        cw_bytes(&w, head, 32), cw_text(&w, "items"), cw_array(&w, k);
        for (size_t i = 0; i < k; i++) cw_bytes(&w, items[i].ptr, items[i].len);
        break;
    }
    case 5: {
        method = "sign_nks";
        size_t cut = 0;
        while (cut < n && p[cut] != 0) cut++;
        char link[1024];
        size_t ll = 0;
        for (size_t i = cut + 1; i < n && ll < sizeof link; i++) link[ll++] = (char)(0x20 + p[i] % 95);
        cw_map(&w, 4), cw_text(&w, "key"), cw_text(&w, "lock"), cw_text(&w, "nks"), cw_bytes(&w, p, cut);
        cw_text(&w, "head"), cw_bytes(&w, head, 32), cw_text(&w, "deeplink"), cw_textn(&w, link, ll);
        break;
    }
    case 6:
        method = "set_policy";
        cw_map(&w, 1), cw_text(&w, "policy"), cw_raw(&w, p, n);
        break;
    default:
        method = "audit_log";
        cw_raw(&w, p, n);
        break;
    }
    if (w.overflow) return;
    size_t rl = request(req, sizeof req, method, params, w.len);
    send_msg(req, rl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    if (!ready) init();
    if (len < 1 || len > (1u << 16)) return 0;
    restore();
    static uint8_t buf[1u << 16];
    unsigned mode = data[0] % 4;
    const uint8_t *p = data + 1;
    size_t n = len - 1;
    if (mode == 0) {
        size_t pos = 0, chunk = 1;
        while (pos < n) {
            size_t k = chunk < n - pos ? chunk : n - pos;
            device_serial_input(&dev, p + pos, k);
            pump();
            pos += k;
            chunk = (chunk * 7 + 3) % 97 + 1;
        }
        sleep_ms(500, 1);
        answer(0);
    } else if (mode == 1) {
        unsigned how = n > 0 ? p[0] : 0;
        if (n > 0) send_msg(p + 1, n - 1);
        answer(how);
    } else if (mode == 2) {
        size_t pos = 0;
        while (pos + 2 <= n) {
            unsigned op = p[pos] % 8;
            size_t l = p[pos + 1];
            pos += 2;
            if (l > n - pos) l = n - pos;
            const uint8_t *d = p + pos;
            pos += l;
            switch (op) {
            case 0: send_msg(d, l); break;
            case 1: device_button(&dev, 1); pump(); break;
            case 2: device_button(&dev, 0); pump(); break;
            case 3: sleep_ms((uint64_t)(l ? d[0] : 1) * 100, 1); break;
            case 4: peer_reset(&peer); check_replies(); break;
            case 5: device_serial_input(&dev, d, l); pump(); break;
            case 6: simple_call("status"); break;
            default: simple_call("cancel"); break;
            }
        }
        answer(2);
    } else {
        if (n < 1) return 0;
        memcpy(buf, p + 1, n - 1);
        template_call(p[0] & 7, buf, n - 1);
        answer(p[0] >> 3);
    }
    /* Nothing may be left waiting for a person who has gone. */
    if (device_confirming(&dev)) {
        sleep_ms(11000, 0);
        if (device_confirming(&dev)) die("a call still pending after the host went silent");
    }
    return 0;
}
