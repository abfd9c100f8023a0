/* ws_conn.h: one WebSocket connection as the glue sees it: the engine
 * behind a lock, the handle a plugin holds, the request it came from and
 * the figures for the log line.
 *
 * The struct is malloc'd and reference-counted, never in a pool: a plugin
 * thread may hold the handle after httpd has freed the connection's pools,
 * and then finds it "gone" instead of freed memory.
 */
#ifndef WS_CONN_H
#define WS_CONN_H

#include <pthread.h>

#include "httpd.h"

#include "mod_websocket_plugin.h"
#include "ws_config.h"
#include "ws_engine.h"
#include "ws_pmd_negotiate.h"

typedef struct ws_conn ws_conn_t;

/* How a driver is woken when another thread queued output or a close. */
typedef void ws_conn_wake_fn(void *ctx);

struct ws_conn {
    mws_conn_t pub;              /* first: the plugin's handle */
    uint32_t refs;               /* atomic: the driver's, and mws_hold()s */

    pthread_mutex_t lock;        /* guards the fields down to 'feeder' */
    ws_engine_t *engine;         /* NULL once the connection is gone */
    ws_conn_wake_fn *wake;
    void *wake_ctx;
    int feeding;                 /* the owner is in ws_conn_feed(), */
    pthread_t feeder;            /* on this thread */

    /* The async driver's: whoever touches the connection's filters holds
     * io_lock (the owner servicing it, a pusher writing to it parked, the
     * reactor, the pre-close hook); io_dead is set, under it, before httpd
     * frees the connection. */
    pthread_mutex_t io_lock;
    int io_dead;
    struct ws_driver_async *async;  /* NULL with the blocking driver */
    struct ws_conn *retired_next;   /* the async driver's, see unwatch() */

    /* Owner thread only. The request's data is copied into c->pool, as the
     * async driver lets the request go once the 101 is out. */
    conn_rec *c;
    request_rec *r;              /* during the handshake only, else NULL */
    apr_table_t *headers;
    const char *uri, *query, *remote_ip, *user;
    const ws_dir_conf_t *conf;
    const ws_plugin_t *plugin;
    const char *subprotocol;
    const char *offered_protocols;
    void *user_data;
    int in_open;                 /* inside on_open: the subprotocol may change */
    apr_time_t started;
    uint64_t msgs_in, bytes_in;
    int deflate;                 /* permessage-deflate was agreed */
    char close_reason[WS_CONTROL_MAX + 1]; /* the first close's reason */
    int close_logged;            /* the per-connection line was written */

    /* Topics: what the <Location> allows, from the configuration pool, so
     * that a held handle may publish after c->pool is gone. */
    const apr_array_header_t *topic_prefixes;  /* see ws_dir_conf_t */
    const char *topic_location;
    uint64_t topic_message_limit;

    /* Process registry, under the registry's own lock. */
    ws_conn_t *prev, *next;
};

/* A new connection for r with the engine configured from conf, and with
 * permessage-deflate on as pmd says when it is not NULL (compressing as
 * conf's WebSocketDeflate* directives say), holding one reference for the
 * caller (the driver). NULL when out of memory. */
ws_conn_t *ws_conn_create(request_rec *r, const ws_dir_conf_t *conf,
                          const char *subprotocol,
                          const ws_pmd_negotiate_params_t *pmd);

/* Hook the driver's wake-up in (NULL to unhook), under the lock. */
void ws_conn_set_wake(ws_conn_t *wc, ws_conn_wake_fn *wake, void *ctx);

/* The connection has ended: call the plugin's on_close, write the log
 * line, free the engine and leave the registry. Owner thread; once only.
 * Held handles answer MWS_SEND_GONE from then on. */
void ws_conn_finish(ws_conn_t *wc);

/* Undo ws_conn_create() for a connection that never opened (refused or
 * failed before the 101): no callbacks, no log line; drops the caller's
 * reference. */
void ws_conn_discard(ws_conn_t *wc);

/* Drop a reference; the last frees the struct. Any thread. */
void ws_conn_release(ws_conn_t *wc);

/* Start a close with code on every connection of this process (graceful
 * restart or stop). Any thread. */
void ws_conn_close_all(uint16_t code, const char *reason);

/* Call fn on every live connection of this process, under the registry's
 * lock: fn must not block nor finish connections. Any thread. */
void ws_conn_for_each(void (*fn)(ws_conn_t *wc, void *arg), void *arg);

/* Queue one shared message on the connection, as mws_send() would. Any
 * thread. */
mws_send_result_e ws_conn_send_msg(ws_conn_t *wc, ws_msg_t *msg);

/* 1 while the connection is open: not closing, not ended. Any thread. */
int ws_conn_open(ws_conn_t *wc);

/* Feed input to the engine and hand each event to the plugin, with the
 * lock released while the plugin runs. Owner thread. */
void ws_conn_feed(ws_conn_t *wc, const char *data, size_t len);

/* Call the plugin's callbacks for an engine event. Owner thread, without
 * the lock. */
void ws_conn_dispatch(ws_conn_t *wc, const ws_event_t *ev);

#endif /* WS_CONN_H */
