"""Audio for browsers (SPEC 11): AAC and G.711 sources reach WebRTC players as Opus, transcoded in the
media core, through the real ``pms-trio run`` server with real peers.

- FFmpeg publishes H.264 + AAC (a 440 Hz sine) over RTSP at 44.1 kHz stereo, 16 kHz mono and 48 kHz
  stereo; an aiortc player offering only Opus gets Opus in its answer, decodes it, and the dominant
  frequency of what it hears is 440 Hz within 2 %. The stream lists its transcoded track, ``/metrics``
  counts the transcoder and its CPU time, and after the player leaves the transcoder stops once the
  linger (shortened here by ``webrtc.transcodeLingerMs``) has passed: the gauge is back to 0.
- Lip sync: FFmpeg sends a picture that turns white for 100 ms once a second and a 440 Hz beep at the
  same instants; each flash and each beep the player decodes is placed on the sender's wall clock by
  the sender reports it received for its track (what a browser's A/V sync uses: the video's SRs
  translated by the router, the Opus track's made by the transcoder from the AAC's), and they are
  within 40 ms of each other. (Arrival times would measure FFmpeg's own interleaving, not ours.) Then
  the source stops while the player stays: the transcoder ends with the stream.
- ``webrtc.transcodeAudio: false`` answers the audio inactive, as before; the video still plays.
- An RTSP player of the same stream still gets AAC (no transcoding on that path).

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import numpy as np
import pytest

from . import peers
from .conftest import Server, ServerFactory
from .rtsp_peers import ffmpeg_publish, ffprobe_streams, stop_process
from .transcode_support import (
    answered_codec,
    audio_onsets,
    dominant_hz,
    play_audio,
    video_onsets,
)

pytestmark = pytest.mark.integration

LINGER_MS = 1000
VIDEO = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p",
         "-profile:v", "baseline"]


def publish_tone(srv: Server, name: str, rate: int, channels: int, log_path: str, *,
                 flash: bool = False) -> Any:
    """FFmpeg: H.264 + AAC-LC at ``rate``/``channels`` over RTSP/TCP. ``flash``: a black picture that is
    white for the first 100 ms of each second, with a 440 Hz beep over the same 100 ms; otherwise a grey
    picture and a continuous 440 Hz sine."""
    if flash:
        video_in = ["-f", "lavfi", "-i", "color=c=black:s=160x120:r=50,format=yuv420p,"
                    "geq=lum='if(lt(mod(T\\,1)\\,0.1)\\,235\\,16)':cb=128:cr=128"]
        audio_in = ["-f", "lavfi", "-i", f"aevalsrc='if(lt(mod(t\\,1)\\,0.1)\\,0.5*sin(2*PI*440*t)\\,0)':s={rate}"]
    else:
        video_in = ["-f", "lavfi", "-i", "color=c=gray:s=160x120:r=25"]
        audio_in = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}"]
    args = [*VIDEO, "-c:a", "aac", "-b:a", "64k", "-ar", str(rate), "-ac", str(channels)]
    return ffmpeg_publish(f"{srv.rtsp_url}/{name}", "tcp", extra_input=[*video_in, *audio_in], video_args=args,
                          log_path=log_path)


async def wait_live(srv: Server, name: str, timeout: float = 20.0) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        streams = (await srv.api_async("/api/v1/streams"))["streams"]
        return next((s for s in streams if s["name"] == name and s.get("live", True)), None)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        s = await find()
        if s is not None and any(c.lower().startswith("audio/") for c in s["codecs"]):
            return s
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} never went live with audio")


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m is not None, f"{name} not in /metrics"
    return float(m.group(1))


def scrape(srv: Server) -> str:
    import urllib.request

    with urllib.request.urlopen(srv.http_url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (16000, 1), (48000, 2)])
def test_rtsp_aac_to_opus_player(server: ServerFactory, tmp_path: Any, rate: int, channels: int) -> None:
    srv = server({"webrtc": {"transcodeLingerMs": LINGER_MS}})
    name = f"tone{rate}"

    async def main() -> None:
        proc = publish_tone(srv, name, rate, channels, str(tmp_path / "ffmpeg.log"))
        player = None
        try:
            live = await wait_live(srv, name)
            assert any(c.lower() == "audio/mpeg4-generic" for c in live["codecs"]), live
            assert live["transcoded"] == [], live
            player = await play_audio(srv.ws_url, name)
            assert answered_codec(player.answer) == "opus/48000/2", player.answer
            await player.wait_audio_seconds(3.0, timeout=20)
            hz = dominant_hz(player.samples(2.0), player.audio_rate)
            assert abs(hz - 440) < 440 * 0.02, hz
            assert player.audio_rate == 48000
            assert player.video, "the video plays too"

            doc = await wait_live(srv, name)
            assert doc["transcoded"] == [{"from": "audio/MPEG4-GENERIC", "to": "audio/opus", "players": 1,
                                          "running": True}], doc
            text = await asyncio.to_thread(scrape, srv)
            assert metric(text, "pms_core_transcoders") == 1
            assert metric(text, "pms_core_transcode_packets_total") > 100
            assert 0 < metric(text, "pms_transcode_cpu_seconds_total") < 5
            # RTSP players still get the source's AAC.
            codecs = await asyncio.to_thread(ffprobe_streams, f"{srv.rtsp_url}/{name}")
            assert "aac" in codecs, codecs

            await player.close()
            player = None
            # The transcoder runs on for the linger, then stops.
            await srv.wait_core(timeout=LINGER_MS / 1000 + 8, transcoders=0)
            doc = await wait_live(srv, name)
            assert doc["transcoded"][0]["running"] is False and doc["transcoded"][0]["players"] == 0, doc
            # A new player starts a new transcoder on the same Opus track.
            player = await play_audio(srv.ws_url, name)
            await player.wait_audio_seconds(1.5, timeout=20)
            assert abs(dominant_hz(player.samples(1.0), 48000) - 440) < 440 * 0.02
        finally:
            if player is not None:
                await player.close()
            stop_process(proc)

    peers.run(main(), timeout=120)


def test_flash_and_beep_arrive_together(server: ServerFactory, tmp_path: Any) -> None:
    srv = server()

    async def main() -> None:
        proc = publish_tone(srv, "sync", 48000, 2, str(tmp_path / "ffmpeg.log"), flash=True)
        player = None
        try:
            await wait_live(srv, "sync")
            player = await play_audio(srv.ws_url, "sync")
            await player.wait_audio_seconds(6.5, timeout=25)
            await peers.wait_until(lambda: len(player.srs) == 2, 10, "sender reports of both tracks",
                                   lambda: player.srs)
            flashes = video_onsets(player, 128)
            beeps = audio_onsets(player, 3000)
            assert len(flashes) >= 4 and len(beeps) >= 4, (flashes, beeps)
            offsets = []
            for f in flashes[1:]:
                nearest = min(beeps, key=lambda b: abs(b - f))
                offsets.append(nearest - f)
            median = float(np.median(offsets))
            print(f"flash-to-beep offsets (ms): {[round(o * 1000, 1) for o in offsets]}")
            assert abs(median) < 0.040, f"flash-to-beep offsets {offsets}"
            assert max(abs(o) for o in offsets) < 0.040, f"flash-to-beep offsets {offsets}"
            # The source stops while the player is still there: the transcoder ends with the stream.
            assert (await srv.api_async("/api/v1/server"))["core"]["transcoders"] == 1
            stop_process(proc)
            await srv.wait_core(timeout=10, transcoders=0, producers=0)
        finally:
            if player is not None:
                await player.close()
            stop_process(proc)

    peers.run(main(), timeout=90)


def test_transcode_off_answers_audio_inactive(server: ServerFactory, tmp_path: Any) -> None:
    srv = server({"webrtc": {"transcodeAudio": False}})

    async def main() -> None:
        proc = publish_tone(srv, "plain", 44100, 2, str(tmp_path / "ffmpeg.log"))
        player = None
        try:
            await wait_live(srv, "plain")
            player = await play_audio(srv.ws_url, "plain")
            assert answered_codec(player.answer) == "", player.answer
            await peers.wait_until(lambda: len(player.video) >= 30, 20, "video frames", lambda: len(player.video))
            assert not player.audio
            assert (await wait_live(srv, "plain"))["transcoded"] == []
            assert (await srv.api_async("/api/v1/server"))["core"]["transcoders"] == 0
        finally:
            if player is not None:
                await player.close()
            stop_process(proc)

    peers.run(main(), timeout=90)
