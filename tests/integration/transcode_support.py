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
    audio_rate: int = 0
    audio_channels: int = 0
    # (arrival time, mean luma 0-255)
    video: list[tuple[float, float]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if track.kind == "video":
                    y = frame.to_ndarray(format="gray")
                    self.video.append((now, float(y.mean())))
                else:
                    channels = len(frame.layout.channels)
                    pcm = frame.to_ndarray().reshape(-1, channels)[:, 0].astype(np.float64)
                    self.audio_rate, self.audio_channels = frame.sample_rate, channels
                    self.audio.append((now, pcm))

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
    """Arrival-clock times where the audio goes from quiet to loud: for each 20 ms frame the
    time its first loud sample would play if the frame's end plays on arrival."""
    out: list[float] = []
    loud_before = True
    rate = player.audio_rate or 48000
    for t, pcm in player.audio:
        idx = np.nonzero(np.abs(pcm) > threshold)[0]
        if len(idx) and not loud_before:
            out.append(t - (len(pcm) - idx[0]) / rate)
        loud_before = bool(len(idx)) and np.abs(pcm[-48:]).max() > threshold
    return out


def video_onsets(player: AudioPlayer, threshold: float) -> list[float]:
    """Arrival times of the frames where the picture turns bright."""
    out: list[float] = []
    prev = 255.0
    for t, luma in player.video:
        if luma > threshold >= prev:
            out.append(t)
        prev = luma
    return out
