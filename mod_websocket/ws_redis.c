/* ws_redis.c: the link between hosts over Redis pub/sub (see ws_redis.h):
 * the publish queue and the link thread, which runs both connections
 * through their handshakes, reconnects and pipelines. What goes on the
 * wire is ws_redis_wire.c's; the sockets and TLS are ws_redis_io.c's.
 *
 * It must never block a caller: ws_redis_publish() formats and queues;
 * the thread does the rest, its sockets non-blocking (ws_redis_io.c). It
 * knows nothing of httpd and never logs: it tells the state callback and
 * counts. hiredis formats the commands and parses the replies, nothing
 * more: its own connections have no TLS.
 *
 * The link. Each attempt resolves the host and connects both connections
 * to its first address; the subscriber sends [AUTH] PSUBSCRIBE, the
 * publisher [AUTH] PING, each pipelined, and the link is up once every
 * reply came back right. An attempt has CONNECT_TIMEOUT_MS per address;
 * one that fails goes on at once with the next address, and when none is
 * left the link is down and retries after an exponential backoff
 * (BACKOFF_MIN_MS doubling to BACKOFF_MAX_MS, with jitter so that the
 * children of every host do not all come back at once). While up, either
 * connection failing takes the link down: both are closed and the attempt
 * starts over, so that "up" always means "publishing and subscribed".
 *
 * The queue. Published messages are formatted PUBLISH commands in one
 * list under the lock. While up, the thread takes the whole list into its
 * own out list and writes it, many commands at once; each written whole
 * is in flight until its reply. When the link goes down the out list goes
 * back to the front of the queue, so order is kept. queued_bytes counts
 * both lists.
 */
/* strerror_r() returning the string; APR's flags define it already. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "ws_redis.h"
#include "ws_redis_io.h"
#include "ws_redis_wire.h"

#define CONNECT_TIMEOUT_MS 2000     /* per address: TCP, TLS and replies */
#define REPLY_TIMEOUT_MS   10000    /* a PUBLISH in flight without reply */
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define READ_CHUNK         16384
#define READS_PER_EVENT    64       /* then the other connection's turn */
#define WRITE_IOV          64
#define WHY_MAX            512      /* a state change's reason */

/* The most a reply may hold before it is whole: a message at our limits
 * is under 70 KiB, so anything this big is not ours, and buffering it for
 * every child could cost each one whatever another client published. */
#define REPLY_MAX          (256 * 1024)

typedef struct rmsg {
    struct rmsg *next;
    size_t len;
    char *cmd;              /* PUBLISH, formatted (redisFreeCommand) */
} rmsg;

typedef struct {
    ws_redis_io_t io;
    redisReader *reader;
    const char *hs;         /* handshake commands (the link's) */
    size_t hs_len, hs_off;
    unsigned hs_left;       /* handshake replies still due */
} rconn;

typedef enum { TOLD_NOTHING, TOLD_UP, TOLD_DOWN } told_e;

struct ws_redis {
    char *host, *prefix;
    size_t prefix_len;
    char peer[272];                 /* host:port, [v6]:port */
    char port[8];
    uint8_t origin[WS_REDIS_ORIGIN];
    ws_redis_deliver_fn deliver;
    ws_redis_state_fn state;
    void *ctx;
    SSL_CTX *tls;
    char *sub_hs, *pub_hs;          /* each connection's handshake */
    size_t sub_hs_len, pub_hs_len;
    unsigned sub_hs_replies, pub_hs_replies;
    int wake;                       /* eventfd */
    pthread_t thread;

    pthread_mutex_t lock;
    rmsg *q_head, *q_tail;          /* published, not taken (under lock) */
    int up;                         /* the thread takes the queue (lock) */
    int woken;                      /* a wake-up is on its way (lock) */
    int stop;                       /* (under lock) */

