/* fuzz_redis_url.c: ws_redis_parse_url() on any string, as it gets
 * whatever a configuration says.
 *
 * The input, cut at its first NUL, is the URL. If it parses, the fields
 * must be sane (a host without '[', ']' or '/', a port from 1 to 65535,
 * a password if a user, the default prefix), and the URL made again from
 * them, everything in user and password percent-encoded, must parse to the
 * same fields. If it does not, there must be a message and nothing
 * allocated (LeakSanitizer sees to that). Anything else aborts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_redis.h"

static char *encode(char *pos, const char *s)
{
    for (; *s; s++)
        pos += sprintf(pos, "%%%02X", (unsigned char)*s);
    return pos;
}

static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1), *again, *pos, err[256] = "";
    ws_redis_config_t cfg, cfg2;

    if (url == NULL)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    if (ws_redis_parse_url(url, &cfg, err, sizeof(err)) != 0) {
        if (err[0] == '\0' || cfg.host || cfg.user || cfg.password
            || cfg.channel_prefix)
            abort();
        free(url);
        return 0;
    }
    if (cfg.host == NULL || cfg.host[0] == '\0' || strpbrk(cfg.host, "[]/@")
        || cfg.port < 1 || cfg.port > 65535 || (cfg.user && !cfg.password)
        || (cfg.password && cfg.password[0] == '\0') || cfg.ca_file
        || cfg.channel_prefix == NULL
        || strcmp(cfg.channel_prefix, WS_REDIS_DEFAULT_PREFIX) != 0)
        abort();

    again = malloc(3 * size + 64);
    if (again == NULL)
        abort();
    pos = again + sprintf(again, "%s://", cfg.tls ? "rediss" : "redis");
    if (cfg.password) {
        if (cfg.user)
            pos = encode(pos, cfg.user);
        *pos++ = ':';
        pos = encode(pos, cfg.password);
        *pos++ = '@';
    }
    sprintf(pos, strchr(cfg.host, ':') ? "[%s]:%d" : "%s:%d", cfg.host,
            cfg.port);
    if (ws_redis_parse_url(again, &cfg2, err, sizeof(err)) != 0
        || !same(cfg.host, cfg2.host) || cfg.port != cfg2.port
        || cfg.tls != cfg2.tls || !same(cfg.user, cfg2.user)
        || !same(cfg.password, cfg2.password))
        abort();
    ws_redis_config_free(&cfg2);
    ws_redis_config_free(&cfg);
    free(again);
    free(url);
    return 0;
}
