/* ws_engine_output_test.c: the engine's output side: frame order, pongs
 * ahead of data, outgoing fragmentation, writes of any size, shared
 * messages, the queue cap and its policies, and the timers, with time
 * passed in. */
#include "engine_harness.h"

/* ---- output ---- */

/* A pong overtakes data that is queued but not yet on its way. */
START_TEST(rfc6455_5_5_3_pong_ahead_of_data)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    log_t log = { .n = 0 };

    ws_engine_send(e, WS_OP_TEXT, "data", 4, 0);
    put_frame(&in, 1, 0, WS_OP_PING, "1", 1);
    put_frame(&in, 1, 0, WS_OP_PING, "2", 1);
    feed(e, in.buf, in.len, SPLIT_WHOLE, 0, &log);
    ck_assert_int_eq(log.n, 2);
    drain(e, 0);
    parse_output();
    /* Only the latest ping is answered (§5.5.3 allows it). */
    ck_assert_int_eq(out.n, 2);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_PONG);
    ck_assert_mem_eq(out.f[0].data, "2", 1);
    ck_assert_int_eq(out.f[1].opcode, WS_OP_TEXT);
    ws_engine_destroy(e);
}
END_TEST

/* Bytes already offered keep their place: a pong that arrives while a
 * frame is half written goes after it. */
START_TEST(output_order_is_stable)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    log_t log = { .n = 0 };
    ws_iovec_t iov[8];
    int n;

    ws_engine_send(e, WS_OP_BINARY, "0123456789", 10, 0);
    n = ws_engine_output(e, iov, 8);
    ck_assert_int_eq(n, 2);
    ck_assert_uint_eq(iov[0].len, 2);
    memcpy(out.bytes, iov[0].base, 2);
    memcpy(out.bytes + 2, iov[1].base, 3);
    out.len = 5;
    ws_engine_written(e, 5);
    ck_assert_uint_eq(ws_engine_buffered(e), 7);
    put_frame(&in, 1, 0, WS_OP_PING, "p", 1);
    feed(e, in.buf, in.len, SPLIT_WHOLE, 0, &log);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 2);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_BINARY);
    ck_assert_mem_eq(out.f[0].data, "0123456789", 10);
    ck_assert_int_eq(out.f[1].opcode, WS_OP_PONG);
    ck_assert_uint_eq(ws_engine_buffered(e), 0);
    ws_engine_destroy(e);
}
END_TEST

/* Outgoing fragmentation at the configured size, with a control frame
 * slipping in between fragments (§5.4). */
START_TEST(rfc6455_5_4_outgoing_fragments)
{
    ws_engine_t *e;
    log_t log = { .n = 0 };
    ws_iovec_t iov[2];

    cfg.fragment_size = 10;
    e = ws_engine_create(&cfg, 0);
    ws_engine_send(e, WS_OP_TEXT, "abcdefghijklmnopqrstuvwxy", 25, 0);
    /* Take the first fragment only, then a ping arrives. */
    ck_assert_int_eq(ws_engine_output(e, iov, 2), 2);
    memcpy(out.bytes, iov[0].base, iov[0].len);
    memcpy(out.bytes + iov[0].len, iov[1].base, iov[1].len);
    out.len = iov[0].len + iov[1].len;
    ws_engine_written(e, out.len);
    put_frame(&in, 1, 0, WS_OP_PING, "", 0);
    feed(e, in.buf, in.len, SPLIT_WHOLE, 0, &log);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 4);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_TEXT);
    ck_assert(!out.f[0].fin);
    ck_assert_uint_eq(out.f[0].len, 10);
    ck_assert_int_eq(out.f[1].opcode, WS_OP_PONG);
    ck_assert_int_eq(out.f[2].opcode, WS_OP_CONTINUATION);
    ck_assert(!out.f[2].fin);
    ck_assert_int_eq(out.f[3].opcode, WS_OP_CONTINUATION);
    ck_assert(out.f[3].fin);
    ck_assert_uint_eq(out.f[3].len, 5);
    ck_assert_mem_eq(out.f[3].data, "uvwxy", 5);
    ws_engine_destroy(e);
}
END_TEST

/* Whatever the write sizes, the byte stream is the same, with minimal
 * length encodings (§5.2). */
