/* ws_pmd_negotiate_test.c: the permessage-deflate negotiation against
 * RFC 7692 §5 and §7.1, table by table, then every window combination
 * against an oracle written from the RFC's text.
 *
 * Headers go through ws_extension_parse first, as in the handshake, and
 * end right before an unreadable page. Every response is parsed again and
 * must be one valid permessage-deflate element.
 */
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "test_util.h"
#include "ws_extension.h"
#include "ws_pmd_negotiate.h"

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

/* Configurations: server bits, client bits, server and client
 * no_context_takeover. */
#define CFG_DEFAULT { 15, 15, 0, 0 }
#define CFG_SNCT    { 15, 15, 1, 0 }
#define CFG_CNCT    { 15, 15, 0, 1 }
#define CFG_BOTH    { 15, 15, 1, 1 }
#define CFG_SMALL   { 10,  9, 0, 0 }
#define CFG_MIN     {  9,  8, 1, 1 }
#define CFG_CLIENT8 { 15,  8, 0, 0 }
/* Out of range, clamped to 9..15 and 8..15; flags are true when not 0. */
#define CFG_LOW     {  8,  7, 2, -1 }
#define CFG_ZERO    {  0,  0, 0, 0 }
#define CFG_HIGH    { 16, 99, 0, 0 }

typedef struct {
    const char *name;
    const char *header;
    ws_pmd_negotiate_config_t config;
    int accepted;
    int offer_index;
    int server_bits, client_bits;     /* agreed, when accepted */
    int server_nct, client_nct;
    const char *response;
    int declined;                     /* a decline reason is expected */
} neg_case_t;

#define ACCEPT(name, header, cfg, idx, sb, cb, snct, cnct, response) \
    { name, header, cfg, 1, idx, sb, cb, snct, cnct, response, 0 }
/* A permessage-deflate offer was made and none could be accepted. */
#define DECLINE(name, header, cfg) \
    { name, header, cfg, 0, -1, 0, 0, 0, 0, NULL, 1 }
/* No permessage-deflate offer at all. */
#define NONE(name, header, cfg) \
    { name, header, cfg, 0, -1, 0, 0, 0, 0, NULL, 0 }

#define PMD "permessage-deflate"

