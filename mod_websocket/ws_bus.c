/* ws_bus.c: the message bus among the processes that share a directory
 * (see ws_bus.h), with its datagram format and its one thread per process.
 *
 * It must never block a publisher: ws_bus_publish() only frames and
 * queues; the bus thread does every send, every receive and every look at
 * the directory. It knows nothing of httpd and never logs: what went wrong
 * shows in the counters.
 *
 * Sending. The bus thread sends each message to every peer from the
 * peer's backlog, in order, with sendto() on its own bound socket. A peer
 * whose socket queue is full (EAGAIN) keeps its backlog. No poll on our
 * socket says when a remote queue has room, but on a socket connected to
 * that peer it does: Linux reports POLLOUT on a connected datagram socket
 * only while its peer's queue has room, and wakes the poller when it gets
 * some (the peer_wake code in af_unix.c). So a peer that is full gets a
 * socket connected to it for as long as its backlog lasts, and the thread
 * sleeps until that socket is writable, rather than retrying on a timer
 * and, as Linux queues only net.unix.max_dgram_qlen (10) datagrams per
 * socket, moving a dozen datagrams per tick. Such sockets cost a
 * descriptor each, in an httpd child, so at most MAX_WATCHED exist; beyond
 * them, or if one cannot be made, the peer is retried every RETRY_MS.
 *
 * Peers. The thread lists <dir>/<pid>.bus again when the directory's mtime
 * changed since it last looked, checking once per batch of messages to
 * send. Directory times may come from a coarse clock (a jiffy, up to
 * 10 ms; Linux 6.13's fine-grained timestamps are not everywhere), so a
 * socket bound within the same tick as the change we last saw would leave
 * the mtime as it was: a look taken less than SETTLE_NS after that change
 * is not trusted, and the next batch looks again. New peers get the
 * messages not yet handed out when they are found, so a process receives
 * all that is published after its socket was bound.
 *
 * Dead peers. A peer whose socket is dead (ECONNREFUSED: it exited without
 * ws_bus_close(), it crashed) or gone (ENOENT) is dropped with its
 * backlog. Its socket file is removed if no process has its pid any more
 * (kill(pid, 0) gives ESRCH) and the file is still the one that refused
 * (same inode). If the pid lives (a zombie not reaped yet, or an unrelated
 * process that got the pid) the file stays: the peer stays listed as dead,
 * not tried while the file is the same, and the file is removed by a later
 * look once the pid is free, or by whoever gets the pid next when it opens
 * a bus. A new file under a known pid (a new inode) is a new process: a
 * new peer. What is left: between our kill() and our unlink() the pid
 * could be reused and its new owner bind a socket there, which we would
 * remove; that needs the pid space to wrap around within microseconds.
 *
 * Memory. A framed message is one malloc'd block shared by the backlogs
 * of every peer it waits for, counted by the bus thread alone. The bytes
 * held, counted once per message, are what WS_BUS_MAX_QUEUED caps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ws_bus.h"

/* Asked for both socket buffers. On Linux only SO_SNDBUF counts for Unix
 * datagrams: a datagram is charged to its sender until read, and the
 * receiver's limit is net.unix.max_dgram_qlen datagrams, not bytes. The
 * kernel caps the request at net.core.wmem_max (rmem_max) and doubles it;
 * a capped buffer still holds several WS_BUS_MAX_DATAGRAMs. */
#define SOCKET_BUFFER   (4 * 1024 * 1024)

#define RETRY_MS        10      /* a full peer without a connected socket */
#define WATCH_SAFETY_MS 1000    /* a full peer with one: in case a wake-up
                                   is ever missed */
#define MAX_WATCHED     32
#define RECV_BATCH      256     /* datagrams read before sending again */
#define SETTLE_NS       (100 * 1000000LL)

#define SUFFIX          ".bus"

typedef struct bus_msg {
    struct bus_msg *next;   /* in the publish queue (under lock) */
    unsigned refs;          /* backlogs holding it (bus thread) */
    size_t len;
    unsigned char data[];
} bus_msg;

