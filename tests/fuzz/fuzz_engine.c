/* fuzz_engine.c: libFuzzer target for ws_engine, one server connection fed
 * arbitrary bytes from the client.
 *
 * The first CONFIG_BYTES choose the limits (small, so that they get hit),
 * the queue policy, the timers and a split pattern; one value of the policy
 * bits turns permessage-deflate on, and then DEFLATE_BYTES more choose its
 * parameters. The rest is the client's byte stream. One engine is driven
 * the way a driver would: input in chunks per the pattern, with sends (some
 * compressed, some of one shared message), partial writes, ticks on a fake
 * clock and now and then a close in between, every result checked against
 * the contract in ws_engine.h, and every byte it writes parsed back as
 * server frames, compressed messages inflated by an inflater of our own
 * and compared with what was sent. Two more engines get the same input
 * whole and in chunks, with nothing else going on, and must agree on every
 * event and every output byte. A broken invariant calls abort(). Only the
 * deflater lent to engines outlives a run (see lend()).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_close.h"
#include "ws_deflate.h"
#include "ws_engine.h"
#include "ws_frame.h"
#include "ws_msg.h"
#include "ws_utf8.h"

/* Byte 0: max_frame_size (bits 0-2), max_message_size (3-5), queue policy
 *         (6-7; 3 turns permessage-deflate on, and the policy comes from
 *         byte 9 instead);
 * byte 1: max_fragments (0-2), queue_cap (3-5), fragment_size (6-7);
 * byte 2: ping on (bit 0), idle timeout on (1), short close timeout (2),
 *         clock step per chunk in 100 ms (3-7);
 * bytes 3-6: the split pattern, used in turn for each chunk: bits 0-4 the
 *         chunk length less one (31: all that is left), bits 5-7 what the
 *         driver does after the chunk (see act()).
 * With permessage-deflate on, three more bytes come before the stream:
 * byte 7: the client's window bits (bits 0-2, 9 + n % 7), the client's
 *         no_context_takeover (3), our window bits (4-6, the same way),
 *         our no_context_takeover (7);
 * byte 8: our mem_level (bits 0-3, 1 + n % 9), our level (4-7, n % 11 - 1);
 * byte 9: min_size (bits 0-2), queue policy (3-4, 3 means refuse), what
 *         borrow_deflater answers (5-6, see borrow()), and (7) whether to
 *         try out-of-range parameters (bits 0-1 say which) and a second
 *         ws_engine_set_deflate() around the real one.
 * tests/fuzz/make_engine_seeds.py writes the seeds named pmd-* in that
 * layout. */
#define CONFIG_BYTES  7
#define PATTERN_AT    3
#define PATTERN_LEN   4
#define DEFLATE_BYTES 3

#define SEC ((int64_t)1000000)

/* Smallest limits and a few round ones: 0, 1 and 125 sit on boundaries the
 * engine must get right. */
static const uint64_t sizes[8] = { 0, 1, 2, 5, 16, 125, 65536, WS_UNLIMITED };
static const uint32_t fragments[8] = { 0, 1, 2, 3, 5, 16, 1024, 0 };
static const uint64_t caps[8] = { 0, 1, 5, 16, 100, 4096, 65536,
                                  WS_UNLIMITED };
static const uint64_t frag_sizes[4] = { 0, 1, 3, 100 };
/* do_send() sends up to 17 bytes of text and 159 of binary: these put some
 * messages on each side of min_size, or all on one. */
static const size_t min_sizes[8] = { 0, 1, 2, 5, 16, 125, 1000, SIZE_MAX };

/* permessage-deflate as this run set it up. */
typedef struct pmd {
    int                 on;
    ws_engine_deflate_t d;
    ws_queue_policy_e   policy;
    unsigned            borrow; /* 0 no callback; see borrow() for 1-3 */
    int                 probe;  /* try bad parameters and a second call */
    unsigned            bad;    /* which parameter to spoil */
} pmd_t;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "fuzz_engine.c:%d: invariant failed: %s\n",    \
                    __LINE__, #cond);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)

/* ---- a growable byte log ----------------------------------------------- */

