"""The echo handler through three clients: python3-websockets (asyncio),
raw sockets with chopped writes, and Node's `ws`. Sizes straddle every
length encoding (125/126, 65535/65536) and the default 1 MiB limit; ping,
pong and every close-code rule of §7.4.
"""

import asyncio
import os
import re

import pytest
import websockets
import websockets.exceptions

import wsproto
from support import wait_for
from helpers import (MiB, binary_of_size, run_async, run_node_client,
                     text_of_size)
from wsproto import BINARY, CLOSE, PING, PONG, TEXT

SIZES = [0, 1, 125, 126, 65535, 65536, MiB]
SIZE_IDS = ["0", "1", "125", "126", "65535", "65536", "1MiB"]


def payload(kind, size):
    return text_of_size(size) if kind == "text" else binary_of_size(size)


def connect(server, path="/echo", **kw):
    """websockets.connect with this server's origin and TLS trust, no
    compression (the module's framing is under test), no client pings."""
    kw.setdefault("origin", server.origin)
    kw.setdefault("compression", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 10)
    if server.tls:
        kw["ssl"] = server.client_ssl_context()
    return websockets.connect(server.ws_url(path), **kw)


async def echo_each(server, path, messages, **kw):
    """Send each message, check its echo, close 1000 "bye"; returns the
    close code the server answered with."""
    async with connect(server, path, **kw) as ws:
        for m in messages:
            await ws.send(m)
            got = await asyncio.wait_for(ws.recv(), 60)
            assert type(got) is type(m), "sent %s, got %s" % (
                type(m).__name__, type(got).__name__)
            assert len(got) == len(m), "sent %d, got %d" % (len(m), len(got))
            assert got == m, "echo differs from what was sent"
        await ws.close(1000, "bye")
    return ws.close_code


# ------------------------------------------------------- python websockets

def test_connection_log_line_counts_both_ways(server):
    # WS00001, written when the connection ends: messages and payload
    # bytes each way as they went over the wire, and who closed.
    offset = server.error_log_size()
    msgs = ["a" * 10, b"\x00" * 300, "xyz"]
    assert run_async(echo_each(server, "/echo", msgs)) == 1000

    def line():
        m = re.search(r"WS00001: websocket closed: .*",
                      server.error_log_since(offset))
        return m and m.group(0)
    got = wait_for(line, 10)
    assert got, "no WS00001 line within 10 s"
    assert ("in 3 msgs 313 bytes, out 3 msgs 313 bytes, close 1000 by "
            "client" in got), got


def test_burst_of_small_messages_all_echoed_in_order(server):
    # 2,000 small messages in one write: their echoes go out in batches
    # of copied frames (several buffers' worth); none may be lost or
    # reordered.
    conn = wsproto.Client(server).open("/echo")
    try:
        conn.send(b"".join(wsproto.encode_frame(TEXT, b"m%05d" % i)
                           for i in range(2000)))
        got = [conn.recv_message(timeout=20) for _ in range(2000)]
    finally:
        conn.close()
    assert got == [(TEXT, b"m%05d" % i) for i in range(2000)]


def test_log_names_the_driver_of_a_location(server):
    # WS00023, once per child and location: the event MPM parks WebSockets
    # (async driver) unless the run forces the blocking one; the other
    # MPMs cannot, and the line says so.
    assert run_async(echo_each(server, "/echo", ["x"])) == 1000
    if server.mpm != "event":
        want = ("/echo is served by the blocking driver: this MPM cannot "
                "park connections")
    elif os.environ.get("MWS_DRIVER") == "blocking":
        want = "/echo is served by the blocking driver: WebSocketDriver blocking"
    else:
        want = "/echo is served by the async driver"
    got = wait_for(lambda: want in server.error_log(), 10)
    lines = [ln for ln in server.error_log().splitlines() if "WS00023" in ln]
    assert got, "no WS00023 line saying %r: %s" % (want, lines)


