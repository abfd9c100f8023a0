/* fuzz_utf8.c: the fast UTF-8 validator against the plain byte loop, and
 * against itself fed in pieces. The first input byte picks the piece
 * size; any disagreement on the verdict or the bad byte aborts. */
#include <stdlib.h>

#include "ws_utf8.h"

/* Feed buf in pieces of step bytes; returns the verdict and sets *bad to
 * the absolute index of the first invalid byte. */
static int feed_pieces(const uint8_t *buf, size_t len, size_t step,
                       int bytewise, size_t *bad)
{
    ws_utf8_t u;
    size_t off, n, at;

    ws_utf8_reset(&u);
    for (off = 0; off < len; off += n) {
        n = len - off < step ? len - off : step;
        if (!(bytewise ? ws_utf8_feed_bytewise(&u, buf + off, n, &at)
                       : ws_utf8_feed(&u, buf + off, n, &at))) {
            *bad = off + at;
            return 0;
        }
    }
    *bad = len;
    return ws_utf8_complete(&u) ? 1 : 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t step, bad_fast, bad_ref, bad_split;
    int fast, ref, split;

    if (size < 1)
        return 0;
    step = 1 + data[0] % 37;
    data++;
    size--;
    fast = feed_pieces(data, size, size ? size : 1, 0, &bad_fast);
    ref = feed_pieces(data, size, size ? size : 1, 1, &bad_ref);
    split = feed_pieces(data, size, step, 0, &bad_split);
    if (fast != ref || bad_fast != bad_ref || fast != split
        || bad_fast != bad_split)
        abort();
    if ((fast == 1) != ws_utf8_valid(data, size))
        abort();
    return 0;
}
