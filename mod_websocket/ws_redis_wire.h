/* ws_redis_wire.h: the Redis link's commands, as bytes for the wire,
 * formatted by hiredis (ws_redis_wire.c). Internal to the link; the
 * payload and channel functions it also holds are in ws_redis.h. Pure
 * functions: any thread.
 */
#ifndef WS_REDIS_WIRE_H
#define WS_REDIS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ws_redis.h"

/* Append to *buf (malloc'd or NULL; *len its bytes) one connection's
 * handshake: AUTH [user] password when cfg has a password, then last with
 * arg (arg_len bytes) when arg is not NULL. *replies is set to the number
 * of replies due. Returns 0, or -1 when out of memory (*buf stays the
 * caller's to free). */
int ws_redis_wire_handshake(const ws_redis_config_t *cfg, const char *last,
                            const char *arg, size_t arg_len, char **buf,
                            size_t *len, unsigned *replies);

/* The PSUBSCRIBE pattern for a prefix: prefix with Redis's glob characters
 * (* ? [ ] \) escaped, then '*'. malloc'd, *len set; NULL when out of
 * memory. */
char *ws_redis_wire_pattern(const char *prefix, size_t prefix_len,
                            size_t *len);

/* PUBLISH prefix+topic payload, in *cmd (free with redisFreeCommand()).
 * Returns its length, or -1 when out of memory. The caller checks the
 * limits. */
int ws_redis_wire_publish(const char *prefix, size_t prefix_len,
                          const char *topic, size_t topic_len,
                          const uint8_t origin[WS_REDIS_ORIGIN], uint8_t type,
                          const void *data, size_t len, char **cmd);

#endif /* WS_REDIS_WIRE_H */
