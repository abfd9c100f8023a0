/* ws_upgrade.c: the request handler of a WebSocket location. It decides
 * whether the request may become a WebSocket (RFC 6455 §4.2), answers a
 * refusal with its HTTP status, lets the plugin accept or refuse, sends the
 * 101 and hands the connection to the driver.
 *
 * It runs as a handler, after httpd's access, authentication and
 * authorization hooks, so Require, auth modules and mod_ssl apply to the
 * handshake as to any request.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "apr_strings.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"

#include "ws_conn.h"
#include "ws_driver.h"
#include "ws_extension.h"
#include "ws_handshake.h"
#include "ws_log.h"
#include "ws_origin.h"
#include "ws_pmd_negotiate.h"
#include "ws_upgrade.h"

APLOG_USE_MODULE(websocket);

static int refuse(request_rec *r, int status, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, WSLOGNO(00020)
                  "websocket handshake refused with %d: %s", status, why);
    return status;
}

static int check_origin(request_rec *r, const ws_dir_conf_t *conf)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");

    switch (conf->origin_mode) {
    case WS_ORIGIN_ANY:
        return 1;
    case WS_ORIGIN_LIST:
        return origin && ws_origin_listed(r->pool, origin, conf->origins);
    default:
        /* Only browsers send Origin, and they cannot forge it (§10.2);
         * a client without one is not a browser and gains nothing from
         * the check. */
        return !origin
            || ws_origin_same(r->pool, origin, ap_http_scheme(r),
                              apr_table_get(r->headers_in, "Host"));
    }
}

static const char *choose_protocol(request_rec *r, const ws_dir_conf_t *conf)
{
    const apr_array_header_t *allowed = conf->protocols;

    if (!allowed || !allowed->nelts)
        return NULL;
    return ws_handshake_select_protocol(
        apr_table_get(r->headers_in, "Sec-WebSocket-Protocol"),
        (const char *const *)allowed->elts, allowed->nelts);
}

/* apr_table_do callback: every Sec-WebSocket-Extensions line, joined with
 * ", " as RFC 9110 §5.3 combines repeated fields (httpd merges them for
 * HTTP/1.1, but mod_http2's requests may keep them apart). */
typedef struct {
    apr_pool_t *pool;
    const char *value;
} joined_t;

static int join_value(void *rec, const char *key, const char *value)
{
    joined_t *j = rec;

    (void)key;
    j->value = j->value ? apr_pstrcat(j->pool, j->value, ", ", value, NULL)
                        : value;
    return 1;
}

/* permessage-deflate (RFC 7692): the first of the client's offers that
 * this location can honour. Returns the response element for
 * Sec-WebSocket-Extensions with *params filled in, or NULL to decline:
 * extensions never refuse a handshake (RFC 6455 §9.1 lets the server
 * leave them all out), so a header that breaks the grammar or offers
 * nothing acceptable only means no extension. */
static const char *choose_extensions(request_rec *r, const ws_dir_conf_t *conf,
                                     ws_pmd_negotiate_params_t *params)
{
    joined_t joined = { r->pool, NULL };
    apr_array_header_t *offers;
    ws_pmd_negotiate_config_t pmd;
    ws_pmd_negotiate_result_t res;
    size_t error_at;

    apr_table_do(join_value, &joined, r->headers_in,
                 "Sec-WebSocket-Extensions", NULL);
    if (!joined.value || !conf->deflate)
        return NULL;
    if (!ws_extension_parse(r->pool, joined.value, &offers, &error_at)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, WSLOGNO(00103)
                      "websocket: Sec-WebSocket-Extensions breaks the "
                      "grammar at byte %" APR_SIZE_T_FMT ", no extension: %s",
                      error_at, joined.value);
        return NULL;
    }
    ws_config_pmd(conf, &pmd);
    if (!ws_pmd_negotiate_choose(r->pool, offers, &pmd, &res)) {
        if (res.declined)
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, WSLOGNO(00104)
                          "websocket: permessage-deflate declined (%s): %s",
                          res.declined, joined.value);
        return NULL;
    }
    *params = res.params;
    return res.response;
}

