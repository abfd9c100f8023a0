"""Helpers shared by the test modules: bounded asyncio runs, payload
makers, and the Node `ws` client driver."""

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

MiB = 1 << 20

# The server variants every test runs against: (id, mpm, tls).
VARIANTS = [
    ("prefork", "prefork", False),
    ("worker", "worker", False),
    ("event", "event", False),
    ("event+ssl", "event", True),
]

# A unit with 1-, 2-, 3- and 4-byte UTF-8 characters, so text payloads cross
# character boundaries at every frame and read split.
_TEXT_UNIT = "h\u00e9llo w\u00f6rld \u20ac\U0001F600 "


def text_of_size(n):
    """A str whose UTF-8 encoding is exactly n bytes."""
    unit = _TEXT_UNIT.encode("utf-8")
    k, r = divmod(n, len(unit))
    return (unit * k).decode("utf-8") + "x" * r


def binary_of_size(n):
    """n bytes of every value in a 251-byte cycle (prime, so it never lines
    up with the 4-byte mask)."""
    unit = bytes(range(251))
    k, r = divmod(n, len(unit))
    return unit * k + unit[:r]


def run_async(coro, timeout=60):
    """Run a coroutine with a hard bound on its time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


NODE = shutil.which("node")
WS_CLIENT = HERE / "ws_client.js"


def node_ws_missing():
    """Why the Node tests cannot run, or None."""
    if NODE is None:
        return "node not found (apt-get install nodejs)"
    if not (HERE / "node_modules" / "ws" / "package.json").is_file():
        return ("tests/integration/node_modules/ws missing: run "
                "`npm ci` in tests/integration (run.sh does)")
    return None


def run_node_client(server, path, messages, *, options=None, protocols=None,
                    timeout=60):
    """Run ws_client.js against the server; returns its JSON result."""
    why = node_ws_missing()
    if why:
        pytest.skip("Node ws client: " + why)
    spec = {"url": server.ws_url(path), "origin": server.origin,
            "ca": str(server.cert) if server.tls else None,
            "messages": messages, "options": options or {},
            "protocols": protocols or [],
            "timeout_ms": int(timeout * 1000) - 5000}
    r = subprocess.run([NODE, str(WS_CLIENT), json.dumps(spec)],
                       capture_output=True, text=True, timeout=timeout,
                       cwd=str(HERE))
    assert r.returncode in (0, 1), ("ws_client.js exit %d\nstdout: %s\n"
                                    "stderr: %s" % (r.returncode, r.stdout,
                                                    r.stderr))
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError("ws_client.js printed no JSON:\nstdout: %s\n"
                             "stderr: %s" % (r.stdout, r.stderr))
