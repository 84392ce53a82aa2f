#!/usr/bin/env python3
"""Fan-out benchmark driver: one publisher to N players against the real pms-trio server, and with
``--peer janus`` or ``--peer both`` against Janus's VideoRoom too.

For each N it starts a fresh server (``pms-trio run -c <temp config> --ready-file <path>``, or a
fresh Janus), runs the Rust load client ``pms-fanout`` (bench/fanout), samples the server's CPU time
and RSS from /proc at the client's progress events, and prints a table with the targets next to the
figures (and, with both peers, the ratio Janus / pms-trio of CPU per forwarded packet at each N).

    python bench/fanout/run.py                      # N = 10, 100, 200, 400, ... until loss
    python bench/fanout/run.py --players 10,100 --seconds 20
    python bench/fanout/run.py --peer both --players 20,100     # as root

With Janus in the run (root needed) everything runs inside a private network namespace (see
``janus_peer.py``): pms-trio and Janus on the same veth address, one after the other at each N.

Stdlib only. Benchmarks print figures; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import (Server, cpu_seconds, cpu_share, fmt, log, player_steps, raise_nofile, rss_kib,  # noqa: E402
                      server_command, step_row)
from janus_peer import Janus, Netns, janus_binary  # noqa: E402

PEERS = ("pms", "janus")

TARGET_US_PER_PACKET = 3.0  # at N = 100; Janus 1.1.2 VideoRoom: ~28 us with 20 players
TARGET_KIB_PER_PLAYER = 64.0
TARGET_KEYFRAME_MS = 150.0


def build_client(skip: bool) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    binary = target / "release" / "pms-fanout"
    if not skip:
        log("building pms-fanout (cargo build --release -p pms-bench-fanout) ...")
        subprocess.run(["cargo", "build", "--release", "-p", "pms-bench-fanout"], cwd=REPO, check=True)
    if not binary.exists():
        sys.exit(f"run.py: {binary} not found (build it or set CARGO_TARGET_DIR)")
    return binary


def run_step(binary: Path, cmd: list[str], n: int, args: argparse.Namespace) -> dict:
    """One N against pms-trio (on ``args.in_netns`` inside the namespace, else on loopback)."""
    addr = args.in_netns
    with tempfile.TemporaryDirectory(prefix=f"pms-fanout-{n}-") as tmp:
        ports = args.webrtc_ports
        overrides: dict = {"webrtc": {"minPort": ports[0], "maxPort": ports[1]}}
        if addr:
            overrides["webrtc"].update({"listenIp": addr, "announcedIp": addr})
            overrides["websocket"] = {"listenIp": addr}
        server = Server(cmd, Path(tmp), overrides, server_cpus(args))
        try:
            extra = ["--ws", server.ready["websocket"], "--stream", args.stream]
            if addr:
                extra += ["--bind", addr]
            return drive_client(binary, server.pid, extra, server.tail, n, args)
        finally:
            server.stop()


def run_janus_step(binary: Path, n: int, args: argparse.Namespace) -> dict:
    """One N against a fresh Janus VideoRoom (inside the namespace)."""
    with tempfile.TemporaryDirectory(prefix=f"pms-fanout-janus-{n}-") as tmp:
        janus = Janus(Path(tmp), args.in_netns, server_cpus(args), ice_lite=args.janus_ice == "lite")
        try:
            extra = ["--ws", janus.ws, "--janus", str(janus.room), "--bind", args.in_netns]
            return drive_client(binary, janus.pid, extra, janus.tail, n, args)
        finally:
            janus.stop()


def server_cpus(args: argparse.Namespace) -> set[int] | None:
    """With --pin, the server runs on the first CPU and the client on the others, so the load client
    does not preempt the server's worker (which would charge its context switches to the server)."""
    cpus = sorted(os.sched_getaffinity(0))
    return {cpus[0]} if args.pin and len(cpus) >= 2 else None


def client_cpus(args: argparse.Namespace) -> set[int] | None:
    cpus = sorted(os.sched_getaffinity(0))
    return set(cpus[1:]) if args.pin and len(cpus) >= 2 else None


