/* ws_close_test.c: unit tests for ws_close.c, the Close frame rules of RFC
 * 6455 §5.5.1 and §7.4 and the IANA close code registry.
 *
 * Code validity is checked over the whole 16-bit range against the rule
 * written out again here from the RFC, parsing against a table of payloads,
 * and building by what a peer would see: the payload parses back, and a cut
 * reason is still UTF-8.
 */
#include <string.h>

#include "ws_close.h"
#include "ws_frame.h"
#include "ws_utf8.h"
#include "test_util.h"

/* Longest reason that fits a control frame after the 2-byte code (§5.5). */
#define REASON_MAX (WS_CONTROL_MAX - 2)

/* Only calls into Check on failure: ck_assert() writes a checkpoint to
 * Check's pipe each time, which adds up over 65536 codes. */
#define REQUIRE(cond, ...)                                                 \
    do {                                                                   \
        if (!(cond))                                                       \
            ck_abort_msg(__VA_ARGS__);                                     \
    } while (0)

/* §7.4.1 defines 1000-1011 of which 1004 is reserved and 1005, 1006 may
 * not be sent; the IANA registry adds 1012-1014 and the local-only 1015;
 * 1016-2999 are reserved for the RFC and extensions; §7.4.2 gives 3000-3999
 * to registered libraries and 4000-4999 to private use; 0-999 and 5000+ are
 * not used. */
static int rule_valid(unsigned code)
{
    static const struct { unsigned lo, hi; } ok[] = {
        { 1000, 1003 }, { 1007, 1014 }, { 3000, 3999 }, { 4000, 4999 }
    };
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (code >= ok[i].lo && code <= ok[i].hi)
            return 1;
    }
    return 0;
}

START_TEST(rfc6455_7_4_code_valid_whole_range)
{
    unsigned code;
    int valid = 0;

    for (code = 0; code <= 0xFFFF; code++) {
        REQUIRE(ws_close_code_valid((uint16_t)code) == rule_valid(code),
                "code %u: ws_close_code_valid says %d", code,
                ws_close_code_valid((uint16_t)code));
        valid += rule_valid(code);
    }
    /* 4 + 8 + 2000 codes: guards the rule table itself. */
    ck_assert_int_eq(valid, 2012);
}
END_TEST

/* §5.5.1: a Close body is empty, or a 2-byte code, then a UTF-8 reason.
 * Parsing every code in a 2-byte payload must agree with the rule. */
START_TEST(rfc6455_5_5_1_parse_every_code)
{
    unsigned code;

    for (code = 0; code <= 0xFFFF; code++) {
        uint8_t p[2] = { (uint8_t)(code >> 8), (uint8_t)code };
        const uint8_t *reason = p;
        const char *why = NULL;
        size_t rlen = 99;
        uint16_t got = 0, r;

        r = ws_close_parse(p, 2, &got, &reason, &rlen, &why);
        if (rule_valid(code)) {
            REQUIRE(r == 0 && got == code && rlen == 0,
                    "code %u: returned %u, code %u, reason %zu bytes", code,
                    r, got, rlen);
        }
        else {
            REQUIRE(r == WS_CLOSE_PROTOCOL_ERROR && why != NULL,
                    "code %u: returned %u", code, r);
        }
    }
}
END_TEST

typedef struct parse_case {
    const char *name;     /* the clause it checks */
    const char *payload;  /* raw bytes */
    size_t      len;
    uint16_t    ret;      /* 0, or the close code to fail with */
    uint16_t    code;     /* on success */
} parse_case_t;

#define P(s) s, sizeof(s) - 1

