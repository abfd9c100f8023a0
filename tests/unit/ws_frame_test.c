/* ws_frame_test.c: unit tests for ws_frame.c, the RFC 6455 §5.2 frame parser
 * and header writer.
 *
 * Every input is parsed whole, one byte at a time and at random splits, and
 * each run is reduced to the same normalized trace (header, the frame's whole
 * unmasked payload, end, error with code and offset), so a parser that only
 * works when a header or payload arrives in one piece fails here. Each chunk
 * is copied to end right before an unreadable page, so reading one byte past
 * the end the parser was given crashes the test.
 */
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ws_frame.h"
#include "ws_mask.h"
#include "test_util.h"

/* Random split runs per input, on top of the whole and bytewise runs. */
#define SPLIT_RUNS 24

/* Readable room before the guard page: the largest input fed whole. */
#define GUARD_ROOM (4u << 20)

/* ---- the normalized trace ---------------------------------------------- */

/* ck_assert() records a checkpoint with a write to Check's pipe on every
 * call, success or not; in loops that run per byte that costs minutes, so
 * these only call into Check on failure. */
#define REQUIRE(cond)                                                      \
    do {                                                                   \
        if (!(cond))                                                       \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);          \
    } while (0)

typedef struct rec {
    char     kind;      /* 'H' header, 'P' payload, 'E' end, 'X' error */
    uint8_t  fin, rsv, opcode, masked;
    uint64_t len;       /* H: the header's length; P: bytes in the record */
    size_t   at;        /* P: where its bytes start in trace.bytes */
    uint16_t code;      /* X */
    uint64_t offset;    /* X */
} rec_t;

typedef struct trace {
    rec_t   *rec;
    size_t   n, cap;
    uint8_t *bytes;
    size_t   nbytes, bcap;
} trace_t;

static void trace_free(trace_t *t)
{
    free(t->rec);
    free(t->bytes);
    memset(t, 0, sizeof(*t));
}

static rec_t *trace_add(trace_t *t, char kind)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->rec = realloc(t->rec, t->cap * sizeof(*t->rec));
        REQUIRE(t->rec != NULL);
    }
    memset(&t->rec[t->n], 0, sizeof(t->rec[0]));
    t->rec[t->n].kind = kind;
    return &t->rec[t->n++];
}

/* Room for len more payload bytes; returns where they go. */
static uint8_t *trace_room(trace_t *t, size_t len)
{
    if (t->nbytes + len > t->bcap) {
        while (t->nbytes + len > t->bcap)
            t->bcap = t->bcap ? 2 * t->bcap : 256;
        t->bytes = realloc(t->bytes, t->bcap);
        REQUIRE(t->bytes != NULL);
    }
    return t->bytes + t->nbytes;
}

/* Append payload bytes, unmasked with key at payload offset off when key is
 * not NULL (§5.3, as the engine does). Pieces of one frame merge into one
 * record, so the trace does not depend on how the input was split. */
static void trace_payload(trace_t *t, const uint8_t *data, size_t len,
                          const uint8_t *key, uint64_t off)
{
    uint8_t *dst = trace_room(t, len);
    rec_t *r;

    if (key)
        ws_mask_apply(dst, data, len, key, off);
    else
        memcpy(dst, data, len);
    if (t->n == 0 || t->rec[t->n - 1].kind != 'P') {
        r = trace_add(t, 'P');
        r->at = t->nbytes;
    }
    r = &t->rec[t->n - 1];
    t->nbytes += len;
    r->len += len;
}

static void trace_header(trace_t *t, const ws_frame_header_t *h)
{
    rec_t *r = trace_add(t, 'H');

    r->fin = h->fin;
    r->rsv = h->rsv;
    r->opcode = h->opcode;
    r->masked = h->masked;
    r->len = h->len;
}

static void trace_error(trace_t *t, uint16_t code, uint64_t offset)
{
    rec_t *r = trace_add(t, 'X');

    r->code = code;
    r->offset = offset;
}

/* A readable rendering for failure messages; payloads show as their length
 * and first bytes. */
static const char *trace_str(const trace_t *t, char *buf, size_t size)
{
    size_t i, k = 0;

    buf[0] = '\0';
    for (i = 0; i < t->n && k + 64 < size; i++) {
        const rec_t *r = &t->rec[i];

        switch (r->kind) {
        case 'H':
            k += snprintf(buf + k, size - k, "H(%u,%x,%x,%" PRIu64 ",%u) ",
                          r->fin, r->rsv, r->opcode, r->len, r->masked);
            break;
        case 'P':
            k += snprintf(buf + k, size - k, "P[%" PRIu64 "]%02x.. ", r->len,
                          t->bytes[r->at]);
            break;
        case 'E':
            k += snprintf(buf + k, size - k, "E ");
            break;
        default:
            k += snprintf(buf + k, size - k, "X(%u,%" PRIu64 ") ", r->code,
                          r->offset);
            break;
        }
    }
    return buf;
}

