/* ws_plugin_host.h: loading handler plugins, one copy per process shared
 * by every <Location> that names it, and calling their process hooks.
 *
 * A plugin is loaded when the directive that names it is read, so a missing
 * file or symbol or a too-new API stops httpd at start-up with the
 * directive's file and line. It is unloaded with the configuration pool (at
 * restart) and every <Location> naming the same file and symbol shares it.
 */
#ifndef WS_PLUGIN_HOST_H
#define WS_PLUGIN_HOST_H

#include "httpd.h"
#include "http_config.h"

#include "mod_websocket_plugin.h"

typedef struct ws_plugin {
    const char *path;
    const char *symbol;
    const char *name;          /* the plugin's name, or its symbol */
    mws_plugin_t cb;           /* the plugin's table, padded with NULLs when
                                  it was built against an older header */
} ws_plugin_t;

/* Load (or find already loaded) the plugin at path (absolute) exporting
 * symbol, for the directive being read; the plugin lives in cmd->pool.
 * Returns NULL and sets *out, or an error message that starts with the
 * directive's name and names the file and the symbol (httpd adds the config
 * file and line). Config reading only. */
const char *ws_plugin_host_load(cmd_parms *cmd, const char *path,
                                const char *symbol, ws_plugin_t **out);

/* In a new child: call every loaded plugin's process_init, in load order,
 * and arrange for process_exit when pchild goes (for those whose init ran).
 * Stops at the first plugin that fails, logs its name and returns that
 * plugin's non-zero result; 0 when all started. */
int ws_plugin_host_child_init(apr_pool_t *pchild, server_rec *s);

/* Call every loaded plugin's on_topic_message, in load order. Any thread,
 * once child_init is done. */
void ws_plugin_host_topic_message(const char *topic, mws_type_e type,
                                  const void *data, size_t len);

#endif /* WS_PLUGIN_HOST_H */
