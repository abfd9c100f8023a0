/* ws_topic.c: the process's topic subscriptions (see ws_topic.h): which
 * subscribers listen to which topic, under one mutex.
 *
 * It knows nothing of httpd, never logs and never calls release with its
 * lock held: the connection a release drops may be freed, and freeing it
 * takes other locks.
 *
 * A subscription is one node in two doubly linked lists: its topic's, in
 * the order subscribed (what a publish walks), and its subscriber's (what
 * a connection that ends walks). So collect costs the topic's subscribers,
 * unsubscribe_all the subscriber's subscriptions, and one unsubscribe the
 * shorter of the two lists, never more than WS_TOPIC_MAX_PER_SUBSCRIBER.
 * Topics and subscribers are found through two chained hash tables that
 * grow and shrink with their counts; a topic or a subscriber exists only
 * while it has a subscription, so clients that churn through unique names
 * leave nothing behind.
 *
 * Clients choose topic names, so names are hashed with SipHash-2-4 under
 * a key drawn per registry: a client cannot pick names that all land in
 * one chain and turn every lookup into a walk of it (the attack Redis
 * moved its dict to SipHash for).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ws_topic.h"

#define MIN_BUCKETS 16

/* What both tables chain: the first member of a topic and a subscriber. */
typedef struct entry {
    struct entry *next;
    uint64_t hash;
} entry;

typedef struct {
    entry **buckets;
    size_t mask;                /* buckets - 1, a power of two less one */
    size_t count;
} table;

typedef struct subscription subscription;

typedef struct {
    entry e;
    subscription *head, *tail;  /* oldest subscription first */
    size_t count;
    size_t len;
    char name[];
} topic;

typedef struct {
    entry e;
    void *sub;
    subscription *head;         /* in no particular order */
    size_t count;
} subscriber;

struct subscription {
    topic *topic;
    subscriber *owner;
    subscription *tprev, *tnext;
    subscription *sprev, *snext;
};

struct ws_topics {
    ws_topic_ref_fn *hold;      /* read-only after create */
    ws_topic_ref_fn *release;
    uint64_t key[2];

    pthread_mutex_t lock;
    table topics;               /* of topic (under lock) */
    table subs;                 /* of subscriber (under lock) */
    size_t subscriptions;       /* (under lock) */
};

