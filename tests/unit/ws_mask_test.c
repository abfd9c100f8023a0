/* ws_mask_test.c: unit tests for ws_mask.c, the RFC 6455 §5.3 masking
 * transform.
 *
 * The fast path must agree with the bytewise reference for every length,
 * offset and alignment, piece by piece as well as whole, and must not touch
 * a byte outside the buffers it is given. These tests never go through the
 * frame parser; ws_frame_test covers masking in context.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ws_mask.h"
#include "test_util.h"

#define MAX_LEN 300
#define MAX_MISALIGN 16

/* Keys chosen so a wrong byte of the key, or a wrong rotation, always shows:
 * all bytes differ except in the two degenerate keys. */
static const uint8_t keys[][4] = {
    { 0x37, 0xfa, 0x21, 0x3d },   /* RFC 6455 §5.7 */
    { 0x01, 0x02, 0x04, 0x08 },
    { 0x00, 0x00, 0x00, 0x00 },
    { 0xff, 0xff, 0xff, 0xff },
    { 0x80, 0x7f, 0xa5, 0x5a }
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Deterministic, so a mismatch reproduces without the seed. */
static void fill(uint8_t *p, size_t len, unsigned salt)
{
    size_t i;

    for (i = 0; i < len; i++) {
        p[i] = (uint8_t)(i * 131 + salt * 17 + (i >> 8));
    }
}

/* RFC 6455 §5.3: byte i of the payload is XORed with key[i % 4], where i
 * counts from the start of the payload, so the offset picks the rotation. */
START_TEST(rfc6455_5_3_matches_bytewise_all_lengths_offsets)
{
    static uint8_t src[MAX_LEN + 2 * MAX_MISALIGN];
    static uint8_t want[MAX_LEN + 2 * MAX_MISALIGN];
    static uint8_t got[MAX_LEN + 2 * MAX_MISALIGN];
    const uint8_t *key = keys[_i % NKEYS];
    size_t len, sa, da;
    uint64_t off;

    fill(src, sizeof(src), (unsigned)_i);
    for (len = 0; len <= MAX_LEN; len++) {
        for (off = 0; off < 8; off++) {
            /* Walk src and dst misalignment together and apart, so both the
             * loads and the stores see every offset within a vector. */
            for (sa = 0; sa < MAX_MISALIGN; sa++) {
                da = (sa * 5 + len) % MAX_MISALIGN;
                memset(want, 0xEE, sizeof(want));
                memset(got, 0xEE, sizeof(got));
                ws_mask_apply_bytewise(want + da, src + sa, len, key, off);
                ws_mask_apply(got + da, src + sa, len, key, off);
                ck_assert_msg(memcmp(want, got, sizeof(got)) == 0,
                              "len %zu offset %llu src+%zu dst+%zu key %zu",
                              len, (unsigned long long)off, sa, da,
                              (size_t)_i);
            }
        }
    }
}
END_TEST

/* §5.3 defines the offset over the whole payload, which may exceed 2^32
 * (§5.2 allows 63-bit lengths); only offset % 4 may matter. */
START_TEST(rfc6455_5_3_large_offsets)
{
    static const uint64_t offs[] = {
        0xFFFFFFFFull, 0x100000000ull, 0x100000003ull,
        0x7FFFFFFFFFFFFFFEull, 0xFFFFFFFFFFFFFFFFull
    };
    uint8_t src[97], want[97], got[97];
    size_t i;

    fill(src, sizeof(src), 3);
    for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        ws_mask_apply_bytewise(want, src, sizeof(src), keys[0], offs[i] & 3);
        ws_mask_apply(got, src, sizeof(src), keys[0], offs[i]);
        ck_assert_msg(memcmp(want, got, sizeof(got)) == 0, "offset %llu",
                      (unsigned long long)offs[i]);
    }
}
END_TEST

/* The engine unmasks in its read buffer, so dst == src must work. */
START_TEST(rfc6455_5_3_in_place)
{
    static uint8_t orig[MAX_LEN + MAX_MISALIGN];
    static uint8_t want[MAX_LEN + MAX_MISALIGN];
    static uint8_t buf[MAX_LEN + MAX_MISALIGN];
    size_t len, a;
    uint64_t off;

    fill(orig, sizeof(orig), 7);
    for (len = 0; len <= MAX_LEN; len++) {
        for (off = 0; off < 4; off++) {
            a = (len + off) % MAX_MISALIGN;
            memcpy(buf, orig, sizeof(buf));
            memcpy(want, orig, sizeof(want));
            ws_mask_apply_bytewise(want + a, orig + a, len, keys[4], off);
            ws_mask_apply(buf + a, buf + a, len, keys[4], off);
            ck_assert_msg(memcmp(want, buf, sizeof(buf)) == 0,
                          "len %zu offset %llu at +%zu", len,
                          (unsigned long long)off, a);
        }
    }
}
END_TEST

/* A payload arrives in reads of any size (§5.3 masks the payload, not the
 * read): unmasking each piece at its offset equals unmasking it whole. */
