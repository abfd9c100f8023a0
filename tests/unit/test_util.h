/* test_util.h: what every unit test shares: a seeded PRNG for random
 * splits (seed printed, fixed unless WS_TEST_SEED is set), strings placed
 * against an unreadable page, a monotonic clock and a bounded wait for the
 * tests that run threads or processes, and the Check runner's main(). */
#ifndef WS_TEST_UTIL_H
#define WS_TEST_UTIL_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define WS_TEST_DEFAULT_SEED 20261123u

static inline int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Evaluates cond every millisecond until it holds or ms have passed;
 * yields whether it held. */
#define WAIT_UNTIL(cond, ms) ({                                 \
        int64_t until_ = now_ms() + (ms);                       \
        int ok_;                                                \
        while (!(ok_ = (cond)) && now_ms() < until_)            \
            usleep(1000);                                       \
        ok_; })

static uint64_t test_rng_state;

/* The seed for this run: WS_TEST_SEED from the environment, or the fixed
 * default. Printed once so a failure can be replayed. */
static inline uint64_t test_seed(void)
{
    static int printed;
    const char *env = getenv("WS_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : WS_TEST_DEFAULT_SEED;
    if (!printed) {
        printf("random splits: seed %llu (set WS_TEST_SEED to change)\n",
               (unsigned long long)seed);
        printed = 1;
    }
    return seed;
}

static inline void test_rng_init(void)
{
    test_rng_state = test_seed() * 2654435761u + 1;
}

/* xorshift64*: enough for choosing split points. */
static inline uint64_t test_rng(void)
{
    uint64_t x = test_rng_state ? test_rng_state : 88172645463325252ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    test_rng_state = x;
    return x * 2685821657736338717ull;
}

/* A chunk length in [1, max]. */
static inline size_t test_rng_len(size_t max)
{
    return max ? 1 + (size_t)(test_rng() % max) : 0;
}

/* The whole pages that hold len bytes. */
static inline size_t fence_span(size_t len, size_t page)
{
    return (len + page - 1) / page * page;
}

/* A copy of s whose NUL is the last byte before an unreadable page, so a
 * read past the end faults in every build, not only under ASan
 * (picohttpparser's test.c does the same). NULL stays NULL. Release with
 * fence_free. */
static inline char *fence_dup(const char *s)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len, span;
    char *base;

    if (s == NULL) {
        return NULL;
    }
    len = strlen(s) + 1;
    span = fence_span(len, page);
    base = mmap(NULL, span + page, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(base != MAP_FAILED);
    ck_assert(mprotect(base + span, page, PROT_NONE) == 0);
    memcpy(base + span - len, s, len);
    return base + span - len;
}

static inline void fence_free(char *s)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len, span;

    if (s == NULL) {
        return;
    }
    len = strlen(s) + 1;
    span = fence_span(len, page);
    munmap(s + len - span, span + page);
}

/* main() for a test file that defines suite(). */
#define TEST_MAIN(suite_fn)                                       \
    int main(void)                                                \
    {                                                             \
        SRunner *sr = srunner_create(suite_fn());                 \
        int failed;                                               \
        (void)test_seed(); /* print it once, before the forks */  \
        srunner_run_all(sr, CK_NORMAL);                           \
        failed = srunner_ntests_failed(sr);                       \
        srunner_free(sr);                                         \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;              \
    }

#endif /* WS_TEST_UTIL_H */