static int trace_equal(const trace_t *a, const trace_t *b)
{
    size_t i;

    if (a->n != b->n)
        return 0;
    for (i = 0; i < a->n; i++) {
        const rec_t *x = &a->rec[i], *y = &b->rec[i];

        if (x->kind != y->kind || x->fin != y->fin || x->rsv != y->rsv
            || x->opcode != y->opcode || x->masked != y->masked
            || x->len != y->len || x->code != y->code
            || x->offset != y->offset)
            return 0;
        if (x->kind == 'P'
            && memcmp(a->bytes + x->at, b->bytes + y->at, (size_t)x->len))
            return 0;
    }
    return 1;
}

/* ---- feeding the parser ------------------------------------------------ */

static uint8_t *guard_end;

/* The first byte of a PROT_NONE page, with GUARD_ROOM readable bytes before
 * it (picohttpparser's test.c does the same). */
static uint8_t *guard_page(void)
{
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *base;

    if (guard_end)
        return guard_end;
    base = mmap(NULL, GUARD_ROOM + (size_t)page, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(base != MAP_FAILED);
    guard_end = base + GUARD_ROOM;
    REQUIRE(mprotect(guard_end, (size_t)page, PROT_NONE) == 0);
    return guard_end;
}

typedef enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM } feed_mode_e;

static const char *const mode_names[] = { "whole", "bytewise", "random" };

/* Parse in[0..len) in chunks chosen by mode and record the trace. Each chunk
 * ends right at the guard page. Stops at the first error, after checking
 * that the error sticks. */
static void parse_all(const uint8_t *in, size_t len, int expect_masked,
                      uint8_t rsv_allowed, feed_mode_e mode, size_t max_chunk,
                      trace_t *t)
{
    uint8_t *gend = guard_page();
    ws_frame_parser_t p;
    size_t done = 0;

    REQUIRE(len <= GUARD_ROOM);
    ws_frame_parser_init(&p, expect_masked, rsv_allowed);
    do {
        size_t n = len - done, calls = 0;
        const uint8_t *pos, *end, *data;
        uint8_t *start;
        size_t dlen;

        if (mode == FEED_BYTES && n > 1)
            n = 1;
        else if (mode == FEED_RANDOM)
            n = test_rng_len(n < max_chunk ? n : max_chunk);
        start = gend - n;
        memcpy(start, in + done, n);
        pos = start;
        end = gend;
        for (;;) {
            ws_frame_result_e r = ws_frame_parse(&p, &pos, end, &data, &dlen);

            REQUIRE(pos >= start && pos <= end);
            /* The parser cannot stall: each byte yields at most a header,
             * a piece and an end. */
            REQUIRE(++calls <= 3 * n + 3);
            if (r == WS_FRAME_NEED_MORE) {
                REQUIRE(pos == end);
                REQUIRE(p.offset == done + n);
                break;
            }
            if (r == WS_FRAME_HEADER) {
                trace_header(t, &p.hdr);
            }
            else if (r == WS_FRAME_PAYLOAD) {
                REQUIRE(dlen > 0);
                REQUIRE(data + dlen == pos);
                REQUIRE(p.payload_off >= dlen);
                REQUIRE(p.payload_off <= p.hdr.len);
                trace_payload(t, data, dlen, p.hdr.masked ? p.hdr.mask : NULL,
                              p.payload_off - dlen);
            }
            else if (r == WS_FRAME_END) {
                REQUIRE(p.payload_off == p.hdr.len);
                trace_add(t, 'E');
            }
            else {
                const uint8_t *at = pos;

                REQUIRE(r == WS_FRAME_ERROR);
                REQUIRE(p.error_reason != NULL);
                REQUIRE(p.error_offset < p.offset);
                trace_error(t, p.error_code, p.error_offset);
                /* A failed parser stays failed and reads nothing more. */
                ck_assert_int_eq(ws_frame_parse(&p, &pos, end, &data, &dlen),
                                 WS_FRAME_ERROR);
                REQUIRE(pos == at);
                return;
            }
        }
        done += n;
    } while (done < len);
}

/* Parse whole, bytewise and at SPLIT_RUNS random splits; each trace must
 * equal want. */
static void check_all_splits(const char *name, const uint8_t *in, size_t len,
                             int expect_masked, uint8_t rsv_allowed,
                             const trace_t *want)
{
    static char wbuf[1024], gbuf[1024];
    int run;

    for (run = 0; run < 2 + SPLIT_RUNS; run++) {
        feed_mode_e mode = run < 2 ? (feed_mode_e)run : FEED_RANDOM;
        /* Alternate short and long chunks so both headers and payloads get
         * cut at every kind of place. */
        size_t max_chunk = run % 3 == 0 ? 3 : run % 3 == 1 ? 17 : len;
        trace_t got = { 0 };

        parse_all(in, len, expect_masked, rsv_allowed, mode, max_chunk, &got);
        ck_assert_msg(trace_equal(&got, want),
                      "%s, fed %s: got %s, want %s", name, mode_names[mode],
                      trace_str(&got, gbuf, sizeof(gbuf)),
                      trace_str(want, wbuf, sizeof(wbuf)));
        trace_free(&got);
    }
}

