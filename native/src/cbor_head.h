/* What the two bounded canonical readers (nks_reader.c, aum_reader.c) share: a cursor over the
 * input and a head reader that accepts only the shortest (canonical) form. Internal. */
#ifndef TKA_CBOR_HEAD_H
#define TKA_CBOR_HEAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *data;
    size_t len;
    size_t pos;
} cbor_cursor;

/* A head of major type `major` in shortest form; 0 on anything else (other major types,
 * reserved or indefinite additional information, non-shortest arguments, truncation). */
static inline int cbor_head(cbor_cursor *c, unsigned major, uint64_t *arg) {
    if (c->pos >= c->len) return 0;
    uint8_t initial = c->data[c->pos];
    if ((unsigned)(initial >> 5) != major) return 0;
    unsigned info = initial & 0x1fu;
    c->pos++;
    if (info < 24) {
        *arg = info;
        return 1;
    }
    if (info > 27) return 0; /* 28..30 reserved, 31 indefinite length */
    size_t width = (size_t)1 << (info - 24);
    if (c->len - c->pos < width) return 0;
    uint64_t value = 0;
    for (size_t i = 0; i < width; i++) value = (value << 8) | c->data[c->pos + i];
    c->pos += width;
    /* Shortest form: the value must not fit the next smaller head. */
    static const uint64_t min_for_width[4] = {24, 0x100, 0x10000, 0x100000000ULL};
    if (value < min_for_width[info - 24]) return 0;
    *arg = value;
    return 1;
}

#endif
