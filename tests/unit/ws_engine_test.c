/* ws_engine_test.c: the per-connection state machine, driven as a driver
 * would drive it: client frames in (whole, a byte at a time and at random
 * splits, which must all give the same events), server frames out through
 * the iovec interface with writes of any size, and time passed in. */
#include <string.h>

#include "test_util.h"
#include "ws_close.h"
#include "ws_engine.h"
#include "ws_frame.h"
#include "ws_mask.h"
#include "ws_utf8.h"

#define SEC ((int64_t)1000000)
#define MAX_EVENTS 64

static const uint8_t test_key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* ---- building client input ---- */

typedef struct wire {
    uint8_t buf[1 << 18];
    size_t len;
} wire_t;

static wire_t in;

/* Append a masked client frame. */
static void put_frame(wire_t *w, int fin, uint8_t rsv, uint8_t opcode,
                      const void *payload, size_t len)
{
    size_t h = ws_frame_write_header(w->buf + w->len, fin, rsv, opcode, len,
                                     test_key);
    ck_assert_uint_le(w->len + h + len, sizeof(w->buf));
    w->len += h;
    ws_mask_apply(w->buf + w->len, payload, len, test_key, 0);
    w->len += len;
}

static void put_close(wire_t *w, uint16_t code, const char *reason)
{
    uint8_t p[WS_CONTROL_MAX];
    size_t n = ws_close_build(p, code, reason, reason ? strlen(reason) : 0);
    put_frame(w, 1, 0, WS_OP_CLOSE, p, n);
}

static void put_raw(wire_t *w, const void *bytes, size_t len)
{
    memcpy(w->buf + w->len, bytes, len);
    w->len += len;
}

/* ---- feeding and recording events ---- */

typedef struct rec {
    ws_event_type_e type;
    uint8_t opcode;
    uint16_t code;
    uint64_t offset;
    size_t len;
    uint8_t data[256]; /* first bytes of the payload */
    uint32_t sum;      /* checksum of the whole payload */
} rec_t;

typedef struct log {
    rec_t ev[MAX_EVENTS];
    int n;
} log_t;

enum { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM, SPLIT_MODES };
static const char *const split_names[] = { "whole", "bytes", "random" };

