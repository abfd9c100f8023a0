#!/usr/bin/env bash
# bench/run.sh: the WebSocket server benchmark (`make benchmark`).
#
# Starts each peer server in turn on a free 127.0.0.1 port, pinned to CPU 0,
# and drives it with bench/ws_load pinned to CPU 1, scenario by scenario;
# repeats REPS times with the servers' order rotated; then prints a table of
# medians with ratios against the best peer of each scenario. bench/README.md
# explains every column and how each figure is measured.
#
#   bench/run.sh                 the default run (about 20 minutes)
#   QUICK=1 bench/run.sh         a smoke run (one repetition, short phases)
#
# Knobs (environment): REPS, DUR (measured seconds per echo/churn phase),
# WARM (warm-up seconds), HOLD (idle hold seconds), SERVERS, SCENARIOS,
# THREAD_CAP (most threads a thread-per-connection server may be given,
# default 1024), IDLE_N (connections of the idle scenarios, default 10000),
# ASYNC_THREADS (worker threads of the async mod_websocket
# server, default 64), PUBSUB_CHILDREN (httpd children of the mws-pubsub
# peers, default 2, sharing ASYNC_THREADS), MWS_EXTRA (httpd directives added to both
# mod_websocket servers' configs, for experiments), SYSCALL_MSGS (messages of the syscall-count run),
# WALL_LIMIT (seconds; phases not started by then are skipped), BUILD.
#
# Every server gets a fresh start for every scenario (a config sized for
# it) and is killed right after; a trap kills whatever is left on any exit.
# Every wait is bounded. Results: $BUILD/bench/results-<time>/.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$repo/$BUILD
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    REPS=${REPS:-1} DUR=${DUR:-1} WARM=${WARM:-0.3} HOLD=${HOLD:-1}
    SYSCALL_MSGS=${SYSCALL_MSGS:-5000} WALL_LIMIT=${WALL_LIMIT:-450}
else
    REPS=${REPS:-3} DUR=${DUR:-2} WARM=${WARM:-0.5} HOLD=${HOLD:-3}
    SYSCALL_MSGS=${SYSCALL_MSGS:-20000} WALL_LIMIT=${WALL_LIMIT:-1500}
fi
SERVERS=${SERVERS:-"mws-blocking mws-async mws-async-dedicated15 mws-async-dedicated10 apache-proxy-node node lws"}
SCENARIOS=${SCENARIOS:-"latency echo64 echo16k pipelined handshakes idle10k fanout1k fanout10k json1k json1k-deflate idle-json idle-deflate"}
THREAD_CAP=${THREAD_CAP:-1024}
ASYNC_THREADS=${ASYNC_THREADS:-64}
PUBSUB_CHILDREN=${PUBSUB_CHILDREN:-2}
IDLE_N=${IDLE_N:-10000}

APACHE=/usr/sbin/apache2
MODULES=/usr/lib/apache2/modules
SERVER_CPU=0
CLIENT_CPU=1

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

t_begin=$(date +%s)
stamp=$(date -u +%Y%m%d-%H%M%S)
out=$BUILD/bench/results-$stamp
mkdir -p "$out"
results=$out/results.jsonl
: > "$results"

# ------------------------------------------------------------ clean-up
scratch=
declare -a live_groups=()     # process groups of servers we started
declare -a live_pids=()       # other processes we started (ws_load, perf)

# A server's whole process group: SIGTERM, then SIGKILL after 10 s; a stop
# slower than 2 s is reported. (Servers are disowned jobs: bash reaps them
# without a job report.)
kill_group() {
    local g=$1 i
    kill -0 -- "-$g" 2>/dev/null || return 0
    kill -TERM -- "-$g" 2>/dev/null
    for i in $(seq 100); do
        if ! kill -0 -- "-$g" 2>/dev/null; then
            (( i > 20 )) && say "note: the server took about $((i / 10)) s to exit after SIGTERM"
            return 0
        fi
        sleep 0.1
    done
    say "process group $g still there 10 s after SIGTERM: SIGKILL"
    kill -KILL -- "-$g" 2>/dev/null
    for i in $(seq 30); do
        kill -0 -- "-$g" 2>/dev/null || return 0
        sleep 0.1
    done
    say "process group $g still there after SIGKILL"
    return 0
}