    rconn sub, pub;                 /* the link thread's, from here on */
    rmsg *out_head, *out_tail;      /* taken, being written */
    size_t out_off;                 /* bytes of out_head written */
    uint64_t inflight;              /* written whole, reply due */
    int64_t reply_due;
    int attempting;                 /* connections under way */
    int64_t attempt_due, retry_at;
    int backoff_ms;
    struct addrinfo *addrs, *addr;  /* addr: the next to try */
    told_e told;
    uint64_t rng;

    ws_redis_stats_t st;            /* each field atomic */
};

#define COUNT(r, field, n) \
    __atomic_add_fetch(&(r)->st.field, (n), __ATOMIC_RELAXED)

/* ---- small things ---- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void msg_free(rmsg *m)
{
    redisFreeCommand(m->cmd);
    free(m);
}

static void list_free(rmsg *m)
{
    rmsg *next;

    for (; m; m = next) {
        next = m->next;
        msg_free(m);
    }
}

/* ---- the link's state ---- */

static void tell(ws_redis_t *r, told_e now, const char *why)
{
    if (r->told == now)
        return;
    r->told = now;
    r->state(r->ctx, now == TOLD_UP, why);
}

static void conn_close(rconn *c)
{
    ws_redis_io_close(&c->io);
    if (c->reader) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
}

/* Both connections are closed: put what was taken and not written whole
 * back at the front of the queue (a command written in part was never
 * run), and let publishers know the link is down. */
static void requeue(ws_redis_t *r)
{
    pthread_mutex_lock(&r->lock);
    if (r->out_head) {
        r->out_tail->next = r->q_head;
        if (r->q_head == NULL)
            r->q_tail = r->out_tail;
        r->q_head = r->out_head;
    }
    r->up = 0;
    pthread_mutex_unlock(&r->lock);
    r->out_head = r->out_tail = NULL;
    r->out_off = 0;
    COUNT(r, dropped, r->inflight);
    r->inflight = 0;
    __atomic_store_n(&r->st.up, 0, __ATOMIC_RELAXED);
}

/* The attempt or the link failed. With another address to try (and the
 * link not up) that goes next, at once; else the link is down until the
 * backoff has passed. */
static void link_fail(ws_redis_t *r, const char *why)
{
    int64_t half;

    conn_close(&r->sub);
    conn_close(&r->pub);
    r->attempting = 0;
    if (r->told != TOLD_UP && r->addr) {
        r->retry_at = 0;
        return;
    }
    requeue(r);
    tell(r, TOLD_DOWN, why);
    if (r->addrs) {
        freeaddrinfo(r->addrs);
        r->addrs = r->addr = NULL;
    }
    /* xorshift64: jitter needs no quality, only a different seed per
     * child (the origin and the time). */
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    half = r->backoff_ms / 2;
    r->retry_at = now_ms() + half + (int64_t)(r->rng % (uint64_t)(half + 1));
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                       : r->backoff_ms * 2;
}

static void link_up(ws_redis_t *r)
{
    r->attempting = 0;
    r->backoff_ms = BACKOFF_MIN_MS;
    pthread_mutex_lock(&r->lock);
    r->up = 1;
    pthread_mutex_unlock(&r->lock);
    __atomic_store_n(&r->st.up, 1, __ATOMIC_RELAXED);
    COUNT(r, connects, 1);
    tell(r, TOLD_UP, r->peer);
}

static int conn_start(ws_redis_t *r, rconn *c, const char *hs, size_t len,
                      unsigned replies)
{
    c->reader = redisReaderCreate();
    if (c->reader == NULL) {
        snprintf(c->io.err, sizeof(c->io.err), "redis %s: no memory",
                 r->peer);
        return -1;
    }
    c->hs = hs;
    c->hs_len = len;
    c->hs_off = 0;
    c->hs_left = replies;
    return ws_redis_io_connect(&c->io, r->addr->ai_addr, r->addr->ai_addrlen,
                               r->tls, r->host, r->peer);
}

