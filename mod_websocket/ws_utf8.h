/* ws_utf8.h: incremental UTF-8 validation (RFC 3629, as RFC 6455 §8.1 asks).
 *
 * A text message arrives in frames and reads of any size; the validator
 * carries the state of a sequence cut at a chunk boundary to the next chunk
 * and reports the first invalid byte, so the engine can fail the connection
 * with 1007 as soon as the bad byte arrives. No I/O, no allocation.
 */
#ifndef WS_UTF8_H
#define WS_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Validator state; zero-initialised (or ws_utf8_reset()) means "at the start
 * of a character". */
typedef struct ws_utf8 {
    uint8_t state;
} ws_utf8_t;

void ws_utf8_reset(ws_utf8_t *u);

/* Validate the next len bytes of a text. Returns 1 if every byte so far may
 * begin a valid text (a sequence may still be open at the end), or 0 at the
 * first byte that cannot: then *bad_at, if not NULL, receives its index in
 * buf, and the state stays failed until reset. Rejected: bytes C0, C1 and
 * F5-FF, overlong forms, surrogates U+D800-DFFF, code points above U+10FFFF,
 * a continuation byte without a lead byte and a lead byte where a
 * continuation byte was due. */
int ws_utf8_feed(ws_utf8_t *u, const uint8_t *buf, size_t len,
                 size_t *bad_at);

/* 1 if the text fed so far ends on a character boundary (a message may end
 * here), 0 if a sequence is cut off or the validator has failed. */
int ws_utf8_complete(const ws_utf8_t *u);

/* Convenience for whole buffers (close reasons): 1 if buf is complete,
 * valid UTF-8. */
int ws_utf8_valid(const uint8_t *buf, size_t len);

/* The plain byte-at-a-time decoder, same contract as ws_utf8_feed(); the
 * reference for unit tests and the baseline bench/ measures. */
int ws_utf8_feed_bytewise(ws_utf8_t *u, const uint8_t *buf, size_t len,
                          size_t *bad_at);

#endif /* WS_UTF8_H */
