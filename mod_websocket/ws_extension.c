/* ws_extension.c: a strict parser for Sec-WebSocket-Extensions offers, the
 * grammar of RFC 6455 §9.1 with RFC 7230's OWS and list rules in place of
 * RFC 2616's implied LWS.
 *
 * It describes the offers and nothing more: it must not judge names,
 * parameters or duplicates (the negotiating extension does, RFC 7692 §7),
 * must not read past the header's NUL, and allocates from the caller's pool
 * only. No I/O, no logging.
 *
 *   extension-list  = 1#extension    ; empty elements allowed, RFC 7230 §7
 *   extension       = extension-token *( OWS ";" OWS extension-param )
 *   extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
 */
#include <string.h>

#include <apr_strings.h>

#include "ws_extension.h"

/* Initial array sizes: one or two offers with a few parameters each is
 * what browsers send. */
#define WS_EXT_OFFERS_HINT 2
#define WS_EXT_PARAMS_HINT 4

typedef struct parser {
    const char *start;   /* the header, for error offsets */
    const char *pos;     /* next byte to read; on failure, the culprit */
    const char *end;     /* the header's NUL */
    apr_pool_t *pool;
} parser_t;

/* tchar, RFC 7230 §3.2.6: visible ASCII except the delimiters
 * (),/:;<=>?@[\]{} and DQUOTE. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9')) {
        return 1;
    }
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
        return 1;
    default:
        return 0;
    }
}

static void skip_ows(parser_t *p)
{
    while (p->pos < p->end && (*p->pos == ' ' || *p->pos == '\t')) {
        p->pos++;
    }
}

/* token = 1*tchar. Returns a pool copy, or NULL with p->pos at the byte
 * where a tchar was needed. */
static const char *parse_token(parser_t *p)
{
    const char *from = p->pos;

    while (p->pos < p->end && is_tchar((unsigned char)*p->pos)) {
        p->pos++;
    }
    if (p->pos == from) {
        return NULL;
    }
    return apr_pstrmemdup(p->pool, from, (apr_size_t)(p->pos - from));
}

/* quoted-string, RFC 7230 §3.2.6, with p->pos on the opening DQUOTE.
 * §9.1 of RFC 6455 wants the unescaped content to be a token, so every
 * character, escaped or not, must be a tchar; that also rules out
 * everything quoted-string would have allowed beyond it. Returns the
 * unescaped content, or NULL with p->pos on the offending byte (the
 * closing quote of an empty string, the header's end when unterminated). */
static const char *parse_quoted(parser_t *p)
{
    const char *from = ++p->pos;
    apr_size_t len = 0;
    char *value, *out;

    /* First pass: validate and measure, so the copy is exactly sized. */
    for (;;) {
        if (p->pos == p->end) {
            return NULL;
        }
        if (*p->pos == '"') {
            break;
        }
        if (*p->pos == '\\') {
            p->pos++;       /* quoted-pair: the next byte stands for itself */
            if (p->pos == p->end) {
                return NULL;
            }
        }
        if (!is_tchar((unsigned char)*p->pos)) {
            return NULL;
        }
        p->pos++;
        len++;
    }
    if (len == 0) {
        return NULL;
    }

    value = out = apr_palloc(p->pool, len + 1);
    for (; from < p->pos; from++) {
        if (*from != '\\') {
            *out++ = *from;
        }
        else {
            *out++ = *++from;
        }
    }
    *out = '\0';
    p->pos++;               /* the closing quote */
    return value;
}

/* extension-param, with p->pos on its first byte. */
static int parse_param(parser_t *p, apr_array_header_t *params)
{
    ws_extension_param_t *param;
    const char *name, *value = NULL;

    name = parse_token(p);
    if (name == NULL) {
        return 0;
    }
    skip_ows(p);
    if (p->pos < p->end && *p->pos == '=') {
        p->pos++;
        skip_ows(p);
        value = (p->pos < p->end && *p->pos == '"') ? parse_quoted(p)
                                                    : parse_token(p);
        if (value == NULL) {
            return 0;
        }
    }

    /* Duplicates are kept: RFC 7692 §7 has the extension decline such an
     * offer, which is not the same as failing the whole header. */
    param = apr_array_push(params);
    param->name = name;
    param->value = value;
    return 1;
}

/* extension, with p->pos on its first byte. */
static int parse_extension(parser_t *p, apr_array_header_t *offers)
{
    ws_extension_offer_t *offer;
    const char *name;
    apr_array_header_t *params;

    name = parse_token(p);
    if (name == NULL) {
        return 0;
    }
    params = apr_array_make(p->pool, WS_EXT_PARAMS_HINT,
                            sizeof(ws_extension_param_t));
    for (;;) {
        skip_ows(p);
        if (p->pos == p->end || *p->pos != ';') {
            break;
        }
        p->pos++;
        skip_ows(p);
        if (!parse_param(p, params)) {
            return 0;
        }
    }

    offer = apr_array_push(offers);
    offer->name = name;
    offer->params = params;
    return 1;
}

int ws_extension_parse(apr_pool_t *pool, const char *header,
                       apr_array_header_t **offers, size_t *error_at)
{
    parser_t p;
    apr_array_header_t *list;

    list = apr_array_make(pool, WS_EXT_OFFERS_HINT,
                          sizeof(ws_extension_offer_t));
    *offers = list;
    if (header == NULL) {
        return 1;
    }

    p.start = p.pos = header;
    p.end = header + strlen(header);
    p.pool = pool;

    /* RFC 7230 §7: a recipient accepts empty list elements, so commas may
     * repeat and lead or trail, each with OWS around it. */
    for (;;) {
        skip_ows(&p);
        if (p.pos == p.end) {
            return 1;
        }
        if (*p.pos == ',') {
            p.pos++;
            continue;
        }
        if (!parse_extension(&p, list)) {
            break;
        }
        skip_ows(&p);
        if (p.pos == p.end) {
            return 1;
        }
        if (*p.pos != ',') {
            break;
        }
        p.pos++;
    }

    /* RFC 6455 §9.1: a value that breaks the grammar fails the
     * connection, so the caller refuses the handshake. */
    *offers = NULL;
    if (error_at != NULL) {
        *error_at = (size_t)(p.pos - p.start);
    }
    return 0;
}
