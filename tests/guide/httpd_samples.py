"""Serve the plugin samples of docs/plugin-guide.md from a real httpd.

tests/guide/check-samples.sh builds the samples into a directory and, when
Debian's apache2, build/mod_websocket.so and python3-websockets are there,
runs this with that directory:

    python3 tests/guide/httpd_samples.py DIR

It starts one event-MPM httpd (tests/integration/httpd.py) with a single
child, which the room of section 7 needs, with a location per plugin
configured as the guide shows, and talks to each over real WebSockets. Then
a prefork httpd, where each connection has a process of its own, checks
that the topic samples of section 8 reach members in other children. It
fails on a wrong answer or a crashed child.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import websockets  # noqa: E402

from httpd import Httpd, install_signal_cleanup, tail  # noqa: E402

TIMEOUT = 10


def locations(plugins):
    return """
<Location "/myecho">
    WebSocketHandler {d}/myecho.so
</Location>
<Location "/count">
    WebSocketHandler {d}/count.so
</Location>
<Location "/ticker">
    WebSocketHandler {d}/ticker.so
    WebSocketQueueLimit 64K
    WebSocketQueuePolicy refuse
</Location>
<Location "/room">
    WebSocketHandler {d}/room.so
    WebSocketMaxMessageSize 4K
    WebSocketQueueLimit 256K
    WebSocketQueuePolicy close-1013
</Location>
<Location "/greet">
    WebSocketHandler {d}/greet.so
    WebSocketSetting greeting "Welcome to the help desk"
    WebSocketSetting max-length 200
</Location>
<Location "/greet/fr">
    WebSocketSetting greeting "Bienvenue"
</Location>
<Location "/rooms">
    WebSocketHandler {d}/rooms.so
    WebSocketMaxMessageSize 4K
    WebSocketQueueLimit 256K
    WebSocketQueuePolicy close-1013
</Location>
<Location "/jobs">
    WebSocketHandler {d}/jobs.so
