/* ws_load.c: a WebSocket (RFC 6455) load generator. One thread, epoll,
 * many non-blocking connections, written from the RFC: client frames are
 * masked with a fresh key each, server frames are parsed (fragments,
 * 16/64-bit lengths, ping, pong, close) and the handshake's
 * Sec-WebSocket-Accept is checked.
 *
 * Modes (--mode):
 *   echo    C connections each keep K messages in flight (K > 1 pipelines);
 *           after a warm-up, counts echoes for --duration seconds or until
 *           --messages echoes: msg/s and a latency histogram (p50/p99 in
 *           microseconds, from the moment a message is queued for the
 *           socket to the moment its echo is parsed)
 *   churn   C connections at a time, each connect + upgrade + close
 *           handshake + TCP close, then the next: full cycles per second
 *   idle    open C connections, hold them --hold seconds, then check that
 *           each still echoes one message; the server's RSS before and after
 *           opening gives memory per connection
 *   fanout  open C connections, send "burst K S" on the first one; the
 *           server sends K messages of S bytes to every connection it has:
 *           deliveries (messages received, all connections) per second
 *   pubsub  open C subscriber connections and one publisher connection
 *           (--pub-port/--pub-path: another server, as for two httpd
 *           instances joined by Redis), ask each subscriber "whoami" (a
 *           server that answers "pid N" tells how many processes hold
 *           them), send a warm-up "burst 1 S" and wait for it everywhere,
 *           then "burst K S" on the publisher: the server publishes K
 *           messages, each beginning "%019llu %010ld " (its
 *           CLOCK_MONOTONIC ns when published, its number in the burst),
 *           to all subscribers: deliveries per second over the burst,
 *           latency of each delivery (our CLOCK_MONOTONIC when parsed
 *           minus the stamp; one machine, one clock), and every delivery
 *           checked (size, stamp, order per connection); the publisher's
 *           own copies are read and not counted
 *
 * Payloads: --size bytes of letters (text) or random bytes (binary), the
 * same every message; or with --json a pool of 512 different JSON
 * documents of exactly --size bytes (quotes: ids, symbols, names, prices,
 * timestamps; fixed seed, so every run sends the same ones), each
 * connection walking the pool from its own starting point.
 *
 * --deflate offers permessage-deflate (RFC 7692) as
 * "permessage-deflate; client_max_window_bits" (--deflate-offer for another
 * offer) and parses the server's answer: messages are then compressed
 * (RSV1, raw deflate, Z_SYNC_FLUSH, the 00 00 ff ff tail cut) within the
 * negotiated client window, each on its own (no context takeover, which
 * RFC 7692 always allows a client), so that each payload is compressed
 * once and ws_load's cost does not depend on the server; with
 * --deflate-takeover, a deflater per connection keeps its context where
 * the server did not say client_no_context_takeover (as browsers do; with
 * 100 connections it costs ws_load 50 us (level 1) to 140 us (level 6) per
 * 1 KiB message, 100 deflaters' 27 MB missing the caches, which makes
 * ws_load the limit and slows the server beside it).
 * RSV1 messages are inflated (tail put back) within server_max_window_bits,
 * the inflater kept per connection unless server_no_context_takeover.
 * zlib is loaded at run time (libz.so.1), only when --deflate is given.
 * With --json or --deflate (or --verify) every echo is compared byte for
 * byte, after inflating, with what was sent: a wrong echo is an error.
 * Bytes read from and written to the sockets in the window are counted
 * (wire bytes: frame headers and masks included, TCP/IP headers not).
 *
 * Every run is bounded by --max-duration (default 60 s), whatever else.
 * With --server-pid (repeatable), the CPU time (utime + stime), threads and
 * RSS of those processes and all their descendants are read from /proc at
 * the start and end of the measured window, so the figures cover exactly
 * the messages counted.
 *
 * Output: one JSON line on stdout, one human line on stderr.
 * Exit status: 0 ok, 1 usage or setup error, 2 the run finished with
 * errors (failed connections, lost or wrong echoes).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------- options */

enum mode { M_ECHO, M_CHURN, M_IDLE, M_FANOUT, M_PUBSUB };
static const char *mode_names[] = { "echo", "churn", "idle", "fanout",
                                    "pubsub" };
#define N_MODES 5

/* pubsub: the stamp that begins every published message. */
#define PS_STAMP 31

static struct {
    const char *host;
    int port;
    const char *path;
    enum mode mode;
    int conns;
    int inflight;
    size_t size;
    int binary;
    double duration;      /* measured window; 0: until --messages */
    long messages;        /* 0: until --duration */
    double warmup;
    double max_duration;  /* hard cap of the whole run */
    double hold;          /* idle */
    long burst;           /* fanout: K */
    int open_conc;        /* handshakes in progress at once */
    const char *sync;     /* file prefix for an outside observer */
    int server_pids[16];
    int n_server_pids;
    const char *tags[32];
    int n_tags;
    int json;             /* payloads from the JSON pool */
    int verify;           /* compare every echo with what was sent */
    int deflate;          /* offer permessage-deflate */
    const char *deflate_offer;
    int deflate_level;    /* client's zlib level */
    int deflate_memlevel;
    int deflate_takeover; /* our context takeover, where allowed */
    int prime;            /* idle: one echo per connection before the hold */
    int pub_port;         /* pubsub: the publisher's server (0: --port) */
    const char *pub_path; /* pubsub: its path (NULL: --path) */
    int warm_bursts;      /* pubsub: "burst 1 S" before the measured one */
} opt = {
    .host = "127.0.0.1", .port = 0, .path = "/", .mode = M_ECHO,
    .conns = 1, .inflight = 1, .size = 64, .binary = 0, .duration = 0,
    .messages = 0, .warmup = 0.5, .max_duration = 60, .hold = 5,
    .burst = 10, .open_conc = 256,
    .deflate_offer = "permessage-deflate; client_max_window_bits",
    .deflate_level = 6, .deflate_memlevel = 8, .warm_bursts = 1,
};

/* ------------------------------------------------------------- helpers */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "ws_load: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static uint64_t rng_s[2];

static uint64_t rng64(void)
{
    /* xorshift128+: masking keys need not be cryptographic for a load
     * generator, only different per frame. */
    uint64_t a = rng_s[0], b = rng_s[1];

    rng_s[0] = b;
    a ^= a << 23;
    rng_s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return rng_s[1] + b;
}

