/* ws_gate.h: a gate that threads pass to use something a child's pool
 * cleanup takes down (the topic bus and Redis link, the plugins' topic
 * callbacks), so that it is not taken down under them.
 *
 * No lock: prefork runs its child's cleanups from the SIGTERM handler,
 * which may have interrupted a thread inside the gate on that very
 * thread. So closing waits only a bounded while for those inside, and
 * says whether they left; if not, the caller leaves what they use to the
 * process's exit.
 */
#ifndef WS_GATE_H
#define WS_GATE_H

#include "apr_time.h"

typedef struct {
    int open;               /* atomic */
    unsigned int inside;    /* atomic */
} ws_gate_t;

static inline void ws_gate_open(ws_gate_t *g)
{
    __atomic_store_n(&g->open, 1, __ATOMIC_SEQ_CST);
}

/* Count the caller in; 1 if the gate is open. Always paired with
 * ws_gate_leave(), whatever it returns. */
static inline int ws_gate_enter(ws_gate_t *g)
{
    __atomic_add_fetch(&g->inside, 1, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&g->open, __ATOMIC_SEQ_CST);
}

/* Whether the gate is still open, for a caller inside that works in
 * steps and should stop early once it closes. */
static inline int ws_gate_is_open(ws_gate_t *g)
{
    return __atomic_load_n(&g->open, __ATOMIC_SEQ_CST);
}

static inline void ws_gate_leave(ws_gate_t *g)
{
    __atomic_sub_fetch(&g->inside, 1, __ATOMIC_SEQ_CST);
}

/* Close the gate and wait up to wait_ms for everyone inside to leave.
 * Returns 1 if nobody is inside any more. */
static inline int ws_gate_close(ws_gate_t *g, int wait_ms)
{
    int ms;

    __atomic_store_n(&g->open, 0, __ATOMIC_SEQ_CST);
    for (ms = 0; ms < wait_ms
                 && __atomic_load_n(&g->inside, __ATOMIC_SEQ_CST); ms++)
        apr_sleep(apr_time_from_msec(1));
    return __atomic_load_n(&g->inside, __ATOMIC_SEQ_CST) == 0;
}

#endif /* WS_GATE_H */
