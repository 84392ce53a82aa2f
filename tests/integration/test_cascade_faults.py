"""The cascade against hostile or broken origins (issue 11's "bad input and faults"): a peer that
answers garbage, closes mid-DESCRIBE, describes no track we can carry, never answers, goes silent
after PLAY, or floods. Each runs on loopback as a small asyncio server in the test; the edge is the
real server. What is checked is what users see: the player's reply code and how fast it comes,
a stream.closed, and that a player of another stream on the edge keeps decoding at full rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import pytest

from . import peers
from .conftest import Server, ServerFactory
from .peers import RED, publish, run

pytestmark = pytest.mark.integration

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bad\r\nt=0 0\r\na=control:*\r\n"
       "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
       "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAA8jxYuS,aMuMsg==\r\n"
       "a=control:trackID=0\r\n")
NO_TRACK_SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bad\r\nt=0 0\r\n"
                "m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\na=control:trackID=0\r\n")


class BadOrigin:
    """An RTSP 'server' that misbehaves in one way (``mode``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> BadOrigin:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        for t in self.tasks:
            t.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        with contextlib.suppress(Exception):
            await self._talk(reader, writer)
        writer.close()

    async def _request(self, reader: asyncio.StreamReader) -> tuple[str, str]:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        lines = head.decode().split("\r\n")
        cseq = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("cseq:")), "0")
        return lines[0].split(" ", 1)[0], cseq

    async def _talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        if mode == "hang":
            await asyncio.sleep(60)
            return
        while True:
            method, cseq = await self._request(reader)
            if mode == "garbage":
                writer.write(os.urandom(3000) + b"\r\n\r\n")
                await writer.drain()
                continue
            if mode == "close" and method == "DESCRIBE":
                writer.write(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq.encode() + b"\r\nContent-Length: 400\r\n\r\nv=0\r\n")
                await writer.drain()
                return  # closed mid-body
            reply = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n"
            body = b""
            if method == "OPTIONS":
                reply += "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n"
            elif method == "DESCRIBE":
                body = (NO_TRACK_SDP if mode == "no-track" else SDP).encode()
                reply += "Content-Type: application/sdp\r\n"
            elif method == "SETUP":
                reply += "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 12345678;timeout=60\r\n"
            elif method == "PLAY":
                reply += "Session: 12345678\r\n"
            writer.write(reply.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            if method == "PLAY":
                break
        if mode == "silent":
            await asyncio.sleep(60)
        elif mode == "flood":
            junk = b"$\x00\xff\xff" + os.urandom(0xFFFF)  # frames of garbage RTP on the track's channel
            stop = time.monotonic() + 4
            while time.monotonic() < stop:
                writer.write(junk * 16)
                writer.write(b"GARBAGE / RTSP/1.0\r\nCSeq: 1\r\n\r\n" * 50)
                await writer.drain()
            await asyncio.sleep(60)


async def _other_stream_player(edge: Server) -> tuple[Any, Any]:
    pub = await publish(edge.ws_url, "local", colour=RED)
    player = await peers.play(edge.ws_url, "local")
    await player.wait_video_frames(15, timeout=20)
    return pub, player


async def _play_status(edge: Server, stream: str) -> tuple[int, float]:
    sig = await peers.SignalingClient.connect(edge.ws_url)
    pc = peers.build_player_pc()
    try:
        offer = await peers.make_offer(pc)
        started = time.monotonic()
        try:
            await sig.request("stream.play", stream, {"sdp": offer}, timeout=20)
            return 0, time.monotonic() - started
        except peers.SignalingError as e:
            return int(e.reply["err"]), time.monotonic() - started
    finally:
        await pc.close()
        await sig.close()


@pytest.mark.parametrize("mode", ["garbage", "close", "no-track", "hang"])
def test_broken_origin_costs_a_player_at_most_a_few_seconds(server: ServerFactory, mode: str) -> None:
    async def scenario() -> None:
        async with BadOrigin(mode) as bad:
            edge = await asyncio.to_thread(server, {"pull": [{"ip": "127.0.0.1", "port": bad.port}]})
            pub, player = await _other_stream_player(edge)
            try:
                before, t0 = player.video_frames, time.monotonic()
                status, elapsed = await _play_status(edge, "wanted")
                assert status in (404, 415, 502), status
                assert elapsed < 4.5, f"{mode}: the refusal took {elapsed:.1f} s"
                assert bad.connections >= 1
                await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))  # a window worth counting
                got, window = player.video_frames - before, time.monotonic() - t0
                assert got >= 0.7 * peers.FPS * window, f"the local player got {got} frames in {window:.1f} s"
                assert (await edge.api_async("/api/v1/server"))["version"]
            finally:
                await peers.close_all(player, pub)

    run(scenario(), 60)


def test_silent_origin_ends_the_pull_after_ten_seconds(server: ServerFactory) -> None:
    async def scenario() -> None:
        async with BadOrigin("silent") as bad:
            edge = await asyncio.to_thread(server, {"pull": [{"ip": "127.0.0.1", "port": bad.port}]})
            status, _ = await _play_status(edge, "quiet")
            assert status == 0  # live at PLAY, before any media
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                names = {s["name"] for s in (await edge.api_async("/api/v1/streams"))["streams"]}
                if "quiet" not in names:
                    break
                await asyncio.sleep(0.5)
            assert "quiet" not in names, "a pull with no media did not end"
            assert time.monotonic() - (deadline - 20) >= 9  # not before the media timeout

    run(scenario(), 60)


def test_flooding_origin_does_not_slow_other_streams(server: ServerFactory) -> None:
    async def scenario() -> None:
        async with BadOrigin("flood") as bad:
            edge = await asyncio.to_thread(server, {"pull": [{"ip": "127.0.0.1", "port": bad.port}]})
            pub, player = await _other_stream_player(edge)
            try:
                status, _ = await _play_status(edge, "flooded")
                before, started = player.video_frames, time.monotonic()
                await asyncio.sleep(4)
                got = player.video_frames - before
                elapsed = time.monotonic() - started
                assert got >= 0.7 * peers.FPS * elapsed, f"the local player got {got} frames in {elapsed:.1f} s"
                core = (await edge.api_async("/api/v1/server"))["core"]
                assert status in (0, 404, 502), status
                assert core.get("rtp_dropped", 0) > 0 or core.get("transports", 0) >= 2, core
            finally:
                await peers.close_all(player, pub)

    run(scenario(), 60)
