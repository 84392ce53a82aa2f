"""rtsp.sdp: the DESCRIBE answer (golden text, every codec, read back by FFmpeg through PyAV) and the
ANNOUNCE parser (ffmpeg's and GStreamer's SDP, every refusal), plus a describe -> parse round trip."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pms_trio.rtsp import protocol as p
from pms_trio.rtsp import sdp

CORPUS = Path(__file__).parents[2] / "fuzz" / "corpus" / "rtsp"

# A real 640x480 x264 baseline SPS/PPS (as FFmpeg writes them in extradata) and an H.265 set.
SPS = bytes.fromhex("6742c01ed9005005bb011000000300100000030320f162e480")
PPS = bytes.fromhex("68cb83cb20")
VPS265 = base64.b64decode("QAEMAf//AWAAAAMAkAAAAwAAAwBdlZgJ")
SPS265 = base64.b64decode("QgEBAWAAAAMAkAAAAwAAAwBdoAKAgC0WWVmkkyvAQEAAAAMAQAAABgQ=")
PPS265 = base64.b64decode("RAHBcrRiQA==")


def announce_body(name: str, index: int = 0) -> bytes:
    conn = p.Connection()
    conn.receive_data((CORPUS / name).read_bytes())
    bodies = []
    while (event := conn.next_event()) is not p.NEED_DATA:
        if isinstance(event, p.Request) and event.method == "ANNOUNCE":
            bodies.append(event.body)
    return bodies[index]


# ---------------------------------------------------------------------------------------------
# DESCRIBE


def test_describe_golden_h264_opus():
    text = sdp.describe_sdp("live/cam", [
        {"kind": "video", "codec": "H264", "payload_type": 96, "clock_rate": 90000,
         "sps": b"\x00\x00\x00\x01" + SPS, "pps": PPS},
        {"kind": "audio", "codec": "opus", "payload_type": 111, "clock_rate": 48000, "channels": 2},
    ], "192.0.2.10", session_id=42)
    assert text == (
        "v=0\r\n"
        "o=- 42 1 IN IP4 192.0.2.10\r\n"
        "s=live/cam\r\n"
        "c=IN IP4 0.0.0.0\r\n"
        "t=0 0\r\n"
        "a=tool:pms-trio\r\n"
        "a=range:npt=0-\r\n"
        "a=control:*\r\n"
        "m=video 0 RTP/AVP 96\r\n"
        "a=rtpmap:96 H264/90000\r\n"
        f"a=fmtp:96 packetization-mode=1;profile-level-id=42c01e;sprop-parameter-sets="
        f"{base64.b64encode(SPS).decode()},{base64.b64encode(PPS).decode()}\r\n"
        "a=control:trackID=0\r\n"
        "m=audio 0 RTP/AVP 111\r\n"
        "a=rtpmap:111 opus/48000/2\r\n"
        "a=control:trackID=1\r\n")


def test_describe_every_codec_and_ipv6():
    text = sdp.describe_sdp("all", [
        {"codec": "H265", "payload_type": 98, "vps": VPS265, "sps": SPS265, "pps": PPS265},
        {"codec": "VP8", "payload_type": 100},
        {"codec": "PCMA", "payload_type": 8},
        {"codec": "PCMU", "payload_type": 0},
        {"codec": "AAC", "payload_type": 97, "clock_rate": 44100, "channels": 2},
        {"codec": "H264", "payload_type": 96, "fmtp": "packetization-mode=0;level-asymmetry-allowed=1"},
    ], "2001:db8::1")
    assert "o=- 0 1 IN IP6 2001:db8::1\r\n" in text and "c=IN IP6 ::\r\n" in text
    assert "a=fmtp:98 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwBdlZgJ;sprop-sps=" in text
    assert "a=rtpmap:100 VP8/90000\r\na=control:trackID=1" in text
    assert "a=rtpmap:8 PCMA/8000\r\n" in text and "a=rtpmap:0 PCMU/8000\r\n" in text
    assert ("a=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;"
            "sizelength=13;indexlength=3;indexdeltalength=3;config=1210\r\n") in text
    # no parameter sets yet: the caller's fmtp is kept, nothing invented
    assert "a=fmtp:96 packetization-mode=0;level-asymmetry-allowed=1\r\n" in text
    assert [line for line in text.split("\r\n") if line.startswith("a=control")] == \
        ["a=control:*"] + [f"a=control:trackID={i}" for i in range(6)]


def test_parameter_sets_override_stale_fmtp():
    text = sdp.describe_sdp("s", [{"codec": "H264", "payload_type": 96, "sps": SPS, "pps": PPS,
                                   "fmtp": "profile-level-id=640028;sprop-parameter-sets=old,old"}], "127.0.0.1")
    assert "profile-level-id=42c01e" in text and "old" not in text


@pytest.mark.parametrize("tracks", [
    [], [{"codec": "MP3", "payload_type": 14}], [{"codec": "H264", "payload_type": 128}],
    [{"codec": "H264"}], [{"codec": "AAC", "payload_type": 97}],  # AAC needs its rate
    [{"codec": "AAC", "payload_type": 97, "clock_rate": 12345}],
    [{"codec": "VP8", "payload_type": 96, "control": "a\r\nb"}],
])
def test_describe_refuses_tracks_it_cannot_describe(tracks):
    with pytest.raises(ValueError):
        sdp.describe_sdp("s", tracks, "127.0.0.1")


def test_aac_config():
    assert sdp.aac_config(44100, 2) == bytes.fromhex("1210") and sdp.aac_config(48000, 1) == bytes.fromhex("1188")


def test_ffmpeg_reads_our_describe_answer(tmp_path):
    """A real SDP consumer: FFmpeg's sdp demuxer (through PyAV) opens the DESCRIBE body and lists the
    streams with the right codecs, and the H.264 extradata holds our SPS and PPS. No media is sent:
    the open times out probing (0.3 s) and reports what the SDP alone says."""
    av = pytest.importorskip("av")
    text = sdp.describe_sdp("cam", [
        {"codec": "H264", "payload_type": 96, "sps": SPS, "pps": PPS},
        {"codec": "H265", "payload_type": 98, "vps": VPS265, "sps": SPS265, "pps": PPS265},
        {"codec": "VP8", "payload_type": 100},
        {"codec": "Opus", "payload_type": 111},
        {"codec": "PCMA", "payload_type": 8},
        {"codec": "PCMU", "payload_type": 0},
        {"codec": "AAC", "payload_type": 97, "clock_rate": 44100, "channels": 2},
    ], "127.0.0.1")
    path = tmp_path / "describe.sdp"
    path.write_text(text)
    container = av.open(str(path), format="sdp", timeout=0.3,
                        options={"protocol_whitelist": "file,udp,rtp", "analyzeduration": "1000", "probesize": "32"})
    try:
        streams = [(s.type, s.codec_context.name) for s in container.streams]
        assert streams == [("video", "h264"), ("video", "hevc"), ("video", "vp8"), ("audio", "opus"),
                           ("audio", "pcm_alaw"), ("audio", "pcm_mulaw"), ("audio", "aac")]
        h264 = container.streams[0].codec_context.extradata
        assert b"\x00\x00\x00\x01" + SPS in h264 and b"\x00\x00\x00\x01" + PPS in h264
        assert container.streams[6].codec_context.extradata == bytes.fromhex("1210")
        assert container.streams[6].codec_context.sample_rate == 44100
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------
# ANNOUNCE


def test_ffmpeg_announce_h264_aac():
    tracks = sdp.parse_announce_sdp(announce_body("ffmpeg_publish_tcp.bin"))
    video, audio = tracks
    assert (video["kind"], video["codec"], video["payload_type"], video["clock_rate"], video["control"]) == \
        ("video", "H264", 96, 90000, "streamid=0")
    assert video["sps"][0] & 0x1F == 7 and video["pps"][0] & 0x1F == 8
    assert video["profile_level_id"] == "64001e" and video["channels"] is None
    assert sdp.parse_fmtp(video["fmtp"])["packetization-mode"] == "1"
    assert (audio["codec"], audio["payload_type"], audio["clock_rate"], audio["channels"], audio["control"]) == \
        ("AAC", 97, 44100, 2, "streamid=1")
    assert audio["config"] == bytes.fromhex("121056E500")


def test_ffmpeg_announce_opus_and_static_pcma():
    opus, pcma = sdp.parse_announce_sdp(announce_body("ffmpeg_publish_udp.txt"))
    assert (opus["codec"], opus["clock_rate"], opus["channels"]) == ("Opus", 48000, 2)
    assert (pcma["codec"], pcma["payload_type"], pcma["clock_rate"], pcma["channels"], pcma["fmtp"]) == \
        ("PCMA", 8, 8000, 1, None)


def test_gstreamer_announce_h265_pcmu():
    h265, pcmu = sdp.parse_announce_sdp(announce_body("gstreamer_record.txt").decode())
    assert h265["codec"] == "H265" and (h265["vps"], h265["sps"], h265["pps"]) == (VPS265, SPS265, PPS265)
    assert h265["control"] == "stream=0" and (pcmu["codec"], pcmu["control"]) == ("PCMU", "stream=1")


def test_announce_absolute_control_lf_and_missing_parameter_sets():
    text = ("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=x\nt=0 0\nm=video 0 RTP/AVP 96\na=rtpmap:96 h264/90000\n"
            "a=control:rtsp://10.0.0.1:8554/live/cam/trackID=3\n")
    (track,) = sdp.parse_announce_sdp(text)
    assert track["control"] == "trackID=3" and track["sps"] is None and track["pps"] is None
    assert track["profile_level_id"] is None


def _sdp(*media: str) -> str:
    return "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n" + "".join(media)


H264 = "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:streamid=0\r\n"


@pytest.mark.parametrize("text, status", [
    ("", 400), ("hello", 400), (b"v=0\r\n\xff\xfe", 400), ("v=1\r\n" + H264, 400),
    (_sdp(), 400),  # no tracks
    (_sdp(H264, "garbage line\r\n"), 400),
    (_sdp("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"), 400),  # no control
    (_sdp(H264, H264), 400),  # duplicate control
    (_sdp("m=video 0 RTP/AVP 96\r\na=control:streamid=0\r\n"), 400),  # dynamic PT without rtpmap
    (_sdp("m=video 0 RTP/AVP 200\r\na=control:streamid=0\r\n"), 400),
    (_sdp("m=video zero RTP/AVP 96\r\n"), 400),
    (_sdp("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264\r\na=control:c\r\n"), 400),
    (_sdp("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
          "a=fmtp:96 sprop-parameter-sets=!!!,aOvjyyLA\r\na=control:c\r\n"), 400),
    (_sdp("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n"
          "a=fmtp:97 mode=AAC-hbr;config=zz\r\na=control:c\r\n"), 400),
    (_sdp("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:*\r\n"), 400),
    (_sdp("m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\na=control:c\r\n"), 415),
    (_sdp("m=audio 0 RTP/AVP 14\r\na=control:c\r\n"), 400),  # MPA, static but not ours: no rtpmap known
    (_sdp("m=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/44100/2\r\na=control:c\r\n"), 415),
    (_sdp("m=video 0 RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\na=control:c\r\n"), 415),
    (_sdp("m=audio 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:c\r\n"), 415),  # video codec on audio
    (_sdp("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 mode=AAC-hbr\r\n"
          "a=control:c\r\n"), 415),  # AAC without config
    (_sdp("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 mode=CELP-cbr;config=12\r\n"
          "a=control:c\r\n"), 415),
])
def test_unusable_announce_is_refused_naming_the_problem(text, status):
    with pytest.raises(sdp.SdpError) as info:
        sdp.parse_announce_sdp(text)
    assert info.value.status_hint == status and info.value.message


def test_a_supported_track_next_to_an_unsupported_one_refuses_the_whole_announce():
    with pytest.raises(sdp.SdpError) as info:
        sdp.parse_announce_sdp(_sdp(H264, "m=audio 0 RTP/AVP 14\r\na=rtpmap:14 MPA/90000\r\na=control:s1\r\n"))
    assert info.value.status_hint == 415 and "track 1" in info.value.message and "MPA" in info.value.message


# ---------------------------------------------------------------------------------------------
# Round trip

nal = st.binary(min_size=3, max_size=30)
track_strategy = st.one_of(
    st.builds(lambda sps, pps, pt: {"codec": "H264", "payload_type": pt, "sps": b"\x67" + sps, "pps": b"\x68" + pps},
              nal, nal, st.integers(96, 127)),
    st.builds(lambda v, s_, p_, pt: {"codec": "H265", "payload_type": pt, "vps": b"\x40\x01" + v,
                                     "sps": b"\x42\x01" + s_, "pps": b"\x44\x01" + p_},
              nal, nal, nal, st.integers(96, 127)),
    st.builds(lambda pt: {"codec": "VP8", "payload_type": pt}, st.integers(96, 127)),
    st.builds(lambda pt: {"codec": "Opus", "payload_type": pt}, st.integers(96, 127)),
    st.just({"codec": "PCMA", "payload_type": 8}), st.just({"codec": "PCMU", "payload_type": 0}),
    st.builds(lambda rate, ch, pt: {"codec": "AAC", "payload_type": pt, "clock_rate": rate, "channels": ch},
              st.sampled_from(sdp.AAC_RATES), st.integers(1, 2), st.integers(96, 127)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(track_strategy, min_size=1, max_size=5), st.text(min_size=0, max_size=20))
def test_describe_then_announce_parse_round_trip(tracks, name):
    parsed = sdp.parse_announce_sdp(sdp.describe_sdp(name, tracks, "127.0.0.1"))
    assert len(parsed) == len(tracks)
    for index, (want, got) in enumerate(zip(tracks, parsed)):
        kind, _, rate, channels = sdp.CODECS[want["codec"]]
        assert (got["kind"], got["codec"], got["payload_type"], got["control"]) == \
            (kind, want["codec"], want["payload_type"], f"trackID={index}")
        assert got["clock_rate"] == want.get("clock_rate", rate)
        assert got["channels"] == want.get("channels", channels)
        for key in ("vps", "sps", "pps"):
            if key in want and want["codec"] == "H265":
                assert got[key] == want[key]
        if want["codec"] == "H264":
            assert (got["sps"], got["pps"]) == (want["sps"], want["pps"])
            assert got["profile_level_id"] == want["sps"][1:4].hex()
        if want["codec"] == "AAC":
            assert got["config"] == sdp.aac_config(want["clock_rate"], want["channels"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 st.lists(st.sampled_from(["v=0", "m=video 0 RTP/AVP 96", "m=audio 0 RTP/AVP 8",
                                           "a=rtpmap:96 H264/90000", "a=control:a", "a=control:b",
                                           "a=fmtp:96 sprop-parameter-sets=Z0LA,aM4=", "x", "a=rtpmap:96 x/0",
                                           "m=audio 0 RTP/AVP 97", "a=rtpmap:97 MPEG4-GENERIC/8000",
                                           "a=fmtp:97 mode=AAC-hbr;config=1588"]), max_size=12)
                 .map(lambda lines: "\r\n".join(lines))))
def test_announce_parser_garbage_raises_only_sdp_error(text):
    try:
        tracks = sdp.parse_announce_sdp(text)
    except sdp.SdpError as e:
        assert e.status_hint in (400, 415) and e.message
    else:
        assert tracks and all(t["codec"] in sdp.CODECS for t in tracks)
