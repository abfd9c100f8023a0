"""The async driver over TLS: parked wss connections (mod_ssl) on the event
MPM.

The same driver as test_async.py, with mod_ssl between the module and the
socket: what the reactor and plugin threads write to a parked connection
goes through mod_ssl's output filter, and what the client sends may sit
decrypted or undecrypted in mod_ssl's and the core's input buffers, where
no poll reports it. Every location sets `WebSocketDriver async` itself (so
run.sh's blocking pass changes nothing here) and no test name says
"event". On an httpd older than 2.4.63 they skip, saying so.

- test_parked_wss_connections_hold_no_thread: 300 wss connections on one
  child of 8 worker threads; the child's thread count, read from /proc
  while they open and while all are open, stays what it was before (8
  workers plus main, listener, reactor, bus and the pusher's thread); every
  WS00022 line says "async driver"; then each echoes and closes with 1000
  and TCP follows.
- test_broadcast_reaches_parked_wss_connections: 300 parked wss members of
  /bcast receive "b 0" .. "b 19" from the pusher plugin's thread, each all
  20 in order, without sending anything.
- test_large_push_to_parked_wss_connection: "flood 64 65536" (4 MiB, queue
  limit 8M) to a parked wss connection whose client has a small receive
  buffer and reads nothing for 1 s, on a server whose socket send buffer
  is capped (SendBufferSize 64K), so that most of it waits in the server
  process (checked from FIONREAD and /proc/net/tcp); meanwhile the
  plugin's thread serves "push 3" on another connection at once (the
  stalled connection does not block it); then the client only reads: all
  64 messages arrive intact, then "flood queued=64 refused=0 gone=0",
  promptly.
- test_pushes_cut_at_the_pass_budget_arrive_intact: 24 rounds of "flood
  300 SIZE" with SIZE 3000..6000 bytes, so the driver's 32 KiB passes end
  inside payloads: every message arrives intact, the child does not crash
  and the close is 1000.
- test_pings_reach_parked_wss_connections: /ka (pings every 500 ms, idle
  close at 3 s) on 2 x 20 parked wss connections: the silent half gets
  pings every ~500 ms, then 1001 at 3 s and TCP closed behind it; the half
  that answers pings stays open past 3 s and still echoes.
- test_tls_records_in_one_segment: the client's TLS runs in memory
  (ssl.MemoryBIO over a plain socket), so the test chooses the records and
  the TCP writes: 50 frames in 50 records in one sendall(); one frame and
  one fragmented message split across records; 50 frames cut into 13-byte
  records. Each batch must be echoed within a few seconds (the next ping
  is 30 s away), i.e. all the records that arrived together are processed
  before the connection parks. Last, 20 frames and a close in 21 records
  in one sendall(): close 1000 and TCP closed promptly, and the server's
  WS00001 line counts all 20 messages in (their echoes may be dropped: a
  peer's close drops queued messages not yet started, as documented).
- test_tls_records_pipelined_with_the_upgrade: the upgrade request and 50
  frames (51 records) in one sendall(): the 101 and all 50 echoes come
  promptly (the frames wait in mod_ssl's buffers across the hand-over from
  the request to the driver).

Clients: TlsSwarm (below) is test_async.py's Swarm with TLS in memory BIOs
on non-blocking sockets and one epoll selector; MemTlsConn is wsproto's
RawConn with the same in-memory TLS over a blocking socket.
"""

import errno
import fcntl
import os
import re
import selectors
import socket
import ssl
import struct
import termios
import time

import wsproto
from support import PUSHER_SO, flood_payload, wait_for
from test_async import (EXTRA_THREADS_PER_CHILD, async_locations, command,
                        controls_per_child, crash_lines, driver_lines,
                        event_mpm, fields, report, reply, servers,
                        thread_counts)  # noqa: F401
from wsproto import BINARY, CLOSE, CONT, PING, PONG, TEXT

# The vhost Timeout of these servers (event_mpm's default): the async
# driver pings parked connections every Timeout/2 = 30 s, far beyond every
# wait below, so no ping can be what gets a stuck connection moving.
TIMEOUT = 60


# ---------------------------------------------------- in-memory TLS

def tls_records(data):
    """[(content type, length)] of the TLS records in ciphertext bytes."""
    out, i = [], 0
    while i + 5 <= len(data):
        ctype, _, length = struct.unpack_from("!BHH", data, i)
        out.append((ctype, length))
        i += 5 + length
    assert i == len(data), "ciphertext does not end on a record boundary"
    return out


