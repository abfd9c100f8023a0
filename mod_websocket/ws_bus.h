/* ws_bus.h: a message bus among the processes that share one directory:
 * httpd's children of every generation, under DefaultRuntimeDir.
 *
 * Each process binds a Unix datagram socket named <dir>/<pid>.bus and
 * sends every message it publishes as one datagram to each other socket
 * it finds there. Datagrams on a Unix socket arrive whole, once and in
 * the order sent between one sender and one receiver, so every process
 * receives each publisher's messages once and in publish order; a slow
 * peer may lose its oldest ones (see WS_BUS_PEER_BACKLOG). The bus knows
 * nothing of httpd or of what topics mean: it neither logs nor touches
 * APR, and it never delivers a process's own messages back to it (the
 * publisher delivers locally itself).
 *
 * Open the bus after fork, in the process that uses it (child_init); a
 * forked child must neither use nor close its parent's bus. One bus per
 * process and directory. The directory must not be shared across PID
 * namespaces: a socket's name is its owner's pid.
 */
#ifndef WS_BUS_H
#define WS_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The datagram: a fixed header, all numbers big-endian,
 *
 *   0  version (WS_BUS_VERSION)    4  publisher's pid (uint32)
 *   1  type (the caller's)         8  publisher's sequence number (uint64)
 *   2  topic length (uint16)      16  topic, then data to the end
 *
 * and the datagram's own length gives the data's. */
#define WS_BUS_VERSION      1
#define WS_BUS_HEADER       16

/* At most 64 KiB of data per message. A Unix datagram must fit whole in
 * its sender's send buffer (EMSGSIZE otherwise), and Linux's default,
 * net.core.wmem_default, is 208 KiB: even where our larger SO_SNDBUF is
 * capped (net.core.wmem_max) a few messages fit in flight. Anything bigger
 * is better shared some other way than copied to every process. */
#define WS_BUS_MAX_MESSAGE  (64 * 1024)
#define WS_BUS_MAX_TOPIC    1024
#define WS_BUS_MAX_DATAGRAM (WS_BUS_HEADER + WS_BUS_MAX_TOPIC \
                             + WS_BUS_MAX_MESSAGE)

/* Bytes of framed messages a process holds for its peers, at most: those
 * published but not yet handed to the bus thread, and those some peer has
 * not taken yet (a message waiting for several peers counts once). Over
 * it, ws_bus_publish() refuses. As every peer's backlog is the tail of one
 * stream of messages, a working bus thread holds little more than the
 * longest backlog (WS_BUS_PEER_BACKLOG); so the cap is reached only when
 * the thread cannot keep up (starved of CPU, or stuck in a slow deliver
 * callback), never because of one slow peer. It bounds memory per process:
 * prefork's many children may each hold this much. */
#define WS_BUS_MAX_QUEUED   (8 * 1024 * 1024)

/* Bytes one peer may lag behind, at most. A peer that does not read (busy,
 * stopped, or its deliver callback is slow) fills its socket queue (on
 * Linux one datagram more than net.unix.max_dgram_qlen, 10 by default,
 * whatever their size) and then its backlog here; past this, its oldest
 * messages are dropped and counted. 2 MiB is thousands of the small
 * messages a bus carries, and well below WS_BUS_MAX_QUEUED, so that one
 * stuck peer never makes publishing fail for the others. */
#define WS_BUS_PEER_BACKLOG (2 * 1024 * 1024)

typedef struct ws_bus ws_bus_t;

/* Called on the bus thread for each valid datagram from another process.
 * topic and data are valid only during the call. It should be quick: while
 * it runs this process neither receives nor sends. It may publish; it must
 * not close the bus. */
typedef void (*ws_bus_deliver_fn)(void *ctx, const char *topic,
                                  size_t topic_len, uint8_t type,
                                  const void *data, size_t len);

/* Counters since open. Any thread may read them; each is exact, the set
 * is not a snapshot. */
