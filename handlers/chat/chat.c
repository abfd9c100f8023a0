/* chat: chat rooms on topics. Each <Location> that names the plugin has a
 * room, and more chosen by the query string (?room=NAME). Every text
 * message a client sends goes to everyone in its room, the sender
 * included, as a JSON object naming the sender; joins and leaves are
 * announced; a newcomer gets the last few messages. The protocol (one JSON
 * object per WebSocket text message) and the settings are in README.md.
 *
 * A room is a topic (mod_websocket_plugin.h): mws_location() alone, or
 * mws_location() + "/" + NAME. Members subscribe to it, and what the room
 * hears (message, join, leave) is formatted once and published to it, so
 * it reaches the members served by every child process of this httpd,
 * and of other hosts joined by WebSocketRedis. What goes to one client
 * (welcome, history, error) is sent to it directly.
 *
 * Each process keeps its own copy of what rooms said, from
 * on_topic_message, which sees every room message published anywhere
 * while the process runs, its own included, so that a newcomer here gets
 * what was said in its room wherever it was said. A room keeps at most
 * its history setting's messages and ROOM_HISTORY_BYTES of them; of the
 * rooms that no connection of the process is in, the least recently used
 * are dropped while there are more than ROOMS_IDLE_MAX of them or all
 * rooms' history passes HISTORY_BYTES_MAX.
 *
 * Threads and locks. Each connection's callbacks run on its own thread,
 * and on_topic_message on whichever thread publishes, or on the module's
 * bus thread for what other processes publish; all at the same time. One
 * lock, 'lock', guards every room: the table, the idle list, each room's
 * members count, history and guest counter. It is held only to copy
 * bytes: mws_send() and mws_subscribe() may be called with it held (they
 * take the module's own locks, which the module never holds while it
 * calls us), but never mws_publish(), which calls on_topic_message on the
 * same thread, and so takes it again.
 *
 * Handles: other threads never use a member's handle; a room is never
 * freed while it has members, so a member's room pointer stays valid
 * until its on_close.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mod_websocket_plugin.h>

#define DEFAULT_NAME_MAX    32
#define DEFAULT_HISTORY     20
#define DEFAULT_MAX_TEXT    4096
/* WebSocketTopicMessageLimit's most: a longer text could not be
 * published. */
#define MAX_TEXT_LIMIT      65536
#define ROOM_NAME_MAX       64
/* What a process keeps for rooms that none of its connections is in. */
#define ROOMS_IDLE_MAX      1000
#define ROOM_HISTORY_BYTES  (128 * 1024)
#define HISTORY_BYTES_MAX   (32 * 1024 * 1024)
#define BUCKETS             1024

/* ---- a growing string ---- */

/* On allocation failure 'failed' is set and further additions do nothing;
 * the caller then drops the message. */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} buf_t;

static void buf_add(buf_t *b, const void *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;

        while (cap < b->len + n + 1)
            cap *= 2;
        if (!(p = realloc(b->data, cap))) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_str(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* s (n bytes of valid UTF-8) as a JSON string with its quotes (RFC 8259
 * §7): quote, backslash and control characters escaped, everything else,
 * non-ASCII included, as it is. */
static void buf_json(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, start = 0;
    char esc[6] = { '\\', 'u', '0', '0', 0, 0 };

    buf_add(b, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c != '"' && c != '\\' && c >= 0x20)
            continue;
        buf_add(b, s + start, i - start);
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            buf_add(b, esc, 2);
            esc[1] = 'u';
        }
        else {
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            buf_add(b, esc, 6);
        }
        start = i + 1;
    }
    buf_add(b, s + start, n - start);
    buf_add(b, "\"", 1);
}

/* ---- names ---- */

/* The code point at s (n > 0 bytes available), or -1 where the bytes are
 * not UTF-8 (RFC 3629: shortest form, no surrogates, at most U+10FFFF).
 * *used is the bytes it took (1 on error). */
