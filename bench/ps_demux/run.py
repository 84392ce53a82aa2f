"""PS demux throughput: pms-core's `PsDemuxer` next to FFmpeg's MPEG-PS demuxer (PyAV), same file,
one run.

1. Generates a camera-like PS file with tests/gb28181/psmux.py (default: 720p H.264 at ~4 Mbit/s
   (x264 asked for 2.2: it overshoots on noise), 25 fps, IDR every 50 frames, G.711A audio; one
   GOP encoded from random pixels and repeated with advancing PTS up to --seconds, which changes
   nothing for a demuxer). --unbounded: video PES of length 0, one per frame, as Hikvision
   sends them (the demuxer must scan the payload for the next start code).
2. Builds and runs `cargo run --release -p pms-core --example ps_demux_bench` on it, pushing it
   in 1400-byte pieces (RTP payloads, the headline) and in 64 KiB pieces (a file or TCP
   reader's reads).
3. Demuxes it with FFmpeg via PyAV (`av.open(path, format="mpeg")`, every packet read, nothing
   decoded; probesize/analyzeduration minimal so probing decodes next to nothing), CPU time by
   `time.process_time()`.
4. Prints both in MB/s (10^6 bytes per CPU second), the ratio, and the target (>= 4x FFmpeg).

    python bench/ps_demux/run.py [--seconds 30] [--codec h264] [--unbounded] [--keep FILE] [--json OUT]
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

import av

ROOT = Path(__file__).resolve().parents[2]
TARGET = 4.0


def generate(path: Path, a: argparse.Namespace) -> None:
    cmd = [
        sys.executable,
        str(ROOT / "tests/gb28181/psmux.py"),
        "-o",
        str(path),
        "--codec",
        a.codec,
        "--size",
        a.size,
        "--fps",
        "25",
        "--gop",
        "50",
        "--frames",
        "50",
        "--noise",
        "--bitrate",
        str(a.bitrate),
        "--repeat-seconds",
        str(a.seconds),
        "--audio",
    ]
    if a.unbounded:
        cmd.append("--unbounded-pes")
    subprocess.run(cmd, check=True)


def ours(path: Path, chunk: int, iterations: int) -> dict:
    cmd = [
        "cargo",
        "run",
        "--quiet",
        "--release",
        "-p",
        "pms-core",
        "--example",
        "ps_demux_bench",
        "--",
        str(path),
        "--iterations",
        str(iterations),
        "--chunk",
        str(chunk),
    ]
    out = subprocess.run(
        cmd, check=True, cwd=ROOT, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def ffmpeg(path: Path, min_seconds: float) -> dict:
    size = path.stat().st_size
    runs, packets, video_packets = 0, 0, 0
    t0 = time.process_time()
    while True:
        with av.open(
            str(path),
            format="mpeg",
            options={"probesize": "32", "analyzeduration": "0"},
        ) as c:
            for p in c.demux():
                if p.size:
                    packets += 1
                    video_packets += p.stream.type == "video"
        runs += 1
        spent = time.process_time() - t0
        if spent >= min_seconds:
            break
    return {
        "bytes": size,
        "iterations": runs,
        "seconds": spent,
        "mb_per_s": size * runs / 1e6 / spent,
        "packets": packets // runs,
        "video_packets": video_packets // runs,
        "ffmpeg": av.library_versions.get("libavformat"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--codec", choices=["h264", "hevc"], default="h264")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument(
        "--bitrate",
        type=int,
        default=2_200_000,
        help="x264 target; on noise with ultrafast it overshoots to ~4 Mbit/s",
    )
    ap.add_argument("--iterations", type=int, default=20, help="min demux passes of ours")
    ap.add_argument(
        "--ffmpeg-seconds", type=float, default=3.0, help="min CPU s for FFmpeg"
    )
    ap.add_argument("--unbounded", action="store_true", help="video PES length 0")
    ap.add_argument("--keep", type=Path, help="reuse/keep the PS file at this path")
    ap.add_argument("--json", type=Path, help="write the figures here")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = a.keep or Path(tmp) / "bench.ps"
        if not path.exists():
            generate(path, a)
        size = path.stat().st_size
        rate = size * 8 / a.seconds / 1e6
        print(
            f"file: {path} {size / 1e6:.1f} MB "
            f"({a.seconds:g} s {a.size} {a.codec}, {rate:.1f} Mbit/s with audio)"
        )
        env_note = os.environ.get("CARGO_TARGET_DIR", "target")
        print(f"building ps_demux_bench (release, CARGO_TARGET_DIR={env_note}) ...")
        rtp = ours(path, 1400, a.iterations)
        big = ours(path, 65536, a.iterations)
        ff = ffmpeg(path, a.ffmpeg_seconds)

    ratio = rtp["mb_per_s"] / ff["mb_per_s"]
    rows = [
        ("pms-core PsDemuxer, 1400-byte pushes", rtp["mb_per_s"], rtp["iterations"]),
        ("pms-core PsDemuxer, 64 KiB pushes", big["mb_per_s"], big["iterations"]),
        (
            f"FFmpeg mpeg demuxer (libavformat {ff['ffmpeg']})",
            ff["mb_per_s"],
            ff["iterations"],
        ),
    ]
    print(f"{'demuxer':<50} {'MB/s (CPU)':>11} {'passes':>7}")
    for name, mbs, n in rows:
        print(f"{name:<50} {mbs:>11.0f} {n:>7}")
    print(
        f"frames: ours {rtp['video_frames']} video / {rtp['audio_frames']} audio "
        f"({rtp['keyframes']} keyframes, {rtp['resyncs']} resyncs, {rtp['dropped']} dropped); "
        f"FFmpeg {ff['video_packets']} video packets / {ff['packets']} packets"
    )
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(f"ratio ours/FFmpeg: {ratio:.1f}x (target >= {TARGET:g}x: {verdict})")
    if a.json:
        a.json.write_text(
            json.dumps(
                {"ours_rtp": rtp, "ours_64k": big, "ffmpeg": ff, "ratio": ratio},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
