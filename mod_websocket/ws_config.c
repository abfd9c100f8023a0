/* ws_config.c: the WebSocket* directives, their defaults, and the merge of
 * nested sections' configurations.
 *
 * The directive handlers run only while httpd reads its configuration and
 * report a bad value by returning a message that names the directive and
 * the value. The merge also runs per request (httpd merges the sections
 * that match a URL in r->pool), so it must stay cheap and must not log or
 * allocate more than the struct and, rarely, one settings table.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "apr_lib.h"
#include "apr_strings.h"
#include "apr_tables.h"
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include "ws_bus.h"
#include "ws_config.h"
#include "ws_origin.h"
#include "ws_pmd_negotiate.h"
#include "ws_redis.h"
#include "ws_topic.h"

/* Which fields a section's own directives set (ws_dir_conf_t.set). */
#define WS_SET_HANDLER       (1u << 0)
#define WS_SET_PROTOCOLS     (1u << 1)
#define WS_SET_ORIGIN        (1u << 2)   /* origin_mode and origins */
#define WS_SET_NONUPGRADE    (1u << 3)
#define WS_SET_SETTINGS      (1u << 4)
#define WS_SET_LOG_LEVEL     (1u << 5)
#define WS_SET_MAX_FRAME     (1u << 6)
#define WS_SET_MAX_MESSAGE   (1u << 7)
#define WS_SET_MAX_FRAGMENTS (1u << 8)
#define WS_SET_QUEUE_CAP     (1u << 9)
#define WS_SET_QUEUE_POLICY  (1u << 10)
#define WS_SET_FRAGMENT_SIZE (1u << 11)
#define WS_SET_PING          (1u << 12)
#define WS_SET_IDLE          (1u << 13)
#define WS_SET_CLOSE         (1u << 14)
#define WS_SET_DRIVER        (1u << 15)
#define WS_SET_DEFLATE       (1u << 16)
#define WS_SET_DEFLATE_MODE  (1u << 17)   /* mode, window bits, mem level */
#define WS_SET_DEFLATE_LEVEL (1u << 18)
#define WS_SET_DEFLATE_MIN   (1u << 19)
#define WS_SET_TOPIC_PREFIX  (1u << 20)
#define WS_SET_TOPIC_LIMIT   (1u << 21)

/* The driver a location gets without WebSocketDriver. */
#define WS_DRIVER_DEFAULT    WS_DRIVER_AUTO

/* permessage-deflate without its directives: on, with no zlib state held
 * by an idle connection (shared), at the level that costs least CPU for
 * most of the gain (1 KiB of JSON: 31% of its size at ~13 us against 25%
 * at ~34 us for level 6), for messages of 256 bytes or more (below that
 * the 4-byte trailer and zlib's block header eat most of the gain). */
#define WS_DEFLATE_DEFAULT_BITS      15
#define WS_DEFLATE_DEFAULT_MEM_LEVEL 8
#define WS_DEFLATE_DEFAULT_LEVEL     1
#define WS_DEFLATE_DEFAULT_MIN_SIZE  256

/* An explicit size never reaches WS_UNLIMITED and always fits the int64_t
 * fields. */
#define WS_SIZE_MAX ((uint64_t)INT64_MAX)

/* ---- parsing values ---- */

/* A byte count with an optional K, M or G suffix (binary, any case). On
 * failure returns the end of a message about arg, else NULL. */
static const char *parse_size(const char *arg, uint64_t *out)
{
    const char *pos = arg;
    uint64_t n = 0, unit = 1;

    if (*pos == '-')
        return "is negative";
    if (!apr_isdigit(*pos))
        return "is not a size";
    for (; apr_isdigit(*pos); pos++) {
        unsigned int digit = (unsigned int)(*pos - '0');

        if (n > (WS_SIZE_MAX - digit) / 10)
            return "is too large";
        n = n * 10 + digit;
    }
    switch (*pos) {
    case 'k': case 'K': unit = (uint64_t)1 << 10; pos++; break;
    case 'm': case 'M': unit = (uint64_t)1 << 20; pos++; break;
    case 'g': case 'G': unit = (uint64_t)1 << 30; pos++; break;
    default: break;
    }
    if (*pos)
        return "is not a size";
    if (n == 0)
        return "must be more than zero";
    if (n > WS_SIZE_MAX / unit)
        return "is too large";
    *out = n * unit;
    return NULL;
}

/* A positive time for ap_timeout_parameter_parse(), seconds by default.
 * httpd's parser ignores text after the unit and does not check for
 * overflow, so the syntax and range are checked here first. */
