/* ws_conn.c: the connection handle plugins hold, and the server functions
 * of the plugin API behind it.
 *
 * Senders on any thread take the connection's lock, queue into the engine
 * and wake the driver; they never write to the network themselves, so only
 * the driver's thread touches the connection's filters (mod_ssl is not
 * thread-safe). Request accessors read the request_rec and are for the
 * owner thread only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apr_strings.h"
#include "httpd.h"
#include "http_log.h"
#include "http_protocol.h"

#include "ws_close.h"
#include "ws_conn.h"
#include "ws_deflate_share.h"
#include "ws_driver.h"
#include "ws_handshake.h"
#include "ws_log.h"
#include "ws_pubsub.h"
#include "ws_utf8.h"

APLOG_USE_MODULE(websocket);

/* Every live connection of this process, for a graceful restart or stop. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static ws_conn_t *registry;

#define CONN(h) ((ws_conn_t *)(h))

static void registry_add(ws_conn_t *wc)
{
    pthread_mutex_lock(&registry_lock);
    wc->prev = NULL;
    wc->next = registry;
    if (registry)
        registry->prev = wc;
    registry = wc;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(ws_conn_t *wc)
{
    pthread_mutex_lock(&registry_lock);
    if (wc->prev)
        wc->prev->next = wc->next;
    else
        registry = wc->next;
    if (wc->next)
        wc->next->prev = wc->prev;
    wc->prev = wc->next = NULL;
    pthread_mutex_unlock(&registry_lock);
}

/* ---- the server functions of the plugin API ---- */

/* 1 if the caller is the owner thread inside ws_conn_feed(), which writes
 * the engine's output once the plugin returns: waking the driver would
 * only cost it system calls. Under the lock. */
static int from_feed_locked(const ws_conn_t *wc)
{
    return wc->feeding && pthread_equal(wc->feeder, pthread_self());
}

/* Queue a message on one connection (msg, or a copy of data when msg is
 * NULL) and see that it is written: the owner writes what its callbacks
 * send once they return; from any other thread, wake the driver. */
static mws_send_result_e send_to(ws_conn_t *wc, ws_msg_t *msg,
                                 mws_type_e type, const void *data,
                                 size_t len)
{
    ws_send_result_e r = WS_SEND_CLOSED;
    int nudge = 0;

    pthread_mutex_lock(&wc->lock);
    if (wc->engine) {
        r = msg ? ws_engine_send_msg(wc->engine, msg, apr_time_now())
                : ws_engine_send(wc->engine, (uint8_t)type, data, len,
                                 apr_time_now());
        nudge = (r == WS_SEND_QUEUED || r == WS_SEND_FAILED)
                && !from_feed_locked(wc);
        if (nudge && wc->wake)
            wc->wake(wc->wake_ctx);
    }
    pthread_mutex_unlock(&wc->lock);
    if (nudge)
        ws_driver_async_kick(wc);
    switch (r) {
    case WS_SEND_QUEUED:
        return MWS_SEND_QUEUED;
    case WS_SEND_REFUSED:
    case WS_SEND_FAILED:
    case WS_SEND_NOMEM:
        return MWS_SEND_REFUSED;
    default:
        return MWS_SEND_GONE;
    }
}

mws_send_result_e ws_conn_send_msg(ws_conn_t *wc, ws_msg_t *msg)
{
    return send_to(wc, msg, (mws_type_e)msg->opcode, NULL, 0);
}

int ws_conn_open(ws_conn_t *wc)
{
    int open;

    pthread_mutex_lock(&wc->lock);
    open = wc->engine && ws_engine_state(wc->engine) == WS_STATE_OPEN;
    pthread_mutex_unlock(&wc->lock);
    return open;
}

static mws_send_result_e api_send(mws_conn_t *h, mws_type_e type,
                                  const void *data, size_t len)
{
    if (type != MWS_TEXT && type != MWS_BINARY)
        return MWS_SEND_REFUSED;
    return send_to(CONN(h), NULL, type, data, len);
}

/* One message for many connections is stored once (and compressed once
 * per set of deflate parameters, see ws_engine_send_msg()). */
static size_t api_send_many(mws_conn_t *const *conns, size_t n,
                            mws_type_e type, const void *data, size_t len,
                            mws_send_result_e *results)
{
    ws_msg_t *msg = NULL;
    mws_send_result_e r;
    size_t i, queued = 0;

    if (type == MWS_TEXT || type == MWS_BINARY)
        msg = ws_msg_create((uint8_t)type, data, len);
    for (i = 0; i < n; i++) {
        r = msg ? send_to(CONN(conns[i]), msg, type, data, len)
                : MWS_SEND_REFUSED;
        queued += r == MWS_SEND_QUEUED;
        if (results)
            results[i] = r;
    }
    ws_msg_unref(msg);
    return queued;
}

