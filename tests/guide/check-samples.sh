#!/usr/bin/env bash
# tests/guide/check-samples.sh: compiles and runs every C sample of
# docs/plugin-guide.md, so the guide cannot go stale.
#
#   tests/guide/check-samples.sh              from the repository root
#   tests/guide/check-samples.sh --httpd      also require the real-httpd run
#   tests/guide/check-samples.sh --no-httpd   never try it
#
# What it needs: cc (with nm from binutils) and this repository. If Debian's
# apache2, build/mod_websocket.so (make) and a python3 with websockets are
# there too, the plugins also serve real WebSockets under httpd
# (tests/guide/httpd_samples.py); otherwise that step says why it is skipped.
#
# How samples are marked. Every ```c fence in the guide must have, on the
# line right before it, one of these HTML comments (invisible when the
# Markdown is rendered):
#
#   <!-- sample: plugin NAME.c -->         a complete plugin file. Built on
#   <!-- sample: plugin NAME.c SYMBOL -->  its own as NAME.so with
#         cc -std=gnu11 -Wall -Wextra -Werror -fPIC -shared -Iinclude -lpthread
#       then nm -D must show SYMBOL (default: NAME up to its first dot plus
#       _plugin, as WebSocketHandler derives it) as the one symbol the
#       plugin defines (httpd loads plugins RTLD_GLOBAL), and the plugin,
#       rebuilt with ASan and UBSan when the compiler has them, is run by
#       tests/guide/fakehost.c on the script PLUGIN_RUNS below gives it (a
#       default one if none); the fake host also checks the guide's thread
#       and handle rules.
#   <!-- sample: fragment -->              file-scope code (functions, types,
#       variables). Compiled with the same flags plus -Wno-unused-function
#       after a prelude that includes <mod_websocket_plugin.h> and the
#       usual C headers (errno, pthread, stdint, stdio, stdlib, string,
#       time).
#   <!-- sample: fragment with NAME.c -->  file-scope code that uses what the
#       plugin sample NAME.c (earlier in the guide) defines: compiled after
#       that plugin's text.
#   <!-- sample: statements -->            statements: compiled after the
#       prelude as the body of
#         void f(mws_conn_t *conn, mws_type_e type, const void *data,
#                size_t len)
#
# A ```c fence without a marker, a marker not followed by a ```c fence, an
# unknown marker or an unclosed fence fails the check, naming the guide's
# line; so does a sample that does not compile (compiler messages point at
# the guide's own lines, through #line). Other fences (sh, apache, js) are
# not checked. It prints how many samples it compiled.
#
# GUIDE_FILE=other.md checks another file (to test this script); CC picks
# the compiler; BUILD and PYTHON are passed on to the httpd step.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

GUIDE="${GUIDE_FILE:-docs/plugin-guide.md}"
CC="${CC:-cc}"
FLAGS=(-std=gnu11 -Wall -Wextra -Werror -fPIC -shared -I"$REPO/include")
HTTPD_MODE=auto

for arg in "$@"; do
    case "$arg" in
        --httpd) HTTPD_MODE=require ;;
        --no-httpd) HTTPD_MODE=skip ;;
        *) echo "usage: $0 [--httpd | --no-httpd]" >&2; exit 2 ;;
    esac
done

say() { echo "[guide] $*"; }
die() { echo "[guide] FAILED: $*" >&2; exit 1; }