static const char *parse_time(const char *arg, apr_interval_time_t *out)
{
    static const struct {
        const char *name;
        int64_t usec;
    } units[] = {
        { "", APR_USEC_PER_SEC }, { "ms", 1000 }, { "s", APR_USEC_PER_SEC },
        { "mi", 60 * APR_USEC_PER_SEC }, { "min", 60 * APR_USEC_PER_SEC },
        { "h", 3600 * APR_USEC_PER_SEC }
    };
    const char *pos = arg;
    int64_t n = 0;
    size_t i;

    if (*pos == '-')
        return "is negative";
    if (!apr_isdigit(*pos))
        return "is not a time";
    for (; apr_isdigit(*pos); pos++) {
        if (n > (INT64_MAX - 9) / 10)
            return "is too large";
        n = n * 10 + (*pos - '0');
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (!strcmp(pos, units[i].name))
            break;
    if (i == sizeof(units) / sizeof(units[0]))
        return "is not a time";
    if (n == 0)
        return "must be more than zero";
    if (n > INT64_MAX / units[i].usec)
        return "is too large";
    if (ap_timeout_parameter_parse(arg, out, "s") != APR_SUCCESS)
        return "is not a time";
    return NULL;
}

/* RFC 7230 §3.2.6 token, the syntax of a subprotocol name (RFC 6455
 * §4.1). */
static int is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!apr_isalnum(*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return 0;
    return 1;
}

/* A C identifier: what dlsym() can find. */
static int is_identifier(const char *s)
{
    if (!apr_isalpha(*s) && *s != '_')
        return 0;
    for (s++; *s; s++)
        if (!apr_isalnum(*s) && *s != '_')
            return 0;
    return 1;
}

static int array_has(const apr_array_header_t *a, const char *s)
{
    int i;

    for (i = 0; i < a->nelts; i++)
        if (!strcmp(APR_ARRAY_IDX(a, i, const char *), s))
            return 1;
    return 0;
}

/* ---- directive handlers ---- */

static const char *ws_cmd_handler(cmd_parms *cmd, void *dconf,
                                  const char *file, const char *symbol)
{
    ws_dir_conf_t *conf = dconf;
    const char *path = ap_server_root_relative(cmd->pool, file);
    const char *err;

    if (!path)
        return apr_psprintf(cmd->pool, "%s: invalid plugin path '%s'",
                            cmd->cmd->name, file);
    if (!symbol) {
        /* echo.so and echo.so.1 both export echo_plugin. */
        const char *base = strrchr(path, '/');

        base = base ? base + 1 : path;
        symbol = apr_pstrcat(cmd->pool,
                             apr_pstrndup(cmd->pool, base, strcspn(base, ".")),
                             "_plugin", NULL);
        if (!is_identifier(symbol))
            return apr_psprintf(cmd->pool, "%s: the symbol '%s' derived from "
                                "'%s' is not a C identifier; name the plugin's "
                                "symbol as the second argument",
                                cmd->cmd->name, symbol, file);
    }
    else if (!is_identifier(symbol)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a C identifier",
                            cmd->cmd->name, symbol);
    }
    if ((err = ws_plugin_host_load(cmd, path, symbol, &conf->plugin)))
        return err;
    conf->set |= WS_SET_HANDLER;
    return NULL;
}

/* Lines add to the section's list, so a long one may be split; "none"
 * empties it, which also hides a list inherited from an outer section. */
static const char *ws_cmd_protocols(cmd_parms *cmd, void *dconf, int argc,
                                    char *const argv[])
{
    ws_dir_conf_t *conf = dconf;
    int i;

    if (argc == 0)
        return apr_psprintf(cmd->pool, "%s needs a subprotocol name or none",
                            cmd->cmd->name);
    if (argc == 1 && !strcasecmp(argv[0], "none")) {
        apr_array_clear(conf->protocols);
        conf->set |= WS_SET_PROTOCOLS;
        return NULL;
    }
    for (i = 0; i < argc; i++) {
        if (!strcasecmp(argv[i], "none"))
            return apr_psprintf(cmd->pool, "%s: 'none' must stand alone",
                                cmd->cmd->name);
        if (!is_token(argv[i]))
            return apr_psprintf(cmd->pool, "%s: '%s' is not a subprotocol "
                                "name (an RFC 7230 token)",
                                cmd->cmd->name, argv[i]);
        if (!array_has(conf->protocols, argv[i]))
            APR_ARRAY_PUSH(conf->protocols, const char *) = argv[i];
    }
    conf->set |= WS_SET_PROTOCOLS;
    return NULL;
}

/* "same" and "any" replace whatever the section said before; origins add
 * to the section's list. */
