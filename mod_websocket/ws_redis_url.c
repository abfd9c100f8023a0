/* ws_redis_url.c: the Redis link's configuration from a redis:// or
 * rediss:// URL (see ws_redis.h), after the IANA "redis" scheme.
 *
 * A pure parser: no I/O, no name lookup (the link thread does that), and
 * nothing read past the URL's NUL. The authority ends at the first '/',
 * '?' or '#', so those must be percent-encoded in a password; within it
 * the last '@' ends the user information and its first ':' ends the user,
 * so that an unencoded '@' or ':' in a password, a common mistake, still
 * reads as meant.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_redis.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The len bytes at pos, percent-decoded, as a malloc'd string; NULL with
 * errno EINVAL for a bad escape or one that decodes to NUL (AUTH's
 * arguments are strings), ENOMEM. */
static char *decode(const char *pos, size_t len)
{
    const char *end = pos + len;
    char *out = malloc(len + 1), *o = out;
    int hi, lo;

    if (out == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    while (pos < end) {
        if (*pos != '%') {
            *o++ = *pos++;
            continue;
        }
        if (end - pos < 3 || (hi = hex(pos[1])) < 0 || (lo = hex(pos[2])) < 0
            || (hi | lo) == 0) {
            free(out);
            errno = EINVAL;
            return NULL;
        }
        *o++ = (char)(hi << 4 | lo);
        pos += 3;
    }
    *o = '\0';
    return out;
}

static char *copy(const char *pos, size_t len)
{
    char *out = malloc(len + 1);

    if (out) {
        memcpy(out, pos, len);
        out[len] = '\0';
    }
    return out;
}

/* Digits only, from lo to hi. Returns the number or -1. */
static long number(const char *pos, const char *end, long lo, long hi)
{
    long n = 0;

    if (pos == end)
        return -1;
    for (; pos < end; pos++) {
        if (*pos < '0' || *pos > '9')
            return -1;
        n = n * 10 + (*pos - '0');
        if (n > hi)
            return -1;
    }
    return n < lo ? -1 : n;
}

/* The authority's user:password part, [pos, end). */
static int parse_userinfo(const char *pos, const char *end,
                          ws_redis_config_t *cfg, char *err, size_t errlen)
{
    const char *colon = memchr(pos, ':', (size_t)(end - pos));

    if (colon == NULL)
        return fail(err, errlen, "redis URL: a user needs a password "
                    "(redis://user:password@host)");
    if (colon > pos && (cfg->user = decode(pos, (size_t)(colon - pos)))
                       == NULL)
        goto bad;
    if ((cfg->password = decode(colon + 1, (size_t)(end - colon - 1)))
        == NULL)
        goto bad;
    if (cfg->password[0] == '\0')
        return fail(err, errlen, "redis URL: an empty password");
    return 0;
bad:
    if (errno == ENOMEM)
        return fail(err, errlen, "redis URL: no memory");
    return fail(err, errlen, "redis URL: a bad %%-escape in the user or "
                "password (%%XX with two hex digits, not %%00)");
}

/* host[:port] or [v6][:port], [pos, end). */
static int parse_hostport(const char *pos, const char *end,
                          ws_redis_config_t *cfg, char *err, size_t errlen)
{
    const char *host = pos, *host_end, *p;
    long port;

    if (pos < end && *pos == '[') {
        host = pos + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (host_end == NULL)
            return fail(err, errlen, "redis URL: no ']' after an IPv6 "
                        "address");
        p = host_end + 1;
        if (p < end && *p != ':')
            return fail(err, errlen, "redis URL: '%c' after ']'", *p);
        for (pos = host; pos < host_end; pos++)
            if (hex(*pos) < 0 && *pos != ':' && *pos != '.')
                return fail(err, errlen, "redis URL: '%c' in an IPv6 "
                            "address", *pos);
    }
    else {
        host_end = memchr(pos, ':', (size_t)(end - pos));
        if (host_end == NULL)
            host_end = end;
        p = host_end;
        for (; pos < host_end; pos++)
            if (!((*pos >= 'a' && *pos <= 'z') || (*pos >= 'A' && *pos <= 'Z')
                  || (*pos >= '0' && *pos <= '9') || *pos == '-'
                  || *pos == '.' || *pos == '_'))
                return fail(err, errlen, "redis URL: '%c' in the host name",
                            *pos);
    }
    if (host_end == host)
        return fail(err, errlen, "redis URL: no host");
    cfg->port = WS_REDIS_DEFAULT_PORT;
    if (p < end) {
        port = number(p + 1, end, 1, 65535);
        if (port < 0)
            return fail(err, errlen, "redis URL: the port is not a number "
                        "from 1 to 65535");
        cfg->port = (int)port;
    }
    if ((cfg->host = copy(host, (size_t)(host_end - host))) == NULL)
        return fail(err, errlen, "redis URL: no memory");
    return 0;
}

int ws_redis_parse_url(const char *url, ws_redis_config_t *cfg, char *err,
                       size_t errlen)
{
    const char *pos, *end, *at, *path;

    memset(cfg, 0, sizeof(*cfg));
    if (strncmp(url, "redis://", 8) == 0) {
        pos = url + 8;
    }
    else if (strncmp(url, "rediss://", 9) == 0) {
        pos = url + 9;
        cfg->tls = 1;
    }
    else {
        return fail(err, errlen, "redis URL: not redis:// or rediss://: "
                    "%.64s", url);
    }
    end = pos + strcspn(pos, "/?#");
    path = end;
    if (*path == '/') {
        /* A database number: meaningless to pub/sub, but common in the
         * URLs people copy. */
        const char *db_end = path + 1 + strcspn(path + 1, "?#");

        if (db_end > path + 1 && number(path + 1, db_end, 0, 1L << 30) < 0)
            return fail(err, errlen, "redis URL: the path is not a database "
                        "number: %.64s", path);
        path = db_end;
    }
    if (*path != '\0')
        return fail(err, errlen, "redis URL: a query or fragment (%.64s) "
                    "is not understood", path);

    at = NULL;
    for (const char *p = pos; p < end; p++)
        if (*p == '@')
            at = p;
    if ((at && parse_userinfo(pos, at, cfg, err, errlen) != 0)
        || parse_hostport(at ? at + 1 : pos, end, cfg, err, errlen) != 0)
        goto failed;
    if ((cfg->channel_prefix = strdup(WS_REDIS_DEFAULT_PREFIX)) == NULL) {
        fail(err, errlen, "redis URL: no memory");
        goto failed;
    }
    return 0;
failed:
    ws_redis_config_free(cfg);
    return -1;
}

void ws_redis_config_free(ws_redis_config_t *cfg)
{
    free(cfg->host);
    free(cfg->user);
    free(cfg->password);
    free(cfg->ca_file);
    free(cfg->channel_prefix);
    memset(cfg, 0, sizeof(*cfg));
}
