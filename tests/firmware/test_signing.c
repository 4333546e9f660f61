/* Signing through the device (docs/appliance.md §2.2, §4): tka init (sign a genesis, enroll it without a
 * second confirmation), node-key signatures one by one and in a batch, an AUM on top of the
 * head, refusals logged, and what each reply repeats. Every signature is verified here. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "blake2s.h"
#include "fw_test.h"

static fx_params P;
static uint8_t key_pk[32];

static void b2s(const uint8_t *p, size_t n, uint8_t out[32]) {
    blake2s_ctx c;
    blake2s_init(&c);
    blake2s_update(&c, p, n);
    blake2s_final(&c, out);
}

static int reply_bytes(const char *k, const uint8_t **p, size_t *n) {
    cbor_item it;
    return reply_field(&fx_peer, k, &it) == 0 && cbor_bytes(it, p, n) == 0 ? 0 : -1;
}

/* A genesis checkpoint trusting `pk` (votes 1), with one disablement value; signed when sig. */
static size_t genesis(uint8_t *out, size_t cap, const uint8_t pk[32], const uint8_t *sig) {
    cbor_writer w;
    uint8_t disablement[32];
    memset(disablement, 0xd1, 32);
    cw_init(&w, out, cap);
    cw_map(&w, sig ? 4 : 3);
    cw_uint(&w, 1);
    cw_uint(&w, 5); /* checkpoint */
    cw_uint(&w, 2);
    cw_null(&w);
    cw_uint(&w, 5);
    cw_map(&w, 5);
    cw_uint(&w, 1);
    cw_null(&w);
    cw_uint(&w, 2);
    cw_array(&w, 1);
    cw_bytes(&w, disablement, 32);
    cw_uint(&w, 3);
    cw_array(&w, 1);
    cw_map(&w, 3);
    cw_uint(&w, 1);
    cw_uint(&w, 1);
    cw_uint(&w, 2);
    cw_uint(&w, 1);
    cw_uint(&w, 3);
    cw_bytes(&w, pk, 32);
    cw_uint(&w, 4);
    cw_uint(&w, 1111);
    cw_uint(&w, 5);
    cw_uint(&w, 2222);
    if (sig) {
        cw_uint(&w, 23);
        cw_array(&w, 1);
        cw_map(&w, 2);
        cw_uint(&w, 1);
        cw_bytes(&w, pk, 32);
        cw_uint(&w, 2);
        cw_bytes(&w, sig, 64);
    }
    return w.overflow ? 0 : w.len;
}

/* An AddKey AUM on `parent` adding `newpk` (votes 1), signed by pk when sig. */
static size_t add_key(uint8_t *out, size_t cap, const uint8_t parent[32], const uint8_t newpk[32],
                      const uint8_t pk[32], const uint8_t *sig) {
    cbor_writer w;
    cw_init(&w, out, cap);
    cw_map(&w, sig ? 4 : 3);
    cw_uint(&w, 1);
    cw_uint(&w, 1);
    cw_uint(&w, 2);
    cw_bytes(&w, parent, 32);
    cw_uint(&w, 3);
    cw_map(&w, 3);
    cw_uint(&w, 1);
    cw_uint(&w, 1);
    cw_uint(&w, 2);
    cw_uint(&w, 1);
    cw_uint(&w, 3);
    cw_bytes(&w, newpk, 32);
    if (sig) {
        cw_uint(&w, 23);
        cw_array(&w, 1);
        cw_map(&w, 2);
        cw_uint(&w, 1);
        cw_bytes(&w, pk, 32);
        cw_uint(&w, 2);
        cw_bytes(&w, sig, 64);
    }
    return w.overflow ? 0 : w.len;
}

/* A checkpoint on `parent` keeping `pk` but replacing the disablement value (so it drops one). */
static size_t dropping_checkpoint(uint8_t *out, size_t cap, const uint8_t parent[32],
                                  const uint8_t pk[32]) {
    cbor_writer w;
    uint8_t disablement[32];
    memset(disablement, 0xd2, 32);
    cw_init(&w, out, cap);
    cw_map(&w, 3);
    cw_uint(&w, 1);
    cw_uint(&w, 5);
    cw_uint(&w, 2);
    cw_bytes(&w, parent, 32);
    cw_uint(&w, 5);
    cw_map(&w, 5);
    cw_uint(&w, 1);
    cw_null(&w);
    cw_uint(&w, 2);
    cw_array(&w, 1);
    cw_bytes(&w, disablement, 32);
    cw_uint(&w, 3);
    cw_array(&w, 1);
    cw_map(&w, 3);
    cw_uint(&w, 1);
    cw_uint(&w, 1);
    cw_uint(&w, 2);
    cw_uint(&w, 1);
    cw_uint(&w, 3);
    cw_bytes(&w, pk, 32);
    cw_uint(&w, 4);
    cw_uint(&w, 1111);
    cw_uint(&w, 5);
    cw_uint(&w, 2222);
    return w.len;
}