typedef struct buf {
    uint8_t *p;
    size_t   len, cap;
} buf_t;

static void buf_put(buf_t *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;

        while (cap < b->len + len)
            cap *= 2;
        b->p = realloc(b->p, cap);
        CHECK(b->p != NULL);
        b->cap = cap;
    }
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
}

/* ---- the driven engine's output, parsed back --------------------------- */

/* What the engine writes must be a valid server-to-client stream: data
 * messages in the order they were queued, nothing after the Close (§5.5.1),
 * a Close body our own rules accept. */
typedef struct out_check {
    ws_frame_parser_t parser;
    ws_msg_t **sent;        /* messages queued, in order; references */
    size_t     nsent, capsent, next;
    uint64_t   moff;        /* payload bytes of sent[next] seen so far, as
                               they went (compressed or not) */
    uint8_t    cbuf[WS_CONTROL_MAX];
    size_t     clen;
    int        closed;      /* our Close frame went out */
    /* permessage-deflate: messages of at least min_size must come
     * compressed (SIZE_MAX when it is off); inf follows the client's
     * inflater, so each one inflates to exactly what was sent. */
    size_t     min_size;
    ws_inflater_t *inf;
    ws_deflate_buf_t plain; /* sent[next] inflated so far */
    int        zipped;      /* sent[next] came with RSV1 */
    /* Data messages seen whole, their bytes as sent and as they went:
     * what ws_engine_sent() and ws_engine_wire_bytes() must say. */
    uint64_t   msgs, bytes, wire;
} out_check_t;

static void out_init(out_check_t *c, const pmd_t *pmd)
{
    memset(c, 0, sizeof(*c));
    ws_frame_parser_init(&c->parser, 0, pmd->on ? WS_RSV1 : 0);
    c->min_size = SIZE_MAX;
    if (pmd->on) {
        c->min_size = pmd->d.min_size;
        c->inf = ws_deflate_inflater_create(pmd->d.deflate_window_bits,
                                            pmd->d.deflate_no_context);
        CHECK(c->inf != NULL);
    }
}

static void out_expect(out_check_t *c, ws_msg_t *msg)
{
    if (c->nsent == c->capsent) {
        c->capsent = c->capsent ? 2 * c->capsent : 16;
        c->sent = realloc(c->sent, c->capsent * sizeof(*c->sent));
        CHECK(c->sent != NULL);
    }
    c->sent[c->nsent++] = ws_msg_ref(msg);
}

static void out_bytes(out_check_t *c, const uint8_t *bytes, size_t len)
{
    const uint8_t *pos = bytes, *end = bytes + len, *data;
    size_t n;

    CHECK(!c->closed || len == 0);
    for (;;) {
        ws_frame_result_e r = ws_frame_parse(&c->parser, &pos, end, &data,
                                             &n);

        if (r == WS_FRAME_NEED_MORE)
            return;
        CHECK(r != WS_FRAME_ERROR);
        if (r == WS_FRAME_HEADER) {
            const ws_frame_header_t *h = &c->parser.hdr;

            c->clen = 0;
            if (h->opcode == WS_OP_TEXT || h->opcode == WS_OP_BINARY) {
                const ws_msg_t *m;

                CHECK(c->next < c->nsent);
                m = c->sent[c->next];
                CHECK(h->opcode == m->opcode);
                /* RFC 7692 §6: RSV1 on the first frame marks exactly the
                 * messages big enough to compress. */
                c->zipped = m->len >= c->min_size;
                CHECK(h->rsv == (c->zipped ? WS_RSV1 : 0));
                if (c->zipped) {
                    CHECK(ws_deflate_inflate_begin(c->inf) == WS_DEFLATE_OK);
                    c->plain.len = 0;
                    c->plain.max = m->len;
                }
                c->moff = 0;
            }
            else {
                CHECK(h->rsv == 0);
            }
        }
        else if (r == WS_FRAME_PAYLOAD) {
            if (WS_OP_IS_CONTROL(c->parser.hdr.opcode)) {
                memcpy(c->cbuf + c->clen, data, n);
                c->clen += n;
                continue;
            }
            if (c->zipped) {
                /* More than was sent is WS_DEFLATE_TOO_BIG. */
                CHECK(ws_deflate_inflate(c->inf, data, n, &c->plain)
                      == WS_DEFLATE_OK);
            }
            else {
                CHECK(c->moff + n <= c->sent[c->next]->len);
                CHECK(memcmp(c->sent[c->next]->data + c->moff, data, n)
                      == 0);
            }
            c->moff += n;
        }
        else if (c->parser.hdr.opcode == WS_OP_CLOSE) {
            const uint8_t *reason;
            size_t rlen;
            uint16_t code;
            const char *why;

            CHECK(ws_close_parse(c->cbuf, c->clen, &code, &reason, &rlen,
                                 &why) == 0);
            /* A message cut short by the close is fine; anything after
             * the close is not. */
            c->closed = 1;
            CHECK(pos == end);
            return;
        }
        else if (!WS_OP_IS_CONTROL(c->parser.hdr.opcode)
                 && c->parser.hdr.fin) {
            const ws_msg_t *m = c->sent[c->next];

            if (c->zipped) {
                CHECK(ws_deflate_inflate_finish(c->inf, &c->plain)
                      == WS_DEFLATE_OK);
                CHECK(c->plain.len == m->len);
                CHECK(m->len == 0
                      || memcmp(c->plain.data, m->data, m->len) == 0);
            }
            else {
                CHECK(c->moff == m->len);
            }
            c->msgs++;
            c->bytes += m->len;
            c->wire += c->moff;
            c->next++;
        }
    }
}

