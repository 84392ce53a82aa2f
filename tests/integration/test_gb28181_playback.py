"""GB28181 playback and download against the real server: the SD-card camera simulator
(tests/gb28181/sdcard.py) plays a recorded span whose pictures carry their recording second, and
real players read it back: FFmpeg (PyAV) over RTSP and aiortc over WebRTC. Pause, resume, speed and
seek go to the camera as MANSRTSP INFO; the end-of-file MESSAGE ends the stream; a download is
recorded into a file that decodes."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

import av

from .conftest import Server, ServerFactory
from .playback_support import StampRtsp, near, play_stamps, wait_stamps
from .test_gb28181_media import wait_stream_gone
from .test_gb28181_sip import DEVICE, PASSWORD, acall, sip_port, wait_api

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gb28181"))
from sdcard import SdCamera, read_stamp  # noqa: E402

CHANNEL = "34020000001310000001"
T0 = 1_700_000_000
SPANS = [(T0, T0 + 120)]


def pb_server(server: ServerFactory, tmp: Path | None = None) -> Server:
    cfg: dict[str, Any] = {"sip": {"enable": True, "password": PASSWORD, "mediaTransport": "tcp-passive"}}
    if tmp is not None:
        cfg["record"] = {"recordPath": str(tmp)}
    srv = server(cfg)
    assert isinstance(srv.ready.get("sip_media"), list), srv.ready
    return srv


async def sd_camera(srv: Server, **kw: Any) -> SdCamera:
    cam = await SdCamera("127.0.0.1", sip_port(srv), password=PASSWORD, channels=[CHANNEL], records=SPANS,
                         **kw).start()
    assert (await cam.register()).status == 200
    await wait_api(srv, "/srs-sip/v1/channels", lambda d: len(d) == 1, 5, "the channel")
    return cam


async def control(srv: Server, action: str, url: str, **extra: Any) -> dict[str, Any]:
    status, doc = await acall(srv, "POST", f"/srs-sip/v1/{action}",
                              {"device_id": DEVICE, "channel_id": CHANNEL, "url": url, **extra})
    assert status == 200 and doc["code"] == 0, (action, doc)
    return doc["data"]


def test_playback_plays_pauses_resumes_speeds_seeks_and_ends(server: ServerFactory) -> None:
    srv = pb_server(server)

    async def main() -> None:
        cam = await sd_camera(srv)
        rtsp = web = None
        start, end = T0 + 10, T0 + 50
        try:
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {
                "device_id": DEVICE, "channel_id": CHANNEL, "media_server_id": 1, "play_type": 1,
                "sub_stream": 0, "start_time": start, "end_time": end})
            assert status == 200 and doc["code"] == 0, doc
            stream = f"{CHANNEL}_{start}_{end}"
            assert doc["data"]["channel_id"] == CHANNEL and doc["data"]["url"] == f"{srv.rtsp_url}/{stream}"
            invite = next(r for r in cam.requests if r.method == "INVITE")
            sdp = invite.body.decode()
            assert re.search(r"(?m)^s=Playback\r$", sdp) and re.search(rf"(?m)^u={CHANNEL}:0\r$", sdp), sdp
            assert re.search(rf"(?m)^t={start} {end}\r$", sdp), sdp
            y = re.search(r"(?m)^y=(\d{10})\r$", sdp)
            assert y and y.group(1).startswith("1") and invite.h("Subject").startswith(f"{CHANNEL}:{y.group(1)},")
            rtsp = StampRtsp(doc["data"]["url"]).start()
            web = await play_stamps(srv.ws_url, stream)
            await wait_stamps(rtsp.stamps, lambda s: len(s) >= 10, 20, "RTSP frames")
            await wait_stamps(web.stamps, lambda s: len(s) >= 10, 20, "WebRTC frames")
            assert near(rtsp.stamps[0].second, start), (rtsp.stamps[0], start)  # the span's start, within 1 s
            assert all(near(s.second, start, 6) for s in web.stamps[:5]), web.stamps[:5]

            # pause: no frames for 3 s; resume: the timeline goes on without a jump
            await control(srv, "pause", doc["data"]["url"])
            assert cam.infos[-1].startswith("PAUSE RTSP/1.0\r\nCSeq: 1\r\n") and "PauseTime: now" in cam.infos[-1]
            await asyncio.sleep(0.5)
            paused_at, frames = time.monotonic(), (len(rtsp.stamps), len(web.stamps))
            await asyncio.sleep(3.0)
            assert (len(rtsp.stamps), len(web.stamps)) == frames, "frames arrived while paused"
            before = rtsp.stamps[-1]
            await control(srv, "resume", doc["data"]["url"])
            assert "Range: npt=now-" in cam.infos[-1] and "CSeq: 2" in cam.infos[-1]
            await wait_stamps(rtsp.stamps, lambda s: len(s) >= frames[0] + 10, 10, "RTSP frames after resume")
            after = rtsp.stamps[frames[0]]
            assert after.t - paused_at >= 3.0
            assert 0 < after.pts - before.pts <= 0.5, (before, after)  # no jump in the player's time
            assert near(after.second, before.second, 1)
            await wait_stamps(web.stamps, lambda s: len(s) >= frames[1] + 10, 10, "WebRTC frames after resume")

            # speed 4: the camera hears Scale: 4.0 and the recording advances 4 s per second
            reply = await control(srv, "speed", doc["data"]["url"], speed=4.0)
            assert reply["speed"] == 4.0
            assert "Scale: 4.0" in cam.infos[-1] and "CSeq: 3" in cam.infos[-1], cam.infos[-1]
            await asyncio.sleep(1.0)
            first, web_first = rtsp.stamps[-1], web.stamps[-1]
            await asyncio.sleep(3.0)
            last, web_last = rtsp.stamps[-1], web.stamps[-1]
            rate = ((last.second - first.second) % 65536) / (last.t - first.t)
            assert 3.0 <= rate <= 5.0, (first, last, rate)
            clock = (last.pts - first.pts) / (last.t - first.t)  # the players' clock stays 1x
            assert 0.8 <= clock <= 1.25, (first, last, clock)
            web_clock = (web_last.pts - web_first.pts) / (web_last.t - web_first.t)
            assert 0.8 <= web_clock <= 1.25, (web_first, web_last, web_clock)
            gaps = [b.pts - a.pts for a, b in zip(rtsp.stamps[-20:], rtsp.stamps[-19:])]
            assert all(0 < g <= 0.2 for g in gaps), gaps  # smooth: 40 frames/s at 1/4 of 0.1 s each

            # seek: frames from the requested time
            target = T0 + 20
            await control(srv, "seek", doc["data"]["url"], time=target)
            assert "Range: npt=10-" in cam.infos[-1], cam.infos[-1]
            count = len(rtsp.stamps)
            await wait_stamps(rtsp.stamps, lambda s: any(near(x.second, target) for x in s[count:]), 10,
                              "a frame at the seek target")
            at = next(i for i in range(count, len(rtsp.stamps)) if near(rtsp.stamps[i].second, target))
            jump = rtsp.stamps[at].pts - rtsp.stamps[at - 1].pts
            assert 0 < jump <= 0.5, (rtsp.stamps[at - 1], rtsp.stamps[at])  # the players' clock goes on

            # the camera's end of file (MediaStatus 121) ends the stream: players get stream.closed
            await wait_stream_gone(srv, 30, stream)
            await wait_stamps(web.stamps, lambda s: any(m.get("method") == "stream.closed"
                                                        for m in web.player.signaling.received), 10, "stream.closed")
            assert len(cam.byes_received) == 1
            assert any(near(x.second, end - 1) for x in rtsp.stamps[-15:]), rtsp.stamps[-3:]
            status, doc = await acall(srv, "GET", "/srs-sip/v1/playbacks")
            done = doc["data"][-1]
            assert done["stream"] == stream and done["state"] == "done" and done["progress"] == 1.0, done
            status, doc = await acall(srv, "POST", "/srs-sip/v1/pause",
                                      {"device_id": DEVICE, "channel_id": CHANNEL, "url": f"rtsp://x/{stream}"})
            assert status == 404 and doc["code"] == 404
        finally:
            if rtsp is not None:
                await rtsp.stop()
            if web is not None:
                await web.close()
            await cam.close()

    asyncio.run(main())


def test_download_at_speed_4_records_a_file_with_the_whole_span(server: ServerFactory, tmp_path: Path) -> None:
    srv = pb_server(server, tmp_path)

    async def main() -> None:
        cam = await sd_camera(srv)
        start, end = T0 + 30, T0 + 46
        try:
            began = time.monotonic()
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {
                "device_id": DEVICE, "channel_id": CHANNEL, "play_type": 2, "start_time": str(start),
                "end_time": str(end), "download_speed": 4})
            assert status == 200 and doc["code"] == 0, doc
            invite = next(r for r in cam.requests if r.method == "INVITE")
            sdp = invite.body.decode()
            assert re.search(r"(?m)^s=Download\r$", sdp) and re.search(r"(?m)^a=downloadspeed:4\r$", sdp), sdp
            name = doc["data"]["file"]
            stream = doc["data"]["stream"]
            await wait_stream_gone(srv, 20, stream)
            took = time.monotonic() - began
            assert took < 12, took  # 16 s of recording at 4x
            downloads = await wait_api(srv, "/srs-sip/v1/downloads",
                                       lambda d: d and d[-1]["state"] == "done", 5, "the download done")
            assert downloads[-1]["file"] == name and downloads[-1]["progress"] == 1.0
            path = tmp_path / name
            for _ in range(50):
                if path.exists() and path.stat().st_size > 0:
                    break
                await asyncio.sleep(0.1)
            seconds: set[int] = set()
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    seconds.add(read_stamp(frame.to_ndarray(format="rgb24")))
            wanted = {s % 65536 for s in range(start, end)}
            assert len(wanted - seconds) <= 1, sorted(wanted - seconds)  # every second of the span
        finally:
            await cam.close()

    asyncio.run(main())


def test_a_playback_records_like_a_live_stream(server: ServerFactory, tmp_path: Path) -> None:
    """record.start on a playback's stream: the file decodes with the span's seconds in order, its
    timestamps increasing (speed 2 half-way: the re-timed clock, not the recording's)."""
    from .record_support import record, record_url

    srv = pb_server(server, tmp_path)

    async def main() -> None:
        cam = await sd_camera(srv)
        start, end = T0 + 60, T0 + 72
        try:
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite", {
                "device_id": DEVICE, "channel_id": CHANNEL, "play_type": 1, "start_time": start, "end_time": end,
                "stream": "pb-rec"})
            assert status == 200, doc
            status, reply = await record(record_url(srv.ready), "pb-rec", "record.start", fileName="pb-rec.mkv")
            assert status == 200 and reply["err"] == 0, reply
            await asyncio.sleep(3)
            await control(srv, "speed", doc["data"]["url"], speed=2.0)
            await wait_stream_gone(srv, 30, "pb-rec")
            path = tmp_path / "pb-rec.mkv"
            for _ in range(50):
                if path.exists() and path.stat().st_size > 0:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)
            seconds: list[int] = []
            times: list[float] = []
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    seconds.append(read_stamp(frame.to_ndarray(format="rgb24")))
                    times.append(float(frame.pts * frame.time_base))
            assert seconds and seconds == sorted(seconds) and seconds[-1] == (end - 1) % 65536, seconds[-5:]
            assert set(range(seconds[0], seconds[-1] + 1)) <= set(seconds)  # every second from the start on
            assert all(b > a for a, b in zip(times, times[1:]))
            duration = times[-1] - times[0]
            recorded = seconds[-1] - seconds[0]
            assert duration < recorded - 2, (duration, recorded)  # the second half went at 2x on a 1x clock
        finally:
            await cam.close()

    asyncio.run(main())