# What the fake host does with each plugin sample ('cmd; cmd; ...', see
# fakehost.c). A plugin not listed gets DEFAULT_RUN; a name listed here
# that the guide no longer has fails the check, so this cannot go stale
# either.
DEFAULT_RUN='open a; msg a hello; close a 1000'
declare -A PLUGIN_RUNS=(
    [myecho.c]='open a; msg a hello; expect a hello; msg a héllo wörld;
                expect a héllo wörld; close a 1000'
    [count.c]='open a; msg a count 3; expect a 1; expect a 2; expect a 3;
               msg a count 20000; expect a 1; drain a; expect a 20000;
               close a 1000'
    [ticker.c]='open a; open b; expect a tick 1; expect b tick 1;
                close a 1001; expect b tick 2; close b 1000'
    [room.c]='open a; open b; msg a hi all; expect a 192.0.2.1: hi all;
              expect b 192.0.2.1: hi all; close b 1000; msg a anyone?;
              expect a 192.0.2.1: anyone?; close a 1000'
    [rooms.c]='open a; open b; msg a hi all; expect a 192.0.2.1: hi all;
               expect b 192.0.2.1: hi all;
               remote /sample/lobby bob: from another child;
               expect a bob: from another child;
               expect b bob: from another child;
               open c; expect c 192.0.2.1: hi all;
               expect c bob: from another child;
               remote /other/lobby eve: not ours; close a 1000;
               msg c still here; expect b 192.0.2.3: still here;
               close b 1000; close c 1000; open d; msg d anyone?;
               expect d 192.0.2.4: anyone?; close d 1000;
               prefix none; refused e 400'
    [jobs.c]='open a; open b; msg a run backup; expect a backup: queued;
              expect b backup: queued; close a 1000;
              expect b backup: started; expect b backup: done;
              msg b run report; expect b report: done; close b 1000'
    [greet.c]='set greeting=Hi there; set max-length=5; open a;
               expect a Hi there; msg a short; expect a short;
               msg a too long; expect a <close 1008 message too long>;
               close a 1008'
)

command -v "$CC" >/dev/null || die "no C compiler ($CC)"
command -v nm >/dev/null || die "nm not found (binutils)"
[ -f "$GUIDE" ] || die "$GUIDE not found"

TMP="$(mktemp -d /tmp/mws-guide.XXXXXX)"
chmod 755 "$TMP"            # httpd's children (www-data) load plugins here
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/src" "$TMP/plugins" "$TMP/obj"

# --- extract -------------------------------------------------------------
# Writes each sample's code to $TMP/src/N.c and one manifest line per
# sample: N|kind|name|symbol|with|line (line: the guide's line of the
# sample's first code line).
awk -v dir="$TMP/src" -v guide="$GUIDE" '
function err(line, msg) {
    printf "%s:%d: %s\n", guide, line, msg > "/dev/stderr"
    failed = 1
    exit 1
}
{
    sub(/\r$/, "")
}
in_c {
    if ($0 ~ /^[ \t]*```[ \t]*$/) { in_c = 0; close(file); next }
    print > file
    next
}
in_other {
    if ($0 ~ /^[ \t]*```[ \t]*$/) in_other = 0
    next
}
/^[ \t]*```/ {
    info = $0
    sub(/^[ \t]*```[ \t]*/, "", info)
    sub(/[ \t].*$/, "", info)
    if (info == "c" || info == "C") {
        if (!marker)
            err(NR, "```c block without a sample marker on the line before " \
                "(see tests/guide/check-samples.sh)")
        n++
        file = dir "/" n ".c"
        printf "" > file
        printf "%d|%s|%s|%s|%s|%d\n", n, kind, name, symbol, with, NR + 1
        in_c = 1
        fence_line = NR
    }
    else {
        if (marker)
            err(marker_line, "sample marker not followed by a ```c block")
        in_other = 1
        fence_line = NR
    }
    marker = 0
    next
}
{
    if (marker)
        err(marker_line, "sample marker not followed by a ```c block")
}
/^[ \t]*<!--[ \t]*sample:/ {
    m = $0
    if (m !~ /-->[ \t]*$/)
        err(NR, "sample marker must be one line ending in -->")
    sub(/^[ \t]*<!--[ \t]*sample:[ \t]*/, "", m)
    sub(/[ \t]*-->[ \t]*$/, "", m)
    k = split(m, w, /[ \t]+/)
    kind = w[1]; name = ""; symbol = ""; with = ""
    if (kind == "plugin" && (k == 2 || k == 3) && w[2] ~ /^[A-Za-z0-9_.-]+\.c$/) {
        name = w[2]
        if (k == 3) symbol = w[3]
    }
    else if (kind == "fragment" && k == 1) {
    }
    else if (kind == "fragment" && k == 3 && w[2] == "with") {
        with = w[3]
    }
    else if (kind == "statements" && k == 1) {
    }
    else
        err(NR, "unknown sample marker \"" m "\"")
    marker = 1
    marker_line = NR
}
END {
    if (failed) exit 1
    if (in_c || in_other)
        err(fence_line, "fence never closed")
    if (marker)
        err(marker_line, "sample marker at the end of the file")
}
' "$GUIDE" > "$TMP/manifest" || die "$GUIDE: bad sample markup (above)"