START_TEST(rfc6455_5_3_piecewise_random_splits)
{
    static uint8_t src[4096], whole[4096], pieces[4096];
    int round;

    test_rng_init();
    fill(src, sizeof(src), 11);
    for (round = 0; round < 2000; round++) {
        size_t len = (size_t)(test_rng() % sizeof(src));
        uint64_t start = test_rng() % 1000;
        const uint8_t *key = keys[round % NKEYS];
        size_t pos = 0;

        ws_mask_apply(whole, src, len, key, start);
        while (pos < len) {
            size_t n = test_rng_len(round % 2 ? 70 : len - pos);

            if (n > len - pos) {
                n = len - pos;
            }
            ws_mask_apply(pieces + pos, src + pos, n, key, start + pos);
            pos += n;
        }
        ck_assert_msg(memcmp(whole, pieces, len) == 0,
                      "round %d len %zu start %llu", round, len,
                      (unsigned long long)start);
    }
}
END_TEST

/* XOR is its own inverse: masking twice gives back the input, which is how
 * a client (and our own tests) produce masked frames. */
START_TEST(rfc6455_5_3_involution)
{
    static uint8_t src[1000], once[1000], twice[1000];
    size_t len;

    fill(src, sizeof(src), 5);
    for (len = 0; len <= sizeof(src); len += 37) {
        ws_mask_apply(once, src, len, keys[1], len);
        ws_mask_apply(twice, once, len, keys[1], len);
        ck_assert_msg(memcmp(src, twice, len) == 0, "len %zu", len);
        if (len >= 4) {
            ck_assert_msg(memcmp(src, once, len) != 0, "len %zu unmasked",
                          len);
        }
    }
}
END_TEST

/* An empty payload (§5.2 allows length 0) may come as NULL pointers. */
START_TEST(rfc6455_5_2_empty_payload)
{
    ws_mask_apply(NULL, NULL, 0, keys[0], 0);
    ws_mask_apply_bytewise(NULL, NULL, 0, keys[0], 3);
}
END_TEST

/* Known answers. The first is the masked "Hello" of §5.7; the others mask
 * the same bytes starting later in a payload. */
static const struct {
    uint8_t key[4];
    uint64_t offset;
    const char *masked;
    const char *plain;
} vectors[] = {
    { { 0x37, 0xfa, 0x21, 0x3d }, 0, "\x7f\x9f\x4d\x51\x58", "Hello" },
    { { 0x37, 0xfa, 0x21, 0x3d }, 1, "\xb2\x44\x51\x5b\x95", "Hello" },
    { { 0x37, 0xfa, 0x21, 0x3d }, 6, "\x69\x58\x5b\x96\x4e", "Hello" }
};

START_TEST(rfc6455_5_7_masked_hello)
{
    uint8_t out[5];
    size_t i;

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        ws_mask_apply(out, (const uint8_t *)vectors[i].masked, 5,
                      vectors[i].key, vectors[i].offset);
        ck_assert_msg(memcmp(out, vectors[i].plain, 5) == 0, "vector %zu", i);
        ws_mask_apply_bytewise(out, (const uint8_t *)vectors[i].masked, 5,
                               vectors[i].key, vectors[i].offset);
        ck_assert_msg(memcmp(out, vectors[i].plain, 5) == 0,
                      "vector %zu bytewise", i);
    }
}
END_TEST

/* A mapping of three pages whose first and last cannot be touched: an input
 * placed against either fence faults on the first byte read or written
 * outside it. */
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

/* The caller's buffer ends where its read ended; the vector loops must stop
 * at len, never round up to a whole vector (nor start before src). */
START_TEST(rfc6455_5_3_no_access_past_buffers)
{
    size_t page, len;
    uint8_t *s = fence_map(&page), *d = fence_map(&page);
    uint8_t want[MAX_LEN];
    uint64_t off;

    fill(s, page, 9);
    for (len = 0; len <= MAX_LEN; len++) {
        for (off = 0; off < 4; off++) {
            uint8_t *src = s + page - len, *dst = d + page - len;

            ws_mask_apply_bytewise(want, src, len, keys[0], off);
            ws_mask_apply(dst, src, len, keys[0], off);
            ck_assert_msg(memcmp(want, dst, len) == 0, "end len %zu", len);
            ws_mask_apply(dst, dst, len, keys[0], off);
            ck_assert_msg(memcmp(src, dst, len) == 0, "end in place %zu",
                          len);
            /* And against the fence below. */
            ws_mask_apply(d, s, len, keys[0], off);
            ws_mask_apply_bytewise(want, s, len, keys[0], off);
            ck_assert_msg(memcmp(want, d, len) == 0, "start len %zu", len);
        }
    }
    munmap(s - page, 3 * page);
    munmap(d - page, 3 * page);
}
END_TEST

static Suite *ws_mask_suite(void)
{
    Suite *s = suite_create("ws_mask");
    TCase *tc = tcase_create("rfc6455_5_3");

    tcase_add_loop_test(tc, rfc6455_5_3_matches_bytewise_all_lengths_offsets,
                        0, (int)NKEYS);
    tcase_add_test(tc, rfc6455_5_3_large_offsets);
    tcase_add_test(tc, rfc6455_5_3_in_place);
    tcase_add_test(tc, rfc6455_5_3_piecewise_random_splits);
    tcase_add_test(tc, rfc6455_5_3_involution);
    tcase_add_test(tc, rfc6455_5_2_empty_payload);
    tcase_add_test(tc, rfc6455_5_7_masked_hello);
    tcase_add_test(tc, rfc6455_5_3_no_access_past_buffers);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ws_mask_suite)