/* A peer: owned by the bus thread. */
typedef struct {
    pid_t pid;
    ino_t ino;              /* its socket file when found */
    int dead;               /* refused us: not tried while ino is there */
    int fd;                 /* connected to it while it is full, or -1 */
    struct sockaddr_un addr;
    socklen_t addrlen;
    bus_msg **ring;         /* its backlog, oldest at head */
    size_t ring_cap, head, count, bytes;
} bus_peer;

struct ws_bus {
    ws_bus_deliver_fn deliver;
    void *ctx;
    pid_t pid;
    int fd;                     /* our bound socket */
    ino_t ino;                  /* its file */
    int wake[2];                /* a pipe: publishers wake the thread */
    pthread_t thread;
    char *dir;
    struct sockaddr_un addr;

    pthread_mutex_t lock;
    bus_msg *q_head, *q_tail;   /* published, not taken yet (under lock) */
    uint64_t seq;               /* (under lock) */
    int woken;                  /* a wake byte is on its way (under lock) */
    int stop;                   /* (under lock) */

    bus_peer **peers;           /* bus thread only, from here on */
    size_t npeers;
    int scanned;
    struct timespec dir_mtime;  /* when last listed */
    struct timespec scanned_at;
    unsigned nwatched;
    unsigned char *rbuf;        /* WS_BUS_MAX_DATAGRAM + 1 */

    ws_bus_stats_t st;          /* each field atomic */
};

#define COUNT(b, field, n) \
    __atomic_add_fetch(&(b)->st.field, (n), __ATOMIC_RELAXED)

/* ---- the datagram ---- */

static void put16(unsigned char *pos, uint16_t v)
{
    pos[0] = (unsigned char)(v >> 8);
    pos[1] = (unsigned char)v;
}

static void put32(unsigned char *pos, uint32_t v)
{
    put16(pos, (uint16_t)(v >> 16));
    put16(pos + 2, (uint16_t)v);
}

static void put64(unsigned char *pos, uint64_t v)
{
    put32(pos, (uint32_t)(v >> 32));
    put32(pos + 4, (uint32_t)v);
}

static uint16_t get16(const unsigned char *pos)
{
    return (uint16_t)(pos[0] << 8 | pos[1]);
}

static uint32_t get32(const unsigned char *pos)
{
    return (uint32_t)get16(pos) << 16 | get16(pos + 2);
}

static uint64_t get64(const unsigned char *pos)
{
    return (uint64_t)get32(pos) << 32 | get32(pos + 4);
}

int ws_bus_parse(const void *buf, size_t len, ws_bus_frame_t *f)
{
    const unsigned char *pos = buf;
    size_t topic_len;
    uint32_t pid;

    if (len < WS_BUS_HEADER || pos[0] != WS_BUS_VERSION)
        return -1;
    topic_len = get16(pos + 2);
    pid = get32(pos + 4);
    if (topic_len == 0 || topic_len > WS_BUS_MAX_TOPIC
        || topic_len > len - WS_BUS_HEADER
        || len - WS_BUS_HEADER - topic_len > WS_BUS_MAX_MESSAGE
        || pid == 0 || pid > INT_MAX)
        return -1;
    f->type = pos[1];
    f->pid = pid;
    f->seq = get64(pos + 8);
    f->topic = (const char *)pos + WS_BUS_HEADER;
    f->topic_len = topic_len;
    f->data = pos + WS_BUS_HEADER + topic_len;
    f->len = len - WS_BUS_HEADER - topic_len;
    return 0;
}

size_t ws_bus_frame(void *buf, size_t cap, uint32_t pid, uint64_t seq,
                    const char *topic, size_t topic_len, uint8_t type,
                    const void *data, size_t len)
{
    unsigned char *pos = buf;

    if (topic_len == 0 || topic_len > WS_BUS_MAX_TOPIC
        || len > WS_BUS_MAX_MESSAGE
        || cap < WS_BUS_HEADER + topic_len + len)
        return 0;
    pos[0] = WS_BUS_VERSION;
    pos[1] = type;
    put16(pos + 2, (uint16_t)topic_len);
    put32(pos + 4, pid);
    put64(pos + 8, seq);
    memcpy(pos + WS_BUS_HEADER, topic, topic_len);
    if (len)
        memcpy(pos + WS_BUS_HEADER + topic_len, data, len);
    return WS_BUS_HEADER + topic_len + len;
}

/* ---- the directory ---- */

