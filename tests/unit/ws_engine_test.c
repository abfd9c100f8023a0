/* ws_engine_test.c: the engine's input side: messages, limits, protocol
 * errors and the close handshake, each fed whole, a byte at a time and at
 * random splits (see engine_harness.h). */
#include "engine_harness.h"

/* ---- messages ---- */

/* RFC 6455 §5.7: a single-frame masked text message. */
START_TEST(rfc6455_5_7_masked_hello)
{
    static const uint8_t frame[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                     0x9f, 0x4d, 0x51, 0x58 };
    log_t log;

    put_raw(&in, frame, sizeof(frame));
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_MESSAGE);
    ck_assert_int_eq(log.ev[0].opcode, WS_OP_TEXT);
    ck_assert_uint_eq(log.ev[0].len, 5);
    ck_assert_mem_eq(log.ev[0].data, "Hello", 5);
}
END_TEST

/* §5.4, §5.5: control frames may come between fragments; the pong carries
 * the ping's payload (§5.5.3). */
START_TEST(rfc6455_5_4_fragments_with_ping_between)
{
    ws_engine_t *e;
    log_t log;

    put_frame(&in, 0, 0, WS_OP_TEXT, "Hel", 3);
    put_frame(&in, 1, 0, WS_OP_PING, "ping!", 5);
    put_frame(&in, 0, 0, WS_OP_CONTINUATION, "l", 1);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, "o", 1);
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_PING);
    ck_assert_mem_eq(log.ev[0].data, "ping!", 5);
    ck_assert_int_eq(log.ev[1].type, WS_EVENT_MESSAGE);
    ck_assert_uint_eq(log.ev[1].len, 5);
    ck_assert_mem_eq(log.ev[1].data, "Hello", 5);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_PONG);
    ck_assert_mem_eq(out.f[0].data, "ping!", 5);
    ws_engine_destroy(e);
}
END_TEST

/* §8.1: a character split across two frames is still valid. */
START_TEST(rfc6455_8_1_utf8_across_frames)
{
    static const char euro[] = "\xe2\x82\xac";   /* U+20AC */
    log_t log;

    put_frame(&in, 0, 0, WS_OP_TEXT, euro, 1);
    put_frame(&in, 0, 0, WS_OP_CONTINUATION, euro + 1, 1);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, euro + 2, 1);
    put_frame(&in, 1, 0, WS_OP_BINARY, "\xff\xfe", 2);  /* binary: no check */
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_MESSAGE);
    ck_assert_mem_eq(log.ev[0].data, euro, 3);
    ck_assert_int_eq(log.ev[1].opcode, WS_OP_BINARY);
}
END_TEST

START_TEST(rfc6455_5_6_empty_messages)
{
    log_t log;

    put_frame(&in, 1, 0, WS_OP_TEXT, "", 0);
    put_frame(&in, 0, 0, WS_OP_BINARY, "", 0);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, "", 0);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.ev[0].opcode, WS_OP_TEXT);
    ck_assert_uint_eq(log.ev[0].len, 0);
    ck_assert_int_eq(log.ev[1].opcode, WS_OP_BINARY);
    ck_assert_uint_eq(log.ev[1].len, 0);
}
END_TEST

/* A large message arrives whole and the buffer is let go once delivered,
 * so an idle connection holds no large buffer. */
START_TEST(large_message_buffer_released)
{
    static uint8_t big[100000];
    ws_engine_t *e;
    log_t log;
    size_t i, used;
    ws_event_t ev;

    for (i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    put_frame(&in, 0, 0, WS_OP_BINARY, big, 40000);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, big + 40000, sizeof(big) - 40000);
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_uint_eq(log.ev[0].len, sizeof(big));
    ck_assert_uint_eq(log.ev[0].sum, checksum(big, sizeof(big)));
    /* The feed loop already ran to WS_EVENT_NONE after the message. */
    ck_assert_uint_lt(ws_engine_memory(e), 2048);
    ck_assert_int_eq(ws_engine_feed(e, NULL, 0, &used, 0, &ev),
                     WS_EVENT_NONE);
    ws_engine_destroy(e);
}
END_TEST

/* ---- limits ---- */

