/* fakehost.c: loads one plugin built from docs/plugin-guide.md and runs it
 * through a short script on fake connections, so that the guide's samples
 * are not only compiled but run. It does no networking: its server
 * functions record what the plugin sends and enforce the rules the guide
 * (and mod_websocket_plugin.h) state:
 *
 *   - request accessors, mws_setting(), mws_set_subprotocol() and the user
 *     pointer only inside a callback of that same connection (on_open for
 *     mws_set_subprotocol());
 *   - no use of a handle after its on_close has returned unless it was held
 *     with mws_hold(), and every mws_hold() released by process_exit;
 *   - mws_close() only with the codes the header documents, a reason of at
 *     most 123 bytes; text messages valid UTF-8;
 *   - mws_subscribe() and mws_unsubscribe() only inside a callback of that
 *     connection, and no mws_publish() from on_topic_message.
 *
 * Topics are a small in-process table, as one httpd child would have them:
 * a name is 1 to 200 characters 0x21-0x7e that starts with one of the
 * connection's prefixes (its location, /sample, unless the script says
 * otherwise), at most 256 per connection, dropped before on_close runs.
 * mws_publish() calls the plugin's on_topic_message and then queues the
 * message on every subscribed connection, on the publishing thread, as
 * mod_websocket does.
 *
 * Usage: fakehost PLUGIN.so SYMBOL 'COMMAND; COMMAND; ...'
 *
 *   set KEY=VALUE        a WebSocketSetting for the connections opened next
 *   open NAME            on_open for a new connection; it must accept
 *   refused NAME STATUS  on_open for a new connection; it must refuse with
 *                        STATUS (what it subscribed is dropped)
 *   msg NAME TEXT        on_message with a text message
 *   expect NAME TEXT     wait (5 s at most) until NAME has been sent TEXT,
 *                        or a message starting with TEXT if it ends in '*'
 *   drain NAME           the queue was written: mws_buffered() drops to 0
 *                        and on_drain runs
 *   close NAME CODE      the client closed cleanly with CODE: on_close
 *   prefix P [P] ...     WebSocketTopicPrefix for the connections opened
 *                        next (* for any, none for none)
 *   remote TOPIC TEXT    a text message another process published to TOPIC
 *                        arrives: on_topic_message and delivery run on a
 *                        thread of the fake host (the module's bus thread)
 *
 * Every callback runs on this program's main thread, on_topic_message
 * excepted; a plugin's own threads may call the any-thread functions. Exit status 0 if the script ran and no
 * rule was broken.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mod_websocket_plugin.h"

#define LOCATION     "/sample"  /* mws_location() of every connection */
#define MAX_CONNS    16
#define MAX_SETTINGS 16
#define MAX_TOPIC    200        /* ws_topic.h: WS_TOPIC_MAX_NAME */
#define MAX_SUBS     256        /* WS_TOPIC_MAX_PER_SUBSCRIBER */
#define TOPIC_LIMIT  (64 * 1024) /* WebSocketTopicMessageLimit's default */

typedef struct msg {
    struct msg *next;
    char *text;
} msg_t;

typedef struct fconn {
    mws_conn_t pub;             /* first: the plugin's handle */
    char name[32];
    char ip[32];
    /* Main thread only. */
    int in_open;
    void *data;
    const char *subprotocol;
    /* Under lock. */
    int live;                   /* from on_open until on_close returns */
    int ended;                  /* closing or closed: sends answer GONE */
    int refs;                   /* mws_hold()s not yet released */
    uint64_t buffered;
    msg_t *inbox, **inbox_tail;
    char *topics[MAX_SUBS];     /* subscriptions, in order */
    int ntopics;
    char *prefixes;             /* space-separated; "" allows any; NULL
                                   the location alone (set at open) */
} fconn_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t arrived = PTHREAD_COND_INITIALIZER;
static pthread_t main_thread;
static const fconn_t *current;  /* whose callback runs now (main thread) */
static fconn_t conns[MAX_CONNS];
static int nconns;
static char *settings[MAX_SETTINGS][2];
static int nsettings;
static int violations;
static const char *plugin_path;
static const mws_plugin_t *plugin;
static char *prefix_conf;       /* for the next opens: see fconn_t */
static __thread int in_topic_message;