class MemTlsConn(wsproto.RawConn):
    """A wss client connection whose TLS runs in memory (ssl.MemoryBIO)
    over a plain blocking socket, so the test decides which plaintext
    goes into which TLS record (seal()) and which records go out in one
    TCP write (send_raw()). Reading is RawConn's, over the decrypted
    stream."""

    def __init__(self, server, *, rcvbuf=None, timeout=10.0):
        self.timeout = timeout
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        sock.connect((server.host, server.port))
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.raw_eof = False
        self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = server.client_ssl_context().wrap_bio(
            self.inc, self.outg, server_hostname=server.host)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not self._recv_raw(deadline):
                    raise wsproto.Closed("EOF during the TLS handshake")
        self._flush()

    def _flush(self):
        data = self.outg.read()
        if data:
            self.sock.sendall(data)

    def seal(self, pieces):
        """Ciphertext of one TLS record per piece of plaintext."""
        for p in pieces:
            self.tls.write(p)
        return self.outg.read()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, data):
        self.send_raw(self.seal([data]))

    def _recv_raw(self, deadline):
        """Move what the socket has into the TLS object; False on EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.raw_eof = True
            self.inc.write_eof()
            return False
        self.inc.write(data)
        return True

    def _fill(self, deadline):
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                if self.raw_eof:    # EOF inside a record
                    self.eof = True
                    return False
                self._recv_raw(deadline)
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                data = b""
            if not data:            # close_notify (or TCP EOF)
                self.eof = True
                return False
            self.buf += data
            return True

    def bytes_unread(self):
        """Ciphertext bytes in this socket's kernel receive queue."""
        return struct.unpack("i", fcntl.ioctl(
            self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def open_mem(server, path, **kw):
    """A MemTlsConn that completed its WebSocket handshake (asserted)."""
    conn = MemTlsConn(server, **kw)
    key = wsproto.make_key()
    resp = conn.handshake(wsproto.build_request(
        path, server.hostport, key=key, origin=server.origin),
        chopped_write=False)
    wsproto.assert_upgraded(resp, key)
    return conn


# ---------------------------------------------------- the TLS swarm

class TlsSwarmConn:
    __slots__ = ("idx", "sock", "tls", "inc", "outg", "key", "state", "buf",
                 "out", "msgs", "pings", "close_code", "close_at", "eof",
                 "eof_at", "opened_at", "error", "answer_pings",
                 "reply_close")

    CONNECTING, TLS, HANDSHAKE, OPEN, DONE = range(5)

    def __init__(self, idx):
        self.idx = idx
        self.sock = self.tls = None
        self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.key = wsproto.make_key()
        self.state = self.CONNECTING
        self.buf = bytearray()  # plaintext not parsed yet
        self.out = bytearray()  # ciphertext not sent yet
        self.msgs = []          # (opcode, payload) of data messages
        self.pings = []         # arrival times
        self.close_code = None  # of the server's close frame
        self.close_at = None
        self.eof = False
        self.eof_at = None
        self.opened_at = None
        self.error = None
        self.answer_pings = False
        self.reply_close = True


class TlsSwarm:
    """Many wss connections to one server: test_async.Swarm with TLS in
    memory BIOs, on non-blocking sockets and one epoll selector. Nothing
    is sent but what a test asks for (pongs only where answer_pings is
    set, and the close reply where reply_close is)."""

    def __init__(self, server, path, answer_pings=False, reply_close=True):
        self.server = server
        self.path = path
        self.ctx = server.client_ssl_context()
        assert self.ctx is not None, "not a TLS server"
        self.answer_pings = answer_pings
        self.reply_close = reply_close
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.n_open = self.n_failed = self.n_msgs = 0
        self.n_closes = self.n_eof = 0

    # -- plumbing

    def _register(self, c, events):
        try:
            self.sel.modify(c.sock, events, c)
        except KeyError:
            self.sel.register(c.sock, events, c)

    def _events(self, c):
        if c.state == TlsSwarmConn.CONNECTING:
            return selectors.EVENT_WRITE
        return selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)

    def _fail(self, c, why):
        if c.error is None:
            c.error = why
            if c.state in (TlsSwarmConn.CONNECTING, TlsSwarmConn.TLS,
                           TlsSwarmConn.HANDSHAKE):
                self.n_failed += 1
        self._drop(c)

    def _drop(self, c):
        if c.sock is not None:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
            c.sock = None
        if not c.eof:
            c.eof = True
            c.eof_at = time.monotonic()
            self.n_eof += 1
        c.state = TlsSwarmConn.DONE

    def _write(self, c):
        if c.sock is None:
            return
        c.out += c.outg.read()
        try:
            while c.out:
                n = c.sock.send(c.out)
                del c.out[:n]
        except BlockingIOError:
            pass
        except OSError as e:
            self._fail(c, "send: %s" % e)
            return
        self._register(c, self._events(c))

    def queue(self, c, data):
        """Send plaintext on c (one TLS record) now, or as soon as its
        socket takes it."""
        if c.sock is None:
            return
        try:
            c.tls.write(data)
        except ssl.SSLError:
            return              # TLS already shut down by the server
        self._write(c)

    def _start(self, c):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sock = s
        c.tls = self.ctx.wrap_bio(c.inc, c.outg,
                                  server_hostname=self.server.host)
        c.answer_pings = self.answer_pings
        c.reply_close = self.reply_close
        rc = s.connect_ex((self.server.host, self.server.port))
        if rc not in (0, errno.EINPROGRESS):
            self._fail(c, "connect: %s" % os.strerror(rc))
            return
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def _tls_step(self, c):
        """Advance the TLS handshake; once done, send the upgrade."""
        try:
            c.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLError, OSError) as e:
            self._fail(c, "TLS handshake: %s" % e)
            return
        else:
            c.state = TlsSwarmConn.HANDSHAKE
            c.tls.write(wsproto.build_request(
                self.path, self.server.hostport, key=c.key,
                origin=self.server.origin))
        self._write(c)

    def _on_writable(self, c):
        if c.state == TlsSwarmConn.CONNECTING:
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(c, "connect: %s" % os.strerror(err))
                return
            c.state = TlsSwarmConn.TLS
            self._tls_step(c)
            return
        self._write(c)

    def _on_readable(self, c):
        eof = False
        try:
            while True:
                data = c.sock.recv(65536)
                if not data:
                    eof = True
                    break
                c.inc.write(data)
                if len(data) < 65536:
                    break
        except BlockingIOError:
            pass
        except OSError as e:
            if c.state != TlsSwarmConn.OPEN:
                self._fail(c, "recv: %s" % e)
                return
            eof = True          # a reset after the close counts as EOF
        if eof:
            c.inc.write_eof()
        if c.state == TlsSwarmConn.TLS:
            self._tls_step(c)
            if c.state == TlsSwarmConn.TLS:
                if eof:
                    self._fail(c, "EOF during the TLS handshake")
                return
        try:
            while True:
                data = c.tls.read(65536)
                if not data:
                    eof = True  # close_notify
                    break
                c.buf += data
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            eof = True
        except ssl.SSLError as e:
            if c.state != TlsSwarmConn.OPEN:
                self._fail(c, "TLS: %s" % e)
                return
            eof = True
        if c.outg.pending:
            self._write(c)
        if c.state == TlsSwarmConn.HANDSHAKE:
            end = c.buf.find(b"\r\n\r\n")
            if end < 0:
                if eof:
                    self._fail(c, "EOF before the 101: %r" % bytes(c.buf))
                return
            resp = wsproto.parse_response_head(bytes(c.buf[:end]))
            del c.buf[:end + 4]
            try:
                wsproto.assert_upgraded(resp, c.key)
            except AssertionError as e:
                self._fail(c, str(e))
                return
            c.state = TlsSwarmConn.OPEN
            c.opened_at = time.monotonic()
            self.n_open += 1
        self._parse(c)
        if eof:
            self._drop(c)

    def _parse(self, c):
        buf = c.buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            if b1 & 0x80:
                raise wsproto.ProtocolViolation("masked server frame")
            n, head = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, head = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, head = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < head + n:
                return
            op = b0 & 0x0F
            payload = bytes(buf[head:head + n])
            del buf[:head + n]
            if op in (TEXT, BINARY):
                if not b0 & 0x80:
                    raise wsproto.ProtocolViolation("unexpected fragment")
                c.msgs.append((op, payload))
                self.n_msgs += 1
            elif op == PING:
                c.pings.append(time.monotonic())
                if c.answer_pings:
                    self.queue(c, wsproto.encode_frame(PONG, payload))
            elif op == CLOSE:
                if c.close_code is None:
                    c.close_code = (struct.unpack("!H", payload[:2])[0]
                                    if len(payload) >= 2 else 1005)
                    c.close_at = time.monotonic()
                    self.n_closes += 1
                    if c.reply_close:
                        self.queue(c, wsproto.encode_frame(
                            CLOSE, wsproto.close_payload(c.close_code)))
            elif op != PONG:
                raise wsproto.ProtocolViolation("opcode %#x" % op)

    # -- driving

    def pump(self, timeout=0.05):
        for key, mask in self.sel.select(timeout):
            c = key.data
            if c.sock is None:
                continue
            if mask & selectors.EVENT_WRITE:
                self._on_writable(c)
            if c.sock is not None and mask & selectors.EVENT_READ:
                self._on_readable(c)

    def wait(self, predicate, timeout, what):
        """Pump until predicate() or fail after timeout saying what."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise AssertionError("%s: not done in %.0f s (%s)"
                                     % (what, timeout, self.summary()))
            self.pump(min(0.05, max(0.001, deadline - time.monotonic())))

    def run_for(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump(min(0.05, max(0.001, deadline - time.monotonic())))

    def open(self, n, timeout, max_inflight=64, between=None):
        """Open n more connections (TLS and WebSocket handshakes), at most
        max_inflight at a time; between() is called every round."""
        first = len(self.conns)
        open0, failed0 = self.n_open, self.n_failed
        started = 0
        deadline = time.monotonic() + timeout
        while True:
            done = (self.n_open - open0) + (self.n_failed - failed0)
            if done >= n:
                break
            while started < n and started - done < max_inflight:
                c = TlsSwarmConn(first + started)
                self.conns.append(c)
                started += 1
                self._start(c)
            if time.monotonic() >= deadline:
                raise AssertionError("opening %d wss connections: not done "
                                     "in %.0f s (%s)" % (n, timeout,
                                                         self.summary()))
            self.pump(0.02)
            if between:
                between()
        failed = [c for c in self.conns[first:] if c.error]
        assert not failed, "%d of %d wss connections failed to open: %s" % (
            len(failed), n, sorted({c.error for c in failed})[:5])

    def open_conns(self):
        return [c for c in self.conns if c.state == TlsSwarmConn.OPEN]

    def clear_msgs(self):
        for c in self.conns:
            c.msgs = []
        self.n_msgs = 0

    def echo_all(self, timeout):
        """Every open connection sends one text message of its own and
        must get exactly it back."""
        conns = self.open_conns()
        self.clear_msgs()
        for c in conns:
            self.queue(c, wsproto.encode_frame(TEXT, b"echo %d" % c.idx))
        self.wait(lambda: self.n_msgs >= len(conns), timeout,
                  "echo on %d wss connections" % len(conns))
        bad = [c.idx for c in conns if c.msgs != [(TEXT, b"echo %d" % c.idx)]]
        assert not bad, "wrong echo on %d connections, e.g. #%d: %r" % (
            len(bad), bad[0], self.conns[bad[0]].msgs[:3])
        self.clear_msgs()

    def close_all(self, timeout, code=1000):
        """Send a close to every open connection; each must answer with
        the same code and then close TCP."""
        conns = self.open_conns()
        for c in conns:
            c.reply_close = False
            self.queue(c, wsproto.encode_frame(
                CLOSE, wsproto.close_payload(code)))
        self.wait(lambda: all(c.eof for c in conns), timeout,
                  "close handshake and TCP close on %d wss connections"
                  % len(conns))
        bad = [c.close_code for c in conns if c.close_code != code]
        assert not bad, "%d connections closed with %s, not %d" % (
            len(bad), sorted(set(bad), key=str)[:5], code)

    def reset_all(self):
        for c in self.conns:
            self._drop(c)
        self.sel.close()

    def summary(self):
        return ("open %d, failed %d, msgs %d, closes %d, eof %d of %d"
                % (self.n_open, self.n_failed, self.n_msgs, self.n_closes,
                   self.n_eof, len(self.conns)))


def tls_server(servers, name, threads, extra=None, server_config=""):
    """A started one-child event-MPM httpd with mod_ssl and the async
    locations (plus extra), via test_async's servers fixture."""
    return servers(name, event_mpm(servers=1, threads=threads, factor=100,
                                   timeout=TIMEOUT) + server_config,
                   extra=async_locations() + (extra or ""), tls=True)