static uint64_t api_buffered(mws_conn_t *h)
{
    ws_conn_t *wc = CONN(h);
    uint64_t n = 0;

    pthread_mutex_lock(&wc->lock);
    if (wc->engine)
        n = ws_engine_buffered(wc->engine);
    pthread_mutex_unlock(&wc->lock);
    return n;
}

static int api_close(mws_conn_t *h, uint16_t code, const char *reason)
{
    ws_conn_t *wc = CONN(h);
    size_t len = reason ? strlen(reason) : 0;
    int rc = -1, nudge = 0;

    /* §7.4: a plugin may send a registered code or 3000-4999, but not
     * claim the protocol or data errors the engine itself detects, nor
     * 1010, which only a client sends (§7.4.1). */
    if (!ws_close_code_valid(code) || code == WS_CLOSE_PROTOCOL_ERROR
        || code == WS_CLOSE_INVALID_DATA || code == 1010
        || len > WS_CONTROL_MAX - 2
        || !ws_utf8_valid((const uint8_t *)reason, len))
        return -1;
    pthread_mutex_lock(&wc->lock);
    if (wc->engine) {
        rc = ws_engine_close(wc->engine, code, reason, len, apr_time_now());
        nudge = rc == 0 && !from_feed_locked(wc);
        if (nudge && wc->wake)
            wc->wake(wc->wake_ctx);
    }
    pthread_mutex_unlock(&wc->lock);
    if (nudge)
        ws_driver_async_kick(wc);
    return rc;
}

static mws_conn_t *api_hold(mws_conn_t *h)
{
    __atomic_add_fetch(&CONN(h)->refs, 1, __ATOMIC_RELAXED);
    return h;
}

static void api_release(mws_conn_t *h)
{
    ws_conn_release(CONN(h));
}

static const char *api_header(mws_conn_t *h, const char *name)
{
    return apr_table_get(CONN(h)->headers, name);
}

static const char *api_uri(mws_conn_t *h)
{
    return CONN(h)->uri;
}

static const char *api_query(mws_conn_t *h)
{
    return CONN(h)->query;
}

static const char *api_remote_ip(mws_conn_t *h)
{
    return CONN(h)->remote_ip;
}

static const char *api_user(mws_conn_t *h)
{
    return CONN(h)->user;
}

static const char *api_subprotocol(mws_conn_t *h)
{
    return CONN(h)->subprotocol;
}

static int api_set_subprotocol(mws_conn_t *h, const char *name)
{
    ws_conn_t *wc = CONN(h);
    const char *const one[1] = { name };

    if (!wc->in_open)
        return -1;
    if (!name) {
        wc->subprotocol = NULL;
        return 0;
    }
    if (!ws_handshake_select_protocol(wc->offered_protocols, one, 1))
        return -1;
    wc->subprotocol = apr_pstrdup(wc->c->pool, name);
    return 0;
}

static const char *api_setting(mws_conn_t *h, const char *key)
{
    const apr_table_t *settings = CONN(h)->conf->settings;

    return settings ? apr_table_get(settings, key) : NULL;
}

static const char *api_location(mws_conn_t *h)
{
    return CONN(h)->conf->location;
}

static void *api_get_data(mws_conn_t *h)
{
    return CONN(h)->user_data;
}

static void api_set_data(mws_conn_t *h, void *data)
{
    CONN(h)->user_data = data;
}

static const mws_server_api_t server_api = {
    MWS_PLUGIN_API_VERSION,
    sizeof(mws_server_api_t),
    api_send,
    api_buffered,
    api_close,
    api_hold,
    api_release,
    api_header,
    api_uri,
    api_query,
    api_remote_ip,
    api_user,
    api_subprotocol,
    api_set_subprotocol,
    api_setting,
    api_location,
    api_get_data,
    api_set_data,
    api_send_many,
    ws_pubsub_subscribe,
    ws_pubsub_unsubscribe,
    ws_pubsub_publish,
    ws_pubsub_subscribers,
};

/* ---- life cycle ---- */

/* permessage-deflate as agreed in the handshake, before any input (RFC
 * 7692 §6: RSV1 means nothing until then). A compressor without context
 * takeover is borrowed per message from the sending thread, so the
 * connection holds none while idle; the engine drops its inflater's state
 * after each message when the client resets its own. Returns 0, or -1
 * when memory is short. */
