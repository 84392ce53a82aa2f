"""Recording (SPEC section 5) through the real server: an aiortc publisher, the seed's commands on
``record.cmdPort`` (HTTP and WebSocket) and the HTTP API, and files judged by outside tools (PyAV
decodes them, ffprobe and the ffmpeg CLI check them).

Covered here: VP8 + Opus to ``.webm`` (frame count, audio span, seeking), H.264 + Opus to ``.mkv``
and ``.mp4``, SIGTERM (files finished, ``execRecordDone`` ran), kill -9 (the part written plays),
segments (numbered frames: no gap, no overlap), the error codes over both transports, the records
API with Range requests, and the streams API and metrics while recording.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from .peers import FPS, publish, run
from .record_support import (
    CounterVideoTrack,
    decode_file,
    ffmpeg_decode_errors,
    ffprobe,
    get,
    post_json,
    record,
    record_url,
    seek_middle,
)

pytestmark = pytest.mark.integration


def record_path(srv: Any) -> Path:
    return Path(srv.config["record"]["recordPath"])


async def _publish_and_record(srv: Any, stream: str, file_name: str, seconds: float, *, video: str = "video/VP8",
                              audio: str | None = "audio/opus", **data: Any) -> dict[str, Any]:
    url = record_url(srv.ready)
    pub = await publish(srv.ws_url, stream, video_codec=video, audio_codec=audio, video_track=CounterVideoTrack())
    try:
        status, reply = await record(url, stream, "record.start", fileName=file_name, **data)
        assert status == 200 and reply["err"] == 0, reply
        streams = {s["name"]: s for s in (await srv.api_async("/api/v1/streams"))["streams"]}
        assert streams[stream]["recording"] is True, streams
        await asyncio.sleep(seconds)
        status, reply = await record(url, stream, "record.stop")
        assert status == 200 and reply["err"] == 0, reply
        return reply
    finally:
        await pub.close()


def _check_av_file(path: Path, video: str, audio: str | None, seconds: float) -> None:
    info = ffprobe(path)
    assert {s["codec_name"] for s in info["streams"]} == {video} | ({audio} if audio else set()), info["streams"]
    duration = float(info["format"]["duration"])
    assert seconds - 1.0 <= duration <= seconds + 1.0, f"{path.name}: {duration} s recorded for {seconds} s"
    decoded = decode_file(path, counters=True)
    assert not decoded.error, decoded.error
    assert decoded.first_is_key, f"{path.name} does not start with a keyframe"
    expected = duration * FPS
    assert abs(decoded.video_frames - expected) <= 0.1 * expected, (decoded.video_frames, expected)
    numbers = [n for n in decoded.counters if n is not None]
    assert len(numbers) >= 0.95 * decoded.video_frames, "the frames do not show the numbers that were sent"
    steps = {b - a for a, b in zip(numbers, numbers[1:])}
    assert steps <= {1, -4095}, f"{path.name}: frames missing or repeated: steps {sorted(steps)[:10]}"
    if audio:
        assert decoded.audio_start is not None and decoded.audio_end is not None, "no audio decoded"
        assert abs(decoded.audio_start - decoded.video_times[0]) <= 0.2, (decoded.audio_start, decoded.video_times[0])
        assert abs(decoded.audio_end - decoded.video_times[-1]) <= 0.2 + 1 / FPS, \
            (decoded.audio_end, decoded.video_times[-1])
    landed, reached = seek_middle(path)
    assert landed <= duration / 2 + 0.05 and abs(reached - duration / 2) <= 0.1, (landed, reached, duration)
    assert ffmpeg_decode_errors(path) == ""


def test_vp8_opus_to_webm(server):
    srv = server()
    reply = run(_publish_and_record(srv, "cam", "cam.webm", 10))
    [done] = reply["data"]["files"]
    assert done["name"] == "cam.webm" and done["state"] == "done" and done["bytes"] > 10_000, done
    _check_av_file(record_path(srv) / "cam.webm", "vp8", "opus", 10)
    records = {r["name"]: r for r in srv.api("/api/v1/records")["records"]}
    assert records["cam.webm"]["state"] == "done" and records["cam.webm"]["stream"] == "cam"
    assert records["cam.webm"]["size"] == (record_path(srv) / "cam.webm").stat().st_size
    assert 9 <= records["cam.webm"]["duration"] <= 11
    metrics = get(srv.http_url + "/metrics")[2].decode()
    assert "pms_recordings_total 1" in metrics and "pms_record_files_failed_total 0" in metrics


@pytest.mark.parametrize("file_name", ["cam.mkv", "cam.mp4"])
def test_h264_opus_to_mkv_and_mp4(server, file_name):
    srv = server()
    run(_publish_and_record(srv, "cam", file_name, 6, video="video/H264"))
    _check_av_file(record_path(srv) / file_name, "h264", "opus", 6)


def test_sigterm_finishes_files_and_runs_exec_record_done(server):
    srv = server({"record": {"execRecordDone": "printf '%s|%s|%s' {file} {stream} \"$PMS_RECORD_STREAM\" "
                                               ">> record-done.txt"}})
    url = record_url(srv.ready)

    async def main() -> None:
        pub = await publish(srv.ws_url, "cam one", video_codec="video/VP8", video_track=CounterVideoTrack())
        try:
            status, reply = await record(url, "cam one", "record.start", fileName="it's.webm")
            assert status == 200, reply
            await asyncio.sleep(5)
            assert srv.stop() == 0, "SIGTERM did not end the server with status 0"
        finally:
            await pub.close()

    run(main())
    assert srv.stop_seconds is not None and srv.stop_seconds <= 5
    path = record_path(srv) / "it's.webm"
    info = ffprobe(path)
    assert float(info["format"]["duration"]) >= 4, info["format"]  # Duration written back: the file was finished
    assert seek_middle(path)[1] >= 1.5
    marker = srv.config_path.parent / "record-done.txt"
    assert marker.read_text() == f"{path}|cam one|cam one"


@pytest.mark.parametrize("file_name, video", [("k.webm", "video/VP8"), ("k.mkv", "video/H264"),
                                              ("k.mp4", "video/H264")])
def test_kill_9_leaves_a_file_that_plays(server, file_name, video):
    srv = server(graceful=False)
    url = record_url(srv.ready)
    elapsed = 0.0

    async def main() -> None:
        nonlocal elapsed
        pub = await publish(srv.ws_url, "cam", video_codec=video, video_track=CounterVideoTrack())
        try:
            status, reply = await record(url, "cam", "record.start", fileName=file_name)
            assert status == 200, reply
            started = time.monotonic()
            await asyncio.sleep(6)
            os.kill(srv.pid, signal.SIGKILL)
            elapsed = time.monotonic() - started
        finally:
            await pub.close()

    run(main())
    srv.stop()
    decoded = decode_file(record_path(srv) / file_name)
    assert decoded.video_frames >= 2
    assert decoded.video_span >= elapsed - 1.0 - 1 / FPS, \
        f"{file_name}: {decoded.video_span:.2f} s decoded of {elapsed:.2f} s recorded ({decoded.error})"


def test_segments_have_no_gap_or_overlap(server):
    srv = server()
    reply = run(_publish_and_record(srv, "cam", "seg.mkv", 13, segmentSeconds=4, audio=None))
    files = [f["name"] for f in reply["data"]["files"]]
    assert len(files) >= 3, files
    assert all(f.startswith("seg-") and f.endswith(".mkv") for f in files), files
    assert sorted(os.listdir(record_path(srv))) == sorted(files)
    previous_last: int | None = None
    for name in sorted(files):
        decoded = decode_file(record_path(srv) / name, counters=True)
        assert not decoded.error and decoded.first_is_key, (name, decoded.error)
        numbers = [n for n in decoded.counters if n is not None]
        assert numbers, name
        if previous_last is not None:
            gap = (numbers[0] - previous_last) % 4096
            assert gap in (1, 2) or gap == 0, f"{name}: starts at frame {numbers[0]}, previous ended at {previous_last}"
        previous_last = numbers[-1]
        ffprobe(record_path(srv) / name)


def test_errors_over_http_websocket_and_api(server):
    srv = server()
    url = record_url(srv.ready)

    async def main() -> None:
        pub = await publish(srv.ws_url, "cam", video_codec="video/VP8", audio_codec="audio/opus")
        try:
            for name in ("../x.webm", "a/b.webm", "/tmp/x.webm", ".hidden.webm", "a\x00.webm", "x.avi", "x"):
                status, reply = await record(url, "cam", "record.start", fileName=name)
                assert status == 400 and reply["err"] == 400, (name, reply)
            status, reply = await record(url, "nope", "record.start", fileName="n.webm")
            assert status == 404 and reply["err"] == 404, reply
            status, reply = await record(url, "cam", "record.start", fileName="vp8.mp4")
            assert status == 415 and reply["err"] == 415 and "VP8" in reply["err_msg"], reply
            status, reply = await record(url, "cam", "record.stop")
            assert status == 404, reply
            status, reply = await asyncio.to_thread(post_json, url + "/", {"stream": "cam", "method": "record.x"})
            assert status == 405 and reply["err"] == 405

            async with connect(url.replace("http://", "ws://") + "/") as ws:
                async def ws_command(doc: Any) -> dict[str, Any]:
                    await ws.send(json.dumps(doc))
                    return json.loads(await asyncio.wait_for(ws.recv(), 20))

                assert (await ws_command({"stream": "cam", "method": "record.start",
                                          "data": {"fileName": "../x.webm"}}))["err"] == 400
                assert (await ws_command({"stream": "nope", "method": "record.start",
                                          "data": {"fileName": "n.webm"}}))["err"] == 404
                ok = await ws_command({"stream": "cam", "method": "record.start", "data": {"fileName": "w.webm"}})
                assert ok["err"] == 0 and ok["method"] == "record.start", ok
                again = await ws_command({"stream": "cam", "method": "record.start", "data": {"fileName": "v.webm"}})
                assert again["err"] == 409, again
                await ws.send("garbage")
                assert json.loads(await ws.recv())["err"] == 400

            # the HTTP API takes the same commands
            api = srv.http_url + "/api/v1/record"
            status, reply = await asyncio.to_thread(post_json, api + "/start",
                                                    {"stream": "cam", "data": {"fileName": "w2.webm"}})
            assert status == 409 and reply["err"] == 409, reply
            await asyncio.sleep(2)
            status, reply = await asyncio.to_thread(post_json, api + "/stop", {"stream": "cam"})
            assert status == 200 and reply["data"]["files"][0]["name"] == "w.webm", reply
            status, reply = await asyncio.to_thread(post_json, api + "/start",
                                                    {"stream": "cam", "data": {"fileName": "w.webm"}})
            assert status == 409 and "exists" in reply["err_msg"], reply
            status, reply = await asyncio.to_thread(post_json, api + "/start",
                                                    {"stream": "cam", "data": {"fileName": "h264.webm"}})
            assert status == 200, reply  # VP8 is what the stream has: fine in .webm
            await asyncio.sleep(1)
            status, reply = await asyncio.to_thread(post_json, api + "/stop", {"stream": "cam"})
            assert status == 200, reply
        finally:
            await pub.close()

    run(main())


def test_records_are_served_with_ranges_and_nothing_outside(server):
    srv = server()
    run(_publish_and_record(srv, "cam", "r.webm", 3))
    path = record_path(srv) / "r.webm"
    whole = path.read_bytes()
    status, headers, body = get(srv.http_url + "/records/r.webm")
    assert status == 200 and body == whole and headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "video/webm"
    status, headers, body = get(srv.http_url + "/records/r.webm", {"Range": "bytes=100-1099"})
    assert status == 206 and body == whole[100:1100], (status, len(body))
    assert headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
    status, headers, body = get(srv.http_url + "/records/r.webm", {"Range": "bytes=-10"})
    assert status == 206 and body == whole[-10:]
    status, headers, _ = get(srv.http_url + "/records/r.webm", {"Range": f"bytes={len(whole)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(whole)}"
    (srv.config_path.parent / "secret.webm").write_bytes(b"secret")
    host, port = srv.http_url.removeprefix("http://").rsplit(":", 1)
    for target in ("/records/../secret.webm", "/records/..%2Fsecret.webm", "/records/%2e%2e/secret.webm",
                   "/records/nope.webm", "/records/", "/records/..", "/records/%00.webm"):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", target)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        assert resp.status in (400, 404) and b"secret" not in body, (target, resp.status)
