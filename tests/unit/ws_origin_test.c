/* ws_origin_test.c: Origin normalisation and the same-origin and
 * allow-list checks (RFC 6455 §10.2, RFC 6454 §6.2). */
#include <apr_general.h>
#include <apr_strings.h>

#include "test_util.h"
#include "ws_origin.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    apr_terminate();
}

static const struct {
    const char *in;
    const char *out;   /* NULL: refused */
} norm_cases[] = {
    { "http://example.com", "http://example.com" },
    { "HTTP://Example.COM", "http://example.com" },
    { "http://example.com:80", "http://example.com" },
    { "https://example.com:443", "https://example.com" },
    { "http://example.com:443", "http://example.com:443" },
    { "https://example.com:8443", "https://example.com:8443" },
    { "http://127.0.0.1:8080", "http://127.0.0.1:8080" },
    { "http://[::1]", "http://[::1]" },
    { "http://[::1]:80", "http://[::1]" },
    { "http://[::1]:8080", "http://[::1]:8080" },
    { "null", NULL },
    { "", NULL },
    { "ftp://example.com", NULL },
    { "http://", NULL },
    { "http://example.com/", NULL },
    { "http://user@example.com", NULL },
    { "http://example.com:", NULL },
    { "http://example.com:99999", NULL },
    { "http://example.com:80x", NULL },
    { "http://[::1", NULL },
    { "http://[]", NULL },
    { "http://exa mple.com", NULL },
};

START_TEST(rfc6454_6_2_normalize)
{
    const char *got = ws_origin_normalize(pool, norm_cases[_i].in);

    if (norm_cases[_i].out)
        ck_assert_msg(got && !strcmp(got, norm_cases[_i].out),
                      "%s -> %s", norm_cases[_i].in, got ? got : "NULL");
    else
        ck_assert_msg(!got, "%s accepted as %s", norm_cases[_i].in, got);
}
END_TEST

static const struct {
    const char *origin, *scheme, *host;
    int same;
} same_cases[] = {
    { "http://example.com", "http", "example.com", 1 },
    { "http://example.com", "http", "example.com:80", 1 },
    { "http://example.com:80", "http", "EXAMPLE.com", 1 },
    { "https://example.com", "https", "example.com:443", 1 },
    { "http://127.0.0.1:8080", "http", "127.0.0.1:8080", 1 },
    { "http://example.com", "https", "example.com", 0 },
    { "https://example.com", "http", "example.com", 0 },
    { "http://example.com:8080", "http", "example.com", 0 },
    { "http://evil.example", "http", "example.com", 0 },
    { "http://example.com.evil", "http", "example.com", 0 },
    { "null", "http", "example.com", 0 },
    { "http://example.com", "http", NULL, 0 },
};

START_TEST(rfc6455_10_2_same_origin)
{
    ck_assert_int_eq(ws_origin_same(pool, same_cases[_i].origin,
                                    same_cases[_i].scheme,
                                    same_cases[_i].host),
                     same_cases[_i].same);
}
END_TEST

START_TEST(rfc6455_10_2_allow_list)
{
    apr_array_header_t *list = apr_array_make(pool, 2, sizeof(const char *));

    APR_ARRAY_PUSH(list, const char *) = "https://good.example";
    APR_ARRAY_PUSH(list, const char *) = "http://also.example:8080";
    ck_assert(ws_origin_listed(pool, "https://good.example", list));
    ck_assert(ws_origin_listed(pool, "https://GOOD.example:443", list));
    ck_assert(ws_origin_listed(pool, "http://also.example:8080", list));
    ck_assert(!ws_origin_listed(pool, "http://good.example", list));
    ck_assert(!ws_origin_listed(pool, "http://also.example", list));
    ck_assert(!ws_origin_listed(pool, NULL, list));
    ck_assert(!ws_origin_listed(pool, "https://good.example", NULL));
}
END_TEST

static Suite *origin_suite(void)
{
    Suite *s = suite_create("ws_origin");
    TCase *tc = tcase_create("origin");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, rfc6454_6_2_normalize, 0,
                        sizeof(norm_cases) / sizeof(norm_cases[0]));
    tcase_add_loop_test(tc, rfc6455_10_2_same_origin, 0,
                        sizeof(same_cases) / sizeof(same_cases[0]));
    tcase_add_test(tc, rfc6455_10_2_allow_list);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(origin_suite)
