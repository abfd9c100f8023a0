/* fuzz_handshake.c: libFuzzer target for the opening handshake: the checks,
 * the accept key, the subprotocol choice and the extension parser, run on
 * one request built from the input.
 *
 * Input layout (seeds in corpus/fuzz_handshake/ follow it):
 *
 *   byte 0   HTTP version, an index into proto_nums[] (low 3 bits)
 *   byte 1   absent headers: bit i makes field i NULL (fields 0-6 and 8)
 *   rest     fields separated by '\n':
 *            0 method  1 Host  2 Upgrade  3 Connection  4 Sec-WebSocket-Key
 *            5 Sec-WebSocket-Version  6 Sec-WebSocket-Protocol (offer)
 *            7 the server's protocols, separated by ' '
 *            8 Sec-WebSocket-Extensions (the rest of the input)
 *
 * Besides the sanitizers it checks the results against the header's
 * promises and against small independent oracles; a broken promise aborts.
 * It must not keep anything between runs except its pool, which it clears.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_base64.h>
#include <apr_general.h>

#include "ws_extension.h"
#include "ws_handshake.h"

#define N_FIELDS  9
#define F_OFFERED 6
#define F_ALLOWED 7
#define F_EXT     8
#define MAX_ALLOWED 8

/* Either side of each boundary that ws_handshake_check draws. */
static const int proto_nums[8] = { 1001, 1000, 2000, 1100, 999, 0, 3000,
                                   -1 };

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Oracle for select_protocol: offered, split on ',' and trimmed of OWS,
 * holds an element equal to name byte for byte. */
static int offered_has(const char *offered, const char *name)
{
    size_t n = strlen(name), i = 0;

    if (offered == NULL) {
        return 0;
    }
    while (offered[i]) {
        size_t from, to;

        while (offered[i] && is_ows(offered[i])) {
            i++;
        }
        from = i;
        while (offered[i] && offered[i] != ',') {
            i++;
        }
        to = i;
        while (to > from && is_ows(offered[to - 1])) {
            to--;
        }
        if (to - from == n && n > 0 && memcmp(offered + from, name, n) == 0) {
            return 1;
        }
        if (offered[i] == ',') {
            i++;
        }
    }
    return 0;
}

/* Oracle for key_valid: trimmed of OWS, the key is 24 characters and
 * APR's (lenient) decoder turns it into 16 bytes that encode back to
 * exactly those characters, i.e. it is the canonical spelling. */
static int key_oracle(const char *key)
{
    char trimmed[25], again[32];
    unsigned char bytes[32];
    size_t from = 0, to;

    if (key == NULL) {
        return 0;
    }
    to = strlen(key);
    while (from < to && is_ows(key[from])) {
        from++;
    }
    while (to > from && is_ows(key[to - 1])) {
        to--;
    }
    if (to - from != 24) {
        return 0;
    }
    memcpy(trimmed, key + from, 24);
    trimmed[24] = '\0';
    if (apr_base64_decode_binary(bytes, trimmed) != 16) {
        return 0;
    }
    apr_base64_encode_binary(again, bytes, 16);
    return strcmp(again, trimmed) == 0;
}

static int expected_status(ws_handshake_error_e error)
{
    switch (error) {
    case WS_HS_OK:
        return 0;
    case WS_HS_BAD_METHOD:
        return 405;
    case WS_HS_NOT_UPGRADE:
    case WS_HS_BAD_VERSION:
        return 426;
    case WS_HS_BAD_HTTP_VERSION:
    case WS_HS_NO_HOST:
    case WS_HS_BAD_KEY:
        return 400;
    }
    return -1;
}

static void check_request(const ws_handshake_request_t *req)
{
    ws_handshake_result_t res;
    int status = ws_handshake_check(req, &res);

    if (status != res.status || status != expected_status(res.error)) {
        abort();
    }
    if ((res.error == WS_HS_OK) != (res.reason == NULL)) {
        abort();
    }
    if (res.reason && (res.reason[0] == '\0' || strchr(res.reason, '\n'))) {
        abort();
    }
    if (status == 0
        && (strcmp(req->method, "GET") != 0 || req->proto_num < 1001
            || !ws_handshake_has_token(req->upgrade, "websocket")
            || !ws_handshake_has_token(req->connection, "upgrade")
            || !key_oracle(req->key))) {
        abort();
    }
}

