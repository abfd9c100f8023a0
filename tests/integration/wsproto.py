"""Raw-socket WebSocket client pieces, written from RFC 6455 directly.

The tests use these to say exactly which bytes go on the wire: handshakes
with a header missing or wrong, frames no well-behaved client library would
send (unmasked, RSV bits, reserved opcodes, lying lengths), and everything
sent in small chopped writes so the server's parsers meet every split.

Nothing here depends on the module under test; a server frame that breaks
RFC 6455 (masked, reserved bits) raises ProtocolViolation so a test fails
with the reason rather than mis-parsing.
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

# Opcodes (§5.2)
CONT, TEXT, BINARY = 0x0, 0x1, 0x2
CLOSE, PING, PONG = 0x8, 0x9, 0xA

DEFAULT_TIMEOUT = 10.0


class ProtocolViolation(AssertionError):
    """The server sent something RFC 6455 forbids."""


class Timeout(AssertionError):
    """Nothing (or not enough) arrived in time."""


# ---------------------------------------------------------------- handshake

def make_key():
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes (§4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_key(key):
    """Sec-WebSocket-Accept for a key (§4.2.2 step 5.4)."""
    digest = hashlib.sha1(key.encode("ascii") + GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def build_request(path, host, *, key=None, method="GET",
                  http_version="HTTP/1.1", version="13", origin=None,
                  protocols=None, extensions=None, upgrade="websocket",
                  connection="Upgrade", extra=(), omit=()):
    """The bytes of an opening handshake request.

    Any header can be dropped by naming it (lower case) in `omit`, or
    replaced by passing a different value; `extra` is a sequence of
    (name, value) pairs appended as they are.
    """
    headers = [
        ("Host", host),
        ("Upgrade", upgrade),
        ("Connection", connection),
        ("Sec-WebSocket-Key", key if key is not None else make_key()),
        ("Sec-WebSocket-Version", version),
    ]
    if origin is not None:
        headers.append(("Origin", origin))
    if protocols is not None:
        headers.append(("Sec-WebSocket-Protocol", protocols))
    if extensions is not None:
        headers.append(("Sec-WebSocket-Extensions", extensions))
    headers.extend(extra)
    lines = ["%s %s %s" % (method, path, http_version)]
    lines += ["%s: %s" % (n, v) for n, v in headers
              if n.lower() not in omit and v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Response:
    """An HTTP response head: status code, reason and headers."""

    def __init__(self, status, reason, headers):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (lower-case name, value)

    def get(self, name, default=None):
        """All values of a header joined with ', ' (RFC 9110 §5.3)."""
        values = [v for n, v in self.headers if n == name.lower()]
        return ", ".join(values) if values else default

    def tokens(self, name):
        """A comma-separated header as a set of lower-case tokens."""
        value = self.get(name, "")
        return {t.strip().lower() for t in value.split(",") if t.strip()}

    def __repr__(self):
        hdrs = "".join("\n  %s: %s" % h for h in self.headers)
        return "<Response %d %s%s>" % (self.status, self.reason, hdrs)


def parse_response_head(head):
    """Parse 'HTTP/1.1 101 ...\\r\\nName: value\\r\\n...' (no final CRLF)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ProtocolViolation("bad status line: %r" % lines[0])
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolViolation("bad header line: %r" % line)
        headers.append((name.strip().lower(), value.strip()))
    return Response(int(parts[1]), parts[2] if len(parts) > 2 else "",
                    headers)


# ------------------------------------------------------------------- frames

def mask_bytes(data, key):
    """XOR data with the 4-byte key (§5.3), fast enough for megabytes."""
    if not data:
        return b""
    n = len(data)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little")
            ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def encode_frame(opcode, payload=b"", *, fin=True, rsv=0, mask=True,
                 mask_key=None, length=None):
    """One frame (§5.2). A client frame is masked unless mask=False.

    `length` overrides the length written in the header (to announce more
    than is sent); `rsv` is the 3 RSV bits as a number 0..7.
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", first, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + mask_bytes(payload, key)


def close_payload(code=None, reason=b""):
    """A close frame's body: 2-byte code then reason (§5.5.1)."""
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    @property
    def close_code(self):
        """The close code, or None when the close frame has no body."""
        if len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return None

    def __repr__(self):
        body = self.payload[:40]
        return "<Frame op=%#x fin=%d rsv=%d len=%d %r%s>" % (
            self.opcode, self.fin, self.rsv, len(self.payload), body,
            "..." if len(self.payload) > 40 else "")


