"""sip.message and sip.addressing (sans-IO): device texts from tests/data/sip parsed as datagrams and
streams cut anywhere, compact forms, folded lines, several Via, Content-Length rules, limits, error
answers, serialization, response addressing (RFC 3261 18.2.2 + RFC 3581), hypothesis round trips and
garbage (only SipParseError escapes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pms_trio.sip import message as m
from pms_trio.sip.addressing import (
    Destination,
    make_via,
    response_destination,
    stamp_received,
)

DATA = Path(__file__).parents[1] / "data" / "sip"
FUZZ = Path(__file__).parents[2] / "fuzz"


def _target():
    spec = importlib.util.spec_from_file_location("atheris_sip", FUZZ / "atheris_sip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fuzz = _target()


def load(name: str) -> m.Message:
    message = m.parse_datagram((DATA / name).read_bytes())
    assert message is not None
    return message


EXPECTED = {
    "hikvision_register.txt": ("REGISTER", "34020000001320000001", 0),
    "hikvision_register_auth.txt": ("REGISTER", "34020000001320000001", 0),
    "hikvision_unregister.txt": ("REGISTER", "34020000001320000001", 0),
    "dahua_register_auth_qop.txt": ("REGISTER", "34020000001320000002", 0),
    "sipp_register_auth.txt": ("REGISTER", "34020000001320000001", 0),
    "hikvision_keepalive.txt": ("MESSAGE", "34020000001320000001", 185),
    "dahua_keepalive_compact.txt": ("MESSAGE", "34020000001320000002", 195),
    "hikvision_nvr_deviceinfo.txt": ("MESSAGE", "34020000001180000001", None),
    "hikvision_nvr_catalog_1of3.txt": ("MESSAGE", "34020000001180000001", None),
    "dahua_catalog_utf8.txt": ("MESSAGE", "34020000001320000002", None),
}


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.txt")))
def test_every_device_text_parses_the_same_as_datagram_and_stream(name):
    data = (DATA / name).read_bytes()
    message = m.parse_datagram(data)
    assert message is not None and message.body == data[data.index(b"\r\n\r\n") + 4:]
    assert fuzz.parse_stream([data]) == ([message], None)
    assert fuzz.parse_stream([data[i:i + 1] for i in range(len(data))]) == ([message], None)
    fuzz.check_one(data)  # round trips, helpers, transactions


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_device_requests_fields(name):
    method, device, length = EXPECTED[name]
    request = load(name)
    assert isinstance(request, m.Request) and request.method == method
    assert request.from_.sip_uri.user == device and request.from_.tag
    assert request.cseq[1] == method
    if length is not None:
        assert int(request.header("content-length")) == length == len(request.body)


def test_compact_forms_and_folded_lines_and_comma_separated_via():
    request = load("dahua_register_auth_qop.txt")
    names = [k for k, _ in request.headers]
    assert names[:2] == ["Via", "Route"] and "From" in names and "Call-ID" in names and "Contact" in names
    assert request.header("v") == request.header("VIA") == request.header("via")
    assert request.header("i") == "1421553342@10.0.0.108"
    vias = request.vias
    assert [v.host for v in vias] == ["10.0.0.108", "10.0.0.1"] and vias[1].port == 5070
    assert vias[0].param("rport") == "" and vias[0].branch == "z9hG4bK672102315"
    auth = request.header("Authorization")
    assert "\n" not in auth and 'nonce="' in auth and 'response="' in auth and "qop=auth" in auth
    assert request.header("Content-Length") == "0"


def test_several_via_headers_keep_their_order():
    data = (b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
            b"Via: SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK2 , SIP/2.0/UDP [2001:db8::2]:5062;branch=z9hG4bK3\r\n"
            b"From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 5 MESSAGE\r\n\r\n")
    request = m.parse_datagram(data)
    assert [(v.transport, v.host, v.port) for v in request.vias] == [
        ("UDP", "10.0.0.1", 5060), ("TCP", "10.0.0.2", None), ("UDP", "[2001:db8::2]", 5062)]
    answer = m.response_to(request, 200, to_tag="t1")
    assert answer.header_all("Via") == request.header_all("Via")
    assert answer.to.tag == "t1" and answer.cseq == (5, "MESSAGE")


def test_response_parses_and_sdp_body_is_bytes():
    response = load("camera_invite_200.txt")
    assert isinstance(response, m.Response) and response.status == 200 and response.reason == "OK"
    assert response.to.tag == "1395712263" and response.cseq == (1, "INVITE")
    assert response.body.startswith(b"v=0\r\n") and response.body.endswith(b"y=0200007585\r\n")


def test_gb2312_header_value_is_decoded():
    data = ('MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n'
            'From: "大门" <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n\r\n').encode("gb2312")
    assert m.parse_datagram(data).from_.display == "大门"


# -- Content-Length and datagram rules


def test_datagram_without_content_length_takes_the_rest_and_longer_is_truncated():
    base = (b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n"
            b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n")
    assert m.parse_datagram(base + b"\r\nhello").body == b"hello"
    assert m.parse_datagram(base + b"Content-Length: 3\r\n\r\nhello").body == b"hel"
    with pytest.raises(m.SipParseError) as info:
        m.parse_datagram(base + b"Content-Length: 9\r\n\r\nhello")
    answer = m.error_response(info.value)
    assert answer is not None and answer.status == 400 and answer.cseq == (1, "MESSAGE")


def test_crlf_keepalive_datagram_is_none_and_stream_skips_it():
    assert m.parse_datagram(b"\r\n\r\n") is None
    data = (DATA / "hikvision_keepalive.txt").read_bytes()
    assert len(fuzz.parse_stream([b"\r\n\r\n" + data + b"\r\n\r\n" + data])[0]) == 2


def test_stream_splits_two_messages_at_any_point():
    data = (DATA / "hikvision_keepalive.txt").read_bytes() + (DATA / "hikvision_nvr_catalog_1of3.txt").read_bytes()
    whole = fuzz.parse_stream([data])
    assert len(whole[0]) == 2 and whole[1] is None
    for cut in range(len(data)):
        assert fuzz.parse_stream([data[:cut], data[cut:]]) == whole


@pytest.mark.parametrize("data,status", [
    ((b"REGISTER sip:a@b SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:x@y>\r\n"
      b"Call-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n"), 505),
    ((b"REGISTER sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:x@y>\r\n"
      b"Call-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"), 400),
    ((b"REGISTER sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:x@y>\r\n"
      b"Call-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 2000000\r\n\r\n"), 413),
])
def test_refused_requests_get_an_addressed_answer(data, status):
    with pytest.raises(m.SipParseError) as info:
        m.parse_datagram(data)
    assert info.value.status_hint == status
    answer = m.error_response(info.value)
    assert answer.status == status and answer.header("Warning").startswith("399 ")
    assert m.parse_datagram(m.serialize(answer)).status == status
    assert fuzz.parse_stream([data])[1] == status


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01", b"REGISTER sip:a SIP/2.0\r\n\r\n",
    b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n", b"INVITE sip:a@b SIP/2.0\r\n Via: folded-first\r\n\r\n",
])
def test_garbage_is_refused_without_an_answer(data):
    with pytest.raises(m.SipParseError) as info:
        m.parse_datagram(data + b"\r\n\r\n")
    assert m.error_response(info.value) is None


def test_header_block_limit_on_a_stream():
    framer = m.StreamFramer()
    framer.receive_data(b"MESSAGE sip:a@b SIP/2.0\r\nX: " + b"a" * m.MAX_HEADER_BYTES)
    with pytest.raises(m.SipParseError) as info:
        framer.next_event()
    assert info.value.status_hint == 413 and framer.errored and framer.buffered == 0


def test_serialize_sets_content_length():
    request = m.Request("MESSAGE", "sip:a@b", (("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("From", "<sip:x@y>;tag=1"),
                                                ("To", "<sip:a@b>"), ("Call-ID", "c"), ("CSeq", "1 MESSAGE"),
                                                ("Content-Length", "99")), "中".encode("gb2312"))
    data = m.serialize(request)
    assert b"\r\nContent-Length: 2\r\n\r\n" in data and data.endswith("中".encode("gb2312"))
    assert m.serialize(m.Response(200, "OK", request.headers[:5])).endswith(b"Content-Length: 0\r\n\r\n")
    with pytest.raises(m.LocalProtocolError):
        m.serialize(m.Request("MESSAGE", "sip:a b", ()))
    with pytest.raises(m.LocalProtocolError):
        m.serialize(m.Response(200, "OK", (("X", "a\r\nB: c"),)))


def test_name_addr_forms():
    a = m.parse_name_addr('"Cam 1" <sip:3402@192.168.1.64:5060;transport=udp>;tag=abc;expires=60')
    assert (a.display, a.uri, a.tag, a.param("expires")) == ("Cam 1", "sip:3402@192.168.1.64:5060;transport=udp",
                                                              "abc", "60")
    uri = a.sip_uri
    assert (uri.user, uri.host, uri.port, uri.param("transport")) == ("3402", "192.168.1.64", 5060, "udp")
    bare = m.parse_name_addr("sip:3402@3402000000;tag=9")
    assert bare.uri == "sip:3402@3402000000" and bare.tag == "9"


# -- addressing


def test_received_and_rport_are_stamped_and_answered_behind_nat():
    request = load("hikvision_register.txt")  # Via 192.168.1.64:5060;rport from behind a 4G router
    stamped = stamp_received(request, ("203.0.113.9", 40123))
    top = stamped.top_via
    assert top.param("received") == "203.0.113.9" and top.param("rport") == "40123"
    assert response_destination(stamped, "UDP") == Destination("UDP", "203.0.113.9", 40123)
    assert response_destination(stamped, "tcp") == Destination("TCP", "203.0.113.9", 40123)
    answer = m.response_to(stamped, 200, to_tag="x")
    assert "received=203.0.113.9" in answer.header("Via") and "rport=40123" in answer.header("Via")


def test_without_rport_the_sent_by_port_is_used():
    request = load("dahua_register_auth_qop.txt")
    request = m.with_header(request, "Via", "SIP/2.0/UDP 10.0.0.108:5070;branch=z9hG4bK1")
    stamped = stamp_received(request, ("203.0.113.9", 40123))
    assert stamped.top_via.param("rport") is None
    assert response_destination(stamped, "UDP") == Destination("UDP", "203.0.113.9", 5070)
    same = stamp_received(request, ("10.0.0.108", 5070))
    assert same.top_via.param("received") is None
    assert response_destination(same, "UDP") == Destination("UDP", "10.0.0.108", 5070)
    maddr = m.parse_via("SIP/2.0/UDP h:5062;maddr=239.1.1.1;received=1.2.3.4")[0]
    assert response_destination(maddr, "UDP") == Destination("UDP", "239.1.1.1", 5062)


def test_make_via():
    via = m.parse_via(make_via("udp", "192.168.1.10", 5060))[0]
    assert via.transport == "UDP" and via.branch.startswith("z9hG4bK") and via.param("rport") == ""


# -- hypothesis

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~", min_size=1,
                 max_size=12)
_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30).map(str.strip)


@st.composite
def requests(draw):
    method = draw(_token).upper()
    extra = draw(st.lists(st.tuples(_token.filter(lambda n: n.lower() not in m.COMPACT_FORMS
                                                  and n.lower() != "content-length"), _value), max_size=5))
    headers = (("Via", f"SIP/2.0/UDP 10.0.0.{draw(st.integers(1, 254))}:5060;branch=z9hG4bK{draw(_token)}"),
               ("From", f"<sip:{draw(_token)}@3402000000>;tag={draw(_token)}"), ("To", "<sip:a@b>"),
               ("Call-ID", draw(_token)), ("CSeq", f"{draw(st.integers(0, 2**31))} {method}"), *extra)
    return m.Request(method, f"sip:{draw(_token)}@h", headers, draw(st.binary(max_size=64)))


@settings(max_examples=150, deadline=None)
@given(requests())
def test_round_trip(request):
    data = m.serialize(request)
    parsed = m.parse_datagram(data)
    assert fuzz._without_length(parsed) == request
    assert fuzz.parse_stream([data]) == ([parsed], None)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_only_raises_sip_parse_error(data):
    fuzz.check_one(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(p.name for p in DATA.glob("*.txt"))), st.data())
def test_mutated_device_texts(name, data):
    raw = bytearray((DATA / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    fuzz.check_one(bytes(raw))


def test_a_bad_second_via_does_not_stop_the_answer():
    data = (b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1, garbage here\r\n"
            b"From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 5 MESSAGE\r\n\r\n")
    request = m.parse_datagram(data)
    stamped = stamp_received(request, ("203.0.113.1", 7000))
    assert stamped.header("Via").endswith(", garbage here")
    assert response_destination(stamped, "UDP") == Destination("UDP", "203.0.113.1", 7000)
    with pytest.raises(m.SipParseError):
        _ = request.vias


def test_parsed_values_kept_on_a_message_follow_its_copies():
    request = load("hikvision_register.txt")
    assert request.top_via.host == "192.168.1.64" and request.header("v") == request.header("Via")
    moved = m.with_header(request, "Via", "SIP/2.0/TCP 10.9.9.9:5070;branch=z9hG4bKmoved")
    assert moved.top_via.host == "10.9.9.9" and moved.header("via").startswith("SIP/2.0/TCP")
    assert request.top_via.host == "192.168.1.64"  # the original is untouched
    renamed = m.with_header(request, "From", "<sip:34020000001320000099@3402000000>;tag=z")
    assert renamed.from_.sip_uri.user == "34020000001320000099" and renamed.from_.tag == "z"
    stamped = stamp_received(request, ("203.0.113.9", 40123))
    assert stamped.from_ == request.from_ and stamped.cseq == request.cseq
    assert stamped.top_via.param("received") == "203.0.113.9"
    assert m.parse_via(stamped.header("Via").split(",")[0])[0] == stamped.top_via
    assert stamped == m.Request(request.method, request.uri, stamped.headers, request.body)
