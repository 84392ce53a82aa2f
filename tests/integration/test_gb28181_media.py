"""GB28181 end to end: the camera simulator registers, is INVITEd (``/invite`` or on demand), sends
PS over RTP (H.264 / H.265 from PyAV, one solid colour, in real time), and real players decode it:
aiortc over WebRTC, FFmpeg (PyAV) over RTSP. Then the stream ends by the device's BYE, ``/bye``,
the camera going quiet (BYE after 10 s without media) or the last consumer leaving (BYE 10 s
later)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from . import peers
from .conftest import Server, ServerFactory
from .rtsp_peers import AvPlayer
from .test_gb28181_sip import DEVICE, PASSWORD, Camera, acall, check_invite, sip_port, wait_api

CHANNEL = "34020000001310000001"
GREEN = (0, 200, 0)
MAGENTA = (200, 0, 200)


def gb_media_server(server: ServerFactory, transport: str = "tcp-passive") -> Server:
    srv = server({"sip": {"enable": True, "password": PASSWORD, "mediaTransport": transport}})
    assert isinstance(srv.ready.get("sip_media"), list), srv.ready
    return srv


async def registered_camera(srv: Server, **kw: Any) -> Camera:
    cam = await Camera("127.0.0.1", sip_port(srv), password=PASSWORD, channels=[CHANNEL], **kw).start()
    assert (await cam.register()).status == 200
    await wait_api(srv, "/srs-sip/v1/channels", lambda d: len(d) == 1, 5, "the channel")
    return cam


async def stream_doc(srv: Server, name: str = CHANNEL) -> dict[str, Any] | None:
    streams = (await srv.api_async("/api/v1/streams"))["streams"]
    return next((s for s in streams if s["name"] == name), None)


async def wait_stream_gone(srv: Server, timeout: float, name: str = CHANNEL) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.2) + 2):
        if await stream_doc(srv, name) is None:
            return
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    raise AssertionError(f"stream {name} still listed after {timeout} s")


def test_invite_h264_tcp_passive_to_webrtc_and_rtsp_then_device_bye(server: ServerFactory) -> None:
    srv = gb_media_server(server)

    async def main() -> None:
        cam = await registered_camera(srv, colour=GREEN)
        player = rtsp = None
        try:
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {"device_id": DEVICE, "channel_id": CHANNEL,
                                                                         "media_server_id": "", "play_type": 0})
            assert status == 200 and doc["code"] == 0, doc
            assert doc["data"]["url"] == f"{srv.rtsp_url}/{CHANNEL}" and doc["data"]["stream"] == CHANNEL
            invite = next(r for r in cam.requests if r.method == "INVITE")
            check_invite(invite, CHANNEL, "tcp-passive")
            assert str(srv.ready["sip_media"][0]) in invite.body.decode()  # m= is the media TCP port
            await cam.wait_for(lambda: any(s.packets_sent for s in cam.sessions.values()), 10, "media sent")
            player = await peers.play(srv.ws_url, CHANNEL, audio=False)
            await player.wait_video_frames(60, timeout=20)
            assert peers.colour_matches(player.video[-1].rgb, GREEN), player.video[-1]
            rtsp = AvPlayer(doc["data"]["url"]).start()
            await rtsp.wait_video_frames(60, timeout=20)
            assert rtsp.codecs[:1] == ["h264"] and peers.colour_matches(rtsp.video[-1].rgb, GREEN)
            live = await stream_doc(srv)
            assert live is not None and live["source"] == "gb28181" and "video/H264" in live["codecs"]
            channels = (await acall(srv, "GET", "/srs-sip/v1/channels"))[1]["data"]
            assert channels[0]["playing"] is True
            answer = await cam.bye()  # the camera hangs up
            assert answer.status == 200
            await wait_stream_gone(srv, 5)
            await rtsp.wait_ended(10)
            channels = (await acall(srv, "GET", "/srs-sip/v1/channels"))[1]["data"]
            assert channels[0]["playing"] is False
        finally:
            if player is not None:
                await player.close()
            if rtsp is not None:
                await rtsp.astop()
            await cam.close()

    asyncio.run(main())


def test_on_demand_rtsp_h265_over_udp_and_bye_after_last_player(server: ServerFactory) -> None:
    srv = gb_media_server(server, "udp")

    async def main() -> None:
        cam = await registered_camera(srv, colour=MAGENTA, codec="hevc")
        rtsp = None
        try:
            rtsp = AvPlayer(f"{srv.rtsp_url}/{CHANNEL}").start()  # not live: DESCRIBE INVITEs it
            await rtsp.wait_video_frames(60, timeout=25)
            assert rtsp.codecs[:1] == ["hevc"] and peers.colour_matches(rtsp.video[-1].rgb, MAGENTA), rtsp.video[-1]
            invite = next(r for r in cam.requests if r.method == "INVITE")
            check_invite(invite, CHANNEL, "udp")
            assert len([r for r in cam.requests if r.method == "INVITE"]) == 1
            await rtsp.astop()
            rtsp = None
            left = time.monotonic()
            await cam.wait_for(lambda: len(cam.byes_received) == 1, 16, "BYE after the last player left")
            waited = time.monotonic() - left
            assert 8.0 <= waited <= 15.0, waited
            await wait_stream_gone(srv, 5)
        finally:
            if rtsp is not None:
                await rtsp.astop()
            await cam.close()

    asyncio.run(main())


def test_on_demand_webrtc_tcp_active_then_api_bye(server: ServerFactory) -> None:
    """The camera's SIP runs over TCP here: INVITE, ACK and BYE reach it on its own connection."""
    srv = gb_media_server(server, "tcp-active")

    async def main() -> None:
        cam = await registered_camera(srv, colour=GREEN, transport="tcp")
        player = None
        try:
            player = await peers.play(srv.ws_url, CHANNEL, audio=False, timeout=20)  # INVITEs on demand
            await player.wait_video_frames(60, timeout=20)
            assert peers.colour_matches(player.video[-1].rgb, GREEN), player.video[-1]
            check_invite(next(r for r in cam.requests if r.method == "INVITE"), CHANNEL, "tcp-active")
            status, doc = await acall(srv, "POST", "/srs-sip/v1/bye", {"device_id": DEVICE, "channel_id": CHANNEL})
            assert status == 200 and doc["code"] == 0, doc
            await cam.wait_for(lambda: len(cam.byes_received) == 1, 5, "BYE from /bye")
            await wait_stream_gone(srv, 5)
        finally:
            if player is not None:
                await player.close()
            await cam.close()

    asyncio.run(main())


