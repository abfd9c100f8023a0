/* ws_redis_test.c: unit tests for the Redis link (ws_redis.c,
 * ws_redis_io.c, ws_redis_url.c).
 *
 * The URL parser and the payload format are checked alone, table-driven,
 * inputs against an unreadable page. The link itself runs against a real
 * redis-server that each test starts on a free port of 127.0.0.1 (without
 * persistence, in its own directory) and kills at the end; without
 * /usr/bin/redis-server those tests do not run and a SKIPPED line says
 * so. The TLS tests need a redis-server built with TLS and the openssl
 * command, which makes a CA and a certificate for "localhost". Every wait
 * has a deadline (WAIT_MS), so a fault fails a test rather than hanging.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "ws_redis.h"
#include "test_util.h"

#define REDIS_SERVER "/usr/bin/redis-server"
#define WAIT_MS      10000
#define TOPIC        "chat/room1"

/* ---- URLs ---- */

static const struct {
    const char *url;
    const char *host, *user, *password;
    int port, tls;
} url_cases[] = {
    { "redis://localhost", "localhost", NULL, NULL, 6379, 0 },
    { "redis://localhost/", "localhost", NULL, NULL, 6379, 0 },
    { "redis://10.0.0.7:6380/0", "10.0.0.7", NULL, NULL, 6380, 0 },
    { "redis://:secret@r1.example:1", "r1.example", NULL, "secret", 1, 0 },
    { "redis://alice:secret@r1.example", "r1.example", "alice", "secret",
      6379, 0 },
    { "redis://al%69ce:p%40ss%2Fw%3Ard@h", "h", "alice", "p@ss/w:rd", 6379,
      0 },
    { "redis://:p@ss:w@h:65535", "h", NULL, "p@ss:w", 65535, 0 },
    { "rediss://redis.example:6390", "redis.example", NULL, NULL, 6390, 1 },
    { "rediss://u:p@[::1]:7000/", "::1", "u", "p", 7000, 1 },
    { "redis://[2001:db8::a:1]", "2001:db8::a:1", NULL, NULL, 6379, 0 },
    { "redis://my_host-1.local./15", "my_host-1.local.", NULL, NULL, 6379,
      0 },
};

START_TEST(url_parses)
{
    char err[256] = "", *url = fence_dup(url_cases[_i].url);
    ws_redis_config_t cfg;

    ck_assert_msg(ws_redis_parse_url(url, &cfg, err, sizeof(err)) == 0,
                  "%s: %s", url_cases[_i].url, err);
    ck_assert_str_eq(cfg.host, url_cases[_i].host);
    ck_assert_int_eq(cfg.port, url_cases[_i].port);
    ck_assert_int_eq(cfg.tls, url_cases[_i].tls);
    ck_assert_pstr_eq(cfg.user, url_cases[_i].user);
    ck_assert_pstr_eq(cfg.password, url_cases[_i].password);
    ck_assert_ptr_null(cfg.ca_file);
    ck_assert_str_eq(cfg.channel_prefix, WS_REDIS_DEFAULT_PREFIX);
    ws_redis_config_free(&cfg);
    ck_assert_ptr_null(cfg.host);
    fence_free(url);
}
END_TEST

static const struct {
    const char *url, *says;
} bad_url_cases[] = {
    { "", "not redis://" },
    { "http://localhost", "not redis://" },
    { "redis:/localhost", "not redis://" },
    { "redis://", "no host" },
    { "redis://:6379", "no host" },
    { "redis://u:p@", "no host" },
    { "redis://h:0", "port" },
    { "redis://h:65536", "port" },
    { "redis://h:", "port" },
    { "redis://h:12a", "port" },
    { "redis://h:99999999999999999999", "port" },
    { "redis://h/x", "database" },
    { "redis://h/0/1", "database" },
    { "redis://h?db=1", "query" },
    { "redis://h#f", "query" },
    { "redis://user@h", "needs a password" },
    { "redis://u:@h", "empty password" },
    { "redis://u:p%4@h", "%-escape" },
    { "redis://u:p%zz@h", "%-escape" },
    { "redis://u:p%00@h", "%-escape" },
    { "redis://u:p%@h", "%-escape" },
    { "redis://[::1", "']'" },
    { "redis://[::1]x", "after ']'" },
    { "redis://[::g]", "IPv6" },
    { "redis://[]:1", "no host" },
    { "redis://h o", "host name" },
    { "redis://h%41", "host name" },
};

START_TEST(url_refuses)
{
    char err[256] = "", *url = fence_dup(bad_url_cases[_i].url);
    ws_redis_config_t cfg;

    ck_assert_msg(ws_redis_parse_url(url, &cfg, err, sizeof(err)) == -1,
                  "%s parsed", bad_url_cases[_i].url);
    ck_assert_msg(strstr(err, bad_url_cases[_i].says) != NULL,
                  "%s: \"%s\" does not say \"%s\"", bad_url_cases[_i].url,
                  err, bad_url_cases[_i].says);
    ck_assert_ptr_null(cfg.host);
    ck_assert_ptr_null(cfg.password);
    ck_assert_ptr_null(cfg.channel_prefix);
    fence_free(url);
}
END_TEST