/* Connect both connections to the next address, resolving the host first
 * when there is none left. */
static void attempt(ws_redis_t *r)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    char why[WHY_MAX], buf[128];
    int rv;

    if (r->addr == NULL) {
        if (r->addrs)
            freeaddrinfo(r->addrs);
        r->addrs = NULL;
        /* Blocks the link thread alone, for the resolver's timeout at
         * most; done on each attempt, as Redis may have moved. */
        rv = getaddrinfo(r->host, r->port, &hints, &r->addrs);
        if (rv != 0) {
            snprintf(why, sizeof(why), "resolve %s: %s", r->host,
                     rv == EAI_SYSTEM ? strerror_r(errno, buf, sizeof(buf))
                                      : gai_strerror(rv));
            r->addrs = NULL;
            link_fail(r, why);
            return;
        }
        r->addr = r->addrs;
    }
    r->attempting = 1;
    r->attempt_due = now_ms() + CONNECT_TIMEOUT_MS;
    if (conn_start(r, &r->sub, r->sub_hs, r->sub_hs_len, r->sub_hs_replies)
        != 0) {
        r->addr = r->addr->ai_next;
        link_fail(r, r->sub.io.err);
        return;
    }
    if (conn_start(r, &r->pub, r->pub_hs, r->pub_hs_len, r->pub_hs_replies)
        != 0) {
        r->addr = r->addr->ai_next;
        link_fail(r, r->pub.io.err);
        return;
    }
    r->addr = r->addr->ai_next;
}

static void attempt_timeout(ws_redis_t *r)
{
    rconn *c = r->sub.io.phase != WS_REDIS_IO_OPEN ? &r->sub : &r->pub;
    char why[WHY_MAX];

    if (c->io.phase == WS_REDIS_IO_CONNECTING)
        snprintf(why, sizeof(why), "connect %s: timed out after %d ms",
                 r->peer, CONNECT_TIMEOUT_MS);
    else if (c->io.phase == WS_REDIS_IO_HANDSHAKE)
        snprintf(why, sizeof(why), "TLS handshake with %s: timed out after "
                 "%d ms", r->peer, CONNECT_TIMEOUT_MS);
    else
        snprintf(why, sizeof(why), "redis %s: no reply to AUTH, PING or "
                 "PSUBSCRIBE within %d ms", r->peer, CONNECT_TIMEOUT_MS);
    link_fail(r, why);
}

/* ---- replies ---- */

static void on_message(ws_redis_t *r, const redisReply *m)
{
    const redisReply *ch = m->element[2], *pl = m->element[3];
    ws_redis_payload_t p;
    const char *topic;
    size_t topic_len;

    if (ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING
        || ws_redis_channel_topic(ch->str, ch->len, r->prefix, r->prefix_len,
                                  &topic, &topic_len) != 0
        || ws_redis_parse_payload(pl->str, pl->len, &p) != 0) {
        COUNT(r, malformed, 1);
        return;
    }
    if (memcmp(p.origin, r->origin, WS_REDIS_ORIGIN) == 0) {
        COUNT(r, own, 1);
        return;
    }
    COUNT(r, received, 1);
    r->deliver(r->ctx, topic, topic_len, p.type, p.data, p.len);
}

static int is_string(const redisReply *rep, const char *s)
{
    return (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS)
           && rep->len == strlen(s) && strcasecmp(rep->str, s) == 0;
}

/* A handshake reply: an error fails the attempt; the last one must be
 * PSUBSCRIBE's confirmation or PING's PONG. Returns -1 after link_fail. */