static const neg_case_t neg_cases[] = {
    /* §5 and §7: the plain offer, as Firefox sends it. */
    ACCEPT("7692 7 bare offer", PMD, CFG_DEFAULT, 0, 15, 15, 0, 0, PMD),
    ACCEPT("7692 5 extension name without case", "PerMessage-DEFLATE",
           CFG_DEFAULT, 0, 15, 15, 0, 0, PMD),
    /* Chrome's and Safari's offer. */
    ACCEPT("7692 7.1.2.2 browser offer", PMD "; client_max_window_bits",
           CFG_DEFAULT, 0, 15, 15, 0, 0,
           PMD "; client_max_window_bits=15"),

    /* §7.1.1.1 server_no_context_takeover. */
    ACCEPT("7692 7.1.1.1 offered, echoed",
           PMD "; server_no_context_takeover", CFG_DEFAULT, 0, 15, 15, 1, 0,
           PMD "; server_no_context_takeover"),
    ACCEPT("7692 7.1.1.1 unasked, the config wants it", PMD, CFG_SNCT,
           0, 15, 15, 1, 0, PMD "; server_no_context_takeover"),
    ACCEPT("7692 7.1.1.1 offered and wanted, said once",
           PMD "; server_no_context_takeover", CFG_SNCT, 0, 15, 15, 1, 0,
           PMD "; server_no_context_takeover"),
    DECLINE("7692 7.1.1.1 with a value",
            PMD "; server_no_context_takeover=1", CFG_DEFAULT),
    DECLINE("7692 7.1.1.1 with a quoted value",
            PMD "; server_no_context_takeover=\"true\"", CFG_DEFAULT),

    /* §7.1.1.2 client_no_context_takeover. */
    ACCEPT("7692 7.1.1.2 offered, echoed to make it binding",
           PMD "; client_no_context_takeover", CFG_DEFAULT, 0, 15, 15, 0, 1,
           PMD "; client_no_context_takeover"),
    ACCEPT("7692 7.1.1.2 unasked, the config wants it", PMD, CFG_CNCT,
           0, 15, 15, 0, 1, PMD "; client_no_context_takeover"),
    ACCEPT("7692 7.1.1.2 offered and wanted, said once",
           PMD "; client_no_context_takeover", CFG_CNCT, 0, 15, 15, 0, 1,
           PMD "; client_no_context_takeover"),
    DECLINE("7692 7.1.1.2 with a value",
            PMD "; client_no_context_takeover=x", CFG_DEFAULT),
    ACCEPT("7692 7.1.1 both offered",
           PMD "; client_no_context_takeover; server_no_context_takeover",
           CFG_DEFAULT, 0, 15, 15, 1, 1,
           PMD "; server_no_context_takeover; client_no_context_takeover"),
    ACCEPT("7692 7.1.1 both wanted by the config", PMD, CFG_BOTH,
           0, 15, 15, 1, 1,
           PMD "; server_no_context_takeover; client_no_context_takeover"),

    /* §7.1.2.1 server_max_window_bits. */
    ACCEPT("7692 7.1.2.1 offered 10, answered 10",
           PMD "; server_max_window_bits=10", CFG_DEFAULT, 0, 10, 15, 0, 0,
           PMD "; server_max_window_bits=10"),
    ACCEPT("7692 7.1.2.1 offered 15, still answered",
           PMD "; server_max_window_bits=15", CFG_DEFAULT, 0, 15, 15, 0, 0,
           PMD "; server_max_window_bits=15"),
    ACCEPT("7692 7.1.2.1 offered 9, the smallest zlib compresses with",
           PMD "; server_max_window_bits=9", CFG_DEFAULT, 0, 9, 15, 0, 0,
           PMD "; server_max_window_bits=9"),
    ACCEPT("7692 7.1.2.1 quoted value",
           PMD "; server_max_window_bits=\"10\"", CFG_DEFAULT,
           0, 10, 15, 0, 0, PMD "; server_max_window_bits=10"),
    ACCEPT("7692 7.1.2.1 offered 12, the config's 10 is smaller",
           PMD "; server_max_window_bits=12", CFG_SMALL, 0, 10, 15, 0, 0,
           PMD "; server_max_window_bits=10"),
    ACCEPT("7692 7.1.2.1 offered 9, below the config's 10",
           PMD "; server_max_window_bits=9", CFG_SMALL, 0, 9, 15, 0, 0,
           PMD "; server_max_window_bits=9"),
    ACCEPT("7692 7.1.2.1 unasked, the config's window is announced",
           PMD, CFG_SMALL, 0, 10, 15, 0, 0,
           PMD "; server_max_window_bits=10"),
    DECLINE("7692 7.1.2.1 offered 8, which zlib cannot compress with",
            PMD "; server_max_window_bits=8", CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 offered 8, whatever the config",
            PMD "; server_max_window_bits=8", CFG_MIN),
    DECLINE("7692 7.1.2.1 without a value",
            PMD "; server_max_window_bits", CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 0", PMD "; server_max_window_bits=0", CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 7", PMD "; server_max_window_bits=7", CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 16", PMD "; server_max_window_bits=16",
            CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 leading zero 08",
            PMD "; server_max_window_bits=08", CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 leading zero 010",
            PMD "; server_max_window_bits=010", CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 sign +9", PMD "; server_max_window_bits=+9",
            CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 sign -9", PMD "; server_max_window_bits=-9",
            CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 trailing letter 9a",
            PMD "; server_max_window_bits=9a", CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 1", PMD "; server_max_window_bits=1", CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 100", PMD "; server_max_window_bits=100",
            CFG_DEFAULT),
    DECLINE("7692 7.1.2.1 quoted 08",
            PMD "; server_max_window_bits=\"08\"", CFG_DEFAULT),

    /* §7.1.2.2 client_max_window_bits. */
    ACCEPT("7692 7.1.2.2 offered 10, answered 10",
           PMD "; client_max_window_bits=10", CFG_DEFAULT, 0, 15, 10, 0, 0,
           PMD "; client_max_window_bits=10"),
    ACCEPT("7692 7.1.2.2 offered 15",
           PMD "; client_max_window_bits=15", CFG_DEFAULT, 0, 15, 15, 0, 0,
           PMD "; client_max_window_bits=15"),
    ACCEPT("7692 7.1.2.2 offered 8, inflated with 9 for zlib clients",
           PMD "; client_max_window_bits=8", CFG_DEFAULT, 0, 15, 9, 0, 0,
           PMD "; client_max_window_bits=8"),
    ACCEPT("7692 7.1.2.2 quoted value",
           PMD "; client_max_window_bits=\"9\"", CFG_DEFAULT,
           0, 15, 9, 0, 0, PMD "; client_max_window_bits=9"),
    ACCEPT("7692 7.1.2.2 bare, the config's 9 is asked for",
           PMD "; client_max_window_bits", CFG_SMALL, 0, 10, 9, 0, 0,
           PMD "; server_max_window_bits=10; client_max_window_bits=9"),
    ACCEPT("7692 7.1.2.2 offered 12, the config's 9 is smaller",
           PMD "; client_max_window_bits=12", CFG_SMALL, 0, 10, 9, 0, 0,
           PMD "; server_max_window_bits=10; client_max_window_bits=9"),
    ACCEPT("7692 7.1.2.2 offered 8 below the config's 9",
           PMD "; client_max_window_bits=8", CFG_SMALL, 0, 10, 9, 0, 0,
           PMD "; server_max_window_bits=10; client_max_window_bits=8"),
    ACCEPT("7692 7.1.2.2 bare, the config's 8 is asked for, 9 inflates",
           PMD "; client_max_window_bits", CFG_CLIENT8, 0, 15, 9, 0, 0,
           PMD "; client_max_window_bits=8"),
    ACCEPT("7692 7.1.2.2 not offered: never answered, inflate with 15",
           PMD, CFG_CLIENT8, 0, 15, 15, 0, 0, PMD),
    ACCEPT("7692 7.1.2.2 not offered, small config: inflate with 15",
           PMD "; server_no_context_takeover", CFG_SMALL, 0, 10, 15, 1, 0,
           PMD "; server_no_context_takeover; server_max_window_bits=10"),
    DECLINE("7692 7.1.2.2 0", PMD "; client_max_window_bits=0", CFG_DEFAULT),
    DECLINE("7692 7.1.2.2 7", PMD "; client_max_window_bits=7", CFG_DEFAULT),
    DECLINE("7692 7.1.2.2 16", PMD "; client_max_window_bits=16",
            CFG_DEFAULT),
    DECLINE("7692 7.1.2.2 leading zero 08",
            PMD "; client_max_window_bits=08", CFG_DEFAULT),
    DECLINE("7692 7.1.2.2 sign +9", PMD "; client_max_window_bits=+9",
            CFG_DEFAULT),
    DECLINE("7692 7.1.2.2 trailing letter 9a",
            PMD "; client_max_window_bits=9a", CFG_DEFAULT),
    DECLINE("7692 7.1.2.2 letters", PMD "; client_max_window_bits=ten",
            CFG_DEFAULT),

    /* Everything at once. */
    ACCEPT("7692 7.1 all four offered",
           PMD "; server_no_context_takeover; client_no_context_takeover; "
           "server_max_window_bits=12; client_max_window_bits=11",
           CFG_DEFAULT, 0, 12, 11, 1, 1,
           PMD "; server_no_context_takeover; client_no_context_takeover; "
           "server_max_window_bits=12; client_max_window_bits=11"),
    ACCEPT("7692 7.1 all four, in another order",
           PMD "; client_max_window_bits=11; server_max_window_bits=12; "
           "client_no_context_takeover; server_no_context_takeover",
           CFG_DEFAULT, 0, 12, 11, 1, 1,
           PMD "; server_no_context_takeover; client_no_context_takeover; "
           "server_max_window_bits=12; client_max_window_bits=11"),
    ACCEPT("7692 7.1 browser offer, the smallest config",
           PMD "; client_max_window_bits", CFG_MIN, 0, 9, 9, 1, 1,
           PMD "; server_no_context_takeover; client_no_context_takeover; "
           "server_max_window_bits=9; client_max_window_bits=8"),
    ACCEPT("7692 7.1 bare offer, the smallest config", PMD, CFG_MIN,
           0, 9, 15, 1, 1,
           PMD "; server_no_context_takeover; client_no_context_takeover; "
           "server_max_window_bits=9"),
    ACCEPT("7692 7.1 parameter names without case",
           PMD "; Server_Max_Window_Bits=10; CLIENT_NO_CONTEXT_TAKEOVER",
           CFG_DEFAULT, 0, 10, 15, 0, 1,
           PMD "; client_no_context_takeover; server_max_window_bits=10"),

    /* §7: duplicates and unknown parameters decline the offer. */
    DECLINE("7692 7 duplicate server_no_context_takeover",
            PMD "; server_no_context_takeover; server_no_context_takeover",
            CFG_DEFAULT),
    DECLINE("7692 7 duplicate client_no_context_takeover",
            PMD "; client_no_context_takeover; client_no_context_takeover",
            CFG_DEFAULT),
    DECLINE("7692 7 duplicate server_max_window_bits, same value",
            PMD "; server_max_window_bits=10; server_max_window_bits=10",
            CFG_DEFAULT),
    DECLINE("7692 7 duplicate client_max_window_bits, bare and valued",
            PMD "; client_max_window_bits; client_max_window_bits=10",
            CFG_DEFAULT),
    DECLINE("7692 7 duplicate in another case",
            PMD "; client_max_window_bits; CLIENT_MAX_WINDOW_BITS",
            CFG_DEFAULT),
    DECLINE("7692 7 unknown parameter", PMD "; x", CFG_DEFAULT),
    DECLINE("7692 7 deflate-frame's parameter",
            PMD "; max_window_bits=10", CFG_DEFAULT),
    DECLINE("7692 7 misspelt parameter",
            PMD "; client_max_window_bit=10", CFG_DEFAULT),
    DECLINE("7692 7 unknown after known ones",
            PMD "; server_no_context_takeover; client_max_window_bits; y=1",
            CFG_DEFAULT),

    /* §5: several offers, the first acceptable one wins. */
    ACCEPT("7692 5 first of two acceptable offers",
           PMD "; client_max_window_bits=10, " PMD, CFG_DEFAULT,
           0, 15, 10, 0, 0, PMD "; client_max_window_bits=10"),
    ACCEPT("7692 5 first declined (8), second accepted",
           PMD "; server_max_window_bits=8, " PMD "; server_max_window_bits=10",
           CFG_DEFAULT, 1, 10, 15, 0, 0, PMD "; server_max_window_bits=10"),
    ACCEPT("7692 5 first declined (unknown), fallback accepted",
           PMD "; foo, " PMD, CFG_DEFAULT, 1, 15, 15, 0, 0, PMD),
    ACCEPT("7692 5 two declined, the third accepted",
           PMD "; server_max_window_bits=7, "
           PMD "; client_no_context_takeover=1, "
           PMD "; server_no_context_takeover",
           CFG_DEFAULT, 2, 15, 15, 1, 0, PMD "; server_no_context_takeover"),
    DECLINE("7692 5 every offer declined",
            PMD "; server_max_window_bits=8, " PMD "; a, " PMD "; b=1",
            CFG_DEFAULT),

    /* Other extensions are not ours to judge. */
    ACCEPT("other extension before it",
           "x-webkit-deflate-frame; max_window_bits=15, "
           PMD "; client_max_window_bits",
           CFG_DEFAULT, 1, 15, 15, 0, 0, PMD "; client_max_window_bits=15"),
    ACCEPT("other extensions around it",
           "foo, bar; baz=1, " PMD "; server_max_window_bits=11, qux",
           CFG_DEFAULT, 2, 11, 15, 0, 0, PMD "; server_max_window_bits=11"),
    ACCEPT("other extension between a declined offer and the accepted one",
           PMD "; server_max_window_bits, foo; server_max_window_bits=10, "
           PMD, CFG_DEFAULT, 2, 15, 15, 0, 0, PMD),
    NONE("no header", NULL, CFG_DEFAULT),
    NONE("empty header", "", CFG_DEFAULT),
    NONE("empty list elements", " , ,", CFG_DEFAULT),
    NONE("only another extension", "x-webkit-deflate-frame", CFG_DEFAULT),
    NONE("another extension with our parameters",
         "foo; server_max_window_bits=10", CFG_DEFAULT),
    NONE("a name that only starts like ours", PMD "-x", CFG_DEFAULT),
    NONE("deflate is not permessage-deflate", "deflate", CFG_DEFAULT),

    /* Configurations out of range. */
    ACCEPT("config below range", PMD "; client_max_window_bits",
           CFG_LOW, 0, 9, 9, 1, 1,
           PMD "; server_no_context_takeover; client_no_context_takeover; "
           "server_max_window_bits=9; client_max_window_bits=8"),
    ACCEPT("config zero", PMD "; client_max_window_bits=12",
           CFG_ZERO, 0, 9, 9, 0, 0,
           PMD "; server_max_window_bits=9; client_max_window_bits=8"),
    ACCEPT("config above range", PMD "; client_max_window_bits",
           CFG_HIGH, 0, 15, 15, 0, 0,
           PMD "; client_max_window_bits=15"),
};

