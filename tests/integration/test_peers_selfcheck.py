"""Checks the harness itself, without the server: an aiortc publisher (from ``peers``) connected
directly to an aiortc receiver that records frames the way ``peers.Player`` does.

If these fail, the integration tests' helpers are broken (colour frames, codec preferences, the
decode-and-measure path), not the server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from . import peers
from .peers import BLUE, RED


async def _direct(video_codec: str) -> None:
    pub_pc, video, audio = peers.build_publisher_pc(video_codec, "audio/opus", RED)
    recv_pc = RTCPeerConnection(peers.no_ice_servers())
    player = peers.Player(signaling=None, pc=recv_pc, stream="selfcheck")  # type: ignore[arg-type]

    @recv_pc.on("track")
    def on_track(track: Any) -> None:
        player._tasks.append(asyncio.create_task(player._consume(track)))

    try:
        offer = await peers.make_offer(pub_pc)
        assert ("127.0.0.1" in {a for a, _ in peers.sdp_candidate_ports(offer)}), offer
        assert video_codec.split("/")[1] in offer and "opus" in offer
        other = "VP8" if video_codec == "video/H264" else "H264"
        assert f" {other}/90000" not in offer, "codec preference was not applied"
        await recv_pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        answer = await recv_pc.createAnswer()
        await recv_pc.setLocalDescription(answer)
        await pub_pc.setRemoteDescription(recv_pc.localDescription)
        await peers.wait_connection_state(pub_pc, ["connected"], 10)

        await player.wait_video_frames(60, 15)
        assert all(peers.colour_matches(c, RED) for c in player.colours_since(player.video[10].t)), \
            player.video[-1]
        assert player.video[-1].size == (peers.WIDTH, peers.HEIGHT)
        await player.wait_audio_frames(25, 5)

        assert video is not None
        video.colour = BLUE
        t_blue = await player.wait_colour(BLUE, 5)
        n = player.video_frames
        await player.wait_video_frames(n + 30, 5)
        assert all(peers.colour_matches(c, BLUE) for c in player.colours_since(t_blue))
    finally:
        await player.close()
        await pub_pc.close()


@pytest.mark.parametrize("video_codec", ["video/H264", "video/VP8"])
def test_direct_publisher_to_receiver(video_codec: str) -> None:
    asyncio.run(asyncio.wait_for(_direct(video_codec), 60))


def test_colour_matches_tolerance() -> None:
    assert peers.colour_matches((250.0, 20.0, 3.0), RED)
    assert not peers.colour_matches((200.0, 0.0, 0.0), RED)
    assert not peers.colour_matches((0.0, 0.0, 255.0), RED)


def test_sdp_candidate_ports() -> None:
    sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
    assert peers.sdp_candidate_ports(sdp) == {("127.0.0.1", 40000)}
