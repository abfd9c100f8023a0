/* ws_handshake_test.c: the opening handshake checks of RFC 6455 §4.2.1,
 * the accept key of §4.2.2 and the choice of subprotocol, table by table.
 *
 * Every input string ends right before an unreadable page, so a read past
 * its NUL faults; string literals would hide one.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_util.h"
#include "ws_handshake.h"

/* The sample nonce of §1.3 and §4.2.2. */
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="


/* --- ws_handshake_check ------------------------------------------------ */

typedef struct {
    const char *name;
    ws_handshake_request_t req;
    int status;
    ws_handshake_error_e error;
    const char *reason_has;   /* the reason must name this; NULL when OK */
} check_case_t;

#define REQ(method, proto, host, upgrade, connection, key, version) \
    { method, proto, host, upgrade, connection, key, version }

static const check_case_t check_cases[] = {
    { "4.2.1 browser-like request is accepted",
      REQ("GET", 1001, "example.com:8000", "websocket", "Upgrade", KEY, "13"),
      0, WS_HS_OK, NULL },

    /* §4.2.1 item 1: GET, HTTP/1.1 or higher. */
    { "4.2.1/1 POST is 405",
      REQ("POST", 1001, "example.com", "websocket", "Upgrade", KEY, "13"),
      405, WS_HS_BAD_METHOD, "GET" },
    { "4.2.1/1 lower-case get is 405 (methods are case-sensitive)",
      REQ("get", 1001, "example.com", "websocket", "Upgrade", KEY, "13"),
      405, WS_HS_BAD_METHOD, "GET" },
    { "4.2.1/1 missing method is 405",
      REQ(NULL, 1001, "example.com", "websocket", "Upgrade", KEY, "13"),
      405, WS_HS_BAD_METHOD, "GET" },
    { "4.2.1/1 HTTP/1.0 is 400",
      REQ("GET", 1000, "example.com", "websocket", "Upgrade", KEY, "13"),
      400, WS_HS_BAD_HTTP_VERSION, "HTTP" },
    { "4.2.1/1 HTTP/2.0 is higher than 1.1",
      REQ("GET", 2000, "example.com", "websocket", "Upgrade", KEY, "13"),
      0, WS_HS_OK, NULL },

    /* §4.2.1 item 2. */
    { "4.2.1/2 no Host is 400",
      REQ("GET", 1001, NULL, "websocket", "Upgrade", KEY, "13"),
      400, WS_HS_NO_HOST, "Host" },
    { "4.2.1/2 empty Host is 400",
      REQ("GET", 1001, "", "websocket", "Upgrade", KEY, "13"),
      400, WS_HS_NO_HOST, "Host" },
    { "4.2.1/2 blank Host is 400",
      REQ("GET", 1001, " \t", "websocket", "Upgrade", KEY, "13"),
      400, WS_HS_NO_HOST, "Host" },

    /* §4.2.1 item 3: the keyword, case-insensitively, in a list. */
    { "4.2.1/3 Upgrade WebSocket matches case-insensitively",
      REQ("GET", 1001, "example.com", "WebSocket", "Upgrade", KEY, "13"),
      0, WS_HS_OK, NULL },
    { "4.2.1/3 Upgrade list websocket, foo",
      REQ("GET", 1001, "example.com", "websocket, foo", "Upgrade", KEY, "13"),
      0, WS_HS_OK, NULL },
    { "4.2.1/3 Upgrade list foo, websocket",
      REQ("GET", 1001, "example.com", "foo,websocket", "Upgrade", KEY, "13"),
      0, WS_HS_OK, NULL },
    { "4.2.1/3 Upgrade h2c is 426",
      REQ("GET", 1001, "example.com", "h2c", "Upgrade", KEY, "13"),
      426, WS_HS_NOT_UPGRADE, "Upgrade" },
    { "4.2.1/3 Upgrade websocketx is 426",
      REQ("GET", 1001, "example.com", "websocketx", "Upgrade", KEY, "13"),
      426, WS_HS_NOT_UPGRADE, "Upgrade" },
    { "4.2.1/3 no Upgrade is 426",
      REQ("GET", 1001, "example.com", NULL, "Upgrade", KEY, "13"),
      426, WS_HS_NOT_UPGRADE, "Upgrade" },

    /* §4.2.1 item 4. */
    { "4.2.1/4 Connection keep-alive, Upgrade (Firefox)",
      REQ("GET", 1001, "example.com", "websocket", "keep-alive, Upgrade", KEY,
          "13"),
      0, WS_HS_OK, NULL },
    { "4.2.1/4 Connection upgrade in lower case",
      REQ("GET", 1001, "example.com", "websocket", "upgrade", KEY, "13"),
      0, WS_HS_OK, NULL },
    { "4.2.1/4 Connection close is 426",
      REQ("GET", 1001, "example.com", "websocket", "close", KEY, "13"),
      426, WS_HS_NOT_UPGRADE, "Connection" },
    { "4.2.1/4 no Connection is 426",
      REQ("GET", 1001, "example.com", "websocket", NULL, KEY, "13"),
      426, WS_HS_NOT_UPGRADE, "Connection" },

    /* §4.2.1 item 6 and §4.4. */
    { "4.2.1/6 version 8 is 426",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade", KEY, "8"),
      426, WS_HS_BAD_VERSION, "Sec-WebSocket-Version" },
    { "4.2.1/6 version list 13, 8 is 426",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade", KEY, "13, 8"),
      426, WS_HS_BAD_VERSION, "Sec-WebSocket-Version" },
    { "4.2.1/6 version 013 is 426",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade", KEY, "013"),
      426, WS_HS_BAD_VERSION, "Sec-WebSocket-Version" },
    { "4.2.1/6 no version is 426",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade", KEY, NULL),
      426, WS_HS_BAD_VERSION, "Sec-WebSocket-Version" },
    { "4.2.1/6 version with OWS around it",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade", KEY, " 13\t"),
      0, WS_HS_OK, NULL },

    /* §4.2.1 item 5 and §4.1: base64 of exactly 16 bytes. */
    { "4.2.1/5 no key is 400",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade", NULL, "13"),
      400, WS_HS_BAD_KEY, "Sec-WebSocket-Key" },
    { "4.2.1/5 key of 23 characters is 400",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade",
          "dGhlIHNhbXBsZSBub25jZQ=", "13"),
      400, WS_HS_BAD_KEY, "Sec-WebSocket-Key" },
    { "4.2.1/5 key of 25 characters is 400",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade",
          "dGhlIHNhbXBsZSBub25jZQ===", "13"),
      400, WS_HS_BAD_KEY, "Sec-WebSocket-Key" },
    { "4.2.1/5 key of 15 bytes is 400",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade",
          "eHh4eHh4eHh4eHh4eHh4", "13"),
      400, WS_HS_BAD_KEY, "Sec-WebSocket-Key" },
    { "4.2.1/5 key of 17 bytes is 400",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade",
          "eHh4eHh4eHh4eHh4eHh4eHg=", "13"),
      400, WS_HS_BAD_KEY, "Sec-WebSocket-Key" },
    { "4.2.1/5 key with a character outside base64 is 400",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade",
          "dGhlIHNhbXBsZSBub25j*Q==", "13"),
      400, WS_HS_BAD_KEY, "Sec-WebSocket-Key" },
    { "4.2.1/5 key with stray trailing bits is 400",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade",
          "dGhlIHNhbXBsZSBub25jZR==", "13"),
      400, WS_HS_BAD_KEY, "Sec-WebSocket-Key" },
    { "4.2.1/5 key without padding is 400",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade",
          "dGhlIHNhbXBsZSBub25jZQ", "13"),
      400, WS_HS_BAD_KEY, "Sec-WebSocket-Key" },
    { "4.2.1/5 key with spaces around it is accepted",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade",
          " \t" KEY "  ", "13"),
      0, WS_HS_OK, NULL },

    /* The order of the checks decides which status a request with several
     * faults gets (ws_handshake.h). */
    { "order: method before HTTP version and Host",
      REQ("POST", 1000, NULL, NULL, NULL, NULL, NULL),
      405, WS_HS_BAD_METHOD, "GET" },
    { "order: HTTP version before Host and Upgrade",
      REQ("GET", 1000, NULL, NULL, NULL, NULL, NULL),
      400, WS_HS_BAD_HTTP_VERSION, "HTTP" },
    { "order: Host before Upgrade",
      REQ("GET", 1001, NULL, NULL, NULL, NULL, NULL),
      400, WS_HS_NO_HOST, "Host" },
    { "order: Upgrade before version and key",
      REQ("GET", 1001, "example.com", "h2c", "Upgrade", "bad", "8"),
      426, WS_HS_NOT_UPGRADE, "Upgrade" },
    { "order: version before key",
      REQ("GET", 1001, "example.com", "websocket", "Upgrade", "bad", "8"),
      426, WS_HS_BAD_VERSION, "Sec-WebSocket-Version" },
};

