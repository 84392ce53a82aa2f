"""RTSP session lifetime and listing through the real server (SPEC section 4, issue 3).

- Session expiry counts the core's signs of life (``rtsp_alive``): a player that sends only RTCP
  receiver reports (over UDP, as FFmpeg does, or interleaved on a TCP connection the core owns)
  outlives ``rtsp.sessionTimeout``; one that sends nothing is torn down at it, TCP included.
- An FFmpeg publisher over UDP sends no request after RECORD: its media keeps its session alive.
- ``/api/v1/sessions`` lists RTSP players and publishers next to the WebRTC sessions.

``rtsp.sessionTimeout`` is 6 s here (60 s by default) so that each test takes seconds.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any

import pytest

from . import peers
from .conftest import Server, ServerFactory, free_udp_range
from .peers import RED
from .rtsp_peers import RawRtsp, ffmpeg_publish, stop_process
from .test_rtsp import run, server, wait_stream  # noqa: F401 - `server`: the traceback-checking fixture

pytestmark = pytest.mark.integration

TIMEOUT = 6  # rtsp.sessionTimeout of these tests
CONFIG = {"rtsp": {"sessionTimeout": TIMEOUT}}


def receiver_report(media_ssrc: int, highest_seq: int) -> bytes:
    """An RTCP RR (RFC 3550 6.4.2) with one report block, as a player sends it."""
    block = struct.pack("!IIIIII", media_ssrc, 0, highest_seq & 0xFFFF, 0, 0, 0)
    return struct.pack("!BBHI", 0x81, 201, 7, 0x5EED5EED) + block


def drain(c: RawRtsp, seconds: float = 0.3) -> list[Any]:
    """The interleaved frames that arrive on ``c`` within ``seconds``."""
    end = time.monotonic() + seconds
    frames: list[Any] = []
    while time.monotonic() < end:
        try:
            frames += c.read_frames(1, timeout=max(0.01, end - time.monotonic()))
        except TimeoutError:
            break
    return frames


class UdpPlayer:
    """A UDP RTSP session (DESCRIBE, SETUP client_port=, PLAY on its own connection) whose RTP/RTCP
    sockets receive media; with ``rtcp=True`` it sends an RR from its RTCP port every second and
    never a request, else nothing at all."""

    def __init__(self, srv: Server, stream: str) -> None:
        self.rtsp = RawRtsp(srv.rtsp_url, timeout=30)
        port = free_udp_range(2)[0]
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", port))
        self.rtcp.bind(("127.0.0.1", port + 1))
        self.rtp.settimeout(5)
        assert self.rtsp.describe(stream).status == 200
        r = self.rtsp.request("SETUP", f"{stream}/trackID=0",
                              {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}"})
        assert r.status == 200, r
        server_port = (r.header("Transport") or "").split("server_port=")[1].split(";")[0]
        self.server_rtcp = ("127.0.0.1", int(server_port.split("-")[1]))
        assert self.rtsp.request("PLAY", stream).status == 200

    def receive_rtp(self) -> tuple[int, int]:
        """(SSRC, sequence number) of the next RTP packet; raises TimeoutError after 5 s."""
        data = self.rtp.recv(2048)
        return struct.unpack("!I", data[8:12])[0], struct.unpack("!H", data[2:4])[0]

    def send_rr(self) -> None:
        ssrc, seq = self.receive_rtp()
        self.rtcp.sendto(receiver_report(ssrc, seq), self.server_rtcp)

    def close(self) -> None:
        self.rtsp.close()
        self.rtp.close()
        self.rtcp.close()


async def _sign_of_life(srv: Server) -> None:
    pub = await peers.publish(srv.ws_url, "cam", colour=RED)
    players: list[Any] = []
    try:
        await srv.wait_core(producers=1)
        udp_rr = await asyncio.to_thread(UdpPlayer, srv, "cam")
        udp_silent = await asyncio.to_thread(UdpPlayer, srv, "cam")
        tcp_rr = RawRtsp(srv.rtsp_url, timeout=30)
        tcp_silent = RawRtsp(srv.rtsp_url, timeout=30)
        players += [udp_rr, udp_silent, tcp_rr, tcp_silent]
        await asyncio.to_thread(tcp_rr.play_tcp, "cam", 1)
        await asyncio.to_thread(tcp_silent.play_tcp, "cam", 1)
        await srv.wait_core(consumers=4)
        started = time.monotonic()

        def tcp_rr_once() -> None:
            """Read what came (so the core never sees a stalled reader), then send one RR."""
            rtp = [f for f in drain(tcp_rr) if f.channel == 0]
            assert rtp, "no RTP on the RTCP-only TCP player's connection"
            data = rtp[-1].payload
            ssrc, seq = struct.unpack("!I", data[8:12])[0], struct.unpack("!H", data[2:4])[0]
            tcp_rr.send_raw(b"$\x01" + struct.pack("!H", 32) + receiver_report(ssrc, seq))

        async def report(until: float) -> int:
            """The RTCP-only players: one RR a second each, and nothing else, until ``until``."""
            sent = 0
            while time.monotonic() < until:
                await asyncio.gather(asyncio.to_thread(udp_rr.send_rr), asyncio.to_thread(tcp_rr_once))
                sent += 1
                await asyncio.sleep(1.0)
            return sent

        # The silent ones (UDP: no request and no datagram; TCP: no request and no frame) go at the
        # session timeout; the TCP one's connection is closed by the core.
        reporter = asyncio.create_task(report(started + 3 * TIMEOUT))
        closed = await asyncio.gather(asyncio.to_thread(udp_silent.rtsp.wait_closed, 3 * TIMEOUT),
                                      asyncio.to_thread(tcp_silent.wait_closed, 3 * TIMEOUT))
        elapsed = time.monotonic() - started
        assert closed == [True, True], closed
        # At the timeout, not later: the TCP one's stall close would come after 10 s at the earliest.
        assert TIMEOUT - 2 <= elapsed <= TIMEOUT + 2.5, f"the silent sessions closed after {elapsed:.1f} s"
        await srv.wait_core(consumers=2)

        # The RTCP-only ones play on, well past the timeout, without a single request.
        sent = await reporter
        assert sent >= 2 * TIMEOUT, sent
        assert time.monotonic() - started >= 3 * TIMEOUT
        assert (await srv.api_async("/api/v1/server"))["core"]["consumers"] == 2
        await asyncio.to_thread(udp_rr.receive_rtp)
        assert any(f.channel == 0 for f in await asyncio.to_thread(drain, tcp_rr)) and not tcp_rr.closed

        # And once they fall silent too, they go as well.
        closed = await asyncio.gather(asyncio.to_thread(udp_rr.rtsp.wait_closed, 3 * TIMEOUT),
                                      asyncio.to_thread(tcp_rr.wait_closed, 3 * TIMEOUT))
        assert closed == [True, True], closed
        await srv.wait_core(consumers=0)
    finally:
        for player in players:
            player.close()
        await pub.close()


def test_rtcp_keeps_a_session_alive_and_silence_ends_it(server: ServerFactory) -> None:  # noqa: F811
    run(_sign_of_life(server(CONFIG)))


async def _sessions_listed(srv: Server, log_path: str) -> None:
    proc = ffmpeg_publish(f"{srv.rtsp_url}/pub", "udp", log_path=log_path)
    udp: UdpPlayer | None = None
    tcp: RawRtsp | None = None
    webrtc: peers.Player | None = None
    try:
        await wait_stream(srv, "pub", 20)
        tcp = RawRtsp(srv.rtsp_url, timeout=30)
        await asyncio.to_thread(tcp.play_tcp, "pub")
        udp = await asyncio.to_thread(UdpPlayer, srv, "pub")
        webrtc = await peers.play(srv.ws_url, "pub", audio=False)
        await srv.wait_core(consumers=3)

        def rtsp_sessions(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
            return {s["id"]: s for s in document["sessions"] if s["kind"] == "rtsp"}

        sessions = rtsp_sessions(await srv.api_async("/api/v1/sessions"))
        assert tcp.session in sessions and udp.rtsp.session in sessions, sessions
        by_role = {(s["role"], s["transport"]): s for s in sessions.values()}
        assert set(by_role) == {("publish", "udp"), ("play", "tcp"), ("play", "udp")}, sessions
        assert by_role[("publish", "udp")]["state"] == "Recording"
        for s in sessions.values():
            assert s["stream"] == "pub" and s["peer"].startswith("127.0.0.1:"), s
        assert sessions[tcp.session]["state"] == "Playing"
        assert sessions[tcp.session]["peer"] == "{}:{}".format(*tcp.sock.getsockname()[:2])
        assert sessions[udp.rtsp.session]["peer"] == "{}:{}".format(*udp.rtsp.sock.getsockname()[:2])
        webrtc_sessions = [s for s in (await srv.api_async("/api/v1/sessions"))["sessions"] if s["kind"] == "webrtc"]
        assert len(webrtc_sessions) == 1 and webrtc_sessions[0]["playing"] == ["pub"], webrtc_sessions

        # A TEARDOWN takes the session off the list.
        assert (await asyncio.to_thread(tcp.request, "TEARDOWN", "pub")).status == 200
        deadline = time.monotonic() + 10
        while tcp.session in sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            sessions = rtsp_sessions(await srv.api_async("/api/v1/sessions"))
        assert tcp.session not in sessions, sessions
        # FFmpeg's RTSP muxer sends no request after RECORD: its RTP keeps its session (and the
        # stream) alive past the session timeout, while the silent UDP player's session ends.
        await asyncio.sleep(2 * TIMEOUT)
        assert (await wait_stream(srv, "pub", 1))["source"] == "rtsp"
        assert proc.poll() is None
        sessions = rtsp_sessions(await srv.api_async("/api/v1/sessions"))
        assert [s["role"] for s in sessions.values()] == ["publish"], sessions
        assert await asyncio.to_thread(udp.rtsp.wait_closed, 1), "the silent UDP player's session stayed"

    finally:
        stop_process(proc)
        for c in (udp, tcp):
            if c is not None:
                c.close()
        if webrtc is not None:
            await webrtc.close()


def test_sessions_api_lists_rtsp_players_and_publishers(server: ServerFactory, tmp_path: Any) -> None:  # noqa: F811
    run(_sessions_listed(server(CONFIG), str(tmp_path / "ffmpeg.log")))
