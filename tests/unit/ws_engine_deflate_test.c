/* ws_engine_deflate_test.c: permessage-deflate in the engine (RFC 7692):
 * RSV1 rules, compressed messages in, fragmented and interleaved with
 * control frames, at every split; limits on inflated bytes (bombs);
 * corrupt data and bad UTF-8 after inflating; compressed messages out. */
#include <stdio.h>

#include "engine_harness.h"
#include "ws_deflate.h"

/* §7.2.3.1: "Hello" compressed, without and with context takeover
 * (§7.2.3.2: the second "Hello" refers back to the first). */
static const uint8_t hello[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
static const uint8_t hello_again[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };

static ws_engine_deflate_t pmd;

static void pmd_setup(void)
{
    setup();
    memset(&pmd, 0, sizeof(pmd));
    pmd.inflate_window_bits = 15;
    pmd.deflate_window_bits = 15;
    pmd.deflate_mem_level = 8;
    pmd.deflate_level = 6;
    harness_deflate = &pmd;
}

static void assert_message(const rec_t *r, uint8_t opcode, const char *text)
{
    ck_assert_int_eq(r->type, WS_EVENT_MESSAGE);
    ck_assert_int_eq(r->opcode, opcode);
    ck_assert_uint_eq(r->len, strlen(text));
    ck_assert_mem_eq(r->data, text, strlen(text));
}

static void assert_error(const rec_t *r, uint16_t code)
{
    ck_assert_int_eq(r->type, WS_EVENT_ERROR);
    ck_assert_uint_eq(r->code, code);
}

/* Compress with a deflater of our own, as a client would. */
static size_t compress(const void *data, size_t len, uint8_t *buf,
                       size_t cap)
{
    ws_deflater_t *d = ws_deflate_deflater_create(15, 8, 6, 1);
    ws_deflate_buf_t o = { NULL, 0, 0, SIZE_MAX };

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(ws_deflate_compress(d, data, len, &o), WS_DEFLATE_OK);
    ck_assert_uint_le(o.len, cap);
    memcpy(buf, o.data, o.len);
    free(o.data);
    ws_deflate_deflater_destroy(d);
    return o.len;
}

START_TEST(rfc7692_7_2_3_1_hello)
{
    uint64_t wire_in, wire_out;
    ws_engine_t *e;
    log_t log;

    put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, hello, sizeof(hello));
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    assert_message(&log.ev[0], WS_OP_TEXT, "Hello");
    /* The connection's log line counts what came over the wire too. */
    ws_engine_wire_bytes(e, &wire_in, &wire_out);
    ck_assert_uint_eq(wire_in, sizeof(hello));
    ck_assert_uint_eq(wire_out, 0);
    ws_engine_destroy(e);
}
END_TEST

/* §7.2.3.1's fragmented form, with a ping between the fragments (§5.4). */
START_TEST(rfc7692_fragmented_with_ping_between)
{
    log_t log;

    put_frame(&in, 0, WS_RSV1, WS_OP_TEXT, hello, 3);
    put_frame(&in, 1, 0, WS_OP_PING, "p", 1);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, hello + 3, sizeof(hello) - 3);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_PING);
    assert_message(&log.ev[1], WS_OP_TEXT, "Hello");
}
END_TEST

START_TEST(rfc7692_7_2_3_2_context_takeover)
{
    log_t log;

    put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, hello, sizeof(hello));
    put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, hello_again,
              sizeof(hello_again));
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 2);
    assert_message(&log.ev[0], WS_OP_TEXT, "Hello");
    assert_message(&log.ev[1], WS_OP_TEXT, "Hello");
}
END_TEST

/* An uncompressed message between compressed ones, and empty compressed
 * messages (§7.2.3.6), with and without context takeover. */