static long utf8_decode(const unsigned char *s, size_t n, size_t *used)
{
    long cp;
    size_t len, i;

    *used = 1;
    if (s[0] < 0x80)
        return s[0];
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1F;
    }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0F;
    }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07;
    }
    else {
        return -1;
    }
    if (n < len)
        return -1;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)
        || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return -1;
    *used = len;
    return cp;
}

static size_t utf8_encode(long cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Characters a name shows as a space: controls (C0, DEL, C1), line and
 * paragraph separators, and the bidirectional overrides and isolates that
 * would let a name reorder the text around it. */
static int blank_in_name(long cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x2028
        || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E)
        || (cp >= 0x2066 && cp <= 0x2069);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The value of the first "key=" parameter of the query string,
 * percent-decoded ('+' is a space, as HTML forms send it): 1 with *out a
 * malloc'd copy of *n bytes (which may hold any byte, NUL included) that
 * the caller frees, 0 when there is none, -1 when out of memory. */
static int query_param(const char *query, const char *key, unsigned char **out,
                       size_t *n)
{
    const char *p = query, *end;
    size_t key_len = strlen(key);
    unsigned char *raw;
    int hi, lo;

    while (p && (strncmp(p, key, key_len) || p[key_len] != '=')) {
        p = strchr(p, '&');
        p = p ? p + 1 : NULL;
    }
    if (!p)
        return 0;
    p += key_len + 1;
    end = strchr(p, '&');
    end = end ? end : p + strlen(p);
    if (!(raw = malloc((size_t)(end - p) + 1)))
        return -1;
    *n = 0;
    while (p < end) {
        if (*p == '%' && end - p >= 3 && (hi = hexval(p[1])) >= 0
            && (lo = hexval(p[2])) >= 0) {
            raw[(*n)++] = (unsigned char)(hi << 4 | lo);
            p += 3;
        }
        else {
            raw[(*n)++] = *p == '+' ? ' ' : (unsigned char)*p;
            p++;
        }
    }
    *out = raw;
    return 1;
}

/* The name from the first "name=" of the query string, decoded by
 * query_param() and made safe: bytes that are not UTF-8 become U+FFFD,
 * blank_in_name() characters a space, spaces trimmed at both ends, at most
 * name_max characters (never a character cut in two). Empty when there is
 * no usable name. Appended to out as UTF-8. */
static void name_from_query(const char *query, size_t name_max, buf_t *out)
{
    unsigned char *raw;
    size_t n, i, used, chars = 0;
    char enc[4];
    long cp;

    if (query_param(query, "name", &raw, &n) != 1)
        return;
    for (i = 0; i < n && chars < name_max; i += used) {
        cp = utf8_decode(raw + i, n - i, &used);
        if (cp < 0)
            cp = 0xFFFD;
        else if (blank_in_name(cp))
            cp = ' ';
        if (cp == ' ' && out->len == 0)
            continue;                       /* leading space */
        buf_add(out, enc, utf8_encode(cp, enc));
        chars++;
    }
    while (out->len && out->data[out->len - 1] == ' ')
        out->data[--out->len] = '\0';       /* trailing spaces */
    free(raw);
}

/* The room's topic for a query string into *topic (malloc'd): the
 * location's own without a "room=" parameter, location + "/" + NAME with
 * a valid one (1 to ROOM_NAME_MAX characters of A-Z a-z 0-9 _ . -, after
 * percent-decoding). 0, or the HTTP status to refuse with: 400 for a
 * room= that is not a valid name, 503 when out of memory. */
static int topic_from_query(const char *location, const char *query,
                            char **topic)
{
    unsigned char *room = NULL;
    size_t n = 0, i, loc_len = strlen(location);
    int found = query ? query_param(query, "room", &room, &n) : 0;

    if (found < 0)
        return 503;
    if (found && (n == 0 || n > ROOM_NAME_MAX)) {
        free(room);
        return 400;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = room[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            free(room);
            return 400;
        }
    }
    if ((*topic = malloc(loc_len + 1 + n + 1))) {
        memcpy(*topic, location, loc_len + 1);
        if (found) {
            (*topic)[loc_len] = '/';
            memcpy(*topic + loc_len + 1, room, n);
            (*topic)[loc_len + 1 + n] = '\0';
        }
    }
    free(room);
    return *topic ? 0 : 503;
}

/* ---- rooms ---- */

typedef struct {
    char *data;                 /* a {"type":"message",...} object */
    size_t len;
} line_t;

/* Everything here is under 'lock'. */
typedef struct room {
    struct room *chain;         /* in its bucket of the table */
    struct room *newer, *older; /* in the idle list, while members is 0 */
    char *topic;                /* set once */
    size_t members;             /* connections of this process in it */
    unsigned long guests;       /* numbers guest names */
    line_t *history;            /* ring of history_max lines */
    size_t history_max, history_len, history_first, history_bytes;
} room_t;

typedef struct {
    room_t *room;
    mws_conn_t *conn;
    size_t max_text;            /* this connection's setting */
    char *name_json;            /* the name, a quoted JSON string */
} member_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static room_t *table[BUCKETS];
static room_t *idle_newest, *idle_oldest;
static size_t idle_count;
static size_t history_total;    /* history bytes of every room */
static int exiting;             /* process_exit has run */

/* How a room message starts (see on_message): what on_topic_message
 * keeps. */
static const char message_head[] = "{\"type\":\"message\",\"from\":";

static room_t **bucket(const char *topic)
{
    uint32_t h = 2166136261u;   /* FNV-1a */

    while (*topic)
        h = (h ^ (unsigned char)*topic++) * 16777619u;
    return &table[h % BUCKETS];
}

static room_t *room_find_locked(const char *topic)
{
    room_t *room;

    for (room = *bucket(topic); room; room = room->chain)
        if (!strcmp(room->topic, topic))
            return room;
    return NULL;
}

/* The newest of the idle list: a room nobody here is in. */
static void idle_push_locked(room_t *room)
{
    room->older = idle_newest;
    room->newer = NULL;
    if (idle_newest)
        idle_newest->newer = room;
    else
        idle_oldest = room;
    idle_newest = room;
    idle_count++;
}

static void idle_remove_locked(room_t *room)
{
    if (room->newer)
        room->newer->older = room->older;
    else
        idle_newest = room->older;
    if (room->older)
        room->older->newer = room->newer;
    else
        idle_oldest = room->newer;
    room->newer = room->older = NULL;
    idle_count--;
}

static void history_drop_oldest_locked(room_t *room)
{
    line_t *l = &room->history[room->history_first];

    room->history_bytes -= l->len;
    history_total -= l->len;
    free(l->data);
    l->data = NULL;
    room->history_first = (room->history_first + 1) % room->history_max;
    room->history_len--;
}

/* A new idle room, in the table; NULL when out of memory. */
static room_t *room_new_locked(const char *topic)
{
    room_t *room = calloc(1, sizeof(*room));
    room_t **b = bucket(topic);

    if (!room || !(room->topic = strdup(topic))) {
        free(room);
        return NULL;
    }
    room->chain = *b;
    *b = room;
    idle_push_locked(room);
    return room;
}

/* An idle room out of the table, and freed. */
static void room_free_locked(room_t *room)
{
    room_t **link = bucket(room->topic);

    while (*link != room)
        link = &(*link)->chain;
    *link = room->chain;
    idle_remove_locked(room);
    while (room->history_len)
        history_drop_oldest_locked(room);
    free(room->history);
    free(room->topic);
    free(room);
}

/* Drops the least recently used idle rooms while there are too many or
 * all rooms' history is too large. */
static void trim_locked(void)
{
    while (idle_oldest && (idle_count > ROOMS_IDLE_MAX
                           || history_total > HISTORY_BYTES_MAX))
        room_free_locked(idle_oldest);
}

/* Makes the ring hold max lines, keeping the newest. On allocation
 * failure the ring stays as it was. */
static void history_resize_locked(room_t *room, size_t max)
{
    line_t *ring = max ? calloc(max, sizeof(*ring)) : NULL;
    size_t i;

    if (max && !ring)
        return;
    while (room->history_len > max)
        history_drop_oldest_locked(room);
    for (i = 0; i < room->history_len; i++)
        ring[i] = room->history[(room->history_first + i)
                                % room->history_max];
    free(room->history);
    room->history = ring;
    room->history_max = max;
    room->history_first = 0;
}

/* Keeps its own copy of a message object for newcomers: at most
 * history_max of them and ROOM_HISTORY_BYTES in all, the oldest going
 * first. */
static void history_add_locked(room_t *room, const void *data, size_t len)
{
    line_t *slot;
    char *copy;

    if (!room->history_max || len > ROOM_HISTORY_BYTES
        || !(copy = malloc(len)))
        return;
    memcpy(copy, data, len);
    while (room->history_len == room->history_max
           || room->history_bytes + len > ROOM_HISTORY_BYTES)
        history_drop_oldest_locked(room);
    slot = &room->history[(room->history_first + room->history_len)
                          % room->history_max];
    slot->data = copy;
    slot->len = len;
    room->history_len++;
    room->history_bytes += len;
    history_total += len;
}

/* {"type":"history","messages":[...]}, oldest first. 0 when the
 * connection's queue refused it. */
static int send_history_locked(room_t *room, mws_conn_t *conn)
{
    buf_t msg = { 0 };
    size_t i;
    int ok;

    buf_str(&msg, "{\"type\":\"history\",\"messages\":[");
    for (i = 0; i < room->history_len; i++) {
        const line_t *l = &room->history[(room->history_first + i)
                                         % room->history_max];
        if (i)
            buf_add(&msg, ",", 1);
        buf_add(&msg, l->data, l->len);
    }
    buf_str(&msg, "]}");
    ok = !msg.failed
        && mws_send_text(conn, msg.data, msg.len) == MWS_SEND_QUEUED;
    free(msg.data);
    return ok;
}

/* A notice with the member's name: {"type":"join","name":"bob"}. */
static void notice(buf_t *msg, const char *type, const member_t *m)
{
    buf_str(msg, "{\"type\":\"");
    buf_str(msg, type);
    buf_str(msg, "\",\"name\":");
    buf_str(msg, m->name_json);
    buf_str(msg, "}");
}

/* Formats once and publishes to the member's room, wherever its members
 * are. -1 when it could not be published. Never with 'lock' held. */
static int publish(const member_t *m, const buf_t *msg)
{
    if (msg->failed)
        return -1;
    return mws_publish(m->conn, m->room->topic, MWS_TEXT, msg->data,
                       msg->len);
}

/* An {"type":"error","text":"..."} to one client. */
static void send_error(mws_conn_t *conn, const char *text)
{
    buf_t msg = { 0 };

    buf_str(&msg, "{\"type\":\"error\",\"text\":");
    buf_json(&msg, text, strlen(text));
    buf_str(&msg, "}");
    if (!msg.failed)
        mws_send_text(conn, msg.data, msg.len);
    free(msg.data);
}

/* ---- settings ---- */

/* Writes one line to httpd's main error log, where a plugin's stderr
 * goes, the first time *warned is set in this process. */
#define WARN_ONCE(warned, ...) do {                                       \
        if (!__atomic_exchange_n((warned), 1, __ATOMIC_RELAXED)) {        \
            fprintf(stderr, __VA_ARGS__);                                 \
            fflush(stderr); /* httpd's daemon leaves stderr buffered */   \
        }                                                                 \
    } while (0)