/* ---- the payload and the channel ---- */

static const uint8_t origin_a[WS_REDIS_ORIGIN] = "host-a-origin-01";
static const uint8_t origin_b[WS_REDIS_ORIGIN] = "host-b-origin-02";

/* len bytes of src copied to end right before an unreadable page. */
static unsigned char *fence_mem(const void *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), span = fence_span(len, page);
    unsigned char *base = mmap(NULL, span + page, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    ck_assert(base != MAP_FAILED);
    ck_assert_int_eq(mprotect(base + span, page, PROT_NONE), 0);
    if (len)
        memcpy(base + span - len, src, len);
    return base + span - len;
}

static void fence_mem_free(unsigned char *pos, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), span = fence_span(len, page);

    munmap(pos + len - span, span + page);
}

static const size_t payload_sizes[] = { 0, 1, 100, 4096,
                                        WS_REDIS_MAX_MESSAGE };

/* Formatted, then parsed from a buffer that ends at an unreadable page,
 * every field comes back; cut inside the header it is refused, cut in the
 * data it is a shorter message (Redis gives the payload's length). */
START_TEST(payload_round_trip)
{
    size_t len = payload_sizes[_i], size = WS_REDIS_HEADER + len, i, cut;
    unsigned char *data = malloc(len + 1), *buf = malloc(size), *fenced;
    ws_redis_payload_t p;

    test_rng_init();
    for (i = 0; i < len; i++)
        data[i] = (unsigned char)test_rng();
    ck_assert_uint_eq(ws_redis_format_payload(buf, size - 1, origin_a, 0x81,
                                              data, len), 0);
    ck_assert_uint_eq(ws_redis_format_payload(buf, size, origin_a, 0x81,
                                              data, len), size);
    ck_assert_uint_eq(buf[0], WS_REDIS_VERSION);
    fenced = fence_mem(buf, size);
    ck_assert_int_eq(ws_redis_parse_payload(fenced, size, &p), 0);
    ck_assert_uint_eq(p.type, 0x81);
    ck_assert_mem_eq(p.origin, origin_a, WS_REDIS_ORIGIN);
    ck_assert_uint_eq(p.len, len);
    ck_assert_ptr_eq(p.data, fenced + WS_REDIS_HEADER);
    if (len)
        ck_assert_mem_eq(p.data, data, len);
    fence_mem_free(fenced, size);

    for (cut = 0; cut < size; cut += cut < WS_REDIS_HEADER + 8 ? 1 : 997) {
        fenced = fence_mem(buf, cut);
        ck_assert_int_eq(ws_redis_parse_payload(fenced, cut, &p),
                         cut < WS_REDIS_HEADER ? -1 : 0);
        if (cut >= WS_REDIS_HEADER)
            ck_assert_uint_eq(p.len, cut - WS_REDIS_HEADER);
        fence_mem_free(fenced, cut);
    }
    free(data);
    free(buf);
}
END_TEST

START_TEST(payload_refuses_malformed)
{
    static unsigned char buf[WS_REDIS_HEADER + WS_REDIS_MAX_MESSAGE + 1];
    ws_redis_payload_t p;

    ck_assert_uint_eq(ws_redis_format_payload(buf, sizeof(buf), origin_a, 1,
                                              buf, WS_REDIS_MAX_MESSAGE + 1),
                      0);
    ck_assert_uint_eq(ws_redis_format_payload(buf, sizeof(buf), origin_a, 1,
                                              "x", 1), WS_REDIS_HEADER + 1);
    /* Another version, before and after ours. */
    buf[0] = 0;
    ck_assert_int_eq(ws_redis_parse_payload(buf, WS_REDIS_HEADER + 1, &p), -1);
    buf[0] = WS_REDIS_VERSION + 1;
    ck_assert_int_eq(ws_redis_parse_payload(buf, WS_REDIS_HEADER + 1, &p), -1);
    buf[0] = WS_REDIS_VERSION;
    ck_assert_int_eq(ws_redis_parse_payload(buf, WS_REDIS_HEADER + 1, &p), 0);
    ck_assert_int_eq(ws_redis_parse_payload(buf, 0, &p), -1);
    /* Data over the limit. */
    ck_assert_int_eq(ws_redis_parse_payload(buf, sizeof(buf), &p), -1);
    ck_assert_int_eq(ws_redis_parse_payload(buf, sizeof(buf) - 1, &p), 0);
}
END_TEST

START_TEST(channel_topic_needs_the_prefix)
{
    static char big[4 + WS_REDIS_MAX_TOPIC + 1];
    const char *topic;
    size_t len;

    ck_assert_int_eq(ws_redis_channel_topic("mws:a/b", 7, "mws:", 4, &topic,
                                            &len), 0);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(topic, "a/b", 3), 0);
    ck_assert_int_eq(ws_redis_channel_topic("mws:", 4, "mws:", 4, &topic,
                                            &len), -1);
    ck_assert_int_eq(ws_redis_channel_topic("mwx:a", 5, "mws:", 4, &topic,
                                            &len), -1);
    ck_assert_int_eq(ws_redis_channel_topic("mw", 2, "mws:", 4, &topic,
                                            &len), -1);
    ck_assert_int_eq(ws_redis_channel_topic("abc", 3, "", 0, &topic, &len),
                     0);
    ck_assert_uint_eq(len, 3);
    memset(big, 'x', sizeof(big));
    memcpy(big, "mws:", 4);
    ck_assert_int_eq(ws_redis_channel_topic(big, sizeof(big), "mws:", 4,
                                            &topic, &len), -1);
    ck_assert_int_eq(ws_redis_channel_topic(big, sizeof(big) - 1, "mws:", 4,
                                            &topic, &len), 0);
}
END_TEST

