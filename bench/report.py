#!/usr/bin/env python3
"""bench/report.py RESULTS.jsonl [--took SECONDS]: the benchmark's table.

Reads the JSON lines bench/run.sh collected (ws_load's results, the
status of runs that were not possible or skipped, the system-call counts)
and prints, per scenario, the median of every figure over the repetitions
and a ratio against the best peer of that scenario (1.00 = best; 2.00 =
half the rate, or twice the latency or memory, of the best).
"""
import json
import statistics
import sys

SCENARIOS = [
    ("latency", "1 connection ping-pong, 64 B text (latency)",
     "lat_p50_us", "low"),
    ("echo64", "100 connections x 64 B text, 1 in flight each",
     "msg_per_s", "high"),
    ("echo16k", "100 connections x 16 KiB binary, 1 in flight each",
     "msg_per_s", "high"),
    ("pipelined", "100 connections x 64 B text, 16 in flight each",
     "msg_per_s", "high"),
    ("handshakes", "handshake churn, 16 at once (connect, upgrade, close)",
     "handshakes_per_s", "high"),
    ("idle10k", "idle connections held, then one echo each",
     "bytes_per_conn", "low"),
    ("fanout1k", "broadcast to 1,000 connections (burst 100 x 64 B)",
     "deliveries_per_s", "high"),
    ("fanout10k", "broadcast to 10,000 connections (burst 10 x 64 B)",
     "deliveries_per_s", "high"),
    ("json1k", "100 connections x 1 KiB JSON text, 1 in flight each, "
     "no compression", "msg_per_s", "high"),
    ("json1k-deflate", "100 connections x 1 KiB JSON text, 1 in flight "
     "each, permessage-deflate", "msg_per_s", "high"),
    ("idle-json", "idle connections after one 1 KiB JSON echo each, no "
     "compression", "bytes_per_conn", "low"),
    ("idle-deflate", "idle connections after one 1 KiB JSON echo each, "
     "permessage-deflate", "bytes_per_conn", "low"),
    ("pubsub1k", "one publisher, 1,000 subscribers (burst 100 x 64 B, "
     "stamped)", "deliveries_per_s", "high"),
    ("pubsub10k", "one publisher, 10,000 subscribers (burst 20 x 64 B, "
     "stamped)", "deliveries_per_s", "high"),
]
PUBSUB = ("pubsub1k", "pubsub10k")
# A second ratio beside the main one: (header, key, better).
SECOND_RATIO = {s: ("p50 ratio", "lat_p50_us", "low") for s in PUBSUB}
IDLE = ("idle10k", "idle-json", "idle-deflate")
IDLE_TITLE = {
    "idle10k": "%s idle connections held %ss, then one echo each",
    "idle-json": "%s connections, one 1 KiB JSON echo each, held %ss idle "
                 "(no compression), then one more echo",
    "idle-deflate": "%s connections, one compressed 1 KiB JSON echo each, "
                    "held %ss idle, then one more echo",
}

# Columns: (header, key or function, format)
def col_rss(r):
    return r.get("server_rss_kb", 0) / 1024.0


COMMON_TAIL = [
    ("threads", "server_threads", "{:.0f}"),
    ("RSS MiB", col_rss, "{:.1f}"),
    ("client%", "client_cpu_window_pct", "{:.0f}"),
    ("other%", "other_cpu_pct", "{:.0f}"),
]

COLUMNS = {
    "latency": [("p50 us", "lat_p50_us", "{:.0f}"),
                ("p99 us", "lat_p99_us", "{:.0f}"),
                ("msg/s", "msg_per_s", "{:.0f}"),
                ("CPU us/msg", "server_cpu_us_per_msg", "{:.1f}")],
    "echo64": [("msg/s", "msg_per_s", "{:.0f}"),
               ("CPU us/msg", "server_cpu_us_per_msg", "{:.1f}"),
               ("p50 us", "lat_p50_us", "{:.0f}"),
               ("p99 us", "lat_p99_us", "{:.0f}")],
    "echo16k": [("msg/s", "msg_per_s", "{:.0f}"),
                ("MiB/s", "mib_per_s", "{:.0f}"),
                ("CPU us/msg", "server_cpu_us_per_msg", "{:.1f}"),
                ("p99 us", "lat_p99_us", "{:.0f}")],
    "pipelined": [("msg/s", "msg_per_s", "{:.0f}"),
                  ("CPU us/msg", "server_cpu_us_per_msg", "{:.1f}"),
                  ("p50 us", "lat_p50_us", "{:.0f}"),
                  ("p99 us", "lat_p99_us", "{:.0f}")],
    "handshakes": [("hs/s", "handshakes_per_s", "{:.0f}"),
                   ("CPU us/hs", "server_cpu_us_per_msg", "{:.0f}"),
                   ("upgrade p50 us", "upgrade_p50_us", "{:.0f}"),
                   ("upgrade p99 us", "upgrade_p99_us", "{:.0f}")],
    "idle10k": [("open", "opened", "{:.0f}"),
                ("echoed", "echo_ok", "{:.0f}"),
                ("B/conn", "bytes_per_conn", "{:.0f}"),
                ("threads", "server_threads", "{:.0f}"),
                ("RSS MiB", col_rss, "{:.1f}")],
    "fanout1k": [("deliv/s", "deliveries_per_s", "{:.0f}"),
                 ("CPU us/deliv", "server_cpu_us_per_msg", "{:.2f}"),
                 ("first ms", lambda r: r.get("first_delivery_us", 0) / 1000,
                  "{:.1f}"),
                 ("delivered", "deliveries", "{:.0f}")],
}
COLUMNS["fanout10k"] = COLUMNS["fanout1k"]
COLUMNS["json1k"] = [("msg/s", "msg_per_s", "{:.0f}"),
                     ("CPU us/msg", "server_cpu_us_per_msg", "{:.1f}"),
                     ("up B/msg", "wire_up_per_msg", "{:.0f}"),
                     ("down B/msg", "wire_down_per_msg", "{:.0f}"),
                     ("p50 us", "lat_p50_us", "{:.0f}"),
                     ("p99 us", "lat_p99_us", "{:.0f}"),
                     ("client us/msg", "client_cpu_us_per_msg", "{:.1f}")]