static const char *ws_cmd_origin(cmd_parms *cmd, void *dconf, int argc,
                                 char *const argv[])
{
    ws_dir_conf_t *conf = dconf;
    int i;

    if (argc == 0)
        return apr_psprintf(cmd->pool, "%s needs same, any or a list of "
                            "origins", cmd->cmd->name);
    if (argc == 1 && (!strcasecmp(argv[0], "same")
                      || !strcasecmp(argv[0], "any"))) {
        conf->origin_mode = !strcasecmp(argv[0], "same") ? WS_ORIGIN_SAME
                                                         : WS_ORIGIN_ANY;
        apr_array_clear(conf->origins);
        conf->set |= WS_SET_ORIGIN;
        return NULL;
    }
    if (conf->origin_mode != WS_ORIGIN_LIST)
        apr_array_clear(conf->origins);
    for (i = 0; i < argc; i++) {
        const char *origin;

        if (!strcasecmp(argv[i], "same") || !strcasecmp(argv[i], "any"))
            return apr_psprintf(cmd->pool, "%s: '%s' must stand alone",
                                cmd->cmd->name, argv[i]);
        if (!(origin = ws_origin_normalize(cmd->pool, argv[i])))
            return apr_psprintf(cmd->pool, "%s: '%s' is not an origin "
                                "(http:// or https://, a host and an "
                                "optional :port, no path)",
                                cmd->cmd->name, argv[i]);
        if (!array_has(conf->origins, origin))
            APR_ARRAY_PUSH(conf->origins, const char *) = origin;
    }
    conf->origin_mode = WS_ORIGIN_LIST;
    conf->set |= WS_SET_ORIGIN;
    return NULL;
}

static const char *ws_cmd_nonupgrade(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    ws_dir_conf_t *conf = dconf;

    if (!strcasecmp(arg, "refuse"))
        conf->nonupgrade = WS_NONUPGRADE_REFUSE;
    else if (!strcasecmp(arg, "decline"))
        conf->nonupgrade = WS_NONUPGRADE_DECLINE;
    else
        return apr_psprintf(cmd->pool, "%s: '%s' is neither refuse nor "
                            "decline", cmd->cmd->name, arg);
    conf->set |= WS_SET_NONUPGRADE;
    return NULL;
}

static const char *ws_cmd_driver(cmd_parms *cmd, void *dconf, const char *arg)
{
    ws_dir_conf_t *conf = dconf;

    if (!strcasecmp(arg, "auto"))
        conf->driver = WS_DRIVER_AUTO;
    else if (!strcasecmp(arg, "blocking"))
        conf->driver = WS_DRIVER_BLOCKING;
    else if (!strcasecmp(arg, "async"))
        conf->driver = WS_DRIVER_ASYNC;
    else
        return apr_psprintf(cmd->pool, "%s: '%s' is not auto, blocking or "
                            "async", cmd->cmd->name, arg);
    conf->set |= WS_SET_DRIVER;
    return NULL;
}

/* Where a handler shared by several directives writes (their cmd->info). */
typedef struct {
    size_t offset;       /* in ws_dir_conf_t */
    unsigned int bit;    /* WS_SET_* */
    int may_be_off;      /* times: "off" is allowed */
} ws_field_t;

#define WS_FIELD(name, field, bit, off) \
    static const ws_field_t name = { offsetof(ws_dir_conf_t, field), \
                                     bit, off }
WS_FIELD(field_max_frame, max_frame_size, WS_SET_MAX_FRAME, 0);
WS_FIELD(field_max_message, max_message_size, WS_SET_MAX_MESSAGE, 0);
WS_FIELD(field_queue_cap, queue_cap, WS_SET_QUEUE_CAP, 0);
WS_FIELD(field_ping, ping_interval, WS_SET_PING, 1);
WS_FIELD(field_idle, idle_timeout, WS_SET_IDLE, 1);
WS_FIELD(field_close, close_timeout, WS_SET_CLOSE, 0);

/* WebSocketMaxFrameSize, WebSocketMaxMessageSize and WebSocketQueueLimit,
 * whose fields are uint64_t. */
static const char *ws_cmd_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    ws_dir_conf_t *conf = dconf;
    const ws_field_t *field = cmd->info;
    uint64_t value = WS_UNLIMITED;
    const char *why;

    if (strcasecmp(arg, "unlimited") && (why = parse_size(arg, &value)))
        return apr_psprintf(cmd->pool, "%s: '%s' %s (use a byte count with an "
                            "optional K, M or G suffix, at most %"
                            APR_UINT64_T_FMT ", or unlimited)",
                            cmd->cmd->name, arg, why, WS_SIZE_MAX);
    *(uint64_t *)((char *)conf + field->offset) = value;
    conf->set |= field->bit;
    return NULL;
}

static const char *ws_cmd_fragment_size(cmd_parms *cmd, void *dconf,
                                        const char *arg)
{
    ws_dir_conf_t *conf = dconf;
    uint64_t value = 0;
    const char *why;

    if (strcasecmp(arg, "off") && (why = parse_size(arg, &value)))
        return apr_psprintf(cmd->pool, "%s: '%s' %s (use a byte count with an "
                            "optional K, M or G suffix, or off)",
                            cmd->cmd->name, arg, why);
    conf->fragment_size = (int64_t)value;
    conf->set |= WS_SET_FRAGMENT_SIZE;
    return NULL;
}