START_TEST(rfc7692_mixed_and_empty)
{
    static const uint8_t empty[] = { 0x00 };
    log_t log;
    int no_context;

    for (no_context = 0; no_context < 2; no_context++) {
        memset(&in, 0, sizeof(in));
        pmd.inflate_no_context = no_context;
        put_frame(&in, 1, WS_RSV1, WS_OP_BINARY, empty, 1);
        put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, hello, sizeof(hello));
        put_frame(&in, 1, 0, WS_OP_TEXT, "plain", 5);
        put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, empty, 1);
        put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, hello, sizeof(hello));
        feed_modes(&cfg, &in, &log, NULL);
        ck_assert_int_eq(log.n, 5);
        assert_message(&log.ev[0], WS_OP_BINARY, "");
        assert_message(&log.ev[1], WS_OP_TEXT, "Hello");
        assert_message(&log.ev[2], WS_OP_TEXT, "plain");
        assert_message(&log.ev[3], WS_OP_TEXT, "");
        assert_message(&log.ev[4], WS_OP_TEXT, "Hello");
    }
}
END_TEST

/* §6.1 / RFC 6455 §5.2: RSV1 only on the first frame of a data message,
 * and only once negotiated. */
START_TEST(rfc7692_rsv1_rules)
{
    log_t log;

    put_frame(&in, 0, WS_RSV1, WS_OP_TEXT, hello, 3);
    put_frame(&in, 1, WS_RSV1, WS_OP_CONTINUATION, hello + 3, 4);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    assert_error(&log.ev[0], WS_CLOSE_PROTOCOL_ERROR);

    memset(&in, 0, sizeof(in));
    put_frame(&in, 1, WS_RSV1, WS_OP_PING, "", 0);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    assert_error(&log.ev[0], WS_CLOSE_PROTOCOL_ERROR);

    harness_deflate = NULL;
    memset(&in, 0, sizeof(in));
    put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, hello, sizeof(hello));
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    assert_error(&log.ev[0], WS_CLOSE_PROTOCOL_ERROR);
}
END_TEST

START_TEST(rfc7692_corrupt_is_1007)
{
    static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x00 };
    log_t log;

    put_frame(&in, 1, WS_RSV1, WS_OP_BINARY, junk, sizeof(junk));
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    assert_error(&log.ev[0], WS_CLOSE_INVALID_DATA);
}
END_TEST

/* Text is checked after inflating: bad UTF-8 inside compressed text is
 * 1007, and the same bytes as binary are fine. */
START_TEST(rfc7692_utf8_after_inflating)
{
    static const uint8_t bad[] = { 'o', 'k', 0xc3, 0x28 };
    uint8_t z[64];
    size_t n = compress(bad, sizeof(bad), z, sizeof(z));
    log_t log;

    put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, z, n);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    assert_error(&log.ev[0], WS_CLOSE_INVALID_DATA);

    memset(&in, 0, sizeof(in));
    put_frame(&in, 1, WS_RSV1, WS_OP_BINARY, z, n);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_MESSAGE);
    ck_assert_uint_eq(log.ev[0].len, sizeof(bad));
}
END_TEST

/* Text that is bad UTF-8 before the message grows past the limit is 1007
 * at every split: what came out is checked before the codec's verdict, as
 * where zlib stops depends on how the input was cut (found by fuzz_engine). */
START_TEST(rfc7692_utf8_checked_before_limit)
{
    static const uint8_t text[] = { 0xff, 'a', 'b', 'c', 'd', 'e' };
    uint8_t z[64];
    size_t n = compress(text, sizeof(text), z, sizeof(z));
    log_t log;

    cfg.max_message_size = 3;
    put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, z, n);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    assert_error(&log.ev[0], WS_CLOSE_INVALID_DATA);
}
END_TEST

/* The message limit counts inflated bytes: exactly the limit passes, one
 * more is 1009. */
