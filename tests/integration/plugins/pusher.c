/* pusher: a test plugin that sends from a thread of its own, to exercise
 * what a real push plugin does: sends from a foreign thread, handles held
 * past on_close, and a full outgoing queue. Commands, as text messages:
 *
 *   push N        the thread sends "push 0" .. "push N-1" to this client
 *   flood N SIZE  the thread sends N binary messages of SIZE bytes as fast
 *                 as it can, then a text "flood queued=Q refused=R gone=G";
 *                 while the queue is too full for that summary (refuse
 *                 policy, client not reading yet) it retries every 10 ms
 *                 for up to 60 s, so a client that reads later still sees it
 *   linger        keep this handle after the connection closes; the thread
 *                 sends to it once it is gone
 *   stats         reply "gone=G" (sends on lingering handles that
 *                 answered MWS_SEND_GONE)
 *
 * Anything else is echoed, so the plugin also serves as a plain echo.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mod_websocket_plugin.h>

typedef struct job {
    struct job *next;
    mws_conn_t *conn;      /* held */
    long count;
    long size;             /* 0: "push" texts */
} job_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static job_t *jobs;
static int stopping;
static long gone_count;
static pthread_t thread;

static void add_job(mws_conn_t *conn, long count, long size)
{
    job_t *j = calloc(1, sizeof(*j));

    if (!j)
        return;
    j->conn = mws_hold(conn);
    j->count = count;
    j->size = size;
    pthread_mutex_lock(&lock);
    j->next = jobs;
    jobs = j;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
}

static void run_job(job_t *j)
{
    long queued = 0, refused = 0, gone = 0, i;
    char text[96];
    char *blob = j->size ? calloc(1, (size_t)j->size) : NULL;

    for (i = 0; i < j->count; i++) {
        mws_send_result_e r;

        if (blob) {
            r = mws_send_binary(j->conn, blob, (size_t)j->size);
        }
        else {
            int n = snprintf(text, sizeof(text), "push %ld", i);
            r = mws_send_text(j->conn, text, (size_t)n);
        }
        queued += r == MWS_SEND_QUEUED;
        refused += r == MWS_SEND_REFUSED;
        gone += r == MWS_SEND_GONE;
    }
    if (blob) {
        int n = snprintf(text, sizeof(text),
                         "flood queued=%ld refused=%ld gone=%ld",
                         queued, refused, gone);
        struct timespec pause = { 0, 10 * 1000 * 1000 };
        int tries;

        for (tries = 0; tries < 6000; tries++) {
            if (mws_send_text(j->conn, text, (size_t)n) != MWS_SEND_REFUSED)
                break;
            nanosleep(&pause, NULL);
        }
    }
    if (j->count == 0 && mws_send_text(j->conn, "late", 4) == MWS_SEND_GONE) {
        pthread_mutex_lock(&lock);
        gone_count++;
        pthread_mutex_unlock(&lock);
    }
    free(blob);
    mws_release(j->conn);
    free(j);
}

static void *pusher_main(void *arg)
{
    job_t *j;

    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping || jobs) {
        if (!jobs) {
            pthread_cond_wait(&wake, &lock);
            continue;
        }
        j = jobs;
        jobs = j->next;
        pthread_mutex_unlock(&lock);
        run_job(j);
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int process_init(void)
{
    sigset_t all, old;
    int rc;

    /* The thread inherits this mask: httpd's signals stay with its own
     * threads. */
    stopping = 0;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&thread, NULL, pusher_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void process_exit(void)
{
    pthread_mutex_lock(&lock);
    stopping = 1;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
}

static void on_message(mws_conn_t *conn, mws_type_e type, const void *data,
                       size_t len)
{
    char cmd[64];
    long a = 0, b = 0;

    if (type == MWS_TEXT && len < sizeof(cmd)) {
        memcpy(cmd, data, len);
        cmd[len] = '\0';
        if (sscanf(cmd, "push %ld", &a) == 1) {
            add_job(conn, a, 0);
            return;
        }
        if (sscanf(cmd, "flood %ld %ld", &a, &b) == 2 && b > 0) {
            add_job(conn, a, b);
            return;
        }
        if (!strcmp(cmd, "linger")) {
            mws_set_data(conn, conn);
            mws_send_text(conn, "lingering", 9);
            return;
        }
        if (!strcmp(cmd, "stats")) {
            int n;
            pthread_mutex_lock(&lock);
            n = snprintf(cmd, sizeof(cmd), "gone=%ld", gone_count);
            pthread_mutex_unlock(&lock);
            mws_send_text(conn, cmd, (size_t)n);
            return;
        }
    }
    mws_send(conn, type, data, len);
}

/* A lingering handle outlives its connection: the thread sends to it
 * after on_close has returned. */
static void on_close(mws_conn_t *conn, uint16_t code, const char *reason,
                     int clean)
{
    (void)code;
    (void)reason;
    (void)clean;
    if (mws_get_data(conn))
        add_job(conn, 0, 0);
}

static const mws_plugin_t pusher = {
    MWS_PLUGIN_HEADER,
    .name = "pusher",
    .process_init = process_init,
    .process_exit = process_exit,
    .on_message = on_message,
    .on_close = on_close,
};

MWS_PLUGIN_EXPORT const mws_plugin_t *pusher_plugin(void)
{
    return &pusher;
}
