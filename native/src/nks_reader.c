/* Bounded canonical reader for node-key signatures; see nks_reader.h for what it accepts. */
#include "nks_reader.h"

#include <string.h>

#include "blake2s.h"
#include "cbor_head.h"
#include "tka_native.h"

static int read_nonempty_bytes(cbor_cursor *c, nks_bytes *out) {
    uint64_t n;
    if (!cbor_head(c, 2, &n)) return 0;
    if (n == 0 || n > c->len - c->pos) return 0; /* empty strings are omitted when canonical */
    out->ptr = c->data + c->pos;
    out->len = (size_t)n;
    c->pos += (size_t)n;
    return 1;
}

int nks_read(const uint8_t *data, size_t len, nks_chain *out) {
    cbor_cursor c = {data, len, 0};
    /* The chain is linear (one nested map per level), so it is read as a loop: descend into
     * key 5 and, once the innermost map ends, climb back out finishing each parent's key 6. */
    unsigned depth = 0;
    memset(out, 0, sizeof *out);
    for (;;) {
        if (depth >= TKA_NKS_MAX_LEVELS) return 0;
        nks_level *lvl = &out->levels[depth];
        out->count = depth + 1;
        lvl->map_start = c.pos;
        uint64_t entries;
        if (!cbor_head(&c, 5, &entries) || entries < 1 || entries > 6) return 0;
        lvl->entries = (unsigned)entries;
        uint64_t kind;
        if (c.pos >= c.len || data[c.pos] != 0x01) return 0;
        c.pos++;
        if (!cbor_head(&c, 0, &kind) || kind > 255) return 0;
        lvl->kind = (unsigned)kind;
        unsigned last_key = 1, seen = 1;
        int descend = 0;
        while (seen < entries) {
            if (c.pos >= c.len) return 0;
            unsigned key = data[c.pos];
            if (key <= last_key || key > 6) return 0;
            size_t entry_start = c.pos++;
            last_key = key;
            seen++;
            switch (key) {
            case 2: if (!read_nonempty_bytes(&c, &lvl->pubkey)) return 0; break;
            case 3: if (!read_nonempty_bytes(&c, &lvl->key_id)) return 0; break;
            case 4:
                if (!read_nonempty_bytes(&c, &lvl->signature)) return 0;
                lvl->sig_entry_start = entry_start;
                lvl->sig_entry_end = c.pos;
                break;
            case 5: lvl->has_nested = 1; descend = 1; break;
            default: if (!read_nonempty_bytes(&c, &lvl->wrapping)) return 0; break;
            }
            if (descend) break;
        }
        if (descend) {
            depth++;
            continue;
        }
        /* This map is complete; finish the enclosing maps from the innermost outwards. */
        lvl->map_end = c.pos;
        while (depth > 0) {
            depth--;
            nks_level *parent = &out->levels[depth];
            /* After key 5 only key 6 can follow, when the parent has one more entry. */
            unsigned before_nested = 1 + (parent->pubkey.ptr != NULL) +
                                     (parent->key_id.ptr != NULL) +
                                     (parent->signature.ptr != NULL) + 1;
            if (parent->entries == before_nested + 1) {
                if (c.pos >= c.len || data[c.pos] != 0x06) return 0;
                c.pos++;
                if (!read_nonempty_bytes(&c, &parent->wrapping)) return 0;
            } else if (parent->entries != before_nested) {
                return 0;
            }
            parent->map_end = c.pos;
        }
        return c.pos == len;
    }
}

void nks_sig_span(const nks_chain *chain, unsigned i, nks_span *out) {
    const nks_level *lvl = &chain->levels[i];
    out->start = lvl->map_start;
    out->end = lvl->map_end;
    if (lvl->signature.ptr == NULL) {
        out->cut_start = out->cut_end = out->end;
        out->head = 0;
    } else {
        out->cut_start = lvl->sig_entry_start;
        out->cut_end = lvl->sig_entry_end;
        /* Canonical maps of at most 6 entries have a one-byte head: 0xa0 | entries. */
        out->head = (uint8_t)(0xa0u | (lvl->entries - 1));
    }
}

size_t nks_span_len(const nks_span *span) {
    return (span->end - span->start) - (span->cut_end - span->cut_start);
}

void nks_span_copy(const uint8_t *data, const nks_span *span, uint8_t *out) {
    size_t first = span->cut_start - span->start;
    memcpy(out, data + span->start, first);
    memcpy(out + first, data + span->cut_end, span->end - span->cut_end);
    if (span->cut_end > span->cut_start) out[0] = span->head;
}

void nks_sig_hash(const uint8_t *data, const nks_chain *chain, unsigned i, uint8_t out[32]) {
    nks_span span;
    nks_sig_span(chain, i, &span);
    blake2s_ctx ctx;
    blake2s_init(&ctx);
    if (span.cut_end == span.cut_start) {
        blake2s_update(&ctx, data + span.start, span.end - span.start);
    } else {
        blake2s_update(&ctx, &span.head, 1);
        blake2s_update(&ctx, data + span.start + 1, span.cut_start - span.start - 1);
        blake2s_update(&ctx, data + span.cut_end, span.end - span.cut_end);
    }
    blake2s_final(&ctx, out);
}

int tka_nks_is_canonical(const uint8_t *data, size_t len) {
    nks_chain chain;
    return nks_read(data, len, &chain);
}
