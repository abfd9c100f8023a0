"""Keepalive, the parts test_lifecycle.py does not pin down.

test_lifecycle.py already checks that /keepalive (WebSocketPingInterval
500ms, WebSocketIdleTimeout 3s) pings within the interval, that raw pongs
keep a connection past the idle timeout, that /quiet closes 1001 after its
idle timeout, and that a silent client on /keepalive ends with 1001. Here:

- a raw client that never answers: the server did send pings first
  (several, before the close), the close is 1001 and comes no earlier than
  the idle timeout allows, and TCP is closed behind it;
- a real client library (python3-websockets, which answers pings by
  itself and sends nothing else) stays open well past the idle timeout.

Both wait out the idle timeout, so they run side by side, one test per
server variant.
"""

import asyncio
import concurrent.futures
import time

import websockets

from helpers import run_async
from wsproto import CLOSE, PING

PING_INTERVAL = 0.5     # /keepalive in conftest.locations()
IDLE_TIMEOUT = 3.0


def unanswered_pings_then_idle_close(client):
    conn = client.open("/keepalive")
    start = time.monotonic()
    pings, frames = 0, []
    deadline = start + IDLE_TIMEOUT + 7
    while True:
        f = conn.recv_frame(timeout=max(0.05, deadline - time.monotonic()))
        frames.append(f.opcode)
        if f.opcode == CLOSE:
            break
        assert f.opcode == PING, "unexpected frame on an idle connection: %r" % f
        pings += 1
    elapsed = time.monotonic() - start
    assert f.close_code == 1001, f
    # 500 ms apart over 3 s: several pings, all before the close.
    assert pings >= 2, "only %d pings before the idle close (%r)" % (
        pings, frames)
    # The pings were not input: the close is due to the idle timeout, not
    # before it (a little slack for timer granularity).
    assert elapsed >= IDLE_TIMEOUT - 0.3, (
        "idle close after %.2f s, before the %.1f s idle timeout"
        % (elapsed, IDLE_TIMEOUT))
    assert elapsed < IDLE_TIMEOUT + 6, elapsed
    assert conn.wait_eof(10), "TCP still open after the idle close"


def websockets_client_answering_pings_stays_open(server):
    # The library answers each ping with a pong on its own; the test sends
    # nothing for twice the idle timeout, then the connection still echoes.
    kw = {"origin": server.origin, "compression": None,
          "ping_interval": None, "open_timeout": 10, "close_timeout": 10}
    if server.tls:
        kw["ssl"] = server.client_ssl_context()

    async def go():
        async with websockets.connect(server.ws_url("/keepalive"), **kw) as ws:
            await asyncio.sleep(2 * IDLE_TIMEOUT)
            assert ws.open, "closed while idle: %s %s" % (ws.close_code,
                                                          ws.close_reason)
            await ws.send("still here")
            got = await asyncio.wait_for(ws.recv(), 10)
            await ws.close(1000)
            return got, ws.close_code
    assert run_async(go(), timeout=30) == ("still here", 1000)


def test_keepalive_answered_and_unanswered(server, client):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        dead = pool.submit(unanswered_pings_then_idle_close, client)
        live = pool.submit(websockets_client_answering_pings_stays_open,
                           server)
        # Each is bounded by its own socket and asyncio timeouts.
        dead.result(timeout=60)
        live.result(timeout=60)