COLUMNS["json1k-deflate"] = (COLUMNS["json1k"][:4]
                             + [("down z%", "rx_compressed_pct", "{:.0f}")]
                             + COLUMNS["json1k"][4:])
COLUMNS["pubsub1k"] = [("deliv/s", "deliveries_per_s", "{:.0f}"),
                       ("p50 ms", lambda r: r.get("lat_p50_us", 0) / 1000,
                        "{:.1f}"),
                       ("p99 ms", lambda r: r.get("lat_p99_us", 0) / 1000,
                        "{:.1f}"),
                       ("burst s", "window_s", "{:.2f}"),
                       ("first ms", lambda r: r.get("first_delivery_us", 0)
                        / 1000, "{:.1f}"),
                       ("CPU us/deliv", "server_cpu_us_per_msg", "{:.2f}"),
                       ("procs", "sub_processes", "{:.0f}"),
                       ("delivered", "deliveries", "{:.0f}")]
COLUMNS["pubsub10k"] = COLUMNS["pubsub1k"]
COLUMNS["idle-json"] = COLUMNS["idle10k"]
COLUMNS["idle-deflate"] = COLUMNS["idle10k"]


def value(r, key):
    if callable(key):
        return key(r)
    v = r.get(key)
    if not isinstance(v, (int, float)):
        return None
    # 10 ms ticks make a few percent of noise either way; nothing used a
    # negative amount.
    return max(0.0, float(v)) if key == "other_cpu_pct" else float(v)


def med(rows, key):
    vals = [value(r, key) for r in rows]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, f):
    return "-" if v is None else f.format(v)