/* A frame over the limit fails from its header, before its payload. */
START_TEST(limit_frame_size_from_header)
{
    ws_engine_t *e;
    log_t log;
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    size_t h;

    cfg.max_frame_size = 1000;
    h = ws_frame_write_header(hdr, 1, 0, WS_OP_BINARY, 1001, test_key);
    put_raw(&in, hdr, h);   /* no payload follows */
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_ERROR);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_TOO_BIG);
    ck_assert_uint_eq(log.ev[0].offset, h);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSED);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], WS_CLOSE_TOO_BIG);
    ck_assert(ws_engine_want_close(e));
    ws_engine_destroy(e);
}
END_TEST

START_TEST(limit_message_size_across_fragments)
{
    static uint8_t chunk[600];
    log_t log;

    cfg.max_message_size = 1000;
    put_frame(&in, 0, 0, WS_OP_BINARY, chunk, sizeof(chunk));
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, chunk, sizeof(chunk));
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_TOO_BIG);
    ck_assert_uint_eq(log.ev[0].offset, 2 * 4 + 600 + 2 * 4);
}
END_TEST

START_TEST(limit_message_size_exact_fits)
{
    static uint8_t chunk[500];
    log_t log;

    cfg.max_message_size = 1000;
    cfg.max_frame_size = 500;
    put_frame(&in, 0, 0, WS_OP_BINARY, chunk, sizeof(chunk));
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, chunk, sizeof(chunk));
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_MESSAGE);
    ck_assert_uint_eq(log.ev[0].len, 1000);
}
END_TEST

START_TEST(limit_fragments_per_message)
{
    log_t log;
    int i;

    cfg.max_fragments = 3;
    put_frame(&in, 0, 0, WS_OP_TEXT, "a", 1);
    for (i = 0; i < 2; i++)
        put_frame(&in, 0, 0, WS_OP_CONTINUATION, "b", 1);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, "c", 1);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_ERROR);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_POLICY);
}
END_TEST

/* ---- protocol errors (§7.1.7) ---- */

START_TEST(rfc6455_8_1_invalid_utf8_fails_at_byte)
{
    ws_engine_t *e;
    log_t log;

    /* The surrogate lead ED A0 is invalid at A0, mid-frame. */
    put_frame(&in, 1, 0, WS_OP_TEXT, "abc\xed\xa0\x80xyz", 9);
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_ERROR);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_INVALID_DATA);
    ck_assert_uint_eq(log.ev[0].offset, 6 + 4);
    drain(e, 0);
    parse_output();
    assert_close_frame(&out.f[0], WS_CLOSE_INVALID_DATA);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(rfc6455_8_1_text_cut_inside_character)
{
    log_t log;

    put_frame(&in, 0, 0, WS_OP_TEXT, "ok\xe2\x82", 4);
    put_frame(&in, 1, 0, WS_OP_CONTINUATION, "", 0);
    feed_modes(&cfg, &in, &log, NULL);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_INVALID_DATA);
}
END_TEST

/* Each case: the bytes, the close code, the offset of the bad byte. */
static const struct {
    const char *name;
    uint8_t bytes[16];
    size_t len;
    uint16_t code;
    uint64_t offset;
} bad_frames[] = {
    { "unmasked client frame", { 0x81, 0x01, 'a' }, 3, 1002, 1 },
    { "reserved opcode 3", { 0x83, 0x80, 0, 0, 0, 0 }, 6, 1002, 0 },
    { "reserved opcode 0xB", { 0x8B, 0x80, 0, 0, 0, 0 }, 6, 1002, 0 },
    { "RSV1 without extension", { 0xC1, 0x80, 0, 0, 0, 0 }, 6, 1002, 0 },
    { "fragmented ping", { 0x09, 0x80, 0, 0, 0, 0 }, 6, 1002, 0 },
    { "long ping", { 0x89, 0xFE, 0, 126 }, 4, 1002, 1 },
    { "lone continuation", { 0x80, 0x80, 0, 0, 0, 0 }, 6, 1002, 0 },
    { "64-bit length top bit", { 0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0 },
      10, 1002, 2 },
    { "close of one byte", { 0x88, 0x81, 0, 0, 0, 0, 0x03 }, 7, 1002, 6 },
    { "close code 1005", { 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xED }, 8, 1002, 6 },
    { "close code 999", { 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE7 }, 8, 1002, 6 },
    { "close reason not UTF-8", { 0x88, 0x83, 0, 0, 0, 0, 0x03, 0xE8, 0xFF },
      9, 1007, 6 },
};

