/* ws_redis_wire.c: what the Redis link puts on the wire: its payload
 * format and channel names (ws_redis.h), its commands (ws_redis_wire.h).
 *
 * Pure functions, no I/O: the payload parser is fuzzed alone
 * (fuzz_redis_payload). hiredis formats the commands; RESP's bulk strings
 * carry any bytes, so topics and data need no escaping but in the
 * PSUBSCRIBE pattern.
 */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ws_redis.h"
#include "ws_redis_wire.h"

int ws_redis_parse_payload(const void *buf, size_t len,
                           ws_redis_payload_t *p)
{
    const uint8_t *pos = buf;

    if (len < WS_REDIS_HEADER || pos[0] != WS_REDIS_VERSION
        || len - WS_REDIS_HEADER > WS_REDIS_MAX_MESSAGE)
        return -1;
    p->type = pos[1];
    p->origin = pos + 2;
    p->data = pos + WS_REDIS_HEADER;
    p->len = len - WS_REDIS_HEADER;
    return 0;
}

size_t ws_redis_format_payload(void *buf, size_t cap,
                               const uint8_t origin[WS_REDIS_ORIGIN],
                               uint8_t type, const void *data, size_t len)
{
    uint8_t *pos = buf;

    if (len > WS_REDIS_MAX_MESSAGE || cap < WS_REDIS_HEADER + len)
        return 0;
    pos[0] = WS_REDIS_VERSION;
    pos[1] = type;
    memcpy(pos + 2, origin, WS_REDIS_ORIGIN);
    if (len)
        memcpy(pos + WS_REDIS_HEADER, data, len);
    return WS_REDIS_HEADER + len;
}

int ws_redis_channel_topic(const char *channel, size_t channel_len,
                           const char *prefix, size_t prefix_len,
                           const char **topic, size_t *topic_len)
{
    if (channel_len <= prefix_len
        || channel_len - prefix_len > WS_REDIS_MAX_TOPIC
        || memcmp(channel, prefix, prefix_len) != 0)
        return -1;
    *topic = channel + prefix_len;
    *topic_len = channel_len - prefix_len;
    return 0;
}

/* Append the command of argc arguments to *buf; -1 when out of memory. */
static int append_command(char **buf, size_t *len, int argc,
                          const char **argv, const size_t *argvlen)
{
    char *cmd, *grown;
    int n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);

    if (n < 0)
        return -1;
    grown = realloc(*buf, *len + (size_t)n);
    if (grown == NULL) {
        redisFreeCommand(cmd);
        return -1;
    }
    memcpy(grown + *len, cmd, (size_t)n);
    *buf = grown;
    *len += (size_t)n;
    redisFreeCommand(cmd);
    return 0;
}

int ws_redis_wire_handshake(const ws_redis_config_t *cfg, const char *last,
                            const char *arg, size_t arg_len, char **buf,
                            size_t *len, unsigned *replies)
{
    const char *argv[3] = { "AUTH" };
    size_t argvlen[3] = { 4 };
    int argc = 1;

    *replies = 0;
    if (cfg->password) {
        /* Redis 6 ACLs: AUTH user password; before, AUTH password. */
        if (cfg->user) {
            argv[argc] = cfg->user;
            argvlen[argc++] = strlen(cfg->user);
        }
        argv[argc] = cfg->password;
        argvlen[argc++] = strlen(cfg->password);
        if (append_command(buf, len, argc, argv, argvlen) != 0)
            return -1;
        ++*replies;
    }
    argv[0] = last;
    argvlen[0] = strlen(last);
    argv[1] = arg;
    argvlen[1] = arg_len;
    if (append_command(buf, len, arg ? 2 : 1, argv, argvlen) != 0)
        return -1;
    ++*replies;
    return 0;
}

/* Every channel that starts with prefix, and no other. */
char *ws_redis_wire_pattern(const char *prefix, size_t prefix_len,
                            size_t *len)
{
    char *pat = malloc(2 * prefix_len + 2), *o = pat;
    size_t i;

    if (pat == NULL)
        return NULL;
    for (i = 0; i < prefix_len; i++) {
        if (strchr("*?[]\\", prefix[i]))
            *o++ = '\\';
        *o++ = prefix[i];
    }
    *o++ = '*';
    *len = (size_t)(o - pat);
    return pat;
}

int ws_redis_wire_publish(const char *prefix, size_t prefix_len,
                          const char *topic, size_t topic_len,
                          const uint8_t origin[WS_REDIS_ORIGIN], uint8_t type,
                          const void *data, size_t len, char **cmd)
{
    size_t ch_len = prefix_len + topic_len;
    const char *argv[3] = { "PUBLISH" };
    size_t argvlen[3] = { 7 };
    char *buf = malloc(ch_len + WS_REDIS_HEADER + len);
    int n;

    /* One buffer for the channel and the payload, copied again by hiredis:
     * RESP wants each argument whole. */
    if (buf == NULL)
        return -1;
    memcpy(buf, prefix, prefix_len);
    memcpy(buf + prefix_len, topic, topic_len);
    argv[1] = buf;
    argvlen[1] = ch_len;
    argv[2] = buf + ch_len;
    argvlen[2] = ws_redis_format_payload(buf + ch_len, WS_REDIS_HEADER + len,
                                         origin, type, data, len);
    n = redisFormatCommandArgv(cmd, 3, argv, argvlen);
    free(buf);
    return n;
}
