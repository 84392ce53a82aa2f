"""The stream registry's RTSP parts (no sockets, no core): a name claimed at ANNOUNCE and live at
RECORD, locate() waiting for it, parameter sets kept per stream, rtsp_message routed to the owner;
and the RTSP server's pure helpers (DESCRIBE tracks from core tracks, ANNOUNCE tracks to the core)."""

from __future__ import annotations

import base64

import pytest
import trio
from pms_trio.rtsp import sdp
from pms_trio.rtsp.server import _base_url
from pms_trio.rtsp.tracks import core_track, describable
from pms_trio.streams import StreamRegistry

SPS = bytes.fromhex("6742c01eda0a0fd08841")
PPS = bytes.fromhex("68ce3c80")


class Owner:
    def __init__(self) -> None:
        self.closed: list[tuple[int, str, str, str]] = []
        self.messages: list[tuple[int, bytes]] = []

    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None:
        self.closed.append((transport_id, stream, role, reason))

    def rtsp_message(self, transport_id: int, data: bytes) -> None:
        self.messages.append((transport_id, data))


def test_pending_publish_claims_the_name_and_goes_live_at_record() -> None:
    reg = StreamRegistry()
    owner = Owner()
    reg.add_publisher("cam", 1, owner, source="rtsp", pending=True)
    assert reg.is_claimed("cam") and not reg.is_live("cam")
    with pytest.raises(RuntimeError):
        reg.add_player("cam", 2, Owner())  # not live yet
    assert reg.snapshot()[0]["live"] is False
    reg.mark_live("cam")
    assert reg.is_live("cam") and reg.snapshot()[0]["live"] is True
    reg.add_player("cam", 2, owner)
    reg.on_rtsp_message(2, b"OPTIONS * RTSP/1.0\r\n\r\n")
    reg.on_rtsp_message(99, b"dropped")
    assert owner.messages == [(2, b"OPTIONS * RTSP/1.0\r\n\r\n")]
    reg.on_parameter_sets("cam", "h264", [SPS, PPS])
    assert reg.get("cam").parameter_sets == {"H264": (SPS, PPS)}
    reg.on_transport_closed(1, "eof")
    assert not reg.is_claimed("cam")
    assert (2, "cam", "play", "producer-closed") in owner.closed


@pytest.mark.trio
async def test_locate_waits_for_a_pending_publish() -> None:
    reg = StreamRegistry()
    reg.add_publisher("cam", 1, Owner(), source="rtsp", pending=True)
    found = []

    async def looker() -> None:
        found.append(await reg.locate("cam", timeout=5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(looker)
        await trio.sleep(0.05)
        assert not found
        reg.mark_live("cam")
    assert found and found[0] is not None and found[0].kind == "local"
    assert await reg.locate("nosuch", timeout=5) is None  # not being published: no wait


@pytest.mark.trio
async def test_locate_gives_up_when_the_publish_never_records() -> None:
    reg = StreamRegistry()
    reg.add_publisher("cam", 1, Owner(), source="rtsp", pending=True)
    with trio.fail_after(2):
        assert await reg.locate("cam", timeout=0.1) is None


def test_describable_tracks_take_the_freshest_parameter_sets() -> None:
    core_h264 = {"index": 0, "kind": "video", "codec": "H264", "payload_type": 102, "clock_rate": 90000,
                 "channels": 0, "fmtp": "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"}
    track = describable(core_h264, {})
    assert track is not None and track["missing_parameter_sets"] is True
    track = describable(core_h264, {"H264": (SPS, PPS)})
    assert track is not None and track["missing_parameter_sets"] is False
    track.pop("missing_parameter_sets")
    text = sdp.describe_sdp("cam", [track, describable(
        {"index": 1, "kind": "audio", "codec": "opus", "payload_type": 111, "clock_rate": 48000, "channels": 2,
         "fmtp": "minptime=10;useinbandfec=1"}, {})], "127.0.0.1")
    assert f"sprop-parameter-sets={base64.b64encode(SPS).decode()},{base64.b64encode(PPS).decode()}" in text
    assert f"profile-level-id={SPS[1:4].hex()}" in text
    assert "a=control:trackID=0" in text and "a=control:trackID=1" in text and "opus/48000/2" in text
    # Sets in the publisher's SDP are enough; codecs RTSP here cannot describe are left out.
    in_sdp = dict(core_h264, fmtp="packetization-mode=1;sprop-parameter-sets=Z0IAH6tA,aM48gA==")
    assert describable(in_sdp, {})["missing_parameter_sets"] is False
    assert describable(dict(core_h264, codec="AV1"), {}) is None


def test_announce_tracks_for_the_core() -> None:
    tracks = sdp.parse_announce_sdp(
        "v=0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        "a=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n"
        "m=audio 0 RTP/AVP 8\r\na=control:streamid=1\r\n")
    assert [core_track(t) for t in tracks] == [
        {"kind": "video", "codec": "H264", "payload_type": 96, "clock_rate": 90000, "channels": 0,
         "fmtp": "packetization-mode=1"},
        {"kind": "audio", "codec": "PCMA", "payload_type": 8, "clock_rate": 8000, "channels": 1, "fmtp": ""},
    ]


def test_base_url() -> None:
    assert _base_url("rtsp://127.0.0.1:554/live/cam?x=1") == "rtsp://127.0.0.1:554/live/cam/"
    assert _base_url("rtsp://127.0.0.1:554/cam/") == "rtsp://127.0.0.1:554/cam/"
