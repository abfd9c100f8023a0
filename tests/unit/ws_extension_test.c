/* ws_extension_test.c: the Sec-WebSocket-Extensions parser against the
 * grammar of RFC 6455 §9.1 and the offers of RFC 7692, table by table.
 *
 * A parse is compared through a rendering, "name;param=value,name2", which
 * is unambiguous because ',', ';' and '=' are never part of a token.
 * Every input ends right before an unreadable page, so a read past its NUL
 * faults.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "test_util.h"
#include "ws_extension.h"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_initialize(), APR_SUCCESS);
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    apr_terminate();
}


/* The offers as "name;p;q=v,name2", in pool. */
static const char *render(const apr_array_header_t *offers)
{
    const char *out = "";
    int i, j;

    for (i = 0; i < offers->nelts; i++) {
        const ws_extension_offer_t *o =
            &APR_ARRAY_IDX(offers, i, ws_extension_offer_t);

        out = apr_pstrcat(pool, out, i ? "," : "", o->name, NULL);
        for (j = 0; j < o->params->nelts; j++) {
            const ws_extension_param_t *p =
                &APR_ARRAY_IDX(o->params, j, ws_extension_param_t);

            out = apr_pstrcat(pool, out, ";", p->name,
                              p->value ? "=" : "", p->value ? p->value : "",
                              NULL);
        }
    }
    return out;
}

typedef struct {
    const char *name;
    const char *header;
    int ok;
    const char *want;        /* rendering when ok */
    size_t error_at;         /* when not ok */
} parse_case_t;

#define OK(name, header, want)      { name, header, 1, want, 0 }
#define BAD(name, header, error_at) { name, header, 0, NULL, error_at }

static const parse_case_t parse_cases[] = {
    /* RFC 7692 §5: offers as browsers and the RFC's examples send them. */
    OK("7692 one offer, bare and valued params",
       "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
       "permessage-deflate;client_max_window_bits;server_max_window_bits=10"),
    OK("7692 two offers of one extension, the second a fallback",
       "permessage-deflate; client_max_window_bits, permessage-deflate",
       "permessage-deflate;client_max_window_bits,permessage-deflate"),
    OK("7692 three offers of one extension",
       "permessage-deflate; server_max_window_bits=10, "
       "permessage-deflate; server_max_window_bits=12, permessage-deflate",
       "permessage-deflate;server_max_window_bits=10,"
       "permessage-deflate;server_max_window_bits=12,permessage-deflate"),
    OK("7692 different extensions",
       "permessage-deflate, x-webkit-deflate-frame; max_window_bits=15",
       "permessage-deflate,x-webkit-deflate-frame;max_window_bits=15"),

    /* RFC 6455 §9.1: quoted values unquote to a token. */
    OK("9.1 quoted value",
       "permessage-deflate; server_max_window_bits=\"10\"",
       "permessage-deflate;server_max_window_bits=10"),
    OK("9.1 quoted-pair escapes stand for themselves",
       "x; a=\"\\1\\0\"; b=\"a\\-b\"", "x;a=10;b=a-b"),
    OK("9.1 every tchar in a quoted value",
       "x; a=\"!#$%&'*+-.^_`|~09AZaz\"", "x;a=!#$%&'*+-.^_`|~09AZaz"),
    BAD("9.1 quoted value with a space is not a token",
        "x; a=\"1 0\"", 7),
    BAD("9.1 quoted value with a comma is not a token",
        "x; a=\"a,b\"", 7),
    BAD("9.1 escaped quote is not a token", "x; a=\"\\\"\"", 7),
    BAD("9.1 empty quoted value is not a token", "x; a=\"\"", 6),
    BAD("9.1 unterminated quoted value", "x; a=\"10", 8),
    BAD("9.1 quoted-pair cut off by the end", "x; a=\"1\\", 8),
    BAD("9.1 quoted parameter name", "x; \"a\"=1", 3),
    BAD("9.1 quoted extension name", "\"x\"", 0),

    /* RFC 7692 §7: duplicates are for the extension to decline. */
    OK("7692 7 duplicate parameters are kept in order",
       "permessage-deflate; server_max_window_bits=10; "
       "server_max_window_bits=11; client_no_context_takeover; "
       "client_no_context_takeover",
       "permessage-deflate;server_max_window_bits=10;"
       "server_max_window_bits=11;client_no_context_takeover;"
       "client_no_context_takeover"),
    OK("names keep their case",
       "Permessage-Deflate; Server_Max_Window_Bits=10",
       "Permessage-Deflate;Server_Max_Window_Bits=10"),

    /* Missing pieces. */
    BAD("9.1 missing extension token", "; a", 0),
    BAD("9.1 missing parameter token", "x;; a", 2),
    BAD("9.1 parameter with a value and no name", "x; =1", 3),
    BAD("9.1 trailing ';'", "permessage-deflate;", 19),
    BAD("9.1 trailing ';' and OWS", "permessage-deflate; ", 20),
    BAD("9.1 '=' with no value", "x; a=", 5),
    BAD("9.1 '=' with no value before ','", "x; a= ,y", 6),
    BAD("9.1 '=' with only OWS after it", "x; a= \t", 7),

    /* OWS, RFC 7230 §3.2.3, wherever the grammar above allows it. */
    OK("OWS everywhere it is allowed",
       " x ; a = 1 ;\tb\t, \ty ", "x;a=1;b,y"),
    OK("no OWS at all", "x;a=1;b,y", "x;a=1;b,y"),
    OK("OWS around a quoted value", "x; a = \"1\" ;b", "x;a=1;b"),

    /* RFC 7230 §7: empty list elements. */
    OK("empty header", "", ""),
    OK("NULL header", NULL, ""),
    OK("only OWS", " \t ", ""),
    OK("only commas", ",, ,", ""),
    OK("empty elements around offers", ", x ,, y,", "x,y"),
    OK("a comma ends the parameters", "x; a=1, b", "x;a=1,b"),

    /* The first byte that does not fit. */
    BAD("space inside an element", "x y", 2),
    BAD("second '='", "x; a=b=c", 6),
    BAD("space inside a parameter", "x; a b", 5),
    BAD("space inside a value", "x; a=1 2", 7),
    BAD("CRLF is not OWS", "x\r\n", 1),
    BAD("non-ASCII in a name", "per\xc3\xa9", 3),
    BAD("';' where an extension should start", "x, ;", 3),
    BAD("delimiter in a token", "x; a/b", 4),
    BAD("quote inside a token value", "x; a=1\"", 6),
};

