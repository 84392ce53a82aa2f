#!/usr/bin/env python3
"""GB28181 ingest benchmark: N camera-like PS-over-RTP streams over TCP (RFC 4571) into one
worker thread of the real media core.

For each N, in a child process of its own (so memory figures start clean): a
``pms_trio._core.Core`` with one worker on 127.0.0.1, ``gb_listen``, N ``create_gb_ingest``
(SSRC 1..N); the Rust sender ``pms-gb-sender`` (bench/gb_ingest/src) replays one pre-muxed PS file
(``tests/gb28181/psmux.py``: H.264 with noise at ``--bitrate``, G.711 audio, an IDR every 2 s)
as N cameras, each at ``--bitrate`` with its own SSRC. Measured over the window after
``--warmup`` s, from the core's ``stats()`` and ``/proc`` (the worker thread ``pms-worker-0``):

    python bench/gb_ingest/run.py                       # N = 100, 500, 1000
    python bench/gb_ingest/run.py --streams 1000 --seconds 20 --json /tmp/gb.json

Needs ``pms_trio`` installed (the wheel) and PyAV/numpy for the PS file. Benchmarks print figures;
nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_STREAMS = 1000


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def thread_cpu(name: str) -> float:
    """utime + stime (s) of this process's thread called ``name``."""
    total = 0.0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            continue
    return total


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


def build() -> Path:
    subprocess.run(["cargo", "build", "--release", "-p", "pms-bench-gb-ingest"], cwd=REPO, check=True)
    return target_dir() / "release" / "pms-gb-sender"


def make_ps(path: Path, bitrate: int) -> None:
    if path.exists():
        return
    log(f"making {path} (H.264 640x360 noise at {bitrate} bit/s, G.711, 30 s)")
    subprocess.run([sys.executable, str(REPO / "tests/gb28181/psmux.py"), "-o", str(path), "--codec", "h264",
                    "--frames", "50", "--size", "640x360", "--fps", "25", "--gop", "50", "--audio", "--noise",
                    "--bitrate", str(bitrate), "--repeat-seconds", "30"], check=True)


def one(n: int, args: argparse.Namespace, sender: Path, ps: Path) -> dict[str, Any]:
    """One measurement (run in a child process)."""
    from pms_trio import _core
    from pms_trio._core import Core

    core = Core(workers=1, listen_ip="127.0.0.1", announced_ips=["127.0.0.1"], min_port=0, max_port=0,
                log_level="error")
    tcp, _ = core.gb_listen("127.0.0.1", 0)
    rss0 = rss_kib()
    for i in range(n):
        core.create_gb_ingest(f"cam{i:05d}", 1 + i)
    proc = subprocess.Popen([str(sender), "--addr", f"127.0.0.1:{tcp}", "--ps", str(ps), "--streams", str(n),
                             "--bitrate", str(args.bitrate), "--seconds", str(args.seconds),
                             "--threads", str(args.sender_threads)], stdout=subprocess.PIPE, text=True)
    live: set[str] = set()

    def drain() -> None:
        for e in core.poll_events():
            if isinstance(e, _core.ProducerStarted):
                live.add(e.stream)
            elif isinstance(e, _core.TransportClosed):
                log(f"  ingest {e.transport_id} closed: {e.reason}")

    deadline = time.monotonic() + args.warmup
    while time.monotonic() < deadline:
        drain()
        time.sleep(0.05)
    s0, c0, t0 = core.stats(), thread_cpu("pms-worker-0"), time.monotonic()
    window_end = t0 + max(1.0, args.seconds - args.warmup - 0.5)
    while time.monotonic() < window_end:
        drain()
        time.sleep(0.05)
    time.sleep(0.2)  # the stats are refreshed every 100 ms
    s1, c1, t1 = core.stats(), thread_cpu("pms-worker-0"), time.monotonic()
    out, _ = proc.communicate(timeout=args.seconds + 60)
    sent = json.loads(out.strip().splitlines()[-1])
    time.sleep(1.0)  # let the worker read what is in flight
    drain()
    s2 = core.stats()
    rss1 = rss_kib()
    core.shutdown()
    packets = s1["gb_packets_in"] - s0["gb_packets_in"]
    dt = t1 - t0
    return {
        "streams": n,
        "connected": sent["connected"],
        "live": len(live),
        "window_s": round(dt, 2),
        "pkt_per_s": round(packets / dt),
        "mbit_per_s": round((s1["gb_bytes_in"] - s0["gb_bytes_in"]) * 8 / dt / 1e6, 1),
        "cpu_us_per_pkt": round((c1 - c0) / packets * 1e6, 2) if packets else None,
        "worker_cpu_share": round((c1 - c0) / dt, 2),
        "sent_packets": sent["packets"],
        "received_packets": s2["gb_packets_in"],
        "lost_packets": sent["packets"] - s2["gb_packets_in"],
        "seq_gaps": s2["gb_seq_gaps"],
        "ps_resyncs": s2["gb_ps_resyncs"],
        "unknown_ssrc": s2["gb_unknown_ssrc"],
        "sender_behind_ms": sent["behind_ms"],
        "kib_per_ingest": round((rss1 - rss0) / n, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default="100,500,1000", help="comma-separated N")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--bitrate", type=int, default=2_000_000)
    ap.add_argument("--sender-threads", type=int, default=1)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--sender", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--ps", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args, args.sender, args.ps)), flush=True)
        return 0
    sender = target_dir() / "release" / "pms-gb-sender" if args.no_build else build()
    ps = Path(tempfile.gettempdir()) / f"pms-gb-bench-{args.bitrate}.ps"
    make_ps(ps, args.bitrate)
    rows = []
    for n in (int(x) for x in args.streams.split(",")):
        log(f"N = {n} ...")
        child = subprocess.run([sys.executable, __file__, "--one", str(n), "--sender", str(sender), "--ps", str(ps),
                                "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                                "--bitrate", str(args.bitrate), "--sender-threads", str(args.sender_threads)],
                               stdout=subprocess.PIPE, text=True, check=True)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    cols = ["streams", "connected", "live", "pkt_per_s", "mbit_per_s", "cpu_us_per_pkt", "worker_cpu_share",
            "lost_packets", "seq_gaps", "ps_resyncs", "sender_behind_ms", "kib_per_ingest"]
    print(" ".join(f"{c:>16}" for c in cols))
    for r in rows:
        print(" ".join(f"{r[c]!s:>16}" for c in cols))
    ok = [r["streams"] for r in rows if r["lost_packets"] == 0 and r["seq_gaps"] == 0 and r["live"] == r["streams"]]
    print(f"largest N without loss (all live): {max(ok) if ok else 'none'} (target {TARGET_STREAMS})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