/* The pid in a socket's name "<pid>.bus", or 0 if it is not one. */
static pid_t name_pid(const char *name)
{
    const char *pos = name;
    long pid = 0;

    if (*pos < '1' || *pos > '9')
        return 0;
    for (; *pos >= '0' && *pos <= '9'; pos++) {
        pid = pid * 10 + (*pos - '0');
        if (pid > INT_MAX)
            return 0;
    }
    return strcmp(pos, SUFFIX) == 0 ? (pid_t)pid : 0;
}

static int pid_gone(pid_t pid)
{
    return kill(pid, 0) != 0 && errno == ESRCH;
}

static void set_err(char *err, size_t errlen, const char *what,
                    const char *path, int e)
{
    if (errlen)
        snprintf(err, errlen, "bus: %s %s: %s", what, path, strerror(e));
}

int ws_bus_prepare_dir(const char *dir, uid_t uid, gid_t gid, char *err,
                       size_t errlen)
{
    struct dirent *de;
    struct stat st;
    DIR *d = NULL;
    int fd = -1, rv = -1;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        set_err(err, errlen, "cannot create", dir, errno);
        goto out;
    }
    /* Through a descriptor that is surely the directory itself, not a
     * symlink someone put in its place. */
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "not a directory:", dir, errno);
        goto out;
    }
    if (fchown(fd, uid, gid) != 0 || fchmod(fd, 0700) != 0) {
        set_err(err, errlen, "cannot give the children", dir, errno);
        goto out;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        set_err(err, errlen, "cannot list", dir, errno);
        goto out;
    }
    fd = -1;
    while ((de = readdir(d)) != NULL) {
        pid_t pid = name_pid(de->d_name);

        if (pid && fstatat(dirfd(d), de->d_name, &st,
                           AT_SYMLINK_NOFOLLOW) == 0
            && S_ISSOCK(st.st_mode) && pid_gone(pid))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    rv = 0;
out:
    if (d)
        closedir(d);
    if (fd >= 0)
        close(fd);
    return rv;
}

/* ---- peers and their backlogs ---- */

static void msg_release(ws_bus_t *b, bus_msg *m)
{
    if (--m->refs == 0) {
        __atomic_sub_fetch(&b->st.queued_bytes, m->len, __ATOMIC_RELAXED);
        free(m);
    }
}

static bus_msg *peer_pop(bus_peer *p)
{
    bus_msg *m = p->ring[p->head];

    p->head = (p->head + 1) & (p->ring_cap - 1);
    p->count--;
    p->bytes -= m->len;
    return m;
}

static void peer_unwatch(ws_bus_t *b, bus_peer *p)
{
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
        b->nwatched--;
    }
}

static void peer_clear(ws_bus_t *b, bus_peer *p)
{
    while (p->count)
        msg_release(b, peer_pop(p));
    peer_unwatch(b, p);
}

static void peer_free(ws_bus_t *b, bus_peer *p)
{
    peer_clear(b, p);
    free(p->ring);
    free(p);
}

/* Append m to p's backlog, then drop the oldest while it is over its cap. */
static void peer_push(ws_bus_t *b, bus_peer *p, bus_msg *m)
{
    if (p->count == p->ring_cap) {
        size_t cap = p->ring_cap ? 2 * p->ring_cap : 16, i;
        bus_msg **ring = malloc(cap * sizeof(*ring));

        if (ring == NULL) {
            COUNT(b, dropped_peer, 1);
            return;
        }
        for (i = 0; i < p->count; i++)
            ring[i] = p->ring[(p->head + i) & (p->ring_cap - 1)];
        free(p->ring);
        p->ring = ring;
        p->ring_cap = cap;
        p->head = 0;
    }
    p->ring[(p->head + p->count) & (p->ring_cap - 1)] = m;
    p->count++;
    p->bytes += m->len;
    m->refs++;
    while (p->bytes > WS_BUS_PEER_BACKLOG && p->count > 1) {
        msg_release(b, peer_pop(p));
        COUNT(b, dropped_peer, 1);
    }
}

static void set_buffers(int fd)
{
    int size = SOCKET_BUFFER;

    /* Best effort: a smaller buffer only means more waits. */
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* p's socket is dead or gone: drop it and, when that is safe (see the top
 * of the file), its socket file. */
