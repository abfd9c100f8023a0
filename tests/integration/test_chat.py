"""The chat handler (handlers/chat): rooms per <Location> within one httpd
child, JSON messages, names from the query string, history, and a client
that stops reading.

The server has a single child (StartServers 1, ServerLimit 1), as a chat
room lives in one process, with 100 threads (each open WebSocket holds
one) and Timeout 3, which bounds how long a write to a stalled client may
block. It runs under the event and worker MPMs and event+ssl; prefork gives
every connection a process of its own, so it has no rooms to test.

- 50 python3-websockets clients in one room each send 3 messages: every
  client gets every message, each sender's in order, and all in the same
  order; joins of itself and later clients, leaves of those who go.
- Names are percent-decoded, made valid UTF-8, cut at name_max characters
  (never inside one), escaped in valid JSON: ?name=%E2%9C%93%22x%22 is
  ✓"x", written as "✓\\"x\\"".
- A late joiner gets the last `history` messages; `history 0` sends none;
  a client of another <Location> is in another room and hears nothing.
- Over max_text, binary and empty messages: an error object, the
  connection stays.
- A client that never reads (4 KiB receive buffer) while three others chat
  4 KB messages: theirs keep arriving within a second, and the stalled one
  is closed with 1008 when its queue (WebSocketQueueLimit 1M, close-1008)
  is full, then leaves the room.
- Members that agreed on permessage-deflate with different parameters (the
  shared mode's default, a 10-bit window) and one without it each get a
  room message, compressed as each agreed; those with the same parameters
  get the same bytes (the module compresses once per set, see
  mws_send_many()).
"""

import asyncio
import json
import re
import socket
import time
import zlib
from urllib.parse import quote

import pytest
import websockets

import httpd
import wsproto
from conftest import KEEP, make_server
from helpers import run_async

CHAT_VARIANTS = [("event", "event", False), ("worker", "worker", False),
                 ("event+ssl", "event", True)]

SINGLE_CHILD = """
StartServers 1
ServerLimit 1
ThreadLimit 100
ThreadsPerChild 100
MaxRequestWorkers 100
MinSpareThreads 1
MaxSpareThreads 200
Timeout 3
"""

GUEST_RE = re.compile(r"^guest-\d+$")


def chat_locations():
    chat = httpd.handler_path("chat")
    return """
<Location /fanout>
    WebSocketHandler {chat}
    WebSocketSetting history 0
</Location>
<Location /names>
    WebSocketHandler {chat}
</Location>
<Location /short>
    WebSocketHandler {chat}
    WebSocketSetting name_max 3
</Location>
<Location /hist>
    WebSocketHandler {chat}
    WebSocketSetting history 5
</Location>
<Location /limits>
    WebSocketHandler {chat}
    WebSocketSetting max_text 16
</Location>
<Location /junkchat>
    WebSocketHandler {chat}
    WebSocketSetting history lots
    WebSocketSetting name_max 0
    WebSocketSetting max_text -1
</Location>
<Location /dchat>
    WebSocketHandler {chat}
    WebSocketDeflateMinSize 0
    WebSocketSetting history 0
</Location>
<Location /slow>
    WebSocketHandler {chat}
    WebSocketSetting history 0
    WebSocketQueueLimit 1M
    WebSocketQueuePolicy close-1008
</Location>
""".format(chat=chat)


@pytest.fixture(scope="module", params=CHAT_VARIANTS,
                ids=[v[0] for v in CHAT_VARIANTS])
def server(request):
    try:
        httpd.require_built("chat")
    except httpd.MissingArtifact as e:
        pytest.fail(str(e), pytrace=False)
    _, mpm, tls = request.param
    srv = make_server(mpm, tls, extra=chat_locations(),
                      server_config=SINGLE_CHILD, name="chat-" + mpm)
    yield srv
    try:
        srv.stop()
    finally:
        srv.cleanup(keep=KEEP)


def connect(server, path):
    """websockets.connect with this server's origin, no compression, no
    client pings, bounded handshake and close."""
    kw = dict(origin=server.origin, compression=None, ping_interval=None,
              open_timeout=10, close_timeout=10, max_queue=None)
    if server.tls:
        kw["ssl"] = server.client_ssl_context()
    return websockets.connect(server.ws_url(path), **kw)


async def recv_json(ws, timeout=10):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str), "chat sent a binary message: %r" % raw
    return json.loads(raw)


async def join(server, path):
    """Connect; returns (ws, welcome) after the welcome object."""
    ws = await connect(server, path)
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


def name(i):
    return "c%02d" % i


# -------------------------------------------------------------- the room

