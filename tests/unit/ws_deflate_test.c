/* ws_deflate_test.c: unit tests for ws_deflate.c, the permessage-deflate
 * codec of RFC 7692 §7.2.
 *
 * The inflater must decode every example of §7.2.3 byte for byte, however
 * the payload is cut (whole, a byte at a time, at random splits; placed
 * right before an unreadable page), must stop at the output
 * limit without inflating further, and must call broken streams corrupt.
 * The deflater's output must inflate back at every window size, memory
 * level and level, with and without context takeover, through an inflater
 * with the same window bits. zlib itself serves here only to produce
 * streams the deflater never would (BFINAL blocks, full flushes).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ZLIB_CONST
#include <zlib.h>

#include "ws_deflate.h"
#include "test_util.h"

/* ck_assert() reports every pass to the runner, which the loops below
 * cannot afford; this speaks only on failure. */
#define CHECK(expr, ...)                                          \
    do {                                                          \
        if (!(expr)) {                                            \
            ck_abort_msg(__VA_ARGS__);                            \
        }                                                         \
    } while (0)

#define OK       WS_DEFLATE_OK
#define TOO_BIG  WS_DEFLATE_TOO_BIG
#define CORRUPT  WS_DEFLATE_CORRUPT

#define MIB (1024 * 1024)

/* How a payload is cut into chunks. */
enum { WHOLE, BYTES, RANDOM, NSPLITS };

static const char *split_name[] = { "whole", "bytewise", "random" };

