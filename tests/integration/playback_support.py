"""Players that read the recording time the SD-card simulator stamps into each picture.

:class:`StampRtsp` decodes an RTSP URL with FFmpeg (PyAV) in a thread; :func:`play_stamps` plays
over WebRTC (aiortc) through the signaling. Both keep :class:`Stamp` samples: when the frame was
decoded (monotonic), its presentation time in seconds (the player's timeline) and the stamped
recording second (mod 65536).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from . import peers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gb28181"))
from sdcard import read_stamp  # noqa: E402


@dataclass(frozen=True)
class Stamp:
    t: float  # monotonic, when decoded
    pts: float  # seconds on the player's timeline
    second: int  # the stamped recording second, mod 65536


def near(second: int, expected: int, tolerance: int = 1) -> bool:
    return abs((second - expected + 32768) % 65536 - 32768) <= tolerance


@dataclass
class StampRtsp:
    url: str
    stamps: list[Stamp] = field(default_factory=list)
    error: BaseException | None = None
    ended: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> StampRtsp:
        self._thread = threading.Thread(target=self._run, name="stamp-rtsp", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with av.open(self.url, options={"rtsp_transport": "tcp", "timeout": "10000000"},
                         timeout=(15.0, 10.0)) as container:
                for packet in container.demux(video=0):
                    if self._stop.is_set():
                        break
                    for frame in packet.decode():
                        pts = float(frame.pts * frame.time_base) if frame.pts is not None else -1.0
                        self.stamps.append(Stamp(time.monotonic(), pts, read_stamp(frame.to_ndarray(format="rgb24"))))
        except BaseException as e:  # noqa: BLE001 - reported to the test
            if not self._stop.is_set():
                self.error = e
        finally:
            self.ended = True

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)


@dataclass
class StampWebrtc:
    player: peers.Player
    stamps: list[Stamp] = field(default_factory=list)

    async def close(self) -> None:
        await self.player.close()


async def play_stamps(ws_url: str, stream: str, timeout: float = 20.0) -> StampWebrtc:
    """peers.play's flow, with a consumer that reads stamps."""
    sig = await peers.SignalingClient.connect(ws_url)
    pc = peers.build_player_pc(True, False)
    player = peers.Player(sig, pc, stream)
    out = StampWebrtc(player)

    async def consume(track: Any) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                pts = float(frame.pts * frame.time_base) if frame.pts is not None else -1.0
                out.stamps.append(Stamp(time.monotonic(), pts, read_stamp(frame.to_ndarray(format="rgb24"))))

    @pc.on("track")
    def on_track(track: Any) -> None:
        if track.kind == "video":
            player._tasks.append(asyncio.create_task(consume(track)))

    try:
        offer = await peers.make_offer(pc, timeout)
        reply = await sig.request("stream.play", stream, {"sdp": offer}, timeout=timeout)
        await asyncio.wait_for(pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer")), timeout)
        await peers.wait_connection_state(pc, ["connected"], timeout)
    except BaseException:
        await player.close()
        raise
    return out


async def wait_stamps(stamps: list[Stamp], predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(stamps):
            return
        await asyncio.sleep(0.05)
    last = stamps[-1] if stamps else None
    raise AssertionError(f"{what}: not within {timeout} s ({len(stamps)} frames, last {last})")