static uint32_t checksum(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

static void record(log_t *log, const ws_event_t *ev)
{
    rec_t *r;

    ck_assert_int_lt(log->n, MAX_EVENTS);
    r = &log->ev[log->n++];
    memset(r, 0, sizeof(*r));
    r->type = ev->type;
    r->opcode = ev->opcode;
    r->code = ev->code;
    r->offset = ev->type == WS_EVENT_ERROR ? ev->offset : 0;
    r->len = ev->len;
    if (ev->len)
        memcpy(r->data, ev->data, ev->len < sizeof(r->data) ? ev->len
                                                           : sizeof(r->data));
    r->sum = checksum(ev->data, ev->len);
}

/* Feed len bytes as a driver would, in pieces chosen by mode. */
static void feed(ws_engine_t *e, const uint8_t *buf, size_t len, int mode,
                 int64_t now, log_t *log)
{
    size_t off = 0;

    while (off < len) {
        size_t piece = mode == SPLIT_WHOLE ? len - off
                     : mode == SPLIT_BYTES ? 1 : test_rng_len(97);
        size_t pos = 0, used;
        ws_event_t ev;

        if (piece > len - off)
            piece = len - off;
        for (;;) {
            ws_event_type_e t = ws_engine_feed(e, buf + off + pos,
                                               piece - pos, &used, now, &ev);
            ck_assert_uint_le(used, piece - pos);
            pos += used;
            if (t == WS_EVENT_NONE) {
                ck_assert_uint_eq(pos, piece);
                break;
            }
            ck_assert_int_eq(t, ev.type);
            record(log, &ev);
        }
        off += piece;
    }
}

/* Run the input in every split mode against fresh engines and require the
 * same events each time; returns the log of the last mode and leaves its
 * engine in *out (or destroys it). */
static void feed_modes(const ws_engine_config_t *cfg, const wire_t *w,
                       log_t *log, ws_engine_t **out)
{
    log_t first;
    int mode, i;

    test_rng_init();
    for (mode = 0; mode < SPLIT_MODES; mode++) {
        ws_engine_t *e = ws_engine_create(cfg, 0);

        ck_assert_ptr_nonnull(e);
        memset(log, 0, sizeof(*log));
        feed(e, w->buf, w->len, mode, 0, log);
        if (mode == 0) {
            first = *log;
        }
        else {
            ck_assert_msg(log->n == first.n, "%s split: %d events, not %d",
                          split_names[mode], log->n, first.n);
            for (i = 0; i < log->n; i++)
                ck_assert_msg(!memcmp(&log->ev[i], &first.ev[i],
                                      sizeof(rec_t)),
                              "%s split: event %d differs",
                              split_names[mode], i);
        }
        if (out && mode == SPLIT_MODES - 1)
            *out = e;
        else
            ws_engine_destroy(e);
    }
}

/* ---- draining and parsing server output ---- */

typedef struct frame_rec {
    uint8_t fin, opcode;
    size_t len;
    uint8_t data[256];
} frame_rec_t;

typedef struct out_log {
    frame_rec_t f[MAX_EVENTS];
    int n;
    uint8_t bytes[1 << 18];
    size_t len;
} out_log_t;

static out_log_t out;

/* Write everything the engine offers, max_write bytes at a time (0: all
 * offered at once), then parse it as a client would. */
static void drain(ws_engine_t *e, size_t max_write)
{
    ws_iovec_t iov[8];
    int n, i;

    while ((n = ws_engine_output(e, iov, 8)) > 0) {
        size_t budget = max_write ? max_write : SIZE_MAX, wrote = 0;

        for (i = 0; i < n && budget; i++) {
            size_t k = iov[i].len < budget ? iov[i].len : budget;
            ck_assert_uint_le(out.len + k, sizeof(out.bytes));
            memcpy(out.bytes + out.len, iov[i].base, k);
            out.len += k;
            wrote += k;
            budget -= k;
        }
        ws_engine_written(e, wrote);
    }
}

static void parse_output(void)
{
    ws_frame_parser_t p;
    const uint8_t *pos = out.bytes, *end = out.bytes + out.len, *data;
    size_t n;
    frame_rec_t *f = NULL;
    ws_frame_result_e r;

    out.n = 0;
    ws_frame_parser_init(&p, 0, 0);
    while ((r = ws_frame_parse(&p, &pos, end, &data, &n))
           != WS_FRAME_NEED_MORE) {
        ck_assert_int_ne(r, WS_FRAME_ERROR);
        if (r == WS_FRAME_HEADER) {
            ck_assert_int_lt(out.n, MAX_EVENTS);
            f = &out.f[out.n++];
            memset(f, 0, sizeof(*f));
            f->fin = p.hdr.fin;
            f->opcode = p.hdr.opcode;
            ck_assert(!p.hdr.masked);   /* §5.1: servers never mask */
        }
        else if (r == WS_FRAME_PAYLOAD) {
            size_t room = sizeof(f->data) - f->len;
            memcpy(f->data + (f->len < sizeof(f->data) ? f->len : 0), data,
                   f->len < sizeof(f->data) ? (n < room ? n : room) : 0);
            f->len += n;
        }
    }
}

static void reset_out(void)
{
    memset(&out, 0, sizeof(out));
}

static void assert_close_frame(const frame_rec_t *f, uint16_t code)
{
    ck_assert_int_eq(f->opcode, WS_OP_CLOSE);
    if (code == WS_CLOSE_NO_STATUS) {
        ck_assert_uint_eq(f->len, 0);
    }
    else {
        ck_assert_uint_ge(f->len, 2);
        ck_assert_uint_eq((f->data[0] << 8) | f->data[1], code);
    }
}

static ws_engine_config_t cfg;

static void setup(void)
{
    ws_engine_config_default(&cfg);
    memset(&in, 0, sizeof(in));
    reset_out();
}

/* ---- messages ---- */

/* RFC 6455 §5.7: a single-frame masked text message. */
START_TEST(rfc6455_5_7_masked_hello)
{
    static const uint8_t frame[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                     0x9f, 0x4d, 0x51, 0x58 };
    log_t log;

    put_raw(&in, frame, sizeof(frame));
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_MESSAGE);
    ck_assert_int_eq(log.ev[0].opcode, WS_OP_TEXT);
    ck_assert_uint_eq(log.ev[0].len, 5);
    ck_assert_mem_eq(log.ev[0].data, "Hello", 5);
}
END_TEST

/* §5.4, §5.5: control frames may come between fragments; the pong carries
 * the ping's payload (§5.5.3). */