/* ---------------------------------------------------------------- SHA-1 */
/* FIPS 180-4, for Sec-WebSocket-Accept only. */

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
    uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
                      0xC3D2E1F0 };
    uint8_t block[64];
    uint64_t bits = (uint64_t)len * 8;
    size_t total = ((len + 8) / 64 + 1) * 64, off;
    int i;

    for (off = 0; off < total; off += 64) {
        uint32_t w[80], a, b, c, d, e;

        for (i = 0; i < 64; i++) {
            size_t p = off + (size_t)i;

            if (p < len)
                block[i] = msg[p];
            else if (p == len)
                block[i] = 0x80;
            else if (p >= total - 8)
                block[i] = (uint8_t)(bits >> (8 * (total - 1 - p)));
            else
                block[i] = 0;
        }
        for (i = 0; i < 16; i++)
            w[i] = (uint32_t)block[4 * i] << 24
                   | (uint32_t)block[4 * i + 1] << 16
                   | (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
        for (i = 16; i < 80; i++)
            w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];
        for (i = 0; i < 80; i++) {
            uint32_t f, k, t;

            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            t = rol(a, 5) + f + e + k + w[i];
            e = d; d = c; c = rol(b, 30); b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    for (i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

static void base64(const uint8_t *in, size_t len, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

        *out++ = tab[v >> 18];
        *out++ = tab[(v >> 12) & 63];
        *out++ = tab[(v >> 6) & 63];
        *out++ = tab[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;

        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        *out++ = tab[v >> 18];
        *out++ = tab[(v >> 12) & 63];
        *out++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    *out = '\0';
}

/* ---------------------------------------------------------------- zlib */
/* Loaded at run time, so that ws_load needs no library unless --deflate
 * is given (the Makefile links it with nothing). */

static struct {
    int (*deflateInit2_)(z_streamp, int, int, int, int, int, const char *,
                         int);
    int (*deflate)(z_streamp, int);
    int (*deflateReset)(z_streamp);
    int (*deflateEnd)(z_streamp);
    int (*inflateInit2_)(z_streamp, int, const char *, int);
    int (*inflate)(z_streamp, int);
    int (*inflateReset)(z_streamp);
    int (*inflateEnd)(z_streamp);
    const char *(*zlibVersion)(void);
} zf;

static void zsym(void *h, const char *name, void *slot)
{
    void *f = dlsym(h, name);

    if (!f)
        die("libz.so.1 has no %s", name);
    memcpy(slot, &f, sizeof(f));
}

static void zlib_load(void)
{
    void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);

    if (!h)
        die("--deflate needs zlib: %s", dlerror());
    zsym(h, "deflateInit2_", &zf.deflateInit2_);
    zsym(h, "deflate", &zf.deflate);
    zsym(h, "deflateReset", &zf.deflateReset);
    zsym(h, "deflateEnd", &zf.deflateEnd);
    zsym(h, "inflateInit2_", &zf.inflateInit2_);
    zsym(h, "inflate", &zf.inflate);
    zsym(h, "inflateReset", &zf.inflateReset);
    zsym(h, "inflateEnd", &zf.inflateEnd);
    zsym(h, "zlibVersion", &zf.zlibVersion);
    if (zf.zlibVersion()[0] != ZLIB_VERSION[0])
        die("libz.so.1 is zlib %s, built against %s", zf.zlibVersion(),
            ZLIB_VERSION);
}

/* Spare z_streams, by window bits: a connection takes one for a message
 * (inflater) or keeps it while context takeover needs it, and gives it
 * back reset. */
typedef struct zs {
    z_stream z;
    struct zs *next;
    int bits;
} zs_t;

static zs_t *spare_inf[16], *spare_def[16];

static zs_t *inflater_get(int bits)
{
    zs_t *s = spare_inf[bits];

    if (s) {
        spare_inf[bits] = s->next;
        return s;
    }
    if (!(s = calloc(1, sizeof(*s))))
        die("out of memory");
    s->bits = bits;
    if (zf.inflateInit2_(&s->z, -bits, ZLIB_VERSION, (int)sizeof(z_stream))
        != Z_OK)
        die("inflateInit2 failed");
    return s;
}

static void inflater_put(zs_t *s)
{
    zf.inflateReset(&s->z);
    s->next = spare_inf[s->bits];
    spare_inf[s->bits] = s;
}

static zs_t *deflater_get(int bits)
{
    zs_t *s = spare_def[bits];

    if (s) {
        spare_def[bits] = s->next;
        return s;
    }
    if (!(s = calloc(1, sizeof(*s))))
        die("out of memory");
    s->bits = bits;
    if (zf.deflateInit2_(&s->z, opt.deflate_level, Z_DEFLATED, -bits,
                         opt.deflate_memlevel, Z_DEFAULT_STRATEGY,
                         ZLIB_VERSION, (int)sizeof(z_stream)) != Z_OK)
        die("deflateInit2 failed");
    return s;
}

static void deflater_put(zs_t *s)
{
    zf.deflateReset(&s->z);
    s->next = spare_def[s->bits];
    spare_def[s->bits] = s;
}

/* Compresses [data, data+len) with s (Z_SYNC_FLUSH) into the returned
 * buffer, the 00 00 ff ff tail cut off (RFC 7692 7.2.1). */
static uint8_t *zbuf;
static size_t zbuf_cap;

static const uint8_t *deflate_msg(zs_t *s, const uint8_t *data, size_t len,
                                  size_t *out_len)
{
    size_t have = 0;
    int r;

    s->z.next_in = (Bytef *)(uintptr_t)data;
    s->z.avail_in = (uInt)len;
    for (;;) {
        if (zbuf_cap - have < 64) {
            zbuf_cap = zbuf_cap ? zbuf_cap * 2 : len + len / 8 + 256;
            if (!(zbuf = realloc(zbuf, zbuf_cap)))
                die("out of memory");
        }
        s->z.next_out = zbuf + have;
        s->z.avail_out = (uInt)(zbuf_cap - have);
        r = zf.deflate(&s->z, Z_SYNC_FLUSH);
        if (r != Z_OK && r != Z_BUF_ERROR)
            die("deflate failed (%d)", r);
        have = zbuf_cap - s->z.avail_out;
        if (s->z.avail_out)
            break;
    }
    if (have < 4 || memcmp(zbuf + have - 4, "\0\0\xff\xff", 4))
        die("deflate: no 00 00 ff ff at the end of a sync flush");
    *out_len = have - 4;
    return zbuf;
}

/* ---------------------------------------------------------- JSON pool */
/* POOL different JSON documents of exactly opt.size bytes, from a fixed
 * seed: a list of quotes as a market-data feed might send them. */

#define POOL 512

static uint8_t *pool[POOL];

static uint64_t jrng = 0x9E3779B97F4A7C15ull;

static uint32_t jr(uint32_t n)
{
    jrng ^= jrng << 13;
    jrng ^= jrng >> 7;
    jrng ^= jrng << 17;
    return (uint32_t)((jrng >> 11) % n);
}

static void make_pool(void)
{
    static const char *syms[] = { "ACME", "GLOBX", "INITECH", "UMBRL",
        "STARK", "WAYNE", "HOOLI", "PIEDP", "SOYLNT", "TYRELL", "CYBRD",
        "MASSV", "OSCP", "VANDL", "WONKA", "YOYOD" };
    static const char *names[] = { "Acme Corporation", "Globex Inc",
        "Initech LLC", "Umbrella Holdings", "Stark Industries",
        "Wayne Enterprises", "Hooli", "Pied Piper", "Soylent Foods",
        "Tyrell Corp", "Cyberdyne Systems", "Massive Dynamic", "OCP Group",
        "Vandelay Industries", "Wonka Confections", "Yoyodyne Propulsion" };
    static const char *venues[] = { "XNYS", "XNAS", "XLON", "XPAR", "XETR",
        "XTKS" };
    static const char *status[] = { "open", "open", "open", "filled",
        "partial", "cancelled" };
    static const char *words[] = { "market", "order", "filled", "partial",
        "limit", "session", "auction", "closing", "opening", "halted",
        "resumed", "volume", "spread", "quote", "update", "revised" };
    char *b;
    size_t size = opt.size, n;
    int i;
    uint32_t seq = 100000;

    if (size < 160)
        die("--json needs --size 160 or more");
    if (!(b = malloc(size + 512)))
        die("out of memory");
    for (i = 0; i < POOL; i++) {
        uint32_t id = 10000 + jr(80000), hh = 8 + jr(9), mm = jr(60),
                 ms = jr(60000);

        n = (size_t)sprintf(b, "{\"type\":\"quotes\",\"seq\":%u,\"items\":[",
                            seq++);
        for (;;) {
            char item[400];
            /* Prices move a little around each symbol's level. */
            uint32_t k = jr(16), bid = 2500 + k * 6173 + jr(300),
                     ask = bid + 1 + jr(40);
            int m;

            ms += jr(900);
            m = snprintf(item, sizeof(item),
                         "%s{\"id\":%u,\"symbol\":\"%s\",\"name\":\"%s\","
                         "\"bid\":%u.%02u,\"ask\":%u.%02u,\"currency\":\"%s\","
                         "\"quantity\":%u,\"side\":\"%s\",\"venue\":\"%s\","
                         "\"status\":\"%s\",\"time\":\"2024-06-10T%02u:%02u:"
                         "%02u.%03uZ\"}",
                         b[n - 1] == '[' ? "" : ",", id++, syms[k], names[k],
                         bid / 100, bid % 100, ask / 100, ask % 100,
                         k < 10 ? "USD" : "EUR",
                         100 * (1 + jr(50)), jr(2) ? "buy" : "sell",
                         venues[k % 6], status[jr(6)], hh, mm + ms / 60000,
                         ms / 1000 % 60, ms % 1000);
            /* The rest needs room for ],"note":"" } and a few letters. */
            if (n + (size_t)m + 16 > size)
                break;
            memcpy(b + n, item, (size_t)m);
            n += (size_t)m;
        }
        n += (size_t)sprintf(b + n, "],\"note\":\"");
        while (n < size - 2) {
            const char *w = words[jr(16)];
            size_t wl = strlen(w);

            if (wl > size - 2 - n)
                wl = size - 2 - n;
            memcpy(b + n, w, wl);
            n += wl;
            if (n < size - 2)
                b[n++] = ' ';
        }
        b[n++] = '"';
        b[n++] = '}';
        if (n != size)
            die("make_pool: %zu bytes, not %zu", n, size);
        if (!(pool[i] = malloc(size)))
            die("out of memory");
        memcpy(pool[i], b, size);
    }
    free(b);
}

/* ------------------------------------------------------------ histogram */
/* Log-linear buckets of microseconds: exact below 128, then 64 buckets per
 * power of two (under 1.6% relative error). */

#define H_SUB 64
#define H_BUCKETS (128 + 58 * H_SUB)

typedef struct {
    uint64_t b[H_BUCKETS];
    uint64_t n, max;
    double sum;
} hist_t;

static int h_index(uint64_t v)
{
    int msb, shift;

    if (v < 128)
        return (int)v;
    msb = 63 - __builtin_clzll(v);
    shift = msb - 6;
    return 128 + (shift - 1) * H_SUB + (int)((v >> shift) - H_SUB);
}

static double h_value(int idx)
{
    int shift;
    uint64_t lo;

    if (idx < 128)
        return idx;
    shift = (idx - 128) / H_SUB + 1;
    lo = (uint64_t)((idx - 128) % H_SUB + H_SUB) << shift;
    return (double)lo + (double)((1ull << shift) - 1) / 2.0;
}

static void h_add(hist_t *h, uint64_t v)
{
    int i = h_index(v);

    if (i >= H_BUCKETS)
        i = H_BUCKETS - 1;
    h->b[i]++;
    h->n++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
}

static double h_pct(const hist_t *h, double p)
{
    uint64_t want, seen = 0;
    int i;

    if (!h->n)
        return 0;
    want = (uint64_t)(p * (double)h->n + 0.5);
    if (want < 1)
        want = 1;
    for (i = 0; i < H_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want)
            return h_value(i);
    }
    return (double)h->max;
}

/* -------------------------------------------------- server-side figures */

typedef struct {
    double cpu_us;     /* utime + stime, all processes of the tree */
    long threads;
    long rss_kb;
    int procs;
    double busy_us;    /* every CPU's busy time, from /proc/stat */
    double client_us;  /* this process's CPU time */
} sstat_t;

/* Busy time of all CPUs from /proc/stat (user, nice, system, irq,
 * softirq, steal). Less the server's and this client's CPU time, it is
 * what other processes (and interrupts taken while a CPU idled) used. */
static double machine_busy_us(void)
{
    unsigned long long v[8] = { 0 };
    FILE *f = fopen("/proc/stat", "r");
    int n;

    if (!f)
        return 0;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
               &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return 0;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * 1e6
           / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6
           + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Reads pid's stat: ppid, utime + stime (ticks), threads, rss (pages). */
static int read_stat(int pid, int *ppid, unsigned long long *ticks,
                     long *threads, long *rss)
{
    char path[64], buf[1024];
    char *p;
    int fd, i;
    ssize_t n;
    unsigned long long ut = 0, st = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if ((fd = open(path, O_RDONLY)) < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    if (!(p = strrchr(buf, ')')))
        return -1;
    p += 2;  /* field 3, state */
    if (*p == 'Z')
        return -1;
    for (i = 3; i <= 24 && p; i++) {
        if (i == 4)
            *ppid = atoi(p);
        else if (i == 14)
            ut = strtoull(p, NULL, 10);
        else if (i == 15)
            st = strtoull(p, NULL, 10);
        else if (i == 20)
            *threads = atol(p);
        else if (i == 24)
            *rss = atol(p);
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    *ticks = ut + st;
    return 0;
}

static int server_stats(sstat_t *s)
{
    /* The tree: the given pids and every process descending from them,
     * found by walking /proc's parent links. */
    enum { MAXP = 65536 };
    static int pids[MAXP], ppids[MAXP], in_tree[MAXP];
    static unsigned long long ticks[MAXP];
    static long thr[MAXP], rss[MAXP];
    int n = 0, i, j, changed;
    DIR *d;
    struct dirent *e;
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

    memset(s, 0, sizeof(*s));
    s->busy_us = machine_busy_us();
    s->client_us = self_cpu_us();
    if (!opt.n_server_pids)
        return -1;
    if (!(d = opendir("/proc")))
        return -1;
    while ((e = readdir(d)) && n < MAXP) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pids[n] = atoi(e->d_name);
        if (read_stat(pids[n], &ppids[n], &ticks[n], &thr[n], &rss[n]) == 0) {
            in_tree[n] = 0;
            for (j = 0; j < opt.n_server_pids; j++)
                if (pids[n] == opt.server_pids[j])
                    in_tree[n] = 1;
            n++;
        }
    }
    closedir(d);
    do {
        changed = 0;
        for (i = 0; i < n; i++) {
            if (in_tree[i])
                continue;
            for (j = 0; j < n; j++)
                if (in_tree[j] && pids[j] == ppids[i]) {
                    in_tree[i] = 1;
                    changed = 1;
                    break;
                }
        }
    } while (changed);
    for (i = 0; i < n; i++) {
        if (!in_tree[i])
            continue;
        s->procs++;
        s->cpu_us += (double)ticks[i] * 1e6 / (double)hz;
        s->threads += thr[i];
        s->rss_kb += rss[i] * page / 1024;
    }
    return s->procs ? 0 : -1;
}

/* ---------------------------------------------------------- connections */

enum cstate { C_FREE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING, C_DONE };

#define STASH_MAX (16 * 1024)
#define READ_SIZE (256 * 1024)

typedef struct conn {
    int fd;
    int idx;
    enum cstate st;
    int pollout;          /* EPOLLOUT registered */
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    uint8_t *stash;       /* unparsed tail of the input */
    size_t stash_len, stash_cap;
    char accept[32];      /* expected Sec-WebSocket-Accept */
    /* frame parser */
    uint64_t skip;        /* payload bytes of a data frame still to skip */
    int skip_fin;         /* that frame ends its message */
    uint64_t msg_len;     /* bytes of the message so far */
    int in_msg;
    /* echo */
    uint64_t *ts;         /* ring of send times, inflight long */
    int ts_head, ts_n;
    long recvd;           /* data messages received */
    int close_sent, close_rcvd;
    double t_start;       /* connect() time */
    double t_state;       /* entered this state */
    int checked;          /* idle: echo checked */
    int idle_primed;      /* idle --prime: first echo back */
    uint32_t gen;         /* bumped at each connect: stale events */
    /* the message being received */
    int msg_op;           /* its opcode */
    int msg_z;            /* compressed (RSV1) */
    int z_ended;          /* its deflate stream ended (a BFINAL block) */
    const uint8_t *exp;   /* what it should be (NULL: not checked) */
    int vbad;             /* it differed from exp */
    /* payloads sent: echo, one per message in flight; idle, the last */
    const uint8_t **xr;
    const uint8_t *idle_exp;
    int pool_next;        /* --json: next pool entry */
    /* permessage-deflate, as the server's 101 said */
    int pmd;
    int snct, cnct;       /* server_/client_no_context_takeover */
    int smwb, cmwb;       /* server_/client_max_window_bits */
    zs_t *inf;            /* inflater: for one message, or kept while the
                             server takes over context */
    zs_t *def;            /* deflater kept for our context takeover */
    /* pubsub */
    int is_pub;           /* the publisher connection */
    long ps_next;         /* the number expected next in the burst */
    int whoami;           /* 1: asked, 2: answered */
    long pid;             /* its answer (0: none, an echo) */
    uint8_t head[PS_STAMP + 1];   /* the message's first bytes */
} conn_t;

static int ep;
static conn_t *conns;
static int nconns;
static uint8_t *rbuf;
static uint8_t *payload;
static struct sockaddr_in addr, pub_addr;

/* Counters. "m_" ones are reset when the measured window opens. */
static struct {
    long opened, failed_connect, failed_handshake, dropped, proto_err;
    long size_mismatch, lost;
    long pending;          /* connecting or in the handshake */
    long m_msgs, m_sent;   /* echo: echoes counted; messages sent */
    double m_bytes;
    long m_cycles;         /* churn */
    long close_timeouts;
    long deliveries;       /* fanout, pubsub (subscribers only) */
    long ps_order, ps_stamp; /* pubsub: out of order, no valid stamp */
    long ps_negative;      /* pubsub: stamp later than our clock */
    long ps_pub_recv;      /* pubsub: the publisher's own copies */
    long ps_whoami;        /* pubsub: answers to "whoami" */
    long idle_ok;
    long prime_ok;         /* idle --prime: echoes back before the hold */
    long content_mismatch; /* echo of the right length, other bytes */
    long deflate_on, deflate_declined;
    long rx_z, tx_z, m_rx_z, m_tx_z;   /* messages compressed */
    double wire_in, wire_out, m_wire_in, m_wire_out;  /* socket bytes */
    char ext[256];         /* the first Sec-WebSocket-Extensions answer */
    int measuring, stopping;
} g;

static hist_t lat;       /* echo round trips; churn: handshake times */
static hist_t cyc;       /* churn: whole cycle times */

static void ep_mod(conn_t *c, int want_out)
{
    struct epoll_event ev = { 0 };

    if (c->pollout == want_out)
        return;
    ev.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0);
    ev.data.u64 = (uint64_t)c->gen << 32 | (uint32_t)c->idx;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->pollout = want_out;
}

static void out_reserve(conn_t *c, size_t more)
{
    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + more <= c->out_cap)
        return;
    if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + more <= c->out_cap)
            return;
    }
    c->out_cap = (c->out_len + more) * 2;
    if (!(c->out = realloc(c->out, c->out_cap)))
        die("out of memory");
}