/* The §7.2.3 examples. */
static const uint8_t hello_c[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
static const uint8_t hello_again_c[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };
static const uint8_t hello_stored_c[] = {
    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00
};
static const uint8_t hello_bfinal_c[] = {
    0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00
};
static const uint8_t hello_two_blocks_c[] = {
    0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
    0x00
};
static const uint8_t empty_c[] = { 0x00 };

/* A copy of len bytes that ends right before an unreadable page, so a read
 * past the end faults in every build. Release with unfence(). */
static uint8_t *fence(const uint8_t *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = fence_span(len, page);
    uint8_t *base = mmap(NULL, span + page, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    ck_assert(base != MAP_FAILED);
    ck_assert(mprotect(base + span, page, PROT_NONE) == 0);
    if (len)
        memcpy(base + span - len, p, len);
    return base + span - len;
}

static void unfence(uint8_t *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = fence_span(len, page);

    munmap(p + len - span, span + page);
}

static ws_deflate_buf_t buf_new(size_t max)
{
    ws_deflate_buf_t b = { NULL, 0, 0, max };
    return b;
}

static void buf_free(ws_deflate_buf_t *b)
{
    free(b->data);
    *b = buf_new(b->max);
}

/* Feed one message's payload to inf cut as split says (RANDOM adds an
 * empty chunk now and then, which must change nothing), then finish it.
 * Returns the first result that is not OK, or finish's. */
static ws_deflate_result_e inflate_msg(ws_inflater_t *inf, const uint8_t *p,
                                      size_t len, int split,
                                      ws_deflate_buf_t *out)
{
    uint8_t *in = fence(p, len);
    ws_deflate_result_e r = ws_deflate_inflate_begin(inf);
    size_t pos = 0, n;

    while (r == OK && pos < len) {
        n = split == WHOLE ? len - pos
          : split == BYTES ? 1 : test_rng_len(len - pos);
        if (split == RANDOM && test_rng() % 8 == 0)
            r = ws_deflate_inflate(inf, in + pos, 0, out);
        if (r == OK)
            r = ws_deflate_inflate(inf, in + pos, n, out);
        pos += n;
    }
    if (r == OK)
        r = ws_deflate_inflate_finish(inf, out);
    unfence(in, len);
    return r;
}

/* Inflate a message into a fresh buffer and compare with want. */
static void expect_inflates(ws_inflater_t *inf, const uint8_t *p, size_t len,
                            int split, const void *want, size_t want_len)
{
    ws_deflate_buf_t out = buf_new(SIZE_MAX);
    ws_deflate_result_e r = inflate_msg(inf, p, len, split, &out);

    CHECK(r == OK, "%s: result %d", split_name[split], r);
    CHECK(out.len == want_len, "%s: %zu bytes, want %zu", split_name[split],
          out.len, want_len);
    CHECK(want_len == 0 || memcmp(out.data, want, want_len) == 0,
          "%s: wrong bytes", split_name[split]);
    buf_free(&out);
}

/* A fresh inflater, with and without context takeover, decodes p to want
 * under every split (the random one several times). */
static void expect_inflates_fresh(const uint8_t *p, size_t len,
                                  const char *want)
{
    int split, ctx, i;

    test_rng_init();
    for (ctx = 0; ctx < 2; ctx++) {
        for (split = WHOLE; split < NSPLITS; split++) {
            for (i = 0; i < (split == RANDOM ? 20 : 1); i++) {
                ws_inflater_t *inf = ws_deflate_inflater_create(15, !ctx);

                ck_assert_ptr_nonnull(inf);
                expect_inflates(inf, p, len, split, want, strlen(want));
                ws_deflate_inflater_destroy(inf);
            }
        }
    }
}

/* Compress a message into a fresh buffer; the caller frees it. */
static ws_deflate_buf_t compress_msg(ws_deflater_t *def, const void *p,
                                     size_t len)
{
    ws_deflate_buf_t out = buf_new(SIZE_MAX);

    CHECK(ws_deflate_compress(def, p, len, &out) == OK, "compress failed");
    return out;
}

static void expect_bytes(const ws_deflate_buf_t *b, const uint8_t *want,
                         size_t len)
{
    ck_assert_uint_eq(b->len, len);
    ck_assert_mem_eq(b->data, want, len);
}

/* §7.2.3.1: "Hello" in one frame, and the same payload in two fragments
 * of 3 and 4 bytes. */
START_TEST(inflate_7_2_3_1_hello)
{
    ws_inflater_t *inf = ws_deflate_inflater_create(15, 0);
    ws_deflate_buf_t out = buf_new(SIZE_MAX);

    expect_inflates_fresh(hello_c, sizeof(hello_c), "Hello");
    ck_assert_int_eq(ws_deflate_inflate_begin(inf), OK);
    ck_assert_int_eq(ws_deflate_inflate(inf, hello_c, 3, &out), OK);
    ck_assert_int_eq(ws_deflate_inflate(inf, hello_c + 3, 4, &out), OK);
    ck_assert_int_eq(ws_deflate_inflate_finish(inf, &out), OK);
    expect_bytes(&out, (const uint8_t *)"Hello", 5);
    buf_free(&out);
    ws_deflate_inflater_destroy(inf);
}
END_TEST

/* §7.2.3.2: with context takeover the second "Hello" is a back reference
 * into the first message; without it the window starts empty, so the
 * same payload reaches before the start and is corrupt. */
START_TEST(inflate_7_2_3_2_sharing_the_window)
{
    int split;

    test_rng_init();
    for (split = WHOLE; split < NSPLITS; split++) {
        ws_inflater_t *ctx = ws_deflate_inflater_create(15, 0);
        ws_inflater_t *noctx = ws_deflate_inflater_create(15, 1);
        ws_deflate_buf_t out = buf_new(SIZE_MAX);

        expect_inflates(ctx, hello_c, sizeof(hello_c), split, "Hello", 5);
        expect_inflates(ctx, hello_again_c, sizeof(hello_again_c), split,
                        "Hello", 5);
        expect_inflates(ctx, hello_again_c, sizeof(hello_again_c), split,
                        "Hello", 5);
        expect_inflates(noctx, hello_c, sizeof(hello_c), split, "Hello", 5);
        expect_inflates(noctx, hello_c, sizeof(hello_c), split, "Hello", 5);
        ck_assert_int_eq(inflate_msg(noctx, hello_again_c,
                                     sizeof(hello_again_c), split, &out),
                         CORRUPT);
        buf_free(&out);
        ws_deflate_inflater_destroy(ctx);
        ws_deflate_inflater_destroy(noctx);
    }
}
END_TEST

/* §7.2.3.3: a stored (BTYPE 00) block. */
START_TEST(inflate_7_2_3_3_no_compression)
{
    expect_inflates_fresh(hello_stored_c, sizeof(hello_stored_c), "Hello");
}
END_TEST

/* §7.2.3.4: a block with BFINAL set, then the 0x00 that starts the next
 * block. The final block ends the DEFLATE stream, so the next message is
 * a new stream with an empty window: a fresh "Hello" inflates, a back
 * reference does not; and trim may free the state although the context
 * is taken over, since there is none left. */
START_TEST(inflate_7_2_3_4_bfinal)
{
    size_t idle;
    int split;

    expect_inflates_fresh(hello_bfinal_c, sizeof(hello_bfinal_c), "Hello");
    test_rng_init();
    for (split = WHOLE; split < NSPLITS; split++) {
        ws_inflater_t *inf = ws_deflate_inflater_create(15, 0);
        ws_deflate_buf_t out = buf_new(SIZE_MAX);

        idle = ws_deflate_inflater_memory(inf);
        expect_inflates(inf, hello_bfinal_c, sizeof(hello_bfinal_c), split,
                        "Hello", 5);
        expect_inflates(inf, hello_bfinal_c, sizeof(hello_bfinal_c), split,
                        "Hello", 5);
        ws_deflate_inflater_trim(inf);
        ck_assert_uint_eq(ws_deflate_inflater_memory(inf), idle);
        expect_inflates(inf, hello_c, sizeof(hello_c), split, "Hello", 5);
        expect_inflates(inf, hello_bfinal_c, sizeof(hello_bfinal_c), split,
                        "Hello", 5);
        ck_assert_int_eq(inflate_msg(inf, hello_again_c,
                                     sizeof(hello_again_c), split, &out),
                         CORRUPT);
        buf_free(&out);
        ws_deflate_inflater_destroy(inf);
    }
}
END_TEST

/* §7.2.3.5: two blocks in one message, the first ended by a sync flush. */
START_TEST(inflate_7_2_3_5_two_blocks)
{
    expect_inflates_fresh(hello_two_blocks_c, sizeof(hello_two_blocks_c),
                          "Hello");
}
END_TEST

/* §7.2.3.6: an empty message is the single byte 0x00, with or without
 * context takeover, any number of times, and leaves the window alone. */
START_TEST(inflate_7_2_3_6_empty)
{
    int split, ctx, i;

    expect_inflates_fresh(empty_c, sizeof(empty_c), "");
    test_rng_init();
    for (ctx = 0; ctx < 2; ctx++) {
        for (split = WHOLE; split < NSPLITS; split++) {
            ws_inflater_t *inf = ws_deflate_inflater_create(15, !ctx);

            for (i = 0; i < 3; i++)
                expect_inflates(inf, empty_c, 1, split, "", 0);
            expect_inflates(inf, hello_c, sizeof(hello_c), split, "Hello", 5);
            expect_inflates(inf, empty_c, 1, split, "", 0);
            if (ctx)
                expect_inflates(inf, hello_again_c, sizeof(hello_again_c),
                                split, "Hello", 5);
            ws_deflate_inflater_destroy(inf);
        }
    }
}
END_TEST

/* A message with no payload at all is empty too (§7.2.3.6 would send
 * 0x00), and leaves the window as it was. */
START_TEST(inflate_no_payload_is_an_empty_message)
{
    int split, ctx;

    test_rng_init();
    for (ctx = 0; ctx < 2; ctx++) {
        for (split = WHOLE; split < NSPLITS; split++) {
            ws_inflater_t *inf = ws_deflate_inflater_create(15, !ctx);
            ws_deflate_buf_t out = buf_new(SIZE_MAX);

            expect_inflates(inf, hello_c, sizeof(hello_c), split, "Hello", 5);
            expect_inflates(inf, NULL, 0, split, "", 0);
            ck_assert_int_eq(ws_deflate_inflate_begin(inf), OK);
            ck_assert_int_eq(ws_deflate_inflate(inf, hello_c, 0, &out), OK);
            ck_assert_int_eq(ws_deflate_inflate_finish(inf, &out), OK);
            ck_assert_uint_eq(out.len, 0);
            if (ctx)
                expect_inflates(inf, hello_again_c, sizeof(hello_again_c),
                                split, "Hello", 5);
            else
                expect_inflates(inf, hello_c, sizeof(hello_c), split,
                                "Hello", 5);
            buf_free(&out);
            ws_deflate_inflater_destroy(inf);
        }
    }
}
END_TEST

/* §7.2.3.6: a sender that flushed "Hello" without knowing the message
 * ended (so kept 0x00 0x00 0xff 0xff) ends it with an empty fragment
 * holding 0x00. */
START_TEST(inflate_7_2_3_6_empty_last_fragment)
{
    static const uint8_t flushed[] = {
        0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff
    };
    ws_inflater_t *inf = ws_deflate_inflater_create(15, 0);
    ws_deflate_buf_t out = buf_new(SIZE_MAX);

    ck_assert_int_eq(ws_deflate_inflate_begin(inf), OK);
    ck_assert_int_eq(ws_deflate_inflate(inf, flushed, sizeof(flushed), &out),
                     OK);
    ck_assert_int_eq(ws_deflate_inflate(inf, empty_c, 1, &out), OK);
    ck_assert_int_eq(ws_deflate_inflate_finish(inf, &out), OK);
    expect_bytes(&out, (const uint8_t *)"Hello", 5);
    buf_free(&out);
    ws_deflate_inflater_destroy(inf);
}
END_TEST

/* zlib makes the RFC's bytes for "Hello", so the deflater matches
 * §7.2.3.1, and §7.2.3.2 with context takeover. */
START_TEST(deflate_7_2_3_1_and_2_hello)
{
    ws_deflater_t *ctx = ws_deflate_deflater_create(15, 8, -1, 0);
    ws_deflater_t *noctx = ws_deflate_deflater_create(15, 8, -1, 1);
    ws_deflate_buf_t b;
    int i;

    b = compress_msg(ctx, "Hello", 5);
    expect_bytes(&b, hello_c, sizeof(hello_c));
    buf_free(&b);
    b = compress_msg(ctx, "Hello", 5);
    expect_bytes(&b, hello_again_c, sizeof(hello_again_c));
    buf_free(&b);
    for (i = 0; i < 3; i++) {
        b = compress_msg(noctx, "Hello", 5);
        expect_bytes(&b, hello_c, sizeof(hello_c));
        buf_free(&b);
    }
    ws_deflate_deflater_destroy(ctx);
    ws_deflate_deflater_destroy(noctx);
}
END_TEST

/* Level 0 makes stored blocks: §7.2.3.3's bytes. */
START_TEST(deflate_7_2_3_3_level_0)
{
    ws_deflater_t *def = ws_deflate_deflater_create(15, 8, 0, 0);
    ws_deflate_buf_t b = compress_msg(def, "Hello", 5);

    expect_bytes(&b, hello_stored_c, sizeof(hello_stored_c));
    buf_free(&b);
    ws_deflate_deflater_destroy(def);
}
END_TEST

/* §7.2.3.6: an empty message is 0x00 whether the stream is fresh or
 * flushed (zlib gives nothing in the second case), allocates nothing, and
 * does not disturb the messages around it. */
START_TEST(deflate_7_2_3_6_empty)
{
    int ctx, i;

    for (ctx = 0; ctx < 2; ctx++) {
        ws_deflater_t *def = ws_deflate_deflater_create(15, 8, -1, !ctx);
        ws_inflater_t *inf = ws_deflate_inflater_create(15, !ctx);
        size_t idle = ws_deflate_deflater_memory(def);
        ws_deflate_buf_t b;

        for (i = 0; i < 3; i++) {
            b = compress_msg(def, "", 0);
            expect_bytes(&b, empty_c, 1);
            expect_inflates(inf, b.data, b.len, WHOLE, "", 0);
            buf_free(&b);
        }
        ck_assert_uint_eq(ws_deflate_deflater_memory(def), idle);
        for (i = 0; i < 3; i++) {
            b = compress_msg(def, "Hello", 5);
            expect_inflates(inf, b.data, b.len, WHOLE, "Hello", 5);
            buf_free(&b);
            b = compress_msg(def, NULL, 0);
            expect_bytes(&b, empty_c, 1);
            expect_inflates(inf, b.data, b.len, WHOLE, "", 0);
            buf_free(&b);
        }
        ws_deflate_deflater_destroy(def);
        ws_deflate_inflater_destroy(inf);
    }
}
END_TEST

/* Messages the round trips use: JSON-like text, a long run, noise that
 * does not compress, nothing, and text longer than the largest window with
 * repeats at every distance. */
#define NMSG 6

static size_t make_msg(int which, uint8_t *buf, size_t cap)
{
    size_t len = 0, i;

    switch (which) {
    case 0:
    case 5:
        while (len + 80 < cap && len < (which ? cap : 1024)) {
            len += (size_t)snprintf((char *)buf + len, cap - len,
                                    "{\"id\":%u,\"user\":\"user%u\",\"score\":"
                                    "%u,\"ok\":true},",
                                    (unsigned)(test_rng() % 100000),
                                    (unsigned)(test_rng() % 50),
                                    (unsigned)(test_rng() % 1000));
        }
        return len;
    case 1:
        len = cap < 8192 ? cap : 8192;
        memset(buf, 'a' + (int)(test_rng() % 26), len);
        return len;
    case 2:
        len = 1 + (size_t)(test_rng() % 3000);
        for (i = 0; i < len; i++)
            buf[i] = (uint8_t)test_rng();
        return len;
    case 3:
        return 0;
    default:
        len = 700;
        for (i = 0; i < len; i++)
            buf[i] = (uint8_t)(' ' + test_rng() % 64);
        return len;
    }
}

/* Compress several messages with def and inflate them with inf, cut at
 * random, checking each comes back whole. */
static void round_trip(ws_deflater_t *def, ws_inflater_t *inf, int rounds,
                       const char *what)
{
    static uint8_t msg[48 * 1024];
    ws_deflate_buf_t c = buf_new(SIZE_MAX), out = buf_new(SIZE_MAX);
    ws_deflate_result_e r;
    size_t len;
    int i;

    for (i = 0; i < rounds; i++) {
        len = make_msg(i % NMSG, msg, i % NMSG == 5 ? sizeof(msg) : 8192);
        c.len = 0;
        r = ws_deflate_compress(def, msg, len, &c);
        CHECK(r == OK, "%s: message %d: compress %d", what, i, r);
        out.len = 0;
        r = inflate_msg(inf, c.data, c.len, (i % 4 == 3) ? WHOLE : RANDOM,
                        &out);
        CHECK(r == OK, "%s: message %d: inflate %d", what, i, r);
        CHECK(out.len == len && (len == 0 || !memcmp(out.data, msg, len)),
              "%s: message %d came back different", what, i);
    }
    buf_free(&c);
    buf_free(&out);
}

/* Every window 9..15 and memory level 1..9, levels 0 and 9, with and
 * without context takeover, through an inflater with the deflater's
 * window, as the peer would have. */
START_TEST(round_trip_every_window_and_mem_level)
{
    static const int levels[] = { 0, 9 };
    char what[64];
    int bits, mem, l, ctx;

    test_rng_init();
    for (bits = 9; bits <= 15; bits++)
        for (mem = 1; mem <= 9; mem++)
            for (l = 0; l < 2; l++)
                for (ctx = 0; ctx < 2; ctx++) {
                    ws_deflater_t *def = ws_deflate_deflater_create(
                        bits, mem, levels[l], !ctx);
                    ws_inflater_t *inf = ws_deflate_inflater_create(bits,
                                                                    !ctx);

                    snprintf(what, sizeof(what), "bits %d mem %d level %d "
                             "ctx %d", bits, mem, levels[l], ctx);
                    ck_assert_ptr_nonnull(def);
                    ck_assert_ptr_nonnull(inf);
                    round_trip(def, inf, NMSG, what);
                    ws_deflate_deflater_destroy(def);
                    ws_deflate_inflater_destroy(inf);
                }
}
END_TEST

/* Many messages over one pair, as a long connection sees them, at the
 * default settings and the smallest. */
START_TEST(round_trip_many_messages)
{
    int ctx;

    test_rng_init();
    for (ctx = 0; ctx < 2; ctx++) {
        ws_deflater_t *def = ws_deflate_deflater_create(15, 8, -1, !ctx);
        ws_inflater_t *inf = ws_deflate_inflater_create(15, !ctx);

        round_trip(def, inf, 120, "default");
        ws_deflate_deflater_destroy(def);
        ws_deflate_inflater_destroy(inf);
        def = ws_deflate_deflater_create(9, 1, 1, !ctx);
        inf = ws_deflate_inflater_create(9, !ctx);
        round_trip(def, inf, 120, "smallest");
        ws_deflate_deflater_destroy(def);
        ws_deflate_inflater_destroy(inf);
    }
}
END_TEST

/* Each message inflated a byte at a time, over one context. */
START_TEST(round_trip_bytewise)
{
    ws_deflater_t *def = ws_deflate_deflater_create(15, 8, 6, 0);
    ws_inflater_t *inf = ws_deflate_inflater_create(15, 0);
    uint8_t msg[8192];
    ws_deflate_buf_t c, out = buf_new(SIZE_MAX);
    size_t len;
    int i;

    test_rng_init();
    for (i = 0; i < NMSG - 1; i++) {
        len = make_msg(i, msg, sizeof(msg));
        c = compress_msg(def, msg, len);
        out.len = 0;
        ck_assert_int_eq(inflate_msg(inf, c.data, c.len, BYTES, &out), OK);
        ck_assert_uint_eq(out.len, len);
        CHECK(len == 0 || !memcmp(out.data, msg, len), "message %d", i);
        buf_free(&c);
    }
    buf_free(&out);
    ws_deflate_deflater_destroy(def);
    ws_deflate_inflater_destroy(inf);
}
END_TEST

/* Raw deflate of msg at window bits, sync-flushed, the tail removed. */
static size_t zlib_compress(int bits, const uint8_t *msg, size_t len,
                            uint8_t *out, size_t cap)
{
    z_stream z;

    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -bits, 8,
                                  Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = msg;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_SYNC_FLUSH), Z_OK);
    ck_assert_uint_ne(z.avail_out, 0);
    deflateEnd(&z);
    return cap - z.avail_out - 4;
}

