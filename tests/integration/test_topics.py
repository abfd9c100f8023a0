"""Topics (mws_subscribe/mws_publish) across httpd's child processes, with
the topics test plugin (tests/integration/plugins/topics.c), which answers
text commands ("sub T", "pub T text", "burst T N TAG", "pid", ...) with
replies starting with '#' and passes topic messages through as they come.

- Subscribers on different children (prefork: every open WebSocket holds
  a process of its own; worker and event: clients are opened until they
  sit on at least two children, by the pid each one reports) all receive
  every message of two publishers on different children, each
  publisher's in order; also from a plugin thread through a held handle.
- Names and prefixes: the <Location>'s path by default, '*', 'none',
  several prefixes; 200 characters at most; a message over
  WebSocketTopicMessageLimit (default 64K) is refused.
- Subscriptions end with their connection (the count drops).
- A child killed with SIGKILL: the others keep delivering to each other,
  and the new child replacing it joins the bus.
- Graceful restart: the new generation's children deliver to each other,
  and the bus directory keeps no socket of an old child once it is gone.
- 1,000 subscribers of one topic, one of which never reads: the other 999
  get all 300 messages, each in order, and the stalled one is closed
  with 1008 once 6 MB more have filled the socket buffers and its queue
  (8K, close-1008).
"""

import asyncio
import os
import signal
import time

import pytest
import websockets

import httpd
from conftest import KEEP, make_server
from helpers import VARIANTS, run_async
import support

TOPICS_SO = support.TEST_PLUGINS / "topics.so"


def locations():
    so = TOPICS_SO
    return """
<Location /t>
    WebSocketHandler {so} topics_plugin
</Location>
<Location /star>
    WebSocketHandler {so} topics_plugin
    WebSocketTopicPrefix *
</Location>
<Location /none>
    WebSocketHandler {so} topics_plugin
    WebSocketTopicPrefix none
</Location>
<Location /multi>
    WebSocketHandler {so} topics_plugin
    WebSocketTopicPrefix news. chat.
</Location>
<Location /limited>
    WebSocketHandler {so} topics_plugin
    WebSocketTopicMessageLimit 1K
</Location>
<Location /slow>
    WebSocketHandler {so} topics_plugin
    WebSocketTopicPrefix /t
    WebSocketQueueLimit 8K
    WebSocketQueuePolicy close-1008
</Location>
""".format(so=so)


def start(mpm, tls=False, server_config=""):
    support.require_pusher(TOPICS_SO)
    return make_server(mpm, tls, extra=locations(),
                       server_config=server_config, name="topics-" + mpm)


@pytest.fixture(scope="module", params=VARIANTS, ids=[v[0] for v in VARIANTS])
def server(request):
    _, mpm, tls = request.param
    srv = start(mpm, tls)
    yield srv
    try:
        srv.stop()
    finally:
        srv.cleanup(keep=KEEP)


def connect(server, path, **extra):
    kw = dict(origin=server.origin, compression=None, ping_interval=None,
              open_timeout=10, close_timeout=5, max_queue=None)
    kw.update(extra)
    if server.tls:
        kw["ssl"] = server.client_ssl_context()
    return websockets.connect(server.ws_url(path), **kw)


async def command(ws, text, timeout=10):
    """Send a command and return its reply (the next message starting with
    '#'); topic messages that come first are an error here."""
    await ws.send(text)
    reply = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(reply, str) and reply.startswith("#"), \
        "%r: expected a reply, got %r" % (text, reply)
    return reply


async def pid_of(ws):
    reply = await command(ws, "pid")
    return int(reply.split()[1])


