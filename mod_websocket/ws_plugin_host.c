/* ws_plugin_host.c: loads handler plugins while httpd reads its
 * configuration, checks the API version and table size they were built
 * with, lets every <Location> naming the same file and symbol share one
 * copy, and runs the plugins' per-process hooks in each child.
 *
 * It must not keep anything past the configuration pool it loaded into:
 * clearing that pool (restart, or the end of httpd's first configuration
 * pass) unloads every plugin and forgets the registry, and the next reading
 * of the configuration loads them afresh. It never calls a plugin's
 * connection callbacks; the handler and the drivers do.
 */
#include <stddef.h>
#include <string.h>

#include "apr_dso.h"
#include "apr_hash.h"
#include "apr_strings.h"
#include "httpd.h"
#include "http_log.h"

#include "ws_gate.h"
#include "ws_log.h"
#include "ws_plugin_host.h"

APLOG_USE_MODULE(websocket);

/* The smallest table a plugin may declare: API version 1 ended with
 * on_drain. */
#define WS_PLUGIN_V1_SIZE \
    (offsetof(mws_plugin_t, on_drain) + sizeof(void (*)(void)))

/* The plugins loaded by this reading of the configuration. */
typedef struct {
    apr_hash_t *by_key;            /* "path\0symbol" -> ws_plugin_t * */
    apr_array_header_t *in_order;  /* ws_plugin_t *, as loaded */
} ws_registry_t;

/* Lives in the config pool; a cleanup on that pool resets it, so it never
 * points at a cleared pool. Touched only while httpd reads its
 * configuration and in child_init, both single-threaded. */
static ws_registry_t *registry;

static apr_status_t registry_cleanup(void *data)
{
    (void)data;
    registry = NULL;
    return APR_SUCCESS;
}

static ws_registry_t *registry_get(apr_pool_t *pconf)
{
    if (!registry) {
        registry = apr_palloc(pconf, sizeof(*registry));
        registry->by_key = apr_hash_make(pconf);
        registry->in_order = apr_array_make(pconf, 4, sizeof(ws_plugin_t *));
        apr_pool_cleanup_register(pconf, NULL, registry_cleanup,
                                  apr_pool_cleanup_null);
    }
    return registry;
}

/* The plugin's own table, checked. Returns NULL and sets *table, or an
 * error message. */
static const char *check_table(cmd_parms *cmd, const char *path,
                               const char *symbol, apr_dso_handle_t *dso,
                               const mws_plugin_t **table)
{
    const char *directive = cmd->cmd->name;
    apr_dso_handle_sym_t sym;
    const mws_plugin_t *t;
    char buf[256];

    if (apr_dso_sym(&sym, dso, symbol) != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "%s: plugin %s has no symbol %s: %s",
                            directive, path, symbol,
                            apr_dso_error(dso, buf, sizeof(buf)));
    /* dlsym() hands functions back as data pointers; POSIX guarantees the
     * conversion. */
    t = ((mws_plugin_entry_fn)sym)();
    if (!t)
        return apr_psprintf(cmd->pool, "%s: %s() in plugin %s returned no "
                            "plugin table", directive, symbol, path);
    if (t->api_version > MWS_PLUGIN_API_VERSION)
        return apr_psprintf(cmd->pool, "%s: plugin %s (%s) was built against "
                            "plugin API %u, this mod_websocket speaks %d",
                            directive, path, symbol,
                            (unsigned int)t->api_version,
                            MWS_PLUGIN_API_VERSION);
    if (t->api_version == 0 || t->struct_size < WS_PLUGIN_V1_SIZE)
        return apr_psprintf(cmd->pool, "%s: plugin %s (%s) has a malformed "
                            "table (API version %u, size %u; version 1 needs "
                            "at least %u bytes): was it built with "
                            "MWS_PLUGIN_HEADER?", directive, path, symbol,
                            (unsigned int)t->api_version,
                            (unsigned int)t->struct_size,
                            (unsigned int)WS_PLUGIN_V1_SIZE);
    *table = t;
    return NULL;
}

