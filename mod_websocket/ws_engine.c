/* ws_engine.c: one connection's WebSocket state machine (RFC 6455 §5-§7).
 *
 * Input runs through the frame parser into reassembly, UTF-8 checks and the
 * close rules; output is kept as queues of frames that the driver writes
 * from iovecs pointing at the messages themselves. Nothing here does I/O,
 * reads a clock, logs or locks.
 */
#include <stdlib.h>
#include <string.h>

#include "ws_close.h"
#include "ws_deflate.h"
#include "ws_engine.h"
#include "ws_mask.h"
#include "ws_utf8.h"

/* A reassembly buffer up to this size is kept for the next message; a
 * larger one is freed once its message is delivered, so an idle connection
 * holds no large buffer. */
#define KEEP_BUFFER 4096

/* Compressed payload is unmasked through a buffer of this size on its way
 * to the inflater. */
#define UNMASK_CHUNK 4096

/* Frames exposed to the driver at once (two iovecs each). */
#define INFLIGHT 4

#define DEFAULT_CLOSE_TIMEOUT (5 * (int64_t)1000000)

/* A control frame to send, header and payload in one block. */
typedef struct ctrl_frame {
    struct ctrl_frame *next;
    uint8_t opcode;
    uint8_t len;
    uint8_t bytes[2 + WS_CONTROL_MAX];
} ctrl_frame_t;

/* A queued data message and how much of it has been framed. */
typedef struct data_out {
    struct data_out *next;
    ws_msg_t *msg;
    uint64_t framed;   /* payload bytes already exposed as frames */
} data_out_t;

/* A frame exposed to the driver: its header and its payload. */
typedef struct out_frame {
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    uint8_t hdr_len;
    uint8_t is_data;
    uint8_t ends_msg;    /* the last frame of its data message */
    const uint8_t *payload;
    size_t payload_len;
    ctrl_frame_t *ctrl;  /* owned control frame, or NULL */
    ws_msg_t *msg;       /* a reference for data frames, or NULL */
} out_frame_t;

struct ws_engine {
    ws_engine_config_t cfg;
    ws_engine_state_e state;
    ws_frame_parser_t parser;

    /* The message being received. */
    uint8_t   msg_opcode;    /* 0 when none is open */
    uint32_t  msg_frames;
    uint8_t  *rbuf;
    size_t    rlen;
    size_t    rcap;
    size_t    frame_end;     /* rlen when the current frame is complete */
    ws_utf8_t utf8;
    uint8_t   delivered;     /* the message was handed out */
    uint8_t   discard;       /* drop data payloads (we sent a close) */
    uint8_t   compressed;    /* the message has RSV1 (permessage-deflate) */
    uint64_t  wire_len;      /* its payload bytes as received */

    /* permessage-deflate, once ws_engine_set_deflate() turned it on. */
    ws_engine_deflate_t deflate;
    ws_inflater_t *inflater; /* NULL when off */
    ws_deflater_t *deflater;
    uint16_t  deflate_key;   /* without context takeover, our compression
                                parameters, under which a shared message's
                                compressed form is kept; else 0 */

    /* The control frame being received. */
    uint8_t   cbuf[WS_CONTROL_MAX];
    uint8_t   clen;

    /* How it ends. */
    ws_close_info_t close;
    uint8_t   close_frame_seen; /* a close frame was received */
    uint8_t   expired;          /* the close deadline passed, or TCP broke */
    int64_t   close_deadline;

    /* Timers. */
    int64_t   last_rx;
    int64_t   last_ping;

    /* Output: frames exposed to the driver, then control frames, then data
     * messages. Control frames overtake data that is not yet exposed. */
    out_frame_t inflight[INFLIGHT];
    unsigned  in_head;
    unsigned  in_count;
    size_t    in_written;    /* bytes of inflight[in_head] already written */
    ctrl_frame_t *ctrl_head, *ctrl_tail;
    ctrl_frame_t *pong;      /* a queued pong not yet exposed, or NULL */
    data_out_t *data_head, *data_tail;
    uint64_t  buffered;
    uint64_t  sent_msgs;     /* data messages written in full */
    uint64_t  sent_bytes;    /* and their payload bytes, uncompressed */
    uint64_t  sent_wire;     /* and as they went (maybe compressed) */
    uint64_t  recv_wire;     /* payload bytes of the messages received, as
                                they came (maybe compressed) */
};

static const char *const state_names[] = {
    [WS_STATE_OPEN] = "open",
    [WS_STATE_CLOSE_SENT] = "close-sent",
    [WS_STATE_CLOSED] = "closed",
};

const char *ws_engine_state_name(ws_engine_state_e state)
{
    return state <= WS_STATE_CLOSED ? state_names[state] : "unknown";
}