/* ---- a redis-server of our own ---- */

typedef struct {
    pid_t pid;
    int port;
    char dir[64];
    char *args[40];
    int nargs;
} server_t;

static server_t srv;
static char certs[64];          /* the TLS tests' directory, or "" */

/* A port nobody listens on now: the kernel's choice for 127.0.0.1:0. */
static int free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int port_open(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void server_arg(const char *arg)
{
    ck_assert_int_lt(srv.nargs, 38);
    srv.args[srv.nargs++] = strdup(arg);
}

/* Set up the arguments for a server on port (0: a new free port), plain
 * or TLS, with the extra arguments (NULL-terminated). */
static void server_conf(int port, int tls, const char *const *extra)
{
    char buf[256];

    srv.port = port ? port : free_port();
    server_arg(REDIS_SERVER);
    server_arg("--bind");
    server_arg("127.0.0.1");
    snprintf(buf, sizeof(buf), "%d", srv.port);
    if (tls) {
        server_arg("--port");
        server_arg("0");
        server_arg("--tls-port");
        server_arg(buf);
        snprintf(buf, sizeof(buf), "%s/server.pem", certs);
        server_arg("--tls-cert-file");
        server_arg(buf);
        snprintf(buf, sizeof(buf), "%s/server.key", certs);
        server_arg("--tls-key-file");
        server_arg(buf);
        snprintf(buf, sizeof(buf), "%s/ca.pem", certs);
        server_arg("--tls-ca-cert-file");
        server_arg(buf);
        server_arg("--tls-auth-clients");
        server_arg("no");
    }
    else {
        server_arg("--port");
        server_arg(buf);
    }
    server_arg("--save");
    server_arg("");
    server_arg("--appendonly");
    server_arg("no");
    server_arg("--daemonize");
    server_arg("no");
    server_arg("--dir");
    server_arg(srv.dir);
    snprintf(buf, sizeof(buf), "%s/redis.log", srv.dir);
    server_arg("--logfile");
    server_arg(buf);
    for (; extra && *extra; extra++)
        server_arg(*extra);
    srv.args[srv.nargs] = NULL;
}

/* Start the server as configured and wait until it listens. */
static void server_start(void)
{
    ck_assert_int_eq(srv.pid, 0);
    srv.pid = fork();
    ck_assert_int_ge(srv.pid, 0);
    if (srv.pid == 0) {
        execv(REDIS_SERVER, srv.args);
        _exit(127);
    }
    ck_assert_msg(WAIT_UNTIL(port_open(srv.port)
                             || waitpid(srv.pid, NULL, WNOHANG) != 0,
                             WAIT_MS) && port_open(srv.port),
                  "redis-server did not listen on %d (log: %s/redis.log)",
                  srv.port, srv.dir);
}

static void server_kill(void)
{
    if (srv.pid > 0) {
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
    }
    srv.pid = 0;
}

static void link_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    memset(&srv, 0, sizeof(srv));
    strcpy(srv.dir, "/tmp/ws_redis_test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(srv.dir));
}

static void link_teardown(void)
{
    char cmd[128];
    int i;

    server_kill();
    for (i = 0; i < srv.nargs; i++)
        free(srv.args[i]);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", srv.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", srv.dir);
}

/* ---- a link and what it received ---- */

/* A test message's data: who published it, its number, then filler. */
typedef struct {
    uint32_t who;
    uint32_t n;
} msg_head_t;

typedef struct {
    pthread_mutex_t lock;
    uint32_t total, count[2], last[2], disorder, bad;
    int ups, downs, repeats, up;    /* state callbacks */
    char why[512];                  /* the last one's */
    char why_copy[512];             /* see why_of() */
    unsigned char want[WS_REDIS_MAX_MESSAGE];   /* deliver()'s */
    ws_redis_t *r;
} peer_t;

static void fill(unsigned char *pos, size_t len, uint32_t who, uint32_t n)
{
    size_t i;

    for (i = 0; i < len; i++)
        pos[i] = (unsigned char)(who * 31 + n + i);
}

static void deliver(void *ctx, const char *topic, size_t topic_len,
                    uint8_t type, const void *data, size_t len)
{
    peer_t *p = ctx;
    msg_head_t h;

    pthread_mutex_lock(&p->lock);
    p->total++;
    if (len < sizeof(h) || topic_len != strlen(TOPIC)
        || memcmp(topic, TOPIC, topic_len) != 0) {
        p->bad++;
        goto out;
    }
    memcpy(&h, data, sizeof(h));
    if (h.who > 1 || type != (uint8_t)h.n) {
        p->bad++;
        goto out;
    }
    fill(p->want, len - sizeof(h), h.who, h.n);
    if (memcmp(p->want, (const unsigned char *)data + sizeof(h),
               len - sizeof(h)) != 0) {
        p->bad++;
        goto out;
    }
    if (p->count[h.who] && h.n <= p->last[h.who])
        p->disorder++;
    p->last[h.who] = h.n;
    p->count[h.who]++;
out:
    pthread_mutex_unlock(&p->lock);
}