async def open_spread(server, path, n, children=2, attempts=60):
    """n connections to path, opened until they sit on at least `children`
    distinct child processes (each tells its pid). Returns [(ws, pid)]."""
    conns = []
    for _ in range(attempts):
        ws = await connect(server, path)
        conns.append((ws, await pid_of(ws)))
        if len(conns) >= n and len({p for _, p in conns}) >= children:
            return conns
        await asyncio.sleep(0.02)
    pids = sorted({p for _, p in conns})
    for ws, _ in conns:
        await ws.close()
    pytest.fail("%d connections all landed on children %s, not on %d "
                "different ones" % (len(conns), pids, children))


async def collect(ws, count, replies=0, timeout=20):
    """The next count topic messages, and the next `replies` command
    replies ('#...') among them: (messages, replies)."""
    msgs, got = [], []
    while len(msgs) < count or len(got) < replies:
        m = await asyncio.wait_for(ws.recv(), timeout)
        (got if isinstance(m, str) and m.startswith("#") else msgs).append(m)
    return msgs, got


async def close_all(conns):
    await asyncio.gather(*(ws.close() for ws, _ in conns),
                         return_exceptions=True)


def tagged(tag, n, size=0):
    return [("%s:%d" % (tag, i)).ljust(size, ".") for i in range(n)]


# ------------------------------------------------------- across children

def test_every_subscriber_on_every_child_gets_every_message(server):
    topic, per = "/t/room", 300

    async def main():
        conns = await open_spread(server, "/t?sub=" + topic, 4)
        try:
            # Two publishers on two different children, at the same time.
            by_pid = {}
            for ws, p in conns:
                by_pid.setdefault(p, ws)
            pub_a, pub_b = list(by_pid.values())[:2]
            await pub_a.send("burst %s %d A" % (topic, per))
            await pub_b.send("burst %s %d B" % (topic, per))
            for ws, p in conns:
                msgs, replies = await collect(
                    ws, 2 * per, replies=int(ws in (pub_a, pub_b)))
                a = [m for m in msgs if m.startswith("A:")]
                b = [m for m in msgs if m.startswith("B:")]
                assert a == tagged("A", per), \
                    "child %d: %d of A's messages, in order: %s" \
                    % (p, len(a), a == sorted(a, key=lambda x: int(x[2:])))
                assert b == tagged("B", per), \
                    "child %d: %d of B's messages" % (p, len(b))
                assert replies in ([], ["#ok %d" % per]), replies
            return {p for _, p in conns}
        finally:
            await close_all(conns)

    assert len(run_async(main(), timeout=90)) >= 2


def test_a_plugin_thread_publishes_through_a_held_handle(server):
    topic, n = "/t/ticker", 100

    async def main():
        conns = await open_spread(server, "/t?sub=" + topic, 2)
        try:
            async with connect(server, "/t") as pub:
                await pub.send("thread %s %d T" % (topic, n))
                assert await asyncio.wait_for(pub.recv(), 10) == "#started"
                assert await asyncio.wait_for(pub.recv(), 20) \
                    == "#done %d" % n
            for ws, p in conns:
                msgs, _ = await collect(ws, n)
                assert msgs == tagged("T", n), "child %d" % p
        finally:
            await close_all(conns)

    run_async(main(), timeout=60)


def test_binary_messages_arrive_intact(server):
    topic = "/t/bin"
    expect = bytes(i % 251 for i in range(65536))

    async def main():
        conns = await open_spread(server, "/t?sub=" + topic, 2)
        try:
            async with connect(server, "/t") as pub:
                assert await command(pub, "pubbin %s 65536" % topic) \
                    == "#ok"
            for ws, p in conns:
                msgs, _ = await collect(ws, 1)
                assert msgs == [expect], "child %d" % p
        finally:
            await close_all(conns)

    run_async(main(), timeout=60)


def test_publishing_from_on_topic_message_is_refused(server):
    """A plugin's on_topic_message that publishes would deliver into
    itself without end: the module refuses such a publish, and the
    message itself arrives once."""
    topic = "/t/tap"

    async def main():
        async with connect(server, "/t?sub=" + topic) as ws:
            assert await command(ws, "tap " + topic) == "#ok"
            async with connect(server, "/t") as pub:
                assert await command(pub, "pub %s once" % topic) == "#ok"
            msgs, _ = await collect(ws, 1)
            assert msgs == ["once"]
            assert await command(ws, "tapped") == "#tapped 1 1"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)

    run_async(main())


