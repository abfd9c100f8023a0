"""Shared pieces for the push, slow-consumer, load, memory, auth, startup
and ASan tests: the pusher test plugin's locations, servers sized for a
test, /proc memory readings, a client that does not read, and a check that
no httpd process of a config survives.

The pusher plugin (tests/integration/plugins/pusher.c) is built by
`make test-plugins` into build/test-plugins/pusher.so.
"""

import os
import socket
import time
from pathlib import Path

import pytest

import httpd
import wsproto

TEST_PLUGINS = httpd.BUILD / "test-plugins"
PUSHER_SO = TEST_PLUGINS / "pusher.so"

QUEUE_LIMIT = "256K"
SLOW_POLICIES = ("refuse", "close-1008", "close-1013")


def require_pusher(so=PUSHER_SO):
    """Fail (not skip) the test when the pusher plugin is not built."""
    if not Path(so).is_file():
        pytest.fail("%s not found: run make test-plugins" % so,
                    pytrace=False)


def flood_payload(size):
    """What each of the pusher's "flood N SIZE" messages holds."""
    return bytes(ord("a") + i % 26 for i in range(size))


def pusher_locations(so=PUSHER_SO):
    """/push (defaults) and one /slow-<policy> location per queue policy,
    each with a 256K queue, all served by the pusher plugin."""
    text = """
<Location /push>
    WebSocketHandler {so} pusher_plugin
</Location>
""".format(so=so)
    for policy in SLOW_POLICIES:
        text += """
<Location /slow-{policy}>
    WebSocketHandler {so} pusher_plugin
    WebSocketQueueLimit {limit}
    WebSocketQueuePolicy {policy}
</Location>
""".format(so=so, policy=policy, limit=QUEUE_LIMIT)
    return text


# MPM settings placed after the harness's own (the last one wins): one
# child process, so a plugin's per-process state (pusher's gone counter)
# is the state every connection sees.
ONE_CHILD = {
    "prefork": """
StartServers 1
MinSpareServers 1
MaxSpareServers 1
ServerLimit 1
MaxRequestWorkers 1
""",
    "worker": """
StartServers 1
ServerLimit 1
ThreadLimit 25
ThreadsPerChild 25
MinSpareThreads 1
MaxSpareThreads 25
MaxRequestWorkers 25
""",
}
ONE_CHILD["event"] = ONE_CHILD["worker"]


# ------------------------------------------------------------------ /proc

def proc_status(pid, field):
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM...) in KiB, or
    None if the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kib(pids):
    """{pid: VmRSS in KiB} for the pids still alive."""
    out = {}
    for pid in pids:
        v = proc_status(pid, "VmRSS")
        if v is not None:
            out[pid] = v
    return out


def processes_using(conf):
    """Live pids whose command line names this config file."""
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


# ------------------------------------------------------ a stalled client

class StalledConn(wsproto.RawConn):
    """A RawConn whose receive buffer is made small before connect, so
    that a client that stops reading stops the server's writes early."""

    def __init__(self, server, rcvbuf=4096, timeout=wsproto.DEFAULT_TIMEOUT):
        self.timeout = timeout
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        sock.connect((server.host, server.port))
        ctx = server.client_ssl_context()
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_hostname=server.host)
        self.sock = sock
        self.buf = bytearray()
        self.eof = False


def open_stalled(server, path, rcvbuf=4096):
    """A StalledConn that completed its handshake (asserted)."""
    conn = StalledConn(server, rcvbuf=rcvbuf)
    key = wsproto.make_key()
    resp = conn.handshake(wsproto.build_request(
        path, server.hostport, key=key, origin=server.origin),
        chopped_write=False)
    wsproto.assert_upgraded(resp, key)
    return conn


def wait_for(predicate, timeout, interval=0.05):
    """Poll until predicate() is true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
