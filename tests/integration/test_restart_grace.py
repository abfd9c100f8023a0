"""WebSocketRestartGrace: after a graceful restart the old generation's
children keep their WebSockets for a while, serving them as before, and
then close them with 1001 "server restarting"; a graceful stop still closes
at once. With the topics test plugin (tests/integration/plugins/topics.c;
see test_topics.py), on prefork, worker, event (async driver) and event
with the blocking driver:

- A subscriber and a publisher connected before `graceful` stay open;
  new connections land on new children; a message published on a new
  child reaches the old subscriber and the new one, and one published on
  the old child reaches both too.
- With a short grace (5 s) the old connection is served after the restart
  and closed with 1001 "server restarting" when the grace ends.
- A graceful stop closes at once (1001) even with a grace set, and the
  server is gone well before GracefulShutdownTimeout (10 s here).
- A graceful stop while old children are in their grace: the old ones
  close too (they see the new generation go) instead of holding the stop.
- The directive's values and contexts (configtest).

Without the directive, test_lifecycle.py's graceful tests hold (1001 at
once).
"""

import asyncio
import re
import time

import pytest
import websockets

import httpd
import support
import wsproto
from conftest import KEEP
from helpers import run_async
from test_topics import (TOPICS_SO, collect, command, connect, locations,
                         pid_of)

# (id, mpm, extra server config)
VARIANTS = [
    pytest.param("prefork", "", id="prefork"),
    pytest.param("worker", "", id="worker"),
    pytest.param("event", "", id="event"),
    pytest.param("event", "WebSocketDriver blocking", id="event-blocking"),
]


def start(fresh_server, mpm, grace, more=""):
    support.require_pusher(TOPICS_SO)
    conf = "WebSocketRestartGrace %s\n%s" % (grace, more)
    return fresh_server(mpm, extra=locations(), server_config=conf,
                        name="grace-" + mpm)


async def graceful(srv):
    """The restart, without stalling the clients' event loop (they answer
    the server's pings meanwhile)."""
    await asyncio.to_thread(srv.graceful)


