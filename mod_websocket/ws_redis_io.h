/* ws_redis_io.h: one non-blocking TCP connection, plain or TLS (OpenSSL),
 * for the Redis link's thread (ws_redis.c). Internal to the link.
 *
 * Every call returns at once; the caller polls the descriptor for
 * ws_redis_io_events() and calls again. Errors leave a message in io->err
 * that names the peer ("connect 127.0.0.1:6379: Connection refused").
 * Only the link thread uses a connection.
 */
#ifndef WS_REDIS_IO_H
#define WS_REDIS_IO_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/ssl.h>

/* Bytes gathered into one SSL_write: one TLS record's worth. */
#define WS_REDIS_IO_TLS_CHUNK 16384

typedef enum {
    WS_REDIS_IO_CLOSED = 0,
    WS_REDIS_IO_CONNECTING,     /* TCP */
    WS_REDIS_IO_HANDSHAKE,      /* TLS */
    WS_REDIS_IO_OPEN
} ws_redis_io_phase_e;

typedef struct {
    int fd;
    ws_redis_io_phase_e phase;
    SSL *ssl;
    short tls_want;             /* what OpenSSL waits for: POLLIN/POLLOUT */
    size_t tls_retry;           /* bytes of tls_buf an SSL_write must be
                                   repeated with (OpenSSL's rule) */
    const char *peer;           /* "host:port", for messages (not ours) */
    char err[512];
    unsigned char tls_buf[WS_REDIS_IO_TLS_CHUNK];
} ws_redis_io_t;

/* A client context that verifies the server's certificate against the CAs
 * in ca_file (PEM), or the system's when NULL. Returns it, or NULL with a
 * message in err. Reads the file: call it outside the link thread's loop
 * (at open). Free with SSL_CTX_free(). */
SSL_CTX *ws_redis_io_tls_context(const char *ca_file, char *err,
                                 size_t errlen);

/* Start connecting io (zeroed, or closed) to addr. With ctx, TLS follows
 * the TCP connection, checking that the certificate is for host (a name or
 * an address). peer must outlive io. Returns 0 (connecting), or -1 with a
 * message in io->err and io closed. */
int ws_redis_io_connect(ws_redis_io_t *io, const struct sockaddr *addr,
                        socklen_t addrlen, SSL_CTX *ctx, const char *host,
                        const char *peer);

/* Go on connecting after a poll event. Returns 1 once open (TLS
 * handshake done), 0 while not yet, -1 with a message on failure. */
int ws_redis_io_progress(ws_redis_io_t *io);

/* What to poll for: POLLIN when open, POLLOUT also with want_write (bytes
 * to send), and whatever connecting or TLS needs meanwhile. */
short ws_redis_io_events(const ws_redis_io_t *io, int want_write);

/* 1 when TLS holds decrypted bytes that a read would return: poll does
 * not see them, so the caller reads without waiting. */
int ws_redis_io_pending(const ws_redis_io_t *io);

/* Read up to len bytes. Returns the count, 0 when there is nothing now,
 * or -1 with a message when the connection is closed or failed. */
ssize_t ws_redis_io_read(ws_redis_io_t *io, void *buf, size_t len);

/* Write from the n buffers. Returns the bytes written (0 when the socket
 * is full), or -1 with a message on failure. After a TLS write that wrote
 * nothing, the next call must offer the same bytes first, which a queue
 * that only grows at its tail does. */
ssize_t ws_redis_io_writev(ws_redis_io_t *io, const struct iovec *iov,
                           int n);

/* Close io's socket and TLS session; io may be connected again. */
void ws_redis_io_close(ws_redis_io_t *io);

#endif /* WS_REDIS_IO_H */