/* A client that agreed to client_max_window_bits=8 compresses with 9 if
 * it uses zlib, and the inflater is given 9. zlib reaches back at most
 * 2^bits - 262 bytes, so our 9-bit deflater's repeat 200 bytes back is
 * found and inflates through a 9-bit inflater. Another sender may use the
 * whole 512 bytes: a stream reaching back 300 (made with 10 bits) inflates
 * with 9 bits and is corrupt with 8, which is why the caller passes at
 * least 9. (Cut a byte at a time: zlib resolves a distance from the output
 * of the same call as well as from its window.) */
START_TEST(round_trip_window_9_for_a_client_that_asked_8)
{
    uint8_t msg[600], near[300], comp[1024];
    uint32_t x = 12345;
    ws_deflater_t *def = ws_deflate_deflater_create(9, 8, 9, 1);
    ws_inflater_t *inf9 = ws_deflate_inflater_create(9, 1);
    ws_inflater_t *inf8 = ws_deflate_inflater_create(8, 1);
    ws_deflate_buf_t c, out = buf_new(SIZE_MAX);
    size_t i, clen;

    /* Fixed noise, so no chance match reaches further than the repeat. */
    for (i = 0; i < 300; i++) {
        x = x * 1103515245u + 12345u;
        msg[i] = (uint8_t)(x >> 16);
    }
    memcpy(msg + 300, msg, 300);
    memcpy(near, msg, 200);
    memcpy(near + 200, msg, 100);
    c = compress_msg(def, near, sizeof(near));
    ck_assert_uint_lt(c.len, 250);   /* the repeat was found */
    expect_inflates(inf9, c.data, c.len, BYTES, near, sizeof(near));
    buf_free(&c);

    clen = zlib_compress(10, msg, sizeof(msg), comp, sizeof(comp));
    ck_assert_uint_lt(clen, 350);    /* so was the one 300 back */
    expect_inflates(inf9, comp, clen, BYTES, msg, sizeof(msg));
    ck_assert_int_eq(inflate_msg(inf8, comp, clen, BYTES, &out), CORRUPT);
    buf_free(&out);
    ws_deflate_deflater_destroy(def);
    ws_deflate_inflater_destroy(inf9);
    ws_deflate_inflater_destroy(inf8);
}
END_TEST