def test_connection_log_line_counts_only_what_was_sent(server):
    # 50 messages and a close in one write: the server drops the echoes it
    # has not started when the close arrives (§5.5.1 lets it), and the log
    # line counts the ones the client really received, not all it queued.
    offset = server.error_log_size()
    conn = wsproto.Client(server).open("/echo")
    try:
        conn.send(b"".join(wsproto.encode_frame(TEXT, b"m%02d" % i)
                           for i in range(50))
                  + wsproto.encode_frame(CLOSE, wsproto.close_payload(1000)))
        received = 0
        while True:
            f = conn.recv_frame(timeout=10)
            if f.opcode == CLOSE:
                break
            received += 1
    finally:
        conn.close()

    def line():
        m = re.search(r"WS00001: websocket closed: .*",
                      server.error_log_since(offset))
        return m and m.group(0)
    got = wait_for(line, 10)
    assert got, "no WS00001 line within 10 s"
    assert ("in 50 msgs 150 bytes, out %d msgs %d bytes, close 1000 by "
            "client" % (received, 3 * received) in got), (received, got)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_websockets(server, kind, size):
    code = run_async(echo_each(server, "/echo", [payload(kind, size)]))
    assert code == 1000


def test_echo_many_messages_one_connection(server):
    msgs = [payload(k, n) for n in (0, 3, 200, 70000) for k in ("text",
                                                                 "binary")]
    assert run_async(echo_each(server, "/echo", msgs * 5)) == 1000


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_over_default_limit_is_1009(server, kind):
    async def go():
        async with connect(server, "/echo") as ws:
            await ws.send(payload(kind, MiB + 1))
            with pytest.raises(websockets.exceptions.ConnectionClosed) as ei:
                await asyncio.wait_for(ws.recv(), 30)
            return ei.value.rcvd
    rcvd = run_async(go())
    assert rcvd is not None, "connection dropped without a close frame"
    assert rcvd.code == 1009


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_16mib_with_raised_limits(server, kind):
    msg = payload(kind, 16 * MiB)
    code = run_async(echo_each(server, "/big", [msg], max_size=None),
                     timeout=120)
    assert code == 1000


def test_subprotocol_with_websockets(server):
    async def go():
        async with connect(server, "/proto", subprotocols=["a", "b"]) as ws:
            chosen = ws.subprotocol
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), 10) == "x"
            return chosen
    assert run_async(go()) == "b"


def test_ping_pong_websockets(server):
    # websockets resolves the waiter only for a pong with the same payload.
    async def go():
        async with connect(server, "/echo") as ws:
            for data in (b"", b"abc", bytes(range(125))):
                waiter = await ws.ping(data)
                await asyncio.wait_for(waiter, 10)
            await ws.send("after pings")
            return await asyncio.wait_for(ws.recv(), 10)
    assert run_async(go()) == "after pings"


def test_close_1000_bye_websockets(server):
    async def go():
        async with connect(server, "/echo") as ws:
            await ws.close(1000, "bye")
            return ws.close_code
    assert run_async(go()) == 1000


# -------------------------------------------------------------------- raw

RAW_SIZES = [0, 1, 125, 126, 65535, 65536, 300000]
BIG_CHOPS = (1, 7, 100, 1000, 4093, 16384)


@pytest.mark.parametrize("size", RAW_SIZES, ids=[str(s) for s in RAW_SIZES])
@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
def test_echo_raw_chopped(client, opcode, size):
    data = (text_of_size(size).encode("utf-8") if opcode == TEXT
            else binary_of_size(size))
    conn = client.open("/echo")
    frame = wsproto.encode_frame(opcode, data)
    conn.send_chopped(frame, sizes=BIG_CHOPS if size > 1000 else
                      (1, 2, 3, 5, 7, 11, 13))
    assert conn.recv_message(timeout=30) == (opcode, data)


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
def test_echo_raw_fragmented(client, opcode):
    # Fragment boundaries that split UTF-8 characters, including empty
    # fragments (§5.4 allows them).
    data = (text_of_size(5000).encode("utf-8") if opcode == TEXT
            else binary_of_size(5000))
    cuts = [0, 1, 1, 2, 3, 17, 300, 301, 4096, 5000]
    conn = client.open("/echo")
    pieces = [data[a:b] for a, b in zip(cuts, cuts[1:])]
    for i, piece in enumerate(pieces):
        conn.send_frame(opcode if i == 0 else wsproto.CONT, piece,
                        fin=(i == len(pieces) - 1), chopped_write=True)
    assert conn.recv_message(timeout=30) == (opcode, data)


def test_many_frames_in_one_write(client):
    conn = client.open("/echo")
    msgs = [("m%d" % i).encode() * (i + 1) for i in range(50)]
    conn.send(b"".join(wsproto.encode_frame(TEXT, m) for m in msgs))
    for m in msgs:
        assert conn.recv_message() == (TEXT, m)


