/**
 * @file  mod_websocket_plugin.h
 * @brief The handler plugin API of mod_websocket.
 *
 * @defgroup MOD_WEBSOCKET_PLUGIN mod_websocket plugin API
 * @{
 *
 * A plugin is a shared object that exports one function returning a
 * mws_plugin_t: a table of callbacks that mod_websocket calls for each
 * WebSocket connection of the <Location> whose WebSocketHandler names it.
 * The plugin talks back through the connection handle (mws_conn_t) with the
 * mws_*() functions below. This header needs no httpd or APR headers.
 *
 * Threads: every callback of one connection runs on the thread that owns
 * that connection, one at a time. mws_send(), mws_send_text(),
 * mws_send_binary(), mws_send_many(), mws_publish(), mws_subscribers(),
 * mws_close(), mws_buffered(), mws_hold() and mws_release() may be called
 * from any thread and never block on the network. The request accessors
 * (mws_header() and friends, mws_location(), mws_subprotocol()),
 * mws_setting(), mws_set_subprotocol(), mws_subscribe(), mws_unsubscribe()
 * and the user pointer are for the owning thread, inside callbacks; the
 * strings they return stay valid until on_close returns. No lock of the
 * module is held while a callback runs, so a callback may send to other
 * connections.
 * Threads a plugin starts should block signals (pthread_sigmask): httpd
 * delivers its stop and restart signals to any thread of a child.
 *
 * Lifetime: a handle is valid from on_open until on_close returns; when
 * on_open refuses, on_close is not called. To use a handle after that (to
 * push from a thread of the plugin's own), take a reference with mws_hold()
 * while it is still valid and drop it with mws_release(); a held handle
 * whose connection has ended answers MWS_SEND_GONE and touches no freed
 * memory.
 *
 * Versions: a plugin records the API version and structure size it was
 * built against (MWS_PLUGIN_HEADER). A plugin built against an older header
 * keeps loading; one built against a newer header than the running module
 * is refused at start-up. The API grows only by appending.
 *
 * Version log:
 *  - 1: the first API.
 *  - 2: mws_send_many(), one message for many connections; topics:
 *       mws_subscribe(), mws_unsubscribe(), mws_publish(),
 *       mws_subscribers() and the on_topic_message callback.
 *
 * Topics: a connection subscribes to topics by name; a message published
 * to a topic reaches every connection subscribed to it, once, in publish
 * order per publishing thread, wherever it is: this process, the other
 * children of this httpd (of this generation and the next, across a
 * graceful restart), and other hosts when WebSocketRedis joins them. A
 * name is 1 to 200 printable ASCII characters without space, and starts
 * with one of the prefixes its <Location> allows (WebSocketTopicPrefix;
 * the <Location>'s own path by default). Delivery goes through each
 * connection's outgoing queue as mws_send() would, with its limit and
 * policy: a slow subscriber misses or closes, it never holds up the
 * others. A connection's subscriptions end with it.
 */
#ifndef MOD_WEBSOCKET_PLUGIN_H
#define MOD_WEBSOCKET_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The API version this header describes. */
#define MWS_PLUGIN_API_VERSION 2

/** Message types, as the WebSocket opcodes. */
typedef enum {
    MWS_TEXT = 1,     /**< UTF-8 text (checked before it reaches a plugin) */
    MWS_BINARY = 2    /**< bytes */
} mws_type_e;

/** What became of a message handed to mws_send(). */
typedef enum {
    MWS_SEND_QUEUED = 0,  /**< queued; it leaves in order, without blocking */
    MWS_SEND_REFUSED,     /**< not queued: the connection's queue is full
                               (with WebSocketQueuePolicy close-1008 or
                               close-1013 its close has now started), the
                               type is not MWS_TEXT or MWS_BINARY, or memory
                               ran out */
    MWS_SEND_GONE         /**< the connection is closing or has closed */
} mws_send_result_e;