static void peer_lost(ws_bus_t *b, bus_peer *p, int e)
{
    struct stat st;

    peer_clear(b, p);
    p->dead = 1;
    COUNT(b, peers_gone, 1);
    __atomic_sub_fetch(&b->st.peers, 1, __ATOMIC_RELAXED);
    if (e == ECONNREFUSED && pid_gone(p->pid)
        && lstat(p->addr.sun_path, &st) == 0 && st.st_ino == p->ino)
        unlink(p->addr.sun_path);
}

/* p is full: connect a socket to it, to be told when it has room. Without
 * one (too many, no descriptor) p is retried on a timer. */
static void peer_watch(ws_bus_t *b, bus_peer *p)
{
    int fd;

    if (b->nwatched >= MAX_WATCHED)
        return;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    set_buffers(fd);
    if (connect(fd, (struct sockaddr *)&p->addr, p->addrlen) != 0) {
        int e = errno;

        close(fd);
        if (e == ECONNREFUSED || e == ENOENT)
            peer_lost(b, p, e);
        return;
    }
    p->fd = fd;
    b->nwatched++;
}

/* Send p's backlog until it is empty or p is full. */
static void peer_flush(ws_bus_t *b, bus_peer *p)
{
    while (p->count) {
        bus_msg *m = p->ring[p->head];
        ssize_t n;

        if (p->fd >= 0)
            n = send(p->fd, m->data, m->len, MSG_NOSIGNAL);
        else
            n = sendto(b->fd, m->data, m->len, MSG_NOSIGNAL,
                       (struct sockaddr *)&p->addr, p->addrlen);
        if (n >= 0) {
            /* Counted first: with queued_bytes at 0, sent is final. */
            COUNT(b, sent, 1);
            msg_release(b, peer_pop(p));
            continue;
        }
        switch (errno) {
        case EINTR:
            continue;
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
        case ENOBUFS:
        case ENOMEM:
            COUNT(b, waits, 1);
            if (p->fd < 0)
                peer_watch(b, p);
            return;
        case EMSGSIZE:
            /* Over this socket's send buffer: it will never fit. */
            msg_release(b, peer_pop(p));
            COUNT(b, dropped_peer, 1);
            continue;
        default:
            /* ECONNREFUSED, ENOENT, and whatever else says that this
             * socket will not take datagrams from us (EACCES: another
             * generation's User). */
            peer_lost(b, p, errno);
            return;
        }
    }
    peer_unwatch(b, p);
}

static bus_peer *peer_new(ws_bus_t *b, pid_t pid, ino_t ino)
{
    bus_peer *p = calloc(1, sizeof(*p));
    int n;

    if (p == NULL)
        return NULL;
    p->pid = pid;
    p->ino = ino;
    p->fd = -1;
    p->addr.sun_family = AF_UNIX;
    n = snprintf(p->addr.sun_path, sizeof(p->addr.sun_path), "%s/%ld" SUFFIX,
                 b->dir, (long)pid);
    if (n < 0 || (size_t)n >= sizeof(p->addr.sun_path)) {
        free(p);
        return NULL;
    }
    p->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return p;
}

/* Take the peer we know as pid with socket file ino out of the old list. */
static bus_peer *peer_take(ws_bus_t *b, pid_t pid, ino_t ino)
{
    size_t i;
    bus_peer *p;

    /* Linear: the list changes only when the directory does. */
    for (i = 0; i < b->npeers; i++) {
        p = b->peers[i];
        if (p && p->pid == pid && p->ino == ino) {
            b->peers[i] = NULL;
            return p;
        }
    }
    return NULL;
}

/* List the directory into a new peer list. Peers whose file is gone or
 * was replaced (a new process with the same pid) are freed. Returns -1 if
 * the list may be incomplete. */
