/* ws_origin.h: the Origin check of RFC 6455 §4.2.2 and §10.2, with
 * origins compared as RFC 6454 serialises them. Pure string logic. */
#ifndef WS_ORIGIN_H
#define WS_ORIGIN_H

#include <apr_pools.h>
#include <apr_tables.h>

/* The canonical form of "scheme://host[:port]": scheme and host
 * lowercased, the scheme's default port (80 for http, 443 for https)
 * dropped. NULL if origin is not of that form (paths, user info, other
 * schemes, "null"). */
const char *ws_origin_normalize(apr_pool_t *p, const char *origin);

/* 1 if origin names the same origin as a request made with scheme
 * ("http" or "https") to host (the Host header, port included or not). */
int ws_origin_same(apr_pool_t *p, const char *origin, const char *scheme,
                   const char *host);

/* 1 if origin equals one of allowed (const char *), both normalised. */
int ws_origin_listed(apr_pool_t *p, const char *origin,
                     const apr_array_header_t *allowed);

#endif /* WS_ORIGIN_H */