def tcp_queues():
    """{(local port, remote port): (send queue, receive queue)} of the
    IPv4 TCP sockets in this network namespace (/proc/net/tcp)."""
    out = {}
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fl = line.split()
            lp = int(fl[1].split(":")[1], 16)
            rp = int(fl[2].split(":")[1], 16)
            tx, rx = (int(x, 16) for x in fl[4].split(":"))
            out[(lp, rp)] = (tx, rx)
    return out


# ================================================ 1: parked, no thread

N_PARKED = 300
PARKED_THREADS = 8


def test_parked_wss_connections_hold_no_thread(servers, capsys):
    srv = tls_server(servers, "async-tls-parked", PARKED_THREADS)
    children = srv.child_pids()
    assert len(children) == 1, children
    base = thread_counts(children)
    limit = PARKED_THREADS + EXTRA_THREADS_PER_CHILD
    assert sum(base.values()) <= limit, base
    offset = srv.error_log_size()
    peak = {"threads": sum(base.values()), "children": set(children)}

    def sample():
        pids = srv.child_pids()
        peak["children"] |= set(pids)
        peak["threads"] = max(peak["threads"],
                              sum(thread_counts(pids).values()))

    swarm = TlsSwarm(srv, "/echo")
    try:
        t0 = time.monotonic()
        # Fewer handshakes at a time than the threads: if parked
        # connections held threads, the child would run out of them.
        swarm.open(N_PARKED, timeout=45, max_inflight=PARKED_THREADS // 2,
                   between=sample)
        t_open = time.monotonic() - t0
        # Let every connection settle into the MPM, sampling meanwhile.
        for _ in range(10):
            swarm.pump(0.05)
            sample()
        during = thread_counts(srv.child_pids())
        # Before the echo burst, which may keep every thread busy at
        # once on a loaded machine (and httpd would say so).
        opening_log = srv.error_log_since(offset)
        assert swarm.n_open == N_PARKED, swarm.summary()
        assert all(not c.eof for c in swarm.conns), swarm.summary()
        t0 = time.monotonic()
        swarm.echo_all(timeout=30)
        t_echo = time.monotonic() - t0
        sample()
        t0 = time.monotonic()
        swarm.close_all(timeout=30)
        t_close = time.monotonic() - t0
    finally:
        swarm.reset_all()
    n_async, n_blocking = driver_lines(srv, offset)
    report(capsys, "%d parked wss connections on 1 child x %d threads: "
           "threads before %d, with all open %d (peak %d, limit %d); "
           "WS00022 async %d, blocking %d; open %.2fs, echo %.2fs, close "
           "%.2fs" % (N_PARKED, PARKED_THREADS, sum(base.values()),
                      sum(during.values()), peak["threads"], limit, n_async,
                      n_blocking, t_open, t_echo, t_close))
    assert n_async == N_PARKED and n_blocking == 0, (
        "WS00022: %d async, %d blocking of %d" % (n_async, n_blocking,
                                                  N_PARKED))
    assert peak["children"] == set(children), (
        "children changed: %s -> %s" % (children, sorted(peak["children"])))
    assert peak["threads"] <= sum(base.values()), (
        "the child ran %d threads with %d wss connections open (%d before)"
        % (peak["threads"], N_PARKED, sum(base.values())))
    assert sum(during.values()) == sum(base.values()), (base, during)
    # AH00484, no idle thread at all (not AH10159, fewer idle than
    # MinSpareThreads, which one handshake in progress can cause).
    assert "reached MaxRequestWorkers" not in opening_log


