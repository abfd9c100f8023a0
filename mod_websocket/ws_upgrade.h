/* ws_upgrade.h: the handler that turns a request into a WebSocket. */
#ifndef WS_UPGRADE_H
#define WS_UPGRADE_H

#include "httpd.h"

/* The handler hook: DECLINED outside WebSocket locations (and for
 * non-upgrade requests where WebSocketNonUpgrade is decline), an HTTP
 * status for a refused handshake, OK once a WebSocket has run its course. */
int ws_upgrade_handler(request_rec *r);

#endif /* WS_UPGRADE_H */
