"""Audio transcoding density and added latency (SPEC 11): concurrent AAC 44.1 kHz stereo -> Opus
transcodes per CPU core, and the latency a transcoder adds.

1. Makes 10 s of AAC-LC 44.1 kHz stereo at 128 kbit/s with FFmpeg (a 440 Hz sine mixed with
   noise, so the encoders work as on real programme audio rather than on a pure tone).
2. Builds and runs `cargo run --release -p pms-core --example transcode_bench` with N transcoders
   on one thread (each gets every AAC packet, interleaved as a worker serves N streams): CPU seconds
   of that thread per second of audio give transcodes per core; transcoder 0's Opus packets give
   the added latency (AAC packet arrival that completes an Opus packet, back to the end of that
   packet's audio, plus the call's processing time: it includes the wait for a full 20 ms Opus
   frame, the resampler's delay and the encoder's lookahead).
3. Prints one line per N and the targets (>= 300 per core, < 30 ms added).

    python bench/transcode/run.py [--n 50 100 200] [--seconds 10] [--complexity C] [--loss PCT] [--json OUT]

With no loss reported (the usual LAN or good network) the encoder stays in CELT; --loss 10 measures
the transcoders of players that lose 10 % (in-band FEC data added, SILK/hybrid modes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_PER_CORE = 300
TARGET_LATENCY_MS = 30


def make_aac(path: Path, seconds: float) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
         "-f", "lavfi", "-i", f"anoisesrc=r=44100:a=0.1:d={seconds}",
         "-filter_complex", "[0][1]amix=inputs=2,pan=stereo|c0=c0|c1=c0",
         "-c:a", "aac", "-b:a", "128k", "-ar", "44100", "-ac", "2", "-f", "adts", str(path)],
        check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[50, 100])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--complexity", type=int, default=None, help="libopus complexity (default: the server's)")
    ap.add_argument("--loss", type=int, default=None,
                    help="loss %% the players report (in-band FEC on: libopus's SILK/hybrid modes); default 0")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    env = dict(os.environ)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pms-core", "--example", "transcode_bench"],
                   cwd=ROOT, check=True, env=env)
    target_dir = Path(env.get("CARGO_TARGET_DIR", ROOT / "target"))
    exe = target_dir / "release" / "examples" / "transcode_bench"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        aac = Path(tmp) / "tone.aac"
        make_aac(aac, a.seconds)
        for n in a.n:
            cmd = [str(exe), str(aac), str(n), str(a.seconds)]
            cmd.append(str(a.complexity if a.complexity is not None else -1))
            if a.loss is not None:
                cmd.append(str(a.loss))
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
            r = json.loads(out.splitlines()[-1])
            results.append(r)
            print(f"N={n:4d}: {r['per_core']:6.0f} transcodes per core "
                  f"({r['cpu_seconds']:.2f} CPU s for {r['audio_seconds']:.1f} s of audio each), "
                  f"Opus {r['opus_kbps']:.0f} kbit/s, added latency mean {r['latency_ms_mean']:.1f} ms, "
                  f"max {r['latency_ms_max']:.1f} ms")
    best = max(r["per_core"] for r in results)
    lat = max(r["latency_ms_mean"] for r in results)
    print(f"target: >= {TARGET_PER_CORE} per core ({'met' if best >= TARGET_PER_CORE else 'NOT met'}: {best:.0f}), "
          f"< {TARGET_LATENCY_MS} ms added ({'met' if lat < TARGET_LATENCY_MS else 'NOT met'}: mean {lat:.1f} ms)")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
