/* fuzz_pmd_offer.c: libFuzzer target for the permessage-deflate
 * negotiation, fed through ws_extension_parse as the handshake feeds it.
 *
 * Input layout (seeds in corpus/fuzz_pmd_offer/ follow it):
 *
 *   byte 0   server_max_window_bits of the config, modulo 20 (0..19, so
 *            values out of range are tried too)
 *   byte 1   client_max_window_bits of the config, modulo 20
 *   byte 2   low nibble: server_no_context_takeover, high nibble:
 *            client_no_context_takeover (any non-zero value means yes)
 *   rest     the Sec-WebSocket-Extensions value (an embedded NUL ends it)
 *
 * Besides the sanitizers it checks the accepted offer against an oracle
 * written from RFC 7692 §7 apart from the code, the agreed parameters
 * against their ranges and the offer, and the response: it parses as one
 * permessage-deflate element with valid parameters, agrees with the
 * parameters, and negotiated as an offer gives itself back. The same call
 * twice gives the same result. It must not keep anything between runs
 * except its pool, which it clears.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "ws_extension.h"
#include "ws_pmd_negotiate.h"

#define CONFIG_BYTES 3

/* §7.1.2: the decimal 8..15 without leading zeros, or 0; by printing the
 * number back rather than by looking at characters as the code does. */
static int oracle_bits(const char *v)
{
    char back[8];
    long n;

    if (v == NULL || *v < '0' || *v > '9' || strlen(v) > 2) {
        return 0;
    }
    n = strtol(v, NULL, 10);
    snprintf(back, sizeof(back), "%ld", n);
    return strcmp(back, v) == 0 && n >= 8 && n <= 15 ? (int)n : 0;
}

/* The params named name (without case) in o: how many, and the last. */
static int count_param(const ws_extension_offer_t *o, const char *name,
                       const ws_extension_param_t **last)
{
    int i, n = 0;

    for (i = 0; i < o->params->nelts; i++) {
        const ws_extension_param_t *p =
            &APR_ARRAY_IDX(o->params, i, ws_extension_param_t);

        if (strcasecmp(p->name, name) == 0) {
            n++;
            if (last) {
                *last = p;
            }
        }
    }
    return n;
}

/* §7: a permessage-deflate offer the server must accept: only the four
 * parameters, each at most once, values where and as §7.1 wants them, and
 * no server_max_window_bits=8, which zlib cannot compress with. */
static int oracle_acceptable(const ws_extension_offer_t *o)
{
    static const char *const names[4] = {
        "server_no_context_takeover", "client_no_context_takeover",
        "server_max_window_bits", "client_max_window_bits"
    };
    int k, known = 0;

    if (strcasecmp(o->name, "permessage-deflate") != 0) {
        return 0;
    }
    for (k = 0; k < 4; k++) {
        const ws_extension_param_t *p = NULL;
        int n = count_param(o, names[k], &p);

        if (n > 1) {
            return 0;
        }
        if (n == 0) {
            continue;
        }
        known++;
        if ((k < 2 && p->value != NULL)
            || (k == 2 && oracle_bits(p->value) < 9)
            || (k == 3 && p->value != NULL && !oracle_bits(p->value))) {
            return 0;
        }
    }
    return known == o->params->nelts;
}

/* The offer's value of a window parameter: 0 absent, -1 bare. */
static int offered_bits(const ws_extension_offer_t *o, const char *name)
{
    const ws_extension_param_t *p = NULL;

    if (!count_param(o, name, &p)) {
        return 0;
    }
    return p->value ? oracle_bits(p->value) : -1;
}

static int same_result(const ws_pmd_negotiate_result_t *a,
                       const ws_pmd_negotiate_result_t *b)
{
    return a->accepted == b->accepted && a->offer_index == b->offer_index
           && memcmp(&a->params, &b->params, sizeof(a->params)) == 0
           && (a->response == NULL) == (b->response == NULL)
           && (a->response == NULL || !strcmp(a->response, b->response))
           && (a->declined == NULL) == (b->declined == NULL)
           && (a->declined == NULL || !strcmp(a->declined, b->declined));
}

/* The response: one permessage-deflate element, parameters as §7.1 wants
 * them in a response and as res->params says. */
