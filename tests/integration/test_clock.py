"""The clock handler (handlers/clock): a push plugin with one thread per
httpd child.

- Each connection counts on its own: {"tick":N,"elapsed_ms":N*interval},
  N = 1, 2, ... one interval apart (200 ms here), whenever it opened.
- A junk interval setting falls back to the default (1 s), with a line in
  the error log.
- No thread per connection and nothing left behind: after many connections
  open and close (half with a close handshake, half by dropping TCP), every
  child has its baseline thread count with exactly one "mws-clock" thread,
  and that thread sleeps (no context switch in 0.6 s: a ticker left on its
  list would wake it every 200 ms); it never busy-loops.
- Graceful restart: clock connections get 1001, the old children (and so
  their clock threads, joined in process_exit) are gone within seconds.

The tests run on prefork, worker, event and event+ssl, except the thread
test (no TLS: it changes nothing there) and the graceful restart (one fresh
server per MPM).
"""

import json
import os
import time

import pytest

import httpd
import wsproto
from conftest import KEEP, make_server
from helpers import VARIANTS
from wsproto import TEXT

INTERVAL = 0.2      # /clock's WebSocketSetting interval 200ms


def clock_locations():
    clock = httpd.handler_path("clock")
    return """
<Location /clock>
    WebSocketHandler {clock}
    WebSocketSetting interval 200ms
</Location>
<Location /junkclock>
    WebSocketHandler {clock}
    WebSocketSetting interval fast
</Location>
""".format(clock=clock)


def _require_clock():
    try:
        httpd.require_built("clock")
    except httpd.MissingArtifact as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module", params=VARIANTS, ids=[v[0] for v in VARIANTS])
def server(request):
    _require_clock()
    _, mpm, tls = request.param
    srv = make_server(mpm, tls, extra=clock_locations(), name="clock-" + mpm)
    yield srv
    try:
        srv.stop()
    finally:
        srv.cleanup(keep=KEEP)


def read_tick(conn, timeout=5):
    """The next tick message as a dict."""
    opcode, payload = conn.recv_message(timeout=timeout)
    assert opcode == TEXT, "clock sent a binary message: %r" % payload
    tick = json.loads(payload.decode("utf-8"))
    assert set(tick) == {"tick", "elapsed_ms"}, tick
    return tick


# ------------------------------------------------------------ /proc views

def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:         # the process or thread has just gone
        return None


def thread_view(pid):
    """(Threads: count, {tid: voluntary+involuntary context switches,
    utime+stime ticks} of the mws-clock threads), or None if pid is gone."""
    status = _read("/proc/%d/status" % pid)
    if status is None:
        return None
    count = int(next(l.split()[1] for l in status.splitlines()
                     if l.startswith("Threads:")))
    clocks = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    for tid in tids:
        base = "/proc/%d/task/%s/" % (pid, tid)
        if (_read(base + "comm") or "").strip() != "mws-clock":
            continue
        st, stat = _read(base + "status"), _read(base + "stat")
        if st is None or stat is None:
            continue
        switches = sum(int(l.split()[1]) for l in st.splitlines()
                       if "ctxt_switches:" in l)
        fields = stat.rsplit(")", 1)[1].split()
        cpu = int(fields[11]) + int(fields[12])     # utime, stime
        clocks[int(tid)] = (switches, cpu)
    return count, clocks


def children_view(server):
    """{child pid: thread_view} for the live children."""
    view = {}
    for pid in server.child_pids():
        v = thread_view(pid)
        if v is not None:
            view[pid] = v
    return view


def wait_settled(server, expected=None, timeout=15):
    """Wait (bounded) until every child has one mws-clock thread and, for
    expected, that many threads; returns the view. Children that the MPM
    is starting or stopping settle within the wait."""
    deadline = time.monotonic() + timeout
    while True:
        view = children_view(server)
        counts = {v[0] for v in view.values()}
        ok = view and all(len(v[1]) == 1 for v in view.values()) and (
            len(counts) == 1 if expected is None else counts == {expected})
        if ok or time.monotonic() >= deadline:
            return view
        time.sleep(0.1)


def describe(view):
    return ", ".join("pid %d: %d threads, %d mws-clock" % (p, v[0], len(v[1]))
                     for p, v in sorted(view.items()))


# ------------------------------------------------------------------- tests

