"""Apache's authentication and authorization in front of a WebSocket
location: the handshake is an ordinary request, so mod_auth_basic with
mod_authn_file (an htpasswd file made with the `htpasswd` CLI) and
mod_authz_user / mod_authz_host decide before mod_websocket answers.

/auth       AuthType Basic, Require valid-user (alice / the password below)
/denied     Require ip 10.0.0.1 (never the test client)
"""

import asyncio
import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import websockets
import websockets.exceptions

import httpd
from conftest import locations, make_server, KEEP
from helpers import VARIANTS, run_async
from wsproto import TEXT

USER, PASSWORD = "alice", "s3cret-\u00e9t\u00e9"


def write_htpasswd(path):
    """An htpasswd file for USER: bcrypt through the htpasswd CLI
    (apache2-utils), or a {SHA} line written here if the CLI is absent."""
    exe = shutil.which("htpasswd")
    if exe:
        r = subprocess.run([exe, "-c", "-b", "-B", str(path), USER,
                            PASSWORD.encode("utf-8")],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
    else:
        digest = base64.b64encode(
            hashlib.sha1(PASSWORD.encode("utf-8")).digest()).decode()
        Path(path).write_text("%s:{SHA}%s\n" % (USER, digest))
    os.chmod(path, 0o644)       # the children (www-data) read it


@pytest.fixture(scope="module", params=VARIANTS, ids=[v[0] for v in VARIANTS])
def server(request):
    _, mpm, tls = request.param
    d = Path(tempfile.mkdtemp(prefix="auth-", dir=httpd._base_dir()))
    os.chmod(d, 0o755)
    pw = d / "htpasswd"
    write_htpasswd(pw)
    echo = httpd.handler_path("echo")
    extra = locations() + """
<Location /auth>
    WebSocketHandler {echo}
    AuthType Basic
    AuthName "websocket tests"
    AuthBasicProvider file
    AuthUserFile {pw}
    Require valid-user
</Location>
<Location /denied>
    WebSocketHandler {echo}
    Require ip 10.0.0.1
</Location>
""".format(echo=echo, pw=pw)
    srv = make_server(mpm, tls, extra=extra)
    yield srv
    try:
        srv.stop()
    finally:
        srv.cleanup(keep=KEEP)
        shutil.rmtree(d, ignore_errors=True)


def basic(user, password):
    raw = ("%s:%s" % (user, password)).encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def assert_not_upgraded(resp, status):
    assert resp.status == status, "expected %d, got %r" % (status, resp)
    assert resp.get("sec-websocket-accept") is None, resp
    assert resp.get("upgrade", "").lower() != "websocket", resp


def test_no_credentials_is_401(client):
    conn, resp, _ = client.handshake("/auth")
    assert_not_upgraded(resp, 401)
    challenge = resp.get("www-authenticate", "")
    assert challenge.lower().startswith("basic"), resp
    assert 'realm="websocket tests"' in challenge, resp


@pytest.mark.parametrize("user,password", [
    (USER, "wrong"), (USER, ""), ("mallory", PASSWORD)],
    ids=["wrong-password", "empty-password", "unknown-user"])
def test_bad_credentials_are_401(client, user, password):
    conn, resp, _ = client.handshake(
        "/auth", extra=[("Authorization", basic(user, password))])
    assert_not_upgraded(resp, 401)


def test_right_credentials_upgrade_and_echo(client):
    conn = client.open("/auth",
                       extra=[("Authorization", basic(USER, PASSWORD))])
    conn.send_text("authorized")
    assert conn.recv_message() == (TEXT, b"authorized")
    conn.send_close(1000)
    conn.expect_close(1000)


def test_require_ip_denies_with_403(client):
    conn, resp, _ = client.handshake("/denied")
    assert_not_upgraded(resp, 403)


def test_websockets_client_with_and_without_credentials(server):
    kw = {"origin": server.origin, "compression": None,
          "ping_interval": None, "open_timeout": 10, "close_timeout": 10}
    if server.tls:
        kw["ssl"] = server.client_ssl_context()
    base = server.ws_url("/auth")

    async def refused():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            async with websockets.connect(base, **kw):
                pass
        return ei.value.status_code

    async def accepted():
        headers = {"Authorization": basic(USER, PASSWORD)}
        async with websockets.connect(base, extra_headers=headers,
                                      **kw) as ws:
            await ws.send("hello")
            got = await asyncio.wait_for(ws.recv(), 10)
            await ws.close(1000)
            return got, ws.close_code

    assert run_async(refused()) == 401
    assert run_async(accepted()) == ("hello", 1000)