START_TEST(rfc6455_5_4_fragments_with_ping_between)
{
    ws_engine_t *e;
    log_t log;

    put_frame(&in, 0, 0, WS_OP_TEXT, "Hel", 3);
    put_frame(&in, 1, 0, WS_OP_PING, "ping!", 5);
    put_frame(&in, 0, 0, WS_OP_CONTINUATION, "l", 1);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, "o", 1);
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_PING);
    ck_assert_mem_eq(log.ev[0].data, "ping!", 5);
    ck_assert_int_eq(log.ev[1].type, WS_EVENT_MESSAGE);
    ck_assert_uint_eq(log.ev[1].len, 5);
    ck_assert_mem_eq(log.ev[1].data, "Hello", 5);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_PONG);
    ck_assert_mem_eq(out.f[0].data, "ping!", 5);
    ws_engine_destroy(e);
}
END_TEST

/* §8.1: a character split across two frames is still valid. */
START_TEST(rfc6455_8_1_utf8_across_frames)
{
    static const char euro[] = "\xe2\x82\xac";   /* U+20AC */
    log_t log;

    put_frame(&in, 0, 0, WS_OP_TEXT, euro, 1);
    put_frame(&in, 0, 0, WS_OP_CONTINUATION, euro + 1, 1);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, euro + 2, 1);
    put_frame(&in, 1, 0, WS_OP_BINARY, "\xff\xfe", 2);  /* binary: no check */
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_MESSAGE);
    ck_assert_mem_eq(log.ev[0].data, euro, 3);
    ck_assert_int_eq(log.ev[1].opcode, WS_OP_BINARY);
}
END_TEST

START_TEST(rfc6455_5_6_empty_messages)
{
    log_t log;

    put_frame(&in, 1, 0, WS_OP_TEXT, "", 0);
    put_frame(&in, 0, 0, WS_OP_BINARY, "", 0);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, "", 0);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.ev[0].opcode, WS_OP_TEXT);
    ck_assert_uint_eq(log.ev[0].len, 0);
    ck_assert_int_eq(log.ev[1].opcode, WS_OP_BINARY);
    ck_assert_uint_eq(log.ev[1].len, 0);
}
END_TEST

/* A large message arrives whole and the buffer is let go once delivered,
 * so an idle connection holds no large buffer. */
START_TEST(large_message_buffer_released)
{
    static uint8_t big[100000];
    ws_engine_t *e;
    log_t log;
    size_t i, used;
    ws_event_t ev;

    for (i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    put_frame(&in, 0, 0, WS_OP_BINARY, big, 40000);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, big + 40000, sizeof(big) - 40000);
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_uint_eq(log.ev[0].len, sizeof(big));
    ck_assert_uint_eq(log.ev[0].sum, checksum(big, sizeof(big)));
    /* The feed loop already ran to WS_EVENT_NONE after the message. */
    ck_assert_uint_lt(ws_engine_memory(e), 2048);
    ck_assert_int_eq(ws_engine_feed(e, NULL, 0, &used, 0, &ev),
                     WS_EVENT_NONE);
    ws_engine_destroy(e);
}
END_TEST

/* ---- limits ---- */

/* A frame over the limit fails from its header, before its payload. */
START_TEST(limit_frame_size_from_header)
{
    ws_engine_t *e;
    log_t log;
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    size_t h;

    cfg.max_frame_size = 1000;
    h = ws_frame_write_header(hdr, 1, 0, WS_OP_BINARY, 1001, test_key);
    put_raw(&in, hdr, h);   /* no payload follows */
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_ERROR);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_TOO_BIG);
    ck_assert_uint_eq(log.ev[0].offset, h);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSED);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], WS_CLOSE_TOO_BIG);
    ck_assert(ws_engine_want_close(e));
    ws_engine_destroy(e);
}
END_TEST

START_TEST(limit_message_size_across_fragments)
{
    static uint8_t chunk[600];
    log_t log;

    cfg.max_message_size = 1000;
    put_frame(&in, 0, 0, WS_OP_BINARY, chunk, sizeof(chunk));
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, chunk, sizeof(chunk));
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_TOO_BIG);
    ck_assert_uint_eq(log.ev[0].offset, 2 * 4 + 600 + 2 * 4);
}
END_TEST

START_TEST(limit_message_size_exact_fits)
{
    static uint8_t chunk[500];
    log_t log;

    cfg.max_message_size = 1000;
    cfg.max_frame_size = 500;
    put_frame(&in, 0, 0, WS_OP_BINARY, chunk, sizeof(chunk));
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, chunk, sizeof(chunk));
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_MESSAGE);
    ck_assert_uint_eq(log.ev[0].len, 1000);
}
END_TEST

