"""The GB28181 media ingest of the real core (``pms_trio._core.Core`` in this process), as a user
sees it: a camera-like sender (``tests/gb28181/psmux.py``: PS in RTP, one solid colour) over TCP
passive, UDP (with reordering) and TCP active; what comes out is checked by real players: an
aiortc WebRTC player (decoded frames and their colour) and an RTSP-over-UDP player whose RTP this
test depacketizes and decodes with PyAV (H.264 and H.265).

Everything on 127.0.0.1, ports chosen by the system. Every wait is bounded in time and every loop
in count. Core events are drained by polling ``poll_events()``; each test keeps them in an
:class:`Events` log. The camera, the players and the waits are in ``gb_ingest_support``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pms_trio._core as core_module
import pytest

from .gb_ingest_support import (
    BLUE,
    GREEN,
    LOOPBACK,
    RED,
    WAIT,
    Camera,
    Events,
    RtspUdpPlayer,
    WebRtcPlayer,
    camera_frames,
    closed_by_peer,
    connect_tcp,
    encode_solid,
    framed,
    psmux,
    wait_live,
    wait_until,
)
from .peers import colour_matches, run


@pytest.fixture
def core() -> Iterator[Any]:
    c = core_module.Core(workers=1, listen_ip=LOOPBACK, announced_ips=[LOOPBACK], min_port=0, max_port=0,
                         log_level="warn")
    try:
        yield c
    finally:
        c.shutdown()


# --------------------------------------------------------------------------------------------
# Tests


def test_tcp_passive_h264_with_g711_plays_over_webrtc_and_rtsp(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, udp_port = core.gb_listen(LOOPBACK, 0)
        assert tcp_port > 0 and udp_port > 0
        tid = core.create_gb_ingest("34020000001320000001", 100001)
        assert core.stream_codecs("34020000001320000001") is None  # reserved, not live
        sock = connect_tcp(tcp_port)
        cam = Camera(camera_frames("h264", RED, 250, 100001), tcp=sock).start()
        webrtc = WebRtcPlayer()
        rtsp = None
        try:
            codecs = await wait_live(events, "34020000001320000001")
            assert codecs == ["video/H264", "audio/PCMA"]
            await webrtc.play(core, "34020000001320000001")
            rtsp = RtspUdpPlayer(core, "34020000001320000001", "H264")
            rtsp.start()
            await wait_until(lambda: len(webrtc.colours) >= 60, 15, "60 WebRTC frames")
            assert all(colour_matches(c, RED) for c in webrtc.colours[-30:]), webrtc.colours[-5:]
            await wait_until(lambda: webrtc.audio_frames > 0, WAIT, "WebRTC audio (PCMA)")
            await rtsp.wait_frames(20)
            assert colour_matches(rtsp.colours[-1], RED), rtsp.colours[-5:]
            stats = core.stats()
            assert stats["gb_ingests"] == 1 and stats["gb_tcp_connections"] == 1
            assert stats["gb_seq_gaps"] == 0 and stats["gb_unknown_ssrc"] == 0
            assert not [e for e in events.log if isinstance(e, core_module.TransportClosed) and e.transport_id == tid]
            # The players found the IDR in the cache: the camera is not asked for one.
            assert core_module.KeyframeWanted("34020000001320000001") not in events.log
        finally:
            cam.stop()
            sock.close()
            await webrtc.close()
            if rtsp:
                rtsp.close()
        # The camera hung up: the ingest ends with eof and the stream is gone.
        await events.wait(lambda e: e == core_module.TransportClosed(tid, "eof"))
        assert core.stream_codecs("34020000001320000001") is None

    run(main())


def test_udp_with_reordering_plays_without_gaps(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        _, udp_port = core.gb_listen(LOOPBACK, 0)
        core.create_gb_ingest("cam-udp", 200002, transport="udp")
        cam = Camera(camera_frames("h264", BLUE, 250, 200002), udp_to=(LOOPBACK, udp_port), reorder=True).start()
        webrtc = WebRtcPlayer()
        try:
            await wait_live(events, "cam-udp")
            await webrtc.play(core, "cam-udp")
            await wait_until(lambda: len(webrtc.colours) >= 60, 15, "60 WebRTC frames")
            assert all(colour_matches(c, BLUE) for c in webrtc.colours[-30:]), webrtc.colours[-5:]
            # Every frame's first two packets were swapped: the reorder buffer put them back.
            await asyncio.sleep(0.3)
            assert core.stats()["gb_seq_gaps"] == 0
            assert core.stats()["gb_packets_in"] > 0
        finally:
            cam.stop()
            await webrtc.close()

    run(main())


def test_tcp_active_h265_plays_over_rtsp(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        listener = socket.create_server((LOOPBACK, 0))
        listener.settimeout(WAIT)
        port = listener.getsockname()[1]
        tid = core.create_gb_ingest("cam-active", 300003, transport="tcp-active", connect=(LOOPBACK, port))
        conn, _ = await asyncio.to_thread(listener.accept)
        cam = Camera(camera_frames("hevc", GREEN, 200, 300003, audio=False), tcp=conn).start()
        rtsp = None
        try:
            assert await wait_live(events, "cam-active") == ["video/H265"]
            rtsp = RtspUdpPlayer(core, "cam-active", "H265")
            rtsp.start()
            await rtsp.wait_frames(20)
            assert colour_matches(rtsp.colours[-1], GREEN), rtsp.colours[-5:]
        finally:
            cam.stop()
            if rtsp:
                rtsp.close()
        core.close_transport(tid)
        await events.wait(lambda e: e == core_module.TransportClosed(tid, "closed"))
        assert closed_by_peer(conn)
        conn.close()
        listener.close()

    run(main())


def test_tcp_active_connect_failed(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        s = socket.socket()
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there
        tid = core.create_gb_ingest("cam-refused", 1, transport="tcp-active", connect=(LOOPBACK, port))
        await events.wait(lambda e: e == core_module.TransportClosed(tid, "connect-failed"))
        # The name is free again.
        core.create_gb_ingest("cam-refused", 1, transport="tcp-active", connect=(LOOPBACK, port))

    run(main())


def test_camera_ignoring_y_is_matched_by_source(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        core.create_gb_ingest("cam-nossrc", 400004, peer_ip=LOOPBACK)
        sock = connect_tcp(tcp_port)
        # The camera uses its own SSRC, not the y= one.
        cam = Camera(camera_frames("h264", RED, 60, 0x0BADCAFE), tcp=sock).start()
        try:
            assert await wait_live(events, "cam-nossrc") == ["video/H264", "audio/PCMA"]
            assert core.stats()["gb_unknown_ssrc"] == 0
        finally:
            cam.stop()
            sock.close()

    run(main())


def test_unknown_ssrc_counted_and_garbage_connection_closed_alone(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        tid = core.create_gb_ingest("cam-good", 500005)
        good = connect_tcp(tcp_port)
        cam = Camera(camera_frames("h264", RED, 250, 500005), tcp=good).start()
        try:
            await wait_live(events, "cam-good")
            # A sender nobody expects: its packets are dropped and counted.
            stranger = connect_tcp(tcp_port)
            stranger.sendall(framed(camera_frames("h264", RED, 5, 777)[0]))
            await wait_until(lambda: core.stats()["gb_unknown_ssrc"] > 0, WAIT, "gb_unknown_ssrc")
            # Garbage (not RFC 4571 RTP) and a hostile length: each connection is closed, alone.
            garbage = connect_tcp(tcp_port)
            garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            short = connect_tcp(tcp_port)
            short.sendall(b"\x00\x05\x80\x60\x00\x01\x00")
            assert closed_by_peer(garbage)
            assert closed_by_peer(short)
            before = core.stats()["gb_packets_in"]
            await asyncio.sleep(0.5)
            assert core.stats()["gb_packets_in"] > before, "the good camera stopped"
            assert core.stream_codecs("cam-good") == ["video/H264", "audio/PCMA"]
            assert events.closed(tid) == []
            assert not cam.error
            stranger.close()
            garbage.close()
            short.close()
        finally:
            cam.stop()
            good.close()

    run(main())


def test_camera_whose_framing_breaks_ends_with_protocol_error(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        tid = core.create_gb_ingest("cam-broken", 900009)
        sock = connect_tcp(tcp_port)
        groups = camera_frames("h264", RED, 30, 900009)
        sock.sendall(framed([p for g in groups[:10] for p in g]))
        try:
            await wait_live(events, "cam-broken")
            # A 2-byte length below an RTP header: the stream cannot be framed any more.
            sock.sendall(b"\x00\x03abc")
            await events.wait(lambda e: e == core_module.TransportClosed(tid, "protocol-error"))
            assert closed_by_peer(sock)
            assert core.stream_codecs("cam-broken") is None
        finally:
            sock.close()

    run(main())


@pytest.mark.slow
def test_media_timeout_after_ten_seconds_of_silence(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        t0 = time.monotonic()
        silent = core.create_gb_ingest("cam-silent", 600006)  # never sends anything
        tid = core.create_gb_ingest("cam-stops", 600007)
        sock = connect_tcp(tcp_port)
        cam = Camera(camera_frames("h264", RED, 25, 600007), tcp=sock).start()
        await wait_live(events, "cam-stops")
        await wait_until(cam.done, WAIT, "camera done")
        stopped = time.monotonic()
        try:
            await events.wait(lambda e: e == core_module.TransportClosed(silent, "media-timeout"), 14)
            assert 9.5 <= time.monotonic() - t0 <= 13
            await events.wait(lambda e: e == core_module.TransportClosed(tid, "media-timeout"), 14)
            assert 9.5 <= time.monotonic() - stopped <= 13
            assert core.stream_codecs("cam-stops") is None
            assert core.stats()["gb_ingests"] == 0
            assert closed_by_peer(sock)
        finally:
            cam.stop()
            sock.close()

    run(main())


def test_close_transport_ends_the_stream_and_its_players(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        tid = core.create_gb_ingest("cam-close", 700007)
        sock = connect_tcp(tcp_port)
        cam = Camera(camera_frames("h264", RED, 250, 700007), tcp=sock).start()
        rtsp = None
        try:
            await wait_live(events, "cam-close")
            rtsp = RtspUdpPlayer(core, "cam-close", "H264")
            player = rtsp.start()
            await rtsp.wait_frames(5)
            core.close_transport(tid)
            await events.wait(lambda e: e == core_module.TransportClosed(tid, "closed"))
            await events.wait(lambda e: e == core_module.TransportClosed(player, "producer-closed"))
            assert core.stream_codecs("cam-close") is None
            assert closed_by_peer(sock)
        finally:
            cam.stop()
            sock.close()
            if rtsp:
                rtsp.close()

    run(main())


def test_keyframe_wanted_when_the_cache_has_none(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        core.create_gb_ingest("cam-nokey", 800008)
        # A stream that starts after its IDR (as when the camera's GOP is long): P frames only,
        # with a PSM so the codec is known.
        aus = encode_solid("h264", RED, 50)[1:25]
        aus[0] = psmux.AccessUnit(aus[0].pts, aus[0].data, True)
        m = psmux.mux(aus, "h264", audio=True)
        sock = connect_tcp(tcp_port)
        sock.sendall(framed(psmux.rtp_packets(m.ps, 800008)))
        webrtc = WebRtcPlayer()
        try:
            await wait_live(events, "cam-nokey")
            await webrtc.play(core, "cam-nokey")
            await events.wait(lambda e: e == core_module.KeyframeWanted("cam-nokey"))
        finally:
            sock.close()
            await webrtc.close()

    run(main())


def test_refused_commands(core: Any) -> None:
    with pytest.raises(core_module.CoreError) as e:
        core.create_gb_ingest("x", 1)
    assert e.value.code == 400  # media port not bound
    core.gb_listen(LOOPBACK, 0)
    with pytest.raises(OSError):
        core.gb_listen(LOOPBACK, 0)
    core.create_gb_ingest("x", 1)
    with pytest.raises(core_module.CoreError) as e:
        core.create_gb_ingest("x", 2, transport="udp")
    assert e.value.code == 409
    for kwargs in ({"transport": "sctp"}, {"transport": "tcp-active"}, {"connect": (LOOPBACK, 9)},
                   {"peer_ip": "not-an-ip"}):
        with pytest.raises(core_module.CoreError) as e:
            core.create_gb_ingest("y", 1, **kwargs)
        assert e.value.code == 400, kwargs


def test_server_binds_the_media_port_when_sip_is_enabled(server: Any) -> None:
    srv = server({"sip": {"enable": True}})
    tcp_port, udp_port = srv.ready["sip_media"]
    assert tcp_port > 0 and udp_port > 0
    with socket.create_connection((LOOPBACK, tcp_port), timeout=5) as s:
        s.sendall(b"\x00\x0c" + bytes([0x80, 96]) + bytes(10))  # an RTP header nobody expects
