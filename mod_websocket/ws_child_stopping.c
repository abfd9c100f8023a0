/* ws_child_stopping.c: when a winding-down child closes its WebSockets,
 * for both drivers: at once when it stops, and after a graceful restart
 * when WebSocketRestartGrace runs out (ws_driver_child_stopping()).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>

#include "ap_mpm.h"
#include "http_log.h"
#include "http_main.h"
#include "scoreboard.h"

#include "ws_config.h"
#include "ws_conn.h"
#include "ws_driver.h"
#include "ws_log.h"

APLOG_USE_MODULE(websocket);

/* A graceful restart bumps the scoreboard's running generation before it
 * signals the old children (event.c and prefork.c, 2.4.x); a graceful stop
 * leaves it alone. So a child whose own generation is no longer the
 * running one was restarted, and with WebSocketRestartGrace keeps its
 * WebSockets until the grace, counted from when it first notices, runs
 * out. httpd keeps such a child for as long as it serves connections.
 *
 * A graceful stop during the grace reaches only the running generation
 * (over its pipe of death), never the old children, which would then hold
 * the stop until the grace or GracefulShutdownTimeout ran out. What they
 * can see is the running generation's children going away: the MPMs keep
 * a slot's generation after its child is gone, so a slot of the running
 * generation says that generation was started, and none of them alive for
 * ORPHANED means httpd is stopping, and the grace ends. Until there is
 * such a slot (the parent is still reading its configuration, or has no
 * free slot for a new child) the grace holds. */

#define GRACE_LOOK  apr_time_from_msec(250)  /* scoreboard scans at most */
#define ORPHANED    apr_time_from_sec(3)     /* longer than the parent takes
                                                to replace a child */

static pthread_mutex_t grace_lock = PTHREAD_MUTEX_INITIALIZER;
static apr_time_t grace_end;        /* 0: no grace started (grace_lock) */
static apr_time_t grace_looked;     /* last scan (grace_lock) */
static apr_time_t orphaned_since;   /* 0, or since when the running
                                       generation has had slots but no
                                       live child (grace_lock) */
static const char *grace_over;      /* the close reason once it is over
                                       (grace_lock) */

/* 1 if generation gen has been given a slot (its children were started),
 * and then *alive says whether one of them still lives. */
static int generation_started(int gen, int *alive)
{
    int limit = 0, started = 0, i;

    *alive = 1;
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS)
        return 0;
    *alive = 0;
    for (i = 0; i < limit && !*alive; i++) {
        process_score *ps = ap_get_scoreboard_process(i);

        if (!ps || ps->generation != gen)
            continue;
        started = 1;
        *alive = ps->pid > 0 && (kill(ps->pid, 0) == 0 || errno == EPERM);
    }
    return started;
}

static void count_conn(ws_conn_t *wc, void *arg)
{
    (void)wc;
    ++*(int *)arg;
}

/* The grace of an old child: NULL while it lasts, else the close reason. */
static const char *grace_check(apr_interval_time_t grace, int my_gen)
{
    apr_time_t now = apr_time_now();
    int started = 0, ended = 0, conns = 0, gen;
    const char *over;
    int alive;

    pthread_mutex_lock(&grace_lock);
    if (!grace_end) {
        grace_end = now + grace;
        started = 1;
    }
    if (!grace_over && now >= grace_end) {
        grace_over = "server restarting";
        ended = 1;
    }
    else if (!grace_over && now - grace_looked >= GRACE_LOOK) {
        grace_looked = now;
        gen = ap_scoreboard_image->global->running_generation;
        if (!generation_started(gen, &alive) || alive) {
            orphaned_since = 0;
        }
        else if (!orphaned_since) {
            orphaned_since = now;
        }
        else if (now - orphaned_since >= ORPHANED) {
            grace_over = "server shutting down";
            ended = 1;
        }
    }
    over = grace_over;
    pthread_mutex_unlock(&grace_lock);
    if (started || ended)
        ws_conn_for_each(count_conn, &conns);
    if (started && conns)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     WSLOGNO(00114) "websocket: graceful restart: this "
                     "child (generation %d) keeps its %d WebSocket(s) open "
                     "for up to %" APR_TIME_T_FMT " ms "
                     "(WebSocketRestartGrace)", my_gen, conns,
                     apr_time_as_msec(grace));
    if (ended && conns)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     WSLOGNO(00115) "websocket: %s: closing the %d "
                     "WebSocket(s) of this old child with 1001",
                     now >= grace_end ? "the restart grace is over"
                                      : "the new generation is gone",
                     conns);
    return over;
}

int ws_driver_child_stopping(const char **reason)
{
    apr_interval_time_t grace = ws_config_global()->restart_grace;
    int state, generation;

    *reason = "server shutting down";
    if (ap_scoreboard_image
        && ap_mpm_query(AP_MPMQ_GENERATION, &generation) == APR_SUCCESS
        && ap_scoreboard_image->global->running_generation != generation) {
        const char *over = grace > 0 ? grace_check(grace, generation)
                                     : *reason;

        if (over)
            *reason = over;
        return over != NULL;
    }
    return ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
           && state == AP_MPMQ_STOPPING;
}