void ws_engine_config_default(ws_engine_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_frame_size = 1 << 20;
    cfg->max_message_size = 1 << 20;
    cfg->max_fragments = 1024;
    cfg->queue_cap = 4 << 20;
    cfg->queue_policy = WS_QUEUE_REFUSE;
    cfg->fragment_size = 0;
    cfg->ping_interval = 30 * (int64_t)1000000;
    cfg->idle_timeout = 60 * (int64_t)1000000;
    cfg->close_timeout = DEFAULT_CLOSE_TIMEOUT;
}

ws_engine_t *ws_engine_create(const ws_engine_config_t *cfg, int64_t now)
{
    ws_engine_t *e = calloc(1, sizeof(*e));

    if (!e)
        return NULL;
    e->cfg = *cfg;
    if (e->cfg.close_timeout <= 0)
        e->cfg.close_timeout = DEFAULT_CLOSE_TIMEOUT;
    ws_frame_parser_init(&e->parser, 1, 0);
    e->state = WS_STATE_OPEN;
    e->close.code = WS_CLOSE_ABNORMAL;
    e->close_deadline = WS_NO_DEADLINE;
    e->last_rx = now;
    e->last_ping = now;
    return e;
}

int ws_engine_set_deflate(ws_engine_t *e, const ws_engine_deflate_t *d)
{
    ws_inflater_t *inf;
    ws_deflater_t *def;

    if (e->inflater)
        return -1;
    if (!(inf = ws_deflate_inflater_create(d->inflate_window_bits,
                                           d->inflate_no_context)))
        return -1;
    if (!(def = ws_deflate_deflater_create(d->deflate_window_bits,
                                           d->deflate_mem_level,
                                           d->deflate_level,
                                           d->deflate_no_context))) {
        ws_deflate_inflater_destroy(inf);
        return -1;
    }
    e->deflate = *d;
    e->inflater = inf;
    e->deflater = def;
    /* Without context a message compresses the same for every connection
     * with these parameters (zlib is deterministic). */
    if (d->deflate_no_context)
        e->deflate_key = (uint16_t)(0x8000 | (d->deflate_level + 1)
                                    | d->deflate_window_bits << 4
                                    | d->deflate_mem_level << 8);
    /* RFC 7692 §6: RSV1 on the first frame of a data message. */
    ws_frame_parser_init(&e->parser, 1, WS_RSV1);
    return 0;
}

static void drop_data_queue(ws_engine_t *e)
{
    data_out_t *d, *next;

    for (d = e->data_head; d; d = next) {
        next = d->next;
        e->buffered -= d->msg->len - d->framed;
        ws_msg_unref(d->msg);
        free(d);
    }
    e->data_head = e->data_tail = NULL;
}

static void release_frame(out_frame_t *f)
{
    free(f->ctrl);
    ws_msg_unref(f->msg);
    memset(f, 0, sizeof(*f));
}

void ws_engine_destroy(ws_engine_t *e)
{
    ctrl_frame_t *c, *next;

    if (!e)
        return;
    while (e->in_count) {
        release_frame(&e->inflight[e->in_head]);
        e->in_head = (e->in_head + 1) % INFLIGHT;
        e->in_count--;
    }
    for (c = e->ctrl_head; c; c = next) {
        next = c->next;
        free(c);
    }
    drop_data_queue(e);
    free(e->rbuf);
    ws_deflate_inflater_destroy(e->inflater);
    ws_deflate_deflater_destroy(e->deflater);
    free(e);
}

/* Every state change goes through here. */
static void set_state(ws_engine_t *e, ws_engine_state_e state, int64_t now)
{
    if (state != WS_STATE_OPEN && e->state == WS_STATE_OPEN)
        e->close_deadline = now + e->cfg.close_timeout;
    e->state = state;
}

/* Queue a control frame. Returns it, or NULL when out of memory. */
static ctrl_frame_t *queue_ctrl(ws_engine_t *e, uint8_t opcode,
                                const uint8_t *payload, size_t len)
{
    ctrl_frame_t *c = malloc(sizeof(*c));

    if (!c)
        return NULL;
    c->next = NULL;
    c->opcode = opcode;
    c->len = (uint8_t)ws_frame_write_header(c->bytes, 1, 0, opcode, len, NULL);
    if (len)
        memcpy(c->bytes + c->len, payload, len);
    c->len += (uint8_t)len;
    if (e->ctrl_tail)
        e->ctrl_tail->next = c;
    else
        e->ctrl_head = c;
    e->ctrl_tail = c;
    return c;
}

/* Queue our close frame: queued data that has not started is dropped, and
 * nothing may follow the close (§5.5.1). If memory runs out the close frame
 * is skipped and the connection just ends. */
