"""GStreamer as a real RTSP client (SPEC section 4: "ffmpeg, ffplay, VLC and GStreamer must play
it"): ``gst-launch-1.0 rtspsrc`` over TCP and UDP decodes the colour an aiortc publisher sends.

``gst-launch-1.0`` with the good (rtspsrc, rtph264depay), bad (h264parse) and libav (avdec_h264)
plugins comes from Debian's packages, installed by ``.ci/run``. Each player scales every decoded
frame to 16x16 RGB, writes it to a file and stops after 60 frames (``identity eos-after=61``: the
61st buffer becomes the EOS); the
test reads the pixels back.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import peers
from .conftest import Server, ServerFactory
from .peers import RED, colour_matches
from .test_rtsp import run, server  # noqa: F401 - `server`: the traceback-checking fixture

pytestmark = pytest.mark.integration

FRAMES = 60
SIDE = 16


def gst_play(url: str, protocol: str, out: Path, log: Path) -> subprocess.Popen[bytes]:
    gst = shutil.which("gst-launch-1.0")
    assert gst, "gst-launch-1.0 is not installed (Debian: gstreamer1.0-tools and plugins; .ci/run does it)"
    pipeline = (f"rtspsrc location={url} protocols={protocol} latency=0 ! rtph264depay ! h264parse ! "
                f"avdec_h264 ! videoconvert ! videoscale ! video/x-raw,format=RGB,width={SIDE},height={SIDE} ! "
                f"identity eos-after={FRAMES + 1} ! filesink location={out}")
    with open(log, "wb") as f:
        return subprocess.Popen([gst, "-q", *pipeline.split()], stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT)


async def _gstreamer(srv: Server, tmp: Path) -> None:
    pub = await peers.publish(srv.ws_url, "cam", colour=RED, audio_codec=None)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        await srv.wait_core(producers=1)
        url = f"{srv.rtsp_url}/cam"
        for protocol in ("tcp", "udp"):
            procs[protocol] = gst_play(url, protocol, tmp / f"{protocol}.rgb", tmp / f"{protocol}.log")
        codes = await asyncio.gather(*(asyncio.to_thread(p.wait, 60) for p in procs.values()))
        for protocol, code in zip(procs, codes):
            log = (tmp / f"{protocol}.log").read_text(errors="replace")[-2000:]
            assert code == 0, f"gst-launch over {protocol} ended with {code}:\n{log}"
            data = (tmp / f"{protocol}.rgb").read_bytes()
            size = SIDE * SIDE * 3
            assert len(data) >= FRAMES * size and len(data) % size == 0, \
                f"{protocol}: {len(data)} bytes, want {FRAMES} frames of {size}"
            for i in range(0, len(data), size):
                frame = data[i:i + size]
                centre = frame[(SIDE // 2 * SIDE + SIDE // 2) * 3:][:3]
                assert colour_matches((centre[0], centre[1], centre[2]), RED), (protocol, i // size, centre)
        await srv.wait_core(consumers=0)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(5)
        await pub.close()


def test_gstreamer_plays_over_tcp_and_udp(server: ServerFactory, tmp_path: Any) -> None:  # noqa: F811
    run(_gstreamer(server(), Path(tmp_path)))