/* A whole number setting within min..max, or def (with one line in the
 * error log per process and key). */
static long setting(mws_conn_t *conn, const char *key, long def, long min,
                    long max, int *warned)
{
    const char *value = mws_setting(conn, key);
    char *end;
    long v;

    if (!value)
        return def;
    errno = 0;
    v = strtol(value, &end, 10);
    if (end != value && !*end && !errno && v >= min && v <= max)
        return v;
    WARN_ONCE(warned, "chat: %s: WebSocketSetting %s \"%s\" is not a whole "
              "number from %ld to %ld; using %ld\n", mws_location(conn), key,
              value, min, max, def);
    return def;
}

/* ---- callbacks ---- */

static void member_free(member_t *m)
{
    free(m->name_json);
    free(m);
}

/* Into the room, with 'lock' held: the newcomer first learns its name,
 * then the history, and subscribes last. Subscribing after the history
 * was copied, under the lock that on_topic_message takes before the
 * module delivers a message to the subscribers, means that no message is
 * missed: one that on_topic_message kept before is in the history, and
 * one it keeps after comes live, after the history. (One being delivered
 * at that very moment may come both ways.) All of it queues before the
 * 101 is sent and leaves right after it. 0, or the HTTP status to refuse
 * with: 503 when its queue cannot take the welcome or the history, 500
 * when it cannot subscribe. */