cleanup() {
    local status=$? g p
    trap '' INT TERM HUP
    trap - EXIT
    for p in "${live_pids[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    for g in "${live_groups[@]}"; do
        kill_group "$g"
    done
    [[ -n $scratch && -d $scratch ]] && rm -rf "$scratch"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------- prerequisites
need_pkgs=()
for pkg in build-essential pkg-config apache2 apache2-dev libwebsockets-dev \
           linux-perf util-linux procps python3 redis-server; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) == installed ]] \
        || need_pkgs+=("$pkg")
done
command -v node >/dev/null && command -v npm >/dev/null || need_pkgs+=(nodejs npm)
if (( ${#need_pkgs[@]} )); then
    (( EUID == 0 )) || die "missing packages: ${need_pkgs[*]} (as root: apt-get install -y ${need_pkgs[*]})"
    say "installing ${need_pkgs[*]}"
    timeout 300 apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q \
        --no-install-recommends "${need_pkgs[@]}" >/dev/null \
        || say "apt-get install failed; going on with what is there"
fi
if [[ ! -f $repo/bench/node_modules/ws/package.json ]]; then
    say "installing ws: npm ci in bench/ (at most 300 s)"
    (cd "$repo/bench" && timeout 300 npm ci --no-audit --no-fund >/dev/null 2>&1) \
        || say "npm ci failed: the Node peers will be skipped"
fi

say "building (make module handlers and the bench binaries, BUILD=$BUILD)"
make -C "$repo" --no-print-directory BUILD="$BUILD" module handlers \
    "$BUILD/bench/ws_load" "$BUILD/bench/plugins/fanout.so" \
    "$BUILD/bench/plugins/pubsub.so" >"$out/make.log" 2>&1 \
    || { tail -n 30 "$out/make.log"; die "build failed (log: $out/make.log)"; }
have_lws=1
make -C "$repo" --no-print-directory BUILD="$BUILD" "$BUILD/bench/lws_echo" \
    >>"$out/make.log" 2>&1 || have_lws=0
WS_LOAD=$BUILD/bench/ws_load

# The module and plugins are copied once, so that a rebuild during the run
# cannot change what is measured; children run as www-data and must read
# them, hence a world-readable folder outside the repo.
scratch=$(mktemp -d /tmp/mws-bench.XXXXXX)
chmod 755 "$scratch"
mkdir -p "$scratch/lib"
cp "$BUILD/mod_websocket.so" "$BUILD/handlers/echo.so" \
   "$BUILD/bench/plugins/fanout.so" "$BUILD/bench/plugins/pubsub.so" \
   "$scratch/lib/"
chmod 644 "$scratch/lib/"*.so
module_sha=$(sha256sum "$scratch/lib/mod_websocket.so" | cut -c1-12)
git_rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git -C "$repo" status --porcelain --untracked-files=no -- mod_websocket include 2>/dev/null | wc -l)

# File descriptors: as many as we may have (ws_load raises its own too).
nofile_hard=$(ulimit -Hn)
ulimit -Sn "$nofile_hard" 2>/dev/null
nofile=$(ulimit -Sn)
[[ $nofile == unlimited ]] && nofile=1048576
say "RLIMIT_NOFILE for the servers and the client: $nofile (hard $nofile_hard)"

have_perf=0
if command -v perf >/dev/null \
   && perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
    have_perf=1
fi

run_user=
(( EUID == 0 )) && run_user=$'User www-data\nGroup www-data'

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

json_status() {   # server scenario rep status reason
    python3 -c 'import json,sys; print(json.dumps({"kind":"status","server":sys.argv[1],"scenario":sys.argv[2],"rep":int(sys.argv[3]),"status":sys.argv[4],"reason":sys.argv[5]}))' \
        "$@" >> "$results"
}

# ---------------------------------------------------- apache configs
# apache_conf DIR PORT THREADS BODY [CHILDREN]: one event-MPM child (or
# CHILDREN) with THREADS workers in all, no access log, error log at warn.
apache_conf() {
    local dir=$1 port=$2 threads=$3 body=$4 children=${5:-1}
    local per=$(( threads / children ))
    local comment="# One child, so that a broadcast reaches every connection and the server
# is one process like the other peers."
    (( children > 1 )) && comment="# $children children (topics reach the subscribers of every child over the
# module's bus; the kernel spreads the accepted connections over them)."
    mkdir -p "$dir/run" "$dir/logs"
    chmod 755 "$dir" "$dir/run" "$dir/logs"
    cat > "$dir/httpd.conf" <<EOF
# Generated by bench/run.sh for one scenario.
ServerRoot "$dir"
DefaultRuntimeDir "$dir/run"
PidFile "$dir/run/httpd.pid"
Listen 127.0.0.1:$port
ServerName 127.0.0.1
$run_user
LoadModule mpm_event_module $MODULES/mod_mpm_event.so
LoadModule authz_core_module $MODULES/mod_authz_core.so
ErrorLog "$dir/logs/error.log"
LogLevel warn
Timeout 300
KeepAlive On
ListenBacklog 4096
$comment
StartServers $children
ServerLimit $children
ThreadLimit $per
ThreadsPerChild $per
MaxRequestWorkers $(( per * children ))
MinSpareThreads 1
MaxSpareThreads $((threads * 2))
MaxConnectionsPerChild 0
# Parked connections count against ThreadsPerChild + factor x idle workers.
AsyncRequestWorkerFactor 1000
GracefulShutdownTimeout 2
# As in Debian's stock apache2.conf: no .htaccess lookups per request.
<Directory />
    AllowOverride None
    Require all granted
</Directory>
$body
EOF
    chmod 644 "$dir/httpd.conf"
}

mws_body() {   # driver line [pubsub: also /pubsub]
    cat <<EOF
LoadModule websocket_module $scratch/lib/mod_websocket.so
${MWS_EXTRA:-}
<Location "/echo">
    WebSocketHandler $scratch/lib/echo.so
    $1
</Location>
<Location "/fanout">
    WebSocketHandler $scratch/lib/fanout.so
    $1
</Location>
EOF
    # The topic plugin only where it is measured: it needs API version 2.
    [[ -n ${2:-} ]] && cat <<EOF
<Location "/pubsub">
    WebSocketHandler $scratch/lib/pubsub.so
    $1
</Location>
EOF
}

# Does this module know WebSocketDriver? (A build older than the async
# driver has only the blocking one; the bench then skips mws-async.)
probe_dir=$scratch/probe
apache_conf "$probe_dir" 1 16 "$(mws_body 'WebSocketDriver async')"
if probe_out=$("$APACHE" -t -f "$probe_dir/httpd.conf" 2>&1); then
    have_driver=1
    say "WebSocketDriver: accepted by apache2 -t"
else
    have_driver=0
    driver_reason="apache2 -t rejects WebSocketDriver: $(printf '%s' "$probe_out" | grep -v '^$' | head -n 2 | tr '\n' ' ')"
    say "$driver_reason"
fi

# ---------------------------------------------------------- servers
# start_server NAME CONNS: fills PORT, PIDS (for ws_load --server-pid),
# GROUPS_STARTED, PUB_PORT (where ws_load's publisher connects, when not
# PORT); or sets REASON and returns 1 (not possible) or 2 (skipped or
# failed).
PORT= PIDS=() REASON= THREADS= PUB_PORT=
declare -a cur_groups=()

wait_port() {   # port pid seconds
    local port=$1 pid=$2 i
    for i in $(seq $(( $3 * 10 ))); do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

SPAWNED=
spawn() {   # log cmd...: in a session of its own, on CPU 0; sets SPAWNED
    local log=$1
    shift
    taskset -c "$SERVER_CPU" setsid "$@" >"$log" 2>&1 < /dev/null &
    SPAWNED=$!
    disown "$SPAWNED"
    live_groups+=("$SPAWNED")
    cur_groups+=("$SPAWNED")
}

start_apache() {   # dir [port]
    local dir=$1 port=${2:-$PORT} pid
    "$APACHE" -t -f "$dir/httpd.conf" >"$dir/configtest.log" 2>&1 || {
        REASON="apache2 -t failed: $(head -n 2 "$dir/configtest.log" | tr '\n' ' ')"
        return 2
    }
    spawn "$dir/logs/stdout.log" "$APACHE" -f "$dir/httpd.conf" -DFOREGROUND
    pid=$SPAWNED
    if ! wait_port "$port" "$pid" 20; then
        REASON="httpd did not start: $(tail -n 3 "$dir/logs/error.log" 2>/dev/null | tr '\n' ' ')"
        return 2
    fi
    PIDS+=("$pid")
}

start_server() {
    local name=$1 conns=$2 dir need
    PORT=$(free_port) PIDS=() REASON= THREADS= PUB_PORT=
    cur_groups=()
    dir=$scratch/srv-$name-$PORT
    # Thread-per-connection servers get a thread per connection and 16
    # more; one that would need more than THREAD_CAP is not run.
    need=$(( conns + 16 < 32 ? 32 : conns + 16 ))
    case $name in
    mws-blocking)
        if (( need > THREAD_CAP )); then
            REASON="not possible (blocking driver holds a thread per connection: $need threads > THREAD_CAP $THREAD_CAP)"
            return 1
        fi
        THREADS=$need
        local line=
        (( have_driver )) && line="WebSocketDriver blocking"
        apache_conf "$dir" "$PORT" "$THREADS" "$(mws_body "$line" "$PUBSUB")"
        start_apache "$dir"
        ;;
    mws-async|mws-async-dedicated15|mws-async-dedicated10)
        if (( ! have_driver )); then
            REASON="skipped: $driver_reason"
            return 2
        fi
        THREADS=$ASYNC_THREADS
        local mode=
        case $name in
        mws-async-dedicated15) mode=$'\n    WebSocketDeflateMode dedicated 15 8' ;;
        mws-async-dedicated10) mode=$'\n    WebSocketDeflateMode dedicated 10 4' ;;
        esac
        apache_conf "$dir" "$PORT" "$THREADS" "$(mws_body "WebSocketDriver async$mode" "$PUBSUB")"
        start_apache "$dir"
        ;;
    mws-pubsub)
        # mws-async over PUBSUB_CHILDREN children: topics cross them over
        # the module's bus.
        if (( ! have_driver )); then
            REASON="skipped: $driver_reason"
            return 2
        fi
        THREADS=$ASYNC_THREADS
        apache_conf "$dir" "$PORT" "$THREADS" \
            "$(mws_body "WebSocketDriver async" pubsub)" "$PUBSUB_CHILDREN"
        start_apache "$dir"
        ;;
    mws-pubsub-redis)
        # Two mws-pubsub instances (each its own DefaultRuntimeDir, so its
        # own bus) joined by one redis-server: ws_load's subscribers on B
        # (PORT), its publisher on A (PUB_PORT).
        if (( ! have_driver )); then
            REASON="skipped: $driver_reason"
            return 2
        fi
        command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
            || { REASON="skipped: redis-server or redis-cli missing (apt-get install redis-server)"; return 2; }
        local rport rpid i numpat=0 want=$(( 2 * PUBSUB_CHILDREN ))
        rport=$(free_port)
        PUB_PORT=$(free_port)
        mkdir -p "$dir/redis"
        spawn "$dir/redis/redis.log" redis-server --bind 127.0.0.1 \
            --port "$rport" --save "" --appendonly no --dir "$dir/redis" \
            --protected-mode yes --daemonize no
        rpid=$SPAWNED
        wait_port "$rport" "$rpid" 20 \
            || { REASON="redis-server did not start: $(tail -n 3 "$dir/redis/redis.log" | tr '\n' ' ')"; return 2; }
        PIDS+=("$rpid")
        THREADS=$(( 2 * ASYNC_THREADS ))
        local body
        body="WebSocketRedis redis://127.0.0.1:$rport
