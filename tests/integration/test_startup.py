"""A WebSocketHandler that cannot be used stops httpd at start-up: both
`apache2 -t` (configtest) and `apache2 -k start` fail with a message that
names the directive, the configuration file and the line, and says what is
wrong; no httpd process is left running.

The broken plugins are compiled here with `cc -shared -fPIC -Iinclude`:
one that needs a function nothing provides, and one whose table claims a
newer plugin API (99) than the module speaks.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import httpd
from support import processes_using, wait_for

CC = os.environ.get("CC", "cc")
INCLUDE = httpd.REPO / "include"

FUTURE_C = r"""
#include <mod_websocket_plugin.h>
static const mws_plugin_t future = {
    .api_version = 99,
    .struct_size = sizeof(mws_plugin_t),
    .name = "future",
};
MWS_PLUGIN_EXPORT const mws_plugin_t *future_plugin(void)
{
    return &future;
}
"""

UNRESOLVED_C = r"""
#include <mod_websocket_plugin.h>
extern void mws_test_no_such_function(void);
static void on_message(mws_conn_t *conn, mws_type_e type, const void *data,
                       size_t len)
{
    mws_test_no_such_function();
    mws_send(conn, type, data, len);
}
static const mws_plugin_t unresolved = {
    MWS_PLUGIN_HEADER,
    .name = "unresolved",
    .on_message = on_message,
};
MWS_PLUGIN_EXPORT const mws_plugin_t *unresolved_plugin(void)
{
    return &unresolved;
}
"""


@pytest.fixture(scope="module")
def plugins():
    """{name: path} of the plugins compiled for these tests."""
    if shutil.which(CC) is None:
        pytest.fail("%s not found: the broken test plugins are compiled at "
                    "test time" % CC, pytrace=False)
    d = Path(tempfile.mkdtemp(prefix="startup-plugins-",
                              dir=httpd._base_dir()))
    os.chmod(d, 0o755)
    out = {}
    for name, src in (("future", FUTURE_C), ("unresolved", UNRESOLVED_C)):
        c = d / (name + ".c")
        so = d / (name + ".so")
        c.write_text(src)
        r = subprocess.run([CC, "-std=gnu11", "-Wall", "-Werror", "-shared",
                            "-fPIC", "-I%s" % INCLUDE, str(c), "-o", str(so)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, "compiling %s failed:\n%s" % (name,
                                                                r.stderr)
        out[name] = so
    yield out
    shutil.rmtree(d, ignore_errors=True)


def case_directive(case, plugins):
    """(the bad WebSocketHandler line, what the message must say)."""
    if case == "missing-file":
        path = "/nonexistent/mod_websocket-tests/missing.so"
        return "WebSocketHandler %s" % path, ["cannot load plugin", path]
    if case == "missing-entry-symbol":
        echo = httpd.handler_path("echo")
        return ("WebSocketHandler %s nosuch_plugin" % echo,
                ["has no symbol nosuch_plugin", str(echo)])
    if case == "unresolved-symbol":
        so = plugins["unresolved"]
        return ("WebSocketHandler %s" % so,
                ["cannot load plugin", str(so), "mws_test_no_such_function"])
    if case == "newer-api":
        so = plugins["future"]
        return ("WebSocketHandler %s" % so,
                [str(so), "built against plugin API 99",
                 "this mod_websocket speaks %d" % api_version()])
    raise ValueError(case)


def api_version():
    text = (INCLUDE / "mod_websocket_plugin.h").read_text()
    for line in text.splitlines():
        if line.startswith("#define MWS_PLUGIN_API_VERSION"):
            return int(line.split()[2])
    raise AssertionError("MWS_PLUGIN_API_VERSION not in the header")


def line_of(path, needle):
    """1-based number of the one line of path that contains needle."""
    lines = Path(path).read_text().splitlines()
    hits = [i + 1 for i, l in enumerate(lines) if needle in l]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


CASES = ["missing-file", "missing-entry-symbol", "unresolved-symbol",
         "newer-api"]


@pytest.mark.parametrize("included", [False, True],
                         ids=["httpd.conf", "included-file"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mpm", httpd.MPMS)
def test_bad_plugin_stops_startup(plugins, mpm, case, included):
    httpd.require_built("echo")
    bad, expected = case_directive(case, plugins)
    echo = httpd.handler_path("echo")
    # A good location first, so the line number is not trivially small.
    good = "<Location /echo>\n    WebSocketHandler %s\n</Location>\n" % echo
    block = "<Location /broken>\n    %s\n</Location>\n" % bad
    srv = httpd.Httpd(mpm, name="startup-" + case, extra="")
    try:
        if included:
            inc = srv.dir / "websocket.conf"
            inc.write_text("# included\n\n" + good + block)
            os.chmod(inc, 0o644)
            srv.extra = "Include %s\n" % inc
            where = inc
        else:
            srv.extra = good + block
            where = srv.conf
        srv.write_config()
        line = line_of(where, bad)

        for args in (["-t"], ["-k", "start"]):
            rc, out = srv._apache(*args)
            what = "apache2 %s" % " ".join(args)
            assert rc != 0, "%s succeeded with %r:\n%s" % (what, bad, out)
            assert "line %d of %s" % (line, where) in out, (
                "%s: the message does not name %s line %d:\n%s"
                % (what, where, line, out))
            assert "WebSocketHandler" in out, (
                "%s: the message does not name the directive:\n%s"
                % (what, out))
            for piece in expected:
                assert piece in out, "%s: %r missing from:\n%s" % (
                    what, piece, out)

        # Nothing keeps running: no process of this config, no live pid.
        left = wait_for(lambda: not processes_using(srv.conf), 5)
        assert left, "httpd processes still running: %s" % (
            processes_using(srv.conf))
        pid = srv._read_pid()
        assert pid is None or not httpd._pid_alive(pid), pid
        assert not srv._accepts(), "something answers on port %d" % srv.port
    finally:
        srv._kill_leftovers()
        srv.cleanup()