#define N_NEG_CASES ((int)(sizeof(neg_cases) / sizeof(neg_cases[0])))

/* response must be exactly one permessage-deflate element whose parameters
 * each appear once and are valid in a response (§7.1). */
static void check_response_parses(const char *what, const char *response)
{
    apr_array_header_t *offers;
    const ws_extension_offer_t *o;
    int i, j;

    ck_assert_msg(ws_extension_parse(pool, response, &offers, NULL),
                  "%s: response \"%s\" does not parse", what, response);
    ck_assert_int_eq(offers->nelts, 1);
    o = &APR_ARRAY_IDX(offers, 0, ws_extension_offer_t);
    ck_assert_str_eq(o->name, PMD);
    for (i = 0; i < o->params->nelts; i++) {
        const ws_extension_param_t *p =
            &APR_ARRAY_IDX(o->params, i, ws_extension_param_t);

        for (j = 0; j < i; j++) {
            ck_assert_str_ne(p->name, APR_ARRAY_IDX(o->params, j,
                                                    ws_extension_param_t).name);
        }
        if (strstr(p->name, "no_context_takeover")) {
            ck_assert_ptr_null(p->value);
        }
        else {
            int v;

            ck_assert_ptr_nonnull(p->value);
            v = atoi(p->value);
            ck_assert_msg(v >= 8 && v <= 15
                          && strcmp(p->value, apr_itoa(pool, v)) == 0,
                          "%s: %s=%s", what, p->name, p->value);
        }
    }
}