static void out_free(out_check_t *c)
{
    size_t i;

    for (i = 0; i < c->nsent; i++)
        ws_msg_unref(c->sent[i]);
    free(c->sent);
    free(c->plain.data);
    ws_deflate_inflater_destroy(c->inf);
}

/* ---- one engine and what it reported ------------------------------------ */

typedef struct run {
    ws_engine_t        *e;
    ws_engine_config_t  cfg;
    int64_t             now;
    uint64_t            fed;       /* input bytes consumed so far */
    int                 ended;     /* a CLOSE or ERROR event came */
    int                 saw_close; /* the peer's Close came */
    int                 close_sent;/* ws_engine_close() succeeded */
    buf_t               events;    /* for the differential check */
    buf_t               out;       /* every byte written, in order */
    buf_t               offered;   /* bytes offered and not yet written */
    out_check_t        *check;     /* NULL for the differential engines */
    unsigned            counter;   /* varies iovec counts */
    const pmd_t        *pmd;
    unsigned            borrows;   /* calls of borrow() */
    ws_msg_t           *shared;    /* sent again and again, or NULL */
    uint64_t            delivered; /* bytes of the messages received */
} run_t;

/* A compressed message is admitted on its uncompressed size and may then
 * take the queue past its cap by what zlib added: do_send() sends at most
 * 159 bytes, which grow by 159/7 + 16 at worst. */
#define ZIP_GROWTH 64

static void check_buffered(const run_t *r)
{
    uint64_t cap = r->cfg.queue_cap, slack = r->pmd->on ? ZIP_GROWTH : 0;

    CHECK(ws_engine_buffered(r->e) <= cap
          || ws_engine_buffered(r->e) - cap <= slack);
    /* An open engine has not expired, so no output means empty queues. */
    if (ws_engine_state(r->e) == WS_STATE_OPEN && !ws_engine_has_output(r->e))
        CHECK(ws_engine_buffered(r->e) == 0);
}

