/* ws_driver_blocking.c: the driver that keeps the request's thread for the
 * life of the WebSocket.
 *
 * The thread polls the connection together with a wake-up that other
 * threads' sends trigger, reads whatever is ready into the engine, writes
 * what the engine has queued, and sleeps until the engine's next deadline
 * (at most a second, to notice a stopping child on MPMs that signal rather
 * than call hooks, and the end of an old child's restart grace: see
 * ws_child_stopping.c). It is the only thread that touches the
 * connection's filters, and it never holds the connection's lock while it
 * reads, writes or calls the plugin.
 */
#include <string.h>

#include "apr_poll.h"
#include "ap_mpm.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_log.h"
#include "util_filter.h"

#include "ws_driver.h"
#include "ws_log.h"

APLOG_USE_MODULE(websocket);

#define READS_PER_ROUND 16
#define MAX_SLEEP       apr_time_from_sec(1)

struct ws_driver_blocking {
    ws_conn_t *wc;
    conn_rec *c;
    apr_pollset_t *pollset;
    apr_bucket_brigade *bb;
    int input_pending;    /* stopped reading with input still buffered */
    int input_done;       /* EOF or a read error */
};

static void wake(void *ctx)
{
    apr_pollset_wakeup(ctx);
}

ws_driver_blocking_t *ws_driver_blocking_create(ws_conn_t *wc,
                                                apr_status_t *rv)
{
    request_rec *r = wc->r;
    ws_driver_blocking_t *d = apr_pcalloc(r->pool, sizeof(*d));
    apr_pollfd_t pfd = { 0 };

    d->wc = wc;
    d->c = r->connection;
    *rv = apr_pollset_create(&d->pollset, 1, r->pool, APR_POLLSET_WAKEABLE);
    if (*rv != APR_SUCCESS)
        return NULL;
    /* Never the raw socket: over HTTP/2 it is not the stream's. */
    pfd.p = r->pool;
    *rv = ap_get_pollfd_from_conn(d->c, &pfd, NULL);
    if (*rv != APR_SUCCESS)
        return NULL;
    pfd.reqevents = APR_POLLIN;
    *rv = apr_pollset_add(d->pollset, &pfd);
    if (*rv != APR_SUCCESS)
        return NULL;
    d->bb = apr_brigade_create(r->pool, d->c->bucket_alloc);
    return d;
}

/* Read what is ready, without blocking; at most READS_PER_ROUND reads,
 * so that a fast sender cannot starve its own echoes. */
static void read_input(ws_driver_blocking_t *d)
{
    apr_status_t rv = ws_driver_read(d->wc, d->bb, READS_PER_ROUND);

    d->input_pending = rv == APR_INCOMPLETE;
    if (rv == APR_EOF) {
        d->input_done = 1;
        pthread_mutex_lock(&d->wc->lock);
        ws_engine_eof(d->wc->engine, apr_time_now());
        pthread_mutex_unlock(&d->wc->lock);
    }
}

/* Write everything queued, then one FLUSH, blocking (within the vhost's
 * Timeout): a burst of frames leaves in one write. Returns 1 if anything
 * was written. */
static int write_output(ws_driver_blocking_t *d)
{
    ws_conn_t *wc = d->wc;
    apr_size_t passed;
    apr_status_t rv;
    int wrote = 0;

    do {
        rv = ws_driver_pass_output(wc, d->bb, APR_SIZE_MAX, &passed);
        wrote |= passed > 0;
    } while (rv == APR_SUCCESS && passed > 0);
    if (rv == APR_SUCCESS && wrote) {
        APR_BRIGADE_INSERT_TAIL(d->bb,
                                apr_bucket_flush_create(d->c->bucket_alloc));
        rv = ap_pass_brigade(d->c->output_filters, d->bb);
        apr_brigade_cleanup(d->bb);
    }
    if (rv != APR_SUCCESS) {
        d->input_done = 1;
        pthread_mutex_lock(&wc->lock);
        ws_engine_eof(wc->engine, apr_time_now());
        pthread_mutex_unlock(&wc->lock);
    }
    return wrote;
}

void ws_driver_blocking_run(ws_driver_blocking_t *d)
{
    ws_conn_t *wc = d->wc;
    const mws_plugin_t *cb = &wc->plugin->cb;
    const apr_pollfd_t *fired;
    apr_interval_time_t sleep;
    apr_int32_t nfired;
    apr_time_t now;
    int64_t next;
    int stopping = 0, done, drained;
    const char *reason;

    ws_conn_set_wake(wc, wake, d->pollset);
    for (;;) {
        if (!d->input_done)
            read_input(d);
        /* Every round, at most MAX_SLEEP apart: prefork only signals a
         * stopping child, and an old child's restart grace ends here. */
        if (!stopping && ws_driver_child_stopping(&reason)) {
            stopping = 1;
            pthread_mutex_lock(&wc->lock);
            ws_engine_close(wc->engine, WS_CLOSE_GOING_AWAY, reason,
                            strlen(reason), apr_time_now());
            pthread_mutex_unlock(&wc->lock);
        }
        now = apr_time_now();
        pthread_mutex_lock(&wc->lock);
        next = ws_engine_tick(wc->engine, now);
        pthread_mutex_unlock(&wc->lock);
        if (write_output(d) && cb->on_drain) {
            pthread_mutex_lock(&wc->lock);
            drained = !ws_engine_has_output(wc->engine)
                      && ws_engine_state(wc->engine) == WS_STATE_OPEN;
            pthread_mutex_unlock(&wc->lock);
            if (drained)
                cb->on_drain(&wc->pub);
        }
        pthread_mutex_lock(&wc->lock);
        done = ws_engine_want_close(wc->engine)
               || (d->input_done && !ws_engine_has_output(wc->engine));
        pthread_mutex_unlock(&wc->lock);
        if (done)
            break;
        if (d->input_pending) {
            sleep = 0;
        }
        else {
            now = apr_time_now();
            sleep = next == WS_NO_DEADLINE || next - now > MAX_SLEEP
                    ? MAX_SLEEP : next > now ? next - now : 0;
        }
        /* EINTR (a signal to a stopping child), a wake-up and a timeout
         * all lead to the same place: the top of the loop. */
        apr_pollset_poll(d->pollset, sleep, &nfired, &fired);
    }
    ws_conn_set_wake(wc, NULL, NULL);
}