static void on_state(void *ctx, int up, const char *why)
{
    peer_t *p = ctx;

    pthread_mutex_lock(&p->lock);
    if ((p->ups || p->downs) && up == p->up)
        p->repeats++;
    p->up = up;
    if (up)
        p->ups++;
    else
        p->downs++;
    snprintf(p->why, sizeof(p->why), "%s", why);
    pthread_mutex_unlock(&p->lock);
}

static peer_t peers[2];

/* Fields of p read under its lock. */
#define PEEK(p, field) ({                       \
        __typeof__((p)->field) v_;              \
        pthread_mutex_lock(&(p)->lock);         \
        v_ = (p)->field;                        \
        pthread_mutex_unlock(&(p)->lock);       \
        v_; })

/* The reason of p's last state change. */
static const char *why_of(peer_t *p)
{
    pthread_mutex_lock(&p->lock);
    memcpy(p->why_copy, p->why, sizeof(p->why));
    pthread_mutex_unlock(&p->lock);
    return p->why_copy;
}

static ws_redis_stats_t stats(ws_redis_t *r)
{
    ws_redis_stats_t st;

    ws_redis_stats(r, &st);
    return st;
}

/* Open a link for peers[i] to url (with ca_file, and prefix unless NULL)
 * and origin. */
static peer_t *peer_open_prefix(int i, const char *url, const char *ca_file,
                                const char *prefix, const uint8_t *origin)
{
    peer_t *p = &peers[i];
    ws_redis_config_t cfg;
    char err[256] = "";

    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    ck_assert_msg(ws_redis_parse_url(url, &cfg, err, sizeof(err)) == 0,
                  "%s: %s", url, err);
    if (ca_file)
        cfg.ca_file = strdup(ca_file);
    if (prefix) {
        free(cfg.channel_prefix);
        cfg.channel_prefix = strdup(prefix);
    }
    p->r = ws_redis_open(&cfg, origin, deliver, on_state, p, err,
                         sizeof(err));
    ws_redis_config_free(&cfg);
    ck_assert_msg(p->r != NULL, "ws_redis_open: %s", err);
    return p;
}

static peer_t *peer_open(int i, const char *url, const char *ca_file,
                         const uint8_t *origin)
{
    return peer_open_prefix(i, url, ca_file, NULL, origin);
}

static void peer_close(peer_t *p)
{
    ws_redis_close(p->r);
    p->r = NULL;
    pthread_mutex_destroy(&p->lock);
}

static void wait_up(peer_t *p)
{
    ck_assert_msg(WAIT_UNTIL(PEEK(p, up) && stats(p->r).up, WAIT_MS),
                  "not up: %s", why_of(p));
}

static void wait_down(peer_t *p)
{
    ck_assert_msg(WAIT_UNTIL(PEEK(p, downs) > 0 && !PEEK(p, up), WAIT_MS),
                  "not down");
}

/* Publish message n of publisher who with len bytes of data. */
static int publish(peer_t *p, uint32_t who, uint32_t n, size_t len)
{
    static unsigned char buf[WS_REDIS_MAX_MESSAGE];
    msg_head_t h = { who, n };

    memcpy(buf, &h, sizeof(h));
    fill(buf + sizeof(h), len - sizeof(h), who, n);
    return ws_redis_publish(p->r, TOPIC, strlen(TOPIC), (uint8_t)n, buf,
                            len);
}

static char url[256];

static const char *plain_url(const char *auth)
{
    snprintf(url, sizeof(url), "redis://%s127.0.0.1:%d", auth, srv.port);
    return url;
}

/* n messages from each of two links up on the server: each gets the
 * other's, all of them in order, and its own back from Redis, counted. */
static void exchange(peer_t *a, peer_t *b, uint32_t n, size_t size)
{
    ws_redis_stats_t sa = stats(a->r), sb = stats(b->r);
    uint32_t i;

    pthread_mutex_lock(&a->lock);
    memset(a->count, 0, sizeof(a->count));
    pthread_mutex_unlock(&a->lock);
    pthread_mutex_lock(&b->lock);
    memset(b->count, 0, sizeof(b->count));
    pthread_mutex_unlock(&b->lock);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(publish(a, 0, i, size), 0);
        ck_assert_int_eq(publish(b, 1, i, size), 0);
    }
    ck_assert_msg(WAIT_UNTIL(PEEK(a, count[1]) == n && PEEK(b, count[0]) == n
                             && stats(a->r).own == sa.own + n
                             && stats(b->r).own == sb.own + n
                             && stats(a->r).sent == sa.sent + n
                             && stats(b->r).sent == sb.sent + n, WAIT_MS),
                  "a got %u, b got %u", PEEK(a, count[1]), PEEK(b, count[0]));
    ck_assert_uint_eq(PEEK(a, count[0]), 0);
    ck_assert_uint_eq(PEEK(b, count[1]), 0);
    ck_assert_uint_eq(PEEK(a, disorder) + PEEK(b, disorder), 0);
    ck_assert_uint_eq(PEEK(a, bad) + PEEK(b, bad), 0);
    ck_assert_uint_eq(PEEK(a, last[1]), n - 1);
    ck_assert_uint_eq(PEEK(b, last[0]), n - 1);
}