/* Appends one masked frame whose first byte is b0 (FIN, RSV, opcode). */
static void put_frame_b0(conn_t *c, uint8_t b0, const uint8_t *data,
                         size_t len)
{
    uint8_t *p;
    uint32_t key = (uint32_t)rng64();
    uint8_t k[4];
    size_t i = 0;
    uint64_t k8;

    out_reserve(c, len + 14);
    p = c->out + c->out_len;
    *p++ = b0;
    if (len < 126) {
        *p++ = (uint8_t)(0x80 | len);
    }
    else if (len < 65536) {
        *p++ = 0x80 | 126;
        *p++ = (uint8_t)(len >> 8);
        *p++ = (uint8_t)len;
    }
    else {
        int s;

        *p++ = 0x80 | 127;
        for (s = 56; s >= 0; s -= 8)
            *p++ = (uint8_t)((uint64_t)len >> s);
    }
    memcpy(k, &key, 4);
    memcpy(p, k, 4);
    p += 4;
    memcpy(&k8, k, 4);
    memcpy((uint8_t *)&k8 + 4, k, 4);
    for (; i + 8 <= len; i += 8) {
        uint64_t w;

        memcpy(&w, data + i, 8);
        w ^= k8;
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++)
        p[i] = data[i] ^ k[i & 3];
    c->out_len = (size_t)(p + len - c->out);
}

/* Appends one masked frame, FIN set. */
static void put_frame(conn_t *c, int opcode, const uint8_t *data, size_t len)
{
    put_frame_b0(c, (uint8_t)(0x80 | opcode), data, len);
}

/* --deflate without our context takeover: each pool entry (and at POOL
 * the fixed payload) compressed once per window size, the bytes a fresh
 * deflater gives every time. */
static uint8_t *zpool[16][POOL + 1];
static size_t zpool_len[16][POOL + 1];

/* Appends a data message: compressed when permessage-deflate is on. pidx
 * is its pool entry (-1: the fixed payload). */
static void put_data(conn_t *c, const uint8_t *data, size_t len, int pidx)
{
    int op = opt.binary ? 2 : 1;
    const uint8_t *z;
    size_t zlen;

    if (!c->pmd) {
        put_frame(c, op, data, len);
        return;
    }
    if (pidx < 0)
        pidx = POOL;
    if (!c->cnct && opt.deflate_takeover) {
        /* Context takeover: this connection's own deflater. */
        if (!c->def)
            c->def = deflater_get(c->cmwb);
        z = deflate_msg(c->def, data, len, &zlen);
    }
    else if (zpool[c->cmwb][pidx]) {
        z = zpool[c->cmwb][pidx];
        zlen = zpool_len[c->cmwb][pidx];
    }
    else {
        zs_t *d = deflater_get(c->cmwb);

        z = deflate_msg(d, data, len, &zlen);
        deflater_put(d);
        if (!(zpool[c->cmwb][pidx] = malloc(zlen ? zlen : 1)))
            die("out of memory");
        memcpy(zpool[c->cmwb][pidx], z, zlen);
        zpool_len[c->cmwb][pidx] = zlen;
    }
    put_frame_b0(c, (uint8_t)(0xC0 | op), z, zlen);
    g.tx_z++;
    if (g.measuring)
        g.m_tx_z++;
}

static void conn_finish(conn_t *c, int failed);

/* Writes what is queued. Returns -1 if the connection died. */
static int flush(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

        if (n > 0) {
            c->out_off += (size_t)n;
            g.wire_out += (double)n;
            if (g.measuring)
                g.m_wire_out += (double)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ep_mod(c, 1);
            return 0;
        }
        return -1;
    }
    c->out_off = c->out_len = 0;
    if (c->st != C_CONNECTING)
        ep_mod(c, 0);
    return 0;
}

/* The next payload of c: its pool entry, or the fixed payload (-1). */
static int next_payload(conn_t *c, const uint8_t **data)
{
    int i;

    if (!opt.json) {
        *data = payload;
        return -1;
    }
    i = c->pool_next;
    c->pool_next = (i + 1) % POOL;
    *data = pool[i];
    return i;
}

static void send_msg(conn_t *c)
{
    const uint8_t *data;
    int pidx = next_payload(c, &data);

    put_data(c, data, opt.size, pidx);
    if (c->xr)
        c->xr[(c->ts_head + c->ts_n) % opt.inflight] = data;
    if (c->ts)
        c->ts[(c->ts_head + c->ts_n++) % opt.inflight] = now_us();
    if (g.measuring)
        g.m_sent++;
}

/* Idle mode: one message, remembered to check its echo. */
static void send_idle_msg(conn_t *c)
{
    const uint8_t *data;
    int pidx = next_payload(c, &data);

    put_data(c, data, opt.size, pidx);
    c->idle_exp = data;
}

static void send_close(conn_t *c, uint16_t code)
{
    uint8_t b[2] = { (uint8_t)(code >> 8), (uint8_t)code };

    if (c->close_sent)
        return;
    put_frame(c, 8, b, 2);
    c->close_sent = 1;
    if (c->st == C_OPEN) {
        c->st = C_CLOSING;
        c->t_state = now_s();
    }
}

static void start_connect(conn_t *c)
{
    struct epoll_event ev = { 0 };
    int one = 1;
    uint8_t raw[16], digest[20];
    char keybuf[64], cat[128];
    uint64_t r1 = rng64(), r2 = rng64();

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->gen++;
    c->t_start = c->t_state = now_s();
    c->out_off = c->out_len = c->stash_len = 0;
    c->skip = c->msg_len = 0;
    c->in_msg = c->close_sent = c->close_rcvd = 0;
    c->ts_head = c->ts_n = 0;
    c->pmd = c->snct = c->cnct = 0;
    c->smwb = c->cmwb = 15;
    c->msg_z = c->z_ended = c->vbad = 0;
    c->exp = c->idle_exp = NULL;
    c->pollout = 1;
    g.pending++;
    if (c->fd < 0) {
        c->st = C_CONNECTING;
        conn_finish(c, 1);
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->st = C_CONNECTING;
    if (connect(c->fd, (struct sockaddr *)(c->is_pub ? &pub_addr : &addr),
                sizeof(addr)) < 0
        && errno != EINPROGRESS) {
        conn_finish(c, 1);
        return;
    }
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = (uint64_t)c->gen << 32 | (uint32_t)c->idx;
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    base64(raw, 16, keybuf);
    snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
             keybuf);
    sha1((const uint8_t *)cat, strlen(cat), digest);
    base64(digest, 20, c->accept);
    out_reserve(c, 1024);
    c->out_len = (size_t)snprintf((char *)c->out, c->out_cap,
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
        "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
        c->is_pub ? opt.pub_path : opt.path, opt.host,
        c->is_pub ? opt.pub_port : opt.port, keybuf, opt.deflate ? "Sec-WebSocket-Extensions: " : "",
        opt.deflate ? opt.deflate_offer : "", opt.deflate ? "\r\n" : "");
}