#define N_CHECK_CASES ((int)(sizeof(check_cases) / sizeof(check_cases[0])))

START_TEST(rfc6455_4_2_1_check_table)
{
    const check_case_t *c = &check_cases[_i];
    char *method = fence_dup(c->req.method);
    char *host = fence_dup(c->req.host);
    char *upgrade = fence_dup(c->req.upgrade);
    char *connection = fence_dup(c->req.connection);
    char *key = fence_dup(c->req.key);
    char *version = fence_dup(c->req.version);
    ws_handshake_request_t req;
    ws_handshake_result_t res;
    int status;

    req.method = method;
    req.proto_num = c->req.proto_num;
    req.host = host;
    req.upgrade = upgrade;
    req.connection = connection;
    req.key = key;
    req.version = version;

    memset(&res, 0xa5, sizeof(res));
    status = ws_handshake_check(&req, &res);

    ck_assert_msg(status == c->status, "%s: status %d, want %d",
                  c->name, status, c->status);
    ck_assert_msg(res.status == c->status, "%s: res.status %d, want %d",
                  c->name, res.status, c->status);
    ck_assert_msg(res.error == c->error, "%s: error %d, want %d",
                  c->name, (int)res.error, (int)c->error);
    if (c->reason_has == NULL) {
        ck_assert_msg(res.reason == NULL, "%s: reason \"%s\" when OK",
                      c->name, res.reason);
    }
    else {
        ck_assert_msg(res.reason != NULL
                      && strstr(res.reason, c->reason_has) != NULL
                      && strchr(res.reason, '\n') == NULL,
                      "%s: reason \"%s\" should name %s on one line",
                      c->name, res.reason ? res.reason : "(null)",
                      c->reason_has);
    }

    fence_free(method);
    fence_free(host);
    fence_free(upgrade);
    fence_free(connection);
    fence_free(key);
    fence_free(version);
}
END_TEST