START_TEST(rfc7692_7_negotiate_table)
{
    const neg_case_t *c = &neg_cases[_i];
    char *header = fence_dup(c->header);
    apr_array_header_t *offers;
    ws_pmd_negotiate_result_t res;
    int ok;

    ck_assert_msg(ws_extension_parse(pool, header, &offers, NULL),
                  "%s: header does not parse", c->name);
    memset(&res, 0xa5, sizeof(res));
    ok = ws_pmd_negotiate_choose(pool, offers, &c->config, &res);
    ck_assert_msg(ok == c->accepted && res.accepted == c->accepted,
                  "%s: returned %d, accepted %d, want %d (declined: %s)",
                  c->name, ok, res.accepted, c->accepted,
                  res.declined ? res.declined : "-");
    ck_assert_msg(res.offer_index == c->offer_index,
                  "%s: offer %d, want %d", c->name, res.offer_index,
                  c->offer_index);
    if (c->accepted) {
        ck_assert_msg(res.response && strcmp(res.response, c->response) == 0,
                      "%s: response \"%s\", want \"%s\"", c->name,
                      res.response ? res.response : "(null)", c->response);
        ck_assert_msg(res.params.server_window_bits == c->server_bits
                      && res.params.client_window_bits == c->client_bits,
                      "%s: window bits %d/%d, want %d/%d", c->name,
                      res.params.server_window_bits,
                      res.params.client_window_bits,
                      c->server_bits, c->client_bits);
        ck_assert_msg(res.params.server_no_context_takeover == c->server_nct
                      && res.params.client_no_context_takeover
                         == c->client_nct,
                      "%s: no_context_takeover %d/%d, want %d/%d", c->name,
                      res.params.server_no_context_takeover,
                      res.params.client_no_context_takeover,
                      c->server_nct, c->client_nct);
        ck_assert_ptr_null(res.declined);
        check_response_parses(c->name, res.response);
    }
    else {
        ck_assert_ptr_null(res.response);
        ck_assert_msg((res.declined != NULL) == c->declined,
                      "%s: declined \"%s\"", c->name,
                      res.declined ? res.declined : "(null)");
    }
    fence_free(header);
}
END_TEST

