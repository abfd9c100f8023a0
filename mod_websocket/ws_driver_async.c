/* ws_driver_async.c: the driver that parks a WebSocket in the event MPM
 * between bursts, so an idle connection holds no thread.
 *
 * The handler queues the 101 without flushing it and returns; the MPM
 * flushes it and calls our process_connection hook (see
 * ws_driver_async_start() for how), which runs the engine over what is
 * ready and parks the connection with CONN_STATE_ASYNC_WAITIO (httpd
 * 2.4.63+, AP_MPMQ_CAN_WAITIO; mod_http2's h2_c1.c does the same). The MPM
 * polls it with the vhost Timeout and calls the hook again when it is
 * ready.
 *
 * Three other parties may touch a parked connection's filters, always
 * under its io_lock and only while io_dead is clear: a plugin thread whose
 * send finds the lock free writes the frames itself, without blocking; the
 * per-child reactor thread runs the engine's timers (pings, idle and close
 * deadlines) and writes output the socket could not take at first; and
 * the pre-close hook marks the connection dead before httpd frees it.
 * Nobody ever blocks on the network here: writes go to the core output
 * filter without a FLUSH bucket and are pushed with its non-blocking
 * write, and what does not fit waits in the filters until the socket has
 * room: the MPM polls for it (WANT_WRITE) when the owner parks with output
 * left, the reactor's own epoll set when a pusher or the reactor left it.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ap_mpm.h"
#include "mpm_common.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_log.h"
#include "util_filter.h"

#include "ws_driver.h"
#include "ws_log.h"

APLOG_USE_MODULE(websocket);

#define REACTOR_TICK apr_time_from_msec(200)

/* The connection's allocator keeps this much freed memory while the
 * WebSocket is busy, so that reads reuse their buffers, and nothing once
 * it has been idle for IDLE_TRIM (see trim_locked()). */
#define ACTIVE_MAX_FREE (64 * 1024)
#define IDLE_TRIM       apr_time_from_sec(2)

struct ws_driver_async {
    ws_conn_t *wc;              /* our reference */
    conn_rec *c;
    apr_bucket_brigade *bb;
    ap_filter_t *core_out;      /* the last output filter */
    apr_size_t write_max;       /* bytes per pass: see pump_output() */
    int64_t next_deadline;      /* the engine's, for the reactor (atomic) */
    int pending;                /* output waits in the filters (atomic) */
    int input_done;
    int woke_mpm;               /* the read side was shut to wake the MPM */
    int finished;
    apr_allocator_t *allocator; /* the connection's */
    apr_time_t last_run;        /* last activity: the owner hook, a push
                                   (atomic) */
    int trimmed;                /* the allocator holds nothing spare
                                   (atomic; written under io_lock) */
    int fd;                     /* the socket, for the reactor's epoll */
    int watched;                /* in the reactor's epoll, holding a
                                   reference to wc (under io_lock) */
    int wrote;                  /* output left since the last drain */
    int drain_due;              /* on_drain owed (atomic) */
    int started;                /* our hook has run: from then on httpd
                                   touches the filters only through us */
    ap_filter_t *first_round;   /* see first_round_filter() */
};

static ap_filter_rec_t *first_round_rec;

static int reactor_running;
static pthread_t reactor;
static volatile int reactor_stop;
static int reactor_ep = -1;     /* sockets whose output waits for room */

/* Connections finished while in reactor_ep: their reference is dropped by
 * the reactor, after any event it has already fetched for them. */
static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static ws_conn_t *retired;

/* ---- writing, for whoever holds io_lock ---- */

/* Push what the filters hold with one non-blocking write. */
static apr_status_t push_pending(ws_driver_async_t *a)
{
    apr_status_t rv = a->core_out->frec->filter_func.out_func(a->core_out,
                                                              NULL);

    __atomic_store_n(&a->pending, a->c->data_in_output_filters != 0,
                     __ATOMIC_RELAXED);
    return rv;
}

/* Move the engine's output into the filters and out with the core's
 * non-blocking writes until the socket is full: a burst of frames leaves
 * in one write. Each pass stays within the core's FlushMaxThreshold: past
 * it, the core would wait for the client to read. A broken connection
 * counts as the peer's EOF. Returns 1 while output waits. */
