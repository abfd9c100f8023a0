/* lws_echo.c: the benchmark's libwebsockets peer, against Debian's
 * libwebsockets-dev (4.1), with its default event loop (poll) on one
 * thread.
 *
 *   lws_echo PORT [--deflate] [--pubsub]
 *
 * Listens on 127.0.0.1:PORT, any path, and echoes every message with its
 * type (UTF-8 of text checked, as the other peers do). The text command
 * "burst K S" sends K text messages of S bytes (default 64) to every open
 * connection, like bench/plugins/fanout.c and bench/node_echo.js.
 *
 * With --pubsub (the topic scenarios) the K messages of a burst are made
 * when the command arrives, each beginning with the stamp that
 * bench/plugins/pubsub.c writes, "%019llu %010ld ": the CLOCK_MONOTONIC
 * time in ns and the message's number; every connection then writes them
 * in order as it becomes writable, so a delivery's latency includes the
 * wait for its turn, as in the other peers. A burst that arrives while a
 * connection still writes the last one's restarts its numbering there
 * (ws_load waits for each burst, so it never happens in the benchmark).
 * "whoami" is answered "pid N".
 *
 * With --deflate, permessage-deflate (RFC 7692) is offered to clients
 * through libwebsockets' own extension (lws_extension_callback_pm_deflate)
 * with its defaults: context takeover both ways, 15-bit windows, zlib
 * level 1 and memLevel 8, 1 KiB inflate/deflate buffers; the zlib streams
 * are made at a connection's first compressed message and kept.
 *
 * Writes happen in LWS_CALLBACK_SERVER_WRITEABLE, several per callback
 * while lws_partial_buffered() says the socket took the last one whole (at
 * most 64, so one connection cannot starve the others), as lws-ws-state.h
 * allows.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG (16u << 20)
#define WRITES_PER_CALLBACK 64

typedef struct msg {
    struct msg *next;
    size_t len;
    int binary;
    unsigned char buf[];    /* LWS_PRE + len */
} msg_t;

typedef struct pss {
    struct pss *prev, *next;    /* every open connection */
    struct lws *wsi;
    msg_t *head, *tail;         /* echoes to write, in order */
    unsigned char *rx;          /* the message being received */
    size_t rx_len, rx_cap;
    long burst_left;            /* burst messages still to write */
} pss_t;

static pss_t *all;
static long n_all;
static unsigned char *burst_buf;    /* LWS_PRE + burst_size */
static size_t burst_size;
static int pubsub;                  /* --pubsub */
static unsigned char **stamped;     /* --pubsub: burst_k x LWS_PRE + size */
static long burst_k;
static volatile sig_atomic_t interrupted;
static struct lws_context *context;

static void burst(struct lws *wsi, long k, size_t size)
{
    pss_t *p;

    if (size > burst_size || !burst_buf) {
        unsigned char *b = realloc(burst_buf, LWS_PRE + size);

        if (!b)
            return;
        burst_buf = b;
    }
    burst_size = size;
    memset(burst_buf + LWS_PRE, 'x', size);
    for (p = all; p; p = p->next)
        p->burst_left += k;
    lws_callback_on_writable_all_protocol(lws_get_context(wsi),
                                          lws_get_protocol(wsi));
}

/* --pubsub: K stamped messages of size bytes, the same for everyone. */
static void stamped_burst(struct lws *wsi, long k, size_t size)
{
    unsigned char **b;
    pss_t *p;
    long i;

    if (size < 32)
        size = 32;
    for (i = 0; i < burst_k; i++)
        free(stamped[i]);
    free(stamped);
    stamped = NULL;
    burst_k = 0;
    if (!(b = calloc((size_t)k, sizeof(*b))))
        return;
    for (i = 0; i < k; i++) {
        struct timespec ts;
        char stamp[64];

        if (!(b[i] = malloc(LWS_PRE + size)))
            break;
        memset(b[i] + LWS_PRE, 'x', size);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(stamp, sizeof(stamp), "%019llu %010ld ",
                 (unsigned long long)ts.tv_sec * 1000000000ull
                 + (unsigned long long)ts.tv_nsec, i);
        memcpy(b[i] + LWS_PRE, stamp, 31);
    }
    stamped = b;
    burst_k = i;
    burst_size = size;
    for (p = all; p; p = p->next)
        p->burst_left = burst_k;
    lws_callback_on_writable_all_protocol(lws_get_context(wsi),
                                          lws_get_protocol(wsi));
}