static int scan_peers(ws_bus_t *b)
{
    bus_peer **list = NULL, **grown, *p;
    size_t n = 0, cap = 0, i;
    unsigned live = 0;
    struct dirent *de;
    struct stat st;
    int rv = 0;
    DIR *d = opendir(b->dir);

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        pid_t pid = name_pid(de->d_name);

        if (pid == 0 || pid == b->pid
            || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0
            || !S_ISSOCK(st.st_mode))
            continue;
        p = peer_take(b, pid, st.st_ino);
        if (p && p->dead && pid_gone(pid)) {
            unlinkat(dirfd(d), de->d_name, 0);
            peer_free(b, p);
            continue;
        }
        if (p == NULL && (p = peer_new(b, pid, st.st_ino)) == NULL) {
            rv = -1;
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            grown = realloc(list, cap * sizeof(*list));
            if (grown == NULL) {
                peer_free(b, p);
                rv = -1;
                break;
            }
            list = grown;
        }
        list[n++] = p;
        live += !p->dead;
    }
    closedir(d);
    for (i = 0; i < b->npeers; i++)
        if (b->peers[i])
            peer_free(b, b->peers[i]);
    free(b->peers);
    b->peers = list;
    b->npeers = n;
    __atomic_store_n(&b->st.peers, live, __ATOMIC_RELAXED);
    return rv;
}

static int64_t ns_between(const struct timespec *from,
                          const struct timespec *to)
{
    return (int64_t)(to->tv_sec - from->tv_sec) * 1000000000LL
           + (to->tv_nsec - from->tv_nsec);
}

/* Before sending a batch: list the peers again if the directory changed. */
static void refresh_peers(ws_bus_t *b)
{
    struct timespec now;
    struct stat st;

    clock_gettime(CLOCK_REALTIME, &now);
    if (stat(b->dir, &st) != 0)
        return;
    if (b->scanned && st.st_mtim.tv_sec == b->dir_mtime.tv_sec
        && st.st_mtim.tv_nsec == b->dir_mtime.tv_nsec
        && ns_between(&b->dir_mtime, &b->scanned_at) >= SETTLE_NS)
        return;
    b->scanned = scan_peers(b) == 0;
    b->dir_mtime = st.st_mtim;
    b->scanned_at = now;
}

/* ---- the bus thread ---- */

static void receive(ws_bus_t *b)
{
    ws_bus_frame_t f;
    ssize_t n;
    int i;

    for (i = 0; i < RECV_BATCH; i++) {
        /* One byte more than the largest datagram, to see one that is
         * longer. */
        n = recv(b->fd, b->rbuf, WS_BUS_MAX_DATAGRAM + 1, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if ((size_t)n > WS_BUS_MAX_DATAGRAM
            || ws_bus_parse(b->rbuf, (size_t)n, &f) != 0
            || f.pid == (uint32_t)b->pid) {
            COUNT(b, malformed, 1);
            continue;
        }
        COUNT(b, received, 1);
        b->deliver(b->ctx, f.topic, f.topic_len, f.type, f.data, f.len);
    }
}

/* Give each message of a batch to every live peer's backlog. */
static void distribute(ws_bus_t *b, bus_msg *m)
{
    bus_msg *next;
    size_t i;

    for (; m; m = next) {
        next = m->next;
        m->refs = 1;    /* ours, while we hand it out */
        for (i = 0; i < b->npeers; i++)
            if (!b->peers[i]->dead)
                peer_push(b, b->peers[i], m);
        msg_release(b, m);
    }
}

static void *bus_main(void *arg)
{
    ws_bus_t *b = arg;
    struct pollfd pfd[2 + MAX_WATCHED];
    char drain[64];
    bus_msg *batch;
    int stop, timeout;
    nfds_t n;
    size_t i;

    for (;;) {
        pfd[0] = (struct pollfd){ .fd = b->wake[0], .events = POLLIN };
        pfd[1] = (struct pollfd){ .fd = b->fd, .events = POLLIN };
        n = 2;
        timeout = -1;
        for (i = 0; i < b->npeers; i++) {
            bus_peer *p = b->peers[i];

            if (p->dead || p->count == 0)
                continue;
            if (p->fd >= 0 && n < 2 + MAX_WATCHED) {
                pfd[n++] = (struct pollfd){ .fd = p->fd, .events = POLLOUT };
                if (timeout < 0)
                    timeout = WATCH_SAFETY_MS;
            }
            else {
                timeout = RETRY_MS;
            }
        }
        /* Errors and EINTR: the work below does no harm when idle. */
        (void)poll(pfd, n, timeout);
        if (pfd[0].revents)
            while (read(b->wake[0], drain, sizeof(drain)) > 0)
                ;
        if (pfd[1].revents)
            receive(b);

        pthread_mutex_lock(&b->lock);
        batch = b->q_head;
        b->q_head = b->q_tail = NULL;
        b->woken = 0;
        stop = b->stop;
        pthread_mutex_unlock(&b->lock);

        if (batch) {
            refresh_peers(b);
            distribute(b, batch);
        }
        for (i = 0; i < b->npeers; i++)
            if (!b->peers[i]->dead && b->peers[i]->count)
                peer_flush(b, b->peers[i]);
        if (stop)
            return NULL;
    }
}

/* ---- open, publish, close ---- */

static void bus_free(ws_bus_t *b)
{
    size_t i;

    for (i = 0; i < b->npeers; i++)
        peer_free(b, b->peers[i]);
    free(b->peers);
    if (b->fd >= 0)
        close(b->fd);
    if (b->wake[0] >= 0) {
        close(b->wake[0]);
        close(b->wake[1]);
    }
    free(b->rbuf);
    free(b->dir);
    free(b);
}

/* Is a live socket bound at our own path? Only another bus of this process
 * could be. */
static int own_path_live(const struct sockaddr_un *addr, socklen_t len)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), live;

    if (fd < 0)
        return 0;
    live = connect(fd, (const struct sockaddr *)addr, len) == 0;
    close(fd);
    return live;
}