async def closed_with(ws, timeout):
    """Read until the server closes ws; its close frame (code, reason)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as e:
        assert e.rcvd is not None, "no close frame from the server: %r" % e
        return e.rcvd.code, e.rcvd.reason


@pytest.mark.parametrize("mpm,more", VARIANTS)
def test_old_and_new_generation_share_topics(fresh_server, mpm, more):
    srv = start(fresh_server, mpm, "30s", more)
    topic = "/t/grace"

    async def main():
        old_sub = await connect(srv, "/t?sub=" + topic)
        old_pub = await connect(srv, "/t")
        old_pids = {await pid_of(old_sub), await pid_of(old_pub)}
        old_children = set(srv.child_pids()) | old_pids
        await graceful(srv)

        # New connections are the new generation's.
        new_sub = await connect(srv, "/t?sub=" + topic)
        new_pub = await connect(srv, "/t")
        new_pids = {await pid_of(new_sub), await pid_of(new_pub)}
        assert not new_pids & old_children, \
            "a new connection was served by an old child: %s in %s" \
            % (new_pids, old_children)
        # The old ones are still served, by the same children.
        assert {await pid_of(old_sub), await pid_of(old_pub)} == old_pids

        for pub, text in ((new_pub, "from-new"), (old_pub, "from-old")):
            assert await command(pub, "pub %s %s" % (topic, text)) == "#ok"
            for ws in (old_sub, new_sub):
                msgs, _ = await collect(ws, 1)
                assert msgs == [text], \
                    "%s's message, %s subscriber" \
                    % (text, "old" if ws is old_sub else "new")
        for ws in (old_sub, old_pub, new_sub, new_pub):
            await ws.close()
        return old_pids

    old_pids = run(main())
    in_grace = {int(m) for m in re.findall(r"\[pid (\d+).*WS00114",
                                           srv.error_log())}
    assert old_pids <= in_grace, \
        "old children %s, those that logged a grace (WS00114): %s" \
        % (old_pids, in_grace)


@pytest.mark.parametrize("mpm,more", VARIANTS)
def test_grace_ends_with_1001(fresh_server, mpm, more):
    grace = 5
    srv = start(fresh_server, mpm, "%ds" % grace, more)

    async def main():
        ws = await connect(srv, "/t")
        old_pid = await pid_of(ws)
        begun = time.monotonic()
        await graceful(srv)
        if time.monotonic() - begun < grace - 2:
            # Served after the restart (when the restart itself left time).
            assert await pid_of(ws) == old_pid
        code, reason = await closed_with(ws, 30)
        return code, reason, time.monotonic() - begun

    code, reason, after = run(main())
    assert (code, reason) == (1001, "server restarting")
    # Not at once: the grace starts when the child hears of the restart,
    # after `graceful` began (generous lower bound).
    assert after >= grace - 2, "closed %.1f s after graceful" % after
    assert support.wait_for(lambda: "WS00115" in srv.error_log(), 10)


@pytest.mark.parametrize("mpm,more", VARIANTS)
def test_graceful_stop_still_closes_at_once(fresh_server, mpm, more):
    srv = start(fresh_server, mpm, "30s", more)
    c = wsproto.Client(srv)
    try:
        conn = c.open("/t")
        conn.send_text("pid")
        assert conn.recv_message()[1].startswith(b"#pid ")
        pid = srv.pid
        begun = time.monotonic()
        srv.graceful_stop(wait=False)
        f = conn.recv_close(timeout=15)
        assert f.close_code == 1001, f
        assert f.payload[2:] == b"server shutting down", f
        conn.send_close(1001)
        srv.wait_stopped(pid, timeout=20)
        assert time.monotonic() - begun < 9, (
            "graceful stop took %.1f s: the WebSocket held the child "
            "until GracefulShutdownTimeout" % (time.monotonic() - begun))
    finally:
        c.close_all()


@pytest.mark.parametrize("mpm,more", VARIANTS)
def test_graceful_stop_during_the_grace(fresh_server, mpm, more):
    """httpd tells only the running generation of a graceful stop; the old
    children notice the new generation leave and close as well."""
    srv = start(fresh_server, mpm, "30s", more)
    pid = srv.pid

    async def main():
        ws = await connect(srv, "/t")
        old_pid = await pid_of(ws)
        old_children = set(srv.child_pids()) | {old_pid}
        await graceful(srv)
        assert await pid_of(ws) == old_pid
        # The new generation is up (a stop that comes before httpd has
        # started any of its children leaves the old ones to their grace
        # or GracefulShutdownTimeout).
        async with connect(srv, "/t") as new:
            assert await pid_of(new) not in old_children
        begun = time.monotonic()
        await asyncio.to_thread(srv.graceful_stop, wait=False)
        code, reason = await closed_with(ws, 20)
        return code, reason, time.monotonic() - begun

    code, reason, after = run(main())
    assert (code, reason) == (1001, "server shutting down")
    srv.wait_stopped(pid, timeout=20)
    # GracefulShutdownTimeout (10 s) would have ended it anyway, later.
    assert after < 9, "the old child closed %.1f s after graceful-stop" % after


@pytest.mark.parametrize("value,error", [
    ("off", None),
    ("5min", None),
    ("1500ms", None),
    ("0", "must be more than zero"),
    ("5x", "is not a time"),
    ("-1", "is negative"),
])
def test_directive_values(value, error):
    _configtest("WebSocketRestartGrace %s" % value, error)


@pytest.mark.parametrize("section,error", [
    ("<VirtualHost *:80>\n%s\n</VirtualHost>", "cannot occur within"),
    ("<Location /t>\n%s\n</Location>", "not allowed in <Location>"),
])
def test_directive_is_server_wide(section, error):
    _configtest(section % "WebSocketRestartGrace 5s", error)


def _configtest(conf, error):
    srv = httpd.Httpd("event", extra=conf, name="grace-conf")
    try:
        rc, out = srv.configtest()
    finally:
        srv.cleanup(keep=KEEP)
    if error is None:
        assert rc == 0, out
    else:
        assert rc != 0 and "WebSocketRestartGrace" in out and error in out, \
            out


def run(coro):
    return run_async(coro, timeout=90)