START_TEST(output_any_write_size)
{
    static const size_t sizes[] = { 0, 125, 126, 65535, 65536, 70000 };
    static const size_t writes[] = { 1, 3, 7, 1000 };
    static uint8_t payload[70000];
    static uint8_t expect[1 << 18];
    size_t elen = 0, i, w;

    for (i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i ^ (i >> 8));
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        elen += ws_frame_write_header(expect + elen, 1, 0, WS_OP_BINARY,
                                      sizes[i], NULL);
        memcpy(expect + elen, payload, sizes[i]);
        elen += sizes[i];
    }
    for (w = 0; w < sizeof(writes) / sizeof(writes[0]); w++) {
        ws_engine_t *e;

        cfg.queue_cap = WS_UNLIMITED;
        e = ws_engine_create(&cfg, 0);
        reset_out();
        for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            ck_assert_int_eq(ws_engine_send(e, WS_OP_BINARY, payload,
                                            sizes[i], 0), WS_SEND_QUEUED);
        drain(e, writes[w]);
        ck_assert_uint_eq(out.len, elen);
        ck_assert(!memcmp(out.bytes, expect, elen));
        ck_assert_uint_eq(ws_engine_buffered(e), 0);
        ws_engine_destroy(e);
    }
}
END_TEST

/* The sent counts are what was written in full, whatever was queued: a
 * partly written message and one dropped by a close do not count. */
START_TEST(output_sent_counts_written_messages)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);
    ws_iovec_t iov[8];
    uint64_t msgs, bytes;
    log_t log = { .n = 0 };

    ws_engine_send(e, WS_OP_TEXT, "hello", 5, 0);
    ws_engine_send(e, WS_OP_BINARY, "0123456789", 10, 0);
    ck_assert_int_gt(ws_engine_output(e, iov, 8), 0);
    /* Queued behind what the driver is writing, not started. */
    ws_engine_send(e, WS_OP_TEXT, "dropped", 7, 0);
    ws_engine_sent(e, &msgs, &bytes);
    ck_assert_uint_eq(msgs, 0);
    ck_assert_uint_eq(bytes, 0);
    /* The first frame (2 + 5 bytes) and 4 bytes of the second. */
    ws_engine_written(e, 7 + 4);
    ws_engine_sent(e, &msgs, &bytes);
    ck_assert_uint_eq(msgs, 1);
    ck_assert_uint_eq(bytes, 5);
    /* The rest of the second, then the client closes: the third is
     * dropped unsent. */
    ws_engine_written(e, 2 + 10 - 4);
    ws_engine_sent(e, &msgs, &bytes);
    ck_assert_uint_eq(msgs, 2);
    ck_assert_uint_eq(bytes, 15);
    put_close(&in, 1000, "");
    feed(e, in.buf, in.len, SPLIT_WHOLE, 0, &log);
    drain(e, 0);
    ws_engine_sent(e, &msgs, &bytes);
    ck_assert_uint_eq(msgs, 2);
    ck_assert_uint_eq(bytes, 15);
    ws_engine_destroy(e);
}
END_TEST

/* One shared message in the queues of two connections. */
START_TEST(output_shared_message)
{
    ws_engine_t *a = ws_engine_create(&cfg, 0), *b = ws_engine_create(&cfg, 0);
    ws_msg_t *msg = ws_msg_create(WS_OP_TEXT, "shared", 6);

    ck_assert_int_eq(ws_engine_send_msg(a, msg, 0), WS_SEND_QUEUED);
    ck_assert_int_eq(ws_engine_send_msg(b, msg, 0), WS_SEND_QUEUED);
    ws_msg_unref(msg);
    drain(a, 0);
    ws_engine_destroy(a);
    drain(b, 2);
    parse_output();
    ck_assert_int_eq(out.n, 2);
    ck_assert_mem_eq(out.f[1].data, "shared", 6);
    ws_engine_destroy(b);
}
END_TEST

/* ---- the outgoing queue cap ---- */

START_TEST(queue_cap_refuse)
{
    ws_engine_t *e;

    cfg.queue_cap = 10;
    cfg.queue_policy = WS_QUEUE_REFUSE;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "123456", 6, 0),
                     WS_SEND_QUEUED);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "12345", 5, 0),
                     WS_SEND_REFUSED);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "1234", 4, 0),
                     WS_SEND_QUEUED);
    ck_assert_uint_eq(ws_engine_buffered(e), 10);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_OPEN);
    drain(e, 0);
    ck_assert_uint_eq(ws_engine_buffered(e), 0);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "12345", 5, 0),
                     WS_SEND_QUEUED);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(queue_cap_fail)
{
    static const struct {
        ws_queue_policy_e policy;
        uint16_t code;
    } cases[] = { { WS_QUEUE_FAIL_1008, 1008 }, { WS_QUEUE_FAIL_1013, 1013 } };
    ws_engine_t *e;
    ws_close_info_t ci;

    cfg.queue_cap = 10;
    cfg.queue_policy = cases[_i].policy;
    e = ws_engine_create(&cfg, 0);
    ws_engine_send(e, WS_OP_TEXT, "123456", 6, 0);
    ck_assert_int_eq(ws_engine_send(e, WS_OP_TEXT, "12345", 5, 0),
                     WS_SEND_FAILED);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSED);
    ck_assert_uint_eq(ws_engine_buffered(e), 0);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], cases[_i].code);
    ck_assert(ws_engine_want_close(e));
    ws_engine_close_info(e, &ci);
    ck_assert_int_eq(ci.code, cases[_i].code);
    ck_assert(ci.by_server);
    ws_engine_destroy(e);
}
END_TEST

