/* ws_deflate.c: the permessage-deflate codec (RFC 7692 §7.2) over zlib's
 * raw deflate. It turns payloads into payloads and nothing else: no
 * framing, no negotiation, no I/O, no logging.
 *
 * Inflated output is bounded by the caller's buffer limit as it is
 * produced, never checked after the fact, so a message that inflates to
 * gigabytes costs at most the limit. zlib allocates through a counter, so
 * the memory a connection holds can be told and given back when idle.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST
#include <zlib.h>

#include "ws_deflate.h"

/* What a sync flush ends with and §7.2.1 strips: the LEN and NLEN of an
 * empty stored block. */
static const uint8_t flush_tail[4] = { 0x00, 0x00, 0xff, 0xff };

/* The first allocation for an empty output buffer; also more than any
 * room reserve() is asked for, so one doubling always makes enough. */
#define MIN_CAP 256

/* Room the compressor asks for before each call: zlib.h wants more than 6
 * bytes when flushing, or it may repeat the flush marker. */
#define DEFLATE_ROOM 64

struct ws_inflater {
    z_stream strm;               /* initialised while live */
    size_t   zmem;               /* bytes zlib holds through count_alloc */
    int      window_bits;
    uint8_t  no_context_takeover;
    uint8_t  live;               /* strm holds zlib state */
    uint8_t  in_message;         /* between begin and finish */
    uint8_t  fed;                /* the message has payload bytes */
    uint8_t  boundary;           /* the last call left inflate between
                                    DEFLATE blocks */
    ws_deflate_result_e failed;  /* why the current message failed */
};

struct ws_deflater {
    z_stream strm;               /* initialised while live */
    size_t   zmem;               /* bytes zlib holds through count_alloc */
    int      window_bits;
    int      mem_level;
    int      level;
    uint8_t  no_context_takeover;
    uint8_t  live;               /* strm holds zlib state */
};

/* Each block zlib gets carries its size in front, so that freeing it can
 * be counted; the union keeps the block's alignment that of malloc. */
typedef union zblock {
    max_align_t align;
    size_t      size;
} zblock_t;

static voidpf count_alloc(voidpf opaque, uInt items, uInt size)
{
    size_t *held = opaque, n;
    zblock_t *b;

    if (size && items > (SIZE_MAX - sizeof(*b)) / size)
        return Z_NULL;
    n = (size_t)items * size + sizeof(*b);
    if (!(b = malloc(n)))
        return Z_NULL;
    b->size = n;
    *held += n;
    return b + 1;
}

static void count_free(voidpf opaque, voidpf p)
{
    zblock_t *b = (zblock_t *)p - 1;

    *(size_t *)opaque -= b->size;
    free(b);
}

static void stream_init(z_stream *z, size_t *held)
{
    memset(z, 0, sizeof(*z));
    z->zalloc = count_alloc;
    z->zfree = count_free;
    z->opaque = held;
}

/* Room for want more bytes in out, or for as many as out->max leaves when
 * that is fewer (at least one). WS_DEFLATE_TOO_BIG when out is at max. */
static ws_deflate_result_e reserve(ws_deflate_buf_t *out, size_t want)
{
    size_t cap;
    uint8_t *p;

    if (out->len >= out->max)
        return WS_DEFLATE_TOO_BIG;
    if (out->cap - out->len >= want || out->cap >= out->max)
        return WS_DEFLATE_OK;
    /* Doubling keeps many small appends linear in time. */
    cap = out->cap > SIZE_MAX / 2 ? SIZE_MAX : out->cap * 2;
    if (cap < MIN_CAP)
        cap = MIN_CAP;
    if (cap > out->max)
        cap = out->max;
    if (!(p = realloc(out->data, cap)))
        return WS_DEFLATE_FAILED;
    out->data = p;
    out->cap = cap;
    return WS_DEFLATE_OK;
}

/* Point zlib's output at out's free room; returns the room given. */
static uInt aim_output(z_stream *z, ws_deflate_buf_t *out)
{
    size_t room = out->cap - out->len;

    z->next_out = out->data + out->len;
    z->avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
    return z->avail_out;
}

ws_inflater_t *ws_deflate_inflater_create(int window_bits,
                                          int no_context_takeover)
{
    ws_inflater_t *inf;

    if (window_bits < 8 || window_bits > 15)
        return NULL;
    if (!(inf = calloc(1, sizeof(*inf))))
        return NULL;
    inf->window_bits = window_bits;
    inf->no_context_takeover = no_context_takeover != 0;
    return inf;
}

void ws_deflate_inflater_destroy(ws_inflater_t *inf)
{
    if (!inf)
        return;
    if (inf->live)
        inflateEnd(&inf->strm);
    free(inf);
}

