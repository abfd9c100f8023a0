"""A WebSocket over time: keepalive pings, the idle timeout, surviving
mod_reqtimeout, and Close 1001 on graceful restart and graceful stop.

/keepalive has WebSocketPingInterval 500ms and WebSocketIdleTimeout 3s;
/quiet has pings off and WebSocketIdleTimeout 2s.
"""

import time

import pytest

import wsproto
from helpers import VARIANTS
from wsproto import PING, PONG, TEXT

VARIANT_PARAMS = [pytest.param(mpm, tls, id=vid) for vid, mpm, tls in VARIANTS]


def test_server_pings_at_interval(client):
    conn = client.open("/keepalive")
    start = time.monotonic()
    f = conn.recv_frame(timeout=3)
    assert f.opcode == PING, "expected a keepalive ping, got %r" % f
    assert time.monotonic() - start < 2.5


def test_answered_pings_keep_connection_past_idle_timeout(client):
    # Pongs are input, so a live peer is never idle (3 s here): answer
    # pings for 5 s, then the connection still echoes.
    conn = client.open("/keepalive")
    deadline = time.monotonic() + 5
    pings = 0
    while time.monotonic() < deadline:
        try:
            f = conn.recv_frame(timeout=max(0.05, deadline - time.monotonic()))
        except wsproto.Timeout:
            break
        assert f.opcode == PING, "unexpected frame while idle: %r" % f
        pings += 1
        conn.send_frame(PONG, f.payload)
    assert pings >= 3, "only %d pings in 5 s at a 500 ms interval" % pings
    conn.send_text("alive")
    assert conn.recv_message() == (TEXT, b"alive")


def test_idle_timeout_closes_1001(client):
    conn = client.open("/quiet")
    start = time.monotonic()
    f = conn.recv_frame(timeout=8)
    elapsed = time.monotonic() - start
    assert f.opcode == wsproto.CLOSE, "expected close, got %r" % f
    assert f.close_code == 1001, f
    assert 1.5 <= elapsed < 6, "idle close after %.1f s (limit 2 s)" % elapsed


def test_unanswered_pings_end_in_idle_close(client):
    # A dead peer (reads nothing, answers nothing) is closed by the idle
    # timeout even though the server keeps pinging.
    conn = client.open("/keepalive")
    f = conn.recv_close(timeout=10)
    assert f.close_code == 1001, f


# ------------------------------------------------- servers of their own

@pytest.mark.parametrize("mpm,tls", VARIANT_PARAMS)
def test_idle_websocket_survives_reqtimeout(fresh_server, mpm, tls):
    # mod_reqtimeout with short limits: an upgraded connection that stays
    # quiet past them must live on (the module removes the filter).
    srv = fresh_server(mpm, tls, name="reqtimeout-" + mpm,
                       server_config="RequestReadTimeout header=2 body=2")
    c = wsproto.Client(srv)
    try:
        conn = c.open("/echo")
        conn.send_text("before")
        assert conn.recv_message() == (TEXT, b"before")
        time.sleep(5)
        conn.send_text("after")
        assert conn.recv_message() == (TEXT, b"after")
    finally:
        c.close_all()


@pytest.mark.parametrize("mpm,tls", VARIANT_PARAMS)
def test_graceful_restart_sends_1001(fresh_server, mpm, tls):
    srv = fresh_server(mpm, tls, name="graceful-" + mpm)
    c = wsproto.Client(srv)
    try:
        conns = [c.open("/echo") for _ in range(3)]
        for conn in conns:
            conn.send_text("hi")
            assert conn.recv_message() == (TEXT, b"hi")
        srv.graceful()
        for conn in conns:
            conn.expect_close(1001, timeout=15)
        # The new generation serves WebSockets.
        conn = c.open("/echo")
        conn.send_text("new generation")
        assert conn.recv_message() == (TEXT, b"new generation")
    finally:
        c.close_all()
    assert "exit signal" not in srv.error_log(), srv.error_log()


@pytest.mark.parametrize("mpm,tls", VARIANT_PARAMS)
def test_graceful_stop_sends_1001(fresh_server, mpm, tls):
    srv = fresh_server(mpm, tls, name="gstop-" + mpm)
    c = wsproto.Client(srv)
    try:
        conn = c.open("/echo")
        conn.send_text("hi")
        assert conn.recv_message() == (TEXT, b"hi")
        pid = srv.pid
        start = time.monotonic()
        srv.graceful_stop(wait=False)
        conn.expect_close(1001, timeout=15)
        conn.send_close(1001)           # complete the close handshake
        # Well before GracefulShutdownTimeout (10 s) the server is gone:
        # the WebSocket did not hold the child.
        srv.wait_stopped(pid, timeout=20)
        assert time.monotonic() - start < 9, (
            "graceful stop took %.1f s: the WebSocket held the child "
            "until GracefulShutdownTimeout" % (time.monotonic() - start))
    finally:
        c.close_all()