</Location>
""".format(d=plugins)


# One child: the room's members must share one process (guide, section 7).
ONE_CHILD = """
ServerLimit 1
StartServers 1
MaxRequestWorkers 25
MinSpareThreads 5
MaxSpareThreads 25
"""


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def check_myecho(server):
    async with websockets.connect(server.ws_url("/myecho")) as ws:
        await ws.send("hello")
        assert await recv(ws) == "hello"
        await ws.send(b"\x00\x01\xff")
        assert await recv(ws) == b"\x00\x01\xff"


async def check_count(server):
    async with websockets.connect(server.ws_url("/count")) as ws:
        await ws.send("count 20000")
        for i in range(1, 20001):
            got = await recv(ws)
            assert got == str(i), "count: expected %d, got %r" % (i, got)


async def check_ticker(server):
    async with websockets.connect(server.ws_url("/ticker")) as a, \
            websockets.connect(server.ws_url("/ticker")) as b:
        for ws in (a, b):
            first = await recv(ws)
            assert first.startswith("tick "), first
            second = await recv(ws)
            assert int(second[5:]) == int(first[5:]) + 1, (first, second)


async def check_room(server):
    async with websockets.connect(server.ws_url("/room")) as a, \
            websockets.connect(server.ws_url("/room")) as b:
        await a.send("hi all")
        assert await recv(a) == "127.0.0.1: hi all"
        assert await recv(b) == "127.0.0.1: hi all"


async def check_greet(server):
    async with websockets.connect(server.ws_url("/greet")) as ws:
        assert await recv(ws) == "Welcome to the help desk"
        await ws.send("short")
        assert await recv(ws) == "short"
        await ws.send("x" * 201)
        try:
            got = await recv(ws)
            raise AssertionError("greet: expected a close, got %r" % got)
        except websockets.ConnectionClosed as e:
            assert e.rcvd and e.rcvd.code == 1008, e
    async with websockets.connect(server.ws_url("/greet/fr")) as ws:
        assert await recv(ws) == "Bienvenue"
        await ws.send("y" * 200)            # max-length is inherited
        assert await recv(ws) == "y" * 200


async def check_rooms(server):
    async with websockets.connect(server.ws_url("/rooms")) as a, \
            websockets.connect(server.ws_url("/rooms")) as b, \
            websockets.connect(server.ws_url("/rooms?kitchen")) as k:
        await a.send("hi all")
        assert await recv(a) == "127.0.0.1: hi all"
        assert await recv(b) == "127.0.0.1: hi all"
        await k.send("in the kitchen")      # another room: not "hi all"
        assert await recv(k) == "127.0.0.1: in the kitchen"
        # One child here: the newcomer gets the lobby's history.
        async with websockets.connect(server.ws_url("/rooms")) as c:
            assert await recv(c) == "127.0.0.1: hi all"
    try:
        async with websockets.connect(server.ws_url("/rooms?" + "x" * 300)):
            raise AssertionError("rooms: a 300-byte room name was accepted")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 400, e


async def check_jobs(server):
    async with websockets.connect(server.ws_url("/jobs")) as b:
        async with websockets.connect(server.ws_url("/jobs")) as a:
            await a.send("run backup")
            for ws in (a, b):
                assert await recv(ws) == "backup: queued"
        # a has left; its job still reports to everyone else.
        assert await recv(b) == "backup: started"
        assert await recv(b) == "backup: done"


async def check_rooms_across(server):
    # Prefork: each open WebSocket holds a process, so a, b and c are in
    # three different children, joined by the topic bus only.
    async with websockets.connect(server.ws_url("/rooms")) as a, \
            websockets.connect(server.ws_url("/rooms")) as b, \
            websockets.connect(server.ws_url("/rooms?kitchen")) as k:
        await a.send("hello from one child")
        for ws in (a, b):
            assert await recv(ws) == "127.0.0.1: hello from one child"
        await b.send("and back from another")
        for ws in (a, b):
            assert await recv(ws) == "127.0.0.1: and back from another"
        await k.send("kitchen only")
        assert await recv(k) == "127.0.0.1: kitchen only"


async def check_jobs_across(server):
    async with websockets.connect(server.ws_url("/jobs")) as a, \
            websockets.connect(server.ws_url("/jobs")) as b:
        await a.send("run report")          # a's child runs it
        for ws in (a, b):
            for what in ("queued", "started", "done"):
                assert await recv(ws) == "report: " + what


CHECKS = (check_myecho, check_count, check_ticker, check_room, check_greet,
          check_rooms, check_jobs)
ACROSS = (check_rooms_across, check_jobs_across)


def serve(server, checks, how):
    """Run checks against server; 0, or 1 after printing why."""
    try:
        server.start()
        for check in checks:
            try:
                asyncio.run(check(server))
            except Exception as e:
                print("[guide] httpd: %s FAILED: %r\n--- error log ---\n%s"
                      % (check.__name__, e, tail(server.error_log())))
                return 1
        server.stop()
        log = server.error_log()
        if "exit signal" in log or "AddressSanitizer" in log:
            print("[guide] httpd: a child crashed\n%s" % tail(log))
            return 1
        print("[guide] httpd: %d plugin checks served real WebSockets "
              "(%s): %s" % (len(checks), how,
                            ", ".join(c.__name__[6:] for c in checks)))
        return 0
    finally:
        server.cleanup()


def main():
    plugins = Path(sys.argv[1]).resolve()
    install_signal_cleanup()
    return (serve(Httpd("event", extra=locations(plugins),
                        server_config=ONE_CHILD, name="guide"),
                  CHECKS, "event MPM, one child")
            or serve(Httpd("prefork", extra=locations(plugins),
                           name="guide-prefork"),
                     ACROSS, "prefork, a child per connection"))


if __name__ == "__main__":
    sys.exit(main())