class Closed(AssertionError):
    """The server closed the TCP connection."""


# ---------------------------------------------------------------- transport

def chopped(data, sizes=(1, 2, 3, 5, 7, 11, 13)):
    """Split data into small pieces of varying sizes (a fixed cycle, so a
    failure replays the same way)."""
    pieces, i, k = [], 0, 0
    while i < len(data):
        step = sizes[k % len(sizes)]
        pieces.append(data[i:i + step])
        i += step
        k += 1
    return pieces


class RawConn:
    """One client connection: handshake, then frames.

    Reads go through a buffer, so bytes that arrive with the 101 (a fast
    server may send a frame right behind it) are not lost.
    """

    def __init__(self, host, port, *, tls_context=None, server_hostname=None,
                 timeout=DEFAULT_TIMEOUT):
        self.timeout = timeout
        sock = socket.create_connection((host, port), timeout=timeout)
        # No Nagle: each chopped write should leave as its own segment.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_context is not None:
            sock = tls_context.wrap_socket(
                sock, server_hostname=server_hostname or host)
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    # -- plumbing

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_chopped(self, data, sizes=(1, 2, 3, 5, 7, 11, 13), delay=0.0005):
        """Write data in small pieces with a pause between them, so the
        server reads it in many partial chunks."""
        for piece in chopped(data, sizes):
            self.sock.sendall(piece)
            if delay:
                time.sleep(delay)

    def _fill(self, deadline):
        """Read more bytes into the buffer; False on EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            data = b""          # TLS closed, with or without close_notify
        except ConnectionResetError:
            # The server may reset after its close frame; what was read
            # stays in the buffer for the caller.
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_exact(self, n, deadline, what):
        while len(self.buf) < n:
            try:
                if not self._fill(deadline):
                    raise Closed("connection closed while reading %s "
                                 "(have %d of %d bytes)"
                                 % (what, len(self.buf), n))
            except socket.timeout:
                raise Timeout("timed out reading %s (have %d of %d bytes)"
                              % (what, len(self.buf), n)) from None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    # -- HTTP

    def read_response(self, timeout=None):
        """Read the status line and headers (up to the blank line)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            try:
                if not self._fill(deadline):
                    raise Closed("connection closed before a full response "
                                 "head; got %r" % bytes(self.buf[:300]))
            except socket.timeout:
                raise Timeout("no complete response head in time; got %r"
                              % bytes(self.buf[:300])) from None
            if len(self.buf) > 65536:
                raise ProtocolViolation("response head over 64 KiB")
        end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:end])
        del self.buf[:end + 4]
        return parse_response_head(head)

    def handshake(self, request, chopped_write=True, timeout=None):
        """Send the request bytes (chopped) and return the Response."""
        if chopped_write:
            self.send_chopped(request)
        else:
            self.send(request)
        return self.read_response(timeout)

    # -- frames

    def send_frame(self, opcode, payload=b"", chopped_write=False, **kw):
        data = encode_frame(opcode, payload, **kw)
        if chopped_write:
            self.send_chopped(data)
        else:
            self.send(data)

    def send_text(self, text, **kw):
        self.send_frame(TEXT, text.encode("utf-8"), **kw)

    def send_binary(self, data, **kw):
        self.send_frame(BINARY, data, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(CLOSE, close_payload(code, reason), **kw)

    def recv_frame(self, timeout=None):
        """One server frame. Server frames must be unmasked (§5.1) and,
        with no extension negotiated, have RSV bits clear (§5.2)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        b0, b1 = self._read_exact(2, deadline, "frame header")
        if b1 & 0x80:
            raise ProtocolViolation("server frame is masked (§5.1)")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2, deadline, "len16"))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8, deadline, "len64"))[0]
            if n >> 63:
                raise ProtocolViolation("64-bit length with top bit set")
        payload = self._read_exact(n, deadline, "frame payload")
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload)

    def recv_message(self, timeout=None, answer_pings=True):
        """A whole data message: (opcode, payload). Control frames between
        fragments are handled: pings answered, pongs ignored; a close frame
        raises Closed with its code."""
        deadline = time.monotonic() + (timeout or self.timeout)
        opcode, parts = None, []
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == CLOSE:
                raise Closed("server sent close %s %r while a message was "
                             "expected" % (f.close_code, f.payload[2:]))
            if f.opcode == PING:
                if answer_pings:
                    self.send_frame(PONG, f.payload)
                continue
            if f.opcode == PONG:
                continue
            if f.rsv:
                raise ProtocolViolation("RSV bits %d set, no extension "
                                        "negotiated: %r" % (f.rsv, f))
            if opcode is None:
                if f.opcode not in (TEXT, BINARY):
                    raise ProtocolViolation("message starts with %r" % f)
                opcode = f.opcode
            elif f.opcode != CONT:
                raise ProtocolViolation("new message inside a fragmented "
                                        "one: %r" % f)
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def recv_close(self, timeout=None, skip_data=True):
        """Read frames until a close frame and return it (a Frame; use
        .close_code). Data frames before it are skipped when skip_data,
        since the server may still be finishing an echo."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            except Closed as e:
                raise Closed("TCP closed with no close frame: %s" % e) from None
            if f.opcode == CLOSE:
                return f
            if not skip_data and f.opcode in (TEXT, BINARY, CONT):
                raise ProtocolViolation("expected close, got %r" % f)

    def expect_close(self, code, timeout=None):
        """Read the server's close frame and assert its code."""
        f = self.recv_close(timeout)
        assert f.close_code == code, (
            "expected close code %s, got %s (reason %r)"
            % (code, f.close_code, f.payload[2:]))
        return f

    def wait_eof(self, timeout=None):
        """True once the server has closed TCP (data before EOF is
        discarded); False if it is still open at the deadline."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self.buf.clear()
        try:
            while self._fill(deadline):
                self.buf.clear()
        except socket.timeout:
            return False
        except OSError:
            return True
        return True


# ------------------------------------------------------------------ client

class Client:
    """Raw connections to one test server (an httpd.Httpd or anything with
    host, port, hostport, origin and client_ssl_context()).

    Handshakes carry the server's own Origin unless told otherwise, so a
    test about framing is not also a test about the origin check.
    """

    def __init__(self, server, timeout=DEFAULT_TIMEOUT):
        self.server = server
        self.timeout = timeout
        self.conns = []

    def connect(self, timeout=None):
        conn = RawConn(self.server.host, self.server.port,
                       tls_context=self.server.client_ssl_context(),
                       timeout=timeout or self.timeout)
        self.conns.append(conn)
        return conn

    def request(self, path="/echo", **kw):
        """Handshake request bytes for this server (same-origin)."""
        kw.setdefault("origin", self.server.origin)
        return build_request(path, self.server.hostport, **kw)

    def handshake(self, path="/echo", chopped_write=True, **kw):
        """Send a handshake; returns (conn, Response, key)."""
        key = kw.pop("key", None)
        if key is None:         # "" is a test value, not "pick one"
            key = make_key()
        conn = self.connect()
        resp = conn.handshake(self.request(path, key=key, **kw),
                              chopped_write=chopped_write)
        return conn, resp, key

    def open(self, path="/echo", **kw):
        """A WebSocket that completed its handshake (asserted)."""
        conn, resp, key = self.handshake(path, **kw)
        assert_upgraded(resp, key)
        return conn

    def close_all(self):
        for c in self.conns:
            c.close()
        self.conns.clear()


def assert_upgraded(resp, key):
    """A 101 that RFC 6455 §4.2.2 lets a client accept (§4.1 checks)."""
    assert resp.status == 101, "expected 101, got %r" % resp
    assert resp.get("upgrade", "").lower() == "websocket", resp
    assert "upgrade" in resp.tokens("connection"), resp
    assert resp.get("sec-websocket-accept") == accept_key(key), (
        "wrong Sec-WebSocket-Accept: %r, expected %r"
        % (resp.get("sec-websocket-accept"), accept_key(key)))
