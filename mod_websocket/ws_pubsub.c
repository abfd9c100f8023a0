/* ws_pubsub.c: topics for plugins inside httpd (see ws_pubsub.h).
 *
 * Each child process has one registry of subscriptions and one socket on
 * the bus, in a directory the parent prepares under DefaultRuntimeDir and
 * keeps across graceful restarts, so that the children of the old
 * generation and of the new one hear each other while both run. A child
 * that crashes leaves a dead socket that the others drop (ws_bus.c).
 *
 * With WebSocketRedis, every child also keeps a link to Redis (ws_redis)
 * and publishes there too; what comes back from Redis with this server's
 * origin is dropped, as the children of this server had it over the bus.
 * The origin is 16 random bytes kept in the bus directory, so that the
 * old generation and the new one share it across a graceful restart.
 *
 * Ordering: a publishing thread delivers to this process's subscribers
 * before it returns and queues for the bus and Redis in the same order,
 * and both keep each sender's order, so every subscriber sees one
 * publisher's messages in the order they were published.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apr_file_io.h"
#include "apr_general.h"
#include "apr_strings.h"
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "unixd.h"

#include "ws_bus.h"
#include "ws_config.h"
#include "ws_conn.h"
#include "ws_gate.h"
#include "ws_log.h"
#include "ws_msg.h"
#include "ws_plugin_host.h"
#include "ws_pubsub.h"
#include "ws_redis.h"
#include "ws_topic.h"

APLOG_USE_MODULE(websocket);

#define CONN(h) ((ws_conn_t *)(h))

/* The bus directory, set in post_config and inherited by the children;
 * NULL when it could not be prepared (topics stay within each process). */
static const char *bus_dir;

/* This server's origin on Redis (see above), set in post_config. */
static uint8_t origin[WS_REDIS_ORIGIN];

/* This child's, from child_init until pchild goes. Publishers pass the
 * links gate to use the bus and the link, and child_exit() closes them
 * only once the gate is closed and nobody is inside (see there). */
static ws_topics_t *topics;
static ws_bus_t *bus;
static ws_redis_t *redis;
static ws_gate_t links;

#define LINKS_WAIT_MS 1000

/* ---- delivery ---- */

static void hold(void *sub)
{
    __atomic_add_fetch(&CONN(sub)->refs, 1, __ATOMIC_RELAXED);
}

static void release(void *sub)
{
    ws_conn_release(CONN(sub));
}

/* Set while this thread runs a plugin's on_topic_message: a publish from
 * there would deliver again, into the same callback, without end. */
static __thread int in_topic_callback;

/* Deliver one message to this process: the plugins that watch topics
 * first, then every subscriber, with one shared copy of the message. */
static void deliver_local(const char *topic, uint8_t type, const void *data,
                          size_t len)
{
    void **subs;
    ws_msg_t *msg;
    size_t n, i;

    in_topic_callback = 1;
    ws_plugin_host_topic_message(topic, (mws_type_e)type, data, len);
    in_topic_callback = 0;
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

/* A message another process published, on the bus's or the Redis link's
 * thread. Names are checked again: a peer is trusted, but not to share
 * our limits. */
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

    if (!topics || !allowed(wc, topic, len) || !ws_conn_open(wc)
        || ws_topics_subscribe(topics, wc, topic, len) != WS_TOPIC_OK)
        return -1;
    /* A connection that began to close meanwhile (a plugin thread that
     * subscribed against the rules) must not keep its subscription. */
    if (!ws_conn_open(wc)) {
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

    if (!topics || in_topic_callback
        || (type != MWS_TEXT && type != MWS_BINARY)
        || !allowed(wc, topic, tlen) || len > wc->topic_message_limit
        || (len && !data))
        return -1;
    /* The bus first: when it refuses, nobody gets the message, rather
     * than only this process's subscribers. Redis refuses only when it
     * cannot keep up, which its counters show; the hosts beyond it then
     * miss the message, as with Redis pub/sub itself. */
    if (ws_gate_enter(&links)) {
        if (bus && ws_bus_publish(bus, topic, tlen, (uint8_t)type, data,
                                  len)) {
            ws_gate_leave(&links);
            return -1;
        }
        if (redis)
            ws_redis_publish(redis, topic, tlen, (uint8_t)type, data, len);
    }
    ws_gate_leave(&links);
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

/* Read this server's origin from dir/origin, or make it. Without it (an
 * unusable file) the origin is new for this generation: a message then
 * comes back from Redis to the other generation's children, who had it
 * over the bus already, only during a graceful restart. */
static void load_origin(apr_pool_t *p, const char *dir, server_rec *s)
{
    const char *path = apr_pstrcat(p, dir, "/origin", NULL);
    apr_size_t n = sizeof(origin);
    apr_file_t *f;
    apr_status_t rv;

    apr_generate_random_bytes(origin, sizeof(origin));
    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) == APR_SUCCESS) {
        rv = apr_file_read_full(f, origin, sizeof(origin), &n);
        apr_file_close(f);
        if (rv == APR_SUCCESS)
            return;
        apr_generate_random_bytes(origin, sizeof(origin));
    }
    rv = apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                       | APR_FOPEN_TRUNCATE, APR_FPROT_UREAD
                       | APR_FPROT_UWRITE, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_write_full(f, origin, sizeof(origin), NULL);
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, WSLOGNO(00109)
                     "topics: cannot keep this server's origin in %s", path);
}