static void mode_on_open(conn_t *c);
static void mode_on_message(conn_t *c, int opcode, uint64_t len);
static void mode_on_closed(conn_t *c, int failed);

static void conn_finish(conn_t *c, int failed)
{
    enum cstate was = c->st;

    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->inf)
        inflater_put(c->inf);
    if (c->def)
        deflater_put(c->def);
    c->inf = c->def = NULL;
    c->st = C_DONE;
    if (was == C_CONNECTING || was == C_HANDSHAKE) {
        g.pending--;
        if (was == C_CONNECTING)
            g.failed_connect++;
        else
            g.failed_handshake++;
        mode_on_closed(c, 1);
        return;
    }
    if (failed && was == C_OPEN)
        g.dropped++;
    mode_on_closed(c, failed);
}

/* Trims blanks (and a CR) around [*b, *e). */
static void trim(char **b, char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
        (*e)--;
}

/* The server's Sec-WebSocket-Extensions (RFC 7692 7.1): permessage-deflate
 * with parameters we may accept, and only if we offered it. Returns -1 if
 * the handshake must fail. */
static int parse_extensions(conn_t *c, const char *v, const char *eol)
{
    char buf[256], *p, *end;
    int first = 1, bits;

    if (eol - v >= (long)sizeof(buf))
        return -1;
    memcpy(buf, v, (size_t)(eol - v));
    p = buf;
    end = buf + (eol - v);
    trim(&p, &end);
    *end = '\0';
    if (!g.ext[0])
        snprintf(g.ext, sizeof(g.ext), "%s", p);
    if (!opt.deflate || c->pmd || strchr(p, ','))
        return -1;      /* not offered; more than the one we offered */
    while (p < end) {
        char *semi = memchr(p, ';', (size_t)(end - p));
        char *ne = semi ? semi : end, *nb = p, *val = NULL, *ve = NULL;
        char *eq = memchr(p, '=', (size_t)(ne - p));

        if (eq) {
            val = eq + 1;
            ve = ne;
            trim(&val, &ve);
            if (ve - val >= 2 && *val == '"' && ve[-1] == '"') {
                val++;
                ve--;
            }
            *ve = '\0';
            ne = eq;
        }
        trim(&nb, &ne);
        *ne = '\0';
        p = semi ? semi + 1 : end;
        if (first) {
            if (strcasecmp(nb, "permessage-deflate") || val)
                return -1;
            first = 0;
        }
        else if (!strcasecmp(nb, "server_no_context_takeover") && !val)
            c->snct = 1;
        else if (!strcasecmp(nb, "client_no_context_takeover") && !val)
            c->cnct = 1;
        else if (!strcasecmp(nb, "server_max_window_bits") && val) {
            bits = atoi(val);
            if (bits < 8 || bits > 15)
                return -1;
            c->smwb = bits < 9 ? 9 : bits;  /* a 9-bit inflater reads 8 */
        }
        else if (!strcasecmp(nb, "client_max_window_bits") && val
                 && strstr(opt.deflate_offer, "client_max_window_bits")) {
            bits = atoi(val);
            /* zlib cannot deflate with a 256-byte window */
            if (bits < 9 || bits > 15)
                return -1;
            c->cmwb = bits;
        }
        else
            return -1;
    }
    if (first)
        return -1;
    c->pmd = 1;
    return 0;
}

/* Parses the 101 response in [p, p+len). Returns bytes used, 0 if more is
 * needed, -1 on failure. */
static long parse_handshake(conn_t *c, const uint8_t *p, size_t len)
{
    const uint8_t *end = memmem(p, len, "\r\n\r\n", 4);
    const char *h, *stop;
    int ok_accept = 0;

    if (!end)
        return len > STASH_MAX / 2 ? -1 : 0;
    end += 4;
    if (len < 12 || memcmp(p, "HTTP/1.1 101", 12))
        return -1;
    /* Sec-WebSocket-Accept and -Extensions, any case. */
    for (h = (const char *)p; h < (const char *)end; ) {
        const char *eol = memchr(h, '\n', (size_t)((const char *)end - h));

        if (!eol)
            break;
        if (eol - h > 21 && !strncasecmp(h, "Sec-WebSocket-Accept:", 21)) {
            const char *v = h + 21;
            size_t alen = strlen(c->accept);

            while (*v == ' ' || *v == '\t')
                v++;
            stop = eol;
            if ((size_t)(stop - v) >= alen && !memcmp(v, c->accept, alen))
                ok_accept = 1;
        }
        else if (eol - h > 25
                 && !strncasecmp(h, "Sec-WebSocket-Extensions:", 25)) {
            if (parse_extensions(c, h + 25, eol) < 0)
                return -1;
        }
        h = eol + 1;
    }
    return ok_accept ? (long)(end - p) : -1;
}

/* Payload bytes of the message being received, after inflating: counted,
 * and compared with what was sent. */
static void deliver(conn_t *c, const uint8_t *d, size_t n)
{
    if (opt.mode == M_PUBSUB && c->msg_len < PS_STAMP) {
        size_t take = PS_STAMP - (size_t)c->msg_len;

        memcpy(c->head + c->msg_len, d, take < n ? take : n);
    }
    if (c->exp && !c->vbad) {
        if (c->msg_len + n > opt.size
            || memcmp(c->exp + c->msg_len, d, n))
            c->vbad = 1;
    }
    c->msg_len += n;
}

static char zerr[128];     /* the first inflate error, for the log */

/* Feeds compressed bytes to the message's inflater. Returns -1 on corrupt
 * data. */
static int inflate_in(conn_t *c, const uint8_t *d, size_t n)
{
    static uint8_t obuf[65536];
    z_stream *z = &c->inf->z;
    int r;

    if (c->z_ended)
        return 0;   /* after a BFINAL block: the rest is ignored */
    z->next_in = (Bytef *)(uintptr_t)d;
    z->avail_in = (uInt)n;
    do {
        z->next_out = obuf;
        z->avail_out = sizeof(obuf);
        r = zf.inflate(z, Z_SYNC_FLUSH);
        if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) {
            if (!zerr[0])
                snprintf(zerr, sizeof(zerr), "inflate: %d %s", r,
                         z->msg ? z->msg : "");
            return -1;
        }
        deliver(c, obuf, sizeof(obuf) - z->avail_out);
        if (r == Z_STREAM_END) {
            c->z_ended = 1;
            break;
        }
        if (r == Z_BUF_ERROR)
            break;      /* no progress possible: needs more input */
    } while (z->avail_in || !z->avail_out);
    return 0;
}

static int payload_in(conn_t *c, const uint8_t *d, size_t n)
{
    if (c->msg_z)
        return inflate_in(c, d, n);
    deliver(c, d, n);
    return 0;
}

/* A data frame with opcode 1 or 2 starts a message. */
static void message_begin(conn_t *c, int op, int rsv1)
{
    c->in_msg = 1;
    c->msg_len = 0;
    c->msg_op = op;
    c->msg_z = rsv1;
    c->z_ended = 0;
    c->vbad = 0;
    c->exp = NULL;
    if (opt.verify) {
        if (opt.mode == M_ECHO && c->ts_n && c->xr)
            c->exp = c->xr[c->ts_head];
        else if (opt.mode == M_IDLE)
            c->exp = c->idle_exp;
    }
    if (rsv1) {
        if (!c->inf)
            c->inf = inflater_get(c->smwb);
        g.rx_z++;
        if (g.measuring)
            g.m_rx_z++;
    }
}

/* The last frame of the message is in. Returns -1 on corrupt data. */
static int message_end(conn_t *c)
{
    c->in_msg = 0;
    if (c->msg_z) {
        static const uint8_t tail[4] = { 0, 0, 0xff, 0xff };

        if (inflate_in(c, tail, 4) < 0)
            return -1;
        /* The server starts afresh each message: nothing to keep. */
        if (c->snct || c->z_ended) {
            inflater_put(c->inf);
            c->inf = NULL;
        }
    }
    if (c->exp && c->msg_op != (opt.binary ? 2 : 1))
        c->vbad = 1;
    mode_on_message(c, c->msg_op, c->msg_len);
    return 0;
}

/* Parses frames in [p, p+len). Returns bytes consumed, -1 on a protocol
 * error (the connection is then finished). */
static long parse_frames(conn_t *c, const uint8_t *p, size_t len)
{
    size_t pos = 0;

    while (pos < len && c->fd >= 0) {
        uint8_t b0, b1;
        uint64_t plen;
        size_t hlen;
        int op, fin;

        if (c->skip) {
            uint64_t take = len - pos < c->skip ? len - pos : c->skip;

            if (c->msg_z || c->exp || opt.mode == M_PUBSUB) {
                if (payload_in(c, p + pos, (size_t)take) < 0)
                    return -1;
            }
            else {
                c->msg_len += take;
            }
            c->skip -= take;
            pos += take;
            if (!c->skip && c->skip_fin && message_end(c) < 0)
                return -1;
            continue;
        }
        if (len - pos < 2)
            break;
        b0 = p[pos];
        b1 = p[pos + 1];
        if (b1 & 0x80)
            return -1;      /* a server must not mask */
        fin = b0 >> 7;
        op = b0 & 15;
        /* RSV1: permessage-deflate, on a message's first frame only. */
        if ((b0 & 0x30)
            || ((b0 & 0x40) && (!c->pmd || !(op == 1 || op == 2))))
            return -1;
        plen = b1 & 127;
        hlen = 2;
        if (plen == 126) {
            if (len - pos < 4)
                break;
            plen = (uint64_t)p[pos + 2] << 8 | p[pos + 3];
            hlen = 4;
        }
        else if (plen == 127) {
            int i;

            if (len - pos < 10)
                break;
            plen = 0;
            for (i = 0; i < 8; i++)
                plen = plen << 8 | p[pos + 2 + i];
            hlen = 10;
        }
        if (op >= 8) {
            /* Control: whole frame needed. */
            if (!fin || plen > 125)
                return -1;
            if (len - pos < hlen + plen)
                break;
            if (op == 8) {
                c->close_rcvd = 1;
                if (!c->close_sent) {
                    uint16_t code = plen >= 2
                        ? (uint16_t)(p[pos + hlen] << 8 | p[pos + hlen + 1])
                        : 1000;

                    /* The server closed first: echo its code (1005 is not
                     * to be sent, so 1000 for "no code"). */
                    if (c->st == C_OPEN && !g.stopping)
                        g.dropped++;
                    send_close(c, plen >= 2 ? code : 1000);
                    c->st = C_CLOSING;
                    c->t_state = now_s();
                }
            }
            else if (op == 9) {
                put_frame(c, 10, p + pos + hlen, (size_t)plen);
            }
            else if (op != 10) {
                return -1;
            }
            pos += hlen + (size_t)plen;
            continue;
        }
        if (op == 0 ? !c->in_msg : (op == 1 || op == 2) ? c->in_msg : 1)
            return -1;
        if (op)
            message_begin(c, op, (b0 & 0x40) != 0);
        pos += hlen;
        c->skip_fin = fin;
        if (plen == 0) {
            if (fin && message_end(c) < 0)
                return -1;
            continue;
        }
        c->skip = plen;
    }
    return (long)pos;
}

