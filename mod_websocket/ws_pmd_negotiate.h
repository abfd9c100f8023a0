/* ws_pmd_negotiate.h: the server's side of the permessage-deflate
 * negotiation, RFC 7692 §5 and §7.1: which of the client's offers to accept,
 * with which parameters, and the response that says so.
 *
 * It reads offers that ws_extension_parse produced and writes nothing but
 * its result: no I/O, no logging, no zlib. Compressing and inflating with
 * the agreed parameters is the codec's job.
 */
#ifndef WS_PMD_NEGOTIATE_H
#define WS_PMD_NEGOTIATE_H

#include <apr_pools.h>
#include <apr_tables.h>

/* The extension token, RFC 7692 §5. */
#define WS_PMD_NEGOTIATE_NAME "permessage-deflate"

/* What the server is prepared to do. Values outside the ranges below are
 * clamped into them, so a response never breaks RFC 7692 §7.1.2. */
typedef struct ws_pmd_negotiate_config {
    int server_max_window_bits;     /* 9..15: the largest window the server
                                     * compresses with (zlib refuses raw
                                     * deflate with 8) */
    int client_max_window_bits;     /* 8..15: the largest window the server
                                     * asks the client to compress with, when
                                     * the client lets it ask */
    int server_no_context_takeover; /* 1: always reset the compressor after
                                     * a message */
    int client_no_context_takeover; /* 1: always ask the client to reset, so
                                     * the inflater holds nothing between
                                     * messages */
} ws_pmd_negotiate_config_t;

/* The agreed parameters, as the codec needs them: window bits to hand zlib
 * (as -bits, for raw deflate) and whether each side resets per message. */
typedef struct ws_pmd_negotiate_params {
    int server_window_bits;         /* 9..15: compress with this */
    int client_window_bits;         /* 9..15: inflate with this */
    int server_no_context_takeover; /* 1: reset the compressor per message */
    int client_no_context_takeover; /* 1: the client resets per message, so
                                     * the inflater may too */
} ws_pmd_negotiate_params_t;

typedef struct ws_pmd_negotiate_result {
    int         accepted;     /* 1 if an offer was accepted */
    int         offer_index;  /* index in offers of the accepted offer;
                               * -1 when none */
    ws_pmd_negotiate_params_t params;  /* valid when accepted */
    const char *response;     /* the Sec-WebSocket-Extensions element to
                               * answer with, in the pool; NULL when none */
    const char *declined;     /* static reason the last permessage-deflate
                               * offer was declined, for a debug log; NULL
                               * when one was accepted or none was made */
} ws_pmd_negotiate_result_t;

/* Choose among offers (ws_extension_offer_t, as ws_extension_parse made
 * them; NULL is taken as no offers) the first permessage-deflate offer,
 * in the client's order, that config can honour, and fill res. Offers of
 * other extensions are skipped; a permessage-deflate offer that is invalid
 * or asks for what the server cannot do is declined, never a failure of
 * the handshake (RFC 7692 §7). Returns res->accepted. Only the response
 * is allocated, from pool; offers and config are not kept. Any thread may
 * call it. */
int ws_pmd_negotiate_choose(apr_pool_t *pool,
                            const apr_array_header_t *offers,
                            const ws_pmd_negotiate_config_t *config,
                            ws_pmd_negotiate_result_t *res);

#endif /* WS_PMD_NEGOTIATE_H */
