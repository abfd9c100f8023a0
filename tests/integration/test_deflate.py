"""permessage-deflate (RFC 7692) through the module: negotiation in the
101 for each WebSocketDeflateMode, echoes through python3-websockets and
Node's `ws` with compression on, and hand-made compressed frames over raw
sockets for the rules clients do not break on their own (RSV1 placement,
corrupt data, bombs, UTF-8 after inflating, empty messages, context
takeover), plus offers that must be declined without refusing the
handshake.

The server has the shared locations plus one per deflate setting (below);
/echo is the default: deflate on, shared mode.
"""

import asyncio
import os
import random
import re
import zlib

import pytest
import websockets

import httpd
import wsproto
from conftest import KEEP, locations, make_server
from helpers import (MiB, VARIANTS, binary_of_size, run_async,
                     run_node_client, text_of_size)
from support import PUSHER_SO, require_pusher, rss_kib, wait_for
from wsproto import BINARY, CLOSE, CONT, PING, PONG, TEXT

RSV1 = 4        # the rsv argument of encode_frame: 0b100
TAIL = b"\x00\x00\xff\xff"

# What each mode answers to python3-websockets' default offer,
# "permessage-deflate; client_max_window_bits".
SHARED_RESPONSE = ("permessage-deflate; server_no_context_takeover; "
                   "client_no_context_takeover; client_max_window_bits=15")
DEDICATED_RESPONSE = "permessage-deflate; client_max_window_bits=15"
DEDICATED10_RESPONSE = ("permessage-deflate; server_max_window_bits=10; "
                        "client_max_window_bits=10")


def deflate_locations():
    echo = "WebSocketHandler %s" % httpd.handler_path("echo")
    return """
<Location /dedicated>
    {echo}
    WebSocketDeflateMode dedicated
</Location>
# Inherits dedicated mode from /dedicated; sets only the threshold.
<Location /dedicated/inner>
    WebSocketDeflateMinSize 0
</Location>
<Location /ten>
    {echo}
    WebSocketDeflateMode dedicated 10 4
    WebSocketDeflateLevel 9
</Location>
<Location /nodeflate>
    {echo}
    WebSocketDeflate off
</Location>
<Location /allsizes>
    {echo}
    WebSocketDeflateMinSize 0
</Location>
<Location /dallsizes>
    {echo}
    WebSocketDeflateMode dedicated
    WebSocketDeflateMinSize 0
</Location>
<Location /push>
    WebSocketHandler {pusher} pusher_plugin
    WebSocketDeflateMinSize 0
    WebSocketSetting greet hello-before-the-101
    WebSocketQueueLimit 64M
</Location>
""".format(echo=echo, pusher=PUSHER_SO)


@pytest.fixture(scope="module", params=VARIANTS, ids=[v[0] for v in VARIANTS])
def server(request):
    """One httpd per variant with the shared and the deflate locations."""
    _, mpm, tls = request.param
    srv = make_server(mpm, tls, extra=locations() + deflate_locations())
    yield srv
    try:
        srv.stop()
    finally:
        srv.cleanup(keep=KEEP)


@pytest.fixture
def client(server):
    c = wsproto.Client(server)
    yield c
    c.close_all()


# ------------------------------------------------------------- raw helpers