static int on_handshake(ws_redis_t *r, rconn *c, const redisReply *rep)
{
    char why[WHY_MAX];

    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "redis %s: %.200s", r->peer, rep->str);
        link_fail(r, why);
        return -1;
    }
    if (--c->hs_left)
        return 0;
    if (c == &r->sub ? !(rep->type == REDIS_REPLY_ARRAY && rep->elements == 3
                         && is_string(rep->element[0], "psubscribe"))
                     : !is_string(rep, "PONG")) {
        snprintf(why, sizeof(why), "redis %s: an unexpected reply to %s",
                 r->peer, c == &r->sub ? "PSUBSCRIBE" : "PING");
        link_fail(r, why);
        return -1;
    }
    if (r->sub.hs_left == 0 && r->pub.hs_left == 0)
        link_up(r);
    return 0;
}

/* Returns -1 after link_fail. */
static int on_reply(ws_redis_t *r, rconn *c, const redisReply *rep)
{
    char why[WHY_MAX];

    if (c->hs_left)
        return on_handshake(r, c, rep);
    if (c == &r->sub) {
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 4
            && is_string(rep->element[0], "pmessage"))
            on_message(r, rep);
        else
            COUNT(r, malformed, 1);
        return 0;
    }
    if (r->inflight == 0) {
        snprintf(why, sizeof(why), "redis %s: a reply to no command",
                 r->peer);
        link_fail(r, why);
        return -1;
    }
    r->inflight--;
    r->reply_due = now_ms() + REPLY_TIMEOUT_MS;
    if (rep->type == REDIS_REPLY_INTEGER)
        COUNT(r, sent, 1);
    else
        COUNT(r, dropped, 1);
    return 0;
}

/* Read what c has and act on each reply. Returns -1 after link_fail. */
static int conn_read(ws_redis_t *r, rconn *c)
{
    char buf[READ_CHUNK], why[WHY_MAX];
    void *rep;
    ssize_t n;
    int i, rv;

    for (i = 0; i < READS_PER_EVENT; i++) {
        n = ws_redis_io_read(&c->io, buf, sizeof(buf));
        if (n < 0) {
            link_fail(r, c->io.err);
            return -1;
        }
        if (n == 0)
            return 0;
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK)
            goto bad;
        for (;;) {
            if (redisReaderGetReply(c->reader, &rep) != REDIS_OK)
                goto bad;
            if (rep == NULL)
                break;
            rv = on_reply(r, c, rep);
            freeReplyObject(rep);
            if (rv != 0)
                return -1;
        }
        if (c->reader->len - c->reader->pos > REPLY_MAX) {
            COUNT(r, malformed, 1);
            snprintf(why, sizeof(why), "redis %s: a reply over %d bytes",
                     r->peer, REPLY_MAX);
            link_fail(r, why);
            return -1;
        }
    }
    return 0;
bad:
    snprintf(why, sizeof(why), "redis %s: %s", r->peer, c->reader->errstr);
    link_fail(r, why);
    return -1;
}

/* Write c's handshake, then (the publisher, once ready) the out list.
 * Returns -1 after link_fail. */
static int conn_write(ws_redis_t *r, rconn *c)
{
    struct iovec iov[WRITE_IOV];
    size_t n, used;
    ssize_t w;
    rmsg *m;
    int k;

    for (;;) {
        k = 0;
        if (c->hs_off < c->hs_len) {
            iov[k].iov_base = (char *)c->hs + c->hs_off;
            iov[k++].iov_len = c->hs_len - c->hs_off;
        }
        else if (c == &r->pub && c->hs_left == 0) {
            for (m = r->out_head; m && k < WRITE_IOV; m = m->next, k++) {
                n = m == r->out_head ? r->out_off : 0;
                iov[k].iov_base = m->cmd + n;
                iov[k].iov_len = m->len - n;
            }
        }
        if (k == 0)
            return 0;
        w = ws_redis_io_writev(&c->io, iov, k);
        if (w < 0) {
            link_fail(r, c->io.err);
            return -1;
        }
        if (w == 0)
            return 0;
        used = (size_t)w;
        if (c->hs_off < c->hs_len) {
            c->hs_off += used;
            continue;
        }
        while (used) {
            m = r->out_head;
            n = m->len - r->out_off;
            if (used < n) {
                r->out_off += used;
                break;
            }
            used -= n;
            r->out_off = 0;
            r->out_head = m->next;
            if (r->out_head == NULL)
                r->out_tail = NULL;
            if (r->inflight++ == 0)
                r->reply_due = now_ms() + REPLY_TIMEOUT_MS;
            __atomic_sub_fetch(&r->st.queued_bytes, m->len,
                               __ATOMIC_RELAXED);
            msg_free(m);
        }
    }
}

