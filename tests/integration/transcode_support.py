"""Helpers of the audio transcoding tests (SPEC 11): an aiortc WebRTC player that keeps the decoded
audio (48 kHz, first channel) and the brightness of each video frame with their arrival times, and the
measurements made on them (dominant frequency, onsets)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from . import peers


@dataclass
class AudioPlayer:
    """A WebRTC player (recvonly video + audio) whose audio codecs are limited to ``audio_codecs``."""

    signaling: peers.SignalingClient
    pc: RTCPeerConnection
    stream: str
    answer: str = ""
    # (arrival time, samples at 48 kHz of the first channel)
    audio: list[tuple[float, np.ndarray]] = field(default_factory=list)
    audio_pts: list[int] = field(default_factory=list)  # RTP timestamp of each audio frame
    audio_rate: int = 0
    audio_channels: int = 0
    # (arrival time, mean luma 0-255)
    video: list[tuple[float, float]] = field(default_factory=list)
    video_pts: list[int] = field(default_factory=list)
    # kind -> the first sender report received: (NTP seconds, RTP timestamp)
    srs: dict[str, tuple[float, int]] = field(default_factory=dict)
    receivers: dict[str, Any] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if track.kind == "video":
                    y = frame.to_ndarray(format="gray")
                    self.video.append((now, float(y.mean())))
                    self.video_pts.append(int(frame.pts))
                else:
                    channels = len(frame.layout.channels)
                    pcm = frame.to_ndarray().reshape(-1, channels)[:, 0].astype(np.float64)
                    self.audio_rate, self.audio_channels = frame.sample_rate, channels
                    self.audio.append((now, pcm))
                    self.audio_pts.append(int(frame.pts))

    def watch_sender_reports(self) -> None:
        """Keep the first RTCP sender report each receiver gets (aiortc uses them only for stats)."""
        from aiortc.rtp import RtcpSrPacket

        for tr in self.pc.getTransceivers():
            receiver, kind = tr.receiver, tr.kind
            self.receivers[kind] = receiver
            original = receiver._handle_rtcp_packet

            async def handle(packet: Any, original: Any = original, kind: str = kind) -> None:
                if isinstance(packet, RtcpSrPacket) and kind not in self.srs:
                    ntp = packet.sender_info.ntp_timestamp
                    self.srs[kind] = ((ntp >> 32) + (ntp & 0xFFFFFFFF) / 2**32, packet.sender_info.rtp_timestamp)
                await original(packet)

            receiver._handle_rtcp_packet = handle

    def wall_clock(self, kind: str, pts: int, clock: int) -> float:
        """The sender's NTP time of a decoded frame's ``pts`` (by the first sender report of ``kind``).
        aiortc counts a frame's pts from the RTP timestamp of the first frame it decoded (its
        receiver's timestamp mapper keeps that origin)."""
        ntp, rtp = self.srs[kind]
        origin = self.receivers[kind]._RTCRtpReceiver__timestamp_mapper._origin
        d = (origin + pts - rtp) % 2**32
        if d >= 2**31:
            d -= 2**32
        return ntp + d / clock

    def samples(self, last_seconds: float) -> np.ndarray:
        if not self.audio:
            return np.zeros(0)
        pcm = np.concatenate([p for _, p in self.audio])
        return pcm[-int(last_seconds * (self.audio_rate or 48000)):]

    async def wait_audio_seconds(self, seconds: float, timeout: float) -> None:
        def have() -> float:
            return sum(len(p) for _, p in self.audio) / (self.audio_rate or 48000)

        await peers.wait_until(lambda: have() >= seconds, timeout, f"{self.stream}: {seconds} s of audio (have {{}})",
                               have)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 5)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 1)
        await self.signaling.close()


async def play_audio(url: str, stream: str, *, audio_codecs: tuple[str, ...] = ("audio/opus",),
                     timeout: float = 20.0) -> AudioPlayer:
    """Play ``stream`` offering only ``audio_codecs`` for audio (and H.264 for video)."""
    sig = await peers.SignalingClient.connect(url)
    pc = RTCPeerConnection(peers.no_ice_servers())
    pc.addTransceiver("video", direction="recvonly").setCodecPreferences(
        peers.codec_preferences("video", "video/H264", receiver=True))
    prefs = [c for mime in audio_codecs for c in peers.codec_preferences("audio", mime, receiver=True)]
    pc.addTransceiver("audio", direction="recvonly").setCodecPreferences(prefs)
    player = AudioPlayer(sig, pc, stream)
    player.watch_sender_reports()

    @pc.on("track")
    def on_track(track: Any) -> None:
        player._tasks.append(asyncio.create_task(player._consume(track)))

    try:
        offer = await peers.make_offer(pc, timeout)
        reply = await sig.request("stream.play", stream, {"sdp": offer}, timeout=timeout)
        player.answer = reply["sdp"]
        await asyncio.wait_for(pc.setRemoteDescription(RTCSessionDescription(player.answer, "answer")), timeout)
        await peers.wait_connection_state(pc, ["connected"], timeout)
    except BaseException:
        await player.close()
        raise
    return player


def audio_section(sdp: str) -> str:
    sections = re.split(r"\r\n(?=m=)", sdp)
    return next(s for s in sections if s.startswith("m=audio"))


def answered_codec(sdp: str) -> str:
    """The audio codec of an answer (``opus/48000/2``), or ``""`` when the section is idle."""
    audio = audio_section(sdp)
    if audio.startswith("m=audio 0 ") or "a=inactive" in audio:
        return ""
    m = re.search(r"a=rtpmap:\d+ (\S+)", audio)
    return m.group(1).lower() if m else ""


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency, refined by parabolic interpolation between FFT bins."""
    x = samples.astype(np.float64) - float(np.mean(samples))
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    return (k + shift) * rate / len(x)


def audio_onsets(player: AudioPlayer, threshold: float) -> list[float]:
    """Sender wall-clock times (by the audio's sender report) where the audio goes from quiet to
    loud: a loud sample after at least 200 ms of quiet ones."""
    out: list[float] = []
    quiet = 0
    rate = player.audio_rate or 48000
    for (_, pcm), pts in zip(player.audio, player.audio_pts, strict=True):
        loud = np.abs(pcm) > threshold
        for i in np.nonzero(loud)[0][:1]:
            if quiet + i >= 0.2 * rate:
                out.append(player.wall_clock("audio", pts + int(i), 48000))
        idx = np.nonzero(loud)[0]
        quiet = len(pcm) - 1 - int(idx[-1]) if len(idx) else quiet + len(pcm)
    return out


def video_onsets(player: AudioPlayer, threshold: float) -> list[float]:
    """Sender wall-clock times (by the video's sender report) of the frames where the picture
    turns bright."""
    out: list[float] = []
    prev = 255.0
    for (_, luma), pts in zip(player.video, player.video_pts, strict=True):
        if luma > threshold >= prev:
            out.append(player.wall_clock("video", pts, 90000))
        prev = luma
    return out
