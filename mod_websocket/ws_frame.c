/* ws_frame.c: the RFC 6455 §5.2 frame parser and header writer.
 *
 * The parser keeps at most one header's bytes of its own and otherwise
 * points into the caller's buffer; it never writes to the input, never
 * unmasks (the engine does that while copying) and never allocates.
 */
#include <string.h>

#include "ws_frame.h"

enum {
    PARSE_HEADER = 0,   /* collecting header bytes into hbuf */
    PARSE_PAYLOAD,      /* handing out payload */
    PARSE_END,          /* the frame is complete; report it */
    PARSE_FAILED
};

void ws_frame_parser_init(ws_frame_parser_t *p, int expect_masked,
                          uint8_t rsv_allowed)
{
    memset(p, 0, sizeof(*p));
    p->expect_masked = expect_masked ? 1 : 0;
    p->rsv_allowed = rsv_allowed & (WS_RSV1 | WS_RSV2 | WS_RSV3);
    p->state = PARSE_HEADER;
}

static ws_frame_result_e fail(ws_frame_parser_t *p, uint64_t at,
                              const char *reason)
{
    p->state = PARSE_FAILED;
    p->error_code = WS_CLOSE_PROTOCOL_ERROR;
    p->error_reason = reason;
    p->error_offset = at;
    return WS_FRAME_ERROR;
}

/* The rules decidable from the first byte (§5.2, §5.4, §5.5). */
static const char *check_byte0(const ws_frame_parser_t *p, uint8_t b)
{
    uint8_t opcode = b & 0x0F;
    uint8_t rsv = b & (WS_RSV1 | WS_RSV2 | WS_RSV3);
    int fin = (b & 0x80) != 0;

    if ((opcode > WS_OP_BINARY && opcode < WS_OP_CLOSE) || opcode > WS_OP_PONG)
        return "reserved opcode";
    /* An extension's RSV bits mark a message, so they may only appear on
     * the first frame of a data message (RFC 7692 §6 does so for RSV1). */
    if (rsv && (!(opcode == WS_OP_TEXT || opcode == WS_OP_BINARY)
                || (rsv & ~p->rsv_allowed)))
        return "RSV bits set without a negotiated extension";
    if (WS_OP_IS_CONTROL(opcode)) {
        if (!fin)
            return "fragmented control frame";
    }
    else if (opcode == WS_OP_CONTINUATION) {
        if (!p->in_message)
            return "continuation frame without a message to continue";
    }
    else if (p->in_message) {
        return "new data frame while a fragmented message is open";
    }
    return NULL;
}

/* The rules decidable from the second byte. */
static const char *check_byte1(const ws_frame_parser_t *p, uint8_t b0,
                               uint8_t b1)
{
    int masked = (b1 & 0x80) != 0;

    if (masked != p->expect_masked)
        return p->expect_masked ? "client frame is not masked"
                                : "server frame is masked";
    if (WS_OP_IS_CONTROL(b0 & 0x0F) && (b1 & 0x7F) > WS_CONTROL_MAX)
        return "control frame payload longer than 125 bytes";
    return NULL;
}

static uint8_t header_length(uint8_t b1)
{
    uint8_t len7 = b1 & 0x7F;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
}

/* hbuf holds a whole, checked header: decode it into p->hdr. */
static void decode_header(ws_frame_parser_t *p)
{
    const uint8_t *h = p->hbuf;
    uint8_t len7 = h[1] & 0x7F;
    size_t i = 2;

    p->hdr.fin = (h[0] & 0x80) != 0;
    p->hdr.rsv = h[0] & (WS_RSV1 | WS_RSV2 | WS_RSV3);
    p->hdr.opcode = h[0] & 0x0F;
    p->hdr.masked = (h[1] & 0x80) != 0;
    if (len7 == 126) {
        p->hdr.len = ((uint64_t)h[2] << 8) | h[3];
        i = 4;
    }
    else if (len7 == 127) {
        p->hdr.len = 0;
        for (i = 2; i < 10; i++)
            p->hdr.len = (p->hdr.len << 8) | h[i];
    }
    else {
        p->hdr.len = len7;
    }
    if (p->hdr.masked)
        memcpy(p->hdr.mask, h + i, 4);
    else
        memset(p->hdr.mask, 0, 4);
}

static ws_frame_result_e parse_header(ws_frame_parser_t *p,
                                      const uint8_t **pos, const uint8_t *end)
{
    const char *why;
    uint8_t need;

    while (*pos < end) {
        uint8_t b = *(*pos)++;
        p->hbuf[p->hhave++] = b;
        p->offset++;
        if (p->hhave == 1 && (why = check_byte0(p, b)) != NULL)
            return fail(p, p->offset - 1, why);
        if (p->hhave == 2
            && (why = check_byte1(p, p->hbuf[0], b)) != NULL)
            return fail(p, p->offset - 1, why);
        if (p->hhave < 2)
            continue;
        if (p->hhave == 3 && (p->hbuf[1] & 0x7F) == 127 && (b & 0x80))
            return fail(p, p->offset - 1,
                        "64-bit payload length has its most significant bit set");
        need = header_length(p->hbuf[1]);
        if (p->hhave < need)
            continue;
        decode_header(p);
        if (p->hdr.opcode != WS_OP_CONTINUATION
            && !WS_OP_IS_CONTROL(p->hdr.opcode))
            p->in_message = !p->hdr.fin;
        else if (p->hdr.opcode == WS_OP_CONTINUATION && p->hdr.fin)
            p->in_message = 0;
        p->hhave = 0;
        p->payload_off = 0;
        p->state = p->hdr.len ? PARSE_PAYLOAD : PARSE_END;
        return WS_FRAME_HEADER;
    }
    return WS_FRAME_NEED_MORE;
}

ws_frame_result_e ws_frame_parse(ws_frame_parser_t *p, const uint8_t **pos,
                                 const uint8_t *end, const uint8_t **data,
                                 size_t *len)
{
    uint64_t left;
    size_t n;

    switch (p->state) {
    case PARSE_HEADER:
        return parse_header(p, pos, end);

    case PARSE_PAYLOAD:
        if (*pos >= end)
            return WS_FRAME_NEED_MORE;
        left = p->hdr.len - p->payload_off;
        n = (size_t)(end - *pos);
        if ((uint64_t)n > left)
            n = (size_t)left;
        if (data)
            *data = *pos;
        if (len)
            *len = n;
        *pos += n;
        p->offset += n;
        p->payload_off += n;
        if (p->payload_off == p->hdr.len)
            p->state = PARSE_END;
        return WS_FRAME_PAYLOAD;

    case PARSE_END:
        p->state = PARSE_HEADER;
        return WS_FRAME_END;

    default:
        return WS_FRAME_ERROR;
    }
}

size_t ws_frame_write_header(uint8_t *out, int fin, uint8_t rsv,
                             uint8_t opcode, uint64_t len,
                             const uint8_t *mask)
{
    size_t n = 2;
    int i;

    out[0] = (uint8_t)((fin ? 0x80 : 0)
                       | (rsv & (WS_RSV1 | WS_RSV2 | WS_RSV3))
                       | (opcode & 0x0F));
    /* §5.2: the minimal number of bytes must encode the length. */
    if (len < 126) {
        out[1] = (uint8_t)len;
    }
    else if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    }
    else {
        out[1] = 127;
        for (i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}
