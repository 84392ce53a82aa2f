#!/usr/bin/env python3
"""Cascade benchmark: origin -> edge -> N RTSP/TCP players on loopback, next to N players of a local publish.

For each N, two setups, each with fresh servers (``pms-trio run -c <temp config> --ready-file <path>``,
one worker each):

- ``cascade``: an origin, and an edge whose config has ``"pull": [{"ip": "127.0.0.1", "port": <origin
  rtsp port>}]``. The stamped publisher (``stamped.py``) publishes to the origin; a latency probe plays
  the stream on the origin and on the edge (the edge's DESCRIBE starts the pull); then N players
  (``rtsp_fanout/loadclient.py``) play it on the edge, sharing the one pull.
- ``local``: one server; the same publisher publishes to it; the probe and the N players play it there.

The publisher sends synthetic H.264 (25 fps, ``--bitrate`` 200 kbit/s: ~27 RTP packets/s, an IDR
with SPS/PPS every 2 s) over RTSP/TCP; every packet's payload carries ``time.monotonic_ns()`` taken
just before its ``send``. The server rewrites only RTP headers, so the probe reads the stamp back:
latency = the probe's ``recv`` time minus the stamp (CLOCK_MONOTONIC, one clock for every process
on the machine). The hop is the edge's latency minus the origin's for the same packet (both probes
read it in one process). Over a ``--seconds`` window after every player receives media and
``--warmup``: latency percentiles, the players' server's CPU (utime+stime from /proc) per RTP packet
its players received (the N players and the probe), loss and RSS per player.

    python bench/cascade/run.py                          # N = 10, 100, 500
    python bench/cascade/run.py --players 10,50 --seconds 5
    python bench/cascade/run.py --players 0,100 --bitrate 2000000 --json /tmp/cascade.json

Stdlib only. Benchmarks print figures; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "rtsp_fanout"))
sys.path.insert(0, str(HERE))
from benchlib import (Server, cpu_seconds, cpu_share, fmt, log, player_steps, raise_nofile, rss_kib,  # noqa: E402
                      server_command, step_row)
from loadclient import client_worker  # noqa: E402
from stamped import probe_worker, publisher_worker  # noqa: E402

TARGET_HOP_P95_MS = 5.0
CTX = mp.get_context("fork")


# --------------------------------------------------------------------------------------------- figures

def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def pcts(values: list[float]) -> dict[str, float | None]:
    s = sorted(values)
    return {f"p{q}": (round(v, 3) if (v := percentile(s, q)) is not None else None) for q in (50, 95, 99)} | \
        {"max": round(s[-1], 3) if s else None, "samples": len(s)}


def window_samples(probe: dict[str, Any], t0: int, t1: int) -> dict[int, tuple[int, int]]:
    """counter -> (arrival ns, latency ns) of the stamped packets that arrived in [t0, t1]."""
    out = {}
    for c, a, lat in zip(probe["counters"], probe["arrivals"], probe["latencies"], strict=True):
        if t0 <= a <= t1 and c not in out:  # a repeat (a keyframe replayed to a new player) is left out
            out[c] = (a, lat)
    return out


# ------------------------------------------------------------------------------------------- processes

class Child:
    """A forked worker and its end of a pipe."""

    def __init__(self, target: Any, *args: Any) -> None:
        self.conn, child = CTX.Pipe()
        self.proc = CTX.Process(target=target, args=(*args, child), daemon=True)
        self.proc.start()

    def expect(self, tag: str, timeout: float) -> dict[str, Any]:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"no {tag!r} from {self.proc.name} in {timeout:.0f} s")
        got, data = self.conn.recv()
        if got != tag:
            raise RuntimeError(data.get("error") if isinstance(data, dict) and data.get("error")
                               else f"{self.proc.name}: {got!r} instead of {tag!r}")
        return data

    def stop(self, tag: str, timeout: float = 10.0) -> Any:
        try:
            if self.proc.is_alive():
                self.conn.send("stop")
                return self.expect(tag, timeout)
        except (OSError, EOFError, RuntimeError):
            return None
        finally:
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()
        return None


def cpu_ns(pid: int) -> int | None:
    """On-CPU nanoseconds of every thread of ``pid`` (the first field of /proc/PID/task/TID/schedstat):
    utime+stime at ns resolution, where /proc/PID/stat counts 10 ms ticks (a few ticks per window at
    small N). None when schedstat is not available (then the ticks are used)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            if tid == str(pid):
                return None
    return total