static int set_deflate(ws_engine_t *e, const ws_dir_conf_t *conf,
                       const ws_pmd_negotiate_params_t *pmd)
{
    ws_engine_deflate_t d;

    memset(&d, 0, sizeof(d));
    d.inflate_window_bits = pmd->client_window_bits;
    d.inflate_no_context = pmd->client_no_context_takeover;
    d.deflate_window_bits = pmd->server_window_bits;
    d.deflate_mem_level = conf->deflate_mem_level;
    d.deflate_level = conf->deflate_level;
    d.deflate_no_context = pmd->server_no_context_takeover;
    d.min_size = conf->deflate_min_size > SIZE_MAX
                 ? SIZE_MAX : (size_t)conf->deflate_min_size;
    if (d.deflate_no_context) {
        d.borrow_deflater = ws_deflate_share_borrow;
        d.borrow_ctx = ws_deflate_share_ctx(d.deflate_window_bits,
                                            d.deflate_mem_level,
                                            d.deflate_level);
    }
    return ws_engine_set_deflate(e, &d);
}

ws_conn_t *ws_conn_create(request_rec *r, const ws_dir_conf_t *conf,
                          const char *subprotocol,
                          const ws_pmd_negotiate_params_t *pmd)
{
    conn_rec *c = r->connection;
    ws_engine_config_t ecfg;
    ws_dir_conf_t *copy;
    ws_conn_t *wc = calloc(1, sizeof(*wc));

    if (!wc)
        return NULL;
    ws_config_engine(conf, &ecfg);
    wc->started = apr_time_now();
    if (!(wc->engine = ws_engine_create(&ecfg, wc->started))) {
        free(wc);
        return NULL;
    }
    if (pmd && set_deflate(wc->engine, conf, pmd)) {
        ws_engine_destroy(wc->engine);
        free(wc);
        return NULL;
    }
    wc->deflate = pmd != NULL;
    wc->pub.api = &server_api;
    wc->refs = 1;
    pthread_mutex_init(&wc->lock, NULL);
    pthread_mutex_init(&wc->io_lock, NULL);
    wc->c = c;
    wc->r = r;
    wc->headers = apr_table_copy(c->pool, r->headers_in);
    wc->uri = apr_pstrdup(c->pool, r->uri);
    wc->query = apr_pstrdup(c->pool, r->args);
    wc->remote_ip = apr_pstrdup(c->pool, r->useragent_ip);
    wc->user = apr_pstrdup(c->pool, r->user);
    copy = apr_pmemdup(c->pool, conf, sizeof(*conf));
    copy->settings = apr_table_copy(c->pool, conf->settings);
    wc->conf = copy;
    wc->plugin = conf->plugin;
    wc->subprotocol = apr_pstrdup(c->pool, subprotocol);
    wc->offered_protocols = apr_table_get(wc->headers,
                                          "Sec-WebSocket-Protocol");
    wc->topic_prefixes = conf->topic_prefixes;
    wc->topic_location = conf->location;
    wc->topic_message_limit = conf->topic_message_limit;
    registry_add(wc);
    return wc;
}

void ws_conn_set_wake(ws_conn_t *wc, ws_conn_wake_fn *wake, void *ctx)
{
    pthread_mutex_lock(&wc->lock);
    wc->wake = wake;
    wc->wake_ctx = ctx;
    pthread_mutex_unlock(&wc->lock);
}