/* A peer whose compressor ends every message with BFINAL (Z_FINISH, then
 * the 0x00 of §7.2.3.4), then full-flushes inside messages, as zlib makes
 * them; the later messages refer back into the earlier ones. */
#define NOTHER 12

START_TEST(inflate_streams_from_other_senders)
{
    static uint8_t msg[NOTHER][4096], comp[NOTHER][8192];
    size_t len[NOTHER], clen[NOTHER], idle;
    z_stream z;
    int i, split;

    test_rng_init();
    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, -15, 8,
                                  Z_DEFAULT_STRATEGY), Z_OK);
    for (i = 0; i < NOTHER; i++) {
        len[i] = make_msg(i % 2 ? 0 : 4, msg[i], sizeof(msg[i]));
        z.next_in = msg[i];
        z.next_out = comp[i];
        z.avail_out = sizeof(comp[i]) - 1;
        if (i < NOTHER / 2) {
            z.avail_in = (uInt)len[i];
            ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
            ck_assert_int_eq(deflateReset(&z), Z_OK);
            *z.next_out = 0x00;
            clen[i] = sizeof(comp[i]) - z.avail_out;
        }
        else {
            z.avail_in = (uInt)(len[i] / 2);
            ck_assert_int_eq(deflate(&z, Z_FULL_FLUSH), Z_OK);
            z.avail_in = (uInt)(len[i] - len[i] / 2);
            ck_assert_int_eq(deflate(&z, Z_SYNC_FLUSH), Z_OK);
            clen[i] = sizeof(comp[i]) - 1 - z.avail_out - 4;
        }
    }
    deflateEnd(&z);
    for (split = WHOLE; split < NSPLITS; split++) {
        ws_inflater_t *inf = ws_deflate_inflater_create(15, 0);

        idle = ws_deflate_inflater_memory(inf);
        for (i = 0; i < NOTHER; i++) {
            expect_inflates(inf, comp[i], clen[i], split, msg[i], len[i]);
            if (i < NOTHER / 2) {
                /* A BFINAL message leaves no window to keep. */
                ws_deflate_inflater_trim(inf);
                ck_assert_uint_eq(ws_deflate_inflater_memory(inf), idle);
            }
        }
        ws_deflate_inflater_destroy(inf);
    }
}
END_TEST

