/* ws_close.c: which close codes may travel in a Close frame and what a
 * Close payload must look like (RFC 6455 §5.5.1, §7.4, and the IANA
 * registry). It decides; the engine acts. */
#include <string.h>

#include "ws_close.h"
#include "ws_frame.h"
#include "ws_utf8.h"

int ws_close_code_valid(uint16_t code)
{
    /* 1004 is reserved, 1005 and 1006 are for local use only (§7.4.1),
     * 1015 likewise (IANA); 1016-2999 are unassigned or reserved for
     * extensions, none of which we speak; 3000-4999 belong to libraries,
     * frameworks and applications (§7.4.2). */
    return (code >= 1000 && code <= 1003)
        || (code >= 1007 && code <= 1014)
        || (code >= 3000 && code <= 4999);
}

uint16_t ws_close_parse(const uint8_t *payload, size_t len, uint16_t *code,
                        const uint8_t **reason, size_t *reason_len,
                        const char **why)
{
    *reason = NULL;
    *reason_len = 0;
    if (len == 0) {
        *code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (len == 1) {
        *why = "close payload of one byte";
        return WS_CLOSE_PROTOCOL_ERROR;
    }
    *code = (uint16_t)((payload[0] << 8) | payload[1]);
    if (!ws_close_code_valid(*code)) {
        *why = "invalid close code";
        return WS_CLOSE_PROTOCOL_ERROR;
    }
    /* §5.5.1: the body after the code is UTF-8. */
    if (!ws_utf8_valid(payload + 2, len - 2)) {
        *why = "close reason is not UTF-8";
        return WS_CLOSE_INVALID_DATA;
    }
    *reason = payload + 2;
    *reason_len = len - 2;
    return 0;
}

size_t ws_close_build(uint8_t *out, uint16_t code, const char *reason,
                      size_t reason_len)
{
    if (code == WS_CLOSE_NO_STATUS)
        return 0;
    if (reason_len > WS_CONTROL_MAX - 2) {
        reason_len = WS_CONTROL_MAX - 2;
        /* Do not cut a character in two: back up over continuation
         * bytes to the start of the last character, which is dropped. */
        while (reason_len > 0
               && ((uint8_t)reason[reason_len] & 0xC0) == 0x80)
            reason_len--;
    }
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason_len)
        memcpy(out + 2, reason, reason_len);
    return 2 + reason_len;
}
