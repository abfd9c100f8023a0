/* ws_log.h: log-line tags for mod_websocket, in the manner of httpd's
 * APLOGNO(). httpd keeps its AH numbers for its own modules, so ours read
 * "WS00001: ". Take the next number from log-tags-next.txt and bump it there
 * in the same commit; never reuse a number. */
#ifndef WS_LOG_H
#define WS_LOG_H

#define WSLOGNO(n) "WS" #n ": "

#endif /* WS_LOG_H */