/* ---- hashing ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                    \
    do {                                                            \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);   \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                      \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                      \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);   \
    } while (0)

static uint64_t get64le(const unsigned char *pos)
{
    uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--)
        v = v << 8 | pos[i];
    return v;
}

/* SipHash-2-4 (Aumasson and Bernstein), as in the reference code. */
static uint64_t siphash(const uint64_t key[2], const void *data, size_t len)
{
    const unsigned char *pos = data, *end = pos + (len & ~(size_t)7);
    uint64_t v0 = 0x736f6d6570736575ULL ^ key[0];
    uint64_t v1 = 0x646f72616e646f6dULL ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ key[0];
    uint64_t v3 = 0x7465646279746573ULL ^ key[1];
    uint64_t m, last = (uint64_t)len << 56;
    size_t i;

    for (; pos != end; pos += 8) {
        m = get64le(pos);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (i = 0; i < (len & 7); i++)
        last |= (uint64_t)pos[i] << (8 * i);
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Subscribers are our callers' pointers, not chosen by clients: a fast
 * mix (splitmix64's finalizer) is enough, and it spreads the aligned low
 * bits that a plain multiply would leave zero. */
static uint64_t pointer_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;

    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* ---- the tables ---- */

static int table_init(table *tb)
{
    if (!(tb->buckets = calloc(MIN_BUCKETS, sizeof(*tb->buckets))))
        return -1;
    tb->mask = MIN_BUCKETS - 1;
    tb->count = 0;
    return 0;
}

/* Rehash into n buckets. Out of memory, the table keeps its size: longer
 * chains are slower, not wrong. */
static void table_resize(table *tb, size_t n)
{
    entry **buckets = calloc(n, sizeof(*buckets)), *e, *next;
    size_t i;

    if (!buckets)
        return;
    for (i = 0; i <= tb->mask; i++) {
        for (e = tb->buckets[i]; e; e = next) {
            next = e->next;
            e->next = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
        }
    }
    free(tb->buckets);
    tb->buckets = buckets;
    tb->mask = n - 1;
}

static void table_add(table *tb, entry *e)
{
    entry **head = &tb->buckets[e->hash & tb->mask];

    e->next = *head;
    *head = e;
    if (++tb->count > tb->mask + 1)
        table_resize(tb, (tb->mask + 1) * 2);
}

static void table_remove(table *tb, entry *e)
{
    entry **pp = &tb->buckets[e->hash & tb->mask];
    size_t n = MIN_BUCKETS;

    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    /* Shrink after a spike, to twice the count or more: the next shrink
     * then needs many removals, so their cost stays constant on average. */
    if (--tb->count < (tb->mask + 1) / 8 && tb->mask + 1 > MIN_BUCKETS) {
        while (n < tb->count * 2)
            n *= 2;
        table_resize(tb, n);
    }
}

/* ---- lookups and changes, all under the lock ---- */

static topic *topic_find_locked(ws_topics_t *t, uint64_t hash,
                                const char *name, size_t len)
{
    entry *e;
    topic *tp;

    for (e = t->topics.buckets[hash & t->topics.mask]; e; e = e->next) {
        tp = (topic *)e;
        if (e->hash == hash && tp->len == len
            && memcmp(tp->name, name, len) == 0)
            return tp;
    }
    return NULL;
}

static subscriber *subscriber_find_locked(ws_topics_t *t, void *sub)
{
    uint64_t hash = pointer_hash(sub);
    entry *e;

    for (e = t->subs.buckets[hash & t->subs.mask]; e; e = e->next) {
        if (((subscriber *)e)->sub == sub)
            return (subscriber *)e;
    }
    return NULL;
}

/* s's subscription to tp, or NULL; walks the shorter list. */
static subscription *subscription_find(topic *tp, subscriber *s)
{
    subscription *n;

    if (s->count <= tp->count) {
        for (n = s->head; n && n->topic != tp; n = n->snext)
            ;
    }
    else {
        for (n = tp->head; n && n->owner != s; n = n->tnext)
            ;
    }
    return n;
}

/* Unlink n from both lists and free it, and its topic if that was the
 * topic's last subscription. The subscriber stays, even if empty: its
 * callers still use it. The reference n held is the caller's to drop. */
static void subscription_drop_locked(ws_topics_t *t, subscription *n)
{
    topic *tp = n->topic;
    subscriber *s = n->owner;

    if (n->tprev)
        n->tprev->tnext = n->tnext;
    else
        tp->head = n->tnext;
    if (n->tnext)
        n->tnext->tprev = n->tprev;
    else
        tp->tail = n->tprev;
    if (n->sprev)
        n->sprev->snext = n->snext;
    else
        s->head = n->snext;
    if (n->snext)
        n->snext->sprev = n->sprev;
    s->count--;
    t->subscriptions--;
    free(n);
    if (--tp->count == 0) {
        table_remove(&t->topics, &tp->e);
        free(tp);
    }
}

static void subscriber_free_locked(ws_topics_t *t, subscriber *s)
{
    table_remove(&t->subs, &s->e);
    free(s);
}

/* ---- the interface ---- */

int ws_topic_name_valid(const char *name, size_t len)
{
    const unsigned char *pos = (const unsigned char *)name, *end = pos + len;

    if (len == 0 || len > WS_TOPIC_MAX_NAME)
        return 0;
    for (; pos != end; pos++) {
        if (*pos < 0x21 || *pos > 0x7e)
            return 0;
    }
    return 1;
}

int ws_topic_prefix_allowed(const char *name, size_t len,
                            const char *const *prefixes, size_t n)
{
    size_t i, plen;

    for (i = 0; i < n; i++) {
        plen = strlen(prefixes[i]);
        if (plen <= len && memcmp(name, prefixes[i], plen) == 0)
            return 1;
    }
    return 0;
}

ws_topics_t *ws_topics_create(ws_topic_ref_fn *hold,
                              ws_topic_ref_fn *release)
{
    unsigned char seed[16];
    struct timespec now;
    ws_topics_t *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    if (table_init(&t->topics) < 0 || table_init(&t->subs) < 0
        || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->topics.buckets);
        free(t->subs.buckets);
        free(t);
        return NULL;
    }
    t->hold = hold;
    t->release = release;
    /* Non-blocking: early in boot the kernel's pool may not be ready, and
     * httpd must start anyway. The clock and our address are then a weak
     * key, which only weakens the defence against colliding names. */
    if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed)) {
        clock_gettime(CLOCK_REALTIME, &now);
        t->key[0] = (uint64_t)now.tv_sec << 30 ^ (uint64_t)now.tv_nsec;
        t->key[1] = pointer_hash(t) ^ (uint64_t)now.tv_nsec;
    }
    else {
        t->key[0] = get64le(seed);
        t->key[1] = get64le(seed + 8);
    }
    return t;
}