ws_deflate_result_e ws_deflate_inflate_begin(ws_inflater_t *inf)
{
    if (!inf->live) {
        stream_init(&inf->strm, &inf->zmem);
        /* Negative bits: raw deflate, no zlib header or checksum (§7.2). */
        if (inflateInit2(&inf->strm, -inf->window_bits) != Z_OK)
            return WS_DEFLATE_FAILED;
        inf->live = 1;
    }
    else if (inf->failed && inflateReset(&inf->strm) != Z_OK) {
        return WS_DEFLATE_FAILED;
    }
    inf->failed = WS_DEFLATE_OK;
    inf->in_message = 1;
    inf->fed = 0;
    inf->boundary = 1;
    return WS_DEFLATE_OK;
}

/* Inflate the input zlib was given into out, until the input is used up
 * and zlib holds no more output, or out is full and more would come. */
static ws_deflate_result_e run_inflate(ws_inflater_t *inf,
                                       ws_deflate_buf_t *out)
{
    z_stream *z = &inf->strm;
    ws_deflate_result_e r;
    uint8_t probe;
    uInt given;
    int rc, full;

    for (;;) {
        if ((r = reserve(out, 1)) == WS_DEFLATE_FAILED)
            return r;
        full = r == WS_DEFLATE_TOO_BIG;
        if (full) {
            /* out is at its limit: one byte of room tells whether the
             * message holds more, without inflating the rest of it. */
            z->next_out = &probe;
            z->avail_out = given = 1;
        }
        else {
            given = aim_output(z, out);
        }
        rc = inflate(z, Z_SYNC_FLUSH);
        if (full) {
            if (z->avail_out == 0)
                return WS_DEFLATE_TOO_BIG;
        }
        else {
            out->len += given - z->avail_out;
        }
        switch (rc) {
        case Z_OK:
            /* zlib.h: 128 in data_type, inflate stopped between blocks. */
            inf->boundary = (z->data_type & 128) != 0;
            break;
        case Z_BUF_ERROR:
            /* No progress, so no move; and data_type would mislead: a
             * call that starts between blocks leaves that state before it
             * finds no input. */
            break;
        case Z_STREAM_END:
            /* A block with BFINAL set ends the DEFLATE stream; §7.2.1
             * lets the sender pad it to a byte and go on, as in the
             * §7.2.3.4 example, so what follows is a new stream, with an
             * empty window as any new stream has. */
            if (inflateReset(z) != Z_OK)
                return WS_DEFLATE_FAILED;
            inf->boundary = 1;
            break;
        case Z_DATA_ERROR:
        case Z_NEED_DICT:
            return WS_DEFLATE_CORRUPT;
        default:
            return WS_DEFLATE_FAILED;
        }
        /* Room left over means zlib wanted input, not room: it has given
         * all it can from what it was fed. */
        if (z->avail_in == 0 && z->avail_out != 0)
            return WS_DEFLATE_OK;
    }
}

/* The message failed: remember why, for later calls, until begin. */
static ws_deflate_result_e inflate_failed(ws_inflater_t *inf,
                                          ws_deflate_result_e why)
{
    inf->failed = why;
    inf->in_message = 0;
    return why;
}

ws_deflate_result_e ws_deflate_inflate(ws_inflater_t *inf, const uint8_t *in,
                                       size_t len, ws_deflate_buf_t *out)
{
    ws_deflate_result_e r;
    uInt n;

    if (!inf->in_message)
        return inf->failed ? inf->failed : WS_DEFLATE_FAILED;
    inf->fed |= len != 0;
    while (len) {
        /* zlib counts input in uInt. */
        n = len > UINT_MAX ? UINT_MAX : (uInt)len;
        inf->strm.next_in = in;
        inf->strm.avail_in = n;
        if ((r = run_inflate(inf, out)) != WS_DEFLATE_OK)
            return inflate_failed(inf, r);
        in += n;
        len -= n;
    }
    return WS_DEFLATE_OK;
}

ws_deflate_result_e ws_deflate_inflate_finish(ws_inflater_t *inf,
                                              ws_deflate_buf_t *out)
{
    ws_deflate_result_e r;

    if (!inf->in_message)
        return inf->failed ? inf->failed : WS_DEFLATE_FAILED;
    inf->in_message = 0;
    /* §7.2.3.6 makes an empty message 0x00, but a sender that sends no
     * payload at all can only mean an empty message too; inflating just
     * the tail would leave a stored block open. */
    if (!inf->fed)
        return WS_DEFLATE_OK;
    inf->strm.next_in = flush_tail;
    inf->strm.avail_in = sizeof(flush_tail);
    if ((r = run_inflate(inf, out)) != WS_DEFLATE_OK)
        return inflate_failed(inf, r);
    /* The tail completes the empty stored block every sender ends a
     * message with (§7.2.1), which leaves inflate between blocks. Elsewhere
     * the message was cut inside a block, and the next one would be read
     * as its continuation. */
    if (!inf->boundary)
        return inflate_failed(inf, WS_DEFLATE_CORRUPT);
    /* §7.2.2: without context takeover the next message starts with an
     * empty window. */
    if (inf->no_context_takeover && inflateReset(&inf->strm) != Z_OK)
        return inflate_failed(inf, WS_DEFLATE_FAILED);
    return WS_DEFLATE_OK;
}

