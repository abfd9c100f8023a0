/* ws_msg.c: reference-counted outgoing messages. The count is atomic
 * because a broadcast hands one message to connections served by
 * different threads. */
#include <stdlib.h>
#include <string.h>

#include "ws_msg.h"

ws_msg_t *ws_msg_create(uint8_t opcode, const void *data, size_t len)
{
    ws_msg_t *msg;

    if (len > SIZE_MAX - sizeof(*msg))
        return NULL;
    if (!(msg = malloc(sizeof(*msg) + len)))
        return NULL;
    msg->refs = 1;
    msg->opcode = opcode;
    msg->rsv = 0;
    msg->len = len;
    if (len)
        memcpy(msg->data, data, len);
    return msg;
}

ws_msg_t *ws_msg_ref(ws_msg_t *msg)
{
    __atomic_add_fetch(&msg->refs, 1, __ATOMIC_RELAXED);
    return msg;
}

void ws_msg_unref(ws_msg_t *msg)
{
    if (msg && __atomic_sub_fetch(&msg->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(msg);
}
