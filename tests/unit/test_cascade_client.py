"""The cascade's RTSP client without sockets: URLs, the DESCRIBE answer as a client reads it, the
Digest and Basic answers (checked by the project's own Digest verifier, an independent
implementation of RFC 2617's side that checks), and the error codes a failed look-up gives."""

from __future__ import annotations

import base64

import pytest

from pms_trio.cascade.client import RtspClient, RtspClientError, Target, _session_control, join_url
from pms_trio.cascade.pull import _refusal
from pms_trio.rtsp import protocol as p
from pms_trio.rtsp.sdp import SdpError, parse_describe_sdp
from pms_trio.sip.digest import DigestAuthenticator, Verdict, parse_digest

SDP = ("v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=cam\r\nt=0 0\r\na=control:rtsp://10.0.0.2/live/\r\n"
       "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n"
       "a=control:rtsp://10.0.0.2/live/trackID=1\r\n"
       "m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\na=control:trackID=3\r\n"
       "m=audio 0 RTP/AVP 8\r\na=control:trackID=2\r\n")


def test_target_keeps_credentials_out_of_the_url() -> None:
    t = Target.parse("rtsp://ad%40min:p%3Ass@cam.local:8554/Streaming/101?x=1")
    assert (t.host, t.port, t.user, t.password) == ("cam.local", 8554, "ad@min", "p:ss")
    assert t.url == "rtsp://cam.local:8554/Streaming/101?x=1"
    assert Target.parse("rtsp://[::1]/a").url == "rtsp://[::1]/a" and Target.parse("rtsp://[::1]/a").port == 554
    for bad in ("http://x/a", "rtsp:///a", "rtsp://h:99999/a"):
        with pytest.raises(RtspClientError):
            Target.parse(bad)


def test_track_urls_join_the_base() -> None:
    assert join_url("rtsp://h/cam/", "trackID=0") == "rtsp://h/cam/trackID=0"
    assert join_url("rtsp://h/cam", "trackID=0") == "rtsp://h/cam/trackID=0"
    assert join_url("rtsp://h/cam/", "rtsp://other/x/track1") == "rtsp://other/x/track1"
    assert join_url("rtsp://h/cam/", "*") == "rtsp://h/cam/"
    assert _session_control(SDP.encode()) == "rtsp://10.0.0.2/live/"


def test_describe_leaves_out_what_we_cannot_carry() -> None:
    tracks, skipped = parse_describe_sdp(SDP)
    assert [t["codec"] for t in tracks] == ["H264", "PCMA"]
    assert tracks[0]["control_uri"] == "rtsp://10.0.0.2/live/trackID=1"
    assert len(skipped) == 1 and "m=application" in skipped[0]
    with pytest.raises(SdpError) as e:
        parse_describe_sdp("v=0\r\nm=application 0 RTP/AVP 107\r\na=control:x\r\n")
    assert e.value.status_hint == 415
    with pytest.raises(SdpError) as e:
        parse_describe_sdp("not sdp")
    assert e.value.status_hint == 400


def _challenge_reply(value: str) -> p.Response:
    return p.Response(401, "Unauthorized", (("CSeq", "2"), ("WWW-Authenticate", value)))


@pytest.mark.parametrize("qop", [False, True])
def test_digest_answer_is_accepted_by_a_verifier(qop: bool) -> None:
    verifier = DigestAuthenticator("cameras", qop=qop)
    challenge = verifier.challenge(now=100.0)
    client = RtspClient("rtsp://viewer:s3cret@127.0.0.1:554/cam")
    assert client._challenge(_challenge_reply(challenge.header_value()))
    for method in ("DESCRIBE", "SETUP"):  # each request answers again (qop: the nonce count grows)
        request = client.build(method, client.target.url)
        authorization = next(v for k, v in _headers(request) if k == "Authorization")
        assert verifier.verify(method, authorization, "s3cret", now=101.0).verdict is Verdict.OK
        assert verifier.verify(method, authorization, "wrong", now=101.0).verdict is Verdict.FORBIDDEN
    if qop:
        assert parse_digest(authorization)["nc"] == "00000002"


def test_basic_when_only_basic_is_offered_and_nothing_without_credentials() -> None:
    client = RtspClient("rtsp://viewer:s3cret@127.0.0.1/cam")
    assert client._challenge(_challenge_reply('Basic realm="cam"'))
    authorization = next(v for k, v in _headers(client.build("DESCRIBE", client.target.url)) if k == "Authorization")
    assert base64.b64decode(authorization.split()[1]) == b"viewer:s3cret"
    anonymous = RtspClient("rtsp://127.0.0.1/cam")
    assert not anonymous._challenge(_challenge_reply('Basic realm="cam"'))
    assert not any(k == "Authorization" for k, _ in _headers(anonymous.build("DESCRIBE", anonymous.target.url)))
    unknown = RtspClient("rtsp://a:b@127.0.0.1/cam")
    assert not unknown._challenge(_challenge_reply('Digest realm="x", nonce="n", algorithm=SHA-256'))


def _headers(data: bytes) -> list[tuple[str, str]]:
    lines = data.decode().split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    return [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines)]


def test_a_failed_lookup_names_its_cause() -> None:
    assert _refusal("x", [(404, "a"), (404, "b")]).code == 404
    assert _refusal("x", [(404, "a"), (415, "b")]).code == 415
    assert _refusal("x", [(404, "a"), (0, "refused")]).code == 502
    assert _refusal("x", [(504, "no answer")]).code == 502
    assert _refusal("x", []).code == 404
