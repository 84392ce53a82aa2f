"""The GB28181 media ingest of the real core (``pms_trio._core.Core`` in this process), as a user
sees it: a camera-like sender (``tests/gb28181/psmux.py``: PS in RTP, one solid colour) over TCP
passive, UDP (with reordering) and TCP active; what comes out is checked by real players: an
aiortc WebRTC player (decoded frames and their colour) and an RTSP-over-UDP player whose RTP this
test depacketizes and decodes with PyAV (H.264 and H.265).

Everything on 127.0.0.1, ports chosen by the system. Every wait is bounded in time and every loop
in count. Core events are drained by polling ``poll_events()``; each test keeps them in an
:class:`Events` log.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pms_trio._core as core_module
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from .peers import colour_matches, make_offer, no_ice_servers, use_loopback_only

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gb28181"))
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
    """``frames`` frames of one solid colour, 160x120, an IDR every ``gop`` (cached per args)."""
    key = (codec, colour, frames, gop)
    if key in _encoded:
        return _encoded[key]
    name = {"h264": "libx264", "hevc": "libx265"}[codec]
    ctx: Any = av.CodecContext.create(name, "w")
    ctx.width, ctx.height, ctx.pix_fmt = 160, 120, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, FPS), Fraction(FPS, 1)
    ctx.gop_size = gop
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
    if codec == "h264":
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": params}
    else:
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency",
                       "x265-params": params + ":repeat-headers=1:log-level=error"}
    arr = np.empty((120, 160, 3), dtype=np.uint8)
    arr[:] = colour
    out: list[psmux.AccessUnit] = []

    def take(packets: Any) -> None:
        for p in packets:
            out.append(psmux.AccessUnit(int(p.pts) * 90000 // FPS + 90000, bytes(p), bool(p.is_keyframe)))

    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        take(ctx.encode(frame))
    take(ctx.encode(None))
    _encoded[key] = out
    return out


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
    """Every event of the core, as polled."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.log: list[tuple[Any, ...]] = []

    def poll(self) -> list[tuple[Any, ...]]:
        new = [e for e in self.core.poll_events() if e[0] != "log"]
        self.log.extend(new)
        return new

    async def wait(self, pred: Callable[[tuple[Any, ...]], bool], timeout: float = WAIT) -> tuple[Any, ...]:
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
        return [e[2] for e in self.log if e[0] == "transport_closed" and e[1] == tid]


@pytest.fixture
def core() -> Iterator[Any]:
    c = core_module.Core(workers=1, listen_ip=LOOPBACK, announced_ips=[LOOPBACK], min_port=0, max_port=0,
                         log_level="warn")
    try:
        yield c
    finally:
        c.shutdown()