static void on_readable(conn_t *c)
{
    uint8_t *base = rbuf + STASH_MAX;
    ssize_t n;
    uint8_t *p;
    size_t len;
    long used;

    n = read(c->fd, base, READ_SIZE);
    if (n == 0) {
        /* EOF: the server closed. After our close it is the end of a clean
         * close; otherwise the connection was dropped. */
        conn_finish(c, !(c->close_sent && c->st == C_CLOSING));
        return;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        conn_finish(c, !(c->close_sent && c->st == C_CLOSING));
        return;
    }
    g.wire_in += (double)n;
    if (g.measuring)
        g.m_wire_in += (double)n;
    p = base - c->stash_len;
    if (c->stash_len)
        memcpy(p, c->stash, c->stash_len);
    len = c->stash_len + (size_t)n;
    c->stash_len = 0;
    if (c->st == C_HANDSHAKE) {
        used = parse_handshake(c, p, len);
        if (used < 0) {
            conn_finish(c, 1);
            return;
        }
        if (used == 0)
            goto keep;
        p += used;
        len -= (size_t)used;
        c->st = C_OPEN;
        c->t_state = now_s();
        g.pending--;
        g.opened++;
        if (c->pmd)
            g.deflate_on++;
        else if (opt.deflate)
            g.deflate_declined++;
        mode_on_open(c);
        if (c->fd < 0)
            return;
    }
    used = parse_frames(c, p, len);
    if (used < 0) {
        g.proto_err++;
        conn_finish(c, 1);
        return;
    }
    if (c->fd < 0)
        return;
    p += used;
    len -= (size_t)used;
keep:
    if (len) {
        if (len > STASH_MAX) {
            g.proto_err++;
            conn_finish(c, 1);
            return;
        }
        if (len > c->stash_cap) {
            c->stash_cap = len < 256 ? 256 : len;
            if (!(c->stash = realloc(c->stash, c->stash_cap)))
                die("out of memory");
        }
        memmove(c->stash, p, len);
        c->stash_len = len;
    }
    if (c->out_len > c->out_off && flush(c) < 0)
        conn_finish(c, 1);
}

static void on_writable(conn_t *c)
{
    if (c->st == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);

        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            conn_finish(c, 1);
            return;
        }
        c->st = C_HANDSHAKE;
        c->t_state = now_s();
    }
    if (flush(c) < 0)
        conn_finish(c, 1);
}

/* ------------------------------------------------------------- the loop */

static double deadline_all;

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[512];
    int n, i;

    n = epoll_wait(ep, evs, 512, timeout_ms);
    for (i = 0; i < n; i++) {
        conn_t *c = &conns[(uint32_t)evs[i].data.u64];

        if (c->fd < 0 || c->gen != (uint32_t)(evs[i].data.u64 >> 32))
            continue;
        if (evs[i].events & (EPOLLOUT | EPOLLERR))
            on_writable(c);
        if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
            on_readable(c);
    }
}

static int n_open(void)
{
    int i, n = 0;

    for (i = 0; i < nconns; i++)
        n += conns[i].st == C_OPEN;
    return n;
}

/* Opens every connection, open_conc handshakes at a time. Returns when all
 * are open or failed, or at the deadline. */
static void open_all(double deadline)
{
    int next = 0;

    while (now_s() < deadline) {
        while (next < nconns && g.pending < opt.open_conc)
            start_connect(&conns[next++]);
        if (next == nconns && g.pending == 0)
            break;
        poll_once(10);
    }
    /* Stragglers count as failed handshakes. */
    for (next = 0; next < nconns; next++)
        if (conns[next].st == C_CONNECTING || conns[next].st == C_HANDSHAKE)
            conn_finish(&conns[next], 1);
}

/* Sends a close to every open connection and waits up to `grace` seconds
 * for the closes to complete, then closes what is left. */
static void close_all(double grace)
{
    double end = now_s() + grace;
    int i, left;

    g.stopping = 1;
    for (i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];

        if (c->st == C_OPEN) {
            send_close(c, 1000);
            if (flush(c) < 0)
                conn_finish(c, 1);
        }
    }
    do {
        left = 0;
        for (i = 0; i < nconns; i++)
            left += conns[i].st == C_CLOSING;
        if (!left)
            break;
        poll_once(10);
    } while (now_s() < end);
    for (i = 0; i < nconns; i++)
        if (conns[i].fd >= 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, conns[i].fd, NULL);
            close(conns[i].fd);
            conns[i].fd = -1;
            conns[i].st = C_DONE;
        }
}

/* ------------------------------------------------------------ the modes */

static double fan_t0, fan_first, fan_last;
static long fan_expect;
static hist_t ps_lat;     /* pubsub: delivery latencies (us) */

/* pubsub: one whole message on c. */
static void pubsub_message(conn_t *c, int opcode, uint64_t len)
{
    unsigned long long stamp = 0;
    long seq = 0;
    uint64_t t = now_ns();
    int i;

    if (c->whoami == 1) {
        /* The answer to "whoami": "pid N", or the echo of a server that
         * does not say. */
        c->whoami = 2;
        g.ps_whoami++;
        if (len > 4 && len < PS_STAMP && !memcmp(c->head, "pid ", 4)) {
            c->head[len] = '\0';
            c->pid = atol((const char *)c->head + 4);
        }
        return;
    }
    if (c->is_pub) {
        g.ps_pub_recv++;
        return;
    }
    if (opcode != 1 || len != opt.size)
        g.size_mismatch++;
    /* "%019llu %010ld ": digits, a space, digits, a space. */
    if (len < PS_STAMP || c->head[19] != ' ' || c->head[30] != ' ') {
        g.ps_stamp++;
        return;
    }
    for (i = 0; i < 19; i++) {
        if (c->head[i] < '0' || c->head[i] > '9')
            break;
        stamp = stamp * 10 + (unsigned)(c->head[i] - '0');
    }
    if (i != 19) {
        g.ps_stamp++;
        return;
    }
    for (i = 20; i < 30; i++) {
        if (c->head[i] < '0' || c->head[i] > '9')
            break;
        seq = seq * 10 + (c->head[i] - '0');
    }
    if (i != 30) {
        g.ps_stamp++;
        return;
    }
    if (seq != c->ps_next)
        g.ps_order++;
    c->ps_next = seq + 1;
    if (t < stamp) {
        g.ps_negative++;
        t = stamp;
    }
    fan_last = now_s();
    if (g.measuring) {
        h_add(&ps_lat, (t - stamp) / 1000u);
        if (!g.deliveries)
            fan_first = fan_last;
    }
    g.deliveries++;
}

static void mode_on_open(conn_t *c)
{
    if (opt.mode == M_CHURN) {
        if (g.measuring)
            h_add(&lat, (uint64_t)((now_s() - c->t_start) * 1e6));
        send_close(c, 1000);
    }
}

static void mode_on_message(conn_t *c, int opcode, uint64_t len)
{
    (void)opcode;
    c->recvd++;
    switch (opt.mode) {
    case M_ECHO:
        if (len != opt.size)
            g.size_mismatch++;
        else if (c->exp && c->vbad)
            g.content_mismatch++;
        if (c->ts_n) {
            uint64_t t = c->ts[c->ts_head];

            c->ts_head = (c->ts_head + 1) % opt.inflight;
            c->ts_n--;
            if (g.measuring) {
                h_add(&lat, now_us() - t);
                g.m_msgs++;
                g.m_bytes += (double)len;
            }
        }
        if (!g.stopping && c->st == C_OPEN)
            send_msg(c);
        break;
    case M_IDLE:
        if (len != opt.size)
            g.size_mismatch++;
        else if (c->exp && c->vbad)
            g.content_mismatch++;
        if (opt.prime && !c->checked && !c->idle_primed) {
            c->idle_primed = 1;
            g.prime_ok++;
            break;
        }
        if (!c->checked) {
            c->checked = 1;
            g.idle_ok++;
        }
        break;
    case M_PUBSUB:
        pubsub_message(c, opcode, len);
        break;
    case M_FANOUT: {
        double t = now_s();

        if (!g.deliveries)
            fan_first = t;
        g.deliveries++;
        fan_last = t;
        break;
    }
    default:
        break;
    }
}

static void mode_on_closed(conn_t *c, int failed)
{
    if (opt.mode == M_ECHO && c->ts_n && !g.stopping)
        g.lost += c->ts_n;
    if (opt.mode == M_CHURN) {
        if (!failed && c->close_rcvd && g.measuring) {
            g.m_cycles++;
            h_add(&cyc, (uint64_t)((now_s() - c->t_start) * 1e6));
        }
        /* The churn loop starts the slot's next connection (not from
         * here: a refused connect would recurse). */
    }
}

static void sync_point(const char *mine, const char *theirs)
{
    char path[512];
    int fd;
    double end;

    if (!opt.sync)
        return;
    snprintf(path, sizeof(path), "%s.%s", opt.sync, mine);
    if ((fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644)) >= 0)
        close(fd);
    snprintf(path, sizeof(path), "%s.%s", opt.sync, theirs);
    end = now_s() + 30;
    while (access(path, F_OK) != 0 && now_s() < end) {
        poll_once(10);     /* keep answering pings meanwhile */
    }
}

/* pubsub: waits until the subscribers have `want` deliveries, nothing
 * new came for 5 s, or the run's deadline. */
static void pubsub_wait(long want, double t0)
{
    while (g.deliveries < want && now_s() < deadline_all) {
        poll_once(10);
        if (now_s() - (g.deliveries && fan_last > t0 ? fan_last : t0) > 5)
            break;
    }
}

static long ps_subs;           /* subscribers open at the burst */
static long ps_warm_lost;      /* warm-up deliveries that never came */
static long ps_whoami_missing; /* subscribers that did not answer */
static int ps_procs;           /* distinct "pid N" answers */
static char ps_spread[256];    /* subscribers per process, largest first */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;

    return (x > y) - (x < y);
}

static int cmp_long_desc(const void *a, const void *b)
{
    return cmp_long(b, a);
}