/* The 101 for the async driver: queued, not flushed. The MPM flushes it
 * once the handler has returned and is about to poll the connection; a
 * flush here would let a fast client's first frame be read into the
 * core's buffer, where no poll would report it. */
static void queue_101(request_rec *r, const char *accept, const char *protocol,
                      const char *extensions)
{
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, c->bucket_alloc);

    /* mod_ssl's coalescing filter holds small writes until a FLUSH, and
     * the async driver never flushes (a FLUSH makes the core block): its
     * frames leave in whole bursts already. Before the 101, so that
     * nothing is left in it. */
    ap_remove_output_filter_byhandle(c->output_filters,
                                     "SSL/TLS Coalescing Filter");
    apr_brigade_printf(bb, NULL, NULL,
                       "HTTP/1.1 101 Switching Protocols\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: %s\r\n"
                       "%s%s%s%s%s%s\r\n", accept,
                       protocol ? "Sec-WebSocket-Protocol: " : "",
                       protocol ? protocol : "", protocol ? "\r\n" : "",
                       extensions ? "Sec-WebSocket-Extensions: " : "",
                       extensions ? extensions : "",
                       extensions ? "\r\n" : "");
    ap_pass_brigade(c->output_filters, bb);
    apr_brigade_destroy(bb);
}

/* The 101 (§4.2.2), as an interim response so that httpd sends no second
 * header block when the handler returns. extensions is the accepted
 * Sec-WebSocket-Extensions value, or NULL for none. */
static void send_101(request_rec *r, const char *key, const char *protocol,
                     const char *extensions, int async)
{
    char accept[WS_HANDSHAKE_ACCEPT_LEN + 1];

    ws_handshake_accept_key(key, accept);
    r->status = HTTP_SWITCHING_PROTOCOLS;
    if (async) {
        queue_101(r, accept, protocol, extensions);
        return;
    }
    apr_table_clear(r->headers_out);
    apr_table_setn(r->headers_out, "Upgrade", "websocket");
    apr_table_setn(r->headers_out, "Connection", "Upgrade");
    apr_table_setn(r->headers_out, "Sec-WebSocket-Accept",
                   apr_pstrdup(r->pool, accept));
    if (protocol)
        apr_table_setn(r->headers_out, "Sec-WebSocket-Protocol", protocol);
    if (extensions)
        apr_table_setn(r->headers_out, "Sec-WebSocket-Extensions",
                       extensions);
    ap_send_interim_response(r, 1);
}

/* After the 101 the connection speaks WebSocket: no request timeouts (they
 * killed idle WebSockets in older modules), no second header block, no
 * keep-alive (the async driver turns it back on to stay in the MPM), and
 * no request-body discard reading frames as a body. */
static void take_over(request_rec *r)
{
    conn_rec *c = r->connection;

    ap_remove_input_filter_byhandle(c->input_filters, "reqtimeout");
    r->assbackwards = 1;
    c->keepalive = AP_CONN_CLOSE;
}

/* Say once per process which driver serves a location (and why not the
 * async one), at the first connection that uses it. */
static void log_driver(request_rec *r, const ws_dir_conf_t *conf, int async,
                       const char *why)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static struct seen {
        struct seen *next;
        int async;
        char location[];
    } *seen;
    struct seen *s;
    size_t len = strlen(conf->location) + 1;

    pthread_mutex_lock(&lock);
    for (s = seen; s; s = s->next)
        if (s->async == async && !strcmp(s->location, conf->location))
            break;
    if (!s && (s = malloc(sizeof(*s) + len))) {
        s->async = async;
        memcpy(s->location, conf->location, len);
        s->next = seen;
        seen = s;
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, WSLOGNO(00023)
                      "websocket: %s is served by the %s driver%s%s",
                      conf->location, async ? "async" : "blocking",
                      async ? "" : ": ", async ? "" : why);
    }
    pthread_mutex_unlock(&lock);
}

