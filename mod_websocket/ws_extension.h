/* ws_extension.h: parsing Sec-WebSocket-Extensions offers with the grammar
 * of RFC 6455 §9.1 as RFC 7692 §5 uses it (quoted values, duplicate
 * parameters, several offers of one extension).
 *
 * The parser only describes what was offered; deciding what to accept is
 * the negotiating extension's job. No I/O, no logging; results live in the
 * caller's pool.
 */
#ifndef WS_EXTENSION_H
#define WS_EXTENSION_H

#include <apr_pools.h>
#include <apr_tables.h>

typedef struct ws_extension_param {
    const char *name;   /* token, as received */
    const char *value;  /* unquoted value, or NULL when the parameter has none */
} ws_extension_param_t;

typedef struct ws_extension_offer {
    const char *name;             /* extension token, as received */
    apr_array_header_t *params;   /* of ws_extension_param_t, in order */
} ws_extension_offer_t;

/* Parse a Sec-WebSocket-Extensions value (repeated headers already joined
 * with ", ") into *offers, an array of ws_extension_offer_t in the client's
 * order. Returns 1 on success, 0 if the value breaks the grammar: then
 * *offers is NULL and *error_at, if not NULL, is the offset of the first
 * byte that does not fit (strlen(header) when the value stops short, as
 * after a trailing ';'). A quoted value must unquote to a token (§9.1). An
 * empty or NULL header, or one of empty list elements only, yields an empty
 * array. */
int ws_extension_parse(apr_pool_t *pool, const char *header,
                       apr_array_header_t **offers, size_t *error_at);

#endif /* WS_EXTENSION_H */