static void queue_close(ws_engine_t *e, uint16_t code, const char *reason,
                        size_t reason_len)
{
    uint8_t payload[WS_CONTROL_MAX];
    size_t len = ws_close_build(payload, code, reason, reason_len);

    drop_data_queue(e);
    if (!queue_ctrl(e, WS_OP_CLOSE, payload, len))
        e->expired = 1;
}

/* We end the connection without waiting for the peer: a protocol error, a
 * dead peer or a full queue (§7.1.7). */
static void fail(ws_engine_t *e, uint16_t code, const char *reason,
                 int64_t now)
{
    if (e->state == WS_STATE_OPEN) {
        queue_close(e, code, reason, strlen(reason));
        e->close.code = code;
        e->close.by_server = 1;
    }
    set_state(e, WS_STATE_CLOSED, now);
}

static ws_event_type_e protocol_error(ws_engine_t *e, uint16_t code,
                                      const char *reason, uint64_t offset,
                                      int64_t now, ws_event_t *ev)
{
    ws_engine_state_e was = e->state;

    fail(e, code, reason, now);
    if (was != WS_STATE_OPEN)
        return WS_EVENT_NONE;   /* nobody is listening any more */
    ev->type = WS_EVENT_ERROR;
    ev->code = code;
    ev->reason = reason;
    ev->offset = offset;
    return WS_EVENT_ERROR;
}

/* Room for n more reassembled bytes. The buffer grows as bytes arrive, not
 * as headers promise them, so a peer cannot make us hold memory it has not
 * sent; it grows geometrically so that many fragments cost linear time, and
 * never past the end of a final frame. */
static int reserve(ws_engine_t *e, size_t n)
{
    size_t need = e->rlen + n, cap;
    uint64_t limit = e->parser.hdr.fin ? e->frame_end
                                       : e->cfg.max_message_size;
    uint8_t *p;

    if (need <= e->rcap)
        return 1;
    cap = e->rcap ? e->rcap * 2 : 256;
    if (cap < need)
        cap = need;
    if (cap > limit)
        cap = (size_t)limit;
    p = realloc(e->rbuf, cap);
    if (!p)
        return 0;
    e->rbuf = p;
    e->rcap = cap;
    return 1;
}

/* The previous message has been handed out: forget it, and give back a
 * large buffer. */
static void reset_message(ws_engine_t *e)
{
    e->msg_opcode = 0;
    e->delivered = 0;
    e->rlen = 0;
    if (e->rcap > KEEP_BUFFER) {
        free(e->rbuf);
        e->rbuf = NULL;
        e->rcap = 0;
    }
}

static uint64_t compressed_limit(const ws_engine_t *e)
{
    uint64_t max = e->cfg.max_message_size;

    return max > UINT64_MAX / 2 ? UINT64_MAX : max + max / 1024 + 64;
}

static ws_event_type_e inflated(ws_engine_t *e, ws_deflate_result_e r,
                                size_t before, uint64_t at, int64_t now,
                                ws_event_t *ev);
static ws_event_type_e inflate_into(ws_engine_t *e, const uint8_t *in,
                                    size_t n, uint64_t at, int64_t now,
                                    ws_event_t *ev);

static ws_event_type_e on_header(ws_engine_t *e, int64_t now, ws_event_t *ev)
{
    const ws_frame_header_t *h = &e->parser.hdr;
    uint64_t at = e->parser.offset;

    if (WS_OP_IS_CONTROL(h->opcode)) {
        e->clen = 0;
        return WS_EVENT_NONE;
    }
    e->discard = e->state != WS_STATE_OPEN;
    if (e->discard)
        return WS_EVENT_NONE;
    /* Limits are decided from the header, before any payload is stored. */
    if (h->len > e->cfg.max_frame_size)
        return protocol_error(e, WS_CLOSE_TOO_BIG, "frame too big", at, now,
                              ev);
    if (h->opcode != WS_OP_CONTINUATION) {
        reset_message(e);
        e->msg_opcode = h->opcode;
        e->msg_frames = 0;
        ws_utf8_reset(&e->utf8);
        e->compressed = (h->rsv & WS_RSV1) != 0;
        e->wire_len = 0;
        if (e->compressed
            && ws_deflate_inflate_begin(e->inflater) != WS_DEFLATE_OK)
            return protocol_error(e, WS_CLOSE_INTERNAL_ERROR,
                                  "out of memory", at, now, ev);
    }
    if (e->cfg.max_fragments && ++e->msg_frames > e->cfg.max_fragments)
        return protocol_error(e, WS_CLOSE_POLICY, "too many fragments", at,
                              now, ev);
    if (e->compressed) {
        /* The limit counts inflated bytes, checked as they come out; what
         * arrives compressed may not be much larger than the limit either
         * (incompressible data grows by a few bytes per block). */
        if (h->len > compressed_limit(e) - e->wire_len)
            return protocol_error(e, WS_CLOSE_TOO_BIG, "message too big",
                                  at, now, ev);
        e->wire_len += h->len;
        return WS_EVENT_NONE;
    }
    if (h->len > e->cfg.max_message_size - e->rlen)
        return protocol_error(e, WS_CLOSE_TOO_BIG, "message too big", at,
                              now, ev);
    e->frame_end = e->rlen + (size_t)h->len;
    return WS_EVENT_NONE;
}

