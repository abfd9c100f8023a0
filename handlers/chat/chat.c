/* chat: a chat room per <Location>. Every text message a client sends goes
 * to everyone in the room, the sender included, as a JSON object naming
 * the sender; joins and leaves are announced; a newcomer gets the last few
 * messages. The protocol (one JSON object per WebSocket text message) and
 * the settings are in README.md.
 *
 * A room lives in one httpd child process: clients served by different
 * processes do not see each other. Run the chat's server with one child
 * (event or worker MPM, ServerLimit 1) or put a message bus behind it.
 *
 * Threads and locks. Each connection's callbacks run on its own thread,
 * so on_open, on_message and on_close of different clients run at the same
 * time. Two kinds of lock, always taken in this order:
 *
 *   rooms_lock   the list of rooms (taken alone, briefly, to find a room)
 *   room->lock   one room: its members, its history, its guest counter
 *
 * and, inside mws_send() and mws_close(), the module's own per-connection
 * lock, which the module never holds while it calls us. A message is
 * formatted outside any lock, then sent to every member with room->lock
 * held, so every member sees the room's messages in the same order. Sends
 * only queue, never wait for a client: a slow client's queue fills up to
 * WebSocketQueueLimit, and a message that does not fit closes that client
 * (1008, or as WebSocketQueuePolicy says) instead of stalling the others or
 * growing without bound.
 *
 * Handles: a member's handle is used by other threads only while the
 * member is in its room's list, under room->lock, and on_close takes it
 * out before it returns, which is as long as a handle stays valid. So no
 * mws_hold() is needed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mod_websocket_plugin.h>

#define DEFAULT_NAME_MAX   32
#define DEFAULT_HISTORY    20
#define DEFAULT_MAX_TEXT   4096

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

/* The name from the first "name=" of the query string, percent-decoded
 * ('+' is a space, as HTML forms send it), made safe: bytes that are not
 * UTF-8 become U+FFFD, blank_in_name() characters a space, spaces trimmed
 * at both ends, at most name_max characters (never a character cut in
 * two). Empty when there is no usable name. Appended to out as UTF-8. */