/* An unsigned direct NKS for node key nk (byte value), by `pk`. */
static size_t direct_nks(uint8_t *out, size_t cap, uint8_t nk, const uint8_t pk[32]) {
    uint8_t node[34] = {'n', 'p'};
    memset(node + 2, nk, 32);
    cbor_writer w;
    cw_init(&w, out, cap);
    cw_map(&w, 3);
    cw_uint(&w, 1);
    cw_uint(&w, 1);
    cw_uint(&w, 2);
    cw_bytes(&w, node, 34);
    cw_uint(&w, 3);
    cw_bytes(&w, pk, 32);
    return w.len;
}

static int sign_aum(const uint8_t *aum, size_t n, int answer) {
    fx_params_begin(&P, 2);
    fx_text(&P, "key", "lock");
    fx_bytes(&P, "aum", aum, n);
    CHECK(fx_callp("sign_aum", &P.w, answer) == 0);
    return fx_code();
}

static int enroll(const uint8_t *aum, size_t n, int answer) {
    fx_params_begin(&P, 1);
    fx_bytes(&P, "aum", aum, n);
    CHECK(fx_callp("enroll", &P.w, answer) == 0);
    return fx_code();
}

/* Checks the signing reply: key and sighash repeated, signature valid over the sighash. */
static void check_signature(const uint8_t want_sighash[32], uint8_t sig_out[64]) {
    const uint8_t *k, *sh, *sig;
    size_t kn, shn, sn;
    CHECK(reply_bytes("key", &k, &kn) == 0 && kn == 32 && memcmp(k, key_pk, 32) == 0);
    CHECK(reply_bytes("sighash", &sh, &shn) == 0 && shn == 32 && memcmp(sh, want_sighash, 32) == 0);
    CHECK(reply_bytes("signature", &sig, &sn) == 0 && sn == 64);
    if (sn == 64) {
        CHECK(crypto_sign_verify_detached(sig, want_sighash, 32, key_pk) == 0);
        if (sig_out) memcpy(sig_out, sig, 64);
    }
}

static uint8_t head[32];

