/* ws_origin.c: comparing a browser's Origin with this server or with an
 * allow-list (RFC 6455 §10.2, RFC 6454 §6.2). Never decides policy: the
 * handler chooses which check applies. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apr_lib.h"
#include "apr_strings.h"

#include "ws_origin.h"

/* "host" or "[v6]" followed by an optional ":port"; reg-name characters
 * only (RFC 3986 §3.2.2), so user info, paths and queries are refused. */
static int authority_valid(const char *a)
{
    const char *s = a;

    if (*s == '[') {
        while (*++s && *s != ']')
            if (!apr_isxdigit(*s) && *s != ':' && *s != '.')
                return 0;
        if (*s++ != ']' || s == a + 2)
            return 0;
    }
    else {
        for (; *s && *s != ':'; s++)
            if (!apr_isalnum(*s) && *s != '-' && *s != '.' && *s != '_'
                && *s != '~')
                return 0;
        if (s == a)
            return 0;
    }
    if (*s == ':') {
        const char *port = ++s;
        while (apr_isdigit(*s))
            s++;
        if (s == port || s - port > 5 || atoi(port) > 65535)
            return 0;
    }
    return *s == '\0';
}

const char *ws_origin_normalize(apr_pool_t *p, const char *origin)
{
    const char *rest, *dflt;
    char *norm, *colon;
    size_t len;

    if (!origin)
        return NULL;
    if (!strncasecmp(origin, "http://", 7)) {
        rest = origin + 7;
        dflt = ":80";
    }
    else if (!strncasecmp(origin, "https://", 8)) {
        rest = origin + 8;
        dflt = ":443";
    }
    else {
        return NULL;
    }
    if (!authority_valid(rest))
        return NULL;
    norm = apr_pstrdup(p, origin);
    for (colon = norm; *colon; colon++)
        *colon = (char)apr_tolower(*colon);
    colon = strrchr(norm, ':');
    len = strlen(norm);
    /* The last ':' is the port's unless it sits inside [v6]. */
    if (colon && colon > norm + (rest - origin) && norm[len - 1] != ']'
        && !strcmp(colon, dflt))
        *colon = '\0';
    return norm;
}

int ws_origin_same(apr_pool_t *p, const char *origin, const char *scheme,
                   const char *host)
{
    const char *mine, *theirs = ws_origin_normalize(p, origin);

    if (!theirs || !host)
        return 0;
    mine = ws_origin_normalize(p, apr_pstrcat(p, scheme, "://", host, NULL));
    return mine && !strcmp(mine, theirs);
}

int ws_origin_listed(apr_pool_t *p, const char *origin,
                     const apr_array_header_t *allowed)
{
    const char *theirs = ws_origin_normalize(p, origin), *one;
    int i;

    if (!theirs || !allowed)
        return 0;
    for (i = 0; i < allowed->nelts; i++) {
        one = ws_origin_normalize(p, APR_ARRAY_IDX(allowed, i, const char *));
        if (one && !strcmp(one, theirs))
            return 1;
    }
    return 0;
}
