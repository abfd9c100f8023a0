/* ws_pubsub.h: topics for plugins inside httpd: the process's
 * subscriptions (ws_topic), the bus between the children of one httpd
 * (ws_bus) and the link between hosts (ws_redis), behind the plugin API's
 * mws_subscribe(), mws_unsubscribe(), mws_publish() and mws_subscribers().
 *
 * A message published in a process is delivered there at once, on the
 * publishing thread, and handed to the bus and to Redis for the others;
 * what arrives from them is delivered on their threads. Delivery goes
 * through each subscriber's outgoing queue (ws_conn_send_msg()), one
 * shared ws_msg for all of them.
 */
#ifndef WS_PUBSUB_H
#define WS_PUBSUB_H

#include "httpd.h"

#include "mod_websocket_plugin.h"

struct ws_conn;

/* post_config, in the parent: prepare the bus directory and this
 * server's identity (kept across graceful restarts). Logs what fails;
 * topics then stay within each process. */
int ws_pubsub_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s);

/* child_init, before the plugins' process_init: open the registry, the
 * bus and the Redis link, closed again (after the plugins' process_exit)
 * when pchild goes. */
void ws_pubsub_child_init(apr_pool_t *pchild, server_rec *s);

/* The connection has ended (its engine is gone): drop its subscriptions.
 * Any thread. */
void ws_pubsub_conn_end(struct ws_conn *wc);

/* The plugin API's functions (mod_websocket_plugin.h). */
int ws_pubsub_subscribe(mws_conn_t *h, const char *topic);
int ws_pubsub_unsubscribe(mws_conn_t *h, const char *topic);
int ws_pubsub_publish(mws_conn_t *h, const char *topic, mws_type_e type,
                      const void *data, size_t len);
size_t ws_pubsub_subscribers(mws_conn_t *h, const char *topic);

#endif /* WS_PUBSUB_H */