# ================================================ 2: broadcast

N_BCAST_MSGS = 20


def test_broadcast_reaches_parked_wss_connections(servers, capsys):
    srv = tls_server(servers, "async-tls-bcast", PARKED_THREADS)
    children = srv.child_pids()
    controls = controls_per_child(srv, children)
    offset = srv.error_log_size()
    swarm = TlsSwarm(srv, "/bcast")
    try:
        swarm.open(N_PARKED, timeout=45)
        swarm.run_for(0.3)      # parked, all of them
        members = {pid: int(command(conn, "members", b"members").split()[1])
                   for pid, conn in controls.items()}
        assert sum(members.values()) == N_PARKED, members
        t0 = time.monotonic()
        for conn in controls.values():
            conn.send_text("broadcast %d" % N_BCAST_MSGS)
        results = {pid: fields(reply(conn, b"broadcast done", 30))
                   for pid, conn in controls.items()}
        swarm.wait(lambda: swarm.n_msgs >= N_PARKED * N_BCAST_MSGS, 30,
                   "%d broadcast messages to each of %d wss connections"
                   % (N_BCAST_MSGS, N_PARKED))
        t_all = time.monotonic() - t0
        swarm.run_for(0.2)      # nothing more may come
        expected = [(TEXT, b"b %d" % i) for i in range(N_BCAST_MSGS)]
        bad = [c for c in swarm.conns if c.msgs != expected]
        assert not bad, "%d connections got a wrong sequence, e.g. #%d: %r" % (
            len(bad), bad[0].idx, bad[0].msgs[:25])
        assert all(not c.pings and not c.eof for c in swarm.conns)
        swarm.close_all(timeout=30)
    finally:
        swarm.reset_all()
        for conn in controls.values():
            conn.close()
    n_async, n_blocking = driver_lines(srv, offset)
    totals = {k: sum(r[k] for r in results.values())
              for k in ("members", "queued", "refused", "gone")}
    report(capsys, "broadcast of %d messages to %d parked wss connections: "
           "all delivered in %.2fs; plugin sends: %s; WS00022 async %d, "
           "blocking %d" % (N_BCAST_MSGS, N_PARKED, t_all, totals, n_async,
                            n_blocking))
    assert n_async == N_PARKED and n_blocking == 0, (n_async, n_blocking)
    assert totals["queued"] == N_PARKED * N_BCAST_MSGS, totals