static void test_init_and_sign(void) {
    fx_boot(21, 0);
    fx_setup(NULL);
    fx_params_begin(&P, 1);
    fx_text(&P, "name", "lock");
    CHECK(fx_callp("generate_key", &P.w, 1) == 0 && fx_code() == 0);
    const uint8_t *p;
    size_t n;
    CHECK(reply_bytes("public", &p, &n) == 0 && n == 32);
    memcpy(key_pk, p, 32);

    /* tka init: the device signs the genesis after the person confirms it... */
    static uint8_t g[512], gs[512];
    size_t gl = genesis(g, sizeof g, key_pk, NULL);
    uint8_t sighash[32], sig[64];
    b2s(g, gl, sighash);
    CHECK_EQ(sign_aum(g, gl, 1), 0);
    CHECK(mem_board_screen_has(&fx_board, "heckpoint") || mem_board_screen_has(&fx_board, "CHECKPOINT"));
    check_signature(sighash, sig);
    /* ...and enrolls it without asking again. */
    size_t gsl = genesis(gs, sizeof gs, key_pk, sig);
    unsigned shown = fx_board.screens_shown;
    CHECK_EQ(enroll(gs, gsl, -1), 0);
    CHECK_EQ(fx_board.screens_shown, shown);
    b2s(gs, gsl, head);
    CHECK(reply_bytes("head", &p, &n) == 0 && n == 32 && memcmp(p, head, 32) == 0);
    CHECK_EQ(fx_audit_count("sign_aum", "approved"), 1);
    CHECK_EQ(fx_audit_count("enroll", "approved"), 1);
    CHECK(fx_call("authority", -1) == 0 && fx_code() == 0);
    int enrolled = 0;
    uint64_t sid1 = 0;
    CHECK(fx_result_bool("enrolled", &enrolled) == 0 && enrolled);
    CHECK(fx_result_uint("state_id1", &sid1) == 0 && sid1 == 1111);
    cbor_item keys;
    CHECK(reply_field(&fx_peer, "keys", &keys) == 0 && cbor_count(keys) == 1);
    /* Enrolled already: a second enroll needs replace. */
    CHECK_EQ(enroll(gs, gsl, 1), DEV_E_BAD_STATE);

    /* A checkpoint that drops a disablement value: two screens, two yeses. */
    static uint8_t cp[512];
    size_t cpl = dropping_checkpoint(cp, sizeof cp, head, key_pk);
    uint8_t cpsh[32];
    b2s(cp, cpl, cpsh);
    shown = fx_board.screens_shown;
    CHECK_EQ(sign_aum(cp, cpl, 1), 0);
    CHECK_EQ(fx_board.screens_shown, shown + 2);
    CHECK(mem_board_screen_has(&fx_board, "SECOND CONFIRMATION"));
    check_signature(cpsh, NULL);
    /* Yes, then no: declined, nothing signed. */
    fx_params_begin(&P, 2);
    fx_text(&P, "key", "lock");
    fx_bytes(&P, "aum", cp, cpl);
    static uint8_t req[1024];
    size_t rl = peer_request(&fx_peer, req, sizeof req, "sign_aum", P.buf, P.w.len);
    shown = fx_board.screens_shown;
    CHECK(peer_send(&fx_peer, req, rl) == 0);
    CHECK(fx_board.screen_pending && fx_board.screens_shown == shown + 1);
    device_button(&fx_dev, 1);
    peer_pump(&fx_peer);
    CHECK(strcmp(fx_board.done_verdict, "approved") == 0);
    CHECK(fx_board.screen_pending && fx_board.screens_shown == shown + 2);
    CHECK(!fx_peer.have_reply);
    device_button(&fx_dev, 0);
    peer_pump(&fx_peer);
    CHECK(peer_wait_reply(&fx_peer, 1000) == 0 && fx_code() == DEV_E_DECLINED);
    CHECK(strcmp(fx_board.done_verdict, "declined") == 0);
    /* Lock and unlock: the tentative checkpoint is gone, the head is the genesis. */
    CHECK(fx_call("lock", -1) == 0);
    fx_params_begin(&P, 1);
    fx_text(&P, "pin", "123456");
    CHECK(fx_callp("unlock", &P.w, -1) == 0 && fx_code() == 0);

    /* A node-key signature under the head. */
    static uint8_t nks[256];
    size_t nl = direct_nks(nks, sizeof nks, 0x42, key_pk);
    b2s(nks, nl, sighash);
    fx_params_begin(&P, 3);
    fx_text(&P, "key", "lock");
    fx_bytes(&P, "nks", nks, nl);
    fx_bytes(&P, "head", head, 32);
    CHECK(fx_callp("sign_nks", &P.w, 1) == 0 && fx_code() == 0);
    check_signature(sighash, NULL);
    CHECK(mem_board_screen_has(&fx_board, "nodekey:4242424242"));
    /* Declined: no signature, logged. */
    CHECK(fx_callp("sign_nks", &P.w, 0) == 0 && fx_code() == DEV_E_DECLINED);
    CHECK(reply_bytes("signature", &p, &n) == -1);
    CHECK_EQ(fx_audit_count("sign_nks", "declined"), 1);
    /* A stale head: refused, the device's head in the error, logged as refused. */
    uint8_t stale[32];
    memset(stale, 7, 32);
    fx_params_begin(&P, 3);
    fx_text(&P, "key", "lock");
    fx_bytes(&P, "nks", nks, nl);
    fx_bytes(&P, "head", stale, 32);
    CHECK(fx_callp("sign_nks", &P.w, 1) == 0 && fx_code() == DEV_E_STALE_AUTHORITY);
    CHECK(reply_bytes("head", &p, &n) == 0 && n == 32 && memcmp(p, head, 32) == 0);
    CHECK_EQ(fx_audit_count("sign_nks", "refused"), 1);
    /* Not canonical: invalid_message. */
    fx_params_begin(&P, 3);
    fx_text(&P, "key", "lock");
    fx_bytes(&P, "nks", (const uint8_t *)"\xa1\x01\x18\x01", 4);
    fx_bytes(&P, "head", head, 32);
    CHECK(fx_callp("sign_nks", &P.w, 1) == 0 && fx_code() == DEV_E_INVALID_MESSAGE);

    /* A batch of three, confirmed once; the digest is BLAKE2s of the sighashes in order. */
    static uint8_t items[3][256];
    size_t il[3];
    uint8_t shs[96], digest[32];
    fx_params_begin(&P, 3);
    fx_text(&P, "key", "lock");
    fx_bytes(&P, "head", head, 32);
    cw_text(&P.w, "items");
    cw_array(&P.w, 3);
    for (int i = 0; i < 3; i++) {
        il[i] = direct_nks(items[i], sizeof items[i], (uint8_t)(0x10 + i), key_pk);
        b2s(items[i], il[i], shs + 32 * i);
        cw_bytes(&P.w, items[i], il[i]);
    }
    b2s(shs, 96, digest);
    shown = fx_board.screens_shown;
    CHECK(fx_callp("sign_batch", &P.w, 1) == 0 && fx_code() == 0);
    CHECK_EQ(fx_board.screens_shown, shown + 1);
    CHECK(reply_bytes("digest", &p, &n) == 0 && n == 32 && memcmp(p, digest, 32) == 0);
    cbor_item sigs, s;
    CHECK(reply_field(&fx_peer, "signatures", &sigs) == 0 && cbor_count(sigs) == 3);
    cbor_iter it;
    cbor_iter_init(sigs, &it);
    for (int i = 0; cbor_next(&it, &s); i++) {
        CHECK(cbor_bytes(s, &p, &n) == 0 && n == 64);
        CHECK(crypto_sign_verify_detached(p, shs + 32 * i, 32, key_pk) == 0);
    }
    /* A large batch: 2000 items (a 155 KB request, a 135 KB reply) through the link. */
    static uint8_t bigbuf[400000];
    struct {
        cbor_writer w;
    } big;
    cw_init(&big.w, bigbuf, sizeof bigbuf);
    cw_map(&big.w, 3);
    cw_text(&big.w, "key");
    cw_text(&big.w, "lock");
    cw_text(&big.w, "head");
    cw_bytes(&big.w, head, 32);
    cw_text(&big.w, "items");
    cw_array(&big.w, 2000);
    static uint8_t last_sh[32];
    for (int i = 0; i < 2000; i++) {
        uint8_t one[128];
        size_t ol = direct_nks(one, sizeof one, (uint8_t)i, key_pk);
        one[8] = (uint8_t)(i >> 8); /* the node key's first byte: 2000 distinct keys */
        b2s(one, ol, last_sh);
        cw_bytes(&big.w, one, ol);
    }
    CHECK(!big.w.overflow && big.w.len > 150000);
    CHECK(fx_callp("sign_batch", &big.w, 1) == 0 && fx_code() == 0);
    int got_sigs = reply_field(&fx_peer, "signatures", &sigs) == 0;
    CHECK(got_sigs && cbor_count(sigs) == 2000);
    if (got_sigs) cbor_iter_init(sigs, &it);
    for (int i = 0; got_sigs && i < 2000 && cbor_next(&it, &s); i++)
        if (i == 1999) CHECK(cbor_bytes(s, &p, &n) == 0 && crypto_sign_verify_detached(p, last_sh, 32, key_pk) == 0);

    /* The policy's max_batch: refused before any screen, logged. */
    static fx_params q;
    cw_init(&q.w, q.buf, sizeof q.buf);
    cw_map(&q.w, 1);
    cw_text(&q.w, "policy");
    cw_map(&q.w, 1);
    cw_text(&q.w, "max_batch");
    cw_uint(&q.w, 2);
    CHECK(fx_callp("set_policy", &q.w, 1) == 0 && fx_code() == 0);
    shown = fx_board.screens_shown;
    CHECK(fx_callp("sign_batch", &P.w, 1) == 0 && fx_code() == DEV_E_POLICY);
    CHECK_EQ(fx_board.screens_shown, shown);
    CHECK_EQ(fx_audit_count("sign_batch", "refused"), 1);

    /* An AUM on top of the head, then fed back: the head moves, one log entry. */
    uint8_t newpk[32], sk2[64];
    crypto_sign_keypair(newpk, sk2);
    static uint8_t a[256], as[256];
    size_t al = add_key(a, sizeof a, head, newpk, key_pk, NULL);
    b2s(a, al, sighash);
    CHECK_EQ(sign_aum(a, al, 1), 0);
    check_signature(sighash, sig);
    CHECK(mem_board_screen_has(&fx_board, "tlpub:"));
    /* Asked again (a reply lost on the line): the same signature, deterministic. */
    uint8_t again[64];
    CHECK_EQ(sign_aum(a, al, 1), 0);
    check_signature(sighash, again);
    CHECK(memcmp(again, sig, 64) == 0);
    size_t asl = add_key(as, sizeof as, head, newpk, key_pk, sig);
    fx_params_begin(&P, 1);
    cw_text(&P.w, "aums");
    cw_array(&P.w, 1);
    cw_bytes(&P.w, as, asl);
    CHECK(fx_callp("authority_update", &P.w, -1) == 0 && fx_code() == 0);
    uint64_t applied = 0;
    CHECK(fx_result_uint("applied", &applied) == 0 && applied == 1);
    uint8_t head2[32];
    b2s(as, asl, head2);
    CHECK(reply_bytes("head", &p, &n) == 0 && memcmp(p, head2, 32) == 0);
    CHECK_EQ(fx_audit_count("authority_update", "applied"), 1);
    /* Fed again: ignored, no new entry. */
    CHECK(fx_callp("authority_update", &P.w, -1) == 0 && fx_code() == 0);
    CHECK_EQ(fx_audit_count("authority_update", "applied"), 1);
    /* An AUM whose parent the device does not know: stale_authority. */
    uint8_t unknown[32];
    memset(unknown, 9, 32);
    size_t ul = add_key(a, sizeof a, unknown, newpk, key_pk, sig);
    fx_params_begin(&P, 1);
    cw_text(&P.w, "aums");
    cw_array(&P.w, 1);
    cw_bytes(&P.w, a, ul);
    CHECK(fx_callp("authority_update", &P.w, -1) == 0 && fx_code() != 0);

    /* Persisted: after a power cycle and unlock the authority is the same, and the key's
     * signature count too. */
    CHECK(fx_reboot() == 0);
    fx_params_begin(&P, 1);
    fx_text(&P, "pin", "123456");
    CHECK(fx_callp("unlock", &P.w, -1) == 0 && fx_code() == 0);
    CHECK(fx_call("authority", -1) == 0 && fx_code() == 0);
    CHECK(reply_bytes("head", &p, &n) == 0 && n == 32 && memcmp(p, head2, 32) == 0);
    CHECK(fx_call("list_keys", -1) == 0);
    cbor_item ks, k0, cnt;
    uint64_t sigs_made = 0;
    CHECK(reply_field(&fx_peer, "keys", &ks) == 0);
    cbor_iter_init(ks, &it);
    CHECK(cbor_next(&it, &k0) && cbor_map_find(k0, "signatures", &cnt) && cbor_uint(cnt, &sigs_made) == 0);
    CHECK_EQ(sigs_made, 1 + 1 + 1 + 3 + 2000 + 2);
    fx_teardown();
}