$(mws_body "WebSocketDriver async" pubsub)"
        apache_conf "$dir/A" "$PUB_PORT" "$ASYNC_THREADS" "$body" "$PUBSUB_CHILDREN"
        apache_conf "$dir/B" "$PORT" "$ASYNC_THREADS" "$body" "$PUBSUB_CHILDREN"
        start_apache "$dir/A" "$PUB_PORT" || return
        start_apache "$dir/B" "$PORT" || return
        # Every child of both holds a PSUBSCRIBE on Redis once its link
        # is up (a client with psub=1 in CLIENT LIST; PUBSUB NUMPAT counts
        # distinct patterns); before that a message would not cross.
        for i in $(seq 100); do
            numpat=$(timeout 2 redis-cli -h 127.0.0.1 -p "$rport" CLIENT LIST 2>/dev/null | grep -c ' psub=[1-9]')
            (( ${numpat:-0} >= want )) && break
            sleep 0.1
        done
        if (( ${numpat:-0} < want )); then
            REASON="Redis has ${numpat:-0} pattern subscribers after 10 s, not $want: $(grep -h WS0011 "$dir"/?/logs/error.log | tail -n 2 | tr '\n' ' ')"
            return 2
        fi
        ;;
    apache-proxy-node)
        if (( need > THREAD_CAP )); then
            REASON="not possible (mod_proxy_http's tunnel holds a thread per connection: $need threads > THREAD_CAP $THREAD_CAP)"
            return 1
        fi
        if (( 2 * conns + 100 > nofile )); then
            REASON="not possible (the proxy child needs two descriptors per connection: $((2 * conns)) > RLIMIT_NOFILE $nofile)"
            return 1
        fi
        [[ -f $repo/bench/node_modules/ws/package.json ]] \
            || { REASON="skipped: bench/node_modules/ws missing (npm ci failed)"; return 2; }
        local nport npid
        nport=$(free_port)
        mkdir -p "$dir"
        spawn "$dir/node.log" node "$repo/bench/node_echo.js" "$nport" ${DEFLATE:+--deflate} ${PUBSUB:+--pubsub}
        npid=$SPAWNED
        wait_port "$nport" "$npid" 20 \
            || { REASON="node backend did not start: $(tail -n 3 "$dir/node.log" | tr '\n' ' ')"; return 2; }
        PIDS+=("$npid")
        THREADS=$need
        apache_conf "$dir" "$PORT" "$THREADS" "LoadModule proxy_module $MODULES/mod_proxy.so
