/* ws_driver_blocking.c: the driver that keeps the request's thread for the
 * life of the WebSocket, and the decision, for both drivers, of when a
 * winding-down child closes its WebSockets (ws_driver_child_stopping()).
 *
 * The thread polls the connection together with a wake-up that other
 * threads' sends trigger, reads whatever is ready into the engine, writes
 * what the engine has queued, and sleeps until the engine's next deadline
 * (at most a second, to notice a stopping child on MPMs that signal rather
 * than call hooks, and the end of an old child's restart grace). It is the
 * only thread that touches the connection's filters, and it never holds
 * the connection's lock while it reads, writes or calls the plugin.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "apr_poll.h"
#include "ap_mpm.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "scoreboard.h"
#include "util_filter.h"

#include "ws_config.h"
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

/* ---- winding down: a stop, and the grace after a graceful restart ----
 *
 * A graceful restart bumps the scoreboard's running generation before it
 * signals the old children (event.c and prefork.c, 2.4.x); a graceful stop
 * leaves it alone. So a child whose own generation is no longer the
 * running one was restarted, and with WebSocketRestartGrace keeps its
 * WebSockets until the grace, counted from when it first notices, runs
 * out. httpd keeps such a child for as long as it serves connections.
 *
 * A graceful stop during the grace reaches only the running generation
 * (over its pipe of death), never the old children, which would then hold
 * the stop until the grace or GracefulShutdownTimeout ran out. What they
 * can see is the running generation's children going away: the MPMs keep
 * a slot's generation after its child is gone, so a slot of the running
 * generation says that generation was started, and none of them alive for
 * ORPHANED means httpd is stopping, and the grace ends. Until there is
 * such a slot (the parent is still reading its configuration, or has no
 * free slot for a new child) the grace holds. */

#define GRACE_LOOK  apr_time_from_msec(250)  /* scoreboard scans at most */
#define ORPHANED    apr_time_from_sec(3)     /* longer than the parent takes
                                                to replace a child */

static pthread_mutex_t grace_lock = PTHREAD_MUTEX_INITIALIZER;
static apr_time_t grace_end;        /* 0: no grace started (grace_lock) */
static apr_time_t grace_looked;     /* last scan (grace_lock) */
static apr_time_t orphaned_since;   /* 0, or since when the running
                                       generation has had slots but no
                                       live child (grace_lock) */
static const char *grace_over;      /* the close reason once it is over
                                       (grace_lock) */

/* 1 if generation gen has been given a slot (its children were started),
 * and then *alive says whether one of them still lives. */
static int generation_started(int gen, int *alive)
{
    int limit = 0, started = 0, i;

    *alive = 1;
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS)
        return 0;
    *alive = 0;
    for (i = 0; i < limit && !*alive; i++) {
        process_score *ps = ap_get_scoreboard_process(i);

        if (!ps || ps->generation != gen)
            continue;
        started = 1;
        *alive = ps->pid > 0 && (kill(ps->pid, 0) == 0 || errno == EPERM);
    }
    return started;
}

static void count_conn(ws_conn_t *wc, void *arg)
{
    (void)wc;
    ++*(int *)arg;
}

/* The grace of an old child: NULL while it lasts, else the close reason. */
static const char *grace_check(apr_interval_time_t grace, int my_gen)
{
    apr_time_t now = apr_time_now();
    int started = 0, ended = 0, conns = 0, gen;
    const char *over;
    int alive;

    pthread_mutex_lock(&grace_lock);
    if (!grace_end) {
        grace_end = now + grace;
        started = 1;
    }
    if (!grace_over && now >= grace_end) {
        grace_over = "server restarting";
        ended = 1;
    }
    else if (!grace_over && now - grace_looked >= GRACE_LOOK) {
        grace_looked = now;
        gen = ap_scoreboard_image->global->running_generation;
        if (!generation_started(gen, &alive) || alive) {
            orphaned_since = 0;
        }
        else if (!orphaned_since) {
            orphaned_since = now;
        }
        else if (now - orphaned_since >= ORPHANED) {
            grace_over = "server shutting down";
            ended = 1;
        }
    }
    over = grace_over;
    pthread_mutex_unlock(&grace_lock);
    if (started || ended)
        ws_conn_for_each(count_conn, &conns);
    if (started && conns)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     WSLOGNO(00114) "websocket: graceful restart: this "
                     "child (generation %d) keeps its %d WebSocket(s) open "
                     "for up to %" APR_TIME_T_FMT " ms "
                     "(WebSocketRestartGrace)", my_gen, conns,
                     apr_time_as_msec(grace));
    if (ended && conns)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     WSLOGNO(00115) "websocket: %s: closing the %d "
                     "WebSocket(s) of this old child with 1001",
                     now >= grace_end ? "the restart grace is over"
                                      : "the new generation is gone",
                     conns);
    return over;
}

int ws_driver_child_stopping(const char **reason)
{
    apr_interval_time_t grace = ws_config_global()->restart_grace;
    int state, generation;

    *reason = "server shutting down";
    if (ap_scoreboard_image
        && ap_mpm_query(AP_MPMQ_GENERATION, &generation) == APR_SUCCESS
        && ap_scoreboard_image->global->running_generation != generation) {
        const char *over = grace > 0 ? grace_check(grace, generation)
                                     : *reason;

        if (over)
            *reason = over;
        return over != NULL;
    }
    return ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
           && state == AP_MPMQ_STOPPING;
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