/* Where the current frame's payload starts in the stream: errors found
 * while inflating are reported there, as the byte that revealed one
 * depends on how the input was split. */
static uint64_t frame_payload_start(const ws_engine_t *e)
{
    return e->parser.offset - e->parser.payload_off;
}

/* After inflating into the message buffer from byte 'before' on: the
 * UTF-8 check of what came out (§8.1 once inflated, RFC 7692 §6.1), then
 * the codec's verdict. Text is checked first because what came out before
 * an error is the same however the input was split, while the point where
 * zlib notices the error is not. */
static ws_event_type_e inflated(ws_engine_t *e, ws_deflate_result_e r,
                                size_t before, uint64_t at, int64_t now,
                                ws_event_t *ev)
{
    size_t bad;

    if (e->msg_opcode == WS_OP_TEXT && e->rlen > before
        && !ws_utf8_feed(&e->utf8, e->rbuf + before, e->rlen - before, &bad))
        return protocol_error(e, WS_CLOSE_INVALID_DATA, "invalid UTF-8 text",
                              at, now, ev);
    switch (r) {
    case WS_DEFLATE_OK:
        return WS_EVENT_NONE;
    case WS_DEFLATE_TOO_BIG:
        return protocol_error(e, WS_CLOSE_TOO_BIG, "message too big", at,
                              now, ev);
    case WS_DEFLATE_CORRUPT:
        return protocol_error(e, WS_CLOSE_INVALID_DATA,
                              "invalid compressed data", at, now, ev);
    default:
        return protocol_error(e, WS_CLOSE_INTERNAL_ERROR,
                              "cannot inflate", at, now, ev);
    }
}

/* Inflate into the message buffer: in n bytes, or the end of the message
 * when in is NULL. The buffer grows with what comes out, never past the
 * message size limit. */
static ws_event_type_e inflate_into(ws_engine_t *e, const uint8_t *in,
                                    size_t n, uint64_t at, int64_t now,
                                    ws_event_t *ev)
{
    ws_deflate_buf_t out;
    ws_deflate_result_e r;
    size_t before = e->rlen;

    out.data = e->rbuf;
    out.len = e->rlen;
    out.cap = e->rcap;
    out.max = e->cfg.max_message_size > SIZE_MAX
              ? SIZE_MAX : (size_t)e->cfg.max_message_size;
    r = in ? ws_deflate_inflate(e->inflater, in, n, &out)
           : ws_deflate_inflate_finish(e->inflater, &out);
    e->rbuf = out.data;
    e->rlen = out.len;
    e->rcap = out.cap;
    return inflated(e, r, before, at, now, ev);
}

static ws_event_type_e on_payload(ws_engine_t *e, const uint8_t *data,
                                  size_t n, int64_t now, ws_event_t *ev)
{
    const ws_frame_header_t *h = &e->parser.hdr;
    uint64_t off = e->parser.payload_off - n;
    size_t bad;

    if (WS_OP_IS_CONTROL(h->opcode)) {
        ws_mask_apply(e->cbuf + e->clen, data, n, h->mask, off);
        e->clen += (uint8_t)n;
        return WS_EVENT_NONE;
    }
    if (e->discard)
        return WS_EVENT_NONE;
    if (e->compressed) {
        uint8_t chunk[UNMASK_CHUNK];
        ws_event_type_e t = WS_EVENT_NONE;
        size_t k;

        for (; n && t == WS_EVENT_NONE; data += k, off += k, n -= k) {
            k = n < sizeof(chunk) ? n : sizeof(chunk);
            ws_mask_apply(chunk, data, k, h->mask, off);
            t = inflate_into(e, chunk, k, frame_payload_start(e), now, ev);
        }
        return t;
    }
    if (!reserve(e, n))
        return protocol_error(e, WS_CLOSE_INTERNAL_ERROR, "out of memory",
                              e->parser.offset - n, now, ev);
    ws_mask_apply(e->rbuf + e->rlen, data, n, h->mask, off);
    /* §8.1: fail at the first byte that cannot be UTF-8, even mid-frame. */
    if (e->msg_opcode == WS_OP_TEXT
        && !ws_utf8_feed(&e->utf8, e->rbuf + e->rlen, n, &bad))
        return protocol_error(e, WS_CLOSE_INVALID_DATA, "invalid UTF-8 text",
                              e->parser.offset - n + bad, now, ev);
    e->rlen += n;
    return WS_EVENT_NONE;
}