/* Ask every subscriber "whoami" and count the processes that hold them. */
static void pubsub_whoami(void)
{
    long *pids, *per, n = 0, np = 0, i;
    double end;
    size_t off = 0;

    for (i = 0; i < opt.conns; i++) {
        conn_t *c = &conns[i];

        if (c->st != C_OPEN)
            continue;
        c->whoami = 1;
        put_frame(c, 1, (const uint8_t *)"whoami", 6);
        if (flush(c) < 0)
            conn_finish(c, 1);
        n++;
    }
    end = now_s() + 10;
    while (g.ps_whoami < n && now_s() < end && now_s() < deadline_all)
        poll_once(10);
    pids = calloc((size_t)n + 1, sizeof(long));
    per = calloc((size_t)n + 1, sizeof(long));
    if (!pids || !per)
        die("out of memory");
    for (n = 0, i = 0; i < opt.conns; i++) {
        if (conns[i].whoami == 1)
            ps_whoami_missing++;
        else if (conns[i].whoami == 2 && conns[i].pid > 0)
            pids[n++] = conns[i].pid;
    }
    qsort(pids, (size_t)n, sizeof(long), cmp_long);
    for (i = 0; i < n; i++) {
        if (!i || pids[i] != pids[i - 1])
            per[np++] = 0;
        per[np - 1]++;
    }
    ps_procs = (int)np;
    qsort(per, (size_t)np, sizeof(long), cmp_long_desc);
    for (i = 0; i < np && off + 24 < sizeof(ps_spread); i++)
        off += (size_t)snprintf(ps_spread + off, sizeof(ps_spread) - off,
                                "%s%ld", i ? "+" : "", per[i]);
    free(pids);
    free(per);
}

/* pubsub: the warm-up bursts, then the measured one, between s0 and s1. */
static void pubsub_run(sstat_t *s0, sstat_t *s1, int have_s, double *t_m0,
                       double *t_m1)
{
    conn_t *pub = &conns[opt.conns];
    char cmd[64];
    int len, w;
    long i;

    pubsub_whoami();
    for (i = 0; i < opt.conns; i++)
        ps_subs += conns[i].st == C_OPEN;
    *t_m0 = *t_m1 = now_s();
    if (pub->st != C_OPEN)
        return;
    len = snprintf(cmd, sizeof(cmd), "burst 1 %zu", opt.size);
    for (w = 0; w < opt.warm_bursts; w++) {
        double t0 = now_s();

        g.deliveries = 0;
        put_frame(pub, 1, (const uint8_t *)cmd, (size_t)len);
        if (flush(pub) < 0)
            conn_finish(pub, 1);
        pubsub_wait(ps_subs, t0);
        if (g.deliveries < ps_subs)
            ps_warm_lost += ps_subs - g.deliveries;
        for (i = 0; i < opt.conns; i++)
            conns[i].ps_next = 0;
    }
    if (pub->st != C_OPEN)
        return;
    g.deliveries = 0;
    fan_expect = ps_subs * opt.burst;
    len = snprintf(cmd, sizeof(cmd), "burst %ld %zu", opt.burst, opt.size);
    if (have_s)
        server_stats(s0);
    g.measuring = 1;
    fan_t0 = *t_m0 = now_s();
    put_frame(pub, 1, (const uint8_t *)cmd, (size_t)len);
    if (flush(pub) < 0)
        conn_finish(pub, 1);
    pubsub_wait(fan_expect, fan_t0);
    *t_m1 = g.deliveries ? fan_last : now_s();
    g.measuring = 0;
    if (have_s)
        server_stats(s1);
}

/* ------------------------------------------------------------ reporting */

