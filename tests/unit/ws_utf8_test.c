/* ws_utf8_test.c: unit tests for ws_utf8.c, the incremental UTF-8 check
 * behind RFC 6455 §8.1.
 *
 * Every verdict is checked three ways: against a table of hand-picked cases
 * (Markus Kuhn's stress test categories), against an oracle written here
 * from the arithmetic of RFC 3629 §3 rather than from Table 3-7, and against
 * the bytewise decoder. Each input is fed whole, a byte at a time and at
 * random splits, and the first bad byte must be the same absolute position
 * however the input was cut. These tests do not go through the engine.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ws_utf8.h"
#include "test_util.h"

/* ck_assert() reports every pass to the runner, which the exhaustive loops
 * below cannot afford; this speaks only on failure. */
#define CHECK(expr, ...)                                          \
    do {                                                          \
        if (!(expr)) {                                            \
            ck_abort_msg(__VA_ARGS__);                            \
        }                                                         \
    } while (0)

typedef int (*feed_fn)(ws_utf8_t *u, const uint8_t *buf, size_t len,
                       size_t *bad_at);

static const struct {
    const char *name;
    feed_fn feed;
} feeds[] = {
    { "ws_utf8_feed", ws_utf8_feed },
    { "ws_utf8_feed_bytewise", ws_utf8_feed_bytewise }
};

#define NFEEDS (sizeof(feeds) / sizeof(feeds[0]))

/* How an input is cut into chunks. */
enum { WHOLE, BYTES, RANDOM };

/* Feed in[0..len) cut as split says (RANDOM uses test_rng, with an empty
 * chunk now and then, which must change nothing). Returns the absolute index
 * of the bad byte or -1, and whether the text may end there. */
static long feed_split(feed_fn feed, const uint8_t *in, size_t len, int split,
                       int *complete)
{
    ws_utf8_t u;
    size_t pos = 0, bad;

    ws_utf8_reset(&u);
    while (pos < len) {
        size_t n = split == WHOLE ? len - pos
                 : split == BYTES ? 1 : test_rng_len(len - pos);

        if (split == RANDOM && test_rng() % 8 == 0) {
            CHECK(feed(&u, in + pos, 0, &bad), "empty chunk failed");
        }
        bad = (size_t)-1;
        if (!feed(&u, in + pos, n, &bad)) {
            CHECK(bad < n, "bad_at %zu outside chunk of %zu", bad, n);
            CHECK(!ws_utf8_complete(&u), "complete after failure");
            *complete = 0;
            return (long)(pos + bad);
        }
        pos += n;
    }
    *complete = ws_utf8_complete(&u);
    return -1;
}

/* ---- the oracle: RFC 3629 §3 arithmetic, no state machine ---- */

/* How many bytes the sequence led by b has by its bit pattern alone, 0 if b
 * cannot lead one. */
static size_t seq_len(uint8_t b)
{
    if (b < 0x80) {
        return 1;
    }
    if ((b & 0xE0) == 0xC0) {
        return 2;
    }
    if ((b & 0xF0) == 0xE0) {
        return 3;
    }
    if ((b & 0xF8) == 0xF0) {
        return 4;
    }
    return 0;
}

/* 1 if p[0..k), k <= seq_len(p[0]), begins the shortest encoding of some
 * Unicode scalar value. The free low bits make the candidates one range of
 * code points; it must meet the range that length encodes (§3: no
 * overlongs, nothing above U+10FFFF) and not lie inside the surrogates. */
