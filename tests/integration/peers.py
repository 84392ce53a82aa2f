"""Real peers for the integration tests: a signaling client, an aiortc publisher and player.

What this module owns: everything a test needs to act like a user of the server: a WebSocket
signaling client (``websockets``) that matches replies to requests by method and keeps a
heartbeat task, an aiortc publisher whose video is a solid colour that can be switched while it
runs (plus an Opus sine tone), and an aiortc player that records, for every decoded video frame,
the mean RGB of the centre of the picture, and counts decoded audio frames.

Rules: asyncio only (aiortc is asyncio; the server is another process). Loopback only: importing
this module restricts aioice's host candidates to 127.0.0.1 and the peers use no STUN server.
Every wait is bounded (``asyncio.wait_for``) so a broken server fails a test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import json
import math
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Awaitable, Callable, Iterable, Sequence

import aioice.ice
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


def use_loopback_only() -> None:
    """aioice leaves 127.0.0.1 out of host candidates; the tests run on loopback only."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


use_loopback_only()

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)

WIDTH, HEIGHT, FPS = 320, 240, 30
AUDIO_RATE, AUDIO_PTIME = 48000, 0.020
COLOUR_TOLERANCE = 40

DEFAULT_TIMEOUT = 10.0


def colour_matches(rgb: Sequence[float], expected: Sequence[int], tol: int = COLOUR_TOLERANCE) -> bool:
    return all(abs(float(a) - b) <= tol for a, b in zip(rgb, expected))


def all_match(colours: list[tuple[float, float, float]], colour: tuple[int, int, int]) -> bool:
    """Some colours, every one of them ``colour``."""
    return bool(colours) and all(colour_matches(c, colour) for c in colours)


def no_ice_servers() -> RTCConfiguration:
    """aiortc defaults to Google's STUN server; the tests must not leave the machine."""
    return RTCConfiguration(iceServers=[])


# --------------------------------------------------------------------------------------------
# Signaling


