"""What the GB28181 ingest tests of the real core (``test_gb_ingest_core``) share: the camera, the
players, the waits.

- Camera side: :func:`encode_solid` (H.264/H.265 of one solid colour, cached), :func:`camera_frames`
  (``tests/gb28181/psmux.py``: PS in RTP, grouped per frame), :func:`framed` (RFC 4571) and
  :class:`Camera`, a sender thread over TCP (passive or active) or UDP (optionally reordering).
- Core side: :class:`Events` (every event of the core, drained by polling ``poll_events()``),
  :func:`wait_until`, :func:`wait_live`, :func:`connect_tcp` and :func:`closed_by_peer` (a test's
  asyncio part runs with ``peers.run``, 90 s at most).
- Players: :class:`WebRtcPlayer` (aiortc: decoded frames and their colour, audio frames) and
  :class:`RtspUdpPlayer` (the core's RTSP commands over UDP; this module depacketizes the RTP and
  decodes it with PyAV).

Everything on 127.0.0.1, ports chosen by the system. Every wait is bounded in time and every loop
in count. The tests' ``core`` fixture (a ``pms_trio._core.Core`` in this process) stays with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from pms_trio import _core

from . import peers
from .peers import make_offer, no_ice_servers, use_loopback_only

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gb28181"))
import camera  # noqa: E402
import psmux  # noqa: E402


use_loopback_only()

LOOPBACK = "127.0.0.1"
RED = (220, 40, 40)
BLUE = (40, 60, 220)
GREEN = (40, 200, 60)
FPS = 25
WAIT = 10.0


# --------------------------------------------------------------------------------------------
# Camera side


_encoded: dict[tuple[str, tuple[int, int, int], int, int], list[psmux.AccessUnit]] = {}


def encode_solid(codec: str, colour: tuple[int, int, int], frames: int, gop: int = 25) -> list[psmux.AccessUnit]:
    """``frames`` frames of one solid colour, 160x120, an IDR every ``gop`` (the camera simulator's
    encoder), the first PTS at 1 s; cached per args."""
    key = (codec, colour, frames, gop)
    if key not in _encoded:
        units = camera.encode_solid(codec, colour, frames, FPS, gop, size=(160, 120))
        _encoded[key] = [psmux.AccessUnit(u.pts + psmux.CLOCK, u.data, u.keyframe) for u in units]
    return _encoded[key]


def camera_frames(codec: str, colour: tuple[int, int, int], frames: int, ssrc: int, *,
                  audio: bool = True, first_seq: int = 0) -> list[list[bytes]]:
    """RTP packets of a PS stream, grouped per video frame (packets of one pack)."""
    m = psmux.mux(encode_solid(codec, colour, frames), codec, audio=audio)
    groups: list[list[bytes]] = []
    last_ts = None
    for pkt in psmux.rtp_packets(m.ps, ssrc, seq=first_seq):
        ts = struct.unpack(">I", pkt[4:8])[0]
        if ts != last_ts:
            groups.append([])
            last_ts = ts
        groups[-1].append(pkt)
    return groups


def framed(pkts: list[bytes]) -> bytes:
    return b"".join(struct.pack(">H", len(p)) + p for p in pkts)


class Camera:
    """Sends packet groups on a thread at ``rate`` groups per second over a connected TCP socket
    (RFC 4571) or a UDP socket; ``reorder`` swaps neighbouring packets in every frame (UDP)."""

    def __init__(self, groups: list[list[bytes]], *, tcp: socket.socket | None = None,
                 udp_to: tuple[str, int] | None = None, rate: float = 2 * FPS, reorder: bool = False) -> None:
        self.groups, self.tcp, self.udp_to, self.rate, self.reorder = groups, tcp, udp_to, rate, reorder
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if udp_to else None
        self.sent_groups = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Camera:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            t0 = time.monotonic()
            for i, group in enumerate(self.groups):
                if self._stop.is_set():
                    return
                pkts = list(group)
                if self.reorder and len(pkts) >= 2:
                    pkts[0], pkts[1] = pkts[1], pkts[0]
                if self.tcp is not None:
                    self.tcp.sendall(framed(pkts))
                elif self.udp is not None and self.udp_to is not None:
                    for p in pkts:
                        self.udp.sendto(p, self.udp_to)
                self.sent_groups += 1
                delay = t0 + (i + 1) / self.rate - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
        except OSError as e:
            self.error = e

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.udp is not None:
            self.udp.close()


# --------------------------------------------------------------------------------------------
# Core side


class Events:
    """Every event of the core (its records, ``_core.pyi``) but log records, as polled."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.log: list[Any] = []

    def poll(self) -> list[Any]:
        new = [e for e in self.core.poll_events() if not isinstance(e, _core.LogRecord)]
        self.log.extend(new)
        return new

    async def wait(self, pred: Callable[[Any], bool], timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            self.poll()
            for e in self.log[seen:]:
                if pred(e):
                    return e
            seen = len(self.log)
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no such event in {timeout} s; events: {self.log}")

    def closed(self, tid: int) -> list[str]:
        self.poll()
        return [e.reason for e in self.log if isinstance(e, _core.TransportClosed) and e.transport_id == tid]


async def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """:func:`peers.wait_until`, polling every 20 ms."""
    await peers.wait_until(pred, timeout, what, interval=0.02)


def connect_tcp(port: int) -> socket.socket:
    s = socket.create_connection((LOOPBACK, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_by_peer(s: socket.socket, timeout: float = 3.0) -> bool:
    """Whether the server closes ``s`` within ``timeout`` (EOF or reset)."""
    s.settimeout(timeout)
    try:
        for _ in range(100):
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


# --------------------------------------------------------------------------------------------
# Players


def centre_colour(frame: Any) -> tuple[float, ...]:
    """The mean RGB of the centre of a decoded video frame (the middle half in each direction)."""
    img = frame.to_ndarray(format="rgb24")
    h, w = img.shape[:2]
    return tuple(img[h // 4: 3 * h // 4, w // 4: 3 * w // 4].reshape(-1, 3).mean(0))


class WebRtcPlayer:
    """aiortc, receive-only video (+ audio); the mean colour of the centre of each decoded frame."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(no_ice_servers())
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.colours: list[tuple[float, ...]] = []
        self.audio_frames = 0
        self.tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.tasks.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(Exception):
            for _ in range(100_000):
                frame = await track.recv()
                if track.kind == "video":
                    self.colours.append(centre_colour(frame))
                else:
                    self.audio_frames += 1

    async def play(self, core: Any, stream: str) -> int:
        offer = await make_offer(self.pc)
        tid, answer = core.create_player(stream, offer)
        await asyncio.wait_for(self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer")), WAIT)
        return int(tid)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 5)


def _aggregated(payload: bytes, i: int) -> list[bytes]:
    """The NAL units of an aggregation packet (STAP-A, AP) from offset ``i``: 16-bit size, NAL."""
    out = []
    while i + 2 <= len(payload):
        n = struct.unpack(">H", payload[i:i + 2])[0]
        out.append(payload[i + 2:i + 2 + n])
        i += 2 + n
    return out


def depacketize(payload: bytes, hevc: bool) -> list[bytes]:
    """NAL units of one RTP payload (single NAL, STAP-A/AP, FU-A/FU start..end), with FU state
    kept by the caller: returns ``[b"FU+" + header, ...]`` markers for fragments."""
    if hevc:
        t = (payload[0] >> 1) & 0x3F
        if t == 48:  # AP
            return _aggregated(payload, 2)
        if t == 49:  # FU
            fu = payload[2]
            hdr = bytes([(payload[0] & 0x81) | ((fu & 0x3F) << 1), payload[1]])
            return [b"FU" + bytes([fu >> 6]) + hdr + payload[3:]]
        return [payload]
    t = payload[0] & 0x1F
    if t == 24:  # STAP-A
        return _aggregated(payload, 1)
    if t == 28:  # FU-A
        fu = payload[1]
        hdr = bytes([(payload[0] & 0xE0) | (fu & 0x1F)])
        return [b"FU" + bytes([fu >> 6]) + hdr + payload[2:]]
    return [payload]


class RtspUdpPlayer:
    """An RTSP player over UDP made with the core's RTSP commands (what the RTSP service does at
    SETUP/PLAY); receives the video track's RTP, rebuilds access units and decodes them."""

    def __init__(self, core: Any, stream: str, codec: str) -> None:
        self.core, self.stream, self.hevc = core, stream, codec == "H265"
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((LOOPBACK, 0))
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp.bind((LOOPBACK, 0))
        self.rtp.setblocking(False)
        self.decoder = av.CodecContext.create("hevc" if self.hevc else "h264", "r")
        self.colours: list[tuple[float, ...]] = []
        self.packets = 0
        self._au = bytearray()
        self._fu = bytearray()
        self.tid = -1

    def start(self) -> int:
        tracks = self.core.stream_tracks(self.stream)
        video = next(t for t in tracks if t["kind"] == "video")
        self.tid = int(self.core.create_rtsp_player(self.stream))
        self.core.rtsp_add_track(self.tid, video["index"],
                                 client=(LOOPBACK, self.rtp.getsockname()[1], self.rtcp.getsockname()[1]))
        self.core.rtsp_start(self.tid)
        return self.tid

    def pump(self) -> None:
        for _ in range(10_000):
            try:
                pkt = self.rtp.recv(65536)
            except BlockingIOError:
                return
            self.packets += 1
            cc = pkt[0] & 0x0F
            marker = pkt[1] & 0x80
            payload = pkt[12 + 4 * cc:]
            for nal in depacketize(payload, self.hevc):
                if nal[:2] == b"FU":
                    se, body = nal[2], nal[3:]
                    hdr_len = 2 if self.hevc else 1
                    if se & 2:
                        self._fu = bytearray(body)
                    elif self._fu:
                        self._fu += body[hdr_len:]
                    if se & 1 and self._fu:
                        self._au += b"\x00\x00\x00\x01" + self._fu
                        self._fu = bytearray()
                else:
                    self._au += b"\x00\x00\x00\x01" + nal
            if marker and self._au:
                self._decode(bytes(self._au))
                self._au = bytearray()

    def _decode(self, au: bytes) -> None:
        with contextlib.suppress(av.error.FFmpegError):
            for frame in self.decoder.decode(av.Packet(au)):
                self.colours.append(centre_colour(frame))

    async def wait_frames(self, n: int, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while len(self.colours) < n:
            self.pump()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"RTSP player: {len(self.colours)} frames decoded of {n} ({self.packets} packets)")
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


async def wait_live(events: Events, stream: str) -> list[str]:
    e = await events.wait(lambda e: isinstance(e, _core.ProducerStarted) and e.stream == stream)
    return list(e.codecs)
