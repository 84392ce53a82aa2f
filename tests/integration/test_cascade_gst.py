"""The cascade's RTSP client against an RTSP server written by others: gst-rtsp-server (Debian
``gir1.2-gst-rtsp-server-1.0``, run by :mod:`gst_rtsp_server` under the system Python).

Covered here: an edge pulls H.264 + PCMA from it for an FFmpeg player (the colour sent decodes);
a recording whose ``targetHost``/``targetPort`` is that server; the client's Digest and Basic
authentication (credentials in the URL), right and wrong.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from pms_trio.cascade.client import RtspClient, RtspClientError

from .conftest import ServerFactory
from .peers import BLUE, all_match, run
from .record_support import decode_file, ffprobe, record, record_url
from .rtsp_peers import AvPlayer

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


class GstServer:
    def __init__(self, auth: str = "") -> None:
        command = [SYSTEM_PYTHON, str(SCRIPT), "--port", "0", "--mount", "/cam", "--colour", "0x0000ff"]
        if auth:
            command += ["--auth", auth]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode(errors="replace").strip()  # bounded: the script prints or exits
        assert line.startswith("PORT "), f"gst-rtsp-server did not start: {line!r} " \
            "(Debian: apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-bad; .ci/run does)"
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the script ends when stdin closes
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def gst() -> Iterator[GstServer]:
    server = GstServer()
    yield server
    server.stop()


def test_edge_pulls_from_gst_rtsp_server(server: ServerFactory, gst: GstServer) -> None:
    edge = server({"pull": [{"ip": "127.0.0.1", "port": gst.port}]})

    async def scenario() -> None:
        player = AvPlayer(f"{edge.rtsp_url}/cam").start()
        try:
            await player.wait_video_frames(60, timeout=30)
            assert all_match([s.rgb for s in player.video[-30:]], BLUE), player.video[-1]
            assert sorted(player.codecs) == ["h264", "pcm_alaw"], player.codecs
            await player.wait_audio_frames(20, timeout=10)
        finally:
            await player.astop()
        streams = {s["name"]: s for s in (await edge.api_async("/api/v1/streams"))["streams"]}
        assert streams["cam"]["source"] == "cascade", streams

    run(scenario(), 90)


def test_record_from_gst_rtsp_server(server: ServerFactory, gst: GstServer) -> None:
    edge = server()

    async def scenario() -> None:
        url = record_url(edge.ready)
        status, reply = await record(url, "cam", "record.start", fileName="gst.mkv", targetHost="127.0.0.1",
                                     targetPort=gst.port)
        assert status == 200 and reply["err"] == 0, reply
        await asyncio.sleep(4)
        status, reply = await record(url, "cam", "record.stop")
        assert status == 200 and reply["err"] == 0, reply

    run(scenario(), 60)
    path = Path(edge.config["record"]["recordPath"]) / "gst.mkv"
    assert {s["codec_name"] for s in ffprobe(path)["streams"]} == {"h264", "pcm_alaw"}
    decoded = decode_file(path)
    assert not decoded.error and decoded.video_frames >= 60, (decoded.error, decoded.video_frames)


@pytest.mark.parametrize("method", ["digest", "basic"])
def test_client_authenticates(method: str) -> None:
    gst = GstServer(f"{method}:viewer:s3cret pass")
    try:
        async def describe(credentials: str) -> int:
            client = RtspClient(f"rtsp://{credentials}@127.0.0.1:{gst.port}/cam", timeout=5)
            try:
                await client.connect()
                await client.options()
                description = await client.describe()
                channels = await client.setup(description.tracks[0])
                assert channels == (0, 1)
                await client.play(description.play_url)
                return len(description.tracks)
            finally:
                await client.aclose()

        assert trio.run(describe, "viewer:s3cret%20pass") == 2
        with pytest.raises(RtspClientError) as refused:
            trio.run(describe, "viewer:wrong")
        assert refused.value.status == 401, refused.value
        with pytest.raises(RtspClientError) as anonymous:
            trio.run(describe, "viewer")  # no password: answered with an empty one
        assert anonymous.value.status == 401
    finally:
        gst.stop()


