/* SHA-512 against FIPS 180-4 example digests, including the two-block padding edge. */
#include <stdio.h>
#include <string.h>

#include "sha512.h"
#include "digest_check.h"
#include "tka_native.h"

int main(void) {
    uint8_t out[64];
    tka_sha512((const uint8_t *)"abc", 3, out);
    check_hex("abc", out, 64,
              "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
              "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
    tka_sha512((const uint8_t *)"", 0, out);
    check_hex("empty", out, 64,
              "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
              "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e");
    const char *two =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
        "klmnopqrlmnopqrsmnopqrstnopqrstu";
    tka_sha512((const uint8_t *)two, strlen(two), out);
    check_hex("two-block", out, 64,
              "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
              "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909");
    /* A million 'a's fed in uneven pieces exercises the buffering in update(). */
    sha512_ctx ctx;
    sha512_init(&ctx);
    uint8_t chunk[777];
    memset(chunk, 'a', sizeof chunk);
    size_t left = 1000000;
    while (left > 0) {
        size_t take = left < sizeof chunk ? left : sizeof chunk;
        sha512_update(&ctx, chunk, take);
        left -= take;
    }
    sha512_final(&ctx, out);
    check_hex("million-a", out, 64,
              "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
              "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b");
    if (failures == 0) printf("sha512: all ok\n");
    return failures == 0 ? 0 : 1;
}