/* ---- the link ---- */

START_TEST(link_exchanges_both_ways_in_order)
{
    peer_t *a, *b;
    ws_redis_stats_t st;
    int64_t t;

    server_conf(0, 0, NULL);
    server_start();
    a = peer_open(0, plain_url(""), NULL, origin_a);
    b = peer_open(1, plain_url(""), NULL, origin_b);
    wait_up(a);
    wait_up(b);
    ck_assert_str_eq(why_of(a), url + strlen("redis://"));
    t = now_ms();
    exchange(a, b, 1000, 100);
    printf("link: 1000 messages each way through redis in %lld ms\n",
           (long long)(now_ms() - t));
    exchange(a, b, 20, WS_REDIS_MAX_MESSAGE);
    st = stats(a->r);
    ck_assert_uint_eq(st.published, 1020);
    ck_assert_uint_eq(st.received, 1020);
    ck_assert_uint_eq(st.dropped + st.malformed, 0);
    ck_assert_uint_eq(st.connects, 1);
    ck_assert_uint_eq(st.queued_bytes, 0);
    ck_assert_int_eq(PEEK(a, ups), 1);
    ck_assert_int_eq(PEEK(a, downs), 0);
    peer_close(a);
    peer_close(b);
}
END_TEST

/* Two links with one origin (two children of one httpd): neither gets the
 * other's messages from Redis, only counts them. */
START_TEST(link_ignores_its_own_origin)
{
    peer_t *a, *b;

    server_conf(0, 0, NULL);
    server_start();
    a = peer_open(0, plain_url(""), NULL, origin_a);
    b = peer_open(1, plain_url(""), NULL, origin_a);
    wait_up(a);
    wait_up(b);
    ck_assert_int_eq(publish(a, 0, 0, 64), 0);
    ck_assert_int_eq(publish(a, 0, 1, 64), 0);
    ck_assert(WAIT_UNTIL(stats(b->r).own == 2 && stats(a->r).own == 2,
                         WAIT_MS));
    ck_assert_uint_eq(PEEK(b, total), 0);
    ck_assert_uint_eq(PEEK(a, total), 0);
    ck_assert_uint_eq(stats(b->r).received, 0);
    peer_close(a);
    peer_close(b);
}
END_TEST

/* What others put on our channels that is not ours to read: counted as
 * malformed, the link stays up. The raw PUBLISH goes through a plain
 * socket. */
START_TEST(link_counts_foreign_payloads)
{
    const char cmd[] = "*3\r\n$7\r\nPUBLISH\r\n$7\r\nmws:a/b\r\n$3\r\nxyz\r\n";
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    peer_t *a;
    int fd;

    server_conf(0, 0, NULL);
    server_start();
    a = peer_open(0, plain_url(""), NULL, origin_a);
    wait_up(a);
    sa.sin_port = htons((uint16_t)srv.port);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(write(fd, cmd, sizeof(cmd) - 1), sizeof(cmd) - 1);
    ck_assert(WAIT_UNTIL(stats(a->r).malformed == 1, WAIT_MS));
    close(fd);
    ck_assert_uint_eq(PEEK(a, total), 0);
    ck_assert_int_eq(PEEK(a, downs), 0);
    peer_close(a);
}
END_TEST

START_TEST(link_authenticates)
{
    const char *extra[] = { "--requirepass", "s3cret:@/", NULL };
    peer_t *a, *b;

    server_conf(0, 0, extra);
    server_start();
    /* AUTH password, and AUTH user password (Redis 6 ACLs). */
    a = peer_open(0, plain_url(":s3cret:@%2F@"), NULL, origin_a);
    b = peer_open(1, plain_url("default:s3cret%3A%40%2F@"), NULL, origin_b);
    wait_up(a);
    wait_up(b);
    exchange(a, b, 10, 64);
    peer_close(a);
    peer_close(b);

    a = peer_open(0, plain_url(":wrong@"), NULL, origin_a);
    b = peer_open(1, plain_url(""), NULL, origin_b);
    wait_down(a);
    wait_down(b);
    ck_assert_msg(strstr(why_of(a), "WRONGPASS") != NULL, "%s",
                  why_of(a));
    ck_assert_msg(strstr(why_of(b), "NOAUTH") != NULL, "%s",
                  why_of(b));
    printf("auth: wrong password: \"%s\"; none: \"%s\"\n", why_of(a),
           why_of(b));
    ck_assert_uint_eq(stats(a->r).connects, 0);
    peer_close(a);
    peer_close(b);
}
END_TEST

/* Nobody listens: down is told once, whatever the retries; publishing
 * goes on without waiting, the queue keeping the newest messages. */