[ -s "$TMP/manifest" ] || die "$GUIDE has no C samples"

PRELUDE='#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mod_websocket_plugin.h>'

# --- compile -------------------------------------------------------------
declare -A PLUGIN_SRC=() PLUGIN_SYM=() PLUGIN_LINE=()
plugins=() nplugins=0 nfragments=0 nstatements=0

compile() {     # compile LABEL LINE SRC OUT EXTRA-FLAGS...
    local label="$1" line="$2" src="$3" out="$4"
    shift 4
    if ! "$CC" "${FLAGS[@]}" "$@" "$src" -o "$out" -lpthread \
            > "$TMP/cc.log" 2>&1; then
        cat "$TMP/cc.log" >&2
        die "$GUIDE:$line: $label does not compile (messages above)"
    fi
}

while IFS='|' read -r n kind name symbol with line; do
    src="$TMP/src/$n.c"
    case "$kind" in
    plugin)
        [ -z "${PLUGIN_SRC[$name]:-}" ] \
            || die "$GUIDE:$line: a second plugin sample named $name"
        base="${name%.c}"
        [ -n "$symbol" ] || symbol="${base%%.*}_plugin"
        unit="$TMP/plugins/$name"
        { printf '#line %d "%s"\n' "$line" "$GUIDE"; cat "$src"; } > "$unit"
        compile "plugin sample $name" "$line" "$unit" \
            "$TMP/plugins/$base.so"
        PLUGIN_SRC[$name]="$unit"
        PLUGIN_SYM[$name]="$symbol"
        PLUGIN_LINE[$name]="$line"
        plugins+=("$name")
        nplugins=$((nplugins + 1))
        ;;
    fragment)
        unit="$TMP/obj/fragment-$n.c"
        if [ -n "$with" ]; then
            [ -n "${PLUGIN_SRC[$with]:-}" ] || die "$GUIDE:$line: fragment" \
                "names $with, which is not a plugin sample before it"
            { cat "${PLUGIN_SRC[$with]}"; echo;
              printf '#line %d "%s"\n' "$line" "$GUIDE"; cat "$src"; } \
                > "$unit"
        else
            { echo "$PRELUDE";
              printf '#line %d "%s"\n' "$line" "$GUIDE"; cat "$src"; } \
                > "$unit"
        fi
        compile "fragment${with:+ (with $with)}" "$line" "$unit" \
            "$TMP/obj/fragment-$n.so" -Wno-unused-function
        nfragments=$((nfragments + 1))
        ;;
    statements)
        unit="$TMP/obj/statements-$n.c"
        { echo "$PRELUDE"
          echo "void guide_statements_$n(mws_conn_t *conn, mws_type_e type,"
          echo "                         const void *data, size_t len);"
          echo "void guide_statements_$n(mws_conn_t *conn, mws_type_e type,"
          echo "                         const void *data, size_t len)"
          echo "{"
          echo "    (void)conn; (void)type; (void)data; (void)len;"
          printf '#line %d "%s"\n' "$line" "$GUIDE"
          cat "$src"
          echo "}"; } > "$unit"
        compile "statements" "$line" "$unit" "$TMP/obj/statements-$n.so"
        nstatements=$((nstatements + 1))
        ;;
    esac
done < "$TMP/manifest"

total=$((nplugins + nfragments + nstatements))
say "compiled $total samples from $GUIDE: $nplugins plugins," \
    "$nfragments fragments, $nstatements statement blocks" \
    "($CC ${FLAGS[*]} -lpthread)"

for name in "${!PLUGIN_RUNS[@]}"; do
    [ -n "${PLUGIN_SRC[$name]:-}" ] || die "PLUGIN_RUNS in $0 names" \
        "$name, which $GUIDE no longer has as a plugin sample"
done