/* An offer with one parameter, built by hand: the parser never yields an
 * empty value, but the negotiation must not depend on that. */
static apr_array_header_t *one_offer(const char *name, const char *value)
{
    apr_array_header_t *offers = apr_array_make(pool, 1,
                                                sizeof(ws_extension_offer_t));
    ws_extension_offer_t *o = apr_array_push(offers);
    ws_extension_param_t *p;

    o->name = PMD;
    o->params = apr_array_make(pool, 1, sizeof(ws_extension_param_t));
    p = apr_array_push(o->params);
    p->name = name;
    p->value = value;
    return offers;
}

START_TEST(rfc7692_7_1_2_empty_value_declined)
{
    static const ws_pmd_negotiate_config_t cfg = CFG_DEFAULT;
    ws_pmd_negotiate_result_t res;

    ck_assert(!ws_pmd_negotiate_choose(pool, one_offer(
        "server_max_window_bits", ""), &cfg, &res));
    ck_assert_ptr_nonnull(res.declined);
    ck_assert(!ws_pmd_negotiate_choose(pool, one_offer(
        "client_max_window_bits", ""), &cfg, &res));
    ck_assert_ptr_nonnull(res.declined);
    ck_assert(!ws_pmd_negotiate_choose(pool, one_offer(
        "server_no_context_takeover", ""), &cfg, &res));
    ck_assert_ptr_nonnull(res.declined);
    /* The same offers with proper values are fine. */
    ck_assert(ws_pmd_negotiate_choose(pool, one_offer(
        "client_max_window_bits", NULL), &cfg, &res));
    ck_assert(ws_pmd_negotiate_choose(pool, one_offer(
        "server_max_window_bits", "11"), &cfg, &res));
    ck_assert_str_eq(res.response, PMD "; server_max_window_bits=11");
}
END_TEST