static ws_event_type_e on_close_frame(ws_engine_t *e, int64_t now,
                                      ws_event_t *ev)
{
    const uint8_t *reason;
    size_t reason_len;
    uint16_t code, err;
    const char *why = NULL;

    err = ws_close_parse(e->cbuf, e->clen, &code, &reason, &reason_len, &why);
    if (err)
        return protocol_error(e, err, why, e->parser.offset - e->clen, now,
                              ev);
    e->close_frame_seen = 1;
    if (e->state == WS_STATE_OPEN) {
        /* §5.5.1: echo the code (none if it carried none). */
        queue_close(e, code, NULL, 0);
        e->close.code = code;
        e->close.by_server = 0;
    }
    e->close.clean = 1;
    set_state(e, WS_STATE_CLOSED, now);
    ev->type = WS_EVENT_CLOSE;
    ev->code = code;
    ev->data = reason;
    ev->len = reason_len;
    return WS_EVENT_CLOSE;
}

static ws_event_type_e on_frame_end(ws_engine_t *e, int64_t now,
                                    ws_event_t *ev)
{
    const ws_frame_header_t *h = &e->parser.hdr;

    switch (h->opcode) {
    case WS_OP_CLOSE:
        return on_close_frame(e, now, ev);
    case WS_OP_PING:
        if (e->state != WS_STATE_OPEN)
            return WS_EVENT_NONE;
        /* §5.5.3: answer the latest ping; a pong not yet on its way is
         * simply rewritten. */
        if (e->pong) {
            e->pong->len = (uint8_t)ws_frame_write_header(
                e->pong->bytes, 1, 0, WS_OP_PONG, e->clen, NULL);
            memcpy(e->pong->bytes + e->pong->len, e->cbuf, e->clen);
            e->pong->len += e->clen;
        }
        else if (!(e->pong = queue_ctrl(e, WS_OP_PONG, e->cbuf, e->clen))) {
            return protocol_error(e, WS_CLOSE_INTERNAL_ERROR,
                                  "out of memory", e->parser.offset, now, ev);
        }
        ev->type = WS_EVENT_PING;
        break;
    case WS_OP_PONG:
        if (e->state != WS_STATE_OPEN)
            return WS_EVENT_NONE;
        ev->type = WS_EVENT_PONG;
        break;
    default:
        if (e->discard || !h->fin)
            return WS_EVENT_NONE;
        if (e->compressed) {
            ws_event_type_e t = inflate_into(e, NULL, 0,
                                             frame_payload_start(e), now, ev);

            if (t != WS_EVENT_NONE)
                return t;
            /* Nothing to keep for the next message: an idle connection
             * holds no zlib state. */
            if (e->deflate.inflate_no_context)
                ws_deflate_inflater_trim(e->inflater);
        }
        if (e->msg_opcode == WS_OP_TEXT && !ws_utf8_complete(&e->utf8))
            return protocol_error(e, WS_CLOSE_INVALID_DATA,
                                  "text message ends inside a character",
                                  e->parser.offset, now, ev);
        e->delivered = 1;
        e->recv_wire += e->compressed ? e->wire_len : e->rlen;
        ev->type = WS_EVENT_MESSAGE;
        ev->opcode = e->msg_opcode;
        ev->data = e->rbuf;
        ev->len = e->rlen;
        return WS_EVENT_MESSAGE;
    }
    ev->data = e->cbuf;
    ev->len = e->clen;
    return ev->type;
}

ws_event_type_e ws_engine_feed(ws_engine_t *e, const uint8_t *buf,
                               size_t len, size_t *used, int64_t now,
                               ws_event_t *ev)
{
    /* buf may be NULL when len is 0, and NULL + 0 is undefined in C. */
    const uint8_t *pos = buf, *end = len ? buf + len : buf, *data = NULL;
    ws_event_type_e t = WS_EVENT_NONE;
    size_t n = 0;

    memset(ev, 0, sizeof(*ev));
    if (e->delivered)
        reset_message(e);
    if (len)
        e->last_rx = now;
    while (t == WS_EVENT_NONE && e->state != WS_STATE_CLOSED) {
        switch (ws_frame_parse(&e->parser, &pos, end, &data, &n)) {
        case WS_FRAME_NEED_MORE:
            *used = len;
            return WS_EVENT_NONE;
        case WS_FRAME_ERROR:
            t = protocol_error(e, e->parser.error_code, e->parser.error_reason,
                               e->parser.error_offset, now, ev);
            break;
        case WS_FRAME_HEADER:
            t = on_header(e, now, ev);
            break;
        case WS_FRAME_PAYLOAD:
            t = on_payload(e, data, n, now, ev);
            break;
        case WS_FRAME_END:
            t = on_frame_end(e, now, ev);
            break;
        }
    }
    /* Once closed, what follows is never read (§5.5.1). */
    *used = e->state == WS_STATE_CLOSED ? len : (size_t)(pos - buf);
    return t;
}

