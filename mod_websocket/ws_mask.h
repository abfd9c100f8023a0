/* ws_mask.h: the client-to-server masking transform of RFC 6455 §5.3.
 *
 * The hottest loop in the server: every byte a client sends passes through
 * it once. No I/O, no allocation.
 */
#ifndef WS_MASK_H
#define WS_MASK_H

#include <stddef.h>
#include <stdint.h>

/* XOR len bytes of src with the 4-byte masking key and store them in dst.
 * offset is the position of src[0] within the frame's payload, so a payload
 * split across reads is unmasked piecewise with the same result (§5.3: byte i
 * uses key[i % 4]). dst may equal src; other overlaps are not allowed.
 * Applying the transform twice restores the input. */
void ws_mask_apply(uint8_t *dst, const uint8_t *src, size_t len,
                   const uint8_t key[4], uint64_t offset);

/* The obvious one-byte-at-a-time loop. Kept as the reference the unit tests
 * compare ws_mask_apply() against and the baseline bench/ measures. */
void ws_mask_apply_bytewise(uint8_t *dst, const uint8_t *src, size_t len,
                            const uint8_t key[4], uint64_t offset);

#endif /* WS_MASK_H */
