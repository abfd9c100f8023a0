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
#include "ws_plugin_host.h"

/* Whose pages may open a WebSocket here (the Origin header, RFC 6455
 * §10.2). */
typedef enum {
    WS_ORIGIN_UNSET = 0,
    WS_ORIGIN_SAME,      /* Origin must name this server's scheme, host, port */
    WS_ORIGIN_LIST,      /* Origin must be one of origins */
    WS_ORIGIN_ANY        /* no check */
} ws_origin_mode_e;

/* What a request that is not a WebSocket upgrade gets at a WebSocket
 * location. */
typedef enum {
    WS_NONUPGRADE_UNSET = 0,
    WS_NONUPGRADE_REFUSE,   /* 426 Upgrade Required */
    WS_NONUPGRADE_DECLINE   /* the next handler serves it */
} ws_nonupgrade_e;

typedef struct ws_dir_conf {
    const char *location;         /* the <Location> path, for logs and plugins */
    ws_plugin_t *plugin;          /* NULL: not a WebSocket location */
    apr_array_header_t *protocols;/* const char *, server's preference order */
    ws_origin_mode_e origin_mode;
    apr_array_header_t *origins;  /* const char *, for WS_ORIGIN_LIST */
    ws_nonupgrade_e nonupgrade;
    apr_table_t *settings;        /* WebSocketSetting key/value pairs */
    int log_level;                /* APLOG_* for the per-connection line;
                                     -1 unset, -2 off */

    /* Engine settings; each unset field holds its own *_UNSET value. */
    uint64_t max_frame_size;
    uint64_t max_message_size;
    int64_t  max_fragments;       /* 0 unlimited */
    uint64_t queue_cap;
    int      queue_policy;        /* ws_queue_policy_e, or -1 unset */
    int64_t  fragment_size;       /* 0 never */
    apr_interval_time_t ping_interval;  /* 0 off */
    apr_interval_time_t idle_timeout;   /* 0 off */
    apr_interval_time_t close_timeout;
} ws_dir_conf_t;

/* Exported despite -fvisibility=hidden: httpd finds the module by name. */
extern module AP_MODULE_DECLARE_DATA websocket_module
    __attribute__((visibility("default")));

/* The directive table, for the module record. */
extern const command_rec ws_config_cmds[];

void *ws_config_create_dir(apr_pool_t *p, char *dir);
void *ws_config_merge_dir(apr_pool_t *p, void *base, void *add);

/* The effective configuration of r (defaults filled in). */
const ws_dir_conf_t *ws_config_get(const request_rec *r);

/* Fill an engine configuration from a merged dir config. */
void ws_config_engine(const ws_dir_conf_t *conf, ws_engine_config_t *cfg);

#endif /* WS_CONFIG_H */