START_TEST(limit_fragments_per_message)
{
    log_t log;
    int i;

    cfg.max_fragments = 3;
    put_frame(&in, 0, 0, WS_OP_TEXT, "a", 1);
    for (i = 0; i < 2; i++)
        put_frame(&in, 0, 0, WS_OP_CONTINUATION, "b", 1);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, "c", 1);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_ERROR);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_POLICY);
}
END_TEST

/* ---- protocol errors (§7.1.7) ---- */

START_TEST(rfc6455_8_1_invalid_utf8_fails_at_byte)
{
    ws_engine_t *e;
    log_t log;

    /* The surrogate lead ED A0 is invalid at A0, mid-frame. */
    put_frame(&in, 1, 0, WS_OP_TEXT, "abc\xed\xa0\x80xyz", 9);
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_ERROR);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_INVALID_DATA);
    ck_assert_uint_eq(log.ev[0].offset, 6 + 4);
    drain(e, 0);
    parse_output();
    assert_close_frame(&out.f[0], WS_CLOSE_INVALID_DATA);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(rfc6455_8_1_text_cut_inside_character)
{
    log_t log;

    put_frame(&in, 0, 0, WS_OP_TEXT, "ok\xe2\x82", 4);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, "", 0);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_INVALID_DATA);
}
END_TEST

/* Each case: the bytes, the close code, the offset of the bad byte. */
static const struct {
    const char *name;
    uint8_t bytes[16];
    size_t len;
    uint16_t code;
    uint64_t offset;
} bad_frames[] = {
    { "unmasked client frame", { 0x81, 0x01, 'a' }, 3, 1002, 1 },
    { "reserved opcode 3", { 0x83, 0x80, 0, 0, 0, 0 }, 6, 1002, 0 },
    { "reserved opcode 0xB", { 0x8B, 0x80, 0, 0, 0, 0 }, 6, 1002, 0 },
    { "RSV1 without extension", { 0xC1, 0x80, 0, 0, 0, 0 }, 6, 1002, 0 },
    { "fragmented ping", { 0x09, 0x80, 0, 0, 0, 0 }, 6, 1002, 0 },
    { "long ping", { 0x89, 0xFE, 0, 126 }, 4, 1002, 1 },
    { "lone continuation", { 0x80, 0x80, 0, 0, 0, 0 }, 6, 1002, 0 },
    { "64-bit length top bit", { 0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0 },
      10, 1002, 2 },
    { "close of one byte", { 0x88, 0x81, 0, 0, 0, 0, 0x03 }, 7, 1002, 6 },
    { "close code 1005", { 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xED }, 8, 1002, 6 },
    { "close code 999", { 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE7 }, 8, 1002, 6 },
    { "close reason not UTF-8", { 0x88, 0x83, 0, 0, 0, 0, 0x03, 0xE8, 0xFF },
      9, 1007, 6 },
};

START_TEST(rfc6455_7_1_7_bad_frames)
{
    ws_engine_t *e;
    log_t log;

    put_raw(&in, bad_frames[_i].bytes, bad_frames[_i].len);
    put_frame(&in, 1, 0, WS_OP_TEXT, "after", 5);   /* never delivered */
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_msg(log.n == 1, "%s: %d events", bad_frames[_i].name, log.n);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_ERROR);
    ck_assert_msg(log.ev[0].code == bad_frames[_i].code, "%s: code %d",
                  bad_frames[_i].name, log.ev[0].code);
    ck_assert_msg(log.ev[0].offset == bad_frames[_i].offset, "%s: at %llu",
                  bad_frames[_i].name,
                  (unsigned long long)log.ev[0].offset);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], bad_frames[_i].code);
    ck_assert(ws_engine_want_close(e));
    ws_engine_destroy(e);
}
END_TEST

/* After a protocol error nothing more is read or sent. */
START_TEST(rfc6455_7_1_7_nothing_after_failure)
{
    ws_engine_t *e;
    log_t log;

    put_raw(&in, (const uint8_t[]){ 0x83, 0x80, 0, 0, 0, 0 }, 6);
    put_frame(&in, 1, 0, WS_OP_PING, "x", 1);
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "late", 4, 0),
                     WS_SEND_CLOSED);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    ws_engine_destroy(e);
}
END_TEST

/* ---- the close handshake (§5.5.1, §7) ---- */

