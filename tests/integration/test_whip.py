"""WHIP and WHEP (SPEC section 9) through the real server: aiortc publishes over WHIP with plain HTTP
(httpx) and plays over WHEP; headless Chromium plays over WHEP from a page on another origin (CORS);
streams are shared with the WebSocket signaling and RTSP both ways; DELETE, PATCH, 409 and the
error statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from . import peers
from .browser import chromium_whep_player
from .conftest import Server, ServerFactory
from .peers import BLUE, GREEN, RED, all_match, colour_matches, run
from .rtsp_peers import AvPlayer

pytestmark = pytest.mark.integration


class WhipClient:
    """One WHIP or WHEP session from aiortc: POST the complete offer, apply the answer."""

    def __init__(self, pc: RTCPeerConnection, location: str, etag: str, base: str) -> None:
        self.pc, self.location, self.etag, self.base = pc, location, etag, base
        self.player: peers.Player | None = None

    async def delete(self) -> int:
        async with httpx.AsyncClient() as http:
            return (await http.delete(self.base + self.location, timeout=5)).status_code

    async def close(self) -> None:
        if self.player is not None:
            for task in self.player._tasks:
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 5)


async def _post(base: str, kind: str, name: str, pc: RTCPeerConnection) -> httpx.Response:
    offer = await peers.make_offer(pc)
    async with httpx.AsyncClient() as http:
        return await http.post(f"{base}/{kind}/{name}", content=offer.encode(),
                               headers={"Content-Type": "application/sdp"}, timeout=15)


async def whip_publish(srv: Server, name: str, colour: tuple[int, int, int]) -> WhipClient:
    pc, _, _ = peers.build_publisher_pc("video/H264", "audio/opus", colour)
    r = await _post(srv.http_url, "whip", name, pc)
    assert r.status_code == 201, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/sdp")
    assert r.headers["access-control-allow-origin"] == "*"
    await pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
    await peers.wait_connection_state(pc, ["connected"], 15)
    return WhipClient(pc, r.headers["location"], r.headers["etag"], srv.http_url)


async def whep_play(srv: Server, name: str) -> WhipClient:
    pc = peers.build_player_pc()
    player = peers.Player(None, pc, name)  # type: ignore[arg-type]  # no signaling: WHEP

    @pc.on("track")
    def on_track(track: Any) -> None:
        player._tasks.append(asyncio.create_task(player._consume(track)))

    r = await _post(srv.http_url, "whep", name, pc)
    assert r.status_code == 201, (r.status_code, r.text)
    await pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
    await peers.wait_connection_state(pc, ["connected"], 15)
    client = WhipClient(pc, r.headers["location"], r.headers["etag"], srv.http_url)
    client.player = player
    return client


def test_whip_publish_plays_over_whep_websocket_and_rtsp(server: ServerFactory) -> None:
    srv = server()

    async def scenario() -> None:
        pub = await whip_publish(srv, "w1", BLUE)
        whep = ws_player = None
        av = AvPlayer(f"{srv.rtsp_url}/w1").start()
        try:
            whep = await whep_play(srv, "w1")
            ws_player = await peers.play(srv.ws_url, "w1")
            assert whep.player is not None
            await whep.player.wait_video_frames(30, timeout=20)
            await ws_player.wait_video_frames(30, timeout=20)
            await av.wait_video_frames(30, timeout=20)
            for samples in (whep.player.colours_since(0)[-5:], ws_player.colours_since(0)[-5:],
                            [s.rgb for s in av.video[-5:]]):
                assert all_match(samples, BLUE), samples
            kinds = {(s["kind"], s.get("stream")) for s in (await srv.api_async("/api/v1/sessions"))["sessions"]}
            assert {("whip", "w1"), ("whep", "w1")} <= kinds, kinds
            # DELETE ends the publish: the WebSocket player is told, the WHEP session ends too
            assert await pub.delete() == 200
            for _ in range(100):
                if any(m.get("method") == "stream.closed" for m in ws_player.signaling.received):
                    break
                await asyncio.sleep(0.1)
            assert any(m.get("method") == "stream.closed" for m in ws_player.signaling.received)
            assert await pub.delete() == 404  # gone
            for _ in range(50):
                if await whep.delete() == 404:
                    break
                await asyncio.sleep(0.1)
            assert await whep.delete() == 404  # the player's session ended with the stream
        finally:
            await av.astop()
            await peers.close_all(ws_player, whep, pub)

    run(scenario(), 90)


def test_websocket_publish_plays_over_whep_in_chromium_from_another_origin(server: ServerFactory,
                                                                          tmp_path: Path) -> None:
    srv = server()

    async def scenario() -> None:
        pub = await peers.publish(srv.ws_url, "w2", colour=GREEN)
        try:
            async with chromium_whep_player(tmp_path / "page", f"{srv.http_url}/whep/w2") as player:
                state: dict[str, Any] = {}
                for _ in range(150):
                    state = await player.state()
                    if state["frames"] >= 30 and state["rgb"] and colour_matches(state["rgb"], GREEN):
                        break
                    await asyncio.sleep(0.1)
                assert state["frames"] >= 30 and colour_matches(state["rgb"], GREEN), state
        finally:
            await pub.close()

    run(scenario(), 90)


def test_whip_errors_and_patch(server: ServerFactory) -> None:
    srv = server()

    async def scenario() -> None:
        pub = await whip_publish(srv, "w3", RED)
        try:
            async with httpx.AsyncClient(base_url=srv.http_url, timeout=10) as http:
                pc, _, _ = peers.build_publisher_pc("video/H264", None, RED)
                offer = await peers.make_offer(pc)
                await pc.close()
                sdp = {"Content-Type": "application/sdp"}
                r = await http.post("/whip/w3", content=offer.encode(), headers=sdp)
                assert r.status_code == 409, r.text
                r = await http.post("/whip/w4", content=offer.encode(), headers={"Content-Type": "text/plain"})
                assert r.status_code == 415, r.text
                r = await http.post("/whip/w4", content=b"v=0\r\nnot an offer", headers=sdp)
                assert r.status_code == 400, r.text
                r = await http.post("/whip/w4", content=b"v=0\r\n" + b"a=x\r\n" * 60_000, headers=sdp)
                assert r.status_code == 413, r.text
                r = await http.post("/whep/nowhere", content=offer.encode(), headers=sdp)
                assert r.status_code == 404, r.text
                r = await http.options("/whip/w5", headers={"Origin": "http://elsewhere",
                                                            "Access-Control-Request-Method": "POST"})
                assert r.status_code == 204 and "POST" in r.headers["access-control-allow-methods"]
                assert "Location" in r.headers["access-control-expose-headers"]
                frag = {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": pub.etag}
                r = await http.patch(pub.location, content=b"a=candidate:1 1 udp 1 10.0.0.9 9 typ host\r\n",
                                     headers=frag)
                assert r.status_code == 204, r.text
                r = await http.patch(pub.location, content=b"a=ice-ufrag:new\r\na=ice-pwd:newpassword\r\n",
                                     headers=frag)
                assert r.status_code == 405, r.text
                r = await http.patch(pub.location, content=b"", headers={**frag, "If-Match": '"other"'})
                assert r.status_code == 412, r.text
                r = await http.delete("/whip/w3/" + "0" * 32)
                assert r.status_code == 404  # not its Location: the session stays
                r = await http.delete("/whip/w3/" + pub.location.rsplit("/", 1)[1][:-1] + "g")
                assert r.status_code == 404  # not a session id at all
            assert pub.pc.connectionState == "connected"
        finally:
            await pub.close()

    run(scenario(), 60)
