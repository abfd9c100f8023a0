/* ws_topic_test.c: unit tests for ws_topic.c, the process's registry of
 * topic subscriptions.
 *
 * Subscribers are fake connections that count the references taken and
 * dropped on them: every test ends by destroying the registry and checking
 * that each hold met its release. A lost release is a leaked connection in
 * httpd; an extra one frees a connection still in use.
 */
#include <pthread.h>
#include <string.h>

#include "ws_topic.h"
#include "test_util.h"

typedef struct {
    int holds;          /* atomic: the registry's threads update them */
    int releases;
} fake_t;

static ws_topics_t *reentered;  /* release calls into this, if set */
static int over_released;       /* atomic: a release without its hold */

static void fake_hold(void *sub)
{
    __atomic_add_fetch(&((fake_t *)sub)->holds, 1, __ATOMIC_RELAXED);
}

static void fake_release(void *sub)
{
    fake_t *f = sub;
    size_t topics, subscriptions;

    /* A release drops a reference taken before it: count them the other
     * way round and one was dropped twice. Recorded, not asserted, as
     * this runs in the threads test's threads too. */
    if (__atomic_add_fetch(&f->releases, 1, __ATOMIC_RELAXED)
        > __atomic_load_n(&f->holds, __ATOMIC_RELAXED))
        __atomic_store_n(&over_released, 1, __ATOMIC_RELAXED);
    /* A release that uses the registry deadlocks if the lock is held. */
    if (reentered)
        ws_topics_stats(reentered, &topics, &subscriptions);
}

static int held(fake_t *f)
{
    return f->holds - f->releases;
}

static ws_topics_t *new_topics(void)
{
    ws_topics_t *t = ws_topics_create(fake_hold, fake_release);

    ck_assert_ptr_nonnull(t);
    return t;
}

static ws_topic_result_e sub(ws_topics_t *t, fake_t *f, const char *name)
{
    return ws_topics_subscribe(t, f, name, strlen(name));
}

static int unsub(ws_topics_t *t, fake_t *f, const char *name)
{
    return ws_topics_unsubscribe(t, f, name, strlen(name));
}

static size_t count(ws_topics_t *t, const char *name)
{
    return ws_topics_count(t, name, strlen(name));
}

static void check_stats(ws_topics_t *t, size_t topics, size_t subscriptions)
{
    size_t nt, ns;

    ws_topics_stats(t, &nt, &ns);
    ck_assert_uint_eq(nt, topics);
    ck_assert_uint_eq(ns, subscriptions);
}

/* Collect name and check it yields exactly the n fakes in want, in order;
 * then release them. */
static void check_collect(ws_topics_t *t, const char *name, fake_t **want,
                          size_t n)
{
    void **subs = (void **)&subs;   /* not NULL, so NULL is a real answer */
    size_t got, i;

    got = ws_topics_collect(t, name, strlen(name), &subs);
    ck_assert_uint_eq(got, n);
    if (n == 0)
        ck_assert_ptr_null(subs);
    for (i = 0; i < n; i++) {
        ck_assert_ptr_eq(subs[i], want[i]);
        ck_assert_int_ge(held(want[i]), 2);  /* the subscription's, ours */
    }
    ws_topics_release(t, subs, got);
}

static void check_balanced(fake_t *f, size_t n)
{
    size_t i;

    ck_assert_int_eq(over_released, 0);
    for (i = 0; i < n; i++)
        ck_assert_int_eq(f[i].holds, f[i].releases);
}

/* ---- names ---- */

START_TEST(name_length_bounds)
{
    char name[WS_TOPIC_MAX_NAME + 2], *fenced;

    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    ck_assert_int_eq(ws_topic_name_valid(name, 0), 0);
    ck_assert_int_eq(ws_topic_name_valid(name, 1), 1);
    ck_assert_int_eq(ws_topic_name_valid(name, 200), 1);
    ck_assert_int_eq(ws_topic_name_valid(name, 201), 0);
    /* The last byte read is the one before an unreadable page. */
    name[200] = '\0';
    fenced = fence_dup(name);
    ck_assert_int_eq(ws_topic_name_valid(fenced, 200), 1);
    fence_free(fenced);
}
END_TEST