def test_camera_that_stops_sending_gets_bye_after_10_s(server: ServerFactory) -> None:
    srv = gb_media_server(server, "udp")

    async def main() -> None:
        cam = await registered_camera(srv)
        try:
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {"device_id": DEVICE, "channel_id": CHANNEL})
            assert status == 200, doc
            for _ in range(50):
                live = await stream_doc(srv)
                if live is not None and live["live"]:
                    break
                await asyncio.sleep(0.2)
            assert live is not None and live["live"], live
            await cam.media_stop()
            quiet = time.monotonic()
            await cam.wait_for(lambda: len(cam.byes_received) == 1, 16, "BYE after 10 s without media")
            assert 8.0 <= time.monotonic() - quiet <= 15.0
            await wait_stream_gone(srv, 5)
        finally:
            await cam.close()

    asyncio.run(main())


def test_sigterm_sends_bye_to_the_camera(server: ServerFactory) -> None:
    """SPEC 1: a graceful stop BYEs GB28181 devices, within the 5 s budget."""
    srv = gb_media_server(server, "udp")

    async def main() -> None:
        cam = await registered_camera(srv)
        try:
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {"device_id": DEVICE, "channel_id": CHANNEL})
            assert status == 200, doc
            await cam.wait_for(lambda: any(s.packets_sent for s in cam.sessions.values()), 10, "media sent")
            rc = await asyncio.to_thread(srv.stop)
            assert rc == 0 and srv.stop_seconds is not None and srv.stop_seconds < 5.0
            await cam.wait_for(lambda: len(cam.byes_received) == 1, 2, "BYE at the server's stop")
        finally:
            await cam.close()

    asyncio.run(main())


def test_camera_closing_tcp_media_gets_bye_and_its_crossing_bye_gets_200(server: ServerFactory) -> None:
    """eof on the camera's TCP media connection ends the stream with a BYE at once; the camera's
    own BYE, sent after ours (both hung up), is answered 200, not 481."""
    srv = gb_media_server(server)

    async def main() -> None:
        cam = await registered_camera(srv)
        try:
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {"device_id": DEVICE, "channel_id": CHANNEL})
            assert status == 200, doc
            await cam.wait_for(lambda: any(s.packets_sent > 50 for s in cam.sessions.values()), 10, "media sent")
            session = next(iter(cam.sessions.values()))
            await cam.media_stop()  # closes the TCP media connection: eof
            await cam.wait_for(lambda: cam.byes_received == [session.call_id], 5, "BYE after eof")
            await wait_stream_gone(srv, 5)
            cam.sessions[session.call_id] = session  # the camera hangs up too, late
            answer = await cam.bye(session.call_id)
            assert answer.status == 200, answer.start
        finally:
            await cam.close()

    asyncio.run(main())