START_TEST(rfc6455_5_5_1_peer_close_is_echoed)
{
    ws_engine_t *e;
    log_t log;
    ws_close_info_t ci;

    put_close(&in, 1001, "bye");
    put_frame(&in, 1, 0, WS_OP_TEXT, "after", 5);   /* ignored */
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_CLOSE);
    ck_assert_int_eq(log.ev[0].code, 1001);
    ck_assert_uint_eq(log.ev[0].len, 3);
    ck_assert_mem_eq(log.ev[0].data, "bye", 3);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSED);
    ck_assert(!ws_engine_want_close(e));   /* our reply is not out yet */
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "x", 1, 0),
                     WS_SEND_CLOSED);
    drain(e, 1);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], 1001);
    ck_assert_uint_eq(out.f[0].len, 2);   /* the code, no reason */
    ck_assert(ws_engine_want_close(e));
    ws_engine_close_info(e, &ci);
    ck_assert_int_eq(ci.code, 1001);
    ck_assert(ci.clean);
    ck_assert(!ci.by_server);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(rfc6455_5_5_1_empty_close_gets_empty_close)
{
    ws_engine_t *e;
    log_t log;

    put_frame(&in, 1, 0, WS_OP_CLOSE, "", 0);
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_NO_STATUS);
    drain(e, 0);
    parse_output();
    assert_close_frame(&out.f[0], WS_CLOSE_NO_STATUS);
    ws_engine_destroy(e);
}
END_TEST

/* Queued messages not yet started are dropped when a close arrives: the
 * close is sent as soon as practical (§5.5.1). */
START_TEST(rfc6455_5_5_1_close_overtakes_queue)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    log_t log = { .n = 0 };

    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "queued", 6, 0),
                     WS_SEND_QUEUED);
    ck_assert_uint_eq(ws_engine_buffered(e), 6);
    put_close(&in, 1000, NULL);
    feed(e, in.buf, in.len, SPLIT_WHOLE, 0, &log);
    ck_assert_uint_eq(ws_engine_buffered(e), 0);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], 1000);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(rfc6455_7_1_2_server_close_waits_for_peer)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    log_t log = { .n = 0 };
    ws_close_info_t ci;

    ck_assert_int_eq(ws_engine_close(e, 4000, "done", 4, 0), 0);
    ck_assert_int_eq(ws_engine_close(e, 1000, NULL, 0, 0), -1);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSE_SENT);
    drain(e, 3);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], 4000);
    ck_assert_mem_eq(out.f[0].data + 2, "done", 4);
    ck_assert(!ws_engine_want_close(e));
    /* Data and pings that cross our close are dropped, unanswered. */
    put_frame(&in, 1, 0, WS_OP_TEXT, "crossing", 8);
    put_frame(&in, 1, 0, WS_OP_PING, "p", 1);
    put_close(&in, 4000, NULL);
    feed(e, in.buf, in.len, SPLIT_BYTES, SEC, &log);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_CLOSE);
    ck_assert(!ws_engine_has_output(e));
    ck_assert(ws_engine_want_close(e));
    ws_engine_close_info(e, &ci);
    ck_assert_int_eq(ci.code, 4000);
    ck_assert(ci.clean);
    ck_assert(ci.by_server);
    ws_engine_destroy(e);
}
END_TEST

/* A message whose frame was under way when we sent our close is dropped
 * with the rest (§5.5.1: after a close, no more data). */
START_TEST(rfc6455_5_5_1_frame_under_way_at_close)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    log_t log = { .n = 0 };

    put_frame(&in, 1, 0, WS_OP_BINARY, "ab", 2);
    feed(e, in.buf, in.len - 1, SPLIT_WHOLE, 0, &log);
    ck_assert_int_eq(ws_engine_close(e, 1000, NULL, 0, 0), 0);
    feed(e, in.buf + in.len - 1, 1, SPLIT_WHOLE, 0, &log);
    ck_assert_int_eq(log.n, 0);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSE_SENT);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(rfc6455_7_1_1_close_deadline)
{
    ws_engine_t *e;
    ws_close_info_t ci;

    cfg.close_timeout = 2 * SEC;
    e = ws_engine_create(&cfg, 0);
    ws_engine_close(e, 1000, NULL, 0, 10 * SEC);
    ck_assert_int_eq(ws_engine_next_deadline(e), 12 * SEC);
    ck_assert_int_eq(ws_engine_tick(e, 11 * SEC), 12 * SEC);
    ck_assert(!ws_engine_want_close(e));
    /* The peer never reads nor answers: give up at the deadline. */
    ck_assert_int_eq(ws_engine_tick(e, 12 * SEC), WS_NO_DEADLINE);
    ck_assert(ws_engine_want_close(e));
    ws_engine_close_info(e, &ci);
    ck_assert(!ci.clean);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(rfc6455_7_1_5_eof_is_abnormal)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    ws_close_info_t ci;

    ws_engine_send(e, WS_OP_TEXT, "never sent", 10, 0);
    ws_engine_eof(e, SEC);
    ck_assert(ws_engine_want_close(e));
    ck_assert(!ws_engine_has_output(e));
    ws_engine_close_info(e, &ci);
    ck_assert_int_eq(ci.code, WS_CLOSE_ABNORMAL);
    ck_assert(!ci.clean);
    ws_engine_destroy(e);
}
END_TEST