static int join_locked(room_t *room, member_t *m, size_t history)
{
    buf_t msg = { 0 };
    int refused;

    if (room->history_max != history)
        history_resize_locked(room, history);
    buf_str(&msg, "{\"type\":\"welcome\",\"name\":");
    buf_str(&msg, m->name_json);
    buf_str(&msg, ",\"room\":");
    buf_json(&msg, room->topic, strlen(room->topic));
    buf_str(&msg, "}");
    refused = msg.failed
        || mws_send_text(m->conn, msg.data, msg.len) != MWS_SEND_QUEUED;
    free(msg.data);
    if (refused)
        return 503;
    /* A history that its queue refuses is left out: the newcomer stays,
     * unless the refusal closed it (WebSocketQueuePolicy close-1008). */
    if (history && !send_history_locked(room, m->conn))
        refused = 1;
    if (mws_subscribe(m->conn, room->topic))
        return refused ? 503 : 500;
    return 0;
}

static int on_open(mws_conn_t *conn)
{
    static int warned_name, warned_history, warned_text, warned_topic;
    size_t name_max = (size_t)setting(conn, "name_max", DEFAULT_NAME_MAX, 1,
                                      256, &warned_name);
    size_t history = (size_t)setting(conn, "history", DEFAULT_HISTORY, 0,
                                     1000, &warned_history);
    size_t max_text = (size_t)setting(conn, "max_text", DEFAULT_MAX_TEXT, 1,
                                      MAX_TEXT_LIMIT, &warned_text);
    buf_t name = { 0 }, json = { 0 }, msg = { 0 };
    member_t *m = NULL;
    room_t *room = NULL;
    char *topic = NULL;
    char guest[32];
    int status;

    if ((status = topic_from_query(mws_location(conn), mws_query(conn),
                                   &topic)))
        return status;
    status = 503;
    if (!(m = calloc(1, sizeof(*m))))
        goto out;
    m->conn = conn;
    m->max_text = max_text;
    if (mws_query(conn))
        name_from_query(mws_query(conn), name_max, &name);

    pthread_mutex_lock(&lock);
    if (exiting || (!(room = room_find_locked(topic))
                    && !(room = room_new_locked(topic)))) {
        pthread_mutex_unlock(&lock);
        goto out;
    }
    if (room->members++ == 0)
        idle_remove_locked(room);
    m->room = room;
    if (!name.len) {
        snprintf(guest, sizeof(guest), "guest-%lu", ++room->guests);
        buf_str(&name, guest);
    }
    buf_json(&json, name.data, name.len);
    m->name_json = json.data;
    status = name.failed || json.failed ? 503 : join_locked(room, m, history);
    if (status && --room->members == 0) {
        idle_push_locked(room);
        trim_locked();
    }
    pthread_mutex_unlock(&lock);
    if (status == 500)
        WARN_ONCE(&warned_topic, "chat: %s: cannot subscribe to the topic "
                  "%s (WebSocketTopicPrefix must allow it, and it must be at "
                  "most 200 printable ASCII characters, no space); refusing "
                  "with 500\n", mws_location(conn), topic);
    if (status)
        goto out;

    mws_set_data(conn, m);
    notice(&msg, "join", m);
    publish(m, &msg);
    free(msg.data);
    m = NULL;
out:
    if (m)
        member_free(m);
    free(name.data);
    free(topic);
    return status;
}

