"""The opening handshake (RFC 6455 §4) over raw sockets, every request sent
in small chopped writes: good handshakes get a correct 101, every bad one
its status and never a 101, plus the origin check and subprotocol choice.
"""

import base64

import pytest

import wsproto
from wsproto import TEXT, accept_key, assert_upgraded


def echo_works(conn):
    """The upgraded connection carries frames: one text round trip."""
    conn.send_text("ping \u00e9", chopped_write=True)
    assert conn.recv_message() == (TEXT, "ping \u00e9".encode("utf-8"))


# ------------------------------------------------------------------- good

def test_accept_key_matches_rfc_example():
    # The worked example of RFC 6455 §1.3: checks our own helper.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == \
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_good_handshake_gets_101_with_accept(client):
    conn, resp, key = client.handshake("/echo")
    assert_upgraded(resp, key)
    # Nothing was offered, so nothing may be chosen (§4.2.2).
    assert resp.get("sec-websocket-protocol") is None, resp
    assert resp.get("sec-websocket-extensions") is None, resp
    echo_works(conn)


def test_handshake_in_one_write(client):
    conn, resp, key = client.handshake("/echo", chopped_write=False)
    assert_upgraded(resp, key)
    echo_works(conn)


def test_frame_sent_with_handshake_is_not_lost(client):
    # A fast client may send its first frame in the same write as the
    # request; those bytes must reach the WebSocket, not the HTTP parser.
    key = wsproto.make_key()
    conn = client.connect()
    conn.send(client.request("/echo", key=key)
              + wsproto.encode_frame(TEXT, b"early"))
    assert_upgraded(conn.read_response(), key)
    assert conn.recv_message() == (TEXT, b"early")


def test_header_tokens_are_case_insensitive_and_lists(client):
    # Browsers send "Connection: keep-alive, Upgrade"; token values are
    # case-insensitive (§4.2.1 items 3 and 4).
    conn, resp, key = client.handshake("/echo", upgrade="WebSocket",
                                       connection="keep-alive, upgrade")
    assert_upgraded(resp, key)
    echo_works(conn)


def test_no_origin_header_is_accepted(client):
    # Non-browser clients send no Origin (§4.1: only browsers must); the
    # same-origin default restricts browsers, not them. (An assumption the
    # facts do not spell out: see the README.)
    conn, resp, key = client.handshake("/echo", origin=None)
    assert_upgraded(resp, key)
    echo_works(conn)


def test_query_string_is_allowed(client):
    conn, resp, key = client.handshake("/echo?room=1&x=%20y")
    assert_upgraded(resp, key)
    echo_works(conn)


# -------------------------------------------------------------------- bad

def expect_refused(client, status, path="/echo", **kw):
    """Send a handshake that must fail with `status`; return the response."""
    conn, resp, _ = client.handshake(path, **kw)
    assert resp.status != 101, "bad handshake upgraded: %r" % resp
    assert resp.status == status, "expected %d, got %r" % (status, resp)
    return resp


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_not_get_is_405(client, method):
    expect_refused(client, 405, method=method,
                   extra=[("Content-Length", "0")])


def test_http_1_0_is_400(client):
    expect_refused(client, 400, http_version="HTTP/1.0")


def test_no_host_is_400(client):
    expect_refused(client, 400, omit=("host",))


@pytest.mark.parametrize("omit,kw", [
    (("upgrade",), {}),
    ((), {"upgrade": "h2c"}),
    (("connection",), {}),
    ((), {"connection": "keep-alive"}),
], ids=["no-upgrade", "upgrade-h2c", "no-connection", "connection-no-upgrade"])
def test_not_an_upgrade_is_426_with_upgrade_header(client, omit, kw):
    resp = expect_refused(client, 426, omit=omit, **kw)
    assert "websocket" in resp.tokens("upgrade"), (
        "426 must say Upgrade: websocket: %r" % resp)


def test_plain_get_is_426(client):
    # No WebSocket headers at all, as a browser's address bar sends.
    conn = client.connect()
    req = ("GET /echo HTTP/1.1\r\nHost: %s\r\nAccept: text/html\r\n\r\n"
           % client.server.hostport).encode()
    resp = conn.handshake(req)
    assert resp.status == 426, resp
    assert "websocket" in resp.tokens("upgrade"), resp