def rtsp_port(server: Server) -> int:
    url = server.ready.get("rtsp")
    if not url:
        raise RuntimeError(f"no rtsp URL in the ready file: {server.ready}")
    return int(url.rstrip("/").rsplit(":", 1)[1])


def stream_url(server: Server, stream: str) -> str:
    return server.ready["rtsp"].rstrip("/") + "/" + stream


# -------------------------------------------------------------------------------------------- one step

def run_step(cmd: list[str], n: int, setup: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"pms-cascade-{setup}-{n}-") as tmp:
        servers: list[Server] = []
        children: list[tuple[Child, str]] = []
        try:
            (Path(tmp) / "origin").mkdir()
            origin = Server(cmd, Path(tmp) / "origin")
            servers.append(origin)
            src = stream_url(origin, args.stream)
            if setup == "cascade":
                (Path(tmp) / "edge").mkdir()
                edge = Server(cmd, Path(tmp) / "edge", {"pull": [{"ip": "127.0.0.1", "port": rtsp_port(origin)}]})
                servers.append(edge)
                play, probe_urls = stream_url(edge, args.stream), [src, stream_url(edge, args.stream)]
            else:
                edge, play, probe_urls = origin, src, [src]
            pub = Child(publisher_worker, src, args.bitrate, args.fps, args.fps * 2)
            children.append((pub, "stats"))
            pub.expect("ready", 20)
            probe = Child(probe_worker, probe_urls)
            children.append((probe, "samples"))
            ready = probe.expect("ready", 30)
            if len(ready["playing"]) != len(probe_urls):
                raise RuntimeError(f"probe: no stamped packet from {set(probe_urls) - set(ready['playing'])} "
                                   f"{ready['errors']}; server: {edge.tail(3)}")
            row = drive(edge, origin, play, n, setup, args, pub, probe, children)
            return row
        finally:
            for child, tag in reversed(children):
                child.stop(tag)
            for s in reversed(servers):
                s.stop()