static int viable(const uint8_t *p, size_t k)
{
    static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    static const uint32_t max_cp[5] = { 0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF };
    size_t n = seq_len(p[0]), i;
    uint32_t lo, hi;

    if (n == 0) {
        return 0;
    }
    lo = p[0] & (n == 1 ? 0x7F : 0x7F >> n);
    for (i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        lo = lo << 6 | (p[i] & 0x3F);
    }
    for (hi = lo; i < n; i++) {
        lo <<= 6;
        hi = hi << 6 | 0x3F;
    }
    if (lo < min_cp[n]) {
        lo = min_cp[n];
    }
    if (hi > max_cp[n]) {
        hi = max_cp[n];
    }
    return lo <= hi && !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* The index of the first byte after which buf cannot be valid UTF-8, or
 * -1; *complete says whether the text may end after len bytes. */
static long oracle(const uint8_t *buf, size_t len, int *complete)
{
    size_t i = 0, k, n;

    *complete = 0;
    while (i < len) {
        n = seq_len(buf[i]);
        if (n == 0) {
            return (long)i;
        }
        for (k = 1; k <= n; k++) {
            if (i + k > len) {
                return -1;
            }
            if (!viable(buf + i, k)) {
                return (long)(i + k - 1);
            }
        }
        i += n;
    }
    *complete = 1;
    return -1;
}

/* Check one input against an expected verdict with every feed function and
 * every way of cutting it. */
static void check_all_splits(const uint8_t *in, size_t len, long want_bad,
                             int want_complete, const char *what)
{
    size_t f;
    int split, round, complete;
    long bad;

    for (f = 0; f < NFEEDS; f++) {
        for (split = WHOLE; split <= RANDOM; split++) {
            for (round = 0; round < (split == RANDOM ? 8 : 1); round++) {
                bad = feed_split(feeds[f].feed, in, len, split, &complete);
                CHECK(bad == want_bad && complete == want_complete,
                      "%s: %s split %d: bad_at %ld complete %d, want %ld %d",
                      what, feeds[f].name, split, bad, complete, want_bad,
                      want_complete);
            }
        }
    }
    CHECK(ws_utf8_valid(in, len) == (want_bad < 0 && want_complete),
          "%s: ws_utf8_valid", what);
}

/* One byte from each edge of each byte range of Table 3-7. */
static const uint8_t edges[] = {
    0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
    0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF
};

#define NEDGES (sizeof(edges))

/* Valid text of exactly k bytes to put in front of an input, so that the
 * input meets the 16-byte blocks of the fast path at every offset and with
 * a multibyte character just before it (mixed) or ASCII (not). */
static void make_prefix(uint8_t *out, size_t k, int mixed)
{
    static const char *const chars[] = {
        "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "x"
    };
    size_t n = 0, c, cl;

    for (c = 0; n < k; c++) {
        const char *ch = mixed ? chars[c % 4] : "x";

        cl = strlen(ch);
        if (cl > k - n) {
            ch = "x";
            cl = 1;
        }
        memcpy(out + n, ch, cl);
        n += cl;
    }
}

/* ---- the table ---- */

#define OK(name, s)      { name, s, sizeof(s) - 1, -1, 1 }
#define CUT(name, s)     { name, s, sizeof(s) - 1, -1, 0 }
#define BAD(name, s, at) { name, s, sizeof(s) - 1, at, 0 }

static const struct {
    const char *name;
    const char *in;
    size_t len;
    long bad_at;    /* -1 if every byte is accepted */
    int complete;   /* whether the text may end after the last byte */
} cases[] = {
    OK("empty", ""),
    OK("kuhn 1 greek kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"),
    OK("rfc3629 7 A<NOT IDENTICAL TO><ALPHA>.", "A\xE2\x89\xA2\xCE\x91."),
    OK("rfc3629 7 korean", "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"),
    OK("rfc3629 7 japanese", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"),
    OK("rfc3629 7 BOM U+233B4", "\xEF\xBB\xBF\xF0\xA3\x8E\xB4"),
    OK("mixed latin-1", "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC"
                        "\xC3\xA0\xC3\xA1-UTF-8!!"),
    /* Kuhn 2.1-2.3: boundaries of each length and of the surrogates. */
    OK("U+0000", "\x00"),
    OK("U+007F", "\x7F"),
    OK("U+0080", "\xC2\x80"),
    OK("U+07FF", "\xDF\xBF"),
    OK("U+0800", "\xE0\xA0\x80"),
    OK("U+D7FF", "\xED\x9F\xBF"),
    OK("U+E000", "\xEE\x80\x80"),
    OK("U+FFFD", "\xEF\xBF\xBD"),
    OK("U+FFFF", "\xEF\xBF\xBF"),
    OK("U+10000", "\xF0\x90\x80\x80"),
    OK("U+10FFFF", "\xF4\x8F\xBF\xBF"),
    OK("NUL inside text", "a\x00" "b\x00"),
    BAD("U+110000", "\xF4\x90\x80\x80", 1),
    BAD("U+1FFFFF (F7)", "\xF7\xBF\xBF\xBF", 0),
    BAD("5-byte first U+200000", "\xF8\x88\x80\x80\x80", 0),
    BAD("5-byte last", "\xFB\xBF\xBF\xBF\xBF", 0),
    BAD("6-byte first U+4000000", "\xFC\x84\x80\x80\x80\x80", 0),
    BAD("6-byte last", "\xFD\xBF\xBF\xBF\xBF\xBF", 0),
    /* Kuhn 5.3: noncharacters are scalar values, so valid (RFC 3629 §3). */
    OK("U+FFFE", "\xEF\xBF\xBE"),
    OK("U+FDD0", "\xEF\xB7\x90"),
    OK("U+1FFFF", "\xF0\x9F\xBF\xBF"),
    OK("U+10FFFE", "\xF4\x8F\xBF\xBE"),
    /* Kuhn 3.1: continuation bytes with no lead. */
    BAD("lone 80", "\x80", 0),
    BAD("lone BF", "\xBF", 0),
    BAD("80 BF", "\x80\xBF", 0),
    BAD("80 BF 80 BF", "\x80\xBF\x80\xBF", 0),
    BAD("all 64 continuation bytes",
        "\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8A\x8B\x8C\x8D\x8E\x8F"
        "\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9A\x9B\x9C\x9D\x9E\x9F"
        "\xA0\xA1\xA2\xA3\xA4\xA5\xA6\xA7\xA8\xA9\xAA\xAB\xAC\xAD\xAE\xAF"
        "\xB0\xB1\xB2\xB3\xB4\xB5\xB6\xB7\xB8\xB9\xBA\xBB\xBC\xBD\xBE\xBF",
        0),
    BAD("ASCII then 80", "a\x80", 1),
    BAD("U+0080 then extra 80", "\xC2\x80\x80", 2),
    BAD("euro then extra BF", "\xE2\x82\xAC\xBF", 3),
    BAD("U+10000 then extra 80", "\xF0\x90\x80\x80\x80", 4),
    /* Kuhn 3.2: a lead byte followed by ASCII (a space). */
    BAD("C2 then space", "\xC2 ", 1),
    BAD("DF then space", "\xDF ", 1),
    BAD("E0 then space", "\xE0 ", 1),
    BAD("EF then space", "\xEF ", 1),
    BAD("F0 then space", "\xF0 ", 1),
    BAD("F4 then space", "\xF4 ", 1),
    BAD("E1 80 then space", "\xE1\x80 ", 2),
    BAD("F1 80 80 then space", "\xF1\x80\x80 ", 3),
    BAD("C2 then lead C2", "\xC2\xC2\x80", 1),
    BAD("E1 then lead E1", "\xE1\xE1\x80\x80", 1),
    /* Kuhn 3.3: last continuation byte missing at the end of the text:
     * every byte is acceptable, but the message may not end there. */
    CUT("cut C2", "\xC2"),
    CUT("cut DF", "\xDF"),
    CUT("cut E0 A0", "\xE0\xA0"),
    CUT("cut E1 80", "\xE1\x80"),
    CUT("cut ED 9F", "\xED\x9F"),
    CUT("cut EF BF", "\xEF\xBF"),
    CUT("cut F0 90 80", "\xF0\x90\x80"),
    CUT("cut F1", "\xF1"),
    CUT("cut F4 8F BF", "\xF4\x8F\xBF"),
    CUT("text then cut E2 82", "price: \xE2\x82"),
    /* Kuhn 3.3 inside a text, 3.4 concatenated incomplete sequences. */
    BAD("E1 80 then a", "\xE1\x80" "a", 2),
    BAD("F0 90 80 then a", "\xF0\x90\x80" "a", 3),
    BAD("C2 E0 80", "\xC2\xE0\x80", 1),
    BAD("E0 80 C2", "\xE0\x80\xC2", 1),
    /* Kuhn 3.5: bytes that never occur; RFC 3629 §1 lists C0, C1, F5-FF. */
    BAD("C0", "\xC0", 0),
    BAD("C1", "\xC1", 0),
    BAD("F5", "\xF5", 0),
    BAD("F6", "\xF6", 0),
    BAD("F7", "\xF7", 0),
    BAD("F8", "\xF8", 0),
    BAD("FB", "\xFB", 0),
    BAD("FC", "\xFC", 0),
    BAD("FD", "\xFD", 0),
    BAD("FE", "\xFE", 0),
    BAD("FF", "\xFF", 0),
    BAD("FE FE FF FF", "\xFE\xFE\xFF\xFF", 0),
    BAD("ASCII then FE", "abc\xFE", 3),
    /* Kuhn 4.1-4.3: overlong forms (RFC 3629 §3, §10). */
    BAD("overlong / 2 bytes", "\xC0\xAF", 0),
    BAD("overlong / 3 bytes", "\xE0\x80\xAF", 1),
    BAD("overlong / 4 bytes", "\xF0\x80\x80\xAF", 1),
    BAD("overlong / 5 bytes", "\xF8\x80\x80\x80\xAF", 0),
    BAD("overlong / 6 bytes", "\xFC\x80\x80\x80\x80\xAF", 0),
    BAD("max overlong 2 bytes U+007F", "\xC1\xBF", 0),
    BAD("max overlong 3 bytes U+07FF", "\xE0\x9F\xBF", 1),
    BAD("max overlong 4 bytes U+FFFF", "\xF0\x8F\xBF\xBF", 1),
    BAD("max overlong 5 bytes", "\xF8\x87\xBF\xBF\xBF", 0),
    BAD("max overlong 6 bytes", "\xFC\x83\xBF\xBF\xBF\xBF", 0),
    BAD("overlong NUL 2 bytes", "\xC0\x80", 0),
    BAD("overlong NUL 3 bytes", "\xE0\x80\x80", 1),
    BAD("overlong NUL 4 bytes", "\xF0\x80\x80\x80", 1),
    BAD("overlong NUL 5 bytes", "\xF8\x80\x80\x80\x80", 0),
    BAD("overlong NUL 6 bytes", "\xFC\x80\x80\x80\x80\x80", 0),
    /* Kuhn 5.1: single surrogates (RFC 3629 §3: not scalar values). */
    BAD("U+D800", "\xED\xA0\x80", 1),
    BAD("U+DB7F", "\xED\xAD\xBF", 1),
    BAD("U+DB80", "\xED\xAE\x80", 1),
    BAD("U+DBFF", "\xED\xAF\xBF", 1),
    BAD("U+DC00", "\xED\xB0\x80", 1),
    BAD("U+DF80", "\xED\xBE\x80", 1),
    BAD("U+DFFF", "\xED\xBF\xBF", 1),
    BAD("cut U+D800", "\xED\xA0", 1),
    /* Kuhn 5.2: paired surrogates (CESU-8) are no better. */
    BAD("U+D800 U+DC00", "\xED\xA0\x80\xED\xB0\x80", 1),
    BAD("U+D800 U+DFFF", "\xED\xA0\x80\xED\xBF\xBF", 1),
    BAD("U+DB7F U+DC00", "\xED\xAD\xBF\xED\xB0\x80", 1),
    BAD("U+DBFF U+DFFF", "\xED\xAF\xBF\xED\xBF\xBF", 1),
    BAD("text then U+D800", "ab\xED\xA0\x80", 3),
    /* Past the 16-byte blocks of the fast path. */
    BAD("ten kappas then U+D800",
        "\xCE\xBA\xCE\xBA\xCE\xBA\xCE\xBA\xCE\xBA"
        "\xCE\xBA\xCE\xBA\xCE\xBA\xCE\xBA\xCE\xBA\xED\xA0\x80", 21),
    BAD("32 ASCII then C0", "0123456789abcdef0123456789abcdef\xC0", 32),
    CUT("32 ASCII then cut F0 9F 98",
        "0123456789abcdef0123456789abcdef\xF0\x9F\x98"),
    OK("emoji run", "\xF0\x9F\x98\x80\xF0\x9F\x98\x81\xF0\x9F\x98\x82"
                    "\xF0\x9F\x98\x83\xF0\x9F\x98\x84\xF0\x9F\x98\x85")
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* RFC 6455 §8.1 fails the connection on invalid UTF-8, as soon as the byte
 * arrives (§5.6, §8.1): each case's verdict and bad byte must not depend on
 * how the text was cut into frames and reads. */
START_TEST(rfc6455_8_1_table_every_split)
{
    const uint8_t *in = (const uint8_t *)cases[_i].in;
    uint8_t buf[48 + 80 + 20];
    size_t k, tail;
    int complete, mixed;
    long bad;
    char what[120];

    test_rng_init();
    /* The table is checked against the oracle too, so a typo in either
     * shows. */
    bad = oracle(in, cases[_i].len, &complete);
    ck_assert_msg(bad == cases[_i].bad_at && complete == cases[_i].complete,
                  "%s: oracle says %ld %d", cases[_i].name, bad, complete);
    check_all_splits(in, cases[_i].len, cases[_i].bad_at, cases[_i].complete,
                     cases[_i].name);

    /* And after valid text of every length up to three blocks, with ASCII
     * after it or not, so the fast path meets it at every offset. */
    ck_assert_uint_le(48 + cases[_i].len + 20, sizeof(buf));
    for (k = 0; k <= 48; k++) {
        for (mixed = 0; mixed <= 1; mixed++) {
            for (tail = 0; tail <= 20; tail += 20) {
                size_t len = k + cases[_i].len + tail;

                make_prefix(buf, k, mixed);
                memcpy(buf + k, in, cases[_i].len);
                memset(buf + k + cases[_i].len, 'z', tail);
                bad = oracle(buf, len, &complete);
                snprintf(what, sizeof(what), "%s after %zu bytes%s, tail %zu",
                         cases[_i].name, k, mixed ? " (mixed)" : "", tail);
                check_all_splits(buf, len, bad, complete, what);
            }
        }
    }
}
END_TEST

/* The failed state sticks until reset (ws_utf8.h), and a later chunk's
 * first byte is then reported. */
START_TEST(rfc6455_8_1_failure_sticks)
{
    ws_utf8_t u;
    size_t f, bad;

    for (f = 0; f < NFEEDS; f++) {
        ws_utf8_reset(&u);
        ck_assert(!feeds[f].feed(&u, (const uint8_t *)"a\xFF" "b", 3, &bad));
        ck_assert_uint_eq(bad, 1);
        bad = 99;
        ck_assert(!feeds[f].feed(&u, (const uint8_t *)"abc", 3, &bad));
        ck_assert_uint_eq(bad, 0);
        ck_assert(!feeds[f].feed(&u, (const uint8_t *)"", 0, NULL));
        ck_assert(!ws_utf8_complete(&u));
        ws_utf8_reset(&u);
        ck_assert(feeds[f].feed(&u, (const uint8_t *)"abc", 3, NULL));
        ck_assert(ws_utf8_complete(&u));
    }
}
END_TEST

/* An empty text frame (§5.6 allows them) may reach us as NULL, 0. */
START_TEST(rfc6455_5_6_empty_chunks)
{
    ws_utf8_t u;
    size_t f;

    for (f = 0; f < NFEEDS; f++) {
        ws_utf8_reset(&u);
        ck_assert(feeds[f].feed(&u, NULL, 0, NULL));
        ck_assert(ws_utf8_complete(&u));
        ck_assert(feeds[f].feed(&u, (const uint8_t *)"\xE2\x82", 2, NULL));
        ck_assert(feeds[f].feed(&u, NULL, 0, NULL));
        ck_assert(!ws_utf8_complete(&u));
        ck_assert(feeds[f].feed(&u, (const uint8_t *)"\xAC", 1, NULL));
        ck_assert(ws_utf8_complete(&u));
    }
    ck_assert(ws_utf8_valid(NULL, 0));
}
END_TEST

/* A text may be begun by one feed function and finished by the other: they
 * share the state encoding. */
START_TEST(rfc6455_8_1_feeds_share_state)
{
    static const uint8_t text[] = "\xF0\x9F\x98\x80\xE6\x97\xA5\xC3\xA9";
    size_t cut, f;
    ws_utf8_t u;

    for (cut = 0; cut < sizeof(text) - 1; cut++) {
        for (f = 0; f < NFEEDS; f++) {
            ws_utf8_reset(&u);
            ck_assert(feeds[f].feed(&u, text, cut, NULL));
            ck_assert(feeds[1 - f].feed(&u, text + cut,
                                        sizeof(text) - 1 - cut, NULL));
            ck_assert_msg(ws_utf8_complete(&u), "cut %zu", cut);
        }
    }
}
END_TEST

/* RFC 3629 §3 and §4, exhaustively over code points: the shortest form of
 * every scalar value is valid; a surrogate, anything above U+10FFFF and
 * every overlong form fail at the lead byte if it alone rules them out
 * (C0, C1, F5..F7), else at the second byte. */
START_TEST(rfc3629_3_every_code_point_every_length)
{
    static const uint32_t fits[5] = { 0, 0x80, 0x800, 0x10000, 0x200000 };
    static const uint8_t lead_bits[5] = { 0, 0x00, 0xC0, 0xE0, 0xF0 };
    uint32_t cp, v;
    size_t n, shortest, i, f, bad;
    uint8_t buf[4];
    ws_utf8_t u;

    for (cp = 0; cp < 0x200000; cp++) {
        for (shortest = 1; cp >= fits[shortest]; shortest++) {
        }
        for (n = shortest; n <= 4; n++) {
            int valid = n == shortest && cp <= 0x10FFFF
                        && !(cp >= 0xD800 && cp <= 0xDFFF);

            for (v = cp, i = n - 1; i > 0; i--, v >>= 6) {
                buf[i] = (uint8_t)(0x80 | (v & 0x3F));
            }
            buf[0] = (uint8_t)(lead_bits[n] | v);
            for (f = 0; f < NFEEDS; f++) {
                ws_utf8_reset(&u);
                bad = 99;
                if (valid) {
                    CHECK(feeds[f].feed(&u, buf, n, &bad)
                          && ws_utf8_complete(&u),
                          "%s: U+%04X", feeds[f].name, (unsigned)cp);
                } else {
                    size_t want = buf[0] == 0xC0 || buf[0] == 0xC1
                                  || buf[0] >= 0xF5 ? 0 : 1;

                    CHECK(!feeds[f].feed(&u, buf, n, &bad) && bad == want,
                          "%s: U+%04X in %zu bytes: bad_at %zu",
                          feeds[f].name, (unsigned)cp, n, bad);
                }
            }
        }
    }
}
END_TEST

/* One short input against the oracle, with both feed functions: alone, and
 * placed across the first block edge of the fast path (offsets 12..20)
 * after valid multibyte text and before ASCII. */
static void check_short(const uint8_t *in, size_t len)
{
    static unsigned turn;
    uint8_t buf[48];
    const uint8_t *p;
    size_t f, bad, n, k = 12 + turn++ % 9;
    int complete;
    long want;
    ws_utf8_t u;

    make_prefix(buf, k, 1);
    memcpy(buf + k, in, len);
    memset(buf + k + len, 'z', sizeof(buf) - k - len);
    for (p = in, n = len; p; p = p == in ? buf : NULL, n = sizeof(buf)) {
        want = oracle(p, n, &complete);
        for (f = 0; f < NFEEDS; f++) {
            ws_utf8_reset(&u);
            bad = 99;
            CHECK(feeds[f].feed(&u, p, n, &bad) == (want < 0)
                  && (want < 0 ? ws_utf8_complete(&u) == complete
                               : (long)bad == want),
                  "%s: %02X %02X %02X %02X (%zu bytes) at %zu", feeds[f].name,
                  in[0], len > 1 ? in[1] : 0, len > 2 ? in[2] : 0,
                  len > 3 ? in[3] : 0, len, p == in ? 0 : k);
        }
    }
}

START_TEST(rfc3629_4_every_short_string)
{
    uint8_t buf[4];
    size_t a, b, c, d;

    for (a = 0; a < 256; a++) {
        buf[0] = (uint8_t)a;
        check_short(buf, 1);
        for (b = 0; b < 256; b++) {
            buf[1] = (uint8_t)b;
            check_short(buf, 2);
        }
    }
    for (a = 0; a < NEDGES; a++) {
        for (b = 0; b < NEDGES; b++) {
            for (c = 0; c < NEDGES; c++) {
                buf[0] = edges[a];
                buf[1] = edges[b];
                buf[2] = edges[c];
                check_short(buf, 3);
                for (d = 0; d < NEDGES; d++) {
                    buf[3] = edges[d];
                    check_short(buf, 4);
                }
            }
        }
    }
}
END_TEST

/* The ASCII fast path skips whole blocks; a bad byte, a good multibyte
 * character or a cut sequence at any position around the block edges must
 * come out as in a plain scan. */
static const struct {
    const char *name;
    const char *ins;
    size_t len;
    long bad;       /* bad_at relative to the insert, or -1 if valid */
} inserts[] = {
    { "stray 80", "\x80", 1, 0 },
    { "FF", "\xFF", 1, 0 },
    { "C0 AF", "\xC0\xAF", 2, 0 },
    { "C3 then ASCII", "\xC3", 1, 1 },
    { "U+D800", "\xED\xA0\x80", 3, 1 },
    { "U+00E9", "\xC3\xA9", 2, -1 },
    { "U+20AC", "\xE2\x82\xAC", 3, -1 },
    { "U+1F600", "\xF0\x9F\x98\x80", 4, -1 }
};

START_TEST(rfc6455_8_1_ascii_runs_bad_byte_everywhere)
{
    static uint8_t buf[16 + 160];
    size_t at, tail, start, k;

    test_rng_init();
    for (k = 0; k < sizeof(inserts) / sizeof(inserts[0]); k++) {
        for (start = 0; start < 16; start += 5) {
            for (at = 0; at <= 70; at++) {
                for (tail = 0; tail <= 60; tail += 20) {
                    uint8_t *in = buf + start;
                    size_t len = at + inserts[k].len + tail;
                    long want = -1;
                    int complete = 1;
                    char what[80];

                    if (inserts[k].bad >= 0) {
                        want = (long)at + inserts[k].bad;
                        complete = 0;
                    }
                    /* A lead byte last in the text is cut off, not bad. */
                    if (want >= (long)len) {
                        want = -1;
                    }
                    memset(buf, 'x', sizeof(buf));
                    memcpy(in + at, inserts[k].ins, inserts[k].len);
                    snprintf(what, sizeof(what), "%s at %zu tail %zu",
                             inserts[k].name, at, tail);
                    check_all_splits(in, len, want, complete, what);
                    /* Cut inside the insert: a truncated sequence at the
                     * end of a run. */
                    if (inserts[k].bad < 0) {
                        check_all_splits(in, at + inserts[k].len - 1, -1, 0,
                                         what);
                    }
                }
            }
        }
    }
}
END_TEST

/* Random text, mostly valid multibyte, some with stray bytes and cut
 * ends. */
static size_t random_text(uint8_t *out, size_t max)
{
    size_t target = (size_t)(test_rng() % max), len = 0;
    unsigned noise = (unsigned)(test_rng() % 3) * 2;  /* 0, 2 or 4 in 100 */
    uint32_t cp;

    while (len + 4 <= target) {
        unsigned r = (unsigned)(test_rng() % 100);

        if (r < noise) {
            /* Mostly bytes at the edges of Table 3-7's ranges, after the
             * lead bytes whose second byte is special. */
            static const uint8_t special[] = { 0xE0, 0xED, 0xF0, 0xF4 };

            r = (unsigned)(test_rng() % 4);
            if (r == 0) {
                out[len++] = (uint8_t)test_rng();
            } else if (r == 1) {
                out[len++] = special[test_rng() % 4];
                out[len++] = edges[test_rng() % NEDGES];
            } else {
                out[len++] = edges[test_rng() % NEDGES];
            }
            continue;
        }
        r = (unsigned)(test_rng() % 4);
        if (r == 0) {
            out[len++] = (uint8_t)(test_rng() % 0x80);
        } else if (r == 1) {
            cp = 0x80 + (uint32_t)(test_rng() % (0x800 - 0x80));
            out[len++] = (uint8_t)(0xC0 | cp >> 6);
            out[len++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else if (r == 2) {
            do {
                cp = 0x800 + (uint32_t)(test_rng() % (0x10000 - 0x800));
            } while (noise == 0 && cp >= 0xD800 && cp <= 0xDFFF);
            out[len++] = (uint8_t)(0xE0 | cp >> 12);
            out[len++] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
            out[len++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else {
            cp = 0x10000 + (uint32_t)(test_rng() % (0x110000 - 0x10000));
            out[len++] = (uint8_t)(0xF0 | cp >> 18);
            out[len++] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
            out[len++] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
            out[len++] = (uint8_t)(0x80 | (cp & 0x3F));
        }
    }
    if (len && test_rng() % 4 == 0) {
        len -= 1 + (size_t)(test_rng() % (len < 3 ? len : 3));
    }
    return len;
}

/* The fast validator, the bytewise one and the oracle agree on random text,
 * including where it first goes wrong. */
START_TEST(rfc6455_8_1_random_text_agrees)
{
    static uint8_t buf[1200];
    int round, complete, good = 0, bad_seen = 0, cut = 0;
    size_t len;
    long want;

    test_rng_init();
    for (round = 0; round < 4000; round++) {
        len = random_text(buf, sizeof(buf));
        want = oracle(buf, len, &complete);
        if (want >= 0) {
            bad_seen++;
        } else if (complete) {
            good++;
        } else {
            cut++;
        }
        check_all_splits(buf, len, want, complete, "random text");
    }
    /* Guard against a generator that only exercises one verdict. */
    ck_assert_msg(good > 1000 && bad_seen > 1000 && cut > 200,
                  "valid %d invalid %d cut %d", good, bad_seen, cut);
}
END_TEST

/* A mapping of three pages whose first and last cannot be touched. */
static uint8_t *fence_map(size_t *page)
{
    uint8_t *p;

    *page = (size_t)sysconf(_SC_PAGESIZE);
    p = mmap(NULL, 3 * *page, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(p != MAP_FAILED);
    ck_assert(mprotect(p, *page, PROT_NONE) == 0);
    ck_assert(mprotect(p + 2 * *page, *page, PROT_NONE) == 0);
    return p + *page;
}

/* The caller's buffer ends where its read ended (style: the parser never
 * goes past its end): inputs that end exactly at an unreadable page, or
 * start right after one, must not fault. */
START_TEST(rfc6455_8_1_no_read_past_buffer)
{
    static uint8_t text[1200];
    size_t page, k, len;
    uint8_t *mid = fence_map(&page);
    int round, complete;
    long want;

    test_rng_init();
    for (k = 0; k < NCASES; k++) {
        len = cases[k].len;
        memcpy(mid + page - len, cases[k].in, len);
        check_all_splits(mid + page - len, len, cases[k].bad_at,
                         cases[k].complete, cases[k].name);
        memcpy(mid, cases[k].in, len);
        check_all_splits(mid, len, cases[k].bad_at, cases[k].complete,
                         cases[k].name);
    }
    for (round = 0; round < 300; round++) {
        len = random_text(text, round < 100 ? 40 : sizeof(text));
        if (round % 2) {
            memset(text, 'a', len);   /* all ASCII: the fast path's case */
        }
        want = oracle(text, len, &complete);
        memcpy(mid + page - len, text, len);
        check_all_splits(mid + page - len, len, want, complete, "at end");
        memcpy(mid, text, len);
        check_all_splits(mid, len, want, complete, "at start");
    }
    munmap(mid - page, 3 * page);
}
END_TEST

static Suite *ws_utf8_suite(void)
{
    Suite *s = suite_create("ws_utf8");
    TCase *table = tcase_create("rfc6455_8_1_table");
    TCase *tc = tcase_create("rfc3629");

    tcase_add_loop_test(table, rfc6455_8_1_table_every_split, 0,
                        (int)NCASES);
    suite_add_tcase(s, table);
    tcase_add_test(tc, rfc6455_8_1_failure_sticks);
    tcase_add_test(tc, rfc6455_5_6_empty_chunks);
    tcase_add_test(tc, rfc6455_8_1_feeds_share_state);
    tcase_add_test(tc, rfc3629_3_every_code_point_every_length);
    tcase_add_test(tc, rfc3629_4_every_short_string);
    tcase_add_test(tc, rfc6455_8_1_ascii_runs_bad_byte_everywhere);
    tcase_add_test(tc, rfc6455_8_1_random_text_agrees);
    tcase_add_test(tc, rfc6455_8_1_no_read_past_buffer);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ws_utf8_suite)
