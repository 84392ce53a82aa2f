"""Real RTSP peers for the integration tests: a raw-socket client, a PyAV (FFmpeg) player, and the
ffmpeg CLI as a publisher.

- :class:`RawRtsp`: a blocking TCP socket driven by the sans-IO protocol module in the CLIENT role,
  for exact requests and error statuses (every read has a timeout).
- :class:`AvPlayer`: ``av.open(url, options={"rtsp_transport": ...})`` in a thread, recording the
  mean RGB of the centre of each decoded video frame (like ``peers.Player``), counting audio
  frames and keeping their first channel's samples (``audio``, at ``audio_rate``).
- :func:`ffmpeg_publish`: ``ffmpeg -re -f lavfi ... -f rtsp`` as a child process.

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Self
from urllib.parse import urlsplit

import av
import numpy as np
from pms_trio.rtsp import protocol as p

from .peers import VideoSample, colour_matches, wait_until

IO_TIMEOUT = 10.0


# --------------------------------------------------------------------------------------------
# Raw client


class RawRtsp:
    """One RTSP connection. :meth:`request` sends and returns the response (interleaved frames
    read meanwhile are kept in ``frames``)."""

    def __init__(self, url: str, *, timeout: float = IO_TIMEOUT, rcvbuf: int | None = None) -> None:
        parts = urlsplit(url)
        self.base = f"rtsp://{parts.hostname}:{parts.port}"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((parts.hostname, parts.port))
        self.conn = p.Connection(p.CLIENT)
        self.cseq = 0
        self.session: str | None = None
        self.frames: list[p.InterleavedFrame] = []
        self.closed = False

    def url(self, path: str) -> str:
        return path if path.startswith("rtsp://") or path == "*" else f"{self.base}/{path.lstrip('/')}"

    def send(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
             *, session: bool = True) -> None:
        self.cseq += 1
        hdrs = [("CSeq", str(self.cseq)), ("User-Agent", "pms-trio-tests")]
        if session and self.session and "Session" not in (headers or {}):
            hdrs.append(("Session", self.session))
        hdrs += list((headers or {}).items())
        self.sock.sendall(self.conn.send_request(p.Request(method, self.url(path), headers=tuple(hdrs), body=body)))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
                *, session: bool = True, timeout: float = IO_TIMEOUT) -> p.Response:
        self.send(method, path, headers, body, session=session)
        response = self.response(timeout)
        sid = response.header("Session")
        if sid and response.status == 200:
            self.session = sid.split(";")[0].strip()
        return response

    def _next(self, deadline: float) -> p.Event:
        while True:
            event = self.conn.next_event()
            if event is not p.NEED_DATA:
                return event  # type: ignore[return-value]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete RTSP message in time")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
            self.conn.receive_data(data)

    def response(self, timeout: float = IO_TIMEOUT) -> p.Response:
        deadline = time.monotonic() + timeout
        while True:
            event = self._next(deadline)
            if isinstance(event, p.Response):
                return event
            if isinstance(event, p.InterleavedFrame):
                self.frames.append(event)
                continue
            raise ConnectionError(f"connection closed while waiting for a response ({event!r})")

    def read_frames(self, count: int, timeout: float = IO_TIMEOUT) -> list[p.InterleavedFrame]:
        deadline = time.monotonic() + timeout
        start = len(self.frames)
        while len(self.frames) - start < count:
            event = self._next(deadline)
            if isinstance(event, p.InterleavedFrame):
                self.frames.append(event)
            elif isinstance(event, p.ConnectionClosed):
                raise ConnectionError("connection closed while reading frames")
        return self.frames[start:]

    def wait_closed(self, timeout: float = IO_TIMEOUT) -> bool:
        """Read (and drop) until the server closes the connection; False if it did not in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not data:
                self.closed = True
                return True
        return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Conversations --------------------------------------------------------------------------

    def describe(self, stream: str) -> p.Response:
        return self.request("DESCRIBE", stream, {"Accept": "application/sdp"})

    def play_tcp(self, stream: str, tracks: int | None = None) -> list[p.Response]:
        """DESCRIBE, SETUP (interleaved) every track (or the first ``tracks``), PLAY."""
        described = self.describe(stream)
        assert described.status == 200, described
        controls = [line.split(":", 1)[1] for line in described.body.decode().splitlines()
                    if line.startswith("a=control:") and line != "a=control:*"]
        out = [described]
        for i, control in enumerate(controls[:tracks]):
            out.append(self.request("SETUP", f"{stream}/{control}",
                                    {"Transport": f"RTP/AVP/TCP;unicast;interleaved={2 * i}-{2 * i + 1}"}))
            assert out[-1].status == 200, out[-1]
        out.append(self.request("PLAY", stream, {"Range": "npt=0.000-"}))
        return out


def sdp_controls(body: bytes) -> list[str]:
    return [line.split(":", 1)[1] for line in body.decode().splitlines()
            if line.startswith("a=control:") and line != "a=control:*"]