static void test_enroll_confirmed(void) {
    /* A checkpoint this device did not sign needs the person; declined, nothing enrolled. */
    fx_boot(22, 0);
    fx_setup(NULL);
    fx_params_begin(&P, 1);
    fx_text(&P, "name", "lock");
    CHECK(fx_callp("generate_key", &P.w, 1) == 0 && fx_code() == 0);
    uint8_t other_pk[32], other_sk[64];
    crypto_sign_keypair(other_pk, other_sk);
    static uint8_t g[512], gs[512];
    size_t gl = genesis(g, sizeof g, other_pk, NULL);
    uint8_t sh[32], sig[64];
    b2s(g, gl, sh);
    crypto_sign_detached(sig, NULL, sh, 32, other_sk);
    size_t gsl = genesis(gs, sizeof gs, other_pk, sig);
    unsigned shown = fx_board.screens_shown;
    CHECK_EQ(enroll(gs, gsl, 0), DEV_E_DECLINED);
    CHECK_EQ(fx_board.screens_shown, shown + 1);
    CHECK(fx_call("authority", -1) == 0);
    int enrolled = 1;
    CHECK(fx_result_bool("enrolled", &enrolled) == 0 && !enrolled);
    CHECK_EQ(enroll(gs, gsl, 1), 0);
    CHECK(fx_call("authority", -1) == 0 && fx_result_bool("enrolled", &enrolled) == 0 && enrolled);
    /* A bad signature on the checkpoint: refused before any screen, logged. */
    gs[gsl - 1] ^= 1;
    fx_params_begin(&P, 2);
    fx_bytes(&P, "aum", gs, gsl);
    fx_bool(&P, "replace", 1);
    shown = fx_board.screens_shown;
    CHECK(fx_callp("enroll", &P.w, 1) == 0 && fx_code() != 0);
    CHECK_EQ(fx_board.screens_shown, shown);
    CHECK_EQ(fx_audit_count("enroll", "refused"), 1);
    fx_teardown();
}

int main(void) {
    if (sodium_init() < 0) return 1;
    test_init_and_sign();
    test_enroll_confirmed();
    return check_report("test_signing");
}