def table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows))
              for i, h in enumerate(headers)]
    out = ["  ".join(str(h).rjust(w) if i else str(h).ljust(w)
                     for i, (h, w) in enumerate(zip(headers, widths)))]
    for r in rows:
        out.append("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                             for i, (c, w) in enumerate(zip(r, widths))))
    return out


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 1
    took = None
    if "--took" in sys.argv:
        took = sys.argv[sys.argv.index("--took") + 1]
    meta, runs, status, sysc = {}, {}, {}, {}
    for line in open(sys.argv[1]):
        line = line.strip()
        if not line:
            continue
        try:
            r = json.loads(line)
        except ValueError:
            continue
        kind = r.get("kind")
        if kind == "meta":
            meta = r
        elif kind == "status":
            status.setdefault((r["server"], r["scenario"]), []).append(r)
        elif kind == "syscalls":
            sysc[r["server"]] = r
        elif r.get("tool") == "ws_load":
            runs.setdefault((r.get("server"), r.get("scenario")), []).append(r)

    servers = meta.get("servers") or sorted({k[0] for k in runs})
    scen_on = meta.get("scenarios") or [s[0] for s in SCENARIOS]
    lines = []
    lines.append("mod_websocket benchmark: medians of %s repetition(s)%s"
                 % (meta.get("reps", "?"), " (QUICK)" if meta.get("quick") else ""))
    lines.append("module %s (HEAD %s%s); servers pinned to CPU 0, ws_load to "
                 "CPU 1; each figure is the median over the repetitions"
                 % (meta.get("module_sha256", "?"), meta.get("git", "?"),
                    ", %d modified file(s) in mod_websocket/ include/"
                    % meta["module_dirty_files"]
                    if meta.get("module_dirty_files") else ""))
    lines.append("ratio = times worse than the best peer on the scenario's "
                 "main figure (1.00 = best); client%/other% = CPU of ws_load "
                 "/ of everything else on the machine during the window, in "
                 "% of one core")
    for name, title, main_key, better in SCENARIOS:
        if name not in scen_on:
            continue
        if name in IDLE and runs:
            n = next((r.get("connections") for (s, sc), rr in runs.items()
                      if sc == name for r in rr), None)
            if n:
                title = IDLE_TITLE[name] % ("{:,}".format(n),
                                            meta.get("hold", "?"))
        cols = COLUMNS[name]
        extra = [] if name in IDLE else COMMON_TAIL
        second = SECOND_RATIO.get(name)
        headers = (["server", "ratio"] + ([second[0]] if second else [])
                   + [c[0] for c in cols]
                   + [c[0] for c in extra] + ["errors", "n"])
        best = None
        meds = {}
        for s in servers:
            rr = runs.get((s, name))
            if rr:
                m = med(rr, main_key)
                meds[s] = m
                if m and (best is None or (m < best if better == "low" else m > best)):
                    best = m
        best2 = None
        if second:
            vals = [med(runs[(s, name)], second[1]) for s in servers
                    if runs.get((s, name))]
            vals = [v for v in vals if v]
            if vals:
                best2 = min(vals) if second[2] == "low" else max(vals)
        rows, notes = [], []
        for s in servers:
            rr = runs.get((s, name))
            st = status.get((s, name))
            if not rr:
                if st:
                    reasons = sorted({x["reason"] for x in st})
                    rows.append([s, "-"] + ["-"] * bool(second)
                                + [st[0]["status"]]
                                + [""] * (len(headers) - 3 - bool(second)))
                    notes.append("%s: %s" % (s, "; ".join(reasons)))
                continue
            m = meds.get(s)
            if m and best:
                ratio = m / best if better == "low" else best / m
                rs = "%.2f" % ratio
            else:
                rs = "-"
            if second:
                m2 = med(rr, second[1])
                rs2 = "-"
                if m2 and best2:
                    rs2 = "%.2f" % (m2 / best2 if second[2] == "low"
                                    else best2 / m2)
                rs = [rs, rs2]
            else:
                rs = [rs]
            errors = sum(int(r.get("errors") or 0) for r in rr)
            row = [s] + rs + [fmt(med(rr, c[1]), c[2]) for c in cols] \
                + [fmt(med(rr, c[1]), c[2]) for c in extra] \
                + [str(errors), str(len(rr))]
            rows.append(row)
            if st:
                notes.append("%s: %s" % (s, "; ".join(sorted({x["reason"] for x in st}))))
            if any(r.get("deflate_offered") for r in rr):
                said = sorted({r.get("extensions") or "(nothing)" for r in rr})
                notes.append("%s: Sec-WebSocket-Extensions answer: %s"
                             % (s, " | ".join(said)))
            bad = sum(int(r.get("content_mismatch") or 0)
                      + int(r.get("deflate_declined") or 0) for r in rr)
            if bad:
                notes.append("%s: %d wrong echoes or declined offers" % (s, bad))
            if name in PUBSUB:
                spread = sorted({r.get("sub_spread") or "?" for r in rr})
                if any(r.get("pub_port") != r.get("port") for r in rr):
                    notes.append("%s: publisher on another server (port %s), "
                                 "subscribers on port %s"
                                 % (s, rr[0].get("pub_port"),
                                    rr[0].get("port")))
                if any((r.get("sub_processes") or 0) > 1 for r in rr):
                    notes.append("%s: subscribers per process: %s"
                                 % (s, ", ".join(spread)))
                odd = {k: sum(int(r.get(k) or 0) for r in rr)
                       for k in ("missing", "order_errors", "stamp_errors",
                                 "warm_lost", "whoami_missing",
                                 "negative_latency")}
                odd = {k: v for k, v in odd.items() if v}
                if odd:
                    notes.append("%s: %s" % (s, ", ".join(
                        "%s %d" % kv for kv in sorted(odd.items()))))
            other = max((value(r, "other_cpu_pct") or 0) for r in rr)
            if other > 15:
                notes.append("%s: up to %.0f%% of a core used by other "
                             "processes during a window" % (s, other))
            cl = med(rr, "client_cpu_window_pct")
            if cl is not None and cl > 90:
                notes.append("%s: ws_load used %.0f%% of its core: this "
                             "figure may be the client's limit" % (s, cl))
        lines.append("")
        lines.append("== %s: %s" % (name, title))
        lines.extend(table(headers, rows))
        for n in notes:
            lines.append("   note: " + n)

    if sysc:
        lines.append("")
        lines.append("== system calls per echoed message (server side, all "
                     "threads; perf stat on raw_syscalls:sys_enter during a "
                     "fixed-count run of 100 connections x 64 B, 1 in flight)")
        rows = []
        for s in servers:
            r = sysc.get(s)
            if not r:
                continue
            if r.get("per_msg") is None:
                rows.append([s, "-", "-", "no count"])
                continue
            top = ", ".join("%s %.2f" % (k, v)
                            for k, v in list(r["by_call"].items())[:6]
                            if v >= 0.01)
            rows.append([s, "%.2f" % r["per_msg"], str(r["messages"]), top])
        lines.extend(table(["server", "syscalls/msg", "messages",
                            "by call (per message)"], rows))
    for (s, sc), st in sorted(status.items()):
        if sc == "syscalls":
            lines.append("   note: %s syscalls: %s" % (s, st[0]["reason"]))
    if took:
        lines.append("")
        lines.append("whole run: %s s" % took)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