void ws_engine_eof(ws_engine_t *e, int64_t now)
{
    if (!e->close_frame_seen)
        e->close.clean = 0;
    if (e->state == WS_STATE_OPEN)
        e->close.code = WS_CLOSE_ABNORMAL;
    set_state(e, WS_STATE_CLOSED, now);
    e->expired = 1;
}

/* Whether n more payload bytes fit the outgoing queue. A compressed
 * message may have taken the queue past its cap (see send_compressed). */
static int queue_fits(const ws_engine_t *e, uint64_t n)
{
    return e->buffered <= e->cfg.queue_cap
           && n <= e->cfg.queue_cap - e->buffered;
}

/* A message of len bytes does not fit the queue: what the policy says. */
static ws_send_result_e queue_full(ws_engine_t *e, int64_t now)
{
    if (e->cfg.queue_policy == WS_QUEUE_REFUSE)
        return WS_SEND_REFUSED;
    if (e->cfg.queue_policy == WS_QUEUE_FAIL_1008)
        fail(e, WS_CLOSE_POLICY, "outgoing queue full", now);
    else
        fail(e, WS_CLOSE_TRY_AGAIN_LATER, "outgoing queue full", now);
    return WS_SEND_FAILED;
}

static ws_send_result_e enqueue(ws_engine_t *e, ws_msg_t *msg);
static ws_send_result_e queue_msg(ws_engine_t *e, ws_msg_t *msg,
                                  int64_t now);

/* data compressed as one message, in a message of its own with RSV1
 * (RFC 7692 §7.2.1); NULL if zlib or memory failed. The buffer is sized
 * for the worst case (zlib's deflateBound() for any parameters, plus the
 * sync flush's empty block) and then cut to fit, so that compressing
 * costs one allocation and no copy. */
static ws_msg_t *compress_msg(ws_engine_t *e, ws_deflater_t *def,
                              uint8_t opcode, const void *data, size_t len)
{
    size_t bound = len + ((len + 7) >> 3) + ((len + 63) >> 6) + 16;
    ws_deflate_buf_t out;
    ws_msg_t *z;

    if (len > SIZE_MAX / 2 || !(z = ws_msg_alloc(opcode, bound)))
        return NULL;
    out.data = z->data;
    out.len = 0;
    out.cap = out.max = bound;
    if (ws_deflate_compress(def, data, len, &out) != WS_DEFLATE_OK) {
        ws_msg_unref(z);
        return NULL;
    }
    z = ws_msg_shrink(z, out.len);
    z->plain_len = len;
    z->rsv = WS_RSV1;
    z->deflate_key = e->deflate_key;
    return z;
}

/* Queue a message compressed. The queue admits it on its uncompressed
 * size, checked before compressing, and then takes the compressed form
 * whatever its size (zlib may add up to len/7 + 16 bytes to data that
 * does not compress): with context takeover a message compressed and then
 * not sent would leave the client's window out of step with ours. Without
 * context takeover a shared message is compressed once for all the
 * connections that use the same parameters. */
static ws_send_result_e send_compressed(ws_engine_t *e, ws_msg_t *shared,
                                        uint8_t opcode, const void *data,
                                        size_t len, int64_t now)
{
    ws_deflater_t *def = e->deflater;
    ws_send_result_e r;
    ws_msg_t *z = NULL;

    if (!queue_fits(e, len))
        return queue_full(e, now);
    if (shared && e->deflate_key)
        z = ws_msg_deflated(shared, e->deflate_key);
    if (!z) {
        if (e->deflate.deflate_no_context && e->deflate.borrow_deflater) {
            ws_deflater_t *lent = e->deflate.borrow_deflater(
                e->deflate.borrow_ctx);

            if (lent)
                def = lent;
        }
        z = compress_msg(e, def, opcode, data, len);
        /* Our own compressor keeps no context: let its memory go. */
        if (def == e->deflater && e->deflate.deflate_no_context)
            ws_deflate_deflater_trim(def);
        if (!z) {
            if (!e->deflate.deflate_no_context)
                fail(e, WS_CLOSE_INTERNAL_ERROR, "cannot compress", now);
            return WS_SEND_NOMEM;
        }
        if (shared && e->deflate_key)
            ws_msg_offer_deflated(shared, z);
    }
    r = enqueue(e, z);
    ws_msg_unref(z);
    if (r == WS_SEND_NOMEM && !e->deflate.deflate_no_context)
        fail(e, WS_CLOSE_INTERNAL_ERROR, "out of memory", now);
    return r;
}