/* The limit is on the output: a message of exactly max bytes inflates,
 * one more byte is too big, the buffer never grows past max, whatever the
 * split, including sizes where the buffer's doubling lands exactly on the
 * message's end. */
START_TEST(inflate_limit_is_exact)
{
    static const size_t sizes[] = { 1, 5, 255, 256, 257, 511, 512, 1024,
                                    4096, 65536, 100000 };
    uint8_t *msg = malloc(100000);
    ws_deflater_t *def = ws_deflate_deflater_create(15, 8, 6, 1);
    ws_inflater_t *inf = ws_deflate_inflater_create(15, 1);
    ws_deflate_buf_t c, out;
    size_t s, i, n;
    int split;

    test_rng_init();
    for (i = 0; i < 100000; i++)
        msg[i] = (uint8_t)('a' + test_rng() % 4);
    for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        n = sizes[s];
        c = compress_msg(def, msg, n);
        for (split = WHOLE; split < NSPLITS; split++) {
            if (split == BYTES && n > 5000)
                continue;
            out = buf_new(n);
            CHECK(inflate_msg(inf, c.data, c.len, split, &out) == OK,
                  "%zu bytes, limit %zu, %s", n, n, split_name[split]);
            CHECK(out.len == n && !memcmp(out.data, msg, n), "%zu bytes", n);
            CHECK(out.cap <= n, "cap %zu over %zu", out.cap, n);
            buf_free(&out);
            out = buf_new(n - 1);
            CHECK(inflate_msg(inf, c.data, c.len, split, &out) == TOO_BIG,
                  "%zu bytes, limit %zu, %s", n, n - 1, split_name[split]);
            CHECK(out.len == n - 1 && out.cap <= n - 1, "%zu bytes held, "
                  "%zu allocated, limit %zu", out.len, out.cap, n - 1);
            buf_free(&out);
        }
        buf_free(&c);
    }
    /* A stored block whose 4 bytes of data are the tail the sender
     * removed: odd, but §7.2.2 inflates it to those 4 bytes, and it ends
     * between blocks. Filling the limit exactly, the last call that finds
     * no input must not make that look like a cut. */
    {
        static const uint8_t odd[] = { 0x00, 0x04, 0x00, 0xfb, 0xff };

        for (n = 4; n <= 5; n++) {
            out = buf_new(n);
            ck_assert_int_eq(inflate_msg(inf, odd, sizeof(odd), WHOLE, &out),
                             OK);
            expect_bytes(&out, (const uint8_t *)"\x00\x00\xff\xff", 4);
            buf_free(&out);
        }
    }
    /* A limit of 0 takes an empty message only. */
    out = buf_new(0);
    ck_assert_int_eq(inflate_msg(inf, empty_c, 1, WHOLE, &out), OK);
    ck_assert_int_eq(inflate_msg(inf, hello_c, sizeof(hello_c), WHOLE, &out),
                     TOO_BIG);
    ck_assert_ptr_null(out.data);
    free(msg);
    ws_deflate_deflater_destroy(def);
    ws_deflate_inflater_destroy(inf);
}
END_TEST