static const parse_case_t parse_cases[] = {
    { "5.5.1 empty body: no status code, 1005", "", 0, 0, 1005 },
    { "5.5.1 one byte cannot hold a code", P("\x03"), 1002, 0 },
    { "5.5.1 one byte of a valid code", P("\xe8"), 1002, 0 },
    { "7.4.2 999 is not used", P("\x03\xe7"), 1002, 0 },
    { "7.4.1 1004 is reserved", P("\x03\xec"), 1002, 0 },
    { "7.4.1 1005 must not be sent", P("\x03\xed"), 1002, 0 },
    { "7.4.1 1006 must not be sent", P("\x03\xee"), 1002, 0 },
    { "IANA 1015 is local only", P("\x03\xf7"), 1002, 0 },
    { "7.4.2 1016 is reserved", P("\x03\xf8"), 1002, 0 },
    { "7.4.2 2000 is reserved", P("\x07\xd0"), 1002, 0 },
    { "7.4.2 2999 is reserved", P("\x0b\xb7"), 1002, 0 },
    { "7.4.2 5000 is not used", P("\x13\x88"), 1002, 0 },
    { "7.4.2 65535 is not used", P("\xff\xff"), 1002, 0 },
    { "7.4.2 invalid code with a reason", P("\x03\xec" "bye"), 1002, 0 },
    { "7.4.1 1000 without a reason", P("\x03\xe8"), 0, 1000 },
    { "7.4.1 1000 with an ASCII reason", P("\x03\xe8" "Normal Closure"), 0,
      1000 },
    { "7.4.1 1001 with a multibyte reason",
      P("\x03\xe9" "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e"), 0,
      1001 },
    { "IANA 1014 is valid", P("\x03\xf6" "gateway"), 0, 1014 },
    { "7.4.2 3000 is valid", P("\x0b\xb8"), 0, 3000 },
    { "7.4.2 4999 is valid", P("\x13\x87" "x"), 0, 4999 },
    { "5.5.1 reason with a byte that is never UTF-8",
      P("\x03\xe8" "ok\xff"), 1007, 0 },
    { "5.5.1 reason with a lone continuation byte",
      P("\x03\xe8" "\x80"), 1007, 0 },
    { "5.5.1 reason with an overlong '/'", P("\x03\xe8" "\xc0\xaf"), 1007,
      0 },
    { "5.5.1 reason with a surrogate", P("\x03\xe8" "\xed\xa0\x80"), 1007,
      0 },
    { "5.5.1 reason above U+10FFFF", P("\x03\xe8" "\xf4\x90\x80\x80"), 1007,
      0 },
    { "5.5.1 reason cut inside a 2-byte character",
      P("\x03\xe8" "caf\xc3"), 1007, 0 },
    { "5.5.1 reason cut inside a 3-byte character",
      P("\x03\xe8" "\xe2\x82"), 1007, 0 },
    { "5.5.1 reason cut inside a 4-byte character",
      P("\x0f\xa0" "\xf0\x9d\x84"), 1007, 0 },
};

#define NPARSE (sizeof(parse_cases) / sizeof(parse_cases[0]))

START_TEST(rfc6455_5_5_1_parse_cases)
{
    const parse_case_t *c = &parse_cases[_i];
    uint8_t buf[WS_CONTROL_MAX];
    const uint8_t *reason = buf;
    const char *why = NULL;
    size_t rlen = 99;
    uint16_t code = 0, r;

    /* A private copy, so the reason pointer can be checked to lie inside
     * the payload. */
    memcpy(buf, c->payload, c->len);
    r = ws_close_parse(buf, c->len, &code, &reason, &rlen, &why);
    ck_assert_msg(r == c->ret, "%s: returned %u, want %u", c->name, r,
                  c->ret);
    if (r) {
        ck_assert_msg(why != NULL, "%s: no reason given", c->name);
        return;
    }
    ck_assert_msg(code == c->code, "%s: code %u, want %u", c->name, code,
                  c->code);
    if (c->len == 0) {
        ck_assert_uint_eq(rlen, 0);
        return;
    }
    ck_assert_ptr_eq(reason, buf + 2);
    ck_assert_uint_eq(rlen, c->len - 2);
}
END_TEST

/* §5.5.1: 1005 is what the receiver reports for an empty body, so building
 * it gives an empty body, whatever reason was passed. */
START_TEST(rfc6455_7_4_1_build_no_status_is_empty)
{
    uint8_t out[WS_CONTROL_MAX];

    memset(out, 0xEE, sizeof(out));
    ck_assert_uint_eq(ws_close_build(out, WS_CLOSE_NO_STATUS, NULL, 0), 0);
    ck_assert_uint_eq(ws_close_build(out, WS_CLOSE_NO_STATUS, "bye", 3), 0);
    ck_assert_uint_eq(out[0], 0xEE);
}
END_TEST

/* §5.2: the code goes out in network byte order, then the reason. */
START_TEST(rfc6455_5_5_1_build_layout)
{
    uint8_t out[WS_CONTROL_MAX];

    ck_assert_uint_eq(ws_close_build(out, 1000, NULL, 0), 2);
    ck_assert_uint_eq(out[0], 0x03);
    ck_assert_uint_eq(out[1], 0xE8);
    ck_assert_uint_eq(ws_close_build(out, 4321, "bye", 3), 5);
    ck_assert_mem_eq(out, "\x10\xe1" "bye", 5);
}
END_TEST

/* §5.5: a control frame carries at most 125 bytes, so a reason longer than
 * 123 is cut; ASCII is cut at exactly 123. */