static void violation(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "fakehost: %s: RULE BROKEN: ", plugin_path);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    __atomic_add_fetch(&violations, 1, __ATOMIC_RELAXED);
}

static void fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "fakehost: %s: ", plugin_path);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

#define FC(h) ((fconn_t *)(h))

/* Owner-thread functions: only inside a callback of this connection. */
static void owner_only(mws_conn_t *h, const char *fn)
{
    if (!pthread_equal(pthread_self(), main_thread))
        violation("%s(%s) called from a thread of the plugin", fn,
                  FC(h)->name);
    else if (current != FC(h))
        violation("%s(%s) called outside that connection's callbacks", fn,
                  FC(h)->name);
}

/* Any-thread functions: while the handle is valid or held. Under lock. */
static void valid_locked(fconn_t *c, const char *fn)
{
    if (!c->live && c->refs <= 0)
        violation("%s(%s) after its on_close returned, without mws_hold()",
                  fn, c->name);
}

static int utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0, n, k;
    uint32_t cp;

    while (i < len) {
        unsigned char b = s[i];

        if (b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0xC2 && b <= 0xDF) {
            n = 1;
            cp = b & 0x1F;
        }
        else if (b >= 0xE0 && b <= 0xEF) {
            n = 2;
            cp = b & 0x0F;
        }
        else if (b >= 0xF0 && b <= 0xF4) {
            n = 3;
            cp = b & 0x07;
        }
        else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
            || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

static void deliver_locked(fconn_t *c, const char *data, size_t len)
{
    msg_t *m = malloc(sizeof(*m));

    if (!m || !(m->text = malloc(len + 1)))
        fail("out of memory");
    memcpy(m->text, data, len);
    m->text[len] = '\0';
    m->next = NULL;
    *c->inbox_tail = m;
    c->inbox_tail = &m->next;
    pthread_cond_broadcast(&arrived);
}

static mws_send_result_e f_send(mws_conn_t *h, mws_type_e type,
                                const void *data, size_t len)
{
    fconn_t *c = FC(h);
    mws_send_result_e r = MWS_SEND_GONE;

    if (type != MWS_TEXT && type != MWS_BINARY)
        violation("mws_send(%s) with type %d", c->name, (int)type);
    if (type == MWS_TEXT && !utf8_valid(data, len))
        violation("mws_send_text(%s) with text that is not UTF-8", c->name);
    pthread_mutex_lock(&lock);
    valid_locked(c, "mws_send");
    if (!c->ended) {
        /* Binary messages are recorded as their length. */
        if (type == MWS_BINARY) {
            char note[48];
            int n = snprintf(note, sizeof(note), "<binary %zu>", len);
            deliver_locked(c, note, (size_t)n);
        }
        else {
            deliver_locked(c, data, len);
        }
        c->buffered += len;
        r = MWS_SEND_QUEUED;
    }
    pthread_mutex_unlock(&lock);
    return r;
}

static size_t f_send_many(mws_conn_t *const *conns, size_t n,
                          mws_type_e type, const void *data, size_t len,
                          mws_send_result_e *results)
{
    size_t i, queued = 0;

    for (i = 0; i < n; i++) {
        mws_send_result_e r = f_send(conns[i], type, data, len);

        queued += r == MWS_SEND_QUEUED;
        if (results)
            results[i] = r;
    }
    return queued;
}

static uint64_t f_buffered(mws_conn_t *h)
{
    fconn_t *c = FC(h);
    uint64_t n;

    pthread_mutex_lock(&lock);
    valid_locked(c, "mws_buffered");
    n = c->ended ? 0 : c->buffered;
    pthread_mutex_unlock(&lock);
    return n;
}

static int f_close(mws_conn_t *h, uint16_t code, const char *reason)
{
    fconn_t *c = FC(h);
    size_t len = reason ? strlen(reason) : 0;
    char note[160];
    int rc = -1, n;

    /* The codes mod_websocket_plugin.h documents for mws_close(). */
    if (!(code == 1000 || code == 1001 || code == 1008 || code == 1011
          || (code >= 3000 && code <= 4999)))
        violation("mws_close(%s) with code %u, which the header does not "
                  "allow", c->name, code);
    if (len > 123 || !utf8_valid((const unsigned char *)reason, len))
        violation("mws_close(%s) with a reason that is not UTF-8 of at most "
                  "123 bytes", c->name);
    pthread_mutex_lock(&lock);
    valid_locked(c, "mws_close");
    if (!c->ended) {
        c->ended = 1;
        n = snprintf(note, sizeof(note), "<close %u %s>", code,
                     reason ? reason : "");
        deliver_locked(c, note, (size_t)n);
        rc = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static mws_conn_t *f_hold(mws_conn_t *h)
{
    fconn_t *c = FC(h);

    pthread_mutex_lock(&lock);
    valid_locked(c, "mws_hold");
    c->refs++;
    pthread_mutex_unlock(&lock);
    return h;
}

static void f_release(mws_conn_t *h)
{
    fconn_t *c = FC(h);

    pthread_mutex_lock(&lock);
    if (c->refs <= 0)
        violation("mws_release(%s) without a matching mws_hold()", c->name);
    else
        c->refs--;
    pthread_mutex_unlock(&lock);
}

static const char *f_header(mws_conn_t *h, const char *name)
{
    owner_only(h, "mws_header");
    return strcasecmp(name, "User-Agent") == 0 ? "fakehost" : NULL;
}

static const char *f_uri(mws_conn_t *h)
{
    owner_only(h, "mws_uri");
    return "/sample";
}

static const char *f_query(mws_conn_t *h)
{
    owner_only(h, "mws_query");
    return NULL;
}

static const char *f_remote_ip(mws_conn_t *h)
{
    owner_only(h, "mws_remote_ip");
    return FC(h)->ip;
}

static const char *f_user(mws_conn_t *h)
{
    owner_only(h, "mws_user");
    return NULL;
}

static const char *f_subprotocol(mws_conn_t *h)
{
    owner_only(h, "mws_subprotocol");
    return FC(h)->subprotocol;
}

static int f_set_subprotocol(mws_conn_t *h, const char *name)
{
    owner_only(h, "mws_set_subprotocol");
    if (!FC(h)->in_open) {
        violation("mws_set_subprotocol(%s) outside on_open", FC(h)->name);
        return -1;
    }
    (void)name;
    return -1;                  /* the fake client offers none */
}

static const char *f_setting(mws_conn_t *h, const char *key)
{
    int i;

    owner_only(h, "mws_setting");
    for (i = nsettings - 1; i >= 0; i--)
        if (strcasecmp(settings[i][0], key) == 0)
            return settings[i][1];
    return NULL;
}

static const char *f_location(mws_conn_t *h)
{
    owner_only(h, "mws_location");
    return LOCATION;
}

static void *f_get_data(mws_conn_t *h)
{
    owner_only(h, "mws_get_data");
    return FC(h)->data;
}

static void f_set_data(mws_conn_t *h, void *data)
{
    owner_only(h, "mws_set_data");
    FC(h)->data = data;
}

/* ---- topics ---- */

/* 1 to MAX_TOPIC printable ASCII characters without space (0x21-0x7e). */
static int topic_valid(const char *topic)
{
    size_t n;

    if (!topic)
        return 0;
    for (n = 0; topic[n]; n++)
        if ((unsigned char)topic[n] < 0x21 || (unsigned char)topic[n] > 0x7e)
            return 0;
    return n >= 1 && n <= MAX_TOPIC;
}

/* Whether c's location lets the plugin use topic (WebSocketTopicPrefix,
 * or the location's own path by default). */
static int topic_allowed(const fconn_t *c, const char *topic)
{
    const char *pos, *end;

    if (!topic_valid(topic))
        return 0;
    if (!c->prefixes)
        return strncmp(topic, LOCATION, strlen(LOCATION)) == 0;
    for (pos = c->prefixes; *pos; pos = end) {
        size_t n;

        while (*pos == ' ')
            pos++;
        end = pos + strcspn(pos, " ");
        n = (size_t)(end - pos);
        if (n == 1 && *pos == '*')
            return 1;
        if (n && strncmp(topic, pos, n) == 0)
            return 1;
    }
    return 0;
}

/* The index of topic in c's subscriptions, or -1. Under lock. */
static int subscribed_locked(const fconn_t *c, const char *topic)
{
    int i;

    for (i = 0; i < c->ntopics; i++)
        if (strcmp(c->topics[i], topic) == 0)
            return i;
    return -1;
}

/* The end of a connection (before on_close): its subscriptions go. */
static void unsubscribe_all(fconn_t *c)
{
    pthread_mutex_lock(&lock);
    while (c->ntopics)
        free(c->topics[--c->ntopics]);
    pthread_mutex_unlock(&lock);
}

static int f_subscribe(mws_conn_t *h, const char *topic)
{
    fconn_t *c = FC(h);
    int rc = -1;

    owner_only(h, "mws_subscribe");
    if (!topic_allowed(c, topic))
        return -1;
    pthread_mutex_lock(&lock);
    if (c->ended)
        rc = -1;
    else if (subscribed_locked(c, topic) >= 0)
        rc = 0;
    else if (c->ntopics < MAX_SUBS
             && (c->topics[c->ntopics] = strdup(topic))) {
        c->ntopics++;
        rc = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static int f_unsubscribe(mws_conn_t *h, const char *topic)
{
    fconn_t *c = FC(h);
    int i;

    owner_only(h, "mws_unsubscribe");
    if (!topic)
        return -1;
    pthread_mutex_lock(&lock);
    if ((i = subscribed_locked(c, topic)) >= 0) {
        free(c->topics[i]);
        memmove(&c->topics[i], &c->topics[i + 1],
                (size_t)(c->ntopics - i - 1) * sizeof(c->topics[0]));
        c->ntopics--;
    }
    pthread_mutex_unlock(&lock);
    return i >= 0 ? 0 : -1;
}

/* What mod_websocket does with a message published here or arriving from
 * another process: the plugin's on_topic_message first (with a copy of
 * the topic that is freed when it returns), then one copy per subscriber,
 * in the order they subscribed, on the calling thread. */
static void deliver_topic(const char *topic, mws_type_e type,
                          const void *data, size_t len)
{
    char *name = strdup(topic);
    int i;

    if (!name)
        fail("out of memory");
    if (plugin->on_topic_message) {
        in_topic_message = 1;
        plugin->on_topic_message(name, type, data, len);
        in_topic_message = 0;
    }
    free(name);
    pthread_mutex_lock(&lock);
    for (i = 0; i < nconns; i++) {
        fconn_t *c = &conns[i];

        if (c->ended || subscribed_locked(c, topic) < 0)
            continue;
        if (type == MWS_BINARY) {
            char note[48];
            int n = snprintf(note, sizeof(note), "<binary %zu>", len);

            deliver_locked(c, note, (size_t)n);
        }
        else {
            deliver_locked(c, data, len);
        }
        c->buffered += len;
    }
    pthread_mutex_unlock(&lock);
}

static int f_publish(mws_conn_t *h, const char *topic, mws_type_e type,
                     const void *data, size_t len)
{
    fconn_t *c = FC(h);

    if (in_topic_message) {
        violation("mws_publish(%s) from on_topic_message", c->name);
        return -1;              /* rather than recurse */
    }
    if (type != MWS_TEXT && type != MWS_BINARY) {
        violation("mws_publish(%s) with type %d", c->name, (int)type);
        return -1;
    }
    if (type == MWS_TEXT && data && !utf8_valid(data, len))
        violation("mws_publish(%s) with text that is not UTF-8", c->name);
    pthread_mutex_lock(&lock);
    valid_locked(c, "mws_publish");
    pthread_mutex_unlock(&lock);
    if (!topic_allowed(c, topic) || len > TOPIC_LIMIT || (len && !data))
        return -1;
    deliver_topic(topic, type, data, len);
    return 0;
}

static size_t f_subscribers(mws_conn_t *h, const char *topic)
{
    fconn_t *c = FC(h);
    size_t n = 0;
    int i;

    pthread_mutex_lock(&lock);
    valid_locked(c, "mws_subscribers");
    for (i = 0; topic && i < nconns; i++)
        n += subscribed_locked(&conns[i], topic) >= 0;
    pthread_mutex_unlock(&lock);
    return n;
}

/* "remote": the bus thread delivers a message from another process. */
typedef struct {
    const char *topic;
    const char *text;
} remote_t;

static void *remote_main(void *arg)
{
    const remote_t *r = arg;
    size_t len = strlen(r->text);
    char *data = malloc(len ? len : 1);     /* exact size, as in "msg" */

    if (!data)
        fail("out of memory");
    memcpy(data, r->text, len);
    deliver_topic(r->topic, MWS_TEXT, data, len);
    free(data);
    return NULL;
}

static const mws_server_api_t api = {
    MWS_PLUGIN_API_VERSION, sizeof(mws_server_api_t),
    f_send, f_buffered, f_close, f_hold, f_release, f_header, f_uri,
    f_query, f_remote_ip, f_user, f_subprotocol, f_set_subprotocol,
    f_setting, f_location, f_get_data, f_set_data, f_send_many,
    f_subscribe, f_unsubscribe, f_publish, f_subscribers,
};

static fconn_t *find(const char *name)
{
    int i;

    for (i = 0; i < nconns; i++)
        if (strcmp(conns[i].name, name) == 0)
            return &conns[i];
    fail("no connection named %s", name);
    return NULL;
}

/* Wait for a message equal to want (or starting with it, if it ends in
 * '*') and take it out of the inbox; earlier messages stay. */
static void expect(fconn_t *c, const char *want)
{
    size_t wl = strlen(want);
    int prefix = wl && want[wl - 1] == '*';
    struct timespec until;
    msg_t **p, *m;
    int rc = 0;

    if (prefix)
        wl--;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&lock);
    for (;;) {
        for (p = &c->inbox; (m = *p); p = &m->next) {
            if (prefix ? strncmp(m->text, want, wl) == 0
                       : strcmp(m->text, want) == 0) {
                if (!(*p = m->next))
                    c->inbox_tail = p;
                pthread_mutex_unlock(&lock);
                free(m->text);
                free(m);
                return;
            }
        }
        if (rc == ETIMEDOUT)
            break;
        rc = pthread_cond_timedwait(&arrived, &lock, &until);
    }
    fprintf(stderr, "fakehost: %s: %s was not sent \"%s\" within 5 s; it "
            "was sent:\n", plugin_path, c->name, want);
    for (m = c->inbox; m; m = m->next)
        fprintf(stderr, "  \"%.80s\"\n", m->text);
    pthread_mutex_unlock(&lock);
    exit(1);
}

int main(int argc, char **argv)
{
    const mws_plugin_t *(*entry)(void);
    const mws_plugin_t *p;
    char *script, *cmd, *save = NULL;
    void *dso;
    int i;

    if (argc != 4) {
        fprintf(stderr, "usage: fakehost PLUGIN.so SYMBOL 'SCRIPT'\n");
        return 2;
    }
    plugin_path = argv[1];
    main_thread = pthread_self();
    /* As httpd loads it: apr_dso_load() uses RTLD_NOW | RTLD_GLOBAL. */
    if (!(dso = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL)))
        fail("cannot load: %s", dlerror());
    *(void **)&entry = dlsym(dso, argv[2]);
    if (!entry)
        fail("no symbol %s", argv[2]);
    if (!(plugin = p = entry()))
        fail("%s() returned no table", argv[2]);
    if (p->api_version != MWS_PLUGIN_API_VERSION
        || p->struct_size != sizeof(mws_plugin_t))
        fail("table stamped API %u, %u bytes; the header says %d, %zu "
             "(MWS_PLUGIN_HEADER missing?)", p->api_version, p->struct_size,
             MWS_PLUGIN_API_VERSION, sizeof(mws_plugin_t));
    if (!p->name)
        fail("the table has no .name");
    if (p->process_init && p->process_init() != 0)
        fail("process_init failed");

    script = argv[3];
    for (cmd = strtok_r(script, ";", &save); cmd;
         cmd = strtok_r(NULL, ";", &save)) {
        char verb[16], name[MAX_TOPIC + 1];
        int used = 0;
        fconn_t *c;

        while (*cmd == ' ')
            cmd++;
        if (!*cmd)
            continue;
        if (sscanf(cmd, "%15s %200s %n", verb, name, &used) < 2)
            fail("bad command \"%s\"", cmd);
        if (strcmp(verb, "set") == 0) {
            char *eq = strchr(name, '=');
            char *kv = strchr(cmd, ' ') + 1;

            if (!eq || nsettings == MAX_SETTINGS)
                fail("bad setting \"%s\"", cmd);
            eq = strchr(kv, '=');
            *eq = '\0';
            settings[nsettings][0] = kv;
            settings[nsettings++][1] = eq + 1;
        }
        else if (strcmp(verb, "open") == 0 || strcmp(verb, "refused") == 0) {
            int want = verb[0] == 'r' ? atoi(cmd + used) : 0, status = 0;

            if (nconns == MAX_CONNS)
                fail("too many connections");
            if (strlen(name) >= sizeof(conns[0].name))
                fail("connection name %s is too long", name);
            c = &conns[nconns];
            c->pub.api = &api;
            strcpy(c->name, name);
            snprintf(c->ip, sizeof(c->ip), "192.0.2.%d", nconns + 1);
            c->inbox_tail = &c->inbox;
            c->prefixes = prefix_conf;
            pthread_mutex_lock(&lock);
            c->live = 1;
            nconns++;           /* publishing threads read it */
            pthread_mutex_unlock(&lock);
            if (p->on_open) {
                current = c;
                c->in_open = 1;
                status = p->on_open(&c->pub);
                c->in_open = 0;
                current = NULL;
            }
            if (status != want)
                fail("on_open answered %d for %s, not %d", status, name,
                     want);
            if (status) {
                /* As ws_conn_discard(): no on_close, no subscriptions. */
                unsubscribe_all(c);
                pthread_mutex_lock(&lock);
                c->ended = 1;
                c->live = 0;
                pthread_mutex_unlock(&lock);
            }
        }
        else if (strcmp(verb, "msg") == 0) {
            c = find(name);
            if (p->on_message) {
                /* An exact-size copy, so reading past len is caught by
                 * tools and a missing NUL is not masked. */
                size_t len = strlen(cmd + used);
                char *data = malloc(len ? len : 1);

                memcpy(data, cmd + used, len);
                current = c;
                p->on_message(&c->pub, MWS_TEXT, data, len);
                current = NULL;
                free(data);
            }
        }
        else if (strcmp(verb, "expect") == 0) {
            expect(find(name), cmd + used);
        }
        else if (strcmp(verb, "drain") == 0) {
            c = find(name);
            pthread_mutex_lock(&lock);
            c->buffered = 0;
            pthread_mutex_unlock(&lock);
            if (p->on_drain) {
                current = c;
                p->on_drain(&c->pub);
                current = NULL;
            }
        }
        else if (strcmp(verb, "close") == 0) {
            c = find(name);
            pthread_mutex_lock(&lock);
            c->ended = 1;
            pthread_mutex_unlock(&lock);
            unsubscribe_all(c);
            if (p->on_close) {
                current = c;
                p->on_close(&c->pub, (uint16_t)atoi(cmd + used), "", 1);
                current = NULL;
            }
            pthread_mutex_lock(&lock);
            c->live = 0;
            pthread_mutex_unlock(&lock);
        }
        else if (strcmp(verb, "prefix") == 0) {
            const char *list = strchr(cmd, ' ') + 1;

            /* Not freed: the connections opened so far point at it. */
            prefix_conf = strdup(strcasecmp(name, "none") == 0 ? "" : list);
            if (!prefix_conf)
                fail("out of memory");
        }
        else if (strcmp(verb, "remote") == 0) {
            remote_t r = { name, cmd + used };
            pthread_t bus;

            if (!topic_valid(name))
                fail("remote: %s is not a topic name", name);
            if (pthread_create(&bus, NULL, remote_main, &r) != 0)
                fail("cannot start a thread");
            pthread_join(bus, NULL);
        }
        else {
            fail("unknown command \"%s\"", verb);
        }
    }
    for (i = 0; i < nconns; i++)
        if (conns[i].live)
            fail("the script left %s open", conns[i].name);
    if (p->process_exit)
        p->process_exit();
    for (i = 0; i < nconns; i++)
        if (conns[i].refs)
            violation("%d mws_hold() on %s never released", conns[i].refs,
                      conns[i].name);
    return violations ? 1 : 0;
}