def compress(data, *, bits=15, level=6, obj=None):
    """One message's payload as §7.2.1 has a sender make it: raw DEFLATE
    ending with a sync flush whose 00 00 ff ff is removed."""
    c = obj or zlib.compressobj(level, zlib.DEFLATED, -bits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def recv_message(conn, inflater=None, timeout=20):
    """A whole message (opcode, payload, compressed?) from the server,
    inflating one with RSV1; pings answered. inflater: a decompressobj kept
    across messages (context takeover), or None for a fresh one each."""
    opcode, parts, rsv = None, [], 0
    while True:
        f = conn.recv_frame(timeout)
        if f.opcode == CLOSE:
            raise wsproto.Closed("close %s %r" % (f.close_code, f.payload))
        if f.opcode == PING:
            conn.send_frame(PONG, f.payload)
            continue
        if f.opcode == PONG:
            continue
        if opcode is None:
            assert f.opcode in (TEXT, BINARY), f
            assert f.rsv in (0, RSV1), f
            opcode, rsv = f.opcode, f.rsv
        else:
            assert f.opcode == CONT and f.rsv == 0, f
        parts.append(f.payload)
        if f.fin:
            break
    data = b"".join(parts)
    if rsv:
        d = inflater or zlib.decompressobj(-15)
        data = d.decompress(data + TAIL)
    return opcode, data, bool(rsv)


def open_deflate(client, path="/echo", offer="permessage-deflate"):
    """A raw connection that agreed to permessage-deflate; returns it and
    the response's extension header."""
    conn, resp, key = client.handshake(path, extensions=offer)
    wsproto.assert_upgraded(resp, key)
    ext = resp.get("sec-websocket-extensions")
    assert ext and ext.startswith("permessage-deflate"), resp
    return conn, ext


def connect(server, path="/echo", **kw):
    """python3-websockets with its default offer (compression on)."""
    kw.setdefault("origin", server.origin)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 10)
    kw.setdefault("max_size", 2 * MiB)
    if server.tls:
        kw["ssl"] = server.client_ssl_context()
    return websockets.connect(server.ws_url(path), **kw)


SIZES = [0, 1, 255, 256, 257, 1000, 65536, MiB - 64]
SIZE_IDS = ["0", "1", "255", "256", "257", "1000", "64K", "1MiB-64"]


def messages(kind):
    out = []
    for n in SIZES:
        out.append(text_of_size(n) if kind == "text" else binary_of_size(n))
    # Compressible in earnest: JSON-like text, the case deflate is for.
    out.append(('{"id": %d, "name": "sensor", "value": 21.5}, ' * 400)
               % tuple(range(400)) if kind == "text"
               else b"\x00\x01\x02\x03" * 50000)
    return out


# --------------------------------------------------- python3-websockets

@pytest.mark.parametrize("path,want", [
    ("/echo", SHARED_RESPONSE),
    ("/dedicated", DEDICATED_RESPONSE),
    ("/ten", DEDICATED10_RESPONSE),
])
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_websockets_echo_with_compression(server, path, want, kind):
    async def go():
        async with connect(server, path) as ws:
            got_ext = ws.response_headers.get("Sec-WebSocket-Extensions")
            assert got_ext == want
            assert [e.name for e in ws.extensions] == ["permessage-deflate"]
            for m in messages(kind):
                await ws.send(m)
                echo = await asyncio.wait_for(ws.recv(), 60)
                assert type(echo) is type(m) and echo == m, (
                    "echo of %d differs" % len(m))
            await ws.close(1000, "bye")
        return ws.close_code
    assert run_async(go(), timeout=120) == 1000


def test_websockets_many_connections_at_once(server):
    # Per-thread compressors: 16 connections compressing at the same time
    # on whatever threads serve them, each message different, each echo
    # checked. A compressor shared between two threads garbles output.
    async def one(i):
        async with connect(server, "/echo") as ws:
            rnd = random.Random(i)
            for j in range(40):
                m = ("conn %d msg %d " % (i, j)) * rnd.randint(20, 400)
                await ws.send(m)
                assert await asyncio.wait_for(ws.recv(), 60) == m
            await ws.close()

    async def go():
        await asyncio.gather(*(one(i) for i in range(16)))
    run_async(go(), timeout=120)


def test_websockets_offer_declined_where_deflate_is_off(server):
    async def go():
        async with connect(server, "/nodeflate") as ws:
            assert ws.response_headers.get("Sec-WebSocket-Extensions") is None
            assert ws.extensions == []
            await ws.send("x" * 5000)
            assert await ws.recv() == "x" * 5000
    run_async(go())


