"""Audio for browsers from GB28181 cameras (SPEC 11): the camera simulator (tests/gb28181/camera.py)
sends PS with H.264 and a 440 Hz tone as AAC-LC (ADTS, 16 kHz and 8 kHz mono) or G.711 A-law; an
aiortc WebRTC player that offers only Opus for audio gets Opus transcoded in the media core and
hears 440 Hz within 2 %. A player that offers PCMA for the G.711 camera gets PCMA as it comes (no
transcoder runs). Loopback only; every wait is bounded.
"""

from __future__ import annotations


import pytest

from . import peers
from .conftest import Server, ServerFactory
from .test_gb28181_media import CHANNEL, registered_camera
from .test_gb28181_sip import DEVICE, PASSWORD, acall
from .transcode_support import answered_codec, dominant_hz, play_audio

pytestmark = pytest.mark.integration

ORANGE = (230, 120, 0)


def gb_server(server: ServerFactory) -> Server:
    srv = server({"sip": {"enable": True, "password": PASSWORD, "mediaTransport": "tcp-passive"},
                  "webrtc": {"transcodeLingerMs": 1000}})
    assert isinstance(srv.ready.get("sip_media"), list), srv.ready
    return srv


async def invite(srv: Server) -> None:
    status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {"device_id": DEVICE, "channel_id": CHANNEL})
    assert status == 200 and doc["code"] == 0, doc


@pytest.mark.parametrize(("audio", "rate"), [("aac", 16000), ("aac", 8000), ("g711a", 8000)])
def test_camera_audio_to_an_opus_only_player(server: ServerFactory, audio: str, rate: int) -> None:
    srv = gb_server(server)

    async def main() -> None:
        cam = await registered_camera(srv, colour=ORANGE, audio=audio, aac_rate=rate)
        player = None
        try:
            await invite(srv)
            await cam.wait_for(lambda: any(s.packets_sent for s in cam.sessions.values()), 10, "media sent")
            player = await play_audio(srv.ws_url, CHANNEL)
            assert answered_codec(player.answer) == "opus/48000/2", player.answer
            await player.wait_audio_seconds(3.0, timeout=20)
            hz = dominant_hz(player.samples(2.0), player.audio_rate)
            assert abs(hz - 440) < 440 * 0.02, hz
            assert player.video, "the video plays too"
            assert (await srv.api_async("/api/v1/server"))["core"]["transcoders"] == 1
            await player.close()
            player = None
            await srv.wait_core(timeout=8, transcoders=0)
        finally:
            if player is not None:
                await player.close()
            await cam.close()

    peers.run(main(), timeout=90)


def test_g711_camera_to_a_pcma_player_is_not_transcoded(server: ServerFactory) -> None:
    srv = gb_server(server)

    async def main() -> None:
        cam = await registered_camera(srv, colour=ORANGE, audio="g711a")
        player = None
        try:
            await invite(srv)
            await cam.wait_for(lambda: any(s.packets_sent for s in cam.sessions.values()), 10, "media sent")
            player = await play_audio(srv.ws_url, CHANNEL, audio_codecs=("audio/PCMA", "audio/opus"))
            assert answered_codec(player.answer) == "pcma/8000", player.answer
            await player.wait_audio_seconds(2.0, timeout=20)
            assert abs(dominant_hz(player.samples(1.5), player.audio_rate) - 440) < 440 * 0.02
            assert (await srv.api_async("/api/v1/server"))["core"]["transcoders"] == 0
        finally:
            if player is not None:
                await player.close()
            await cam.close()

    peers.run(main(), timeout=90)