/* ---- time ---- */

START_TEST(timers_keepalive_ping)
{
    ws_engine_t *e;
    log_t log = { .n = 0 };

    cfg.ping_interval = 30 * SEC;
    cfg.idle_timeout = 100 * SEC;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_next_deadline(e), 30 * SEC);
    ck_assert_int_eq(ws_engine_tick(e, 29 * SEC), 30 * SEC);
    ck_assert(!ws_engine_has_output(e));
    /* Input postpones the ping. */
    put_frame(&in, 1, 0, WS_OP_BINARY, "x", 1);
    feed(e, in.buf, in.len, SPLIT_WHOLE, 20 * SEC, &log);
    ck_assert_int_eq(ws_engine_tick(e, 30 * SEC), 50 * SEC);
    ck_assert(!ws_engine_has_output(e));
    ck_assert_int_eq(ws_engine_tick(e, 50 * SEC), 80 * SEC);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    ck_assert_int_eq(out.f[0].opcode, WS_OP_PING);
    /* The pong is an event and counts as input. */
    memset(&in, 0, sizeof(in));
    put_frame(&in, 1, 0, WS_OP_PONG, "", 0);
    log.n = 0;
    feed(e, in.buf, in.len, SPLIT_BYTES, 51 * SEC, &log);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.ev[0].type, WS_EVENT_PONG);
    ck_assert_int_eq(ws_engine_next_deadline(e), 81 * SEC);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(timers_idle_timeout_closes)
{
    ws_engine_t *e;
    ws_close_info_t ci;

    cfg.ping_interval = 0;
    cfg.idle_timeout = 60 * SEC;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_next_deadline(e), 60 * SEC);
    ws_engine_tick(e, 60 * SEC);
    ck_assert_int_eq(ws_engine_state(e), WS_STATE_CLOSED);
    drain(e, 0);
    parse_output();
    ck_assert_int_eq(out.n, 1);
    assert_close_frame(&out.f[0], WS_CLOSE_GOING_AWAY);
    ck_assert(ws_engine_want_close(e));
    ws_engine_close_info(e, &ci);
    ck_assert(ci.by_server);
    ck_assert(!ci.clean);
    ws_engine_destroy(e);
}
END_TEST

START_TEST(timers_off)
{
    ws_engine_t *e;

    cfg.ping_interval = 0;
    cfg.idle_timeout = 0;
    e = ws_engine_create(&cfg, 0);
    ck_assert_int_eq(ws_engine_tick(e, 1000000 * SEC), WS_NO_DEADLINE);
    ck_assert(!ws_engine_has_output(e));
    ws_engine_destroy(e);
}
END_TEST

/* A few hundred bytes per idle connection. */
START_TEST(memory_idle_connection)
{
    ws_engine_t *e = ws_engine_create(&cfg, 0);

    printf("idle engine: %zu bytes\n", ws_engine_memory(e));
    ck_assert_uint_le(ws_engine_memory(e), 1024);
    ws_engine_destroy(e);
}
END_TEST

static Suite *engine_output_suite(void)
{
    Suite *s = suite_create("ws_engine_output");
    TCase *tc;

    tc = tcase_create("output");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, rfc6455_5_5_3_pong_ahead_of_data);
    tcase_add_test(tc, output_order_is_stable);
    tcase_add_test(tc, rfc6455_5_4_outgoing_fragments);
    tcase_add_test(tc, output_any_write_size);
    tcase_add_test(tc, output_shared_message);
    tcase_add_test(tc, output_sent_counts_written_messages);
    tcase_add_test(tc, queue_cap_refuse);
    tcase_add_loop_test(tc, queue_cap_fail, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("time and memory");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, timers_keepalive_ping);
    tcase_add_test(tc, timers_idle_timeout_closes);
    tcase_add_test(tc, timers_off);
    tcase_add_test(tc, memory_idle_connection);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(engine_output_suite)