static int run(request_rec *r, const ws_dir_conf_t *conf, const char *key)
{
    const mws_plugin_t *cb = &conf->plugin->cb;
    ws_pmd_negotiate_params_t pmd;
    const char *extensions = choose_extensions(r, conf, &pmd);
    ws_driver_blocking_t *driver = NULL;
    const char *why = NULL;
    int async = ws_driver_async_possible(r, conf, &why);
    apr_status_t rv;
    ws_conn_t *wc;
    int status = 0;

    /* The engine inflates from its first byte on, so deflate is set up
     * here, before the 101; out of memory is a 500, not a 101 without the
     * extension the client was told about. */
    if (!(wc = ws_conn_create(r, conf, choose_protocol(r, conf),
                              extensions ? &pmd : NULL))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, APR_ENOMEM, r, WSLOGNO(00105)
                      "websocket: cannot set up the connection");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!async && !(driver = ws_driver_blocking_create(wc, &rv))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, WSLOGNO(00021)
                      "websocket: cannot poll the connection");
        ws_conn_discard(wc);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (cb->on_open) {
        wc->in_open = 1;
        status = cb->on_open(&wc->pub);
        wc->in_open = 0;
    }
    if (status) {
        ws_conn_discard(wc);
        if (status < 400 || status > 599)
            status = HTTP_INTERNAL_SERVER_ERROR;
        return refuse(r, status, "refused by the plugin");
    }
    send_101(r, key, wc->subprotocol, extensions, async);
    take_over(r);
    log_driver(r, conf, async, why);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, WSLOGNO(00022)
                  "websocket open at %s, protocol %s, extensions %s, "
                  "%s driver", conf->location,
                  wc->subprotocol ? wc->subprotocol : "-",
                  extensions ? extensions : "-", async ? "async" : "blocking");
    if (async) {
        ws_driver_async_start(wc);
        return OK;
    }
    ws_driver_blocking_run(driver);
    ws_conn_finish(wc);
    ws_conn_release(wc);
    return OK;
}

int ws_upgrade_handler(request_rec *r)
{
    const ws_dir_conf_t *conf = ws_config_get(r);
    ws_handshake_request_t req;
    ws_handshake_result_t res;

    if (!conf->plugin || r->main)
        return DECLINED;
    req.method = r->method;
    req.proto_num = r->proto_num;
    req.host = apr_table_get(r->headers_in, "Host");
    req.upgrade = apr_table_get(r->headers_in, "Upgrade");
    req.connection = apr_table_get(r->headers_in, "Connection");
    req.key = apr_table_get(r->headers_in, "Sec-WebSocket-Key");
    req.version = apr_table_get(r->headers_in, "Sec-WebSocket-Version");

    if (!ws_handshake_has_token(req.upgrade, "websocket")
        && conf->nonupgrade == WS_NONUPGRADE_DECLINE)
        return DECLINED;
    if (ws_handshake_check(&req, &res)) {
        switch (res.error) {
        case WS_HS_NOT_UPGRADE:
            apr_table_setn(r->err_headers_out, "Upgrade", "websocket");
            apr_table_setn(r->err_headers_out, "Connection", "Upgrade");
            break;
        case WS_HS_BAD_VERSION:
            /* §4.4: tell the client which version we speak. */
            apr_table_setn(r->err_headers_out, "Sec-WebSocket-Version",
                           WS_HANDSHAKE_VERSION);
            break;
        case WS_HS_BAD_METHOD:
            r->allowed = AP_METHOD_BIT << M_GET;
            break;
        default:
            break;
        }
        return refuse(r, res.status, res.reason);
    }
    if (!check_origin(r, conf))
        return refuse(r, HTTP_FORBIDDEN, apr_psprintf(r->pool,
                      "origin %s not allowed",
                      apr_table_get(r->headers_in, "Origin")));
    return run(r, conf, req.key);
}
