/* fuzz_extension.c: libFuzzer target for ws_extension_parse, the
 * Sec-WebSocket-Extensions parser.
 *
 * The whole input is the header value, so seeds stay readable. Beyond the
 * sanitizers it checks that what the parser accepts is made of tokens
 * (RFC 6455 §9.1), that a rendering of the result parses back to the same
 * offers, with and without OWS and quoting, and that a failure points inside
 * the input. It must not write to the input or keep anything between runs
 * except its pool, which it clears.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "ws_extension.h"

/* tchar, RFC 7230 §3.2.6, written as the RFC lists the delimiters rather
 * than the way the parser does. */
static int is_token(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c)) {
            return 0;
        }
    }
    return 1;
}

/* The offers as a header again. loose adds OWS everywhere it is allowed,
 * empty list elements, and quotes every value with every character
 * escaped; otherwise the most compact form. */
static const char *render(apr_pool_t *pool, const apr_array_header_t *offers,
                          int loose)
{
    apr_array_header_t *out = apr_array_make(pool, 16, sizeof(char *));
    int i, j;

    for (i = 0; i < offers->nelts; i++) {
        const ws_extension_offer_t *o =
            &APR_ARRAY_IDX(offers, i, ws_extension_offer_t);

        APR_ARRAY_PUSH(out, const char *) =
            i ? (loose ? " ,\t, " : ",") : (loose ? ", " : "");
        APR_ARRAY_PUSH(out, const char *) = o->name;
        for (j = 0; j < o->params->nelts; j++) {
            const ws_extension_param_t *p =
                &APR_ARRAY_IDX(o->params, j, ws_extension_param_t);

            APR_ARRAY_PUSH(out, const char *) = loose ? " ; " : ";";
            APR_ARRAY_PUSH(out, const char *) = p->name;
            if (p->value == NULL) {
                continue;
            }
            if (!loose) {
                APR_ARRAY_PUSH(out, const char *) = "=";
                APR_ARRAY_PUSH(out, const char *) = p->value;
            }
            else {
                size_t k, n = strlen(p->value);
                char *q = apr_palloc(pool, 2 * n + 1), *w = q;

                for (k = 0; k < n; k++) {
                    *w++ = '\\';
                    *w++ = p->value[k];
                }
                *w = '\0';
                APR_ARRAY_PUSH(out, const char *) = "\t=\t\"";
                APR_ARRAY_PUSH(out, const char *) = q;
                APR_ARRAY_PUSH(out, const char *) = "\"";
            }
        }
    }
    if (loose) {
        APR_ARRAY_PUSH(out, const char *) = " , ";
    }
    return apr_array_pstrcat(pool, out, 0);
}

static int same_offers(const apr_array_header_t *a,
                       const apr_array_header_t *b)
{
    int i, j;

    if (a->nelts != b->nelts) {
        return 0;
    }
    for (i = 0; i < a->nelts; i++) {
        const ws_extension_offer_t *x =
            &APR_ARRAY_IDX(a, i, ws_extension_offer_t);
        const ws_extension_offer_t *y =
            &APR_ARRAY_IDX(b, i, ws_extension_offer_t);

        if (strcmp(x->name, y->name) != 0
            || x->params->nelts != y->params->nelts) {
            return 0;
        }
        for (j = 0; j < x->params->nelts; j++) {
            const ws_extension_param_t *p =
                &APR_ARRAY_IDX(x->params, j, ws_extension_param_t);
            const ws_extension_param_t *q =
                &APR_ARRAY_IDX(y->params, j, ws_extension_param_t);

            if (strcmp(p->name, q->name) != 0
                || (p->value == NULL) != (q->value == NULL)
                || (p->value && strcmp(p->value, q->value) != 0)) {
                return 0;
            }
        }
    }
    return 1;
}

static void check_offers(const apr_array_header_t *offers)
{
    int i, j;

    if (offers == NULL) {
        abort();
    }
    for (i = 0; i < offers->nelts; i++) {
        const ws_extension_offer_t *o =
            &APR_ARRAY_IDX(offers, i, ws_extension_offer_t);

        if (!is_token(o->name) || o->params == NULL) {
            abort();
        }
        for (j = 0; j < o->params->nelts; j++) {
            const ws_extension_param_t *p =
                &APR_ARRAY_IDX(o->params, j, ws_extension_param_t);

            if (!is_token(p->name) || (p->value && !is_token(p->value))) {
                abort();
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static apr_pool_t *pool;
    apr_array_header_t *offers, *again;
    size_t error_at = (size_t)-1, len;
    char *header;
    int loose;

    if (pool == NULL) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&pool, NULL) != APR_SUCCESS) {
            abort();
        }
    }

    /* The parser takes a C string: an embedded NUL ends it. */
    header = malloc(size + 1);
    if (header == NULL) {
        return 0;
    }
    memcpy(header, data, size);
    header[size] = '\0';
    len = strlen(header);

    if (ws_extension_parse(pool, header, &offers, &error_at)) {
        check_offers(offers);
        for (loose = 0; loose <= 1; loose++) {
            const char *text = render(pool, offers, loose);

            again = NULL;
            if (!ws_extension_parse(pool, text, &again, NULL)
                || !same_offers(offers, again)) {
                abort();
            }
        }
    }
    else if (offers != NULL || error_at > len) {
        abort();
    }

    free(header);
    apr_pool_clear(pool);
    return 0;
}