def drive_client(binary: Path, pid: int, extra: list[str], tail: Callable[[], str], n: int,
                 args: argparse.Namespace) -> dict:
    """Runs the client (``extra``: where and how to signal) against the server process ``pid``."""
    client_cmd = [str(binary), *extra, "--players", str(n), "--seconds", str(args.seconds),
                  "--warmup", str(args.warmup), "--threads", str(args.threads)]
    cpus = client_cpus(args)
    proc = subprocess.Popen(client_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    samples: dict[str, float] = {}
    other: list[str] = []
    for line in proc.stderr:
        line = line.rstrip("\n")
        ev = None
        if line.startswith("{"):
            try:
                ev = json.loads(line).get("event")
            except ValueError:
                ev = None
        if ev is None:
            other.append(line)
            if args.verbose:
                log(f"  client: {line}")
            continue
        try:
            if ev == "publisher_ready":
                samples["rss_base"] = rss_kib(pid)
            elif ev == "players_connected":
                samples["rss_joined"] = rss_kib(pid)
            elif ev == "measure_start":
                samples["cpu0"] = cpu_seconds(pid)
                samples["client_cpu0"] = cpu_seconds(proc.pid)
                samples["t0"] = time.monotonic()
                samples["rss_start"] = rss_kib(pid)
            elif ev == "measure_end":
                samples["cpu1"] = cpu_seconds(pid)
                samples["client_cpu1"] = cpu_seconds(proc.pid)
                samples["t1"] = time.monotonic()
                samples["rss_end"] = rss_kib(pid)
        except OSError as e:  # the server died
            other.append(f"/proc/{pid}: {e}")
        if args.verbose:
            log(f"  client: {line}")
    proc.wait()
    reader.join(5)
    text = "".join(out).strip()
    if proc.returncode != 0 or not text:
        raise RuntimeError(f"pms-fanout exited with {proc.returncode}: {' | '.join(other[-5:])}\n"
                           f"server log:\n{tail()}")
    result = json.loads(text.splitlines()[-1])
    if "cpu1" in samples and "cpu0" in samples:
        cpu = samples["cpu1"] - samples["cpu0"]
        wall = samples["t1"] - samples["t0"]
        pkts = result.get("packets_received") or 0
        result["server_cpu_seconds"] = round(cpu, 3)
        result["server_cpu_share"] = cpu_share(cpu, wall)
        result["server_us_per_packet"] = round(cpu / pkts * 1e6, 2) if pkts else None
        ccpu = samples["client_cpu1"] - samples["client_cpu0"]
        result["client_cpu_share"] = cpu_share(ccpu, wall)
        result["client_us_per_packet"] = round(ccpu / pkts * 1e6, 2) if pkts else None
    if "rss_base" in samples:
        with_n = max(samples.get("rss_start", 0), samples.get("rss_end", 0))
        result["server_rss_base_kib"] = samples["rss_base"]
        result["server_rss_kib"] = with_n
        result["server_kib_per_player"] = round((with_n - samples["rss_base"]) / n, 1) if n else None
    return result


def print_table(rows: list[dict], seconds: float, where: str) -> None:
    peers = sorted({r.get("peer", "pms") for r in rows}, key=PEERS.index)
    print(f"\nfan-out: 1 publisher (H.264 ~1.5 Mbit/s 30 fps + Opus 20 ms) -> N players, {where}, "
          f"{seconds:g} s per step")
    head = (f"{'N':>6} {'server':>8} {'conn':>9} {'fwd pkt/s':>10} {'CPU us/pkt':>11} {'loss':>14} "
            f"{'KiB/player':>11} {'keyframe p50/p95 ms':>20}")
    print(head)
    print("-" * len(head))
    for r in rows:
        name = {"pms": "pms-trio", "janus": "Janus"}[r.get("peer", "pms")]
        if "error" in r:
            print(f"{r['players']:>6} {name:>8}  error: {r['error']}")
            continue
        kf = r.get("first_keyframe_ms") or {}
        loss = f"{r.get('loss_packets', 0)} ({r.get('loss_ratio', 0):.1e})"
        print(f"{r['players']:>6} {name:>8} {str(r.get('connected')) + '/' + str(r['players']):>9} "
              f"{fmt(r.get('packets_per_second'), '.0f'):>10} {fmt(r.get('server_us_per_packet'), '.2f'):>11} "
              f"{loss:>14} {fmt(r.get('server_kib_per_player'), '.1f'):>11} "
              f"{fmt(kf.get('p50'), '.0f') + ' / ' + fmt(kf.get('p95'), '.0f'):>20}")
    print("-" * len(head))
    print(f"{'target':>6} {'pms-trio':>8} {'all':>9} {'':>10} {'<= ' + format(TARGET_US_PER_PACKET, 'g'):>11} "
          f"{'0':>14} {'<= ' + format(TARGET_KIB_PER_PLAYER, 'g'):>11} "
          f"{'< ' + format(TARGET_KEYFRAME_MS, 'g') + ' (p95)':>20}")
    print("CPU us/pkt = server CPU seconds per million forwarded packets (utime+stime over the "
          "measurement window / packets the players received); target applies at N = 100 "
          "(Janus 1.1.2 VideoRoom: ~28 us at 20 players).")
    for peer in peers:
        clean = [r["players"] for r in rows if r.get("peer", "pms") == peer and "error" not in r
                 and r.get("loss_packets", 1) == 0 and r.get("connected") == r["players"]]
        print(f"largest N without loss ({peer}): {max(clean) if clean else 'none'}")
    for line in ratio_lines(rows):
        print(line)


def ratio_lines(rows: list[dict]) -> list[str]:
    """Per N with both servers measured: Janus / pms-trio of CPU us per forwarded packet (and of
    memory per player)."""
    by: dict[tuple[str, int], dict] = {(r.get("peer", "pms"), r["players"]): r for r in rows if "error" not in r}
    out = []
    for n in sorted({n for _, n in by}):
        p, j = by.get(("pms", n)), by.get(("janus", n))
        if not (p and j and p.get("server_us_per_packet") and j.get("server_us_per_packet")):
            continue
        ratio = j["server_us_per_packet"] / p["server_us_per_packet"]
        mem = ""
        if p.get("server_kib_per_player") and j.get("server_kib_per_player") and p["server_kib_per_player"] > 0:
            mem = f", KiB/player {j['server_kib_per_player'] / p['server_kib_per_player']:.1f}x"
        out.append(f"N = {n}: Janus / pms-trio CPU us per forwarded packet = "
                   f"{j['server_us_per_packet']:.2f} / {p['server_us_per_packet']:.2f} = {ratio:.1f}x{mem}")
    return out


def parse_ports(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def parse_peers(text: str) -> list[str]:
    peers = list(PEERS) if text == "both" else [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in peers if p not in PEERS]
    if bad or not peers:
        raise argparse.ArgumentTypeError(f"--peer: pms, janus, both or a list of them, not {text!r}")
    return peers


def on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_in_netns(args: argparse.Namespace) -> int:
    """Creates the namespace, runs this script again inside it (``--in-netns ADDR``) and deletes the
    namespace on every way out (normal end, exception, SIGINT, SIGTERM)."""
    janus_binary()  # install or refuse before anything is created
    ns = Netns()
    try:
        log(f"network namespace {ns.name}, servers and client on {ns.addr}")
        argv = [a for a in sys.argv[1:] if a != "--no-build"]
        child = subprocess.Popen(ns.exec_prefix() + [sys.executable, str(Path(__file__).resolve()), *argv,
                                                     "--no-build", "--in-netns", ns.addr])
        try:
            return child.wait()
        except BaseException:
            # Interrupted (SIGINT, SIGTERM): the child stops its servers itself when told to.
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            raise
    finally:
        ns.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", type=parse_peers, default=["pms"],
                    help="server(s) to measure: pms (default), janus, both (= pms,janus), or a list; "
                    "with janus every server runs in a private network namespace (root needed)")
    ap.add_argument("--janus-ice", choices=("lite", "full"), default="lite",
                    help="Janus's ICE mode: lite (default, as pms-trio) or full (Janus's own default)")
    ap.add_argument("--players", help="comma-separated N list (default: 10,100 then doubling from 200 "
                    "until loss or failed players, up to --max-players)")
    ap.add_argument("--max-players", type=int, default=1600)
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement window per step")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds between all connected and the window")
    ap.add_argument("--threads", type=int, default=1, help="client threads for the players")
    ap.add_argument("--stream", default="fanout")
    ap.add_argument("--server-cmd", help="command that starts the server (default: pms-trio, "
                    "else python -m pms_trio with python/ on PYTHONPATH)")
    ap.add_argument("--webrtc-ports", type=parse_ports, default=(0, 0),
                    help="webrtc.minPort-maxPort for the server (default 0-0: the server picks)")
    ap.add_argument("--no-build", action="store_true", help="use the already built release client")
    ap.add_argument("--pin", action="store_true",
                    help="pin the server to the first CPU and the client to the others")
    ap.add_argument("--json", help="also write every step's figures to this file")
    ap.add_argument("--in-netns", metavar="ADDR", help=argparse.SUPPRESS)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    raise_nofile()
    binary = build_client(args.no_build)
    if "janus" in args.peer and not args.in_netns:
        return run_in_netns(args)
    cmd = server_command(args.server_cmd)
    steps, auto = player_steps(args.players, [10, 100], 200, args.max_players)

    rows: list[dict] = []
    for n in steps:
        bad = False
        for peer in args.peer:
            log(f"N = {n}: starting {peer} and {n} players ...")
            step = functools.partial(run_step, binary, cmd, n, args) if peer == "pms" else \
                functools.partial(run_janus_step, binary, n, args)
            r = step_row(n, step, peer=peer)
            r["peer"] = peer
            rows.append(r)
            bad = bad or "error" in r or r.get("loss_packets", 0) > 0 or r.get("connected") != n
        if auto and n >= 200 and bad:
            break
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    where = f"network namespace, {args.in_netns}" if args.in_netns else "loopback"
    print_table(rows, args.seconds, where)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("run.py: interrupted")
        sys.exit(130)