START_TEST(link_unreachable_publish_never_blocks)
{
    uint32_t i, n = 300;
    int64_t t, max_us = 0;
    ws_redis_stats_t st;
    peer_t *a;

    srv.port = free_port();
    a = peer_open(0, plain_url(""), NULL, origin_a);
    wait_down(a);
    ck_assert_msg(strstr(why_of(a), "Connection refused") != NULL, "%s",
                  why_of(a));
    ck_assert_msg(strstr(why_of(a), url + strlen("redis://")) != NULL,
                  "%s", why_of(a));
    for (i = 0; i < n; i++) {
        t = now_us();
        ck_assert_int_eq(publish(a, 0, i, WS_REDIS_MAX_MESSAGE), 0);
        t = now_us() - t;
        max_us = t > max_us ? t : max_us;
    }
    st = stats(a->r);
    ck_assert_uint_eq(st.published, n);
    ck_assert_uint_le(st.queued_bytes, WS_REDIS_MAX_QUEUED);
    ck_assert_uint_gt(st.queued_bytes, WS_REDIS_MAX_QUEUED / 2);
    ck_assert_uint_gt(st.dropped, 0);
    /* Backoff: several retries fit in 1.5 s, none told. */
    usleep(1500 * 1000);
    ck_assert_int_eq(PEEK(a, downs), 1);
    ck_assert_int_eq(PEEK(a, ups), 0);
    printf("unreachable: \"%s\"; %u publishes of 64 KiB, slowest %lld us, "
           "%llu dropped, %llu bytes queued\n", why_of(a), n,
           (long long)max_us, (unsigned long long)st.dropped,
           (unsigned long long)st.queued_bytes);
    peer_close(a);
}
END_TEST

/* Redis killed: each link tells down once, keeps publishes (bounded);
 * Redis back on the same port: each tells up, sends what it kept, and
 * messages flow again. */
START_TEST(link_survives_a_redis_restart)
{
    uint32_t i, n = 200;
    ws_redis_stats_t st;
    peer_t *a, *b;

    server_conf(0, 0, NULL);
    server_start();
    a = peer_open(0, plain_url(""), NULL, origin_a);
    b = peer_open(1, plain_url(""), NULL, origin_b);
    wait_up(a);
    wait_up(b);
    exchange(a, b, 10, 64);

    server_kill();
    wait_down(a);
    wait_down(b);
    printf("restart: down: \"%s\"\n", why_of(a));
    for (i = 0; i < n; i++)
        ck_assert_int_eq(publish(a, 0, 1000 + i, WS_REDIS_MAX_MESSAGE), 0);
    st = stats(a->r);
    ck_assert_uint_le(st.queued_bytes, WS_REDIS_MAX_QUEUED);
    ck_assert_uint_gt(st.dropped, 0);
    usleep(1000 * 1000);
    ck_assert_int_eq(PEEK(a, downs), 1);
    ck_assert_int_eq(PEEK(b, downs), 1);

    server_start();
    wait_up(a);
    wait_up(b);
    ck_assert_int_eq(PEEK(a, ups), 2);
    ck_assert_int_eq(PEEK(a, repeats) + PEEK(b, repeats), 0);
    /* Everything kept went out (b may have subscribed too late for some):
     * each publish is sent or dropped, none lost uncounted. */
    ck_assert(WAIT_UNTIL((st = stats(a->r)).queued_bytes == 0
                         && st.sent + st.dropped == st.published, WAIT_MS));
    ck_assert_uint_eq(stats(a->r).connects, 2);
    pthread_mutex_lock(&b->lock);
    memset(b->count, 0, sizeof(b->count));
    pthread_mutex_unlock(&b->lock);
    pthread_mutex_lock(&a->lock);
    memset(a->count, 0, sizeof(a->count));
    pthread_mutex_unlock(&a->lock);
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(publish(a, 0, 2000 + i, 64), 0);
        ck_assert_int_eq(publish(b, 1, 2000 + i, 64), 0);
    }
    /* b may still be receiving what a kept: wait for the last. */
    ck_assert(WAIT_UNTIL(PEEK(a, last[1]) == 2009 && PEEK(b, last[0]) == 2009,
                         WAIT_MS));
    ck_assert_uint_eq(PEEK(a, count[1]), 10);
    ck_assert_uint_eq(PEEK(a, disorder) + PEEK(b, disorder), 0);
    printf("restart: %llu of %u kept while down were sent after\n",
           (unsigned long long)(stats(a->r).sent - 10 - 10), n);
    peer_close(a);
    peer_close(b);
}
END_TEST

/* Redis stopped (SIGSTOP) while the link is up: the socket buffers fill,
 * then the queue, and publish refuses (ENOBUFS) without waiting; once
 * Redis runs again, all that was accepted is sent. */