# ================================================ 3: a large push

FLOOD_N = 64
FLOOD_SIZE = 65536
FLOOD_LOCATION = """
<Location /flood>
    WebSocketHandler {so} pusher_plugin
    WebSocketDriver async
    WebSocketQueueLimit 8M
</Location>
""".format(so=PUSHER_SO)


def test_large_push_to_parked_wss_connection(servers, capsys):
    # 4 MiB pushed from the pusher's thread to a parked wss connection
    # whose client (64K receive buffer) reads nothing for a second. The
    # server's socket buffer is capped too (SendBufferSize; on loopback it
    # would otherwise grow to 4 MiB and take it all), so most of it must
    # wait in the server process (the module's queue, mod_ssl, the core
    # output filter) while the connection stays parked, and go out as the
    # client reads, with nothing else from the client: no ping is due
    # before 30 s. Meanwhile the plugin's thread, which made the sends,
    # must be free: a "push 3" on another connection is served at once.
    srv = tls_server(servers, "async-tls-flood", 4, extra=FLOOD_LOCATION,
                     server_config="SendBufferSize 65536\n")
    offset = srv.error_log_size()
    total = FLOOD_N * FLOOD_SIZE
    conn = open_mem(srv, "/flood", rcvbuf=65536)
    ctl = open_mem(srv, "/ctl")
    try:
        port = conn.sock.getsockname()[1]
        time.sleep(0.3)         # parked
        conn.send_text("flood %d %d" % (FLOOD_N, FLOOD_SIZE))
        time.sleep(0.5)
        t0 = time.monotonic()
        ctl.send_text("push 3")
        pushes = [ctl.recv_message(timeout=5, answer_pings=False)
                  for _ in range(3)]
        t_push = time.monotonic() - t0
        time.sleep(max(0.0, 0.5 - t_push))
        in_client = conn.bytes_unread()
        in_server_kernel = tcp_queues().get((srv.port, port), (0, 0))[0]
        t0 = time.monotonic()
        deadline = t0 + 30
        blob = flood_payload(FLOOD_SIZE)
        got, stamps = [], [t0]
        while len(got) < FLOOD_N + 1:
            op, data = conn.recv_message(
                timeout=max(0.01, deadline - time.monotonic()),
                answer_pings=False)
            stamps.append(time.monotonic())
            if op == BINARY and len(data) == FLOOD_SIZE and data == blob:
                got.append("blob")
            else:
                got.append((op, bytes(data[:80])))
        t_read = time.monotonic() - t0
        max_gap = max(b - a for a, b in zip(stamps, stamps[1:]))
        summary = got[-1]
        # Still a working, parked WebSocket.
        conn.send_text("after the flood")
        assert conn.recv_message(timeout=5) == (TEXT, b"after the flood")
        conn.send_close(1000)
        close = conn.recv_close(timeout=5)
        assert conn.wait_eof(5), "no TCP close after the close handshake"
    finally:
        conn.close()
        ctl.close()
    n_async, n_blocking = driver_lines(srv, offset)
    held = total - in_client - in_server_kernel
    report(capsys, "flood of %d x %d bytes (%d KiB) to a parked wss "
           "connection, client not reading for 1 s: then %d KiB in the "
           "client's socket, %d KiB in the server's, about %d KiB (less TLS "
           "overhead) held in the server process; \"push 3\" on another "
           "connection meanwhile took %.3fs; all read in %.2fs (longest wait "
           "for a message %.3fs); summary %r"
           % (FLOOD_N, FLOOD_SIZE, total // 1024, in_client // 1024,
              in_server_kernel // 1024, held // 1024, t_push, t_read,
              max_gap,
              summary[1] if isinstance(summary, tuple) else summary))
    assert (n_async, n_blocking) == (2, 0), (n_async, n_blocking)
    assert pushes == [(TEXT, b"push %d" % i) for i in range(3)], pushes
    assert held > total // 2, (
        "only %d of %d bytes waited in the server process (client socket "
        "%d, server socket %d): the push fitted in the socket buffers, so "
        "this test tested nothing" % (held, total, in_client,
                                      in_server_kernel))
    assert got[:FLOOD_N] == ["blob"] * FLOOD_N, (
        "not %d intact messages of %d bytes: %r"
        % (FLOOD_N, FLOOD_SIZE, [g for g in got if g != "blob"][:5]))
    assert summary == (TEXT, b"flood queued=%d refused=0 gone=0" % FLOOD_N), (
        summary)
    # Output a plugin thread's send left in the filters of a connection
    # parked for reading moves on the reactor's 200 ms rounds (the MPM
    # polls it for input only): 4 MiB through 128K buffers then takes up
    # to about a second here. Ten is far from that and far below the 30 s
    # at which a ping would be the first thing to move a stuck connection.
    assert t_read < 10, "reading 4 MiB took %.1fs" % t_read
    assert close.close_code == 1000, close


