#!/usr/bin/env bash
# The browser tests' entry point (make check calls it): Debian's headless
# Chromium, driven by playwright-core, against the demo pages served by the
# real demo/run on free loopback ports (plain and TLS).
#
#   tests/browser/run.sh                 run everything
#   tests/browser/run.sh --preflight     only say what is missing
#
# Needs /usr/bin/chromium (apt-get install chromium), node and npm; it
# installs playwright-core here from the committed lock file (npm ci) when
# node_modules is missing. Playwright never downloads a browser here.
# Screenshots and the demo servers' logs go to $BUILD/browser (build/browser).
#
# Environment:
#   BROWSER_SUITE_TIMEOUT=N   seconds for the whole run (default 600)
#   CHROMIUM=...              the browser (default /usr/bin/chromium)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

say() { echo "[browser] $*"; }

chromium=${CHROMIUM:-/usr/bin/chromium}
missing=()
if [ -x "$chromium" ]; then
    say "chromium: $chromium ($("$chromium" --version 2>/dev/null | head -n 1))"
else
    missing+=("$chromium (as root: apt-get install -y chromium)")
fi
if command -v node >/dev/null 2>&1; then
    say "node: $(node --version)"
else
    missing+=("node (as root: apt-get install -y nodejs npm)")
fi

preflight_only=0
if [ "${1:-}" = "--preflight" ]; then preflight_only=1; shift; fi

if [ ! -f "$HERE/node_modules/playwright-core/package.json" ]; then
    if [ $preflight_only = 1 ]; then
        missing+=("tests/browser/node_modules/playwright-core (run.sh runs npm ci)")
    elif ! command -v npm >/dev/null 2>&1; then
        missing+=("npm, to install playwright-core (apt-get install -y npm)")
    else
        say "installing playwright-core: npm ci in tests/browser (at most 300s)"
        # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads no
        # browser anyway; this says so to any install script.
        if ! (cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
                timeout 300 npm ci --no-audit --no-fund --loglevel=error); then
            missing+=("playwright-core: npm ci in tests/browser failed")
        fi
    fi
fi
if [ -f "$HERE/node_modules/playwright-core/package.json" ]; then
    say "playwright-core: $(node -p \
        "require('$HERE/node_modules/playwright-core/package.json').version")"
fi

if [ ${#missing[@]} -gt 0 ]; then
    for m in "${missing[@]}"; do say "MISSING: $m"; done
    say "FAILED: the browser tests cannot run without these"
    exit 1
fi
[ $preflight_only = 1 ] && { say "everything needed is present"; exit 0; }

# node --test runs each file in a child process; its own per-test and
# per-suite timeouts bound every step, and this bounds the whole.
cmd=(node --test --test-concurrency=1 "$HERE/demo.test.js")
say "running: ${cmd[*]}"
# timeout(1) runs in a process group of its own, where neither a Ctrl-C
# at the terminal nor a signal to this script's group reaches it; pass
# those on, so that the tests stop their servers and browser and exit.
timeout --kill-after=30 "${BROWSER_SUITE_TIMEOUT:-600}" "${cmd[@]}" &
child=$!
interrupted=
trap 'interrupted=1; kill -TERM "$child" 2>/dev/null' INT TERM HUP
wait "$child"
rc=$?
while kill -0 "$child" 2>/dev/null; do   # a signal cut the wait short
    wait "$child"
    rc=$?
done
trap - INT TERM HUP
[ -n "$interrupted" ] && { say "interrupted"; [ $rc = 0 ] && rc=130; }
[ $rc = 124 ] && say "the whole run passed ${BROWSER_SUITE_TIMEOUT:-600}s and was stopped"
if [ $rc = 0 ]; then
    say "passed; screenshots in ${BUILD:-build}/browser/"
else
    say "FAILED (exit $rc); logs and screenshots in ${BUILD:-build}/browser/"
fi
exit $rc
