/* pubsub: the benchmark's topic plugin for mod_websocket, written against
 * include/mod_websocket_plugin.h alone. It measures mws_publish(): the
 * module's own fan-out to the subscribers of every child process (over
 * the local bus) and of other httpd instances (over Redis).
 *
 * Every connection of its <Location> subscribes in on_open to the topic
 * <location>/bench (the name the default WebSocketTopicPrefix allows). The
 * text message
 *
 *   burst K [S]
 *
 * makes this process's plugin thread publish K text messages of S bytes
 * (default 64, at least 32, at most 64 KiB, the bus's limit) to that
 * topic, each stamped just before its mws_publish():
 *
 *   "%019llu %010ld " then 'x' up to S bytes
 *
 * the CLOCK_MONOTONIC time in ns and the message's number within its burst
 * (from 0), so that ws_load --mode pubsub takes each delivery's latency
 * (its own CLOCK_MONOTONIC at parse time minus the stamp: one machine, one
 * clock) and checks the order per connection. bench/node_echo.js --pubsub
 * and bench/lws_echo --pubsub stamp the same way.
 *
 * The text message "whoami" is answered "pid N" (this process), so that
 * ws_load can count how many children its subscribers are spread over.
 * Every other message is echoed with its type.
 *
 * Why a thread of the plugin's own rather than the owner thread of the
 * connection that sent the command: mws_publish() delivers to this
 * process's subscribers on the calling thread (K x several thousand
 * queue operations for a burst); in on_message that would hold one of the
 * driver's worker threads, and the command connection, for the whole
 * burst. A feed thread is also how a real application publishes (a price
 * feed, a database listener), and it is what bench/plugins/fanout.c does,
 * so that fanout and pubsub differ only in the way to the subscribers.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mod_websocket_plugin.h>

#define STAMP_LEN 31      /* 19 digits, space, 10 digits, space */
#define MAX_SIZE (64 * 1024)

typedef struct job {
    struct job *next;
    mws_conn_t *conn;            /* held: whose <Location> publishes */
    char topic[256];
    long count;
    size_t size;
} job_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static job_t *jobs, **jobs_tail = &jobs;   /* under lock, in order */
static int stopping;             /* under lock */
static pthread_t thread;
static int thread_started;

static void topic_of(mws_conn_t *conn, char *buf, size_t cap)
{
    const char *loc = mws_location(conn);
    size_t n = strlen(loc);

    /* "/pubsub" -> "/pubsub/bench"; "/pubsub/" -> "/pubsub/bench". */
    snprintf(buf, cap, "%s%sbench", loc, n && loc[n - 1] == '/' ? "" : "/");
}

static void run_burst(const job_t *j)
{
    char *body;
    long k;

    if (!(body = malloc(j->size)))
        return;
    memset(body, 'x', j->size);
    for (k = 0; k < j->count; k++) {
        struct timespec ts;
        char stamp[64];

        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(stamp, sizeof(stamp), "%019llu %010ld ",
                 (unsigned long long)ts.tv_sec * 1000000000ull
                 + (unsigned long long)ts.tv_nsec, k);
        memcpy(body, stamp, STAMP_LEN);
        /* -1: the bus's queue is full (or memory ran out); ws_load counts
         * the messages that never arrive. */
        mws_publish(j->conn, j->topic, MWS_TEXT, body, j->size);
    }
    free(body);
}

static void *pubsub_main(void *arg)
{
    job_t *j;

    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!jobs && !stopping)
            pthread_cond_wait(&wake, &lock);
        if (!jobs)
            break;
        j = jobs;
        if (!(jobs = j->next))
            jobs_tail = &jobs;
        pthread_mutex_unlock(&lock);
        run_burst(j);
        mws_release(j->conn);
        free(j);
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int process_init(void)
{
    sigset_t all, old;
    int rc;

    /* httpd's signals stay with httpd's threads. */
    stopping = 0;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&thread, NULL, pubsub_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    thread_started = rc == 0;
    return rc;
}

static void process_exit(void)
{
    job_t *j;

    pthread_mutex_lock(&lock);
    stopping = 1;
    /* Bursts not started yet are dropped. */
    while ((j = jobs)) {
        jobs = j->next;
        mws_release(j->conn);
        free(j);
    }
    jobs_tail = &jobs;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    if (thread_started)
        pthread_join(thread, NULL);
    thread_started = 0;
}

static int on_open(mws_conn_t *conn)
{
    char topic[256];

    topic_of(conn, topic, sizeof(topic));
    return mws_subscribe(conn, topic) ? 500 : 0;
}

static void on_message(mws_conn_t *conn, mws_type_e type, const void *data,
                       size_t len)
{
    char cmd[64];
    long k = 0, s = 64;
    int n;

    if (type == MWS_TEXT && len == 6 && !memcmp(data, "whoami", 6)) {
        n = snprintf(cmd, sizeof(cmd), "pid %ld", (long)getpid());
        mws_send_text(conn, cmd, (size_t)n);
        return;
    }
    if (type == MWS_TEXT && len > 6 && len < sizeof(cmd)
        && !memcmp(data, "burst ", 6)) {
        memcpy(cmd, data, len);
        cmd[len] = '\0';
        n = sscanf(cmd, "burst %ld %ld", &k, &s);
        if (n >= 1 && k > 0 && s >= 0) {
            job_t *j = calloc(1, sizeof(*j));

            if (!j)
                return;
            j->count = k > 1000000 ? 1000000 : k;
            j->size = (size_t)(s < STAMP_LEN + 1 ? STAMP_LEN + 1
                               : s > MAX_SIZE ? MAX_SIZE : s);
            topic_of(conn, j->topic, sizeof(j->topic));
            j->conn = mws_hold(conn);
            pthread_mutex_lock(&lock);
            *jobs_tail = j;
            jobs_tail = &j->next;
            pthread_cond_signal(&wake);
            pthread_mutex_unlock(&lock);
            return;
        }
    }
    mws_send(conn, type, data, len);
}

static const mws_plugin_t pubsub = {
    MWS_PLUGIN_HEADER,
    .name = "pubsub",
    .process_init = process_init,
    .process_exit = process_exit,
    .on_open = on_open,
    .on_message = on_message,
};

MWS_PLUGIN_EXPORT const mws_plugin_t *pubsub_plugin(void)
{
    return &pubsub;
}
