"""The chat handler (handlers/chat): rooms on topics, served by several
httpd children at once, JSON messages, names from the query string, rooms
from the query string, history, and a client that stops reading.

Each room is a topic, so its members may be on any child process. The
servers have several children and keep them: prefork with StartServers 4
(every open WebSocket holds a process of its own, so N clients are N
children: the strict proof that delivery crosses processes), and the
worker and event MPMs (event+ssl too) with exactly three children of 40
threads each (StartServers 3, ServerLimit 3). Which child serves a client
is read from /proc: the child that holds the server end of the client's
TCP connection. Timeout 3 bounds how long a write to a stalled client may
block.

- 50 python3-websockets clients in one room, spread over children (all 50
  under prefork, at least two otherwise), each send 3 messages: every
  client gets every message exactly once, each sender's in order; the
  joins of itself and every later client, the leaves of those who go.
- Names are percent-decoded, made valid UTF-8, cut at name_max characters
  (never inside one), escaped in valid JSON: ?name=%E2%9C%93%22x%22 is
  ✓"x", written as "✓\\"x\\"".
- ?room=NAME picks a room of the <Location> (its topic /loc/NAME, named in
  the welcome); rooms, the location's own room and the same room name in
  another <Location> hear nothing of each other, each across children,
  and each keeps its own history. A room= that is not 1-64 characters of
  [A-Za-z0-9_.-] refuses the handshake with 400; a <Location> whose
  WebSocketTopicPrefix excludes its rooms refuses with 500 and says why.
- A late joiner on another child than the speaker's gets the last
  `history` messages, which that child kept from the topic; `history 0`
  sends none.
- Over max_text, binary and empty messages: an error object, the
  connection stays; a message over WebSocketTopicMessageLimit once
  escaped: "message not sent".
- A client that never reads (4 KiB receive buffer) while three others chat
  4 KB messages: theirs keep arriving within a second, and the stalled one
  is closed with 1008 when its queue (WebSocketQueueLimit 1M,
  WebSocketQueuePolicy close-1008, which the chat's README asks for) is
  full, then leaves the room.
- With WebSocketRestartGrace (prefork, event), a member who joined before
  a graceful restart talks with one who joined after, on a new child.
- Two servers (event and worker) joined by a redis-server of the test's
  own: members on each are in one room, see each other join, talk and
  leave.
- Members that agreed on permessage-deflate with different parameters (the
  shared mode's default, a 10-bit window) and one without it each get a
  room message, compressed as each agreed; those with the same parameters
  get the same bytes.
"""

import asyncio
import json
import os
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
from helpers import VARIANTS, run_async

# Each open WebSocket holds a process under prefork (and a thread under
# worker and the blocking driver): room for the 50 clients of the fan-out
# and what the other tests hold. MaxSpareServers/MaxSpareThreads at the
# whole pool: no child is stopped for being idle during a test.
PREFORK = """
StartServers 4
MinSpareServers 4
MaxSpareServers 80
ServerLimit 80
MaxRequestWorkers 80
Timeout 3
"""

THREE_CHILDREN = """
StartServers 3
ServerLimit 3
ThreadLimit 40
ThreadsPerChild 40
MaxRequestWorkers 120
MinSpareThreads 1
MaxSpareThreads 120
Timeout 3
"""

GUEST_RE = re.compile(r"^guest-\d+$")