const char *ws_plugin_host_load(cmd_parms *cmd, const char *path,
                                const char *symbol, ws_plugin_t **out)
{
    ws_registry_t *reg = registry_get(cmd->pool);
    size_t path_len = strlen(path), symbol_len = strlen(symbol);
    const mws_plugin_t *table = NULL;
    apr_dso_handle_t *dso;
    ws_plugin_t *plugin;
    const char *err;
    char buf[256];
    char *key;

    /* path and symbol cannot hold a NUL, so the key is unambiguous. */
    key = apr_palloc(cmd->pool, path_len + 1 + symbol_len);
    memcpy(key, path, path_len + 1);
    memcpy(key + path_len + 1, symbol, symbol_len);
    if ((plugin = apr_hash_get(reg->by_key, key, path_len + 1 + symbol_len))) {
        *out = plugin;
        return NULL;
    }

    /* Loaded into the config pool, so clearing that pool unloads it.
     * apr_dso_load() opens with RTLD_NOW | RTLD_GLOBAL: a missing symbol
     * the plugin needs shows up now, at start-up, not on first use. */
    if (apr_dso_load(&dso, path, cmd->pool) != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "%s: cannot load plugin %s: %s",
                            cmd->cmd->name, path,
                            apr_dso_error(dso, buf, sizeof(buf)));
    if ((err = check_table(cmd, path, symbol, dso, &table))) {
        apr_dso_unload(dso);
        return err;
    }

    /* A table from an older header is shorter: copy what it has and leave
     * the callbacks it does not know about NULL. */
    plugin = apr_pcalloc(cmd->pool, sizeof(*plugin));
    memcpy(&plugin->cb, table,
           table->struct_size < sizeof(mws_plugin_t) ? table->struct_size
                                                     : sizeof(mws_plugin_t));
    plugin->path = path;
    plugin->symbol = apr_pstrdup(cmd->pool, symbol);
    plugin->name = apr_pstrdup(cmd->pool,
                               plugin->cb.name ? plugin->cb.name : symbol);
    plugin->cb.name = plugin->name;
    apr_hash_set(reg->by_key, key, path_len + 1 + symbol_len, plugin);
    APR_ARRAY_PUSH(reg->in_order, ws_plugin_t *) = plugin;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, cmd->server, WSLOGNO(00100)
                 "loaded plugin %s from %s (symbol %s, API %u, table of %u "
                 "bytes)", plugin->name, path, plugin->symbol,
                 (unsigned int)plugin->cb.api_version,
                 (unsigned int)plugin->cb.struct_size);
    *out = plugin;
    return NULL;
}

/* Topic messages reach plugins only between the end of every plugin's
 * process_init and the start of the first process_exit: the bus and the
 * Redis link run around that. A thread that calls plugins passes the
 * taps gate; closing it waits for them (a bounded while, see ws_gate.h),
 * so no callback is still running when the plugins start to exit. */
#define TAPS_WAIT_MS 1000

static ws_gate_t taps;

static apr_status_t close_taps(void *data)
{
    (void)data;
    ws_gate_close(&taps, TAPS_WAIT_MS);
    return APR_SUCCESS;
}

static void open_taps(apr_pool_t *pchild)
{
    ws_gate_open(&taps);
    /* Registered after the plugins' exits, so it runs before them. */
    apr_pool_cleanup_register(pchild, NULL, close_taps,
                              apr_pool_cleanup_null);
}

static apr_status_t plugin_exit_cleanup(void *data)
{
    const ws_plugin_t *plugin = data;

    plugin->cb.process_exit();
    return APR_SUCCESS;
}

int ws_plugin_host_child_init(apr_pool_t *pchild, server_rec *s)
{
    int i, rc;

    if (!registry)
        return 0;
    for (i = 0; i < registry->in_order->nelts; i++) {
        const ws_plugin_t *plugin =
            APR_ARRAY_IDX(registry->in_order, i, const ws_plugin_t *);

        if (plugin->cb.process_init && (rc = plugin->cb.process_init())) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, WSLOGNO(00101)
                         "plugin %s (%s): process_init failed with %d",
                         plugin->name, plugin->path, rc);
            return rc;
        }
        /* Registered after its init succeeded, so a plugin exits only if
         * it started; pchild's cleanups run in reverse, so plugins stop in
         * the reverse order of their start. Not on exec: a CGI child never
         * ran process_init. */
        if (plugin->cb.process_exit)
            apr_pool_cleanup_register(pchild, plugin, plugin_exit_cleanup,
                                      apr_pool_cleanup_null);
    }
    if (registry->in_order->nelts)
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, WSLOGNO(00102)
                     "plugins ready in this child: %d",
                     registry->in_order->nelts);
    open_taps(pchild);
    return 0;
}

/* The list is read-only once the child runs; the gate only keeps the
 * plugins' lifetime (see close_taps()). */
void ws_plugin_host_topic_message(const char *topic, mws_type_e type,
                                  const void *data, size_t len)
{
    int i;

    if (!registry)
        return;
    ws_gate_enter(&taps);
    for (i = 0; ws_gate_is_open(&taps) && i < registry->in_order->nelts;
         i++) {
        const ws_plugin_t *plugin =
            APR_ARRAY_IDX(registry->in_order, i, const ws_plugin_t *);

        if (plugin->cb.on_topic_message)
            plugin->cb.on_topic_message(topic, type, data, len);
    }
    ws_gate_leave(&taps);
}
