/* ws_handshake.c: the server's checks of an opening handshake (RFC 6455
 * §4.2.1), its accept key (§4.2.2) and its choice of subprotocol.
 *
 * Everything here reads NUL-terminated header values that httpd has already
 * parsed and answers with a status, a key or a pointer into the caller's
 * data. It must not do I/O, log, allocate or touch httpd structures: the
 * glue code decides what to send and what to log.
 */
#include <string.h>

#include <apr_base64.h>
#include <apr_sha1.h>

#include "ws_handshake.h"

/* §1.3: the GUID appended to the client's key before hashing. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* A Sec-WebSocket-Key is base64 of 16 bytes (§4.1): 22 characters, then
 * "==". */
#define WS_KEY_LEN      24
#define WS_KEY_DATA_LEN 22

/* Optional whitespace, RFC 7230 §3.2.3. */
static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The value of a base64 character (RFC 4648 §4), or -1. Written out rather
 * than borrowed from apr_base64_decode, which skips what it does not know
 * instead of failing. */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Set *pos and *end to s without its leading and trailing OWS. */
static void trim_ows(const char *s, const char **pos, const char **end)
{
    const char *p = s, *e = s + strlen(s);

    while (p < e && is_ows(*p)) {
        p++;
    }
    while (e > p && is_ows(e[-1])) {
        e--;
    }
    *pos = p;
    *end = e;
}

/* The bytes [pos, end) equal token, ASCII letters folded if fold is set.
 * Folding by hand keeps the comparison independent of the locale. */
static int span_equals(const char *pos, const char *end, const char *token,
                       int fold)
{
    size_t len = (size_t)(end - pos);

    if (strlen(token) != len) {
        return 0;
    }
    for (; pos < end; pos++, token++) {
        char a = *pos, b = *token;

        if (fold) {
            a = (a >= 'A' && a <= 'Z') ? (char)(a + 32) : a;
            b = (b >= 'A' && b <= 'Z') ? (char)(b + 32) : b;
        }
        if (a != b) {
            return 0;
        }
    }
    return 1;
}

/* 1 if the comma-separated list holds token as a whole element. RFC 7230
 * §7: elements may be empty and may carry OWS around them, so ",,a , b"
 * holds "a" and "b" and nothing else. */
static int list_has(const char *list, const char *token, int fold)
{
    const char *pos = list;

    if (list == NULL || token == NULL) {
        return 0;
    }
    for (;;) {
        const char *comma = strchr(pos, ',');
        const char *end = comma ? comma : pos + strlen(pos);
        const char *elt = pos;

        while (elt < end && is_ows(*elt)) {
            elt++;
        }
        while (end > elt && is_ows(end[-1])) {
            end--;
        }
        if (end > elt && span_equals(elt, end, token, fold)) {
            return 1;
        }
        if (comma == NULL) {
            return 0;
        }
        pos = comma + 1;
    }
}

int ws_handshake_has_token(const char *list, const char *token)
{
    return list_has(list, token, 1);
}

int ws_handshake_key_valid(const char *key)
{
    const char *pos, *end;
    int i, last;

    if (key == NULL) {
        return 0;
    }
    trim_ows(key, &pos, &end);
    if (end - pos != WS_KEY_LEN) {
        return 0;
    }
    for (i = 0; i < WS_KEY_DATA_LEN; i++) {
        if (b64_value(pos[i]) < 0) {
            return 0;
        }
    }
    /* 16 bytes are 128 bits; the 22nd character carries the last 2 of them
     * and its low 4 bits are padding, which must be zero in the canonical
     * encoding (RFC 4648 §3.5). Anything else is not "16 bytes" but a
     * second spelling of them. */
    last = b64_value(pos[WS_KEY_DATA_LEN - 1]);
    if ((last & 0x0f) != 0) {
        return 0;
    }
    return pos[WS_KEY_DATA_LEN] == '=' && pos[WS_KEY_DATA_LEN + 1] == '=';
}

