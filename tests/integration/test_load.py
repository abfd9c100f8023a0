"""500 WebSockets open at once on the event MPM, plain and over TLS.

The blocking driver holds a worker thread per WebSocket, so the server is
sized for it: 2 children x 300 threads (MaxRequestWorkers 600). All 500
connections open before any echoes; then each echoes a few messages
(text and binary, up to 64 KiB); then all close with 1000. The figures are
printed; there is no timing assertion beyond the bounded wait.
"""

import asyncio
import time

import pytest
import websockets

from helpers import binary_of_size, run_async, text_of_size

N_CONNS = 500
LOAD_MPM = """
ServerLimit 2
StartServers 2
ThreadLimit 300
ThreadsPerChild 300
MinSpareThreads 25
MaxSpareThreads 600
MaxRequestWorkers 600
ListenBacklog 1024
"""
MESSAGES = [text_of_size(10), binary_of_size(200), text_of_size(4000),
            binary_of_size(65536), "last"]


@pytest.mark.parametrize("tls", [False, True], ids=["event", "event+ssl"])
def test_500_concurrent_connections_echo_and_close(fresh_server, capsys, tls):
    srv = fresh_server("event", tls, name="load-event",
                       server_config=LOAD_MPM)
    kw = {"origin": srv.origin, "compression": None, "ping_interval": None,
          "open_timeout": 60, "close_timeout": 30, "max_size": None}
    if tls:
        kw["ssl"] = srv.client_ssl_context()
    url = srv.ws_url("/echo")
    marks = {}

    async def open_one(i):
        # Spread the SYNs over the first moments a little, as real
        # clients would be; every connection is still open at once.
        await asyncio.sleep((i % 50) * 0.002)
        return await websockets.connect(url, **kw)

    async def echo(ws, i):
        for m in MESSAGES:
            await ws.send(m)
            got = await asyncio.wait_for(ws.recv(), 60)
            if got != m:
                return "connection %d: echo of %d bytes differs" % (i,
                                                                     len(m))
        return None

    async def go():
        t0 = time.monotonic()
        results = await asyncio.gather(*[open_one(i) for i in range(N_CONNS)],
                                       return_exceptions=True)
        marks["open"] = time.monotonic() - t0
        socks = [r for r in results if not isinstance(r, BaseException)]
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        try:
            assert not errors, "%d of %d connections failed to open: %s" % (
                len(errors), N_CONNS, errors[:5])
            assert all(ws.open for ws in socks)
            t1 = time.monotonic()
            bad = await asyncio.gather(*[echo(ws, i)
                                         for i, ws in enumerate(socks)])
            marks["echo"] = time.monotonic() - t1
            bad = [b for b in bad if b]
            assert not bad, bad[:5]
            t2 = time.monotonic()
            await asyncio.gather(*[ws.close(1000, "done") for ws in socks])
            marks["close"] = time.monotonic() - t2
            return [ws.close_code for ws in socks]
        finally:
            await asyncio.gather(*[ws.close() for ws in socks],
                                 return_exceptions=True)

    start = time.monotonic()
    codes = run_async(go(), timeout=240)
    total = time.monotonic() - start
    not_clean = [c for c in codes if c != 1000]
    assert not not_clean, "%d connections closed with %s" % (
        len(not_clean), sorted(set(not_clean)))
    assert len(codes) == N_CONNS
    with capsys.disabled():
        print("\n[load] %d WebSockets on %s: open %.2fs, %d echoes each "
              "%.2fs, close %.2fs, total %.2fs"
              % (N_CONNS, srv.variant, marks["open"], len(MESSAGES), marks["echo"],
                 marks["close"], total))
    # Sized so that no connection waited for a thread.
    log = srv.error_log()
    assert "reached MaxRequestWorkers" not in log, [
        l for l in log.splitlines() if "reached MaxRequestWorkers" in l]
