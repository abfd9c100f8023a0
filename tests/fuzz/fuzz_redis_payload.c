/* fuzz_redis_payload.c: the Redis link's message parsing, as its thread
 * applies it to whatever arrives on its channels: ws_redis_parse_payload()
 * on a payload and ws_redis_channel_topic() on a channel name.
 *
 * The first byte picks the mode. 0 mod 3: the rest is one payload; if it
 * parses, its parts must lie inside it and formatting them again must give
 * the same bytes back. 1: the next byte is a prefix length, then the
 * prefix, and the rest a channel; a topic must be the channel's tail after
 * the prefix, within the limits. 2: the rest chooses a message (type,
 * data), which is formatted, then parsed, and must come back whole.
 * Anything else aborts. */
#include <stdlib.h>
#include <string.h>

#include "ws_redis.h"

static unsigned char out[WS_REDIS_HEADER + WS_REDIS_MAX_MESSAGE];
static const uint8_t origin[WS_REDIS_ORIGIN] = "fuzz-origin-0001";

static void check_payload(const uint8_t *data, size_t size)
{
    ws_redis_payload_t p;

    if (ws_redis_parse_payload(data, size, &p) != 0)
        return;
    if (p.len > WS_REDIS_MAX_MESSAGE || p.origin != data + 2
        || (const uint8_t *)p.data != data + WS_REDIS_HEADER
        || WS_REDIS_HEADER + p.len != size)
        abort();
    if (ws_redis_format_payload(out, sizeof(out), p.origin, p.type, p.data,
                                p.len) != size
        || memcmp(out, data, size) != 0)
        abort();
}

static void check_channel(const uint8_t *data, size_t size)
{
    size_t prefix_len, topic_len;
    const char *topic;

    if (size < 1)
        return;
    prefix_len = data[0];
    data++;
    size--;
    if (prefix_len > size)
        prefix_len = size;
    if (ws_redis_channel_topic((const char *)data + prefix_len,
                               size - prefix_len, (const char *)data,
                               prefix_len, &topic, &topic_len) != 0)
        return;
    /* The channel is data[prefix_len..size): it must start with the
     * prefix data[0..prefix_len). */
    if (topic_len == 0 || topic_len > WS_REDIS_MAX_TOPIC
        || size - prefix_len != prefix_len + topic_len
        || memcmp(data + prefix_len, data, prefix_len) != 0
        || topic != (const char *)data + 2 * prefix_len)
        abort();
}

static void check_message(const uint8_t *data, size_t size)
{
    ws_redis_payload_t p;
    size_t n;
    uint8_t type;

    if (size < 1)
        return;
    type = data[0];
    data++;
    size--;
    n = ws_redis_format_payload(out, sizeof(out), origin, type, data, size);
    if (size > WS_REDIS_MAX_MESSAGE) {
        if (n != 0)
            abort();
        return;
    }
    if (n != WS_REDIS_HEADER + size || ws_redis_parse_payload(out, n, &p) != 0
        || p.type != type || memcmp(p.origin, origin, WS_REDIS_ORIGIN) != 0
        || p.len != size || (size && memcmp(p.data, data, size) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        check_payload(data + 1, size - 1);
        break;
    case 1:
        check_channel(data + 1, size - 1);
        break;
    default:
        check_message(data + 1, size - 1);
    }
    return 0;
}
