"""GB28181 playback when the device misbehaves or the request is wrong: each ends in a clear API
error or a stream that ends cleanly (the device gets its BYE), never a hung request."""

from __future__ import annotations

import asyncio
import time

from .conftest import ServerFactory
from .playback_support import StampRtsp, near, wait_stamps
from .test_gb28181_media import stream_doc, wait_stream_gone
from .test_gb28181_playback import CHANNEL, T0, control, pb_server, sd_camera
from .test_gb28181_sip import DEVICE, acall


def test_refused_controls_are_api_errors_and_the_playback_goes_on(server: ServerFactory) -> None:
    srv = pb_server(server)

    async def main() -> None:
        cam = await sd_camera(srv, info_status=400)
        rtsp = None
        try:
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {
                "device_id": DEVICE, "channel_id": CHANNEL, "play_type": 1, "start_time": T0, "end_time": T0 + 60,
                "stream": "looking-back"})
            assert status == 200 and doc["data"]["url"].endswith("/looking-back"), doc
            url = doc["data"]["url"]
            rtsp = StampRtsp(url).start()
            await wait_stamps(rtsp.stamps, lambda s: len(s) >= 5, 20, "RTSP frames")
            for action, extra in (("pause", {}), ("speed", {"speed": 2}), ("resume", {})):
                began = time.monotonic()
                status, doc = await acall(srv, "POST", f"/srs-sip/v1/{action}",
                                          {"device_id": DEVICE, "channel_id": CHANNEL, "url": url, **extra})
                assert status == 502 and "400" in doc["data"]["msg"], (action, doc)
                assert time.monotonic() - began < 6
            for bad in ({"speed": 0.1}, {"speed": 16}, {"speed": "fast"}, {}):
                status, doc = await acall(srv, "POST", "/srs-sip/v1/speed",
                                          {"device_id": DEVICE, "channel_id": CHANNEL, "url": url, **bad})
                assert status == 400 and doc["data"]["msg"], (bad, doc)
            status, doc = await acall(srv, "POST", "/srs-sip/v1/seek",
                                      {"device_id": DEVICE, "channel_id": CHANNEL, "url": url, "time": T0 + 500})
            assert status == 400, doc  # outside the span: never sent
            count = len(rtsp.stamps)
            await wait_stamps(rtsp.stamps, lambda s: len(s) >= count + 10, 10, "frames still coming")
            status, doc = await acall(srv, "POST", "/srs-sip/v1/bye", {"device_id": DEVICE, "channel_id": CHANNEL,
                                                                      "url": url})
            assert status == 200, doc
            await wait_stream_gone(srv, 5, "looking-back")
            await cam.wait_for(lambda: len(cam.byes_received) == 1 and not cam.sessions, 5, "the BYE")
        finally:
            if rtsp is not None:
                await rtsp.stop()
            await cam.close()

    asyncio.run(main())


def test_impossible_requests_and_a_refused_invite(server: ServerFactory) -> None:
    srv = pb_server(server)

    async def main() -> None:
        cam = await sd_camera(srv)
        try:
            base = {"device_id": DEVICE, "channel_id": CHANNEL, "play_type": 1}
            for bad in ({"start_time": T0 + 10, "end_time": T0}, {"start_time": T0}, {"start_time": "soon",
                        "end_time": T0}, {"start_time": T0, "end_time": T0 + 30 * 86400},
                        {"start_time": T0, "end_time": T0 + 5, "stream": "../x"},
                        {"start_time": T0, "end_time": T0 + 5, "play_type": 7}):
                status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {**base, **bad})
                assert status == 400 and doc["code"] == 400 and doc["data"]["msg"], (bad, doc)
            assert not [r for r in cam.requests if r.method == "INVITE"]
            status, doc = await acall(srv, "POST", "/srs-sip/v1/pause", {"device_id": DEVICE, "channel_id": CHANNEL})
            assert status == 404, doc  # nothing is playing back
            cam.answer_invites = False
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {**base, "start_time": T0,
                                                                         "end_time": T0 + 5})
            assert status == 502 and "486" in doc["data"]["msg"], doc
            assert await stream_doc(srv, f"{CHANNEL}_{T0}_{T0 + 5}") is None
            status, doc = await acall(srv, "GET", "/srs-sip/v1/playbacks")
            assert all(p["state"] != "playing" for p in doc["data"]), doc
        finally:
            await cam.close()

    asyncio.run(main())