/* 10 MiB of zeros compresses to about 10 KiB. With a 1 MiB limit it stops
 * at 1 MiB, whole or cut, holds no more than that and zlib's state, and
 * stays failed for the rest of the message; the next message is fine. */
START_TEST(inflate_bomb_stops_at_the_limit)
{
    size_t big = 10 * MIB;
    uint8_t *zeros = calloc(1, big);
    ws_deflater_t *def = ws_deflate_deflater_create(15, 9, 9, 1);
    ws_inflater_t *inf = ws_deflate_inflater_create(15, 1);
    ws_deflate_buf_t c, out;
    int split;

    ck_assert_ptr_nonnull(zeros);
    c = compress_msg(def, zeros, big);
    ck_assert_uint_lt(c.len, 16 * 1024);
    test_rng_init();
    for (split = WHOLE; split < NSPLITS; split++) {
        if (split == BYTES)
            continue;
        out = buf_new(MIB);
        ck_assert_int_eq(inflate_msg(inf, c.data, c.len, split, &out),
                         TOO_BIG);
        ck_assert_uint_eq(out.len, MIB);
        ck_assert_uint_le(out.cap, MIB);
        ck_assert_uint_lt(ws_deflate_inflater_memory(inf), 64 * 1024);
        ck_assert_int_eq(ws_deflate_inflate(inf, c.data, c.len, &out),
                         TOO_BIG);
        ck_assert_int_eq(ws_deflate_inflate_finish(inf, &out), TOO_BIG);
        ck_assert_uint_eq(out.len, MIB);
        buf_free(&out);
        expect_inflates(inf, hello_c, sizeof(hello_c), split, "Hello", 5);
    }
    /* A byte at a time, the probe for one more byte costs no more. */
    out = buf_new(64 * 1024);
    ck_assert_int_eq(inflate_msg(inf, c.data, c.len, BYTES, &out), TOO_BIG);
    ck_assert_uint_eq(out.len, 64 * 1024);
    ck_assert_uint_le(out.cap, 64 * 1024);
    buf_free(&out);
    buf_free(&c);
    free(zeros);
    ws_deflate_deflater_destroy(def);
    ws_deflate_inflater_destroy(inf);
}
END_TEST

/* Broken payloads are corrupt however they are cut, and stay so until the
 * next begin. */
