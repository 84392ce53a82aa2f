"""Headless Chromium (Debian's ``chromium``, driven by Playwright) as a real WebRTC peer.

A GB28181 channel watched in a browser: Chromium plays the channel id over WebRTC; the camera
simulator registers over SIP and is INVITEd on demand. And a browser as publisher: Chromium sends a
canvas of one colour, aiortc and a second Chromium play it. The decoders must show the picture
that was sent: frames decoded, the picture's size, and the colour of its centre."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from . import peers
from .browser import chromium_player, chromium_publisher
from .conftest import ServerFactory
from .test_gb28181_media import CHANNEL, gb_media_server, registered_camera, stream_doc, wait_stream_gone

BLUE = (20, 40, 210)
ORANGE = (230, 120, 0)


async def wait_state(player: Any, check: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    for _ in range(int(timeout / 0.25) + 2):
        state = await player.state()
        if check(state):
            return state
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s; the browser says {state}")


def test_chromium_plays_a_camera_channel_on_demand(server: ServerFactory, tmp_path: Path) -> None:
    srv = gb_media_server(server)

    async def main() -> None:
        cam = await registered_camera(srv, colour=BLUE)
        try:
            async with chromium_player(tmp_path, srv.ws_url, CHANNEL, audio=True) as player:
                state = await wait_state(player, lambda s: s["frames"] >= 60 and s["rgb"] is not None, 30,
                                         "60 frames decoded by Chromium")
                assert state["codec"] == "video/H264", state
                assert (state["width"], state["height"]) == (320, 240), state  # the simulator's picture
                assert peers.colour_matches(state["rgb"], BLUE), state
                assert state["connection"] == "connected", state
                assert (await stream_doc(srv)) is not None
            # The page is gone: its WebSocket closed, so the play ended; the camera is BYEd
            # 10 s after its last consumer.
            await cam.wait_for(lambda: len(cam.byes_received) == 1, 20, "BYE after the browser left")
            await wait_stream_gone(srv, 5)
        finally:
            await cam.close()

    peers.run(main(), timeout=90)


def test_chromium_publishes_and_chromium_and_aiortc_play(server: ServerFactory, tmp_path: Path) -> None:
    """The browser as publisher (its own encoder, its congestion control) and as player of another
    browser's stream, next to aiortc."""
    srv = server()

    async def main() -> None:
        async with chromium_publisher(tmp_path / "pub", srv.ws_url, "canvas", ORANGE) as publisher:
            await wait_state(publisher, lambda s: s["connection"] == "connected", 20, "the publisher connected")
            player = await peers.play(srv.ws_url, "canvas", audio=False, timeout=20)
            try:
                await player.wait_video_frames(60, timeout=20)
                assert peers.colour_matches(player.video[-1].rgb, ORANGE), player.video[-1]
                async with chromium_player(tmp_path / "play", srv.ws_url, "canvas", audio=False) as viewer:
                    state = await wait_state(viewer, lambda s: s["frames"] >= 60 and s["rgb"] is not None, 30,
                                             "60 frames decoded by the second Chromium")
                    assert (state["width"], state["height"]) == (320, 240), state
                    assert peers.colour_matches(state["rgb"], ORANGE), state
            finally:
                await player.close()

    peers.run(main(), timeout=90)