# --------------------------------------------------- names and prefixes

@pytest.mark.parametrize("path,cmd,ok", [
    ("/t", "sub /t", True),
    ("/t", "sub /t/room", True),
    ("/t", "sub /tx", True),          # a prefix, not a path segment
    ("/t", "sub /other", False),
    ("/t", "sub /t/" + "a" * 197, True),   # 200 characters
    ("/t", "sub /t/" + "a" * 198, False),  # 201
    ("/t", "sub /t/\u00e9", False),       # not printable ASCII
    ("/star", "sub anything", True),
    ("/none", "sub /none", False),
    ("/multi", "sub news.today", True),
    ("/multi", "sub chat.lobby", True),
    ("/multi", "sub /multi", False),
    ("/t", "pub /other hello", False),
    ("/multi", "pub news.x hello", True),
])
def test_names_and_prefixes(server, path, cmd, ok):
    async def main():
        async with connect(server, path) as ws:
            return await command(ws, cmd)

    assert run_async(main()) == ("#ok" if ok else "#err")


@pytest.mark.parametrize("path,size,ok", [
    ("/limited", 1024, True), ("/limited", 1025, False),
    ("/t", 65536, True), ("/t", 65537, False),
])
def test_message_limit(server, path, size, ok):
    topic = "/limited/x" if path == "/limited" else "/t/x"

    async def main():
        async with connect(server, path) as ws:
            return await command(ws, "pubbin %s %d" % (topic, size))

    assert run_async(main()) == ("#ok" if ok else "#err")


def test_subscriptions_end_with_their_connection(server):
    topic = "/t/count"

    async def main():
        counter = await connect(server, "/t")
        pid = await pid_of(counter)
        assert await command(counter, "count " + topic) == "#count 0"
        if server.mpm == "prefork":
            # A process serves one connection: only its own count shows.
            assert await command(counter, "sub " + topic) == "#ok"
            assert await command(counter, "sub " + topic) == "#ok"
            assert await command(counter, "count " + topic) == "#count 1"
            assert await command(counter, "unsub " + topic) == "#ok"
            assert await command(counter, "count " + topic) == "#count 0"
            await counter.close()
            return
        # Subscribers on the counter's own child (the count is per
        # process): open until three are there.
        subs, others = [], []
        for _ in range(60):
            ws = await connect(server, "/t?sub=" + topic)
            (subs if await pid_of(ws) == pid else others).append(ws)
            if len(subs) == 3:
                break
        for ws in others:
            await ws.close()
        assert len(subs) == 3, "no three connections on child %d" % pid
        assert await command(counter, "count " + topic) == "#count 3"
        assert await command(subs[0], "unsub " + topic) == "#ok"
        assert await command(subs[0], "unsub " + topic) == "#err"
        assert await command(counter, "count " + topic) == "#count 2"
        await subs[1].close()
        deadline = time.monotonic() + 10
        while await command(counter, "count " + topic) != "#count 1":
            assert time.monotonic() < deadline, "subscription outlived " \
                "its connection"
            await asyncio.sleep(0.05)
        await subs[2].close()
        await subs[0].close()
        await counter.close()

    run_async(main(), timeout=60)


# ------------------------------------------------ crashes and restarts

def _bus_sockets(srv):
    bus = srv.dir / "run" / "websocket-bus"
    return sorted(p.name for p in bus.glob("*.bus"))