def test_fifty_clients_one_room(server):
    n, per = 50, 3

    async def main():
        clients = []
        try:
            for i in range(n):
                ws, welcome = await join(server, "/fanout?name=" + name(i))
                clients.append(ws)
                assert welcome == {"type": "welcome", "name": name(i),
                                   "room": "/fanout", "online": i + 1}
            # history 0: no history object; then its own join and every
            # later one, in order.
            for i, ws in enumerate(clients):
                for k in range(i, n):
                    got = await recv_json(ws)
                    assert got == {"type": "join", "name": name(k)}, (i, got)

            async def talk(i, ws):
                for j in range(per):
                    await ws.send("m%d from %s" % (j, name(i)))

            async def listen(ws):
                return [await recv_json(ws) for _ in range(n * per)]

            results = await asyncio.gather(
                *[listen(ws) for ws in clients],
                *[talk(i, ws) for i, ws in enumerate(clients)])
            views = results[:n]
            for got in views:
                assert all(m["type"] == "message" for m in got), got
                for i in range(n):
                    texts = [m["text"] for m in got if m["from"] == name(i)]
                    assert texts == ["m%d from %s" % (j, name(i))
                                     for j in range(per)], texts
            assert all(v == views[0] for v in views), (
                "clients saw the room's messages in different orders")

            # Ten leave: everyone else hears each leave once.
            for ws in clients[:10]:
                await ws.close()
                assert ws.close_code == 1000
            for ws in clients[10:]:
                leaves = [await recv_json(ws) for _ in range(10)]
                assert sorted(m["name"] for m in leaves if
                              m["type"] == "leave") == [name(i)
                                                        for i in range(10)]
        finally:
            await asyncio.gather(*[ws.close() for ws in clients])

    run_async(main(), timeout=90)


# ----------------------------------------------------------------- names

NAME_CASES = [
    ("%E2%9C%93%22x%22", '\u2713"x"'),
    ("a%5Cb", "a\\b"),
    ("bob+smith", "bob smith"),
    ("a%0Ab%7Fc", "a b c"),               # controls become spaces
    ("%0Aeve%01", "eve"),                 # ... trimmed at the ends
    ("%FFx", "\ufffdx"),                  # not UTF-8: U+FFFD
    ("%E2%80%AEmallory", "mallory"),      # a bidi override
    ("%C3%A9" * 40, "\u00e9" * 32),       # name_max 32 characters
    (quote("\U0001F600") * 33, "\U0001F600" * 32),
]


def test_names_from_the_query(server):
    async def main():
        for query, expected in NAME_CASES:
            ws, welcome = await join(server, "/names?x=1&name=" + query +
                                     "&name=second")
            try:
                assert welcome["name"] == expected, (query, welcome)
            finally:
                await ws.close()
        # Not UTF-8 at all, overlong, surrogates: still valid JSON (the
        # client's strict UTF-8 decoding and json.loads passed) with no
        # raw byte of them left.
        for query in ("%C0%AF", "%ED%A0%80", "%E2%9C", "%F4%90%80%80"):
            ws, welcome = await join(server, "/names?name=" + query)
            await ws.close()
            assert set(welcome["name"]) == {"\ufffd"}, (query, welcome)
        # Missing or blank: a guest.
        for path in ("/names", "/names?name=", "/names?name=%20%20",
                     "/names?username=bob"):
            ws, welcome = await join(server, path)
            await ws.close()
            assert GUEST_RE.match(welcome["name"]), (path, welcome)
        # name_max 3 never cuts a character.
        for query, expected in (("a" + quote("\u2713") * 3, "a\u2713\u2713"),
                                (quote("\U0001F600") * 4, "\U0001F600" * 3)):
            ws, welcome = await join(server, "/short?name=" + query)
            await ws.close()
            assert welcome["name"] == expected, (query, welcome)

        # The JSON itself: quotes escaped, non-ASCII as it is, and the
        # same name in the join notice and the messages.
        ws = await connect(server, "/names?name=%E2%9C%93%22x%22")
        try:
            raw = await asyncio.wait_for(ws.recv(), 10)
            assert '"name":"\u2713\\"x\\""' in raw, raw
            await recv_json(ws)                          # history
            assert await recv_json(ws) == {"type": "join",
                                           "name": '\u2713"x"'}
            text = 'q"uote \\ back\nnl\ttab\x01 \x7f \u2713 \U0001F600'
            await ws.send(text)
            raw = await asyncio.wait_for(ws.recv(), 10)
            assert json.loads(raw) == {"type": "message",
                                       "from": '\u2713"x"', "text": text}
            for piece in ('q\\"uote \\\\ back\\u000anl\\u0009tab\\u0001',
                          "\u2713 \U0001F600"):
                assert piece in raw, (piece, raw)
        finally:
            await ws.close()

    run_async(main())


# ------------------------------------------------------ history, limits