# --- exported symbols ----------------------------------------------------
# httpd loads plugins RTLD_GLOBAL: anything else a plugin exports can clash
# with another plugin's symbols. The entry must be there, and alone.
for name in "${plugins[@]}"; do
    so="$TMP/plugins/${name%.c}.so"
    sym="${PLUGIN_SYM[$name]}"
    line="${PLUGIN_LINE[$name]}"
    # (Some linkers also export their own _init, _fini, _edata, _end and
    # __bss_start; those are not the plugin's.)
    exported="$(nm -D --defined-only "$so" | awk '{ print $NF }' \
                | grep -vxE '_init|_fini|_edata|_end|__bss_start' || true)"
    grep -qx -- "$sym" <<< "$exported" \
        || die "$GUIDE:$line: $name does not export its entry $sym" \
               "(nm -D shows: $(tr '\n' ' ' <<< "$exported"))"
    others="$(grep -vx -- "$sym" <<< "$exported" || true)"
    [ -z "$others" ] || die "$GUIDE:$line: $name exports more than $sym:" \
        "$(tr '\n' ' ' <<< "$others")(make them static)"
done
say "nm -D: each of the $nplugins plugins exports its entry symbol and" \
    "nothing else"

# --- run in the fake host --------------------------------------------------
# With AddressSanitizer and UBSan when the compiler has them (the fake host
# hands each message over in a buffer of exactly its length, so reading
# past it shows), built again from the same sources for this step.
SAN=("-fsanitize=address,undefined" -fno-sanitize-recover=all
     -fno-omit-frame-pointer)
echo 'int main(void) { return 0; }' > "$TMP/san.c"
if "$CC" "${SAN[@]}" "$TMP/san.c" -o "$TMP/san" >/dev/null 2>&1 \
        && "$TMP/san"; then
    how="with ASan and UBSan"
else
    SAN=()
    how="without sanitizers ($CC lacks them)"
fi
mkdir -p "$TMP/run"
"$CC" -std=gnu11 -Wall -Wextra -Werror -O1 -g "${SAN[@]}" -I"$REPO/include" \
    "$HERE/fakehost.c" -o "$TMP/run/fakehost" -lpthread -ldl \
    || die "tests/guide/fakehost.c does not compile"
for name in "${plugins[@]}"; do
    so="$TMP/run/${name%.c}.so"
    "$CC" "${FLAGS[@]}" -O1 -g "${SAN[@]}" "${PLUGIN_SRC[$name]}" -o "$so" \
        -lpthread || die "$GUIDE:${PLUGIN_LINE[$name]}: $name does not" \
                         "build with sanitizers"
    run="${PLUGIN_RUNS[$name]:-$DEFAULT_RUN}"
    run="$(tr '\n' ' ' <<< "$run")"
    if ! ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
         UBSAN_OPTIONS=print_stacktrace=1 \
         timeout 60 "$TMP/run/fakehost" "$so" "${PLUGIN_SYM[$name]}" "$run"
    then
        die "$GUIDE:${PLUGIN_LINE[$name]}: plugin sample $name failed in" \
            "the fake host (script: $run)"
    fi
done
say "fake host: loaded and ran all $nplugins plugins $how (open," \
    "messages, drain, close, process_init/exit; thread and handle rules" \
    "checked)"

# --- optional: real httpd --------------------------------------------------
if [ "$HTTPD_MODE" = skip ]; then
    say "httpd run: skipped (--no-httpd)"
    exit 0
fi
why=""
pick_python() {
    local p
    for p in "${PYTHON:-}" /usr/bin/python3 python3; do
        [ -n "$p" ] || continue
        if "$p" -c 'import websockets' >/dev/null 2>&1; then
            echo "$p"; return 0
        fi
    done
    return 1
}
PY="$(pick_python)" || why="no python3 with websockets (python3-websockets)"
[ -x /usr/sbin/apache2 ] || why="${why:+$why; }no /usr/sbin/apache2"
[ -f "${BUILD:-build}/mod_websocket.so" ] \
    || why="${why:+$why; }no ${BUILD:-build}/mod_websocket.so (run make)"
if [ -n "$why" ]; then
    [ "$HTTPD_MODE" = require ] && die "httpd run impossible: $why"
    say "httpd run: SKIPPED: $why"
    exit 0
fi
chmod 755 "$TMP/plugins"
chmod 644 "$TMP/plugins"/*.so
MWS_TEST_RUNDIR="$TMP/servers" timeout 300 "$PY" "$HERE/httpd_samples.py" \
    "$TMP/plugins" || die "the plugin samples failed under a real httpd"