LoadModule proxy_http_module $MODULES/mod_proxy_http.so
ProxyPass \"/\" \"http://127.0.0.1:$nport/\" upgrade=websocket"
        start_apache "$dir"
        ;;
    node)
        [[ -f $repo/bench/node_modules/ws/package.json ]] \
            || { REASON="skipped: bench/node_modules/ws missing (npm ci failed)"; return 2; }
        mkdir -p "$dir"
        local pid
        spawn "$dir/node.log" node "$repo/bench/node_echo.js" "$PORT" ${DEFLATE:+--deflate} ${PUBSUB:+--pubsub}
        pid=$SPAWNED
        wait_port "$PORT" "$pid" 20 \
            || { REASON="node did not start: $(tail -n 3 "$dir/node.log" | tr '\n' ' ')"; return 2; }
        PIDS+=("$pid")
        ;;
    lws)
        (( have_lws )) || { REASON="skipped: bench/lws_echo did not build (see make.log; apt-get install libwebsockets-dev)"; return 2; }
        mkdir -p "$dir"
        local pid
        spawn "$dir/lws.log" "$BUILD/bench/lws_echo" "$PORT" ${DEFLATE:+--deflate} ${PUBSUB:+--pubsub}
        pid=$SPAWNED
        wait_port "$PORT" "$pid" 20 \
            || { REASON="lws_echo did not start: $(tail -n 3 "$dir/lws.log" | tr '\n' ' ')"; return 2; }
        PIDS+=("$pid")
        ;;
    *)
        REASON="unknown server $name"
        return 2
        ;;
    esac
}