/* Poll events on c. Returns -1 after link_fail. */
static int conn_event(ws_redis_t *r, rconn *c)
{
    int rv;

    if (c->io.phase != WS_REDIS_IO_OPEN) {
        rv = ws_redis_io_progress(&c->io);
        if (rv < 0) {
            link_fail(r, c->io.err);
            return -1;
        }
        if (rv == 0)
            return 0;
    }
    if (conn_write(r, c) != 0)
        return -1;
    return conn_read(r, c);
}

/* ---- the link thread ---- */

static int until(int64_t due, int64_t now)
{
    return due <= now ? 0 : due - now > 60000 ? 60000 : (int)(due - now);
}

static void *link_main(void *arg)
{
    ws_redis_t *r = arg;
    struct pollfd pfd[3];
    uint64_t drain;
    rmsg *batch, *tail;
    int64_t now;
    int timeout, stop, pending[2];

    for (;;) {
        now = now_ms();
        if (!r->attempting && !r->up && now >= r->retry_at)
            attempt(r);
        pfd[0] = (struct pollfd){ .fd = r->wake, .events = POLLIN };
        pfd[1] = (struct pollfd){ .fd = r->sub.io.fd, .events =
                     ws_redis_io_events(&r->sub.io,
                                        r->sub.hs_off < r->sub.hs_len) };
        pfd[2] = (struct pollfd){ .fd = r->pub.io.fd, .events =
                     ws_redis_io_events(&r->pub.io,
                                        r->pub.hs_off < r->pub.hs_len
                                        || r->out_head != NULL) };
        if (r->sub.io.phase == WS_REDIS_IO_CLOSED)
            pfd[1].fd = -1;
        if (r->pub.io.phase == WS_REDIS_IO_CLOSED)
            pfd[2].fd = -1;
        /* A read cut short (READS_PER_EVENT) may leave bytes in TLS. */
        pending[0] = ws_redis_io_pending(&r->sub.io);
        pending[1] = ws_redis_io_pending(&r->pub.io);
        if (pending[0] || pending[1])
            timeout = 0;
        else if (r->attempting)
            timeout = until(r->attempt_due, now);
        else if (r->up)
            timeout = r->inflight ? until(r->reply_due, now) : -1;
        else
            timeout = until(r->retry_at, now);
        /* Errors and EINTR: what follows does no harm when idle. */
        (void)poll(pfd, 3, timeout);
        if (pfd[0].revents)
            (void)!read(r->wake, &drain, sizeof(drain));

        pthread_mutex_lock(&r->lock);
        stop = r->stop;
        pthread_mutex_unlock(&r->lock);
        if (stop)
            return NULL;

        if ((pfd[1].revents || pending[0])
            && r->sub.io.phase != WS_REDIS_IO_CLOSED)
            (void)conn_event(r, &r->sub);
        if ((pfd[2].revents || pending[1])
            && r->pub.io.phase != WS_REDIS_IO_CLOSED)
            (void)conn_event(r, &r->pub);
        now = now_ms();
        if (r->attempting && now >= r->attempt_due)
            attempt_timeout(r);
        else if (r->up && r->inflight && now >= r->reply_due) {
            char why[WHY_MAX];

            snprintf(why, sizeof(why), "redis %s: no reply to PUBLISH "
                     "within %d ms", r->peer, REPLY_TIMEOUT_MS);
            link_fail(r, why);
        }
        if (!r->up)
            continue;
        pthread_mutex_lock(&r->lock);
        batch = r->q_head;
        tail = r->q_tail;
        r->q_head = r->q_tail = NULL;
        r->woken = 0;
        pthread_mutex_unlock(&r->lock);
        if (batch) {
            if (r->out_tail)
                r->out_tail->next = batch;
            else
                r->out_head = batch;
            r->out_tail = tail;
        }
        if (r->out_head)
            (void)conn_write(r, &r->pub);
    }
}

