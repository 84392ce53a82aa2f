#!/usr/bin/env python3
"""Recording benchmark: N GB28181 cameras at 2 Mbit/s recorded to files by one worker thread.

For each N, in a child process of its own: a ``pms_trio._core.Core`` with one worker on
127.0.0.1, ``gb_listen``, N ``create_gb_ingest`` fed by ``pms-gb-sender`` (bench/gb_ingest/src)
replaying one PS file (``tests/gb28181/psmux.py``: H.264 640x360 noise at ``--bitrate``, G.711A or
AAC, an IDR every 2 s) as N cameras, exactly as ``bench/gb_ingest/run.py`` does. Once every stream
is live:

1. window A (``--seconds``): the ingests alone (the baseline);
2. one recorder per stream, ``create_recorder(stream, folder, "camNNNNN.mkv", container="mkv")``
   into a temp folder; after ``--rec-warmup`` s, window B (``--seconds``) with the recorders;
3. every recorder closed (``close_transport``), its ``RecordingFile`` awaited; the core's
   record counters read; ``--probe`` files checked with ffprobe; the folder deleted.

The recording's cost is window B minus window A: the CPU of the thread ``pms-worker-0``, its write
system calls (``syscw`` of /proc/self/task/TID/io), set against the bytes the recorders wrote
(``record_bytes``):

    python bench/record/run.py                                 # N = 100, 250, 500
    python bench/record/run.py --streams 20,100 --seconds 8
    python bench/record/run.py --container mp4 --json /tmp/rec.json      # fMP4, AAC audio

Needs ``pms_trio`` installed (the wheel), PyAV/numpy for the PS file and the ``ffprobe`` CLI.
Benchmarks print figures; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from benchlib import rss_kib  # noqa: E402
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
TARGET_STREAMS = 500
WORKER = "pms-worker-0"
FPS = 25
GOP_SECONDS = 2.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


def build() -> Path:
    subprocess.run(["cargo", "build", "--release", "-p", "pms-bench-gb-ingest"], cwd=REPO, check=True)
    return target_dir() / "release" / "pms-gb-sender"


def psmux(path: Path, encoder_bitrate: int, audio: str, seconds: float) -> float:
    """Writes the PS file; returns its rate (bit/s of media time, audio and PS overhead included)."""
    cmd = [sys.executable, str(REPO / "tests/gb28181/psmux.py"), "-o", str(path), "--codec", "h264",
           "--frames", "50", "--size", "640x360", "--fps", str(FPS), "--gop", "50", "--noise",
           "--bitrate", str(encoder_bitrate), "--repeat-seconds", str(seconds)]
    if audio != "none":
        cmd += ["--audio", audio]
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    return path.stat().st_size * 8 / seconds


def make_ps(path: Path, bitrate: int, audio: str, seconds: int) -> float:
    """The PS file of ``seconds`` of media at about ``bitrate`` (the encoder's rate is adjusted until
    the file's rate, PS and audio included, is within 3%: the sender paces by bytes, so the media
    then plays in real time). Returns the file's rate."""
    if not path.exists():
        log(f"making {path} (H.264 640x360 noise, audio {audio}, {seconds} s at {bitrate} bit/s)")
        probe_file = path.with_suffix(".probe")
        enc = bitrate
        for _ in range(6):
            rate = psmux(probe_file, enc, audio, 50 / FPS)  # one GOP: the file repeats it
            if abs(rate / bitrate - 1) < 0.03:
                break
            enc = int(enc * bitrate / rate)
        probe_file.unlink(missing_ok=True)
        psmux(path, enc, audio, seconds)
    rate = path.stat().st_size * 8 / seconds
    log(f"{path}: {rate / 1e6:.3f} Mbit/s")
    return rate


# ---------------------------------------------------------------------------------------------- /proc