/* A count, not a size: no suffixes, and the engine keeps it in 32 bits. */
static const char *ws_cmd_max_fragments(cmd_parms *cmd, void *dconf,
                                        const char *arg)
{
    ws_dir_conf_t *conf = dconf;
    uint64_t value = 0;
    const char *why = NULL;

    if (strcasecmp(arg, "unlimited")) {
        if (*arg != '-' && arg[strspn(arg, "0123456789")])
            why = "is not a number";
        else if (!(why = parse_size(arg, &value)) && value > UINT32_MAX)
            why = "is too large";
        if (why)
            return apr_psprintf(cmd->pool, "%s: '%s' %s (use a count from 1 "
                                "to %u, or unlimited)",
                                cmd->cmd->name, arg, why, UINT32_MAX);
    }
    conf->max_fragments = (int64_t)value;
    conf->set |= WS_SET_MAX_FRAGMENTS;
    return NULL;
}

static const char *ws_cmd_queue_policy(cmd_parms *cmd, void *dconf,
                                       const char *arg)
{
    ws_dir_conf_t *conf = dconf;

    if (!strcasecmp(arg, "refuse"))
        conf->queue_policy = WS_QUEUE_REFUSE;
    else if (!strcasecmp(arg, "close-1008"))
        conf->queue_policy = WS_QUEUE_FAIL_1008;
    else if (!strcasecmp(arg, "close-1013"))
        conf->queue_policy = WS_QUEUE_FAIL_1013;
    else
        return apr_psprintf(cmd->pool, "%s: '%s' is not one of refuse, "
                            "close-1008, close-1013", cmd->cmd->name, arg);
    conf->set |= WS_SET_QUEUE_POLICY;
    return NULL;
}

/* WebSocketPingInterval, WebSocketIdleTimeout and WebSocketCloseTimeout,
 * whose fields are apr_interval_time_t; "off" stores 0. */
static const char *ws_cmd_time(cmd_parms *cmd, void *dconf, const char *arg)
{
    ws_dir_conf_t *conf = dconf;
    const ws_field_t *field = cmd->info;
    apr_interval_time_t value = 0;
    const char *why;

    if ((!field->may_be_off || strcasecmp(arg, "off"))
        && (why = parse_time(arg, &value)))
        return apr_psprintf(cmd->pool, "%s: '%s' %s (use a positive whole "
                            "number with an optional unit ms, s, min or h%s)",
                            cmd->cmd->name, arg, why,
                            field->may_be_off ? ", or off" : "");
    *(apr_interval_time_t *)((char *)conf + field->offset) = value;
    conf->set |= field->bit;
    return NULL;
}

static const char *ws_cmd_deflate(cmd_parms *cmd, void *dconf, int on)
{
    ws_dir_conf_t *conf = dconf;

    (void)cmd;
    conf->deflate = on;
    conf->set |= WS_SET_DEFLATE;
    return NULL;
}

/* A whole number from lo to hi, nothing else; -1 if arg is not one. */
static int parse_small(const char *arg, int lo, int hi)
{
    int n = 0;

    if (!apr_isdigit(*arg) || strlen(arg) > 2)
        return -1;
    for (; apr_isdigit(*arg); arg++)
        n = n * 10 + (*arg - '0');
    return *arg || n < lo || n > hi ? -1 : n;
}

/* shared | dedicated [window_bits [mem_level]]: the window and memory
 * level go with the mode, as they mean most for dedicated; an inner
 * section that names a mode also resets them to its own or the defaults. */
static const char *ws_cmd_deflate_mode(cmd_parms *cmd, void *dconf, int argc,
                                       char *const argv[])
{
    ws_dir_conf_t *conf = dconf;
    int bits = WS_DEFLATE_DEFAULT_BITS, level = WS_DEFLATE_DEFAULT_MEM_LEVEL;

    if (argc < 1 || argc > 3)
        return apr_psprintf(cmd->pool, "%s takes shared or dedicated, then "
                            "optionally window bits (9-15) and a memory "
                            "level (1-9)", cmd->cmd->name);
    if (!strcasecmp(argv[0], "shared"))
        conf->deflate_mode = WS_DEFLATE_SHARED;
    else if (!strcasecmp(argv[0], "dedicated"))
        conf->deflate_mode = WS_DEFLATE_DEDICATED;
    else
        return apr_psprintf(cmd->pool, "%s: '%s' is neither shared nor "
                            "dedicated", cmd->cmd->name, argv[0]);
    /* zlib cannot compress raw deflate with an 8-bit window. */
    if (argc > 1 && (bits = parse_small(argv[1], 9, 15)) < 0)
        return apr_psprintf(cmd->pool, "%s: window bits '%s' is not a "
                            "number from 9 to 15", cmd->cmd->name, argv[1]);
    if (argc > 2 && (level = parse_small(argv[2], 1, 9)) < 0)
        return apr_psprintf(cmd->pool, "%s: memory level '%s' is not a "
                            "number from 1 to 9", cmd->cmd->name, argv[2]);
    conf->deflate_window_bits = bits;
    conf->deflate_mem_level = level;
    conf->set |= WS_SET_DEFLATE_MODE;
    return NULL;
}