/* A failed parse leaves offers NULL; that is no offer, not a crash. */
START_TEST(negotiate_null_offers)
{
    static const ws_pmd_negotiate_config_t cfg = CFG_BOTH;
    ws_pmd_negotiate_result_t res;

    memset(&res, 0xa5, sizeof(res));
    ck_assert(!ws_pmd_negotiate_choose(pool, NULL, &cfg, &res));
    ck_assert_int_eq(res.accepted, 0);
    ck_assert_int_eq(res.offer_index, -1);
    ck_assert_ptr_null(res.response);
    ck_assert_ptr_null(res.declined);
}
END_TEST

/* The oracle: RFC 7692 §7.1.2 read again, with the zlib rules, for one
 * offer of server_max_window_bits sv and client_max_window_bits cv (0 not
 * offered, -1 bare). */
static void oracle(int sv, int cv, int cfg_s, int cfg_c, int *accept,
                   int *server_bits, int *client_bits, const char **response)
{
    const char *s = "", *c = "";

    *accept = sv != 8;
    if (!*accept) {
        return;
    }
    *server_bits = sv ? (sv < cfg_s ? sv : cfg_s) : cfg_s;
    if (sv || *server_bits < 15) {
        s = apr_psprintf(pool, "; server_max_window_bits=%d", *server_bits);
    }
    if (cv == 0) {
        *client_bits = 15;
    }
    else {
        int n = cv > 0 && cv < cfg_c ? cv : cfg_c;

        c = apr_psprintf(pool, "; client_max_window_bits=%d", n);
        *client_bits = n < 9 ? 9 : n;
    }
    *response = apr_pstrcat(pool, PMD, s, c, NULL);
}

