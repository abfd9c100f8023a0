/* ws_redis_io.c: the Redis link's transport: non-blocking TCP with
 * optional TLS through OpenSSL (see ws_redis_io.h).
 *
 * hiredis 0.14 has no TLS, so the link does its own I/O and uses hiredis
 * only to format commands and parse replies. This file knows nothing of
 * Redis and never blocks: connect, the TLS handshake, reads and writes
 * each do what the socket allows now and say what to wait for.
 *
 * SIGPIPE: plain writes use MSG_NOSIGNAL; OpenSSL writes with write(),
 * whose SIGPIPE goes to the writing thread, the link thread, which blocks
 * every signal, so it stays pending there and is discarded with the
 * thread.
 */
/* strerror_r() returning the string; APR's flags define it already. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ws_redis_io.h"

/* TCP keepalive: a host that vanished without a reset (power, network) is
 * noticed on the subscriber connection, which may stay silent for hours,
 * after about KEEPIDLE + KEEPCNT * KEEPINTVL seconds. */
#define KEEPIDLE  15
#define KEEPINTVL 5
#define KEEPCNT   3

static int io_fail(ws_redis_io_t *io, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(io->err, sizeof(io->err), fmt, ap);
    va_end(ap);
    ws_redis_io_close(io);
    return -1;
}

static int io_fail_errno(ws_redis_io_t *io, const char *what, int e)
{
    char buf[128];

    return io_fail(io, "%s %s: %s", what, io->peer,
                   strerror_r(e, buf, sizeof(buf)));
}

/* What OpenSSL said went wrong, with the certificate check's verdict when
 * that is what failed. */
static int tls_fail(ws_redis_io_t *io, const char *what, int rv)
{
    int e = SSL_get_error(io->ssl, rv), saved = errno;
    unsigned long code = ERR_peek_last_error();
    long verify = SSL_get_verify_result(io->ssl);
    char buf[160];

    if (verify != X509_V_OK)
        return io_fail(io, "%s %s: certificate verify failed (%s)", what,
                       io->peer, X509_verify_cert_error_string(verify));
    if (code) {
        ERR_error_string_n(code, buf, sizeof(buf));
        ERR_clear_error();
        return io_fail(io, "%s %s: %s", what, io->peer, buf);
    }
    if (e == SSL_ERROR_SYSCALL && saved)
        return io_fail_errno(io, what, saved);
    if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL)
        return io_fail(io, "%s %s: closed by the server", what, io->peer);
    return io_fail(io, "%s %s: TLS error %d", what, io->peer, e);
}

SSL_CTX *ws_redis_io_tls_context(const char *ca_file, char *err,
                                 size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    unsigned long code;
    int ok;

    if (ctx == NULL) {
        snprintf(err, errlen, "redis TLS: no context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* Writes take what fits and may resume from a moved buffer: ours is
     * rebuilt from the queue on each call. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                 : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        code = ERR_get_error();
        ERR_clear_error();
        snprintf(err, errlen, "redis TLS: cannot load the CAs %s: %s",
                 ca_file ? ca_file : "(the system's)",
                 code ? ERR_reason_error_string(code) : "unknown error");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static void set_options(int fd)
{
    int on = 1, idle = KEEPIDLE, intvl = KEEPINTVL, cnt = KEEPCNT;

    /* Best effort: without them only latency or dead-peer detection
     * suffers. Pipelined PUBLISHes must not wait for Nagle. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static int is_address(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, buf) == 1
           || inet_pton(AF_INET6, host, buf) == 1;
}

int ws_redis_io_connect(ws_redis_io_t *io, const struct sockaddr *addr,
                        socklen_t addrlen, SSL_CTX *ctx, const char *host,
                        const char *peer)
{
    X509_VERIFY_PARAM *param;

    io->peer = peer;
    io->tls_want = 0;
    io->tls_retry = 0;
    io->fd = socket(addr->sa_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (io->fd < 0)
        return io_fail_errno(io, "socket for", errno);
    io->phase = WS_REDIS_IO_CONNECTING;
    set_options(io->fd);
    if (ctx) {
        ERR_clear_error();
        io->ssl = SSL_new(ctx);
        if (io->ssl == NULL || SSL_set_fd(io->ssl, io->fd) != 1)
            return io_fail(io, "TLS with %s: no session", peer);
        /* RFC 6125: a name is checked against the certificate's DNS names
         * (and sent as SNI, RFC 6066 section 3, which takes no address);
         * an address against its IP addresses. */
        param = SSL_get0_param(io->ssl);
        if (is_address(host)) {
            if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1)
                return io_fail(io, "TLS with %s: bad address", peer);
        }
        else if (SSL_set1_host(io->ssl, host) != 1
                 || SSL_set_tlsext_host_name(io->ssl, host) != 1) {
            return io_fail(io, "TLS with %s: bad host name", peer);
        }
        SSL_set_connect_state(io->ssl);
    }
    if (connect(io->fd, addr, addrlen) != 0 && errno != EINPROGRESS)
        return io_fail_errno(io, "connect", errno);
    return 0;
}

static int handshake(ws_redis_io_t *io)
{
    int rv;

    ERR_clear_error();
    rv = SSL_do_handshake(io->ssl);
    if (rv == 1) {
        io->phase = WS_REDIS_IO_OPEN;
        io->tls_want = 0;
        return 1;
    }
    switch (SSL_get_error(io->ssl, rv)) {
    case SSL_ERROR_WANT_READ:
        io->tls_want = POLLIN;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        io->tls_want = POLLOUT;
        return 0;
    default:
        return tls_fail(io, "TLS handshake with", rv);
    }
}

int ws_redis_io_progress(ws_redis_io_t *io)
{
    socklen_t len = sizeof(int);
    int e = 0;

    switch (io->phase) {
    case WS_REDIS_IO_CONNECTING:
        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
            e = errno;
        if (e == EINPROGRESS || e == EALREADY)
            return 0;
        if (e)
            return io_fail_errno(io, "connect", e);
        /* Writable and no error can also be a poll with nothing ready;
         * only a peer address says the connection is made. */
        {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);

            if (getpeername(io->fd, (struct sockaddr *)&ss, &sl) != 0)
                return errno == ENOTCONN ? 0
                                         : io_fail_errno(io, "connect",
                                                         errno);
        }
        if (io->ssl == NULL) {
            io->phase = WS_REDIS_IO_OPEN;
            return 1;
        }
        io->phase = WS_REDIS_IO_HANDSHAKE;
        return handshake(io);
    case WS_REDIS_IO_HANDSHAKE:
        return handshake(io);
    case WS_REDIS_IO_OPEN:
        return 1;
    default:
        return -1;
    }
}