static int on_message(struct lws *wsi, pss_t *pss, int binary)
{
    msg_t *m;
    long k, s = 64;
    char cmd[64];

    if (!binary && pss->rx_len > 6 && pss->rx_len < sizeof(cmd)
        && !memcmp(pss->rx, "burst ", 6)) {
        memcpy(cmd, pss->rx, pss->rx_len);
        cmd[pss->rx_len] = '\0';
        if (sscanf(cmd, "burst %ld %ld", &k, &s) >= 1 && k > 0 && s >= 0) {
            (pubsub ? stamped_burst : burst)(wsi, k > 1000000 ? 1000000 : k,
                  (size_t)(s > (1 << 20) ? (1 << 20) : s));
            return 0;
        }
    }
    if (pubsub && !binary && pss->rx_len == 6
        && !memcmp(pss->rx, "whoami", 6)) {
        if (!(m = malloc(sizeof(*m) + LWS_PRE + 32)))
            return -1;
        m->len = (size_t)snprintf((char *)m->buf + LWS_PRE, 32, "pid %ld",
                                  (long)getpid());
        m->binary = 0;
        goto queue;
    }
    if (!(m = malloc(sizeof(*m) + LWS_PRE + pss->rx_len)))
        return -1;
    m->len = pss->rx_len;
    m->binary = binary;
    memcpy(m->buf + LWS_PRE, pss->rx, pss->rx_len);
queue:
    m->next = NULL;
    if (pss->tail)
        pss->tail->next = m;
    else
        pss->head = m;
    pss->tail = m;
    lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    pss_t *pss = user;
    int writes;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(pss, 0, sizeof(*pss));
        pss->wsi = wsi;
        pss->next = all;
        if (all)
            all->prev = pss;
        all = pss;
        n_all++;
        break;

    case LWS_CALLBACK_CLOSED:
        if (pss->prev)
            pss->prev->next = pss->next;
        else if (all == pss)
            all = pss->next;
        if (pss->next)
            pss->next->prev = pss->prev;
        n_all--;
        while (pss->head) {
            msg_t *m = pss->head;

            pss->head = m->next;
            free(m);
        }
        pss->tail = NULL;
        free(pss->rx);
        pss->rx = NULL;
        break;

    case LWS_CALLBACK_RECEIVE:
        if (lws_is_first_fragment(wsi))
            pss->rx_len = 0;
        if (pss->rx_len + len > MAX_MSG)
            return -1;
        if (pss->rx_len + len > pss->rx_cap) {
            size_t cap = (pss->rx_len + len) * 2;
            unsigned char *b = realloc(pss->rx, cap);

            if (!b)
                return -1;
            pss->rx = b;
            pss->rx_cap = cap;
        }
        memcpy(pss->rx + pss->rx_len, in, len);
        pss->rx_len += len;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
            return on_message(wsi, pss, lws_frame_is_binary(wsi));
        break;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        for (writes = 0; writes < WRITES_PER_CALLBACK; writes++) {
            if (pss->head) {
                msg_t *m = pss->head;

                if (lws_write(wsi, m->buf + LWS_PRE, m->len,
                              m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT)
                    < (int)m->len)
                    return -1;
                if (!(pss->head = m->next))
                    pss->tail = NULL;
                free(m);
            }
            else if (pss->burst_left > 0 && pubsub) {
                long i = burst_k - pss->burst_left;
                unsigned char *b = stamped[i < 0 ? 0 : i];

                if (lws_write(wsi, b + LWS_PRE, burst_size, LWS_WRITE_TEXT)
                    < (int)burst_size)
                    return -1;
                pss->burst_left--;
            }
            else if (pss->burst_left > 0) {
                if (lws_write(wsi, burst_buf + LWS_PRE, burst_size,
                              LWS_WRITE_TEXT) < (int)burst_size)
                    return -1;
                pss->burst_left--;
            }
            else {
                break;
            }
            if (lws_partial_buffered(wsi))
                break;
        }
        if (pss->head || pss->burst_left > 0)
            lws_callback_on_writable(wsi);
        break;

    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    /* First, so that it serves upgrades that name no subprotocol. */
    { "echo", callback, sizeof(pss_t), 65536, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

static const struct lws_extension extensions[] = {
    { "permessage-deflate", lws_extension_callback_pm_deflate,
      "permessage-deflate; client_max_window_bits" },
    { NULL, NULL, NULL }
};

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
    if (context)
        lws_cancel_service(context);
}

int main(int argc, char **argv)
{
    struct lws_context_creation_info info;
    int port = argc >= 2 ? atoi(argv[1]) : 0;
    int deflate = 0, i, bad = 0;

    for (i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--deflate"))
            deflate = 1;
        else if (!strcmp(argv[i], "--pubsub"))
            pubsub = 1;
        else
            bad = 1;
    }
    if (port <= 0 || port > 65535 || bad) {
        fprintf(stderr, "usage: lws_echo PORT [--deflate] [--pubsub]\n");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8
                   | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.pt_serv_buf_size = 65536;
    info.timeout_secs = 30;
    info.gid = -1;
    info.uid = -1;
    if (deflate)
        info.extensions = extensions;
    if (!(context = lws_create_context(&info))) {
        fprintf(stderr, "lws_echo: lws_create_context failed\n");
        return 1;
    }
    printf("lws_echo: libwebsockets %s on 127.0.0.1:%d, permessage-deflate "
           "%s%s\n", lws_get_library_version(), port,
           deflate ? "on (lws defaults)" : "off",
           pubsub ? ", bursts stamped (--pubsub)" : "");
    fflush(stdout);
    while (!interrupted)
        if (lws_service(context, 0) < 0)
            break;
    lws_context_destroy(context);
    free(burst_buf);
    for (i = 0; i < burst_k; i++)
        free(stamped[i]);
    free(stamped);
    return 0;
}
