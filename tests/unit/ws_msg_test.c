/* ws_msg_test.c: unit tests for ws_msg.c, the reference-counted outgoing
 * messages one broadcast shares between connections.
 *
 * Counting is checked single-threaded, then under contention from several
 * threads. A wrong count shows as a failed assertion, a double free or a
 * leak: run under ASan (make unit-san, without fork) for the last two.
 */
#include <pthread.h>
#include <string.h>

#include "ws_frame.h"
#include "ws_msg.h"
#include "test_util.h"

#define THREADS 4
#define PAIRS   100000

static uint32_t refs(ws_msg_t *msg)
{
    return __atomic_load_n(&msg->refs, __ATOMIC_ACQUIRE);
}

START_TEST(msg_create_holds_one_reference_and_a_copy)
{
    static const char text[] = "Hello";
    ws_msg_t *msg = ws_msg_create(WS_OP_TEXT, text, 5);

    ck_assert_ptr_nonnull(msg);
    ck_assert_uint_eq(refs(msg), 1);
    ck_assert_uint_eq(msg->opcode, WS_OP_TEXT);
    ck_assert_uint_eq(msg->len, 5);
    ck_assert_mem_eq(msg->data, text, 5);
    ck_assert_ptr_ne(msg->data, text);
    ws_msg_unref(msg);
}
END_TEST

START_TEST(msg_ref_and_unref_count)
{
    ws_msg_t *msg = ws_msg_create(WS_OP_BINARY, "\x00\x01", 2);
    int i;

    ck_assert_ptr_nonnull(msg);
    for (i = 0; i < 10; i++)
        ck_assert_ptr_eq(ws_msg_ref(msg), msg);
    ck_assert_uint_eq(refs(msg), 11);
    for (i = 0; i < 10; i++)
        ws_msg_unref(msg);
    ck_assert_uint_eq(refs(msg), 1);
    /* The contents do not move or change while references come and go. */
    ck_assert_uint_eq(msg->opcode, WS_OP_BINARY);
    ck_assert_mem_eq(msg->data, "\x00\x01", 2);
    ws_msg_unref(msg);
}
END_TEST

/* An empty message is legal (§5.6 data frames may be empty); NULL data is
 * fine with it. */
START_TEST(msg_zero_length)
{
    ws_msg_t *a = ws_msg_create(WS_OP_TEXT, NULL, 0);
    ws_msg_t *b = ws_msg_create(WS_OP_BINARY, "ignored", 0);

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(a->len, 0);
    ck_assert_uint_eq(b->len, 0);
    ck_assert_uint_eq(refs(a), 1);
    ws_msg_unref(ws_msg_ref(a));
    ws_msg_unref(a);
    ws_msg_unref(b);
}
END_TEST

/* The message owns a copy: the sender may reuse its buffer at once. */
START_TEST(msg_data_is_copied)
{
    uint8_t src[4096];
    uint8_t want[4096];
    ws_msg_t *msg;
    size_t i;

    for (i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 31 + 7);
    memcpy(want, src, sizeof(src));
    msg = ws_msg_create(WS_OP_BINARY, src, sizeof(src));
    ck_assert_ptr_nonnull(msg);
    memset(src, 0xAA, sizeof(src));
    ck_assert_mem_eq(msg->data, want, sizeof(want));
    ws_msg_unref(msg);
}
END_TEST

/* A length that cannot be allocated with the header is out of memory. If
 * sizeof(ws_msg_t) + len wraps around, a tiny block comes back and the copy
 * runs far past it; the data is never read when the answer is NULL. */
START_TEST(msg_create_length_overflow_is_nomem)
{
    ck_assert_ptr_null(ws_msg_create(WS_OP_BINARY, "", SIZE_MAX));
}
END_TEST

START_TEST(msg_unref_null_is_ignored)
{
    ws_msg_unref(NULL);
}
END_TEST

static void *ref_unref_pairs(void *arg)
{
    ws_msg_t *msg = arg;
    int i;

    for (i = 0; i < PAIRS; i++) {
        ws_msg_ref(msg);
        ws_msg_unref(msg);
    }
    return NULL;
}

/* Several threads taking and dropping references at once, as connections
 * on different workers do with one broadcast, leave the count exact; one
 * lost update would leave it off by one. */