/* ---- table-driven cases ------------------------------------------------ */

typedef struct want_ev {
    char        kind;
    uint8_t     fin, rsv, opcode, masked;
    uint64_t    len;
    const char *payload;
    uint16_t    code;
    uint64_t    offset;
} want_ev_t;

#define HDR(f, r, op, n, m) \
    { .kind = 'H', .fin = f, .rsv = r, .opcode = op, .len = n, .masked = m }
#define PAY(s)       { .kind = 'P', .payload = s, .len = sizeof(s) - 1 }
#define END          { .kind = 'E' }
#define ERR(c, off)  { .kind = 'X', .code = c, .offset = off }

#define MAX_EVENTS 16

typedef struct frame_case {
    const char *name;          /* the RFC 6455 clause it checks */
    int         expect_masked; /* 1: server parsing client frames */
    uint8_t     rsv_allowed;
    const char *hex;           /* the input, as hex byte pairs */
    want_ev_t   want[MAX_EVENTS];
} frame_case_t;

/* The §5.7 masking key, used for every masked frame below. */
#define KEY " 37 fa 21 3d "
/* "Hello" masked with KEY: §5.7's second example. */
#define HELLO_M KEY "7f 9f 4d 51 58"
#define K " 01 02 03 04 "

static const frame_case_t cases[] = {
    /* §5.7 examples. */
    { "5.7 single-frame unmasked text to a server: 5.1 requires a mask",
      1, 0, "81 05 48 65 6c 6c 6f", { ERR(1002, 1) } },
    { "5.7 single-frame unmasked text to a client",
      0, 0, "81 05 48 65 6c 6c 6f",
      { HDR(1, 0, 1, 5, 0), PAY("Hello"), END } },
    { "5.7 single-frame masked text to a server",
      1, 0, "81 85 " HELLO_M, { HDR(1, 0, 1, 5, 1), PAY("Hello"), END } },
    { "5.1 masked server frame to a client",
      0, 0, "81 85 " HELLO_M, { ERR(1002, 1) } },
    { "5.7 fragmented unmasked text to a client",
      0, 0, "01 03 48 65 6c 80 02 6c 6f",
      { HDR(0, 0, 1, 3, 0), PAY("Hel"), END,
        HDR(1, 0, 0, 2, 0), PAY("lo"), END } },
    { "5.7 fragmented masked text to a server",
      1, 0, "01 83 " KEY "7f 9f 4d 80 82 " KEY "5b 95",
      { HDR(0, 0, 1, 3, 1), PAY("Hel"), END,
        HDR(1, 0, 0, 2, 1), PAY("lo"), END } },
    { "5.7 unmasked ping to a client",
      0, 0, "89 05 48 65 6c 6c 6f",
      { HDR(1, 0, 9, 5, 0), PAY("Hello"), END } },
    { "5.7 masked ping to a server",
      1, 0, "89 85 " HELLO_M, { HDR(1, 0, 9, 5, 1), PAY("Hello"), END } },
    { "5.7 masked pong to a server",
      1, 0, "8a 85 " HELLO_M, { HDR(1, 0, 0xA, 5, 1), PAY("Hello"), END } },
    { "5.7 unmasked pong to a client",
      0, 0, "8a 05 48 65 6c 6c 6f",
      { HDR(1, 0, 0xA, 5, 0), PAY("Hello"), END } },

    /* §5.2 payload length. */
    { "5.2 64-bit length with its most significant bit set (server)",
      1, 0, "82 ff 80 00 00 00 00 00 00 00" K, { ERR(1002, 2) } },
    { "5.2 64-bit length with its most significant bit set (client)",
      0, 0, "82 7f 80 00 00 00 00 00 00 00", { ERR(1002, 2) } },
    { "5.2 64-bit length 2^63-1 is a valid header",
      1, 0, "82 ff 7f ff ff ff ff ff ff ff " K "02 02",
      { HDR(1, 0, 2, INT64_MAX, 1), PAY("\x03\x00") } },
    { "5.2 error offsets count the frames before",
      1, 0, "81 85 " HELLO_M " 82 7f",
      { HDR(1, 0, 1, 5, 1), PAY("Hello"), END, ERR(1002, 12) } },

    /* §5.1 masking. */
    { "5.1 unmasked client frame after a good one",
      1, 0, "82 80 " K "82 00", { HDR(1, 0, 2, 0, 1), END, ERR(1002, 7) } },

    /* §5.2 RSV bits. */
    { "5.2 RSV1 without an extension", 1, 0, "c1 80" K, { ERR(1002, 0) } },
    { "5.2 RSV2 without an extension", 1, 0, "a1 80" K, { ERR(1002, 0) } },
    { "5.2 RSV3 without an extension", 1, 0, "91 80" K, { ERR(1002, 0) } },
    { "5.2 RSV1 on a binary frame without an extension",
      1, 0, "c2 80" K, { ERR(1002, 0) } },
    { "5.2 RSV1 on a text frame with RSV1 negotiated",
      1, WS_RSV1, "c1 80" K, { HDR(1, WS_RSV1, 1, 0, 1), END } },
    { "5.2 RSV1 on a binary frame with RSV1 negotiated",
      1, WS_RSV1, "c2 81" K "fe", { HDR(1, WS_RSV1, 2, 1, 1), PAY("\xff"),
                                   END } },
    { "5.2 RSV2 with only RSV1 negotiated",
      1, WS_RSV1, "a1 80" K, { ERR(1002, 0) } },
    { "5.2 RSV1 on a continuation frame (RFC 7692 6)",
      1, WS_RSV1, "41 80" K "c0 80" K,
      { HDR(0, WS_RSV1, 1, 0, 1), END, ERR(1002, 6) } },
    { "5.2 RSV1 on a ping, 5.5 control frames carry no extension bits",
      1, WS_RSV1, "c9 80" K, { ERR(1002, 0) } },
    { "5.2 RSV1 on a close with RSV1 negotiated",
      1, WS_RSV1, "c8 80" K, { ERR(1002, 0) } },

    /* §5.2 reserved opcodes, each failing on its own first byte. */
    { "5.2 reserved opcode 0x3", 1, 0, "83 80" K, { ERR(1002, 0) } },
    { "5.2 reserved opcode 0x4", 1, 0, "84 80" K, { ERR(1002, 0) } },
    { "5.2 reserved opcode 0x5", 1, 0, "85 80" K, { ERR(1002, 0) } },
    { "5.2 reserved opcode 0x6", 1, 0, "86 80" K, { ERR(1002, 0) } },
    { "5.2 reserved opcode 0x7", 1, 0, "87 80" K, { ERR(1002, 0) } },
    { "5.2 reserved opcode 0xB", 1, 0, "8b 80" K, { ERR(1002, 0) } },
    { "5.2 reserved opcode 0xC", 1, 0, "8c 80" K, { ERR(1002, 0) } },
    { "5.2 reserved opcode 0xD", 1, 0, "8d 80" K, { ERR(1002, 0) } },
    { "5.2 reserved opcode 0xE", 1, 0, "8e 80" K, { ERR(1002, 0) } },
    { "5.2 reserved opcode 0xF", 1, 0, "8f 80" K, { ERR(1002, 0) } },
    { "5.2 reserved opcode 0x3 without FIN", 1, 0, "03 80" K,
      { ERR(1002, 0) } },
    { "5.2 reserved opcode after a good frame",
      0, 0, "81 00 8b 00", { HDR(1, 0, 1, 0, 0), END, ERR(1002, 2) } },

    /* §5.5 control frames. */
    { "5.5 close without FIN", 1, 0, "08 80" K, { ERR(1002, 0) } },
    { "5.5 ping without FIN", 1, 0, "09 80" K, { ERR(1002, 0) } },
    { "5.5 pong without FIN", 1, 0, "0a 80" K, { ERR(1002, 0) } },
    { "5.5 ping with a 16-bit length of 126",
      1, 0, "89 fe 00 7e", { ERR(1002, 1) } },
    { "5.5 close with a 64-bit length", 1, 0, "88 ff", { ERR(1002, 1) } },
    { "5.5 pong with length 126 to a client",
      0, 0, "8a 7e 00 7e", { ERR(1002, 1) } },
    { "5.5 empty close", 1, 0, "88 80" K, { HDR(1, 0, 8, 0, 1), END } },

    /* §5.4 fragmentation. */
    { "5.4 continuation with no message open",
      1, 0, "80 80" K, { ERR(1002, 0) } },
    { "5.4 non-final continuation with no message open",
      1, 0, "00 80" K, { ERR(1002, 0) } },
    { "5.4 continuation after a finished message",
      0, 0, "01 00 80 00 80 00",
      { HDR(0, 0, 1, 0, 0), END, HDR(1, 0, 0, 0, 0), END, ERR(1002, 4) } },
    { "5.4 new text frame while a fragmented message is open",
      1, 0, "01 80" K "81 80" K, { HDR(0, 0, 1, 0, 1), END, ERR(1002, 6) } },
    { "5.4 new binary frame while a fragmented message is open",
      0, 0, "02 00 00 00 02 00",
      { HDR(0, 0, 2, 0, 0), END, HDR(0, 0, 0, 0, 0), END, ERR(1002, 4) } },
    { "5.4 control frames between fragments",
      1, 0, "01 83 " KEY "7f 9f 4d 89 80" K "8a 81" K "fe 88 82" K
            "02 ea 80 82 " KEY "5b 95",
      { HDR(0, 0, 1, 3, 1), PAY("Hel"), END,
        HDR(1, 0, 9, 0, 1), END,
        HDR(1, 0, 0xA, 1, 1), PAY("\xff"), END,
        HDR(1, 0, 8, 2, 1), PAY("\x03\xe8"), END,
        HDR(1, 0, 0, 2, 1), PAY("lo"), END } },
    { "5.4 three fragments, then a new message",
      0, 0, "02 01 61 00 01 62 80 01 63 81 00",
      { HDR(0, 0, 2, 1, 0), PAY("a"), END, HDR(0, 0, 0, 1, 0), PAY("b"), END,
        HDR(1, 0, 0, 1, 0), PAY("c"), END, HDR(1, 0, 1, 0, 0), END } },

    /* §5.2 zero-length payloads: a header, then the end, no payload. */
    { "5.2 zero-length text", 1, 0, "81 80" K, { HDR(1, 0, 1, 0, 1), END } },
    { "5.2 zero-length fragments",
      1, 0, "01 80" K "00 80" K "80 80" K,
      { HDR(0, 0, 1, 0, 1), END, HDR(0, 0, 0, 0, 1), END,
        HDR(1, 0, 0, 0, 1), END } },
    { "5.2 zero-length frames back to back",
      0, 0, "82 00 89 00 8a 00 88 00",
      { HDR(1, 0, 2, 0, 0), END, HDR(1, 0, 9, 0, 0), END,
        HDR(1, 0, 0xA, 0, 0), END, HDR(1, 0, 8, 0, 0), END } },

    /* §5.2 an incomplete frame: what arrived is reported, nothing more. */
    { "5.2 a header cut short", 1, 0, "81 85 37 fa", { { 0 } } },
    { "5.2 a payload cut short",
      1, 0, "81 85 " KEY "7f 9f", { HDR(1, 0, 1, 5, 1), PAY("He") } },
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Decode "81 05 48" style hex; returns the length. */
static size_t unhex(const char *hex, uint8_t *out, size_t size)
{
    size_t n = 0;
    unsigned v;
    int used;

    while (sscanf(hex, " %2x%n", &v, &used) == 1) {
        ck_assert_uint_lt(n, size);
        out[n++] = (uint8_t)v;
        hex += used;
    }
    return n;
}

static void want_trace(const want_ev_t *w, trace_t *t)
{
    for (; w->kind; w++) {
        if (w->kind == 'H') {
            ws_frame_header_t h = { .fin = w->fin, .rsv = w->rsv,
                                    .opcode = w->opcode, .masked = w->masked,
                                    .len = w->len };
            trace_header(t, &h);
        }
        else if (w->kind == 'P') {
            trace_payload(t, (const uint8_t *)w->payload, (size_t)w->len, NULL,
                          0);
        }
        else if (w->kind == 'E') {
            trace_add(t, 'E');
        }
        else {
            trace_error(t, w->code, w->offset);
        }
    }
}

START_TEST(rfc6455_frame_cases)
{
    const frame_case_t *c = &cases[_i];
    uint8_t in[256];
    size_t len = unhex(c->hex, in, sizeof(in));
    trace_t want = { 0 };

    test_rng_init();
    want_trace(c->want, &want);
    check_all_splits(c->name, in, len, c->expect_masked, c->rsv_allowed,
                     &want);
    trace_free(&want);
}
END_TEST

/* ---- lengths and their boundaries -------------------------------------- */

static void fill(uint8_t *p, size_t len, unsigned salt)
{
    size_t i;

    for (i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 7 + salt + (i >> 9));
}

/* Build a frame by hand (not with the writer, which is under test too): the
 * header in the encoding the length calls for, then the payload, masked
 * when key is not NULL. Returns the frame's length. */
static size_t hand_frame(uint8_t *out, uint8_t b0, const uint8_t *payload,
                         size_t len, const uint8_t *key)
{
    size_t n = 2, i;

    out[0] = b0;
    if (len < 126) {
        out[1] = (uint8_t)len;
    }
    else if (len < 65536) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    }
    else {
        out[1] = 127;
        for (i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        n = 10;
    }
    if (key) {
        out[1] |= 0x80;
        memcpy(out + n, key, 4);
        n += 4;
        for (i = 0; i < len; i++)
            out[n + i] = payload[i] ^ key[i % 4];
    }
    else {
        memcpy(out + n, payload, len);
    }
    return n + len;
}

static const size_t boundary_lens[] = {
    0, 1, 124, 125, 126, 127, 255, 256, 65534, 65535, 65536, 65537, 70000
};

#define NLENS (sizeof(boundary_lens) / sizeof(boundary_lens[0]))

/* §5.2: 7-bit lengths up to 125, 16-bit up to 65535, 64-bit beyond; each
 * boundary length parsed server-side (masked) and client-side (unmasked),
 * then a second frame to show the parser is back at a header. */
START_TEST(rfc6455_5_2_length_boundaries)
{
    static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
    size_t len = boundary_lens[_i / 2];
    int masked = _i % 2 == 0;
    uint8_t *payload = malloc(len + 1), *in = malloc(len + 64);
    trace_t want = { 0 };
    ws_frame_header_t h = { .fin = 1, .opcode = WS_OP_BINARY,
                            .masked = (uint8_t)masked, .len = len };
    ws_frame_header_t h2 = { .fin = 1, .opcode = WS_OP_PING,
                             .masked = (uint8_t)masked, .len = 1 };
    char name[64];
    size_t n;

    test_rng_init();
    fill(payload, len + 1, (unsigned)len);
    n = hand_frame(in, 0x82, payload, len, masked ? key : NULL);
    n += hand_frame(in + n, 0x89, payload + len, 1, masked ? key : NULL);
    trace_header(&want, &h);
    if (len)
        trace_payload(&want, payload, len, NULL, 0);
    trace_add(&want, 'E');
    trace_header(&want, &h2);
    trace_payload(&want, payload + len, 1, NULL, 0);
    trace_add(&want, 'E');
    snprintf(name, sizeof(name), "5.2 %s binary of %zu bytes",
             masked ? "masked" : "unmasked", len);
    check_all_splits(name, in, n, masked, 0, &want);
    trace_free(&want);
    free(payload);
    free(in);
}
END_TEST

/* §5.7: "256 bytes binary message in a single unmasked frame" and "64KiB
 * binary message in a single unmasked frame", with the exact headers the
 * RFC prints; and §5.5: a control frame of exactly 125 bytes is allowed. */
START_TEST(rfc6455_5_7_large_binary_examples)
{
    static const uint8_t h256[] = { 0x82, 0x7E, 0x01, 0x00 };
    static const uint8_t h64k[] = { 0x82, 0x7F, 0x00, 0x00, 0x00, 0x00,
                                    0x00, 0x01, 0x00, 0x00 };
    static const uint8_t h125[] = { 0x89, 0x7D };
    static const struct {
        const uint8_t *hdr;
        size_t hlen, len;
        uint8_t opcode;
    } ex[] = {
        { h256, sizeof(h256), 256, WS_OP_BINARY },
        { h64k, sizeof(h64k), 65536, WS_OP_BINARY },
        { h125, sizeof(h125), 125, WS_OP_PING },
    };
    size_t i;

    test_rng_init();
    for (i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
        uint8_t *in = malloc(ex[i].hlen + ex[i].len);
        ws_frame_header_t h = { .fin = 1, .opcode = ex[i].opcode,
                                .len = ex[i].len };
        trace_t want = { 0 };

        memcpy(in, ex[i].hdr, ex[i].hlen);
        fill(in + ex[i].hlen, ex[i].len, 5);
        trace_header(&want, &h);
        trace_payload(&want, in + ex[i].hlen, ex[i].len, NULL, 0);
        trace_add(&want, 'E');
        check_all_splits("5.7 large unmasked binary", in,
                         ex[i].hlen + ex[i].len, 0, 0, &want);
        trace_free(&want);
        free(in);
    }
}
END_TEST

/* §5.2: once the parser has failed it keeps failing, even on good input,
 * consumes nothing, and keeps the first error. */
START_TEST(rfc6455_5_2_error_sticks)
{
    static const uint8_t bad[] = { 0x83, 0x80 };
    static const uint8_t good[] = { 0x81, 0x80, 1, 2, 3, 4 };
    ws_frame_parser_t p;
    const uint8_t *pos = bad, *data = NULL;
    size_t len = 0;
    int i;

    ws_frame_parser_init(&p, 1, 0);
    ck_assert_int_eq(ws_frame_parse(&p, &pos, bad + sizeof(bad), &data, &len),
                     WS_FRAME_ERROR);
    ck_assert_uint_eq(p.error_code, WS_CLOSE_PROTOCOL_ERROR);
    ck_assert_uint_eq(p.error_offset, 0);
    for (i = 0; i < 3; i++) {
        pos = good;
        ck_assert_int_eq(ws_frame_parse(&p, &pos, good + sizeof(good), &data,
                                        &len), WS_FRAME_ERROR);
        ck_assert_ptr_eq(pos, good);
        ck_assert_uint_eq(p.error_code, WS_CLOSE_PROTOCOL_ERROR);
        ck_assert_uint_eq(p.error_offset, 0);
    }
}
END_TEST

/* §5.2 as the header documents it: data and len may be NULL when the
 * caller skips payload; the parser still accounts for every byte. */
START_TEST(rfc6455_5_2_null_data_and_len)
{
    static const uint8_t in[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                  0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    ws_frame_parser_t p;
    const uint8_t *pos = in, *end = in + sizeof(in);
    ws_frame_result_e r;

    ws_frame_parser_init(&p, 1, 0);
    ck_assert_int_eq(ws_frame_parse(&p, &pos, end, NULL, NULL),
                     WS_FRAME_HEADER);
    while ((r = ws_frame_parse(&p, &pos, end, NULL, NULL))
           == WS_FRAME_PAYLOAD)
        ;
    ck_assert_int_eq(r, WS_FRAME_END);
    ck_assert_uint_eq(p.payload_off, 5);
    ck_assert_int_eq(ws_frame_parse(&p, &pos, end, NULL, NULL),
                     WS_FRAME_NEED_MORE);
    ck_assert_ptr_eq(pos, end);
}
END_TEST

/* ---- the writer -------------------------------------------------------- */

/* §5.2: "the minimal number of bytes MUST be used to encode the length". */
START_TEST(rfc6455_5_2_writer_minimal_length)
{
    static const struct {
        uint64_t len;
        size_t   hlen;
        uint8_t  bytes[10];
    } w[] = {
        { 0, 2, { 0x82, 0x00 } },
        { 125, 2, { 0x82, 0x7D } },
        { 126, 4, { 0x82, 0x7E, 0x00, 0x7E } },
        { 256, 4, { 0x82, 0x7E, 0x01, 0x00 } },
        { 65535, 4, { 0x82, 0x7E, 0xFF, 0xFF } },
        { 65536, 10, { 0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 } },
        { 0x0123456789ABCDEFull, 10,
          { 0x82, 0x7F, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF } },
        { INT64_MAX, 10,
          { 0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF } },
    };
    uint8_t out[WS_FRAME_HEADER_MAX + 4];
    size_t i, n;

    for (i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        memset(out, 0xEE, sizeof(out));
        n = ws_frame_write_header(out, 1, 0, WS_OP_BINARY, w[i].len, NULL);
        ck_assert_uint_eq(n, w[i].hlen);
        ck_assert_mem_eq(out, w[i].bytes, n);
        ck_assert_uint_eq(out[n], 0xEE);
    }
}
END_TEST

/* §5.2 and §5.3: a client frame has the MASK bit and the key right after
 * the length, in every length encoding; FIN, RSV and opcode land in the
 * first byte. */
START_TEST(rfc6455_5_3_writer_mask_bit_and_key)
{
    static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
    static const uint64_t lens[] = { 0, 5, 125, 126, 65535, 65536 };
    static const size_t hlens[] = { 6, 6, 6, 8, 8, 14 };
    uint8_t out[WS_FRAME_HEADER_MAX + 4];
    size_t i, n;

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        memset(out, 0xEE, sizeof(out));
        n = ws_frame_write_header(out, 1, 0, WS_OP_TEXT, lens[i], key);
        ck_assert_uint_eq(n, hlens[i]);
        ck_assert_uint_eq(out[0], 0x81);
        ck_assert_uint_eq(out[1] & 0x80, 0x80);
        ck_assert_uint_eq(out[1] & 0x7F,
                          lens[i] < 126 ? lens[i] : lens[i] < 65536 ? 126
                                                                    : 127);
        ck_assert_mem_eq(out + n - 4, key, 4);
        ck_assert_uint_eq(out[n], 0xEE);
    }
    n = ws_frame_write_header(out, 0, WS_RSV1 | WS_RSV3, WS_OP_CONTINUATION,
                              3, NULL);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(out[0], 0x50);
    ck_assert_uint_eq(out[1], 0x03);
    /* Bits outside the RSV field and the opcode nibble are not smeared
     * into the byte. */
    ws_frame_write_header(out, 1, 0xFF, 0xF9, 0, NULL);
    ck_assert_uint_eq(out[0], 0xF9);
}
END_TEST

/* One frame of a random but valid sequence. */
typedef struct rt_frame {
    uint8_t fin, opcode;
    size_t  len;
    size_t  at;      /* payload offset in the round trip's payload pool */
} rt_frame_t;

#define RT_FRAMES 40

/* Lengths mostly small, now and then across the 16- and 64-bit boundaries. */
static size_t rt_len(int control)
{
    uint64_t r = test_rng() % 16;

    if (control)
        return (size_t)(test_rng() % (WS_CONTROL_MAX + 1));
    if (r == 0)
        return 65530 + (size_t)(test_rng() % 12);
    if (r == 1)
        return 120 + (size_t)(test_rng() % 12);
    return (size_t)(test_rng() % 40);
}

/* A random sequence following §5.4: data messages in one or more fragments,
 * with control frames in between. Returns the frame count. */
static size_t rt_sequence(rt_frame_t *f, size_t max, size_t *pool_len)
{
    size_t n = 0, pool = 0;
    int open = 0;

    while (n < max) {
        rt_frame_t *x = &f[n++];
        uint64_t pick = test_rng() % 8;

        if (pick < 2) {
            static const uint8_t ctl[] = { WS_OP_PING, WS_OP_PONG,
                                           WS_OP_CLOSE };
            x->opcode = ctl[test_rng() % 3];
            x->fin = 1;
        }
        else {
            x->opcode = open ? WS_OP_CONTINUATION
                             : (test_rng() & 1) ? WS_OP_TEXT : WS_OP_BINARY;
            x->fin = (uint8_t)(n == max || test_rng() % 3 == 0);
            open = !x->fin;
        }
        x->len = rt_len(WS_OP_IS_CONTROL(x->opcode));
        x->at = pool;
        pool += x->len;
    }
    *pool_len = pool;
    return n;
}

/* Writer to parser: random frames written with ws_frame_write_header(),
 * masked by the client with ws_mask_apply() under a fresh key per frame
 * (§5.3), parsed server-side at random splits, unmasked again: the payload
 * comes back identical. Then the same frames unmasked, parsed client-side. */
START_TEST(rfc6455_5_3_writer_parser_round_trip)
{
    rt_frame_t f[RT_FRAMES];
    size_t nf, pool_len, i, n;
    uint8_t *pool, *in;
    int round, masked;

    test_rng_init();
    for (round = 0; round < 8; round++) {
        nf = rt_sequence(f, RT_FRAMES, &pool_len);
        pool = malloc(pool_len + 1);
        in = malloc(pool_len + nf * WS_FRAME_HEADER_MAX);
        for (i = 0; i < pool_len; i++)
            pool[i] = (uint8_t)test_rng();
        for (masked = 1; masked >= 0; masked--) {
            trace_t want = { 0 };

            n = 0;
            for (i = 0; i < nf; i++) {
                uint8_t key[4];
                ws_frame_header_t h = { .fin = f[i].fin,
                                        .opcode = f[i].opcode,
                                        .masked = (uint8_t)masked,
                                        .len = f[i].len };
                uint32_t k = (uint32_t)test_rng();

                memcpy(key, &k, 4);
                n += ws_frame_write_header(in + n, f[i].fin, 0, f[i].opcode,
                                           f[i].len, masked ? key : NULL);
                if (masked)
                    ws_mask_apply(in + n, pool + f[i].at, f[i].len, key, 0);
                else
                    memcpy(in + n, pool + f[i].at, f[i].len);
                n += f[i].len;
                trace_header(&want, &h);
                if (f[i].len)
                    trace_payload(&want, pool + f[i].at, f[i].len, NULL, 0);
                trace_add(&want, 'E');
            }
            check_all_splits(masked ? "5.3 round trip, client to server"
                                    : "5.3 round trip, server to client",
                             in, n, masked, 0, &want);
            trace_free(&want);
        }
        free(pool);
        free(in);
    }
}
END_TEST

/* §5.2: the parser never reads past the end it is given. Every prefix of a
 * complete frame ends right at the unreadable page, so the parser meets the
 * page in each header state; a read beyond faults. */
START_TEST(rfc6455_5_2_frame_before_unreadable_page)
{
    static const uint8_t frame[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    uint8_t *gend = guard_page();
    const uint8_t *pos, *data;
    ws_frame_parser_t p;
    size_t len, cut;

    for (cut = 1; cut <= sizeof(frame); cut++) {
        uint8_t *start = gend - cut;

        memcpy(start, frame, cut);
        pos = start;
        ws_frame_parser_init(&p, 1, 0);
        while (ws_frame_parse(&p, &pos, gend, &data, &len)
               != WS_FRAME_NEED_MORE)
            ;
        ck_assert_ptr_eq(pos, gend);
        ck_assert_uint_eq(p.offset, cut);
    }
}
END_TEST

static Suite *ws_frame_suite(void)
{
    Suite *s = suite_create("ws_frame");
    TCase *tp = tcase_create("parser");
    TCase *tw = tcase_create("writer");

    tcase_set_timeout(tp, 60);
    tcase_add_loop_test(tp, rfc6455_frame_cases, 0, NCASES);
    tcase_add_loop_test(tp, rfc6455_5_2_length_boundaries, 0, 2 * NLENS);
    tcase_add_test(tp, rfc6455_5_7_large_binary_examples);
    tcase_add_test(tp, rfc6455_5_2_error_sticks);
    tcase_add_test(tp, rfc6455_5_2_null_data_and_len);
    tcase_add_test(tp, rfc6455_5_2_frame_before_unreadable_page);
    suite_add_tcase(s, tp);

    tcase_set_timeout(tw, 60);
    tcase_add_test(tw, rfc6455_5_2_writer_minimal_length);
    tcase_add_test(tw, rfc6455_5_3_writer_mask_bit_and_key);
    tcase_add_test(tw, rfc6455_5_3_writer_parser_round_trip);
    suite_add_tcase(s, tw);
    return s;
}

TEST_MAIN(ws_frame_suite)