START_TEST(link_up_refuses_when_redis_cannot_keep_up)
{
    uint32_t i, ok = 0;
    int64_t t, max_us = 0;
    ws_redis_stats_t st;
    peer_t *a;
    int rv;

    server_conf(0, 0, NULL);
    server_start();
    a = peer_open(0, plain_url(""), NULL, origin_a);
    wait_up(a);
    ck_assert_int_eq(kill(srv.pid, SIGSTOP), 0);
    for (i = 0; i < 2000; i++) {
        t = now_us();
        errno = 0;
        rv = publish(a, 0, i, WS_REDIS_MAX_MESSAGE);
        t = now_us() - t;
        max_us = t > max_us ? t : max_us;
        if (rv != 0) {
            ck_assert_int_eq(errno, ENOBUFS);
            break;
        }
        ok++;
        /* Let the thread move the queue to the socket first. */
        if (i % 16 == 0)
            usleep(1000);
    }
    st = stats(a->r);
    ck_assert_msg(rv == -1, "%u publishes of 64 KiB all accepted", ok);
    ck_assert_uint_le(st.queued_bytes, WS_REDIS_MAX_QUEUED);
    ck_assert_uint_eq(st.dropped, 1);
    ck_assert_int_eq(kill(srv.pid, SIGCONT), 0);
    ck_assert(WAIT_UNTIL(stats(a->r).sent == ok, WAIT_MS));
    ck_assert_uint_eq(stats(a->r).queued_bytes, 0);
    ck_assert_int_eq(PEEK(a, downs), 0);
    printf("backpressure: %u publishes of 64 KiB accepted before ENOBUFS, "
           "slowest %lld us\n", ok, (long long)max_us);
    peer_close(a);
}
END_TEST

/* Open and close at once, and close while connecting. */
START_TEST(link_closes_at_any_time)
{
    peer_t *a;
    int i;

    srv.port = free_port();
    for (i = 0; i < 20; i++) {
        a = peer_open(0, plain_url(""), NULL, origin_a);
        if (i % 2)
            usleep(200 * (unsigned)i);
        ck_assert_int_eq(publish(a, 0, 0, 64), 0);
        peer_close(a);
    }
}
END_TEST