/** A connection, as a plugin sees it. Only the first member is public. */
typedef struct mws_conn mws_conn_t;

/** The server functions, reached through every handle. */
typedef struct mws_server_api {
    uint32_t api_version;   /**< MWS_PLUGIN_API_VERSION of the module */
    uint32_t struct_size;   /**< sizeof(mws_server_api_t) of the module */
    mws_send_result_e (*send)(mws_conn_t *conn, mws_type_e type,
                              const void *data, size_t len);
    uint64_t (*buffered)(mws_conn_t *conn);
    int (*close)(mws_conn_t *conn, uint16_t code, const char *reason);
    mws_conn_t *(*hold)(mws_conn_t *conn);
    void (*release)(mws_conn_t *conn);
    const char *(*header)(mws_conn_t *conn, const char *name);
    const char *(*uri)(mws_conn_t *conn);
    const char *(*query)(mws_conn_t *conn);
    const char *(*remote_ip)(mws_conn_t *conn);
    const char *(*user)(mws_conn_t *conn);
    const char *(*subprotocol)(mws_conn_t *conn);
    int (*set_subprotocol)(mws_conn_t *conn, const char *name);
    const char *(*setting)(mws_conn_t *conn, const char *key);
    const char *(*location)(mws_conn_t *conn);
    void *(*get_data)(mws_conn_t *conn);
    void (*set_data)(mws_conn_t *conn, void *data);
    /* Since version 2. */
    size_t (*send_many)(mws_conn_t *const *conns, size_t n, mws_type_e type,
                        const void *data, size_t len,
                        mws_send_result_e *results);
    int (*subscribe)(mws_conn_t *conn, const char *topic);
    int (*unsubscribe)(mws_conn_t *conn, const char *topic);
    int (*publish)(mws_conn_t *conn, const char *topic, mws_type_e type,
                   const void *data, size_t len);
    size_t (*subscribers)(mws_conn_t *conn, const char *topic);
} mws_server_api_t;

struct mws_conn {
    const mws_server_api_t *api;  /**< the module's functions */
};

/** The callbacks of a plugin. Any may be NULL. */
typedef struct mws_plugin {
    uint32_t api_version;   /**< set with MWS_PLUGIN_HEADER */
    uint32_t struct_size;   /**< set with MWS_PLUGIN_HEADER */
    const char *name;       /**< for the log */

    /**
     * Once per httpd child process, before any connection, with the
     * process's copy of the plugin. Start shared threads here.
     * @return 0, or non-zero to fail the child's start-up
     */
    int (*process_init)(void);

    /**
     * Once per child process as it exits. Stop and join the plugin's
     * threads here. On a graceful stop or restart every connection has
     * had its on_close first; on a hard stop (prefork in particular) the
     * process may exit with connections still open and no on_close.
     */
    void (*process_exit)(void);

    /**
     * A client asks to open a WebSocket. The handshake has been checked
     * and nothing has been sent yet.
     * @return 0 to accept, or an HTTP status from 400 to 599 (such as 403)
     *         to refuse; any other value refuses with 500
     */
    int (*on_open)(mws_conn_t *conn);

    /** A whole message arrived. data is valid until the callback returns. */
    void (*on_message)(mws_conn_t *conn, mws_type_e type, const void *data,
                       size_t len);

    /**
     * The connection has ended. code is the first close frame's code,
     * whichever side sent it (1005 when it carried none, 1006 when there
     * was no close frame); reason is the peer's close reason or the
     * module's description of a protocol error, never NULL ("" for none);
     * clean is 1 if the peer's close frame arrived. The handle is valid
     * until this returns.
     */
    void (*on_close)(mws_conn_t *conn, uint16_t code, const char *reason,
                     int clean);

    /** Everything queued has been written (called only while the
     *  connection is open, after something was written). */
    void (*on_drain)(mws_conn_t *conn);

    /**
     * A message published to a topic reached this process: published
     * here, by another child or on another host; once each, before the
     * subscribed connections get it, whether or not any are here. For
     * what a plugin keeps per topic, such as a room's recent messages.
     * Called for every topic of every plugin: ignore the ones you do not
     * know. Runs on the publishing thread (which may be inside another
     * callback, holding that connection's locks) or on the module's bus
     * or Redis thread: be quick, never block, never wait for a lock that
     * a thread sending to a connection may hold, and do not publish from
     * it (mws_publish() refuses there). Never before every plugin's
     * process_init has returned; a child's exit waits for running calls
     * (up to a second) before process_exit. topic is valid until it
     * returns. Since API version 2.
     */
    void (*on_topic_message)(const char *topic, mws_type_e type,
                             const void *data, size_t len);
} mws_plugin_t;

