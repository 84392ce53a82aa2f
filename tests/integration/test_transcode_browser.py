"""Audio for browsers in a browser (SPEC 11): headless Chromium (Debian's, driven by Playwright) plays a
stream FFmpeg publishes over RTSP with H.264 + AAC (44.1 kHz stereo, a 440 Hz sine), and a GB28181
camera simulator's channel with H.264 + AAC (16 kHz mono); Chromium's own ``getStats()`` shows its
inbound audio as Opus, with samples received and ``totalAudioEnergy`` rising while it plays (the tone
reaches the browser's audio pipeline, not silence or concealment)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from . import peers
from .browser import chromium_player
from .conftest import ServerFactory
from .rtsp_peers import stop_process
from .test_gb28181_media import CHANNEL, registered_camera
from .test_transcode import publish_tone, wait_live
from .test_transcode_gb import gb_server, invite

pytestmark = pytest.mark.integration

AUDIO_STATS = """async () => {
  const out = {codec: "", energy: 0, samples: 0, concealed: 0, level: 0};
  if (!window.pc) return out;
  const stats = await window.pc.getStats();
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.energy = s.totalAudioEnergy || 0;
      out.samples = s.totalSamplesReceived || 0;
      out.concealed = s.concealedSamples || 0;
      out.level = s.audioLevel || 0;
      const c = stats.get(s.codecId);
      if (c) out.codec = c.mimeType;
    }
  });
  return out;
}"""


async def hears_opus(tmp_path: Any, ws_url: str, stream: str) -> None:
    """Chromium plays ``stream``; its inbound audio is Opus and its energy rises."""
    async with chromium_player(tmp_path, ws_url, stream) as player:
        # Play the audio too: the page's <video> is muted (autoplay), and Chromium measures the
        # level of what its audio renderer pulls.
        await player.page.evaluate("""() => {
          const a = new Audio(); a.srcObject = document.getElementById("v").srcObject;
          a.muted = false; a.volume = 1.0; return a.play().catch(() => null);
        }""")
        first: dict[str, Any] = {}
        for _ in range(100):
            first = await player.page.evaluate(AUDIO_STATS)
            if first["samples"] > 48000:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)
        later = await player.page.evaluate(AUDIO_STATS)
        assert first["codec"].lower() == "audio/opus", first
        assert later["samples"] - first["samples"] > 48000, (first, later)
        assert later["energy"] > first["energy"], (first, later)
        state = await player.state()
        assert state["frames"] > 0, state


def test_chromium_hears_the_rtsp_aac_stream_as_opus(server: ServerFactory, tmp_path: Any) -> None:
    srv = server()

    async def main() -> None:
        proc = publish_tone(srv, "browser", 44100, 2, str(tmp_path / "ffmpeg.log"))
        try:
            await wait_live(srv, "browser")
            await hears_opus(tmp_path, srv.ws_url, "browser")
        finally:
            stop_process(proc)

    peers.run(main(), timeout=90)


def test_chromium_hears_the_gb28181_aac_channel_as_opus(server: ServerFactory, tmp_path: Any) -> None:
    srv = gb_server(server)

    async def main() -> None:
        cam = await registered_camera(srv, colour=(230, 120, 0), audio="aac", aac_rate=16000)
        try:
            await invite(srv)
            await cam.wait_for(lambda: any(s.packets_sent for s in cam.sessions.values()), 10, "media sent")
            await hears_opus(tmp_path, srv.ws_url, CHANNEL)
        finally:
            await cam.close()

    peers.run(main(), timeout=90)