START_TEST(rfc7692_limit_counts_inflated_bytes)
{
    static uint8_t text[5000];
    uint8_t z[512];
    size_t n;
    log_t log;

    memset(text, 'a', sizeof(text));
    cfg.max_message_size = 4999;
    n = compress(text, 4999, z, sizeof(z));
    put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, z, n);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_MESSAGE);
    ck_assert_uint_eq(log.ev[0].len, 4999);

    memset(&in, 0, sizeof(in));
    n = compress(text, 5000, z, sizeof(z));
    put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, z, n);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    assert_error(&log.ev[0], WS_CLOSE_TOO_BIG);
}
END_TEST

/* A bomb: 64 MiB of zeros in about 64 KiB, against a 1 MiB limit. The
 * engine refuses it with 1009 and never holds more than the limit. */
START_TEST(rfc7692_bomb)
{
    size_t big = 64u << 20, n;
    uint8_t *zeros = calloc(1, big);
    ws_deflater_t *d = ws_deflate_deflater_create(15, 8, 9, 1);
    ws_deflate_buf_t o = { NULL, 0, 0, SIZE_MAX };
    ws_engine_t *e;
    ws_event_t ev;
    size_t used, off = 0, peak = 0;
    ws_event_type_e t = WS_EVENT_NONE;
    static wire_t bomb;

    ck_assert_ptr_nonnull(zeros);
    ck_assert_int_eq(ws_deflate_compress(d, zeros, big, &o), WS_DEFLATE_OK);
    free(zeros);
    ws_deflate_deflater_destroy(d);
    n = o.len;
    printf("bomb: %zu bytes inflate to %zu\n", n, big);
    memset(&bomb, 0, sizeof(bomb));
    put_frame(&bomb, 1, WS_RSV1, WS_OP_BINARY, o.data, n);
    free(o.data);
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_set_deflate(e, &pmd), 0);
    /* 1 KiB at a time, watching the engine's memory. */
    while (off < bomb.len && t == WS_EVENT_NONE) {
        size_t piece = bomb.len - off < 1024 ? bomb.len - off : 1024;

        t = ws_engine_feed(e, bomb.buf + off, piece, &used, 0, &ev);
        off += used;
        if (ws_engine_memory(e) > peak)
            peak = ws_engine_memory(e);
    }
    ck_assert_int_eq(t, WS_EVENT_ERROR);
    ck_assert_uint_eq(ev.code, WS_CLOSE_TOO_BIG);
    printf("bomb: refused after %zu of %zu bytes, engine peak %zu bytes\n",
           off, bomb.len, peak);
    ck_assert_uint_le(peak, cfg.max_message_size + 64 * 1024);
    ws_engine_destroy(e);
}
END_TEST

/* Limits on what arrives compressed too: a frame larger than the frame
 * limit is 1009 from its header (8 bytes), before any of it is
 * inflated. */
START_TEST(rfc7692_frame_limit_counts_wire_bytes)
{
    static uint8_t big[2000];
    log_t log;

    cfg.max_frame_size = 1000;
    put_frame(&in, 1, WS_RSV1, WS_OP_BINARY, big, sizeof(big));
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    assert_error(&log.ev[0], WS_CLOSE_TOO_BIG);
    ck_assert_uint_eq(log.ev[0].offset, 8);
}
END_TEST

/* Without context takeover an idle connection holds no zlib state once a
 * message has been handed out. */
START_TEST(rfc7692_no_context_holds_nothing_idle)
{
    ws_engine_t *e;
    log_t log;
    size_t idle;

    pmd.inflate_no_context = 1;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_set_deflate(e, &pmd), 0);
    idle = ws_engine_memory(e);
    put_frame(&in, 1, WS_RSV1, WS_OP_TEXT, hello, sizeof(hello));
    memset(&log, 0, sizeof(log));
    feed(e, in.buf, in.len, SPLIT_WHOLE, 0, &log);
    assert_message(&log.ev[0], WS_OP_TEXT, "Hello");
    feed(e, NULL, 0, SPLIT_WHOLE, 0, &log);
    printf("deflate engine: %zu bytes idle, %zu after a message\n", idle,
           ws_engine_memory(e));
    ck_assert_uint_le(ws_engine_memory(e), idle + 4096);
    ws_engine_destroy(e);
}
END_TEST