static const char *ws_cmd_deflate_level(cmd_parms *cmd, void *dconf,
                                        const char *arg)
{
    ws_dir_conf_t *conf = dconf;
    int level = parse_small(arg, 0, 9);

    if (level < 0)
        return apr_psprintf(cmd->pool, "%s: '%s' is not a level from 0 (no "
                            "compression) to 9 (best)", cmd->cmd->name, arg);
    conf->deflate_level = level;
    conf->set |= WS_SET_DEFLATE_LEVEL;
    return NULL;
}

/* A size, where 0 (compress everything) is allowed. */
static const char *ws_cmd_deflate_min_size(cmd_parms *cmd, void *dconf,
                                           const char *arg)
{
    ws_dir_conf_t *conf = dconf;
    uint64_t value = 0;
    const char *why;

    if (strcmp(arg, "0") && (why = parse_size(arg, &value)))
        return apr_psprintf(cmd->pool, "%s: '%s' %s (use a byte count with an "
                            "optional K, M or G suffix, or 0)",
                            cmd->cmd->name, arg, why);
    conf->deflate_min_size = value;
    conf->set |= WS_SET_DEFLATE_MIN;
    return NULL;
}

/* Keys compare without case, as apr_table_get() looks them up; httpd
 * already refuses an empty key or value. */
static const char *ws_cmd_setting(cmd_parms *cmd, void *dconf,
                                  const char *key, const char *value)
{
    ws_dir_conf_t *conf = dconf;

    (void)cmd;
    apr_table_set(conf->settings, key, value);
    conf->set |= WS_SET_SETTINGS;
    return NULL;
}

static const char *ws_cmd_log_level(cmd_parms *cmd, void *dconf,
                                    const char *arg)
{
    ws_dir_conf_t *conf = dconf;
    int level;

    if (!strcasecmp(arg, "off"))
        level = WS_LOG_OFF;
    else if (ap_parse_log_level(arg, &level))
        return apr_psprintf(cmd->pool, "%s: '%s' is not a log level (emerg, "
                            "alert, crit, error, warn, notice, info, debug, "
                            "trace1 to trace8, or off)", cmd->cmd->name, arg);
    conf->log_level = level;
    conf->set |= WS_SET_LOG_LEVEL;
    return NULL;
}

/* "none" and "*" stand alone; prefixes add to the section's list. */
static const char *ws_cmd_topic_prefix(cmd_parms *cmd, void *dconf, int argc,
                                       char *const argv[])
{
    ws_dir_conf_t *conf = dconf;
    int i;

    if (argc == 0)
        return apr_psprintf(cmd->pool, "%s needs topic prefixes, * or none",
                            cmd->cmd->name);
    if (!conf->topic_prefixes || !(conf->set & WS_SET_TOPIC_PREFIX))
        conf->topic_prefixes = apr_array_make(cmd->pool, 2,
                                              sizeof(const char *));
    conf->set |= WS_SET_TOPIC_PREFIX;
    if (argc == 1 && !strcasecmp(argv[0], "none")) {
        apr_array_clear(conf->topic_prefixes);
        return NULL;
    }
    if (argc == 1 && !strcmp(argv[0], "*")) {
        apr_array_clear(conf->topic_prefixes);
        APR_ARRAY_PUSH(conf->topic_prefixes, const char *) = "";
        return NULL;
    }
    for (i = 0; i < argc; i++) {
        size_t len = strlen(argv[i]);

        if (!strcasecmp(argv[i], "none") || !strcmp(argv[i], "*"))
            return apr_psprintf(cmd->pool, "%s: '%s' must stand alone",
                                cmd->cmd->name, argv[i]);
        if (len > WS_TOPIC_MAX_NAME || !ws_topic_name_valid(argv[i], len))
            return apr_psprintf(cmd->pool, "%s: '%s' is not the start of a "
                                "topic name (at most %d printable ASCII "
                                "characters, no space)", cmd->cmd->name,
                                argv[i], WS_TOPIC_MAX_NAME);
        if (!array_has(conf->topic_prefixes, argv[i]))
            APR_ARRAY_PUSH(conf->topic_prefixes, const char *) = argv[i];
    }
    return NULL;
}

static const char *ws_cmd_topic_limit(cmd_parms *cmd, void *dconf,
                                      const char *arg)
{
    ws_dir_conf_t *conf = dconf;
    uint64_t value;
    const char *why = parse_size(arg, &value);

    if (!why && value > WS_BUS_MAX_MESSAGE)
        why = "is over the bus's limit";
    if (why)
        return apr_psprintf(cmd->pool, "%s: '%s' %s (use a byte count with "
                            "an optional K suffix, at most %d)",
                            cmd->cmd->name, arg, why, WS_BUS_MAX_MESSAGE);
    conf->topic_message_limit = value;
    conf->set |= WS_SET_TOPIC_LIMIT;
    return NULL;
}

/* The server-wide settings of the configuration being read, in its pool;
 * a cleanup on that pool resets them, as each reading starts afresh. */