static int pump_output(ws_driver_async_t *a)
{
    ws_conn_t *wc = a->wc;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t passed;

    for (;;) {
        if (a->c->data_in_output_filters
            && ((rv = push_pending(a)) != APR_SUCCESS
                || a->c->data_in_output_filters))
            break;
        rv = ws_driver_pass_output(wc, a->bb, a->write_max, &passed);
        if (rv != APR_SUCCESS || passed == 0)
            break;
        a->wrote = 1;
    }
    if (rv != APR_SUCCESS) {
        a->input_done = 1;
        pthread_mutex_lock(&wc->lock);
        ws_engine_eof(wc->engine, apr_time_now());
        pthread_mutex_unlock(&wc->lock);
        __atomic_store_n(&a->pending, 0, __ATOMIC_RELAXED);
        return 0;
    }
    return a->c->data_in_output_filters != 0;
}

/* 1 once output written since the last on_drain has all left, while the
 * connection is open: on_drain is owed. */
static int drained(ws_driver_async_t *a)
{
    ws_conn_t *wc = a->wc;
    int done;

    if (!a->wrote || a->c->data_in_output_filters)
        return 0;
    pthread_mutex_lock(&wc->lock);
    done = !ws_engine_has_output(wc->engine)
           && ws_engine_state(wc->engine) == WS_STATE_OPEN;
    pthread_mutex_unlock(&wc->lock);
    if (done)
        a->wrote = 0;
    return done;
}

static int want_close(ws_driver_async_t *a)
{
    ws_conn_t *wc = a->wc;
    int done;

    pthread_mutex_lock(&wc->lock);
    done = ws_engine_want_close(wc->engine)
           || (a->input_done && !ws_engine_has_output(wc->engine));
    pthread_mutex_unlock(&wc->lock);
    return done;
}

static int has_output(ws_conn_t *wc)
{
    int out;

    pthread_mutex_lock(&wc->lock);
    out = wc->engine && ws_engine_has_output(wc->engine);
    pthread_mutex_unlock(&wc->lock);
    return out;
}

/* An idle parked connection gives back the blocks its allocator kept (at
 * most ACTIVE_MAX_FREE), as nginx frees an idle keep-alive connection's
 * buffers: with the limit at nothing, taking them and freeing them again
 * hands them back for good. The owner's next run raises the limit. */
static void trim_locked(ws_driver_async_t *a)
{
    apr_memnode_t *list = NULL, *node;
    int i;

    if (!a->allocator)
        return;
    apr_allocator_max_free_set(a->allocator, 1);
    for (i = 0; i < ACTIVE_MAX_FREE / APR_BUCKET_BUFF_SIZE + 1; i++) {
        if (!(node = apr_allocator_alloc(a->allocator, APR_BUCKET_BUFF_SIZE)))
            break;
        node->next = list;
        list = node;
    }
    if (list)
        apr_allocator_free(a->allocator, list);
    __atomic_store_n(&a->trimmed, 1, __ATOMIC_RELAXED);
}

/* The connection is busy (its owner runs, or a push writes to it): let
 * its allocator keep blocks for reuse again, or every write would map and
 * unmap its buffers. */
