#!/usr/bin/env bash
# The integration suite's entry point (make check calls it):
# checks what it needs, prints what it runs and what it skips, and runs
# pytest over tests/integration with a per-test timeout, so nothing hangs.
#
#   tests/integration/run.sh               run everything
#   tests/integration/run.sh --preflight   only list what is missing
#   tests/integration/run.sh -k frames -x  extra arguments go to pytest
#
# Environment:
#   MWS_TEST_TIMEOUT=N     seconds per test (default 120)
#   MWS_SUITE_TIMEOUT=N    seconds for the whole run (default 2400)
#   MWS_LOG_OVERRIDES=...  extra LogLevel items, e.g. "websocket:trace1"
#   MWS_KEEP_SERVERS=1     keep each server's directory (config, logs)
#   PYTHON=...             the interpreter (default: Debian's /usr/bin/python3,
#                          which is where python3-websockets and -pytest live)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

say() { echo "[integration] $*"; }

# Debian's packages install into the system interpreter; a python3 earlier
# on PATH (pyenv, a venv) would not see them.
pick_python() {
    local p
    for p in "${PYTHON:-}" /usr/bin/python3 python3; do
        [ -n "$p" ] || continue
        if "$p" -c 'import pytest, websockets' >/dev/null 2>&1; then
            echo "$p"; return 0
        fi
    done
    return 1
}

preflight_only=0
if [ "${1:-}" = "--preflight" ]; then preflight_only=1; shift; fi

status=0
PY="$(pick_python)" || {
    say "MISSING: a python3 with pytest and websockets" \
        "(apt-get install python3-pytest python3-websockets)"
    exit 1
}
say "python: $PY ($("$PY" -c 'import sys, websockets, pytest;
print("Python %s, websockets %s, pytest %s" % (sys.version.split()[0],
      websockets.__version__, pytest.__version__))'))"

timeout_args=()
if "$PY" -c 'import pytest_timeout' >/dev/null 2>&1; then
    timeout_args=(--timeout="${MWS_TEST_TIMEOUT:-120}")
    say "per-test timeout: ${MWS_TEST_TIMEOUT:-120}s (pytest-timeout)"
else
    say "per-test timeout: none (apt-get install python3-pytest-timeout);" \
        "every socket wait in the tests is bounded anyway"
fi

# Node's ws client: installed from the committed lock file if missing.
if ! command -v node >/dev/null 2>&1; then
    say "SKIPPING the Node ws tests: node not found"
elif [ ! -f "$HERE/node_modules/ws/package.json" ]; then
    if [ $preflight_only = 1 ]; then
        say "missing: tests/integration/node_modules/ws (run.sh runs npm ci)"
    elif command -v npm >/dev/null 2>&1; then
        say "installing ws: npm ci in tests/integration (at most 300s)"
        if ! (cd "$HERE" && timeout 300 npm ci --no-audit --no-fund \
                --loglevel=error); then
            say "npm ci failed: the Node ws tests will be skipped"
        fi
    else
        say "SKIPPING the Node ws tests: npm not found"
    fi
fi
if command -v node >/dev/null 2>&1 && \
   [ -f "$HERE/node_modules/ws/package.json" ]; then
    say "node: $(node --version), ws $(node -p \
        "require('$HERE/node_modules/ws/package.json').version")"
fi

# What the suite needs from the build and the system.
missing="$("$PY" "$HERE/httpd.py" | grep '^missing: ')"
if [ -n "$missing" ]; then
    echo "$missing" | sed 's/^/[integration] /'
    say "every test that needs the module will FAIL with that message;" \
        "the harness self-tests (test_harness.py) still run"
    status=1
else
    say "build: $REPO/build/mod_websocket.so and build/handlers/echo.so present"
fi
[ $preflight_only = 1 ] && exit $status

# Servers live under one directory so that whatever happens to pytest,
# the trap below finds their pid files and ends them (by pid, nothing else).
export MWS_TEST_RUNDIR
MWS_TEST_RUNDIR="$(mktemp -d /tmp/mws-integration.XXXXXX)"
chmod 755 "$MWS_TEST_RUNDIR"
cleanup() {
    local pidfile pid
    for pidfile in "$MWS_TEST_RUNDIR"/*/run/httpd.pid; do
        [ -f "$pidfile" ] || continue
        pid="$(cat "$pidfile" 2>/dev/null)"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && \
           grep -q "$MWS_TEST_RUNDIR" "/proc/$pid/cmdline" 2>/dev/null; then
            say "killing leftover httpd $pid ($pidfile)"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
        fi
    done
    if [ "${MWS_KEEP_SERVERS:-}" = 1 ]; then
        say "server directories kept in $MWS_TEST_RUNDIR"
    else
        rm -rf "$MWS_TEST_RUNDIR"
    fi
}
trap cleanup EXIT

export PYTHONDONTWRITEBYTECODE=1
cmd=("$PY" -m pytest -ra "${timeout_args[@]}" tests/integration "$@")
say "running: ${cmd[*]}"
timeout --kill-after=30 "${MWS_SUITE_TIMEOUT:-2400}" "${cmd[@]}"
rc=$?
[ $rc = 124 ] && say "the whole run passed ${MWS_SUITE_TIMEOUT:-2400}s and was stopped"
[ $rc = 0 ] || exit $rc

# The event MPM parks connections with the async driver by default; its
# tests run once more with the blocking driver, which every other MPM uses.
if [ $# -gt 0 ]; then
    say "skipped: the blocking-driver pass on event (pytest arguments given)"
    exit 0
fi
cmd=("$PY" -m pytest -ra "${timeout_args[@]}" tests/integration -k event)
say "running with WebSocketDriver blocking: ${cmd[*]}"
MWS_DRIVER=blocking timeout --kill-after=30 "${MWS_SUITE_TIMEOUT:-2400}" \
    "${cmd[@]}"
rc=$?
[ $rc = 124 ] && say "the blocking pass passed ${MWS_SUITE_TIMEOUT:-2400}s and was stopped"
exit $rc