void ws_deflate_inflater_trim(ws_inflater_t *inf)
{
    uInt history = 0;

    if (!inf->live || inf->in_message)
        return;
    /* With context takeover the window is the state the peer counts on,
     * unless a BFINAL block emptied it or a failure made it useless. */
    if (!inf->no_context_takeover && !inf->failed
        && (inflateGetDictionary(&inf->strm, NULL, &history) != Z_OK
            || history != 0))
        return;
    inflateEnd(&inf->strm);
    inf->live = 0;
}

size_t ws_deflate_inflater_memory(const ws_inflater_t *inf)
{
    return sizeof(*inf) + inf->zmem;
}

ws_deflater_t *ws_deflate_deflater_create(int window_bits, int mem_level,
                                          int level, int no_context_takeover)
{
    ws_deflater_t *def;

    if (window_bits < 9 || window_bits > 15 || mem_level < 1
        || mem_level > 9 || level < Z_DEFAULT_COMPRESSION || level > 9)
        return NULL;
    if (!(def = calloc(1, sizeof(*def))))
        return NULL;
    def->window_bits = window_bits;
    def->mem_level = mem_level;
    def->level = level;
    def->no_context_takeover = no_context_takeover != 0;
    return def;
}

void ws_deflate_deflater_destroy(ws_deflater_t *def)
{
    if (!def)
        return;
    if (def->live)
        deflateEnd(&def->strm);
    free(def);
}

/* Compress the input zlib was given into out with flush, until the input
 * is used up and, for a flush, all its output is out. */
static ws_deflate_result_e run_deflate(z_stream *z, int flush,
                                       ws_deflate_buf_t *out)
{
    ws_deflate_result_e r;
    uInt given;

    do {
        if ((r = reserve(out, DEFLATE_ROOM)) != WS_DEFLATE_OK)
            return r;
        given = aim_output(z, out);
        /* Z_BUF_ERROR only says a call made no progress; the loop ends
         * before one could, so anything but progress is zlib refusing. */
        if (deflate(z, flush) == Z_STREAM_ERROR)
            return WS_DEFLATE_FAILED;
        out->len += given - z->avail_out;
    } while (z->avail_in != 0 || z->avail_out == 0);
    return WS_DEFLATE_OK;
}

ws_deflate_result_e ws_deflate_compress(ws_deflater_t *def, const void *data,
                                        size_t len, ws_deflate_buf_t *out)
{
    z_stream *z = &def->strm;
    const uint8_t *in = data;
    size_t start = out->len;
    ws_deflate_result_e r;
    uInt n;

    if (len == 0) {
        /* §7.2.3.6: the payload of an empty message is the 0x00 that
         * starts an empty stored block. zlib gives that only on a fresh
         * stream; after a flush it gives nothing, so write it here. The
         * window does not change, so neither does zlib's state. */
        if ((r = reserve(out, 1)) != WS_DEFLATE_OK)
            return r;
        out->data[out->len++] = 0x00;
        return WS_DEFLATE_OK;
    }
    if (!def->live) {
        stream_init(z, &def->zmem);
        /* Negative bits: raw deflate, no zlib header or checksum (§7.2). */
        if (deflateInit2(z, def->level, Z_DEFLATED, -def->window_bits,
                         def->mem_level, Z_DEFAULT_STRATEGY) != Z_OK)
            return WS_DEFLATE_FAILED;
        def->live = 1;
    }
    do {
        /* zlib counts input in uInt. */
        n = len > UINT_MAX ? UINT_MAX : (uInt)len;
        z->next_in = in;
        z->avail_in = n;
        in += n;
        len -= n;
        r = run_deflate(z, len ? Z_NO_FLUSH : Z_SYNC_FLUSH, out);
        if (r != WS_DEFLATE_OK)
            goto failed;
    } while (len);
    /* zlib.h: a sync flush ends with an empty stored block, whose LEN and
     * NLEN §7.2.1 removes. */
    if (out->len - start < sizeof(flush_tail)
        || memcmp(out->data + out->len - sizeof(flush_tail), flush_tail,
                  sizeof(flush_tail)) != 0) {
        r = WS_DEFLATE_FAILED;
        goto failed;
    }
    out->len -= sizeof(flush_tail);
    /* §7.2.1: without context takeover each message starts with an empty
     * window. */
    if (def->no_context_takeover)
        deflateReset(z);
    return WS_DEFLATE_OK;

failed:
    /* Half a message in the window would corrupt the next one; start
     * afresh (the peer's window is lost with context takeover anyway). */
    out->len = start;
    deflateReset(z);
    return r;
}

void ws_deflate_deflater_trim(ws_deflater_t *def)
{
    if (!def->live || !def->no_context_takeover)
        return;
    deflateEnd(&def->strm);
    def->live = 0;
}

size_t ws_deflate_deflater_memory(const ws_deflater_t *def)
{
    return sizeof(*def) + def->zmem;
}