stop_server() {
    local g
    for g in "${cur_groups[@]}"; do
        kill_group "$g"
    done
    local keep=()
    for g in "${live_groups[@]}"; do
        [[ " ${cur_groups[*]} " == *" $g "* ]] || keep+=("$g")
    done
    live_groups=("${keep[@]}")
    cur_groups=()
}

# ---------------------------------------------------------- scenarios
# scenario_args NAME: sets CONNS and ARGS (ws_load options), WSPATH,
# DEFLATE (1 where ws_load offers permessage-deflate: the Node and lws
# peers are then started with it on; empty otherwise) and PUBSUB (1 in the
# topic scenarios: the Node and lws peers then stamp their broadcasts).
scenario_args() {
    DEFLATE= PUBSUB=
    case $1 in
    latency)    CONNS=1;   WSPATH=/echo
                ARGS=(--mode echo -c 1 --inflight 1 --size 64 --text --duration "$DUR" --warmup "$WARM") ;;
    echo64)     CONNS=100; WSPATH=/echo
                ARGS=(--mode echo -c 100 --inflight 1 --size 64 --text --duration "$DUR" --warmup "$WARM") ;;
    echo16k)    CONNS=100; WSPATH=/echo
                ARGS=(--mode echo -c 100 --inflight 1 --size 16384 --binary --duration "$DUR" --warmup "$WARM") ;;
    pipelined)  CONNS=100; WSPATH=/echo
                ARGS=(--mode echo -c 100 --inflight 16 --size 64 --text --duration "$DUR" --warmup "$WARM") ;;
    handshakes) CONNS=16;  WSPATH=/echo
                ARGS=(--mode churn -c 16 --duration "$DUR" --warmup "$WARM") ;;
    idle10k)    CONNS=$IDLE_N; WSPATH=/echo
                ARGS=(--mode idle -c "$IDLE_N" --size 64 --text --hold "$HOLD") ;;
    fanout1k)   CONNS=1000; WSPATH=/fanout
                ARGS=(--mode fanout -c 1000 --burst 100 --size 64) ;;
    fanout10k)  CONNS=10000; WSPATH=/fanout
                ARGS=(--mode fanout -c 10000 --burst 10 --size 64) ;;
    pubsub1k)   CONNS=1001; WSPATH=/pubsub; PUBSUB=1
                ARGS=(--mode pubsub -c 1000 --burst 100 --size 64) ;;
    pubsub10k)  CONNS=10001; WSPATH=/pubsub; PUBSUB=1
                ARGS=(--mode pubsub -c 10000 --burst 20 --size 64) ;;
    json1k)     CONNS=100; WSPATH=/echo
                ARGS=(--mode echo -c 100 --inflight 1 --size 1024 --json --duration "$DUR" --warmup "$WARM") ;;
    json1k-deflate) CONNS=100; WSPATH=/echo; DEFLATE=1
                ARGS=(--mode echo -c 100 --inflight 1 --size 1024 --json --deflate --duration "$DUR" --warmup "$WARM") ;;
    idle-json)  CONNS=$IDLE_N; WSPATH=/echo
                ARGS=(--mode idle -c "$IDLE_N" --size 1024 --json --prime --hold "$HOLD") ;;
    idle-deflate) CONNS=$IDLE_N; WSPATH=/echo; DEFLATE=1
                ARGS=(--mode idle -c "$IDLE_N" --size 1024 --json --prime --deflate --hold "$HOLD") ;;
    *) return 1 ;;
    esac
}

