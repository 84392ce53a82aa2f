"""rtsp.headers (sans-IO): Transport, Session, Range, RTP-Info and URL parsing and formatting, the
status each malformed value is refused with, and hypothesis round trips of Transport."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pms_trio.rtsp import headers as h
from pms_trio.rtsp import protocol as p


@pytest.mark.parametrize("header, expected", [
    ("RTP/AVP/TCP;unicast;interleaved=0-1", [h.TransportSpec("TCP", interleaved=(0, 1))]),
    ("RTP/AVP/UDP;unicast;client_port=21374-21375", [h.TransportSpec("UDP", client_port=(21374, 21375))]),
    ("RTP/AVP;unicast;client_port=50690-50691", [h.TransportSpec("UDP", client_port=(50690, 50691))]),
    ("RTP/AVP/UDP;unicast;client_port=27048-27049;mode=record",
     [h.TransportSpec("UDP", client_port=(27048, 27049), mode="RECORD")]),
    ('rtp/avp/tcp;interleaved=4;mode="RECORD"', [h.TransportSpec("TCP", interleaved=(4, 5), mode="RECORD")]),
    ("RTP/AVP/TCP;unicast", [h.TransportSpec("TCP")]),
    ("RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001;ssrc=1234ABCD;mode=PLAY;destination=10.0.0.2",
     [h.TransportSpec("UDP", client_port=(5000, 5001), server_port=(6000, 6001), ssrc=0x1234ABCD, mode="PLAY",
                      destination="10.0.0.2")]),
    # GStreamer-style alternatives: multicast is skipped, the rest kept in order
    ("RTP/AVP;multicast;destination=224.1.1.1, RTP/AVP;unicast;client_port=40000-40001,"
     + "RTP/AVP/TCP;unicast;interleaved=0-1",
     [h.TransportSpec("UDP", client_port=(40000, 40001)), h.TransportSpec("TCP", interleaved=(0, 1))]),
])
def test_parse_transport(header, expected):
    assert h.parse_transport(header) == expected


@pytest.mark.parametrize("header", [None, "", "RTP/SAVP;unicast;client_port=1-2", "RAW/RAW/UDP;unicast",
                                    "RTP/AVP;multicast;ttl=4", "RTP/AVP;unicast", "RTP/AVP/SCTP;unicast",
                                    "RTP/AVP/TCP;multicast;interleaved=0-1, MP2T/H2221/UDP;unicast"])
def test_unsupported_transport_is_461_and_says_what_we_offer(header):
    with pytest.raises(p.RemoteProtocolError) as info:
        h.parse_transport(header)
    assert info.value.status_hint == 461 and "RTP/AVP/TCP" in info.value.message


@pytest.mark.parametrize("header", ["RTP/AVP/TCP;interleaved=x", "RTP/AVP/TCP;interleaved=0-256",
                                    "RTP/AVP;client_port=1-2-3", "RTP/AVP;client_port=70000",
                                    "RTP/AVP;client_port=1-2;ssrc=xyz", "RTP/AVP;client_port=1-2;mode=teleport"])
def test_malformed_transport_is_400(header):
    with pytest.raises(p.RemoteProtocolError) as info:
        h.parse_transport(header)
    assert info.value.status_hint == 400


def test_format_transport():
    spec = h.TransportSpec("UDP", client_port=(5000, 5001), server_port=(40000, 40001), ssrc=0xAB, mode="RECORD")
    assert h.format_transport(spec) == \
        "RTP/AVP;unicast;client_port=5000-5001;server_port=40000-40001;ssrc=000000AB;mode=record"
    assert h.format_transport(h.TransportSpec("TCP", interleaved=(0, 1))) == "RTP/AVP/TCP;unicast;interleaved=0-1"
    with pytest.raises(p.LocalProtocolError):
        h.format_transport(h.TransportSpec("TCP", interleaved=(0, 256)))


pairs = st.tuples(st.integers(0, 65535), st.integers(0, 65535))


@given(st.builds(h.TransportSpec, st.sampled_from(["UDP", "TCP"]),
                 st.none() | st.tuples(st.integers(0, 255), st.integers(0, 255)), pairs, st.none() | pairs,
                 st.sampled_from([None, "PLAY", "RECORD"]), st.none() | st.integers(0, 2**32 - 1),
                 st.none() | st.from_regex(r"[0-9a-z.:]{1,20}", fullmatch=True)))
def test_transport_round_trip(spec):
    assert h.parse_transport(h.format_transport(spec)) == [spec]


def test_session_header():
    assert h.parse_session("12345678;timeout=60") == ("12345678", 60)
    assert h.parse_session(" abc$-_.+ ") == ("abc$-_.+", None)
    assert h.format_session("abc", 60) == "abc;timeout=60"
    for bad in ("", "a b", ";timeout=3", "é"):
        with pytest.raises(p.RemoteProtocolError) as info:
            h.parse_session(bad)
        assert info.value.status_hint == 454
    with pytest.raises(p.RemoteProtocolError):
        h.parse_session("abc;timeout=soon")
    with pytest.raises(p.LocalProtocolError):
        h.format_session("a;b")


@pytest.mark.parametrize("header, expected", [
    ("npt=0.000-", h.NptRange(0.0, None)), ("npt=0-", h.NptRange(0.0, None)), ("npt=now-", h.NptRange(None)),
    ("npt=10.5-20", h.NptRange(10.5, 20.0)), ("npt=00:01:02.5-", h.NptRange(62.5, None)),
    ("npt=-5", h.NptRange(0.0, 5.0)), ("NPT = 3-;time=19970123T143720Z", h.NptRange(3.0, None)),
])
def test_parse_range(header, expected):
    assert h.parse_range(header) == expected


@pytest.mark.parametrize("header", ["clock=19961108T142300Z-", "smpte=10:07:00-", "npt=5", "npt=abc-",
                                    "npt=20-10", "npt"])
def test_bad_range_is_457(header):
    with pytest.raises(p.RemoteProtocolError) as info:
        h.parse_range(header)
    assert info.value.status_hint == 457


def test_range_and_rtp_info_formatting():
    assert h.format_range() == "npt=0.000-" and h.format_range(None) == "npt=now-"
    assert h.format_range(1.5, 3) == "npt=1.500-3.000"
    info = [h.RtpInfo("rtsp://h:8554/cam/trackID=0", 4660, 3000000000), h.RtpInfo("rtsp://h:8554/cam/trackID=1")]
    text = h.format_rtp_info(info)
    assert text == "url=rtsp://h:8554/cam/trackID=0;seq=4660;rtptime=3000000000,url=rtsp://h:8554/cam/trackID=1"
    assert h.parse_rtp_info(text) == info
    for bad in ([], [h.RtpInfo("a,b")], [h.RtpInfo("u", seq=70000)], [h.RtpInfo("u", rtptime=-1)]):
        with pytest.raises(p.LocalProtocolError):
            h.format_rtp_info(bad)


@pytest.mark.parametrize("uri, controls, expected", [
    ("rtsp://127.0.0.1:8554/cam", (), h.RtspUrl("127.0.0.1", 8554, "cam", None)),
    ("rtsp://127.0.0.1:8554/cam/", (), h.RtspUrl("127.0.0.1", 8554, "cam", None)),
    ("rtsp://h/cam/trackID=1", (), h.RtspUrl("h", None, "cam", "trackID=1")),
    ("rtsp://h/live/cam1/streamid=0", (), h.RtspUrl("h", None, "live/cam1", "streamid=0")),
    ("rtsp://h/gst/stream=1", (), h.RtspUrl("h", None, "gst", "stream=1")),
    ("rtsp://h/cam/video", ("video", "audio"), h.RtspUrl("h", None, "cam", "video")),
    ("rtsp://h/cam/video", (), h.RtspUrl("h", None, "cam/video", None)),
    ("rtsp://user:pw@[::1]:554/my%20cam/trackID=0?token=x", (), h.RtspUrl("::1", 554, "my cam", "trackID=0",
                                                                          "token=x")),
    ("*", (), h.RtspUrl("", None, "", None)),
    ("rtsp://h", (), h.RtspUrl("h", None, "", None)),
])
def test_parse_url(uri, controls, expected):
    assert h.parse_url(uri, controls) == expected
    assert h.track_index(expected.control) == (int(expected.control[-1]) if expected.control and
                                               expected.control[-1].isdigit() else None)


@pytest.mark.parametrize("uri", ["http://h/cam", "/cam", "rtsp:///cam", "rtsp://h:99999/cam", "rtsp://[::1/cam"])
def test_bad_url_is_400(uri):
    with pytest.raises(p.RemoteProtocolError) as info:
        h.parse_url(uri)
    assert info.value.status_hint == 400