/* ---- open, publish, close ---- */

static void link_free(ws_redis_t *r)
{
    conn_close(&r->sub);
    conn_close(&r->pub);
    list_free(r->q_head);
    list_free(r->out_head);
    if (r->addrs)
        freeaddrinfo(r->addrs);
    if (r->tls)
        SSL_CTX_free(r->tls);
    if (r->wake >= 0)
        close(r->wake);
    free(r->sub_hs);
    free(r->pub_hs);
    free(r->host);
    free(r->prefix);
    free(r);
}

ws_redis_t *ws_redis_open(const ws_redis_config_t *cfg,
                          const uint8_t origin[WS_REDIS_ORIGIN],
                          ws_redis_deliver_fn deliver,
                          ws_redis_state_fn state, void *ctx, char *err,
                          size_t errlen)
{
    const char *prefix = cfg->channel_prefix ? cfg->channel_prefix : "";
    size_t pat_len;
    sigset_t all, old;
    char *pat;
    ws_redis_t *r;
    int rv, i;

    if (cfg->host == NULL || cfg->host[0] == '\0') {
        snprintf(err, errlen, "redis: no host");
        return NULL;
    }
    if (strlen(prefix) > WS_REDIS_MAX_PREFIX) {
        snprintf(err, errlen, "redis: the channel prefix is over %d bytes",
                 WS_REDIS_MAX_PREFIX);
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        goto nomem;
    r->wake = -1;
    r->sub.io.fd = r->pub.io.fd = -1;
    r->deliver = deliver;
    r->state = state;
    r->ctx = ctx;
    memcpy(r->origin, origin, WS_REDIS_ORIGIN);
    r->backoff_ms = BACKOFF_MIN_MS;
    r->rng = (uint64_t)now_ms() | 1;
    for (i = 0; i < WS_REDIS_ORIGIN; i++)
        r->rng = r->rng * 31 + origin[i];
    snprintf(r->port, sizeof(r->port), "%d", cfg->port);
    snprintf(r->peer, sizeof(r->peer), strchr(cfg->host, ':') ? "[%.256s]:%d"
             : "%.256s:%d", cfg->host, cfg->port);
    r->host = strdup(cfg->host);
    r->prefix = strdup(prefix);
    if (r->host == NULL || r->prefix == NULL)
        goto nomem;
    r->prefix_len = strlen(prefix);
    pat = ws_redis_wire_pattern(prefix, r->prefix_len, &pat_len);
    if (pat == NULL)
        goto nomem;
    rv = ws_redis_wire_handshake(cfg, "PSUBSCRIBE", pat, pat_len,
                                 &r->sub_hs, &r->sub_hs_len,
                                 &r->sub_hs_replies);
    free(pat);
    if (rv != 0
        || ws_redis_wire_handshake(cfg, "PING", NULL, 0, &r->pub_hs,
                                   &r->pub_hs_len, &r->pub_hs_replies) != 0)
        goto nomem;
    if (cfg->tls
        && (r->tls = ws_redis_io_tls_context(cfg->ca_file, err, errlen))
           == NULL)
        goto fail;
    r->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->wake < 0) {
        snprintf(err, errlen, "redis: no eventfd: %s", strerror(errno));
        goto fail;
    }
    pthread_mutex_init(&r->lock, NULL);
    /* The process's signals are for its own threads, as with ws_bus. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rv = pthread_create(&r->thread, NULL, link_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rv == 0)
        return r;
    pthread_mutex_destroy(&r->lock);
    snprintf(err, errlen, "redis: no thread: %s", strerror(rv));
    goto fail;
nomem:
    snprintf(err, errlen, "redis: no memory");
fail:
    if (r)
        link_free(r);
    return NULL;
}

int ws_redis_publish(ws_redis_t *r, const char *topic, size_t topic_len,
                     uint8_t type, const void *data, size_t len)
{
    rmsg *m, *old = NULL;
    int n, wake;

    if (topic_len == 0 || topic_len > WS_REDIS_MAX_TOPIC
        || len > WS_REDIS_MAX_MESSAGE) {
        errno = EMSGSIZE;
        return -1;
    }
    m = malloc(sizeof(*m));
    if (m == NULL
        || (n = ws_redis_wire_publish(r->prefix, r->prefix_len, topic,
                                      topic_len, r->origin, type, data, len,
                                      &m->cmd)) < 0) {
        free(m);
        errno = ENOMEM;
        return -1;
    }
    m->len = (size_t)n;
    m->next = NULL;

    pthread_mutex_lock(&r->lock);
    if (__atomic_load_n(&r->st.queued_bytes, __ATOMIC_RELAXED) + m->len
        > WS_REDIS_MAX_QUEUED) {
        if (r->up) {
            pthread_mutex_unlock(&r->lock);
            msg_free(m);
            COUNT(r, dropped, 1);
            errno = ENOBUFS;
            return -1;
        }
        /* Down: the queue is all there is (the out list went back into
         * it); keep the newest. */
        while (r->q_head
               && __atomic_load_n(&r->st.queued_bytes, __ATOMIC_RELAXED)
                  + m->len > WS_REDIS_MAX_QUEUED) {
            rmsg *first = r->q_head;

            r->q_head = first->next;
            if (r->q_head == NULL)
                r->q_tail = NULL;
            __atomic_sub_fetch(&r->st.queued_bytes, first->len,
                               __ATOMIC_RELAXED);
            COUNT(r, dropped, 1);
            first->next = old;
            old = first;
        }
    }
    COUNT(r, queued_bytes, m->len);
    if (r->q_tail)
        r->q_tail->next = m;
    else
        r->q_head = m;
    r->q_tail = m;
    /* While down the thread does not want to hear of publishes. */
    wake = r->up && !r->woken;
    r->woken |= wake;
    pthread_mutex_unlock(&r->lock);

    list_free(old);
    COUNT(r, published, 1);
    if (wake)
        (void)!write(r->wake, &(uint64_t){ 1 }, sizeof(uint64_t));
    return 0;
}

void ws_redis_close(ws_redis_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_mutex_unlock(&r->lock);
    (void)!write(r->wake, &(uint64_t){ 1 }, sizeof(uint64_t));
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    link_free(r);
}

void ws_redis_stats(ws_redis_t *r, ws_redis_stats_t *st)
{
    st->published = __atomic_load_n(&r->st.published, __ATOMIC_RELAXED);
    st->sent = __atomic_load_n(&r->st.sent, __ATOMIC_RELAXED);
    st->received = __atomic_load_n(&r->st.received, __ATOMIC_RELAXED);
    st->dropped = __atomic_load_n(&r->st.dropped, __ATOMIC_RELAXED);
    st->own = __atomic_load_n(&r->st.own, __ATOMIC_RELAXED);
    st->malformed = __atomic_load_n(&r->st.malformed, __ATOMIC_RELAXED);
    st->connects = __atomic_load_n(&r->st.connects, __ATOMIC_RELAXED);
    st->up = __atomic_load_n(&r->st.up, __ATOMIC_RELAXED);
    st->queued_bytes = __atomic_load_n(&r->st.queued_bytes,
                                       __ATOMIC_RELAXED);
}