/* Out: at least min_size bytes go compressed with RSV1 on the first frame
 * only, smaller ones as they are; what goes out inflates back. */
START_TEST(rfc7692_send_compressed)
{
    static char text[3000];
    ws_inflater_t *inf = ws_deflate_inflater_create(15, 0);
    ws_deflate_buf_t o = { NULL, 0, 0, SIZE_MAX };
    ws_engine_t *e;
    size_t i;

    for (i = 0; i < sizeof(text); i++)
        text[i] = "{\"tick\":123,\"price\":45.6}"[i % 26];
    pmd.min_size = 100;
    cfg.fragment_size = 40;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_set_deflate(e, &pmd), 0);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "small", 5, 0),
                     WS_SEND_QUEUED);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, text, sizeof(text), 0),
                     WS_SEND_QUEUED);
    drain(e, 7);
    parse_output();
    ck_assert_int_ge(out.n, 3);
    ck_assert_int_eq(out.f[0].rsv, 0);
    ck_assert_uint_eq(out.f[0].len, 5);
    ck_assert_int_eq(out.f[1].rsv, WS_RSV1);
    ck_assert_int_eq(out.f[1].opcode, WS_OP_TEXT);
    ck_assert_int_eq(ws_deflate_inflate_begin(inf), WS_DEFLATE_OK);
    for (i = 1; i < (size_t)out.n; i++) {
        if (i > 1) {
            ck_assert_int_eq(out.f[i].rsv, 0);
            ck_assert_int_eq(out.f[i].opcode, WS_OP_CONTINUATION);
        }
        ck_assert_uint_le(out.f[i].len, 40);
        ck_assert_int_eq(ws_deflate_inflate(inf, out.f[i].data, out.f[i].len,
                                            &o), WS_DEFLATE_OK);
    }
    ck_assert(out.f[out.n - 1].fin);
    ck_assert_int_eq(ws_deflate_inflate_finish(inf, &o), WS_DEFLATE_OK);
    ck_assert_uint_eq(o.len, sizeof(text));
    ck_assert_mem_eq(o.data, text, sizeof(text));
    /* Message bytes count before compression, wire bytes as sent. */
    {
        uint64_t msgs, bytes, wire_in, wire_out, payload = 0;

        ws_engine_sent(e, &msgs, &bytes);
        ws_engine_wire_bytes(e, &wire_in, &wire_out);
        for (i = 0; i < (size_t)out.n; i++)
            payload += out.f[i].len;
        ck_assert_uint_eq(msgs, 2);
        ck_assert_uint_eq(bytes, 5 + sizeof(text));
        ck_assert_uint_eq(wire_out, payload);
        ck_assert_uint_lt(wire_out, bytes / 5);
    }
    printf("3000-byte JSON-like message sent as %zu compressed bytes\n",
           (size_t)(out.n - 1) * 40);
    free(o.data);
    ws_deflate_inflater_destroy(inf);
    ws_engine_destroy(e);
}
END_TEST

static int lent;

static ws_deflater_t *lend(void *ctx)
{
    lent++;
    return ctx;
}

/* Without context takeover the engine compresses with a lent compressor
 * when there is one, and each message stands alone. */