static ws_global_conf_t *global;
static const ws_global_conf_t global_defaults;

static apr_status_t global_cleanup(void *data)
{
    (void)data;
    global = NULL;
    return APR_SUCCESS;
}

const ws_global_conf_t *ws_config_global(void)
{
    return global ? global : &global_defaults;
}

/* The settings being read, made on the first server-wide directive. */
static ws_global_conf_t *global_for(cmd_parms *cmd)
{
    if (!global) {
        global = apr_pcalloc(cmd->pool, sizeof(*global));
        apr_pool_cleanup_register(cmd->pool, NULL, global_cleanup,
                                  apr_pool_cleanup_null);
    }
    return global;
}

/* WebSocketRedis url [ca=file] [prefix=channel-prefix] */
static const char *ws_cmd_redis(cmd_parms *cmd, void *dconf, int argc,
                                char *const argv[])
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    ws_redis_config_t parsed;
    char why[256];
    int i;

    (void)dconf;
    if (err)
        return err;
    if (argc < 1)
        return apr_psprintf(cmd->pool, "%s needs a redis:// or rediss:// "
                            "URL", cmd->cmd->name);
    /* The URL may hold a password: the message does not repeat it. */
    if (ws_redis_parse_url(argv[0], &parsed, why, sizeof(why)))
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, why);
    ws_redis_config_free(&parsed);
    global_for(cmd)->redis_url = argv[0];
    for (i = 1; i < argc; i++) {
        if (!strncasecmp(argv[i], "ca=", 3) && argv[i][3])
            global->redis_ca_file = ap_server_root_relative(cmd->pool,
                                                            argv[i] + 3);
        else if (!strncasecmp(argv[i], "prefix=", 7)
                 && strlen(argv[i] + 7) <= WS_REDIS_MAX_PREFIX)
            global->redis_prefix = argv[i] + 7;
        else
            return apr_psprintf(cmd->pool, "%s: '%s' is neither ca=file nor "
                                "prefix=channel-prefix (at most %d bytes)",
                                cmd->cmd->name, argv[i], WS_REDIS_MAX_PREFIX);
    }
    return NULL;
}

/* WebSocketRestartGrace time|off. Only the main server's: the children
 * that keep their WebSockets are the whole server's. */
static const char *ws_cmd_restart_grace(cmd_parms *cmd, void *dconf,
                                        const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_interval_time_t value = 0;
    const char *why;

    (void)dconf;
    if (err)
        return err;
    if (strcasecmp(arg, "off") && (why = parse_time(arg, &value)))
        return apr_psprintf(cmd->pool, "%s: '%s' %s (use a positive whole "
                            "number with an optional unit ms, s, min or h, "
                            "or off)", cmd->cmd->name, arg, why);
    global_for(cmd)->restart_grace = value;
    return NULL;
}

#define WS_WHERE (RSRC_CONF | ACCESS_CONF)
#define WS_AT(field) ((void *)&(field))