def drive(edge: Server, origin: Server, play: str, n: int, setup: str, args: argparse.Namespace,
          pub: Child, probe: Child, children: list[tuple[Child, str]]) -> dict[str, Any]:
    pid = edge.pid
    time.sleep(0.5)
    rss_base = rss_kib(pid)
    procs_n = max(1, min(4, math.ceil(n / 2500)))
    share = [n // procs_n + (1 if i < n % procs_n else 0) for i in range(procs_n)] if n else []
    timeout = 20.0 + n / 100.0
    workers = []
    for count in share:
        parent, child = CTX.Pipe()
        proc = CTX.Process(target=client_worker, args=(play, count, child, max(1, 200 // procs_n), timeout, 0.2),
                           daemon=True)
        proc.start()
        workers.append((proc, parent))
    t_join = time.monotonic()
    try:
        ready = [conn.recv()[1] if conn.poll(timeout + 30) else {} for _, conn in workers]
        streaming = sum(r.get("streaming", 0) for r in ready)
        log(f"  {setup}, N = {n}: {streaming}/{n} players receive media after {time.monotonic() - t_join:.1f} s")
        time.sleep(args.warmup)

        def snap() -> tuple[float, float, int, dict[str, int]]:
            ns, ons = cpu_ns(pid), cpu_ns(origin.pid)
            c = ns / 1e9 if ns is not None else cpu_seconds(pid)
            oc = ons / 1e9 if ons is not None else cpu_seconds(origin.pid)
            ticks.append(cpu_seconds(pid))
            t = time.monotonic_ns()
            for _, conn in workers:
                conn.send("snap")
            st = [conn.recv()[1] for _, conn in workers]
            agg = {k: sum(s[k] for s in st) for k in ("rtp", "gaps", "streaming", "failed", "closed")}
            return c, oc, t, agg

        ticks: list[float] = []
        c0, oc0, t0, a0 = snap()
        time.sleep(args.seconds)
        c1, oc1, t1, a1 = snap()
        rss_n = rss_kib(pid)
    finally:
        for proc, conn in workers:
            try:
                conn.send("stop")
                if conn.poll(5):
                    conn.recv()
            except (OSError, EOFError):
                pass
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    samples = probe.stop("samples") or []
    children.remove((probe, "samples"))
    pub_stats = pub.stop("stats") or {}
    children.remove((pub, "stats"))
    if len(samples) != (2 if setup == "cascade" else 1):
        raise RuntimeError("probe: no samples")
    wall = (t1 - t0) / 1e9
    windows = [window_samples(s, t0, t1) for s in samples]
    here = windows[-1]  # the probe on the players' server
    probe_pkts = len(here)  # stamped packets in the window (SPS/PPS packets are few and left out)
    pkts = a1.get("rtp", 0) - a0.get("rtp", 0)
    cpu = c1 - c0
    us = cpu * 1e6 / (pkts + probe_pkts) if pkts + probe_pkts else None
    row: dict[str, Any] = {
        "players": n,
        "setup": setup,
        "streaming": a1.get("streaming", 0),
        "failed": a1.get("failed", 0),
        "closed": a1.get("closed", 0),
        "window_seconds": round(wall, 2),
        "packets": pkts,
        "probe_packets": probe_pkts,
        "packets_per_second": round((pkts + probe_pkts) / wall, 1) if wall > 0 else None,
        "gaps": a1.get("gaps", 0) - a0.get("gaps", 0),
        "probe_gaps": [s["gaps"] for s in samples],
        "probe_closed": [s["closed"] for s in samples if s["closed"]],
        "server_cpu_seconds": round(cpu, 4),
        "server_cpu_source": "schedstat" if cpu_ns(pid) is not None else "stat",
        "server_cpu_seconds_stat": round(ticks[1] - ticks[0], 3),
        "server_cpu_share": cpu_share(cpu, wall),
        "server_us_per_packet": round(us, 3) if us else None,
        "server_rss_base_kib": rss_base,
        "server_rss_kib": rss_n,
        "server_kib_per_player": round((rss_n - rss_base) / a1["streaming"], 2) if a1.get("streaming") else None,
        "latency_ms": pcts([lat / 1e6 for _, lat in here.values()]),
        "publisher": pub_stats,
    }
    if setup == "cascade":
        at_origin = windows[0]
        both = [(here[c][0] - at_origin[c][0]) / 1e6 for c in here.keys() & at_origin.keys()]
        row["origin_latency_ms"] = pcts([lat / 1e6 for _, lat in at_origin.values()])
        row["hop_ms"] = pcts(both)  # per packet: edge arrival - origin arrival
        row["hop_of_percentiles_ms"] = {
            k: round(row["latency_ms"][k] - row["origin_latency_ms"][k], 3)
            if row["latency_ms"][k] is not None and row["origin_latency_ms"][k] is not None else None
            for k in ("p50", "p95", "p99")}
        row["origin_cpu_share"] = cpu_share(oc1 - oc0, wall)
    return row


# ----------------------------------------------------------------------------------------------- table

def lat3(d: dict[str, Any] | None) -> str:
    if not d or d.get("p50") is None:
        return "-"
    return f"{d['p50']:.2f}/{d['p95']:.2f}/{d['p99']:.2f}"


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nCascade: stamped H.264 publisher (25 fps, ~{args.bitrate / 1000:g} kbit/s, RTSP/TCP) -> origin "
          f"[-> edge] -> N RTSP/TCP players, loopback, 1 worker per server, {args.seconds:g} s window")
    head = (f"{'N':>5} {'setup':>7} {'playing':>9} {'pkt/s':>8} {'srv CPU':>7} {'CPU us/pkt':>10} {'KiB/pl':>7} "
            f"{'loss':>5} {'latency p50/95/99 ms':>21} {'origin p50/95/99':>18} {'hop p50/95/99 ms':>18}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['players']:>5} {r.get('setup', ''):>7}  error: {r['error']}")
            continue
        print(f"{r['players']:>5} {r['setup']:>7} {str(r['streaming']) + '/' + str(r['players']):>9} "
              f"{fmt(r['packets_per_second'], '.0f'):>8} {fmt(r['server_cpu_share'], '.0%'):>7} "
              f"{fmt(r['server_us_per_packet'], '.2f'):>10} {fmt(r['server_kib_per_player'], '.1f'):>7} "
              f"{r['gaps'] + sum(r['probe_gaps']):>5} {lat3(r['latency_ms']):>21} "
              f"{lat3(r.get('origin_latency_ms')):>18} {lat3(r.get('hop_ms')):>18}")
    print("-" * len(head))
    print(f"{'target':>5} {'':>7} {'all':>9} {'':>8} {'':>7} {'= local':>10} {'':>7} {'0':>5} {'':>21} {'':>18} "
          f"{'p95 < ' + format(TARGET_HOP_P95_MS, 'g'):>18}")
    for n in sorted({r["players"] for r in rows}):
        by = {r.get("setup"): r for r in rows if r["players"] == n and "error" not in r}
        c, loc = by.get("cascade"), by.get("local")
        if not c or not loc:
            continue
        ratio = c["server_us_per_packet"] / loc["server_us_per_packet"] \
            if c["server_us_per_packet"] and loc["server_us_per_packet"] else None
        diff = {k: round(c["latency_ms"][k] - loc["latency_ms"][k], 2)
                if c["latency_ms"][k] is not None and loc["latency_ms"][k] is not None else None
                for k in ("p50", "p95", "p99")}
        print(f"N = {n}: edge CPU per packet / local = {fmt(ratio, '.2f')}; latency on the edge - local "
              f"p50/95/99 = {fmt(diff['p50'])}/{fmt(diff['p95'])}/{fmt(diff['p99'])} ms (two runs); origin CPU "
              f"with the pull and a probe: {fmt(c.get('origin_cpu_share'), '.1%')}")
    print("latency = probe recv time - send time stamped in the payload (CLOCK_MONOTONIC), on the players' server "
          "(edge or local); origin = the same at the origin, during the cascade run.")
    print("hop = per packet, its arrival at the edge's probe - at the origin's probe (JSON: hop_of_percentiles_ms "
          "= edge percentile - origin percentile).")
    print("CPU us/pkt = on-CPU time (schedstat, ns) of the players' server (edge or local) over the window / RTP "
          "packets its players received (the N players and the probe); includes taking in the pull or the publish.")
    print("KiB/pl = (VmRSS with N players - VmRSS with the probe only) / players playing; loss = sequence gaps.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--players", help="comma-separated N list (default 10,100,500)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement window per step")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds between all playing and the window")
    ap.add_argument("--bitrate", type=int, default=200_000, help="publisher bits per second (default 200000)")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--setups", default="cascade,local", help="which setups each N runs (default cascade,local)")
    ap.add_argument("--stream", default="cascade-bench")
    ap.add_argument("--server-cmd", help="command that starts the server (default: pms-trio beside this "
                    "interpreter, else on PATH, else python -m pms_trio)")
    ap.add_argument("--json", help="also write every step's figures to this file")
    args = ap.parse_args()

    raise_nofile()
    cmd = server_command(args.server_cmd)
    steps, _ = player_steps(args.players or "10,100,500", [], 0, 0)
    setups = [s.strip() for s in args.setups.split(",") if s.strip() in ("cascade", "local")]
    log(f"server: {' '.join(cmd)}")
    rows: list[dict[str, Any]] = []
    for n in steps:
        for setup in setups:
            log(f"N = {n}, {setup}: starting servers, publisher, probe and {n} players ...")
            rows.append(step_row(n, functools.partial(run_step, cmd, n, setup, args), setup=setup))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print_table(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