START_TEST(msg_refs_from_threads_are_exact)
{
    ws_msg_t *msg = ws_msg_create(WS_OP_TEXT, "broadcast", 9);
    pthread_t t[THREADS];
    int i;

    ck_assert_ptr_nonnull(msg);
    for (i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, ref_unref_pairs, msg), 0);
    for (i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_uint_eq(refs(msg), 1);
    ck_assert_mem_eq(msg->data, "broadcast", 9);
    ws_msg_unref(msg);
}
END_TEST

/* Each thread holds a reference of its own, does its pairs and drops it;
 * the creator drops its own before they finish, so whichever thread comes
 * last frees the message. ASan reports a use after free if one of them
 * frees early, LeakSanitizer if nobody frees. */
static void *pairs_then_drop(void *arg)
{
    ws_msg_t *msg = arg;

    ref_unref_pairs(msg);
    /* Still ours: the contents must be intact. */
    if (msg->len != 9 || memcmp(msg->data, "broadcast", 9) != 0)
        return msg;
    ws_msg_unref(msg);
    return NULL;
}

START_TEST(msg_last_unref_from_any_thread_frees)
{
    ws_msg_t *msg = ws_msg_create(WS_OP_TEXT, "broadcast", 9);
    pthread_t t[THREADS];
    void *bad;
    int i;

    ck_assert_ptr_nonnull(msg);
    for (i = 0; i < THREADS; i++)
        ws_msg_ref(msg);
    ck_assert_uint_eq(refs(msg), THREADS + 1);
    for (i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, pairs_then_drop, msg),
                         0);
    ws_msg_unref(msg);
    for (i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(t[i], &bad), 0);
        ck_assert_ptr_null(bad);
    }
}
END_TEST

/* A compressed form is kept by the first offer only, found only under its
 * own parameters, and freed with the message (LeakSanitizer otherwise). */
START_TEST(msg_deflated_first_offer_wins)
{
    ws_msg_t *msg = ws_msg_create(WS_OP_TEXT, "broadcast", 9);
    ws_msg_t *a = ws_msg_create(WS_OP_TEXT, "a", 1);
    ws_msg_t *b = ws_msg_create(WS_OP_TEXT, "b", 1);
    ws_msg_t *got;

    a->deflate_key = 0x8123;
    b->deflate_key = 0x8456;
    ck_assert_ptr_null(ws_msg_deflated(msg, 0x8123));
    ws_msg_offer_deflated(msg, a);
    ws_msg_offer_deflated(msg, b);
    ck_assert_uint_eq(refs(a), 2);
    ck_assert_uint_eq(refs(b), 1);
    got = ws_msg_deflated(msg, 0x8123);
    ck_assert_ptr_eq(got, a);
    ck_assert_uint_eq(refs(a), 3);
    ws_msg_unref(got);
    ck_assert_ptr_null(ws_msg_deflated(msg, 0x8456));
    ws_msg_unref(a);
    ws_msg_unref(b);
    ws_msg_unref(msg);
}
END_TEST

/* Compressing into a message sized for the worst case, then cutting it
 * to what was used, keeps the data. */
START_TEST(msg_alloc_then_shrink)
{
    ws_msg_t *msg = ws_msg_alloc(WS_OP_BINARY, 4096);

    ck_assert_ptr_nonnull(msg);
    ck_assert_uint_eq(msg->len, 4096);
    memcpy(msg->data, "0123456789", 10);
    msg = ws_msg_shrink(msg, 10);
    ck_assert_uint_eq(msg->len, 10);
    ck_assert_mem_eq(msg->data, "0123456789", 10);
    ck_assert_uint_eq(refs(msg), 1);
    ws_msg_unref(msg);
}
END_TEST

static Suite *ws_msg_suite(void)
{
    Suite *s = suite_create("ws_msg");
    TCase *tc = tcase_create("refcount");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, msg_create_holds_one_reference_and_a_copy);
    tcase_add_test(tc, msg_ref_and_unref_count);
    tcase_add_test(tc, msg_zero_length);
    tcase_add_test(tc, msg_data_is_copied);
    tcase_add_test(tc, msg_create_length_overflow_is_nomem);
    tcase_add_test(tc, msg_unref_null_is_ignored);
    tcase_add_test(tc, msg_refs_from_threads_are_exact);
    tcase_add_test(tc, msg_last_unref_from_any_thread_frees);
    tcase_add_test(tc, msg_deflated_first_offer_wins);
    tcase_add_test(tc, msg_alloc_then_shrink);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ws_msg_suite)
