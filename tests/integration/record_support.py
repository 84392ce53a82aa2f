"""What the recording tests share: a video source that paints its frame number, the record
commands over HTTP and WebSocket, and the outside judges of a file (PyAV decodes it, ffprobe
checks it).

The frame number is painted as 12 black or white squares on grey, so a decoded picture tells which
published frame it is: segments are checked for gaps and overlaps by the numbers they hold, not
by timestamps the server wrote.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from .peers import HEIGHT, WIDTH, ColourVideoTrack

BITS = 12
SQUARE = 24
TOP = (HEIGHT - SQUARE) // 2
LEFT = (WIDTH - BITS * SQUARE) // 2


class CounterVideoTrack(ColourVideoTrack):
    """320x240 at 30 fps; frame N shows N (mod 4096) in binary as 12 squares, most significant left."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8)
        n = self.frames_sent % (1 << BITS)
        for bit in range(BITS):
            on = (n >> (BITS - 1 - bit)) & 1
            x = LEFT + bit * SQUARE
            img[TOP:TOP + SQUARE, x:x + SQUARE] = 235 if on else 16
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.frames_sent += 1
        return frame


def read_counter(frame: av.VideoFrame) -> int | None:
    """The number a :class:`CounterVideoTrack` frame shows, or None when a square is unclear."""
    grey = frame.to_ndarray(format="gray")
    if grey.shape != (HEIGHT, WIDTH):
        return None
    n = 0
    for bit in range(BITS):
        x = LEFT + bit * SQUARE
        level = float(grey[TOP + 6:TOP + SQUARE - 6, x + 6:x + SQUARE - 6].mean())
        if 70 < level < 180:
            return None
        n = (n << 1) | (level >= 128)
    return n


@dataclass
class Decoded:
    """What FFmpeg (PyAV) makes of a recording."""

    codecs: dict[str, str] = field(default_factory=dict)  # "video"/"audio" -> codec name
    video_times: list[float] = field(default_factory=list)  # presentation times, s
    counters: list[int | None] = field(default_factory=list)
    first_is_key: bool = False
    audio_start: float | None = None
    audio_end: float | None = None
    audio_frames: int = 0
    error: str = ""

    @property
    def video_frames(self) -> int:
        return len(self.video_times)

    @property
    def video_span(self) -> float:
        return (self.video_times[-1] - self.video_times[0]) if len(self.video_times) > 1 else 0.0


def decode_file(path: Path | str, *, counters: bool = False) -> Decoded:
    out = Decoded()
    try:
        with av.open(str(path)) as container:
            for s in container.streams:
                if s.type in ("video", "audio"):
                    out.codecs[s.type] = s.codec_context.name
            first = True
            for packet in container.demux():
                if packet.stream.type == "video" and packet.size and first:
                    out.first_is_key = bool(packet.is_keyframe)
                    first = False
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        out.video_times.append(float(frame.time or 0.0))
                        if counters:
                            out.counters.append(read_counter(frame))
                    elif isinstance(frame, av.AudioFrame):
                        start = float(frame.time or 0.0)
                        end = start + frame.samples / frame.sample_rate
                        out.audio_start = start if out.audio_start is None else min(out.audio_start, start)
                        out.audio_end = end if out.audio_end is None else max(out.audio_end, end)
                        out.audio_frames += 1
    except Exception as e:  # noqa: BLE001 - a file cut short ends in an error after its frames
        out.error = f"{type(e).__name__}: {e}"
    return out


def ffprobe(path: Path | str) -> dict[str, Any]:
    """``ffprobe`` of Debian's FFmpeg: the format and streams; asserts it printed no error."""
    result = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                             str(path)], capture_output=True, timeout=30)
    assert result.returncode == 0 and not result.stderr.strip(), \
        f"ffprobe {path}: status {result.returncode}: {result.stderr.decode(errors='replace')}"
    return json.loads(result.stdout)


def ffmpeg_decode_errors(path: Path | str) -> str:
    """Decode every frame with the ffmpeg CLI; returns what it printed at level error."""
    result = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, timeout=60)
    return result.stderr.decode(errors="replace").strip()


def seek_middle(path: Path | str) -> tuple[float, float]:
    """Seek to the middle of the file (to the keyframe at or before it, as players do) and decode
    on until the middle; returns (the first frame's time after the seek, the frame reached). A
    stream whose only keyframe is the first lands at its start and decodes on from there."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        duration = float(container.duration or 0) / av.time_base
        assert duration > 0, f"{path}: no duration"
        target = duration / 2
        container.seek(int(target / video.time_base), stream=video, backward=True, any_frame=False)
        first: float | None = None
        for frame in container.decode(video):
            t = float(frame.time or 0.0)
            first = t if first is None else first
            if t >= target - 0.05:
                return first, t
    raise AssertionError(f"{path}: decoding after seeking to the middle never reached it")


# --------------------------------------------------------------------------------------------
# Commands


def record_url(ready: dict[str, Any]) -> str:
    return str(ready["record"]).rstrip("/")


def post_json(url: str, document: Any, timeout: float = 15.0) -> tuple[int, dict[str, Any]]:
    """POST a JSON document; returns the HTTP status and the JSON reply, whatever the status."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def command(stream: str, method: str, **data: Any) -> dict[str, Any]:
    return {"stream": stream, "method": method, "data": data}


async def record(url: str, stream: str, method: str, **data: Any) -> tuple[int, dict[str, Any]]:
    """One command to the command port over HTTP (in a thread: the tests' loop is aiortc's)."""
    return await asyncio.wait_for(asyncio.to_thread(post_json, url + "/", command(stream, method, **data)), 20)


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 15.0) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
