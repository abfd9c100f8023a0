/* ws_redis.h: the link between hosts: one per httpd child, it publishes
 * the child's messages on Redis pub/sub and delivers what the other hosts
 * publish there.
 *
 * The link knows nothing of httpd: it neither logs nor touches APR. It
 * runs its own thread, which does every network operation (name lookup,
 * connect, TLS, AUTH, reads and writes) without blocking anyone else;
 * callers only queue. What goes wrong is told to the state callback (on
 * each change between up and down, not on each retry) and in the
 * counters.
 *
 * On Redis. Two connections: one in PSUBSCRIBE mode on <prefix>*, which
 * may send nothing else, and one that pipelines PUBLISH commands. A
 * message is PUBLISH <prefix><topic> <payload>, the payload a header
 * (WS_REDIS_VERSION, the caller's type, the publishing link's 16-byte
 * origin) and then the data. Every child of every host subscribes, so each
 * gets its own messages back from Redis: those carrying our origin are
 * counted and dropped, as the children of one httpd share an origin and
 * exchange messages over ws_bus instead.
 *
 * Delivery is at most once, as Redis pub/sub's own: a subscriber
 * connection that is down misses what is published meanwhile. Published
 * messages wait in one queue, bounded by WS_REDIS_MAX_QUEUED bytes:
 *   - while the link is up, the queue fills only when Redis or the network
 *     cannot keep up; over the cap ws_redis_publish() refuses (ENOBUFS), as
 *     ws_bus_publish() does;
 *   - while it is down (and before it first comes up) the queue keeps the
 *     newest messages: over the cap the oldest are dropped and counted,
 *     and the publish succeeds. What is queued goes out, in order, once the
 *     link is up again.
 * A PUBLISH written whole to a connection that then breaks before Redis
 * replied may or may not have been delivered; it is counted as dropped
 * and not sent again, since a repeat would reach most subscribers twice.
 * One written in part was never executed and goes out again.
 *
 * Open the link after fork, in the child that uses it.
 */
#ifndef WS_REDIS_H
#define WS_REDIS_H

#include <stddef.h>
#include <stdint.h>

/* The payload: version (1 byte), type (1), origin (16), then data. */
#define WS_REDIS_VERSION     1
#define WS_REDIS_ORIGIN      16
#define WS_REDIS_HEADER      (2 + WS_REDIS_ORIGIN)

/* The limits of ws_bus (WS_BUS_MAX_TOPIC, WS_BUS_MAX_MESSAGE), so that
 * what one path carries the other can. */
#define WS_REDIS_MAX_TOPIC   1024
#define WS_REDIS_MAX_MESSAGE (64 * 1024)
#define WS_REDIS_MAX_PREFIX  256

/* Bytes of messages queued and not yet written to Redis, at most; see
 * above for what happens over it. Per child, like WS_BUS_MAX_QUEUED. */
#define WS_REDIS_MAX_QUEUED  (8 * 1024 * 1024)

#define WS_REDIS_DEFAULT_PORT   6379
#define WS_REDIS_DEFAULT_PREFIX "mws:"

/* Where Redis is. Every string is malloc'd (ws_redis_config_free()). */
typedef struct {
    char *host;             /* a name or an address; IPv6 without [] */
    int port;
    char *user;             /* NULL: AUTH password alone (or no AUTH) */
    char *password;         /* NULL: no AUTH */
    int tls;                /* rediss:// */
    char *ca_file;          /* PEM CAs to trust; NULL: the system's */
    char *channel_prefix;   /* channel = prefix + topic; may be "" */
} ws_redis_config_t;

/* Parse redis://[[user]:password@]host[:port][/[db]] or rediss://...
 * into *cfg (zeroed first): host may be [IPv6]; user and password are
 * percent-decoded ('/', '?', '#' in them must be encoded, and ':' in a
 * user; an unencoded '@' or ':' in a password is read as meant); the port
 * defaults to 6379; a database number is accepted and ignored, as pub/sub
 * channels do not belong to a database. ca_file is left NULL and
 * channel_prefix set to WS_REDIS_DEFAULT_PREFIX, for the caller to
 * replace. Returns 0, or -1 with a message in err and nothing allocated:
 * another scheme, no host, a bad port, a bad percent-escape or one that
 * decodes to NUL, a user without a password, a query or fragment, or no
 * memory. Any thread. */
int ws_redis_parse_url(const char *url, ws_redis_config_t *cfg, char *err,
                       size_t errlen);

/* Free cfg's strings and zero it. */
void ws_redis_config_free(ws_redis_config_t *cfg);