START_TEST(rfc6455_7_1_7_bad_frames)
{
    ws_engine_t *e;
    log_t log;

    put_raw(&in, bad_frames[_i].bytes, bad_frames[_i].len);
    put_frame(&in, 1, 0, WS_OP_TEXT, "after", 5);   /* never delivered */
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_msg(log.n == 1, "%s: %d events", bad_frames[_i].name, log.n);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_ERROR);
    ck_assert_msg(log.ev[0].code == bad_frames[_i].code, "%s: code %d",
                  bad_frames[_i].name, log.ev[0].code);
    ck_assert_msg(log.ev[0].offset == bad_frames[_i].offset, "%s: at %llu",
                  bad_frames[_i].name,
                  (unsigned long long)log.ev[0].offset);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], bad_frames[_i].code);
    ck_assert(ws_engine_want_close(e));
    ws_engine_destroy(e);
}
END_TEST

/* After a protocol error nothing more is read or sent. */
START_TEST(rfc6455_7_1_7_nothing_after_failure)
{
    ws_engine_t *e;
    log_t log;

    put_raw(&in, (const uint8_t[]){ 0x83, 0x80, 0, 0, 0, 0 }, 6);
    put_frame(&in, 1, 0, WS_OP_PING, "x", 1);
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "late", 4, 0),
                     WS_SEND_CLOSED);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    ws_engine_destroy(e);
}
END_TEST

/* ---- the close handshake (§5.5.1, §7) ---- */

START_TEST(rfc6455_5_5_1_peer_close_is_echoed)
{
    ws_engine_t *e;
    log_t log;
    ws_close_info_t ci;

    put_close(&in, 1001, "bye");
    put_frame(&in, 1, 0, WS_OP_TEXT, "after", 5);   /* ignored */
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_CLOSE);
    ck_assert_int_eq(log.ev[0].code, 1001);
    ck_assert_uint_eq(log.ev[0].len, 3);
    ck_assert_mem_eq(log.ev[0].data, "bye", 3);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSED);
    ck_assert(!ws_engine_want_close(e));   /* our reply is not out yet */
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "x", 1, 0),
                     WS_SEND_CLOSED);
    drain(e, 1);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], 1001);
    ck_assert_uint_eq(out.f[0].len, 2);   /* the code, no reason */
    ck_assert(ws_engine_want_close(e));
    ws_engine_close_info(e, &ci);
    ck_assert_int_eq(ci.code, 1001);
    ck_assert(ci.clean);
    ck_assert(!ci.by_server);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(rfc6455_5_5_1_empty_close_gets_empty_close)
{
    ws_engine_t *e;
    log_t log;

    put_frame(&in, 1, 0, WS_OP_CLOSE, "", 0);
    feed_modes(&cfg, &in, &log, &e);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].code, WS_CLOSE_NO_STATUS);
    drain(e, 0);
    parse_output();
    assert_close_frame(&out.f[0], WS_CLOSE_NO_STATUS);
    ws_engine_destroy(e);
}
END_TEST

/* Queued messages not yet started are dropped when a close arrives: the
 * close is sent as soon as practical (§5.5.1). */
START_TEST(rfc6455_5_5_1_close_overtakes_queue)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    log_t log = { .n = 0 };

    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "queued", 6, 0),
                     WS_SEND_QUEUED);
    ck_assert_uint_eq(ws_engine_buffered(e), 6);
    put_close(&in, 1000, NULL);
    feed(e, in.buf, in.len, SPLIT_WHOLE, 0, &log);
    ck_assert_uint_eq(ws_engine_buffered(e), 0);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], 1000);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(rfc6455_7_1_2_server_close_waits_for_peer)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    log_t log = { .n = 0 };
    ws_close_info_t ci;

    ck_assert_int_eq(ws_engine_close(e, 4000, "done", 4, 0), 0);
    ck_assert_int_eq(ws_engine_close(e, 1000, NULL, 0, 0), -1);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSE_SENT);
    drain(e, 3);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], 4000);
    ck_assert_mem_eq(out.f[0].data + 2, "done", 4);
    ck_assert(!ws_engine_want_close(e));
    /* Data and pings that cross our close are dropped, unanswered. */
    put_frame(&in, 1, 0, WS_OP_TEXT, "crossing", 8);
    put_frame(&in, 1, 0, WS_OP_PING, "p", 1);
    put_close(&in, 4000, NULL);
    feed(e, in.buf, in.len, SPLIT_BYTES, SEC, &log);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_CLOSE);
    ck_assert(!ws_engine_has_output(e));
    ck_assert(ws_engine_want_close(e));
    ws_engine_close_info(e, &ci);
    ck_assert_int_eq(ci.code, 4000);
    ck_assert(ci.clean);
    ck_assert(ci.by_server);
    ws_engine_destroy(e);
}
END_TEST