/* ---- output ---- */

/* A pong overtakes data that is queued but not yet on its way. */
START_TEST(rfc6455_5_5_3_pong_ahead_of_data)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    log_t log = { .n = 0 };

    ws_engine_send(e, WS_OP_TEXT, "data", 4, 0);
    put_frame(&in, 1, 0, WS_OP_PING, "1", 1);
    put_frame(&in, 1, 0, WS_OP_PING, "2", 1);
    feed(e, in.buf, in.len, SPLIT_WHOLE, 0, &log);
    ck_assert_int_eq(log.n, 2);
    drain(e, 0);
    parse_output();
    /* Only the latest ping is answered (§5.5.3 allows it). */
    ck_assert_int_eq(out.n, 2);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_PONG);
    ck_assert_mem_eq(out.f[0].data, "2", 1);
    ck_assert_int_eq(out.f[1].opcode, WS_OP_TEXT);
    ws_engine_destroy(e);
}
END_TEST

/* Bytes already offered keep their place: a pong that arrives while a
 * frame is half written goes after it. */
START_TEST(output_order_is_stable)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    log_t log = { .n = 0 };
    ws_iovec_t iov[8];
    int n;

    ws_engine_send(e, WS_OP_BINARY, "0123456789", 10, 0);
    n = ws_engine_output(e, iov, 8);
    ck_assert_int_eq(n, 2);
    ck_assert_uint_eq(iov[0].len, 2);
    memcpy(out.bytes, iov[0].base, 2);
    memcpy(out.bytes + 2, iov[1].base, 3);
    out.len = 5;
    ws_engine_written(e, 5);
    ck_assert_uint_eq(ws_engine_buffered(e), 7);
    put_frame(&in, 1, 0, WS_OP_PING, "p", 1);
    feed(e, in.buf, in.len, SPLIT_WHOLE, 0, &log);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 2);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_BINARY);
    ck_assert_mem_eq(out.f[0].data, "0123456789", 10);
    ck_assert_int_eq(out.f[1].opcode, WS_OP_PONG);
    ck_assert_uint_eq(ws_engine_buffered(e), 0);
    ws_engine_destroy(e);
}
END_TEST

/* Outgoing fragmentation at the configured size, with a control frame
 * slipping in between fragments (§5.4). */
START_TEST(rfc6455_5_4_outgoing_fragments)
{
    ws_engine_t *e;
    log_t log = { .n = 0 };
    ws_iovec_t iov[2];

    cfg.fragment_size = 10;
    e = ws_engine_create(&cfg, 0);
    ws_engine_send(e, WS_OP_TEXT, "abcdefghijklmnopqrstuvwxy", 25, 0);
    /* Take the first fragment only, then a ping arrives. */
    ck_assert_int_eq(ws_engine_output(e, iov, 2), 2);
    memcpy(out.bytes, iov[0].base, iov[0].len);
    memcpy(out.bytes + iov[0].len, iov[1].base, iov[1].len);
    out.len = iov[0].len + iov[1].len;
    ws_engine_written(e, out.len);
    put_frame(&in, 1, 0, WS_OP_PING, "", 0);
    feed(e, in.buf, in.len, SPLIT_WHOLE, 0, &log);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 4);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_TEXT);
    ck_assert(!out.f[0].fin);
    ck_assert_uint_eq(out.f[0].len, 10);
    ck_assert_int_eq(out.f[1].opcode, WS_OP_PONG);
    ck_assert_int_eq(out.f[2].opcode, WS_OP_CONTINUATION);
    ck_assert(!out.f[2].fin);
    ck_assert_int_eq(out.f[3].opcode, WS_OP_CONTINUATION);
    ck_assert(out.f[3].fin);
    ck_assert_uint_eq(out.f[3].len, 5);
    ck_assert_mem_eq(out.f[3].data, "uvwxy", 5);
    ws_engine_destroy(e);
}
END_TEST