static void note_activity_locked(ws_driver_async_t *a)
{
    if (__atomic_load_n(&a->trimmed, __ATOMIC_RELAXED) && a->allocator) {
        apr_allocator_max_free_set(a->allocator, ACTIVE_MAX_FREE);
        __atomic_store_n(&a->trimmed, 0, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&a->last_run, apr_time_now(), __ATOMIC_RELAXED);
}

/* Output is stuck on a parked connection: have the reactor's epoll say
 * when the socket takes more (the MPM polls it for reading only). Without
 * the epoll set, the reactor's tick retries. */
static void watch_output(ws_driver_async_t *a)
{
    struct epoll_event ev;

    if (reactor_ep < 0 || a->fd < 0)
        return;
    ev.events = EPOLLOUT | EPOLLONESHOT;
    ev.data.ptr = a->wc;
    if (a->watched) {
        epoll_ctl(reactor_ep, EPOLL_CTL_MOD, a->fd, &ev);
        return;
    }
    __atomic_add_fetch(&a->wc->refs, 1, __ATOMIC_RELAXED);
    if (epoll_ctl(reactor_ep, EPOLL_CTL_ADD, a->fd, &ev) == 0)
        a->watched = 1;
    else
        ws_conn_release(a->wc);
}

/* Out of the reactor's epoll for good (under io_lock, before the socket
 * closes); the reactor drops the reference. */
static void unwatch(ws_driver_async_t *a)
{
    ws_conn_t *wc = a->wc;

    if (!a->watched)
        return;
    a->watched = 0;
    epoll_ctl(reactor_ep, EPOLL_CTL_DEL, a->fd, NULL);
    pthread_mutex_lock(&retired_lock);
    wc->retired_next = retired;
    retired = wc;
    pthread_mutex_unlock(&retired_lock);
}

/* Timers and output for a connection the owner is not serving; if it is
 * done, shut its read side so that the MPM's poll wakes the owner to
 * close it (no other thread may close a parked connection). */
static void service_parked_locked(ws_driver_async_t *a)
{
    ws_conn_t *wc = a->wc;
    int64_t next;

    pthread_mutex_lock(&wc->lock);
    next = ws_engine_tick(wc->engine, apr_time_now());
    pthread_mutex_unlock(&wc->lock);
    __atomic_store_n(&a->next_deadline, next, __ATOMIC_RELAXED);
    if (pump_output(a))
        watch_output(a);
    /* Not called here: this may be another connection's callback, holding
     * the plugin's locks. The reactor or the owner calls it. */
    if (drained(a))
        __atomic_store_n(&a->drain_due, 1, __ATOMIC_RELAXED);
    if (!a->woke_mpm && want_close(a)) {
        a->woke_mpm = 1;
        apr_socket_shutdown(ap_get_conn_socket(a->c), APR_SHUTDOWN_READ);
    }
}

void ws_driver_async_kick(ws_conn_t *wc)
{
    /* Paired with the release in ws_driver_async_start(). */
    ws_driver_async_t *a = __atomic_load_n(&wc->async, __ATOMIC_ACQUIRE);

    if (!a)
        return;

    /* Whoever holds the lock looks at the output again after releasing
     * it, so giving up here loses nothing. */
    while (pthread_mutex_trylock(&wc->io_lock) == 0) {
        int again = 0;

        /* a is the connection's pool memory: read only under the lock
         * while the connection lives. */
        if (!wc->io_dead && a->started) {
            note_activity_locked(a);
            service_parked_locked(a);
            again = !a->pending;
        }
        pthread_mutex_unlock(&wc->io_lock);
        if (!again || !has_output(wc))
            break;
    }
}

/* on_drain, if owed, with io_lock held: one callback at a time. */
static void call_drain_locked(ws_driver_async_t *a)
{
    const mws_plugin_t *cb = &a->wc->plugin->cb;

    if (!__atomic_exchange_n(&a->drain_due, 0, __ATOMIC_RELAXED))
        return;
    if (cb->on_drain)
        cb->on_drain(&a->wc->pub);
}

/* ---- the reactor: one thread per child for timers and stuck output ---- */

static void reactor_visit(ws_conn_t *wc, void *arg)
{
    ws_driver_async_t *a = __atomic_load_n(&wc->async, __ATOMIC_ACQUIRE);
    apr_time_t now = *(apr_time_t *)arg;
    int trim, again = 0;

    if (!a)
        return;
    trim = !__atomic_load_n(&a->trimmed, __ATOMIC_RELAXED)
           && now - __atomic_load_n(&a->last_run, __ATOMIC_RELAXED)
              > IDLE_TRIM;
    if (!trim && !__atomic_load_n(&a->pending, __ATOMIC_RELAXED)
        && !__atomic_load_n(&a->drain_due, __ATOMIC_RELAXED)
        && now < __atomic_load_n(&a->next_deadline, __ATOMIC_RELAXED))
        return;
    if (pthread_mutex_trylock(&wc->io_lock) != 0)
        return;                 /* its owner is at it */
    if (!wc->io_dead && a->started) {
        service_parked_locked(a);
        call_drain_locked(a);
        if (trim)
            trim_locked(a);
        again = !a->pending;
    }
    pthread_mutex_unlock(&wc->io_lock);
    /* A send meanwhile (on_drain's, say) found the lock taken and left
     * its frames to us. */
    if (again && has_output(wc))
        ws_driver_async_kick(wc);
}

/* The socket of a connection with stuck output takes more. */
static void reactor_writable(ws_conn_t *wc)
{
    int again = 0;

    if (pthread_mutex_trylock(&wc->io_lock) != 0)
        return;                 /* its owner is at it */
    if (!wc->io_dead && wc->async->started) {
        note_activity_locked(wc->async);
        service_parked_locked(wc->async);
        call_drain_locked(wc->async);
        again = !wc->async->pending;
    }
    pthread_mutex_unlock(&wc->io_lock);
    if (again && has_output(wc))
        ws_driver_async_kick(wc);
}

static void release_retired(void)
{
    ws_conn_t *wc, *next;

    pthread_mutex_lock(&retired_lock);
    wc = retired;
    retired = NULL;
    pthread_mutex_unlock(&retired_lock);
    for (; wc; wc = next) {
        next = wc->retired_next;
        ws_conn_release(wc);
    }
}

static void *reactor_main(void *arg)
{
    struct epoll_event ev[64];
    apr_time_t now, next_tick = apr_time_now() + REACTOR_TICK;
    const char *reason;
    int n, i, closed_all = 0;

    (void)arg;
    while (!reactor_stop) {
        now = apr_time_now();
        if (reactor_ep >= 0) {
            n = epoll_wait(reactor_ep, ev, 64, next_tick > now
                           ? (int)apr_time_as_msec(next_tick - now) + 1 : 0);
        }
        else {
            n = 0;
            if (next_tick > now)
                apr_sleep(next_tick - now);
        }
        for (i = 0; i < n; i++)
            reactor_writable(ev[i].data.ptr);
        now = apr_time_now();
        if (now >= next_tick) {
            /* Parked connections wait for the MPM, not for us: when an
             * old child's restart grace ends, this is where they hear
             * it (a stop without a grace reaches them through the
             * child_stopping hook at once). */
            if (!closed_all && ws_driver_child_stopping(&reason)) {
                closed_all = 1;
                ws_conn_close_all(WS_CLOSE_GOING_AWAY, reason);
            }
            ws_conn_for_each(reactor_visit, &now);
            next_tick = now + REACTOR_TICK;
        }
        release_retired();
    }
    return NULL;
}

static apr_status_t reactor_join(void *data)
{
    (void)data;
    reactor_stop = 1;
    pthread_join(reactor, NULL);
    reactor_running = 0;
    release_retired();
    if (reactor_ep >= 0)
        close(reactor_ep);
    reactor_ep = -1;
    return APR_SUCCESS;
}

void ws_driver_async_child_init(apr_pool_t *pchild, server_rec *s)
{
    sigset_t all, old;
    int can = 0, rv;

    if (ap_mpm_query(AP_MPMQ_CAN_WAITIO, &can) != APR_SUCCESS || !can)
        return;
    reactor_ep = epoll_create1(EPOLL_CLOEXEC);
    if (reactor_ep < 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, APR_FROM_OS_ERROR(errno), s,
                     WSLOGNO(00032) "websocket: no epoll set for the async "
                     "driver; output that waits for room is retried every "
                     "%d ms", (int)apr_time_as_msec(REACTOR_TICK));
    /* httpd's signals are for its own threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rv = pthread_create(&reactor, NULL, reactor_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rv != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, APR_FROM_OS_ERROR(rv), s,
                     WSLOGNO(00031)
                     "websocket: cannot start the async driver's thread; "
                     "connections will use the blocking driver");
        if (reactor_ep >= 0)
            close(reactor_ep);
        reactor_ep = -1;
        return;
    }
    reactor_running = 1;
    apr_pool_cleanup_register(pchild, NULL, reactor_join,
                              apr_pool_cleanup_null);
}

/* ---- the connection's life ---- */

int ws_driver_async_possible(request_rec *r, const ws_dir_conf_t *conf,
                             const char **why)
{
    conn_rec *c = r->connection;
    int can = 0;

    if (conf->driver == WS_DRIVER_BLOCKING)
        *why = "WebSocketDriver blocking";
    else if (c->master != NULL)
        *why = "an HTTP/2 stream";
    else if (ap_mpm_query(AP_MPMQ_CAN_WAITIO, &can) != APR_SUCCESS || !can
             || c->cs == NULL)
        *why = "this MPM cannot park connections (event MPM of httpd "
               "2.4.63 or later needed)";
    else if (!reactor_running)
        *why = "the async driver's thread did not start";
    else
        return 1;
    return 0;
}

static void finish(ws_driver_async_t *a)
{
    ws_conn_t *wc = a->wc;

    if (a->finished)
        return;
    a->finished = 1;
    pthread_mutex_lock(&wc->io_lock);
    wc->io_dead = 1;
    unwatch(a);
    pthread_mutex_unlock(&wc->io_lock);
    pthread_mutex_lock(&wc->lock);
    if (!ws_engine_want_close(wc->engine))
        ws_engine_eof(wc->engine, apr_time_now());
    pthread_mutex_unlock(&wc->lock);
    ws_conn_finish(wc);
    ap_set_module_config(a->c->conn_config, &websocket_module, NULL);
    if (a->allocator)
        apr_allocator_max_free_set(a->allocator, ap_max_mem_free);
    ws_conn_release(wc);
}

static apr_status_t finish_cleanup(void *data)
{
    finish(data);
    return APR_SUCCESS;
}

/* Answers httpd's speculative look for a pipelined request with one byte
 * until our hook removes it; any other read passes through. */
static apr_status_t first_round_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                       ap_input_mode_t mode,
                                       apr_read_type_e block,
                                       apr_off_t readbytes)
{
    if (mode != AP_MODE_SPECULATIVE)
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(
        "W", 1, f->c->bucket_alloc));
    return APR_SUCCESS;
}

