/* ws_engine.h: one WebSocket connection's state machine, without I/O.
 *
 * The driver feeds it the bytes it read and the current time; the engine
 * answers with events (a whole message, a ping or pong, the peer's close, a
 * protocol error), queues the frames to send, and tells the driver which
 * bytes to write, when it next needs a call, and when to close TCP. It owns
 * the connection's limits, reassembly, UTF-8 checks, the close handshake,
 * keepalive and idle timers and the outgoing queue with its cap. It never
 * blocks, never reads a clock, never logs and is not thread-safe: the driver
 * serialises calls (a plugin's send from another thread goes through the
 * driver's lock).
 *
 * Time is an int64_t in microseconds, as apr_time_t.
 */
#ifndef WS_ENGINE_H
#define WS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "ws_frame.h"
#include "ws_msg.h"

#define WS_NO_DEADLINE INT64_MAX
#define WS_UNLIMITED   UINT64_MAX

/* What happens when a send would push the queue past its cap. */
typedef enum {
    WS_QUEUE_REFUSE = 0,   /* refuse the new message; the connection lives */
    WS_QUEUE_FAIL_1008,    /* close the connection with 1008 */
    WS_QUEUE_FAIL_1013     /* close the connection with 1013 */
} ws_queue_policy_e;

typedef struct ws_engine_config {
    uint64_t max_frame_size;    /* payload bytes of one frame; WS_UNLIMITED */
    uint64_t max_message_size;  /* payload bytes of one message; WS_UNLIMITED */
    uint32_t max_fragments;     /* frames per message; 0 is unlimited */
    uint64_t queue_cap;         /* queued outgoing payload bytes; WS_UNLIMITED */
    ws_queue_policy_e queue_policy;
    uint64_t fragment_size;     /* split outgoing messages into frames of at
                                   most this payload; 0 never splits */
    int64_t  ping_interval;     /* ping after this long without input; 0 off */
    int64_t  idle_timeout;      /* close after this long without input; 0 off */
    int64_t  close_timeout;     /* wait this long for the peer's close and
                                   for our last bytes to leave; 0 is 5 s */
} ws_engine_config_t;

/* permessage-deflate as negotiated (RFC 7692, ws_pmd_negotiate.h), and
 * how the server compresses. */
typedef struct ws_engine_deflate {
    int    inflate_window_bits;   /* 9..15: the window the client uses */
    int    inflate_no_context;    /* the client resets after each message */
    int    deflate_window_bits;   /* 9..15 */
    int    deflate_mem_level;     /* 1..9 */
    int    deflate_level;         /* -1..9 */
    int    deflate_no_context;    /* we reset after each message */
    size_t min_size;              /* smaller messages go uncompressed */
    /* With deflate_no_context, a compressor to use for one message, lent
     * by the caller (one per thread, say: any connection may use it);
     * NULL, or a NULL answer, makes the engine use one of its own. */
    struct ws_deflater *(*borrow_deflater)(void *ctx);
    void  *borrow_ctx;
} ws_engine_deflate_t;

/* Fill cfg with the defaults: 1 MiB frames and messages, 1024 fragments,
 * a 4 MiB queue that refuses when full, no fragmentation, a ping after 30 s
 * without input, an idle close after 60 s, a 5 s close handshake. */
void ws_engine_config_default(ws_engine_config_t *cfg);

typedef enum {
    WS_STATE_OPEN = 0,      /* messages flow both ways */
    WS_STATE_CLOSE_SENT,    /* our close is queued; waiting for the peer's */
    WS_STATE_CLOSED         /* nothing more to read (the close handshake is
                               done, or was cut short); close TCP once the
                               output is written */
} ws_engine_state_e;

typedef enum {
    WS_EVENT_NONE = 0,  /* the input was used up with nothing to report */
    WS_EVENT_MESSAGE,   /* a whole text or binary message */
    WS_EVENT_PING,      /* a ping; the pong is queued */
    WS_EVENT_PONG,      /* a pong */
    WS_EVENT_CLOSE,     /* the peer's close; the reply is queued */
    WS_EVENT_ERROR      /* the peer broke the protocol; our close is queued */
} ws_event_type_e;

typedef struct ws_event {
    ws_event_type_e type;
    uint8_t         opcode;  /* MESSAGE: WS_OP_TEXT or WS_OP_BINARY */
    const uint8_t  *data;    /* MESSAGE, PING, PONG: payload; CLOSE: reason.
                                Valid until the next call into the engine. */
    size_t          len;
    uint16_t        code;    /* CLOSE: the peer's code (1005 if none);
                                ERROR: the code we close with */
    const char     *reason;  /* ERROR: a static description */
    uint64_t        offset;  /* ERROR: stream offset of the offending byte */
} ws_event_t;

/* How the connection ended, for the close callback and the log. */
typedef struct ws_close_info {
    uint16_t code;       /* the code of the first close frame, ours or the
                            peer's (1005 if it carried none); 1006 when the
                            connection ended without one */
    int      clean;      /* 1 if the peer's close frame arrived */
    int      by_server;  /* 1 if the server sent the first close */
} ws_close_info_t;

