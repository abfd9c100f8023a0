/* ws_deflate_share.h: the compressors that connections without context
 * takeover borrow for one message (ws_engine_deflate_t.borrow_deflater):
 * one per thread and parameter set, so an idle connection holds no zlib
 * state and a thread pays for one compressor however many connections it
 * serves.
 *
 * No connection state, no logging. A compressor never leaves its thread:
 * zlib streams are not thread-safe, and sends happen on any thread (the
 * owner's, a plugin's), each under its own connection's lock only.
 */
#ifndef WS_DEFLATE_SHARE_H
#define WS_DEFLATE_SHARE_H

struct ws_deflater;

/* The borrow_ctx that names a compressor's parameters: window_bits 9..15,
 * mem_level 1..9, level -1..9. It holds no memory: it outlives nothing. */
void *ws_deflate_share_ctx(int window_bits, int mem_level, int level);

/* The borrow_deflater callback: the calling thread's compressor for ctx's
 * parameters (made with no context takeover), created at its first use.
 * It stays the thread's and is freed when the thread exits; the caller
 * must be done with it before it calls in again. NULL when memory is
 * short (the engine then compresses with one of its own). Any thread. */
struct ws_deflater *ws_deflate_share_borrow(void *ctx);

#endif /* WS_DEFLATE_SHARE_H */