CUT_ROUNDS = 24
CUT_N = 300
CUT_SIZES = (4000, 3000, 5000, 6000)


def test_pushes_cut_at_the_pass_budget_arrive_intact(servers, capsys):
    # Frames of a few KiB: the driver's passes (half the core's
    # FlushMaxThreshold, 32 KiB) end inside payloads, often with less than
    # 1 KiB of one to go (731 bytes with 4000-byte messages), which is
    # copied rather than passed as a transient bucket. A copy buffer sized
    # for the frame headers alone once took those bytes past its end, into
    # the bucket allocator's free list, where the pusher's letters made the
    # child crash (in every one of five runs of this test, before the
    # fix).
    srv = tls_server(servers, "async-tls-cut", 4, extra=FLOOD_LOCATION)
    offset = srv.error_log_size()
    conn = open_mem(srv, "/flood")
    try:
        for k in range(CUT_ROUNDS):
            size = CUT_SIZES[k % len(CUT_SIZES)]
            blob = flood_payload(size)
            conn.send_text("flood %d %d" % (CUT_N, size))
            bad = 0
            for _ in range(CUT_N):
                op, data = conn.recv_message(timeout=20)
                bad += (op, data) != (BINARY, blob)
            summary = conn.recv_message(timeout=20)
            assert bad == 0, "%d of %d messages of %d bytes damaged" % (
                bad, CUT_N, size)
            assert summary == (TEXT, b"flood queued=%d refused=0 gone=0"
                               % CUT_N), summary
        conn.send_close(1000)
        close = conn.recv_close(timeout=5)
    finally:
        conn.close()
    assert not crash_lines(srv, offset), crash_lines(srv, offset)
    assert close.close_code == 1000, close
    report(capsys, "%d rounds of %d pushes of %s bytes over wss arrived "
           "intact" % (CUT_ROUNDS, CUT_N, "/".join(map(str, CUT_SIZES))))


# ================================================ 4: keepalive, parked

KA_PING = 0.5
KA_IDLE = 3.0
N_KA = 20


