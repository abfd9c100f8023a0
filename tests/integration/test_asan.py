"""A representative part of the suite against a module built with
AddressSanitizer, on the event MPM (threads: pushes, wake-ups and the
driver meet there).

Once per session the module, the handlers and the test plugins are built
into build/asan with

    make BUILD=build/asan CFLAGS='-O1 -g -fsanitize=address
         -fno-omit-frame-pointer' module handlers test-plugins

(the Makefile passes CFLAGS to every object and to the link). httpd itself
is not instrumented, so it runs with the ASan runtime preloaded
(LD_PRELOAD of `gcc -print-file-name=libasan.so`) and

    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=<dir>/asan

Leak detection is off because httpd does not free its pools at exit: the
parent and every child exit with their configuration, process and
connection pools still allocated (by design, the OS reclaims them), so
LeakSanitizer would report httpd's own memory at every exit and drown
anything real. Leaks of the module's are looked for by test_memory.py
instead (RSS over many messages and connections).

Any report ASan writes (a file asan.<pid> in that directory) fails the
test during which it appeared; abort_on_error also makes the child die
with SIGABRT, which the error-log watch reports as a crash.

The tests below are the suite's own, imported from their modules: pytest
collects them here too, where `server` is the ASan server.
"""

import os
import subprocess
import time

import pytest

import httpd
import wsproto
from conftest import KEEP, LOG_OVERRIDES, locations
from support import ONE_CHILD, pusher_locations

# The suite's tests, run again against the ASan server. ---------------------
from test_echo import (  # noqa: F401  (collected by pytest)
    test_echo_websockets, test_echo_many_messages_one_connection,
    test_over_default_limit_is_1009, test_echo_raw_chopped,
    test_echo_raw_fragmented, test_many_frames_in_one_write,
    test_ping_answered_with_same_payload, test_ping_between_fragments,
    test_unsolicited_pong_is_ignored, test_close_1000_bye_raw,
    test_close_without_code, test_close_1_byte_payload_is_1002,
    test_invalid_close_code_is_1002, test_valid_close_code_is_echoed,
    test_close_reason_not_utf8_is_1007,
    test_close_with_125_byte_payload_is_echoed,
    test_data_after_close_is_ignored)
from test_frames import (  # noqa: F401
    test_unmasked_client_frame_is_1002, test_rsv_bits_without_extension_are_1002,
    test_reserved_opcode_is_1002, test_control_frame_over_125_is_1002,
    test_fragmented_control_frame_is_1002,
    test_continuation_without_message_is_1002,
    test_new_message_inside_fragmented_one_is_1002,
    test_64bit_length_with_top_bit_is_1002, test_invalid_utf8_text_is_1007,
    test_invalid_utf8_across_fragments_is_1007,
    test_message_ending_inside_character_is_1007,
    test_frame_over_limit_is_1009_from_header,
    test_message_over_limit_is_1009_from_header,
    test_fragments_at_limit_are_echoed, test_too_many_fragments_is_1008)
from test_push import (  # noqa: F401
    check_held_handle_answers_gone,
    test_push_from_plugin_thread_needs_no_client_input,
    test_push_to_many_connections_at_once)
from test_slow_consumer import test_stalled_client_flood  # noqa: F401
from test_lifecycle import test_unanswered_pings_end_in_idle_close  # noqa: F401
from wsproto import TEXT

ASAN_BUILD = httpd.BUILD / "asan"      # build/asan unless make passes BUILD
ASAN_CFLAGS = "-O1 -g -fsanitize=address -fno-omit-frame-pointer"


def libasan():
    out = subprocess.run(["gcc", "-print-file-name=libasan.so"],
                         capture_output=True, text=True, timeout=30)
    path = out.stdout.strip()
    if out.returncode != 0 or not os.path.isabs(path) \
            or not os.path.exists(path):
        pytest.fail("gcc -print-file-name=libasan.so found no ASan runtime "
                    "(%r); apt-get install gcc" % path, pytrace=False)
    return os.path.realpath(path)


