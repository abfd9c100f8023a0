/* ws_driver.h: who runs a connection's engine. A driver reads the
 * connection's input filters into the engine, writes the engine's output
 * through the output filters, keeps the engine's time, and is woken by
 * other threads' sends. It is the only code that touches the connection's
 * filters once the 101 is out.
 *
 * The blocking driver keeps the request's worker thread for the life of
 * the WebSocket and works on every MPM; the async driver parks the
 * connection in the event MPM between bursts.
 */
#ifndef WS_DRIVER_H
#define WS_DRIVER_H

#include "ws_conn.h"

/* One read's size. */
#define WS_READ_SIZE (64 * 1024)

/* Read what wc's connection has ready, without blocking, and feed it to
 * the engine (whose events go to the plugin). At most max_reads reads (0:
 * no limit). APR_SUCCESS: nothing more to read now; APR_INCOMPLETE: it
 * stopped at max_reads with input perhaps still there; APR_EOF: the input
 * ended or failed. */
apr_status_t ws_driver_read(ws_conn_t *wc, apr_bucket_brigade *bb,
                            int max_reads);

/* Pass up to max bytes of the engine's output to wc's connection output
 * filters, without FLUSH, and count them written; *passed says how many.
 * Fails only when the filters do (the connection is broken). */
apr_status_t ws_driver_pass_output(ws_conn_t *wc, apr_bucket_brigade *bb,
                                   apr_size_t max, apr_size_t *passed);

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

typedef struct ws_driver_async ws_driver_async_t;

/* 1 if r's connection can be parked by the async driver: the location does
 * not ask for blocking, the MPM can wait for I/O (event, 2.4.63+) and the
 * connection is a real one (not an HTTP/2 stream). Otherwise 0, and *why
 * says which. */
int ws_driver_async_possible(request_rec *r, const ws_dir_conf_t *conf,
                             const char **why);

/* Give wc's connection to the async driver. The caller has queued the 101
 * without flushing it and returns from the handler; the MPM then calls the
 * driver's process_connection hook. Memory from c->pool. */
apr_status_t ws_driver_async_start(ws_conn_t *wc);

/* Another thread queued output or a close: on an async connection, write
 * it now if nobody else holds the connection, without blocking (with the
 * blocking driver, its thread does). */
void ws_driver_async_kick(ws_conn_t *wc);

/* In a new child: start the async driver's timer thread where the MPM can
 * park connections. */
void ws_driver_async_child_init(apr_pool_t *pchild, server_rec *s);

/* The async driver's connection hooks. */
void ws_driver_async_register_hooks(void);

/* 1 if this child's open WebSockets should be closed with 1001 now, with
 * *reason the close reason to send: the child stops (a graceful stop, or
 * httpd retiring it), or a graceful restart made it part of the old
 * generation and WebSocketRestartGrace is off or has run out (or the new
 * generation has gone). Otherwise 0. Once 1, it stays 1. Any thread;
 * cheap while the child runs normally. In ws_child_stopping.c. */
int ws_driver_child_stopping(const char **reason);

#endif /* WS_DRIVER_H */