int ws_pubsub_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    const char *dir = ap_runtime_dir_relative(pconf, "websocket-bus");
    char err[256];

    (void)plog;
    bus_dir = NULL;
    if (ws_bus_prepare_dir(dir, ap_unixd_config.user_id,
                           ap_unixd_config.group_id, err, sizeof(err))) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, WSLOGNO(00106)
                     "topic bus directory %s: %s; topics will reach only "
                     "the subscribers of the publishing child", dir, err);
        apr_generate_random_bytes(origin, sizeof(origin));
        return OK;
    }
    bus_dir = dir;
    load_origin(ptemp, dir, s);
    return OK;
}

/* On the link thread, on each change: the state goes to the error log,
 * once per change and child, never per retry. */
static void redis_state(void *ctx, int up, const char *why)
{
    server_rec *s = ctx;

    if (up)
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, WSLOGNO(00110)
                     "topics: Redis %s is up; topics reach the other hosts",
                     why);
    else
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, WSLOGNO(00111)
                     "topics: Redis is down (%s); this host's subscribers "
                     "still get its messages, and the link reconnects",
                     why);
}

static void open_redis(const ws_global_conf_t *g, server_rec *s)
{
    ws_redis_config_t cfg;
    char err[256];

    if (ws_redis_parse_url(g->redis_url, &cfg, err, sizeof(err))) {
        /* WebSocketRedis checked it already: only memory can fail here. */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, WSLOGNO(00112)
                     "topics: WebSocketRedis: %s", err);
        return;
    }
    if (g->redis_ca_file)
        cfg.ca_file = strdup(g->redis_ca_file);
    if (g->redis_prefix) {
        free(cfg.channel_prefix);
        cfg.channel_prefix = strdup(g->redis_prefix);
    }
    if ((g->redis_ca_file && !cfg.ca_file) || !cfg.channel_prefix)
        strcpy(err, "out of memory");
    else
        redis = ws_redis_open(&cfg, origin, deliver_from_bus, redis_state, s,
                              err, sizeof(err));
    if (!redis)
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, WSLOGNO(00113)
                     "topics: cannot start the link to Redis: %s; topics "
                     "stay on this host", err);
    ws_redis_config_free(&cfg);
}

/* Publishers still inside the bus or the link (a reactor's on_drain, a
 * plugin thread not joined) are waited for, a bounded while: prefork runs
 * this from its SIGTERM handler, which may have interrupted a publish on
 * this very thread, and then the bus and the link are left to the
 * process's exit rather than closed under it (a dead socket file is
 * removed by the other children or the next start). The registry itself
 * stays: a connection still finishing on another thread may yet drop its
 * subscriptions. */
static apr_status_t child_exit(void *data)
{
    (void)data;
    if (!ws_gate_close(&links, LINKS_WAIT_MS))
        return APR_SUCCESS;
    ws_redis_close(redis);
    redis = NULL;
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
    if (ws_config_global()->redis_url)
        open_redis(ws_config_global(), s);
    ws_gate_open(&links);
    apr_pool_cleanup_register(pchild, NULL, child_exit,
                              apr_pool_cleanup_null);
}
