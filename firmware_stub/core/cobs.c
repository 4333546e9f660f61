#include "cobs.h"

#include <string.h>

size_t cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap) {
    if (cap < COBS_ENCODED_MAX(len)) return 0;
    size_t w = 1, code_pos = 0;
    int open = 1; /* a block whose code byte is still to be written */
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_pos] = code;
            code_pos = w++;
            code = 1;
            continue;
        }
        out[w++] = in[i];
        if (++code == 0xff) {
            out[code_pos] = 0xff;
            if (i + 1 == len) {
                /* A full block at the very end needs no empty block after it. */
                open = 0;
                break;
            }
            code_pos = w++;
            code = 1;
        }
    }
    if (open) out[code_pos] = code;
    return w;
}

int cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len) {
    size_t r = 0, w = 0;
    while (r < len) {
        uint8_t code = in[r++];
        if (code == 0) return -1;
        size_t n = (size_t)code - 1;
        if (n > len - r || n > cap - w) return -1;
        for (size_t i = 0; i < n; i++) {
            if (in[r + i] == 0) return -1;
        }
        memcpy(out + w, in + r, n);
        r += n;
        w += n;
        if (code != 0xff && r < len) {
            if (w >= cap) return -1;
            out[w++] = 0;
        }
    }
    *out_len = w;
    return 0;
}
