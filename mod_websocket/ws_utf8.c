/* ws_utf8.c: incremental UTF-8 validation for text messages (RFC 6455
 * §8.1, RFC 3629 §4, Unicode Table 3-7).
 *
 * It must not read past buf + len, decode or copy anything, or accept a
 * single byte that Table 3-7 rejects: the engine fails the connection with
 * 1007 on the byte we report, so a lenient answer is a protocol bug. No I/O,
 * no allocation.
 */
#include <string.h>

#include "ws_utf8.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The states of Table 3-7, named after what the next byte must be. Each
 * value is also a bit offset into a transition row (see rows[] below), and
 * S_ACCEPT is 0 so that a zeroed ws_utf8_t starts at a character boundary.
 * The bytewise decoder uses the same values, so either function may continue
 * a text the other began. */
enum {
    S_ACCEPT = 0,  /* at a character boundary */
    S_REJECT = 6,  /* failed; sticks until ws_utf8_reset() */
    S_NEED1 = 12,  /* one continuation byte 80..BF to go */
    S_NEED2 = 18,  /* two to go */
    S_NEED3 = 24,  /* three to go */
    S_E0 = 30,     /* after E0: A0..BF, else the form is overlong */
    S_ED = 36,     /* after ED: 80..9F, else a surrogate D800..DFFF */
    S_F0 = 42,     /* after F0: 90..BF, else the form is overlong */
    S_F4 = 48      /* after F4: 80..8F, else above U+10FFFF */
};

/* Byte classes: bytes in one class move every state to the same place. */
enum {
    C_ASCII,   /* 00..7F */
    C_80,      /* 80..8F: continuation, also allowed after ED and F4 */
    C_90,      /* 90..9F: continuation, also allowed after ED and F0 */
    C_A0,      /* A0..BF: continuation, also allowed after E0 and F0 */
    C_BAD,     /* C0, C1 (only overlong forms) and F5..FF (beyond U+10FFFF) */
    C_L2,      /* C2..DF */
    C_E0,
    C_L3,      /* E1..EC, EE, EF */
    C_ED,
    C_F0,
    C_L4,      /* F1..F3 */
    C_F4,
    C_COUNT
};

#define R16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c

static const uint8_t byte_class[256] = {
    R16(C_ASCII), R16(C_ASCII), R16(C_ASCII), R16(C_ASCII),   /* 00..3F */
    R16(C_ASCII), R16(C_ASCII), R16(C_ASCII), R16(C_ASCII),   /* 40..7F */
    R16(C_80), R16(C_90), R16(C_A0), R16(C_A0),               /* 80..BF */
    C_BAD, C_BAD, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,         /* C0..C7 */
    C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,           /* C8..CF */
    R16(C_L2),                                                /* D0..DF */
    C_E0, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3,           /* E0..E7 */
    C_L3, C_L3, C_L3, C_L3, C_L3, C_ED, C_L3, C_L3,           /* E8..EF */
    C_F0, C_L4, C_L4, C_L4, C_F4, C_BAD, C_BAD, C_BAD,        /* F0..F7 */
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD    /* F8..FF */
};

#undef R16

/* One row per byte class holding the next state for every current state:
 * next = (row >> state) & 63. The row is looked up from the byte alone, so
 * the only work that depends on the previous byte is one shift, and the CPU
 * can fetch rows for the bytes ahead while it waits (Per Vognsen's
 * "shift-based DFA"). Columns, in order: from ACCEPT, REJECT, NEED1, NEED2,
 * NEED3, E0, ED, F0, F4. */
#define ROW(acc, rej, n1, n2, n3, e0, ed, f0, f4)                           \
    ((uint64_t)(acc) << S_ACCEPT | (uint64_t)(rej) << S_REJECT |           \
     (uint64_t)(n1) << S_NEED1 | (uint64_t)(n2) << S_NEED2 |               \
     (uint64_t)(n3) << S_NEED3 | (uint64_t)(e0) << S_E0 |                  \
     (uint64_t)(ed) << S_ED | (uint64_t)(f0) << S_F0 | (uint64_t)(f4) << S_F4)