ws_bus_t *ws_bus_open(const char *dir, ws_bus_deliver_fn deliver, void *ctx,
                      char *err, size_t errlen)
{
    sigset_t all, old;
    struct stat st;
    socklen_t addrlen;
    ws_bus_t *b;
    int n, rv, i, bound = 0;

    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        set_err(err, errlen, "no memory for", dir, ENOMEM);
        return NULL;
    }
    b->fd = b->wake[0] = b->wake[1] = -1;
    b->deliver = deliver;
    b->ctx = ctx;
    b->pid = getpid();
    b->addr.sun_family = AF_UNIX;
    n = snprintf(b->addr.sun_path, sizeof(b->addr.sun_path), "%s/%ld" SUFFIX,
                 dir, (long)b->pid);
    if (n < 0 || (size_t)n >= sizeof(b->addr.sun_path)) {
        if (errlen)
            snprintf(err, errlen, "bus: the socket path %s/%ld" SUFFIX
                     " is longer than the %zu bytes a Unix socket's name "
                     "may have", dir, (long)b->pid,
                     sizeof(b->addr.sun_path) - 1);
        goto fail;
    }
    addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    b->dir = strdup(dir);
    b->rbuf = malloc(WS_BUS_MAX_DATAGRAM + 1);
    if (b->dir == NULL || b->rbuf == NULL) {
        set_err(err, errlen, "no memory for", dir, ENOMEM);
        goto fail;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        set_err(err, errlen, "cannot create", dir, errno);
        goto fail;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "not a directory:", dir, ENOTDIR);
        goto fail;
    }
    if (own_path_live(&b->addr, addrlen)) {
        set_err(err, errlen, "already open in this process:",
                b->addr.sun_path, EADDRINUSE);
        goto fail;
    }
    /* A file with our pid is a dead process's: pids are unique. */
    if (unlink(b->addr.sun_path) != 0 && errno != ENOENT) {
        set_err(err, errlen, "cannot remove the stale", b->addr.sun_path,
                errno);
        goto fail;
    }
    b->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (b->fd < 0) {
        set_err(err, errlen, "no socket for", dir, errno);
        goto fail;
    }
    set_buffers(b->fd);
    /* No chmod: the directory (0700) says who may send to us. */
    if (bind(b->fd, (struct sockaddr *)&b->addr, addrlen) != 0
        || lstat(b->addr.sun_path, &st) != 0) {
        set_err(err, errlen, "cannot bind", b->addr.sun_path, errno);
        goto fail;
    }
    b->ino = st.st_ino;
    bound = 1;
    if (pipe(b->wake) != 0) {
        b->wake[0] = b->wake[1] = -1;
        set_err(err, errlen, "no wake-up pipe for", dir, errno);
        goto fail;
    }
    for (i = 0; i < 2; i++) {
        fcntl(b->wake[i], F_SETFL, O_NONBLOCK);
        fcntl(b->wake[i], F_SETFD, FD_CLOEXEC);
    }
    pthread_mutex_init(&b->lock, NULL);
    /* The process's signals are for its own threads (as the async
     * driver's reactor). */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rv = pthread_create(&b->thread, NULL, bus_main, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rv == 0)
        return b;
    pthread_mutex_destroy(&b->lock);
    set_err(err, errlen, "no thread for", dir, rv);