def worker_tid() -> int:
    """The id of the worker thread (it starts shortly after the core)."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    if f.read().strip() == WORKER:
                        return int(tid)
            except OSError:
                continue
        time.sleep(0.05)
    raise RuntimeError(f"no thread {WORKER}")


def tid_cpu(tid: int) -> float:
    """utime + stime (s) of thread ``tid`` of this process."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tid_state(tid: int) -> str:
    with open(f"/proc/self/task/{tid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def tid_io(tid: int) -> dict[str, int]:
    """/proc/self/task/TID/io: rchar, wchar, syscr, syscw, read_bytes, write_bytes, ..."""
    out = {}
    with open(f"/proc/self/task/{tid}/io") as f:
        for line in f:
            k, v = line.split(":")
            out[k.strip()] = int(v)
    return out


def vmstat() -> dict[str, int]:
    """/proc/vmstat (system-wide: pages dirtied, pages written back to disk, dirty now)."""
    out = {}
    with open("/proc/vmstat") as f:
        for line in f:
            k, v = line.split()
            out[k] = int(v)
    return out


class Sample:
    """The worker thread, the core's counters and the clock at one instant."""

    def __init__(self, core: Any, tid: int) -> None:
        self.stats = core.stats()
        self.cpu = tid_cpu(tid)
        self.io = tid_io(tid)
        self.vm = vmstat()
        self.t = time.monotonic()


def rates(a: Sample, b: Sample) -> dict[str, float]:
    dt = b.t - a.t
    return {
        "dt": dt,
        "cpu": (b.cpu - a.cpu) / dt,
        "syscw": (b.io["syscw"] - a.io["syscw"]) / dt,
        "wchar": (b.io["wchar"] - a.io["wchar"]) / dt,
        "in_bytes": (b.stats["gb_bytes_in"] - a.stats["gb_bytes_in"]) / dt,
        "packets": (b.stats["gb_packets_in"] - a.stats["gb_packets_in"]) / dt,
        "rec_bytes": (b.stats["record_bytes"] - a.stats["record_bytes"]) / dt,
        "disk_written": (b.vm["nr_written"] - a.vm["nr_written"]) * PAGE / dt,
        "dirty_end": b.vm["nr_dirty"] * PAGE,
    }


# ---------------------------------------------------------------------------------------------- ffprobe


def probe(path: str, wall: float, audio: bool) -> dict[str, Any]:
    """ffprobe one file: it parses, has H.264 (and audio when the cameras send it), its duration
    against the time it was recorded (the recorder starts at the router's cached keyframe, so up to
    one GOP more), and video frames missing (gaps in the video timestamps longer than one frame)."""
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name,codec_type",
                        "-of", "json", path], capture_output=True, text=True)
    if r.returncode != 0:
        return {"file": os.path.basename(path), "ok": False, "error": r.stderr.strip()[:200]}
    info = json.loads(r.stdout)
    duration = float(info.get("format", {}).get("duration") or 0)
    codecs = sorted(f"{s.get('codec_type')}:{s.get('codec_name')}" for s in info.get("streams", []))
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
                        "-of", "csv=p=0", path], capture_output=True, text=True)
    pts = sorted(float(x) for x in r.stdout.split() if x.strip() and x.strip() != "N/A")
    missing = sum(max(0, round((b - a) * FPS) - 1) for a, b in zip(pts, pts[1:]))
    return {
        "file": os.path.basename(path),
        "ok": r.returncode == 0 and any(c.startswith("video:h264") for c in codecs) and missing == 0
        and (not audio or any(c.startswith("audio:") for c in codecs)) and len(pts) > 0
        and -1.0 < duration - wall < GOP_SECONDS + 1.0,
        "codecs": codecs,
        "duration": round(duration, 2),
        "wall": round(wall, 2),
        "video_frames": len(pts),
        "missing_frames": missing,
    }


# ---------------------------------------------------------------------------------------------- one N