void ws_conn_release(ws_conn_t *wc)
{
    if (__atomic_sub_fetch(&wc->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        pthread_mutex_destroy(&wc->lock);
        pthread_mutex_destroy(&wc->io_lock);
        free(wc);
    }
}

/* Message bytes are counted before compression both ways; with
 * permessage-deflate the line ends with what went over the wire. */
static void log_connection(ws_conn_t *wc, const ws_close_info_t *ci,
                           uint64_t msgs_out, uint64_t bytes_out,
                           uint64_t wire_in, uint64_t wire_out)
{
    int level = wc->conf->log_level;
    char wire[96] = "";

    if (level < 0)
        return;
    if (wc->deflate)
        apr_snprintf(wire, sizeof(wire), ", compressed %" APR_UINT64_T_FMT
                     " bytes in, %" APR_UINT64_T_FMT " out", wire_in,
                     wire_out);
    ap_log_cerror(APLOG_MARK, level, 0, wc->c, WSLOGNO(00001)
                  "websocket closed: client %s, location %s, protocol %s, "
                  "%.3f s, in %" APR_UINT64_T_FMT " msgs %" APR_UINT64_T_FMT
                  " bytes, out %" APR_UINT64_T_FMT " msgs %" APR_UINT64_T_FMT
                  " bytes, close %u by %s%s%s%s%s",
                  wc->remote_ip, wc->conf->location,
                  wc->subprotocol ? wc->subprotocol : "-",
                  (double)(apr_time_now() - wc->started) / APR_USEC_PER_SEC,
                  wc->msgs_in, wc->bytes_in, msgs_out, bytes_out,
                  ci->code, ci->code == WS_CLOSE_ABNORMAL ? "nobody"
                  : ci->by_server ? "server" : "client",
                  ci->clean ? "" : ", unclean",
                  wc->close_reason[0] ? ", reason: " : "", wc->close_reason,
                  wire);
}

void ws_conn_finish(ws_conn_t *wc)
{
    ws_close_info_t ci;
    uint64_t msgs_out, bytes_out, wire_in, wire_out;

    pthread_mutex_lock(&wc->lock);
    ws_engine_close_info(wc->engine, &ci);
    ws_engine_sent(wc->engine, &msgs_out, &bytes_out);
    ws_engine_wire_bytes(wc->engine, &wire_in, &wire_out);
    pthread_mutex_unlock(&wc->lock);
    /* Its subscriptions end before on_close, which then sees the topics'
     * counts without it (and again after: see ws_pubsub_subscribe()). */
    ws_pubsub_conn_end(wc);
    if (wc->plugin->cb.on_close)
        wc->plugin->cb.on_close(&wc->pub, ci.code, wc->close_reason,
                                ci.clean);
    log_connection(wc, &ci, msgs_out, bytes_out, wire_in, wire_out);
    registry_remove(wc);
    pthread_mutex_lock(&wc->lock);
    ws_engine_destroy(wc->engine);
    wc->engine = NULL;
    wc->wake = NULL;
    pthread_mutex_unlock(&wc->lock);
    ws_pubsub_conn_end(wc);
}

void ws_conn_discard(ws_conn_t *wc)
{
    registry_remove(wc);
    pthread_mutex_lock(&wc->lock);
    ws_engine_destroy(wc->engine);
    wc->engine = NULL;
    pthread_mutex_unlock(&wc->lock);
    ws_pubsub_conn_end(wc);
    ws_conn_release(wc);
}

void ws_conn_close_all(uint16_t code, const char *reason)
{
    ws_conn_t *wc;

    pthread_mutex_lock(&registry_lock);
    for (wc = registry; wc; wc = wc->next)
        api_close(&wc->pub, code, reason);
    pthread_mutex_unlock(&registry_lock);
}

void ws_conn_for_each(void (*fn)(ws_conn_t *wc, void *arg), void *arg)
{
    ws_conn_t *wc;

    pthread_mutex_lock(&registry_lock);
    for (wc = registry; wc; wc = wc->next)
        fn(wc, arg);
    pthread_mutex_unlock(&registry_lock);
}

/* Keep the first close reason, for on_close and the log. */
static void note_reason(ws_conn_t *wc, const void *reason, size_t len)
{
    if (wc->close_reason[0] || !len)
        return;
    if (len > WS_CONTROL_MAX)
        len = WS_CONTROL_MAX;
    memcpy(wc->close_reason, reason, len);
    wc->close_reason[len] = '\0';
}

void ws_conn_dispatch(ws_conn_t *wc, const ws_event_t *ev)
{
    const mws_plugin_t *cb = &wc->plugin->cb;

    switch (ev->type) {
    case WS_EVENT_MESSAGE:
        wc->msgs_in++;
        wc->bytes_in += ev->len;
        if (cb->on_message)
            cb->on_message(&wc->pub, (mws_type_e)ev->opcode, ev->data,
                           ev->len);
        break;
    case WS_EVENT_CLOSE:
        note_reason(wc, ev->data, ev->len);
        break;
    case WS_EVENT_ERROR:
        note_reason(wc, ev->reason, strlen(ev->reason));
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, wc->c, WSLOGNO(00002)
                      "websocket protocol error at byte %" APR_UINT64_T_FMT
                      ": %s; closing with %u", ev->offset, ev->reason,
                      ev->code);
        break;
    default:
        break;
    }
}

void ws_conn_feed(ws_conn_t *wc, const char *data, size_t len)
{
    ws_event_type_e t;
    ws_event_t ev;
    size_t used;

    pthread_mutex_lock(&wc->lock);
    wc->feeding = 1;
    wc->feeder = pthread_self();
    pthread_mutex_unlock(&wc->lock);
    do {
        pthread_mutex_lock(&wc->lock);
        t = ws_engine_feed(wc->engine, (const uint8_t *)data, len, &used,
                           apr_time_now(), &ev);
        pthread_mutex_unlock(&wc->lock);
        data += used;
        len -= used;
        if (t != WS_EVENT_NONE)
            ws_conn_dispatch(wc, &ev);
    } while (t != WS_EVENT_NONE);
    pthread_mutex_lock(&wc->lock);
    wc->feeding = 0;
    pthread_mutex_unlock(&wc->lock);
}