def test_each_connection_counts_from_one(server, client):
    a = client.open("/clock")
    a_open = time.monotonic()
    junk = client.open("/junkclock")
    junk_open = time.monotonic()

    a_ticks = []
    while time.monotonic() - a_open < 1.0:
        tick = read_tick(a)
        a_ticks.append((time.monotonic() - a_open, tick))
    b = client.open("/clock")
    b_ticks = [read_tick(b) for _ in range(3)]
    a_ticks += [(None, read_tick(a)) for _ in range(3)]

    numbers = [t["tick"] for _, t in a_ticks]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert 4 <= len(numbers) - 3 <= 6, (
        "%d ticks in the first second at a 200 ms interval: %r"
        % (len(numbers) - 3, a_ticks))
    for when, t in a_ticks:
        assert t["elapsed_ms"] == t["tick"] * 200, t
        if when is not None:
            # Tick n is due n intervals after the server accepted, a little
            # before the client saw the 101; late only by scheduling.
            assert t["tick"] * INTERVAL - 0.1 <= when <= \
                t["tick"] * INTERVAL + 0.5, (when, t)
    # B, opened a second later, starts from 1 on its own.
    assert [t["tick"] for t in b_ticks] == [1, 2, 3], b_ticks

    # The junk interval ticks at the default second, and says so once.
    t = read_tick(junk, timeout=5)
    waited = time.monotonic() - junk_open
    assert t == {"tick": 1, "elapsed_ms": 1000}, t
    assert 0.8 <= waited <= 3.0, "first default tick after %.2f s" % waited
    assert 'clock: /junkclock: WebSocketSetting interval "fast" is not a ' \
        'time' in server.error_log()


def test_no_thread_or_ticker_outlives_its_connection(server, client):
    if server.tls:
        pytest.skip("threads and tickers do not depend on TLS (event covers "
                    "the same MPM)")
    before = wait_settled(server)
    counts = {v[0] for v in before.values()}
    assert before and all(len(v[1]) == 1 for v in before.values()) and \
        len(counts) == 1, ("children not settled, or not one mws-clock "
                           "thread each: %s" % describe(before))
    base = counts.pop()

    for round_ in range(2):
        conns = [client.open("/clock") for _ in range(20)]
        for conn in conns:
            assert read_tick(conn)["tick"] >= 1
        # While they tick: no child has a thread more (prefork children
        # each serve one, threaded ones many), and the clock threads sleep
        # between ticks rather than spin (a spinning thread burns ~50 CPU
        # ticks in half a second).
        view = children_view(server)
        assert {v[0] for v in view.values()} == {base}, (
            "round %d, 20 open: %s (baseline %d)"
            % (round_, describe(view), base))
        if round_ == 0:
            time.sleep(0.5)
            after = children_view(server)
            for pid, (_, clocks) in after.items():
                for tid, (_, cpu) in clocks.items():
                    old = view.get(pid, (0, {}))[1].get(tid)
                    if old is not None:
                        assert cpu - old[1] <= 10, (
                            "mws-clock thread %d used %d CPU ticks in 0.5 s"
                            % (tid, cpu - old[1]))
        for i, conn in enumerate(conns):
            if i % 2:
                conn.send_close(1000)
                conn.expect_close(1000)
            conn.close()
        client.close_all()

    after = wait_settled(server, expected=base)
    assert after and {v[0] for v in after.values()} == {base} and all(
        len(v[1]) == 1 for v in after.values()), (
        "after closing: %s (baseline %d threads)" % (describe(after), base))

    # With no connection left, every clock thread waits without a timeout:
    # no context switch in 0.6 s (a ticker left behind would wake it three
    # times). Closes still under way may take a window or two.
    deadline = time.monotonic() + 10
    while True:
        first = children_view(server)
        time.sleep(0.6)
        second = children_view(server)
        woke = {(pid, tid): s[0] - first[pid][1][tid][0]
                for pid, v in second.items() if pid in first
                for tid, s in v[1].items() if tid in first[pid][1]}
        if woke and not any(woke.values()):
            break
        assert time.monotonic() < deadline, (
            "clock threads still waking with no connection open: %r" % woke)


# ------------------------------------------------- servers of their own

@pytest.mark.parametrize("mpm", ["prefork", "worker", "event"])
def test_graceful_restart_stops_clocks(fresh_server, mpm):
    _require_clock()
    srv = fresh_server(mpm, extra=clock_locations(), name="clock-graceful-"
                       + mpm)
    c = wsproto.Client(srv)
    try:
        conns = [c.open("/clock") for _ in range(3)]
        for conn in conns:
            assert read_tick(conn)["tick"] >= 1
        old = srv.child_pids()
        assert old
        start = time.monotonic()
        srv.graceful()
        for conn in conns:
            conn.expect_close(1001, timeout=15)
            conn.send_close(1001)
        deadline = time.monotonic() + 15
        while any(httpd._pid_alive(p) for p in old) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in old if httpd._pid_alive(p)]
        assert not left, ("old children %r still alive %.1f s after the "
                          "graceful restart" % (left, time.monotonic() - start))
        # The new generation ticks, one clock thread per child.
        conn = c.open("/clock")
        assert read_tick(conn) == {"tick": 1, "elapsed_ms": 200}
        view = wait_settled(srv)
        assert all(len(v[1]) == 1 for v in view.values()), describe(view)
    finally:
        c.close_all()
    assert "exit signal" not in srv.error_log(), srv.error_log()