#define X S_REJECT

static const uint64_t rows[C_COUNT] = {
    /*             ACCEPT   REJ NEED1     NEED2    NEED3    E0       ED       F0       F4 */
    [C_ASCII] = ROW(S_ACCEPT, X, X,        X,       X,       X,       X,       X,       X),
    [C_80]    = ROW(X,        X, S_ACCEPT, S_NEED1, S_NEED2, X,       S_NEED1, X,       S_NEED2),
    [C_90]    = ROW(X,        X, S_ACCEPT, S_NEED1, S_NEED2, X,       S_NEED1, S_NEED2, X),
    [C_A0]    = ROW(X,        X, S_ACCEPT, S_NEED1, S_NEED2, S_NEED1, X,       S_NEED2, X),
    [C_BAD]   = ROW(X,        X, X,        X,       X,       X,       X,       X,       X),
    [C_L2]    = ROW(S_NEED1,  X, X,        X,       X,       X,       X,       X,       X),
    [C_E0]    = ROW(S_E0,     X, X,        X,       X,       X,       X,       X,       X),
    [C_L3]    = ROW(S_NEED2,  X, X,        X,       X,       X,       X,       X,       X),
    [C_ED]    = ROW(S_ED,     X, X,        X,       X,       X,       X,       X,       X),
    [C_F0]    = ROW(S_F0,     X, X,        X,       X,       X,       X,       X,       X),
    [C_L4]    = ROW(S_NEED3,  X, X,        X,       X,       X,       X,       X,       X),
    [C_F4]    = ROW(S_F4,     X, X,        X,       X,       X,       X,       X,       X)
};

#undef X
#undef ROW

/* The state is kept unmasked between bytes; only its low 6 bits are the
 * shift, which x86 applies for free. */
#define STEP(s, b) (rows[byte_class[(b)]] >> ((s) & 63))

/* How many bytes the table loop runs between checks for S_REJECT. Rejection
 * sticks, so one check per block is enough to know; the rare failing block
 * is walked again to find the byte. */
#define BLOCK 16

void ws_utf8_reset(ws_utf8_t *u)
{
    u->state = S_ACCEPT;
}

static int fail(ws_utf8_t *u, size_t *bad_at, size_t at)
{
    u->state = S_REJECT;
    if (bad_at) {
        *bad_at = at;
    }
    return 0;
}

#if defined(__SSE2__)
/* The 16 bytes that sit n places before those of cur in the text. */
#define BEFORE(cur, prev, n) \
    _mm_or_si128(_mm_slli_si128((cur), (n)), _mm_srli_si128((prev), 16 - (n)))

/* Skip whole 16-byte blocks that are valid UTF-8, starting at a character
 * boundary; return where the first block that is not (or the last partial
 * block) begins, with *s set to the table's state there. The checks are the
 * rules of Table 3-7 restated per byte position, so that 16 bytes are
 * decided at once (after Keiser and Lemire, "Validating UTF-8 in less than
 * one instruction per byte", with compares for the lookups SSE2 lacks). A
 * failing block is only detected here; the table then walks it to find the
 * first bad byte. Never reads before pos or at or past end. */