const command_rec ws_config_cmds[] = {
    AP_INIT_TAKE12("WebSocketHandler", ws_cmd_handler, NULL, WS_WHERE,
                   "the plugin .so to run here, and optionally its entry "
                   "symbol (default: the file's name + _plugin)"),
    AP_INIT_TAKE_ARGV("WebSocketProtocols", ws_cmd_protocols, NULL, WS_WHERE,
                      "subprotocols to accept, most preferred first, or "
                      "none"),
    AP_INIT_TAKE_ARGV("WebSocketOrigin", ws_cmd_origin, NULL, WS_WHERE,
                      "same, any, or the origins (scheme://host[:port]) whose "
                      "pages may connect"),
    AP_INIT_TAKE1("WebSocketDriver", ws_cmd_driver, NULL, WS_WHERE,
                  "auto (async where the MPM can park connections), "
                  "blocking or async"),
    AP_INIT_TAKE1("WebSocketNonUpgrade", ws_cmd_nonupgrade, NULL, WS_WHERE,
                  "refuse (426) or decline requests that are not upgrades"),
    AP_INIT_TAKE1("WebSocketMaxFrameSize", ws_cmd_size,
                  WS_AT(field_max_frame), WS_WHERE,
                  "largest incoming frame payload (K/M/G), or unlimited"),
    AP_INIT_TAKE1("WebSocketMaxMessageSize", ws_cmd_size,
                  WS_AT(field_max_message), WS_WHERE,
                  "largest incoming message (K/M/G), or unlimited"),
    AP_INIT_TAKE1("WebSocketMaxFragments", ws_cmd_max_fragments, NULL,
                  WS_WHERE, "most frames in one incoming message, or "
                  "unlimited"),
    AP_INIT_TAKE1("WebSocketQueueLimit", ws_cmd_size, WS_AT(field_queue_cap),
                  WS_WHERE, "most outgoing payload bytes queued per "
                  "connection (K/M/G), or unlimited"),
    AP_INIT_TAKE1("WebSocketQueuePolicy", ws_cmd_queue_policy, NULL,
                  WS_WHERE, "what a send past the queue limit does: refuse, "
                  "close-1008 or close-1013"),
    AP_INIT_TAKE1("WebSocketFragmentSize", ws_cmd_fragment_size, NULL,
                  WS_WHERE, "split outgoing messages into frames of at most "
                  "this payload (K/M/G), or off"),
    AP_INIT_TAKE1("WebSocketPingInterval", ws_cmd_time,
                  WS_AT(field_ping), WS_WHERE,
                  "ping after this long without input (default unit s), or "
                  "off"),
    AP_INIT_TAKE1("WebSocketIdleTimeout", ws_cmd_time, WS_AT(field_idle),
                  WS_WHERE, "close after this long without input (default "
                  "unit s), or off"),
    AP_INIT_TAKE1("WebSocketCloseTimeout", ws_cmd_time, WS_AT(field_close),
                  WS_WHERE, "how long to wait for the peer's close (default "
                  "unit s)"),
    AP_INIT_TAKE2("WebSocketSetting", ws_cmd_setting, NULL, WS_WHERE,
                  "a key and a value for the plugin"),
    AP_INIT_TAKE1("WebSocketLogLevel", ws_cmd_log_level, NULL, WS_WHERE,
                  "level of the line logged per connection, or off"),
    AP_INIT_FLAG("WebSocketDeflate", ws_cmd_deflate, NULL, WS_WHERE,
                 "accept permessage-deflate (RFC 7692) when a client offers "
                 "it: on or off"),
    AP_INIT_TAKE_ARGV("WebSocketDeflateMode", ws_cmd_deflate_mode, NULL,
                      WS_WHERE, "shared (no zlib state per idle connection) "
                      "or dedicated (context takeover), then optionally "
                      "window bits (9-15) and memory level (1-9)"),
    AP_INIT_TAKE1("WebSocketDeflateLevel", ws_cmd_deflate_level, NULL,
                  WS_WHERE, "zlib compression level, 0 to 9"),
    AP_INIT_TAKE1("WebSocketDeflateMinSize", ws_cmd_deflate_min_size, NULL,
                  WS_WHERE, "outgoing messages smaller than this (K/M/G) "
                  "are sent uncompressed; 0 compresses all"),
    AP_INIT_TAKE_ARGV("WebSocketTopicPrefix", ws_cmd_topic_prefix, NULL,
                      WS_WHERE, "the prefixes of the topics this location's "
                      "plugin may use, * for any, or none"),
    AP_INIT_TAKE1("WebSocketTopicMessageLimit", ws_cmd_topic_limit, NULL,
                  WS_WHERE, "largest message a plugin may publish (K), at "
                  "most 64K"),
    AP_INIT_TAKE_ARGV("WebSocketRedis", ws_cmd_redis, NULL, RSRC_CONF,
                      "redis:// or rediss:// URL of the Redis that joins "
                      "this server's topics with other hosts', then "
                      "optionally ca=file and prefix=channel-prefix"),
    AP_INIT_TAKE1("WebSocketRestartGrace", ws_cmd_restart_grace, NULL,
                  RSRC_CONF, "how long the old children keep their "
                  "WebSockets open after a graceful restart (default unit "
                  "s), or off"),
    { 0 }
};

/* ---- create, merge, read ---- */

void *ws_config_create_dir(apr_pool_t *p, char *dir)
{
    ws_dir_conf_t *conf = apr_pcalloc(p, sizeof(*conf));
    ws_engine_config_t dflt;

    /* The directives default to the engine's defaults, so that the numbers
     * live in one place. */
    ws_engine_config_default(&dflt);
    /* <If>, <ElseIf> and <Else> pass httpd's marker "*If" and so on, not
     * a path: such a section leaves the location to the enclosing ones. */
    conf->location = !dir ? "/" : *dir == '*' ? NULL : dir;
    conf->protocols = apr_array_make(p, 2, sizeof(const char *));
    conf->origin_mode = WS_ORIGIN_SAME;
    conf->origins = apr_array_make(p, 2, sizeof(const char *));
    conf->nonupgrade = WS_NONUPGRADE_REFUSE;
    conf->driver = WS_DRIVER_DEFAULT;
    conf->settings = apr_table_make(p, 2);
    conf->log_level = APLOG_INFO;
    conf->max_frame_size = dflt.max_frame_size;
    conf->max_message_size = dflt.max_message_size;
    conf->max_fragments = dflt.max_fragments;
    conf->queue_cap = dflt.queue_cap;
    conf->queue_policy = dflt.queue_policy;
    conf->fragment_size = (int64_t)dflt.fragment_size;
    conf->ping_interval = dflt.ping_interval;
    conf->idle_timeout = dflt.idle_timeout;
    conf->close_timeout = dflt.close_timeout;
    conf->deflate = 1;
    conf->deflate_mode = WS_DEFLATE_SHARED;
    conf->deflate_window_bits = WS_DEFLATE_DEFAULT_BITS;
    conf->deflate_mem_level = WS_DEFLATE_DEFAULT_MEM_LEVEL;
    conf->deflate_level = WS_DEFLATE_DEFAULT_LEVEL;
    conf->deflate_min_size = WS_DEFLATE_DEFAULT_MIN_SIZE;
    conf->topic_message_limit = WS_BUS_MAX_MESSAGE;
    return conf;
}

