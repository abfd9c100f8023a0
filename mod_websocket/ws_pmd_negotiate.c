/* ws_pmd_negotiate.c: choosing the permessage-deflate parameters from the
 * client's offers and the server's configuration, RFC 7692 §5 and §7.1.
 *
 * It judges offers that ws_extension_parse has already split up; it must
 * not parse header text, must not fail a handshake (a bad offer is only
 * declined, §7), and allocates nothing but the response string. No I/O,
 * no logging, no zlib.
 */
#include <string.h>

#include <apr_cstr.h>
#include <apr_strings.h>

#include "ws_extension.h"
#include "ws_pmd_negotiate.h"

/* The parameters of an offer, RFC 7692 §7.1. */
enum {
    P_SERVER_NO_CONTEXT_TAKEOVER,
    P_CLIENT_NO_CONTEXT_TAKEOVER,
    P_SERVER_MAX_WINDOW_BITS,
    P_CLIENT_MAX_WINDOW_BITS,
    P_COUNT
};

typedef enum {
    VALUE_NONE,       /* must come without a value */
    VALUE_REQUIRED,
    VALUE_OPTIONAL
} value_rule_e;

static const struct {
    const char *name;
    value_rule_e value;
} known_params[P_COUNT] = {
    /* §7.1.1.1 and §7.1.1.2: "This extension parameter has no value." */
    { "server_no_context_takeover", VALUE_NONE },
    { "client_no_context_takeover", VALUE_NONE },
    /* §7.1.2.1: the offer carries the limit it asks for. */
    { "server_max_window_bits",     VALUE_REQUIRED },
    /* §7.1.2.2: bare, it only says the client understands the parameter
     * in a response; with a value it is also a hint. */
    { "client_max_window_bits",     VALUE_OPTIONAL }
};

/* Window bits that zlib can compress raw deflate with: deflateInit2
 * refuses -8, as zlib.h says, so 8 is never the server's own window. */
#define MIN_DEFLATE_BITS 9
#define MIN_WINDOW_BITS  8
#define MAX_WINDOW_BITS  15

/* client_max_window_bits offered without a value. */
#define BITS_BARE (-1)

/* What one offer asks for; 0 bits means the parameter was not offered. */
typedef struct offer {
    int server_no_context_takeover;
    int client_no_context_takeover;
    int server_bits;
    int client_bits;    /* or BITS_BARE */
} offer_t;

/* §7.1.2.1 and §7.1.2.2: "a decimal integer value without leading zeroes
 * between 8 to 15, inclusive". Returns the value, or 0 for anything else:
 * a sign, a leading zero, other digits or characters, the empty string.
 * Reads no further than the first byte that rules the value out. */
static int window_bits(const char *v)
{
    if ((v[0] == '8' || v[0] == '9') && v[1] == '\0') {
        return v[0] - '0';
    }
    if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && v[2] == '\0') {
        return 10 + (v[1] - '0');
    }
    return 0;
}

/* Read o's parameters into want. Returns NULL, or the static reason to
 * decline the offer under §7: an unknown parameter, a parameter twice, a
 * value where none may be or none where one must be, or an invalid one.
 * Parameter names are compared without case, as HTTP parameter names are
 * (RFC 7231 §3.1.1.1); RFC 7692 does not say otherwise. */
static const char *read_offer(const ws_extension_offer_t *o, offer_t *want)
{
    unsigned seen = 0;
    int i, k;

    memset(want, 0, sizeof(*want));
    for (i = 0; i < o->params->nelts; i++) {
        const ws_extension_param_t *param =
            &APR_ARRAY_IDX(o->params, i, ws_extension_param_t);
        int bits = 0;

        for (k = 0; k < P_COUNT; k++) {
            if (apr_cstr_casecmp(param->name, known_params[k].name) == 0) {
                break;
            }
        }
        if (k == P_COUNT) {
            return "unknown parameter";
        }
        if (seen & (1u << k)) {
            return "duplicate parameter";
        }
        seen |= 1u << k;

        if (param->value == NULL) {
            if (known_params[k].value == VALUE_REQUIRED) {
                return "server_max_window_bits without a value";
            }
        }
        else if (known_params[k].value == VALUE_NONE) {
            return "no_context_takeover with a value";
        }
        else {
            bits = window_bits(param->value);
            if (bits == 0) {
                return "max_window_bits not a decimal 8 to 15";
            }
        }

        switch (k) {
        case P_SERVER_NO_CONTEXT_TAKEOVER:
            want->server_no_context_takeover = 1;
            break;
        case P_CLIENT_NO_CONTEXT_TAKEOVER:
            want->client_no_context_takeover = 1;
            break;
        case P_SERVER_MAX_WINDOW_BITS:
            want->server_bits = bits;
            break;
        default:
            want->client_bits = bits ? bits : BITS_BARE;
            break;
        }
    }
    return NULL;
}

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