ws_send_result_e ws_engine_send_msg(ws_engine_t *e, ws_msg_t *msg,
                                    int64_t now)
{
    if (e->state != WS_STATE_OPEN)
        return WS_SEND_CLOSED;
    if (e->inflater && msg->len >= e->deflate.min_size)
        return send_compressed(e, msg, msg->opcode, msg->data, msg->len,
                               now);
    return queue_msg(e, msg, now);
}

static ws_send_result_e enqueue(ws_engine_t *e, ws_msg_t *msg)
{
    data_out_t *d;

    if (!(d = malloc(sizeof(*d))))
        return WS_SEND_NOMEM;
    d->next = NULL;
    d->msg = ws_msg_ref(msg);
    d->framed = 0;
    if (e->data_tail)
        e->data_tail->next = d;
    else
        e->data_head = d;
    e->data_tail = d;
    e->buffered += msg->len;
    return WS_SEND_QUEUED;
}

static ws_send_result_e queue_msg(ws_engine_t *e, ws_msg_t *msg,
                                  int64_t now)
{
    if (!queue_fits(e, msg->len))
        return queue_full(e, now);
    return enqueue(e, msg);
}

ws_send_result_e ws_engine_send(ws_engine_t *e, uint8_t opcode,
                                const void *data, size_t len, int64_t now)
{
    ws_send_result_e r;
    ws_msg_t *msg;

    if (e->state != WS_STATE_OPEN)
        return WS_SEND_CLOSED;
    if (e->inflater && len >= e->deflate.min_size)
        return send_compressed(e, NULL, opcode, data, len, now);
    if (!(msg = ws_msg_create(opcode, data, len)))
        return WS_SEND_NOMEM;
    r = queue_msg(e, msg, now);
    ws_msg_unref(msg);
    return r;
}

int ws_engine_close(ws_engine_t *e, uint16_t code, const char *reason,
                    size_t reason_len, int64_t now)
{
    if (e->state != WS_STATE_OPEN)
        return -1;
    queue_close(e, code, reason, reason_len);
    e->close.code = code;
    e->close.by_server = 1;
    set_state(e, WS_STATE_CLOSE_SENT, now);
    e->discard = 1;     /* a data frame already under way is dropped too */
    return 0;
}

void ws_engine_set_ping_interval(ws_engine_t *e, int64_t interval)
{
    e->cfg.ping_interval = interval;
}

int64_t ws_engine_next_deadline(const ws_engine_t *e)
{
    int64_t next = WS_NO_DEADLINE, t;

    if (e->state != WS_STATE_OPEN)
        return e->expired ? WS_NO_DEADLINE : e->close_deadline;
    if (e->cfg.idle_timeout > 0)
        next = e->last_rx + e->cfg.idle_timeout;
    if (e->cfg.ping_interval > 0) {
        t = (e->last_rx > e->last_ping ? e->last_rx : e->last_ping)
            + e->cfg.ping_interval;
        if (t < next)
            next = t;
    }
    return next;
}

int64_t ws_engine_tick(ws_engine_t *e, int64_t now)
{
    if (e->state == WS_STATE_OPEN) {
        if (e->cfg.idle_timeout > 0 && now >= e->last_rx + e->cfg.idle_timeout)
            fail(e, WS_CLOSE_GOING_AWAY, "idle timeout", now);
        else if (e->cfg.ping_interval > 0
                 && now >= (e->last_rx > e->last_ping ? e->last_rx
                                                      : e->last_ping)
                           + e->cfg.ping_interval) {
            if (!queue_ctrl(e, WS_OP_PING, NULL, 0))
                fail(e, WS_CLOSE_INTERNAL_ERROR, "out of memory", now);
            e->last_ping = now;
        }
    }
    else if (now >= e->close_deadline) {
        e->expired = 1;
    }
    return ws_engine_next_deadline(e);
}

/* Move the next frame to send into the inflight ring. Returns 0 when there
 * is none. */
