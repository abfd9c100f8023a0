/* ws_msg.h: an outgoing message, immutable once made and shared by
 * reference, so one message sent to many connections is stored once.
 *
 * Any thread may take or drop a reference; the last drop frees it. */
#ifndef WS_MSG_H
#define WS_MSG_H

#include <stddef.h>
#include <stdint.h>

typedef struct ws_msg {
    uint32_t refs;      /* atomic */
    uint8_t  opcode;    /* WS_OP_TEXT or WS_OP_BINARY */
    uint8_t  rsv;       /* RSV bits of its first frame: WS_RSV1 when the
                           data is compressed (permessage-deflate) */
    size_t   len;
    uint8_t  data[];
} ws_msg_t;

/* A new message holding a copy of data, with one reference for the caller.
 * Returns NULL when out of memory. */
ws_msg_t *ws_msg_create(uint8_t opcode, const void *data, size_t len);

/* Take another reference; returns msg. */
ws_msg_t *ws_msg_ref(ws_msg_t *msg);

/* Drop a reference; frees the message with the last one. NULL is ignored. */
void ws_msg_unref(ws_msg_t *msg);

#endif /* WS_MSG_H */