/* Whatever the write sizes, the byte stream is the same, with minimal
 * length encodings (§5.2). */
START_TEST(output_any_write_size)
{
    static const size_t sizes[] = { 0, 125, 126, 65535, 65536, 70000 };
    static const size_t writes[] = { 1, 3, 7, 1000 };
    static uint8_t payload[70000];
    static uint8_t expect[1 << 18];
    size_t elen = 0, i, w;

    for (i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i ^ (i >> 8));
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        elen += ws_frame_write_header(expect + elen, 1, 0, WS_OP_BINARY,
                                      sizes[i], NULL);
        memcpy(expect + elen, payload, sizes[i]);
        elen += sizes[i];
    }
    for (w = 0; w < sizeof(writes) / sizeof(writes[0]); w++) {
        ws_engine_t *e;

        cfg.queue_cap = WS_UNLIMITED;
        e = ws_engine_create(&cfg, 0);
        reset_out();
        for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            ck_assert_int_eq(ws_engine_send(e, WS_OP_BINARY, payload,
                                            sizes[i], 0), WS_SEND_QUEUED);
        drain(e, writes[w]);
        ck_assert_uint_eq(out.len, elen);
        ck_assert(!memcmp(out.bytes, expect, elen));
        ck_assert_uint_eq(ws_engine_buffered(e), 0);
        ws_engine_destroy(e);
    }
}
END_TEST

/* One shared message in the queues of two connections. */
START_TEST(output_shared_message)
{
    ws_engine_t *a = ws_engine_create(&cfg, 0), *b = ws_engine_create(&cfg, 0);
    ws_msg_t *msg = ws_msg_create(WS_OP_TEXT, "shared", 6);

    ck_assert_int_eq(ws_engine_send_msg(a, msg, 0), WS_SEND_QUEUED);
    ck_assert_int_eq(ws_engine_send_msg(b, msg, 0), WS_SEND_QUEUED);
    ws_msg_unref(msg);
    drain(a, 0);
    ws_engine_destroy(a);
    drain(b, 2);
    parse_output();
    ck_assert_int_eq(out.n, 2);
    ck_assert_mem_eq(out.f[1].data, "shared", 6);
    ws_engine_destroy(b);
}
END_TEST

/* ---- the outgoing queue cap ---- */

START_TEST(queue_cap_refuse)
{
    ws_engine_t *e;

    cfg.queue_cap = 10;
    cfg.queue_policy = WS_QUEUE_REFUSE;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "123456", 6, 0),
                     WS_SEND_QUEUED);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "12345", 5, 0),
                     WS_SEND_REFUSED);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "1234", 4, 0),
                     WS_SEND_QUEUED);
    ck_assert_uint_eq(ws_engine_buffered(e), 10);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_OPEN);
    drain(e, 0);
    ck_assert_uint_eq(ws_engine_buffered(e), 0);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "12345", 5, 0),
                     WS_SEND_QUEUED);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(queue_cap_fail)
{
    static const struct {
        ws_queue_policy_e policy;
        uint16_t code;
    } cases[] = { { WS_QUEUE_FAIL_1008, 1008 }, { WS_QUEUE_FAIL_1013, 1013 } };
    ws_engine_t *e;
    ws_close_info_t ci;

    cfg.queue_cap = 10;
    cfg.queue_policy = cases[_i].policy;
    e = ws_engine_create(&cfg, 0);
    ws_engine_send(e, WS_OP_TEXT, "123456", 6, 0);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "12345", 5, 0),
                     WS_SEND_FAILED);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSED);
    ck_assert_uint_eq(ws_engine_buffered(e), 0);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], cases[_i].code);
    ck_assert(ws_engine_want_close(e));
    ws_engine_close_info(e, &ci);
    ck_assert_int_eq(ci.code, cases[_i].code);
    ck_assert(ci.by_server);
    ws_engine_destroy(e);
}
END_TEST

/* ---- time ---- */