/* --- ws_handshake_has_token -------------------------------------------- */

typedef struct {
    const char *list;
    const char *token;
    int want;
} token_case_t;

static const token_case_t token_cases[] = {
    { NULL, "websocket", 0 },
    { "", "websocket", 0 },
    { "websocket", "websocket", 1 },
    { "WebSocket", "websocket", 1 },
    { "websocket", "WEBSOCKET", 1 },
    { "websocketx", "websocket", 0 },
    { "notwebsocket", "websocket", 0 },
    { "websocke", "websocket", 0 },
    { "web socket", "websocket", 0 },
    /* RFC 7230 §7: empty elements and OWS around elements. */
    { ",,websocket, ,", "websocket", 1 },
    { " , ,\t", "websocket", 0 },
    { "foo ,\twebsocket\t", "websocket", 1 },
    { "keep-alive, Upgrade", "upgrade", 1 },
    { "keep-alive,Upgrade ,close", "Upgrade", 1 },
    { "keep-alive, close", "Upgrade", 0 },
    /* An empty token is never an element. */
    { "a,,b", "", 0 },
    { "", "", 0 },
};

#define N_TOKEN_CASES ((int)(sizeof(token_cases) / sizeof(token_cases[0])))

START_TEST(rfc7230_7_has_token_table)
{
    const token_case_t *c = &token_cases[_i];
    char *list = fence_dup(c->list);
    int got = ws_handshake_has_token(list, c->token);

    ck_assert_msg(got == c->want, "has_token(\"%s\", \"%s\") = %d, want %d",
                  c->list ? c->list : "(null)", c->token, got, c->want);
    fence_free(list);
}
END_TEST

