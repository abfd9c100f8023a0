/* ws_handshake.h: the server's side of the opening handshake, RFC 6455
 * §4.2.1 and §4.2.2, on a request that httpd has already parsed.
 *
 * Decides whether a request is an acceptable WebSocket upgrade and, if not,
 * which HTTP status and one-line reason answer it; computes the accept key;
 * chooses the subprotocol. It reads strings and writes nothing but its
 * results: no I/O, no logging, no httpd headers (APR only).
 */
#ifndef WS_HANDSHAKE_H
#define WS_HANDSHAKE_H

#include <apr_pools.h>

/* The request as httpd parsed it. Header values are as received, with
 * repeated headers joined by ", " (httpd does this); NULL when absent. */
typedef struct ws_handshake_request {
    const char *method;      /* "GET" */
    int         proto_num;   /* HTTP version as 1000 * major + minor */
    const char *host;        /* Host */
    const char *upgrade;     /* Upgrade */
    const char *connection;  /* Connection */
    const char *key;         /* Sec-WebSocket-Key */
    const char *version;     /* Sec-WebSocket-Version */
} ws_handshake_request_t;

typedef enum {
    WS_HS_OK = 0,
    WS_HS_BAD_METHOD,        /* 405: not GET */
    WS_HS_BAD_HTTP_VERSION,  /* 400: HTTP/1.0 or older */
    WS_HS_NO_HOST,           /* 400 */
    WS_HS_NOT_UPGRADE,       /* 426: Upgrade lacks websocket or Connection lacks Upgrade */
    WS_HS_BAD_KEY,           /* 400: not base64 of 16 bytes */
    WS_HS_BAD_VERSION        /* 426 with Sec-WebSocket-Version: 13 */
} ws_handshake_error_e;

typedef struct ws_handshake_result {
    ws_handshake_error_e error;
    int         status;      /* HTTP status to answer with; 0 when OK */
    const char *reason;      /* static one-line reason for the error log,
                              * naming the header; NULL when OK */
} ws_handshake_result_t;

/* The only version this server speaks; sent back with a 426 (§4.4). */
#define WS_HANDSHAKE_VERSION "13"

/* Length of a Sec-WebSocket-Accept value, without the terminating NUL. */
#define WS_HANDSHAKE_ACCEPT_LEN 28

/* Check req against §4.2.1 in a fixed order (method, version of HTTP, Host,
 * Upgrade/Connection, Sec-WebSocket-Version, Sec-WebSocket-Key) and fill res.
 * Returns res->status: 0 if the request may be upgraded. */
int ws_handshake_check(const ws_handshake_request_t *req,
                       ws_handshake_result_t *res);

/* 1 if the comma-separated header value list holds token, compared
 * case-insensitively, with optional whitespace around elements (RFC 7230
 * §7). NULL list: 0. */
int ws_handshake_has_token(const char *list, const char *token);

/* 1 if key is the base64 encoding of exactly 16 bytes (§4.1): 22 base64
 * characters, the last carrying no stray bits, and "==". Surrounding
 * whitespace is tolerated. */
int ws_handshake_key_valid(const char *key);

/* Write the Sec-WebSocket-Accept value for key (§4.2.2: base64 of the SHA-1
 * of the key and the GUID) into out, NUL-terminated. key is used as given,
 * without its surrounding whitespace; it must not be NULL and should be one
 * that ws_handshake_key_valid accepted. */
void ws_handshake_accept_key(const char *key,
                             char out[WS_HANDSHAKE_ACCEPT_LEN + 1]);

/* Choose the subprotocol: the first entry of allowed (the server's order of
 * preference, n entries) that the client offered in its comma-separated
 * Sec-WebSocket-Protocol value, compared exactly. Returns the entry of
 * allowed itself (not a copy), or NULL for none, for a NULL offered or
 * allowed, and for n <= 0. */
const char *ws_handshake_select_protocol(const char *offered,
                                         const char *const *allowed, int n);

#endif /* WS_HANDSHAKE_H */
