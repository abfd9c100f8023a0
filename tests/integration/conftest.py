"""Fixtures for the integration tests: one httpd per test module and
variant (prefork, worker, event, event+ssl), raw-socket clients, and the
server's error log attached to every failure.

The tests need build/mod_websocket.so and build/handlers/echo.so. Without
them every test that needs a server fails (not skips) with
"build/mod_websocket.so not found: run make"; `python3
tests/integration/httpd.py` lists everything missing.
"""

import os
import re

import pytest

import httpd
import wsproto
from helpers import VARIANTS

# Lines in the error log that mean a child died badly: a test during which
# one appears fails, whatever it asserted.
CRASH_RE = re.compile(r"exit signal|Segmentation fault|AddressSanitizer|"
                      r"UndefinedBehaviorSanitizer|double free|"
                      r"corrupted size|stack smashing")

# Extra LogLevel overrides, e.g. MWS_LOG_OVERRIDES="websocket:trace1".
LOG_OVERRIDES = os.environ.get("MWS_LOG_OVERRIDES", "").split()
# Keep server directories (config, logs) after the run for a post-mortem.
KEEP = os.environ.get("MWS_KEEP_SERVERS") == "1"


def pytest_configure(config):
    httpd.install_signal_cleanup()


def locations():
    """The <Location>s every shared test server has.

    Location matching is by prefix, so no name is a prefix of another.
    """
    echo = httpd.handler_path("echo")
    return """
<Location /echo>
    WebSocketHandler {echo}
</Location>
# 16 MiB messages: frame, message and the outgoing queue (the echo queues
# the whole message) all raised past it.
<Location /big>
    WebSocketHandler {echo}
    WebSocketMaxFrameSize 32M
    WebSocketMaxMessageSize 32M
    WebSocketQueueLimit 64M
</Location>
<Location /small>
    WebSocketHandler {echo}
    WebSocketMaxFrameSize 1K
    WebSocketMaxMessageSize 4K
    WebSocketMaxFragments 8
</Location>
<Location /origin>
    WebSocketHandler {echo}
    WebSocketOrigin https://good.example
</Location>
<Location /anyorigin>
    WebSocketHandler {echo}
    WebSocketOrigin any
</Location>
<Location /proto>
    WebSocketHandler {echo}
    WebSocketProtocols b a
</Location>
<Location /decline>
    WebSocketHandler {echo}
    WebSocketNonUpgrade decline
</Location>
<Location /keepalive>
    WebSocketHandler {echo}
    WebSocketPingInterval 500ms
    WebSocketIdleTimeout 3s
</Location>
<Location /quiet>
    WebSocketHandler {echo}
    WebSocketPingInterval off
    WebSocketIdleTimeout 2s
</Location>
""".format(echo=echo)


def make_server(mpm, tls, *, extra=None, server_config="", name=None):
    """A started httpd with the shared locations, or a pytest failure that
    says what is missing or what httpd said."""
    missing = _missing_build()
    if missing:
        pytest.fail(missing, pytrace=False)
    server = httpd.Httpd(mpm, tls=tls,
                         extra=locations() if extra is None else extra,
                         server_config=server_config,
                         log_overrides=LOG_OVERRIDES, name=name)
    # A file the /decline location falls through to.
    (server.docroot / "decline").write_text("declined: static file\n")
    os.chmod(server.docroot / "decline", 0o644)
    rc, out = server.configtest()
    if rc != 0:
        server.cleanup(keep=KEEP)
        pytest.fail("apache2 -t rejected the test config (%s):\n%s\n"
                    "config: %s" % (server.variant, out, server.conf),
                    pytrace=False)
    try:
        server.start()
        return server
    except httpd.HttpdError as e:
        failure = str(e)
    server.cleanup(keep=KEEP)
    pytest.fail(failure, pytrace=False)


def _missing_build():
    """The missing-artifact message, or None when everything is built."""
    try:
        httpd.require_built("echo")
    except httpd.MissingArtifact as e:
        return str(e)
    return None


@pytest.fixture(scope="module", params=VARIANTS, ids=[v[0] for v in VARIANTS])
def server(request):
    """One httpd per test module and variant, with every shared location."""
    _, mpm, tls = request.param
    srv = make_server(mpm, tls)
    yield srv
    try:
        srv.stop()
    finally:
        srv.cleanup(keep=KEEP)


@pytest.fixture
def fresh_server(request):
    """A factory for servers a test may restart or stop (graceful tests);
    each is stopped and removed at the end of the test."""
    made = []

    def factory(mpm, tls=False, **kw):
        srv = make_server(mpm, tls, **kw)
        made.append(srv)
        request.node._mws_log = (srv, 0)   # its log goes with a failure
        return srv

    yield factory
    errors = []
    for srv in made:
        crashes = [l for l in srv.error_log().splitlines()
                   if CRASH_RE.search(l)]
        if crashes:
            errors.append("httpd child crashed (%s):\n%s"
                          % (srv.variant, "\n".join(crashes[:20])))
        try:
            srv.cleanup(keep=KEEP)
        except httpd.HttpdError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def client(server):
    """Raw-socket connections to the shared server, closed after the test."""
    c = wsproto.Client(server)
    yield c
    c.close_all()


@pytest.fixture(autouse=True)
def _watch_error_log(request):
    """Remember where the server's error log stood, attach what the test
    added to a failure report, and fail a test during which a child
    crashed."""
    if "server" not in request.fixturenames:
        yield
        return
    srv = request.getfixturevalue("server")
    offset = srv.error_log_size()
    request.node._mws_log = (srv, offset)
    yield
    new = srv.error_log_since(offset)
    crashes = [l for l in new.splitlines() if CRASH_RE.search(l)]
    if crashes:
        pytest.fail("httpd child crashed during this test:\n"
                    + "\n".join(crashes[:20]), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    info = getattr(item, "_mws_log", None)
    if report.failed and info:
        srv, offset = info
        text = srv.error_log_since(offset)
        lines = text.splitlines()
        if len(lines) > 80:
            lines = ["... (%d lines before)" % (len(lines) - 80)] + lines[-80:]
        report.sections.append(
            ("httpd error log (%s, %s)" % (srv.variant, srv.errorlog),
             "\n".join(lines) or "(nothing new)"))