@pytest.mark.parametrize("data", [b"", b"hello", bytes(range(125))],
                         ids=["empty", "hello", "125"])
def test_ping_answered_with_same_payload(client, data):
    conn = client.open("/echo")
    conn.send_frame(PING, data, chopped_write=True)
    f = conn.recv_frame()
    assert f.opcode == PONG, f
    assert f.fin, f
    assert f.payload == data


def test_ping_between_fragments(client):
    conn = client.open("/echo")
    conn.send_frame(TEXT, b"first ", fin=False)
    conn.send_frame(PING, b"mid")
    conn.send_frame(wsproto.CONT, b"second")
    f = conn.recv_frame()
    assert (f.opcode, f.payload) == (PONG, b"mid"), f
    assert conn.recv_message() == (TEXT, b"first second")


def test_unsolicited_pong_is_ignored(client):
    conn = client.open("/echo")
    conn.send_frame(PONG, b"unasked")
    conn.send_text("still here")
    assert conn.recv_message() == (TEXT, b"still here")


# ------------------------------------------------------------------ close

def test_close_1000_bye_raw(client):
    conn = client.open("/echo")
    conn.send_close(1000, "bye", chopped_write=True)
    conn.expect_close(1000)
    assert conn.wait_eof(10), "server kept TCP open after the close handshake"


def test_close_without_code(client):
    # An empty close body is legal (§5.5.1); the answer has no code or 1000.
    conn = client.open("/echo")
    conn.send_close()
    f = conn.recv_close()
    assert f.close_code in (None, 1000), f
    assert conn.wait_eof(10)


def test_close_1_byte_payload_is_1002(client):
    conn = client.open("/echo")
    conn.send_frame(CLOSE, b"\x03")
    conn.expect_close(1002)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016,
                                  2000, 2999, 5000, 65535])
def test_invalid_close_code_is_1002(client, code):
    conn = client.open("/echo")
    conn.send_close(code)
    conn.expect_close(1002)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1011,
                                  1014, 3000, 4000, 4999])
def test_valid_close_code_is_echoed(client, code):
    conn = client.open("/echo")
    conn.send_close(code, "reason \u00e9")
    conn.expect_close(code)
    assert conn.wait_eof(10)


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc3", b"\xed\xa0\x80",
                                    b"\xc0\xaf"],
                         ids=["ff", "truncated", "surrogate", "overlong"])
def test_close_reason_not_utf8_is_1007(client, reason):
    conn = client.open("/echo")
    conn.send_close(1000, reason)
    conn.expect_close(1007)


def test_close_with_125_byte_payload_is_echoed(client):
    conn = client.open("/echo")
    conn.send_close(4001, "r" * 123)
    conn.expect_close(4001)


def test_data_after_close_is_ignored(client):
    # After its close the client may send nothing more (§5.5.1); if it
    # does, the server must still finish the handshake with the same code.
    conn = client.open("/echo")
    conn.send(wsproto.encode_frame(CLOSE, wsproto.close_payload(3001))
              + wsproto.encode_frame(TEXT, b"late"))
    conn.expect_close(3001)


# ---------------------------------------------------------------- node ws

NODE_MESSAGES = [{"type": t, "size": n}
                 for n in (0, 1, 125, 126, 65535, 65536, 200000)
                 for t in ("text", "binary")]


def test_node_ws_round_trip_no_deflate(server):
    out = run_node_client(server, "/echo", NODE_MESSAGES,
                          options={"perMessageDeflate": False})
    assert out["opened"], out
    assert out["extensions"] == "", out
    bad = [r for r in out["results"] if not r["ok"]]
    assert not bad and len(out["results"]) == len(NODE_MESSAGES), out
    assert out["close_code"] == 1000, out
    assert out["error"] is None, out


def test_node_ws_round_trip_default_options(server):
    # ws offers permessage-deflate by default; whatever the server answers
    # (accept or ignore the offer), the echoes must come back intact.
    out = run_node_client(server, "/echo", NODE_MESSAGES)
    assert out["opened"], out
    bad = [r for r in out["results"] if not r["ok"]]
    assert not bad and len(out["results"]) == len(NODE_MESSAGES), out
    assert out["close_code"] == 1000, out


def test_node_ws_subprotocol(server):
    out = run_node_client(server, "/proto", [{"type": "text", "size": 10}],
                          options={"perMessageDeflate": False},
                          protocols=["a", "b"])
    assert out["protocol"] == "b", out
    assert out["close_code"] == 1000, out