def test_history_for_a_late_joiner(server):
    async def main():
        # Someone in another <Location>: another room, hears nothing.
        other, _ = await join(server, "/limits?name=elsewhere")
        await recv_json(other)                          # history
        await recv_json(other)                          # join
        a, welcome = await join(server, "/hist?name=ann")
        assert welcome["online"] == 1
        assert await recv_json(a) == {"type": "history", "messages": []}
        assert await recv_json(a) == {"type": "join", "name": "ann"}
        for i in range(8):
            await a.send("h%d" % i)
        for i in range(8):
            assert await recv_json(a) == {"type": "message", "from": "ann",
                                          "text": "h%d" % i}
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(other.recv(), 0.3)
        await other.close()
        b, welcome = await join(server, "/hist?name=ben")
        assert welcome == {"type": "welcome", "name": "ben", "room": "/hist",
                           "online": 2}
        assert await recv_json(b) == {"type": "history", "messages": [
            {"type": "message", "from": "ann", "text": "h%d" % i}
            for i in range(3, 8)]}
        assert await recv_json(b) == {"type": "join", "name": "ben"}
        assert await recv_json(a) == {"type": "join", "name": "ben"}
        await b.close()
        assert await recv_json(a) == {"type": "leave", "name": "ben"}
        await a.close()

    run_async(main())


def test_refused_messages_keep_the_connection(server):
    async def main():
        ws, _ = await join(server, "/limits?name=lim")
        try:
            assert (await recv_json(ws))["type"] == "history"
            assert await recv_json(ws) == {"type": "join", "name": "lim"}
            too_long = {"type": "error", "text": "message too long"}
            for text, answer in (
                    ("x" * 17, too_long),
                    ("\u2713" * 5 + "x", None),       # 16 bytes: the limit
                    ("\u2713" * 6, too_long),         # 6 characters, 18 bytes
                    (b"\x00\x01", {"type": "error", "text":
                                   "binary messages are not supported"}),
                    ("", None),                       # ignored
                    ("after", None)):
                await ws.send(text)
                if text == "":
                    continue
                got = await recv_json(ws)
                assert got == (answer or {"type": "message", "from": "lim",
                                          "text": text}), (text, got)
        finally:
            await ws.close()
        assert ws.close_code == 1000

    run_async(main())


def test_junk_settings_fall_back_to_defaults(server):
    async def main():
        ws, welcome = await join(server, "/junkchat?name=" + "n" * 40)
        try:
            assert welcome["name"] == "n" * 32          # name_max 32
            assert (await recv_json(ws))["type"] == "history"   # 20
            await recv_json(ws)                          # join
            await ws.send("y" * 4096)                    # max_text 4096
            assert (await recv_json(ws))["text"] == "y" * 4096
            await ws.send("y" * 4097)
            assert (await recv_json(ws))["type"] == "error"
        finally:
            await ws.close()

    run_async(main())
    log = server.error_log()
    for line in ('chat: /junkchat: WebSocketSetting name_max "0" is not',
                 'chat: /junkchat: WebSocketSetting history "lots" is not',
                 'chat: /junkchat: WebSocketSetting max_text "-1" is not'):
        assert line in log, line


# ------------------------------------------------------------ slow client