def test_plugin_thread_sends_are_compressed(server):
    # The pusher's own thread sends (flood), and on_open sends before the
    # 101 (greet): both compressed with the agreed parameters.
    require_pusher()

    async def go():
        async with connect(server, "/push") as ws:
            assert ws.response_headers.get(
                "Sec-WebSocket-Extensions") == SHARED_RESPONSE
            assert await asyncio.wait_for(ws.recv(), 20) == \
                "hello-before-the-101"
            await ws.send("flood 50 3000")
            sizes = []
            while True:
                m = await asyncio.wait_for(ws.recv(), 30)
                if isinstance(m, str):
                    break
                sizes.append(len(m))
            assert sizes == [3000] * 50, sizes
            assert m.startswith("flood queued=50 "), m
    run_async(go())


# ------------------------------------------------------------ Node ws

NODE_MESSAGES = [{"type": t, "size": n}
                 for n in (0, 1, 255, 256, 1024, 65536, 200000)
                 for t in ("text", "binary")]


@pytest.mark.parametrize("path", ["/echo", "/dedicated", "/ten"])
@pytest.mark.parametrize("threshold", [0, 1024])
def test_node_ws_with_per_message_deflate(server, path, threshold):
    out = run_node_client(server, path, NODE_MESSAGES,
                          options={"perMessageDeflate":
                                   {"threshold": threshold}})
    assert out["opened"], out
    assert out["extensions"] == "permessage-deflate", out
    bad = [r for r in out["results"] if not r["ok"]]
    assert not bad and len(out["results"]) == len(NODE_MESSAGES), out
    assert out["close_code"] == 1000, out
    assert out["error"] is None, out


# ---------------------------------------------------------- negotiation

@pytest.mark.parametrize("offer,want", [
    ("permessage-deflate", "permessage-deflate; server_no_context_takeover; "
                           "client_no_context_takeover"),
    # Chromium's and python3-websockets' offer.
    ("permessage-deflate; client_max_window_bits", SHARED_RESPONSE),
    ("x-webkit-deflate-frame, permessage-deflate",
     "permessage-deflate; server_no_context_takeover; "
     "client_no_context_takeover"),
    ("permessage-deflate; server_max_window_bits=10",
     "permessage-deflate; server_no_context_takeover; "
     "client_no_context_takeover; server_max_window_bits=10"),
    # The first offer is bad (unknown parameter), the second is taken.
    ("permessage-deflate; foo=1, permessage-deflate; client_max_window_bits",
     SHARED_RESPONSE),
])
def test_offer_accepted(client, offer, want):
    conn, ext = open_deflate(client, "/echo", offer)
    assert ext == want
    conn.send_frame(TEXT, compress(b"accepted " * 100), rsv=RSV1)
    assert recv_message(conn)[:2] == (TEXT, b"accepted " * 100)


@pytest.mark.parametrize("offer", [
    "permessage-deflate; foo",
    "permessage-deflate; client_no_context_takeover; "
    "client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=8",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=abc",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate;;",             # breaks the grammar
    "permessage-deflate, ,;x",          # so does this
    "x-webkit-deflate-frame",
], ids=["unknown", "duplicate", "server8", "server-bare", "server16",
        "leading-zero", "client7", "client-abc", "nct-value", "grammar",
        "grammar2", "other-extension"])
def test_bad_offer_declined_not_refused(client, offer):
    conn, resp, key = client.handshake("/echo", extensions=offer)
    wsproto.assert_upgraded(resp, key)
    assert resp.get("sec-websocket-extensions") is None, resp
    conn.send_text("plain")
    assert conn.recv_message() == (TEXT, b"plain")
    # Nothing was agreed, so RSV1 is a protocol error (§5.2).
    conn.send_frame(TEXT, compress(b"x" * 300), rsv=RSV1)
    conn.expect_close(1002)