START_TEST(inflate_corrupt)
{
    static const struct {
        const char *name;
        uint8_t bytes[16];
        size_t len;
    } cases[] = {
        { "reserved block type 11", { 0x06 }, 1 },
        { "garbage", { 0xff, 0xff, 0xff, 0xff }, 4 },
        { "stored block with bad NLEN",
          { 0x00, 0x05, 0x00, 0x05, 0x00, 'H', 'e', 'l', 'l', 'o', 0x00 },
          11 },
        { "distance before the start", { 0xf2, 0x00, 0x11, 0x00, 0x00 }, 5 },
        { "cut inside a block", { 0xf2, 0x48, 0xcd }, 3 },
        { "sync flush tail not removed",
          { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff,
            0xff }, 11 },
        { "garbage after a BFINAL block",
          { 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff, 0xff }, 9 },
        { "BFINAL block without the 0x00 of 7.2.3.4",
          { 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 }, 7 },
    };
    size_t i;
    int split, ctx;

    test_rng_init();
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (ctx = 0; ctx < 2; ctx++)
            for (split = WHOLE; split < NSPLITS; split++) {
                ws_inflater_t *inf = ws_deflate_inflater_create(15, !ctx);
                ws_deflate_buf_t out = buf_new(SIZE_MAX);
                ws_deflate_result_e r;

                r = inflate_msg(inf, cases[i].bytes, cases[i].len, split,
                                &out);
                CHECK(r == CORRUPT, "%s, %s: %d", cases[i].name,
                      split_name[split], r);
                CHECK(ws_deflate_inflate(inf, hello_c, sizeof(hello_c),
                                         &out) == CORRUPT, "%s: not sticky",
                      cases[i].name);
                CHECK(ws_deflate_inflate_finish(inf, &out) == CORRUPT,
                      "%s: not sticky", cases[i].name);
                /* begin starts over: an inflater shared between
                 * connections without context takeover survives one
                 * bad message. */
                expect_inflates(inf, hello_c, sizeof(hello_c), split,
                                "Hello", 5);
                buf_free(&out);
                ws_deflate_inflater_destroy(inf);
            }
}
END_TEST

/* Without context takeover one inflater serves messages of several
 * peers in turn. */
START_TEST(inflate_shared_between_connections)
{
    ws_deflater_t *a = ws_deflate_deflater_create(15, 8, 6, 1);
    ws_deflater_t *b = ws_deflate_deflater_create(12, 4, 1, 1);
    ws_inflater_t *inf = ws_deflate_inflater_create(15, 1);
    uint8_t msg[8192];
    ws_deflate_buf_t c;
    size_t len;
    int i;

    test_rng_init();
    for (i = 0; i < 20; i++) {
        len = make_msg(i % NMSG == 5 ? 0 : i % NMSG, msg, sizeof(msg));
        c = compress_msg(i % 2 ? a : b, msg, len);
        expect_inflates(inf, c.data, c.len, RANDOM, msg, len);
        buf_free(&c);
    }
    ws_deflate_deflater_destroy(a);
    ws_deflate_deflater_destroy(b);
    ws_deflate_inflater_destroy(inf);
}
END_TEST

/* Without context takeover the output depends on the message alone, so
 * a broadcast compressed once suits every connection. */
START_TEST(deflate_without_context_takeover_is_independent)
{
    ws_deflater_t *def = ws_deflate_deflater_create(15, 8, 6, 1);
    uint8_t msg[4096];
    ws_deflate_buf_t first, other, again;
    size_t len;

    test_rng_init();
    len = make_msg(0, msg, sizeof(msg));
    first = compress_msg(def, msg, len);
    other = compress_msg(def, "something else entirely", 23);
    again = compress_msg(def, msg, len);
    ck_assert_uint_eq(first.len, again.len);
    ck_assert_mem_eq(first.data, again.data, first.len);
    buf_free(&first);
    buf_free(&other);
    buf_free(&again);
    ws_deflate_deflater_destroy(def);
}
END_TEST

/* Output is appended; a limit too small for it is too big, leaves the
 * buffer as it was, and the deflater usable. */
START_TEST(deflate_appends_and_respects_max)
{
    ws_deflater_t *def = ws_deflate_deflater_create(15, 8, 6, 1);
    ws_inflater_t *inf = ws_deflate_inflater_create(15, 1);
    uint8_t noise[2000];
    ws_deflate_buf_t out = buf_new(SIZE_MAX), small = buf_new(3);
    size_t i;

    ck_assert_int_eq(ws_deflate_compress(def, "Hello", 5, &out), OK);
    ck_assert_int_eq(ws_deflate_compress(def, "Hello", 5, &out), OK);
    ck_assert_uint_eq(out.len, 2 * sizeof(hello_c));
    ck_assert_mem_eq(out.data, hello_c, sizeof(hello_c));
    ck_assert_mem_eq(out.data + sizeof(hello_c), hello_c, sizeof(hello_c));
    ck_assert_int_eq(ws_deflate_compress(def, "Hello", 5, &small), TOO_BIG);
    ck_assert_uint_eq(small.len, 0);
    /* Noise grows a little when compressed. */
    test_rng_init();
    for (i = 0; i < sizeof(noise); i++)
        noise[i] = (uint8_t)test_rng();
    buf_free(&out);
    out.max = sizeof(noise);
    ck_assert_int_eq(ws_deflate_compress(def, noise, sizeof(noise), &out),
                     TOO_BIG);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_uint_le(out.cap, sizeof(noise));
    out.max = SIZE_MAX;
    ck_assert_int_eq(ws_deflate_compress(def, noise, sizeof(noise), &out),
                     OK);
    expect_inflates(inf, out.data, out.len, RANDOM, noise, sizeof(noise));
    buf_free(&out);
    buf_free(&small);
    ws_deflate_deflater_destroy(def);
    ws_deflate_inflater_destroy(inf);
}
END_TEST

/* zlib's state comes at the first message and, without context takeover,
 * goes with trim; with it, trim keeps what the peer counts on. What is
 * counted is at least what zlib.h's formulas say. */