def test_pings_reach_parked_wss_connections(servers, capsys):
    # One child of 4 threads and 2 x 20 wss connections on /ka, none
    # sending anything but (the second half) pongs. The reactor's pings
    # go through mod_ssl to parked connections every 500 ms; the silent
    # half gets 1001 at the 3 s idle timeout and TCP closed behind it
    # without answering; the answering half stays open past it.
    srv = tls_server(servers, "async-tls-ka", 4)
    offset = srv.error_log_size()
    swarm = TlsSwarm(srv, "/ka")
    try:
        swarm.open(2 * N_KA, timeout=30)
        silent, live = swarm.conns[:N_KA], swarm.conns[N_KA:]
        for c in silent:
            c.reply_close = False
        for c in live:
            c.answer_pings = True
        swarm.wait(lambda: all(c.eof for c in silent), KA_IDLE + 6,
                   "idle close and TCP close of the silent wss connections")
        swarm.run_for(1.0)      # the live ones are past the idle timeout
        live_pings = [len(c.pings) for c in live]
        live_closed = [c.idx for c in live if c.close_code or c.eof]
        if not live_closed:
            swarm.echo_all(timeout=10)
            swarm.close_all(timeout=10)
    finally:
        swarm.reset_all()
    n_async, n_blocking = driver_lines(srv, offset)

    def spans(c):
        t = [c.opened_at] + c.pings
        return [b - a for a, b in zip(t, t[1:])]

    first = [c.pings[0] - c.opened_at for c in silent if c.pings]
    gaps = [g for c in silent for g in spans(c)[1:]]
    closes = [c.close_at - c.opened_at for c in silent if c.close_at]
    tcp = [c.eof_at - c.close_at for c in silent if c.close_at]
    report(capsys, "keepalive on %d parked wss connections (4 threads): "
           "first ping after %.2f-%.2fs, gaps %.2f-%.2fs, pings before the "
           "idle close %d-%d; 1001 after %.2f-%.2fs, TCP closed %.3f-%.3fs "
           "later; answering connections got %d-%d pings and stayed open"
           % (2 * N_KA, min(first or [0]), max(first or [0]),
              min(gaps or [0]), max(gaps or [0]),
              min(len(c.pings) for c in silent),
              max(len(c.pings) for c in silent), min(closes or [0]),
              max(closes or [0]), min(tcp or [0]), max(tcp or [0]),
              min(live_pings), max(live_pings)))
    assert (n_async, n_blocking) == (2 * N_KA, 0), (n_async, n_blocking)
    assert len(first) == N_KA, "%d silent connections got no ping" % (
        N_KA - len(first))
    assert max(first) < KA_PING + 0.5, first
    assert min(gaps) > KA_PING - 0.1 and max(gaps) < KA_PING + 0.5, gaps
    assert all(len(c.pings) >= 3 for c in silent), [len(c.pings)
                                                    for c in silent]
    assert [c.close_code for c in silent] == [1001] * N_KA, [
        c.close_code for c in silent]
    assert min(closes) >= KA_IDLE - 0.1 and max(closes) < KA_IDLE + 1.0, closes
    assert max(tcp) < 1.0, "TCP closed %.2fs after the 1001" % max(tcp)
    assert not live_closed, "answering connections closed: %s" % live_closed
    assert min(live_pings) >= 5, live_pings


# ================================================ 5: records in one segment

N_RECORDS = 50
PROMPT = 5.0    # seconds; a connection left parked on buffered input
                # would move only at the next ping, 30 s away


def frames(texts):
    return [wsproto.encode_frame(TEXT, t) for t in texts]


def send_and_recv(conn, wire, expected, timeout=PROMPT):
    """Send the ciphertext in one write, then read len(expected) messages
    within timeout; returns (messages, seconds from the write). Pings are
    not answered: nothing but the batch goes in."""
    t0 = time.monotonic()
    conn.send_raw(wire)
    deadline = t0 + timeout
    got = []
    try:
        while len(got) < len(expected):
            got.append(conn.recv_message(
                timeout=max(0.01, deadline - time.monotonic()),
                answer_pings=False))
    except wsproto.Timeout:
        pass
    return got, time.monotonic() - t0


def check_batch(name, got, expected, secs):
    assert len(got) == len(expected), (
        "%s: %d of %d echoes within %.0f s (the rest of the records that "
        "came in the same TCP segment were left unprocessed); got %r"
        % (name, len(got), len(expected), PROMPT, got[-3:]))
    assert got == expected, "%s: wrong echoes: %r" % (name, [
        (g, e) for g, e in zip(got, expected) if g != e][:3])


