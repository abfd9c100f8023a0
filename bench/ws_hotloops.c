/* ws_hotloops.c: throughput of the two hot loops of the protocol core,
 * unmasking (ws_mask.c) and UTF-8 validation (ws_utf8.c), each against its
 * bytewise reference.
 *
 * Both sides of every comparison live in the same object file, built by
 * `make bench` with the same CFLAGS as the module, so a ratio reflects the
 * algorithm, not the compiler flags. This program must not be read as a
 * claim about whole-server throughput: it times one core, warm caches and
 * well-formed input. It takes no arguments and finishes in a few seconds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ws_mask.h"
#include "ws_utf8.h"

#define MASK_BUF (16u << 20)
#define TEXT_BUF (4u << 20)
#define FRAME 125
#define REPS 15

typedef void (*mask_fn)(uint8_t *dst, const uint8_t *src, size_t len,
                        const uint8_t key[4], uint64_t offset);
typedef int (*utf8_fn)(ws_utf8_t *u, const uint8_t *buf, size_t len,
                       size_t *bad_at);

static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* Folded into the output so no call can be optimised away; the calls go to
 * another object file anyway, but this also keeps their results live. */
static uint64_t checksum;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Best of REPS runs, in MB/s (10^6 bytes). The best rather than the mean,
 * because noise on a shared machine only ever adds time. */
static double mask_rate(mask_fn fn, uint8_t *dst, const uint8_t *src,
                        size_t len, size_t frame, int passes)
{
    double best = 0;
    int r, p;

    for (r = 0; r < REPS; r++) {
        double t = now(), rate;
        size_t pos = 0;

        /* Frames of `frame` bytes, each unmasked from offset 0 with its own
         * call, as the engine does for small messages. */
        for (p = 0; p < passes; p++) {
            for (pos = 0; pos + frame <= len; pos += frame) {
                fn(dst + pos, src + pos, frame, key, 0);
            }
        }
        t = now() - t;
        checksum += dst[r] + dst[len / 2] + dst[pos - 1];
        rate = (double)pos * passes / t / 1e6;
        if (rate > best) {
            best = rate;
        }
    }
    return best;
}

static void bench_mask(const char *what, uint8_t *dst, const uint8_t *src,
                       size_t len, size_t frame, int passes)
{
    double fast = mask_rate(ws_mask_apply, dst, src, len, frame, passes);
    double slow = mask_rate(ws_mask_apply_bytewise, dst, src, len, frame,
                            passes);

    printf("mask  %-28s %9.0f MB/s  bytewise %8.0f MB/s  x%.1f\n", what,
           fast, slow, fast / slow);
}

static double utf8_rate(utf8_fn fn, const uint8_t *text, size_t len)
{
    double best = 0;
    int r;

    for (r = 0; r < REPS; r++) {
        ws_utf8_t u;
        size_t bad = 0;
        double t = now(), rate;
        int ok;

        ws_utf8_reset(&u);
        ok = fn(&u, text, len, &bad);
        t = now() - t;
        if (!ok || !ws_utf8_complete(&u)) {
            fprintf(stderr, "bench text invalid at %zu\n", bad);
            exit(1);
        }
        checksum += (uint64_t)ok + u.state;
        rate = (double)len / t / 1e6;
        if (rate > best) {
            best = rate;
        }
    }
    return best;
}

static void bench_utf8(const char *what, const uint8_t *text, size_t len)
{
    double fast = utf8_rate(ws_utf8_feed, text, len);
    double slow = utf8_rate(ws_utf8_feed_bytewise, text, len);

    printf("utf8  %-28s %9.0f MB/s  bytewise %8.0f MB/s  x%.1f\n", what,
           fast, slow, fast / slow);
}

static size_t put_utf8(uint8_t *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (uint8_t)(0xC0 | cp >> 6);
        p[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (uint8_t)(0xE0 | cp >> 12);
        p[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        p[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    p[0] = (uint8_t)(0xF0 | cp >> 18);
    p[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    p[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    p[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Text of about `len` bytes whose characters come from `pick`; ends on a
 * character boundary. */
static size_t make_text(uint8_t *buf, size_t len, uint32_t (*pick)(void))
{
    size_t n = 0;

    while (n + 4 <= len) {
        n += put_utf8(buf + n, pick());
    }
    return n;
}

/* Words of lowercase letters separated by spaces. */
static uint32_t pick_ascii(void)
{
    return rng() % 7 == 0 ? ' ' : 'a' + rng() % 26;
}

/* English with about one character in ten from Latin-1 (2 bytes). */
static uint32_t pick_latin(void)
{
    static const uint32_t accented[] = { 0xE9, 0xE8, 0xFC, 0xF6, 0xE4, 0xDF,
                                         0xE7, 0xF1, 0xE1, 0xED };

    return rng() % 10 == 0 ? accented[rng() % 10] : pick_ascii();
}

/* CJK ideographs (3 bytes) with the odd ASCII space or digit. */
static uint32_t pick_cjk(void)
{
    return rng() % 20 == 0 ? ' ' + rng() % 26 : 0x4E00 + rng() % 0x5200;
}

/* Emoji (4 bytes) separated now and then by a space. */
static uint32_t pick_emoji(void)
{
    return rng() % 8 == 0 ? ' ' : 0x1F300 + rng() % 0x300;
}

int main(void)
{
    uint8_t *src = malloc(MASK_BUF + 64), *dst = malloc(MASK_BUF + 64);
    uint8_t *text = malloc(TEXT_BUF);
    size_t i, n;

    if (!src || !dst || !text) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (i = 0; i < MASK_BUF + 64; i++) {
        src[i] = (uint8_t)rng();
    }
    memset(dst, 0, MASK_BUF + 64);

    bench_mask("16 MiB", dst, src, MASK_BUF, MASK_BUF, 1);
    bench_mask("16 MiB, src+1 dst+3", dst + 3, src + 1, MASK_BUF, MASK_BUF,
               1);
    /* The same 16 KiB over and over, so the frames stay in L1 and the cost
     * of each call shows. */
    bench_mask("125-byte frames", dst, src, 16u << 10, FRAME, 1024);

    n = make_text(text, TEXT_BUF, pick_ascii);
    bench_utf8("ASCII", text, n);
    n = make_text(text, TEXT_BUF, pick_latin);
    bench_utf8("English, 10% 2-byte", text, n);
    n = make_text(text, TEXT_BUF, pick_cjk);
    bench_utf8("CJK, 3-byte", text, n);
    n = make_text(text, TEXT_BUF, pick_emoji);
    bench_utf8("emoji, 4-byte", text, n);

    printf("checksum %llu\n", (unsigned long long)checksum);
    free(src);
    free(dst);
    free(text);
    return 0;
}