def test_offers_split_over_two_header_lines(client):
    # Repeated Sec-WebSocket-Extensions lines are one list (RFC 9110 §5.3):
    # a bad offer on the first, a good one on the second.
    conn, resp, key = client.handshake(
        "/echo", extensions="permessage-deflate; nope",
        extra=(("Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits"),))
    wsproto.assert_upgraded(resp, key)
    assert resp.get("sec-websocket-extensions") == SHARED_RESPONSE, resp


def test_dedicated_window_bounds_the_client(client):
    # The client offered client_max_window_bits: bounded by the window set.
    conn, ext = open_deflate(client, "/ten",
                             "permessage-deflate; client_max_window_bits")
    assert ext == DEDICATED10_RESPONSE
    # Without that parameter the client may use 15 bits, and the server
    # must inflate with 15: a back-reference 20,000 bytes back works.
    conn, ext = open_deflate(client, "/ten", "permessage-deflate")
    assert ext == "permessage-deflate; server_max_window_bits=10"
    block = os.urandom(20000)
    conn.send_frame(BINARY, compress(block + block, bits=15), rsv=RSV1)
    # The server's own messages use a 10-bit window.
    op, data, compressed = recv_message(conn, zlib.decompressobj(-10))
    assert (op, data, compressed) == (BINARY, block + block, True)


def test_inner_section_inherits_the_mode(client):
    # The per-field merge: /dedicated/inner sets only the threshold, and
    # keeps /dedicated's mode.
    conn, ext = open_deflate(client, "/dedicated/inner",
                             "permessage-deflate; client_max_window_bits")
    assert ext == DEDICATED_RESPONSE
    conn.send_text("tiny")
    assert recv_message(conn, zlib.decompressobj(-15)) == (TEXT, b"tiny",
                                                          True)


@pytest.mark.parametrize("line,words", [
    ("WebSocketDeflate maybe", ["WebSocketDeflate"]),
    ("WebSocketDeflateMode both", ["WebSocketDeflateMode", "'both'"]),
    ("WebSocketDeflateMode dedicated 8", ["window bits '8'", "9 to 15"]),
    ("WebSocketDeflateMode dedicated 15 0", ["memory level '0'"]),
    ("WebSocketDeflateMode shared 15 8 1", ["WebSocketDeflateMode takes"]),
    ("WebSocketDeflateLevel 10", ["WebSocketDeflateLevel", "'10'"]),
    ("WebSocketDeflateLevel -1", ["WebSocketDeflateLevel", "'-1'"]),
    ("WebSocketDeflateMinSize 1KB", ["WebSocketDeflateMinSize", "'1KB'"]),
], ids=["flag", "mode", "bits", "memlevel", "args", "level", "level-neg",
        "minsize"])
def test_bad_directive_values_stop_httpd(line, words):
    srv = httpd.Httpd("event", name="deflate-conf", extra="""
<Location /x>
    WebSocketHandler %s
    %s
</Location>
""" % (httpd.handler_path("echo"), line))
    try:
        rc, out = srv.configtest()
    finally:
        srv.cleanup(keep=KEEP)
    assert rc != 0, out
    for w in words:
        assert w in out, out


def test_deflate_off_answers_no_extension(client):
    conn, resp, key = client.handshake("/nodeflate",
                                       extensions="permessage-deflate")
    wsproto.assert_upgraded(resp, key)
    assert resp.get("sec-websocket-extensions") is None, resp
    conn.send_frame(TEXT, compress(b"y" * 300), rsv=RSV1)
    conn.expect_close(1002)


# ------------------------------------------------------ frames, raw socket

def test_small_messages_go_uncompressed(client):
    # WebSocketDeflateMinSize 256 by default: 255 bytes go as they are.
    conn, _ = open_deflate(client)
    for n, want in ((255, False), (256, True), (5000, True)):
        conn.send_frame(TEXT, compress(b"s" * n), rsv=RSV1)
        assert recv_message(conn) == (TEXT, b"s" * n, want), n
    # An uncompressed message from the client is fine too (§6).
    conn.send_text("u" * 1000)
    assert recv_message(conn) == (TEXT, b"u" * 1000, True)


