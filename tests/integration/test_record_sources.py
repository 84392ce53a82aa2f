"""Recording streams that do not come from WebRTC, through the real server: a GB28181 camera (the
project's simulator: H.265 + G.711A, H.264 + AAC) recorded on demand by its channel id (the
``record.start`` INVITEs it), an FFmpeg RTSP publisher recorded to ``.mp4``, and that ``.mp4``
served by ``/records/NAME`` and played by headless Chromium's ``<video>``.

Files are judged by outside tools: ffprobe (codecs, duration, no error), PyAV (frames of the colour
that was sent), the ffmpeg CLI (every frame decodes), Chromium (playback passes 3 s).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import av
import pytest

from . import peers
from .browser import chromium_video
from .conftest import ServerFactory
from .record_support import decode_file, ffmpeg_decode_errors, ffprobe, record, record_url
from .rtsp_peers import ffmpeg_publish, stop_process
from .test_gb28181_media import CHANNEL, gb_media_server, registered_camera, stream_doc
from .test_rtsp import wait_stream

pytestmark = pytest.mark.integration

ORANGE = (230, 120, 0)


def centre_colours(path: Path, limit: int = 30) -> list[tuple[float, ...]]:
    out: list[tuple[float, ...]] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            img = frame.to_ndarray(format="rgb24")
            h, w = img.shape[:2]
            out.append(tuple(float(x) for x in img[h // 4: 3 * h // 4, w // 4: 3 * w // 4].reshape(-1, 3).mean(axis=0)))
            if len(out) >= limit:
                break
    return out


@pytest.mark.parametrize("codec, audio, file_name, expected", [
    ("hevc", "g711a", "cam.mkv", {"hevc", "pcm_alaw"}),
    ("h264", "aac", "cam.mkv", {"h264", "aac"}),
])
def test_gb28181_camera_recorded_on_demand(server: ServerFactory, codec: str, audio: str, file_name: str,
                                           expected: set[str]) -> None:
    srv = gb_media_server(server)
    url = record_url(srv.ready)
    path = Path(srv.config["record"]["recordPath"]) / file_name

    async def main() -> None:
        cam = await registered_camera(srv, colour=ORANGE, codec=codec, audio=audio)
        try:
            assert await stream_doc(srv) is None  # not live until something asks for it
            status, reply = await record(url, CHANNEL, "record.start", fileName=file_name)
            assert status == 200 and reply["err"] == 0, reply  # the INVITE happened inside record.start
            assert len(cam.sessions) == 1
            live = await stream_doc(srv)
            assert live is not None and live["recording"] is True, live
            await asyncio.sleep(6)
            status, reply = await record(url, CHANNEL, "record.stop")
            assert status == 200 and reply["data"]["files"][0]["state"] == "done", reply
        finally:
            await cam.close()

    peers.run(main(), timeout=60)
    info = ffprobe(path)
    assert {s["codec_name"] for s in info["streams"]} == expected, info["streams"]
    assert 4.5 <= float(info["format"]["duration"]) <= 7.5, info["format"]
    decoded = decode_file(path)
    assert not decoded.error and decoded.first_is_key, decoded.error
    assert decoded.video_frames >= 100, decoded.video_frames  # 25 fps for about 6 s
    assert decoded.audio_frames > 0
    assert all(peers.colour_matches(c, ORANGE) for c in centre_colours(path)), centre_colours(path)[:3]
    assert ffmpeg_decode_errors(path) == ""


def test_ffmpeg_rtsp_publisher_to_mp4_played_by_chromium(server: ServerFactory, tmp_path: Path) -> None:
    srv = server()
    url = record_url(srv.ready)
    path = Path(srv.config["record"]["recordPath"]) / "pub.mp4"

    async def main() -> None:
        proc = ffmpeg_publish(f"{srv.rtsp_url}/pub", "tcp", colour="red", log_path=str(tmp_path / "ffmpeg.log"))
        try:
            await wait_stream(srv, "pub", 20)
            status, reply = await record(url, "pub", "record.start", fileName="pub.mp4")
            assert status == 200, reply
            await asyncio.sleep(6)
            status, reply = await record(url, "pub", "record.stop")
            assert status == 200 and reply["data"]["files"][0]["name"] == "pub.mp4", reply
        finally:
            stop_process(proc)

        info = ffprobe(path)
        assert [s["codec_name"] for s in info["streams"]] == ["h264"], info["streams"]
        assert info["format"]["format_name"].startswith("mov,mp4"), info["format"]
        assert 4.5 <= float(info["format"]["duration"]) <= 7.5, info["format"]
        decoded = decode_file(path)
        assert not decoded.error and decoded.first_is_key and decoded.video_frames >= 150, decoded
        assert all(peers.colour_matches(c, (255, 0, 0)) for c in centre_colours(path))
        assert ffmpeg_decode_errors(path) == ""

        # A browser plays it from /records/pub.mp4 (Range requests) past 3 s.
        async with chromium_video(tmp_path / "page", f"{srv.http_url}/records/pub.mp4") as page:
            state: dict[str, Any] = {}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                state = await page.evaluate("videoState()")
                if state["error"] or state["time"] > 3.2:
                    break
                await asyncio.sleep(0.2)
            assert state.get("error") is None and state["time"] > 3.0, state
            assert (state["width"], state["height"]) == (320, 240), state

    peers.run(main(), timeout=90)
