/* ws_pubsub.c: topics for plugins inside httpd (see ws_pubsub.h).
 *
 * Each child process has one registry of subscriptions and one socket on
 * the bus, in a directory the parent prepares under DefaultRuntimeDir and
 * keeps across graceful restarts, so that the children of the old
 * generation and of the new one hear each other while both run. A child
 * that crashes leaves a dead socket that the others drop (ws_bus.c).
 *
 * Ordering: a publishing thread delivers to this process's subscribers
 * before it returns and queues for the bus in the same order, and the bus
 * keeps each sender's order, so every subscriber sees one publisher's
 * messages in the order they were published.
 */
#include <stdint.h>
#include <string.h>

#include "apr_strings.h"
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "unixd.h"

#include "ws_bus.h"
#include "ws_config.h"
#include "ws_conn.h"
#include "ws_log.h"
#include "ws_msg.h"
#include "ws_plugin_host.h"
#include "ws_pubsub.h"
#include "ws_topic.h"

APLOG_USE_MODULE(websocket);

#define CONN(h) ((ws_conn_t *)(h))

/* The bus directory, set in post_config and inherited by the children;
 * NULL when it could not be prepared (topics stay within each process). */
static const char *bus_dir;

/* This child's, from child_init until pchild goes. */
static ws_topics_t *topics;
static ws_bus_t *bus;

/* ---- delivery ---- */

static void hold(void *sub)
{
    __atomic_add_fetch(&CONN(sub)->refs, 1, __ATOMIC_RELAXED);
}

static void release(void *sub)
{
    ws_conn_release(CONN(sub));
}

/* Deliver one message to this process: the plugins that watch topics
 * first, then every subscriber, with one shared copy of the message. */
static void deliver_local(const char *topic, uint8_t type, const void *data,
                          size_t len)
{
    void **subs;
    ws_msg_t *msg;
    size_t n, i;

    ws_plugin_host_topic_message(topic, (mws_type_e)type, data, len);
    n = ws_topics_collect(topics, topic, strlen(topic), &subs);
    if (n == 0 || n == (size_t)-1)
        return;
    if ((msg = ws_msg_create(type, data, len))) {
        for (i = 0; i < n; i++)
            ws_conn_send_msg(CONN(subs[i]), msg);
        ws_msg_unref(msg);
    }
    ws_topics_release(topics, subs, n);
}

/* A message another process published, on the bus thread. Names are
 * checked again: a peer is trusted, but not to share our limits. */
static void deliver_from_bus(void *ctx, const char *topic, size_t topic_len,
                             uint8_t type, const void *data, size_t len)
{
    char name[WS_TOPIC_MAX_NAME + 1];

    (void)ctx;
    if (!ws_topic_name_valid(topic, topic_len)
        || (type != MWS_TEXT && type != MWS_BINARY))
        return;
    memcpy(name, topic, topic_len);
    name[topic_len] = '\0';
    deliver_local(name, type, data, len);
}

/* ---- the plugin API ---- */

/* Whether conn's <Location> lets its plugin use topic. */
static int allowed(const ws_conn_t *wc, const char *topic, size_t len)
{
    const apr_array_header_t *p = wc->topic_prefixes;

    if (!ws_topic_name_valid(topic, len))
        return 0;
    if (!p)
        return ws_topic_prefix_allowed(topic, len, &wc->topic_location, 1);
    return ws_topic_prefix_allowed(topic, len, (const char *const *)p->elts,
                                   (size_t)p->nelts);
}

int ws_pubsub_subscribe(mws_conn_t *h, const char *topic)
{
    ws_conn_t *wc = CONN(h);
    size_t len = topic ? strlen(topic) : 0;

    if (!topics || !allowed(wc, topic, len) || !ws_conn_alive(wc)
        || ws_topics_subscribe(topics, wc, topic, len) != WS_TOPIC_OK)
        return -1;
    /* A connection that ended meanwhile (a plugin thread that subscribed
     * against the rules) must not keep its subscription. */
    if (!ws_conn_alive(wc)) {
        ws_topics_unsubscribe_all(topics, wc);
        return -1;
    }
    return 0;
}

int ws_pubsub_unsubscribe(mws_conn_t *h, const char *topic)
{
    if (!topics || !topic)
        return -1;
    return ws_topics_unsubscribe(topics, CONN(h), topic, strlen(topic));
}

int ws_pubsub_publish(mws_conn_t *h, const char *topic, mws_type_e type,
                      const void *data, size_t len)
{
    ws_conn_t *wc = CONN(h);
    size_t tlen = topic ? strlen(topic) : 0;

    if (!topics || (type != MWS_TEXT && type != MWS_BINARY)
        || !allowed(wc, topic, tlen) || len > wc->topic_message_limit
        || (len && !data))
        return -1;
    /* The bus first: when it refuses, nobody gets the message, rather
     * than only this process's subscribers. */
    if (bus && ws_bus_publish(bus, topic, tlen, (uint8_t)type, data, len))
        return -1;
    deliver_local(topic, (uint8_t)type, data, len);
    return 0;
}

size_t ws_pubsub_subscribers(mws_conn_t *h, const char *topic)
{
    (void)h;
    if (!topics || !topic)
        return 0;
    return ws_topics_count(topics, topic, strlen(topic));
}

void ws_pubsub_conn_end(ws_conn_t *wc)
{
    if (topics)
        ws_topics_unsubscribe_all(topics, wc);
}

/* ---- life cycle ---- */

int ws_pubsub_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    const char *dir = ap_runtime_dir_relative(pconf, "websocket-bus");
    char err[256];

    (void)plog;
    (void)ptemp;
    bus_dir = NULL;
    if (ws_bus_prepare_dir(dir, ap_unixd_config.user_id,
                           ap_unixd_config.group_id, err, sizeof(err))) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, WSLOGNO(00106)
                     "topic bus directory %s: %s; topics will reach only "
                     "the subscribers of the publishing child", dir, err);
        return OK;
    }
    bus_dir = dir;
    return OK;
}

static apr_status_t child_exit(void *data)
{
    (void)data;
    /* The registry itself stays: a connection still finishing on another
     * thread of a stopping child may yet drop its subscriptions. */
    ws_bus_close(bus);
    bus = NULL;
    return APR_SUCCESS;
}

void ws_pubsub_child_init(apr_pool_t *pchild, server_rec *s)
{
    char err[256];

    if (!(topics = ws_topics_create(hold, release))) {
        ap_log_error(APLOG_MARK, APLOG_ERR, APR_ENOMEM, s, WSLOGNO(00107)
                     "topics: cannot create the registry; mws_subscribe() "
                     "and mws_publish() will fail");
        return;
    }
    if (bus_dir && !(bus = ws_bus_open(bus_dir, deliver_from_bus, NULL, err,
                                       sizeof(err))))
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, WSLOGNO(00108)
                     "topic bus %s: %s; topics will reach only this "
                     "child's subscribers", bus_dir, err);
    apr_pool_cleanup_register(pchild, NULL, child_exit,
                              apr_pool_cleanup_null);
}
