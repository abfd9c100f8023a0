/* pusher: a test plugin that sends from a thread of its own, to exercise
 * what a real push plugin does: sends from a foreign thread, handles held
 * past on_close, and a full outgoing queue. Commands, as text messages:
 *
 *   push N        the thread sends "push 0" .. "push N-1" to this client
 *   flood N SIZE  the thread sends N binary messages of SIZE bytes
 *                 ("abc..z" repeated: bytes that would show up as bad
 *                 pointers if the module wrote them where it must not) as
 *                 fast as it can, then a text "flood queued=Q refused=R gone=G";
 *                 while the queue is too full for that summary (refuse
 *                 policy, client not reading yet) it retries every 10 ms
 *                 for up to 60 s, so a client that reads later still sees it
 *   linger        keep this handle after the connection closes; the thread
 *                 sends to it once it is gone
 *   stats         reply "gone=G" (sends on lingering handles that
 *                 answered MWS_SEND_GONE)
 *
 * Broadcast, for the async driver's tests. A connection of a location with
 * `WebSocketSetting broadcast on` joins this process's member list in
 * on_open (held with mws_hold) and leaves it in on_close. Then:
 *
 *   join          this connection becomes a member (if it is not one);
 *                 replies "joined"
 *   broadcast N   the thread sends "b 0" .. "b N-1" to every member of this
 *                 process (message by message, each to all members), then
 *                 replies to the sender "broadcast done members=M
 *                 queued=Q refused=R gone=G"
 *   members       reply "members M" (this process's member count)
 *   pid           reply "pid P" (the process serving this connection)
 *   storm MS      a second thread sends "s K" (K counting up) to every
 *                 member every millisecond or so for MS milliseconds (at
 *                 most 10 minutes), so sends race opens and closes; replies
 *                 "storm started" (or "storm running" if one is). The
 *                 thread's send counts are added to "storm-stats"
 *   storm-stats   reply "storm rounds=R queued=Q refused=S gone=G"
 *
 * `WebSocketSetting greet TEXT` makes on_open send TEXT, before the 101
 * has gone out (the module must deliver it with no client input).
 *
 * Anything else is echoed, so the plugin also serves as a plain echo.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mod_websocket_plugin.h>

typedef struct job {
    struct job *next;
    mws_conn_t *conn;      /* held */
    long count;
    long size;             /* 0: "push" texts; BROADCAST: a broadcast */
} job_t;

#define BROADCAST (-1L)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static job_t *jobs;
static int stopping;
static long gone_count;
static pthread_t thread;

/* Per connection (mws_set_data), for members and lingering handles. */
typedef struct pconn {
    struct pconn *prev, *next;  /* the member list, under lock */
    mws_conn_t *conn;           /* held while a member */
    int member;
    int linger;
} pconn_t;

static pconn_t *members;        /* under lock */
static long n_members;          /* under lock */

static pthread_t storm_thread;
static int storm_running;       /* under lock */
static int storm_joinable;      /* under lock */
static long storm_ms;
static long storm_rounds, storm_queued, storm_refused, storm_gone;

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

/* Every member of this process, each held, in a fresh array (NULL with
 * *n = 0 when there are none). The caller releases them and frees it. */
static mws_conn_t **snapshot_members(long *n)
{
    mws_conn_t **all;
    pconn_t *p;
    long i = 0;

    pthread_mutex_lock(&lock);
    all = n_members ? malloc(sizeof(*all) * (size_t)n_members) : NULL;
    if (all)
        for (p = members; p; p = p->next)
            all[i++] = mws_hold(p->conn);
    pthread_mutex_unlock(&lock);
    *n = i;
    return all;
}

static void release_all(mws_conn_t **all, long n)
{
    long i;

    for (i = 0; i < n; i++)
        mws_release(all[i]);
    free(all);
}

static void run_broadcast(job_t *j)
{
    long n, i, k, queued = 0, refused = 0, gone = 0;
    mws_conn_t **all = snapshot_members(&n);
    char text[96];

    for (k = 0; k < j->count; k++) {
        int len = snprintf(text, sizeof(text), "b %ld", k);

        for (i = 0; i < n; i++) {
            mws_send_result_e r = mws_send_text(all[i], text, (size_t)len);

            queued += r == MWS_SEND_QUEUED;
            refused += r == MWS_SEND_REFUSED;
            gone += r == MWS_SEND_GONE;
        }
    }
    release_all(all, n);
    k = snprintf(text, sizeof(text),
                 "broadcast done members=%ld queued=%ld refused=%ld gone=%ld",
                 n, queued, refused, gone);
    mws_send_text(j->conn, text, (size_t)k);
    mws_release(j->conn);
    free(j);
}