typedef enum {
    WS_SEND_QUEUED = 0,  /* queued for sending */
    WS_SEND_REFUSED,     /* the queue is full and the policy refuses */
    WS_SEND_FAILED,      /* the queue is full and the policy closes the
                            connection; that close has started */
    WS_SEND_CLOSED,      /* the connection is closing or closed */
    WS_SEND_NOMEM        /* out of memory */
} ws_send_result_e;

/* A piece of output, laid out as struct iovec. */
typedef struct ws_iovec {
    const void *base;
    size_t      len;
} ws_iovec_t;

typedef struct ws_engine ws_engine_t;

/* A new engine for a server connection opened at now, with a copy of cfg.
 * Returns NULL when out of memory. Free with ws_engine_destroy(). */
ws_engine_t *ws_engine_create(const ws_engine_config_t *cfg, int64_t now);

/* Turn permessage-deflate on, before any input: RSV1 marks a compressed
 * message on its first frame; incoming ones are inflated (their size
 * limits count inflated bytes, and inflating stops at the limit), and
 * outgoing messages of at least min_size bytes are compressed. Returns 0,
 * or -1 if a parameter is out of range or memory is short. */
int ws_engine_set_deflate(ws_engine_t *e, const ws_engine_deflate_t *d);

/* Free the engine, its buffers and its references to queued messages. */
void ws_engine_destroy(ws_engine_t *e);

/* Consume input until an event is complete or the input is used up. Sets
 * *used to the bytes consumed and returns the event (also in *ev); call
 * again with the rest until it returns WS_EVENT_NONE, which means all len
 * bytes were used (that last call also frees a large message buffer). Once
 * the engine is closed, further input is consumed without events; after we
 * sent our close, data is dropped and only the peer's close is looked for. */
ws_event_type_e ws_engine_feed(ws_engine_t *e, const uint8_t *buf,
                               size_t len, size_t *used, int64_t now,
                               ws_event_t *ev);

/* The peer closed its side of TCP (or the connection broke) at now. The
 * engine moves to WS_STATE_CLOSED; unless the close handshake was complete,
 * the close info records 1006. */
void ws_engine_eof(ws_engine_t *e, int64_t now);

/* Queue a whole message, copying data. */
ws_send_result_e ws_engine_send(ws_engine_t *e, uint8_t opcode,
                                const void *data, size_t len, int64_t now);

/* Queue a shared message, taking a reference of its own on success. */
ws_send_result_e ws_engine_send_msg(ws_engine_t *e, ws_msg_t *msg,
                                    int64_t now);

/* Start the close handshake with code (WS_CLOSE_NO_STATUS for an empty
 * close) and reason. Queued messages not yet started are dropped. Returns
 * 0, or -1 if a close was already sent or received. */
int ws_engine_close(ws_engine_t *e, uint16_t code, const char *reason,
                    size_t reason_len, int64_t now);

/* Change the keepalive ping interval (0 turns pings off). */
void ws_engine_set_ping_interval(ws_engine_t *e, int64_t interval);

/* Handle the timers due at now: send a keepalive ping, close an idle
 * connection, give up on a close handshake. Returns the time of the next
 * deadline (WS_NO_DEADLINE if none): call again no later than that. */
int64_t ws_engine_tick(ws_engine_t *e, int64_t now);

/* The next deadline without acting on it. */
int64_t ws_engine_next_deadline(const ws_engine_t *e);

/* Describe the bytes to write next in up to n iovecs; returns how many were
 * filled, 0 when there is nothing to write. The pieces stay valid, and are
 * described again in the same order, until ws_engine_written() accounts for
 * them: new control frames and messages only ever go after them. */
int ws_engine_output(ws_engine_t *e, ws_iovec_t *iov, int n);

/* The driver wrote the next nbytes of the output described so far. */
void ws_engine_written(ws_engine_t *e, size_t nbytes);

/* 1 if there are bytes to write. */
int ws_engine_has_output(const ws_engine_t *e);

/* Payload bytes of queued data messages not yet written (the W3C API's
 * bufferedAmount). */
uint64_t ws_engine_buffered(const ws_engine_t *e);

/* Data messages written in full so far, and their payload bytes before
 * compression: what the peer was really sent, not what was queued (a
 * close drops the rest). */
void ws_engine_sent(const ws_engine_t *e, uint64_t *msgs, uint64_t *bytes);

/* Payload bytes of the data messages received in full and of those
 * written, as they went over the wire: compressed where permessage-deflate
 * compressed them, so equal to the message bytes without it. */
void ws_engine_wire_bytes(const ws_engine_t *e, uint64_t *in, uint64_t *out);

ws_engine_state_e ws_engine_state(const ws_engine_t *e);

/* 1 when the driver should close TCP now: the connection is closed and its
 * output written, or the close deadline has passed. */
int ws_engine_want_close(const ws_engine_t *e);

/* The close as seen so far; final once ws_engine_want_close() is 1. */
void ws_engine_close_info(const ws_engine_t *e, ws_close_info_t *info);

/* Bytes of memory the connection holds now: the engine, its buffers and
 * its share of queued frames (shared messages count in full). */
size_t ws_engine_memory(const ws_engine_t *e);

/* The state's name, for logs. */
const char *ws_engine_state_name(ws_engine_state_e state);

#endif /* WS_ENGINE_H */