def test_a_killed_child_does_not_stop_the_others():
    srv = start("prefork")
    topic = "/t/crash"
    try:
        async def main():
            conns = await open_spread(srv, "/t?sub=" + topic, 3, children=3)
            (victim_ws, victim), rest = conns[0], conns[1:]
            os.kill(victim, signal.SIGKILL)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(victim_ws.recv(), 10)
            # A child that the bus has not seen before.
            newcomer = await connect(srv, "/t?sub=" + topic)
            assert await pid_of(newcomer) != victim
            async with connect(srv, "/t") as pub:
                assert await command(pub, "burst %s 50 K" % topic) \
                    == "#ok 50"
            for ws in [w for w, _ in rest] + [newcomer]:
                msgs, _ = await collect(ws, 50)
                assert msgs == tagged("K", 50)
            await newcomer.close()
            await close_all(rest)
            return victim

        victim = run_async(main(), timeout=60)
        # The first sender that finds its socket refusing removes it.
        assert support.wait_for(
            lambda: "%d.bus" % victim not in _bus_sockets(srv), 10), \
            "the killed child's socket is still there: %s" % _bus_sockets(srv)
    finally:
        srv.stop()
        srv.cleanup(keep=KEEP)


@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_graceful_restart_keeps_the_bus(mpm):
    srv = start(mpm)
    topic = "/t/restart"
    try:
        old_children = set(srv.child_pids())
        srv.graceful()

        async def main():
            conns = await open_spread(srv, "/t?sub=" + topic, 2)
            assert not {p for _, p in conns} & old_children, \
                "a new connection was served by an old child"
            async with connect(srv, "/t") as pub:
                assert await command(pub, "burst %s 40 R" % topic) \
                    == "#ok 40"
            for ws, p in conns:
                msgs, _ = await collect(ws, 40)
                assert msgs == tagged("R", 40), "child %d" % p
            await close_all(conns)

        run_async(main(), timeout=60)

        def only_live_sockets():
            owners = {int(n.split(".")[0]) for n in _bus_sockets(srv)}
            return owners <= set(srv.child_pids())

        assert support.wait_for(only_live_sockets, 15), \
            "sockets of gone children are left: %s, children %s" \
            % (_bus_sockets(srv), srv.child_pids())
    finally:
        srv.stop()
        srv.cleanup(keep=KEEP)


# ------------------------------------------------------ slow subscriber

def test_one_stalled_subscriber_among_a_thousand():
    # The event MPM parks idle WebSockets: 2 children x 16 threads take
    # the thousand when AsyncRequestWorkerFactor allows it.
    srv = start("event", server_config="""
StartServers 2
ServerLimit 2
ThreadLimit 16
ThreadsPerChild 16
MinSpareThreads 16
MaxSpareThreads 32
MaxRequestWorkers 32
AsyncRequestWorkerFactor 100
ListenBacklog 4096
""")
    n, count, size = 1000, 300, 1024
    try:
        stalled = support.open_stalled(srv, "/slow?sub=/t/slow")

        async def main():
            subs = []
            while len(subs) < n - 1:
                subs += await asyncio.gather(*(
                    connect(srv, "/slow?sub=/t/slow")
                    for _ in range(min(50, n - 1 - len(subs)))))
            async with connect(srv, "/slow") as pub:
                assert await command(pub, "burst /t/slow %d S %d"
                                     % (count, size), timeout=60) \
                    == "#ok %d" % count
            expect = tagged("S", count, size)

            async def drain(ws):
                msgs, _ = await collect(ws, count, timeout=60)
                return msgs == expect

            ok = await asyncio.gather(*(drain(ws) for ws in subs))
            assert all(ok), "%d of %d subscribers missed or misordered " \
                "messages" % (ok.count(False), len(ok))
            await asyncio.gather(*(ws.close() for ws in subs),
                                 return_exceptions=True)
            # What loopback's socket buffers take (a megabyte or more)
            # hid the stall so far: now enough to fill the 8K queue too,
            # without making the others read it all.
            async with connect(srv, "/slow") as pub:
                assert await command(pub, "burst /t/slow 100 F 60000",
                                     timeout=60) == "#ok 100"

        run_async(main(), timeout=300)
        f = stalled.recv_close(timeout=30)
        assert f.close_code == 1008, "the stalled subscriber got %r" \
            % f.close_code
    finally:
        srv.stop()
        srv.cleanup(keep=KEEP)