static void check_response(apr_pool_t *pool,
                           const ws_pmd_negotiate_result_t *res,
                           const ws_extension_offer_t *offer,
                           const ws_pmd_negotiate_config_t *cfg)
{
    const ws_pmd_negotiate_params_t *p = &res->params;
    apr_array_header_t *back;
    const ws_extension_offer_t *r;
    ws_pmd_negotiate_result_t again;
    int sv, cv, rs, rc, i;

    if (!ws_extension_parse(pool, res->response, &back, NULL)
        || back->nelts != 1) {
        abort();
    }
    r = &APR_ARRAY_IDX(back, 0, ws_extension_offer_t);
    if (strcmp(r->name, "permessage-deflate") != 0 || !oracle_acceptable(r)) {
        abort();
    }
    for (i = 0; i < r->params->nelts; i++) {
        /* Lower case, as the RFC spells them. */
        if (strpbrk(APR_ARRAY_IDX(r->params, i, ws_extension_param_t).name,
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ")) {
            abort();
        }
    }
    if ((count_param(r, "server_no_context_takeover", NULL) == 1)
            != p->server_no_context_takeover
        || (count_param(r, "client_no_context_takeover", NULL) == 1)
            != p->client_no_context_takeover) {
        abort();
    }

    /* §7.1.2.1: answered when offered, with no more than the offer. */
    sv = offered_bits(offer, "server_max_window_bits");
    rs = offered_bits(r, "server_max_window_bits");
    if ((sv && !rs) || (sv && rs > sv)
        || (rs ? rs != p->server_window_bits : p->server_window_bits != 15)) {
        abort();
    }
    /* §7.1.2.2: answered only when offered, with no more than a value
     * offered; the inflater never below 9 nor below the answer. */
    cv = offered_bits(offer, "client_max_window_bits");
    rc = offered_bits(r, "client_max_window_bits");
    if ((rc && !cv) || (cv && !rc) || (cv > 0 && rc > cv)
        || (rc ? p->client_window_bits != (rc < 9 ? 9 : rc)
               : p->client_window_bits != 15)) {
        abort();
    }
    if (rc < 0) {
        abort();
    }

    /* Offered back with the same config, the response is a fixed point. */
    if (!ws_pmd_negotiate_choose(pool, back, cfg, &again)
        || again.offer_index != 0 || strcmp(again.response, res->response)
        || memcmp(&again.params, p, sizeof(*p)) != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static apr_pool_t *pool;
    ws_pmd_negotiate_config_t cfg;
    ws_pmd_negotiate_result_t res, res2;
    apr_array_header_t *offers;
    const ws_extension_offer_t *o;
    int i, ok, any_pmd = 0, first_ok = -1, cfg_s, cfg_c, sv, cv;
    int want_s, want_c;
    char *header;

    if (pool == NULL) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&pool, NULL) != APR_SUCCESS) {
            abort();
        }
    }
    if (size < CONFIG_BYTES) {
        return 0;
    }
    cfg.server_max_window_bits = data[0] % 20;
    cfg.client_max_window_bits = data[1] % 20;
    cfg.server_no_context_takeover = data[2] & 0x0f;
    cfg.client_no_context_takeover = data[2] >> 4;
    cfg_s = cfg.server_max_window_bits < 9 ? 9
            : cfg.server_max_window_bits > 15 ? 15
            : cfg.server_max_window_bits;
    cfg_c = cfg.client_max_window_bits < 8 ? 8
            : cfg.client_max_window_bits > 15 ? 15
            : cfg.client_max_window_bits;

    header = malloc(size - CONFIG_BYTES + 1);
    if (header == NULL) {
        return 0;
    }
    memcpy(header, data + CONFIG_BYTES, size - CONFIG_BYTES);
    header[size - CONFIG_BYTES] = '\0';

    /* A header that breaks the grammar leaves no offers: nothing agreed. */
    if (!ws_extension_parse(pool, header, &offers, NULL)) {
        if (ws_pmd_negotiate_choose(pool, offers, &cfg, &res)
            || res.response || res.declined || res.offer_index != -1) {
            abort();
        }
        goto done;
    }

    ok = ws_pmd_negotiate_choose(pool, offers, &cfg, &res);
    if (!ws_pmd_negotiate_choose(pool, offers, &cfg, &res2) != !ok
        || !same_result(&res, &res2) || ok != res.accepted) {
        abort();
    }

    for (i = 0; i < offers->nelts; i++) {
        o = &APR_ARRAY_IDX(offers, i, ws_extension_offer_t);
        if (strcasecmp(o->name, "permessage-deflate") == 0) {
            any_pmd = 1;
            if (first_ok < 0 && oracle_acceptable(o)) {
                first_ok = i;
            }
        }
    }
    if (res.offer_index != first_ok || ok != (first_ok >= 0)) {
        abort();
    }
    if (!ok) {
        if (res.response != NULL || (res.declined != NULL) != any_pmd) {
            abort();
        }
        goto done;
    }

    /* §7.1: the windows as the offer and the clamped config allow, the
     * flags as the offer and the config ask. */
    o = &APR_ARRAY_IDX(offers, res.offer_index, ws_extension_offer_t);
    sv = offered_bits(o, "server_max_window_bits");
    cv = offered_bits(o, "client_max_window_bits");
    want_s = sv && sv < cfg_s ? sv : cfg_s;
    want_c = cv == 0 ? 15 : cv > 0 && cv < cfg_c ? cv : cfg_c;
    if (want_c < 9) {
        want_c = 9;
    }
    if (res.declined != NULL
        || res.params.server_window_bits != want_s
        || res.params.client_window_bits != want_c
        || res.params.server_no_context_takeover
           != (cfg.server_no_context_takeover
               || count_param(o, "server_no_context_takeover", NULL))
        || res.params.client_no_context_takeover
           != (cfg.client_no_context_takeover
               || count_param(o, "client_no_context_takeover", NULL))) {
        abort();
    }
    check_response(pool, &res, o, &cfg);

done:
    free(header);
    apr_pool_clear(pool);
    return 0;
}
