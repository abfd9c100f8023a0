"""A client that stops reading while the plugin floods it: the outgoing
queue's cap (WebSocketQueueLimit 256K here) and each WebSocketQueuePolicy.

The slow client has a 4 KiB receive buffer (set before connect) and asks
the pusher plugin for "flood 8000 16384": 125 MiB, far past the cap. While
it does not read:

- a second, ordinary client on the same server still gets its echo;
- the server child's memory does not grow by more than 64 MiB (the cap,
  not the flood, bounds it: without the cap the flood alone is 125 MiB).

Then it reads. With close-1008 / close-1013 the connection ends with that
close code (whatever data came before it); with refuse the plugin's
summary says some sends were refused, every queued message arrives, and
the connection still echoes.

The stall lasts ~2 s: well inside the vhost Timeout (30 s), which bounds
one blocked write, and WebSocketCloseTimeout (5 s), which bounds how long
a failing connection's close frame may wait.
"""

import re
import time

import pytest

from conftest import locations, make_server, KEEP
from helpers import VARIANTS
from support import (SLOW_POLICIES, open_stalled, pusher_locations,
                     require_pusher, rss_kib)
from wsproto import BINARY, TEXT

FLOOD_COUNT, FLOOD_SIZE = 8000, 16384
STALL_SECONDS = 2.0
RSS_BOUND_KIB = 64 * 1024
CLOSE_CODES = {"close-1008": 1008, "close-1013": 1013}
SUMMARY_RE = re.compile(rb"^flood queued=(\d+) refused=(\d+) gone=(\d+)$")


@pytest.fixture(scope="module", params=VARIANTS, ids=[v[0] for v in VARIANTS])
def server(request):
    require_pusher()
    _, mpm, tls = request.param
    srv = make_server(mpm, tls, extra=locations() + pusher_locations())
    yield srv
    try:
        srv.stop()
    finally:
        srv.cleanup(keep=KEEP)


def stall_and_watch(server, client):
    """While the slow client reads nothing: sample the children's VmRSS
    and time an echo on an ordinary connection. Returns (largest growth of
    one child in KiB, echo seconds)."""
    base = rss_kib(server.child_pids())
    assert base, "no httpd children to measure"
    peak = dict(base)
    echo_seconds = None
    start = time.monotonic()
    deadline = start + STALL_SECONDS
    while time.monotonic() < deadline:
        for pid, kib in rss_kib(base).items():
            peak[pid] = max(peak[pid], kib)
        if echo_seconds is None and time.monotonic() - start > 0.5:
            t0 = time.monotonic()
            other = client.open("/echo")
            other.send_text("prompt")
            # Bounded by the read timeout; no threshold beyond "it came".
            assert other.recv_message(timeout=10) == (TEXT, b"prompt"), (
                "an ordinary connection got no echo while another client "
                "was stalled")
            echo_seconds = time.monotonic() - t0
            other.send_close(1000)
            other.expect_close(1000)
            other.close()
        time.sleep(0.1)
    growth = max(peak[p] - base[p] for p in base)
    return growth, echo_seconds


@pytest.mark.parametrize("policy", SLOW_POLICIES)
def test_stalled_client_flood(server, client, policy):
    slow = open_stalled(server, "/slow-" + policy)
    try:
        slow.send_text("flood %d %d" % (FLOOD_COUNT, FLOOD_SIZE))
        growth, echo_seconds = stall_and_watch(server, client)
        assert echo_seconds is not None
        # (An ASan build's quarantine keeps freed memory on purpose; its
        # server says RSS is not a measure there.)
        assert growth < RSS_BOUND_KIB or not getattr(
            server, "rss_is_meaningful", True), (
            "a child's VmRSS grew by %.1f MiB while a stalled client was "
            "flooded with %d x %d bytes (queue limit 256K)"
            % (growth / 1024, FLOOD_COUNT, FLOOD_SIZE))

        if policy in CLOSE_CODES:
            # Everything before the close frame is skipped; the server may
            # already have closed TCP behind it.
            f = slow.recv_close(timeout=30)
            assert f.close_code == CLOSE_CODES[policy], (
                "expected close %d for a full queue, got %s %r"
                % (CLOSE_CODES[policy], f.close_code, f.payload[2:]))
            assert slow.wait_eof(10), "server kept TCP open after its close"
            return

        # refuse: the queued messages, then the plugin's summary.
        binaries = 0
        deadline = time.monotonic() + 60
        while True:
            op, data = slow.recv_message(
                timeout=max(0.1, deadline - time.monotonic()))
            if op == BINARY:
                assert len(data) == FLOOD_SIZE, len(data)
                binaries += 1
                continue
            break
        m = SUMMARY_RE.match(data)
        assert m, "expected the flood summary, got %r" % data[:100]
        queued, refused, gone = (int(x) for x in m.groups())
        assert queued + refused + gone == FLOOD_COUNT, data
        assert gone == 0, data
        assert refused > 0, "the queue limit refused nothing: %r" % data
        assert queued > 0, data
        assert binaries == queued, (
            "%d messages were queued but %d arrived" % (queued, binaries))
        slow.send_text("still open")
        assert slow.recv_message() == (TEXT, b"still open")
        slow.send_close(1000)
        slow.expect_close(1000)
    finally:
        slow.close()
