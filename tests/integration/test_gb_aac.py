"""AAC audio from a GB28181 camera, end to end through the real ``pms-trio run`` server.

The camera simulator (tests/gb28181/camera.py) registers over SIP, is INVITEd, and sends PS over
RTP as cameras do: H.264 of one solid colour plus AAC-LC mono (ADTS, PSM stream_type 0x0F) of a
continuous 440 Hz tone, in real time. Then:

- an RTSP player on FFmpeg (PyAV) finds ``mpeg4-generic`` at the camera's sample rate in the
  DESCRIBE SDP with the AudioSpecificConfig of the ADTS headers, decodes at least 60 video frames
  of the colour sent and at least 50 AAC frames whose dominant frequency is 440 Hz; the audio's
  RTP timestamps (read from a raw RTSP session) advance 1024 per frame at the sample rate;
- with ``webrtc.transcodeAudio: false``, an aiortc WebRTC player that offers audio (Opus/PCMU/PCMA)
  still gets the video, with the audio section answered inactive (test_transcode_gb.py has the
  default: Opus transcoded in the core).

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import re
import struct
from typing import Any

import numpy as np
import pytest

from . import peers
from .conftest import ServerFactory
from .rtsp_peers import AvPlayer, RawRtsp
from .test_gb28181_media import CHANNEL, gb_media_server, registered_camera, stream_doc
from .test_gb28181_sip import DEVICE, PASSWORD, acall

ORANGE = (230, 120, 0)
# ADTS sampling_frequency_index (ISO/IEC 14496-3 Table 1.18) of the rates cameras use.
RATE_INDEX = {8000: 11, 16000: 8}


def asc_hex(rate: int, channels: int = 1, object_type: int = 2) -> str:
    """AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) of AAC-LC: 5 bits object type, 4 bits
    rate index, 4 bits channels, 3 zero bits."""
    return f"{(object_type << 11) | (RATE_INDEX[rate] << 7) | (channels << 3):04x}"


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    x = samples.astype(np.float64) - float(np.mean(samples))
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


async def invite(srv: Any) -> None:
    status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {"device_id": DEVICE, "channel_id": CHANNEL})
    assert status == 200 and doc["code"] == 0, doc


def audio_section(sdp: str) -> str:
    sections = re.split(r"\r\n(?=m=)", sdp)
    return next(s for s in sections if s.startswith("m=audio"))


def raw_audio_timestamps(url: str, rate: int, packets: int) -> tuple[str, list[int], list[bytes]]:
    """DESCRIBE, SETUP only the audio track (interleaved 0-1), PLAY; the SDP and the RTP
    timestamps and payloads of the first ``packets`` audio packets."""
    with RawRtsp(url) as c:
        described = c.describe(CHANNEL)
        assert described.status == 200, described
        sdp = described.body.decode()
        control = re.search(r"a=control:(\S+)", audio_section(sdp)).group(1)  # type: ignore[union-attr]
        setup = c.request("SETUP", f"{CHANNEL}/{control}", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        assert setup.status == 200, setup
        assert c.request("PLAY", CHANNEL, {"Range": "npt=0.000-"}).status == 200
        stamps: list[int] = []
        payloads: list[bytes] = []
        for _ in range(packets * 4):
            frame = c.read_frames(1, timeout=10)[0]
            if frame.channel != 0 or len(frame.payload) < 12:
                continue  # RTCP
            stamps.append(struct.unpack(">I", frame.payload[4:8])[0])
            payloads.append(bytes(frame.payload[12:]))
            if len(stamps) == packets:
                break
        c.request("TEARDOWN", CHANNEL)
    return sdp, stamps, payloads


@pytest.mark.parametrize("rate", [16000, 8000])
def test_h264_and_aac_camera_to_rtsp_player(server: ServerFactory, rate: int) -> None:
    srv = gb_media_server(server)

    async def main() -> None:
        cam = await registered_camera(srv, colour=ORANGE, audio="aac", aac_rate=rate)
        rtsp = None
        try:
            await invite(srv)
            await cam.wait_for(lambda: any(s.packets_sent for s in cam.sessions.values()), 10, "media sent")
            url = f"{srv.rtsp_url}/{CHANNEL}"
            sdp, stamps, payloads = await asyncio.to_thread(raw_audio_timestamps, url, rate, 12)
            audio = audio_section(sdp)
            rtpmap = re.search(r"a=rtpmap:(\d+) (\S+)", audio)
            assert rtpmap is not None and rtpmap.group(2).lower() == f"mpeg4-generic/{rate}", audio
            fmtp = re.search(r"a=fmtp:\d+ (\S+)", audio)
            assert fmtp is not None, audio
            params = dict(p.split("=", 1) for p in fmtp.group(1).split(";") if "=" in p)
            assert params["config"].lower() == asc_hex(rate), params
            assert (params["sizelength"], params["indexlength"], params["indexdeltalength"]) == ("13", "3", "3")
            assert params["mode"].lower() == "aac-hbr"
            # One AAC frame per packet, 1024 samples apart at the sample-rate clock.
            assert [(b - a) % 2**32 for a, b in zip(stamps, stamps[1:], strict=False)] == [1024] * (len(stamps) - 1)
            for p in payloads:  # AU-headers-length 16, one AU-header: 13-bit size, index 0
                assert p[:2] == b"\x00\x10" and struct.unpack(">H", p[2:4])[0] >> 3 == len(p) - 4, p[:8].hex()

            rtsp = AvPlayer(url).start()
            await rtsp.wait_video_frames(60, timeout=25)
            await rtsp.wait_audio_frames(50, timeout=25)
            assert "h264" in rtsp.codecs and "aac" in rtsp.codecs, rtsp.codecs
            assert peers.colour_matches(rtsp.video[-1].rgb, ORANGE), rtsp.video[-1]
            assert rtsp.audio_rate == rate
            pcm = np.concatenate(rtsp.audio[-50:])
            assert abs(dominant_hz(pcm, rate) - 440) < 5, dominant_hz(pcm, rate)
            live = await stream_doc(srv)
            assert live is not None and "video/H264" in live["codecs"], live
            assert any(c.lower().startswith("audio/mpeg4-generic") for c in live["codecs"]), live
        finally:
            if rtsp is not None:
                await rtsp.astop()
            await cam.close()

    asyncio.run(main())


def test_webrtc_player_offering_audio_still_gets_the_video(server: ServerFactory) -> None:
    """``webrtc.transcodeAudio: false``: AAC does not go to WebRTC; the audio m= section is
    answered inactive (port 0 or a=inactive) and the video plays."""
    srv = server({"sip": {"enable": True, "password": PASSWORD, "mediaTransport": "tcp-passive"},
                  "webrtc": {"transcodeAudio": False}})

    async def main() -> None:
        cam = await registered_camera(srv, colour=ORANGE, audio="aac")
        player = None
        try:
            await invite(srv)
            await cam.wait_for(lambda: any(s.packets_sent for s in cam.sessions.values()), 10, "media sent")
            player = await peers.play(srv.ws_url, CHANNEL, audio=True, timeout=20)
            audio = audio_section(player.answer)
            assert audio.startswith("m=audio 0 ") or "a=inactive" in audio, audio
            await player.wait_video_frames(60, timeout=20)
            assert peers.colour_matches(player.video[-1].rgb, ORANGE), player.video[-1]
            assert player.pc.connectionState == "connected"
            assert player.audio_frames == 0
        finally:
            if player is not None:
                await player.close()
            await cam.close()

    asyncio.run(main())