static const uint8_t *skip_valid(const uint8_t *pos, const uint8_t *end,
                                 uint64_t *s)
{
    const uint8_t *start = pos, *q;
    __m128i prev = _mm_setzero_si128();   /* at a boundary: as after ASCII */
    int prev_high = 0;
    size_t n;

    while (end - pos >= 16) {
        __m128i cur = _mm_loadu_si128((const __m128i *)pos);
        __m128i p1, p2, p3, x, must, err, lo, hi;
        int high = _mm_movemask_epi8(cur);

        /* ASCII, after a block that left no character open: one that
         * passed the checks below and ends in ASCII. Text is mostly ASCII
         * (JSON), in long runs: stay in a loop that tests 32 bytes a round.
         * ASCII before a block checks the same as zeros. */
        if ((high | (prev_high & 0x8000)) == 0) {
            for (pos += 16; end - pos >= 32; pos += 32) {
                __m128i a = _mm_loadu_si128((const __m128i *)pos);
                __m128i b = _mm_loadu_si128((const __m128i *)(pos + 16));

                if (_mm_movemask_epi8(_mm_or_si128(a, b))) {
                    break;
                }
            }
            prev = _mm_setzero_si128();
            prev_high = 0;
            continue;
        }
        p1 = BEFORE(cur, prev, 1);
        p2 = BEFORE(cur, prev, 2);
        p3 = BEFORE(cur, prev, 3);

        /* A byte must be a continuation byte (80..BF, the signed bytes below
         * -64) exactly when a lead byte one, two or three before reaches it:
         * C0.. leads two bytes, E0.. three, F0.. four. The saturating
         * subtractions are non-zero for those leads. */
        must = _mm_or_si128(
            _mm_or_si128(_mm_subs_epu8(p1, _mm_set1_epi8((char)0xBF)),
                         _mm_subs_epu8(p2, _mm_set1_epi8((char)0xDF))),
            _mm_subs_epu8(p3, _mm_set1_epi8((char)0xEF)));
        err = _mm_xor_si128(_mm_cmpgt_epi8(must, _mm_setzero_si128()),
                            _mm_cmplt_epi8(cur, _mm_set1_epi8(-64)));

        /* C0, C1 and F5..FF never occur. */
        err = _mm_or_si128(err, _mm_cmpeq_epi8(
            _mm_and_si128(cur, _mm_set1_epi8((char)0xFE)),
            _mm_set1_epi8((char)0xC0)));
        err = _mm_or_si128(err, _mm_subs_epu8(cur,
                                              _mm_set1_epi8((char)0xF4)));

        /* The second byte after E0, ED, F0 and F4 has a narrower range.
         * With x = byte - 80 a continuation byte is 00..3F and anything
         * else is 40 or more, which the check above has flagged already.
         * E0 needs x >= 20, F0 x >= 10: flag lo - x > 0. ED needs x <= 1F,
         * F4 x <= 0F: flag x - hi > 0, with hi FF (no limit) elsewhere. */
        x = _mm_xor_si128(cur, _mm_set1_epi8((char)0x80));
        lo = _mm_or_si128(
            _mm_and_si128(_mm_cmpeq_epi8(p1, _mm_set1_epi8((char)0xE0)),
                          _mm_set1_epi8(0x20)),
            _mm_and_si128(_mm_cmpeq_epi8(p1, _mm_set1_epi8((char)0xF0)),
                          _mm_set1_epi8(0x10)));
        hi = _mm_or_si128(
            _mm_and_si128(_mm_cmpeq_epi8(p1, _mm_set1_epi8((char)0xED)),
                          _mm_set1_epi8((char)0xE0)),
            _mm_and_si128(_mm_cmpeq_epi8(p1, _mm_set1_epi8((char)0xF4)),
                          _mm_set1_epi8((char)0xF0)));
        hi = _mm_xor_si128(hi, _mm_set1_epi8((char)0xFF));
        err = _mm_or_si128(err, _mm_subs_epu8(lo, x));
        err = _mm_or_si128(err, _mm_subs_epu8(x, hi));

        if (_mm_movemask_epi8(_mm_cmpeq_epi8(err, _mm_setzero_si128()))
            != 0xFFFF) {
            break;
        }
        prev = cur;
        prev_high = high;
        pos += 16;
    }

    /* Everything before pos is valid, but its last character may still be
     * open. It begins at the last byte of the final three that is not a
     * continuation byte (after three of those a 4-byte character is
     * complete); run the table from there to learn the state. */
    *s = S_ACCEPT;
    for (n = 1; n <= 3 && n <= (size_t)(pos - start); n++) {
        q = pos - n;
        if ((*q & 0xC0) != 0x80) {
            for (; q < pos; q++) {
                *s = STEP(*s, *q);
            }
            *s &= 63;
            break;
        }
    }
    return pos;
}
#undef BEFORE
#else
/* Skip whole 8-byte words of ASCII; the table does the rest. The state
 * stays S_ACCEPT. Never reads at or past end. */
