/* ws_bus_test.c: unit tests for ws_bus.c, the message bus among the
 * processes that share a directory.
 *
 * The datagram format is checked alone (whole, truncated, mutated, against
 * an unreadable page); the bus itself between real processes: each test
 * gets its own directory under /tmp, forks "kids" that open their own bus
 * in it and obey one-byte commands on a pipe, and collects what each
 * received. Kids are forked before the test's own process opens a bus, so
 * no kid inherits a running bus thread. Every wait has a deadline; a kid
 * whose parent is gone reads EOF and exits, and teardown kills and reaps
 * any kid left.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "ws_bus.h"
#include "test_util.h"

#define MAXP        8       /* processes in one test */
#define KID_IDLE_MS 30000   /* a kid with no command for this long exits */
#define WAIT_MS     20000   /* any other wait */
#define TOPIC       "bus/test"

static char dir[64];

/* ---- what a process received ---- */

/* A test message's data: who published it, its number, then filler that
 * depends on both. */
typedef struct {
    uint32_t who;
    uint32_t n;
} msg_head_t;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t total;
    uint32_t count[MAXP], first[MAXP], last[MAXP];
    uint32_t gaps, disorder, bad;
    int stall, stalled, resume; /* stall at the first message until resumed */
    int say_fd;                 /* told 'B' when stalled, or -1 */
    char topic[64];             /* the last message as it came */
    size_t topic_len, len;
    uint8_t type;
    unsigned char data[64];
} rx_t;

static rx_t rx;

