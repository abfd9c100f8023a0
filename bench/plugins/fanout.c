/* fanout: the benchmark's broadcast plugin for mod_websocket, written
 * against include/mod_websocket_plugin.h alone.
 *
 * Every connection of its <Location> joins this process's member list in
 * on_open (its handle held with mws_hold) and leaves it in on_close. The
 * text message
 *
 *   burst K [S]
 *
 * makes the plugin's own thread send K text messages of S bytes (default
 * 64, at most 1 MiB) to every member of the process, message by message,
 * each to all members, as bench/node_echo.js and bench/lws_echo.c do (one
 * mws_send_many() per message: the module stores it once for all).
 * Nothing answers the command itself: the sender is a member and gets its
 * K messages like everyone else. Every other message is echoed with its
 * type, so the plugin also serves the echo scenarios.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mod_websocket_plugin.h>

typedef struct member {
    struct member *prev, *next;
    mws_conn_t *conn;            /* held while a member */
} member_t;

typedef struct job {
    struct job *next;
    long count;
    size_t size;
} job_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static member_t *members;        /* under lock */
static long n_members;           /* under lock */
static job_t *jobs, **jobs_tail = &jobs;   /* under lock, in order */
static int stopping;             /* under lock */
static pthread_t thread;
static int thread_started;

static void run_burst(const job_t *j)
{
    mws_conn_t **all = NULL;
    member_t *m;
    char *body;
    long n = 0, i, k;

    if (!(body = malloc(j->size ? j->size : 1)))
        return;
    memset(body, 'x', j->size);
    pthread_mutex_lock(&lock);
    if (n_members && (all = malloc(sizeof(*all) * (size_t)n_members)))
        for (m = members; m; m = m->next)
            all[n++] = mws_hold(m->conn);
    pthread_mutex_unlock(&lock);
    for (k = 0; k < j->count; k++)
        mws_send_many(all, (size_t)n, MWS_TEXT, body, j->size, NULL);
    for (i = 0; i < n; i++)
        mws_release(all[i]);
    free(all);
    free(body);
}

static void *fanout_main(void *arg)
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
    rc = pthread_create(&thread, NULL, fanout_main, NULL);
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
    member_t *m = calloc(1, sizeof(*m));

    if (!m)
        return 500;
    m->conn = mws_hold(conn);
    mws_set_data(conn, m);
    pthread_mutex_lock(&lock);
    m->next = members;
    if (members)
        members->prev = m;
    members = m;
    n_members++;
    pthread_mutex_unlock(&lock);
    return 0;
}

static void on_message(mws_conn_t *conn, mws_type_e type, const void *data,
                       size_t len)
{
    char cmd[64];
    long k = 0, s = 64;
    int n;

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
            j->size = (size_t)(s > (1 << 20) ? (1 << 20) : s);
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

static void on_close(mws_conn_t *conn, uint16_t code, const char *reason,
                     int clean)
{
    member_t *m = mws_get_data(conn);

    (void)code;
    (void)reason;
    (void)clean;
    if (!m)
        return;
    pthread_mutex_lock(&lock);
    if (m->prev)
        m->prev->next = m->next;
    else
        members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    n_members--;
    pthread_mutex_unlock(&lock);
    mws_set_data(conn, NULL);
    mws_release(m->conn);
    free(m);
}

static const mws_plugin_t fanout = {
    MWS_PLUGIN_HEADER,
    .name = "fanout",
    .process_init = process_init,
    .process_exit = process_exit,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

MWS_PLUGIN_EXPORT const mws_plugin_t *fanout_plugin(void)
{
    return &fanout;
}