def chat_locations():
    chat = httpd.handler_path("chat")
    return """
<Location /fanout>
    WebSocketHandler {chat}
    WebSocketSetting history 0
    WebSocketQueuePolicy close-1008
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
<Location /rooms>
    WebSocketHandler {chat}
    WebSocketSetting history 5
</Location>
<Location /limits>
    WebSocketHandler {chat}
    WebSocketSetting max_text 16
</Location>
<Location /tiny>
    WebSocketHandler {chat}
    WebSocketTopicMessageLimit 100
</Location>
<Location /guarded>
    WebSocketHandler {chat}
    WebSocketTopicPrefix /elsewhere
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


@pytest.fixture(scope="module", params=VARIANTS, ids=[v[0] for v in VARIANTS])
def server(request):
    try:
        httpd.require_built("chat")
    except httpd.MissingArtifact as e:
        pytest.fail(str(e), pytrace=False)
    _, mpm, tls = request.param
    srv = make_server(mpm, tls, extra=chat_locations(),
                      server_config=PREFORK if mpm == "prefork"
                      else THREE_CHILDREN, name="chat-" + mpm)
    # Every child is up and on the topic bus before the first test.
    want = 4 if mpm == "prefork" else 3
    deadline = time.monotonic() + 10
    while len(srv.child_pids()) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(srv.child_pids()) >= want, srv.child_pids()
    time.sleep(0.5)
    yield srv
    try:
        srv.stop()
    finally:
        srv.cleanup(keep=KEEP)


# ------------------------------------------------------------ helpers

def serving_child(server, client_port):
    """The pid of the httpd child holding the server end of the TCP
    connection from 127.0.0.1:client_port, from /proc/net/tcp (its
    inode) and /proc/PID/fd; None if no child holds it."""
    local = "0100007F:%04X" % server.port
    remote = "0100007F:%04X" % client_port
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                inode = fields[9]
    if not inode or inode == "0":
        return None
    target = "socket:[%s]" % inode
    for pid in server.child_pids():
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                    return pid
            except OSError:
                continue
    return None


def child_of(server, ws):
    """The child serving a python3-websockets client (asserted found)."""
    pid = serving_child(server, ws.local_address[1])
    assert pid, "no httpd child holds the connection from port %d" % (
        ws.local_address[1])
    return pid


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


async def await_joins(ws, names, timeout=10, tries=None):
    """Read until the joins of every name in names have come (in any order:
    members on different children publish independently), each once; an
    earlier member's join still on its way may come too. tries maps names
    to the join_on() tries that put them in: the join of each try and the
    leave of all but the last, in any order. Anything else fails."""
    tries = tries or {}
    want = {n: tries.get(n, 1) for n in names}
    joins, leaves = {}, {}
    while any(joins.get(n, 0) < k or leaves.get(n, 0) < k - 1
              for n, k in want.items()):
        m = await recv_json(ws, timeout)
        counts = joins if m["type"] == "join" else leaves
        assert m["type"] in ("join", "leave"), (m, "while waiting for", want)
        counts[m["name"]] = counts.get(m["name"], 0) + 1
        assert joins.get(m["name"], 0) <= tries.get(m["name"], 1), (
            "join twice", m, joins)
        assert leaves.get(m["name"], 0) < tries.get(m["name"], 1), (
            "leave", m, leaves)
    return list(joins)


async def silent(ws, seconds=0.5):
    """Assert that nothing arrives for a while."""
    try:
        m = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError("expected silence, got %r" % m)


def name(i):
    return "c%02d" % i


# -------------------------------------------------------------- the room

def test_fifty_clients_across_children(server):
    n, per = 50, 3

    async def main():
        clients, pids = [], []
        try:
            for i in range(n):
                ws, welcome = await join(server, "/fanout?name=" + name(i))
                clients.append(ws)
                pids.append(child_of(server, ws))
                # history 0: no history object; no "online" either.
                assert welcome == {"type": "welcome", "name": name(i),
                                   "room": "/fanout"}
                # Let the async driver's children take turns accepting.
                if i % 5 == 4:
                    await asyncio.sleep(0.05)
            children = set(pids)
            if server.mpm == "prefork":
                assert len(children) == n, (
                    "prefork: %d clients on %d children" % (n, len(children)))
            else:
                assert len(children) >= 2, (
                    "all %d clients on one child %r" % (n, children))

            # Each client hears its own join and every later one; an
            # earlier one still on its way from another child may come
            # too (after it subscribed), but none twice. Every sender's
            # messages come in order, each exactly once.
            async def talk(i, ws):
                for j in range(per):
                    await ws.send("m%d from %s" % (j, name(i)))

            async def listen(i, ws):
                joins, msgs = [], []
                while len(msgs) < n * per:
                    m = await recv_json(ws, timeout=20)
                    if m["type"] == "join":
                        joins.append(m["name"])
                    else:
                        assert m["type"] == "message", (i, m)
                        msgs.append(m)
                # The last join may follow the first messages; all are in
                # before every message of that joiner.
                return joins, msgs

            results = await asyncio.gather(
                *[listen(i, ws) for i, ws in enumerate(clients)],
                *[talk(i, ws) for i, ws in enumerate(clients)])
            for i, (joins, msgs) in enumerate(results[:n]):
                assert len(joins) == len(set(joins)), (i, joins)
                assert set(joins) >= {name(k) for k in range(i, n)}, (
                    i, sorted(set(name(k) for k in range(i, n)) - set(joins)))
                for k in range(n):
                    texts = [m["text"] for m in msgs if m["from"] == name(k)]
                    assert texts == ["m%d from %s" % (j, name(k))
                                     for j in range(per)], (
                        "client %d (child %d) got from %s (child %d): %r"
                        % (i, pids[i], name(k), pids[k], texts))

            # Ten leave: everyone else hears each leave once.
            for ws in clients[:10]:
                await ws.close()
                assert ws.close_code == 1000
            for i, ws in enumerate(clients[10:], 10):
                joins, leaves = results[i][0], []
                while len(leaves) < 10:
                    m = await recv_json(ws)
                    if m["type"] == "join" and m["name"] not in joins:
                        joins.append(m["name"])     # a late earlier one
                        continue
                    assert m["type"] == "leave", (i, m)
                    leaves.append(m["name"])
                assert sorted(leaves) == [name(k) for k in range(10)], (
                    i, leaves)
            print("fan-out: %d clients on %d children" % (n, len(children)))
        finally:
            await asyncio.gather(*[ws.close() for ws in clients])

    run_async(main(), timeout=100)


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

        # The JSON itself, in a room of its own (the joins and leaves
        # above may still be on their way to /names): quotes escaped,
        # non-ASCII as it is, and the same name in the join notice and
        # the messages.
        ws = await connect(server, "/names?room=json&name=%E2%9C%93%22x%22")
        try:
            raw = await asyncio.wait_for(ws.recv(), 10)
            assert '"name":"\u2713\\"x\\""' in raw, raw
            assert json.loads(raw)["room"] == "/names/json", raw
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


# ----------------------------------------------------------------- rooms

async def join_on(server, path, avoid=(), want=None, tries=30):
    """join() until the client is on a child not in avoid (and in want,
    if given); the others are closed, after their join and before their
    leave. Returns (ws, welcome, pid); join_on.tries says how many it
    took."""
    for n in range(1, tries + 1):
        ws, welcome = await join(server, path)
        pid = child_of(server, ws)
        if pid not in avoid and (want is None or pid in want):
            join_on.tries = n
            return ws, welcome, pid
        await ws.close()
        await asyncio.sleep(0.02)
    raise AssertionError("%d tries at %s, never on a child outside %r%s"
                         % (tries, path, set(avoid),
                            "" if want is None else " in %r" % set(want)))


async def children_before_speaking(server, held):
    """The children running now, once they are on the topic bus and, under
    prefork, there are idle ones beside the `held` that open clients keep
    (MinSpareServers): the children that hear what is said next."""
    deadline = time.monotonic() + 10
    while (server.mpm == "prefork" and len(server.child_pids()) < held + 2
           and time.monotonic() < deadline):
        await asyncio.sleep(0.1)
    pids = set(server.child_pids())
    await asyncio.sleep(0.5)
    return pids


async def gather_until(ws, done, timeout=10):
    """Everything ws receives until done(received) is true."""
    got = []
    while not done(got):
        got.append(await recv_json(ws, timeout))
    return got


def count(got, kind, who):
    return sum(1 for m in got if m["type"] == kind and m.get("name") == who)


def said(got, who, text):
    return {"type": "message", "from": who, "text": text} in got


def test_rooms_from_the_query_string(server):
    async def main():
        opened = []
        try:
            # a1 and a2 in room a on different children, b in room b, m in
            # the location's own room, x in room a of another <Location>.
            a1, w, pa1 = await join_on(server, "/rooms?room=a&name=a1")
            opened.append(a1)
            assert w == {"type": "welcome", "name": "a1", "room": "/rooms/a"}
            # Percent-encoded, still room a.
            a2, w, pa2 = await join_on(server, "/rooms?name=a2&room=%61",
                                       avoid={pa1})
            opened.append(a2)
            tries = join_on.tries
            assert w["room"] == "/rooms/a", w
            others = []
            for path, room in (("/rooms?room=b&name=b", "/rooms/b"),
                               ("/rooms?name=m", "/rooms"),
                               ("/hist?room=a&name=x", "/hist/a")):
                ws, w = await join(server, path)
                opened.append(ws)
                others.append(ws)
                assert w["room"] == room, w
            for ws, who in zip(others, ("b", "m", "x")):
                assert (await recv_json(ws))["type"] == "history"
                assert await recv_json(ws) == {"type": "join", "name": who}
            before = await children_before_speaking(server, len(opened))

            await a2.send("to a")
            # a1 hears a2's tries come (and all but the last go, whichever
            # child they were on: in any order), and the message.
            got = await gather_until(a1, lambda g: said(g, "a2", "to a") and
                                     count(g, "join", "a2") == tries and
                                     count(g, "leave", "a2") == tries - 1)
            assert got[0]["type"] == "history", got
            assert got[1:].count({"type": "join", "name": "a1"}) == 1, got
            assert len(got) == 1 + 1 + tries + tries - 1 + 1, got
            # a2: its own join, maybe the last notices of its earlier tries.
            got = await gather_until(a2, lambda g: said(g, "a2", "to a"))
            assert got[0]["type"] == "history", got
            assert count(got, "join", "a2") >= 1, got
            assert all(m.get("name") == "a2" for m in got[1:-1]), got
            for ws, who, text in zip(others, ("b", "m", "x"),
                                     ("to b", "to the lobby", "to hist a")):
                await ws.send(text)
                assert await recv_json(ws) == {"type": "message",
                                               "from": who, "text": text}
            await asyncio.gather(*[silent(ws) for ws in opened])

            # Each room's history is its own, on any child that ran when
            # the room spoke.
            for path, text in (("/rooms?room=a", "to a"),
                               ("/rooms?room=b", "to b"),
                               ("/rooms", "to the lobby"),
                               ("/hist?room=a", "to hist a")):
                sep = "&" if "?" in path else "?"
                ws, _, _ = await join_on(server, path + sep + "name=late",
                                         want=before)
                hist = await recv_json(ws)
                await ws.close()
                assert [h["text"] for h in hist["messages"]] == [text], (
                    path, hist)
        finally:
            await asyncio.gather(*[ws.close() for ws in opened])

    run_async(main())


BAD_ROOMS = ["room=", "room=a%20b", "room=a+b", "room=" + "x" * 65,
             "room=a/b", "room=a%00", "room=caf%C3%A9", "room=%2E%2E%2F",
             "name=ok&room=a:b"]


def test_bad_room_names_are_refused(client):
    # A room= that is not a room name: 400, before anything is sent.
    for query in BAD_ROOMS:
        conn, resp, _ = client.handshake("/rooms?" + query)
        assert resp.status == 400, (query, resp)
        conn.close()
    # The longest and every allowed character; only the first room= counts.
    for query, room in (("room=" + "x" * 64, "x" * 64),
                        ("room=A.b-c_9&room=bad%20one", "A.b-c_9")):
        conn = client.open("/rooms?" + query)
        welcome = json.loads(conn.recv_message(10)[1])
        assert welcome["room"] == "/rooms/" + room, welcome
        conn.close()


def test_rooms_outside_the_topic_prefix_refuse(server, client):
    # WebSocketTopicPrefix /elsewhere: the chat cannot subscribe to
    # /guarded, refuses with 500 and says why in the error log.
    conn, resp, _ = client.handshake("/guarded?name=g")
    assert resp.status == 500, resp
    conn.close()
    assert ("chat: /guarded: cannot subscribe to the topic /guarded "
            "(WebSocketTopicPrefix must allow it") in server.error_log()


# ------------------------------------------------------ history, limits

def test_history_for_a_late_joiner_on_another_child(server):
    async def main():
        # Someone in another <Location>'s room of the same name: another
        # room, hears nothing.
        other, _ = await join(server, "/limits?room=late&name=else")
        await recv_json(other)                          # history
        await recv_json(other)                          # join
        a, welcome = await join(server, "/hist?room=late&name=ann")
        pa = child_of(server, a)
        before = await children_before_speaking(server, 2)
        assert welcome == {"type": "welcome", "name": "ann",
                           "room": "/hist/late"}
        assert await recv_json(a) == {"type": "history", "messages": []}
        assert await recv_json(a) == {"type": "join", "name": "ann"}
        for i in range(8):
            await a.send("h%d" % i)
        for i in range(8):
            assert await recv_json(a) == {"type": "message", "from": "ann",
                                          "text": "h%d" % i}
        await silent(other, 0.3)
        await other.close()
        # The other children hear the topic on the bus within a moment.
        await asyncio.sleep(1.0)
        # ben, on a child that ran while ann spoke (prefork starts more
        # as clients come), other than ann's, where nobody has been in
        # this room: what that child kept of the topic is the history.
        b, welcome, pb = await join_on(server, "/hist?room=late&name=ben",
                                       avoid={pa}, want=before)
        tries = join_on.tries
        assert welcome == {"type": "welcome", "name": "ben",
                           "room": "/hist/late"}
        assert await recv_json(b) == {"type": "history", "messages": [
            {"type": "message", "from": "ann", "text": "h%d" % i}
            for i in range(3, 8)]}, (pa, pb)
        assert await recv_json(b) == {"type": "join", "name": "ben"}
        await b.send("from another child")
        # ann hears every try come and all but the last go, in any order
        # (they were on different children), and the message; ben, the
        # message and perhaps the last notices of its earlier tries.
        got = await gather_until(a, lambda g: (
            said(g, "ben", "from another child") and
            count(g, "join", "ben") == tries and
            count(g, "leave", "ben") == tries - 1))
        assert len(got) == 2 * tries, got
        got = await gather_until(b, lambda g: said(g, "ben",
                                                   "from another child"))
        assert all(m.get("name") == "ben" for m in got[:-1]), got
        await b.close()
        assert await recv_json(a) == {"type": "leave", "name": "ben"}
        await silent(a, 0.3)
        await a.close()

    run_async(main())


def test_refused_messages_keep_the_connection(server):
    async def main():
        ws, _ = await join(server, "/limits?room=refused&name=lim")
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

        # WebSocketTopicMessageLimit 100: the object {"type":"message",
        # "from":"t","text":"..."} is 39 bytes and the text once escaped,
        # so 61 bytes of text fit and 62 do not, nor 11 control
        # characters (6 bytes each as \u0001).
        ws, _ = await join(server, "/tiny?room=refused&name=t")
        try:
            assert (await recv_json(ws))["type"] == "history"
            assert await recv_json(ws) == {"type": "join", "name": "t"}
            not_sent = {"type": "error", "text": "message not sent"}
            for text, answer in (("y" * 61, None), ("y" * 62, not_sent),
                                 ("\x01" * 10, None),
                                 ("\x01" * 11, not_sent), ("ok", None)):
                await ws.send(text)
                got = await recv_json(ws)
                assert got == (answer or {"type": "message", "from": "t",
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
                await await_joins(ws, ["f%d" % k for k in range(i, 3)])
            stalled_holder.append(open_stalled(server, "/slow?name=stalled"))
            for ws in fast:
                await await_joins(ws, ["stalled"])

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
                    elif m["type"] == "join":
                        pass        # an earlier member's, late
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
    # The room's message reaches each member through the topic, one shared
    # copy per process, compressed once per set of deflate parameters in
    # each. Members with the shared mode's default parameters, one that
    # asked for a 10-bit window and one without the extension each get
    # the message, compressed or not as each agreed; the two with the same
    # parameters get the same bytes (without context takeover, the same
    # message and parameters compress alike in any process).
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

        # Everyone is in once every later member's join reached it (in
        # any order, from any child).
        for i, (who, conn, ext) in enumerate(members):
            assert recv(who, conn, ext)[0]["type"] == "welcome"
            want = {w for w, _, _ in members[i:]}
            while want:
                m = recv(who, conn, ext)[0]
                assert m["type"] == "join", (who, m)
                want.discard(m["name"])
        text = "tick " + "0123456789abcdef" * 200
        members[0][1].send_text(text)
        raw = {}
        for who, conn, ext in members:
            m, raw[who] = recv(who, conn, ext)
            while m["type"] == "join":      # an earlier one, late
                m, raw[who] = recv(who, conn, ext)
            assert m == {"type": "message", "from": "a", "text": text}, (
                who, m)
        assert raw["a"] == raw["b"]
        assert len(raw["a"]) < len(text) // 5, len(raw["a"])
        assert len(raw["d"]) > len(text)
    finally:
        client.close_all()


# ------------------------------------------------- two hosts via Redis

def test_two_servers_share_a_room_through_redis():
    """Two httpd instances (event and worker, each its own 'host'), one
    redis-server: alice on one and bob on the other are in the same room,
    see each other join, and get each other's messages."""
    from test_topics import Redis
    redis = Redis()
    redis.start()
    conf = ("WebSocketRedis redis://127.0.0.1:%d\n" % redis.port
            + THREE_CHILDREN)
    servers = []
    try:
        for mpm in ("event", "worker"):
            servers.append(make_server(mpm, False, extra=chat_locations(),
                                       server_config=conf,
                                       name="chat-redis-" + mpm))
        for srv in servers:
            # Each of the three children logs its link coming up.
            deadline = time.monotonic() + 15
            while (srv.error_log().count("WS00110") < 3
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            assert srv.error_log().count("WS00110") >= 3, srv.variant
        a, b = servers

        async def main():
            alice, _ = await join(a, "/rooms?name=alice&room=hosts")
            assert (await recv_json(alice))["type"] == "history"
            await await_joins(alice, ["alice"])
            bob, welcome = await join(b, "/rooms?name=bob&room=hosts")
            assert welcome["room"] == "/rooms/hosts"
            assert (await recv_json(bob))["type"] == "history"
            await await_joins(bob, ["bob"])
            await await_joins(alice, ["bob"])
            await alice.send("hello from a")
            await bob.send("hello from b")
            # Alice's join left her host before bob subscribed on his, but
            # Redis may bring it there after: bob may hear it late, once.
            for ws, late in ((alice, []), (bob, ["alice"])):
                got = []
                while len(got) < 2:
                    m = await recv_json(ws)
                    if m["type"] == "join" and m["name"] in late:
                        late.remove(m["name"])
                        continue
                    got.append(m)
                texts = sorted((m.get("from"), m.get("text")) for m in got)
                assert texts == [("alice", "hello from a"),
                                 ("bob", "hello from b")], got
            await alice.close()
            left = await recv_json(bob)
            assert left == {"type": "leave", "name": "alice"}, left
            await bob.close()

        run_async(main(), timeout=60)
    finally:
        for srv in servers:
            srv.stop()
            srv.cleanup(keep=KEEP)
        redis.cleanup()


# ------------------------------------------------------ graceful restart

@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_a_room_spans_a_graceful_restart(mpm):
    """With WebSocketRestartGrace, a member who joined before `apachectl
    graceful` stays on the old generation's child and talks with one who
    joined a child of the new generation."""
    conf = "WebSocketRestartGrace 30s\n" + (PREFORK if mpm == "prefork"
                                             else THREE_CHILDREN)
    srv = make_server(mpm, False, extra=chat_locations(), server_config=conf,
                      name="chat-restart-" + mpm)
    try:
        async def before():
            alice, _ = await join(srv, "/rooms?name=alice&room=restart")
            assert (await recv_json(alice))["type"] == "history"
            await await_joins(alice, ["alice"])
            return alice

        async def after(alice):
            bob, _ = await join(srv, "/rooms?name=bob&room=restart")
            assert (await recv_json(bob))["type"] == "history"
            await await_joins(bob, ["bob"])
            await await_joins(alice, ["bob"])
            await alice.send("from the old generation")
            await bob.send("from the new one")
            for ws in (alice, bob):
                got = [await recv_json(ws) for _ in range(2)]
                assert sorted(m["text"] for m in got) == \
                    ["from the new one", "from the old generation"], got
            await bob.close()
            await alice.close()

        async def main():
            alice = await before()
            old = set(srv.child_pids())
            await asyncio.get_running_loop().run_in_executor(
                None, srv.graceful)
            await after(alice)
            return old

        old = run_async(main(), timeout=90)
        assert old, "no children before the restart"
    finally:
        srv.stop()
        srv.cleanup(keep=KEEP)