/* §7.1.2: every offered window pair against every configured pair, each
 * offer also with the parameters in the other order. */
START_TEST(rfc7692_7_1_2_window_sweep)
{
    int sv, cv, cfg_s, cfg_c, order;

    for (sv = 0; sv <= 15; sv = sv ? sv + 1 : 8) {
        for (cv = -1; cv <= 15; cv = cv == 0 ? 8 : cv + 1) {
            const char *sp = sv ? apr_psprintf(pool,
                                  "server_max_window_bits=%d", sv) : NULL;
            const char *cp = cv == 0 ? NULL : cv < 0
                             ? "client_max_window_bits"
                             : apr_psprintf(pool,
                                   "client_max_window_bits=%d", cv);

            for (order = 0; order < 2; order++) {
                const char *first = order ? cp : sp, *second = order ? sp : cp;
                const char *header = apr_pstrcat(pool, PMD,
                    first ? "; " : "", first ? first : "",
                    second ? "; " : "", second ? second : "", NULL);
                apr_array_header_t *offers;

                ck_assert(ws_extension_parse(pool, header, &offers, NULL));
                for (cfg_s = 9; cfg_s <= 15; cfg_s++) {
                    for (cfg_c = 8; cfg_c <= 15; cfg_c++) {
                        ws_pmd_negotiate_config_t cfg = { cfg_s, cfg_c, 0, 0 };
                        ws_pmd_negotiate_result_t res;
                        int accept, sb = 0, cb = 0;
                        const char *want = NULL;

                        oracle(sv, cv, cfg_s, cfg_c, &accept, &sb, &cb, &want);
                        ck_assert_msg(ws_pmd_negotiate_choose(pool, offers,
                                                              &cfg, &res)
                                      == accept, "%s with %d/%d", header,
                                      cfg_s, cfg_c);
                        if (!accept) {
                            continue;
                        }
                        ck_assert_msg(strcmp(res.response, want) == 0
                                      && res.params.server_window_bits == sb
                                      && res.params.client_window_bits == cb,
                                      "%s with %d/%d: \"%s\" %d/%d, want "
                                      "\"%s\" %d/%d", header, cfg_s, cfg_c,
                                      res.response,
                                      res.params.server_window_bits,
                                      res.params.client_window_bits,
                                      want, sb, cb);
                        check_response_parses(header, res.response);
                    }
                }
            }
        }
    }
}
END_TEST

/* §5: while nothing is accepted, the reason is that of the last declined
 * offer; once an offer is accepted there is none. */
