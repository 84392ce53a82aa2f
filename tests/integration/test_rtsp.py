"""The RTSP server (SPEC section 4) through the real server and real peers: aiortc and the ffmpeg
CLI publish; FFmpeg (PyAV, ffprobe), aiortc and raw sockets play. Checked by what the players
decode (the colour sent), by status codes, and by the core's counts in ``GET /api/v1/server``.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest

from . import peers
from .conftest import Server, ServerFactory, free_udp_range
from .peers import BLUE, RED, all_match
from .rtsp_peers import (
    AvPlayer,
    RawRtsp,
    ffmpeg_publish,
    ffprobe_streams,
    sdp_controls,
    stop_process,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def server(server: ServerFactory) -> Iterator[ServerFactory]:
    """The conftest factory, plus: no server here may log a traceback (an RTSP handler that
    failed is a bug even when the client saw a sensible status)."""
    started: list[Server] = []

    def start(*args: Any, **kwargs: Any) -> Server:
        srv = server(*args, **kwargs)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        assert "Traceback" not in srv.log(), f"the server logged a traceback:\n{srv.log_tail(60)}"


def run(coro: Awaitable[Any], timeout: float = 120.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def wait_stream(srv: Server, name: str, timeout: float = 15.0, *, live: bool = True) -> dict[str, Any]:
    """Poll ``/api/v1/streams`` until ``name`` is (or is no longer, ``live=False``) listed."""
    deadline = time.monotonic() + timeout
    streams: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        streams = (await srv.api_async("/api/v1/streams"))["streams"]
        found = [s for s in streams if s["name"] == name and s.get("live", True)]
        if live and found:
            return found[0]
        if not live and not found:
            return {}
        await asyncio.sleep(0.2)
    raise AssertionError(f"stream {name} {'never went live' if live else 'is still live'}: {streams}")


# --------------------------------------------------------------------------------------------
# 1. WebRTC publisher -> RTSP players (TCP and UDP), ffprobe


async def _webrtc_to_rtsp(srv: Server) -> None:
    pub = await peers.publish(srv.ws_url, "cam", colour=RED)
    players: list[AvPlayer] = []
    try:
        # DESCRIBE carries the parameter sets the publisher sent in band, and one control per track.
        with RawRtsp(srv.rtsp_url) as raw:
            reply = await asyncio.to_thread(raw.describe, "cam")
        assert reply.status == 200, reply
        sdp_text = reply.body.decode()
        assert reply.header("Content-Base") == f"{srv.rtsp_url}/cam/", reply
        assert reply.header("Server", "").startswith("pms-trio/"), reply
        assert "H264/90000" in sdp_text and "opus/48000/2" in sdp_text, sdp_text
        assert "sprop-parameter-sets=" in sdp_text and "profile-level-id=" in sdp_text, sdp_text
        assert sdp_controls(reply.body) == ["trackID=0", "trackID=1"], sdp_text

        players = [AvPlayer(f"{srv.rtsp_url}/cam", "tcp").start(), AvPlayer(f"{srv.rtsp_url}/cam", "udp").start()]
        await asyncio.gather(*(p.wait_video_frames(60, 30) for p in players))
        for p in players:
            recent = [s.rgb for s in p.video[-30:]]
            assert all_match(recent, RED), f"{p.transport} player decodes {recent[-1]}, publisher sends {RED}"
            assert p.audio_frames > 0, f"{p.transport} player decoded no audio"
            assert set(p.codecs) == {"h264", "opus"}, p.codecs

        info = await srv.wait_core(consumers=2, producers=1)
        streams = (await srv.api_async("/api/v1/streams"))["streams"]
        assert streams[0]["name"] == "cam" and streams[0]["players"] == 2, streams

        assert pub.video is not None
        pub.video.colour = BLUE
        switched = await asyncio.gather(*(p.wait_colour(BLUE, 10) for p in players))
        await asyncio.gather(*(p.wait_video_frames(p.video_frames + 30, 10) for p in players))
        for p, t in zip(players, switched):
            after = [s.rgb for s in p.video if s.t >= t]
            assert len(after) >= 30 and all_match(after, BLUE), f"{p.transport} after the switch: {after[-5:]}"

        codecs = await asyncio.to_thread(ffprobe_streams, f"{srv.rtsp_url}/cam")
        assert sorted(codecs) == ["h264", "opus"], codecs
        assert info["consumers"] == 2
    finally:
        for p in players:
            await p.astop()
        await pub.close()
    for p in players:
        assert p.error is None, f"{p.transport} player: {p.error!r}"
    await srv.wait_core(consumers=0, producers=0, transports=0)


def test_webrtc_publisher_to_rtsp_players_tcp_and_udp(server: ServerFactory) -> None:
    srv = server()
    info = srv.api("/api/v1/server")
    assert info["ports"]["rtsp"] == int(srv.rtsp_url.rsplit(":", 1)[1]), info
    run(_webrtc_to_rtsp(srv))


# --------------------------------------------------------------------------------------------
# 2. ffmpeg publishes over RTSP -> RTSP and WebRTC players; 409; the end closes the players


async def _ffmpeg_publish(srv: Server, transport: str, log_path: str) -> None:
    url = f"{srv.rtsp_url}/pub"
    proc = ffmpeg_publish(url, transport, colour="red", log_path=log_path)
    rtsp_player: AvPlayer | None = None
    webrtc_player: peers.Player | None = None
    try:
        stream = await wait_stream(srv, "pub", 20)
        assert stream["source"] == "rtsp", stream

        # A second publisher of the live name: 409 over RTSP and over WebRTC.
        with RawRtsp(srv.rtsp_url) as raw:
            sdp_body = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
                        "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n")
            reply = await asyncio.to_thread(raw.request, "ANNOUNCE", "pub", {"Content-Type": "application/sdp"},
                                            sdp_body.encode())
            assert reply.status == 409, reply
        with pytest.raises(peers.SignalingError) as refused:
            await peers.publish(srv.ws_url, "pub")
        assert refused.value.code == 409

        # The SDP ffmpeg announced (sprop-parameter-sets) is described back.
        with RawRtsp(srv.rtsp_url) as raw:
            described = await asyncio.to_thread(raw.describe, "pub")
        assert described.status == 200 and b"sprop-parameter-sets=" in described.body, described

        rtsp_player = AvPlayer(url, "tcp").start()
        webrtc_player = await peers.play(srv.ws_url, "pub", audio=False)
        await asyncio.gather(rtsp_player.wait_video_frames(60, 30), webrtc_player.wait_video_frames(60, 30))
        assert all_match([s.rgb for s in rtsp_player.video[-30:]], RED), rtsp_player.last_colour()
        assert all_match([s.rgb for s in webrtc_player.video[-30:]], RED), webrtc_player.last_colour()

        # The publisher ends: the stream ends and the RTSP player's connection is closed.
        stop_process(proc)
        await wait_stream(srv, "pub", 10, live=False)
        await rtsp_player.wait_ended(15)
        await srv.wait_core(transports=0, consumers=0, producers=0, timeout=15)
    finally:
        stop_process(proc)
        if rtsp_player is not None:
            await rtsp_player.astop()
        if webrtc_player is not None:
            await webrtc_player.close()


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_ffmpeg_publishes_h264_over_rtsp(server: ServerFactory, transport: str, tmp_path: Any) -> None:
    srv = server()
    run(_ffmpeg_publish(srv, transport, str(tmp_path / "ffmpeg.log")))


# --------------------------------------------------------------------------------------------
# 3. Error statuses, keep-alive, TEARDOWN, a stream that ends


def test_error_statuses(server: ServerFactory) -> None:
    srv = server()
    run(_error_statuses(srv))


async def _error_statuses(srv: Server) -> None:
    pub = await peers.publish(srv.ws_url, "cam", colour=RED)
    try:
        await asyncio.to_thread(_error_statuses_sync, srv)
    finally:
        await pub.close()


def _error_statuses_sync(srv: Server) -> None:
    url = srv.rtsp_url
    with RawRtsp(url) as c:
        r = c.request("OPTIONS", "*")
        assert r.status == 200 and "DESCRIBE" in (r.header("Public") or ""), r
        assert r.header("CSeq") == "1" and (r.header("Server") or "").startswith("pms-trio/"), r
        # 404: unknown stream; the connection stays usable.
        assert c.describe("nosuch").status == 404
        # 455: SETUP before DESCRIBE, PLAY before SETUP.
        r = c.request("SETUP", "cam/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        assert r.status == 455 and r.header("Allow"), r
        assert c.request("PLAY", "cam").status == 455
        # 454: a session id this server never gave.
        assert c.request("PLAY", "cam", {"Session": "deadbeef00"}).status == 454
        # 461: multicast only; UDP without client_port.
        assert c.describe("cam").status == 200
        r = c.request("SETUP", "cam/trackID=0", {"Transport": "RTP/AVP;multicast;port=5000-5001"})
        assert r.status == 461, r
        assert c.request("SETUP", "cam/trackID=0", {"Transport": "RTP/AVP;unicast"}).status == 461
        # 501: unknown method.
        assert c.request("FROB", "cam").status == 501
        # A good SETUP, then a session id of someone else: 454; RECORD on a play session: 455.
        r = c.request("SETUP", "cam/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        assert r.status == 200, r
        session = r.header("Session") or ""
        assert session.endswith(";timeout=60"), r
        assert "interleaved=0-1" in (r.header("Transport") or ""), r
        assert c.request("PLAY", "cam", {"Session": "0123456789"}).status == 454
        assert c.request("RECORD", "cam").status == 455
        # Frames on a channel never set up (before PLAY) are dropped; the connection goes on.
        c.send_raw(b"$\x07\x00\x04abcd")
        assert c.request("GET_PARAMETER", "cam").status == 200
        # A TEARDOWN ends the session: its id is unknown afterwards.
        assert c.request("TEARDOWN", "cam").status == 200
        assert c.request("PLAY", "cam", session=True).status == 454

    # Garbage: 400 and the connection is closed.
    with RawRtsp(url) as c:
        c.send_raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
        r = c.response()
        assert r.status == 400, r
        assert c.wait_closed(5), "the server kept a connection open after garbage"
    # An HTTP request: 400 and close.
    with RawRtsp(url) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response().status == 400
        assert c.wait_closed(5)
    # A header block over 64 KiB: 400 and close.
    with RawRtsp(url) as c:
        c.send_raw(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Big: " + b"a" * (70 * 1024))
        r = c.response()
        assert r.status == 400, r
        assert c.wait_closed(5)
    # Truncated request then EOF: closed without a crash; a Content-Length that lies (more than
    # sent) leaves the request waiting, never answered as if complete.
    with RawRtsp(url) as c:
        c.send_raw(b"DESCRIBE rtsp://127.0.0.1/cam RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 100\r\n\r\nshort")
        with pytest.raises(TimeoutError):
            c.response(timeout=1.0)
        c.sock.shutdown(socket.SHUT_WR)
        r = c.response()
        assert r.status == 400, r
    # A Content-Length that is not a number: 400.
    with RawRtsp(url) as c:
        c.send_raw(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -5\r\n\r\n")
        assert c.response().status == 400
    # ANNOUNCE with an SDP we cannot read: 400; with a codec we cannot carry: 415.
    with RawRtsp(url) as c:
        assert c.request("ANNOUNCE", "bad", {"Content-Type": "application/sdp"}, b"not sdp").status == 400
        body = b"v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 MP4V-ES/90000\r\na=control:trackID=0\r\n"
        assert c.request("ANNOUNCE", "bad", {"Content-Type": "application/sdp"}, body).status == 415
        # 409: ANNOUNCE of a name that is live (published over WebRTC).
        body = b"v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"
        assert c.request("ANNOUNCE", "cam", {"Content-Type": "application/sdp"}, body).status == 409
    # The server is fine after all this.
    with RawRtsp(url) as c:
        assert c.describe("cam").status == 200


async def _keepalive_teardown_end(srv: Server) -> None:
    pub = await peers.publish(srv.ws_url, "cam", colour=RED)
    try:
        await srv.wait_core(producers=1)

        def playing() -> None:
            with RawRtsp(srv.rtsp_url) as c:
                responses = c.play_tcp("cam")
                play = responses[-1]
                assert play.status == 200, play
                info = play.header("RTP-Info") or ""
                assert info.count("url=") == 2 and "seq=" in info and "rtptime=" in info, play
                assert play.header("Session", "").startswith(c.session or "?"), play
                frames = c.read_frames(30)
                assert {f.channel for f in frames} <= {0, 1, 2, 3}, {f.channel for f in frames}
                # Frames on a channel never set up (RTCP on 9, junk on 200) are dropped by the core.
                c.send_raw(b"$\x09\x00\x08\x81\xc9\x00\x01\x00\x00\x00\x01" + b"$\xc8\x00\x03abc")
                # Keep-alive while the core owns the connection: answered between frames.
                for method in ("GET_PARAMETER", "OPTIONS"):
                    r = c.request(method, "cam")
                    assert r.status == 200 and r.header("CSeq") == str(c.cseq), r
                # PAUSE, then PLAY resumes.
                assert c.request("PAUSE", "cam").status == 200
                assert c.request("PLAY", "cam").status == 200
                c.read_frames(10)
                # 454 on the core-owned connection too.
                assert c.request("GET_PARAMETER", "cam", {"Session": "0000000000"}).status == 454
                # TEARDOWN: 200, then the server closes the connection.
                assert c.request("TEARDOWN", "cam").status == 200
                assert c.wait_closed(5), "the connection stayed open after TEARDOWN"

        await asyncio.to_thread(playing)
        await srv.wait_core(consumers=0, transports=1)

        # A stream that ends closes its RTSP players' connections (TCP and UDP sessions).
        tcp = RawRtsp(srv.rtsp_url)
        udp = RawRtsp(srv.rtsp_url)
        try:
            await asyncio.to_thread(lambda: tcp.play_tcp("cam"))
            await asyncio.to_thread(tcp.read_frames, 5)

            def udp_play() -> None:
                assert udp.describe("cam").status == 200
                port = free_udp_range(2)[0]
                r = udp.request("SETUP", "cam/trackID=0", {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}"})
                assert r.status == 200 and "server_port=" in (r.header("Transport") or ""), r
                assert udp.request("PLAY", "cam").status == 200

            await asyncio.to_thread(udp_play)
            await srv.wait_core(consumers=2)
            await pub.close()
            closed = await asyncio.gather(asyncio.to_thread(tcp.wait_closed, 10),
                                          asyncio.to_thread(udp.wait_closed, 10))
            assert closed == [True, True], closed
            await srv.wait_core(transports=0, consumers=0, producers=0)
        finally:
            tcp.close()
            udp.close()
    finally:
        await pub.close()


def test_keepalive_pause_teardown_and_stream_end(server: ServerFactory) -> None:
    run(_keepalive_teardown_end(server()))


# --------------------------------------------------------------------------------------------
# 4. A stalled TCP reader does not slow the others, and is dropped


async def _stalled_reader(srv: Server, log_path: str) -> None:
    url = f"{srv.rtsp_url}/fat"
    # A high constant bitrate (filler NAL units) so the stalled reader's socket buffers fill fast.
    proc = ffmpeg_publish(url, "tcp", log_path=log_path, extra_input=["-f", "lavfi", "-i", "testsrc2=s=320x240:r=30"],
                          video_args=["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
                                      "-pix_fmt", "yuv420p", "-b:v", "6M", "-minrate", "6M", "-maxrate", "6M",
                                      "-bufsize", "600k", "-x264-params", "nal-hrd=cbr:filler=1"])
    stalled: RawRtsp | None = None
    player: AvPlayer | None = None
    try:
        await wait_stream(srv, "fat", 20)
        stalled = RawRtsp(srv.rtsp_url, rcvbuf=4096)
        await asyncio.to_thread(stalled.play_tcp, "fat")  # ... and never reads again
        player = AvPlayer(url, "tcp").start()
        await player.wait_video_frames(30, 30)
        await srv.wait_core(consumers=2)
        started = time.monotonic()
        # The normal player keeps decoding at full rate while the stalled one's buffers fill.
        for _ in range(3):
            (grown, _) = await peers.count_stalls(lambda: player.video_frames, 0, 3.0)
            assert grown >= 60, f"the normal player decoded only {grown} frames in 3 s next to a stalled reader"
        # The stalled reader is dropped (core consumers back to 1) within ~15 s of its stall.
        await srv.wait_core(consumers=1, timeout=max(1.0, 25 - (time.monotonic() - started)))
        core = srv.core()
        assert core["rtsp_dropped"] > 0, core
        assert "play of fat ended (stalled)" in srv.log(), "the stalled reader was not closed as stalled"
        assert player.error is None and not player.ended, player.error
    finally:
        stop_process(proc)
        if player is not None:
            await player.astop()
        if stalled is not None:
            stalled.close()


def test_stalled_tcp_reader_is_dropped_without_slowing_others(server: ServerFactory, tmp_path: Any) -> None:
    run(_stalled_reader(server(), str(tmp_path / "ffmpeg.log")))


# --------------------------------------------------------------------------------------------
# 5. Idle connections and session expiry (60 s, by design)


async def _expiry(srv: Server) -> None:
    pub = await peers.publish(srv.ws_url, "cam", colour=RED)
    idle = silent = alive = None
    try:
        await srv.wait_core(producers=1)
        idle = RawRtsp(srv.rtsp_url, timeout=80)
        silent = RawRtsp(srv.rtsp_url, timeout=80)
        alive = RawRtsp(srv.rtsp_url, timeout=80)

        def udp_play(c: RawRtsp, port: int) -> None:
            assert c.describe("cam").status == 200
            r = c.request("SETUP", "cam/trackID=0", {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}"})
            assert r.status == 200, r
            assert c.request("PLAY", "cam").status == 200

        await asyncio.to_thread(udp_play, silent, free_udp_range(2)[0])
        await asyncio.to_thread(udp_play, alive, free_udp_range(2)[0])
        await srv.wait_core(consumers=2)
        started = time.monotonic()

        async def keep_alive() -> None:
            while True:
                await asyncio.sleep(15)
                r = await asyncio.to_thread(alive.request, "GET_PARAMETER", "cam")
                assert r.status == 200, r

        keeper = asyncio.create_task(keep_alive())
        try:
            closed = await asyncio.gather(asyncio.to_thread(idle.wait_closed, 75),
                                          asyncio.to_thread(silent.wait_closed, 75))
            elapsed = time.monotonic() - started
        finally:
            keeper.cancel()
        assert closed == [True, True], closed
        assert 55 <= elapsed <= 70, f"closed after {elapsed:.1f} s, not ~60 s"
        await srv.wait_core(consumers=1)
        assert (await asyncio.to_thread(alive.request, "GET_PARAMETER", "cam")).status == 200
    finally:
        for c in (idle, silent, alive):
            if c is not None:
                c.close()
        await pub.close()


@pytest.mark.slow
def test_idle_connections_and_silent_sessions_expire_after_60s(server: ServerFactory) -> None:
    run(_expiry(server()), timeout=150)


def test_many_idle_connections(server: ServerFactory) -> None:
    """10,000 idle connections (more than the usual 1024 open files) do not stop the server from
    serving, and SIGTERM still ends it with status 0 within 5 s while they are open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 10_000
    if soft < want + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 500), hard))
    count = min(want, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 300)
    srv = server()
    host, port = srv.rtsp_url.rsplit("/", 1)[-1].rsplit(":", 1)
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect((host, int(port)))
            socks.append(s)
        with RawRtsp(srv.rtsp_url) as c:
            r = c.request("OPTIONS", "*", timeout=20)
            assert r.status == 200, r
            assert c.describe("nosuch").status == 404
        assert count >= want, f"only {count} connections (open-file limit)"
        assert srv.stop() == 0 and srv.stop_seconds is not None and srv.stop_seconds < 5, \
            f"SIGTERM with {count} idle connections: status {srv.returncode} after {srv.stop_seconds} s"
    finally:
        for s in socks:
            s.close()