static void on_message(mws_conn_t *conn, mws_type_e type, const void *data,
                       size_t len)
{
    member_t *m = mws_get_data(conn);
    buf_t msg = { 0 };

    if (type != MWS_TEXT) {
        send_error(conn, "binary messages are not supported");
        return;
    }
    if (len > m->max_text) {
        send_error(conn, "message too long");
        return;
    }
    if (len == 0)
        return;
    /* The module has checked that text is UTF-8. */
    buf_str(&msg, message_head);
    buf_str(&msg, m->name_json);
    buf_str(&msg, ",\"text\":");
    buf_json(&msg, data, len);
    buf_str(&msg, "}");
    /* Over WebSocketTopicMessageLimit once escaped, or the module's bus
     * is full. */
    if (publish(m, &msg))
        send_error(conn, "message not sent");
    free(msg.data);
}

/* What the room says, from any process, before its members here get it:
 * kept for newcomers. A room's messages are recognised by their start,
 * whatever the topic, so that a process keeps the history of rooms none
 * of its connections has joined yet (but that one may join). */
static void on_topic_message(const char *topic, mws_type_e type,
                             const void *data, size_t len)
{
    room_t *room;

    if (type != MWS_TEXT || len < sizeof(message_head) - 1
        || memcmp(data, message_head, sizeof(message_head) - 1))
        return;
    pthread_mutex_lock(&lock);
    if (exiting)
        room = NULL;
    else if (!(room = room_find_locked(topic))
             && (room = room_new_locked(topic)))
        /* Until a member here brings its <Location>'s setting. */
        history_resize_locked(room, DEFAULT_HISTORY);
    if (room) {
        history_add_locked(room, data, len);
        if (!room->members) {
            idle_remove_locked(room);
            idle_push_locked(room);     /* used just now */
        }
        trim_locked();
    }
    pthread_mutex_unlock(&lock);
}

