/* ws_deflate_share.c: per-thread compressors lent to the engines of
 * connections without context takeover (WebSocketDeflateMode shared, or a
 * client that asked for server_no_context_takeover).
 *
 * Each thread keeps a short list of compressors, one per parameter set
 * (window bits, memory level, level), most recently used first, in a
 * pthread key whose destructor frees them when the thread exits. A thread
 * never hands its compressor to another: that is what makes sharing safe
 * without a lock. It must not touch connections, pools or the log.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "ws_deflate.h"
#include "ws_deflate_share.h"

/* Parameter sets a thread keeps compressors for. A location has one, plus
 * one per smaller server_max_window_bits clients ask for; past this the
 * least recently used is freed. */
#define SLOTS 4

typedef struct thread_list {
    int n;
    uintptr_t key[SLOTS];
    ws_deflater_t *def[SLOTS];
} thread_list_t;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t list_key;
static int key_ok;

static void list_free(void *v)
{
    thread_list_t *l = v;
    int i;

    for (i = 0; i < l->n; i++)
        ws_deflate_deflater_destroy(l->def[i]);
    free(l);
}

static void make_key(void)
{
    key_ok = pthread_key_create(&list_key, list_free) == 0;
}

/* The parameters packed into the pointer itself: nothing to allocate or
 * free, and the engine may keep it as long as it likes. Never NULL. */
void *ws_deflate_share_ctx(int window_bits, int mem_level, int level)
{
    return (void *)(uintptr_t)(0x10000u | (unsigned)(window_bits & 0xff) << 8
                               | (unsigned)(mem_level & 0xf) << 4
                               | (unsigned)((level + 1) & 0xf));
}

ws_deflater_t *ws_deflate_share_borrow(void *ctx)
{
    uintptr_t k = (uintptr_t)ctx;
    thread_list_t *l;
    ws_deflater_t *def;
    int i;

    pthread_once(&once, make_key);
    if (!key_ok)
        return NULL;
    if (!(l = pthread_getspecific(list_key))) {
        if (!(l = calloc(1, sizeof(*l))))
            return NULL;
        if (pthread_setspecific(list_key, l)) {
            free(l);
            return NULL;
        }
    }
    for (i = 0; i < l->n && l->key[i] != k; i++)
        ;
    if (i < l->n) {
        def = l->def[i];
    }
    else {
        if (!(def = ws_deflate_deflater_create((int)(k >> 8 & 0xff),
                                               (int)(k >> 4 & 0xf),
                                               (int)(k & 0xf) - 1, 1)))
            return NULL;
        if (l->n == SLOTS)
            ws_deflate_deflater_destroy(l->def[--l->n]);
        i = l->n++;
    }
    /* Most recently used first, so the common case is found at once. */
    for (; i > 0; i--) {
        l->key[i] = l->key[i - 1];
        l->def[i] = l->def[i - 1];
    }
    l->key[0] = k;
    l->def[0] = def;
    return def;
}
