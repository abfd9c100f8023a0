/* ws_msg.c: reference-counted outgoing messages. The count and the
 * compressed form are atomic because a broadcast hands one message to
 * connections served by different threads. */
#include <stdlib.h>
#include <string.h>

#include "ws_msg.h"

ws_msg_t *ws_msg_alloc(uint8_t opcode, size_t len)
{
    ws_msg_t *msg;

    if (len > SIZE_MAX - sizeof(*msg))
        return NULL;
    if (!(msg = malloc(sizeof(*msg) + len)))
        return NULL;
    msg->refs = 1;
    msg->opcode = opcode;
    msg->rsv = 0;
    msg->deflate_key = 0;
    msg->deflated = NULL;
    msg->plain_len = len;
    msg->len = len;
    return msg;
}

ws_msg_t *ws_msg_create(uint8_t opcode, const void *data, size_t len)
{
    ws_msg_t *msg = ws_msg_alloc(opcode, len);

    if (msg && len)
        memcpy(msg->data, data, len);
    return msg;
}

ws_msg_t *ws_msg_shrink(ws_msg_t *msg, size_t len)
{
    ws_msg_t *smaller;

    if (len >= msg->len)
        return msg;
    msg->len = len;
    smaller = realloc(msg, sizeof(*msg) + len);
    return smaller ? smaller : msg;
}

ws_msg_t *ws_msg_ref(ws_msg_t *msg)
{
    __atomic_add_fetch(&msg->refs, 1, __ATOMIC_RELAXED);
    return msg;
}

void ws_msg_unref(ws_msg_t *msg)
{
    if (msg && __atomic_sub_fetch(&msg->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        ws_msg_unref(msg->deflated);
        free(msg);
    }
}

ws_msg_t *ws_msg_deflated(ws_msg_t *msg, uint16_t key)
{
    /* The caller holds msg, which holds its compressed form: taking a
     * reference here cannot race with the last drop. */
    ws_msg_t *z = __atomic_load_n(&msg->deflated, __ATOMIC_ACQUIRE);

    return z && z->deflate_key == key ? ws_msg_ref(z) : NULL;
}

void ws_msg_offer_deflated(ws_msg_t *msg, ws_msg_t *z)
{
    ws_msg_t *none = NULL;

    ws_msg_ref(z);
    if (!__atomic_compare_exchange_n(&msg->deflated, &none, z, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        ws_msg_unref(z);
}