static int expose_next(ws_engine_t *e)
{
    out_frame_t *f = &e->inflight[(e->in_head + e->in_count) % INFLIGHT];
    ctrl_frame_t *c = e->ctrl_head;
    data_out_t *d = e->data_head;
    uint64_t left, n;

    if (c) {
        e->ctrl_head = c->next;
        if (!e->ctrl_head)
            e->ctrl_tail = NULL;
        if (c == e->pong)
            e->pong = NULL;
        f->ctrl = c;
        f->payload = c->bytes;
        f->payload_len = c->len;
    }
    else if (d) {
        left = d->msg->len - d->framed;
        n = e->cfg.fragment_size && left > e->cfg.fragment_size
            ? e->cfg.fragment_size : left;
        f->is_data = 1;
        f->hdr_len = (uint8_t)ws_frame_write_header(
            f->hdr, n == left, d->framed ? 0 : d->msg->rsv,
            d->framed ? WS_OP_CONTINUATION : d->msg->opcode, n, NULL);
        f->payload = d->msg->data + d->framed;
        f->payload_len = (size_t)n;
        f->msg = ws_msg_ref(d->msg);
        f->ends_msg = n == left;
        d->framed += n;
        if (d->framed == d->msg->len) {
            e->data_head = d->next;
            if (!e->data_head)
                e->data_tail = NULL;
            ws_msg_unref(d->msg);
            free(d);
        }
    }
    else {
        return 0;
    }
    e->in_count++;
    return 1;
}

int ws_engine_output(ws_engine_t *e, ws_iovec_t *iov, int n)
{
    unsigned i;
    int k = 0;
    size_t skip = e->in_written;

    if (e->expired)
        return 0;
    while (e->in_count < INFLIGHT && (unsigned)n > 2 * e->in_count
           && expose_next(e))
        ;
    for (i = 0; i < e->in_count && k < n; i++) {
        const out_frame_t *f = &e->inflight[(e->in_head + i) % INFLIGHT];

        if (skip < f->hdr_len) {
            iov[k].base = f->hdr + skip;
            iov[k++].len = f->hdr_len - skip;
            skip = 0;
        }
        else {
            skip -= f->hdr_len;
        }
        if (k < n && f->payload_len > skip) {
            iov[k].base = f->payload + skip;
            iov[k++].len = f->payload_len - skip;
        }
        skip = 0;
    }
    return k;
}

void ws_engine_written(ws_engine_t *e, size_t nbytes)
{
    while (nbytes && e->in_count) {
        out_frame_t *f = &e->inflight[e->in_head];
        size_t total = f->hdr_len + f->payload_len;
        size_t step = total - e->in_written;
        size_t payload_before, payload_after;

        if (step > nbytes)
            step = nbytes;
        /* Payload bytes written in this step count down bufferedAmount. */
        payload_before = e->in_written > f->hdr_len
                         ? e->in_written - f->hdr_len : 0;
        e->in_written += step;
        nbytes -= step;
        payload_after = e->in_written > f->hdr_len
                        ? e->in_written - f->hdr_len : 0;
        if (f->is_data)
            e->buffered -= payload_after - payload_before;
        if (e->in_written < total)
            break;
        if (f->ends_msg) {
            e->sent_msgs++;
            e->sent_bytes += f->msg->plain_len;
            e->sent_wire += f->msg->len;
        }
        release_frame(f);
        e->in_head = (e->in_head + 1) % INFLIGHT;
        e->in_count--;
        e->in_written = 0;
    }
}

int ws_engine_has_output(const ws_engine_t *e)
{
    return !e->expired && (e->in_count || e->ctrl_head || e->data_head);
}

uint64_t ws_engine_buffered(const ws_engine_t *e)
{
    return e->buffered;
}

void ws_engine_sent(const ws_engine_t *e, uint64_t *msgs, uint64_t *bytes)
{
    *msgs = e->sent_msgs;
    *bytes = e->sent_bytes;
}

void ws_engine_wire_bytes(const ws_engine_t *e, uint64_t *in, uint64_t *out)
{
    *in = e->recv_wire;
    *out = e->sent_wire;
}

ws_engine_state_e ws_engine_state(const ws_engine_t *e)
{
    return e->state;
}

int ws_engine_want_close(const ws_engine_t *e)
{
    return e->expired
        || (e->state == WS_STATE_CLOSED && !ws_engine_has_output(e));
}

size_t ws_engine_memory(const ws_engine_t *e)
{
    const ctrl_frame_t *c;
    const data_out_t *d;
    size_t n = sizeof(*e) + e->rcap;

    for (c = e->ctrl_head; c; c = c->next)
        n += sizeof(*c);
    for (d = e->data_head; d; d = d->next)
        n += sizeof(*d) + sizeof(*d->msg) + d->msg->len;
    if (e->inflater)
        n += ws_deflate_inflater_memory(e->inflater)
             + ws_deflate_deflater_memory(e->deflater);
    return n;
}

void ws_engine_close_info(const ws_engine_t *e, ws_close_info_t *info)
{
    *info = e->close;
}