static void check_event(run_t *r, ws_event_type_e t, const ws_event_t *ev)
{
    uint64_t u;

    CHECK(ev->type == t);
    /* Nothing is reported after the connection ended, and after our Close
     * only the peer's Close. */
    CHECK(!r->ended);
    CHECK(!r->close_sent || t == WS_EVENT_CLOSE);
    CHECK(ev->len == 0 || ev->data != NULL);
    switch (t) {
    case WS_EVENT_MESSAGE:
        CHECK(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
        CHECK(ev->len <= r->cfg.max_message_size);
        /* §8.1: a text message is delivered only as valid UTF-8, also
         * once inflated (RFC 7692 §6.1). */
        CHECK(ev->opcode != WS_OP_TEXT || ws_utf8_valid(ev->data, ev->len));
        r->delivered += ev->len;
        break;
    case WS_EVENT_PING:
    case WS_EVENT_PONG:
        CHECK(ev->len <= WS_CONTROL_MAX);
        break;
    case WS_EVENT_CLOSE:
        CHECK(ws_close_code_valid(ev->code)
              || ev->code == WS_CLOSE_NO_STATUS);
        CHECK(ev->len <= WS_CONTROL_MAX - 2);
        CHECK(ws_utf8_valid(ev->data, ev->len));
        r->ended = 1;
        r->saw_close = 1;
        break;
    case WS_EVENT_ERROR:
        CHECK(ev->code == WS_CLOSE_PROTOCOL_ERROR
              || ev->code == WS_CLOSE_INVALID_DATA
              || ev->code == WS_CLOSE_POLICY
              || ev->code == WS_CLOSE_TOO_BIG
              || ev->code == WS_CLOSE_INTERNAL_ERROR);
        CHECK(ev->reason != NULL);
        CHECK(ev->offset <= r->fed);
        CHECK(ws_engine_state(r->e) == WS_STATE_CLOSED);
        r->ended = 1;
        break;
    default:
        CHECK(0);
    }
    u = t;
    buf_put(&r->events, &u, sizeof(u));
    u = (uint64_t)ev->opcode << 32 | ev->code;
    buf_put(&r->events, &u, sizeof(u));
    u = t == WS_EVENT_ERROR ? ev->offset : 0;
    buf_put(&r->events, &u, sizeof(u));
    u = ev->len;
    buf_put(&r->events, &u, sizeof(u));
    buf_put(&r->events, ev->data, ev->len);
}

/* Feed len bytes, calling again with the rest until WS_EVENT_NONE, as
 * ws_engine_feed() asks. */
static void feed(run_t *r, const uint8_t *in, size_t len)
{
    size_t off = 0, calls = 0;
    int was_closed = ws_engine_state(r->e) == WS_STATE_CLOSED;

    for (;;) {
        ws_event_t ev;
        size_t used = SIZE_MAX;
        ws_event_type_e t = ws_engine_feed(r->e, in + off, len - off, &used,
                                           r->now, &ev);

        CHECK(used <= len - off);
        r->fed += used;
        off += used;
        if (t == WS_EVENT_NONE) {
            CHECK(off == len);
            break;
        }
        /* An event is made of bytes: each one consumes some. */
        CHECK(used > 0);
        CHECK(!was_closed);
        CHECK(++calls <= len);
        check_event(r, t, &ev);
    }
    check_buffered(r);
}

/* Offer the output in up to 1-8 iovecs and write all, half or one byte of
 * it, as a socket taking part of a write would. Returns the bytes written. */
static size_t write_some(run_t *r, int how)
{
    ws_iovec_t iov[8], again[8];
    int n = 1 + (int)(r->counter++ % 8), k, k2, i;
    size_t total = 0, w, left, at;
    buf_t now = { 0 };

    k = ws_engine_output(r->e, iov, n);
    CHECK(k >= 0 && k <= n);
    CHECK((k > 0) == ws_engine_has_output(r->e));
    /* Described again, the same pieces in the same order. */
    k2 = ws_engine_output(r->e, again, n);
    CHECK(k2 == k);
    CHECK(memcmp(iov, again, (size_t)k * sizeof(iov[0])) == 0);
    for (i = 0; i < k; i++) {
        CHECK(iov[i].base != NULL && iov[i].len > 0);
        total += iov[i].len;
        buf_put(&now, iov[i].base, iov[i].len);
    }
    /* Bytes offered before are still the next ones, unchanged, whatever
     * was fed, sent, ticked or closed since: new frames go after them. An
     * engine that expired offers nothing more. */
    if (k == 0)
        r->offered.len = 0;
    at = now.len < r->offered.len ? now.len : r->offered.len;
    CHECK(at == 0 || memcmp(now.p, r->offered.p, at) == 0);
    if (now.len >= r->offered.len) {
        r->offered.len = 0;
        buf_put(&r->offered, now.p, now.len);
    }
    free(now.p);
    w = how == 0 ? total : how == 1 ? (total + 1) / 2 : total ? 1 : 0;
    for (i = 0, left = w; i < k && left; i++) {
        size_t piece = iov[i].len < left ? iov[i].len : left;

        buf_put(&r->out, iov[i].base, piece);
        if (r->check)
            out_bytes(r->check, iov[i].base, piece);
        left -= piece;
    }
    ws_engine_written(r->e, w);
    if (w) {
        memmove(r->offered.p, r->offered.p + w, r->offered.len - w);
        r->offered.len -= w;
    }
    if (r->check) {
        uint64_t msgs, bytes, in, out;

        /* Counted when their last byte is written, before compression
         * and as they went. */
        ws_engine_sent(r->e, &msgs, &bytes);
        ws_engine_wire_bytes(r->e, &in, &out);
        CHECK(msgs == r->check->msgs);
        CHECK(bytes == r->check->bytes);
        CHECK(out == r->check->wire);
    }
    /* A partly written first piece continues where the write stopped. */
    if (k && w < iov[0].len) {
        k2 = ws_engine_output(r->e, again, n);
        CHECK(k2 >= 1);
        CHECK((const uint8_t *)again[0].base
              == (const uint8_t *)iov[0].base + w);
        CHECK(again[0].len == iov[0].len - w);
    }
    check_buffered(r);
    return w;
}

/* Write everything the engine has, in small steps; stops early only if the
 * engine stops offering (it expired). Output that is offered can always be
 * written, so every round makes progress. */
static void drain(run_t *r)
{
    unsigned rounds = 0;

    while (ws_engine_has_output(r->e))
        CHECK(write_some(r, rounds++ % 3 == 2 ? 1 : 0) > 0);
}

/* With (sel & 10) == 10 the run's shared message is sent, made the first
 * time from what sel chose then: without context takeover the engine
 * compresses it once and keeps that with the message. */
static void do_send(run_t *r, const uint8_t *in, size_t len, unsigned sel)
{
    static const char text[] = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e!";
    ws_engine_state_e was = ws_engine_state(r->e);
    uint64_t before = ws_engine_buffered(r->e), grown;
    int shared = (sel & 10) == 10, zip;
    ws_send_result_e res;
    ws_msg_t *msg;
    size_t n;

    if (shared && r->shared) {
        msg = ws_msg_ref(r->shared);
    }
    /* Text from a fixed valid string, binary from the input itself. */
    else if (sel & 1) {
        n = sel % (sizeof(text) - 1);
        while (n > 0 && ((uint8_t)text[n] & 0xC0) == 0x80)
            n--;
        msg = ws_msg_create(WS_OP_TEXT, text, n);
    }
    else {
        /* Small, or a thousand sends split into 1-byte frames take long. */
        n = len < sel % 160 ? len : sel % 160;
        msg = ws_msg_create(WS_OP_BINARY, in, n);
    }
    CHECK(msg != NULL);
    if (shared && !r->shared)
        r->shared = ws_msg_ref(msg);
    n = msg->len;
    zip = r->pmd->on && n >= r->pmd->d.min_size;
    res = (sel & 2) ? ws_engine_send_msg(r->e, msg, r->now)
                    : ws_engine_send(r->e, msg->opcode, msg->data, msg->len,
                                     r->now);
    switch (res) {
    case WS_SEND_QUEUED:
        CHECK(was == WS_STATE_OPEN);
        CHECK(before <= r->cfg.queue_cap && n <= r->cfg.queue_cap - before);
        grown = ws_engine_buffered(r->e) - before;
        /* Compressed, it counts as it will go: at least one byte (an
         * empty message is 0x00, RFC 7692 §7.2.3.6). */
        CHECK(zip ? grown >= 1 : grown == n);
        if (r->check)
            out_expect(r->check, msg);
        break;
    case WS_SEND_REFUSED:
        CHECK(r->cfg.queue_policy == WS_QUEUE_REFUSE);
        /* Admitted or not on its uncompressed size, compressed or not. */
        CHECK(before > r->cfg.queue_cap || n > r->cfg.queue_cap - before);
        break;
    case WS_SEND_FAILED:
        CHECK(r->cfg.queue_policy != WS_QUEUE_REFUSE);
        CHECK(ws_engine_state(r->e) == WS_STATE_CLOSED);
        break;
    case WS_SEND_CLOSED:
        CHECK(was != WS_STATE_OPEN);
        break;
    default:
        CHECK(0);
    }
    ws_msg_unref(msg);
    check_buffered(r);
}

static void do_close(run_t *r, unsigned sel)
{
    static const uint16_t codes[] = { WS_CLOSE_NORMAL, WS_CLOSE_GOING_AWAY,
                                      WS_CLOSE_NO_STATUS, 4000 };
    /* 97 ASCII bytes and twelve 3-byte characters: the ninth straddles the
     * 123-byte limit, so ws_close_build() has to back up to 121. */
    static const char reason[] =
        "a reason longer than a control frame can carry, so that the engine "
        "has to cut it somewhere safe: "
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac";
    ws_engine_state_e was = ws_engine_state(r->e);
    int rc = ws_engine_close(r->e, codes[sel % 4], reason,
                             (sel / 4) % 2 ? sizeof(reason) - 1 : 6, r->now);

    CHECK((rc == 0) == (was == WS_STATE_OPEN));
    if (rc == 0) {
        CHECK(ws_engine_state(r->e) == WS_STATE_CLOSE_SENT);
        CHECK(ws_engine_buffered(r->e) == 0 || ws_engine_has_output(r->e));
        r->close_sent = 1;
    }
    check_buffered(r);
}

static void do_tick(run_t *r)
{
    int64_t next = ws_engine_tick(r->e, r->now);

    CHECK(next > r->now);
    CHECK(next == ws_engine_next_deadline(r->e));
    check_buffered(r);
}

/* What the driver does after a chunk, from the pattern byte's top bits. */
static void act(run_t *r, unsigned what, const uint8_t *in, size_t len,
                unsigned sel)
{
    switch (what) {
    case 0:
        break;
    case 1:
        write_some(r, 1);
        break;
    case 2:
        write_some(r, 0);
        break;
    case 3:
    case 4:
        do_send(r, in, len, sel);
        break;
    case 5:
        do_tick(r);
        break;
    case 6:
        write_some(r, 2);
        break;
    default:
        do_close(r, sel);
        break;
    }
}

/* The borrow_deflater callback, answering per pmd->borrow: 1 lends the
 * static deflater, 2 answers NULL, 3 does each in turn. */
static struct ws_deflater *lent;
static int lent_params[3];

static struct ws_deflater *borrow(void *ctx)
{
    run_t *r = ctx;
    unsigned call = r->borrows++;

    /* Only a compressor without context may be lent (ws_engine.h). */
    CHECK(r->pmd->d.deflate_no_context);
    CHECK(r->pmd->borrow != 0);
    if (r->pmd->borrow == 1 || (r->pmd->borrow == 3 && call % 2))
        return lent;
    return NULL;
}

/* Make the static deflater match d, as a driver lends one per thread to
 * every connection with the same parameters. It is kept from run to run as
 * the driver keeps it from connection to connection, so it must hold
 * nothing from one message to the next; a new one is made only when the
 * parameters change. */
static void lend(const ws_engine_deflate_t *d)
{
    if (lent && lent_params[0] == d->deflate_window_bits
        && lent_params[1] == d->deflate_mem_level
        && lent_params[2] == d->deflate_level)
        return;
    ws_deflate_deflater_destroy(lent);
    lent = ws_deflate_deflater_create(d->deflate_window_bits,
                                      d->deflate_mem_level, d->deflate_level,
                                      1);
    CHECK(lent != NULL);
    lent_params[0] = d->deflate_window_bits;
    lent_params[1] = d->deflate_mem_level;
    lent_params[2] = d->deflate_level;
}

static void pmd_config(pmd_t *pmd, const uint8_t *c)
{
    ws_engine_deflate_t *d = &pmd->d;

    memset(pmd, 0, sizeof(*pmd));
    pmd->on = 1;
    d->inflate_window_bits = 9 + (c[0] & 7) % 7;
    d->inflate_no_context = (c[0] >> 3) & 1;
    d->deflate_window_bits = 9 + ((c[0] >> 4) & 7) % 7;
    d->deflate_no_context = c[0] >> 7;
    d->deflate_mem_level = 1 + (c[1] & 15) % 9;
    d->deflate_level = (c[1] >> 4) % 11 - 1;
    d->min_size = min_sizes[c[2] & 7];
    pmd->policy = (ws_queue_policy_e)(((c[2] >> 3) & 3) % 3);
    pmd->borrow = (c[2] >> 5) & 3;
    pmd->probe = c[2] >> 7;
    pmd->bad = c[2] & 3;
    if (pmd->borrow)
        d->borrow_deflater = borrow;
}

/* Turn deflate on for r, per pmd. */
static void pmd_apply(run_t *r, const pmd_t *pmd)
{
    ws_engine_deflate_t d = pmd->d;

    r->pmd = pmd;
    if (!pmd->on)
        return;
    d.borrow_ctx = r;
    if (pmd->probe) {
        ws_engine_deflate_t bad = d;

        switch (pmd->bad) {
        case 0:
            bad.inflate_window_bits = 16;
            break;
        case 1:
            bad.deflate_window_bits = 8;    /* zlib's raw deflate refuses */
            break;
        case 2:
            bad.deflate_mem_level = 10;
            break;
        default:
            bad.deflate_level = 10;
            break;
        }
        CHECK(ws_engine_set_deflate(r->e, &bad) == -1);
    }
    CHECK(ws_engine_set_deflate(r->e, &d) == 0);
    if (pmd->probe)
        CHECK(ws_engine_set_deflate(r->e, &d) == -1);
}

static void config(ws_engine_config_t *cfg, const uint8_t *c,
                   const pmd_t *pmd)
{
    ws_engine_config_default(cfg);
    cfg->max_frame_size = sizes[c[0] & 7];
    cfg->max_message_size = sizes[(c[0] >> 3) & 7];
    cfg->queue_policy = (ws_queue_policy_e)((c[0] >> 6) % 3);
    if (pmd->on)
        cfg->queue_policy = pmd->policy;
    cfg->max_fragments = fragments[c[1] & 7];
    cfg->queue_cap = caps[(c[1] >> 3) & 7];
    cfg->fragment_size = frag_sizes[c[1] >> 6];
    cfg->ping_interval = (c[2] & 1) ? 1 * SEC : 0;
    cfg->idle_timeout = (c[2] & 2) ? 3 * SEC : 0;
    cfg->close_timeout = (c[2] & 4) ? 2 * SEC : 0;
}

static void run_init(run_t *r, const ws_engine_config_t *cfg,
                     const pmd_t *pmd, int64_t now, out_check_t *check)
{
    memset(r, 0, sizeof(*r));
    r->cfg = *cfg;
    r->now = now;
    r->check = check;
    r->e = ws_engine_create(cfg, now);
    CHECK(r->e != NULL);
    pmd_apply(r, pmd);
}

/* The end of a connection: the peer's EOF, then what close info says. */
static void run_finish(run_t *r)
{
    ws_close_info_t info;
    uint64_t in, out;

    /* Without compression, messages count as they came. */
    ws_engine_wire_bytes(r->e, &in, &out);
    CHECK(r->pmd->on || in == r->delivered);
    /* What it counts is the engine's business, but a driver may ask in any
     * state, with or without zlib's state allocated. */
    CHECK(ws_engine_memory(r->e) > 0);
    ws_engine_eof(r->e, r->now);
    CHECK(ws_engine_state(r->e) == WS_STATE_CLOSED);
    CHECK(strcmp(ws_engine_state_name(ws_engine_state(r->e)), "closed") == 0);
    CHECK(ws_engine_want_close(r->e));
    ws_engine_close_info(r->e, &info);
    CHECK(ws_close_code_valid(info.code) || info.code == WS_CLOSE_NO_STATUS
          || info.code == WS_CLOSE_ABNORMAL);
    CHECK(info.clean == r->saw_close);
    ws_engine_destroy(r->e);
    ws_msg_unref(r->shared);
    free(r->events.p);
    free(r->out.p);
    free(r->offered.p);
}

/* The next chunk's length from a pattern byte, at most left. */
static size_t chunk_len(uint8_t p, size_t left)
{
    size_t n = (p & 31) == 31 ? left : (size_t)(p & 31) + 1;

    return n < left ? n : left;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *in = data + CONFIG_BYTES, *pattern = data + PATTERN_AT;
    ws_engine_config_t cfg;
    pmd_t pmd, wide;
    int64_t step, now = 1000 * SEC;
    out_check_t check;
    run_t a, whole, split;
    ws_close_info_t wi, si;
    size_t len, pos, n, k;
    ws_event_t ev;

    if (size < CONFIG_BYTES)
        return 0;
    memset(&pmd, 0, sizeof(pmd));
    if (data[0] >> 6 == 3) {
        if (size < CONFIG_BYTES + DEFLATE_BYTES)
            return 0;
        pmd_config(&pmd, data + CONFIG_BYTES);
        in += DEFLATE_BYTES;
        if (pmd.borrow && pmd.d.deflate_no_context)
            lend(&pmd.d);
    }
    len = size - (size_t)(in - data);
    config(&cfg, data, &pmd);
    step = (int64_t)(data[2] >> 3) * SEC / 10;

    /* The driven engine. */
    out_init(&check, &pmd);
    run_init(&a, &cfg, &pmd, now, &check);
    for (pos = 0, k = 0; pos < len; k++) {
        uint8_t p = pattern[k % PATTERN_LEN];

        n = chunk_len(p, len - pos);
        feed(&a, in + pos, n);
        pos += n;
        a.now += step;
        act(&a, p >> 5, in, pos, (unsigned)(k * 7 + p));
    }
    do_tick(&a);
    drain(&a);
    /* Feeding nothing is allowed and reports nothing. */
    CHECK(ws_engine_feed(a.e, NULL, 0, &n, a.now, &ev) == WS_EVENT_NONE);
    CHECK(n == 0);
    /* Past every deadline: the close handshake is given up on. */
    a.now += 3600 * SEC;
    do_tick(&a);
    drain(&a);
    run_finish(&a);
    out_free(&check);

    /* The differential pair: whole and split must be indistinguishable.
     * They inflate with a 15-bit window: zlib enforces a smaller one only
     * when a distance reaches past the output of the same inflate() call,
     * so whether a client that breaks its window is caught depends on how
     * its bytes were split. */
    wide = pmd;
    wide.d.inflate_window_bits = 15;
    run_init(&whole, &cfg, &wide, now, NULL);
    run_init(&split, &cfg, &wide, now, NULL);
    feed(&whole, in, len);
    for (pos = 0, k = 0; pos < len; k++) {
        n = chunk_len(pattern[k % PATTERN_LEN], len - pos);
        feed(&split, in + pos, n);
        pos += n;
    }
    CHECK(whole.fed == split.fed);
    CHECK(whole.events.len == split.events.len);
    CHECK(whole.events.len == 0
          || memcmp(whole.events.p, split.events.p, whole.events.len) == 0);
    CHECK(ws_engine_state(whole.e) == ws_engine_state(split.e));
    drain(&whole);
    drain(&split);
    CHECK(whole.out.len == split.out.len);
    CHECK(whole.out.len == 0
          || memcmp(whole.out.p, split.out.p, whole.out.len) == 0);
    ws_engine_close_info(whole.e, &wi);
    ws_engine_close_info(split.e, &si);
    CHECK(wi.code == si.code && wi.clean == si.clean
          && wi.by_server == si.by_server);
    run_finish(&whole);
    run_finish(&split);
    /* A driver may let what it lends go when its thread is idle; the next
     * borrower's message allocates again. */
    if (lent && pmd.borrow == 3)
        ws_deflate_deflater_trim(lent);
    return 0;
}
