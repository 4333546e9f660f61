/* The device through its serial line (docs/appliance.md §2): boot and the flash, the request envelope, set-up,
 * unlock and the PIN counter, the pending confirmation (status, cancel, busy, timeouts, host
 * silence, RESET), policy, auto-lock, force-audit, wipe, and flash failures. */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fw_test.h"
#include "store.h"

static fx_params P;

static void pin_params(const char *pin) {
    fx_params_begin(&P, 1);
    fx_text(&P, "pin", pin);
}

static int unlock(const char *pin) {
    pin_params(pin);
    CHECK(fx_callp("unlock", &P.w, -1) == 0);
    return fx_code();
}

static int gen_key(const char *name, int answer) {
    fx_params_begin(&P, 1);
    fx_text(&P, "name", name);
    CHECK(fx_callp("generate_key", &P.w, answer) == 0);
    return fx_code();
}

static uint64_t info_uint(const char *key) {
    uint64_t v = 0;
    CHECK(fx_call("info", -1) == 0);
    CHECK(fx_result_uint(key, &v) == 0);
    return v;
}

static int info_state_is(const char *s) {
    CHECK(fx_call("info", -1) == 0);
    return fx_result_text_is("state", s);
}

static int image_retries(void) {
    store_image img;
    audit_log lg;
    const char *why;
    if (store_decode(fx_board.flash, fx_board.flash_len, DEV_SEAL_MAX, &img, &lg, &why) != 0) return -1;
    return (int)img.pin_retries;
}

static void test_boot(void) {
    fx_boot(1, 0);
    CHECK(fx_board.flash != NULL && fx_board.flash_writes == 1);
    CHECK(info_state_is("blank"));
    cbor_item id;
    CHECK(reply_field(&fx_peer, "identity", &id) == 0);
    uint8_t ident[32];
    const uint8_t *p;
    size_t n;
    CHECK(cbor_bytes(id, &p, &n) == 0 && n == 32);
    memcpy(ident, p, 32);
    CHECK(fx_result_text_is("board", "mem") && fx_result_text_is("firmware", FW_VERSION));
    CHECK_EQ(info_uint("max_message"), DEV_MAX_MESSAGE);
    CHECK_EQ(info_uint("protocol"), 1);
    int enrolled;
    CHECK(fx_result_bool("enrolled", &enrolled) == -1); /* only when unlocked */
    /* The identity survives a power cycle. */
    CHECK(fx_reboot() == 0);
    CHECK(fx_call("info", -1) == 0 && reply_field(&fx_peer, "identity", &id) == 0);
    CHECK(cbor_bytes(id, &p, &n) == 0 && memcmp(p, ident, 32) == 0);
    /* A corrupt image stops the boot and is left exactly as it was. */
    uint8_t *saved = malloc(fx_board.flash_len);
    size_t saved_len = fx_board.flash_len;
    memcpy(saved, fx_board.flash, saved_len);
    fx_board.flash[40] ^= 1;
    memcpy(saved, fx_board.flash, saved_len); /* the corrupt image, as it is now */
    unsigned writes = fx_board.flash_writes;
    device_shutdown(&fx_dev);
    dev_error err;
    CHECK(device_boot(&fx_dev, &fx_board, &err) != 0);
    CHECK(strstr(err.message, "corrupt") != NULL && strchr(err.message, '\n') == NULL);
    CHECK_EQ(fx_board.flash_writes, writes);
    CHECK(fx_board.flash_len == saved_len && memcmp(fx_board.flash, saved, saved_len) == 0);
    fx_board.flash[40] ^= 1;
    /* An unreadable flash too. */
    fx_board.fail_reads = 1;
    CHECK(device_boot(&fx_dev, &fx_board, &err) != 0);
    fx_board.fail_reads = 0;
    free(saved);
    CHECK(device_boot(&fx_dev, &fx_board, &err) == 0);
    device_shutdown(&fx_dev);
    /* A first boot that cannot write its flash fails instead of running without identity. */
    board b2;
    mem_board_init(&b2, 9);
    b2.fail_writes = 1;
    static device d2;
    CHECK(device_boot(&d2, &b2, &err) != 0);
    mem_board_free(&b2);
    peer_free(&fx_peer);
    mem_board_free(&fx_board);
}