def test_plain_get_with_decline_falls_through(client):
    # WebSocketNonUpgrade decline: the next handler (the static file
    # behind it) answers plain GETs, and WebSockets still work there.
    conn = client.connect()
    req = ("GET /decline HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
           % client.server.hostport).encode()
    resp = conn.handshake(req)
    assert resp.status == 200, resp
    conn2, resp2, key = client.handshake("/decline")
    assert_upgraded(resp2, key)
    echo_works(conn2)


@pytest.mark.parametrize("key", [
    "",
    "not base64!!",
    base64.b64encode(b"0123456789abcde").decode(),     # 15 bytes
    base64.b64encode(b"0123456789abcdefg").decode(),   # 17 bytes
    "dGhlIHNhbXBsZSBub25jZQ",                          # padding cut
], ids=["empty", "not-base64", "15-bytes", "17-bytes", "no-padding"])
def test_bad_key_is_400(client, key):
    expect_refused(client, 400, key=key)


def test_missing_key_is_400(client):
    expect_refused(client, 400, omit=("sec-websocket-key",))


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8", "abc"])
def test_wrong_version_is_426_with_version_13(client, version):
    resp = expect_refused(client, 426, version=version)
    assert "13" in resp.tokens("sec-websocket-version"), (
        "426 must carry Sec-WebSocket-Version: 13: %r" % resp)


def test_missing_version_is_refused(client):
    # §4.2.2 allows 400 or a 426 that lists the version; never a 101.
    conn, resp, _ = client.handshake("/echo", omit=("sec-websocket-version",))
    assert resp.status in (400, 426), resp
    if resp.status == 426:
        assert "13" in resp.tokens("sec-websocket-version"), resp


# ----------------------------------------------------------------- origin

def test_same_origin_allowed(client):
    conn, resp, key = client.handshake("/echo", origin=client.server.origin)
    assert_upgraded(resp, key)
    echo_works(conn)


@pytest.mark.parametrize("which", ["foreign", "other-port", "other-scheme",
                                   "null"])
def test_foreign_origin_is_403(client, which):
    srv = client.server
    origin = {
        "foreign": "http://evil.example",
        "other-port": "%s://%s:%d" % (srv.scheme, srv.host,
                                      1 if srv.port != 1 else 2),
        "other-scheme": "%s://%s" % ("http" if srv.tls else "https",
                                     srv.hostport),
        "null": "null",
    }[which]
    expect_refused(client, 403, origin=origin)


def test_origin_allow_list_allows_exactly_that_origin(client):
    conn, resp, key = client.handshake("/origin",
                                       origin="https://good.example")
    assert_upgraded(resp, key)
    echo_works(conn)


@pytest.mark.parametrize("origin", [
    "http://good.example",          # other scheme
    "https://good.example:8443",    # other port
    "https://evil.example",
    "https://good.example.evil.example",
    None,                           # replaced by same-origin below
], ids=["http", "port", "evil", "suffix", "same-origin"])
def test_origin_allow_list_refuses_others(client, origin):
    # With an explicit list, the server's own origin is not implied.
    expect_refused(client, 403, path="/origin",
                   origin=origin or client.server.origin)


def test_origin_any(client):
    conn, resp, key = client.handshake("/anyorigin",
                                       origin="http://anything.example")
    assert_upgraded(resp, key)
    echo_works(conn)


# ------------------------------------------------------------ subprotocol

@pytest.mark.parametrize("offer,chosen", [
    ("a, b", "b"),      # the server's order (WebSocketProtocols b a) wins
    ("b, a", "b"),
    ("a", "a"),
    ("c, a", "a"),
    ("c", None),
    (None, None),
], ids=["a,b", "b,a", "a", "c,a", "c", "none"])
def test_subprotocol_choice(client, offer, chosen):
    conn, resp, key = client.handshake("/proto", protocols=offer)
    assert_upgraded(resp, key)
    assert resp.get("sec-websocket-protocol") == chosen, resp
    echo_works(conn)


def test_subprotocol_offered_in_two_headers(client):
    # §4.1: the header may be repeated; the offers are the union.
    conn, resp, key = client.handshake(
        "/proto", protocols="c", extra=[("Sec-WebSocket-Protocol", "a")])
    assert_upgraded(resp, key)
    assert resp.get("sec-websocket-protocol") == "a", resp