#define N_PARSE_CASES ((int)(sizeof(parse_cases) / sizeof(parse_cases[0])))

START_TEST(rfc6455_9_1_parse_table)
{
    const parse_case_t *c = &parse_cases[_i];
    char *header = fence_dup(c->header);
    apr_array_header_t *offers = NULL;
    size_t error_at = (size_t)-1;
    int ok;

    ok = ws_extension_parse(pool, header, &offers, &error_at);
    ck_assert_msg(ok == c->ok, "%s: returned %d, want %d (error at %zu)",
                  c->name, ok, c->ok, error_at);
    if (ok) {
        const char *got;

        ck_assert_ptr_nonnull(offers);
        got = render(offers);
        ck_assert_msg(strcmp(got, c->want) == 0, "%s: got \"%s\", want \"%s\"",
                      c->name, got, c->want);
    }
    else {
        ck_assert_msg(offers == NULL, "%s: offers left set on failure",
                      c->name);
        ck_assert_msg(error_at == c->error_at, "%s: error at %zu, want %zu",
                      c->name, error_at, c->error_at);
    }
    fence_free(header);
}
END_TEST

/* A bare parameter has a NULL value, not "": the negotiating extension
 * tells "client_max_window_bits" from "client_max_window_bits=". */
START_TEST(rfc6455_9_1_bare_param_value_is_null)
{
    apr_array_header_t *offers;
    const ws_extension_offer_t *o;
    const ws_extension_param_t *p;

    ck_assert(ws_extension_parse(pool, "permessage-deflate; "
                                 "client_max_window_bits", &offers, NULL));
    ck_assert_int_eq(offers->nelts, 1);
    o = &APR_ARRAY_IDX(offers, 0, ws_extension_offer_t);
    ck_assert_str_eq(o->name, "permessage-deflate");
    ck_assert_int_eq(o->params->nelts, 1);
    p = &APR_ARRAY_IDX(o->params, 0, ws_extension_param_t);
    ck_assert_str_eq(p->name, "client_max_window_bits");
    ck_assert_ptr_null(p->value);

    ck_assert(ws_extension_parse(pool, "x", &offers, NULL));
    o = &APR_ARRAY_IDX(offers, 0, ws_extension_offer_t);
    ck_assert_ptr_nonnull(o->params);
    ck_assert_int_eq(o->params->nelts, 0);
}
END_TEST

/* error_at is optional. */
START_TEST(parse_error_at_optional)
{
    apr_array_header_t *offers = NULL;

    ck_assert(!ws_extension_parse(pool, "x;", &offers, NULL));
    ck_assert_ptr_null(offers);
}
END_TEST

/* RFC 7230 §3.2.6: each byte alone as an extension name parses iff it is a
 * tchar, checked against the RFC's own list of delimiters. OWS and ',' are
 * list syntax and leave an empty list rather than a failure. */
START_TEST(rfc7230_3_2_6_every_byte_as_name)
{
    static const char delimiters[] = "\"(),/:;<=>?@[\\]{}";
    int c;

    for (c = 1; c < 256; c++) {
        char header[2] = { (char)c, '\0' };
        apr_array_header_t *offers;
        size_t error_at = (size_t)-1;
        int tchar = c > 0x20 && c < 0x7f && strchr(delimiters, c) == NULL;
        int ok = ws_extension_parse(pool, header, &offers, &error_at);

        if (c == ' ' || c == '\t' || c == ',') {
            ck_assert_msg(ok && offers->nelts == 0, "byte 0x%02x", c);
        }
        else if (tchar) {
            ck_assert_msg(ok && offers->nelts == 1, "byte 0x%02x", c);
        }
        else {
            ck_assert_msg(!ok && error_at == 0, "byte 0x%02x", c);
        }
    }
}
END_TEST

static Suite *extension_suite(void)
{
    Suite *s = suite_create("ws_extension");
    TCase *tc = tcase_create("parse");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, rfc6455_9_1_parse_table, 0, N_PARSE_CASES);
    tcase_add_test(tc, rfc6455_9_1_bare_param_value_is_null);
    tcase_add_test(tc, parse_error_at_optional);
    tcase_add_test(tc, rfc7230_3_2_6_every_byte_as_name);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(extension_suite)