/* Sends raw bytes as one request and returns the reply's code; id_null: the reply's id is null. */
static int raw_call(const uint8_t *msg, size_t len, int *id_null) {
    CHECK(peer_roundtrip(&fx_peer, msg, len, 2000) == 0);
    cbor_item top = {fx_peer.reply, fx_peer.reply_len}, id;
    CHECK(cbor_check(fx_peer.reply, fx_peer.reply_len, NULL) == 0);
    *id_null = cbor_map_find(top, "id", &id) && cbor_type(id) == CB_NULL;
    return fx_code();
}

static void test_envelope(void) {
    fx_boot(2, 0);
    int null_id;
    /* Not CBOR, not a map, no id, a bad id: protocol_error with id null. */
    CHECK(raw_call((const uint8_t *)"\xff", 1, &null_id) == DEV_E_PROTOCOL && null_id);
    CHECK(raw_call((const uint8_t *)"\x01", 1, &null_id) == DEV_E_PROTOCOL && null_id);
    CHECK(raw_call((const uint8_t *)"\xa1\x66method\x64info", 13, &null_id) == DEV_E_PROTOCOL && null_id);
    CHECK(raw_call((const uint8_t *)"\xa2\x62id\x20\x66method\x64info", 17, &null_id) == DEV_E_PROTOCOL && null_id);
    CHECK(raw_call((const uint8_t *)"", 0, &null_id) == DEV_E_PROTOCOL && null_id);
    /* An id but a bad method, params or extra key: answered with the id. */
    CHECK(raw_call((const uint8_t *)"\xa2\x62id\x05\x66method\x01", 13, &null_id) == DEV_E_PROTOCOL && !null_id);
    CHECK(raw_call((const uint8_t *)"\xa3\x62id\x05\x66method\x64info\x66params\x80", 25, &null_id) == DEV_E_PROTOCOL && !null_id);
    CHECK(raw_call((const uint8_t *)"\xa3\x62id\x05\x66method\x64info\x61x\x00", 20, &null_id) == DEV_E_PROTOCOL && !null_id);
    CHECK(raw_call((const uint8_t *)"\xa2\x62id\x05\x66method\x64nope", 17, &null_id) == DEV_E_UNKNOWN_METHOD && !null_id);
    CHECK(raw_call((const uint8_t *)"\xa2\x62id\x05\x66method\x64info", 17, &null_id) == 0 && !null_id);
    /* The id is echoed. */
    uint64_t id = 0;
    cbor_item top = {fx_peer.reply, fx_peer.reply_len}, v;
    CHECK(cbor_map_find(top, "id", &v) && cbor_uint(v, &id) == 0 && id == 5);
    /* Unknown and mistyped parameters, missing ones. */
    fx_params_begin(&P, 1);
    fx_uint(&P, "verbose", 1);
    CHECK(fx_callp("info", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);
    fx_params_begin(&P, 1);
    fx_uint(&P, "pin", 123456);
    CHECK(fx_callp("setup", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);
    fx_params_begin(&P, 0);
    CHECK(fx_callp("setup", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);
    fx_params_begin(&P, 2);
    fx_text(&P, "pin", "123456");
    fx_text(&P, "pn", "123456");
    CHECK(fx_callp("setup", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);
    /* PIN length bounds at set-up. */
    pin_params("12345");
    CHECK(fx_callp("setup", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);
    pin_params("12345678901234567890123456789012345678901234567890123456789012345");
    CHECK(fx_callp("setup", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);
    /* State rules before set-up. */
    CHECK(unlock("123456") == DEV_E_BAD_STATE);
    CHECK(fx_call("list_keys", -1) == 0 && fx_code() == DEV_E_BAD_STATE);
    CHECK(fx_call("get_policy", -1) == 0 && fx_code() == DEV_E_BAD_STATE);
    /* Too large: beyond max_message, answered with too_large and id null. */
    size_t big = DEV_MAX_MESSAGE + 10;
    uint8_t *m = calloc(1, big);
    CHECK(raw_call(m, big, &null_id) == DEV_E_TOO_LARGE && null_id);
    free(m);
    /* And the device still works after it. */
    CHECK(info_state_is("blank"));
    fx_teardown();
}

static void test_setup_unlock(void) {
    fx_boot(3, 0);
    /* Declined set-up: still blank, and the decision is in the log. */
    pin_params("123456");
    CHECK(fx_callp("setup", &P.w, 0) == 0 && fx_code() == DEV_E_DECLINED);
    CHECK(info_state_is("blank"));
    CHECK(mem_board_screen_has(&fx_board, "SET UP"));
    CHECK(strcmp(fx_board.done_verdict, "declined") == 0);
    fx_setup(NULL);
    CHECK(info_state_is("unlocked"));
    int enrolled = 1;
    CHECK(fx_result_bool("enrolled", &enrolled) == 0 && enrolled == 0);
    CHECK_EQ(fx_audit_count("setup", "declined"), 1);
    CHECK_EQ(fx_audit_count("setup", "approved"), 1);
    pin_params("654321");
    CHECK(fx_callp("setup", &P.w, 1) == 0 && fx_code() == DEV_E_BAD_STATE);

    CHECK_EQ(gen_key("ops", 1), 0);
    cbor_item pub, st, att;
    CHECK(reply_field(&fx_peer, "public", &pub) == 0);
    CHECK(reply_field(&fx_peer, "statement", &st) == 0 && reply_field(&fx_peer, "attestation", &att) == 0);
    /* The attestation: the identity's signature over the domain and the statement. */
    const uint8_t *sp, *ap, *pp;
    size_t sn, an, pn;
    cbor_bytes(st, &sp, &sn);
    cbor_bytes(att, &ap, &an);
    cbor_bytes(pub, &pp, &pn);
    uint8_t msg[512];
    memcpy(msg, "tka-appliance attestation v1", 29);
    memcpy(msg + 29, sp, sn);
    CHECK(an == 64 && crypto_sign_verify_detached(ap, msg, 29 + sn, fx_dev.identity_pk) == 0);
    cbor_item sm = {sp, sn}, v;
    CHECK(cbor_check(sp, sn, NULL) == 0);
    CHECK(cbor_map_find(sm, "kind", &v) && cbor_text_is(v, "tka-appliance-key"));
    CHECK(cbor_map_find(sm, "name", &v) && cbor_text_is(v, "ops"));
    const uint8_t *q;
    size_t qn;
    CHECK(cbor_map_find(sm, "public", &v) && cbor_bytes(v, &q, &qn) == 0 && memcmp(q, pp, 32) == 0);
    CHECK(cbor_map_find(sm, "identity", &v) && cbor_bytes(v, &q, &qn) == 0 && memcmp(q, fx_dev.identity_pk, 32) == 0);
    /* The private key never travels: not in this reply, not in list_keys. */
    const vault_key *k = &fx_dev.v->keys[0];
    CHECK(memmem(fx_peer.reply, fx_peer.reply_len, k->seed, 32) == NULL);
    CHECK(memmem(fx_peer.reply, fx_peer.reply_len, k->sk, 32) == NULL);
    CHECK(gen_key("ops", 1) == DEV_E_BAD_STATE); /* names are unique */
    CHECK(gen_key("Bad Name", 1) == DEV_E_PROTOCOL);
    CHECK(gen_key("declined", 0) == DEV_E_DECLINED);
    CHECK(fx_call("list_keys", -1) == 0 && fx_code() == 0);
    cbor_item keys;
    CHECK(reply_field(&fx_peer, "keys", &keys) == 0 && cbor_count(keys) == 1);
    CHECK(memmem(fx_peer.reply, fx_peer.reply_len, k->seed, 32) == NULL);
    /* The seed is not in the flash image in the clear either. */
    CHECK(memmem(fx_board.flash, fx_board.flash_len, k->seed, 32) == NULL);
    uint8_t seed[32];
    memcpy(seed, k->seed, 32);

    /* Lock: the keys leave RAM. */
    CHECK(fx_call("lock", -1) == 0 && fx_code() == 0);
    CHECK(info_state_is("locked"));
    uint8_t zero[64] = {0};
    CHECK(memcmp(fx_dev.v->keys[0].seed, zero, 32) == 0 && memcmp(fx_dev.v->seal_key, zero, 32) == 0);
    CHECK(fx_call("list_keys", -1) == 0 && fx_code() == DEV_E_LOCKED);
    /* A power cycle and unlock bring the key back. */
    CHECK(fx_reboot() == 0);
    CHECK(info_state_is("locked"));
    CHECK_EQ(unlock("123456"), 0);
    CHECK(memcmp(fx_dev.v->keys[0].seed, seed, 32) == 0);
    CHECK(unlock("123456") == DEV_E_BAD_STATE);
    /* PIN change: the old PIN stops working. */
    fx_params_begin(&P, 2);
    fx_text(&P, "pin", "000000");
    fx_text(&P, "new_pin", "abcdefgh");
    CHECK(fx_callp("change_pin", &P.w, 1) == 0 && fx_code() == DEV_E_WRONG_PIN);
    fx_params_begin(&P, 2);
    fx_text(&P, "pin", "123456");
    fx_text(&P, "new_pin", "abcdefgh");
    CHECK(fx_callp("change_pin", &P.w, 1) == 0 && fx_code() == 0);
    CHECK_EQ(info_uint("pin_retries"), 10);
    CHECK(fx_call("lock", -1) == 0);
    CHECK(unlock("123456") == DEV_E_WRONG_PIN);
    CHECK_EQ(unlock("abcdefgh"), 0);
    CHECK(memcmp(fx_dev.v->keys[0].seed, seed, 32) == 0);
    fx_teardown();
}

static void test_pin_counter(void) {
    fx_boot(4, 0);
    fx_setup(NULL);
    CHECK(fx_call("lock", -1) == 0);
    /* A wrong PIN: one attempt fewer, reported and in the flash. */
    CHECK(unlock("999999") == DEV_E_WRONG_PIN);
    uint64_t left = 0;
    CHECK(fx_result_uint("retries", &left) == 0 && left == 9);
    CHECK_EQ(image_retries(), 9);
    /* Counted before checked: cut the power right after the first write of an attempt with
     * the RIGHT PIN; the count is spent anyway. */
    fx_board.cut_armed = 1;
    fx_board.cut_after = 1;
    CHECK_EQ(unlock("123456"), 0);
    fx_board.cut_armed = 0;
    CHECK_EQ(image_retries(), 8);
    CHECK(fx_reboot() == 0);
    CHECK_EQ(info_uint("pin_retries"), 8);
    /* If the decrement cannot be written, the PIN is not tried at all. */
    fx_board.fail_write_at = 1;
    CHECK(unlock("123456") == DEV_E_STORAGE);
    CHECK_EQ(info_uint("pin_retries"), 8);
    CHECK(info_state_is("locked"));
    /* A right PIN resets the counter. */
    CHECK_EQ(unlock("123456"), 0);
    CHECK_EQ(info_uint("pin_retries"), 10);
    CHECK_EQ(image_retries(), 10);
    CHECK_EQ(fx_audit_count("pin", "refused"), 1);
    fx_teardown();
}

static void test_pin_wipe(void) {
    fx_boot(5, 0);
    fx_setup(NULL);
    CHECK_EQ(gen_key("k1", 1), 0);
    uint8_t ident[32];
    memcpy(ident, fx_dev.identity_pk, 32);
    CHECK(fx_call("lock", -1) == 0);
    for (int i = 0; i < 9; i++) CHECK(unlock("000000") == DEV_E_WRONG_PIN);
    uint64_t left = 99;
    CHECK(fx_result_uint("retries", &left) == 0 && left == 1);
    CHECK(unlock("000000") == DEV_E_WIPED);
    /* Blank, same identity, the log kept with a wipe entry; the keys are gone. */
    CHECK(info_state_is("blank"));
    CHECK(memcmp(fx_dev.identity_pk, ident, 32) == 0);
    CHECK_EQ(fx_audit_count("pin", "refused"), 10);
    CHECK_EQ(fx_audit_count("wipe", "applied"), 1);
    CHECK_EQ(fx_audit_count("generate_key", "approved"), 1);
    CHECK(fx_reboot() == 0);
    CHECK(info_state_is("blank"));
    CHECK(memcmp(fx_dev.identity_pk, ident, 32) == 0);
    /* Set up again: a new PIN, no keys. */
    fx_setup("222222");
    CHECK(fx_call("list_keys", -1) == 0);
    cbor_item keys;
    CHECK(reply_field(&fx_peer, "keys", &keys) == 0 && cbor_count(keys) == 0);
    fx_teardown();

    /* Power cut after the 10th attempt was counted: the next boot completes the wipe. */
    fx_boot(6, 0);
    fx_setup(NULL);
    CHECK(fx_call("lock", -1) == 0);
    for (int i = 0; i < 9; i++) CHECK(unlock("000000") == DEV_E_WRONG_PIN);
    fx_board.cut_armed = 1;
    fx_board.cut_after = 1;
    unlock("000000");
    fx_board.cut_armed = 0;
    CHECK_EQ(image_retries(), 0);
    CHECK(fx_reboot() == 0);
    CHECK(info_state_is("blank"));
    CHECK_EQ(image_retries(), 10);
    CHECK_EQ(fx_audit_count("wipe", "applied"), 1);
    fx_teardown();
}

/* Starts generate_key without answering; returns once the screen is up. */
static void start_pending(const char *name) {
    static uint8_t req[256];
    fx_params_begin(&P, 1);
    fx_text(&P, "name", name);
    size_t n = peer_request(&fx_peer, req, sizeof req, "generate_key", P.buf, P.w.len);
    unsigned shown = fx_board.screens_shown;
    CHECK(peer_send(&fx_peer, req, n) == 0);
    CHECK(fx_board.screens_shown == shown + 1 && fx_board.screen_pending);
    CHECK(device_confirming(&fx_dev));
}

/* The reply to the pending call, arriving later: code. */
static int pending_reply_code(uint64_t wait_ms) {
    if (!fx_peer.have_reply) peer_wait_reply(&fx_peer, wait_ms);
    return fx_peer.have_reply ? fx_code() : -1;
}

static void test_confirmation(void) {
    fx_boot(7, 0);
    fx_setup(NULL);
    start_pending("p1");
    CHECK(mem_board_screen_has(&fx_board, "p1"));
    /* Meanwhile: status, info and cancel are answered; anything else is busy. */
    CHECK(fx_call("status", -1) == 0 && fx_code() == 0);
    CHECK(fx_result_text_is("state", "confirming"));
    cbor_item pend, v;
    CHECK(reply_field(&fx_peer, "pending", &pend) == 0);
    CHECK(cbor_map_find(pend, "method", &v) && cbor_text_is(v, "generate_key"));
    uint64_t left = 0;
    CHECK(cbor_map_find(pend, "seconds_left", &v) && cbor_uint(v, &left) == 0 && left > 80 && left <= 90);
    CHECK(fx_call("info", -1) == 0 && fx_code() == 0);
    CHECK(fx_call("list_keys", -1) == 0 && fx_code() == DEV_E_BUSY);
    CHECK(fx_call("lock", -1) == 0 && fx_code() == DEV_E_BUSY);
    /* BUSY every second while it waits. */
    unsigned busy = fx_peer.busy_seen;
    for (int i = 0; i < 5; i++) {
        peer_sleep(&fx_peer, 1000);
        link_send_alive(&fx_peer.link);
        peer_pump(&fx_peer);
    }
    CHECK(fx_peer.busy_seen - busy >= 4 && fx_peer.busy_seen - busy <= 6);
    CHECK_EQ(fx_peer.busy_reason, 1);
    /* Cancel: the pending call answers `cancelled` first, then cancel answers. */
    unsigned replies = fx_peer.replies;
    CHECK(fx_call("cancel", -1) == 0);
    int was = 0;
    CHECK(fx_result_bool("cancelled", &was) == 0 && was == 1);
    CHECK_EQ(fx_peer.replies - replies, 2);
    CHECK(strcmp(fx_board.done_verdict, "cancelled") == 0);
    CHECK(!device_confirming(&fx_dev));
    CHECK(fx_call("cancel", -1) == 0 && fx_result_bool("cancelled", &was) == 0 && was == 0);
    CHECK_EQ(fx_audit_count("generate_key", "cancelled"), 1);

    /* Timeout: the policy's 90 s, with the host alive throughout. */
    start_pending("p2");
    uint64_t t0 = fx_board.now_ms;
    while (!fx_peer.have_reply && fx_board.now_ms - t0 < 100000) {
        peer_sleep(&fx_peer, 500);
        link_send_alive(&fx_peer.link);
        peer_pump(&fx_peer);
    }
    CHECK_EQ(pending_reply_code(0), DEV_E_TIMEOUT);
    CHECK(fx_board.now_ms - t0 >= 90000 && fx_board.now_ms - t0 < 91000);
    CHECK(strcmp(fx_board.done_verdict, "timeout") == 0);
    CHECK_EQ(fx_audit_count("generate_key", "timeout"), 1);

    /* Work takes time: a clock that moves while the timeout is handled must not make the
     * device think it has been idle for ages (it once locked itself right after a timeout). */
    fx_board.millis_step = 1;
    fx_params_begin(&P, 1);
    fx_text(&P, "name", "p2b");
    CHECK(fx_callp("generate_key", &P.w, -1) == 0 && fx_code() == DEV_E_TIMEOUT);
    peer_sleep(&fx_peer, 100);
    fx_board.millis_step = 0;
    CHECK(info_state_is("unlocked"));
    CHECK(fx_call("list_keys", -1) == 0 && fx_code() == 0);

    /* Host silence: 10 s without a frame cancels it. */
    start_pending("p3");
    t0 = fx_board.now_ms;
    CHECK_EQ(pending_reply_code(30000), DEV_E_CANCELLED);
    CHECK(fx_board.now_ms - t0 >= 10000 && fx_board.now_ms - t0 < 10200);

    /* RESET cancels it too, and its reply is dropped with the queue. */
    start_pending("p4");
    unsigned r0 = fx_peer.replies;
    CHECK(peer_reset(&fx_peer) == 0);
    CHECK(!device_confirming(&fx_dev));
    CHECK(strcmp(fx_board.done_verdict, "cancelled") == 0);
    peer_sleep(&fx_peer, 500);
    CHECK_EQ(fx_peer.replies, r0);
    CHECK_EQ(fx_audit_count("generate_key", "cancelled"), 3);

    /* A button with nothing pending does nothing; a late press after a verdict neither. */
    device_button(&fx_dev, 1);
    CHECK(fx_call("list_keys", -1) == 0);
    cbor_item keys;
    CHECK(reply_field(&fx_peer, "keys", &keys) == 0 && cbor_count(keys) == 0);
    /* The call's own timeout shortens the device's (sign_nks has one): exercised with a
     * key the device does not have, which is refused before any screen. */
    fx_params_begin(&P, 4);
    fx_text(&P, "key", "nokey");
    fx_bytes(&P, "nks", (const uint8_t *)"\xa0", 1);
    fx_bytes(&P, "head", (const uint8_t *)"0123456789abcdef0123456789abcdef", 32);
    fx_uint(&P, "timeout", 0);
    CHECK(fx_callp("sign_nks", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);
    fx_params_begin(&P, 3);
    fx_text(&P, "key", "nokey");
    fx_bytes(&P, "nks", (const uint8_t *)"\xa0", 1);
    fx_bytes(&P, "head", (const uint8_t *)"short", 5);
    CHECK(fx_callp("sign_nks", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);
    fx_params_begin(&P, 3);
    fx_text(&P, "key", "nokey");
    fx_bytes(&P, "nks", (const uint8_t *)"\xa0", 1);
    fx_bytes(&P, "head", (const uint8_t *)"0123456789abcdef0123456789abcdef", 32);
    CHECK(fx_callp("sign_nks", &P.w, -1) == 0 && fx_code() == DEV_E_NOT_FOUND);
    fx_teardown();
}

static void set_policy_uint(const char *field, uint64_t v, int answer) {
    static fx_params q;
    cw_init(&q.w, q.buf, sizeof q.buf);
    cw_map(&q.w, 1);
    cw_text(&q.w, "policy");
    cw_map(&q.w, 1);
    cw_text(&q.w, field);
    cw_uint(&q.w, v);
    CHECK(fx_callp("set_policy", &q.w, answer) == 0);
}

static uint64_t policy_field(const char *field) {
    CHECK(fx_call("get_policy", -1) == 0 && fx_code() == 0);
    cbor_item pol, v;
    uint64_t x = 0;
    CHECK(reply_field(&fx_peer, "policy", &pol) == 0 && cbor_map_find(pol, field, &v));
    if (cbor_type(v) == CB_TRUE) return 1;
    if (cbor_type(v) == CB_FALSE) return 0;
    CHECK(cbor_uint(v, &x) == 0);
    return x;
}

static void test_policy(void) {
    fx_boot(8, 0);
    fx_setup(NULL);
    CHECK_EQ(policy_field("cosigners"), 1);
    CHECK_EQ(policy_field("max_batch"), 5000);
    CHECK_EQ(policy_field("confirm_timeout"), 90);
    CHECK_EQ(policy_field("auto_lock"), 900);
    CHECK_EQ(policy_field("force_audit"), 0);
    /* Out of range, unknown and mistyped fields: refused without a screen. */
    static const struct {
        const char *f;
        uint64_t v;
    } bad[] = {{"cosigners", 0},       {"cosigners", 17},    {"max_batch", 0},
               {"max_batch", 20001},   {"confirm_timeout", 9}, {"confirm_timeout", 601},
               {"auto_lock", 86401},   {"cosigner", 2},      {"force_audit", 1}};
    unsigned shown = fx_board.screens_shown;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_policy_uint(bad[i].f, bad[i].v, 1);
        CHECK_EQ(fx_code(), DEV_E_PROTOCOL);
    }
    CHECK_EQ(fx_board.screens_shown, shown);
    /* No change: answered without asking. */
    set_policy_uint("cosigners", 1, -1);
    CHECK_EQ(fx_code(), 0);
    CHECK_EQ(fx_board.screens_shown, shown);
    /* A change shows old -> new; declined changes nothing. */
    set_policy_uint("cosigners", 2, 0);
    CHECK_EQ(fx_code(), DEV_E_DECLINED);
    CHECK(mem_board_screen_has(&fx_board, "cosigners: 1 -> 2"));
    CHECK_EQ(policy_field("cosigners"), 1);
    set_policy_uint("cosigners", 2, 1);
    CHECK_EQ(fx_code(), 0);
    CHECK_EQ(policy_field("cosigners"), 2);
    set_policy_uint("confirm_timeout", 10, 1);
    CHECK_EQ(policy_field("confirm_timeout"), 10);
    /* It is sealed: after a power cycle and unlock it is still there. */
    CHECK(fx_reboot() == 0);
    CHECK_EQ(unlock("123456"), 0);
    CHECK_EQ(policy_field("cosigners"), 2);
    CHECK_EQ(fx_audit_count("set_policy", "approved"), 2);
    CHECK_EQ(fx_audit_count("set_policy", "declined"), 1);
    /* The shorter confirm_timeout applies: a pending call times out after 10 s. */
    start_pending("t");
    uint64_t t0 = fx_board.now_ms;
    while (!fx_peer.have_reply && fx_board.now_ms - t0 < 20000) {
        peer_sleep(&fx_peer, 500);
        link_send_alive(&fx_peer.link);
        peer_pump(&fx_peer);
    }
    CHECK_EQ(pending_reply_code(0), DEV_E_TIMEOUT);
    CHECK(fx_board.now_ms - t0 >= 10000 && fx_board.now_ms - t0 < 11000);

    /* Auto-lock after idleness (status and info do not count as activity). */
    set_policy_uint("auto_lock", 60, 1);
    CHECK_EQ(fx_code(), 0);
    for (int i = 0; i < 5; i++) {
        peer_sleep(&fx_peer, 11000);
        CHECK(fx_call("status", -1) == 0);
    }
    CHECK(info_state_is("unlocked"));
    peer_sleep(&fx_peer, 6000);
    CHECK(info_state_is("locked"));
    CHECK(memcmp(fx_dev.v->seal_key, (uint8_t[32]){0}, 32) == 0);
    fx_teardown();
}

static void test_force_audit_and_wipe(void) {
    fx_boot(9, 0);
    fx_setup(NULL);
    CHECK_EQ(gen_key("k", 1), 0);
    static fx_params q;
    cw_init(&q.w, q.buf, sizeof q.buf);
    cw_map(&q.w, 1);
    cw_text(&q.w, "policy");
    cw_map(&q.w, 1);
    cw_text(&q.w, "force_audit");
    cw_bool(&q.w, 1);
    CHECK(fx_callp("set_policy", &q.w, 1) == 0 && fx_code() == 0);
    CHECK_EQ(policy_field("force_audit"), 1);
    /* Fill the log with unread entries (declined key generations). */
    while (fx_dev.audit.count < 256) CHECK(gen_key("x", 0) == DEV_E_DECLINED);
    fx_params_begin(&P, 3);
    fx_text(&P, "key", "k");
    fx_bytes(&P, "nks", (const uint8_t *)"\xa0", 1);
    fx_bytes(&P, "head", (const uint8_t *)"0123456789abcdef0123456789abcdef", 32);
    uint64_t count = fx_dev.audit.count;
    CHECK(fx_callp("sign_nks", &P.w, 1) == 0 && fx_code() == DEV_E_AUDIT_FULL);
    CHECK_EQ(fx_dev.audit.count, count); /* the refusal cannot be logged: that is the point */
    /* Reading is not enough: ack. ack needs the device unlocked. */
    fx_params_begin(&P, 2);
    fx_uint(&P, "limit", 64);
    fx_bytes(&P, "nonce", (const uint8_t *)"n0", 2);
    CHECK(fx_callp("audit_log", &P.w, -1) == 0 && fx_code() == 0);
    fx_params_begin(&P, 1);
    fx_uint(&P, "ack", count - 1);
    CHECK(fx_call("lock", -1) == 0);
    CHECK(fx_callp("audit_log", &P.w, -1) == 0 && fx_code() == DEV_E_LOCKED);
    CHECK_EQ(unlock("123456"), 0);
    fx_params_begin(&P, 1);
    fx_uint(&P, "ack", count + 100);
    CHECK(fx_callp("audit_log", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);
    fx_params_begin(&P, 1);
    fx_uint(&P, "ack", fx_dev.audit.count - 1);
    CHECK(fx_callp("audit_log", &P.w, -1) == 0 && fx_code() == 0);
    cbor_item head, body, v;
    const uint8_t *bp;
    size_t bn;
    uint64_t unread = 0;
    CHECK(reply_field(&fx_peer, "head", &head) == 0 && cbor_map_find(head, "body", &body));
    CHECK(cbor_bytes(body, &bp, &bn) == 0);
    cbor_item hb = {bp, bn};
    CHECK(cbor_map_find(hb, "unread", &v) && cbor_uint(v, &unread) == 0 && unread == fx_dev.audit.count);
    /* The ack is durable. */
    CHECK(fx_reboot() == 0);
    CHECK_EQ(audit_unread(&fx_dev.audit), unread);
    CHECK_EQ(unlock("123456"), 0);
    /* Now signing gets past force-audit (and fails later: the key is not enrolled). */
    fx_params_begin(&P, 3);
    fx_text(&P, "key", "k");
    fx_bytes(&P, "nks", (const uint8_t *)"\xa0", 1);
    fx_bytes(&P, "head", (const uint8_t *)"0123456789abcdef0123456789abcdef", 32);
    CHECK(fx_callp("sign_nks", &P.w, 1) == 0 && fx_code() != DEV_E_AUDIT_FULL && fx_code() != 0);
    /* audit_log parameter bounds. */
    fx_params_begin(&P, 1);
    fx_uint(&P, "limit", 65);
    CHECK(fx_callp("audit_log", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);
    fx_params_begin(&P, 1);
    fx_bytes(&P, "nonce", (const uint8_t *)"0123456789abcdef0123456789abcdefX", 33);
    CHECK(fx_callp("audit_log", &P.w, -1) == 0 && fx_code() == DEV_E_PROTOCOL);

    /* Wipe: confirmed; declined keeps everything. */
    CHECK(fx_call("wipe", 0) == 0 && fx_code() == DEV_E_DECLINED);
    CHECK(info_state_is("unlocked"));
    CHECK(fx_call("wipe", 1) == 0 && fx_code() == 0);
    CHECK(info_state_is("blank"));
    CHECK_EQ(fx_audit_count("wipe", "approved"), 1);
    CHECK_EQ(fx_audit_count("wipe", "declined"), 1);
    fx_teardown();
}

static void test_storage_failures(void) {
    fx_boot(10, 0);
    fx_setup(NULL);
    /* A key whose generation cannot be made durable does not exist. */
    fx_board.fail_writes = 1;
    CHECK(gen_key("lost", 1) == DEV_E_STORAGE);
    fx_board.fail_writes = 0;
    CHECK(fx_call("list_keys", -1) == 0);
    cbor_item keys;
    CHECK(reply_field(&fx_peer, "keys", &keys) == 0 && cbor_count(keys) == 0);
    /* A policy change that cannot be written is not applied. */
    fx_board.fail_writes = 1;
    set_policy_uint("cosigners", 3, 1);
    CHECK_EQ(fx_code(), DEV_E_STORAGE);
    fx_board.fail_writes = 0;
    CHECK_EQ(policy_field("cosigners"), 1);
    /* The random source failing: no key. */
    fx_board.rng_fail = 1;
    CHECK(gen_key("norng", 1) == DEV_E_STORAGE);
    fx_board.rng_fail = 0;
    fx_teardown();
}

static void test_real_kdf(void) {
    /* The docs' parameters are the default: Argon2id, 64 MiB, 2 passes, 16-byte salt. */
    fx_boot(11, 1);
    fx_setup(NULL);
    store_image img;
    audit_log lg;
    const char *why;
    CHECK(store_decode(fx_board.flash, fx_board.flash_len, DEV_SEAL_MAX, &img, &lg, &why) == 0);
    CHECK(img.sealed && img.seal.opslimit == 2 && img.seal.memlimit == 64u * 1024 * 1024);
    CHECK(fx_peer.busy_seen > 0 && fx_peer.busy_reason == 2); /* "working" during the KDF */
    CHECK(fx_call("lock", -1) == 0);
    CHECK(unlock("1234567") == DEV_E_WRONG_PIN);
    CHECK_EQ(unlock("123456"), 0);
    fx_teardown();
}

int main(void) {
    test_boot();
    test_envelope();
    test_setup_unlock();
    test_pin_counter();
    test_pin_wipe();
    test_confirmation();
    test_policy();
    test_force_audit_and_wipe();
    test_storage_failures();
    test_real_kdf();
    return check_report("test_device");
}
