/* ws_config.h: the per-<Location> configuration of mod_websocket: the
 * directives, their defaults and how nested sections merge.
 *
 * Read by the handler and the drivers; written only while httpd reads its
 * configuration.
 */
#ifndef WS_CONFIG_H
#define WS_CONFIG_H

#include "httpd.h"
#include "http_config.h"

#include "ws_engine.h"
#include "ws_pmd_negotiate.h"
#include "ws_plugin_host.h"

/* Whose pages may open a WebSocket here (the Origin header, RFC 6455
 * §10.2). */
typedef enum {
    WS_ORIGIN_SAME = 0,  /* Origin must name this server's scheme, host, port */
    WS_ORIGIN_LIST,      /* Origin must be one of origins */
    WS_ORIGIN_ANY        /* no check */
} ws_origin_mode_e;

/* What a request that is not a WebSocket upgrade gets at a WebSocket
 * location. */
typedef enum {
    WS_NONUPGRADE_REFUSE = 0, /* 426 Upgrade Required */
    WS_NONUPGRADE_DECLINE   /* the next handler serves it */
} ws_nonupgrade_e;

/* Which driver runs a location's connections (ws_driver.h). */
typedef enum {
    WS_DRIVER_AUTO = 0,     /* async where the MPM can park connections */
    WS_DRIVER_BLOCKING,     /* a thread per connection, on every MPM */
    WS_DRIVER_ASYNC         /* async where possible, else blocking */
} ws_driver_e;

/* How permessage-deflate (RFC 7692) keeps its zlib state. */
typedef enum {
    WS_DEFLATE_SHARED = 0,  /* no context takeover either way: compressors
                               lent per thread, nothing held while idle */
    WS_DEFLATE_DEDICATED    /* context takeover: each connection owns its
                               compressor and inflater */
} ws_deflate_mode_e;

/* log_level's value for "WebSocketLogLevel off" (any negative is off). */
#define WS_LOG_OFF (-2)

/* A section's configuration, and the merged one a request sees. Every field
 * always holds a usable value: create_dir fills in the defaults and 'set'
 * records which fields the section's own directives gave, so a merge takes
 * exactly those from the inner section. (Sentinel values would not do: a
 * merge result is itself merged again, as the "add" side, when httpd
 * combines several matching <Location>s before laying them over the
 * server's defaults, and it must not then override those with defaults.)
 *
 * Lifetime: the pointers (plugin, arrays, strings) live in the config pool;
 * a merged struct, and a settings table merged from two levels, live in the
 * pool the merge ran in, which for a request is r->pool. Anything that must
 * outlive the request copies the struct and the settings table. */
typedef struct ws_dir_conf {
    unsigned int set;             /* WS_SET_* bits (ws_config.c); read only
                                     by the merge */
    const char *location;         /* path of the innermost section with a
                                     WebSocket directive (<If> sections
                                     excepted); "/" for the server and
                                     virtual host level. Never NULL in a
                                     config from ws_config_get(). */
    ws_plugin_t *plugin;          /* NULL: not a WebSocket location */
    apr_array_header_t *protocols;/* const char *, server's preference order;
                                     never NULL, empty for none */
    ws_origin_mode_e origin_mode;
    apr_array_header_t *origins;  /* const char *, for WS_ORIGIN_LIST, in
                                     ws_origin_normalize() form; never NULL */
    ws_nonupgrade_e nonupgrade;
    ws_driver_e driver;
    apr_table_t *settings;        /* WebSocketSetting key/value pairs (keys
                                     case-insensitive); never NULL */
    int log_level;                /* APLOG_* for the per-connection line, or
                                     WS_LOG_OFF */

    /* Engine settings, in ws_engine_config_t's units. */
    uint64_t max_frame_size;      /* WS_UNLIMITED for unlimited */
    uint64_t max_message_size;    /* WS_UNLIMITED for unlimited */
    int64_t  max_fragments;       /* 0 unlimited; at most UINT32_MAX */
    uint64_t queue_cap;           /* WS_UNLIMITED for unlimited */
    int      queue_policy;        /* ws_queue_policy_e */
    int64_t  fragment_size;       /* 0 never */
    apr_interval_time_t ping_interval;  /* 0 off */
    apr_interval_time_t idle_timeout;   /* 0 off */
    apr_interval_time_t close_timeout;  /* > 0 */

    /* permessage-deflate. */
    int      deflate;             /* 1: accept a client's offer */
    ws_deflate_mode_e deflate_mode;
    int      deflate_window_bits; /* 9..15: our window, and the most we ask
                                     the client to use */
    int      deflate_mem_level;   /* 1..9 */
    int      deflate_level;       /* 0..9 */
    uint64_t deflate_min_size;    /* smaller outgoing messages go as they are */

    /* Topics (ws_pubsub.h). */
    apr_array_header_t *topic_prefixes; /* const char *: the prefixes a
                                     plugin's topic names must start with;
                                     "" allows any; empty allows none. NULL:
                                     the location's path alone */
    uint64_t topic_message_limit; /* largest message published */
} ws_dir_conf_t;

/* The server-wide settings: directives allowed only outside <VirtualHost>
 * and <Location>. */
typedef struct ws_global_conf {
    const char *redis_url;        /* WebSocketRedis, or NULL */
    const char *redis_ca_file;    /* its ca=, or NULL */
    const char *redis_prefix;     /* its prefix=, or NULL for the default */
    apr_interval_time_t restart_grace; /* WebSocketRestartGrace: how long an
                                     old generation's child keeps its
                                     WebSockets after a graceful restart;
                                     0 (off) closes them at once */
} ws_global_conf_t;

/* Exported despite -fvisibility=hidden: httpd finds the module by name. */
extern module AP_MODULE_DECLARE_DATA websocket_module
    __attribute__((visibility("default")));

/* The directive table, for the module record. */
extern const command_rec ws_config_cmds[];

/* The module record's per-directory create and merge functions. Config
 * reading only, except that httpd also merges per request, in r->pool. */
void *ws_config_create_dir(apr_pool_t *p, char *dir);
void *ws_config_merge_dir(apr_pool_t *p, void *base, void *add);

/* This configuration's server-wide settings (never NULL). */
const ws_global_conf_t *ws_config_global(void);

/* The effective configuration of r (defaults filled in; never NULL). A
 * pointer read, cheap enough for every request. The result lives as long as
 * r->pool (see ws_dir_conf_t's lifetime note). */
const ws_dir_conf_t *ws_config_get(const request_rec *r);

/* Fill an engine configuration from a merged dir config; engine fields the
 * directives do not cover keep ws_engine_config_default()'s values. */
void ws_config_engine(const ws_dir_conf_t *conf, ws_engine_config_t *cfg);

/* What the negotiation may agree to at a location with deflate on
 * (ws_pmd_negotiate.h): the mode decides context takeover, the window
 * bounds both sides. */
void ws_config_pmd(const ws_dir_conf_t *conf,
                   ws_pmd_negotiate_config_t *out);

#endif /* WS_CONFIG_H */
