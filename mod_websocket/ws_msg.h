/* ws_msg.h: an outgoing message, immutable once made and shared by
 * reference, so one message sent to many connections is stored once.
 *
 * Any thread may take or drop a reference; the last drop frees it. A
 * message may also carry its compressed form (permessage-deflate without
 * context takeover), made by the first connection that needed it and
 * shared by every later one that compresses with the same parameters. */
#ifndef WS_MSG_H
#define WS_MSG_H

#include <stddef.h>
#include <stdint.h>

typedef struct ws_msg {
    uint32_t refs;      /* atomic */
    uint8_t  opcode;    /* WS_OP_TEXT or WS_OP_BINARY */
    uint8_t  rsv;       /* RSV bits of its first frame: WS_RSV1 when the
                           data is compressed (permessage-deflate) */
    uint16_t deflate_key;       /* compressed: the parameters it was
                                   compressed with (ws_engine's key) */
    struct ws_msg *deflated;    /* atomic: this message compressed without
                                   context, or NULL */
    size_t   plain_len; /* the message's length before compression (len
                           if it is not compressed) */
    size_t   len;
    uint8_t  data[];
} ws_msg_t;

/* A new message holding a copy of data, with one reference for the caller.
 * Returns NULL when out of memory. */
ws_msg_t *ws_msg_create(uint8_t opcode, const void *data, size_t len);

/* A new message with room for len bytes of data, to be filled by the
 * caller before it is shared. Returns NULL when out of memory. */
ws_msg_t *ws_msg_alloc(uint8_t opcode, size_t len);

/* Cut a message the caller alone holds down to its first len bytes,
 * giving back the rest of its memory; returns the (maybe moved) message. */
ws_msg_t *ws_msg_shrink(ws_msg_t *msg, size_t len);

/* Take another reference; returns msg. */
ws_msg_t *ws_msg_ref(ws_msg_t *msg);

/* Drop a reference; frees the message with the last one. NULL is ignored. */
void ws_msg_unref(ws_msg_t *msg);

/* msg's compressed form made with the parameters key, with a reference for
 * the caller, or NULL if there is none. */
ws_msg_t *ws_msg_deflated(ws_msg_t *msg, uint16_t key);

/* Offer z (compressed with z->deflate_key) as msg's compressed form. Only
 * the first offer is kept: later ones, made by connections that raced to
 * compress or that use other parameters, are not. Takes no reference from
 * the caller. */
void ws_msg_offer_deflated(ws_msg_t *msg, ws_msg_t *z);

#endif /* WS_MSG_H */
