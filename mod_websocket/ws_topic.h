/* ws_topic.h: the topics of one process: which subscribers (connections)
 * listen to which topic, for publishing to them.
 *
 * The registry knows nothing of httpd: a subscriber is an opaque pointer
 * that the registry keeps alive with the hold and release functions it was
 * given, from subscribe until unsubscribe. All functions are thread-safe;
 * none calls release with the registry's lock held, so release may take
 * other locks, free the subscriber and call the registry. hold is called
 * with the lock held (a reference must be taken before another thread can
 * drop the subscription): it must be quick and must not call the registry.
 * Topics are byte strings of 1 to WS_TOPIC_MAX_NAME printable
 * ASCII characters without space (0x21-0x7e): safe in a log line, a Redis
 * channel name and a URL query.
 */
#ifndef WS_TOPIC_H
#define WS_TOPIC_H

#include <stddef.h>

#define WS_TOPIC_MAX_NAME 200

/* Topics one subscriber may be subscribed to at once. A connection is one
 * subscriber: this bounds what one client can make the process hold. */
#define WS_TOPIC_MAX_PER_SUBSCRIBER 256

typedef struct ws_topics ws_topics_t;

typedef void ws_topic_ref_fn(void *sub);

/* 1 if the len bytes at name are a valid topic name, else 0. */
int ws_topic_name_valid(const char *name, size_t len);

/* 1 if name starts with one of the n prefixes ("" allows every name),
 * else 0. */
int ws_topic_prefix_allowed(const char *name, size_t len,
                            const char *const *prefixes, size_t n);

/* An empty registry that takes a reference on each subscription with hold
 * and drops it with release. NULL when out of memory. */
ws_topics_t *ws_topics_create(ws_topic_ref_fn *hold,
                              ws_topic_ref_fn *release);

/* Drop every subscription (releasing each) and free the registry. No other
 * thread may use it during or after the call, nor may release call it.
 * NULL is ignored. */
void ws_topics_destroy(ws_topics_t *t);

typedef enum {
    WS_TOPIC_OK = 0,        /* subscribed (or already was) */
    WS_TOPIC_INVALID,       /* not a valid topic name */
    WS_TOPIC_TOO_MANY,      /* sub is at WS_TOPIC_MAX_PER_SUBSCRIBER */
    WS_TOPIC_NOMEM
} ws_topic_result_e;

/* Subscribe sub to the topic of len bytes at name, taking a reference on
 * sub unless it was subscribed already. */
ws_topic_result_e ws_topics_subscribe(ws_topics_t *t, void *sub,
                                      const char *name, size_t len);

/* Unsubscribe sub from one topic, releasing the reference subscribe took.
 * Returns 0, or -1 if it was not subscribed. */
int ws_topics_unsubscribe(ws_topics_t *t, void *sub, const char *name,
                          size_t len);

/* Unsubscribe sub from every topic (a connection that ends). Costs the
 * number of its subscriptions, not of all topics. */
void ws_topics_unsubscribe_all(ws_topics_t *t, void *sub);

/* The number of subscribers of a topic now. */
size_t ws_topics_count(ws_topics_t *t, const char *name, size_t len);

/* The subscribers of a topic now, each with a reference taken with hold,
 * in the order they subscribed: *subs is a malloc'd array of the returned
 * count (NULL when 0) that the caller frees after releasing each with
 * ws_topics_release(). Returns (size_t)-1 when out of memory, with *subs
 * NULL and no reference taken. */
size_t ws_topics_collect(ws_topics_t *t, const char *name, size_t len,
                         void ***subs);

/* Drop the n references ws_topics_collect() took and free the array. */
void ws_topics_release(ws_topics_t *t, void **subs, size_t n);

/* Topics with at least one subscriber, and subscriptions, now. */
void ws_topics_stats(ws_topics_t *t, size_t *topics, size_t *subscriptions);

#endif /* WS_TOPIC_H */