START_TEST(rfc7692_send_with_lent_compressor)
{
    ws_deflater_t *shared = ws_deflate_deflater_create(15, 8, 6, 1);
    ws_engine_t *e;
    ws_deflate_buf_t o = { NULL, 0, 0, SIZE_MAX };
    int i;

    pmd.deflate_no_context = 1;
    pmd.borrow_deflater = lend;
    pmd.borrow_ctx = shared;
    lent = 0;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_set_deflate(e, &pmd), 0);
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "Hello", 5, 0),
                         WS_SEND_QUEUED);
    ck_assert_int_eq(lent, 2);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 2);
    for (i = 0; i < 2; i++) {
        ws_inflater_t *inf = ws_deflate_inflater_create(15, 1);

        ck_assert_int_eq(out.f[i].rsv, WS_RSV1);
        ck_assert_int_eq(ws_deflate_inflate_begin(inf), WS_DEFLATE_OK);
        o.len = 0;
        ck_assert_int_eq(ws_deflate_inflate(inf, out.f[i].data, out.f[i].len,
                                            &o), WS_DEFLATE_OK);
        ck_assert_int_eq(ws_deflate_inflate_finish(inf, &o), WS_DEFLATE_OK);
        ck_assert_uint_eq(o.len, 5);
        ck_assert_mem_eq(o.data, "Hello", 5);
        ws_deflate_inflater_destroy(inf);
    }
    free(o.data);
    ws_engine_destroy(e);
    ws_deflate_deflater_destroy(shared);
}
END_TEST

/* A full queue refuses before compressing (the client's window must not
 * see a message that is never sent). */
START_TEST(rfc7692_send_refused_before_compressing)
{
    ws_engine_t *e;

    cfg.queue_cap = 10;
    pmd.deflate_no_context = 1;
    pmd.borrow_deflater = lend;
    pmd.borrow_ctx = NULL;
    lent = 0;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_set_deflate(e, &pmd), 0);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "0123456789abc", 13, 0),
                     WS_SEND_REFUSED);
    ck_assert_int_eq(lent, 0);
    ws_engine_destroy(e);
}
END_TEST

/* Inflate what one engine sent as a single message, and check it is text
 * and compressed. */
static void assert_sent_compressed(const char *text, size_t len)
{
    ws_inflater_t *inf = ws_deflate_inflater_create(15, 1);
    ws_deflate_buf_t o = { NULL, 0, 0, SIZE_MAX };

    parse_output();
    ck_assert_int_eq(out.n, 1);
    ck_assert_int_eq(out.f[0].rsv, WS_RSV1);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_TEXT);
    ck_assert_uint_le(out.f[0].len, sizeof(out.f[0].data));
    ck_assert_int_eq(ws_deflate_inflate_begin(inf), WS_DEFLATE_OK);
    ck_assert_int_eq(ws_deflate_inflate(inf, out.f[0].data, out.f[0].len,
                                        &o), WS_DEFLATE_OK);
    ck_assert_int_eq(ws_deflate_inflate_finish(inf, &o), WS_DEFLATE_OK);
    ck_assert_uint_eq(o.len, len);
    ck_assert_mem_eq(o.data, text, len);
    free(o.data);
    ws_deflate_inflater_destroy(inf);
}

/* A message is admitted on its uncompressed size: data that does not
 * compress is queued even when zlib makes it larger than what was left,
 * since with context takeover the compressor has already moved on; the
 * queue then takes nothing more until it drains, and what went out
 * inflates to what was sent. */
START_TEST(rfc7692_send_admitted_on_uncompressed_size)
{
    static const char noise[] = "q7#Zx!2mP@9w";
    ws_engine_t *e;

    cfg.queue_cap = sizeof(noise) - 1;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_set_deflate(e, &pmd), 0);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, noise, sizeof(noise) - 1,
                                    0), WS_SEND_QUEUED);
    ck_assert_uint_gt(ws_engine_buffered(e), cfg.queue_cap);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "", 0, 0),
                     WS_SEND_REFUSED);
    drain(e, 5);
    ck_assert_uint_eq(ws_engine_buffered(e), 0);
    assert_sent_compressed(noise, sizeof(noise) - 1);
    ws_engine_destroy(e);
}
END_TEST

/* One shared message sent to several connections without context
 * takeover is compressed once per set of parameters: the first engine
 * compresses and keeps the result on the message, the next with the same
 * parameters sends those very bytes without compressing; one with another
 * level compresses for itself, and one with context takeover never uses
 * the shared form (its window must see every message). */
