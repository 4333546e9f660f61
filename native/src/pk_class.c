/* Public-key classes (tka_native.h, tka_public_key_class): which Ed25519 public keys honest key
 * generation can produce. Both verification rules accept small-order and mixed-order keys and
 * non-canonical encodings (docs/format.md §4), so a signature "by" such a key proves little: with a
 * small-order key, signatures can be forged by anyone. The firmware refuses such keys as
 * rotation (wrapping) keys before it signs anything that names them. */
#include "ge.h"
#include "sc.h"
#include "tka_native.h"

#include <string.h>

/* L - 1, little-endian: [L - 1]A + A is the identity exactly when A's order divides L. */
static const uint8_t L_MINUS_1[32] = {
    0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};

int tka_public_key_class(const uint8_t pk[32]) {
    ge_p3 a;
    if (!ge_frombytes_lenient(&a, pk)) return TKA_PK_NOT_POINT;

    ge_p3 a8;
    ge_dbl_p3(&a8, &a);
    ge_dbl_p3(&a8, &a8);
    ge_dbl_p3(&a8, &a8);
    if (ge_p3_is_identity(&a8)) return TKA_PK_SMALL_ORDER;

    /* Before the order test: no non-canonical encoding names a prime-order point (y >= p
     * leaves y in 0..18, whose points are small- or mixed-order or absent; x = 0 means
     * y = +-1, small order), so this class would otherwise be empty. */
    uint8_t canonical[32];
    ge_tobytes(canonical, &a);
    if (memcmp(canonical, pk, 32) != 0) return TKA_PK_NONCANONICAL;

    ge_cached table[GE_STRAUS_TABLE];
    ge_straus_table(table, &a);
    sc l_minus_1, zero;
    sc_from_bytes(&l_minus_1, L_MINUS_1);
    memset(&zero, 0, sizeof zero);
    ge_p3 la;
    ge_double_scalarmult_table(&la, table, &l_minus_1, &zero);
    ge_p3_add(&la, &la, &a);
    if (!ge_p3_is_identity(&la)) return TKA_PK_MIXED_ORDER;
    return TKA_PK_OK;
}