START_TEST(name_bytes_printable_without_space)
{
    static const struct {
        const char *name;
        size_t len;
        int valid;
    } cases[] = {
        { "!", 1, 1 },              /* 0x21, the first allowed */
        { "~", 1, 1 },              /* 0x7e, the last */
        { "a.b/c:d?e=f&g", 13, 1 },
        { " ", 1, 0 },              /* 0x20 */
        { "a b", 3, 0 },
        { "\x7f", 1, 0 },
        { "a\x80", 2, 0 },
        { "\xc3\xa9", 2, 0 },       /* UTF-8 is not ASCII */
        { "\xff", 1, 0 },
        { "a\0b", 3, 0 },
        { "\t", 1, 0 },
        { "a\n", 2, 0 },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(ws_topic_name_valid(cases[i].name, cases[i].len)
                      == cases[i].valid, "case %zu", i);
}
END_TEST

START_TEST(prefix_rules)
{
    static const char *const chat[] = { "chat.", "news/" };
    static const char *const all[] = { "chat.", "" };

    ck_assert_int_eq(ws_topic_prefix_allowed("chat.room", 9, chat, 2), 1);
    ck_assert_int_eq(ws_topic_prefix_allowed("news/x", 6, chat, 2), 1);
    ck_assert_int_eq(ws_topic_prefix_allowed("chat.", 5, chat, 2), 1);
    /* Shorter than the prefix, or only its start. */
    ck_assert_int_eq(ws_topic_prefix_allowed("chat", 4, chat, 2), 0);
    ck_assert_int_eq(ws_topic_prefix_allowed("chatroom", 8, chat, 2), 0);
    ck_assert_int_eq(ws_topic_prefix_allowed("x", 1, chat, 2), 0);
    /* Only len bytes count: the byte after them is not the name's. */
    ck_assert_int_eq(ws_topic_prefix_allowed("chat.room", 4, chat, 2), 0);
    /* "" allows every name; no prefixes allow none. */
    ck_assert_int_eq(ws_topic_prefix_allowed("x", 1, all, 2), 1);
    ck_assert_int_eq(ws_topic_prefix_allowed("chat.room", 9, chat, 0), 0);
}
END_TEST

/* ---- one thread ---- */

START_TEST(subscribe_collect_in_order)
{
    ws_topics_t *t = new_topics();
    fake_t f[3] = { { 0, 0 } };
    fake_t *abc[] = { &f[0], &f[1], &f[2] };
    fake_t *ac[] = { &f[0], &f[2] };
    fake_t *acb[] = { &f[0], &f[2], &f[1] };

    ck_assert_int_eq(sub(t, &f[0], "room"), WS_TOPIC_OK);
    ck_assert_int_eq(sub(t, &f[1], "room"), WS_TOPIC_OK);
    ck_assert_int_eq(sub(t, &f[2], "room"), WS_TOPIC_OK);
    ck_assert_uint_eq(count(t, "room"), 3);
    ck_assert_int_eq(held(&f[0]), 1);
    check_collect(t, "room", abc, 3);
    ck_assert_int_eq(held(&f[0]), 1);
    ck_assert_int_eq(unsub(t, &f[1], "room"), 0);
    ck_assert_int_eq(held(&f[1]), 0);
    check_collect(t, "room", ac, 2);
    /* A subscriber that comes back goes to the end. */
    ck_assert_int_eq(sub(t, &f[1], "room"), WS_TOPIC_OK);
    check_collect(t, "room", acb, 3);
    check_stats(t, 1, 3);
    ws_topics_destroy(t);
    check_balanced(f, 3);
}
END_TEST

START_TEST(collect_unknown_topic_is_empty)
{
    ws_topics_t *t = new_topics();
    fake_t f = { 0, 0 };

    check_collect(t, "nobody", NULL, 0);
    ck_assert_int_eq(sub(t, &f, "room"), WS_TOPIC_OK);
    check_collect(t, "roo", NULL, 0);
    check_collect(t, "room2", NULL, 0);
    ck_assert_uint_eq(count(t, "nobody"), 0);
    ws_topics_destroy(t);
    check_balanced(&f, 1);
}
END_TEST

START_TEST(subscribe_twice_holds_once)
{
    ws_topics_t *t = new_topics();
    fake_t f = { 0, 0 };
    fake_t *one[] = { &f };

    ck_assert_int_eq(sub(t, &f, "room"), WS_TOPIC_OK);
    ck_assert_int_eq(sub(t, &f, "room"), WS_TOPIC_OK);
    ck_assert_int_eq(f.holds, 1);
    ck_assert_uint_eq(count(t, "room"), 1);
    check_collect(t, "room", one, 1);
    check_stats(t, 1, 1);
    ck_assert_int_eq(unsub(t, &f, "room"), 0);
    ck_assert_int_eq(unsub(t, &f, "room"), -1);
    ck_assert_int_eq(f.releases, f.holds);
    ws_topics_destroy(t);
}
END_TEST

START_TEST(invalid_names_are_refused)
{
    ws_topics_t *t = new_topics();
    fake_t f = { 0, 0 };
    char longname[WS_TOPIC_MAX_NAME + 1];

    memset(longname, 'x', sizeof(longname));
    ck_assert_int_eq(ws_topics_subscribe(t, &f, "", 0), WS_TOPIC_INVALID);
    ck_assert_int_eq(sub(t, &f, "a b"), WS_TOPIC_INVALID);
    ck_assert_int_eq(ws_topics_subscribe(t, &f, longname, sizeof(longname)),
                     WS_TOPIC_INVALID);
    ck_assert_int_eq(ws_topics_subscribe(t, &f, longname, sizeof(longname) - 1),
                     WS_TOPIC_OK);
    ck_assert_int_eq(f.holds, 1);
    check_stats(t, 1, 1);
    ws_topics_destroy(t);
    check_balanced(&f, 1);
}
END_TEST

START_TEST(unsubscribe_what_is_not_subscribed)
{
    ws_topics_t *t = new_topics();
    fake_t f[2] = { { 0, 0 } };

    ck_assert_int_eq(unsub(t, &f[0], "room"), -1);
    ck_assert_int_eq(sub(t, &f[0], "room"), WS_TOPIC_OK);
    ck_assert_int_eq(unsub(t, &f[1], "room"), -1);
    ck_assert_int_eq(unsub(t, &f[0], "other"), -1);
    ck_assert_int_eq(sub(t, &f[1], "other"), WS_TOPIC_OK);
    ck_assert_int_eq(unsub(t, &f[0], "other"), -1);
    ck_assert_int_eq(unsub(t, &f[1], "room"), -1);
    ck_assert_int_eq(held(&f[0]), 1);
    ck_assert_int_eq(held(&f[1]), 1);
    check_stats(t, 2, 2);
    ws_topics_destroy(t);
    check_balanced(f, 2);
}
END_TEST

/* A connection holds no more than WS_TOPIC_MAX_PER_SUBSCRIBER topics; the
 * cap is its own, not its topics' or anyone else's. */
START_TEST(per_subscriber_cap)
{
    ws_topics_t *t = new_topics();
    fake_t f[2] = { { 0, 0 } };
    char name[32];
    int i;

    for (i = 0; i < WS_TOPIC_MAX_PER_SUBSCRIBER; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        ck_assert_int_eq(sub(t, &f[0], name), WS_TOPIC_OK);
    }
    ck_assert_int_eq(sub(t, &f[0], "one-more"), WS_TOPIC_TOO_MANY);
    ck_assert_int_eq(sub(t, &f[0], "t0"), WS_TOPIC_OK);   /* already */
    ck_assert_int_eq(sub(t, &f[1], "one-more"), WS_TOPIC_OK);
    ck_assert_int_eq(sub(t, &f[0], "one-more"), WS_TOPIC_TOO_MANY);
    ck_assert_uint_eq(count(t, "one-more"), 1);
    ck_assert_int_eq(held(&f[0]), WS_TOPIC_MAX_PER_SUBSCRIBER);
    ck_assert_int_eq(unsub(t, &f[0], "t17"), 0);
    ck_assert_int_eq(sub(t, &f[0], "one-more"), WS_TOPIC_OK);
    check_stats(t, WS_TOPIC_MAX_PER_SUBSCRIBER, WS_TOPIC_MAX_PER_SUBSCRIBER + 1);
    ws_topics_destroy(t);
    check_balanced(f, 2);
}
END_TEST

START_TEST(unsubscribe_all_leaves_others)
{
    ws_topics_t *t = new_topics();
    fake_t f[2] = { { 0, 0 } };
    fake_t *second[] = { &f[1] };

    ck_assert_int_eq(sub(t, &f[0], "a"), WS_TOPIC_OK);
    ck_assert_int_eq(sub(t, &f[0], "b"), WS_TOPIC_OK);
    ck_assert_int_eq(sub(t, &f[1], "b"), WS_TOPIC_OK);
    ck_assert_int_eq(sub(t, &f[0], "c"), WS_TOPIC_OK);
    ws_topics_unsubscribe_all(t, &f[0]);
    ck_assert_int_eq(f[0].holds, 3);
    ck_assert_int_eq(held(&f[0]), 0);
    ck_assert_uint_eq(count(t, "a"), 0);
    check_collect(t, "b", second, 1);
    check_stats(t, 1, 1);
    /* Again, and for a stranger: nothing to do. */
    ws_topics_unsubscribe_all(t, &f[0]);
    ws_topics_unsubscribe_all(t, t);
    ck_assert_int_eq(f[0].releases, 3);
    /* Back from nothing: a new index for it. */
    ck_assert_int_eq(sub(t, &f[0], "a"), WS_TOPIC_OK);
    check_stats(t, 2, 2);
    ws_topics_destroy(t);
    check_balanced(f, 2);
}
END_TEST

/* Unique names that come and go, as clients may send, leave nothing. */
START_TEST(empty_topics_are_freed)
{
    ws_topics_t *t = new_topics();
    fake_t f[2] = { { 0, 0 } };
    char name[32];
    int i;

    ck_assert_int_eq(sub(t, &f[0], "room"), WS_TOPIC_OK);
    ck_assert_int_eq(sub(t, &f[1], "room"), WS_TOPIC_OK);
    ck_assert_int_eq(unsub(t, &f[0], "room"), 0);
    check_stats(t, 1, 1);
    ck_assert_int_eq(unsub(t, &f[1], "room"), 0);
    check_stats(t, 0, 0);
    for (i = 0; i < 10000; i++) {
        snprintf(name, sizeof(name), "churn.%d", i);
        ck_assert_int_eq(sub(t, &f[i & 1], name), WS_TOPIC_OK);
        if (i & 1)
            ws_topics_unsubscribe_all(t, &f[1]);
        else
            ck_assert_int_eq(unsub(t, &f[0], name), 0);
    }
    check_stats(t, 0, 0);
    check_balanced(f, 2);
    ws_topics_destroy(t);
}
END_TEST

/* 10,000 topics: the table grows well past its first size, every topic
 * stays findable, and it shrinks back as they go. */
#define MANY_SUBS   100
#define MANY_EACH   100

START_TEST(many_topics_grow_and_shrink)
{
    ws_topics_t *t = new_topics();
    static fake_t f[MANY_SUBS];
    char name[32];
    fake_t *one[1];
    int i, j;

    memset(f, 0, sizeof(f));
    for (i = 0; i < MANY_SUBS; i++) {
        for (j = 0; j < MANY_EACH; j++) {
            snprintf(name, sizeof(name), "topic/%d", i * MANY_EACH + j);
            ck_assert_int_eq(sub(t, &f[i], name), WS_TOPIC_OK);
        }
    }
    check_stats(t, MANY_SUBS * MANY_EACH, MANY_SUBS * MANY_EACH);
    for (i = 0; i < MANY_SUBS * MANY_EACH; i++) {
        snprintf(name, sizeof(name), "topic/%d", i);
        ck_assert_uint_eq(count(t, name), 1);
        if (i % 97 == 0) {
            one[0] = &f[i / MANY_EACH];
            check_collect(t, name, one, 1);
        }
    }
    for (i = 0; i < MANY_SUBS; i += 2)
        ws_topics_unsubscribe_all(t, &f[i]);
    check_stats(t, MANY_SUBS * MANY_EACH / 2, MANY_SUBS * MANY_EACH / 2);
    for (i = 0; i < MANY_SUBS * MANY_EACH; i++) {
        snprintf(name, sizeof(name), "topic/%d", i);
        ck_assert_uint_eq(count(t, name), (size_t)(i / MANY_EACH % 2));
    }
    for (i = 1; i < MANY_SUBS; i += 2)
        ws_topics_unsubscribe_all(t, &f[i]);
    check_stats(t, 0, 0);
    check_balanced(f, MANY_SUBS);
    ws_topics_destroy(t);
}
END_TEST

START_TEST(destroy_releases_every_subscription)
{
    ws_topics_t *t = new_topics();
    fake_t f[5] = { { 0, 0 } };
    char name[32];
    int i, j;

    for (i = 0; i < 5; i++) {
        for (j = 0; j <= i * 10; j++) {
            snprintf(name, sizeof(name), "d%d", j);
            ck_assert_int_eq(sub(t, &f[i], name), WS_TOPIC_OK);
        }
    }
    ck_assert_int_eq(held(&f[4]), 41);
    ws_topics_destroy(t);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(f[i].holds, i * 10 + 1);
    check_balanced(f, 5);
    ws_topics_destroy(NULL);
}
END_TEST

/* Release may take the registry's lock (a connection that unregisters as
 * it is freed): it would deadlock here if called with the lock held. */
START_TEST(release_may_use_the_registry)
{
    ws_topics_t *t = new_topics();
    fake_t f = { 0, 0 };
    fake_t *one[] = { &f };

    reentered = t;
    ck_assert_int_eq(sub(t, &f, "a"), WS_TOPIC_OK);
    ck_assert_int_eq(sub(t, &f, "b"), WS_TOPIC_OK);
    ck_assert_int_eq(sub(t, &f, "c"), WS_TOPIC_OK);
    check_collect(t, "a", one, 1);
    ck_assert_int_eq(unsub(t, &f, "a"), 0);
    ws_topics_unsubscribe_all(t, &f);
    reentered = NULL;
    ws_topics_destroy(t);
    check_balanced(&f, 1);
}
END_TEST

/* ---- threads ---- */

#define THREADS     4
#define PER_THREAD  8       /* fake connections each thread owns */
#define SHARED      6       /* topics all threads use */
#define ITERATIONS  20000

typedef struct {
    ws_topics_t *t;
    fake_t *f;              /* its own PER_THREAD, within all */
    fake_t *all;            /* every thread's fakes, to check collect */
    uint64_t rng;
    const char *bad;        /* what went wrong, or NULL */
} worker_t;

static uint64_t worker_rng(worker_t *w)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 2685821657736338717ull;
}