static void json_str(FILE *f, const char *key, const char *v)
{
    const char *p;

    fprintf(f, ",\"%s\":\"", key);
    for (p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', f);
        if ((unsigned char)*p >= 0x20)
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v)
{
    if (v == (double)(long long)v && v < 1e15 && v > -1e15)
        fprintf(f, ",\"%s\":%lld", key, (long long)v);
    else
        fprintf(f, ",\"%s\":%.3f", key, v);
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
"usage: ws_load --port P [options]\n"
"  --host H            server address (127.0.0.1)\n"
"  --port P            server port\n"
"  --path /P           request path (/)\n"
"  --mode M            echo | churn | idle | fanout | pubsub (echo)\n"
"  -c, --connections N connections (churn: at once) (1)\n"
"  --inflight K        echo: messages in flight per connection (1)\n"
"  --size BYTES        message payload size (64)\n"
"  --binary | --text   message type (text)\n"
"  --duration S        echo/churn: measured seconds\n"
"  --messages N        echo: stop after N echoes in the window\n"
"  --warmup S          echo/churn: seconds before measuring (0.5)\n"
"  --max-duration S    hard limit of the whole run (60)\n"
"  --hold S            idle: seconds to hold the connections (5)\n"
"  --burst K           fanout, pubsub: messages per connection (10)\n"
"  --pub-port P        pubsub: the publisher connection's port (--port)\n"
"  --pub-path /P       pubsub: its request path (--path)\n"
"  --warm-bursts N     pubsub: bursts of 1 message, each awaited by every\n"
"                      subscriber, before the measured one (1)\n"
"  --open-concurrency N  handshakes under way at once (256)\n"
"  --server-pid PID    server process (repeatable; its descendants too)\n"
"  --sync PREFIX       create PREFIX.ready then wait for PREFIX.go before\n"
"                      the window, PREFIX.done then PREFIX.end after it\n"
"  --tag KEY=VALUE     copied into the JSON line (repeatable)\n"
"  --json              payloads: a pool of 512 JSON documents of --size B\n"
"  --verify            compare every echo with what was sent (on with\n"
"                      --json and --deflate)\n"
"  --deflate           offer permessage-deflate (RFC 7692): the offer is\n"
"                      \"permessage-deflate; client_max_window_bits\"\n"
"  --deflate-offer S   offer S instead (implies --deflate)\n"
"  --deflate-level N   zlib level of our messages (6)\n"
"  --deflate-memlevel N  zlib memLevel of our deflaters (8)\n"
"  --deflate-takeover  compress with context takeover where the server\n"
"                      allows it (default: each message on its own)\n"
"  --json-sample       print the first JSON document and how well the\n"
"                      pool compresses, and exit\n"
"  --prime             idle: each connection echoes one message before\n"
"                      the hold (so the server holds what a used\n"
"                      connection holds)\n");
    exit(1);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "path", 1, 0, 'P' },
        { "mode", 1, 0, 'm' }, { "connections", 1, 0, 'c' },
        { "inflight", 1, 0, 'k' }, { "size", 1, 0, 's' },
        { "binary", 0, 0, 'B' }, { "text", 0, 0, 'T' },
        { "duration", 1, 0, 'd' }, { "messages", 1, 0, 'n' },
        { "warmup", 1, 0, 'w' }, { "max-duration", 1, 0, 'X' },
        { "hold", 1, 0, 'H' }, { "burst", 1, 0, 'K' },
        { "open-concurrency", 1, 0, 'O' }, { "server-pid", 1, 0, 'S' },
        { "sync", 1, 0, 'Y' }, { "tag", 1, 0, 't' }, { "help", 0, 0, '?' },
        { "json", 0, 0, 'J' }, { "verify", 0, 0, 'V' },
        { "deflate", 0, 0, 'D' }, { "deflate-offer", 1, 0, 'F' },
        { "deflate-level", 1, 0, 'L' }, { "deflate-memlevel", 1, 0, 'M' },
        { "deflate-takeover", 0, 0, 'N' }, { "prime", 0, 0, 'R' },
        { "json-sample", 0, 0, 'j' }, { "pub-port", 1, 0, 'u' },
        { "pub-path", 1, 0, 'U' }, { "warm-bursts", 1, 0, 'W' },
        { 0, 0, 0, 0 }
    };
    int ch, i;
    struct rlimit rl;
    rlim_t need;
    sstat_t s0 = { 0 }, s1 = { 0 }, sbase = { 0 };
    int have_s = 0;
    double t_run0, t_m0 = 0, t_m1 = 0;
    struct rusage ru0, ru1;
    double client_cpu;
    FILE *o = stdout;
    char human[512];
    int json_sample = 0;

    while ((ch = getopt_long(argc, argv, "c:", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'P': opt.path = optarg; break;
        case 'm':
            for (i = 0; i < N_MODES; i++)
                if (!strcmp(optarg, mode_names[i]))
                    opt.mode = (enum mode)i;
            if (strcmp(optarg, mode_names[opt.mode]))
                usage();
            break;
        case 'c': opt.conns = atoi(optarg); break;
        case 'k': opt.inflight = atoi(optarg); break;
        case 's': opt.size = (size_t)atol(optarg); break;
        case 'B': opt.binary = 1; break;
        case 'T': opt.binary = 0; break;
        case 'd': opt.duration = atof(optarg); break;
        case 'n': opt.messages = atol(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'X': opt.max_duration = atof(optarg); break;
        case 'H': opt.hold = atof(optarg); break;
        case 'K': opt.burst = atol(optarg); break;
        case 'O': opt.open_conc = atoi(optarg); break;
        case 'S':
            if (opt.n_server_pids < 16)
                opt.server_pids[opt.n_server_pids++] = atoi(optarg);
            break;
        case 'Y': opt.sync = optarg; break;
        case 't':
            if (opt.n_tags < 32 && strchr(optarg, '='))
                opt.tags[opt.n_tags++] = optarg;
            break;
        case 'J': opt.json = 1; break;
        case 'V': opt.verify = 1; break;
        case 'D': opt.deflate = 1; break;
        case 'F': opt.deflate = 1; opt.deflate_offer = optarg; break;
        case 'L': opt.deflate_level = atoi(optarg); break;
        case 'M': opt.deflate_memlevel = atoi(optarg); break;
        case 'N': opt.deflate_takeover = 1; break;
        case 'R': opt.prime = 1; break;
        case 'j': json_sample = 1; break;
        case 'u': opt.pub_port = atoi(optarg); break;
        case 'U': opt.pub_path = optarg; break;
        case 'W': opt.warm_bursts = atoi(optarg); break;
        default: usage();
        }
    }
    if (opt.port <= 0 || opt.conns < 1 || opt.inflight < 1
        || opt.max_duration <= 0 || opt.open_conc < 1
        || opt.deflate_level < 0 || opt.deflate_level > 9
        || opt.deflate_memlevel < 1 || opt.deflate_memlevel > 9
        || strlen(opt.deflate_offer) > 200 || strpbrk(opt.deflate_offer, "\r\n"))
        usage();
    if (!opt.pub_port)
        opt.pub_port = opt.port;
    if (!opt.pub_path)
        opt.pub_path = opt.path;
    if (opt.mode == M_PUBSUB
        && (opt.size < PS_STAMP || opt.binary || opt.json || opt.verify
            || opt.pub_port <= 0 || opt.warm_bursts < 0))
        die("--mode pubsub: text messages of at least %d bytes (the stamp), "
            "no --json/--verify/--binary", PS_STAMP);
    if (opt.json || opt.deflate)
        opt.verify = 1;
    if (opt.json && opt.binary)
        die("--json sends text");
    if (opt.deflate)
        zlib_load();
    if (opt.json)
        make_pool();
    if (json_sample) {
        /* The first document, and what zlib makes of the pool. */
        zs_t *d;
        int lv;

        if (!opt.json)
            make_pool();
        zlib_load();
        fwrite(pool[0], 1, opt.size, stdout);
        printf("\n");
        for (lv = 1; lv <= 9; lv += 5) {
            double sum = 0;

            opt.deflate_level = lv;
            d = deflater_get(15);
            for (i = 0; i < POOL; i++) {
                size_t zl;

                deflate_msg(d, pool[i], opt.size, &zl);
                zf.deflateReset(&d->z);
                sum += (double)zl;
            }
            printf("level %d, each on its own: %.0f of %zu bytes (%.1fx)\n",
                   lv, sum / POOL, opt.size, (double)opt.size * POOL / sum);
            zf.deflateEnd(&d->z);
            free(d);
            d = deflater_get(15);
            sum = 0;
            for (i = 0; i < POOL; i++) {
                size_t zl;

                deflate_msg(d, pool[i], opt.size, &zl);
                sum += (double)zl;
            }
            printf("level %d, context takeover: %.0f of %zu bytes (%.1fx)\n",
                   lv, sum / POOL, opt.size, (double)opt.size * POOL / sum);
            zf.deflateEnd(&d->z);
            free(d);
        }
        return 0;
    }
    if (opt.mode == M_ECHO && opt.duration <= 0 && opt.messages <= 0)
        opt.duration = 2;
    if (opt.mode == M_CHURN && opt.duration <= 0)
        opt.duration = 2;
    if (opt.max_duration > 3600)
        opt.max_duration = 3600;

    /* File descriptors: one per connection, and a few. */
    need = (rlim_t)opt.conns + 65;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need <= rl.rlim_max ? need : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    fprintf(stderr, "ws_load: RLIMIT_NOFILE soft %llu hard %llu (needed %llu)\n",
            (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
            (unsigned long long)need);
    if (rl.rlim_cur < need)
        die("cannot open %d connections: RLIMIT_NOFILE hard limit is %llu",
            opt.conns, (unsigned long long)rl.rlim_max);

    signal(SIGPIPE, SIG_IGN);
    if (getrandom(rng_s, sizeof(rng_s), 0) != sizeof(rng_s))
        rng_s[0] = (uint64_t)now_us(), rng_s[1] = (uint64_t)getpid();
    rng_s[0] |= 1;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1)
        die("--host must be an IPv4 address, not '%s'", opt.host);
    pub_addr = addr;
    pub_addr.sin_port = htons((uint16_t)opt.pub_port);
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1: %s", strerror(errno));
    rbuf = malloc(STASH_MAX + READ_SIZE);
    payload = malloc(opt.size ? opt.size : 1);
    for (i = 0; i < (int)opt.size; i++)
        payload[i] = opt.binary ? (uint8_t)rng64() : (uint8_t)('a' + i % 26);
    /* pubsub: the publisher is one more, the last. */
    nconns = opt.conns + (opt.mode == M_PUBSUB);
    conns = calloc((size_t)nconns, sizeof(*conns));
    if (!rbuf || !payload || !conns)
        die("out of memory");
    for (i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].idx = i;
        /* Spread the connections over the pool. */
        conns[i].pool_next = (int)((unsigned)i * 37u % POOL);
        conns[i].is_pub = opt.mode == M_PUBSUB && i == opt.conns;
        if (opt.mode == M_ECHO
            && !(conns[i].ts = calloc((size_t)opt.inflight, 8)))
            die("out of memory");
        if (opt.mode == M_ECHO && opt.verify
            && !(conns[i].xr = calloc((size_t)opt.inflight, sizeof(void *))))
            die("out of memory");
    }

    t_run0 = now_s();
    deadline_all = t_run0 + opt.max_duration;
    getrusage(RUSAGE_SELF, &ru0);
    if (opt.n_server_pids)
        have_s = server_stats(&sbase) == 0;

    if (opt.mode == M_CHURN) {
        /* All slots connect at once and reconnect as each cycle ends. */
        double end = t_run0 + opt.warmup;
        int phase = 0;

        /* Warm-up, then the window; each slot connects again as soon as
         * its last cycle ended (or failed: at most every 10 ms then). */
        for (;;) {
            double t = now_s();

            if (t >= deadline_all)
                break;
            if (t >= end) {
                if (phase++)
                    break;
                if (have_s)
                    server_stats(&s0);
                g.measuring = 1;
                t_m0 = t;
                end = t + opt.duration;
            }
            for (i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];
                double age = t - c->t_state;

                if (c->st == C_FREE || c->st == C_DONE)
                    start_connect(c);
                else if ((c->st == C_CONNECTING || c->st == C_HANDSHAKE)
                         && age > 5)
                    conn_finish(c, 1);
                else if (c->st == C_CLOSING && age > 2) {
                    g.close_timeouts++;
                    conn_finish(c, 1);
                }
            }
            poll_once(g.failed_connect + g.failed_handshake ? 10 : 1);
        }
        t_m1 = now_s();
        g.measuring = 0;
        if (have_s)
            server_stats(&s1);
        close_all(1.0);
    }
    else {
        open_all(deadline_all);
        if (opt.mode == M_IDLE && opt.prime) {
            /* Each connection echoes one message before the hold. */
            double end = now_s() + 20;

            for (i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];

                if (c->st != C_OPEN)
                    continue;
                send_idle_msg(c);
                if (flush(c) < 0)
                    conn_finish(c, 1);
            }
            while (g.prime_ok < (long)n_open() && now_s() < end
                   && now_s() < deadline_all)
                poll_once(10);
        }
        if (opt.mode == M_IDLE && have_s)
            server_stats(&s0);
        sync_point("ready", "go");
        if (opt.mode == M_ECHO) {
            double t_w = now_s();

            for (i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];
                int k;

                if (c->st != C_OPEN)
                    continue;
                for (k = 0; k < opt.inflight; k++)
                    send_msg(c);
                if (flush(c) < 0)
                    conn_finish(c, 1);
            }
            while (now_s() < t_w + opt.warmup && now_s() < deadline_all)
                poll_once(10);
            if (have_s)
                server_stats(&s0);
            g.measuring = 1;
            t_m0 = now_s();
            for (;;) {
                double t = now_s();

                if (t >= deadline_all)
                    break;
                if (opt.duration > 0 && t >= t_m0 + opt.duration)
                    break;
                if (opt.messages > 0 && g.m_msgs >= opt.messages)
                    break;
                if (!n_open())
                    break;
                poll_once(10);
            }
            t_m1 = now_s();
            g.measuring = 0;
            /* No new messages once the window closes, so an observer that
             * counts until PREFIX.done sees only the echoes counted (and
             * the few in flight). */
            g.stopping = 1;
            if (have_s)
                server_stats(&s1);
        }
        else if (opt.mode == M_IDLE) {
            double end = now_s() + opt.hold;

            t_m0 = now_s();
            while (now_s() < end && now_s() < deadline_all)
                poll_once(100);
            if (have_s)
                server_stats(&s1);
            /* Each connection sends one message and must get it back. */
            for (i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];

                if (c->st != C_OPEN)
                    continue;
                send_idle_msg(c);
                if (flush(c) < 0)
                    conn_finish(c, 1);
            }
            end = now_s() + 20;
            while (g.idle_ok < (long)n_open() && now_s() < end
                   && now_s() < deadline_all + 20)
                poll_once(10);
            t_m1 = now_s();
        }
        else if (opt.mode == M_PUBSUB) {
            pubsub_run(&s0, &s1, have_s, &t_m0, &t_m1);
        }
        else {  /* fanout */
            char cmd[64];
            int len = snprintf(cmd, sizeof(cmd), "burst %ld %zu", opt.burst,
                               opt.size);
            conn_t *first = NULL;

            for (i = 0; i < nconns && !first; i++)
                if (conns[i].st == C_OPEN)
                    first = &conns[i];
            fan_expect = (long)n_open() * opt.burst;
            if (first) {
                /* Let the server register the last ones (on_open runs
                 * before the 101, but be generous to every server). */
                double settle = now_s() + 0.2;

                while (now_s() < settle)
                    poll_once(10);
                if (have_s)
                    server_stats(&s0);
                g.measuring = 1;
                fan_t0 = t_m0 = now_s();
                put_frame(first, 1, (const uint8_t *)cmd, (size_t)len);
                if (flush(first) < 0)
                    conn_finish(first, 1);
                while (g.deliveries < fan_expect && now_s() < deadline_all) {
                    poll_once(10);
                    /* Nothing new for 5 s: the rest is not coming. */
                    if (now_s() - (g.deliveries ? fan_last : fan_t0) > 5)
                        break;
                }
                t_m1 = g.deliveries ? fan_last : now_s();
                g.measuring = 0;
                if (have_s)
                    server_stats(&s1);
            }
        }
        sync_point("done", "end");
        close_all(opt.mode == M_ECHO ? 1.0 : 0.3);
    }
    getrusage(RUSAGE_SELF, &ru1);
    client_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec)
                 + (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec)
                 + (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6
                 + (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;

    /* ---- report */
    {
        double win = t_m1 - t_m0;
        double count = 0, rate = 0, cpu = s1.cpu_us - s0.cpu_us;
        long errors = g.failed_connect + g.failed_handshake + g.proto_err
                      + g.size_mismatch + g.lost + g.content_mismatch
                      + g.deflate_declined
                      + (opt.mode == M_CHURN ? 0 : g.dropped);
        double ccpu = s1.client_us - s0.client_us;

        fprintf(o, "{\"tool\":\"ws_load\"");
        json_str(o, "mode", mode_names[opt.mode]);
        for (i = 0; i < opt.n_tags; i++) {
            char k[64];
            const char *eq = strchr(opt.tags[i], '=');
            size_t kl = (size_t)(eq - opt.tags[i]);

            if (kl >= sizeof(k))
                kl = sizeof(k) - 1;
            memcpy(k, opt.tags[i], kl);
            k[kl] = '\0';
            json_str(o, k, eq + 1);
        }
        json_num(o, "port", opt.port);
        json_str(o, "path", opt.path);
        json_num(o, "connections", opt.conns);
        json_num(o, "opened", (double)g.opened);
        json_num(o, "failed_connect", (double)g.failed_connect);
        json_num(o, "failed_handshake", (double)g.failed_handshake);
        json_num(o, "dropped", (double)g.dropped);
        json_num(o, "protocol_errors", (double)g.proto_err);
        json_num(o, "size_mismatch", (double)g.size_mismatch);
        json_num(o, "nofile", (double)rl.rlim_cur);
        json_num(o, "window_s", win);
        json_num(o, "json", opt.json);
        json_num(o, "verified", opt.verify);
        json_num(o, "content_mismatch", (double)g.content_mismatch);
        json_num(o, "deflate_offered", opt.deflate);
        if (opt.deflate) {
            json_str(o, "deflate_offer", opt.deflate_offer);
            json_num(o, "deflate_negotiated", (double)g.deflate_on);
            json_num(o, "deflate_declined", (double)g.deflate_declined);
            json_num(o, "client_deflate_level", opt.deflate_level);
            json_num(o, "client_deflate_memlevel", opt.deflate_memlevel);
            json_num(o, "client_takeover", opt.deflate_takeover);
        }
        json_str(o, "extensions", g.ext);
        if (zerr[0])
            json_str(o, "zlib_error", zerr);
        json_num(o, "rx_compressed", (double)g.rx_z);
        json_num(o, "tx_compressed", (double)g.tx_z);
        json_num(o, "wire_up_total", g.wire_out);
        json_num(o, "wire_down_total", g.wire_in);
        if (opt.mode == M_ECHO) {
            count = (double)g.m_msgs;
            rate = win > 0 ? count / win : 0;
            json_num(o, "inflight", opt.inflight);
            json_num(o, "size", (double)opt.size);
            json_str(o, "type", opt.binary ? "binary" : "text");
            json_num(o, "messages", count);
            json_num(o, "lost", (double)g.lost);
            json_num(o, "msg_per_s", rate);
            json_num(o, "mib_per_s", win > 0 ? g.m_bytes / win / 1048576.0 : 0);
            json_num(o, "lat_p50_us", h_pct(&lat, 0.50));
            json_num(o, "lat_p90_us", h_pct(&lat, 0.90));
            json_num(o, "lat_p99_us", h_pct(&lat, 0.99));
            json_num(o, "lat_max_us", (double)lat.max);
            json_num(o, "lat_mean_us", lat.n ? lat.sum / (double)lat.n : 0);
            /* Socket bytes over the window per echo counted: client to
             * server (up) and back (down). */
            json_num(o, "wire_up_bytes", g.m_wire_out);
            json_num(o, "wire_down_bytes", g.m_wire_in);
            json_num(o, "wire_up_per_msg", count > 0 ? g.m_wire_out / count : 0);
            json_num(o, "wire_down_per_msg", count > 0 ? g.m_wire_in / count : 0);
            json_num(o, "rx_compressed_pct",
                     count > 0 ? (double)g.m_rx_z / count * 100 : 0);
            json_num(o, "tx_compressed_pct", g.m_sent > 0
                     ? (double)g.m_tx_z / (double)g.m_sent * 100 : 0);
            if (have_s)
                json_num(o, "client_cpu_us_per_msg",
                         count > 0 ? ccpu / count : 0);
        }
        else if (opt.mode == M_CHURN) {
            count = (double)g.m_cycles;
            rate = win > 0 ? count / win : 0;
            json_num(o, "cycles", count);
            json_num(o, "handshakes_per_s", rate);
            json_num(o, "close_timeouts", (double)g.close_timeouts);
            json_num(o, "upgrade_p50_us", h_pct(&lat, 0.50));
            json_num(o, "upgrade_p99_us", h_pct(&lat, 0.99));
            json_num(o, "cycle_p50_us", h_pct(&cyc, 0.50));
            json_num(o, "cycle_p99_us", h_pct(&cyc, 0.99));
        }
        else if (opt.mode == M_IDLE) {
            json_num(o, "hold_s", opt.hold);
            json_num(o, "echo_ok", (double)g.idle_ok);
            json_num(o, "echo_missing", (double)(g.opened - g.idle_ok));
            errors += g.opened - g.idle_ok;
            if (opt.prime) {
                json_num(o, "primed", (double)g.prime_ok);
                errors += g.opened - g.prime_ok;
            }
        }
        else if (opt.mode == M_PUBSUB) {
            long miss = fan_expect - g.deliveries;

            count = (double)g.deliveries;
            rate = win > 0 ? count / win : 0;
            json_num(o, "burst", (double)opt.burst);
            json_num(o, "size", (double)opt.size);
            json_num(o, "pub_port", opt.pub_port);
            json_str(o, "pub_path", opt.pub_path);
            json_num(o, "subscribers", (double)ps_subs);
            json_num(o, "sub_processes", ps_procs);
            json_str(o, "sub_spread", ps_spread);
            json_num(o, "expected", (double)fan_expect);
            json_num(o, "deliveries", count);
            json_num(o, "missing", (double)miss);
            json_num(o, "deliveries_per_s", rate);
            json_num(o, "first_delivery_us",
                     g.deliveries ? (fan_first - fan_t0) * 1e6 : 0);
            json_num(o, "lat_p50_us", h_pct(&ps_lat, 0.50));
            json_num(o, "lat_p90_us", h_pct(&ps_lat, 0.90));
            json_num(o, "lat_p99_us", h_pct(&ps_lat, 0.99));
            json_num(o, "lat_max_us", (double)ps_lat.max);
            json_num(o, "lat_mean_us",
                     ps_lat.n ? ps_lat.sum / (double)ps_lat.n : 0);
            json_num(o, "order_errors", (double)g.ps_order);
            json_num(o, "stamp_errors", (double)g.ps_stamp);
            json_num(o, "negative_latency", (double)g.ps_negative);
            json_num(o, "pub_received", (double)g.ps_pub_recv);
            json_num(o, "warm_bursts", opt.warm_bursts);
            json_num(o, "warm_lost", (double)ps_warm_lost);
            json_num(o, "whoami_missing", (double)ps_whoami_missing);
            errors += (miss < 0 ? -miss : miss) + g.ps_order + g.ps_stamp
                      + ps_warm_lost + ps_whoami_missing;
        }
        else {
            count = (double)g.deliveries;
            rate = win > 0 ? count / win : 0;
            json_num(o, "burst", (double)opt.burst);
            json_num(o, "expected", (double)fan_expect);
            json_num(o, "deliveries", count);
            json_num(o, "deliveries_per_s", rate);
            json_num(o, "first_delivery_us",
                     g.deliveries ? (fan_first - fan_t0) * 1e6 : 0);
            errors += fan_expect - g.deliveries;
        }
        if (have_s) {
            json_num(o, "server_procs", s1.procs);
            json_num(o, "server_threads", (double)s1.threads);
            json_num(o, "server_rss_kb", (double)s1.rss_kb);
            json_num(o, "server_rss_base_kb", (double)sbase.rss_kb);
            if (opt.mode == M_IDLE) {
                json_num(o, "server_threads_open", (double)s0.threads);
                json_num(o, "server_rss_open_kb", (double)s0.rss_kb);
                json_num(o, "bytes_per_conn", g.opened
                         ? (double)(s1.rss_kb - sbase.rss_kb) * 1024.0
                           / (double)g.opened : 0);
            }
            else {
                json_num(o, "server_cpu_us", cpu);
                json_num(o, "server_cpu_pct", win > 0 ? cpu / 1e6 / win * 100 : 0);
                json_num(o, "server_cpu_us_per_msg", count > 0 ? cpu / count : 0);
            }
        }
        json_num(o, "client_cpu_pct",
                 now_s() > t_run0 ? client_cpu / (now_s() - t_run0) * 100 : 0);
        if (have_s && win > 0 && opt.mode != M_IDLE) {
            double cl = ccpu;
            double other = s1.busy_us - s0.busy_us - cpu - cl;

            /* Percent of one CPU, over the window. */
            json_num(o, "client_cpu_window_pct", cl / 1e6 / win * 100);
            json_num(o, "other_cpu_pct", other / 1e6 / win * 100);
        }
        json_num(o, "errors", (double)errors);
        fprintf(o, "}\n");
        fflush(o);

        if (opt.mode == M_ECHO)
            snprintf(human, sizeof(human),
                     "echo %d conn x %d in flight x %zu B%s%s: %.0f msg/s, p50 %.0f us, "
                     "p99 %.0f us, server %.2f us CPU/msg, wire %.0f B up "
                     "%.0f B down per msg, %ld errors",
                     opt.conns, opt.inflight, opt.size, opt.json ? " JSON" : "",
                     g.deflate_on ? " deflate" : "", rate,
                     h_pct(&lat, 0.5), h_pct(&lat, 0.99),
                     count > 0 && have_s ? cpu / count : 0,
                     count > 0 ? g.m_wire_out / count : 0,
                     count > 0 ? g.m_wire_in / count : 0, errors);
        else if (opt.mode == M_CHURN)
            snprintf(human, sizeof(human),
                     "churn %d at once: %.0f handshakes/s (upgrade p50 %.0f us), "
                     "server %.0f us CPU/cycle, %ld errors", opt.conns, rate,
                     h_pct(&lat, 0.5),
                     count > 0 && have_s ? cpu / count : 0, errors);
        else if (opt.mode == M_IDLE)
            snprintf(human, sizeof(human),
                     "idle %ld/%d open for %.1f s, %ld echoed after; server "
                     "%ld threads, RSS %ld -> %ld KiB (%.0f B/conn), %ld errors",
                     g.opened, opt.conns, opt.hold, g.idle_ok, s1.threads,
                     sbase.rss_kb, s1.rss_kb, g.opened
                     ? (double)(s1.rss_kb - sbase.rss_kb) * 1024.0
                       / (double)g.opened : 0, errors);
        else if (opt.mode == M_PUBSUB)
            snprintf(human, sizeof(human),
                     "pubsub %ld subs (%d procs: %s) x %ld: %ld/%ld delivered "
                     "in %.3f s = %.0f deliveries/s, p50 %.0f us, p99 %.0f us, "
                     "%ld out of order, %ld errors", ps_subs, ps_procs,
                     ps_spread[0] ? ps_spread : "-", opt.burst, g.deliveries,
                     fan_expect, win, rate, h_pct(&ps_lat, 0.5),
                     h_pct(&ps_lat, 0.99), g.ps_order, errors);
        else
            snprintf(human, sizeof(human),
                     "fanout %ld conns x %ld: %ld/%ld delivered in %.3f s = "
                     "%.0f deliveries/s, %ld errors", g.opened, opt.burst,
                     g.deliveries, fan_expect, win, rate, errors);
        if (opt.deflate || g.ext[0])
            fprintf(stderr, "ws_load: permessage-deflate on %ld of %ld "
                    "connections; the server said \"%s\"\n", g.deflate_on,
                    g.opened, g.ext);
        if (zerr[0])
            fprintf(stderr, "ws_load: first zlib error: %s\n", zerr);
        if (g.content_mismatch)
            fprintf(stderr, "ws_load: %ld echoes of the right length with "
                    "other bytes\n", g.content_mismatch);
        fprintf(stderr, "ws_load: %s\n", human);
        return errors ? 2 : 0;
    }
}