typedef struct {
    uint64_t published;     /* accepted by ws_bus_publish() */
    uint64_t sent;          /* datagrams sent (one per message and peer) */
    uint64_t received;      /* valid datagrams delivered */
    uint64_t dropped_queue; /* publishes refused: over WS_BUS_MAX_QUEUED */
    uint64_t dropped_peer;  /* datagrams a slow peer lost: its backlog
                               was over WS_BUS_PEER_BACKLOG */
    uint64_t malformed;     /* datagrams received and dropped as invalid,
                               or claiming to be from this process */
    uint64_t waits;         /* sends that found a peer full (EAGAIN) and
                               were kept for later */
    uint64_t peers_gone;    /* peers dropped because their socket was
                               dead (ECONNREFUSED, ENOENT) */
    uint64_t peers;         /* live peers known now */
    uint64_t queued_bytes;  /* now: see WS_BUS_MAX_QUEUED */
} ws_bus_stats_t;

/* A datagram's parts, pointing into the parsed buffer. */
typedef struct {
    uint8_t type;
    uint32_t pid;
    uint64_t seq;
    const char *topic;
    size_t topic_len;
    const void *data;
    size_t len;
} ws_bus_frame_t;

/* Parse the len bytes at buf as one datagram; reads nothing past them.
 * Returns 0 and fills *f, or -1 when it is malformed: shorter than the
 * header, another version, a pid of 0, an empty topic, a topic past the
 * end or over WS_BUS_MAX_TOPIC, data over WS_BUS_MAX_MESSAGE. */
int ws_bus_parse(const void *buf, size_t len, ws_bus_frame_t *f);

/* Write the datagram for one message into buf (room for cap bytes).
 * Returns its length, or 0 when the topic is empty or too long, the data
 * too long, or cap too small. */
size_t ws_bus_frame(void *buf, size_t cap, uint32_t pid, uint64_t seq,
                    const char *topic, size_t topic_len, uint8_t type,
                    const void *data, size_t len);

/* For the parent (root) in post_config: create dir if missing, mode 0700,
 * owned by uid:gid (the children's User and Group; (uid_t)-1 and
 * (gid_t)-1 leave them as they are), and remove the sockets of processes
 * that no longer exist. 0700 because a peer's datagrams are trusted: only
 * the children's user (and root) may send them. A path that exists but is
 * not a directory (a symlink included) is refused. Returns 0, or -1 with
 * a message in err. Does not touch the sockets of live processes, so it
 * is safe on a graceful restart while old children still run. */
int ws_bus_prepare_dir(const char *dir, uid_t uid, gid_t gid, char *err,
                       size_t errlen);

/* Create dir if missing (mode 0700: for a parent that did not call
 * ws_bus_prepare_dir), bind <dir>/<pid>.bus (replacing a stale one left
 * by a dead process that had our pid) and start the bus thread, with every
 * signal blocked. Returns the bus, or NULL with a message in err: the
 * socket's path is too long for sun_path, the directory is unusable, a
 * bus is already open on it in this process, or no memory or thread.
 * Uses strerror(): call it before other threads might. */
ws_bus_t *ws_bus_open(const char *dir, ws_bus_deliver_fn deliver, void *ctx,
                      char *err, size_t errlen);

/* Queue one message for every other process; never blocks on them. Any
 * thread may call it, the deliver callback included. Returns 0, or -1
 * with errno set and the message not sent to any peer: EMSGSIZE when the
 * topic is empty or over WS_BUS_MAX_TOPIC or the data over
 * WS_BUS_MAX_MESSAGE; ENOBUFS when the queue is over WS_BUS_MAX_QUEUED
 * (counted in dropped_queue); ENOMEM. */
int ws_bus_publish(ws_bus_t *b, const char *topic, size_t topic_len,
                   uint8_t type, const void *data, size_t len);

/* Stop the thread after one last non-blocking attempt to send what is
 * queued, remove our socket and free the bus. Not from the deliver
 * callback; no other thread may use the bus during or after the call.
 * NULL is ignored. */
void ws_bus_close(ws_bus_t *b);

/* Fill *st with the bus's counters. Any thread. */
void ws_bus_stats(ws_bus_t *b, ws_bus_stats_t *st);

#endif /* WS_BUS_H */