/* Releases are read first: other threads' holds and releases go on
 * meanwhile, and as holds only grow, a count of holds read later that is
 * not above it means our own reference is missing. */
static int still_held(fake_t *f)
{
    int releases = __atomic_load_n(&f->releases, __ATOMIC_SEQ_CST);

    return __atomic_load_n(&f->holds, __ATOMIC_SEQ_CST) > releases;
}

/* Each thread subscribes, unsubscribes and drops its own connections, and
 * collects topics the others change at the same time, as workers serving
 * different connections do. A collected subscriber must be one of ours and
 * still held. Check's assertions are not for threads: report instead. */
static void *worker(void *arg)
{
    worker_t *w = arg;
    char name[16];
    void **subs;
    size_t n, i;
    fake_t *f;
    int op;

    for (op = 0; op < ITERATIONS && !w->bad; op++) {
        f = &w->f[worker_rng(w) % PER_THREAD];
        snprintf(name, sizeof(name), "s%u", (unsigned)(worker_rng(w) % SHARED));
        switch (worker_rng(w) % 8) {
        case 0: case 1: case 2:
            if (ws_topics_subscribe(w->t, f, name, strlen(name))
                != WS_TOPIC_OK)
                w->bad = "subscribe failed";
            break;
        case 3: case 4:
            ws_topics_unsubscribe(w->t, f, name, strlen(name));
            break;
        case 5:
            ws_topics_unsubscribe_all(w->t, f);
            break;
        default:
            n = ws_topics_collect(w->t, name, strlen(name), &subs);
            if (n == (size_t)-1) {
                w->bad = "collect out of memory";
                break;
            }
            if (n > THREADS * PER_THREAD)
                w->bad = "collect returned too many";
            for (i = 0; i < n && !w->bad; i++) {
                f = subs[i];
                if (f < w->all || f >= w->all + THREADS * PER_THREAD)
                    w->bad = "collect returned a stranger";
                else if (!still_held(f))
                    w->bad = "collect returned a subscriber not held";
            }
            ws_topics_release(w->t, subs, n);
        }
    }
    return NULL;
}

