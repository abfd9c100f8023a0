/* topics: a test plugin that drives the topic API from a client's text
 * commands, for tests/integration/test_topics.py. Replies start with '#'
 * so that a test tells them from delivered messages:
 *
 *   pid                       -> "#pid N": the httpd child serving us
 *   sub TOPIC / unsub TOPIC   -> "#ok" or "#err"
 *   count TOPIC               -> "#count N" (this process's subscribers)
 *   pub TOPIC TEXT            -> publish TEXT; then "#ok" or "#err"
 *   pubbin TOPIC N            -> publish N binary bytes (i % 251); "#ok"/"#err"
 *   burst TOPIC N TAG [SIZE]  -> publish "TAG:0" .. "TAG:N-1", each padded
 *                                with '.' to SIZE bytes; "#ok K" with K
 *                                the number accepted
 *   thread TOPIC N TAG        -> the same from a thread of the plugin's own,
 *                                through a held handle; "#started", and
 *                                "#done K" once it has published
 *   tap TOPIC                 -> on_topic_message, when a message on TOPIC
 *                                reaches this process, publishes to TOPIC
 *                                through this connection (which must be
 *                                refused); "#ok"
 *   tapped                    -> "#tapped SEEN REFUSED": messages on the
 *                                tap topic seen, and publishes refused
 *
 * A connection whose query is "sub=TOPIC" subscribes in on_open.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mod_websocket_plugin.h>

#define CMD_MAX 512

/* The tap: one per process, set by "tap" (see on_topic_message). */
static pthread_mutex_t tap_lock = PTHREAD_MUTEX_INITIALIZER;
static mws_conn_t *tap_conn;    /* held */
static char tap_topic[CMD_MAX];
static long tap_seen, tap_refused;

static void reply(mws_conn_t *conn, const char *text)
{
    mws_send_text(conn, text, strlen(text));
}

static void reply_rc(mws_conn_t *conn, int rc)
{
    reply(conn, rc == 0 ? "#ok" : "#err");
}

#define PAD_MAX 65536

static int burst(mws_conn_t *conn, const char *topic, long n,
                 const char *tag, long size)
{
    char *msg = malloc(PAD_MAX);
    int ok = 0;
    long i;

    for (i = 0; msg && i < n; i++) {
        size_t len = (size_t)snprintf(msg, PAD_MAX, "%s:%ld", tag, i);

        while ((long)len < size)
            msg[len++] = '.';
        ok += mws_publish(conn, topic, MWS_TEXT, msg, len) == 0;
    }
    free(msg);
    return ok;
}

typedef struct {
    mws_conn_t *conn;   /* held */
    char topic[CMD_MAX], tag[CMD_MAX];
    long n;
} job_t;

static void *publisher(void *arg)
{
    job_t *job = arg;
    char done[64];
    int ok = burst(job->conn, job->topic, job->n, job->tag, 0);

    snprintf(done, sizeof(done), "#done %d", ok);
    reply(job->conn, done);
    mws_release(job->conn);
    free(job);
    return NULL;
}