/* --- ws_handshake_key_valid -------------------------------------------- */

typedef struct {
    const char *key;
    int want;
} key_case_t;

static const key_case_t key_cases[] = {
    { KEY, 1 },
    { "AAAAAAAAAAAAAAAAAAAAAA==", 1 },
    { "/////////////////////w==", 1 },
    { "MDEyMzQ1Njc4OWFiY2RlZg==", 1 },
    { "+/+/+/+/+/+/+/+/+/+/+g==", 1 },
    { " " KEY, 1 },
    { KEY "\t", 1 },
    { NULL, 0 },
    { "", 0 },
    { "   ", 0 },
    { "dGhlIHNhbXBsZSBub25jZQ=", 0 },      /* 23 characters */
    { "dGhlIHNhbXBsZSBub25jZQ===", 0 },    /* 25 */
    { "dGhlIHNhbXBsZSBub25jZQ", 0 },       /* no padding */
    { "dGhlIHNhbXBsZSBub25jZQAA", 0 },     /* no padding, 24 long */
    { "eHh4eHh4eHh4eHh4eHh4eHg=", 0 },     /* 17 bytes */
    { "eHh4eHh4eHh4eHh4eHh4", 0 },         /* 15 bytes */
    { "dGhlIHNhbXBsZSBub25jZR==", 0 },     /* stray bits */
    { "dGhlIHNhbXBsZSBub25jZf==", 0 },
    { "dGhlIHNhbXBsZSBub25j*Q==", 0 },
    { "dGhlIHNhbXBsZSBub25j-Q==", 0 },     /* base64url is not base64 */
    { "dGhlIHNhbXBsZSBub25j_Q==", 0 },
    { "dGhlIHNhbXBsZSBub2 jZQ==", 0 },     /* space inside */
    { "dGhlIHNhbXBsZSBub25jZ===", 0 },     /* '=' too early */
    { "dGhlIHNhbXBsZSBub25jZQ=A", 0 },
    { "\n" KEY, 0 },                        /* only SP and HTAB are OWS */
};

#define N_KEY_CASES ((int)(sizeof(key_cases) / sizeof(key_cases[0])))

START_TEST(rfc6455_4_1_key_valid_table)
{
    const key_case_t *c = &key_cases[_i];
    char *key = fence_dup(c->key);
    int got = ws_handshake_key_valid(key);

    ck_assert_msg(got == c->want, "key_valid(\"%s\") = %d, want %d",
                  c->key ? c->key : "(null)", got, c->want);
    fence_free(key);
}
END_TEST

/* RFC 4648 §3.5: of the 64 characters that could end the data, only those
 * whose low 4 bits are zero (A, Q, g, w) spell 16 bytes canonically. */
START_TEST(rfc4648_3_5_key_last_char_canonical)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    int i;

    for (i = 0; i < 64; i++) {
        int want = strchr("AQgw", alphabet[i]) != NULL;

        key[21] = alphabet[i];
        ck_assert_msg(ws_handshake_key_valid(key) == want,
                      "last data character %c: want %d", alphabet[i], want);
    }
}
END_TEST

/* --- ws_handshake_accept_key ------------------------------------------- */

typedef struct {
    const char *key;
    const char *accept;
} accept_case_t;

