/* echo: sends every message back unchanged, text as text and binary as
 * binary. The smallest useful plugin, and the one the README shows. */
#include <mod_websocket_plugin.h>

static void on_message(mws_conn_t *conn, mws_type_e type, const void *data,
                       size_t len)
{
    mws_send(conn, type, data, len);
}

static const mws_plugin_t echo = {
    MWS_PLUGIN_HEADER,
    .name = "echo",
    .on_message = on_message,
};

MWS_PLUGIN_EXPORT const mws_plugin_t *echo_plugin(void)
{
    return &echo;
}