apr_status_t ws_driver_async_start(ws_conn_t *wc)
{
    conn_rec *c = wc->c;
    ws_driver_async_t *a = apr_pcalloc(c->pool, sizeof(*a));
    core_server_config *core;
    apr_interval_time_t timeout, ping;

    a->wc = wc;
    a->c = c;
    a->bb = apr_brigade_create(c->pool, c->bucket_alloc);
    if (apr_os_sock_get(&a->fd, ap_get_conn_socket(c)) != APR_SUCCESS)
        a->fd = -1;
    for (a->core_out = c->output_filters; a->core_out->next;
         a->core_out = a->core_out->next)
        ;
    core = ap_get_core_module_config(c->base_server->module_config);
    /* Half, so that TLS records' overhead keeps the core under it too. */
    a->write_max = (core->flush_max_threshold > 0
                    ? core->flush_max_threshold : 65536) / 2;
    /* A parked connection is under the vhost's Timeout too: ping often
     * enough that a live client's pongs keep it from the MPM's timeout. */
    timeout = c->base_server->timeout;
    pthread_mutex_lock(&wc->lock);
    ping = wc->conf->ping_interval;
    if (timeout > 0 && (ping <= 0 || ping > timeout / 2))
        ws_engine_set_ping_interval(wc->engine, timeout / 2);
    a->next_deadline = ws_engine_next_deadline(wc->engine);
    pthread_mutex_unlock(&wc->lock);
    wc->r = NULL;               /* the request ends with the handler */
    /* The connection's allocator keeps what the request and the reads
     * free (up to MaxMemFree, 2 MB by default) for as long as the
     * WebSocket lives. Our hook's first run bounds that, trim_locked()
     * hands it back once the connection is idle, and finish() restores
     * the MPM's setting for the allocator's next connection. */
    a->allocator = apr_pool_allocator_get(c->pool);
    a->trimmed = 1;
    ap_set_module_config(c->conn_config, &websocket_module, a);
    /* A backstop for closes that skip the pre-close hook. */
    apr_pool_cleanup_register(c->pool, a, finish_cleanup,
                              apr_pool_cleanup_null);
    /* After the handler, httpd's own thread still finishes the request
     * and flushes the 101 through these filters, so nobody else may write
     * to them until our hook has run once. To have the MPM call it right
     * after that flush, whatever the client does, first_round_filter()
     * shows httpd's check for a pipelined request one byte of input:
     * keep-alive then leads straight back to the process_connection
     * hooks (event.c, process_socket()). Clogging input filters keep it
     * calling them, not the HTTP/1 parser, on every later round. */
    a->first_round = ap_add_input_filter_handle(first_round_rec, a, NULL, c);
    c->keepalive = AP_CONN_KEEPALIVE;
    c->cs->sense = CONN_SENSE_DEFAULT;
    c->clogging_input_filters = 1;
    /* Last: a plugin thread's send may find a from now on. */
    __atomic_store_n(&wc->async, a, __ATOMIC_RELEASE);
    return APR_SUCCESS;
}

