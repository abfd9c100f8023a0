/* fuzz_bus_frame.c: the bus's datagram parser, ws_bus_parse(), on any
 * bytes, as the bus thread calls it on whatever arrives at its socket.
 *
 * The first byte picks the mode. Even: the rest is one datagram; if it
 * parses, its parts must lie inside it and framing them again must give
 * the same bytes back. Odd: the rest chooses a message (type, topic
 * length, data), which is framed, then parsed, and must come back whole.
 * Anything else aborts. */
#include <stdlib.h>
#include <string.h>

#include "ws_bus.h"

static unsigned char out[WS_BUS_MAX_DATAGRAM];

static void check_datagram(const uint8_t *data, size_t size)
{
    ws_bus_frame_t f;

    if (ws_bus_parse(data, size, &f) != 0)
        return;
    if (f.topic_len == 0 || f.topic_len > WS_BUS_MAX_TOPIC
        || f.len > WS_BUS_MAX_MESSAGE
        || (const uint8_t *)f.topic != data + WS_BUS_HEADER
        || (const uint8_t *)f.data != data + WS_BUS_HEADER + f.topic_len
        || WS_BUS_HEADER + f.topic_len + f.len != size)
        abort();
    if (ws_bus_frame(out, sizeof(out), f.pid, f.seq, f.topic, f.topic_len,
                     f.type, f.data, f.len) != size
        || memcmp(out, data, size) != 0)
        abort();
}

static void check_message(const uint8_t *data, size_t size)
{
    size_t topic_len, len, n;
    ws_bus_frame_t f;
    uint8_t type;

    if (size < 3)
        return;
    type = data[0];
    topic_len = (size_t)(data[1] << 8 | data[2]);
    data += 3;
    size -= 3;
    if (topic_len > size)
        topic_len = size;
    len = size - topic_len;
    n = ws_bus_frame(out, sizeof(out), 4242, size, (const char *)data,
                     topic_len, type, data + topic_len, len);
    if (topic_len == 0 || topic_len > WS_BUS_MAX_TOPIC
        || len > WS_BUS_MAX_MESSAGE) {
        if (n != 0)
            abort();
        return;
    }
    if (n != WS_BUS_HEADER + topic_len + len
        || ws_bus_parse(out, n, &f) != 0
        || f.type != type || f.pid != 4242 || f.seq != size
        || f.topic_len != topic_len || f.len != len
        || memcmp(f.topic, data, topic_len) != 0
        || memcmp(f.data, data + topic_len, len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        check_message(data + 1, size - 1);
    else
        check_datagram(data + 1, size - 1);
    return 0;
}
