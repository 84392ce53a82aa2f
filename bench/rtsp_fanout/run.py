#!/usr/bin/env python3
"""RTSP fan-out benchmark: one ffmpeg publisher to N RTSP/TCP players against the real pms-trio server.

For each N it starts a fresh server (``pms-trio run -c <temp config> --ready-file <path>``, one worker),
publishes one ~200 kbit/s H.264 stream with ffmpeg over RTSP/TCP, connects N players (OPTIONS,
DESCRIBE, SETUP interleaved=0-1 on the video track, PLAY) from a load client made of raw non-blocking
sockets and ``selectors`` (``loadclient.py``, spread over a few processes for large N), and measures over a window after
every player receives media: server CPU (utime+stime from /proc) per RTP packet the players received,
sequence gaps, and server RSS growth per player. Prints a table with the targets beside.

    python bench/rtsp_fanout/run.py                       # N = 100, 500, 1000, 2000, then doubling until loss
    python bench/rtsp_fanout/run.py --players 100,500,1000 --seconds 10
    python bench/rtsp_fanout/run.py --players 2000 --merge-write-ms 0,100,300   # rtsp.mergeWriteMs off and on

Each N runs once per ``--merge-write-ms`` value (default ``0,100``: off, then 100 ms), a fresh
server each time.

Stdlib only (plus the ffmpeg CLI). Benchmarks print figures; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import (Server, cpu_seconds, cpu_share, fmt, log, player_steps, raise_nofile, rss_kib,  # noqa: E402
                      server_command, step_row, stop_process, thread_cpu)
from loadclient import client_worker, wait_stream  # noqa: E402

TARGET_US_PER_PACKET = 3.0  # 15,000 players of a 200 kbit/s stream per core; ZLMediaKit publishes ~13,700
TARGET_KIB_PER_PLAYER = 32.0
ZLM_PLAYERS_PER_CORE = 13700


def start_publisher(url: str, log_path: Path, bitrate: str) -> subprocess.Popen:
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
           "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25",
           "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
           "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-g", "50",
           "-f", "rtsp", "-rtsp_transport", "tcp", url]
    out = open(log_path, "wb")  # noqa: SIM115 - the child holds it
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


# ------------------------------------------------------------------------------------------- one step

def run_step(cmd: list[str], n: int, merge_ms: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"pms-rtsp-fanout-{n}-") as tmp:
        folder = Path(tmp)
        server = Server(cmd, folder, {"rtsp": {"mergeWriteMs": merge_ms}})
        if not server.ready.get("rtsp"):
            server.stop()
            raise RuntimeError(f"no rtsp URL in the ready file: {server.ready}")
        pub = None
        try:
            url = server.ready["rtsp"].rstrip("/") + "/" + args.stream
            pub = start_publisher(url, folder / "ffmpeg.log", args.bitrate)
            try:
                wait_stream(url, 20.0)
            except RuntimeError as e:
                ff = (folder / "ffmpeg.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"{e}; ffmpeg: {ff}; server: {server.tail(5)}") from None
            time.sleep(1.0)
            return {**drive_clients(server, pub, url, n, args), "merge_write_ms": merge_ms}
        finally:
            if pub is not None:
                stop_process(pub)
            server.stop()


def drive_clients(server: Server, pub: subprocess.Popen, url: str, n: int, args: argparse.Namespace) -> dict:
    pid = server.pid
    procs_n = args.client_procs or max(1, min(4, math.ceil(n / 2500)))
    ctx = mp.get_context("fork")
    workers = []
    rss_base = rss_kib(pid)
    cpu_base = cpu_seconds(pid)
    t_base = time.monotonic()
    share = [n // procs_n + (1 if i < n % procs_n else 0) for i in range(procs_n)]
    timeout = args.connect_timeout or (20.0 + n / 100.0)
    for count in share:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=client_worker,
                           args=(url, count, child, max(1, args.connect_batch // procs_n), timeout,
                                 args.poll_interval),
                           daemon=True)
        proc.start()
        workers.append((proc, parent))
    try:
        ready = [w[1].recv() if w[1].poll(timeout + 30) else ("timeout", {}) for w in workers]
        connect_s = time.monotonic() - t_base
        ok = sum(r[1].get("streaming", 0) for r in ready)
        log(f"  N = {n}: {ok}/{n} players receive media after {connect_s:.1f} s "
            f"({procs_n} client process{'es' if procs_n > 1 else ''})")
        rss_joined = rss_kib(pid)
        time.sleep(args.warmup)
        threads: list[dict[int, float]] = []

        def snap() -> tuple[float, float, float, list[float], dict]:
            threads.append(thread_cpu(pid))
            c = cpu_seconds(pid)
            t = time.monotonic()
            ccpu = [cpu_seconds(p.pid or 0) for p, _ in workers]
            for _, conn in workers:
                conn.send("snap")
            st = [conn.recv()[1] for _, conn in workers]
            agg = {k: sum(s[k] for s in st) for k in ("bytes", "rtp", "gaps", "other_frames",
                                                     "streaming", "failed", "closed")}
            agg["errors"] = [e for s in st for e in s["errors"]][:5]
            agg["in_handshake"] = sum(s["in_handshake"] + s["not_started"] for s in st)
            return c, t, rss_kib(pid), ccpu, agg

        c0, t0, rss0, cc0, a0 = snap()
        time.sleep(args.seconds)
        c1, t1, rss1, cc1, a1 = snap()
        pub_alive = pub.poll() is None
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
    wall = t1 - t0
    cpu = c1 - c0
    pkts = a1["rtp"] - a0["rtp"]
    gaps = a1["gaps"] - a0["gaps"]
    ccpu = sum(cc1) - sum(cc0)
    pkt_rate_player = pkts / wall / max(1, a1["streaming"]) if wall > 0 else 0
    us = cpu / pkts * 1e6 if pkts else None
    with_n = max(rss_joined, rss0, rss1)
    busiest = max((v - threads[0].get(k, 0.0) for k, v in threads[1].items()), default=0.0)
    return {
        "players": n,
        "streaming": a1["streaming"],
        "failed": a1["failed"],
        "closed": a1["closed"],
        "still_connecting": a1["in_handshake"],
        "errors": a1["errors"],
        "client_procs": procs_n,
        "connect_seconds": round(connect_s, 2),
        "window_seconds": round(wall, 2),
        "packets": pkts,
        "packets_per_second": round(pkts / wall, 1) if wall > 0 else None,
        "packets_per_second_per_player": round(pkt_rate_player, 2),
        "kbit_per_second_per_player": round((a1["bytes"] - a0["bytes"]) * 8 / wall / 1000
                                            / max(1, a1["streaming"]), 1) if wall > 0 else None,
        "gaps": gaps,
        "loss_ratio": gaps / (pkts + gaps) if pkts + gaps else 0.0,
        "server_cpu_seconds": round(cpu, 3),
        "server_cpu_share": cpu_share(cpu, wall),
        "server_us_per_packet": round(us, 3) if us else None,
        "players_per_core": int(1e6 / (us * pkt_rate_player)) if us and pkt_rate_player else None,
        "server_threads": len(threads[1]),
        "server_busiest_thread_share": cpu_share(busiest, wall),
        "client_cpu_share": cpu_share(ccpu, wall),
        "server_rss_base_kib": rss_base,
        "server_rss_kib": with_n,
        # per player that plays (at a ceiling some are still connecting and hold little memory)
        "server_kib_per_player": round((with_n - rss_base) / a1["streaming"], 2) if a1["streaming"] else None,
        "server_cpu_connect_seconds": round(c0 - cpu_base, 3),
        "publisher_alive": pub_alive,
    }


# ---------------------------------------------------------------------------------------------- table

def clean(r: dict) -> bool:
    return "error" not in r and r.get("gaps", 1) == 0 and r.get("streaming") == r["players"] \
        and r.get("failed", 1) == 0


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"\nRTSP fan-out: 1 ffmpeg publisher (H.264 320x240 25 fps ~{args.bitrate}bit/s, RTSP/TCP) -> "
          f"N RTSP/TCP players, loopback, 1 worker, {args.seconds:g} s window")
    head = (f"{'N':>6} {'merge ms':>8} {'playing':>11} {'pkt/s':>9} {'kbit/s/pl':>9} {'srv CPU':>8} {'CPU us/pkt':>11} "
            f"{'players/core':>12} {'busiest thr':>11} {'loss':>14} {'KiB/player':>11} {'client CPU':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['players']:>6} {r.get('merge_write_ms', 0):>8}  error: {r['error']}")
            continue
        loss = f"{r['gaps']} ({r['loss_ratio']:.1e})"
        print(f"{r['players']:>6} {r['merge_write_ms']:>8} {str(r['streaming']) + '/' + str(r['players']):>11} "
              f"{fmt(r['packets_per_second'], '.0f'):>9} {fmt(r['kbit_per_second_per_player'], '.0f'):>9} "
              f"{fmt(r['server_cpu_share'], '.0%'):>8} {fmt(r['server_us_per_packet'], '.2f'):>11} "
              f"{fmt(r['players_per_core']):>12} {fmt(r['server_busiest_thread_share'], '.0%'):>11} {loss:>14} "
              f"{fmt(r['server_kib_per_player'], '.1f'):>11} "
              f"{fmt(r['client_cpu_share'], '.0%'):>10}")
    print("-" * len(head))
    print(f"{'target':>6} {'':>8} {'all':>11} {'':>9} {'':>9} {'':>8} {'<= ' + format(TARGET_US_PER_PACKET, 'g'):>11} "
          f"{'>= 15000':>12} {'< 100%':>11} {'0':>14} {'<= ' + format(TARGET_KIB_PER_PLAYER, 'g'):>11} {'':>10}")
    print("CPU us/pkt = server CPU seconds per million RTP packets sent to players (utime+stime of the server "
          "over the window / RTP packets the players received; includes ingesting the publisher).")
    print(f"players/core = 1e6 / (CPU us/pkt x pkt/s per player): players of this stream one core would "
          f"serve (ZLMediaKit publishes ~{ZLM_PLAYERS_PER_CORE:,}).")
    print("srv CPU = server CPU / wall time over the window (all threads); busiest thr = the same for the "
          "server's busiest thread (the RTSP worker, 100% = saturated).")
    print("merge ms = rtsp.mergeWriteMs: a player's output is held up to that long to leave in one write "
          "(0: one write per player per worker wake-up).")
    print("KiB/player = (server VmRSS with N players - VmRSS with the publisher only) / players playing.")
    for merge_ms in sorted({r.get("merge_write_ms", 0) for r in rows}):
        ok = [r["players"] for r in rows if clean(r) and r.get("merge_write_ms", 0) == merge_ms]
        print(f"largest N without loss on one worker (merge {merge_ms} ms): {max(ok) if ok else 'none'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--players", help="comma-separated N list (default: 100,500,1000,2000 then doubling "
                    "until loss or failed players, up to --max)")
    ap.add_argument("--max", type=int, default=16000, help="largest N of the default list")
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement window per step")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds between all playing and the window")
    ap.add_argument("--stream", default="bench")
    ap.add_argument("--bitrate", default="200k", help="publisher video bitrate (ffmpeg -b:v)")
    ap.add_argument("--client-procs", type=int, default=0,
                    help="load-client processes (default: one per 2500 players, at most 4)")
    ap.add_argument("--connect-batch", type=int, default=200, help="handshakes in flight at once")
    ap.add_argument("--poll-interval", type=float, default=0.2,
                    help="once all play, each client process reads at most this often (seconds)")
    ap.add_argument("--connect-timeout", type=float, default=0.0,
                    help="seconds for every player to receive media (default 20 + N/100)")
    ap.add_argument("--server-cmd", help="command that starts the server (default: pms-trio, "
                    "else python -m pms_trio with python/ on PYTHONPATH)")
    ap.add_argument("--merge-write-ms", default="0,100",
                    help="comma-separated rtsp.mergeWriteMs values; every N runs with each (default 0,100)")
    ap.add_argument("--json", help="also write every step's figures to this file")
    args = ap.parse_args()

    if not shutil.which("ffmpeg"):
        sys.exit("run.py: ffmpeg not found on PATH")
    raise_nofile()
    cmd = server_command(args.server_cmd)
    steps, auto = player_steps(args.players, [100, 500, 1000, 2000], 4000, args.max)

    merges = [int(x) for x in args.merge_write_ms.split(",") if x.strip()] or [0]
    log(f"server: {' '.join(cmd)}")
    rows: list[dict] = []
    for merge_ms in merges:
        for n in steps:
            log(f"N = {n}, mergeWriteMs = {merge_ms}: starting server, publisher and {n} players ...")
            r = step_row(n, functools.partial(run_step, cmd, n, merge_ms, args), merge_write_ms=merge_ms)
            rows.append(r)
            if auto and not clean(r):
                break
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print_table(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