fail:
    if (bound)
        unlink(b->addr.sun_path);
    bus_free(b);
    return NULL;
}

int ws_bus_publish(ws_bus_t *b, const char *topic, size_t topic_len,
                   uint8_t type, const void *data, size_t len)
{
    size_t total = WS_BUS_HEADER + topic_len + len;
    bus_msg *m;
    int wake;

    if (topic_len == 0 || topic_len > WS_BUS_MAX_TOPIC
        || len > WS_BUS_MAX_MESSAGE) {
        errno = EMSGSIZE;
        return -1;
    }
    /* Copy nothing when the queue is surely full; the check that counts
     * is the one under the lock. */
    if (__atomic_load_n(&b->st.queued_bytes, __ATOMIC_RELAXED) + total
        > WS_BUS_MAX_QUEUED) {
        COUNT(b, dropped_queue, 1);
        errno = ENOBUFS;
        return -1;
    }
    m = malloc(sizeof(*m) + total);
    if (m == NULL) {
        errno = ENOMEM;
        return -1;
    }
    m->next = NULL;
    m->len = ws_bus_frame(m->data, total, (uint32_t)b->pid, 0, topic,
                          topic_len, type, data, len);

    pthread_mutex_lock(&b->lock);
    if (__atomic_load_n(&b->st.queued_bytes, __ATOMIC_RELAXED) + total
        > WS_BUS_MAX_QUEUED) {
        pthread_mutex_unlock(&b->lock);
        free(m);
        COUNT(b, dropped_queue, 1);
        errno = ENOBUFS;
        return -1;
    }
    /* Numbered under the lock so that the numbers follow queue order. */
    put64(m->data + 8, b->seq++);
    COUNT(b, queued_bytes, total);
    if (b->q_tail)
        b->q_tail->next = m;
    else
        b->q_head = m;
    b->q_tail = m;
    wake = !b->woken;
    b->woken = 1;
    pthread_mutex_unlock(&b->lock);

    COUNT(b, published, 1);
    if (wake)
        (void)!write(b->wake[1], "", 1);
    return 0;
}

void ws_bus_close(ws_bus_t *b)
{
    struct stat st;

    if (b == NULL)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = 1;
    pthread_mutex_unlock(&b->lock);
    (void)!write(b->wake[1], "", 1);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->lock);
    /* Remove the file while the socket still lives, so that no peer ever
     * sees it refuse while we run; and only if it is still ours. */
    if (lstat(b->addr.sun_path, &st) == 0 && st.st_ino == b->ino)
        unlink(b->addr.sun_path);
    bus_free(b);
}

void ws_bus_stats(ws_bus_t *b, ws_bus_stats_t *st)
{
    st->published = __atomic_load_n(&b->st.published, __ATOMIC_RELAXED);
    st->sent = __atomic_load_n(&b->st.sent, __ATOMIC_RELAXED);
    st->received = __atomic_load_n(&b->st.received, __ATOMIC_RELAXED);
    st->dropped_queue = __atomic_load_n(&b->st.dropped_queue,
                                        __ATOMIC_RELAXED);
    st->dropped_peer = __atomic_load_n(&b->st.dropped_peer,
                                       __ATOMIC_RELAXED);
    st->malformed = __atomic_load_n(&b->st.malformed, __ATOMIC_RELAXED);
    st->waits = __atomic_load_n(&b->st.waits, __ATOMIC_RELAXED);
    st->peers_gone = __atomic_load_n(&b->st.peers_gone, __ATOMIC_RELAXED);
    st->peers = __atomic_load_n(&b->st.peers, __ATOMIC_RELAXED);
    st->queued_bytes = __atomic_load_n(&b->st.queued_bytes,
                                       __ATOMIC_RELAXED);
}