@pytest.fixture(scope="session")
def asan_build():
    """build/asan, made once per session; fails with make's output."""
    cmd = ["make", "-j2", "BUILD=%s" % ASAN_BUILD, "CFLAGS=%s" % ASAN_CFLAGS,
           "module", "handlers", "test-plugins"]
    r = subprocess.run(cmd, cwd=str(httpd.REPO), capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail("%s failed:\n%s%s" % (" ".join(cmd), r.stdout[-3000:],
                                          r.stderr[-3000:]), pytrace=False)
    so = ASAN_BUILD / "mod_websocket.so"
    # make only looks at timestamps: objects built into build/asan without
    # ASAN_CFLAGS would be kept. Say so rather than test the wrong build.
    for f in [so, ASAN_BUILD / "handlers" / "echo.so",
              ASAN_BUILD / "test-plugins" / "pusher.so"]:
        if b"__asan_report" not in f.read_bytes():
            pytest.fail("%s is not built with AddressSanitizer (stale "
                        "build?): rm -rf %s and rerun" % (f, ASAN_BUILD),
                        pytrace=False)
    return ASAN_BUILD


class AsanHttpd(httpd.Httpd):
    """An Httpd that loads build/asan's module and runs apache2 with the
    ASan runtime preloaded and reports written to <dir>/asan-logs."""

    # ASan holds freed memory in its quarantine (256 MiB by default) to
    # catch uses after free, so RSS bounds (test_slow_consumer) do not
    # apply.
    rss_is_meaningful = False

    def __init__(self, *args, build, runtime, **kw):
        self.build, self.runtime = build, runtime
        super().__init__(*args, **kw)
        self.asan_dir = self.dir / "asan-logs"
        self.asan_dir.mkdir()
        os.chmod(self.asan_dir, 0o777)      # the children run as www-data

    def _load_lines(self):
        return super()._load_lines().replace(
            str(httpd.MODULE_SO), str(self.build / "mod_websocket.so"))

    def _apache(self, *args, timeout=60):
        env = dict(os.environ)
        env["LD_PRELOAD"] = self.runtime
        env["ASAN_OPTIONS"] = ("detect_leaks=0:abort_on_error=1:"
                               "log_path=%s/asan" % self.asan_dir)
        r = subprocess.run([httpd.APACHE, "-f", str(self.conf)] + list(args),
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env=env)
        return r.returncode, (r.stdout + r.stderr).strip()

    def reports(self):
        return sorted(self.asan_dir.glob("asan*"))

    def report_text(self, limit=6000):
        out = []
        for p in self.reports():
            out.append("--- %s\n%s" % (p.name, p.read_text(errors="replace")))
        return "\n".join(out)[:limit]


def asan_locations(build):
    return (locations().replace(str(httpd.HANDLERS), str(build / "handlers"))
            + pusher_locations(build / "test-plugins" / "pusher.so"))


def start_asan_server(build, name, server_config=""):
    srv = AsanHttpd("event", build=build, runtime=libasan(),
                    extra=asan_locations(build), server_config=server_config,
                    log_overrides=LOG_OVERRIDES, name=name)
    rc, out = srv.configtest()
    if rc != 0:
        srv.cleanup(keep=KEEP)
        pytest.fail("apache2 -t under ASan: %s\n%s" % (out, srv.report_text()),
                    pytrace=False)
    try:
        srv.start()
    except httpd.HttpdError as e:
        text = "%s\n%s" % (e, srv.report_text())
        srv.cleanup(keep=KEEP)
        pytest.fail(text, pytrace=False)
    # The runtime is really in the children, not only asked for.
    for pid in srv.child_pids():
        with open("/proc/%d/maps" % pid) as f:
            assert "libasan" in f.read(), "child %d has no ASan runtime" % pid
    return srv


@pytest.fixture(scope="module")
def server(asan_build):
    """The ASan server, named `server` so the imported tests, `client`
    and the error-log watch use it."""
    srv = start_asan_server(asan_build, "asan-event")
    yield srv
    try:
        srv.stop()
    finally:
        leftover = srv.report_text()
        srv.cleanup(keep=KEEP or bool(leftover))
    # A report written while the server stopped (process_exit, pool
    # cleanups) fails the module's teardown.
    assert not leftover, "AddressSanitizer reports at shutdown:\n" + leftover


@pytest.fixture(autouse=True)
def _no_new_asan_reports(request):
    """Fail the test during which an ASan report appeared."""
    if "server" not in request.fixturenames:
        yield
        return
    srv = request.getfixturevalue("server")
    before = set(srv.reports())
    yield
    # A report is written as the error is found; give a child that is
    # aborting a moment to finish writing it.
    time.sleep(0.05)
    new = [p for p in srv.reports() if p not in before]
    if new:
        pytest.fail("AddressSanitizer report(s) during this test:\n"
                    + "\n".join(p.read_text(errors="replace")[:4000]
                                for p in new), pytrace=False)


# ----------------------------------------------- tests of this module's own

def test_asan_held_handle_answers_gone(asan_build):
    # The lingering handle's send after the connection is freed is the
    # use-after-free ASan would see first; one child so the counter is
    # shared (see test_push).
    srv = start_asan_server(asan_build, "asan-linger",
                            server_config=ONE_CHILD["event"])
    try:
        check_held_handle_answers_gone(srv)
        # More of them, at once, with pushes in flight as they close.
        c = wsproto.Client(srv)
        try:
            conns = [c.open("/push") for _ in range(10)]
            for conn in conns:
                conn.send_text("linger")
                conn.send_text("push 200")
            for conn in conns:
                conn.close()        # abruptly, pushes still queued
            probe = c.open("/push")
            probe.send_text("stats")
            assert probe.recv_message()[0] == TEXT
        finally:
            c.close_all()
    finally:
        srv.stop()
        text = srv.report_text()
        srv.cleanup(keep=KEEP or bool(text))
    assert not text, "AddressSanitizer reports:\n" + text
    assert "exit signal" not in srv.error_log(), srv.error_log()[-3000:]


def test_asan_graceful_restart_with_open_websockets(asan_build):
    # child_stopping's close-all walks the connection registry while the
    # drivers finish: on the event MPM those run on other threads.
    srv = start_asan_server(asan_build, "asan-graceful")
    try:
        c = wsproto.Client(srv)
        try:
            conns = [c.open(path) for path in ("/echo", "/push") * 3]
            for conn in conns[1::2]:
                conn.send_text("push 1000")
            srv.graceful()
            for conn in conns:
                conn.expect_close(1001, timeout=15)
            conn = c.open("/echo")
            conn.send_text("new generation")
            assert conn.recv_message() == (TEXT, b"new generation")
        finally:
            c.close_all()
    finally:
        srv.stop()
        text = srv.report_text()
        log = srv.error_log()
        srv.cleanup(keep=KEEP or bool(text))
    assert not text, "AddressSanitizer reports:\n" + text
    assert "exit signal" not in log, log[-3000:]
