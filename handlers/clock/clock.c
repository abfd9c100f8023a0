/* clock: pushes to every connection, once per interval, how long it has
 * been open, as {"tick":N,"elapsed_ms":M}. An example of a plugin that
 * sends from a thread of its own rather than in reply to a message.
 *
 * One thread per httpd child process serves every connection of that
 * process: process_init starts it, process_exit stops and joins it. on_open
 * puts the connection on the thread's list, holding its handle
 * (mws_hold()); on_close takes it off and releases the handle. So no
 * thread, timer or handle outlives its connection, and the thread does not
 * outlive its process. The thread sleeps until the next tick is due
 * (pthread_cond_timedwait() on CLOCK_MONOTONIC, so changes to the wall
 * clock do not matter) and wakes at once when a connection arrives or the
 * process exits.
 *
 * Locks: 'lock' guards the list and 'stopping'. The thread sends while
 * holding it; mws_send() only queues and never blocks, and the module calls
 * no callback with a lock of its own held, so the order is always 'lock',
 * then the module's per-connection lock inside mws_send().
 *
 * Setting (WebSocketSetting, per <Location>): interval, default 1s; see
 * README.md.
 */
#define _GNU_SOURCE                /* pthread_setname_np() */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mod_websocket_plugin.h>

#define NS_PER_MS            1000000LL
#define DEFAULT_INTERVAL_MS  1000LL
#define MIN_INTERVAL_MS      10LL                   /* 100 pushes a second */
#define MAX_INTERVAL_MS      (24LL * 3600 * 1000)   /* a day */

typedef struct ticker {
    struct ticker *next, *prev;   /* in 'tickers', under 'lock' */
    mws_conn_t *conn;             /* held from on_open to on_close */
    int64_t opened;               /* CLOCK_MONOTONIC, ns */
    int64_t interval;             /* ns */
    int64_t due;                  /* next tick, ns; under 'lock' */
} ticker_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;       /* made in process_init: CLOCK_MONOTONIC */
static ticker_t *tickers;         /* under 'lock' */
static int stopping;              /* under 'lock' */
static pthread_t thread;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "250" (milliseconds), "250ms", "2s", "1min" or "1h"; -1 if it is none
 * of these or lies outside MIN_INTERVAL_MS..MAX_INTERVAL_MS. */
static long long parse_interval_ms(const char *s)
{
    static const struct { const char *unit; long long ms; } units[] = {
        { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "min", 60000 },
        { "h", 3600000 },
    };
    long long n = 0;
    size_t i;

    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        n = n * 10 + (*s - '0');
        if (n > MAX_INTERVAL_MS)
            return -1;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (!strcasecmp(s, units[i].unit)) {
            n *= units[i].ms;
            return n >= MIN_INTERVAL_MS && n <= MAX_INTERVAL_MS ? n : -1;
        }
    }
    return -1;
}

static long long interval_setting(mws_conn_t *conn)
{
    static int warned;
    const char *value = mws_setting(conn, "interval");
    long long ms;

    if (!value)
        return DEFAULT_INTERVAL_MS;
    if ((ms = parse_interval_ms(value)) > 0)
        return ms;
    /* A plugin's stderr goes to httpd's main error log (flushed: httpd's
     * daemon reopens stderr, which leaves it buffered). Once per process
     * is enough to be noticed. */
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED)) {
        fprintf(stderr, "clock: %s: WebSocketSetting interval \"%s\" is not "
                "a time from %lldms to %lldh; using %lldms\n",
                mws_location(conn), value, MIN_INTERVAL_MS,
                MAX_INTERVAL_MS / 3600000, DEFAULT_INTERVAL_MS);
        fflush(stderr);
    }
    return DEFAULT_INTERVAL_MS;
}

/* Send t its tick. The count is the whole intervals since the connection
 * opened: one more than last time, unless this thread was held up, and
 * then the count stays true to the time rather than to the ticks sent. */
static void tick_locked(ticker_t *t, int64_t now)
{
    long long n = (now - t->opened) / t->interval;
    char text[64];
    int len;

    len = snprintf(text, sizeof(text), "{\"tick\":%lld,\"elapsed_ms\":%lld}",
                   n, n * (t->interval / NS_PER_MS));
    /* Never blocks. A full queue (a client that stopped reading) drops
     * this tick or closes the connection, as WebSocketQueuePolicy says; a
     * connection that is closing answers MWS_SEND_GONE until its on_close
     * takes it off the list. */
    mws_send_text(t->conn, text, (size_t)len);
    t->due = t->opened + (n + 1) * t->interval;
}

static void *clock_main(void *arg)
{
    struct timespec until;
    int64_t now, next;
    ticker_t *t;

    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        now = now_ns();
        next = INT64_MAX;
        for (t = tickers; t; t = t->next) {
            if (t->due <= now)
                tick_locked(t, now);
            if (t->due < next)
                next = t->due;
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&wake, &lock);
        }
        else {
            until.tv_sec = next / 1000000000;
            until.tv_nsec = next % 1000000000;
            pthread_cond_timedwait(&wake, &lock, &until);
        }
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int process_init(void)
{
    pthread_condattr_t attr;
    sigset_t all, old;
    int rc;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&wake, &attr);
    pthread_condattr_destroy(&attr);
    if (rc)
        return rc;
    stopping = 0;
    /* The thread takes no signals: httpd's MPMs handle theirs on their
     * own threads (a prefork child even exits from a signal handler,
     * which must not run here). It inherits the mask it is created with. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&thread, NULL, clock_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_cond_destroy(&wake);
        return rc;
    }
#ifdef __GLIBC__
    pthread_setname_np(thread, "mws-clock");   /* for top -H, ps -L */
#endif
    return 0;
}

/* Every connection of the process has closed by now, so the list is
 * empty; the thread only has to be told and waited for. */
static void process_exit(void)
{
    pthread_mutex_lock(&lock);
    stopping = 1;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
    pthread_cond_destroy(&wake);
}

static int on_open(mws_conn_t *conn)
{
    ticker_t *t = calloc(1, sizeof(*t));

    if (!t)
        return 503;
    /* Settings belong to the <Location>: read them per connection. */
    t->interval = interval_setting(conn) * NS_PER_MS;
    t->opened = now_ns();
    t->due = t->opened + t->interval;
    t->conn = mws_hold(conn);
    mws_set_data(conn, t);

    pthread_mutex_lock(&lock);
    t->next = tickers;
    if (tickers)
        tickers->prev = t;
    tickers = t;
    pthread_cond_signal(&wake);   /* its first tick may be the next due */
    pthread_mutex_unlock(&lock);
    return 0;
}

/* Once t is off the list the thread cannot reach it, so its handle can be
 * released and its memory freed without the lock. */
static void on_close(mws_conn_t *conn, uint16_t code, const char *reason,
                     int clean)
{
    ticker_t *t = mws_get_data(conn);

    (void)code;
    (void)reason;
    (void)clean;
    if (!t)
        return;
    pthread_mutex_lock(&lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        tickers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&lock);
    mws_set_data(conn, NULL);
    mws_release(t->conn);
    free(t);
}

static const mws_plugin_t clock_table = {
    MWS_PLUGIN_HEADER,
    .name = "clock",
    .process_init = process_init,
    .process_exit = process_exit,
    .on_open = on_open,
    .on_close = on_close,
};

MWS_PLUGIN_EXPORT const mws_plugin_t *clock_plugin(void)
{
    return &clock_table;
}
