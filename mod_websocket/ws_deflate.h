/* ws_deflate.h: the permessage-deflate codec, RFC 7692 §7.2: inflating a
 * compressed message as its frames arrive, and compressing a whole message
 * before it is framed.
 *
 * Only the transformation lives here: which parameters apply is the
 * negotiation's business (ws_pmd_negotiate.h), RSV1 and framing the
 * engine's. No I/O, no logging, no clock. zlib's memory comes from a
 * counting allocator, so the owner can tell what a connection holds, and it
 * is allocated at the first compressed message, not at creation.
 *
 * Neither object is thread-safe: one thread at a time per object.
 */
#ifndef WS_DEFLATE_H
#define WS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    WS_DEFLATE_OK = 0,
    WS_DEFLATE_TOO_BIG,   /* the output would pass out->max: close 1009 */
    WS_DEFLATE_CORRUPT,   /* not a valid compressed message: close 1007 */
    WS_DEFLATE_FAILED     /* out of memory, or zlib refused: close 1011 */
} ws_deflate_result_e;

/* Where output goes. The codec appends at data + len and grows data with
 * realloc(), geometrically and never past max bytes in all, so a caller
 * that sets max bounds the memory the output takes. data is the caller's
 * to free() (it may start NULL with len and cap 0); keeping it for the
 * next message saves the allocations. */
typedef struct ws_deflate_buf {
    uint8_t *data;
    size_t   len;   /* bytes held */
    size_t   cap;   /* bytes allocated */
    size_t   max;   /* len never goes past this; SIZE_MAX for no limit */
} ws_deflate_buf_t;

typedef struct ws_inflater ws_inflater_t;
typedef struct ws_deflater ws_deflater_t;

/* An inflater for the messages of one peer, RFC 7692 §7.2.2. window_bits
 * (8..15) is the window the peer compresses with; pass at least 9, since
 * zlib-based peers that agreed to 8 compress with 9 and an inflater with
 * too small a window calls their data corrupt. no_context_takeover: the
 * peer resets its compressor after each message, so the inflater may too;
 * then it holds nothing between messages, and one inflater may serve many
 * connections provided each message goes from begin to finish without
 * another message in between. Returns NULL if window_bits is out of range
 * or memory is short. zlib's state is not allocated yet. */
ws_inflater_t *ws_deflate_inflater_create(int window_bits,
                                          int no_context_takeover);

/* Free the inflater and its zlib state. NULL is ignored. */
void ws_deflate_inflater_destroy(ws_inflater_t *inf);

/* Start a compressed message (the first frame had RSV1 set). Allocates
 * zlib's state if the inflater holds none. Returns WS_DEFLATE_OK, or
 * WS_DEFLATE_FAILED when out of memory. After a failed message, begin
 * makes the inflater usable again, but with context takeover its window
 * no longer matches the peer's: the connection should close instead. */
ws_deflate_result_e ws_deflate_inflate_begin(ws_inflater_t *inf);

/* Inflate the next len bytes of the message's payload (unmasked), in any
 * split, appending the output to out. Output stops at out->max: when the
 * message holds more than fits, the result is WS_DEFLATE_TOO_BIG and no
 * more is inflated, so a bomb costs at most out->max bytes and the CPU to
 * produce them. On any failure the message is over: later calls return
 * the same result until the next begin. */
ws_deflate_result_e ws_deflate_inflate(ws_inflater_t *inf, const uint8_t *in,
                                       size_t len, ws_deflate_buf_t *out);

/* The message's last frame has been fed: append the 0x00 0x00 0xff 0xff
 * the sender removed (§7.2.2) and inflate what it releases. A message
 * must end on a DEFLATE block boundary, as §7.2.1 makes every sender's
 * do; one cut inside a block is WS_DEFLATE_CORRUPT, since the next message
 * would otherwise start in the middle of it. A message without a single
 * payload byte is taken as empty, like §7.2.3.6's 0x00. Without context
 * takeover the window is then emptied. */
ws_deflate_result_e ws_deflate_inflate_finish(ws_inflater_t *inf,
                                              ws_deflate_buf_t *out);

/* Between messages, free zlib's state if the next message cannot need it:
 * without context takeover, when the window is empty (the last message
 * ended a DEFLATE stream with BFINAL), or after a failed message. Call it
 * when the connection goes idle; the next begin allocates again. Does
 * nothing otherwise. */
void ws_deflate_inflater_trim(ws_inflater_t *inf);

/* Bytes the inflater holds: itself and zlib's state (about 7 KiB, plus
 * 2^window_bits once the first message produced output). */
size_t ws_deflate_inflater_memory(const ws_inflater_t *inf);

/* A compressor, RFC 7692 §7.2.1. window_bits 9..15 (zlib refuses 8 for
 * raw deflate, so the negotiation never agrees to compress with 8),
 * mem_level 1..9, level 0..9 or -1 for zlib's default. With
 * no_context_takeover the compressor resets after each message, holds
 * nothing between messages, and may compress for any number of
 * connections (one per thread, say, to compress a broadcast once).
 * Without it, it belongs to one connection and must compress that
 * connection's messages in the order they are sent, and every message it
 * compressed must be sent: the peer's window follows ours. Returns NULL if
 * a parameter is out of range or memory is short. zlib's state is not
 * allocated yet. */
ws_deflater_t *ws_deflate_deflater_create(int window_bits, int mem_level,
                                          int level, int no_context_takeover);

/* Free the deflater and its zlib state. NULL is ignored. */
void ws_deflate_deflater_destroy(ws_deflater_t *def);

/* Compress a whole message of len bytes and append the payload to send
 * with RSV1 set to out: DEFLATE data ending with a sync flush whose final
 * 0x00 0x00 0xff 0xff is removed (§7.2.1); an empty message is the single
 * byte 0x00 (§7.2.3.6). Allocates zlib's state if needed. Returns
 * WS_DEFLATE_OK, WS_DEFLATE_TOO_BIG when the payload would pass out->max,
 * or WS_DEFLATE_FAILED when out of memory. On failure out->len is as it
 * was, and the compressor has reset: without no_context_takeover the peer's
 * window no longer follows ours and the connection must close. */
ws_deflate_result_e ws_deflate_compress(ws_deflater_t *def, const void *data,
                                        size_t len, ws_deflate_buf_t *out);

/* Free zlib's state if the deflater has no context to keep (it was made
 * with no_context_takeover). Call it when the connection goes idle; the
 * next message allocates again. */
void ws_deflate_deflater_trim(ws_deflater_t *def);

/* Bytes the deflater holds: itself and zlib's state (about
 * 2^(window_bits + 2) + 2^(mem_level + 9) + 6 KiB once allocated). */
size_t ws_deflate_deflater_memory(const ws_deflater_t *def);

#endif /* WS_DEFLATE_H */