# ------------------------------------------------------- hosts via Redis

REDIS_SERVER = "/usr/bin/redis-server"


class Redis:
    """A redis-server of our own on a free loopback port, no persistence."""

    def __init__(self, port=None):
        import shutil
        import tempfile
        if not os.path.exists(REDIS_SERVER):
            pytest.fail("%s not found: apt-get install redis-server"
                        % REDIS_SERVER, pytrace=False)
        self.port = port or httpd.free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-")
        self._rmtree = shutil.rmtree
        self.proc = None

    def start(self):
        import subprocess
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert support.wait_for(self._answers, 10), \
            "redis-server did not answer on port %d" % self.port

    def _answers(self):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def cleanup(self):
        self.stop()
        self._rmtree(self.dir, ignore_errors=True)


def redis_log_count(srv, what):
    return srv.error_log().count(what)


def test_two_servers_share_topics_through_redis():
    redis = Redis()
    redis.start()
    conf = "WebSocketRedis redis://127.0.0.1:%d\n" % redis.port
    # Two children each (the test config's StartServers), which do not
    # grow here: every child's link is up before a message is published.
    a = start("event", server_config=conf)
    b = start("worker", server_config=conf)
    topic = "/t/hosts"
    try:
        # Every child of both logs the link coming up.
        for srv in (a, b):
            assert support.wait_for(
                lambda: redis_log_count(srv, "WS00110") >= 2, 15), \
                "no 'Redis is up' line in %s's log" % srv.variant

        async def exchange(tag, n=30):
            """Subscribers on both servers; publish n from a, then n from
            b: everyone gets both, each publisher's in order (which comes
            first depends on the way each took)."""
            subs = (await open_spread(a, "/t?sub=" + topic, 2)
                    + [(await connect(b, "/t?sub=" + topic), 0)
                       for _ in range(2)])
            try:
                for srv, who in ((a, "A"), (b, "B")):
                    async with connect(srv, "/t") as pub:
                        assert await command(
                            pub, "burst %s %d %s%s" % (topic, n, tag, who)) \
                            == "#ok %d" % n
                for ws, _ in subs:
                    msgs, _ = await collect(ws, 2 * n)
                    for who in "AB":
                        mine = [m for m in msgs if m.startswith(tag + who)]
                        assert mine == tagged(tag + who, n), (who, msgs)
            finally:
                await close_all(subs)

        run_async(exchange("up"), timeout=60)

        # Redis goes away: each server still delivers its own messages.
        redis.stop()
        for srv in (a, b):
            assert support.wait_for(
                lambda: redis_log_count(srv, "WS00111") >= 1, 15), \
                "no 'Redis is down' line in %s's log" % srv.variant

        async def local_only():
            subs = await open_spread(a, "/t?sub=" + topic, 2)
            try:
                async with connect(a, "/t") as pub:
                    assert await command(pub, "burst %s 20 down" % topic) \
                        == "#ok 20"
                for ws, _ in subs:
                    msgs, _ = await collect(ws, 20)
                    assert msgs == tagged("down", 20)
            finally:
                await close_all(subs)

        run_async(local_only(), timeout=60)

        # Back on the same port: both reconnect (backoff at most 5 s) and
        # remote delivery resumes.
        ups = {srv: redis_log_count(srv, "WS00110") for srv in (a, b)}
        redis.start()
        for srv in (a, b):
            assert support.wait_for(
                lambda: redis_log_count(srv, "WS00110") >= ups[srv] + 2,
                20), "the link did not come back in %s" % srv.variant
        run_async(exchange("again"), timeout=60)
    finally:
        for srv in (a, b):
            srv.stop()
            srv.cleanup(keep=KEEP)
        redis.cleanup()