# --------------------------------------------------------------------------------------------
# PyAV player


@dataclass
class AvPlayer:
    """Decodes ``url`` with FFmpeg (PyAV) in a thread until :meth:`stop` or the stream ends."""

    url: str
    transport: str = "tcp"
    video: list[VideoSample] = field(default_factory=list)
    audio_frames: int = 0
    audio: list[np.ndarray] = field(default_factory=list)
    audio_rate: int = 0
    codecs: list[str] = field(default_factory=list)
    error: BaseException | None = None
    ended: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> AvPlayer:
        self._thread = threading.Thread(target=self._run, name=f"av-{self.transport}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            options = {"rtsp_transport": self.transport, "timeout": "10000000"}
            with av.open(self.url, options=options, timeout=(15.0, 10.0)) as container:
                self.codecs = [s.codec_context.name for s in container.streams]
                for packet in container.demux():
                    if self._stop.is_set():
                        break
                    for frame in packet.decode():
                        if isinstance(frame, av.VideoFrame):
                            img = frame.to_ndarray(format="rgb24")
                            h, w = img.shape[:2]
                            centre = img[h // 4: 3 * h // 4, w // 4: 3 * w // 4].reshape(-1, 3).mean(axis=0)
                            self.video.append(VideoSample(time.monotonic(), tuple(float(x) for x in centre), (w, h)))
                        elif isinstance(frame, av.AudioFrame):
                            pcm = frame.to_ndarray()  # planar: (channels, n); packed: (1, n * channels)
                            step = 1 if frame.format.is_planar else len(frame.layout.channels)
                            self.audio.append(pcm[0][::step])
                            self.audio_rate = frame.sample_rate
                            self.audio_frames += 1
        except BaseException as e:  # noqa: BLE001 - reported to the test
            if not self._stop.is_set():
                self.error = e
        finally:
            self.ended = True

    @property
    def video_frames(self) -> int:
        return len(self.video)

    def last_colour(self) -> tuple[float, float, float] | None:
        return self.video[-1].rgb if self.video else None

    async def wait_video_frames(self, n: int, timeout: float = IO_TIMEOUT) -> None:
        await wait_until(lambda: self.video_frames >= n or self.ended, timeout,
                         f"{self.transport} player: {n} video frames (have {{}})", lambda: self.video_frames)
        assert self.video_frames >= n, f"{self.transport} player ended after {self.video_frames} frames: {self.error!r}"

    async def wait_audio_frames(self, n: int, timeout: float = IO_TIMEOUT) -> None:
        await wait_until(lambda: self.audio_frames >= n or self.ended, timeout,
                         f"{self.transport} player: {n} audio frames (have {{}})", lambda: self.audio_frames)
        assert self.audio_frames >= n, f"{self.transport} player ended after {self.audio_frames} audio frames: " \
            f"{self.error!r}"

    async def wait_colour(self, colour: tuple[int, int, int], timeout: float = IO_TIMEOUT) -> float:
        await wait_until(lambda: (c := self.last_colour()) is not None and colour_matches(c, colour), timeout,
                         f"{self.transport} player: colour {colour} (last decoded {{}})", self.last_colour)
        return self.video[-1].t

    async def wait_ended(self, timeout: float) -> None:
        await wait_until(lambda: self.ended, timeout, f"{self.transport} player to end")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


# --------------------------------------------------------------------------------------------
# ffmpeg CLI


def ffmpeg_binary(name: str = "ffmpeg") -> str:
    found = shutil.which(name)
    assert found, f"{name} is not installed (Debian: apt-get install ffmpeg; .ci/run does it)"
    return found


def ffmpeg_publish(url: str, transport: str, *, colour: str = "red", extra_input: list[str] | None = None,
                   video_args: list[str] | None = None, log_path: str | None = None) -> subprocess.Popen[bytes]:
    """``ffmpeg -re`` publishing a solid colour (H.264 constrained baseline, SPS/PPS in the SDP as
    ffmpeg does) to ``url`` over RTSP/``transport``."""
    source = extra_input or ["-f", "lavfi", "-i", f"color=c={colour}:s=320x240:r=30"]
    video = video_args or ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
                           "-pix_fmt", "yuv420p", "-profile:v", "baseline"]
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "warning", "-re", *source, *video,
           "-f", "rtsp", "-rtsp_transport", transport, url]
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child holds it
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def ffprobe_streams(url: str, transport: str = "tcp", timeout: float = 20.0) -> list[str]:
    """Codec names ffprobe lists for ``url``."""
    result = subprocess.run(
        [ffmpeg_binary("ffprobe"), "-hide_banner", "-v", "error", "-rtsp_transport", transport,
         "-show_entries", "stream=codec_name", "-of", "csv=p=0", url],
        capture_output=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"ffprobe failed ({result.returncode}): {result.stderr.decode(errors='replace')}"
    return [line.strip() for line in result.stdout.decode().splitlines() if line.strip()]