def one(n: int, args: argparse.Namespace, sender: Path, ps: Path, sender_seconds: float) -> dict[str, Any]:
    """One measurement (run in a child process)."""
    from pms_trio import _core
    from pms_trio._core import Core

    folder = Path(tempfile.mkdtemp(prefix="pms-rec-bench-", dir=args.dir))
    try:
        return measure(n, args, sender, ps, sender_seconds, folder, _core, Core)
    finally:
        if args.keep:
            log(f"  recordings kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def measure(n: int, args: argparse.Namespace, sender: Path, ps: Path, sender_seconds: float, folder: Path,
            _core: Any, Core: Any) -> dict[str, Any]:
    core = Core(workers=1, listen_ip="127.0.0.1", announced_ips=["127.0.0.1"], min_port=0, max_port=0,
                log_level="error")
    tcp, _ = core.gb_listen("127.0.0.1", 0)
    tid = worker_tid()
    for i in range(n):
        core.create_gb_ingest(f"cam{i:05d}", 1 + i)
    proc = subprocess.Popen([str(sender), "--addr", f"127.0.0.1:{tcp}", "--ps", str(ps), "--streams", str(n),
                             "--bitrate", str(args.bitrate), "--seconds", f"{sender_seconds:.1f}",
                             "--threads", str(args.sender_threads), "--start-within", "2", "--stdin-stop", "1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    live: set[str] = set()
    ingest_closed: list[str] = []
    recorders: dict[int, int] = {}  # transport id -> stream index
    started: dict[int, float] = {}  # transport id -> when its file opened (event seen)
    files: dict[int, Any] = {}  # transport id -> RecordingFile
    ended: dict[int, str] = {}
    states = {"samples": 0, "D": 0}

    def drain(sample_state: bool = False) -> None:
        now = time.monotonic()
        for e in core.poll_events():
            if isinstance(e, _core.ProducerStarted):
                live.add(e.stream)
            elif isinstance(e, _core.RecordingFileStarted):
                started[e.transport_id] = now
            elif isinstance(e, _core.RecordingFile):
                files[e.transport_id] = (e, now)
                if e.error:
                    log(f"  recording {e.path}: {e.error}")
            elif isinstance(e, _core.RecordingEnded):
                ended[e.transport_id] = e.reason
            elif isinstance(e, _core.TransportClosed):
                if e.transport_id not in recorders:
                    ingest_closed.append(e.reason)
                    log(f"  ingest {e.transport_id} closed: {e.reason}")
        if sample_state:
            try:
                st = tid_state(tid)
            except OSError:
                return
            states["samples"] += 1
            states["D"] += st == "D"

    def wait(seconds: float, until: Any = None, sample_state: bool = False) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            drain(sample_state)
            if until is not None and until():
                return
            time.sleep(0.05 if not sample_state else 0.02)

    # Every stream live and at least --warmup s since the sender started (at least 1 s after the last).
    t_start = time.monotonic()
    wait(args.warmup + 10, until=lambda: len(live) >= n)
    wait(max(1.0, args.warmup - (time.monotonic() - t_start)))
    if len(live) < n:
        log(f"  only {len(live)}/{n} streams live")
    # Window A: the ingests alone.
    time.sleep(0.2)  # the stats are refreshed every 100 ms
    a0 = Sample(core, tid)
    wait(args.seconds)
    time.sleep(0.2)
    a1 = Sample(core, tid)
    base = rates(a0, a1)
    rss0 = rss_kib(os.getpid())
    # The recorders.
    t_create = time.monotonic()
    for i in range(n):
        stream = f"cam{i:05d}"
        if stream not in live:
            continue
        try:
            rid = core.create_recorder(stream, str(folder), f"{stream}.{args.container}", container=args.container)
        except _core.CoreError as e:
            log(f"  create_recorder({stream}): {e.code} {e.message}")
            continue
        recorders[rid] = i
    create_s = time.monotonic() - t_create
    wait(args.rec_warmup)
    # Window B: the same with the recorders; the worker's state sampled every ~20 ms.
    time.sleep(0.2)
    b0 = Sample(core, tid)
    states.update(samples=0, D=0)
    wait(args.seconds, sample_state=True)
    time.sleep(0.2)
    b1 = Sample(core, tid)
    rec = rates(b0, b1)
    rss1 = rss_kib(os.getpid())
    # Close every recorder; wait for its file.
    t_close = time.monotonic()
    for rid in recorders:
        core.close_transport(rid)
    wait(30.0, until=lambda: len(files) >= len(recorders) and len(ended) >= len(recorders))
    finish_s = max((t for _, t in files.values()), default=t_close) - t_close
    time.sleep(0.3)
    s_rec = core.stats()
    closed_early = len(ingest_closed)
    # Stop the sender (closing its stdin); then the ingests' loss.
    out, _ = proc.communicate(input="", timeout=60)
    sent = json.loads(out.strip().splitlines()[-1])
    time.sleep(1.0)
    drain()
    s_end = core.stats()
    core.shutdown()

    # Files: duration against the time between the file's opening and the close.
    complete = [rid for rid, (f, _) in files.items() if not f.error]
    dur_err = [files[rid][0].duration - (t_close - started[rid]) for rid in complete if rid in started]
    probe_ids = sorted(complete)
    if args.probe and probe_ids:
        k = min(args.probe, len(probe_ids))
        picks = sorted({probe_ids[round(j * (len(probe_ids) - 1) / max(1, k - 1))] for j in range(k)})
    else:
        picks = []
    probes = [probe(files[rid][0].path, t_close - started.get(rid, t_close), args.audio != "none") for rid in picks]
    file_bytes = sum(f.bytes for f, _ in files.values())
    file_rate = [f.bytes * 8 / f.duration / 1e6 for f, _ in files.values() if f.duration > 0]
    for p in probes:
        log(f"  ffprobe {json.dumps(p)}")
    rec_cpu = rec["cpu"] - base["cpu"]
    rec_mb = rec["rec_bytes"] * rec["dt"] / 1e6
    nominal = n * args.bitrate / 8
    return {
        "streams": n,
        "live": len(live),
        "recorders": len(recorders),
        "files_started": len(started),
        "files_complete": len(complete),
        "create_s": round(create_s, 2),
        "window_s": round(rec["dt"], 2),
        "in_mbit_s": round(rec["in_bytes"] * 8 / 1e6, 1),
        "in_ratio": round(rec["in_bytes"] / nominal, 3),
        "rec_mb_s": round(rec["rec_bytes"] / 1e6, 2),
        "rec_ratio": round(rec["rec_bytes"] / rec["in_bytes"], 3) if rec["in_bytes"] else None,
        "worker_share_base": round(base["cpu"], 3),
        "worker_share_rec": round(rec["cpu"], 3),
        "rec_cpu_share": round(rec_cpu, 3),
        "cpu_ms_per_mb": round(rec_cpu * rec["dt"] / rec_mb * 1e3, 2) if rec_mb else None,
        "rec_per_core": round(n / rec_cpu) if rec_cpu > 0 else None,
        "streams_per_core_with_rec": round(n / rec["cpu"]) if rec["cpu"] > 0 else None,
        "writes_per_s": round(rec["syscw"]),
        "writes_per_s_base": round(base["syscw"]),
        "writes_per_s_per_rec": round((rec["syscw"] - base["syscw"]) / n, 2),
        "kib_per_write": round(rec["rec_bytes"] / (rec["syscw"] - base["syscw"]) / 1024, 1)
        if rec["syscw"] > base["syscw"] else None,
        "disk_mb_s": round(rec["disk_written"] / 1e6, 1),
        "dirty_mb_end": round(rec["dirty_end"] / 1e6),
        "worker_in_d_state": round(states["D"] / states["samples"], 3) if states["samples"] else None,
        "finish_s": round(finish_s, 2),
        "kib_per_recorder": round((rss1 - rss0) / n, 1),
        "file_bytes_minus_record_bytes": file_bytes - s_rec["record_bytes"],
        "file_mbit_s_median": round(statistics.median(file_rate), 3) if file_rate else None,
        "frames_dropped": s_rec["record_frames_dropped"],
        "record_failures": s_rec["record_failures"],
        "record_files": s_rec["record_files"],
        "ended_reasons": sorted({r for r in ended.values()}),
        "dur_err_min_s": round(min(dur_err), 2) if dur_err else None,
        "dur_err_max_s": round(max(dur_err), 2) if dur_err else None,
        "dur_err_median_s": round(statistics.median(dur_err), 2) if dur_err else None,
        "probe_ok": sum(p["ok"] for p in probes),
        "probed": len(probes),
        "probes": probes,
        "sent_packets": sent["packets"],
        "lost_packets": sent["packets"] - s_end["gb_packets_in"],
        "seq_gaps": s_end["gb_seq_gaps"],
        "ps_resyncs": s_end["gb_ps_resyncs"],
        "ingests_closed": closed_early,
        "sender_behind_ms": sent["behind_ms"],
    }


def clean(r: dict[str, Any]) -> bool:
    """No frame dropped, no loss, every file complete and the worker keeping up with the cameras."""
    return (r.get("live") == r["streams"] and r.get("files_complete") == r["streams"]
            and r.get("frames_dropped") == 0 and r.get("record_failures") == 0 and r.get("lost_packets") == 0
            and r.get("seq_gaps") == 0 and r.get("ingests_closed") == 0 and r.get("probe_ok") == r.get("probed")
            and (r.get("in_ratio") or 0) >= 0.98)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default="100,250,500", help="comma-separated N")
    ap.add_argument("--seconds", type=float, default=10.0, help="each window (without, then with recorders)")
    ap.add_argument("--warmup", type=float, default=3.0, help="after the sender starts, before window A")
    ap.add_argument("--rec-warmup", type=float, default=3.0, help="after the recorders start, before window B")
    ap.add_argument("--bitrate", type=int, default=2_000_000)
    ap.add_argument("--container", choices=["mkv", "mp4", "webm"], default="mkv")
    ap.add_argument("--audio", choices=["g711a", "aac", "none"], default=None,
                    help="audio of the cameras (default: g711a for mkv, aac for mp4)")
    ap.add_argument("--probe", type=int, default=3, help="files checked with ffprobe per N")
    ap.add_argument("--dir", default=None, help="where the temp recording folder goes (default: TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the recordings (for a look; they are large)")
    ap.add_argument("--sender-threads", type=int, default=1)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--sender", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--ps", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--sender-seconds", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.container == "webm":
        ap.error("WebM holds VP8/VP9/AV1/Opus only; GB28181 cameras send H.264 (use mkv or mp4)")
    if args.audio is None:
        args.audio = "aac" if args.container == "mp4" else "g711a"
    if args.container == "mp4" and args.audio == "g711a":
        ap.error("MP4 does not hold G.711: use --audio aac or --audio none")
    if args.one:
        print(json.dumps(one(args.one, args, args.sender, args.ps, args.sender_seconds)), flush=True)
        return 0
    if not shutil.which("ffprobe") and args.probe:
        ap.error("ffprobe not found (install ffmpeg, or --probe 0)")
    sender = target_dir() / "release" / "pms-gb-sender" if args.no_build else build()
    steps = [int(x) for x in args.streams.split(",") if x.strip()]
    # The sender runs through both windows, the recorders' start and end; the file is longer than
    # that (plus the 2 s the streams' starts are spread over) so that no stream wraps around to
    # the file's start (its timestamps would jump back).
    longest = max(steps)
    sender_seconds = args.warmup + 10 + 1 + 2 * (args.seconds + 0.4) + args.rec_warmup + longest / 50 + 15
    ps_seconds = 30 * math.ceil((sender_seconds + 4) / 30)
    ps = Path(tempfile.gettempdir()) / f"pms-rec-bench-{args.bitrate}-{args.audio}-{ps_seconds}s.ps"
    make_ps(ps, args.bitrate, args.audio, ps_seconds)
    rows = []
    for n in steps:
        log(f"N = {n} ...")
        cmd = [sys.executable, __file__, "--one", str(n), "--sender", str(sender), "--ps", str(ps),
               "--sender-seconds", str(sender_seconds), "--seconds", str(args.seconds), "--warmup", str(args.warmup),
               "--rec-warmup", str(args.rec_warmup), "--bitrate", str(args.bitrate), "--container", args.container,
               "--audio", args.audio, "--probe", str(args.probe), "--sender-threads", str(args.sender_threads)]
        if args.dir:
            cmd += ["--dir", args.dir]
        if args.keep:
            cmd += ["--keep"]
        child = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        lines = child.stdout.strip().splitlines()
        if child.returncode != 0 or not lines:
            log(f"N = {n}: the child failed ({child.returncode})")
            rows.append({"streams": n, "error": f"exit {child.returncode}"})
            continue
        rows.append(json.loads(lines[-1]))
        log(f"N = {n}: {json.dumps({k: v for k, v in rows[-1].items() if k != 'probes'})}")
    cols = ["streams", "live", "files_complete", "in_mbit_s", "in_ratio", "rec_mb_s", "worker_share_base",
            "worker_share_rec", "rec_cpu_share", "cpu_ms_per_mb", "rec_per_core", "writes_per_s",
            "writes_per_s_per_rec", "kib_per_write", "worker_in_d_state", "disk_mb_s", "kib_per_recorder",
            "create_s", "finish_s", "frames_dropped", "record_failures", "lost_packets", "seq_gaps",
            "dur_err_min_s", "dur_err_max_s", "probe_ok", "sender_behind_ms"]
    width = max(len(c) for c in cols)
    for c in cols:
        print(f"{c:>{width}} " + " ".join(f"{r.get(c, '-')!s:>10}" for r in rows))
    ok = [r["streams"] for r in rows if "error" not in r and clean(r)]
    print(f"largest N with no frame dropped and no loss: {max(ok) if ok else 'none'} (target {TARGET_STREAMS})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
