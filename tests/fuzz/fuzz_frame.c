/* fuzz_frame.c: the frame parser on arbitrary bytes, whole and split.
 * The first byte picks the side (server or client parser), the RSV bits
 * allowed and the split size; both runs must report the same sequence of
 * results, and payload pieces must lie inside the input. */
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

#define MAX_RESULTS 4096

typedef struct {
    int n;
    uint64_t key[MAX_RESULTS];
} trace_t;

static void run(const uint8_t *buf, size_t len, size_t step, uint8_t mode,
                trace_t *t)
{
    ws_frame_parser_t p;
    const uint8_t *pos, *end, *data;
    size_t off, n, dlen;
    ws_frame_result_e r;

    ws_frame_parser_init(&p, mode & 1, (uint8_t)(mode & 0x70));
    t->n = 0;
    for (off = 0; off < len; off += n) {
        n = len - off < step ? len - off : step;
        pos = buf + off;
        end = pos + n;
        while ((r = ws_frame_parse(&p, &pos, end, &data, &dlen))
               != WS_FRAME_NEED_MORE) {
            uint64_t key = (uint64_t)r;
            if (r == WS_FRAME_PAYLOAD) {
                if (data < buf + off || data + dlen > end || dlen == 0)
                    abort();
                /* Payload pieces differ with the split; their end offset
                 * within the frame only matters at the frame's end. */
                continue;
            }
            if (r == WS_FRAME_HEADER) {
                if (WS_OP_IS_CONTROL(p.hdr.opcode)
                    && (p.hdr.len > WS_CONTROL_MAX || !p.hdr.fin))
                    abort();
                key |= (p.hdr.len << 8) | ((uint64_t)p.hdr.opcode << 4);
            }
            if (r == WS_FRAME_ERROR) {
                key |= (p.error_offset << 16) | ((uint64_t)p.error_code << 4);
                if (p.error_offset >= len)
                    abort();
            }
            if (t->n < MAX_RESULTS)
                t->key[t->n++] = key;
            if (r == WS_FRAME_ERROR)
                return;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static trace_t whole, split;
    uint8_t mode;

    if (size < 1)
        return 0;
    mode = data[0];
    run(data + 1, size - 1, size, mode, &whole);
    run(data + 1, size - 1, 1 + (mode >> 1) % 23, mode, &split);
    if (whole.n != split.n
        || memcmp(whole.key, split.key, whole.n * sizeof(whole.key[0])))
        abort();
    return 0;
}
