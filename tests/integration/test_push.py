"""Pushes from a plugin's own thread (the pusher test plugin): messages
sent from a thread that is not the connection's reach the client with no
further client input, in order; a handle held past the connection's end
answers MWS_SEND_GONE; many connections pushed to at once all get every
message.

/push is served by build/test-plugins/pusher.so (`make test-plugins`).
"""

import asyncio
import time

import pytest
import websockets

import wsproto
from conftest import locations, make_server, KEEP
from helpers import VARIANTS, run_async
from support import ONE_CHILD, pusher_locations, require_pusher
from wsproto import TEXT

VARIANT_PARAMS = [pytest.param(mpm, tls, id=vid) for vid, mpm, tls in VARIANTS]


@pytest.fixture(scope="module", params=VARIANTS, ids=[v[0] for v in VARIANTS])
def server(request):
    """The shared locations plus the pusher's, one server per variant
    (named `server` so the error-log watch and `client` use it)."""
    require_pusher()
    _, mpm, tls = request.param
    srv = make_server(mpm, tls, extra=locations() + pusher_locations())
    yield srv
    try:
        srv.stop()
    finally:
        srv.cleanup(keep=KEEP)


def connect(server, path="/push", **kw):
    kw.setdefault("origin", server.origin)
    kw.setdefault("compression", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 20)
    kw.setdefault("close_timeout", 10)
    if server.tls:
        kw["ssl"] = server.client_ssl_context()
    return websockets.connect(server.ws_url(path), **kw)


def test_push_from_plugin_thread_needs_no_client_input(client):
    # After the one command the client sends nothing at all, not even a
    # pong: every message comes from the plugin's thread, woken driver.
    conn = client.open("/push")
    conn.send_text("push 100")
    got = []
    for _ in range(100):
        got.append(conn.recv_message(timeout=10, answer_pings=False))
    assert got == [(TEXT, b"push %d" % i) for i in range(100)]
    # Still an ordinary connection afterwards.
    conn.send_text("echo me")
    assert conn.recv_message() == (TEXT, b"echo me")
    conn.send_close(1000)
    conn.expect_close(1000)


def test_push_to_many_connections_at_once(server):
    n_clients, n_msgs = 20, 50

    async def one(ws):
        out = []
        for _ in range(n_msgs):
            out.append(await asyncio.wait_for(ws.recv(), 30))
        return out

    async def go():
        socks = await asyncio.gather(*[connect(server)
                                       for _ in range(n_clients)])
        try:
            # Every command first, then every reader: the plugin threads
            # push to all of them while they wait.
            for ws in socks:
                await ws.send("push %d" % n_msgs)
            results = await asyncio.gather(*[one(ws) for ws in socks])
            codes = []
            for ws in socks:
                await ws.close(1000)
                codes.append(ws.close_code)
            return results, codes
        finally:
            for ws in socks:
                await ws.close()

    results, codes = run_async(go(), timeout=90)
    expected = ["push %d" % i for i in range(n_msgs)]
    bad = [i for i, r in enumerate(results) if r != expected]
    assert not bad, "connections %s got wrong pushes: %r" % (
        bad, results[bad[0]][:5])
    assert codes == [1000] * n_clients, codes


# ------------------------------------------------ held handles, GONE

def check_held_handle_answers_gone(srv, timeout=15):
    """Connection A asks the plugin to keep its handle ("linger") and
    closes; the plugin's thread then sends on the held handle, which must
    answer MWS_SEND_GONE (and touch no freed memory). Connection B polls
    "stats" until the plugin counts it. The server has one child process,
    so A and B share the plugin's counter."""
    c = wsproto.Client(srv)
    try:
        b = c.open("/push")
        b.send_text("stats")
        before = b.recv_message()
        assert before[0] == TEXT and before[1].startswith(b"gone="), before
        gone0 = int(before[1].split(b"=")[1])
        b.send_close(1000)
        b.expect_close(1000)
        b.close()

        a = c.open("/push")
        a.send_text("linger")
        assert a.recv_message() == (TEXT, b"lingering")
        a.send_close(1000, "bye")
        a.expect_close(1000)
        assert a.wait_eof(10), "server kept TCP open after the close"
        a.close()

        b = c.open("/push")
        deadline = time.monotonic() + timeout
        gone = gone0
        while time.monotonic() < deadline:
            b.send_text("stats")
            op, data = b.recv_message()
            assert op == TEXT and data.startswith(b"gone="), data
            gone = int(data.split(b"=")[1])
            if gone > gone0:
                break
            time.sleep(0.1)
        assert gone > gone0, ("the send on the held handle of a closed "
                              "connection did not answer MWS_SEND_GONE "
                              "within %ds (gone=%d)" % (timeout, gone))
        b.send_text("still echoes")
        assert b.recv_message() == (TEXT, b"still echoes")
    finally:
        c.close_all()


@pytest.mark.parametrize("mpm,tls", VARIANT_PARAMS)
def test_held_handle_after_close_answers_gone(fresh_server, mpm, tls):
    require_pusher()
    srv = fresh_server(mpm, tls, name="linger-" + mpm,
                       extra=locations() + pusher_locations(),
                       server_config=ONE_CHILD[mpm])
    check_held_handle_answers_gone(srv)