static void name_from_query(const char *query, size_t name_max, buf_t *out)
{
    const char *p = query, *end;
    unsigned char *raw;
    size_t n = 0, i, used, chars = 0;
    char enc[4];
    long cp;
    int hi, lo;

    while (p && strncmp(p, "name=", 5)) {
        p = strchr(p, '&');
        p = p ? p + 1 : NULL;
    }
    if (!p)
        return;
    p += 5;
    end = strchr(p, '&');
    end = end ? end : p + strlen(p);
    if (!(raw = malloc((size_t)(end - p) + 1)))
        return;
    while (p < end) {
        if (*p == '%' && end - p >= 3 && (hi = hexval(p[1])) >= 0
            && (lo = hexval(p[2])) >= 0) {
            raw[n++] = (unsigned char)(hi << 4 | lo);
            p += 3;
        }
        else {
            raw[n++] = *p == '+' ? ' ' : (unsigned char)*p;
            p++;
        }
    }
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

/* ---- rooms ---- */

typedef struct member member_t;

typedef struct {
    char *data;                 /* a {"type":"message",...} object */
    size_t len;
} line_t;

typedef struct room {
    struct room *next;          /* under rooms_lock */
    char *name;                 /* the <Location>; set once */

    pthread_mutex_t lock;       /* guards everything below */
    member_t *members;
    unsigned long online;
    unsigned long guests;       /* numbers guest names */
    line_t *history;            /* ring of history_max lines */
    size_t history_max, history_len, history_first;
} room_t;

struct member {
    member_t *next, *prev;      /* in room->members, under room->lock */
    room_t *room;
    mws_conn_t *conn;
    size_t max_text;            /* this connection's setting */
    char *name_json;            /* the name, a quoted JSON string */
};

static pthread_mutex_t rooms_lock = PTHREAD_MUTEX_INITIALIZER;
static room_t *rooms;           /* under rooms_lock */

/* The room of a <Location>, made on first use with that connection's
 * history setting. Rooms last as long as the process (there is one per
 * <Location> that names the plugin), so their history outlives a moment
 * when nobody is in. NULL when out of memory. */
static room_t *room_get(const char *name, size_t history_max)
{
    room_t *room;

    pthread_mutex_lock(&rooms_lock);
    for (room = rooms; room; room = room->next)
        if (!strcmp(room->name, name))
            break;
    if (!room && (room = calloc(1, sizeof(*room)))) {
        room->name = strdup(name);
        room->history_max = history_max;
        room->history = history_max ? calloc(history_max, sizeof(line_t))
                                    : NULL;
        if (!room->name || (history_max && !room->history)) {
            free(room->name);
            free(room);
            room = NULL;
        }
        else {
            pthread_mutex_init(&room->lock, NULL);
            room->next = rooms;
            rooms = room;
        }
    }
    pthread_mutex_unlock(&rooms_lock);
    return room;
}

/* Queue a message to one member. A client whose queue is full cannot keep
 * up with the room; under WebSocketQueuePolicy refuse it would silently
 * miss messages, so it is closed (the close policies have already done
 * so). */
static void send_locked(member_t *m, const buf_t *msg)
{
    if (mws_send_text(m->conn, msg->data, msg->len) == MWS_SEND_REFUSED)
        mws_close(m->conn, 1008, "too slow");
}

/* One mws_send_many() for the room: the module stores the message once,
 * and compresses it once for all the members that share its deflate
 * parameters. */
static void broadcast_locked(room_t *room, const buf_t *msg)
{
    mws_conn_t **conns = malloc(room->online * sizeof(*conns));
    mws_send_result_e *results = malloc(room->online * sizeof(*results));
    member_t *m;
    size_t n = 0, i;

    if (!conns || !results) {
        for (m = room->members; m; m = m->next)
            send_locked(m, msg);
    }
    else {
        for (m = room->members; m; m = m->next)
            conns[n++] = m->conn;
        mws_send_many(conns, n, MWS_TEXT, msg->data, msg->len, results);
        for (i = 0; i < n; i++)
            if (results[i] == MWS_SEND_REFUSED)
                mws_close(conns[i], 1008, "too slow");
    }
    free(conns);
    free(results);
}

/* Keeps its own copy of a message object for newcomers. */
static void history_add_locked(room_t *room, const buf_t *msg)
{
    line_t *slot;
    char *copy;

    if (!room->history_max || !(copy = malloc(msg->len)))
        return;
    memcpy(copy, msg->data, msg->len);
    if (room->history_len == room->history_max) {
        slot = &room->history[room->history_first];
        free(slot->data);
        room->history_first = (room->history_first + 1) % room->history_max;
    }
    else {
        slot = &room->history[(room->history_first + room->history_len)
                              % room->history_max];
        room->history_len++;
    }
    slot->data = copy;
    slot->len = msg->len;
}

/* {"type":"history","messages":[...]}, oldest first. A history larger than
 * the newcomer's queue limit is skipped rather than closing it. */
static void send_history_locked(room_t *room, member_t *m)
{
    buf_t msg = { 0 };
    size_t i;

    buf_str(&msg, "{\"type\":\"history\",\"messages\":[");
    for (i = 0; i < room->history_len; i++) {
        const line_t *l = &room->history[(room->history_first + i)
                                         % room->history_max];
        if (i)
            buf_add(&msg, ",", 1);
        buf_add(&msg, l->data, l->len);
    }
    buf_str(&msg, "]}");
    if (!msg.failed)
        mws_send_text(m->conn, msg.data, msg.len);
    free(msg.data);
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

/* A whole number setting within min..max, or def (with one line in the
 * error log per process and key: a plugin's stderr goes to httpd's main
 * error log). */
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
    if (!__atomic_exchange_n(warned, 1, __ATOMIC_RELAXED)) {
        fprintf(stderr, "chat: %s: WebSocketSetting %s \"%s\" is not a whole "
                "number from %ld to %ld; using %ld\n", mws_location(conn),
                key, value, min, max, def);
        fflush(stderr);     /* httpd's daemon leaves stderr buffered */
    }
    return def;
}

/* ---- callbacks ---- */

static void member_free(member_t *m)
{
    free(m->name_json);
    free(m);
}

/* Into the room: the newcomer first learns its name, then the history,
 * then hears its own join with everyone else. All of it queues before the
 * 101 is sent and leaves right after it. */
static void join_locked(room_t *room, member_t *m)
{
    buf_t msg = { 0 };
    char online[40];

    m->next = room->members;
    if (room->members)
        room->members->prev = m;
    room->members = m;
    room->online++;

    snprintf(online, sizeof(online), ",\"online\":%lu}", room->online);
    buf_str(&msg, "{\"type\":\"welcome\",\"name\":");
    buf_str(&msg, m->name_json);
    buf_str(&msg, ",\"room\":");
    buf_json(&msg, room->name, strlen(room->name));
    buf_str(&msg, online);
    if (!msg.failed)
        send_locked(m, &msg);
    if (room->history_max)
        send_history_locked(room, m);
    msg.len = 0;
    notice(&msg, "join", m);
    if (!msg.failed)
        broadcast_locked(room, &msg);
    free(msg.data);
}

static int on_open(mws_conn_t *conn)
{
    static int warned_name, warned_history, warned_text;
    size_t name_max = (size_t)setting(conn, "name_max", DEFAULT_NAME_MAX, 1,
                                      256, &warned_name);
    size_t history = (size_t)setting(conn, "history", DEFAULT_HISTORY, 0,
                                     1000, &warned_history);
    room_t *room = room_get(mws_location(conn), history);
    member_t *m = calloc(1, sizeof(*m));
    buf_t name = { 0 }, json = { 0 };
    char guest[32];

    if (!m || !room) {
        free(m);
        return 503;
    }
    m->conn = conn;
    m->room = room;
    m->max_text = (size_t)setting(conn, "max_text", DEFAULT_MAX_TEXT, 1,
                                  16L << 20, &warned_text);
    if (mws_query(conn))
        name_from_query(mws_query(conn), name_max, &name);

    pthread_mutex_lock(&room->lock);
    if (!name.len) {
        snprintf(guest, sizeof(guest), "guest-%lu", ++room->guests);
        buf_str(&name, guest);
    }
    buf_json(&json, name.data, name.len);
    free(name.data);
    m->name_json = json.data;
    if (name.failed || json.failed) {
        pthread_mutex_unlock(&room->lock);
        member_free(m);
        return 503;
    }
    join_locked(room, m);
    pthread_mutex_unlock(&room->lock);
    mws_set_data(conn, m);
    return 0;
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
    buf_str(&msg, "{\"type\":\"message\",\"from\":");
    buf_str(&msg, m->name_json);
    buf_str(&msg, ",\"text\":");
    buf_json(&msg, data, len);
    buf_str(&msg, "}");
    if (!msg.failed) {
        pthread_mutex_lock(&m->room->lock);
        history_add_locked(m->room, &msg);
        broadcast_locked(m->room, &msg);
        pthread_mutex_unlock(&m->room->lock);
    }
    free(msg.data);
}

static void on_close(mws_conn_t *conn, uint16_t code, const char *reason,
                     int clean)
{
    member_t *m = mws_get_data(conn);
    room_t *room;
    buf_t msg = { 0 };

    (void)code;
    (void)reason;
    (void)clean;
    if (!m)
        return;
    room = m->room;
    notice(&msg, "leave", m);
    pthread_mutex_lock(&room->lock);
    if (m->prev)
        m->prev->next = m->next;
    else
        room->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    room->online--;
    if (!msg.failed)
        broadcast_locked(room, &msg);
    pthread_mutex_unlock(&room->lock);
    free(msg.data);
    mws_set_data(conn, NULL);
    member_free(m);
}

/* The process is exiting and its connections have closed: free the rooms.
 * A room that somehow still has members is left alone rather than freed
 * under them. */
static void process_exit(void)
{
    room_t *room, **link;
    size_t i;

    pthread_mutex_lock(&rooms_lock);
    for (link = &rooms; (room = *link);) {
        int busy;

        pthread_mutex_lock(&room->lock);
        busy = room->members != NULL;
        pthread_mutex_unlock(&room->lock);
        if (busy) {
            link = &room->next;
            continue;
        }
        *link = room->next;
        for (i = 0; i < room->history_max; i++)
            free(room->history[i].data);
        free(room->history);
        free(room->name);
        pthread_mutex_destroy(&room->lock);
        free(room);
    }
    pthread_mutex_unlock(&rooms_lock);
}

static const mws_plugin_t chat = {
    MWS_PLUGIN_HEADER,
    .name = "chat",
    .process_exit = process_exit,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

MWS_PLUGIN_EXPORT const mws_plugin_t *chat_plugin(void)
{
    return &chat;
}
