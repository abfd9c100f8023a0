/* ws_mask.c: the RFC 6455 §5.3 masking transform, applied to every byte a
 * client sends.
 *
 * It must not read or write outside [src, src + len) and [dst, dst + len),
 * whatever the alignment, and must not hold state between calls: the caller
 * passes the payload offset, so a payload split across reads unmasks the same
 * way as a whole one. No I/O, no allocation.
 */
#include <string.h>

#include "ws_mask.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__AVX2__)
#include <immintrin.h>
#endif

void ws_mask_apply(uint8_t *dst, const uint8_t *src, size_t len,
                   const uint8_t key[4], uint64_t offset)
{
    /* Rotate the key once so that byte i of this call uses rot[i & 3]; every
     * block below is a multiple of 4 bytes long, so the same pattern fits
     * each one. */
    uint8_t rot[4];
    uint32_t k32;
    uint64_t k64, w;
    size_t i = 0;

    rot[0] = key[offset & 3];
    rot[1] = key[(offset + 1) & 3];
    rot[2] = key[(offset + 2) & 3];
    rot[3] = key[(offset + 3) & 3];
    memcpy(&k32, rot, sizeof(k32));
    /* Both halves equal, so the byte order of the host does not matter. */
    k64 = (uint64_t)k32 << 32 | k32;

#if defined(__AVX2__)
    {
        __m256i k = _mm256_set1_epi32((int)k32);

        for (; len - i >= 64; i += 64) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
            __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));

            _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
            _mm256_storeu_si256((__m256i *)(dst + i + 32),
                                _mm256_xor_si256(b, k));
        }
    }
#endif
#if defined(__SSE2__)
    {
        __m128i k = _mm_set1_epi32((int)k32);

        /* Four independent vectors per round keep the load ports busy;
         * unaligned loads and stores cost the same as aligned ones on
         * current x86 unless they split a cache line. */
        for (; len - i >= 64; i += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));

            _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
            _mm_storeu_si128((__m128i *)(dst + i + 16), _mm_xor_si128(b, k));
            _mm_storeu_si128((__m128i *)(dst + i + 32), _mm_xor_si128(c, k));
            _mm_storeu_si128((__m128i *)(dst + i + 48), _mm_xor_si128(d, k));
        }
        for (; len - i >= 16; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(src + i));

            _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
        }
    }
#endif
    /* memcpy, not a cast: src and dst may have any alignment, and the
     * compiler turns a fixed 8-byte memcpy into one load or store. */
    for (; len - i >= 8; i += 8) {
        memcpy(&w, src + i, sizeof(w));
        w ^= k64;
        memcpy(dst + i, &w, sizeof(w));
    }
    for (; i < len; i++) {
        dst[i] = src[i] ^ rot[i & 3];
    }
}

void ws_mask_apply_bytewise(uint8_t *dst, const uint8_t *src, size_t len,
                            const uint8_t key[4], uint64_t offset)
{
    size_t i;

    for (i = 0; i < len; i++) {
        dst[i] = src[i] ^ key[(offset + i) & 3];
    }
}
