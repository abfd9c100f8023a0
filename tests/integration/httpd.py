"""A throw-away Apache httpd for the integration tests.

Httpd(mpm, tls=...) writes a complete httpd.conf into a fresh directory
(ServerRoot) and drives /usr/sbin/apache2 with -f/-k: start, stop,
graceful restart, graceful stop, configtest. Every wait is bounded; a
server that does not stop in time has its process group killed and the
call fails. Every server started is remembered and killed at interpreter
exit, so a crashed or interrupted test run leaves no httpd behind.

Run `python3 tests/integration/httpd.py` to print which prerequisites and
build artifacts are missing.
"""

import atexit
import os
import pwd
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# make passes its BUILD folder (relative to the repo, or absolute).
BUILD = REPO / os.environ.get("BUILD", "build")
MODULE_SO = BUILD / "mod_websocket.so"
HANDLERS = BUILD / "handlers"

APACHE = os.environ.get("MWS_APACHE", "/usr/sbin/apache2")
MODULES_DIR = Path(os.environ.get("MWS_APACHE_MODULES",
                                  "/usr/lib/apache2/modules"))
MPMS = ("prefork", "worker", "event")

# Modules every test server loads: what a real site has in front of a
# WebSocket location (auth, authz, mime) plus reqtimeout, which the product
# must survive (it kills idle upgraded connections unless removed).
BASE_MODULES = (
    ("authz_core_module", "mod_authz_core.so"),
    ("authz_host_module", "mod_authz_host.so"),
    ("authn_core_module", "mod_authn_core.so"),
    ("authn_file_module", "mod_authn_file.so"),
    ("auth_basic_module", "mod_auth_basic.so"),
    ("authz_user_module", "mod_authz_user.so"),
    ("mime_module", "mod_mime.so"),
    ("reqtimeout_module", "mod_reqtimeout.so"),
)
TLS_MODULES = (
    ("socache_shmcb_module", "mod_socache_shmcb.so"),
    ("ssl_module", "mod_ssl.so"),
)

START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0

_running = set()  # Httpd instances that may have a live process


class HttpdError(AssertionError):
    """httpd did not do what was asked; the message carries its log."""


class MissingArtifact(AssertionError):
    """A build product the tests need is not there."""


# ------------------------------------------------------------ prerequisites

def handler_path(name):
    return HANDLERS / ("%s.so" % name)


def require_built(*handlers):
    """Raise MissingArtifact naming the first missing build product."""
    if not MODULE_SO.is_file():
        raise MissingArtifact("build/mod_websocket.so not found: run make "
                              "(looked for %s)" % MODULE_SO)
    for name in handlers:
        if not handler_path(name).is_file():
            raise MissingArtifact(
                "build/handlers/%s.so not found: run make (handlers/%s/ "
                "builds it)" % (name, name))


def missing_prerequisites():
    """Human-readable lines for everything the suite needs and lacks."""
    missing = []
    if not os.access(APACHE, os.X_OK):
        missing.append("%s: not found (apt-get install apache2)" % APACHE)
    for mpm in MPMS:
        so = MODULES_DIR / ("mod_mpm_%s.so" % mpm)
        if not so.is_file():
            missing.append("%s: not found" % so)
    for _, so in BASE_MODULES + TLS_MODULES:
        if not (MODULES_DIR / so).is_file():
            missing.append("%s: not found" % (MODULES_DIR / so))
    if shutil.which("openssl") is None:
        missing.append("openssl: not found (apt-get install openssl)")
    if not MODULE_SO.is_file():
        missing.append("build/mod_websocket.so not found: run make")
    if not handler_path("echo").is_file():
        missing.append("build/handlers/echo.so not found: run make")
    return missing


def _readable_by(path, user):
    """Whether `user` can reach and read `path`, from its mode bits alone
    (as root, os.access() would always say yes)."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return True
    path = Path(path).resolve()
    for p in list(reversed(path.parents)) + [path]:
        st = p.stat()
        need = stat.S_IXOTH if p != path or p.is_dir() else stat.S_IROTH
        if st.st_uid == pw.pw_uid:
            need <<= 6
        elif st.st_gid == pw.pw_gid:
            need <<= 3
        if not st.st_mode & need:
            return False
    return True


def free_port():
    """A port the kernel just handed out. Another process could take it
    before httpd binds it; start() retries on 'Address already in use'."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children_of(ppid):
    """Pids whose parent is ppid, from /proc."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid and fields[0] != "Z":
            kids.append(int(entry))
    return sorted(kids)


def _wait(predicate, timeout, interval=0.05):
    """Poll predicate until true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _base_dir():
    """Where server directories go. run.sh sets MWS_TEST_RUNDIR so it can
    find and kill anything left behind; otherwise the system temp dir."""
    base = os.environ.get("MWS_TEST_RUNDIR")
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o755)   # the children run as www-data
        return base
    return None