int ws_pmd_negotiate_choose(apr_pool_t *pool,
                            const apr_array_header_t *offers,
                            const ws_pmd_negotiate_config_t *config,
                            ws_pmd_negotiate_result_t *res)
{
    int server_max = clamp(config->server_max_window_bits,
                           MIN_DEFLATE_BITS, MAX_WINDOW_BITS);
    int client_max = clamp(config->client_max_window_bits,
                           MIN_WINDOW_BITS, MAX_WINDOW_BITS);
    ws_pmd_negotiate_params_t *p = &res->params;
    const ws_extension_offer_t *o = NULL;
    offer_t want;
    int i, server_bits, client_bits = 0, say_server_bits;

    memset(res, 0, sizeof(*res));
    res->offer_index = -1;

    /* §5: offers of one extension come in the client's order of
     * preference; take the first acceptable one. The token is compared
     * without case, as HTTP tokens usually are: "Permessage-Deflate" can
     * only mean this extension. */
    for (i = 0; offers != NULL && i < offers->nelts; i++) {
        const ws_extension_offer_t *cand =
            &APR_ARRAY_IDX(offers, i, ws_extension_offer_t);

        if (apr_cstr_casecmp(cand->name, WS_PMD_NEGOTIATE_NAME) != 0) {
            continue;
        }
        res->declined = read_offer(cand, &want);
        /* §7.1.2.1: accepting means answering with the same or a smaller
         * server_max_window_bits, and the server cannot compress with 8,
         * so "the server doesn't support the offered configuration" (§7). */
        if (res->declined == NULL && want.server_bits == MIN_WINDOW_BITS) {
            res->declined = "server_max_window_bits=8, below zlib's 9";
        }
        if (res->declined == NULL) {
            o = cand;
            break;
        }
    }
    if (o == NULL) {
        return 0;
    }

    /* §7.1.1.1: the client's server_no_context_takeover is accepted by
     * echoing it; the server may also send it unasked. */
    p->server_no_context_takeover = want.server_no_context_takeover
                                    || config->server_no_context_takeover;

    /* §7.1.1.2: the server may send client_no_context_takeover whether or
     * not it was offered. When offered it is the client's promise not to
     * take over context anyway, so it is echoed: that costs the client
     * nothing and makes it binding, and the inflater can drop its window
     * between messages. */
    p->client_no_context_takeover = want.client_no_context_takeover
                                    || config->client_no_context_takeover;

    /* §7.1.2.1: an offered server_max_window_bits is accepted with the
     * same or a smaller value; unasked, the server may still announce a
     * smaller window than 15, and says so whenever it uses one. */
    server_bits = want.server_bits ? min_int(want.server_bits, server_max)
                                   : server_max;
    say_server_bits = want.server_bits || server_bits < MAX_WINDOW_BITS;
    p->server_window_bits = server_bits;

    /* §7.1.2.2: the response may carry client_max_window_bits only if the
     * offer did; then it is at most the offered value, if any. Without it
     * the client may compress with a window of up to 15 bits, so the
     * server has to inflate with 15 whatever it would prefer.
     * zlib has no 8-bit window (deflateInit2 refuses raw -8 and turns a
     * zlib-wrapped 8 into 9, see zlib.h), so zlib-based clients asked for
     * 8 compress with 9. The server therefore never inflates with less
     * than 9: a window larger than the sender's is always safe to inflate
     * with, a smaller one fails on the first distance beyond it. */
    if (want.client_bits == 0) {
        p->client_window_bits = MAX_WINDOW_BITS;
    }
    else {
        client_bits = want.client_bits == BITS_BARE
                      ? client_max : min_int(want.client_bits, client_max);
        p->client_window_bits = client_bits < MIN_DEFLATE_BITS
                                ? MIN_DEFLATE_BITS : client_bits;
    }

    res->accepted = 1;
    res->offer_index = i;
    res->response = apr_pstrcat(pool, WS_PMD_NEGOTIATE_NAME,
        p->server_no_context_takeover ? "; server_no_context_takeover" : "",
        p->client_no_context_takeover ? "; client_no_context_takeover" : "",
        say_server_bits ? "; server_max_window_bits=" : "",
        say_server_bits ? apr_itoa(pool, server_bits) : "",
        client_bits ? "; client_max_window_bits=" : "",
        client_bits ? apr_itoa(pool, client_bits) : "",
        NULL);
    return 1;
}