START_TEST(rfc7692_5_declined_reason)
{
    static const ws_pmd_negotiate_config_t cfg = CFG_DEFAULT;
    static const char unknown[] = PMD "; x";
    static const char twice[] = PMD "; server_no_context_takeover; "
                                "server_no_context_takeover";
    ws_pmd_negotiate_result_t u, t, res;
    apr_array_header_t *offers;

    ck_assert(ws_extension_parse(pool, unknown, &offers, NULL));
    ck_assert(!ws_pmd_negotiate_choose(pool, offers, &cfg, &u));
    ck_assert(ws_extension_parse(pool, twice, &offers, NULL));
    ck_assert(!ws_pmd_negotiate_choose(pool, offers, &cfg, &t));
    ck_assert_ptr_nonnull(u.declined);
    ck_assert_ptr_nonnull(t.declined);
    ck_assert_str_ne(u.declined, t.declined);

    ck_assert(ws_extension_parse(pool, apr_pstrcat(pool, unknown, ", ", twice,
                                                   NULL), &offers, NULL));
    ck_assert(!ws_pmd_negotiate_choose(pool, offers, &cfg, &res));
    ck_assert_str_eq(res.declined, t.declined);
    ck_assert(ws_extension_parse(pool, apr_pstrcat(pool, twice, ", ", unknown,
                                                   NULL), &offers, NULL));
    ck_assert(!ws_pmd_negotiate_choose(pool, offers, &cfg, &res));
    ck_assert_str_eq(res.declined, u.declined);

    ck_assert(ws_extension_parse(pool, apr_pstrcat(pool, unknown, ", " PMD,
                                                   NULL), &offers, NULL));
    ck_assert(ws_pmd_negotiate_choose(pool, offers, &cfg, &res));
    ck_assert_ptr_null(res.declined);
}
END_TEST

/* The same offers and configuration give the same result, and the
 * negotiation does not change the offers (the glue may log them). */
START_TEST(negotiate_deterministic_and_read_only)
{
    static const ws_pmd_negotiate_config_t cfg = CFG_SMALL;
    static const char header[] = "foo, " PMD "; server_max_window_bits=8, "
                                 PMD "; client_max_window_bits; "
                                 "server_no_context_takeover";
    ws_pmd_negotiate_result_t a, b;
    apr_array_header_t *offers;
    const ws_extension_offer_t *o;

    ck_assert(ws_extension_parse(pool, header, &offers, NULL));
    ck_assert(ws_pmd_negotiate_choose(pool, offers, &cfg, &a));
    ck_assert(ws_pmd_negotiate_choose(pool, offers, &cfg, &b));
    ck_assert_int_eq(a.offer_index, 2);
    ck_assert_int_eq(b.offer_index, 2);
    ck_assert_str_eq(a.response, b.response);
    ck_assert_str_eq(a.response, PMD "; server_no_context_takeover; "
                     "server_max_window_bits=10; client_max_window_bits=9");
    ck_assert_int_eq(memcmp(&a.params, &b.params, sizeof(a.params)), 0);

    ck_assert_int_eq(offers->nelts, 3);
    o = &APR_ARRAY_IDX(offers, 1, ws_extension_offer_t);
    ck_assert_str_eq(APR_ARRAY_IDX(o->params, 0, ws_extension_param_t).value,
                     "8");
}
END_TEST

static Suite *pmd_negotiate_suite(void)
{
    Suite *s = suite_create("ws_pmd_negotiate");
    TCase *tc = tcase_create("negotiate");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, rfc7692_7_negotiate_table, 0, N_NEG_CASES);
    tcase_add_test(tc, rfc7692_7_1_2_empty_value_declined);
    tcase_add_test(tc, negotiate_null_offers);
    tcase_add_test(tc, rfc7692_7_1_2_window_sweep);
    tcase_add_test(tc, rfc7692_5_declined_reason);
    tcase_add_test(tc, negotiate_deterministic_and_read_only);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(pmd_negotiate_suite)