class SignalingError(Exception):
    """A reply with ``err != 0`` where the test expected success."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"{reply.get('method')}: err {reply.get('err')}: {reply.get('err_msg')}")
        self.reply = reply
        self.code = reply.get("err")


class SignalingClient:
    """One WebSocket session. ``request`` sends and awaits the reply with the same method.

    A reader task sorts incoming frames by their ``method`` into queues; a heartbeat task (when
    ``heartbeat_interval`` is set) sends ``stream.heartbeat`` and keeps failed replies in
    ``heartbeat_errors``. Requests
    of one method are serialised by a lock so replies cannot be confused.
    """

    def __init__(self, ws: ClientConnection, heartbeat_interval: float | None) -> None:
        self.ws = ws
        self.session = ""
        self.closed = asyncio.Event()
        self.close_time: float | None = None
        self.last_sent = time.monotonic()
        self.received: list[dict[str, Any]] = []
        self.heartbeat_errors: list[dict[str, Any]] = []
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._any: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._locks: dict[str, asyncio.Lock] = {}
        self._heartbeat_interval = heartbeat_interval
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        heartbeat_interval: float | None = 1.0,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> SignalingClient:
        kwargs: dict[str, Any] = {"max_size": None, "open_timeout": timeout, "close_timeout": 2}
        if ssl_context is not None:
            kwargs["ssl"] = ssl_context
        ws = await asyncio.wait_for(connect(url, **kwargs), timeout)
        client = cls(ws, heartbeat_interval)
        client._tasks.append(asyncio.create_task(client._reader()))
        if heartbeat_interval:
            client._tasks.append(asyncio.create_task(client._heartbeat()))
        return client

    def _queue(self, method: str) -> asyncio.Queue[dict[str, Any]]:
        return self._queues.setdefault(method, asyncio.Queue())

    async def _reader(self) -> None:
        try:
            async for text in self.ws:
                msg = json.loads(text)
                assert isinstance(msg, dict), f"server sent a non-object frame: {text!r}"
                self.received.append(msg)
                if isinstance(msg.get("session"), str) and msg["session"]:
                    self.session = msg["session"]
                self._queue(str(msg.get("method"))).put_nowait(msg)
                self._any.put_nowait(msg)
        except ConnectionClosed:
            pass
        finally:
            self.close_time = time.monotonic()
            self.closed.set()

    async def _heartbeat(self) -> None:
        """Every ``heartbeat_interval`` s a ``stream.heartbeat``; a failed one is kept for the test."""
        assert self._heartbeat_interval
        with contextlib.suppress(ConnectionClosed, ConnectionError):
            while not self.closed.is_set():
                try:
                    reply = await self.request_raw("stream.heartbeat", timeout=5)
                except TimeoutError:
                    reply = {"err": "no reply within 5 s"}
                if reply.get("err") != 0:
                    self.heartbeat_errors.append(reply)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.closed.wait(), self._heartbeat_interval)

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        """Send one frame as is (a dict is JSON-encoded)."""
        text = json.dumps(message) if isinstance(message, dict) else message
        self.last_sent = time.monotonic()
        await self.ws.send(text)

    async def reply(self, method: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next reply whose ``method`` is ``method`` (``"ack"`` for unparseable frames)."""
        queue = self._queue(method)
        get = asyncio.ensure_future(queue.get())
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            done, _ = await asyncio.wait({get, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if get in done:
            return get.result()
        get.cancel()
        if self.closed.is_set():
            raise ConnectionError(f"WebSocket closed while waiting for a {method!r} reply")
        raise TimeoutError(f"no {method!r} reply within {timeout} s")

    async def next_any(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next frame of any method (use with ``heartbeat_interval=None``; it does not
        consume the per-method queues)."""
        return await asyncio.wait_for(self._any.get(), timeout)

    def drain_any(self) -> None:
        """Forget every frame :meth:`next_any` has not returned yet."""
        while not self._any.empty():
            self._any.get_nowait()

    async def request_raw(
        self,
        method: str,
        stream: str = "",
        data: Any = None,
        *,
        session: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        **extra: Any,
    ) -> dict[str, Any]:
        """Send a request and return the reply whatever its ``err``."""
        msg: dict[str, Any] = {
            "version": "1.0",
            "method": method,
            "stream": stream,
            "session": self.session if session is None else session,
            "data": {} if data is None else data,
        }
        msg.update(extra)
        lock = self._locks.setdefault(method, asyncio.Lock())
        async with lock:
            await self.send(msg)
            return await self.reply(method, timeout)

    async def request(self, method: str, stream: str = "", data: Any = None, **kw: Any) -> dict[str, Any]:
        """Send a request; return the reply's ``data``; raise :class:`SignalingError` on ``err``."""
        reply = await self.request_raw(method, stream, data, **kw)
        check_reply_shape(reply, method)
        if reply["err"] != 0:
            raise SignalingError(reply)
        return reply.get("data") or {}

    async def wait_closed(self, timeout: float) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a client that vanished)."""
        self.ws.transport.abort()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 3)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 1)


def check_reply_shape(reply: dict[str, Any], method: str) -> None:
    assert reply.get("method") == method, reply
    assert isinstance(reply.get("err"), int), reply
    assert isinstance(reply.get("err_msg"), str), reply
    assert isinstance(reply.get("session"), str) and reply["session"], reply


# --------------------------------------------------------------------------------------------
# Media sources


class ColourVideoTrack(VideoStreamTrack):
    """Solid-colour 320x240 frames at 30 fps; assign ``colour`` to switch while running."""

    def __init__(self, colour: tuple[int, int, int] = RED, width: int = WIDTH, height: int = HEIGHT) -> None:
        super().__init__()
        self.colour = colour
        self.width, self.height = width, height
        self.frames_sent = 0
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}

    def _image(self, colour: tuple[int, int, int]) -> np.ndarray:
        if colour not in self._cache:
            img = np.empty((self.height, self.width, 3), dtype=np.uint8)
            img[:, :] = colour
            self._cache[colour] = img
        return self._cache[colour]

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self._image(self.colour), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.frames_sent += 1
        return frame


class SineAudioTrack(AudioStreamTrack):
    """A 440 Hz tone, 48 kHz mono s16, 20 ms frames, paced in real time."""

    def __init__(self, freq: float = 440.0) -> None:
        super().__init__()
        self.freq = freq
        self.samples = int(AUDIO_RATE * AUDIO_PTIME)
        self._ts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._ts += self.samples
            await asyncio.sleep(max(0.0, self._start + self._ts / AUDIO_RATE - time.time()))
        t = (np.arange(self.samples) + self._ts) / AUDIO_RATE
        pcm = (np.sin(2 * math.pi * self.freq * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._ts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


def codec_preferences(kind: str, mime: str, *, with_rtx: bool = True, receiver: bool = False) -> list[Any]:
    """aiortc's capabilities for one codec (``"video/H264"``, ``"video/VP8"``, ``"audio/opus"``)."""
    caps = (RTCRtpReceiver if receiver else RTCRtpSender).getCapabilities(kind).codecs
    prefs = [c for c in caps if c.mimeType.lower() == mime.lower()]
    assert prefs, f"aiortc cannot {'receive' if receiver else 'send'} {mime}"
    if with_rtx and kind == "video":
        prefs += [c for c in caps if c.mimeType.lower() == "video/rtx"]
    return prefs


async def _gathered(pc: RTCPeerConnection, timeout: float) -> None:
    async def complete() -> None:
        while pc.iceGatheringState != "complete":
            await asyncio.sleep(0.02)

    await asyncio.wait_for(complete(), timeout)


async def wait_connection_state(
    pc: RTCPeerConnection, states: Iterable[str], timeout: float = DEFAULT_TIMEOUT
) -> str:
    wanted = set(states)

    async def poll() -> str:
        while pc.connectionState not in wanted:
            await asyncio.sleep(0.05)
        return pc.connectionState

    try:
        return await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise TimeoutError(f"connectionState is {pc.connectionState!r}, wanted one of {sorted(wanted)}") from None


async def make_offer(pc: RTCPeerConnection, timeout: float = DEFAULT_TIMEOUT) -> str:
    """createOffer → setLocalDescription → ICE gathering complete; the full offer SDP."""
    offer = await pc.createOffer()
    await asyncio.wait_for(pc.setLocalDescription(offer), timeout)
    await _gathered(pc, timeout)
    return pc.localDescription.sdp


def sdp_candidate_ports(sdp: str) -> set[tuple[str, int]]:
    """``(address, port)`` of every ``a=candidate`` line."""
    out = set()
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            out.add((parts[4], int(parts[5])))
    return out


# --------------------------------------------------------------------------------------------
# Publisher


@dataclass
class Publisher:
    signaling: SignalingClient
    pc: RTCPeerConnection
    stream: str
    video: ColourVideoTrack | None
    audio: SineAudioTrack | None
    answer: str = ""

    async def close(self, *, signal: bool = False) -> None:
        if signal and not self.signaling.closed.is_set():
            with contextlib.suppress(Exception):
                await self.signaling.request("stream.close", self.stream)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 5)
        await self.signaling.close()


def build_publisher_pc(
    video_codec: str | None = "video/H264",
    audio_codec: str | None = "audio/opus",
    colour: tuple[int, int, int] = RED,
    video_track: ColourVideoTrack | None = None,
) -> tuple[RTCPeerConnection, ColourVideoTrack | None, SineAudioTrack | None]:
    pc = RTCPeerConnection(no_ice_servers())
    video = audio = None
    if video_codec:
        video = video_track or ColourVideoTrack(colour)
        tr = pc.addTransceiver(video, direction="sendonly")
        tr.setCodecPreferences(codec_preferences("video", video_codec))
    if audio_codec:
        audio = SineAudioTrack()
        tr = pc.addTransceiver(audio, direction="sendonly")
        tr.setCodecPreferences(codec_preferences("audio", audio_codec))
    return pc, video, audio


async def publish(
    url: str,
    stream: str,
    *,
    video_codec: str | None = "video/H264",
    audio_codec: str | None = "audio/opus",
    colour: tuple[int, int, int] = RED,
    max_bitrate: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    signaling: SignalingClient | None = None,
    wait_connected: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    video_track: ColourVideoTrack | None = None,
    token: str | None = None,
) -> Publisher:
    """The whole publish flow; returns once connected. ``video_track`` replaces the solid colour."""
    sig = signaling or await SignalingClient.connect(url, ssl_context=ssl_context)
    pc, video, audio = build_publisher_pc(video_codec, audio_codec, colour, video_track)
    pub = Publisher(sig, pc, stream, video, audio)
    try:
        offer = await make_offer(pc, timeout)
        data: dict[str, Any] = {"sdp": offer, **({"token": token} if token else {})}
        if max_bitrate is not None:
            data["max_bitrate"] = max_bitrate
        reply = await sig.request("stream.publish", stream, data, timeout=timeout)
        assert isinstance(reply.get("sdp"), str), reply
        pub.answer = reply["sdp"]
        await asyncio.wait_for(pc.setRemoteDescription(RTCSessionDescription(pub.answer, "answer")), timeout)
        if wait_connected:
            await wait_connection_state(pc, ["connected"], timeout)
    except BaseException:
        await pub.close()
        raise
    return pub


# --------------------------------------------------------------------------------------------
# Player


@dataclass
class VideoSample:
    t: float
    rgb: tuple[float, float, float]
    size: tuple[int, int]


@dataclass
class Player:
    signaling: SignalingClient
    pc: RTCPeerConnection
    stream: str
    video: list[VideoSample] = field(default_factory=list)
    audio_frames: int = 0
    answer: str = ""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def video_frames(self) -> int:
        return len(self.video)

    def colours_since(self, t: float) -> list[tuple[float, float, float]]:
        return [s.rgb for s in self.video if s.t >= t]

    def last_colour(self) -> tuple[float, float, float] | None:
        return self.video[-1].rgb if self.video else None

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    img = frame.to_ndarray(format="rgb24")
                    h, w = img.shape[:2]
                    centre = img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
                    mean = centre.reshape(-1, 3).mean(axis=0)
                    self.video.append(VideoSample(time.monotonic(), tuple(float(x) for x in mean), (w, h)))
                else:
                    self.audio_frames += 1

    async def wait_video_frames(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        await wait_until(lambda: self.video_frames >= n, timeout, f"{self.stream}: {n} video frames (have {{}})",
                         lambda: self.video_frames)

    async def wait_audio_frames(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        await wait_until(lambda: self.audio_frames >= n, timeout, f"{self.stream}: {n} audio frames (have {{}})",
                         lambda: self.audio_frames)

    async def wait_colour(self, colour: tuple[int, int, int], timeout: float = DEFAULT_TIMEOUT) -> float:
        """Wait until the latest decoded frame shows ``colour``; returns the time it did."""
        await wait_until(
            lambda: (c := self.last_colour()) is not None and colour_matches(c, colour),
            timeout,
            f"{self.stream}: colour {colour} (last decoded {{}})",
            self.last_colour,
        )
        return self.video[-1].t

    async def close(self, *, signal: bool = False) -> None:
        for task in self._tasks:
            task.cancel()
        if signal and not self.signaling.closed.is_set():
            with contextlib.suppress(Exception):
                await self.signaling.request("stream.close", self.stream)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 5)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 1)
        if self.signaling is not None:
            await self.signaling.close()


def build_player_pc(
    video: bool | str = True, audio: bool | str = True
) -> RTCPeerConnection:
    """Receive-only transceivers; a ``str`` restricts that kind to one codec (e.g. ``"video/VP8"``)."""
    pc = RTCPeerConnection(no_ice_servers())
    for kind, want in (("video", video), ("audio", audio)):
        if want:
            tr = pc.addTransceiver(kind, direction="recvonly")
            if isinstance(want, str):
                tr.setCodecPreferences(codec_preferences(kind, want, receiver=True))
    return pc


async def play(
    url: str,
    stream: str,
    *,
    video: bool | str = True,
    audio: bool | str = True,
    ssl_context: ssl.SSLContext | None = None,
    signaling: SignalingClient | None = None,
    wait_connected: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    token: str | None = None,
) -> Player:
    """The whole play flow; decoded frames are recorded on the returned :class:`Player`."""
    sig = signaling or await SignalingClient.connect(url, ssl_context=ssl_context)
    pc = build_player_pc(video, audio)
    player = Player(sig, pc, stream)

    @pc.on("track")
    def on_track(track: Any) -> None:
        player._tasks.append(asyncio.create_task(player._consume(track)))

    try:
        offer = await make_offer(pc, timeout)
        reply = await sig.request("stream.play", stream, {"sdp": offer, **({"token": token} if token else {})},
                                  timeout=timeout)
        assert isinstance(reply.get("sdp"), str), reply
        player.answer = reply["sdp"]
        await asyncio.wait_for(pc.setRemoteDescription(RTCSessionDescription(player.answer, "answer")), timeout)
        if wait_connected:
            await wait_connection_state(pc, ["connected"], timeout)
    except BaseException:
        await player.close()
        raise
    return player


# --------------------------------------------------------------------------------------------
# Waiting


def run(coro: Awaitable[Any], timeout: float = 90.0) -> Any:
    """A test's asyncio part (tests are sync functions), ended after ``timeout`` s."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def close_all(*peers_: Any) -> None:
    """``close()`` each peer that is not None, in order."""
    for p in peers_:
        if p is not None:
            await p.close()


async def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str = "condition",
    current: Callable[[], Any] | None = None,
    interval: float = 0.05,
) -> None:
    """Poll ``predicate`` every ``interval`` s for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    for _ in itertools.count():
        if predicate():
            return
        if time.monotonic() >= deadline:
            now = current() if current else None
            raise TimeoutError(f"timed out after {timeout} s waiting for {what.format(now)}")
        await asyncio.sleep(interval)


async def count_stalls(counter: Callable[[], int], settle: float, window: float) -> tuple[int, int]:
    """Wait ``settle`` s, then return how much ``counter`` grew over ``window`` s and its value."""
    await asyncio.sleep(settle)
    before = counter()
    await asyncio.sleep(window)
    after = counter()
    return after - before, after