/* add is the inner section (or, when httpd first combines the <Location>s
 * that match a URL, the combination of the later ones): each field it set
 * wins, and every other field comes from base. */
void *ws_config_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    const ws_dir_conf_t *base = basev, *add = addv;
    ws_dir_conf_t *conf = apr_palloc(p, sizeof(*conf));
    unsigned int set = add->set;

    *conf = *base;
    conf->set = base->set | set;
    if (set && add->location)
        conf->location = add->location;
    if (set & WS_SET_HANDLER)
        conf->plugin = add->plugin;
    if (set & WS_SET_PROTOCOLS)
        conf->protocols = add->protocols;
    if (set & WS_SET_ORIGIN) {
        conf->origin_mode = add->origin_mode;
        conf->origins = add->origins;
    }
    if (set & WS_SET_NONUPGRADE)
        conf->nonupgrade = add->nonupgrade;
    if (set & WS_SET_DRIVER)
        conf->driver = add->driver;
    if ((set & WS_SET_SETTINGS) && (base->set & WS_SET_SETTINGS)) {
        /* Per key: the inner value wins, outer keys stay. The only copy a
         * merge makes, and only when both levels have settings. */
        conf->settings = apr_table_copy(p, base->settings);
        apr_table_overlap(conf->settings, add->settings,
                          APR_OVERLAP_TABLES_SET);
    }
    else if (set & WS_SET_SETTINGS) {
        conf->settings = add->settings;
    }
    if (set & WS_SET_LOG_LEVEL)
        conf->log_level = add->log_level;
    if (set & WS_SET_MAX_FRAME)
        conf->max_frame_size = add->max_frame_size;
    if (set & WS_SET_MAX_MESSAGE)
        conf->max_message_size = add->max_message_size;
    if (set & WS_SET_MAX_FRAGMENTS)
        conf->max_fragments = add->max_fragments;
    if (set & WS_SET_QUEUE_CAP)
        conf->queue_cap = add->queue_cap;
    if (set & WS_SET_QUEUE_POLICY)
        conf->queue_policy = add->queue_policy;
    if (set & WS_SET_FRAGMENT_SIZE)
        conf->fragment_size = add->fragment_size;
    if (set & WS_SET_PING)
        conf->ping_interval = add->ping_interval;
    if (set & WS_SET_IDLE)
        conf->idle_timeout = add->idle_timeout;
    if (set & WS_SET_CLOSE)
        conf->close_timeout = add->close_timeout;
    if (set & WS_SET_DEFLATE)
        conf->deflate = add->deflate;
    if (set & WS_SET_DEFLATE_MODE) {
        conf->deflate_mode = add->deflate_mode;
        conf->deflate_window_bits = add->deflate_window_bits;
        conf->deflate_mem_level = add->deflate_mem_level;
    }
    if (set & WS_SET_DEFLATE_LEVEL)
        conf->deflate_level = add->deflate_level;
    if (set & WS_SET_DEFLATE_MIN)
        conf->deflate_min_size = add->deflate_min_size;
    if (set & WS_SET_TOPIC_PREFIX)
        conf->topic_prefixes = add->topic_prefixes;
    if (set & WS_SET_TOPIC_LIMIT)
        conf->topic_message_limit = add->topic_message_limit;
    return conf;
}

/* Every per-dir vector holds a filled-in struct: the server's defaults come
 * from create_dir, and merges only ever copy values. */
const ws_dir_conf_t *ws_config_get(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &websocket_module);
}

void ws_config_engine(const ws_dir_conf_t *conf, ws_engine_config_t *cfg)
{
    ws_engine_config_default(cfg);
    cfg->max_frame_size = conf->max_frame_size;
    cfg->max_message_size = conf->max_message_size;
    cfg->max_fragments = (uint32_t)conf->max_fragments;
    cfg->queue_cap = conf->queue_cap;
    cfg->queue_policy = (ws_queue_policy_e)conf->queue_policy;
    cfg->fragment_size = (uint64_t)conf->fragment_size;
    cfg->ping_interval = conf->ping_interval;
    cfg->idle_timeout = conf->idle_timeout;
    cfg->close_timeout = conf->close_timeout;
}

void ws_config_pmd(const ws_dir_conf_t *conf, ws_pmd_negotiate_config_t *out)
{
    int shared = conf->deflate_mode == WS_DEFLATE_SHARED;

    out->server_max_window_bits = conf->deflate_window_bits;
    out->client_max_window_bits = conf->deflate_window_bits;
    out->server_no_context_takeover = shared;
    out->client_no_context_takeover = shared;
}