/* Read to the end of what is there: mod_ssl may hold decrypted bytes that
 * no poll reports. */
static void read_input(ws_driver_async_t *a)
{
    if (a->input_done || ws_driver_read(a->wc, a->bb, 0) != APR_EOF)
        return;
    a->input_done = 1;
    pthread_mutex_lock(&a->wc->lock);
    ws_engine_eof(a->wc->engine, apr_time_now());
    pthread_mutex_unlock(&a->wc->lock);
}

/* The MPM hands us the connection: input or writability arrived (or the
 * reactor shut the read side to say it is done). Serve it and park it. */
static int ws_async_process_connection(conn_rec *c)
{
    ws_driver_async_t *a = ap_get_module_config(c->conn_config,
                                                &websocket_module);
    ws_conn_t *wc;
    int pending, stopping;
    const char *reason;
    int64_t next;

    if (!a || a->finished)
        return DECLINED;
    wc = a->wc;
    c->clogging_input_filters = 0;
    pthread_mutex_lock(&wc->io_lock);
    if (!a->started) {
        ap_remove_input_filter(a->first_round);
        a->started = 1;
    }
    note_activity_locked(a);
    pending = a->c->data_in_output_filters && pump_output(a);
    if (!pending)
        read_input(a);
    stopping = ws_driver_child_stopping(&reason);
    pthread_mutex_lock(&wc->lock);
    if (stopping)
        ws_engine_close(wc->engine, WS_CLOSE_GOING_AWAY, reason,
                        strlen(reason), apr_time_now());
    next = ws_engine_tick(wc->engine, apr_time_now());
    pthread_mutex_unlock(&wc->lock);
    __atomic_store_n(&a->next_deadline, next, __ATOMIC_RELAXED);
    pending = pump_output(a);
    if (!pending && drained(a))
        __atomic_store_n(&a->drain_due, 1, __ATOMIC_RELAXED);
    call_drain_locked(a);
    if (want_close(a)) {
        pthread_mutex_unlock(&wc->io_lock);
        c->cs->state = CONN_STATE_LINGER;
        return OK;
    }
    c->cs->state = CONN_STATE_ASYNC_WAITIO;
    c->cs->sense = pending ? CONN_SENSE_WANT_WRITE : CONN_SENSE_WANT_READ;
    pthread_mutex_unlock(&wc->io_lock);
    /* A send that found the lock taken left its frames to us. */
    if (!pending && has_output(wc))
        ws_driver_async_kick(wc);
    return OK;
}