START_TEST(link_open_refuses_bad_config)
{
    ws_redis_config_t cfg;
    char err[256] = "", big[WS_REDIS_MAX_PREFIX + 2];

    ck_assert_int_eq(ws_redis_parse_url("rediss://localhost", &cfg, err,
                                        sizeof(err)), 0);
    cfg.ca_file = strdup("/nonexistent/ca.pem");
    ck_assert_ptr_null(ws_redis_open(&cfg, origin_a, deliver, on_state,
                                     &peers[0], err, sizeof(err)));
    ck_assert_msg(strstr(err, "/nonexistent/ca.pem") != NULL, "%s", err);
    free(cfg.ca_file);
    cfg.ca_file = NULL;
    cfg.tls = 0;
    memset(big, 'p', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    free(cfg.channel_prefix);
    cfg.channel_prefix = strdup(big);
    ck_assert_ptr_null(ws_redis_open(&cfg, origin_a, deliver, on_state,
                                     &peers[0], err, sizeof(err)));
    ck_assert_msg(strstr(err, "prefix") != NULL, "%s", err);
    ws_redis_config_free(&cfg);
}
END_TEST

/* A prefix with glob characters subscribes to itself only. */
START_TEST(link_escapes_the_prefix)
{
    peer_t *a, *b;

    server_conf(0, 0, NULL);
    server_start();
    /* b subscribes to its prefix escaped, a to "a*", which matches b's
     * channels; unescaped, b's pattern would match none of its own. */
    a = peer_open_prefix(0, plain_url(""), NULL, "a", origin_a);
    b = peer_open_prefix(1, plain_url(""), NULL, "a*[x]?\\", origin_b);
    wait_up(a);
    wait_up(b);
    ck_assert_int_eq(publish(a, 0, 0, 64), 0);
    ck_assert_int_eq(publish(b, 1, 0, 64), 0);
    ck_assert(WAIT_UNTIL(stats(b->r).own == 1 && stats(a->r).own == 1
                         && PEEK(a, total) == 1, WAIT_MS));
    /* a ("a*") got b's message on "a*[x]?\chat/room1", as a topic. */
    ck_assert_uint_eq(PEEK(a, bad), 1);
    usleep(100 * 1000);
    ck_assert_uint_eq(PEEK(b, total), 0);
    ck_assert_uint_eq(stats(b->r).malformed, 0);
    peer_close(a);
    peer_close(b);
}
END_TEST

/* ---- TLS ---- */

static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static pid_t certs_owner;

static void remove_certs(void)
{
    /* Check's forked test processes exit too. */
    if (getpid() == certs_owner && sh("rm -rf '%s'", certs) != 0)
        fprintf(stderr, "could not remove %s\n", certs);
}

/* A CA, a server certificate for DNS:localhost alone (so that 127.0.0.1
 * does not match it), and another CA that signed nothing. Returns NULL,
 * or why TLS cannot be tested. */
static const char *make_certs(void)
{
    if (sh("ldd " REDIS_SERVER " 2>/dev/null | grep -q libssl") != 0)
        return REDIS_SERVER " is not built with TLS (no libssl in ldd)";
    if (sh("command -v openssl >/dev/null") != 0)
        return "the openssl command is missing";
    strcpy(certs, "/tmp/ws_redis_certs.XXXXXX");
    if (mkdtemp(certs) == NULL)
        return "no temporary directory";
    certs_owner = getpid();
    atexit(remove_certs);
    if (sh("cd %s && exec >openssl.log 2>&1 && "
           "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca "
           "  -keyout ca.key -out ca.pem && "
           "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca2 "
           "  -keyout other.key -out other.pem && "
           "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost "
           "  -keyout server.key -out server.csr && "
           "printf 'subjectAltName=DNS:localhost\\n' > ext && "
           "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
           "  -CAcreateserial -days 2 -extfile ext -out server.pem",
           certs) != 0)
        return "openssl could not make the certificates (see openssl.log)";
    return NULL;
}

START_TEST(link_tls_verifies_and_exchanges)
{
    char ca[128], other[128], tls_url[128];
    peer_t *a, *b;

    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    snprintf(other, sizeof(other), "%s/other.pem", certs);
    server_conf(0, 1, NULL);
    server_start();
    snprintf(tls_url, sizeof(tls_url), "rediss://localhost:%d", srv.port);
    a = peer_open(0, tls_url, ca, origin_a);
    b = peer_open(1, tls_url, ca, origin_b);
    wait_up(a);
    wait_up(b);
    exchange(a, b, 1000, 100);
    exchange(a, b, 20, WS_REDIS_MAX_MESSAGE);
    peer_close(a);
    peer_close(b);

    /* Another CA; the right one but an address the certificate does not
     * name. */
    a = peer_open(0, tls_url, other, origin_a);
    snprintf(tls_url, sizeof(tls_url), "rediss://127.0.0.1:%d", srv.port);
    b = peer_open(1, tls_url, ca, origin_b);
    wait_down(a);
    wait_down(b);
    printf("tls: other CA: \"%s\"; wrong address: \"%s\"\n", why_of(a),
           why_of(b));
    ck_assert_msg(strstr(why_of(a), "certificate verify failed") != NULL,
                  "%s", why_of(a));
    ck_assert_msg(strstr(why_of(b), "certificate verify failed") != NULL,
                  "%s", why_of(b));
    ck_assert_uint_eq(stats(a->r).connects + stats(b->r).connects, 0);
    peer_close(a);
    peer_close(b);
}
END_TEST

/* A TLS link through a restart, and a plain link to a TLS port fails. */
START_TEST(link_tls_survives_a_restart)
{
    char ca[128], tls_url[128];
    peer_t *a, *b;

    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    server_conf(0, 1, NULL);
    server_start();
    snprintf(tls_url, sizeof(tls_url), "rediss://localhost:%d", srv.port);
    a = peer_open(0, tls_url, ca, origin_a);
    b = peer_open(1, plain_url(""), NULL, origin_b);
    wait_up(a);
    wait_down(b);
    printf("tls: plain to a TLS port: \"%s\"\n", why_of(b));
    peer_close(b);
    server_kill();
    wait_down(a);
    server_start();
    wait_up(a);
    b = peer_open(1, tls_url, ca, origin_b);
    wait_up(b);
    exchange(a, b, 10, 64);
    peer_close(a);
    peer_close(b);
}
END_TEST

static Suite *ws_redis_suite(void)
{
    Suite *s = suite_create("ws_redis");
    TCase *tc = tcase_create("url");
    const char *why;

    tcase_add_loop_test(tc, url_parses, 0,
                        sizeof(url_cases) / sizeof(url_cases[0]));
    tcase_add_loop_test(tc, url_refuses, 0,
                        sizeof(bad_url_cases) / sizeof(bad_url_cases[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("payload");
    tcase_add_loop_test(tc, payload_round_trip, 0,
                        sizeof(payload_sizes) / sizeof(payload_sizes[0]));
    tcase_add_test(tc, payload_refuses_malformed);
    tcase_add_test(tc, channel_topic_needs_the_prefix);
    suite_add_tcase(s, tc);

    tc = tcase_create("link");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, link_setup, link_teardown);
    tcase_add_test(tc, link_unreachable_publish_never_blocks);
    tcase_add_test(tc, link_closes_at_any_time);
    tcase_add_test(tc, link_open_refuses_bad_config);
    suite_add_tcase(s, tc);
    if (access(REDIS_SERVER, X_OK) != 0) {
        printf("SKIPPED: the ws_redis tests against a Redis server, "
               "because %s is missing (apt-get install redis-server)\n",
               REDIS_SERVER);
        return s;
    }
    tcase_add_test(tc, link_exchanges_both_ways_in_order);
    tcase_add_test(tc, link_ignores_its_own_origin);
    tcase_add_test(tc, link_counts_foreign_payloads);
    tcase_add_test(tc, link_authenticates);
    tcase_add_test(tc, link_survives_a_redis_restart);
    tcase_add_test(tc, link_up_refuses_when_redis_cannot_keep_up);
    tcase_add_test(tc, link_escapes_the_prefix);

    why = make_certs();
    if (why) {
        printf("SKIPPED: the ws_redis TLS tests, because %s\n", why);
        return s;
    }
    tc = tcase_create("tls");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, link_setup, link_teardown);
    tcase_add_test(tc, link_tls_verifies_and_exchanges);
    tcase_add_test(tc, link_tls_survives_a_restart);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ws_redis_suite)