elapsed() { echo $(( $(date +%s) - t_begin )); }

# Other work on this machine (a test suite, a build) skews every figure:
# before each run, wait until the machine has been nearly idle (at most
# QUIET_PCT % of one core over half a second, none of ours running) for at
# most QUIET_MAX seconds. ws_load reports what still ran as other%.
QUIET_PCT=${QUIET_PCT:-20}
QUIET_MAX=${QUIET_MAX:-15}
hz=$(getconf CLK_TCK)
busy_ticks() {
    local cpu u n s i w q sq st rest
    read -r cpu u n s i w q sq st rest < /proc/stat
    echo $(( u + n + s + q + sq + st ))
}
wait_quiet() {
    local t0=$SECONDS b0 b1 pct
    while :; do
        b0=$(busy_ticks)
        sleep 0.5
        b1=$(busy_ticks)
        pct=$(( (b1 - b0) * 200 / hz ))
        (( pct <= QUIET_PCT )) && break
        if (( SECONDS - t0 >= QUIET_MAX )); then
            say "machine still busy (${pct}% of a core) after ${QUIET_MAX} s: measuring anyway"
            break
        fi
    done
    (( SECONDS - t0 > 1 )) && say "waited $(( SECONDS - t0 )) s for the machine to be quiet"
    return 0
}