START_TEST(inflater_memory_is_lazy_and_trimmed)
{
    int bits, ctx;

    for (bits = 8; bits <= 15; bits++)
        for (ctx = 0; ctx < 2; ctx++) {
            ws_inflater_t *inf = ws_deflate_inflater_create(bits, !ctx);
            size_t idle = ws_deflate_inflater_memory(inf), busy;

            ws_deflate_buf_t out = buf_new(SIZE_MAX);

            ck_assert_uint_lt(idle, 256);
            ck_assert_int_eq(ws_deflate_inflate_begin(inf), OK);
            ck_assert_uint_gt(ws_deflate_inflater_memory(inf), idle + 7000);
            /* Nothing is freed mid-message. */
            ws_deflate_inflater_trim(inf);
            ck_assert_uint_gt(ws_deflate_inflater_memory(inf), idle + 7000);
            ck_assert_int_eq(ws_deflate_inflate(inf, hello_c,
                                                sizeof(hello_c), &out), OK);
            ck_assert_int_eq(ws_deflate_inflate_finish(inf, &out), OK);
            expect_bytes(&out, (const uint8_t *)"Hello", 5);
            buf_free(&out);
            busy = ws_deflate_inflater_memory(inf);
            ck_assert_uint_ge(busy, idle + 7000 + (1u << bits));
            ws_deflate_inflater_trim(inf);
            ck_assert_uint_eq(ws_deflate_inflater_memory(inf),
                              ctx ? busy : idle);
            expect_inflates(inf, ctx ? hello_again_c : hello_c,
                            ctx ? sizeof(hello_again_c) : sizeof(hello_c),
                            WHOLE, "Hello", 5);
            ws_deflate_inflater_destroy(inf);
        }
}
END_TEST

START_TEST(deflater_memory_is_lazy_and_trimmed)
{
    int bits, mem, ctx;

    for (bits = 9; bits <= 15; bits++)
        for (mem = 1; mem <= 9; mem++)
            for (ctx = 0; ctx < 2; ctx++) {
                ws_deflater_t *def = ws_deflate_deflater_create(bits, mem, 6,
                                                                !ctx);
                size_t idle = ws_deflate_deflater_memory(def), busy;
                ws_deflate_buf_t b;

                ck_assert_uint_lt(idle, 256);
                b = compress_msg(def, "Hello", 5);
                buf_free(&b);
                busy = ws_deflate_deflater_memory(def);
                ck_assert_uint_ge(busy, idle + (1u << (bits + 2))
                                            + (1u << (mem + 9)));
                ws_deflate_deflater_trim(def);
                ck_assert_uint_eq(ws_deflate_deflater_memory(def),
                                  ctx ? busy : idle);
                b = compress_msg(def, "Hello", 5);
                expect_bytes(&b, ctx ? hello_again_c : hello_c,
                             ctx ? sizeof(hello_again_c) : sizeof(hello_c));
                buf_free(&b);
                ws_deflate_deflater_destroy(def);
            }
}
END_TEST

START_TEST(create_rejects_out_of_range)
{
    ck_assert_ptr_null(ws_deflate_inflater_create(7, 0));
    ck_assert_ptr_null(ws_deflate_inflater_create(16, 0));
    ck_assert_ptr_null(ws_deflate_deflater_create(8, 8, 6, 0));
    ck_assert_ptr_null(ws_deflate_deflater_create(16, 8, 6, 0));
    ck_assert_ptr_null(ws_deflate_deflater_create(15, 0, 6, 0));
    ck_assert_ptr_null(ws_deflate_deflater_create(15, 10, 6, 0));
    ck_assert_ptr_null(ws_deflate_deflater_create(15, 8, -2, 0));
    ck_assert_ptr_null(ws_deflate_deflater_create(15, 8, 10, 0));
    ws_deflate_inflater_destroy(NULL);
    ws_deflate_deflater_destroy(NULL);
}
END_TEST

static Suite *ws_deflate_suite(void)
{
    Suite *s = suite_create("ws_deflate");
    TCase *tc;

    tc = tcase_create("rfc7692_examples");
    tcase_add_test(tc, inflate_7_2_3_1_hello);
    tcase_add_test(tc, inflate_7_2_3_2_sharing_the_window);
    tcase_add_test(tc, inflate_7_2_3_3_no_compression);
    tcase_add_test(tc, inflate_7_2_3_4_bfinal);
    tcase_add_test(tc, inflate_7_2_3_5_two_blocks);
    tcase_add_test(tc, inflate_7_2_3_6_empty);
    tcase_add_test(tc, inflate_7_2_3_6_empty_last_fragment);
    tcase_add_test(tc, inflate_no_payload_is_an_empty_message);
    tcase_add_test(tc, deflate_7_2_3_1_and_2_hello);
    tcase_add_test(tc, deflate_7_2_3_3_level_0);
    tcase_add_test(tc, deflate_7_2_3_6_empty);
    suite_add_tcase(s, tc);

    tc = tcase_create("round_trips");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, round_trip_every_window_and_mem_level);
    tcase_add_test(tc, round_trip_many_messages);
    tcase_add_test(tc, round_trip_bytewise);
    tcase_add_test(tc, round_trip_window_9_for_a_client_that_asked_8);
    tcase_add_test(tc, inflate_streams_from_other_senders);
    tcase_add_test(tc, inflate_shared_between_connections);
    tcase_add_test(tc, deflate_without_context_takeover_is_independent);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits_and_errors");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, inflate_limit_is_exact);
    tcase_add_test(tc, inflate_bomb_stops_at_the_limit);
    tcase_add_test(tc, inflate_corrupt);
    tcase_add_test(tc, deflate_appends_and_respects_max);
    tcase_add_test(tc, create_rejects_out_of_range);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_add_test(tc, inflater_memory_is_lazy_and_trimmed);
    tcase_add_test(tc, deflater_memory_is_lazy_and_trimmed);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ws_deflate_suite)