def cut(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_tls_records_in_one_segment(servers, capsys):
    srv = tls_server(servers, "async-tls-records", 4)
    offset = srv.error_log_size()
    conn = open_mem(srv, "/echo")
    figures = []
    try:
        time.sleep(0.5)         # parked
        assert driver_lines(srv, offset) == (1, 0), driver_lines(srv, offset)

        # a) 50 frames, one record each, all in one TCP write.
        texts = [b"rec %d" % i for i in range(N_RECORDS)]
        wire = conn.seal(frames(texts))
        recs = tls_records(wire)
        assert len(recs) == N_RECORDS and {t for t, _ in recs} == {23}, recs
        got, secs = send_and_recv(conn, wire, [(TEXT, t) for t in texts])
        figures.append("a) %d records (%d bytes) in one write: %d echoes in "
                       "%.3fs" % (len(recs), len(wire), len(got), secs))
        check_batch("a) 50 frames in 50 records", got,
                    [(TEXT, t) for t in texts], secs)
        time.sleep(0.3)

        # b) one 3000-byte frame with its header cut in two and its
        # payload in 500-byte records, then a message of three fragments,
        # each cut across records: one TCP write.
        body = bytes(range(256)) * 11 + b"end"
        big = wsproto.encode_frame(BINARY, body)
        head = 2 + 2 + 4        # 16-bit length, mask key
        pieces = [big[:1], big[1:head]] + cut(big[head:], 500)
        parts = [b"first part, ", b"second part, ", b"last part"]
        frag = (wsproto.encode_frame(TEXT, parts[0], fin=False)
                + wsproto.encode_frame(CONT, parts[1], fin=False)
                + wsproto.encode_frame(CONT, parts[2]))
        pieces += cut(frag, 9)
        wire = conn.seal(pieces)
        recs = tls_records(wire)
        assert len(recs) == len(pieces), (len(recs), len(pieces))
        expected = [(BINARY, body), (TEXT, b"".join(parts))]
        got, secs = send_and_recv(conn, wire, expected)
        figures.append("b) a frame and a 3-fragment message across %d "
                       "records in one write: %d echoes in %.3fs"
                       % (len(recs), len(got), secs))
        check_batch("b) frames split across records", got, expected, secs)
        time.sleep(0.3)

        # c) 50 frames as one stream cut into 13-byte records, so that
        # every record ends inside a frame.
        texts = [b"cut %d" % i + b"." * (i % 17) for i in range(N_RECORDS)]
        pieces = cut(b"".join(frames(texts)), 13)
        wire = conn.seal(pieces)
        recs = tls_records(wire)
        assert len(recs) == len(pieces), (len(recs), len(pieces))
        got, secs = send_and_recv(conn, wire, [(TEXT, t) for t in texts])
        figures.append("c) 50 frames in %d 13-byte records in one write: "
                       "%d echoes in %.3fs" % (len(recs), len(got), secs))
        check_batch("c) records ending mid-frame", got,
                    [(TEXT, t) for t in texts], secs)
        time.sleep(0.3)

        # d) 20 frames and a close, one record each, in one TCP write:
        # the close is answered with 1000 and TCP closed, promptly, and the
        # server's close line counts all 20 messages in. Their echoes may
        # be missing: a peer's close drops queued messages not yet started
        # (README, "Close"), so only their order is checked.
        # A connection of its own, so that its close line counts only
        # this batch.
        conn.close()
        conn = open_mem(srv, "/echo")
        time.sleep(0.5)         # parked
        texts = [b"last %d" % i for i in range(20)]
        pieces = frames(texts) + [wsproto.encode_frame(
            CLOSE, wsproto.close_payload(1000))]
        wire = conn.seal(pieces)
        log_at = srv.error_log_size()
        t0 = time.monotonic()
        conn.send_raw(wire)
        echoes, close = [], None
        while close is None:
            f = conn.recv_frame(timeout=max(0.01, t0 + PROMPT
                                            - time.monotonic()))
            if f.opcode == CLOSE:
                close = f
            elif f.opcode == TEXT:
                echoes.append(f.payload)
        eof = conn.wait_eof(PROMPT)
        t_close = time.monotonic() - t0
        closed = wait_for(lambda: re.search(
            r"WS00001: .* in (\d+) msgs .* close (\d+) by client",
            srv.error_log_since(log_at)), 5, interval=0.05)
        figures.append("d) 20 frames and a close in %d records in one "
                       "write: %d echoes, close %s and TCP close in %.3fs; "
                       "server: %s" % (len(pieces), len(echoes),
                                       close.close_code, t_close,
                                       closed and closed.group(0)[9:]))
        assert close.close_code == 1000, close
        assert eof, "no TCP close within %.0f s of the close" % PROMPT
        assert echoes == texts[:len(echoes)], echoes
        assert closed, "no WS00001 close line for the connection"
        assert closed.groups() == ("20", "1000"), closed.group(0)
    finally:
        conn.close()
        report(capsys, "TLS records in one TCP segment, parked wss "
               "connection: " + "; ".join(figures))


def test_tls_records_pipelined_with_the_upgrade(servers, capsys):
    # The upgrade request and 50 frames, 51 records, in one TCP write: the
    # frames wait in mod_ssl's and the core's input buffers while the
    # request is served and the connection passes to the async driver,
    # which must take them from there before parking it.
    srv = tls_server(servers, "async-tls-pipelined", 4)
    offset = srv.error_log_size()
    results = []
    for attempt in range(3):
        conn = MemTlsConn(srv)
        try:
            key = wsproto.make_key()
            req = wsproto.build_request("/echo", srv.hostport, key=key,
                                        origin=srv.origin)
            texts = [b"early %d.%d" % (attempt, i) for i in range(N_RECORDS)]
            wire = conn.seal([req] + frames(texts))
            assert len(tls_records(wire)) == N_RECORDS + 1
            t0 = time.monotonic()
            conn.send_raw(wire)
            resp = conn.read_response(timeout=PROMPT)
            wsproto.assert_upgraded(resp, key)
            got, _ = send_and_recv(conn, b"", [(TEXT, t) for t in texts])
            secs = time.monotonic() - t0
            results.append((len(got), secs))
            check_batch("upgrade and 50 frames in one write (#%d)" % attempt,
                        got, [(TEXT, t) for t in texts], secs)
            conn.send_close(1000)
            assert conn.recv_close(timeout=PROMPT).close_code == 1000
        finally:
            conn.close()
    n_async, n_blocking = driver_lines(srv, offset)
    report(capsys, "upgrade request and %d frames in %d records in one TCP "
           "write, 3 times: echoes %s; WS00022 async %d, blocking %d"
           % (N_RECORDS, N_RECORDS + 1, ", ".join(
               "%d in %.3fs" % r for r in results), n_async, n_blocking))
    assert (n_async, n_blocking) == (3, 0), (n_async, n_blocking)