void ws_topics_destroy(ws_topics_t *t)
{
    subscription *n, *next;
    entry *e, *enext;
    size_t i;

    if (!t)
        return;
    /* No lock: nobody else may use the registry now. Topics go first so
     * that their nodes are freed once, through their subscribers. */
    for (i = 0; i <= t->topics.mask; i++) {
        for (e = t->topics.buckets[i]; e; e = enext) {
            enext = e->next;
            free(e);
        }
    }
    for (i = 0; i <= t->subs.mask; i++) {
        for (e = t->subs.buckets[i]; e; e = enext) {
            subscriber *s = (subscriber *)e;

            enext = e->next;
            for (n = s->head; n; n = next) {
                next = n->snext;
                free(n);
                t->release(s->sub);
            }
            free(s);
        }
    }
    free(t->topics.buckets);
    free(t->subs.buckets);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

ws_topic_result_e ws_topics_subscribe(ws_topics_t *t, void *sub,
                                      const char *name, size_t len)
{
    ws_topic_result_e rv = WS_TOPIC_NOMEM;
    topic *tp, *new_tp = NULL;
    subscriber *s, *new_s = NULL;
    subscription *n;
    uint64_t hash;

    if (!ws_topic_name_valid(name, len))
        return WS_TOPIC_INVALID;
    hash = siphash(t->key, name, len);

    pthread_mutex_lock(&t->lock);
    tp = topic_find_locked(t, hash, name, len);
    s = subscriber_find_locked(t, sub);
    if (tp && s && subscription_find(tp, s)) {
        rv = WS_TOPIC_OK;
        goto out;
    }
    if (s && s->count >= WS_TOPIC_MAX_PER_SUBSCRIBER) {
        rv = WS_TOPIC_TOO_MANY;
        goto out;
    }
    /* Allocate all that is missing before changing anything, so that
     * running out of memory leaves nothing to undo. */
    n = malloc(sizeof(*n));
    if (!tp)
        new_tp = malloc(sizeof(*new_tp) + len);
    if (!s)
        new_s = malloc(sizeof(*new_s));
    if (!n || (!tp && !new_tp) || (!s && !new_s)) {
        free(n);
        free(new_tp);
        free(new_s);
        goto out;
    }
    if (new_tp) {
        tp = new_tp;
        tp->e.hash = hash;
        tp->head = tp->tail = NULL;
        tp->count = 0;
        tp->len = len;
        memcpy(tp->name, name, len);
        table_add(&t->topics, &tp->e);
    }
    if (new_s) {
        s = new_s;
        s->e.hash = pointer_hash(sub);
        s->sub = sub;
        s->head = NULL;
        s->count = 0;
        table_add(&t->subs, &s->e);
    }
    n->topic = tp;
    n->owner = s;
    n->tnext = NULL;
    n->tprev = tp->tail;
    if (tp->tail)
        tp->tail->tnext = n;
    else
        tp->head = n;
    tp->tail = n;
    tp->count++;
    n->sprev = NULL;
    n->snext = s->head;
    if (s->head)
        s->head->sprev = n;
    s->head = n;
    s->count++;
    t->subscriptions++;
    /* Under the lock: an unsubscribe_all from another thread must not
     * drop this reference before it is taken. */
    t->hold(sub);
    rv = WS_TOPIC_OK;
out:
    pthread_mutex_unlock(&t->lock);
    return rv;
}

int ws_topics_unsubscribe(ws_topics_t *t, void *sub, const char *name,
                          size_t len)
{
    uint64_t hash = siphash(t->key, name, len);
    subscription *n = NULL;
    subscriber *s;
    topic *tp;

    pthread_mutex_lock(&t->lock);
    tp = topic_find_locked(t, hash, name, len);
    s = subscriber_find_locked(t, sub);
    if (tp && s)
        n = subscription_find(tp, s);
    if (n) {
        subscription_drop_locked(t, n);
        if (s->count == 0)
            subscriber_free_locked(t, s);
    }
    pthread_mutex_unlock(&t->lock);
    if (!n)
        return -1;
    t->release(sub);
    return 0;
}

void ws_topics_unsubscribe_all(ws_topics_t *t, void *sub)
{
    size_t held = 0;
    subscriber *s;

    pthread_mutex_lock(&t->lock);
    if ((s = subscriber_find_locked(t, sub))) {
        held = s->count;
        while (s->head)
            subscription_drop_locked(t, s->head);
        subscriber_free_locked(t, s);
    }
    pthread_mutex_unlock(&t->lock);
    /* Every reference is to sub itself: counting them is enough, and
     * needs no memory to gather them in. */
    while (held--)
        t->release(sub);
}

size_t ws_topics_count(ws_topics_t *t, const char *name, size_t len)
{
    uint64_t hash = siphash(t->key, name, len);
    size_t count;
    topic *tp;

    pthread_mutex_lock(&t->lock);
    tp = topic_find_locked(t, hash, name, len);
    count = tp ? tp->count : 0;
    pthread_mutex_unlock(&t->lock);
    return count;
}

size_t ws_topics_collect(ws_topics_t *t, const char *name, size_t len,
                         void ***subs)
{
    uint64_t hash = siphash(t->key, name, len);
    void **out = NULL;
    subscription *n;
    size_t count = 0;
    topic *tp;

    *subs = NULL;
    pthread_mutex_lock(&t->lock);
    tp = topic_find_locked(t, hash, name, len);
    /* A topic exists only while it has subscribers: count is never 0. */
    if (tp && !(out = malloc(tp->count * sizeof(*out)))) {
        pthread_mutex_unlock(&t->lock);
        return (size_t)-1;
    }
    for (n = tp ? tp->head : NULL; n; n = n->tnext) {
        t->hold(n->owner->sub);
        out[count++] = n->owner->sub;
    }
    pthread_mutex_unlock(&t->lock);
    *subs = out;
    return count;
}

void ws_topics_release(ws_topics_t *t, void **subs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        t->release(subs[i]);
    free(subs);
}

void ws_topics_stats(ws_topics_t *t, size_t *topics, size_t *subscriptions)
{
    pthread_mutex_lock(&t->lock);
    *topics = t->topics.count;
    *subscriptions = t->subscriptions;
    pthread_mutex_unlock(&t->lock);
}