static void check_key(const char *key)
{
    char out[WS_HANDSHAKE_ACCEPT_LEN + 1];
    int valid = ws_handshake_key_valid(key);
    int i;

    if (valid != key_oracle(key)) {
        abort();
    }
    if (!valid) {
        return;
    }
    /* Base64 of the 20 bytes of a SHA-1: 27 characters and one '='. */
    ws_handshake_accept_key(key, out);
    if (strlen(out) != WS_HANDSHAKE_ACCEPT_LEN
        || out[WS_HANDSHAKE_ACCEPT_LEN - 1] != '=') {
        abort();
    }
    for (i = 0; i < WS_HANDSHAKE_ACCEPT_LEN - 1; i++) {
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789+/", out[i])) {
            abort();
        }
    }
}

static void check_protocol(const char *offered, const char *const *allowed,
                           int n)
{
    const char *chosen = ws_handshake_select_protocol(offered, allowed, n);
    int i;

    for (i = 0; i < n; i++) {
        int has = offered_has(offered, allowed[i]);

        /* An exact match is also a case-insensitive one. */
        if (has && !ws_handshake_has_token(offered, allowed[i])) {
            abort();
        }
        if (has) {
            /* The server's earliest offered entry, by identity. */
            if (chosen != allowed[i]) {
                abort();
            }
            return;
        }
    }
    if (chosen != NULL) {
        abort();
    }
}

static void check_extensions(apr_pool_t *pool, const char *header)
{
    apr_array_header_t *offers;
    size_t error_at = (size_t)-1;

    if (ws_extension_parse(pool, header, &offers, &error_at)) {
        if (offers == NULL) {
            abort();
        }
    }
    else if (offers != NULL || header == NULL || error_at > strlen(header)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static apr_pool_t *pool;
    char *field[N_FIELDS];
    const char *allowed[MAX_ALLOWED];
    ws_handshake_request_t req;
    unsigned absent;
    char *buf, *pos;
    int i, n;

    if (size < 2) {
        return 0;
    }
    if (pool == NULL) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&pool, NULL) != APR_SUCCESS) {
            abort();
        }
    }

    buf = malloc(size - 2 + 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data + 2, size - 2);
    buf[size - 2] = '\0';

    /* Cut the fields in place; missing ones are empty. */
    pos = buf;
    for (i = 0; i < N_FIELDS; i++) {
        field[i] = pos;
        if (i < N_FIELDS - 1) {
            char *nl = strchr(pos, '\n');

            if (nl) {
                *nl = '\0';
                pos = nl + 1;
            }
            else {
                pos += strlen(pos);
            }
        }
    }
    absent = data[1];
    for (i = 0; i < N_FIELDS; i++) {
        int bit = i < F_ALLOWED ? i : i - 1;

        if (i != F_ALLOWED && (absent & (1u << bit))) {
            field[i] = NULL;
        }
    }

    req.method = field[0];
    req.proto_num = proto_nums[data[0] & 7];
    req.host = field[1];
    req.upgrade = field[2];
    req.connection = field[3];
    req.key = field[4];
    req.version = field[5];
    check_request(&req);
    check_key(req.key);

    /* The server's list, cut on ' '; empty entries are kept on purpose. */
    n = 0;
    pos = field[F_ALLOWED];
    while (n < MAX_ALLOWED) {
        char *sp = strchr(pos, ' ');

        allowed[n++] = pos;
        if (sp == NULL) {
            break;
        }
        *sp = '\0';
        pos = sp + 1;
    }
    check_protocol(field[F_OFFERED], allowed, n);

    check_extensions(pool, field[F_EXT]);

    free(buf);
    apr_pool_clear(pool);
    return 0;
}
