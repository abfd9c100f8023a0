/* ws_driver.h: who runs a connection's engine. A driver reads the
 * connection's input filters into the engine, writes the engine's output
 * through the output filters, keeps the engine's time, and is woken by
 * other threads' sends. It is the only code that touches the connection's
 * filters once the 101 is out.
 *
 * Today there is one: the blocking driver, which keeps the request's
 * worker thread for the life of the WebSocket and works on every MPM.
 */
#ifndef WS_DRIVER_H
#define WS_DRIVER_H

#include "ws_conn.h"

typedef struct ws_driver_blocking ws_driver_blocking_t;

/* Get ready to run wc on its request's connection: the poll set and its
 * wake-up. Returns NULL and sets *rv on failure, before anything was sent
 * to the client. Memory comes from the request's pool. */
ws_driver_blocking_t *ws_driver_blocking_create(ws_conn_t *wc,
                                                apr_status_t *rv);

/* Run the WebSocket until the engine says to close TCP, the peer goes or
 * the child stops. Returns when the connection is done; the caller then
 * finishes wc. */
void ws_driver_blocking_run(ws_driver_blocking_t *d);

/* 1 if this child is winding down (graceful restart or stop), so open
 * WebSockets should be closed with 1001. */
int ws_driver_child_stopping(void);

#endif /* WS_DRIVER_H */