static void on_close(mws_conn_t *conn, uint16_t code, const char *reason,
                     int clean)
{
    member_t *m = mws_get_data(conn);
    buf_t msg = { 0 };

    (void)code;
    (void)reason;
    (void)clean;
    if (!m)
        return;
    /* Not to itself; then to everyone left, wherever they are. */
    mws_unsubscribe(conn, m->room->topic);
    notice(&msg, "leave", m);
    publish(m, &msg);
    free(msg.data);
    pthread_mutex_lock(&lock);
    if (--m->room->members == 0) {
        idle_push_locked(m->room);
        trim_locked();
    }
    pthread_mutex_unlock(&lock);
    mws_set_data(conn, NULL);
    member_free(m);
}

/* The process is exiting and its connections have closed: free the rooms,
 * and keep nothing more (the bus may still deliver until the module
 * closes it). A room that somehow still has members is left alone rather
 * than freed under them. */
static void process_exit(void)
{
    pthread_mutex_lock(&lock);
    exiting = 1;
    while (idle_oldest)
        room_free_locked(idle_oldest);
    pthread_mutex_unlock(&lock);
}

static const mws_plugin_t chat = {
    MWS_PLUGIN_HEADER,
    .name = "chat",
    .process_exit = process_exit,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
    .on_topic_message = on_topic_message,
};

MWS_PLUGIN_EXPORT const mws_plugin_t *chat_plugin(void)
{
    return &chat;
}