START_TEST(timers_keepalive_ping)
{
    ws_engine_t *e;
    log_t log = { .n = 0 };

    cfg.ping_interval = 30 * SEC;
    cfg.idle_timeout = 100 * SEC;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_next_deadline(e), 30 * SEC);
    ck_assert_int_eq(ws_engine_tick(e, 29 * SEC), 30 * SEC);
    ck_assert(!ws_engine_has_output(e));
    /* Input postpones the ping. */
    put_frame(&in, 1, 0, WS_OP_BINARY, "x", 1);
    feed(e, in.buf, in.len, SPLIT_WHOLE, 20 * SEC, &log);
    ck_assert_int_eq(ws_engine_tick(e, 30 * SEC), 50 * SEC);
    ck_assert(!ws_engine_has_output(e));
    ck_assert_int_eq(ws_engine_tick(e, 50 * SEC), 80 * SEC);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_PING);
    /* The pong is an event and counts as input. */
    memset(&in, 0, sizeof(in));
    put_frame(&in, 1, 0, WS_OP_PONG, "", 0);
    log.n = 0;
    feed(e, in.buf, in.len, SPLIT_BYTES, 51 * SEC, &log);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_PONG);
    ck_assert_int_eq(ws_engine_next_deadline(e), 81 * SEC);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(timers_idle_timeout_closes)
{
    ws_engine_t *e;
    ws_close_info_t ci;

    cfg.ping_interval = 0;
    cfg.idle_timeout = 60 * SEC;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_next_deadline(e), 60 * SEC);
    ws_engine_tick(e, 60 * SEC);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSED);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], WS_CLOSE_GOING_AWAY);
    ck_assert(ws_engine_want_close(e));
    ws_engine_close_info(e, &ci);
    ck_assert(ci.by_server);
    ck_assert(!ci.clean);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(timers_off)
{
    ws_engine_t *e;

    cfg.ping_interval = 0;
    cfg.idle_timeout = 0;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_tick(e, 1000000 * SEC), WS_NO_DEADLINE);
    ck_assert(!ws_engine_has_output(e));
    ws_engine_destroy(e);
}
END_TEST

/* A few hundred bytes per idle connection. */
START_TEST(memory_idle_connection)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);

    printf("idle engine: %zu bytes\n", ws_engine_memory(e));
    ck_assert_uint_le(ws_engine_memory(e), 1024);
    ws_engine_destroy(e);
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *s = suite_create("ws_engine");
    TCase *tc;

    tc = tcase_create("messages");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, rfc6455_5_7_masked_hello);
    tcase_add_test(tc, rfc6455_5_4_fragments_with_ping_between);
    tcase_add_test(tc, rfc6455_8_1_utf8_across_frames);
    tcase_add_test(tc, rfc6455_5_6_empty_messages);
    tcase_add_test(tc, large_message_buffer_released);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, limit_frame_size_from_header);
    tcase_add_test(tc, limit_message_size_across_fragments);
    tcase_add_test(tc, limit_message_size_exact_fits);
    tcase_add_test(tc, limit_fragments_per_message);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, rfc6455_8_1_invalid_utf8_fails_at_byte);
    tcase_add_test(tc, rfc6455_8_1_text_cut_inside_character);
    tcase_add_loop_test(tc, rfc6455_7_1_7_bad_frames, 0,
                        sizeof(bad_frames) / sizeof(bad_frames[0]));
    tcase_add_test(tc, rfc6455_7_1_7_nothing_after_failure);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, rfc6455_5_5_1_peer_close_is_echoed);
    tcase_add_test(tc, rfc6455_5_5_1_empty_close_gets_empty_close);
    tcase_add_test(tc, rfc6455_5_5_1_close_overtakes_queue);
    tcase_add_test(tc, rfc6455_7_1_2_server_close_waits_for_peer);
    tcase_add_test(tc, rfc6455_5_5_1_frame_under_way_at_close);
    tcase_add_test(tc, rfc6455_7_1_1_close_deadline);
    tcase_add_test(tc, rfc6455_7_1_5_eof_is_abnormal);
    suite_add_tcase(s, tc);

    tc = tcase_create("output");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, rfc6455_5_5_3_pong_ahead_of_data);
    tcase_add_test(tc, output_order_is_stable);
    tcase_add_test(tc, rfc6455_5_4_outgoing_fragments);
    tcase_add_test(tc, output_any_write_size);
    tcase_add_test(tc, output_shared_message);
    tcase_add_test(tc, queue_cap_refuse);
    tcase_add_loop_test(tc, queue_cap_fail, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("time and memory");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, timers_keepalive_ping);
    tcase_add_test(tc, timers_idle_timeout_closes);
    tcase_add_test(tc, timers_off);
    tcase_add_test(tc, memory_idle_connection);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(engine_suite)