/* httpd closes the connection: we asked for it, or the MPM gave up on it
 * (its Timeout while parked, a hard stop). A WebSocket still open gets a
 * 1001 close frame, if the socket takes it now. */
static int ws_async_pre_close(conn_rec *c)
{
    ws_driver_async_t *a = ap_get_module_config(c->conn_config,
                                                &websocket_module);
    ws_conn_t *wc;

    if (!a || a->finished)
        return OK;
    wc = a->wc;
    pthread_mutex_lock(&wc->io_lock);
    pthread_mutex_lock(&wc->lock);
    if (ws_engine_close(wc->engine, WS_CLOSE_GOING_AWAY, "server closing",
                        14, apr_time_now()) == 0) {
        pthread_mutex_unlock(&wc->lock);
        pump_output(a);
    }
    else {
        pthread_mutex_unlock(&wc->lock);
    }
    pthread_mutex_unlock(&wc->io_lock);
    finish(a);
    return OK;
}

void ws_driver_async_register_hooks(void)
{
    /* Above mod_ssl's filter (AP_FTYPE_CONNECTION + 5): below it, the
     * speculative read would reach us as mod_ssl's read of TLS records. */
    first_round_rec = ap_register_input_filter("WS_FIRST_ROUND",
                                               first_round_filter, NULL,
                                               AP_FTYPE_CONNECTION);
    /* First, ahead of mod_http2's and the core's HTTP/1 handling, which
     * would read WebSocket frames as requests. */
    ap_hook_process_connection(ws_async_process_connection, NULL, NULL,
                               APR_HOOK_FIRST);
    ap_hook_pre_close_connection(ws_async_pre_close, NULL, NULL,
                                 APR_HOOK_MIDDLE);
}
