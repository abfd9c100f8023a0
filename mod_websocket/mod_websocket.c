/* mod_websocket.c: the module record and the wiring of hooks; the work is
 * in ws_upgrade.c (the handshake), ws_driver_*.c (running a connection),
 * ws_config.c (directives), ws_plugin_host.c (plugins) and ws_pubsub.c
 * (topics). */
#include <stdio.h>
#include <stdlib.h>

#include "httpd.h"
#include "http_config.h"
#include "mpm_common.h"

#include "ws_config.h"
#include "ws_conn.h"
#include "ws_driver.h"
#include "ws_plugin_host.h"
#include "ws_pubsub.h"
#include "ws_upgrade.h"

/* A plugin whose process_init fails cannot serve its locations, and a
 * child without it would answer them wrongly: stop the server as a
 * missing plugin would have at start-up (the plugin host logged why). */
static void ws_child_init(apr_pool_t *pchild, server_rec *s)
{
    /* A daemonised child's stderr is the error log; unbuffered, so a
     * plugin's diagnostics reach it as they happen. */
    setvbuf(stderr, NULL, _IONBF, 0);
    ws_driver_async_child_init(pchild, s);
    /* Before the plugins, so that the bus closes after their exit. */
    ws_pubsub_child_init(pchild, s);
    if (ws_plugin_host_child_init(pchild, s) != 0)
        exit(APEXIT_CHILDFATAL);
}

/* Threaded MPMs call this while workers still run their connections, so
 * every WebSocket hears 1001 at once; prefork only signals, and its driver
 * notices on its own (ws_driver_child_stopping()). After a graceful
 * restart with WebSocketRestartGrace the connections stay: the drivers
 * close them when the grace ends. An ungraceful stop or restart does not
 * wait for anyone. */
static void ws_child_stopping(apr_pool_t *pchild, int graceful)
{
    const char *reason = "server shutting down";

    (void)pchild;
    if (!graceful || ws_driver_child_stopping(&reason))
        ws_conn_close_all(WS_CLOSE_GOING_AWAY, reason);
}

static void ws_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* First, so that a WebSocket location's upgrade is not served as a
     * file or a directory listing by the handlers that take anything. */
    ap_hook_handler(ws_upgrade_handler, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_post_config(ws_pubsub_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(ws_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(ws_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
    ws_driver_async_register_hooks();
}

AP_DECLARE_MODULE(websocket) = {
    STANDARD20_MODULE_STUFF,
    ws_config_create_dir,
    ws_config_merge_dir,
    NULL,
    NULL,
    ws_config_cmds,
    ws_register_hooks,
    AP_MODULE_FLAG_NONE
};
