/* ws_close.h: the rules for Close frame payloads (RFC 6455 §5.5.1, §7.4)
 * and the IANA WebSocket Close Code Number Registry. No I/O. */
#ifndef WS_CLOSE_H
#define WS_CLOSE_H

#include <stddef.h>
#include <stdint.h>

/* 1 if code may appear in a Close frame on the wire: 1000-1003, 1007-1014
 * and 3000-4999. 1004, 1005, 1006 and 1015 are reserved or local-only, the
 * rest of 0-2999 unassigned. */
int ws_close_code_valid(uint16_t code);

/* Parse a Close frame payload. On success returns 0 and sets *code
 * (WS_CLOSE_NO_STATUS for an empty payload) and *reason and *reason_len (inside
 * payload). On failure returns the close code to fail with: 1002 for a
 * 1-byte payload or an invalid code, 1007 for a reason that is not UTF-8;
 * *why then names the rule. */
uint16_t ws_close_parse(const uint8_t *payload, size_t len, uint16_t *code,
                        const uint8_t **reason, size_t *reason_len,
                        const char **why);

/* Write a Close payload into out (WS_CONTROL_MAX bytes) and return its
 * length: nothing for WS_CLOSE_NO_STATUS, else the code and the reason cut to
 * fit (at a UTF-8 character boundary, so a valid reason stays valid). */
size_t ws_close_build(uint8_t *out, uint16_t code, const char *reason,
                      size_t reason_len);

#endif /* WS_CLOSE_H */