/* A message's payload, pointing into the parsed buffer. */
typedef struct {
    uint8_t type;
    const uint8_t *origin;  /* WS_REDIS_ORIGIN bytes */
    const void *data;
    size_t len;
} ws_redis_payload_t;

/* Parse the len bytes at buf as a payload; reads nothing past them.
 * Returns 0 and fills *p, or -1 when it is shorter than the header, of
 * another version, or its data is over WS_REDIS_MAX_MESSAGE. */
int ws_redis_parse_payload(const void *buf, size_t len,
                           ws_redis_payload_t *p);

/* Write the payload for one message into buf (room for cap bytes).
 * Returns its length, or 0 when the data is over WS_REDIS_MAX_MESSAGE or
 * cap too small. */
size_t ws_redis_format_payload(void *buf, size_t cap,
                               const uint8_t origin[WS_REDIS_ORIGIN],
                               uint8_t type, const void *data, size_t len);

/* The topic in a channel: 0 and *topic, *topic_len set when channel
 * starts with prefix and the rest is 1 to WS_REDIS_MAX_TOPIC bytes, else
 * -1. */
int ws_redis_channel_topic(const char *channel, size_t channel_len,
                           const char *prefix, size_t prefix_len,
                           const char **topic, size_t *topic_len);

typedef struct ws_redis ws_redis_t;

/* Called on the link thread for each message from another origin; topic
 * and data are valid only during the call. It should be quick: meanwhile
 * the link neither receives nor publishes. It may publish; it must not
 * close the link. */
typedef void (*ws_redis_deliver_fn)(void *ctx, const char *topic,
                                    size_t topic_len, uint8_t type,
                                    const void *data, size_t len);

/* Called on the link thread when the link comes up (up 1: both
 * connections ready, the subscription confirmed; why names the server,
 * "host:port") and when it goes down (up 0, why says what failed, such as
 * "connect 127.0.0.1:6379: Connection refused"). The first failure counts
 * as a change from the initial state, connecting; failed retries while
 * down are not told. why is valid only during the call. It must not
 * close the link. */
typedef void (*ws_redis_state_fn)(void *ctx, int up, const char *why);

/* Counters since open. Any thread may read them; each is exact, the set
 * is not a snapshot. */
typedef struct {
    uint64_t published;     /* accepted by ws_redis_publish() */
    uint64_t sent;          /* PUBLISH commands Redis acknowledged */
    uint64_t received;      /* messages delivered */
    uint64_t dropped;       /* publishes refused (queue full while up),
                               the oldest queued dropped while down,
                               PUBLISHes lost with a broken connection or
                               refused by Redis */
    uint64_t own;           /* messages of our own origin, not delivered */
    uint64_t malformed;     /* messages dropped: a bad payload, a channel
                               outside the prefix, an unexpected reply */
    uint64_t connects;      /* times the link came up */
    uint64_t up;            /* now: 1 while up, else 0 */
    uint64_t queued_bytes;  /* now: see WS_REDIS_MAX_QUEUED */
} ws_redis_stats_t;

/* Start a link to cfg's Redis (cfg is copied) with the given origin, and
 * return at once: connecting is the link thread's work, which starts with
 * every signal blocked. deliver and state are called on that thread with
 * ctx. Returns the link, or NULL with a message in err: the prefix is over
 * WS_REDIS_MAX_PREFIX, the CA file cannot be loaded, no memory, thread or
 * descriptor. */
ws_redis_t *ws_redis_open(const ws_redis_config_t *cfg,
                          const uint8_t origin[WS_REDIS_ORIGIN],
                          ws_redis_deliver_fn deliver,
                          ws_redis_state_fn state, void *ctx, char *err,
                          size_t errlen);

/* Queue one message for Redis; never blocks. Any thread may call it, the
 * callbacks included. Returns 0, or -1 with errno set and the message not
 * queued: EMSGSIZE when the topic is empty or over WS_REDIS_MAX_TOPIC or
 * the data over WS_REDIS_MAX_MESSAGE; ENOBUFS when the link is up and the
 * queue over WS_REDIS_MAX_QUEUED (counted in dropped); ENOMEM. */
int ws_redis_publish(ws_redis_t *r, const char *topic, size_t topic_len,
                     uint8_t type, const void *data, size_t len);

/* Stop the thread and free the link with what is still queued (not sent).
 * Waits for the thread, which is never blocked on the network but may be
 * inside a name lookup (bounded by the resolver's timeout) or a callback.
 * Not from a callback; no other thread may use the link during or after
 * the call. NULL is ignored. */
void ws_redis_close(ws_redis_t *r);

/* Fill *st with the link's counters. Any thread. */
void ws_redis_stats(ws_redis_t *r, ws_redis_stats_t *st);

#endif /* WS_REDIS_H */