void ws_handshake_accept_key(const char *key,
                             char out[WS_HANDSHAKE_ACCEPT_LEN + 1])
{
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t sha;
    const char *pos, *end;

    /* §4.2.2: the key as sent, "without any leading or trailing whitespace",
     * then the GUID. Both are text, so apr_sha1_update (which translates
     * from EBCDIC where httpd runs on it); the digest is bytes, so the
     * _binary encoder. A header value fits in unsigned int: httpd caps
     * fields at LimitRequestFieldSize. */
    trim_ows(key, &pos, &end);
    apr_sha1_init(&sha);
    apr_sha1_update(&sha, pos, (unsigned int)(end - pos));
    apr_sha1_update(&sha, WS_GUID, (unsigned int)strlen(WS_GUID));
    apr_sha1_final(digest, &sha);
    apr_base64_encode_binary(out, digest, APR_SHA1_DIGESTSIZE);
}

/* Fill res and return its status. */
static int answer(ws_handshake_result_t *res, ws_handshake_error_e error,
                int status, const char *reason)
{
    res->error = error;
    res->status = status;
    res->reason = reason;
    return status;
}

int ws_handshake_check(const ws_handshake_request_t *req,
                       ws_handshake_result_t *res)
{
    const char *pos, *end;

    /* §4.2.1 item 1: "an HTTP/1.1 or higher GET request". Methods are
     * case-sensitive (RFC 7231 §4.1). 405 tells the client which method
     * would have done. */
    if (req->method == NULL || strcmp(req->method, "GET") != 0) {
        return answer(res, WS_HS_BAD_METHOD, 405,
                    "request method is not GET");
    }
    if (req->proto_num < 1001) {
        return answer(res, WS_HS_BAD_HTTP_VERSION, 400,
                    "HTTP version is older than 1.1");
    }

    /* §4.2.1 item 2. */
    if (req->host == NULL) {
        return answer(res, WS_HS_NO_HOST, 400, "Host header is missing");
    }
    trim_ows(req->host, &pos, &end);
    if (pos == end) {
        return answer(res, WS_HS_NO_HOST, 400, "Host header is empty");
    }

    /* §4.2.1 items 3 and 4. Both are lists (RFC 7230 §6.1, §6.7): browsers
     * send "keep-alive, Upgrade". 426 because a plain HTTP request has
     * reached a resource that only speaks WebSocket. */
    if (!ws_handshake_has_token(req->upgrade, "websocket")) {
        return answer(res, WS_HS_NOT_UPGRADE, 426,
                    req->upgrade ? "Upgrade header does not list websocket"
                                 : "Upgrade header is missing");
    }
    if (!ws_handshake_has_token(req->connection, "Upgrade")) {
        return answer(res, WS_HS_NOT_UPGRADE, 426,
                    req->connection ? "Connection header does not list Upgrade"
                                    : "Connection header is missing");
    }

    /* §4.2.1 item 6, §4.2.2 and §4.4: anything but exactly 13, a list
     * included, gets 426 and our version so the client can retry with it. */
    if (req->version == NULL) {
        return answer(res, WS_HS_BAD_VERSION, 426,
                    "Sec-WebSocket-Version header is missing");
    }
    trim_ows(req->version, &pos, &end);
    if (!span_equals(pos, end, WS_HANDSHAKE_VERSION, 0)) {
        return answer(res, WS_HS_BAD_VERSION, 426,
                    "Sec-WebSocket-Version is not 13");
    }

    /* §4.2.1 item 5. */
    if (req->key == NULL) {
        return answer(res, WS_HS_BAD_KEY, 400,
                    "Sec-WebSocket-Key header is missing");
    }
    if (!ws_handshake_key_valid(req->key)) {
        return answer(res, WS_HS_BAD_KEY, 400,
                    "Sec-WebSocket-Key is not base64 of 16 bytes");
    }

    return answer(res, WS_HS_OK, 0, NULL);
}

const char *ws_handshake_select_protocol(const char *offered,
                                         const char *const *allowed, int n)
{
    int i;

    /* §4.2.2 /subprotocol/: the server picks one of the values the client
     * offered. Walking our own list first makes the server's preference
     * win. Names are compared exactly: the chosen value is echoed back and
     * the client matches it against what it sent. */
    if (offered == NULL || allowed == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (list_has(offered, allowed[i], 0)) {
            return allowed[i];
        }
    }
    return NULL;
}