START_TEST(threads_keep_references_balanced)
{
    ws_topics_t *t = new_topics();
    static fake_t all[THREADS * PER_THREAD];
    static worker_t w[THREADS];
    pthread_t th[THREADS];
    size_t topics, subscriptions, total = 0;
    char name[16];
    int i;

    test_rng_init();
    memset(all, 0, sizeof(all));
    /* The fakes live in one array so collect can tell ours from garbage. */
    for (i = 0; i < THREADS; i++) {
        w[i].t = t;
        w[i].f = all + i * PER_THREAD;
        w[i].all = all;
        w[i].rng = test_rng() | 1;
        w[i].bad = NULL;
    }
    for (i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    for (i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (i = 0; i < THREADS; i++)
        ck_assert_msg(w[i].bad == NULL, "thread %d: %s", i, w[i].bad);
    /* What is left is consistent: the counts add up to the stats. */
    for (i = 0; i < SHARED; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        total += count(t, name);
    }
    ws_topics_stats(t, &topics, &subscriptions);
    ck_assert_uint_eq(subscriptions, total);
    ck_assert_uint_le(topics, SHARED);
    ws_topics_destroy(t);
    check_balanced(all, THREADS * PER_THREAD);
}
END_TEST

static Suite *ws_topic_suite(void)
{
    Suite *s = suite_create("ws_topic");
    TCase *names = tcase_create("names");
    TCase *reg = tcase_create("registry");
    TCase *threads = tcase_create("threads");

    tcase_add_test(names, name_length_bounds);
    tcase_add_test(names, name_bytes_printable_without_space);
    tcase_add_test(names, prefix_rules);
    suite_add_tcase(s, names);

    tcase_set_timeout(reg, 60);
    tcase_add_test(reg, subscribe_collect_in_order);
    tcase_add_test(reg, collect_unknown_topic_is_empty);
    tcase_add_test(reg, subscribe_twice_holds_once);
    tcase_add_test(reg, invalid_names_are_refused);
    tcase_add_test(reg, unsubscribe_what_is_not_subscribed);
    tcase_add_test(reg, per_subscriber_cap);
    tcase_add_test(reg, unsubscribe_all_leaves_others);
    tcase_add_test(reg, empty_topics_are_freed);
    tcase_add_test(reg, many_topics_grow_and_shrink);
    tcase_add_test(reg, destroy_releases_every_subscription);
    tcase_add_test(reg, release_may_use_the_registry);
    suite_add_tcase(s, reg);

    tcase_set_timeout(threads, 120);
    tcase_add_test(threads, threads_keep_references_balanced);
    suite_add_tcase(s, threads);
    return s;
}

TEST_MAIN(ws_topic_suite)