static void start_publisher(mws_conn_t *conn, const char *topic, long n,
                            const char *tag)
{
    job_t *job = calloc(1, sizeof(*job));
    sigset_t all, old;
    pthread_t t;

    if (!job) {
        reply(conn, "#err");
        return;
    }
    job->conn = mws_hold(conn);
    snprintf(job->topic, sizeof(job->topic), "%s", topic);
    snprintf(job->tag, sizeof(job->tag), "%s", tag);
    job->n = n;
    /* httpd's signals are for its own threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (pthread_create(&t, NULL, publisher, job) == 0) {
        pthread_detach(t);
        reply(conn, "#started");
    }
    else {
        mws_release(job->conn);
        free(job);
        reply(conn, "#err");
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void on_topic_message(const char *topic, mws_type_e type,
                             const void *data, size_t len)
{
    (void)type;
    pthread_mutex_lock(&tap_lock);
    if (tap_conn && !strcmp(topic, tap_topic)) {
        tap_seen++;
        tap_refused += mws_publish(tap_conn, topic, MWS_TEXT, data, len) != 0;
    }
    pthread_mutex_unlock(&tap_lock);
}

static void set_tap(mws_conn_t *conn, const char *topic)
{
    pthread_mutex_lock(&tap_lock);
    if (tap_conn)
        mws_release(tap_conn);
    tap_conn = mws_hold(conn);
    snprintf(tap_topic, sizeof(tap_topic), "%s", topic);
    tap_seen = tap_refused = 0;
    pthread_mutex_unlock(&tap_lock);
    reply(conn, "#ok");
}

static void process_exit(void)
{
    if (tap_conn)
        mws_release(tap_conn);
    tap_conn = NULL;
}

static int on_open(mws_conn_t *conn)
{
    const char *q = mws_query(conn);

    if (q && !strncmp(q, "sub=", 4) && mws_subscribe(conn, q + 4) != 0)
        return 400;
    return 0;
}

static void on_message(mws_conn_t *conn, mws_type_e type, const void *data,
                       size_t len)
{
    char cmd[CMD_MAX], topic[CMD_MAX], arg[CMD_MAX], out[64];
    long n = 0, size = 0;

    if (type != MWS_TEXT || len >= sizeof(cmd)) {
        reply(conn, "#err");
        return;
    }
    memcpy(cmd, data, len);
    cmd[len] = '\0';
    topic[0] = arg[0] = '\0';
    if (!strcmp(cmd, "pid")) {
        snprintf(out, sizeof(out), "#pid %ld", (long)getpid());
        reply(conn, out);
    }
    else if (sscanf(cmd, "sub %511s", topic) == 1) {
        reply_rc(conn, mws_subscribe(conn, topic));
    }
    else if (sscanf(cmd, "unsub %511s", topic) == 1) {
        reply_rc(conn, mws_unsubscribe(conn, topic));
    }
    else if (sscanf(cmd, "count %511s", topic) == 1) {
        snprintf(out, sizeof(out), "#count %zu",
                 mws_subscribers(conn, topic));
        reply(conn, out);
    }
    else if (sscanf(cmd, "pubbin %511s %ld", topic, &n) == 2 && n >= 0) {
        unsigned char *buf = malloc((size_t)n + 1);
        long i;

        for (i = 0; buf && i < n; i++)
            buf[i] = (unsigned char)(i % 251);
        reply_rc(conn, buf ? mws_publish(conn, topic, MWS_BINARY, buf,
                                         (size_t)n) : -1);
        free(buf);
    }
    else if (!strncmp(cmd, "pub ", 4) && sscanf(cmd, "pub %511s", topic) == 1) {
        const char *text = cmd + 4 + strlen(topic);

        text += *text == ' ';
        reply_rc(conn, mws_publish(conn, topic, MWS_TEXT, text,
                                   strlen(text)));
    }
    else if (sscanf(cmd, "burst %511s %ld %511s %ld", topic, &n, arg,
                    &size) >= 3 && size < PAD_MAX) {
        snprintf(out, sizeof(out), "#ok %d", burst(conn, topic, n, arg,
                                                   size));
        reply(conn, out);
    }
    else if (sscanf(cmd, "thread %511s %ld %511s", topic, &n, arg) == 3) {
        start_publisher(conn, topic, n, arg);
    }
    else if (!strcmp(cmd, "tapped")) {
        char tapped[96];

        pthread_mutex_lock(&tap_lock);
        snprintf(tapped, sizeof(tapped), "#tapped %ld %ld", tap_seen,
                 tap_refused);
        pthread_mutex_unlock(&tap_lock);
        reply(conn, tapped);
    }
    else if (!strncmp(cmd, "tap ", 4) && sscanf(cmd, "tap %511s", topic) == 1) {
        set_tap(conn, topic);
    }
    else {
        reply(conn, "#err");
    }
}

static const mws_plugin_t plugin = {
    MWS_PLUGIN_HEADER,
    .name = "topics",
    .process_exit = process_exit,
    .on_open = on_open,
    .on_message = on_message,
    .on_topic_message = on_topic_message,
};

MWS_PLUGIN_EXPORT const mws_plugin_t *topics_plugin(void)
{
    return &plugin;
}