async def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


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
                    img = frame.to_ndarray(format="rgb24")
                    h, w = img.shape[:2]
                    self.colours.append(tuple(img[h // 4: 3 * h // 4, w // 4: 3 * w // 4].reshape(-1, 3).mean(0)))
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


def depacketize(payload: bytes, hevc: bool) -> list[bytes]:
    """NAL units of one RTP payload (single NAL, STAP-A/AP, FU-A/FU start..end), with FU state
    kept by the caller: returns ``[b"FU+" + header, ...]`` markers for fragments."""
    if hevc:
        t = (payload[0] >> 1) & 0x3F
        if t == 48:  # AP
            out, i = [], 2
            while i + 2 <= len(payload):
                n = struct.unpack(">H", payload[i:i + 2])[0]
                out.append(payload[i + 2:i + 2 + n])
                i += 2 + n
            return out
        if t == 49:  # FU
            fu = payload[2]
            hdr = bytes([(payload[0] & 0x81) | ((fu & 0x3F) << 1), payload[1]])
            return [b"FU" + bytes([fu >> 6]) + hdr + payload[3:]]
        return [payload]
    t = payload[0] & 0x1F
    if t == 24:  # STAP-A
        out, i = [], 1
        while i + 2 <= len(payload):
            n = struct.unpack(">H", payload[i:i + 2])[0]
            out.append(payload[i + 2:i + 2 + n])
            i += 2 + n
        return out
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
                img = frame.to_ndarray(format="rgb24")
                h, w = img.shape[:2]
                self.colours.append(tuple(img[h // 4: 3 * h // 4, w // 4: 3 * w // 4].reshape(-1, 3).mean(0)))

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
    e = await events.wait(lambda e: e[0] == "producer_started" and e[1] == stream)
    return list(e[2])


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 90))


# --------------------------------------------------------------------------------------------
# Tests


def test_tcp_passive_h264_with_g711_plays_over_webrtc_and_rtsp(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, udp_port = core.gb_listen(LOOPBACK, 0)
        assert tcp_port > 0 and udp_port > 0
        tid = core.create_gb_ingest("34020000001320000001", 100001)
        assert core.stream_codecs("34020000001320000001") is None  # reserved, not live
        sock = connect_tcp(tcp_port)
        cam = Camera(camera_frames("h264", RED, 250, 100001), tcp=sock).start()
        webrtc = WebRtcPlayer()
        rtsp = None
        try:
            codecs = await wait_live(events, "34020000001320000001")
            assert codecs == ["video/H264", "audio/PCMA"]
            await webrtc.play(core, "34020000001320000001")
            rtsp = RtspUdpPlayer(core, "34020000001320000001", "H264")
            rtsp.start()
            await wait_until(lambda: len(webrtc.colours) >= 60, 15, "60 WebRTC frames")
            assert all(colour_matches(c, RED) for c in webrtc.colours[-30:]), webrtc.colours[-5:]
            await wait_until(lambda: webrtc.audio_frames > 0, WAIT, "WebRTC audio (PCMA)")
            await rtsp.wait_frames(20)
            assert colour_matches(rtsp.colours[-1], RED), rtsp.colours[-5:]
            stats = core.stats()
            assert stats["gb_ingests"] == 1 and stats["gb_tcp_connections"] == 1
            assert stats["gb_seq_gaps"] == 0 and stats["gb_unknown_ssrc"] == 0
            assert "transport_closed" not in [e[0] for e in events.log if e[1] == tid]
            # The players found the IDR in the cache: the camera is not asked for one.
            assert ("keyframe_wanted", "34020000001320000001") not in events.log
        finally:
            cam.stop()
            sock.close()
            await webrtc.close()
            if rtsp:
                rtsp.close()
        # The camera hung up: the ingest ends with eof and the stream is gone.
        await events.wait(lambda e: e == ("transport_closed", tid, "eof"))
        assert core.stream_codecs("34020000001320000001") is None

    run(main())


def test_udp_with_reordering_plays_without_gaps(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        _, udp_port = core.gb_listen(LOOPBACK, 0)
        core.create_gb_ingest("cam-udp", 200002, transport="udp")
        cam = Camera(camera_frames("h264", BLUE, 250, 200002), udp_to=(LOOPBACK, udp_port), reorder=True).start()
        webrtc = WebRtcPlayer()
        try:
            await wait_live(events, "cam-udp")
            await webrtc.play(core, "cam-udp")
            await wait_until(lambda: len(webrtc.colours) >= 60, 15, "60 WebRTC frames")
            assert all(colour_matches(c, BLUE) for c in webrtc.colours[-30:]), webrtc.colours[-5:]
            # Every frame's first two packets were swapped: the reorder buffer put them back.
            await asyncio.sleep(0.3)
            assert core.stats()["gb_seq_gaps"] == 0
            assert core.stats()["gb_packets_in"] > 0
        finally:
            cam.stop()
            await webrtc.close()

    run(main())


def test_tcp_active_h265_plays_over_rtsp(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        listener = socket.create_server((LOOPBACK, 0))
        listener.settimeout(WAIT)
        port = listener.getsockname()[1]
        tid = core.create_gb_ingest("cam-active", 300003, transport="tcp-active", connect=(LOOPBACK, port))
        conn, _ = await asyncio.to_thread(listener.accept)
        cam = Camera(camera_frames("hevc", GREEN, 200, 300003, audio=False), tcp=conn).start()
        rtsp = None
        try:
            assert await wait_live(events, "cam-active") == ["video/H265"]
            rtsp = RtspUdpPlayer(core, "cam-active", "H265")
            rtsp.start()
            await rtsp.wait_frames(20)
            assert colour_matches(rtsp.colours[-1], GREEN), rtsp.colours[-5:]
        finally:
            cam.stop()
            if rtsp:
                rtsp.close()
        core.close_transport(tid)
        await events.wait(lambda e: e == ("transport_closed", tid, "closed"))
        assert closed_by_peer(conn)
        conn.close()
        listener.close()

    run(main())


def test_tcp_active_connect_failed(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        s = socket.socket()
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there
        tid = core.create_gb_ingest("cam-refused", 1, transport="tcp-active", connect=(LOOPBACK, port))
        await events.wait(lambda e: e == ("transport_closed", tid, "connect-failed"))
        # The name is free again.
        core.create_gb_ingest("cam-refused", 1, transport="tcp-active", connect=(LOOPBACK, port))

    run(main())


def test_camera_ignoring_y_is_matched_by_source(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        core.create_gb_ingest("cam-nossrc", 400004, peer_ip=LOOPBACK)
        sock = connect_tcp(tcp_port)
        # The camera uses its own SSRC, not the y= one.
        cam = Camera(camera_frames("h264", RED, 60, 0x0BADCAFE), tcp=sock).start()
        try:
            assert await wait_live(events, "cam-nossrc") == ["video/H264", "audio/PCMA"]
            assert core.stats()["gb_unknown_ssrc"] == 0
        finally:
            cam.stop()
            sock.close()

    run(main())


def test_unknown_ssrc_counted_and_garbage_connection_closed_alone(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        tid = core.create_gb_ingest("cam-good", 500005)
        good = connect_tcp(tcp_port)
        cam = Camera(camera_frames("h264", RED, 250, 500005), tcp=good).start()
        try:
            await wait_live(events, "cam-good")
            # A sender nobody expects: its packets are dropped and counted.
            stranger = connect_tcp(tcp_port)
            stranger.sendall(framed(camera_frames("h264", RED, 5, 777)[0]))
            await wait_until(lambda: core.stats()["gb_unknown_ssrc"] > 0, WAIT, "gb_unknown_ssrc")
            # Garbage (not RFC 4571 RTP) and a hostile length: each connection is closed, alone.
            garbage = connect_tcp(tcp_port)
            garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            short = connect_tcp(tcp_port)
            short.sendall(b"\x00\x05\x80\x60\x00\x01\x00")
            assert closed_by_peer(garbage)
            assert closed_by_peer(short)
            before = core.stats()["gb_packets_in"]
            await asyncio.sleep(0.5)
            assert core.stats()["gb_packets_in"] > before, "the good camera stopped"
            assert core.stream_codecs("cam-good") == ["video/H264", "audio/PCMA"]
            assert events.closed(tid) == []
            assert not cam.error
            stranger.close()
            garbage.close()
            short.close()
        finally:
            cam.stop()
            good.close()

    run(main())



def test_camera_whose_framing_breaks_ends_with_protocol_error(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        tid = core.create_gb_ingest("cam-broken", 900009)
        sock = connect_tcp(tcp_port)
        groups = camera_frames("h264", RED, 30, 900009)
        sock.sendall(framed([p for g in groups[:10] for p in g]))
        try:
            await wait_live(events, "cam-broken")
            # A 2-byte length below an RTP header: the stream cannot be framed any more.
            sock.sendall(b"\x00\x03abc")
            await events.wait(lambda e: e == ("transport_closed", tid, "protocol-error"))
            assert closed_by_peer(sock)
            assert core.stream_codecs("cam-broken") is None
        finally:
            sock.close()

    run(main())

@pytest.mark.slow
def test_media_timeout_after_ten_seconds_of_silence(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        t0 = time.monotonic()
        silent = core.create_gb_ingest("cam-silent", 600006)  # never sends anything
        tid = core.create_gb_ingest("cam-stops", 600007)
        sock = connect_tcp(tcp_port)
        cam = Camera(camera_frames("h264", RED, 25, 600007), tcp=sock).start()
        await wait_live(events, "cam-stops")
        await wait_until(cam.done, WAIT, "camera done")
        stopped = time.monotonic()
        try:
            await events.wait(lambda e: e == ("transport_closed", silent, "media-timeout"), 14)
            assert 9.5 <= time.monotonic() - t0 <= 13
            await events.wait(lambda e: e == ("transport_closed", tid, "media-timeout"), 14)
            assert 9.5 <= time.monotonic() - stopped <= 13
            assert core.stream_codecs("cam-stops") is None
            assert core.stats()["gb_ingests"] == 0
            assert closed_by_peer(sock)
        finally:
            cam.stop()
            sock.close()

    run(main())


def test_close_transport_ends_the_stream_and_its_players(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        tid = core.create_gb_ingest("cam-close", 700007)
        sock = connect_tcp(tcp_port)
        cam = Camera(camera_frames("h264", RED, 250, 700007), tcp=sock).start()
        rtsp = None
        try:
            await wait_live(events, "cam-close")
            rtsp = RtspUdpPlayer(core, "cam-close", "H264")
            player = rtsp.start()
            await rtsp.wait_frames(5)
            core.close_transport(tid)
            await events.wait(lambda e: e == ("transport_closed", tid, "closed"))
            await events.wait(lambda e: e == ("transport_closed", player, "producer-closed"))
            assert core.stream_codecs("cam-close") is None
            assert closed_by_peer(sock)
        finally:
            cam.stop()
            sock.close()
            if rtsp:
                rtsp.close()

    run(main())


def test_keyframe_wanted_when_the_cache_has_none(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        core.create_gb_ingest("cam-nokey", 800008)
        # A stream that starts after its IDR (as when the camera's GOP is long): P frames only,
        # with a PSM so the codec is known.
        aus = encode_solid("h264", RED, 50)[1:25]
        aus[0] = psmux.AccessUnit(aus[0].pts, aus[0].data, True)
        m = psmux.mux(aus, "h264", audio=True)
        sock = connect_tcp(tcp_port)
        sock.sendall(framed(psmux.rtp_packets(m.ps, 800008)))
        webrtc = WebRtcPlayer()
        try:
            await wait_live(events, "cam-nokey")
            await webrtc.play(core, "cam-nokey")
            await events.wait(lambda e: e == ("keyframe_wanted", "cam-nokey"))
        finally:
            sock.close()
            await webrtc.close()

    run(main())


def test_refused_commands(core: Any) -> None:
    with pytest.raises(core_module.CoreError) as e:
        core.create_gb_ingest("x", 1)
    assert e.value.code == 400  # media port not bound
    core.gb_listen(LOOPBACK, 0)
    with pytest.raises(OSError):
        core.gb_listen(LOOPBACK, 0)
    core.create_gb_ingest("x", 1)
    with pytest.raises(core_module.CoreError) as e:
        core.create_gb_ingest("x", 2, transport="udp")
    assert e.value.code == 409
    for kwargs in ({"transport": "sctp"}, {"transport": "tcp-active"}, {"connect": (LOOPBACK, 9)},
                   {"peer_ip": "not-an-ip"}):
        with pytest.raises(core_module.CoreError) as e:
            core.create_gb_ingest("y", 1, **kwargs)
        assert e.value.code == 400, kwargs


def test_server_binds_the_media_port_when_sip_is_enabled(server: Any) -> None:
    srv = server({"sip": {"enable": True}})
    tcp_port, udp_port = srv.ready["sip_media"]
    assert tcp_port > 0 and udp_port > 0
    with socket.create_connection((LOOPBACK, tcp_port), timeout=5) as s:
        s.sendall(b"\x00\x0c" + bytes([0x80, 96]) + bytes(10))  # an RTP header nobody expects
