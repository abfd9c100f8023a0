/* ws_frame.h: the RFC 6455 §5.2 base framing, parsed incrementally and
 * written without copying payloads.
 *
 * The parser is a pull parser over the caller's buffer: it reads, never
 * writes, never reads past the end it is given, and any split of the input
 * yields the same sequence of results. It enforces every rule that can be
 * decided from the frame sequence alone (masking, RSV bits, opcodes, control
 * frame limits, continuation order); message-level rules (sizes, UTF-8, close
 * payloads) belong to the engine. No I/O, no allocation, no logging.
 */
#ifndef WS_FRAME_H
#define WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Opcodes, RFC 6455 §5.2 and §11.8. */
#define WS_OP_CONTINUATION 0x0
#define WS_OP_TEXT         0x1
#define WS_OP_BINARY       0x2
#define WS_OP_CLOSE        0x8
#define WS_OP_PING         0x9
#define WS_OP_PONG         0xA

#define WS_OP_IS_CONTROL(op) (((op) & 0x8) != 0)

/* RSV bits as they sit in the first header byte. */
#define WS_RSV1 0x40
#define WS_RSV2 0x20
#define WS_RSV3 0x10

/* Control frames carry at most 125 payload bytes (§5.5). */
#define WS_CONTROL_MAX 125

/* The longest header: 2 bytes, 8 of extended length, 4 of mask (§5.2). */
#define WS_FRAME_HEADER_MAX 14

/* Close codes the codec itself produces (§7.4.1). */
#define WS_CLOSE_NORMAL          1000
#define WS_CLOSE_GOING_AWAY      1001
#define WS_CLOSE_PROTOCOL_ERROR  1002
#define WS_CLOSE_UNSUPPORTED     1003
#define WS_CLOSE_NO_STATUS       1005
#define WS_CLOSE_ABNORMAL        1006
#define WS_CLOSE_INVALID_DATA    1007
#define WS_CLOSE_POLICY          1008
#define WS_CLOSE_TOO_BIG         1009
#define WS_CLOSE_INTERNAL_ERROR  1011
#define WS_CLOSE_TRY_AGAIN_LATER 1013

typedef struct ws_frame_header {
    uint64_t len;        /* payload length */
    uint8_t  fin;        /* 1 if the final frame of its message */
    uint8_t  rsv;        /* WS_RSV1 | WS_RSV2 | WS_RSV3 bits as received */
    uint8_t  opcode;
    uint8_t  masked;
    uint8_t  mask[4];
} ws_frame_header_t;

typedef enum {
    WS_FRAME_NEED_MORE = 0, /* all input consumed; feed more */
    WS_FRAME_HEADER,        /* a header is complete: see p->hdr */
    WS_FRAME_PAYLOAD,       /* a piece of the current frame's payload */
    WS_FRAME_END,           /* the current frame is complete */
    WS_FRAME_ERROR          /* protocol violation: see p->error_* */
} ws_frame_result_e;

typedef struct ws_frame_parser {
    /* settings, fixed after init */
    uint8_t  expect_masked;  /* 1 on a server (client frames are masked) */
    uint8_t  rsv_allowed;    /* RSV bits a negotiated extension permits */

    /* the frame being parsed */
    ws_frame_header_t hdr;
    uint64_t payload_off;    /* payload bytes of this frame delivered */
    uint8_t  hbuf[WS_FRAME_HEADER_MAX];
    uint8_t  hhave;          /* header bytes collected */
    uint8_t  state;          /* private */
    uint8_t  in_message;     /* a fragmented data message is open */

    /* set with WS_FRAME_ERROR */
    uint16_t    error_code;  /* close code to send */
    const char *error_reason;/* static string, for the close frame and log */
    uint64_t    error_offset;/* stream offset of the offending byte */

    uint64_t offset;         /* bytes consumed since init */
} ws_frame_parser_t;

/* Prepare a parser. expect_masked: 1 for a server reading client frames
 * (unmasked frames are 1002, §5.1), 0 for a client reading server frames
 * (masked frames are 1002). rsv_allowed: the RSV bits permitted (0 until an
 * extension is negotiated; RSV bits not permitted are 1002, §5.2). */
void ws_frame_parser_init(ws_frame_parser_t *p, int expect_masked,
                          uint8_t rsv_allowed);

/* Parse from *pos up to end. Advances *pos past what it used and returns
 * what it found:
 * - WS_FRAME_HEADER once per frame, when p->hdr is complete and valid;
 * - WS_FRAME_PAYLOAD with *data and *len naming payload bytes inside the caller's
 *   buffer, still masked; p->payload_off minus *len is their offset in the
 *   payload, for ws_mask_apply();
 * - WS_FRAME_END after the last payload byte (right after the header for an
 *   empty payload);
 * - WS_FRAME_NEED_MORE when *pos has reached end;
 * - WS_FRAME_ERROR, after which the parser stays failed.
 * data and len may be NULL when the caller does not want payload. */
ws_frame_result_e ws_frame_parse(ws_frame_parser_t *p, const uint8_t **pos,
                                 const uint8_t *end, const uint8_t **data,
                                 size_t *len);

/* Encode a frame header into out (at least WS_FRAME_HEADER_MAX bytes) with
 * the minimal length encoding (§5.2) and return its length. mask is NULL for
 * a server frame, or the 4-byte key for a client frame (the caller masks the
 * payload). rsv is a combination of WS_RSV* bits. */
size_t ws_frame_write_header(uint8_t *out, int fin, uint8_t rsv,
                             uint8_t opcode, uint64_t len,
                             const uint8_t *mask);

#endif /* WS_FRAME_H */
