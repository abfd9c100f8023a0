/* fuzz_inflate.c: the permessage-deflate inflater on arbitrary payloads,
 * and the deflater's output inflated back.
 *
 * Input: byte 0 picks the window bits (8..15) and context takeover,
 * byte 1 the deflater's memory level and level, byte 2 the output limit
 * (0..3968 bytes), byte 3 the chunk size; the rest is messages, each a
 * length byte and that many payload bytes. Each payload is inflated in
 * chunks, and must give OK, too big or corrupt, never more output than
 * the limit; with a 32 KiB window (where zlib's verdict cannot depend on
 * the cut) a second inflater fed whole must agree. Then the same bytes,
 * taken as messages to send, are compressed and must inflate back.
 */
#include <stdlib.h>
#include <string.h>

#include "ws_deflate.h"

typedef struct {
    const uint8_t *p;
    size_t len;
} piece_t;

/* Inflate one message in chunks of step bytes (the whole of it when step
 * is 0), checking the output limit after every call. */
static ws_deflate_result_e inflate_msg(ws_inflater_t *inf, piece_t m,
                                       size_t step, ws_deflate_buf_t *out)
{
    ws_deflate_result_e r = ws_deflate_inflate_begin(inf);
    size_t pos = 0, n;

    while (r == WS_DEFLATE_OK && pos < m.len) {
        n = step && step < m.len - pos ? step : m.len - pos;
        r = ws_deflate_inflate(inf, m.p + pos, n, out);
        if (out->len > out->max || out->cap > out->max)
            abort();
        pos += n;
    }
    if (r == WS_DEFLATE_OK)
        r = ws_deflate_inflate_finish(inf, out);
    if (out->len > out->max || out->cap > out->max)
        abort();
    /* Memory is not short here: failing means zlib was misused. */
    if (r == WS_DEFLATE_FAILED)
        abort();
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_inflater_t *cut, *whole, *back;
    ws_deflater_t *def;
    ws_deflate_buf_t a, b, c, d;
    ws_deflate_result_e ra, rb;
    piece_t msgs[64];
    size_t nmsgs = 0, pos, step, limit, i;
    int bits, ctx, mem, level, same_verdict;

    if (size < 4)
        return 0;
    bits = 8 + data[0] % 8;
    ctx = !(data[0] & 0x80);
    mem = 1 + data[1] % 9;
    level = (data[1] >> 4) % 11 - 1;
    limit = (size_t)(data[2] % 32) * 128;
    step = data[3] % 64;
    for (pos = 4; pos < size && nmsgs < 64; nmsgs++) {
        msgs[nmsgs].len = data[pos] < size - pos - 1 ? data[pos]
                                                     : size - pos - 1;
        msgs[nmsgs].p = data + pos + 1;
        pos += 1 + msgs[nmsgs].len;
    }

    /* Arbitrary payloads, cut and whole. */
    same_verdict = bits == 15;
    cut = ws_deflate_inflater_create(bits, !ctx);
    whole = ws_deflate_inflater_create(bits, !ctx);
    if (!cut || !whole)
        abort();
    a = (ws_deflate_buf_t){ NULL, 0, 0, limit };
    b = (ws_deflate_buf_t){ NULL, 0, 0, limit };
    /* A failed message leaves each to start over at the next begin, as a
     * shared inflater would. */
    for (i = 0; i < nmsgs; i++) {
        a.len = b.len = 0;
        ra = inflate_msg(cut, msgs[i], step, &a);
        rb = inflate_msg(whole, msgs[i], 0, &b);
        if (same_verdict && (ra != rb
                             || (ra == WS_DEFLATE_OK
                                 && (a.len != b.len
                                     || (a.len && memcmp(a.data, b.data,
                                                         a.len))))))
            abort();
    }
    ws_deflate_inflater_trim(cut);
    ws_deflate_inflater_trim(whole);
    ws_deflate_inflater_destroy(cut);
    ws_deflate_inflater_destroy(whole);
    free(a.data);
    free(b.data);

    /* The same bytes sent as messages come back. */
    if (bits < 9)
        bits = 9;
    def = ws_deflate_deflater_create(bits, mem, level, !ctx);
    back = ws_deflate_inflater_create(bits, !ctx);
    if (!def || !back)
        abort();
    c = (ws_deflate_buf_t){ NULL, 0, 0, SIZE_MAX };
    d = (ws_deflate_buf_t){ NULL, 0, 0, limit };
    for (i = 0; i < nmsgs; i++) {
        c.len = d.len = 0;
        if (ws_deflate_compress(def, msgs[i].p, msgs[i].len, &c)
            != WS_DEFLATE_OK)
            abort();
        ra = inflate_msg(back, (piece_t){ c.data, c.len }, step, &d);
        if (msgs[i].len > limit) {
            if (ra != WS_DEFLATE_TOO_BIG || d.len != limit)
                abort();
            /* The peer's window went on without ours: start both over. */
            ws_deflate_inflater_destroy(back);
            ws_deflate_deflater_destroy(def);
            def = ws_deflate_deflater_create(bits, mem, level, !ctx);
            back = ws_deflate_inflater_create(bits, !ctx);
            if (!def || !back)
                abort();
            continue;
        }
        if (ra != WS_DEFLATE_OK || d.len != msgs[i].len
            || (d.len && memcmp(d.data, msgs[i].p, d.len)))
            abort();
    }
    ws_deflate_deflater_trim(def);
    ws_deflate_deflater_destroy(def);
    ws_deflate_inflater_destroy(back);
    free(c.data);
    free(d.data);
    return 0;
}