short ws_redis_io_events(const ws_redis_io_t *io, int want_write)
{
    switch (io->phase) {
    case WS_REDIS_IO_CONNECTING:
        return POLLOUT;
    case WS_REDIS_IO_HANDSHAKE:
        return io->tls_want;
    case WS_REDIS_IO_OPEN:
        return (short)(POLLIN | (want_write || io->tls_retry ? POLLOUT : 0)
                       | io->tls_want);
    default:
        return 0;
    }
}

int ws_redis_io_pending(const ws_redis_io_t *io)
{
    return io->phase == WS_REDIS_IO_OPEN && io->ssl
           && SSL_pending(io->ssl) > 0;
}

ssize_t ws_redis_io_read(ws_redis_io_t *io, void *buf, size_t len)
{
    ssize_t n;
    int rv;

    if (io->ssl == NULL) {
        n = recv(io->fd, buf, len, 0);
        if (n > 0)
            return n;
        if (n == 0)
            return io_fail(io, "connection closed by %s", io->peer);
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        return io_fail_errno(io, "read from", errno);
    }
    ERR_clear_error();
    rv = SSL_read(io->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (rv > 0) {
        io->tls_want = 0;
        return rv;
    }
    switch (SSL_get_error(io->ssl, rv)) {
    case SSL_ERROR_WANT_READ:
        io->tls_want = 0;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        /* A key update to send first (TLS 1.3): wake on writability. */
        io->tls_want = POLLOUT;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return io_fail(io, "connection closed by %s", io->peer);
    default:
        return tls_fail(io, "read from", rv);
    }
}

ssize_t ws_redis_io_writev(ws_redis_io_t *io, const struct iovec *iov,
                           int n)
{
    struct msghdr mh = { .msg_iov = (struct iovec *)iov,
                         .msg_iovlen = (size_t)n };
    ssize_t sent;
    size_t len;
    int i, rv;

    if (io->ssl == NULL) {
        sent = sendmsg(io->fd, &mh, MSG_NOSIGNAL);
        if (sent >= 0)
            return sent;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        return io_fail_errno(io, "write to", errno);
    }
    /* Gather into one record. A retry after WANT_* repeats the same
     * bytes (OpenSSL's rule), still the first of iov. */
    len = io->tls_retry;
    for (i = 0; i < n && io->tls_retry == 0 && len < sizeof(io->tls_buf);
         i++) {
        size_t take = iov[i].iov_len;

        if (take > sizeof(io->tls_buf) - len)
            take = sizeof(io->tls_buf) - len;
        memcpy(io->tls_buf + len, iov[i].iov_base, take);
        len += take;
    }
    if (len == 0)
        return 0;
    ERR_clear_error();
    rv = SSL_write(io->ssl, io->tls_buf, (int)len);
    if (rv > 0) {
        io->tls_retry = 0;
        io->tls_want = 0;
        return rv;
    }
    switch (SSL_get_error(io->ssl, rv)) {
    case SSL_ERROR_WANT_WRITE:
        io->tls_retry = len;
        io->tls_want = 0;
        return 0;
    case SSL_ERROR_WANT_READ:
        io->tls_retry = len;
        io->tls_want = POLLIN;
        return 0;
    default:
        return tls_fail(io, "write to", rv);
    }
}

void ws_redis_io_close(ws_redis_io_t *io)
{
    if (io->phase == WS_REDIS_IO_CLOSED)
        return;
    if (io->ssl) {
        SSL_free(io->ssl);
        io->ssl = NULL;
    }
    close(io->fd);
    io->fd = -1;
    io->phase = WS_REDIS_IO_CLOSED;
    io->tls_want = 0;
    io->tls_retry = 0;
}