static const uint8_t *skip_valid(const uint8_t *pos, const uint8_t *end,
                                 uint64_t *s)
{
    (void)s;
    while (end - pos >= 8) {
        uint64_t w;

        memcpy(&w, pos, sizeof(w));
        if (w & 0x8080808080808080ull) {
            break;
        }
        pos += 8;
    }
    return pos;
}
#endif

int ws_utf8_feed(ws_utf8_t *u, const uint8_t *buf, size_t len,
                 size_t *bad_at)
{
    const uint8_t *pos = buf, *end;
    uint64_t s = u->state;

    /* A failed text stays failed; its first byte here is as bad as any. */
    if (s == S_REJECT) {
        return fail(u, bad_at, 0);
    }
    /* An empty frame may come with buf NULL, and NULL + 0 is undefined. */
    if (len == 0) {
        return 1;
    }
    end = buf + len;
    while (pos < end) {
        const uint8_t *block;
        uint64_t s0;
        size_t i, n;

        if (s == S_ACCEPT) {
            pos = skip_valid(pos, end, &s);
            if (pos == end) {
                break;
            }
        }
        block = pos;
        s0 = s;
        n = (size_t)(end - pos) < BLOCK ? (size_t)(end - pos) : BLOCK;
        for (i = 0; i < n; i++) {
            s = STEP(s, block[i]);
        }
        s &= 63;
        if (s == S_REJECT) {
            for (s = s0, i = 0;; i++) {
                s = STEP(s, block[i]);
                if ((s & 63) == S_REJECT) {
                    return fail(u, bad_at, (size_t)(block + i - buf));
                }
            }
        }
        pos += n;
    }
    u->state = (uint8_t)s;
    return 1;
}

int ws_utf8_complete(const ws_utf8_t *u)
{
    return u->state == S_ACCEPT;
}

int ws_utf8_valid(const uint8_t *buf, size_t len)
{
    ws_utf8_t u = { S_ACCEPT };

    return ws_utf8_feed(&u, buf, len, NULL) && ws_utf8_complete(&u);
}

int ws_utf8_feed_bytewise(ws_utf8_t *u, const uint8_t *buf, size_t len,
                          size_t *bad_at)
{
    unsigned s = u->state;
    size_t i;

    if (s == S_REJECT) {
        return fail(u, bad_at, 0);
    }
    for (i = 0; i < len; i++) {
        uint8_t b = buf[i];

        switch (s) {
        case S_ACCEPT:
            if (b < 0x80) {
                s = S_ACCEPT;
            } else if (b >= 0xC2 && b <= 0xDF) {
                s = S_NEED1;
            } else if (b == 0xE0) {
                s = S_E0;
            } else if (b == 0xED) {
                s = S_ED;
            } else if (b >= 0xE1 && b <= 0xEF) {
                s = S_NEED2;
            } else if (b == 0xF0) {
                s = S_F0;
            } else if (b >= 0xF1 && b <= 0xF3) {
                s = S_NEED3;
            } else if (b == 0xF4) {
                s = S_F4;
            } else {
                s = S_REJECT;
            }
            break;
        case S_NEED1:
            s = b >= 0x80 && b <= 0xBF ? S_ACCEPT : S_REJECT;
            break;
        case S_NEED2:
            s = b >= 0x80 && b <= 0xBF ? S_NEED1 : S_REJECT;
            break;
        case S_NEED3:
            s = b >= 0x80 && b <= 0xBF ? S_NEED2 : S_REJECT;
            break;
        case S_E0:
            s = b >= 0xA0 && b <= 0xBF ? S_NEED1 : S_REJECT;
            break;
        case S_ED:
            s = b >= 0x80 && b <= 0x9F ? S_NEED1 : S_REJECT;
            break;
        case S_F0:
            s = b >= 0x90 && b <= 0xBF ? S_NEED2 : S_REJECT;
            break;
        case S_F4:
            s = b >= 0x80 && b <= 0x8F ? S_NEED2 : S_REJECT;
            break;
        }
        if (s == S_REJECT) {
            return fail(u, bad_at, i);
        }
    }
    u->state = (uint8_t)s;
    return 1;
}