START_TEST(rfc7692_shared_message_compressed_once)
{
    static char text[3000];
    static uint8_t first[1024];
    ws_deflater_t *lender = ws_deflate_deflater_create(15, 8, 6, 1);
    ws_engine_deflate_t other;
    ws_engine_t *e;
    ws_msg_t *msg;
    size_t i, first_len;

    for (i = 0; i < sizeof(text); i++)
        text[i] = "{\"tick\":123,\"price\":45.6}"[i % 26];
    msg = ws_msg_create(WS_OP_TEXT, text, sizeof(text));
    pmd.deflate_no_context = 1;
    pmd.borrow_deflater = lend;
    pmd.borrow_ctx = lender;
    lent = 0;
    for (i = 0; i < 3; i++) {
        e = ws_engine_create(&cfg, 0);
        ck_assert_int_eq(ws_engine_set_deflate(e, &pmd), 0);
        ck_assert_int_eq(ws_engine_send_msg(e, msg, 0), WS_SEND_QUEUED);
        memset(&out, 0, sizeof(out));
        drain(e, 0);
        assert_sent_compressed(text, sizeof(text));
        if (i == 0) {
            ck_assert_uint_le(out.len, sizeof(first));
            memcpy(first, out.bytes, out.len);
            first_len = out.len;
        }
        else {
            ck_assert_uint_eq(out.len, first_len);
            ck_assert_mem_eq(out.bytes, first, first_len);
        }
        ws_engine_destroy(e);
    }
    ck_assert_int_eq(lent, 1);
    ck_assert_ptr_nonnull(msg->deflated);

    other = pmd;
    other.deflate_level = 1;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_set_deflate(e, &other), 0);
    ck_assert_int_eq(ws_engine_send_msg(e, msg, 0), WS_SEND_QUEUED);
    ck_assert_int_eq(lent, 2);
    memset(&out, 0, sizeof(out));
    drain(e, 0);
    assert_sent_compressed(text, sizeof(text));
    ws_engine_destroy(e);

    other = pmd;
    other.deflate_no_context = 0;
    other.borrow_deflater = NULL;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_set_deflate(e, &other), 0);
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(ws_engine_send_msg(e, msg, 0), WS_SEND_QUEUED);
    memset(&out, 0, sizeof(out));
    drain(e, 0);
    parse_output();
    /* The second refers back to the first: not the shared bytes. */
    ck_assert_int_eq(out.n, 2);
    ck_assert_uint_lt(out.f[1].len, out.f[0].len);
    ws_engine_destroy(e);

    ws_msg_unref(msg);
    ws_deflate_deflater_destroy(lender);
}
END_TEST

static Suite *engine_deflate_suite(void)
{
    Suite *s = suite_create("ws_engine_deflate");
    TCase *tc = tcase_create("permessage-deflate");

    tcase_add_checked_fixture(tc, pmd_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rfc7692_7_2_3_1_hello);
    tcase_add_test(tc, rfc7692_fragmented_with_ping_between);
    tcase_add_test(tc, rfc7692_7_2_3_2_context_takeover);
    tcase_add_test(tc, rfc7692_mixed_and_empty);
    tcase_add_test(tc, rfc7692_rsv1_rules);
    tcase_add_test(tc, rfc7692_corrupt_is_1007);
    tcase_add_test(tc, rfc7692_utf8_after_inflating);
    tcase_add_test(tc, rfc7692_utf8_checked_before_limit);
    tcase_add_test(tc, rfc7692_limit_counts_inflated_bytes);
    tcase_add_test(tc, rfc7692_bomb);
    tcase_add_test(tc, rfc7692_frame_limit_counts_wire_bytes);
    tcase_add_test(tc, rfc7692_no_context_holds_nothing_idle);
    tcase_add_test(tc, rfc7692_send_compressed);
    tcase_add_test(tc, rfc7692_send_with_lent_compressor);
    tcase_add_test(tc, rfc7692_send_refused_before_compressing);
    tcase_add_test(tc, rfc7692_send_admitted_on_uncompressed_size);
    tcase_add_test(tc, rfc7692_shared_message_compressed_once);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(engine_deflate_suite)