def test_end_of_file_that_never_comes_and_a_device_that_ignores_scale(server: ServerFactory) -> None:
    srv = pb_server(server)

    async def main() -> None:
        cam = await sd_camera(srv, send_eof=False, ignore_scale=True)
        rtsp = None
        try:
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {
                "device_id": DEVICE, "channel_id": CHANNEL, "play_type": 1, "start_time": T0, "end_time": T0 + 12})
            assert status == 200, doc
            stream = doc["data"]["stream"]
            rtsp = StampRtsp(doc["data"]["url"]).start()
            await wait_stamps(rtsp.stamps, lambda s: len(s) >= 5, 20, "RTSP frames")
            reply = await control(srv, "speed", doc["data"]["url"], speed=8)
            assert reply["speed"] == 8.0 and "Scale: 8.0" in cam.infos[-1]
            began = time.monotonic()
            await asyncio.sleep(4.5)  # the core watches 3 s of frames, finds 1x and goes back to it
            first = rtsp.stamps[-1]
            await cam.wait_for(lambda: any(p.done for p in cam.playbacks.values()), 15, "the span sent at 1x")
            assert time.monotonic() - began >= 5.0  # Scale ignored: the span went at 1x
            last = rtsp.stamps[-1]
            clock = (last.pts - first.pts) / (last.t - first.t)
            assert 0.8 <= clock <= 1.25, (first, last, clock)  # players are not slowed down 8 times
            await wait_stream_gone(srv, 20, stream)  # no end of file: the media time-out ends it
            await cam.wait_for(lambda: len(cam.byes_received) == 1, 5, "the BYE")
            status, doc = await acall(srv, "GET", "/srs-sip/v1/playbacks")
            last = doc["data"][-1]
            assert last["stream"] == stream and last["state"] == "ended" and last["reason"], last
        finally:
            if rtsp is not None:
                await rtsp.stop()
            await cam.close()

    asyncio.run(main())


def test_playbacks_over_udp_and_tcp_active_and_two_at_once(server: ServerFactory) -> None:
    """Each media transport plays a span from its start to its end of file; two playbacks of one
    channel run side by side and a control without the url is refused as ambiguous."""
    srv = pb_server(server)

    async def main() -> None:
        cam = await sd_camera(srv)
        players: list[StampRtsp] = []
        try:
            urls = []
            for n, transport in enumerate(("udp", "tcp-active")):
                start = T0 + 20 * n
                status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {
                    "device_id": DEVICE, "channel_id": CHANNEL, "play_type": 1, "start_time": start,
                    "end_time": start + 6, "transport": transport})
                assert status == 200 and doc["data"]["transport"] == transport, doc
                urls.append(doc["data"]["url"])
                players.append(StampRtsp(doc["data"]["url"]).start())
            for n, player in enumerate(players):
                await wait_stamps(player.stamps, lambda s: len(s) >= 5, 20, f"frames of playback {n}")
                assert near(player.stamps[0].second, T0 + 20 * n), player.stamps[0]
            status, doc = await acall(srv, "POST", "/srs-sip/v1/pause", {"device_id": DEVICE, "channel_id": CHANNEL})
            assert status == 409 and "url" in doc["data"]["msg"], doc
            await control(srv, "pause", urls[0])
            assert len(cam.infos) == 1
            await control(srv, "resume", urls[0])
            for url in urls:
                await wait_stream_gone(srv, 30, url.rsplit("/", 1)[-1])
            await cam.wait_for(lambda: len(cam.byes_received) == 2 and not cam.sessions, 5, "two BYEs")
            for n, player in enumerate(players):
                assert any(near(s.second, T0 + 20 * n + 5) for s in player.stamps[-12:]), player.stamps[-3:]
        finally:
            for player in players:
                await player.stop()
            await cam.close()

    asyncio.run(main())