async def _describe_waits(srv: Server) -> None:
    sps, pps = "Z0LAHtoKD9A=", "aM48gA=="
    body = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
            f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={sps},{pps}\r\na=control:streamid=0\r\n").encode()
    with RawRtsp(srv.rtsp_url) as publisher, RawRtsp(srv.rtsp_url, timeout=20) as player:
        r = await asyncio.to_thread(publisher.request, "ANNOUNCE", "soon", {"Content-Type": "application/sdp"}, body)
        assert r.status == 200, r
        r = await asyncio.to_thread(publisher.request, "SETUP", "soon/streamid=0",
                                    {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"})
        assert r.status == 200, r
        # Claimed at ANNOUNCE: a WebRTC publisher of the name gets 409; not live before RECORD.
        with pytest.raises(peers.SignalingError) as refused:
            await peers.publish(srv.ws_url, "soon")
        assert refused.value.code == 409
        streams = (await srv.api_async("/api/v1/streams"))["streams"]
        assert [(s["name"], s["live"]) for s in streams] == [("soon", False)], streams

        started = time.monotonic()
        describe = asyncio.create_task(asyncio.to_thread(player.describe, "soon"))
        await asyncio.sleep(1.0)
        assert not describe.done(), "DESCRIBE of a stream being published did not wait for its RECORD"
        r = await asyncio.to_thread(publisher.request, "RECORD", "soon", {"Range": "npt=0.000-"})
        assert r.status == 200, r
        described = await asyncio.wait_for(describe, 10)
        assert described.status == 200 and time.monotonic() - started >= 1.0, described
        assert f"sprop-parameter-sets={sps},{pps}".encode() in described.body, described.body
        await wait_stream(srv, "soon", 5)
    await wait_stream(srv, "soon", 10, live=False)  # the publisher's connection closed: the stream ends
    await srv.wait_core(transports=0)


def test_describe_waits_for_a_starting_publish(server: ServerFactory) -> None:
    run(_describe_waits(server()))