def make_cert(directory):
    """A self-signed certificate for 127.0.0.1 and localhost."""
    cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
           "-keyout", str(key), "-out", str(cert), "-days", "2",
           "-subj", "/CN=127.0.0.1",
           # mod_ssl matches ServerName against DNS names only, clients
           # match an IP against IP entries: give both. A leaf, not a CA,
           # so mod_ssl does not warn.
           "-addext",
           "subjectAltName=DNS:127.0.0.1,DNS:localhost,IP:127.0.0.1",
           "-addext", "basicConstraints=critical,CA:FALSE"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise HttpdError("openssl failed: %s" % r.stderr)
    os.chmod(key, 0o644)   # test-only key; readable so www-data is no issue
    return cert, key


# ------------------------------------------------------------------- server

class Httpd:
    """One httpd: its directory, config and process.

    mpm:        "prefork" | "worker" | "event"
    tls:        serve HTTPS (mod_ssl, a self-signed cert made now)
    websocket:  LoadModule websocket_module build/mod_websocket.so
    extra:      config text appended to the server config (Locations...)
    log_level:  the LogLevel (graceful() reads httpd's notice lines,
                which httpd 2.4 logs at every level)
    log_overrides: per-module levels, e.g. ["websocket:trace1"]
    server_config: config text placed before `extra` for server-wide
                directives (Timeout, RequestReadTimeout...)
    """

    def __init__(self, mpm="event", *, tls=False, websocket=True, extra="",
                 log_level="info", log_overrides=(), server_config="",
                 name=None):
        if mpm not in MPMS:
            raise ValueError("unknown MPM %r" % mpm)
        self.mpm, self.tls, self.websocket = mpm, tls, websocket
        self.extra, self.server_config = extra, server_config
        self.log_level, self.log_overrides = log_level, list(log_overrides)
        self.dir = Path(tempfile.mkdtemp(
            prefix="httpd-%s-" % (name or self.variant), dir=_base_dir()))
        os.chmod(self.dir, 0o755)
        for sub in ("logs", "run", "htdocs"):
            (self.dir / sub).mkdir()
        self.conf = self.dir / "httpd.conf"
        self.pidfile = self.dir / "run" / "httpd.pid"
        self.errorlog = self.dir / "logs" / "error.log"
        self.docroot = self.dir / "htdocs"
        self.port = None
        self.pid = None
        self.cert = self.key = None
        if tls:
            self.cert, self.key = make_cert(self.dir)
        self._write_docroot()

    # -- names and addresses

    @property
    def variant(self):
        return self.mpm + ("+ssl" if self.tls else "")

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def host(self):
        return "127.0.0.1"

    @property
    def hostport(self):
        """The Host header value clients send."""
        return "%s:%d" % (self.host, self.port)

    @property
    def origin(self):
        """This server's own origin (same-origin for WebSocketOrigin)."""
        return "%s://%s" % (self.scheme, self.hostport)

    def url(self, path="/"):
        return "%s://%s%s" % (self.scheme, self.hostport, path)

    def ws_url(self, path="/"):
        return "%s://%s%s" % ("wss" if self.tls else "ws", self.hostport,
                              path)

    def client_ssl_context(self):
        """A client context that trusts exactly this server's cert."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.cert))
        return ctx

    # -- configuration

    def _write_docroot(self):
        (self.docroot / "index.html").write_text("<p>mod_websocket tests</p>\n")
        (self.docroot / "hello.txt").write_text("hello from httpd\n")
        for p in self.docroot.iterdir():
            os.chmod(p, 0o644)

    def _load_lines(self):
        mods = [("mpm_%s_module" % self.mpm, "mod_mpm_%s.so" % self.mpm)]
        mods += BASE_MODULES
        if self.tls:
            mods += TLS_MODULES
        lines = ["LoadModule %s %s" % (m, MODULES_DIR / so) for m, so in mods]
        if self.websocket:
            lines.append("LoadModule websocket_module %s" % MODULE_SO)
            # run.sh's second pass: the event MPM's tests again with the
            # other driver, chosen server-wide.
            if os.environ.get("MWS_DRIVER"):
                lines.append("WebSocketDriver %s" % os.environ["MWS_DRIVER"])
        return "\n".join(lines)

    def _mpm_block(self):
        # Small pools: enough for the tests (each WebSocket holds a process
        # under prefork, a thread under worker), quick to start on 2 cores.
        if self.mpm == "prefork":
            return textwrap.dedent("""\
                StartServers 2
                MinSpareServers 2
                MaxSpareServers 8
                ServerLimit 64
                MaxRequestWorkers 64
                MaxConnectionsPerChild 0""")
        return textwrap.dedent("""\
            StartServers 2
            ServerLimit 4
            ThreadLimit 25
            ThreadsPerChild 25
            MinSpareThreads 25
            MaxSpareThreads 75
            MaxRequestWorkers 100
            MaxConnectionsPerChild 0""")

    def _tls_block(self):
        if not self.tls:
            return ""
        return textwrap.dedent("""\
            SSLSessionCache "shmcb:{d}/run/ssl_scache(512000)"
            SSLEngine on
            SSLCertificateFile {cert}
            SSLCertificateKeyFile {key}
            SSLProtocol -all +TLSv1.2 +TLSv1.3""").format(
                d=self.dir, cert=self.cert, key=self.key)

    def _user_block(self):
        # httpd refuses to run children as root; www-data is Debian's user.
        if os.geteuid() != 0:
            return ""
        return "User www-data\nGroup www-data"

    def config_text(self):
        # No ScoreBoardFile: Debian's httpd keeps the scoreboard in
        # anonymous shared memory, so nothing is left on disk or in SysV.
        levels = " ".join([self.log_level] + self.log_overrides)
        return textwrap.dedent("""\
            # Generated by tests/integration/httpd.py for one test server.
            ServerRoot "{d}"
            DefaultRuntimeDir "{d}/run"
            PidFile "{d}/run/httpd.pid"
            Listen 127.0.0.1:{port}
            ServerName 127.0.0.1
            ServerAdmin tests@localhost
            {load}
            {user}
            ErrorLog "{d}/logs/error.log"
            LogLevel {levels}
            LogFormat "%h %t \\"%r\\" %>s %b %D" timed
            CustomLog "{d}/logs/access.log" timed
            TypesConfig /etc/mime.types
            Timeout 30
            KeepAlive On
            KeepAliveTimeout 5
            GracefulShutdownTimeout 10
            {mpm}
            DocumentRoot "{d}/htdocs"
            <Directory />
                AllowOverride None
                Require all denied
            </Directory>
            <Directory "{d}/htdocs">
                Require all granted
            </Directory>
            {tls}
            {server_config}
            {extra}
            """).format(d=self.dir, port=self.port, load=self._load_lines(),
                        user=self._user_block(), levels=levels,
                        mpm=self._mpm_block(), tls=self._tls_block(),
                        server_config=self.server_config, extra=self.extra)

    def write_config(self):
        if self.port is None:
            self.port = free_port()
        self.conf.write_text(self.config_text())
        os.chmod(self.conf, 0o644)
        return self.conf

    def check_permissions(self):
        """Fail early, clearly, if the children's user cannot read what
        they load (the module and plugins live in the repo)."""
        if os.geteuid() != 0:
            return
        paths = [self.docroot]
        if self.websocket:
            paths.append(MODULE_SO)
            if HANDLERS.is_dir():
                paths += sorted(HANDLERS.glob("*.so"))
        for p in paths:
            if p.exists() and not _readable_by(p, "www-data"):
                raise HttpdError("%s is not readable by www-data (check the "
                                 "mode of it and of every parent directory)"
                                 % p)

    # -- commands

    def _apache(self, *args, timeout=60):
        r = subprocess.run([APACHE, "-f", str(self.conf)] + list(args),
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        return r.returncode, (r.stdout + r.stderr).strip()

    def configtest(self):
        """(exit code, output) of `apache2 -t` on the generated config."""
        self.write_config()
        return self._apache("-t")

    def _accepts(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def _read_pid(self):
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, attempts=3):
        """Start httpd (it daemonizes) and wait until the port accepts."""
        if self.websocket:
            require_built()
        for attempt in range(attempts):
            self.write_config()
            self.check_permissions()
            _running.add(self)
            rc, out = self._apache("-k", "start")
            if rc == 0 and _wait(lambda: self._read_pid() and
                                 self._accepts(), START_TIMEOUT):
                self.pid = self._read_pid()
                return self
            log = self.error_log()
            self._kill_leftovers()
            if "Address already in use" in out + log and attempt + 1 < attempts:
                self.port = None    # someone took the port: pick another
                continue
            raise HttpdError("httpd (%s) did not start: exit %s\n%s\n"
                             "--- error log tail ---\n%s"
                             % (self.variant, rc, out, tail(log)))
        raise AssertionError("unreachable")

    def stop(self):
        """`-k stop`, then wait (bounded) for the parent to be gone; on
        timeout kill the process group and fail."""
        pid = self.pid or self._read_pid()
        if pid is None or not _pid_alive(pid):
            self._forget()
            return
        self._apache("-k", "stop")
        if not _wait(lambda: not _pid_alive(pid), STOP_TIMEOUT):
            self._kill_leftovers()
            raise HttpdError("httpd %d did not stop within %ds; killed.\n%s"
                             % (pid, STOP_TIMEOUT, tail(self.error_log())))
        self._forget()

    def graceful(self, timeout=START_TIMEOUT):
        """Graceful restart: returns once the new generation has said
        'resuming normal operations' and the port accepts."""
        before = self.error_log().count("resuming normal operations")
        rc, out = self._apache("-k", "graceful")
        if rc != 0:
            raise HttpdError("apache2 -k graceful: exit %d\n%s" % (rc, out))
        ok = _wait(lambda: self.error_log().count(
            "resuming normal operations") > before and self._accepts(),
            timeout)
        if not ok:
            raise HttpdError("graceful restart not done in %ds\n%s"
                             % (timeout, tail(self.error_log())))

    def graceful_stop(self, wait=True, timeout=STOP_TIMEOUT):
        """Graceful stop (SIGWINCH): children finish their connections,
        up to GracefulShutdownTimeout (10 s). With wait, returns when the
        parent is gone (bounded; kills and fails otherwise)."""
        pid = self.pid or self._read_pid()
        rc, out = self._apache("-k", "graceful-stop")
        if rc != 0:
            raise HttpdError("apache2 -k graceful-stop: exit %d\n%s"
                             % (rc, out))
        if not wait:
            return
        self.wait_stopped(pid, timeout)

    def wait_stopped(self, pid=None, timeout=STOP_TIMEOUT):
        pid = pid or self.pid
        if pid and not _wait(lambda: not _pid_alive(pid), timeout):
            self._kill_leftovers()
            raise HttpdError("httpd %d still running %ds after stop; killed"
                             % (pid, timeout))
        self._forget()

    def running(self):
        pid = self.pid or self._read_pid()
        return bool(pid) and _pid_alive(pid)

    def child_pids(self):
        """The children of the parent process (one per MPM process)."""
        pid = self.pid or self._read_pid()
        return _children_of(pid) if pid else []

    def error_log(self):
        try:
            return self.errorlog.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def error_log_size(self):
        try:
            return self.errorlog.stat().st_size
        except FileNotFoundError:
            return 0

    def error_log_since(self, offset):
        try:
            with open(self.errorlog, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def cleanup(self, keep=False):
        """Stop if needed and remove the directory (unless keep)."""
        try:
            self.stop()
        finally:
            if not keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    # -- last resort

    def _kill_leftovers(self):
        """SIGKILL the daemon's process group (httpd detaches with setsid,
        so the group id is the parent's pid) and any child still around."""
        pid = self.pid or self._read_pid()
        if pid:
            kids = _children_of(pid)
            if _pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _wait(lambda: not _pid_alive(pid), 5)
        self._forget()

    def _forget(self):
        self.pid = None
        _running.discard(self)


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _kill_all_running():
    for server in list(_running):
        try:
            server._kill_leftovers()
        except Exception:       # atexit: never raise
            pass


def install_signal_cleanup():
    """On SIGTERM or SIGHUP (a CI timeout, a closed terminal) kill our
    servers, then die of the signal as we would have: atexit handlers do
    not run for a signal's default action. Handlers someone else set are
    left alone."""
    def handler(signum, frame):
        _kill_all_running()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, handler)


def main():
    missing = missing_prerequisites()
    for line in missing:
        print("missing: " + line)
    if not missing:
        print("all prerequisites and build artifacts present")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