def test_log_line_counts_message_and_wire_bytes(server, client):
    # WS00001 counts message bytes before compression both ways, and with
    # permessage-deflate adds what went over the wire.
    offset = server.error_log_size()
    conn, _ = open_deflate(client)
    port = conn.sock.getsockname()[1]
    sent = compress(b"s" * 5000)
    conn.send_frame(TEXT, sent, rsv=RSV1)
    conn.send_text("u" * 100)
    got = []
    while len(got) < 2:
        f = conn.recv_frame(20)
        if f.opcode == TEXT:
            got.append(len(f.payload))
    assert got[0] < 100 and got[1] == 100, got
    conn.send_close(1000)
    conn.expect_close(1000)
    want = ("in 2 msgs 5100 bytes, out 2 msgs 5100 bytes, close 1000 by "
            "client, compressed %d bytes in, %d out"
            % (len(sent) + 100, got[0] + 100))

    def line():
        # This connection's line: others may close meanwhile.
        m = re.search(r"\[client [^\]]*:%d\] WS00001: websocket closed: .*"
                      % port, server.error_log_since(offset))
        return m and m.group(0)
    assert wait_for(line, 10), "no WS00001 line within 10 s"
    assert want in line(), (want, line())


def test_rsv1_on_a_continuation_is_1002(client):
    conn, _ = open_deflate(client)
    data = compress(b"z" * 2000)
    conn.send_frame(TEXT, data[:10], fin=False, rsv=RSV1)
    conn.send_frame(CONT, data[10:], rsv=RSV1)
    conn.expect_close(1002)


def test_rsv1_on_a_control_frame_is_1002(client):
    conn, _ = open_deflate(client)
    conn.send_frame(PING, b"p", rsv=RSV1)
    conn.expect_close(1002)


