/* engine_harness.h: what the engine's tests share: building masked
 * client frames, feeding them whole, a byte at a time and at random splits
 * (which must all give the same events), and draining and parsing the
 * server's output through the iovec interface as a driver would. */
#ifndef WS_ENGINE_HARNESS_H
#define WS_ENGINE_HARNESS_H

#include <string.h>

#include "test_util.h"
#include "ws_close.h"
#include "ws_engine.h"
#include "ws_frame.h"
#include "ws_mask.h"
#include "ws_utf8.h"

#define SEC ((int64_t)1000000)
#define MAX_EVENTS 64

static const uint8_t test_key[4] __attribute__((unused)) = { 0x37, 0xfa, 0x21, 0x3d };

/* ---- building client input ---- */

typedef struct wire {
    uint8_t buf[1 << 18];
    size_t len;
} wire_t;

static wire_t in __attribute__((unused));

/* Append a masked client frame. */
static inline void put_frame(wire_t *w, int fin, uint8_t rsv, uint8_t opcode,
                      const void *payload, size_t len)
{
    size_t h = ws_frame_write_header(w->buf + w->len, fin, rsv, opcode, len,
                                     test_key);
    ck_assert_uint_le(w->len + h + len, sizeof(w->buf));
    w->len += h;
    ws_mask_apply(w->buf + w->len, payload, len, test_key, 0);
    w->len += len;
}

static inline void put_close(wire_t *w, uint16_t code, const char *reason)
{
    uint8_t p[WS_CONTROL_MAX];
    size_t n = ws_close_build(p, code, reason, reason ? strlen(reason) : 0);
    put_frame(w, 1, 0, WS_OP_CLOSE, p, n);
}

static inline void put_raw(wire_t *w, const void *bytes, size_t len)
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
static const char *const split_names[] __attribute__((unused)) = { "whole", "bytes", "random" };

static inline uint32_t checksum(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

static inline void record(log_t *log, const ws_event_t *ev)
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
static inline void feed(ws_engine_t *e, const uint8_t *buf, size_t len, int mode,
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

/* permessage-deflate for the engines feed_modes() makes, or NULL. */
static const ws_engine_deflate_t *harness_deflate __attribute__((unused));

/* Run the input in every split mode against fresh engines and require the
 * same events each time; returns the log of the last mode and leaves its
 * engine in *out (or destroys it). */
static inline void feed_modes(const ws_engine_config_t *cfg, const wire_t *w,
                       log_t *log, ws_engine_t **out)
{
    log_t first;
    int mode, i;

    test_rng_init();
    for (mode = 0; mode < SPLIT_MODES; mode++) {
        ws_engine_t *e = ws_engine_create(cfg, 0);

        ck_assert_ptr_nonnull(e);
        if (harness_deflate)
            ck_assert_int_eq(ws_engine_set_deflate(e, harness_deflate), 0);
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
    uint8_t fin, rsv, opcode;
    size_t len;
    uint8_t data[256];
} frame_rec_t;

typedef struct out_log {
    frame_rec_t f[MAX_EVENTS];
    int n;
    uint8_t bytes[1 << 18];
    size_t len;
} out_log_t;

static out_log_t out __attribute__((unused));

/* Write everything the engine offers, max_write bytes at a time (0: all
 * offered at once), then parse it as a client would. */
static inline void drain(ws_engine_t *e, size_t max_write)
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

static inline void parse_output(void)
{
    ws_frame_parser_t p;
    const uint8_t *pos = out.bytes, *end = out.bytes + out.len, *data;
    size_t n;
    frame_rec_t *f = NULL;
    ws_frame_result_e r;

    out.n = 0;
    ws_frame_parser_init(&p, 0, WS_RSV1);
    while ((r = ws_frame_parse(&p, &pos, end, &data, &n))
           != WS_FRAME_NEED_MORE) {
        ck_assert_int_ne(r, WS_FRAME_ERROR);
        if (r == WS_FRAME_HEADER) {
            ck_assert_int_lt(out.n, MAX_EVENTS);
            f = &out.f[out.n++];
            memset(f, 0, sizeof(*f));
            f->fin = p.hdr.fin;
            f->rsv = p.hdr.rsv;
            f->opcode = p.hdr.opcode;
            /* RSV1 only where permessage-deflate is on. */
            ck_assert(harness_deflate || !p.hdr.rsv);
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

static inline void reset_out(void)
{
    memset(&out, 0, sizeof(out));
}

static inline void assert_close_frame(const frame_rec_t *f, uint16_t code)
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

static ws_engine_config_t cfg __attribute__((unused));

static inline void setup(void)
{
    ws_engine_config_default(&cfg);
    harness_deflate = NULL;
    memset(&in, 0, sizeof(in));
    reset_out();
}

#endif /* WS_ENGINE_HARNESS_H */