START_TEST(rfc6455_5_5_build_truncates_ascii)
{
    static const size_t lens[] = { 0, 1, 122, 123, 124, 125, 200, 4096 };
    char reason[4096];
    uint8_t out[WS_CONTROL_MAX + 16];
    size_t i, n, want;

    for (i = 0; i < sizeof(reason); i++)
        reason[i] = (char)('a' + i % 26);
    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        memset(out, 0xEE, sizeof(out));
        n = ws_close_build(out, 1001, reason, lens[i]);
        want = lens[i] < REASON_MAX ? lens[i] : REASON_MAX;
        ck_assert_uint_eq(n, 2 + want);
        ck_assert_mem_eq(out + 2, reason, want);
        /* Not one byte past the frame's limit is written. */
        ck_assert_uint_eq(out[WS_CONTROL_MAX], 0xEE);
    }
}
END_TEST

/* §5.5.1 and §8.1: the reason stays UTF-8 when cut, so the cut falls on a
 * character boundary, at the last one that fits. Characters of 2, 3 and 4
 * bytes, behind an ASCII prefix of every length mod 4, put the 123-byte
 * limit at every position inside a character. */
START_TEST(rfc6455_5_5_1_build_truncates_at_character)
{
    static const char *const chars[] = {
        "\xc3\xa9",            /* é */
        "\xe2\x82\xac",        /* € */
        "\xf0\x9d\x84\x9e",    /* 𝄞 */
    };
    char reason[400];
    uint8_t out[WS_CONTROL_MAX];
    size_t c, prefix, len, clen, n, boundary;

    for (c = 0; c < 3; c++) {
        clen = strlen(chars[c]);
        for (prefix = 0; prefix < 4; prefix++) {
            memset(reason, 'p', prefix);
            for (len = prefix; len + clen <= 300; len += clen)
                memcpy(reason + len, chars[c], clen);
            n = ws_close_build(out, 1000, reason, len);
            /* The longest prefix of whole characters within 123 bytes. */
            boundary = prefix + (REASON_MAX - prefix) / clen * clen;
            ck_assert_msg(n == 2 + boundary,
                          "%zu-byte characters after %zu ASCII: %zu bytes,"
                          " want %zu", clen, prefix, n - 2, boundary);
            ck_assert_mem_eq(out + 2, reason, boundary);
            ck_assert(ws_utf8_valid(out + 2, n - 2));
        }
    }
}
END_TEST

/* Build then parse: what we send is accepted by our own rules, for
 * every valid code, with short, exact and overlong reasons. */
START_TEST(rfc6455_5_5_1_build_parse_round_trip)
{
    static const char *const reasons[] = {
        "",
        "going away",
        "\xe2\x82\xac\xf0\x9d\x84\x9e\xc3\xa9",
        /* 41 x 3 bytes = 123: fits exactly */
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
        "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
        "\xe2\x82\xac",
        /* 31 x 4 bytes = 124: one character too many */
        "\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e"
        "\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e"
        "\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e"
        "\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e"
        "\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e"
        "\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e"
        "\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e"
        "\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e",
    };
    uint8_t out[WS_CONTROL_MAX];
    unsigned code;
    size_t i;

    for (code = 0; code <= 0xFFFF; code++) {
        if (!rule_valid(code))
            continue;
        for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
            size_t rlen = strlen(reasons[i]), n, got_len = 0;
            const uint8_t *got = NULL;
            const char *why = NULL;
            uint16_t back = 0, r;

            n = ws_close_build(out, (uint16_t)code, reasons[i], rlen);
            r = ws_close_parse(out, n, &back, &got, &got_len, &why);
            REQUIRE(r == 0 && back == code,
                    "code %u, reason %zu: parse returned %u (%s), code %u",
                    code, i, r, why ? why : "", back);
            /* Only the 124-byte reason is cut: to 30 whole characters. */
            REQUIRE(got_len == (rlen <= REASON_MAX ? rlen : 120)
                    && memcmp(got, reasons[i], got_len) == 0,
                    "code %u, reason %zu: %zu bytes back", code, i, got_len);
        }
    }
}
END_TEST

static Suite *ws_close_suite(void)
{
    Suite *s = suite_create("ws_close");
    TCase *tc = tcase_create("codes");
    TCase *tp = tcase_create("parse");
    TCase *tb = tcase_create("build");

    tcase_add_test(tc, rfc6455_7_4_code_valid_whole_range);
    suite_add_tcase(s, tc);

    tcase_add_test(tp, rfc6455_5_5_1_parse_every_code);
    tcase_add_loop_test(tp, rfc6455_5_5_1_parse_cases, 0, NPARSE);
    suite_add_tcase(s, tp);

    tcase_add_test(tb, rfc6455_7_4_1_build_no_status_is_empty);
    tcase_add_test(tb, rfc6455_5_5_1_build_layout);
    tcase_add_test(tb, rfc6455_5_5_build_truncates_ascii);
    tcase_add_test(tb, rfc6455_5_5_1_build_truncates_at_character);
    tcase_add_test(tb, rfc6455_5_5_1_build_parse_round_trip);
    suite_add_tcase(s, tb);
    return s;
}

TEST_MAIN(ws_close_suite)
