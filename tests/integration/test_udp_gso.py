"""WebRTC output with and without UDP GSO (``webrtc.udpGso``, issue 13): the same picture reaches
aiortc players either way; with it on, a player's packets of one wake-up leave as segmented sends
(``gso_sends`` in the core's counters grows), with it off none do. The grouping itself and the
fall-back when a kernel refuses segmentation are unit-tested in ``rust/io/src/batch.rs``.
"""

from __future__ import annotations

import pytest

from .conftest import ServerFactory
from .peers import BLUE, all_match, close_all, play, publish, run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("gso", [True, False])
def test_players_get_the_picture_with_and_without_gso(server: ServerFactory, gso: bool) -> None:
    srv = server({"webrtc": {"udpGso": gso}})

    async def go() -> None:
        pub = await publish(srv.ws_url, "gso", video_codec="video/VP8", colour=BLUE)
        players = []
        try:
            for _ in range(3):
                players.append(await play(srv.ws_url, "gso"))
            for p in players:
                await p.wait_video_frames(60, 20)
                assert all_match([s.rgb for s in p.video[-10:]], BLUE)
            core = await srv.wait_core(5)
            assert core["send_errors"] == 0, core
            if gso:
                assert core["gso_sends"] > 0, core
            else:
                assert core["gso_sends"] == 0, core
        finally:
            await close_all(*players, pub)

    run(go(), 90)