static const accept_case_t accept_cases[] = {
    { KEY, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" },            /* §1.3, §4.2.2 */
    { "x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=" },
    { "AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI=" },
    { "/////////////////////w==", "XXpj4jYzLM2yUE0C7TIgMwTQh2g=" },
    /* §4.2.2: the key without its leading and trailing whitespace. */
    { " \t" KEY "\t ", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" },
};

#define N_ACCEPT_CASES ((int)(sizeof(accept_cases) / sizeof(accept_cases[0])))

START_TEST(rfc6455_4_2_2_accept_key_table)
{
    const accept_case_t *c = &accept_cases[_i];
    char *key = fence_dup(c->key);
    char out[WS_HANDSHAKE_ACCEPT_LEN + 2];

    /* One canary byte past the declared size must survive. */
    memset(out, 'Z', sizeof(out));
    ws_handshake_accept_key(key, out);
    ck_assert_str_eq(out, c->accept);
    ck_assert_uint_eq(strlen(out), WS_HANDSHAKE_ACCEPT_LEN);
    ck_assert_int_eq(out[WS_HANDSHAKE_ACCEPT_LEN + 1], 'Z');
    fence_free(key);
}
END_TEST

/* --- ws_handshake_select_protocol -------------------------------------- */

typedef struct {
    const char *name;
    const char *offered;
    const char *allowed[4];
    int n;
    int want;               /* index into allowed, or -1 for NULL */
} proto_case_t;

static const proto_case_t proto_cases[] = {
    { "server preference wins over client order",
      "chat, superchat", { "superchat", "chat" }, 2, 0 },
    { "client order does not matter",
      "superchat, chat", { "chat", "superchat" }, 2, 0 },
    { "later server entry when the first is not offered",
      "chat", { "superchat", "chat" }, 2, 1 },
    { "exact case: Chat is not chat",
      "Chat", { "chat" }, 1, -1 },
    { "exact case: match",
      "v1.Chat", { "v1.chat", "v1.Chat" }, 2, 1 },
    { "nothing offered", NULL, { "chat" }, 1, -1 },
    { "empty offer", "", { "chat" }, 1, -1 },
    { "nothing allowed", "chat", { NULL }, 0, -1 },
    { "OWS and empty elements in the offer",
      " \tchat ,, superchat\t", { "superchat" }, 1, 0 },
    { "no substring matches",
      "chatty, xchat", { "chat" }, 1, -1 },
    { "no overlap",
      "a, b", { "c", "d" }, 2, -1 },
    { "n limits the list",
      "b", { "a", "b" }, 1, -1 },
};

#define N_PROTO_CASES ((int)(sizeof(proto_cases) / sizeof(proto_cases[0])))

START_TEST(rfc6455_4_2_2_select_protocol_table)
{
    const proto_case_t *c = &proto_cases[_i];
    char *offered = fence_dup(c->offered);
    const char *got;

    got = ws_handshake_select_protocol(offered, c->allowed, c->n);
    if (c->want < 0) {
        ck_assert_msg(got == NULL, "%s: got \"%s\", want none",
                      c->name, got);
    }
    else {
        /* The very entry of allowed, not a copy: the caller may compare
         * pointers. */
        ck_assert_msg(got == c->allowed[c->want],
                      "%s: got \"%s\", want \"%s\"", c->name,
                      got ? got : "(null)", c->allowed[c->want]);
    }
    fence_free(offered);
}
END_TEST

START_TEST(rfc6455_4_2_2_select_protocol_null_allowed)
{
    ck_assert_ptr_null(ws_handshake_select_protocol("chat", NULL, 0));
}
END_TEST

static Suite *handshake_suite(void)
{
    Suite *s = suite_create("ws_handshake");
    TCase *tc;

    tc = tcase_create("check");
    tcase_add_loop_test(tc, rfc6455_4_2_1_check_table, 0, N_CHECK_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("has_token");
    tcase_add_loop_test(tc, rfc7230_7_has_token_table, 0, N_TOKEN_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("key_valid");
    tcase_add_loop_test(tc, rfc6455_4_1_key_valid_table, 0, N_KEY_CASES);
    tcase_add_test(tc, rfc4648_3_5_key_last_char_canonical);
    suite_add_tcase(s, tc);

    tc = tcase_create("accept_key");
    tcase_add_loop_test(tc, rfc6455_4_2_2_accept_key_table, 0, N_ACCEPT_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("select_protocol");
    tcase_add_loop_test(tc, rfc6455_4_2_2_select_protocol_table, 0, N_PROTO_CASES);
    tcase_add_test(tc, rfc6455_4_2_2_select_protocol_null_allowed);
    suite_add_tcase(s, tc);

    return s;
}

TEST_MAIN(handshake_suite)