/** Fills a plugin's api_version and struct_size. */
#define MWS_PLUGIN_HEADER \
    .api_version = MWS_PLUGIN_API_VERSION, .struct_size = sizeof(mws_plugin_t)

/** Marks the plugin's entry point as exported. */
#if defined(__GNUC__)
#define MWS_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define MWS_PLUGIN_EXPORT
#endif

/** The signature of the function a plugin exports. */
typedef const mws_plugin_t *(*mws_plugin_entry_fn)(void);

/** Queue a copy of a message. Any thread; never blocks. Outgoing text is
 *  not checked: it must be UTF-8. */
static inline mws_send_result_e mws_send(mws_conn_t *conn, mws_type_e type,
                                         const void *data, size_t len)
{
    return conn->api->send(conn, type, data, len);
}

/** Queue a text message of len bytes (UTF-8). Any thread. */
static inline mws_send_result_e mws_send_text(mws_conn_t *conn,
                                              const char *text, size_t len)
{
    return conn->api->send(conn, MWS_TEXT, text, len);
}

/** Queue a binary message. Any thread. */
static inline mws_send_result_e mws_send_binary(mws_conn_t *conn,
                                                const void *data, size_t len)
{
    return conn->api->send(conn, MWS_BINARY, data, len);
}

/**
 * Queue one message on n connections, as a broadcast does. The module
 * stores it once for all of them, and compresses it once for all those
 * that agreed on permessage-deflate without context takeover with the same
 * parameters (WebSocketDeflateMode shared), instead of once per
 * connection. Each connection answers as mws_send() would. Any thread;
 * never blocks. Since API version 2.
 * @param conns    the connections (valid or held handles)
 * @param n        how many
 * @param results  NULL, or room for n results, one per connection
 * @return how many connections queued the message
 */
static inline size_t mws_send_many(mws_conn_t *const *conns, size_t n,
                                   mws_type_e type, const void *data,
                                   size_t len, mws_send_result_e *results)
{
    return n ? conns[0]->api->send_many(conns, n, type, data, len, results)
             : 0;
}

/**
 * Subscribe the connection to a topic. Owner thread, inside callbacks
 * (on_open included). Since API version 2.
 * @return 0 (also when it already was subscribed), or -1 when the name is
 *         not valid, its prefix is not allowed here, the connection has
 *         256 subscriptions already, or it is closing
 */
static inline int mws_subscribe(mws_conn_t *conn, const char *topic)
{
    return conn->api->subscribe(conn, topic);
}

/**
 * Unsubscribe the connection from a topic. Owner thread, inside
 * callbacks. Since API version 2.
 * @return 0, or -1 if it was not subscribed
 */
static inline int mws_unsubscribe(mws_conn_t *conn, const char *topic)
{
    return conn->api->unsubscribe(conn, topic);
}

/**
 * Publish a message to every connection subscribed to a topic, here and
 * in the other processes and hosts (see Topics above); the publisher's
 * own connection gets it too when it is subscribed. conn says which
 * <Location>'s prefixes apply: any handle, held ones included, also
 * after its connection has ended. Any thread; never blocks. Outgoing
 * text is not checked: it must be UTF-8. Since API version 2.
 * @return 0 when it was accepted (whether or not anyone is subscribed),
 *         or -1 when the type or the name is not valid, the prefix is not
 *         allowed, data is over WebSocketTopicMessageLimit, or the bus
 *         refused it (its queue is full, or memory ran out); memory that
 *         runs out while delivering in this process, or a Redis link that
 *         cannot keep up, loses the message for those subscribers only,
 *         as a full outgoing queue does
 */
