"""Cascade (SPEC section 6) between real server processes on loopback: an edge pulls from its
origin over RTSP when a player asks for a stream that is not live on the edge.

Covered here: aiortc and FFmpeg publishers on the origin; aiortc (WebRTC) and FFmpeg (RTSP)
players on the edge decode the colour sent; five edge players share one pull (the origin sees one
RTSP session); the pull ends after its last consumer; two servers listing each other do not loop
(404 within 5 s, one pull attempt counted); a dead peer first in the list does not stop the pull from
a live one; a recording on the edge of a stream on another server (``targetHost``/``targetPort``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from typing import Any

import pytest

from . import peers
from .conftest import Server, ServerFactory
from .peers import BLUE, GREEN, RED, all_match, publish, run
from .record_support import decode_file, ffprobe, record, record_url
from .rtsp_peers import AvPlayer, ffmpeg_publish, stop_process

pytestmark = pytest.mark.integration


def rtsp_port(srv: Server) -> int:
    return int(srv.rtsp_url.rsplit(":", 1)[1])


def edge_of(server: ServerFactory, *origins: Server | int, **config: Any) -> Server:
    """A server whose ``pull`` list names ``origins`` (servers, or bare ports on 127.0.0.1)."""
    pull = [{"ip": "127.0.0.1", "port": o if isinstance(o, int) else rtsp_port(o)} for o in origins]
    return server({"pull": pull, **config})


def metric(srv: Server, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(srv.http_url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def rtsp_play_sessions(srv: Server, stream: str) -> list[dict[str, Any]]:
    return [s for s in srv.api("/api/v1/sessions")["sessions"]
            if s.get("kind") == "rtsp" and s.get("role") == "play" and s.get("stream") == stream]


def test_edge_players_share_one_pull_of_a_webrtc_stream(server: ServerFactory) -> None:
    origin = server()
    edge = edge_of(server, origin)

    async def scenario() -> None:
        pub = await publish(origin.ws_url, "cam", video_codec="video/H264", colour=BLUE)
        players: list[Any] = []
        av_player = None
        try:
            first = await peers.play(edge.ws_url, "cam")
            players.append(first)
            await first.wait_video_frames(60, timeout=30)
            assert all_match(first.colours_since(first.video[-30].t), BLUE), first.colours_since(0)[-5:]
            streams = {s["name"]: s for s in (await edge.api_async("/api/v1/streams"))["streams"]}
            assert streams["cam"]["source"] == "cascade", streams
            assert streams["cam"]["origin"].endswith(f":{rtsp_port(origin)}/cam"), streams
            for _ in range(3):
                players.append(await peers.play(edge.ws_url, "cam"))
            av_player = AvPlayer(f"{edge.rtsp_url}/cam").start()
            await av_player.wait_video_frames(60, timeout=30)
            assert all_match([s.rgb for s in av_player.video[-30:]], BLUE), av_player.video[-1]
            for p in players[1:]:
                await p.wait_video_frames(30, timeout=20)
            pulls = rtsp_play_sessions(origin, "cam")
            assert len(pulls) == 1, f"the origin serves {len(pulls)} RTSP players of cam, want the edge's one"
            assert metric(edge, "pms_pulls_total") == 1
            assert metric(edge, "pms_core_pull_bytes_in_total") > 5_000  # seconds of (solid-colour) video pulled
        finally:
            if av_player is not None:
                await av_player.astop()
            await peers.close_all(*players)
        # the last consumer left: the pull ends LINGER (10 s) later, and the origin sees it go
        deadline = time.monotonic() + 20
        while rtsp_play_sessions(origin, "cam") and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert not rtsp_play_sessions(origin, "cam"), "the pull outlived its consumers"
        assert "cam" not in {s["name"] for s in (await edge.api_async("/api/v1/streams"))["streams"]}
        await pub.close()

    run(scenario(), 120)


def test_ffmpeg_published_stream_pulled_and_played_over_rtsp(server: ServerFactory) -> None:
    origin = server()
    edge = edge_of(server, origin)
    publisher = ffmpeg_publish(f"{origin.rtsp_url}/ff", "tcp", colour="blue")

    async def scenario() -> None:
        deadline = time.monotonic() + 15
        while "ff" not in {s["name"] for s in origin.api("/api/v1/streams")["streams"] if s["live"]}:
            assert time.monotonic() < deadline, "ffmpeg did not publish"
            await asyncio.sleep(0.2)
        player = AvPlayer(f"{edge.rtsp_url}/ff").start()
        try:
            await player.wait_video_frames(60, timeout=30)
            assert all_match([s.rgb for s in player.video[-30:]], BLUE), player.video[-1]
            assert player.codecs == ["h264"], player.codecs
        finally:
            await player.astop()

    try:
        run(scenario(), 90)
    finally:
        stop_process(publisher)


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_servers_listing_each_other_do_not_loop(server: ServerFactory) -> None:
    port_a, port_b = _free_tcp_port(), _free_tcp_port()
    a = server({"rtsp": {"port": port_a}, "pull": [{"ip": "127.0.0.1", "port": port_b}]})
    b = server({"rtsp": {"port": port_b}, "pull": [{"ip": "127.0.0.1", "port": port_a}]})

    async def scenario() -> None:
        sig = await peers.SignalingClient.connect(a.ws_url)
        try:
            started = time.monotonic()
            with pytest.raises(peers.SignalingError) as refused:
                await sig.request("stream.play", "nowhere", {"sdp": await _offer()}, timeout=15)
            elapsed = time.monotonic() - started
            assert refused.value.reply["err"] == 404, refused.value.reply
            assert elapsed < 5, f"404 took {elapsed:.1f} s"
        finally:
            await sig.close()
        assert metric(a, "pms_pulls_total") == 1  # a asked b
        assert metric(b, "pms_pulls_total") == 0  # b answered from what is live there and never asked a

    run(scenario(), 60)


async def _offer() -> str:
    pc = peers.build_player_pc()
    try:
        return await peers.make_offer(pc)
    finally:
        await pc.close()


def _closed_port() -> int:
    return _free_tcp_port()  # nothing listens there once the probe socket is closed


def test_dead_peers_first_do_not_stop_the_pull(server: ServerFactory) -> None:
    origin = server()
    silent = socket.socket()  # accepts connections (the kernel does) and never answers: a black hole
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        edge = edge_of(server, _closed_port(), silent.getsockname()[1], origin)

        async def scenario() -> None:
            pub = await publish(origin.ws_url, "far", colour=RED)
            try:
                started = time.monotonic()
                player = await peers.play(edge.ws_url, "far")
                try:
                    await player.wait_video_frames(30, timeout=20)
                    assert all_match(player.colours_since(player.video[-10].t), RED)
                finally:
                    await player.close()
                assert time.monotonic() - started < 15
            finally:
                await pub.close()

        run(scenario(), 60)
    finally:
        silent.close()


def test_record_a_stream_of_another_server(server: ServerFactory) -> None:
    origin = server()
    edge = server()  # no pull list: the record command names the target

    async def scenario() -> None:
        pub = await publish(origin.ws_url, "remote", video_codec="video/H264", colour=GREEN)
        url = record_url(edge.ready)
        try:
            status, reply = await record(url, "remote", "record.start", fileName="remote.mkv",
                                         targetHost="127.0.0.1", targetPort=rtsp_port(origin))
            assert status == 200 and reply["err"] == 0, reply
            await asyncio.sleep(5)
            status, reply = await record(url, "remote", "record.stop")
            assert status == 200 and reply["err"] == 0, reply
            status, reply = await record(url, "absent", "record.start", fileName="absent.mkv",
                                         targetHost="127.0.0.1", targetPort=rtsp_port(origin))
            assert reply["err"] == 404, reply
            status, reply = await record(url, "x", "record.start", fileName="x.mkv",
                                         targetHost="127.0.0.1", targetPort=_closed_port())
            assert reply["err"] == 502, reply
        finally:
            await pub.close()
        path = f"{edge.config['record']['recordPath']}/remote.mkv"
        info = ffprobe(path)
        assert {s["codec_name"] for s in info["streams"]} == {"h264", "opus"}, info["streams"]
        decoded = decode_file(path)
        assert not decoded.error, decoded.error
        assert decoded.video_frames >= 4 * peers.FPS * 0.8, decoded.video_frames

    run(scenario(), 90)


def test_edge_players_resume_after_the_origin_restarts(server: ServerFactory) -> None:
    port = _free_tcp_port()
    origin = server({"rtsp": {"port": port}}, graceful=False)
    edge = edge_of(server, origin)

    async def scenario() -> None:
        pub = await publish(origin.ws_url, "cam", colour=RED)
        player = await peers.play(edge.ws_url, "cam")
        av_player = AvPlayer(f"{edge.rtsp_url}/cam").start()
        pub2 = None
        try:
            await player.wait_video_frames(30, timeout=20)
            await av_player.wait_colour(RED, timeout=20)
            os.kill(origin.pid, signal.SIGKILL)
            origin.stop()
            await pub.close()
            killed = time.monotonic()
            restarted = await asyncio.to_thread(server, {"rtsp": {"port": port}})
            pub2 = await publish(restarted.ws_url, "cam", colour=BLUE)
            back = await player.wait_colour(BLUE, timeout=30)
            await av_player.wait_colour(BLUE, timeout=30)
            assert back - killed < 20, f"frames came back {back - killed:.1f} s after the origin died"
            closed = [m for m in player.signaling.received if m.get("method") == "stream.closed"]
            assert not closed, closed
            assert av_player.error is None and not av_player.ended
            assert metric(edge, "pms_pull_retries_total") >= 1
            assert metric(edge, "pms_pulls_total") == 1  # the same pull, reconnected
            sent = [s.rgb for s in player.video if s.t >= back]
            assert all_match(sent[:10], BLUE)
        finally:
            await av_player.astop()
            await peers.close_all(player, pub2)

    run(scenario(), 120)


def test_edge_players_are_told_when_the_origin_ends_the_stream(server: ServerFactory) -> None:
    origin = server()
    edge = edge_of(server, origin)

    async def scenario() -> None:
        pub = await publish(origin.ws_url, "short", colour=RED)
        player = await peers.play(edge.ws_url, "short")
        try:
            await player.wait_video_frames(20, timeout=20)
            await pub.close(signal=True)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                    m.get("method") == "stream.closed" for m in player.signaling.received):
                await asyncio.sleep(0.1)
            closed = [m for m in player.signaling.received if m.get("method") == "stream.closed"]
            assert closed, "the edge's player was not told that the stream ended"
            assert time.monotonic() - (deadline - 10) < 5
            assert metric(edge, "pms_pull_retries_total") == 0  # an end, not a broken connection
        finally:
            await player.close()

    run(scenario(), 60)


def test_gb28181_channel_of_the_origin_played_on_the_edge(server: ServerFactory) -> None:
    from .test_gb28181_media import CHANNEL, gb_media_server, registered_camera

    origin = gb_media_server(server)
    edge = edge_of(server, origin)

    async def scenario() -> None:
        cam = await registered_camera(origin, colour=(200, 0, 200), codec="h264")
        player = None
        try:
            player = await peers.play(edge.ws_url, CHANNEL, audio=False, timeout=20)
            await player.wait_video_frames(30, timeout=20)
            assert all(peers.colour_matches(c, (200, 0, 200)) for c in player.colours_since(player.video[-5].t))
            assert len(cam.sessions) == 1  # one INVITE on the origin, reached through the cascade
            streams = {s["name"]: s for s in (await edge.api_async("/api/v1/streams"))["streams"]}
            assert streams[CHANNEL]["source"] == "cascade", streams
        finally:
            if player is not None:
                await player.close()
            await cam.close()

    run(scenario(), 90)