/* A message whose frame was under way when we sent our close is dropped
 * with the rest (§5.5.1: after a close, no more data). */
START_TEST(rfc6455_5_5_1_frame_under_way_at_close)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    log_t log = { .n = 0 };

    put_frame(&in, 1, 0, WS_OP_BINARY, "ab", 2);
    feed(e, in.buf, in.len - 1, SPLIT_WHOLE, 0, &log);
    ck_assert_int_eq(ws_engine_close(e, 1000, NULL, 0, 0), 0);
    feed(e, in.buf + in.len - 1, 1, SPLIT_WHOLE, 0, &log);
    ck_assert_int_eq(log.n, 0);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSE_SENT);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(rfc6455_7_1_1_close_deadline)
{
    ws_engine_t *e;
    ws_close_info_t ci;

    cfg.close_timeout = 2 * SEC;
    e = ws_engine_create(&cfg, 0);
    ws_engine_close(e, 1000, NULL, 0, 10 * SEC);
    ck_assert_int_eq(ws_engine_next_deadline(e), 12 * SEC);
    ck_assert_int_eq(ws_engine_tick(e, 11 * SEC), 12 * SEC);
    ck_assert(!ws_engine_want_close(e));
    /* The peer never reads nor answers: give up at the deadline. */
    ck_assert_int_eq(ws_engine_tick(e, 12 * SEC), WS_NO_DEADLINE);
    ck_assert(ws_engine_want_close(e));
    ws_engine_close_info(e, &ci);
    ck_assert(!ci.clean);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(rfc6455_7_1_5_eof_is_abnormal)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    ws_close_info_t ci;

    ws_engine_send(e, WS_OP_TEXT, "never sent", 10, 0);
    ws_engine_eof(e, SEC);
    ck_assert(ws_engine_want_close(e));
    ck_assert(!ws_engine_has_output(e));
    ws_engine_close_info(e, &ci);
    ck_assert_int_eq(ci.code, WS_CLOSE_ABNORMAL);
    ck_assert(!ci.clean);
    ws_engine_destroy(e);
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *s = suite_create("ws_engine");
    TCase *tc;

    tc = tcase_create("messages");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, rfc6455_5_7_masked_hello);
    tcase_add_test(tc, rfc6455_5_4_fragments_with_ping_between);
    tcase_add_test(tc, rfc6455_8_1_utf8_across_frames);
    tcase_add_test(tc, rfc6455_5_6_empty_messages);
    tcase_add_test(tc, large_message_buffer_released);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, limit_frame_size_from_header);
    tcase_add_test(tc, limit_message_size_across_fragments);
    tcase_add_test(tc, limit_message_size_exact_fits);
    tcase_add_test(tc, limit_fragments_per_message);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, rfc6455_8_1_invalid_utf8_fails_at_byte);
    tcase_add_test(tc, rfc6455_8_1_text_cut_inside_character);
    tcase_add_loop_test(tc, rfc6455_7_1_7_bad_frames, 0,
                        sizeof(bad_frames) / sizeof(bad_frames[0]));
    tcase_add_test(tc, rfc6455_7_1_7_nothing_after_failure);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, rfc6455_5_5_1_peer_close_is_echoed);
    tcase_add_test(tc, rfc6455_5_5_1_empty_close_gets_empty_close);
    tcase_add_test(tc, rfc6455_5_5_1_close_overtakes_queue);
    tcase_add_test(tc, rfc6455_7_1_2_server_close_waits_for_peer);
    tcase_add_test(tc, rfc6455_5_5_1_frame_under_way_at_close);
    tcase_add_test(tc, rfc6455_7_1_1_close_deadline);
    tcase_add_test(tc, rfc6455_7_1_5_eof_is_abnormal);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(engine_suite)