run_one() {   # server scenario rep
    local server=$1 scen=$2 rep=$3 rc
    scenario_args "$scen" || { say "unknown scenario $scen"; return; }
    # The WebSocketDeflateMode variants differ from mws-async only where
    # the client offers permessage-deflate.
    [[ $server == mws-async-dedicated* && -z $DEFLATE ]] && return
    # The several-children peers exist for the topic scenarios.
    [[ $server == mws-pubsub* && -z $PUBSUB ]] && return
    if (( $(elapsed) > WALL_LIMIT )); then
        json_status "$server" "$scen" "$rep" skipped "WALL_LIMIT ${WALL_LIMIT}s reached"
        say "$server/$scen: skipped (WALL_LIMIT ${WALL_LIMIT}s reached)"
        return
    fi
    if (( CONNS + 64 > nofile )); then
        json_status "$server" "$scen" "$rep" "not possible" "RLIMIT_NOFILE $nofile < $CONNS connections"
        say "$server/$scen: not possible (RLIMIT_NOFILE $nofile)"
        return
    fi
    wait_quiet
    start_server "$server" "$CONNS"
    rc=$?
    if (( rc )); then
        local st=skipped
        (( rc == 1 )) && st="not possible"
        [[ $REASON == skipped:* ]] || [[ $REASON == not\ possible* ]] || st=failed
        json_status "$server" "$scen" "$rep" "$st" "$REASON"
        say "$server/$scen: $REASON"
        stop_server
        return
    fi
    local sargs=() p
    for p in "${PIDS[@]}"; do sargs+=(--server-pid "$p"); done
    local log=$out/$server.$scen.$rep.log
    [[ -n $PUB_PORT ]] && sargs+=(--pub-port "$PUB_PORT")
    timeout 150 taskset -c "$CLIENT_CPU" "$WS_LOAD" --port "$PORT" --path "$WSPATH" \
        "${ARGS[@]}" --max-duration 60 "${sargs[@]}" \
        --tag "server=$server" --tag "scenario=$scen" --tag "rep=$rep" \
        --tag "threads_configured=${THREADS:-}" \
        >> "$results" 2> "$log"
    rc=$?
    say "$server/$scen (rep $rep): $(grep '^ws_load: [a-z]* ' "$log" | tail -n 1 | sed 's/^ws_load: //')$( (( rc == 0 || rc == 2 )) || echo " [ws_load exit $rc]")"
    if (( rc != 0 && rc != 2 )); then
        json_status "$server" "$scen" "$rep" failed "ws_load exited with $rc: $(tail -n 2 "$log" | tr '\n' ' ')"
    fi
    # httpd's error logs (warn and up; both instances of mws-pubsub-redis)
    # go with the results, as the scratch folder does not stay.
    local f srvdir=$scratch/srv-$server-$PORT
    for f in "$srvdir/logs/error.log" "$srvdir"/?/logs/error.log; do
        [[ -f $f ]] || continue
        p=${f#"$srvdir"/}
        p=${p%logs/error.log}
        cp "$f" "$out/$server.$scen.$rep.${p:+${p%/}.}error.log"
    done
    stop_server
}

# The syscall count: one fixed-count echo run (100 connections x 64 B) per
# server, with perf counting the server's system calls (tracepoint
# raw_syscalls:sys_enter, every thread of every server process) from the
# moment the connections are open until the last counted echo.
SYSCALL_EVENTS=(read write readv writev recvfrom sendto recvmsg sendmsg
    epoll_wait epoll_pwait epoll_ctl poll ppoll futex mmap munmap madvise
    brk mprotect accept4 close getsockopt setsockopt fcntl ioctl
    clock_nanosleep nanosleep sched_yield shutdown times)

syscall_run() {   # server
    local server=$1 sync p events pids perf_pid load_pid i
    scenario_args echo64
    wait_quiet
    start_server "$server" 100 || {
        json_status "$server" syscalls 0 skipped "$REASON"
        stop_server
        return
    }
    pids=$(for p in "${cur_groups[@]}"; do pgrep -g "$p"; done | sort -u | paste -sd, -)
    sync=$scratch/sync-$server
    local sargs=()
    for p in "${PIDS[@]}"; do sargs+=(--server-pid "$p"); done
    timeout 120 taskset -c "$CLIENT_CPU" "$WS_LOAD" --port "$PORT" --path /echo \
        --mode echo -c 100 --inflight 1 --size 64 --text --warmup 0 \
        --messages "$SYSCALL_MSGS" --max-duration 60 --sync "$sync" "${sargs[@]}" \
        --tag "kind=syscalls" --tag "server=$server" \
        > "$out/$server.syscalls.json" 2> "$out/$server.syscalls.log" &
    load_pid=$!
    live_pids+=("$load_pid")
    for i in $(seq 300); do [[ -e $sync.ready ]] && break; sleep 0.1; done
    events="raw_syscalls:sys_enter"
    for p in "${SYSCALL_EVENTS[@]}"; do events+=",syscalls:sys_enter_$p"; done
    timeout 120 perf stat -x, -e "$events" -p "$pids" -o "$out/$server.perf.csv" &
    perf_pid=$!
    live_pids+=("$perf_pid")
    sleep 1      # perf attaches to every thread
    touch "$sync.go"
    for i in $(seq 900); do [[ -e $sync.done ]] && break; sleep 0.1; done
    kill -INT "$perf_pid" 2>/dev/null
    wait "$perf_pid" 2>/dev/null
    touch "$sync.end"
    wait "$load_pid" 2>/dev/null
    python3 - "$server" "$out/$server.syscalls.json" "$out/$server.perf.csv" >> "$results" <<'PY'
import json, sys
server, jpath, cpath = sys.argv[1:4]
try:
    run = json.loads(open(jpath).read().strip().splitlines()[-1])
except Exception:
    run = {}
counts = {}
try:
    for line in open(cpath):
        f = line.strip().split(",")
        if len(f) < 3 or line.startswith("#"):
            continue
        try:
            counts[f[2]] = int(f[0])
        except ValueError:
            pass
except OSError:
    pass
msgs = run.get("messages", 0)
total = counts.get("raw_syscalls:sys_enter")
by = {k.replace("syscalls:sys_enter_", ""): v for k, v in counts.items()
      if k.startswith("syscalls:") and v}
print(json.dumps({"kind": "syscalls", "server": server, "messages": msgs,
                  "errors": run.get("errors"), "total": total,
                  "per_msg": (total / msgs) if (total and msgs) else None,
                  "by_call": {k: v / msgs for k, v in sorted(by.items(), key=lambda kv: -kv[1])} if msgs else {}}))
PY
    stop_server
}

# ---------------------------------------------------------------- run
say "results in $out"
say "load before the run: $(cut -d' ' -f1-3 /proc/loadavg); busiest processes: $(ps -eo pcpu=,comm= --sort=-pcpu | head -n 3 | awk '{printf "%s %s%%; ", $2, $1}')"
python3 -c 'import json,sys; print(json.dumps({"kind":"meta","quick":sys.argv[1]=="1","reps":int(sys.argv[2]),"dur":float(sys.argv[3]),"warm":float(sys.argv[4]),"hold":float(sys.argv[5]),"thread_cap":int(sys.argv[6]),"async_threads":int(sys.argv[7]),"git":sys.argv[8],"module_sha256":sys.argv[9],"module_dirty_files":int(sys.argv[10]),"nofile":sys.argv[11],"driver_directive":sys.argv[12]=="1","perf":sys.argv[13]=="1","servers":sys.argv[14].split(),"scenarios":sys.argv[15].split()}))' \
    "$QUICK" "$REPS" "$DUR" "$WARM" "$HOLD" "$THREAD_CAP" "$ASYNC_THREADS" \
    "$git_rev" "$module_sha" "$git_dirty" "$nofile" "$have_driver" "$have_perf" \
    "$SERVERS" "$SCENARIOS" >> "$results"

read -r -a server_list <<< "$SERVERS"
read -r -a scen_list <<< "$SCENARIOS"
n=${#server_list[@]}
for (( rep = 1; rep <= REPS; rep++ )); do
    order=()
    for (( i = 0; i < n; i++ )); do
        order+=("${server_list[$(( (i + rep - 1) % n ))]}")
    done
    say "=== repetition $rep of $REPS: ${order[*]} ($(elapsed) s so far)"
    for server in "${order[@]}"; do
        for scen in "${scen_list[@]}"; do
            run_one "$server" "$scen" "$rep"
        done
    done
done

if (( have_perf )); then
    say "=== system calls per echoed message (perf stat, $SYSCALL_MSGS echoes, 100 connections x 64 B)"
    for server in "${server_list[@]}"; do
        [[ $server == mws-async-dedicated* ]] && continue   # = mws-async here
        [[ $server == mws-pubsub* ]] && continue   # topic peers only
        if (( $(elapsed) > WALL_LIMIT + 60 )); then
            json_status "$server" syscalls 0 skipped "WALL_LIMIT reached"
            continue
        fi
        syscall_run "$server"
    done
else
    say "perf with raw_syscalls tracepoints not available: no system-call counts"
fi

took=$(elapsed)
say "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$repo/bench/report.py" "$results" --took "$took" | tee "$out/table.txt"
say "took ${took} s; results: $results, table: $out/table.txt"
