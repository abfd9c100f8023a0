"""Tests of the harness itself, with no WebSocket module: httpd.Httpd
starts, serves, restarts and stops each MPM (and TLS) and leaves nothing
behind; the frame codec agrees with RFC 6455's examples. These run (and
must pass) before the module exists, so a red suite means the module.
"""

import http.client
import os

import pytest

import httpd
import wsproto
from helpers import VARIANTS

VARIANT_PARAMS = [pytest.param(mpm, tls, id=vid) for vid, mpm, tls in VARIANTS]

PLAIN = """
<Location /plain>
    Require all granted
</Location>
"""


def fetch(srv, path):
    """GET path over http or https (trusting only the test cert)."""
    if srv.tls:
        conn = http.client.HTTPSConnection(
            srv.host, srv.port, timeout=10, context=srv.client_ssl_context())
    else:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def processes_using(conf):
    """Pids whose command line names this config file."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/stat" % entry) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(conf).encode() in cmd and state != "Z":
            pids.append(int(entry))
    return pids


@pytest.fixture
def static_server(request):
    made = []

    def factory(mpm, tls):
        srv = httpd.Httpd(mpm, tls=tls, websocket=False, extra=PLAIN,
                          name="harness-" + mpm)
        (srv.docroot / "plain").mkdir()
        (srv.docroot / "plain" / "file.txt").write_text("plain content\n")
        os.chmod(srv.docroot / "plain", 0o755)
        os.chmod(srv.docroot / "plain" / "file.txt", 0o644)
        made.append(srv)
        return srv

    yield factory
    for srv in made:
        srv.cleanup()


@pytest.mark.parametrize("mpm,tls", VARIANT_PARAMS)
def test_start_serve_graceful_stop(static_server, mpm, tls):
    srv = static_server(mpm, tls)
    rc, out = srv.configtest()
    assert rc == 0, out
    srv.start()
    assert srv.running()
    assert fetch(srv, "/plain/file.txt") == (200, b"plain content\n")
    assert fetch(srv, "/hello.txt") == (200, b"hello from httpd\n")
    before = set(srv.child_pids())
    assert before, "no child processes"

    srv.graceful()
    assert fetch(srv, "/plain/file.txt") == (200, b"plain content\n")
    after = set(httpd._wait(lambda: set(srv.child_pids()) - before, 10))
    assert after, "graceful restart made no new children"

    conf = srv.conf
    srv.stop()
    assert not srv.running()
    assert processes_using(conf) == [], "httpd left behind"


@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_graceful_stop(static_server, mpm):
    srv = static_server(mpm, False)
    srv.start()
    assert fetch(srv, "/hello.txt")[0] == 200
    conf = srv.conf
    srv.graceful_stop()
    assert processes_using(conf) == []


def test_configtest_reports_errors(static_server):
    srv = static_server("event", False)
    srv.extra += "\nNoSuchDirective here\n"
    rc, out = srv.configtest()
    assert rc != 0
    assert "NoSuchDirective" in out


def test_start_failure_is_reported_and_cleaned(static_server):
    srv = static_server("event", False)
    srv.extra += "\nNoSuchDirective here\n"
    with pytest.raises(httpd.HttpdError) as ei:
        srv.start()
    assert "NoSuchDirective" in str(ei.value)
    assert processes_using(srv.conf) == []


def test_missing_module_message(monkeypatch, tmp_path):
    monkeypatch.setattr(httpd, "MODULE_SO", tmp_path / "mod_websocket.so")
    with pytest.raises(httpd.MissingArtifact) as ei:
        httpd.require_built("echo")
    assert "build/mod_websocket.so not found: run make" in str(ei.value)


def test_missing_handler_message(monkeypatch, tmp_path):
    (tmp_path / "mod_websocket.so").write_bytes(b"")
    monkeypatch.setattr(httpd, "MODULE_SO", tmp_path / "mod_websocket.so")
    monkeypatch.setattr(httpd, "HANDLERS", tmp_path / "handlers")
    with pytest.raises(httpd.MissingArtifact) as ei:
        httpd.require_built("echo")
    assert "build/handlers/echo.so not found: run make" in str(ei.value)


# ------------------------------------------------------------- frame codec

def test_rfc_example_frames():
    # §5.7: a masked "Hello" from a client, an unmasked one from a server.
    masked = bytes([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                    0x51, 0x58])
    assert wsproto.encode_frame(wsproto.TEXT, b"Hello",
                                mask_key=b"\x37\xfa\x21\x3d") == masked
    assert wsproto.encode_frame(wsproto.TEXT, b"Hello", mask=False) == \
        bytes([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
    # 256 bytes: 16-bit length; 64 KiB: 64-bit length.
    assert wsproto.encode_frame(wsproto.BINARY, b"\0" * 256,
                                mask=False)[:4] == bytes([0x82, 0x7E, 1, 0])
    assert wsproto.encode_frame(wsproto.BINARY, b"\0" * 65536,
                                mask=False)[:10] == \
        bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])


def test_mask_is_an_involution():
    data = bytes(range(256)) * 5 + b"tail"
    key = b"\x01\x80\xff\x7e"
    assert wsproto.mask_bytes(wsproto.mask_bytes(data, key), key) == data
    assert wsproto.mask_bytes(b"abc", b"\0\0\0\0") == b"abc"