static void run_job(job_t *j)
{
    long queued = 0, refused = 0, gone = 0, i;
    char text[96];
    char *blob;

    if (j->size == BROADCAST) {
        run_broadcast(j);
        return;
    }
    blob = j->size ? malloc((size_t)j->size) : NULL;
    for (i = 0; blob && i < j->size; i++)
        blob[i] = (char)('a' + i % 26);
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

static void *storm_main(void *arg)
{
    struct timespec start, now, pause = { 0, 1000 * 1000 };
    long round = 0, elapsed_ms;
    char text[32];

    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        long n, i, q = 0, r = 0, g = 0;
        mws_conn_t **all;
        int len;

        pthread_mutex_lock(&lock);
        if (stopping) {
            pthread_mutex_unlock(&lock);
            break;
        }
        pthread_mutex_unlock(&lock);
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed_ms = (now.tv_sec - start.tv_sec) * 1000
                     + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed_ms >= storm_ms)
            break;
        all = snapshot_members(&n);
        len = snprintf(text, sizeof(text), "s %ld", round++);
        for (i = 0; i < n; i++) {
            mws_send_result_e res = mws_send_text(all[i], text, (size_t)len);

            q += res == MWS_SEND_QUEUED;
            r += res == MWS_SEND_REFUSED;
            g += res == MWS_SEND_GONE;
        }
        release_all(all, n);
        pthread_mutex_lock(&lock);
        storm_rounds++;
        storm_queued += q;
        storm_refused += r;
        storm_gone += g;
        pthread_mutex_unlock(&lock);
        nanosleep(&pause, NULL);
    }
    pthread_mutex_lock(&lock);
    storm_running = 0;
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Start the storm thread unless one runs. Called with lock held. */
static int start_storm_locked(long ms)
{
    sigset_t all, old;
    int rc;

    if (storm_running || stopping)
        return 1;
    if (storm_joinable) {
        /* The last storm has ended (storm_running is clear). */
        pthread_join(storm_thread, NULL);
        storm_joinable = 0;
    }
    storm_ms = ms < 0 ? 0 : ms > 600000 ? 600000 : ms;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&storm_thread, NULL, storm_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        storm_running = storm_joinable = 1;
    return rc == 0 ? 0 : -1;
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
    if (storm_joinable) {
        pthread_join(storm_thread, NULL);
        storm_joinable = 0;
    }
}

static pconn_t *pconn_of(mws_conn_t *conn)
{
    pconn_t *p = mws_get_data(conn);

    if (!p && (p = calloc(1, sizeof(*p))) != NULL) {
        p->conn = conn;
        mws_set_data(conn, p);
    }
    return p;
}

/* Make conn a member (once), held until on_close. */
static int join(mws_conn_t *conn)
{
    pconn_t *p = pconn_of(conn);

    if (!p)
        return -1;
    if (p->member)
        return 0;
    p->member = 1;
    mws_hold(conn);
    pthread_mutex_lock(&lock);
    p->prev = NULL;
    p->next = members;
    if (members)
        members->prev = p;
    members = p;
    n_members++;
    pthread_mutex_unlock(&lock);
    return 0;
}

static int on_open(mws_conn_t *conn)
{
    const char *v = mws_setting(conn, "broadcast");
    const char *greet = mws_setting(conn, "greet");

    if (v && !strcmp(v, "on") && join(conn) != 0)
        return 500;
    if (greet)
        mws_send_text(conn, greet, strlen(greet));
    return 0;
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
        if (sscanf(cmd, "broadcast %ld", &a) == 1) {
            add_job(conn, a, BROADCAST);
            return;
        }
        if (!strcmp(cmd, "join")) {
            if (join(conn) == 0)
                mws_send_text(conn, "joined", 6);
            return;
        }
        if (!strcmp(cmd, "members")) {
            int n;
            pthread_mutex_lock(&lock);
            n = snprintf(cmd, sizeof(cmd), "members %ld", n_members);
            pthread_mutex_unlock(&lock);
            mws_send_text(conn, cmd, (size_t)n);
            return;
        }
        if (!strcmp(cmd, "pid")) {
            int n = snprintf(cmd, sizeof(cmd), "pid %ld", (long)getpid());
            mws_send_text(conn, cmd, (size_t)n);
            return;
        }
        if (sscanf(cmd, "storm %ld", &a) == 1) {
            int rc;
            pthread_mutex_lock(&lock);
            rc = start_storm_locked(a);
            pthread_mutex_unlock(&lock);
            if (rc == 0)
                mws_send_text(conn, "storm started", 13);
            else if (rc > 0)
                mws_send_text(conn, "storm running", 13);
            else
                mws_send_text(conn, "storm failed", 12);
            return;
        }
        if (!strcmp(cmd, "storm-stats")) {
            char out[160];
            int n;
            pthread_mutex_lock(&lock);
            n = snprintf(out, sizeof(out),
                         "storm rounds=%ld queued=%ld refused=%ld gone=%ld",
                         storm_rounds, storm_queued, storm_refused,
                         storm_gone);
            pthread_mutex_unlock(&lock);
            mws_send_text(conn, out, (size_t)n);
            return;
        }
        if (!strcmp(cmd, "linger")) {
            pconn_t *p = pconn_of(conn);
            if (p)
                p->linger = 1;
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

/* A member leaves the list. A lingering handle outlives its connection:
 * the thread sends to it after on_close has returned. */
static void on_close(mws_conn_t *conn, uint16_t code, const char *reason,
                     int clean)
{
    pconn_t *p = mws_get_data(conn);

    (void)code;
    (void)reason;
    (void)clean;
    if (!p)
        return;
    if (p->member) {
        pthread_mutex_lock(&lock);
        if (p->prev)
            p->prev->next = p->next;
        else
            members = p->next;
        if (p->next)
            p->next->prev = p->prev;
        n_members--;
        pthread_mutex_unlock(&lock);
        mws_release(conn);
    }
    if (p->linger)
        add_job(conn, 0, 0);
    mws_set_data(conn, NULL);
    free(p);
}

static const mws_plugin_t pusher = {
    MWS_PLUGIN_HEADER,
    .name = "pusher",
    .process_init = process_init,
    .process_exit = process_exit,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

MWS_PLUGIN_EXPORT const mws_plugin_t *pusher_plugin(void)
{
    return &pusher;
}