static inline int mws_publish(mws_conn_t *conn, const char *topic,
                              mws_type_e type, const void *data, size_t len)
{
    return conn->api->publish(conn, topic, type, data, len);
}

/** Connections of this process subscribed to a topic now. Any thread.
 *  Since API version 2. */
static inline size_t mws_subscribers(mws_conn_t *conn, const char *topic)
{
    return conn->api->subscribers(conn, topic);
}

/** Payload bytes queued and not yet written. Any thread. */
static inline uint64_t mws_buffered(mws_conn_t *conn)
{
    return conn->api->buffered(conn);
}

/**
 * Start the close handshake with code (1000, 1001, 1003, 1008, 1009, 1011,
 * 1012, 1013, 1014 or 3000-4999) and an optional UTF-8 reason of at most
 * 123 bytes. Messages queued but not yet started are dropped, so the close
 * leaves at once; to close after everything was sent, close from on_drain.
 * Any thread.
 * @return 0, or -1 if the code or the reason is not allowed or the
 *         connection is already closing
 */
static inline int mws_close(mws_conn_t *conn, uint16_t code,
                            const char *reason)
{
    return conn->api->close(conn, code, reason);
}

/** Keep the handle past on_close; returns conn. Any thread. */
static inline mws_conn_t *mws_hold(mws_conn_t *conn)
{
    return conn->api->hold(conn);
}

/** Drop a reference taken with mws_hold(). Any thread. */
static inline void mws_release(mws_conn_t *conn)
{
    conn->api->release(conn);
}

/** A request header of the handshake, or NULL. */
static inline const char *mws_header(mws_conn_t *conn, const char *name)
{
    return conn->api->header(conn, name);
}

/** The request's path, without the query. */
static inline const char *mws_uri(mws_conn_t *conn)
{
    return conn->api->uri(conn);
}

/** The query string (without '?'), or NULL. */
static inline const char *mws_query(mws_conn_t *conn)
{
    return conn->api->query(conn);
}

/** The client's IP address. */
static inline const char *mws_remote_ip(mws_conn_t *conn)
{
    return conn->api->remote_ip(conn);
}

/** The authenticated user, or NULL. */
static inline const char *mws_user(mws_conn_t *conn)
{
    return conn->api->user(conn);
}

/** The chosen subprotocol, or NULL. */
static inline const char *mws_subprotocol(mws_conn_t *conn)
{
    return conn->api->subprotocol(conn);
}

/**
 * In on_open only: choose a subprotocol the client offered, overriding the
 * <Location>'s choice (NULL chooses none).
 * @return 0, or -1 if the client did not offer it
 */
static inline int mws_set_subprotocol(mws_conn_t *conn, const char *name)
{
    return conn->api->set_subprotocol(conn, name);
}

/** A WebSocketSetting of the <Location>, or NULL. */
static inline const char *mws_setting(mws_conn_t *conn, const char *key)
{
    return conn->api->setting(conn, key);
}

/** The <Location> path that configured this connection. */
static inline const char *mws_location(mws_conn_t *conn)
{
    return conn->api->location(conn);
}

/** The plugin's pointer for this connection (NULL at first). */
static inline void *mws_get_data(mws_conn_t *conn)
{
    return conn->api->get_data(conn);
}

/** Set the plugin's pointer for this connection. */
static inline void mws_set_data(mws_conn_t *conn, void *data)
{
    conn->api->set_data(conn, data);
}

#ifdef __cplusplus
}
#endif

/** @} */
#endif /* MOD_WEBSOCKET_PLUGIN_H */