def open_stalled(server, path, rcvbuf=4096):
    """A raw WebSocket whose 4 KiB receive buffer is set before connect
    (so the window stays small); after the 101 it reads nothing more."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((server.host, server.port))
    if server.tls:
        sock = server.client_ssl_context().wrap_socket(
            sock, server_hostname=server.host)
    conn = wsproto.RawConn.__new__(wsproto.RawConn)
    conn.timeout, conn.sock, conn.buf, conn.eof = 10, sock, bytearray(), False
    key = wsproto.make_key()
    resp = conn.handshake(wsproto.build_request(
        path, server.hostport, key=key, origin=server.origin),
        chopped_write=False)
    wsproto.assert_upgraded(resp, key)
    return conn


def test_stalled_client_does_not_stall_the_room(server):
    # ~2 MB/s to each client: the active ones (one Python process, maybe
    # TLS) stay far from their 1 MiB queue limit, and the stalled one
    # passes it after the kernel's socket buffers (a few MB on loopback).
    size, pause = 4000, 0.006

    async def main(stalled_holder):
        fast = []
        try:
            for i in range(3):
                ws, _ = await join(server, "/slow?name=f%d" % i)
                fast.append(ws)
            for i, ws in enumerate(fast):
                for k in range(i, 3):
                    assert await recv_json(ws) == {"type": "join",
                                                   "name": "f%d" % k}
            stalled_holder.append(open_stalled(server, "/slow?name=stalled"))
            for ws in fast:
                assert await recv_json(ws) == {"type": "join",
                                               "name": "stalled"}

            gone = asyncio.Event()
            sent = [0, 0, 0]
            start = time.monotonic()

            async def talk(i, ws):
                # Until the stalled client has left (bounded), then a last
                # "end", which arrives after all of this sender's messages.
                while not gone.is_set() and time.monotonic() - start < 20:
                    head = "f%d %d %.6f " % (i, sent[i], time.monotonic())
                    await ws.send(head + "x" * (size - len(head)))
                    sent[i] += 1
                    await asyncio.sleep(pause)
                await ws.send("end")

            async def listen(ws):
                got, lag, left_at, ends = [], 0.0, None, 0
                while ends < 3 or left_at is None:
                    m = await recv_json(ws, timeout=25)
                    if m["type"] == "leave":
                        assert m["name"] == "stalled", m
                        left_at = time.monotonic() - start
                        gone.set()
                    elif m["type"] == "message" and m["text"] == "end":
                        ends += 1
                    elif m["type"] == "message":
                        who, seq, stamp = m["text"].split(" ", 3)[:3]
                        lag = max(lag, time.monotonic() - float(stamp))
                        got.append((who, int(seq)))
                    else:
                        raise AssertionError("unexpected %r" % m)
                return got, lag, left_at

            results = await asyncio.gather(
                *[listen(ws) for ws in fast],
                *[talk(i, ws) for i, ws in enumerate(fast)])
            return results[:3], sent
        finally:
            await asyncio.gather(*[ws.close() for ws in fast])

    holder = []
    try:
        views, sent = run_async(main(holder), timeout=60)
        for got, lag, left_at in views:
            for i in range(3):
                seqs = [s for w, s in got if w == "f%d" % i]
                assert seqs == list(range(sent[i])), (
                    "f%d: got %d of %d, or out of order"
                    % (i, len(seqs), sent[i]))
            assert lag < 1.0, (
                "a message took %.2f s to reach an active client while "
                "another was stalled" % lag)
            assert left_at is not None and left_at < 15, left_at
        # What the stalled one saw: some messages, then the end (its close
        # frame may never have left a full socket).
        assert holder[0].wait_eof(timeout=10), "stalled client still open"
        # The queue hit its cap: the connection ended on a 1008 close.
        assert re.search(r"location /slow, .* close 1008 by server",
                         server.error_log()), "no 1008 close logged for /slow"
        total = sum(sent) * size
        assert total > 1024 * 1024, total
        print("stalled test: sent %r messages of %d bytes (%.1f MB), "
              "lags %s s, stalled client left after %s s"
              % (sent, size, total / 1e6,
                 ["%.3f" % v[1] for v in views],
                 ["%.2f" % v[2] for v in views]))
    finally:
        for conn in holder:
            conn.close()


# ------------------------------------------------------------ deflate

RSV1 = 4
TAIL = b"\x00\x00\xff\xff"


def test_broadcast_to_members_with_mixed_deflate(server):
    # The chat sends each room message with one mws_send_many(): stored
    # once, and compressed once per set of deflate parameters. Members with
    # the shared mode's default parameters, one that asked for a 10-bit
    # window and one without the extension each get the message,
    # compressed or not as each agreed; the two with the same parameters
    # get the same bytes.
    offers = [("a", "permessage-deflate"), ("b", "permessage-deflate"),
              ("c", "permessage-deflate; server_max_window_bits=10"),
              ("d", None)]
    client = wsproto.Client(server)
    try:
        members = []
        for who, offer in offers:
            kw = {"extensions": offer} if offer else {}
            conn, resp, key = client.handshake("/dchat?name=" + who, **kw)
            wsproto.assert_upgraded(resp, key)
            ext = resp.get("sec-websocket-extensions") or ""
            assert bool(ext) == bool(offer), resp
            members.append((who, conn, ext))

        def recv(who, conn, ext):
            """(object, raw payload) of the next message."""
            f = conn.recv_frame(10)
            assert f.opcode == wsproto.TEXT and f.fin, (who, f)
            assert (f.rsv == RSV1) == bool(ext), (who, f.rsv, ext)
            data = f.payload
            if f.rsv:
                bits = 10 if "server_max_window_bits=10" in ext else 15
                data = zlib.decompressobj(-bits).decompress(data + TAIL)
            return json.loads(data), f.payload

        # Everyone is in once the last one's join reached all.
        for who, conn, ext in members:
            while recv(who, conn, ext)[0] != {"type": "join", "name": "d"}:
                pass
        text = "tick " + "0123456789abcdef" * 200
        members[0][1].send_text(text)
        raw = {}
        for who, conn, ext in members:
            m, raw[who] = recv(who, conn, ext)
            assert m == {"type": "message", "from": "a", "text": text}, (
                who, m)
        assert raw["a"] == raw["b"]
        assert len(raw["a"]) < len(text) // 5, len(raw["a"])
        assert len(raw["d"]) > len(text)
    finally:
        client.close_all()