def test_fragmented_compressed_message_with_a_ping_between(client):
    conn, _ = open_deflate(client)
    text = text_of_size(30000).encode("utf-8")
    data = compress(text)
    cuts = [0, 1, 7, len(data) // 2, len(data) - 1, len(data)]
    for i in range(len(cuts) - 1):
        conn.send_frame(TEXT if i == 0 else CONT, data[cuts[i]:cuts[i + 1]],
                        fin=i == len(cuts) - 2, rsv=RSV1 if i == 0 else 0,
                        chopped_write=i == 1)
        if i == 2:
            conn.send_frame(PING, b"between")
    got = conn.recv_frame()
    assert (got.opcode, got.payload) == (PONG, b"between"), got
    assert recv_message(conn) == (TEXT, text, True)


def test_corrupt_deflate_data_is_1007(client):
    conn, _ = open_deflate(client)
    # BFINAL=1, BTYPE=11: a block type that does not exist.
    conn.send_frame(BINARY, b"\xff\xff\xff\xff", rsv=RSV1)
    conn.expect_close(1007)


def test_message_cut_inside_a_block_is_1007(client):
    conn, _ = open_deflate(client)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = c.compress(b"abc" * 1000) + c.flush(zlib.Z_FINISH)
    conn.send_frame(BINARY, data[:len(data) // 2], rsv=RSV1)
    conn.expect_close(1007)


def test_invalid_utf8_inside_compressed_text_is_1007(client):
    conn, _ = open_deflate(client)
    conn.send_frame(TEXT, compress(b"valid " * 100 + b"\xc0\xaf" + b"x" * 50),
                    rsv=RSV1)
    conn.expect_close(1007)


@pytest.mark.parametrize("path", ["/allsizes", "/dallsizes"])
def test_empty_compressed_messages(client, path):
    # §7.2.3.6's single 0x00, an empty payload, and zlib's own empty
    # message; in each mode the server answers an empty message with the
    # 0x00 (WebSocketDeflateMinSize 0 compresses even that).
    conn, ext = open_deflate(client, path)
    takeover = "no_context" not in ext
    inflater = zlib.decompressobj(-15) if takeover else None
    sender = zlib.compressobj(6, zlib.DEFLATED, -15) if takeover else None
    for payload in (b"\x00", b"", compress(b"", obj=sender)):
        conn.send_frame(TEXT, payload, rsv=RSV1)
        assert recv_message(conn, inflater) == (TEXT, b"", True)
    # And a message after them still inflates, in step with the context.
    conn.send_frame(TEXT, compress(b"after " * 100, obj=sender), rsv=RSV1)
    assert recv_message(conn, inflater) == (TEXT, b"after " * 100, True)


def test_context_takeover_in_dedicated_mode(client):
    # No no_context_takeover either way: each side's second message may
    # refer back into the first, and must be inflated with that context.
    conn, ext = open_deflate(client, "/dedicated")
    assert "no_context_takeover" not in ext
    sender = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflater = zlib.decompressobj(-15)
    block = os.urandom(3000)
    first, second = compress(block, obj=sender), compress(block, obj=sender)
    assert len(second) < 100        # a back-reference into the first
    conn.send_frame(BINARY, first, rsv=RSV1)
    assert recv_message(conn, inflater) == (BINARY, block, True)
    conn.send_frame(BINARY, second, rsv=RSV1)
    f = conn.recv_frame()
    assert f.rsv == RSV1 and len(f.payload) < 100, f
    assert inflater.decompress(f.payload + TAIL) == block


def test_no_context_takeover_in_shared_mode(client):
    # Each of the server's messages inflates on its own.
    conn, ext = open_deflate(client, "/echo")
    assert "server_no_context_takeover" in ext
    block = os.urandom(3000)
    for _ in range(3):
        conn.send_frame(BINARY, compress(block), rsv=RSV1)
        assert recv_message(conn, None) == (BINARY, block, True)


def _max_growth(before, after):
    """The largest RSS growth (KiB) of a process alive in both readings."""
    return max((after[p] - before[p] for p in before if p in after),
               default=0)


def test_decompression_bomb_is_1009_without_inflating_it(server, client):
    # 50 MiB of zeros in about 50 KB against the 1 MiB message limit: 1009,
    # and the server does not inflate (nor hold) much more than the limit.
    zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = b"".join(zeros.compress(b"\x00" * MiB) for _ in range(50))
    bomb += zeros.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]
    assert len(bomb) < 60000
    conn, _ = open_deflate(client)
    conn.send_frame(TEXT, b"warm " * 100)
    recv_message(conn)
    before = rss_kib(server.child_pids())
    for _ in range(3):
        conn, _ = open_deflate(client)
        conn.send_frame(BINARY, bomb, rsv=RSV1)
        conn.expect_close(1009)
    after = rss_kib(server.child_pids())
    growth = _max_growth(before, after)
    print("bomb: %d bytes on the wire, largest child RSS growth %d KiB"
          % (len(bomb), growth))
    assert growth < 6 * 1024, (before, after)


def test_bomb_split_over_many_frames_is_1009(client):
    zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = zeros.compress(b"\x00" * (4 * MiB)) + zeros.flush(zlib.Z_SYNC_FLUSH)
    data = data[:-4]
    conn, _ = open_deflate(client)
    step = 500
    parts = [data[i:i + step] for i in range(0, len(data), step)]
    out = b""
    for i, p in enumerate(parts):
        out += wsproto.encode_frame(TEXT if i == 0 else CONT, p,
                                    fin=i == len(parts) - 1,
                                    rsv=RSV1 if i == 0 else 0)
    try:
        conn.send(out)
    except OSError:
        pass        # the server may close before reading all of it
    conn.expect_close(1009)