static void rx_init(int stall, int say_fd)
{
    memset(&rx, 0, sizeof(rx));
    pthread_mutex_init(&rx.lock, NULL);
    pthread_cond_init(&rx.cond, NULL);
    rx.stall = stall;
    rx.say_fd = say_fd;
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void fill(unsigned char *pos, size_t len, uint32_t who, uint32_t n)
{
    size_t i;

    for (i = 0; i < len; i++)
        pos[i] = (unsigned char)(who * 31 + n + i);
}

static void deliver(void *ctx, const char *topic, size_t topic_len,
                    uint8_t type, const void *data, size_t len)
{
    rx_t *r = ctx;
    unsigned char want[64 * 1024];
    struct timespec ts;
    msg_head_t h;

    pthread_mutex_lock(&r->lock);
    if (r->stall && !r->stalled) {
        r->stalled = 1;
        if (r->say_fd >= 0 && write(r->say_fd, "B", 1) != 1)
            _exit(5);
        pthread_cond_broadcast(&r->cond);
        deadline_in(&ts, WAIT_MS);
        while (!r->resume
               && pthread_cond_timedwait(&r->cond, &r->lock, &ts) == 0)
            ;
    }
    r->topic_len = topic_len < sizeof(r->topic) ? topic_len : 0;
    memcpy(r->topic, topic, r->topic_len);
    r->type = type;
    r->len = len < sizeof(r->data) ? len : 0;
    memcpy(r->data, data, r->len);
    if (len < sizeof(h) || topic_len != strlen(TOPIC)
        || memcmp(topic, TOPIC, topic_len) != 0) {
        r->bad++;
        goto out;
    }
    memcpy(&h, data, sizeof(h));
    fill(want, len - sizeof(h), h.who, h.n);
    if (h.who >= MAXP || type != (uint8_t)h.n
        || memcmp(want, (const unsigned char *)data + sizeof(h),
                  len - sizeof(h)) != 0) {
        r->bad++;
        goto out;
    }
    if (r->count[h.who] == 0)
        r->first[h.who] = h.n;
    else if (h.n <= r->last[h.who])
        r->disorder++;
    else if (h.n != r->last[h.who] + 1)
        r->gaps++;
    if (r->count[h.who] == 0 || h.n > r->last[h.who])
        r->last[h.who] = h.n;
    r->count[h.who]++;
out:
    r->total++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void rx_resume(void)
{
    pthread_mutex_lock(&rx.lock);
    rx.resume = 1;
    pthread_cond_broadcast(&rx.cond);
    pthread_mutex_unlock(&rx.lock);
}

static uint32_t rx_total(void)
{
    uint32_t n;

    pthread_mutex_lock(&rx.lock);
    n = rx.total;
    pthread_mutex_unlock(&rx.lock);
    return n;
}

/* Wait until total messages came and, if last0, message last0 from
 * publisher 0 among them. Returns how long it took, or -1 on timeout. */
static int64_t rx_wait(uint32_t total, uint32_t last0)
{
    int64_t start = now_ms();
    struct timespec ts;
    int rv = 0;

    deadline_in(&ts, WAIT_MS);
    pthread_mutex_lock(&rx.lock);
    while ((rx.total < total
            || (last0 && (rx.count[0] == 0 || rx.last[0] < last0)))
           && rv == 0)
        rv = pthread_cond_timedwait(&rx.cond, &rx.lock, &ts);
    pthread_mutex_unlock(&rx.lock);
    return rv == 0 ? now_ms() - start : -1;
}

/* Publish message n of publisher who with len bytes of data. */
static int publish(ws_bus_t *b, uint32_t who, uint32_t n, size_t len)
{
    static unsigned char buf[WS_BUS_MAX_MESSAGE];
    msg_head_t h = { who, n };

    memcpy(buf, &h, sizeof(h));
    fill(buf + sizeof(h), len - sizeof(h), who, n);
    return ws_bus_publish(b, TOPIC, strlen(TOPIC), (uint8_t)n, buf, len);
}

static ws_bus_stats_t stats(ws_bus_t *b)
{
    ws_bus_stats_t st;

    ws_bus_stats(b, &st);
    return st;
}

/* ---- kids ---- */

typedef struct {
    uint32_t id;            /* as publisher */
    uint32_t n_msgs;        /* published on 'P' */
    size_t size;
    int stall;              /* stop at the first message until 'S' */
    int open_later;         /* open the bus on 'O', not at once */
} kid_conf_t;

typedef struct {
    uint32_t count[MAXP], first[MAXP], last[MAXP];
    uint32_t total, gaps, disorder, bad;
    int64_t wait_ms;        /* -1: timed out */
    int64_t publish_max_us;
    ws_bus_stats_t st;
} kid_report_t;

typedef struct {
    uint32_t total, last0;  /* see rx_wait() */
    int sent_all;           /* and until its bus holds nothing to send */
} kid_wait_t;

typedef struct {
    pid_t pid;
    int cmd, rep;           /* our ends of its pipes */
} kid_t;

static kid_t kids[MAXP];
static int nkids;

/* Read len bytes within ms. Returns 0, or -1 on timeout or EOF. */
static int read_full(int fd, void *buf, size_t len, int ms)
{
    int64_t until = now_ms() + ms;
    unsigned char *pos = buf;
    struct pollfd p = { fd, POLLIN, 0 };
    ssize_t n;

    while (len) {
        int left = (int)(until - now_ms());

        if (left <= 0 || poll(&p, 1, left) <= 0)
            return -1;
        n = read(fd, pos, len);
        if (n <= 0)
            return -1;
        pos += n;
        len -= (size_t)n;
    }
    return 0;
}

static void write_full(int fd, const void *buf, size_t len)
{
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
}

/* In a kid, which must never reach Check's code. */
static void kid_write(int fd, const void *buf, size_t len)
{
    if (write(fd, buf, len) != (ssize_t)len)
        _exit(5);
}

static void kid_main(const kid_conf_t *c, int cmd, int rep)
{
    ws_bus_t *b = NULL;
    kid_report_t r;
    kid_wait_t w;
    char ch, err[256];
    int64_t t;
    uint32_t i;

    alarm(60);
    memset(&r, 0, sizeof(r));
    rx_init(c->stall, rep);
    if (!c->open_later) {
        b = ws_bus_open(dir, deliver, &rx, err, sizeof(err));
        if (b == NULL)
            _exit(2);
        kid_write(rep, "R", 1);
    }
    for (;;) {
        if (read_full(cmd, &ch, 1, KID_IDLE_MS) != 0)
            _exit(3);
        switch (ch) {
        case 'O':
            b = ws_bus_open(dir, deliver, &rx, err, sizeof(err));
            if (b == NULL)
                _exit(2);
            kid_write(rep, "R", 1);
            break;
        case 'P':
            for (i = 0; i < c->n_msgs; i++) {
                t = now_us();
                if (publish(b, c->id, i, c->size) != 0)
                    _exit(4);
                t = now_us() - t;
                if (t > r.publish_max_us)
                    r.publish_max_us = t;
            }
            break;
        case 'W':
            if (read_full(cmd, &w, sizeof(w), KID_IDLE_MS) != 0)
                _exit(3);
            r.wait_ms = rx_wait(w.total, w.last0);
            if (w.sent_all && r.wait_ms >= 0
                && !WAIT_UNTIL(stats(b).queued_bytes == 0, WAIT_MS))
                r.wait_ms = -1;
            pthread_mutex_lock(&rx.lock);
            memcpy(r.count, rx.count, sizeof(r.count));
            memcpy(r.first, rx.first, sizeof(r.first));
            memcpy(r.last, rx.last, sizeof(r.last));
            r.total = rx.total;
            r.gaps = rx.gaps;
            r.disorder = rx.disorder;
            r.bad = rx.bad;
            pthread_mutex_unlock(&rx.lock);
            ws_bus_stats(b, &r.st);
            kid_write(rep, &r, sizeof(r));
            break;
        case 'S':
            rx_resume();
            break;
        case 'X':
            /* Dies as a crash would: the socket file stays. */
            _exit(0);
        default:
            ws_bus_close(b);
            _exit(0);
        }
    }
}

static kid_t *kid_spawn(const kid_conf_t *c)
{
    kid_t *k = &kids[nkids];
    int to[2], from[2];
    char ch;

    ck_assert_int_lt(nkids, MAXP);
    ck_assert_int_eq(pipe(to), 0);
    ck_assert_int_eq(pipe(from), 0);
    k->pid = fork();
    ck_assert_int_ge(k->pid, 0);
    if (k->pid == 0) {
        close(to[1]);
        close(from[0]);
        kid_main(c, to[0], from[1]);
    }
    close(to[0]);
    close(from[1]);
    k->cmd = to[1];
    k->rep = from[0];
    nkids++;
    if (!c->open_later) {
        ck_assert_int_eq(read_full(k->rep, &ch, 1, WAIT_MS), 0);
        ck_assert_int_eq(ch, 'R');
    }
    return k;
}

static void kid_cmd(kid_t *k, char ch)
{
    write_full(k->cmd, &ch, 1);
}

static void kid_report(kid_t *k, uint32_t total, uint32_t last0,
                       int sent_all, kid_report_t *r)
{
    kid_wait_t w = { total, last0, sent_all };

    kid_cmd(k, 'W');
    write_full(k->cmd, &w, sizeof(w));
    ck_assert_int_eq(read_full(k->rep, r, sizeof(*r), WAIT_MS + 5000), 0);
}

/* Reap k within ms, else kill it. Returns its wait status. */
static int kid_reap(kid_t *k, int ms)
{
    int status = -1;

    if (k->pid <= 0)
        return -1;
    if (!WAIT_UNTIL(waitpid(k->pid, &status, WNOHANG) == k->pid, ms)) {
        kill(k->pid, SIGKILL);
        waitpid(k->pid, &status, 0);
    }
    k->pid = 0;
    close(k->cmd);
    close(k->rep);
    return status;
}

static void kid_quit(kid_t *k)
{
    int status;

    kid_cmd(k, 'Q');
    status = kid_reap(k, WAIT_MS);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}

static char *kid_path(const kid_t *k, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%ld.bus", dir, (long)k->pid);
    return buf;
}

/* ---- fixture ---- */

static void rm_dir(const char *path)
{
    char name[PATH_MAX];
    struct dirent *de;
    struct stat st;
    DIR *d = opendir(path);

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(name, sizeof(name), "%s/%s", path, de->d_name);
        if (lstat(name, &st) == 0 && S_ISDIR(st.st_mode))
            rm_dir(name);
        else
            unlink(name);
    }
    closedir(d);
    rmdir(path);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    strcpy(dir, "/tmp/ws_bus_test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    nkids = 0;
    rx_init(0, -1);
}

static void teardown(void)
{
    int i;

    for (i = 0; i < nkids; i++)
        if (kids[i].pid > 0) {
            kill(kids[i].pid, SIGKILL);
            kid_reap(&kids[i], 1000);
        }
    nkids = 0;
    rm_dir(dir);
}

/* A socket of our own, not a bus, to send raw datagrams. */
static void raw_send(const void *buf, size_t len)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    ck_assert_int_ge(fd, 0);
    snprintf(a.sun_path, sizeof(a.sun_path), "%s/%ld.bus", dir,
             (long)getpid());
    ck_assert_int_eq(sendto(fd, buf, len, 0, (struct sockaddr *)&a,
                            sizeof(a)), (ssize_t)len);
    close(fd);
}

static ws_bus_t *open_bus(void)
{
    char err[256] = "";
    ws_bus_t *b = ws_bus_open(dir, deliver, &rx, err, sizeof(err));

    ck_assert_msg(b != NULL, "ws_bus_open: %s", err);
    return b;
}

static int rx_stalled(void)
{
    int stalled;

    pthread_mutex_lock(&rx.lock);
    stalled = rx.stalled;
    pthread_mutex_unlock(&rx.lock);
    return stalled;
}

static void put_be(unsigned char *pos, uint64_t v, int bytes)
{
    while (bytes--) {
        pos[bytes] = (unsigned char)v;
        v >>= 8;
    }
}

static int entries(const char *path)
{
    struct dirent *de;
    DIR *d = opendir(path);
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* A socket file with nobody behind it, as a crashed process leaves. */
static void dead_socket(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    ck_assert_int_ge(fd, 0);
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);
}

/* ---- the datagram ---- */

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

static const struct {
    size_t topic_len, len;
    uint8_t type;
    uint32_t pid;
    uint64_t seq;
} frame_cases[] = {
    { 1, 0, 0, 1, 0 },
    { 8, 100, 7, 4242, 1 },
    { 300, 4096, 0x80, 65536, 0x0102030405060708ull },
    { WS_BUS_MAX_TOPIC, WS_BUS_MAX_MESSAGE, 255, INT_MAX, UINT64_MAX },
};

/* Framed, then parsed from a buffer that ends at an unreadable page, every
 * field comes back; a datagram cut inside its header or topic is refused,
 * one cut in its data is a shorter message (a datagram's length is its
 * own). */
START_TEST(frame_round_trip)
{
    size_t tl = frame_cases[_i].topic_len, len = frame_cases[_i].len, i, cut;
    size_t size = WS_BUS_HEADER + tl + len;
    unsigned char *topic = malloc(tl), *data = malloc(len + 1);
    unsigned char *buf = malloc(size), *fenced;
    ws_bus_frame_t f;

    test_rng_init();
    for (i = 0; i < tl; i++)
        topic[i] = (unsigned char)test_rng();
    for (i = 0; i < len; i++)
        data[i] = (unsigned char)test_rng();
    ck_assert_uint_eq(ws_bus_frame(buf, size - 1, frame_cases[_i].pid,
                                   frame_cases[_i].seq, (char *)topic, tl,
                                   frame_cases[_i].type, data, len), 0);
    ck_assert_uint_eq(ws_bus_frame(buf, size, frame_cases[_i].pid,
                                   frame_cases[_i].seq, (char *)topic, tl,
                                   frame_cases[_i].type, data, len), size);
    fenced = fence_mem(buf, size);
    ck_assert_int_eq(ws_bus_parse(fenced, size, &f), 0);
    ck_assert_uint_eq(f.type, frame_cases[_i].type);
    ck_assert_uint_eq(f.pid, frame_cases[_i].pid);
    ck_assert(f.seq == frame_cases[_i].seq);
    ck_assert_uint_eq(f.topic_len, tl);
    ck_assert_mem_eq(f.topic, topic, tl);
    ck_assert_uint_eq(f.len, len);
    if (len)
        ck_assert_mem_eq(f.data, data, len);
    ck_assert_ptr_eq(f.data, fenced + WS_BUS_HEADER + tl);
    fence_mem_free(fenced, size);

    for (cut = 0; cut < size; cut += cut < WS_BUS_HEADER + tl + 64 ? 1 : 997) {
        fenced = fence_mem(buf, cut);
        ck_assert_int_eq(ws_bus_parse(fenced, cut, &f),
                         cut < WS_BUS_HEADER + tl ? -1 : 0);
        if (cut >= WS_BUS_HEADER + tl)
            ck_assert_uint_eq(f.len, cut - WS_BUS_HEADER - tl);
        fence_mem_free(fenced, cut);
    }
    free(topic);
    free(data);
    free(buf);
}
END_TEST

/* Each way a datagram can be wrong, made from a valid one ("ab", "xyz",
 * pid 10) by setting one field and parsing len bytes of it. */
enum { F_NONE, F_VERSION, F_TOPIC_LEN, F_PID };
#define WHOLE SIZE_MAX  /* len: the valid datagram's */

static const struct {
    const char *name;
    int field;
    uint32_t value;
    size_t len;
} malformed_cases[] = {
    { "empty", F_NONE, 0, 0 },
    { "one byte", F_NONE, 0, 1 },
    { "header less one", F_NONE, 0, WS_BUS_HEADER - 1 },
    { "version 0", F_VERSION, 0, WHOLE },
    { "version 2", F_VERSION, 2, WHOLE },
    { "empty topic", F_TOPIC_LEN, 0, WHOLE },
    { "topic past the end", F_TOPIC_LEN, 6, WHOLE },
    { "topic far past the end", F_TOPIC_LEN, 0xffff, WHOLE },
    { "topic over its limit", F_TOPIC_LEN, WS_BUS_MAX_TOPIC + 1,
      WS_BUS_HEADER + WS_BUS_MAX_TOPIC + 10 },
    { "data over its limit", F_TOPIC_LEN, WS_BUS_MAX_TOPIC,
      WS_BUS_MAX_DATAGRAM + 1 },
    { "pid 0", F_PID, 0, WHOLE },
    { "pid over INT_MAX", F_PID, 0x80000000u, WHOLE },
};

START_TEST(parse_refuses_malformed)
{
    static unsigned char buf[WS_BUS_MAX_DATAGRAM + 2];
    size_t len = malformed_cases[_i].len;
    unsigned char *fenced;
    ws_bus_frame_t f;

    memset(buf, 'x', sizeof(buf));
    ck_assert_uint_eq(ws_bus_frame(buf, sizeof(buf), 10, 0, "ab", 2, 1,
                                   "xyz", 3), WS_BUS_HEADER + 5);
    if (len == WHOLE)
        len = WS_BUS_HEADER + 5;
    switch (malformed_cases[_i].field) {
    case F_VERSION:
        buf[0] = (unsigned char)malformed_cases[_i].value;
        break;
    case F_TOPIC_LEN:
        put_be(buf + 2, malformed_cases[_i].value, 2);
        break;
    case F_PID:
        put_be(buf + 4, malformed_cases[_i].value, 4);
        break;
    }
    fenced = fence_mem(buf, len);
    ck_assert_msg(ws_bus_parse(fenced, len, &f) == -1, "%s parsed",
                  malformed_cases[_i].name);
    fence_mem_free(fenced, len);
}
END_TEST

START_TEST(frame_refuses_what_cannot_be_sent)
{
    static unsigned char buf[WS_BUS_MAX_DATAGRAM + 2];
    static char topic[WS_BUS_MAX_TOPIC + 1];
    static unsigned char data[WS_BUS_MAX_MESSAGE + 1];

    memset(topic, 't', sizeof(topic));
    ck_assert_uint_eq(ws_bus_frame(buf, sizeof(buf), 1, 0, topic, 0, 0,
                                   "", 0), 0);
    ck_assert_uint_eq(ws_bus_frame(buf, sizeof(buf), 1, 0, topic,
                                   WS_BUS_MAX_TOPIC + 1, 0, "", 0), 0);
    ck_assert_uint_eq(ws_bus_frame(buf, sizeof(buf), 1, 0, topic, 1, 0, data,
                                   WS_BUS_MAX_MESSAGE + 1), 0);
    ck_assert_uint_eq(ws_bus_frame(buf, WS_BUS_HEADER, 1, 0, topic, 1, 0,
                                   "", 0), 0);
    ck_assert_uint_eq(ws_bus_frame(buf, sizeof(buf), 1, 0, topic,
                                   WS_BUS_MAX_TOPIC, 0, data,
                                   WS_BUS_MAX_MESSAGE), WS_BUS_MAX_DATAGRAM);
}
END_TEST

/* ---- one process ---- */

/* Datagrams that are not ours are dropped and counted; the valid one sent
 * last (Unix datagrams keep their order) still comes through. */
START_TEST(bus_drops_malformed_datagrams)
{
    static unsigned char bad[WS_BUS_MAX_DATAGRAM + 1];
    unsigned char good[64];
    msg_head_t h = { 0, 7 };
    ws_bus_t *b = open_bus();
    ws_bus_stats_t st;
    char path[128];
    size_t n;

    n = ws_bus_frame(good, sizeof(good), 12345, 0, TOPIC, strlen(TOPIC), 7,
                     &h, sizeof(h));
    ck_assert_uint_gt(n, 0);
    raw_send(good, 0);
    raw_send(good, WS_BUS_HEADER - 1);
    memcpy(bad, good, n);
    bad[0] = 2;
    raw_send(bad, n);
    memcpy(bad, good, n);
    put_be(bad + 2, 200, 2);
    raw_send(bad, n);
    memcpy(bad, good, n);
    put_be(bad + 4, 0, 4);
    raw_send(bad, n);
    memcpy(bad, good, n);
    put_be(bad + 4, (uint64_t)getpid(), 4);
    raw_send(bad, n);
    /* The largest valid datagram and one byte more. */
    memset(bad, 0, sizeof(bad));
    memcpy(bad, good, WS_BUS_HEADER);
    put_be(bad + 2, WS_BUS_MAX_TOPIC, 2);
    raw_send(bad, sizeof(bad));
    raw_send(good, n);

    ck_assert(WAIT_UNTIL(rx_total() == 1, WAIT_MS));
    st = stats(b);
    ck_assert_uint_eq(st.malformed, 7);
    ck_assert_uint_eq(st.received, 1);
    ck_assert_uint_eq(rx.bad, 0);
    ck_assert_uint_eq(rx.type, 7);
    ck_assert_uint_eq(rx.topic_len, strlen(TOPIC));
    ck_assert_uint_eq(rx.len, sizeof(h));
    ck_assert_mem_eq(rx.data, &h, sizeof(h));
    ws_bus_close(b);
    snprintf(path, sizeof(path), "%s/%ld.bus", dir, (long)getpid());
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

START_TEST(bus_publish_refuses_oversized)
{
    static char topic[WS_BUS_MAX_TOPIC + 1];
    static unsigned char data[WS_BUS_MAX_MESSAGE + 1];
    ws_bus_t *b = open_bus();
    ws_bus_stats_t st;

    memset(topic, 't', sizeof(topic));
    errno = 0;
    ck_assert_int_eq(ws_bus_publish(b, topic, 1, 0, data,
                                    WS_BUS_MAX_MESSAGE + 1), -1);
    ck_assert_int_eq(errno, EMSGSIZE);
    errno = 0;
    ck_assert_int_eq(ws_bus_publish(b, topic, WS_BUS_MAX_TOPIC + 1, 0, data,
                                    1), -1);
    ck_assert_int_eq(errno, EMSGSIZE);
    errno = 0;
    ck_assert_int_eq(ws_bus_publish(b, topic, 0, 0, data, 1), -1);
    ck_assert_int_eq(errno, EMSGSIZE);
    ck_assert_int_eq(ws_bus_publish(b, topic, WS_BUS_MAX_TOPIC, 0, data,
                                    WS_BUS_MAX_MESSAGE), 0);
    st = stats(b);
    ck_assert_uint_eq(st.published, 1);
    ck_assert_uint_eq(st.dropped_queue, 0);
    ws_bus_close(b);
}
END_TEST

/* With the bus thread held in a deliver callback, publishing fills the
 * queue to WS_BUS_MAX_QUEUED exactly, then is refused and counted, and
 * never waits; once the thread runs again, the queue empties. */
START_TEST(bus_queue_cap_refuses_and_counts)
{
    size_t total = WS_BUS_HEADER + strlen(TOPIC) + WS_BUS_MAX_MESSAGE;
    uint32_t i, ok = 0, refused = 0, expect = WS_BUS_MAX_QUEUED / total;
    unsigned char good[64];
    msg_head_t h = { 0, 7 };
    int64_t t, max_us = 0;
    ws_bus_stats_t st;
    ws_bus_t *b;

    rx_init(1, -1);
    b = open_bus();
    raw_send(good, ws_bus_frame(good, sizeof(good), 12345, 0, TOPIC,
                                strlen(TOPIC), 7, &h, sizeof(h)));
    ck_assert(WAIT_UNTIL(rx_stalled(), WAIT_MS));
    for (i = 0; i < expect + 10; i++) {
        t = now_us();
        errno = 0;
        if (publish(b, 0, i, WS_BUS_MAX_MESSAGE) == 0) {
            ok++;
        }
        else {
            ck_assert_int_eq(errno, ENOBUFS);
            refused++;
        }
        t = now_us() - t;
        max_us = t > max_us ? t : max_us;
    }
    st = stats(b);
    ck_assert_uint_eq(ok, expect);
    ck_assert_uint_eq(refused, 10);
    ck_assert_uint_eq(st.dropped_queue, 10);
    ck_assert_uint_eq(st.published, expect);
    ck_assert_uint_eq(st.queued_bytes, (uint64_t)expect * total);
    printf("queue cap: %u messages of %zu bytes queued, 10 refused; "
           "slowest publish %lld us\n", ok, total, (long long)max_us);
    rx_resume();
    ck_assert(WAIT_UNTIL(stats(b).queued_bytes == 0, WAIT_MS));
    ck_assert_int_eq(publish(b, 0, i, WS_BUS_MAX_MESSAGE), 0);
    ws_bus_close(b);
}
END_TEST

START_TEST(bus_open_refuses_a_path_too_long)
{
    char longdir[160], err[256] = "";

    memset(longdir, 'a', sizeof(longdir));
    memcpy(longdir, dir, strlen(dir));
    longdir[strlen(dir)] = '/';
    longdir[sizeof(longdir) - 1] = '\0';
    ck_assert_ptr_null(ws_bus_open(longdir, deliver, &rx, err, sizeof(err)));
    ck_assert_msg(strstr(err, "longer than") != NULL, "%s", err);
    ck_assert_int_ne(access(longdir, F_OK), 0);
}
END_TEST

/* A socket file with our pid is a dead process's and is replaced; a live
 * one is another bus of ours and is not. */
START_TEST(bus_open_replaces_a_stale_socket_not_a_live_one)
{
    char path[128], file[128], err[256] = "";
    struct stat st;
    ws_bus_t *b;
    int fd;

    snprintf(path, sizeof(path), "%s/%ld.bus", dir, (long)getpid());
    dead_socket(path);
    b = open_bus();
    ck_assert_ptr_null(ws_bus_open(dir, deliver, &rx, err, sizeof(err)));
    ck_assert_msg(strstr(err, "already open") != NULL, "%s", err);
    ck_assert_int_eq(stat(path, &st), 0);
    ws_bus_close(b);
    ck_assert_int_ne(access(path, F_OK), 0);

    snprintf(file, sizeof(file), "%s/file", dir);
    fd = open(file, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_ptr_null(ws_bus_open(file, deliver, &rx, err, sizeof(err)));
    ck_assert_msg(strstr(err, "not a directory") != NULL, "%s", err);
}
END_TEST

/* The parent's helper: a 0700 directory owned by the children's user,
 * with the sockets of dead processes removed and nothing else touched. */
START_TEST(bus_prepare_dir_creates_owns_and_sweeps)
{
    char sub[96], link[96], path[160], err[256] = "";
    struct stat st;
    pid_t dead;
    int fd, status;

    snprintf(sub, sizeof(sub), "%s/run", dir);
    ck_assert_int_eq(ws_bus_prepare_dir(sub, getuid(), getgid(), err,
                                        sizeof(err)), 0);
    ck_assert_int_eq(lstat(sub, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    ck_assert_uint_eq(st.st_uid, getuid());
    ck_assert_int_eq(chmod(sub, 0755), 0);

    dead = fork();
    ck_assert_int_ge(dead, 0);
    if (dead == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(dead, &status, 0), dead);
    snprintf(path, sizeof(path), "%s/%ld.bus", sub, (long)dead);
    dead_socket(path);
    snprintf(path, sizeof(path), "%s/%ld.bus", sub, (long)getpid());
    dead_socket(path);
    snprintf(path, sizeof(path), "%s/foo.bus", sub);
    dead_socket(path);
    snprintf(path, sizeof(path), "%s/99999999.bus", sub);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);

    ck_assert_int_eq(ws_bus_prepare_dir(sub, (uid_t)-1, (gid_t)-1, err,
                                        sizeof(err)), 0);
    ck_assert_int_eq(lstat(sub, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    snprintf(path, sizeof(path), "%s/%ld.bus", sub, (long)dead);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(entries(sub), 3);

    if (geteuid() == 0) {
        ck_assert_int_eq(ws_bus_prepare_dir(sub, 65534, 65534, err,
                                            sizeof(err)), 0);
        ck_assert_int_eq(lstat(sub, &st), 0);
        ck_assert_uint_eq(st.st_uid, 65534);
        ck_assert_uint_eq(st.st_gid, 65534);
    }

    snprintf(link, sizeof(link), "%s/link", dir);
    ck_assert_int_eq(symlink(sub, link), 0);
    ck_assert_int_eq(ws_bus_prepare_dir(link, getuid(), getgid(), err,
                                        sizeof(err)), -1);
    ck_assert_msg(strstr(err, "not a directory") != NULL, "%s", err);
    snprintf(path, sizeof(path), "%s/99999999.bus", sub);
    ck_assert_int_eq(ws_bus_prepare_dir(path, getuid(), getgid(), err,
                                        sizeof(err)), -1);
}
END_TEST

/* ---- several processes ---- */

static const struct {
    int procs;
    uint32_t n;
    size_t size;
} mesh_cases[] = {
    { 2, 5000, 64 },
    { 4, 1000, 1024 },
    { 6, 100, 16 * 1024 },
};

/* Each process publishes n messages at once; every other one receives
 * each exactly once, in its publisher's order. Each publisher's total
 * stays below WS_BUS_PEER_BACKLOG, so nothing may be dropped. */
START_TEST(bus_every_process_gets_every_message_once_in_order)
{
    int procs = mesh_cases[_i].procs, p, q;
    uint32_t n = mesh_cases[_i].n;
    kid_report_t r[MAXP];
    int64_t t, max_us = 0;
    uint64_t waits = 0;
    kid_t *k[MAXP];

    for (p = 0; p < procs; p++) {
        kid_conf_t c = { .id = (uint32_t)p, .n_msgs = n,
                         .size = mesh_cases[_i].size };
        k[p] = kid_spawn(&c);
    }
    t = now_ms();
    for (p = 0; p < procs; p++)
        kid_cmd(k[p], 'P');
    for (p = 0; p < procs; p++)
        kid_report(k[p], (uint32_t)(procs - 1) * n, 0, 0, &r[p]);
    t = now_ms() - t;
    for (p = 0; p < procs; p++) {
        ck_assert_int_ge(r[p].wait_ms, 0);
        ck_assert_uint_eq(r[p].total, (uint32_t)(procs - 1) * n);
        ck_assert_uint_eq(r[p].gaps, 0);
        ck_assert_uint_eq(r[p].disorder, 0);
        ck_assert_uint_eq(r[p].bad, 0);
        for (q = 0; q < procs; q++) {
            ck_assert_uint_eq(r[p].count[q], q == p ? 0 : n);
            if (q != p) {
                ck_assert_uint_eq(r[p].first[q], 0);
                ck_assert_uint_eq(r[p].last[q], n - 1);
            }
        }
        max_us = r[p].publish_max_us > max_us ? r[p].publish_max_us : max_us;
    }
    /* Everyone has everything; each kid's counters once its last send is
     * counted. */
    for (p = 0; p < procs; p++) {
        kid_report(k[p], 0, 0, 1, &r[p]);
        ck_assert_int_ge(r[p].wait_ms, 0);
        ck_assert_uint_eq(r[p].st.published, n);
        ck_assert_uint_eq(r[p].st.sent, (uint64_t)n * (procs - 1));
        ck_assert_uint_eq(r[p].st.received, (uint64_t)n * (procs - 1));
        ck_assert_uint_eq(r[p].st.dropped_queue, 0);
        ck_assert_uint_eq(r[p].st.dropped_peer, 0);
        ck_assert_uint_eq(r[p].st.malformed, 0);
        ck_assert_uint_eq(r[p].st.peers, (uint64_t)procs - 1);
        ck_assert_uint_eq(r[p].st.queued_bytes, 0);
        waits += r[p].st.waits;
    }
    printf("mesh: %d processes x %u messages of %zu bytes: all delivered "
           "once, in order, in %lld ms; %llu sends waited for room; "
           "slowest publish %lld us\n", procs, n, mesh_cases[_i].size,
           (long long)t, (unsigned long long)waits, (long long)max_us);
    for (p = 0; p < procs; p++)
        kid_quit(k[p]);
    ck_assert_int_eq(entries(dir), 0);
}
END_TEST

/* A process that dies without closing leaves its socket; the next send
 * to it is refused, and the peer and (its pid being free) its file go.
 * The other peers do not notice. */
START_TEST(bus_drops_a_crashed_peer_and_its_file)
{
    kid_conf_t ca = { .id = 1 }, cc = { .id = 2 };
    kid_t *a = kid_spawn(&ca), *c = kid_spawn(&cc);
    char path[128];
    kid_report_t r;
    ws_bus_stats_t st;
    ws_bus_t *b;
    uint32_t i;
    int status;

    kid_path(a, path, sizeof(path));
    kid_cmd(a, 'X');
    status = kid_reap(a, WAIT_MS);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(access(path, F_OK), 0);

    b = open_bus();
    for (i = 0; i < 10; i++)
        ck_assert_int_eq(publish(b, 0, i, 100), 0);
    ck_assert(WAIT_UNTIL(stats(b).peers_gone == 1, WAIT_MS));
    ck_assert(WAIT_UNTIL(access(path, F_OK) != 0, WAIT_MS));
    kid_report(c, 10, 0, 0, &r);
    ck_assert_uint_eq(r.count[0], 10);
    ck_assert_uint_eq(r.gaps + r.disorder + r.bad, 0);
    ck_assert(WAIT_UNTIL(stats(b).sent == 10, WAIT_MS));
    st = stats(b);
    ck_assert_uint_eq(st.peers, 1);
    ck_assert_uint_eq(st.peers_gone, 1);
    ws_bus_close(b);
    kid_quit(c);
}
END_TEST

/* While the dead process is a zombie its pid exists, so its file stays
 * (it might be someone else's); once it is reaped, the next look at the
 * directory removes it. */
START_TEST(bus_removes_a_zombies_file_once_reaped)
{
    kid_conf_t ca = { .id = 1 }, cd = { .id = 2, .open_later = 1 };
    kid_t *a = kid_spawn(&ca), *d = kid_spawn(&cd);
    char path[128], ch;
    siginfo_t si;
    kid_report_t r;
    ws_bus_t *b;

    kid_path(a, path, sizeof(path));
    kid_cmd(a, 'X');
    memset(&si, 0, sizeof(si));
    ck_assert(WAIT_UNTIL(waitid(P_PID, (id_t)a->pid, &si,
                                WEXITED | WNOHANG | WNOWAIT) == 0
                         && si.si_pid == a->pid, WAIT_MS));

    b = open_bus();
    ck_assert_int_eq(publish(b, 0, 0, 100), 0);
    ck_assert(WAIT_UNTIL(stats(b).peers_gone == 1, WAIT_MS));
    ck_assert_int_eq(access(path, F_OK), 0);
    ck_assert_uint_eq(stats(b).peers, 0);

    kid_reap(a, WAIT_MS);
    kid_cmd(d, 'O');
    ck_assert_int_eq(read_full(d->rep, &ch, 1, WAIT_MS), 0);
    ck_assert_int_eq(publish(b, 0, 1, 100), 0);
    ck_assert(WAIT_UNTIL(access(path, F_OK) != 0, WAIT_MS));
    kid_report(d, 1, 1, 0, &r);
    ck_assert_uint_eq(r.count[0], 1);
    ck_assert_uint_eq(stats(b).peers, 1);
    ck_assert_uint_eq(stats(b).peers_gone, 1);
    ws_bus_close(b);
    kid_quit(d);
}
END_TEST

/* A peer that stops reading for a while: the publisher never waits, keeps
 * what the peer's socket cannot take, and sends it all once the peer reads
 * again. */
START_TEST(bus_keeps_a_backlog_for_a_slow_peer)
{
    kid_conf_t cr = { .id = 1, .stall = 1 };
    kid_t *k = kid_spawn(&cr);
    uint32_t i, n = 1000;
    int64_t t, max_us = 0;
    ws_bus_stats_t st;
    kid_report_t r;
    ws_bus_t *b;
    char ch;

    b = open_bus();
    ck_assert_int_eq(publish(b, 0, 0, 512), 0);
    ck_assert_int_eq(read_full(k->rep, &ch, 1, WAIT_MS), 0);
    ck_assert_int_eq(ch, 'B');
    for (i = 1; i < n; i++) {
        t = now_us();
        ck_assert_int_eq(publish(b, 0, i, 512), 0);
        t = now_us() - t;
        max_us = t > max_us ? t : max_us;
    }
    ck_assert(WAIT_UNTIL(stats(b).waits > 0, WAIT_MS));
    usleep(300 * 1000);
    st = stats(b);
    ck_assert_uint_lt(st.sent, n);
    ck_assert_uint_gt(st.queued_bytes, 0);
    ck_assert_uint_eq(st.dropped_peer, 0);

    t = now_ms();
    kid_cmd(k, 'S');
    kid_report(k, n, 0, 0, &r);
    t = now_ms() - t;
    ck_assert_uint_eq(r.count[0], n);
    ck_assert_uint_eq(r.gaps + r.disorder + r.bad, 0);
    ck_assert(WAIT_UNTIL(stats(b).queued_bytes == 0, WAIT_MS));
    printf("slow peer: %llu of %u sent while it was stopped (%llu waits); "
           "the rest %lld ms after it read again; slowest publish %lld "
           "us\n", (unsigned long long)st.sent, n,
           (unsigned long long)st.waits, (long long)t, (long long)max_us);
    st = stats(b);
    ck_assert_uint_eq(st.sent, n);
    ck_assert_uint_eq(st.dropped_peer, 0);
    ws_bus_close(b);
    kid_quit(k);
}
END_TEST

/* A peer stopped for longer than its backlog holds loses its oldest
 * messages, counted; what it gets is in order and ends with the last. */
START_TEST(bus_peer_backlog_cap_drops_the_oldest)
{
    kid_conf_t cr = { .id = 1, .stall = 1 };
    kid_t *k = kid_spawn(&cr);
    uint32_t i, n = 80, ok = 1, last_ok = 0;
    size_t size = 60 * 1024;
    ws_bus_stats_t st;
    kid_report_t r;
    ws_bus_t *b;
    char ch;

    b = open_bus();
    ck_assert_int_eq(publish(b, 0, 0, size), 0);
    ck_assert_int_eq(read_full(k->rep, &ch, 1, WAIT_MS), 0);
    for (i = 1; i < n; i++) {
        errno = 0;
        if (publish(b, 0, i, size) == 0) {
            ok++;
            last_ok = i;
        }
        else {
            ck_assert_int_eq(errno, ENOBUFS);
        }
    }
    ck_assert(WAIT_UNTIL(stats(b).dropped_peer > 0, WAIT_MS));
    kid_cmd(k, 'S');
    kid_report(k, 0, last_ok, 0, &r);
    ck_assert_int_ge(r.wait_ms, 0);
    ck_assert(WAIT_UNTIL(stats(b).queued_bytes == 0, WAIT_MS));
    st = stats(b);
    ck_assert_uint_eq(r.last[0], last_ok);
    ck_assert_uint_eq(r.disorder + r.bad, 0);
    ck_assert_uint_eq(r.count[0] + st.dropped_peer, ok);
    ck_assert_uint_eq(st.sent, r.count[0]);
    printf("backlog cap: %u messages of %zu bytes to a stopped peer: "
           "%u received (first %u, %u gaps), %llu dropped\n", ok, size,
           r.count[0], r.first[0], r.gaps,
           (unsigned long long)st.dropped_peer);
    ws_bus_close(b);
    kid_quit(k);
}
END_TEST

/* A process that joins while another publishes receives every message
 * published after its socket was bound: found by the directory's mtime,
 * even when it binds within the clock tick of the publisher's last look. */
START_TEST(bus_late_joiner_gets_what_follows)
{
    kid_conf_t cj = { .id = 1, .open_later = 1 };
    kid_t *j = kid_spawn(&cj);
    struct pollfd pfd = { j->rep, POLLIN, 0 };
    uint32_t i = 0, first_after = 0;
    int64_t until = now_ms() + WAIT_MS;
    int joined = 0;
    kid_report_t r;
    ws_bus_t *b;
    char ch;

    b = open_bus();
    while (now_ms() < until) {
        if (i == 50)
            kid_cmd(j, 'O');
        if (!joined && poll(&pfd, 1, 0) == 1) {
            ck_assert_int_eq(read_full(j->rep, &ch, 1, WAIT_MS), 0);
            joined = 1;
            first_after = i;
        }
        ck_assert_int_eq(publish(b, 0, i, 64), 0);
        if (joined && i >= first_after + 100)
            break;
        i++;
        usleep(200);
    }
    ck_assert(joined);
    kid_report(j, 0, i, 0, &r);
    ck_assert_int_ge(r.wait_ms, 0);
    ck_assert_uint_le(r.first[0], first_after);
    ck_assert_uint_eq(r.last[0], i);
    ck_assert_uint_eq(r.count[0], i - r.first[0] + 1);
    ck_assert_uint_eq(r.gaps + r.disorder + r.bad, 0);
    printf("late joiner: joined before message %u, received %u..%u\n",
           first_after, r.first[0], r.last[0]);
    ws_bus_close(b);
    kid_quit(j);
}
END_TEST

static Suite *ws_bus_suite(void)
{
    Suite *s = suite_create("ws_bus");
    TCase *tc = tcase_create("frame");

    tcase_add_loop_test(tc, frame_round_trip, 0,
                        sizeof(frame_cases) / sizeof(frame_cases[0]));
    tcase_add_loop_test(tc, parse_refuses_malformed, 0,
                        sizeof(malformed_cases) / sizeof(malformed_cases[0]));
    tcase_add_test(tc, frame_refuses_what_cannot_be_sent);
    suite_add_tcase(s, tc);

    tc = tcase_create("bus");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, bus_drops_malformed_datagrams);
    tcase_add_test(tc, bus_publish_refuses_oversized);
    tcase_add_test(tc, bus_queue_cap_refuses_and_counts);
    tcase_add_test(tc, bus_open_refuses_a_path_too_long);
    tcase_add_test(tc, bus_open_replaces_a_stale_socket_not_a_live_one);
    tcase_add_test(tc, bus_prepare_dir_creates_owns_and_sweeps);
    tcase_add_loop_test(tc, bus_every_process_gets_every_message_once_in_order,
                        0, sizeof(mesh_cases) / sizeof(mesh_cases[0]));
    tcase_add_test(tc, bus_drops_a_crashed_peer_and_its_file);
    tcase_add_test(tc, bus_removes_a_zombies_file_once_reaped);
    tcase_add_test(tc, bus_keeps_a_backlog_for_a_slow_peer);
    tcase_add_test(tc, bus_peer_backlog_cap_drops_the_oldest);
    tcase_add_test(tc, bus_late_joiner_gets_what_follows);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ws_bus_suite)
