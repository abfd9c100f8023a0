"""Serve the plugin samples of docs/plugin-guide.md from a real httpd.

tests/guide/check-samples.sh builds the samples into a directory and, when
Debian's apache2, build/mod_websocket.so and python3-websockets are there,
runs this with that directory:

    python3 tests/guide/httpd_samples.py DIR

It starts one event-MPM httpd (tests/integration/httpd.py) with a single
child, as the guide advises for a chat room, with a location per plugin
configured as the guide shows, talks to each over real WebSockets, and
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


CHECKS = (check_myecho, check_count, check_ticker, check_room, check_greet)


def main():
    plugins = Path(sys.argv[1]).resolve()
    install_signal_cleanup()
    server = Httpd("event", extra=locations(plugins),
                   server_config=ONE_CHILD, name="guide")
    try:
        server.start()
        for check in CHECKS:
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
        print("[guide] httpd: %d plugin samples served real WebSockets "
              "(event MPM, one child): %s"
              % (len(CHECKS), ", ".join(c.__name__[6:] for c in CHECKS)))
        return 0
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
