/* ws_driver_io.c: moving bytes between a connection's filters and its
 * engine, the part both drivers share.
 *
 * Reads never block and stop as soon as the connection is known to be
 * empty; writes pass the engine's frames as transient buckets, without
 * FLUSH, so that a burst of frames leaves in as few writes as the filters
 * manage. The caller holds whatever gives it the filters (the blocking
 * driver's thread, the async driver's io_lock).
 */
#include <string.h>

#include "httpd.h"
#include "http_log.h"
#include "http_ssl.h"
#include "util_filter.h"

#include "ws_driver.h"
#include "ws_log.h"

APLOG_USE_MODULE(websocket);

#define IOV_MAX_OUT 16

apr_status_t ws_driver_read(ws_conn_t *wc, apr_bucket_brigade *bb,
                            int max_reads)
{
    conn_rec *c = wc->c;
    /* The core's non-blocking read keeps reading until it has what was
     * asked for or the socket says EAGAIN, so a shorter answer means the
     * socket was empty: another read would only return EAGAIN, and what
     * arrives later wakes the caller's poll. Not so with TLS: mod_ssl
     * answers one record at a time and may hold decrypted bytes that no
     * poll reports, so TLS reads go on to EAGAIN. */
    int short_read_drains = !ap_ssl_conn_is_ssl(c);
    apr_status_t rv;
    apr_bucket *b;
    const char *data;
    apr_size_t len;
    apr_off_t got;
    int reads, eos = 0;

    for (reads = 0; max_reads == 0 || reads < max_reads; reads++) {
        rv = ap_get_brigade(c->input_filters, bb, AP_MODE_READBYTES,
                            APR_NONBLOCK_READ, WS_READ_SIZE);
        if (APR_STATUS_IS_EAGAIN(rv)
            || (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(bb)))
            return APR_SUCCESS;
        if (rv != APR_SUCCESS) {
            if (!APR_STATUS_IS_EOF(rv))
                ap_log_cerror(APLOG_MARK, APLOG_DEBUG, rv, c, WSLOGNO(00010)
                              "websocket read failed");
            apr_brigade_cleanup(bb);
            return APR_EOF;
        }
        for (b = APR_BRIGADE_FIRST(bb), got = 0;
             b != APR_BRIGADE_SENTINEL(bb) && !eos; b = APR_BUCKET_NEXT(b)) {
            if (APR_BUCKET_IS_EOS(b))
                eos = 1;
            else if (apr_bucket_read(b, &data, &len, APR_BLOCK_READ)
                     == APR_SUCCESS && len) {
                ws_conn_feed(wc, data, len);
                got += len;
            }
        }
        apr_brigade_cleanup(bb);
        if (eos)
            return APR_EOF;
        if (short_read_drains && got < WS_READ_SIZE)
            return APR_SUCCESS;
    }
    return APR_INCOMPLETE;
}

/* Pieces up to this size are copied into one heap bucket per burst; larger
 * ones go down as transient buckets pointing into the engine's frames. A
 * bucket per frame header and per small payload would cost more in bucket
 * allocations (and the core's copies of them) than the copying does. */
#define COPY_MAX 1024

/* Up to this many bytes to copy (a small frame, as in most echoes and
 * broadcasts) fit the bucket allocator's small blocks, which cost no
 * allocation of their own; more get a whole APR_BUCKET_BUFF_SIZE buffer. */
#define COPY_SMALL 96

/* The copy buffer so far becomes a heap bucket at the end of bb. */
static void flush_copy(apr_bucket_brigade *bb, char **buf, apr_size_t *used)
{
    if (*buf && *used)
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(
            *buf, *used, apr_bucket_free, bb->bucket_alloc));
    else if (*buf)
        apr_bucket_free(*buf);
    *buf = NULL;
    *used = 0;
}

apr_status_t ws_driver_pass_output(ws_conn_t *wc, apr_bucket_brigade *bb,
                                   apr_size_t max, apr_size_t *passed)
{
    conn_rec *c = wc->c;
    ws_iovec_t iov[IOV_MAX_OUT];
    apr_size_t total, len, small, used = 0, cap = 0;
    apr_status_t rv = APR_SUCCESS;
    char *buf = NULL;
    int n, i, transient;

    *passed = 0;
    while (*passed < max) {
        pthread_mutex_lock(&wc->lock);
        n = ws_engine_output(wc->engine, iov, IOV_MAX_OUT);
        pthread_mutex_unlock(&wc->lock);
        if (n == 0)
            break;
        for (i = 0, small = 0; i < n; i++)
            if (iov[i].len <= COPY_MAX)
                small += iov[i].len;
        for (i = 0, total = 0, transient = 0;
             i < n && *passed + total < max; i++) {
            len = iov[i].len;
            if (len > max - *passed - total)
                len = max - *passed - total;
            if (len > COPY_MAX) {
                flush_copy(bb, &buf, &used);
                APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(
                    iov[i].base, len, c->bucket_alloc));
                transient = 1;
            }
            else {
                if (buf && used + len > cap)
                    flush_copy(bb, &buf, &used);
                if (!buf) {
                    /* len may be the cut end of a large payload, which
                     * small does not count. */
                    cap = len <= small && small <= COPY_SMALL
                          ? small : APR_BUCKET_BUFF_SIZE;
                    buf = apr_bucket_alloc(cap, c->bucket_alloc);
                }
                memcpy(buf + used, iov[i].base, len);
                used += len;
            }
            total += len;
        }
        /* Transient buckets point into frames the engine frees once they
         * are written: pass them now (the filters copy what they keep). */
        if (transient) {
            rv = ap_pass_brigade(c->output_filters, bb);
            apr_brigade_cleanup(bb);
            if (rv != APR_SUCCESS)
                break;
        }
        pthread_mutex_lock(&wc->lock);
        ws_engine_written(wc->engine, total);
        pthread_mutex_unlock(&wc->lock);
        *passed += total;
    }
    if (rv == APR_SUCCESS) {
        flush_copy(bb, &buf, &used);
        if (!APR_BRIGADE_EMPTY(bb))
            rv = ap_pass_brigade(c->output_filters, bb);
    }
    else {
        flush_copy(bb, &buf, &used);
    }
    apr_brigade_cleanup(bb);
    if (rv != APR_SUCCESS)
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, rv, c, WSLOGNO(00011)
                      "websocket write failed");
    return rv;
}
