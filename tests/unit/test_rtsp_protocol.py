"""rtsp.protocol (sans-IO framing): real client texts (ffmpeg, VLC, GStreamer from fuzz/corpus/rtsp),
every error path, splits at every byte, hypothesis round trips and garbage. The header helpers are
tested in ``test_rtsp_headers``, the Appendix A state machine in ``test_rtsp_session``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pms_trio.rtsp import headers as h
from pms_trio.rtsp import protocol as p

FUZZ = Path(__file__).parents[2] / "fuzz"
CORPUS = FUZZ / "corpus" / "rtsp"


def _target():
    spec = importlib.util.spec_from_file_location("atheris_rtsp", FUZZ / "atheris_rtsp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fuzz = _target()


def events_of(data: bytes, role=p.SERVER):
    return fuzz.parse_all([data], role)


def refused(data: bytes) -> p.RemoteProtocolError:
    conn = p.Connection()
    conn.receive_data(data)
    conn.receive_data(b"")
    with pytest.raises(p.RemoteProtocolError) as info:
        while True:
            event = conn.next_event()
            assert not isinstance(event, p.ConnectionClosed), "no error"
    assert conn.errored
    return info.value


# ---------------------------------------------------------------------------------------------
# Real clients

CLIENTS = {
    "ffmpeg_play_tcp.bin": ("Lavf", ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "PLAY", "$1", "GET_PARAMETER", "$3",
                                     "TEARDOWN"]),
    "ffmpeg_play_udp.txt": ("Lavf", ["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN"]),
    "ffmpeg_publish_tcp.bin": ("Lavf", ["OPTIONS", "ANNOUNCE", "SETUP", "SETUP", "RECORD", "$0", "$2", "$0", "$1",
                                        "TEARDOWN"]),
    "ffmpeg_publish_udp.txt": ("Lavf", ["ANNOUNCE", "SETUP", "SETUP", "RECORD"]),
    "vlc_play_udp.txt": ("LibVLC", ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "PLAY", "GET_PARAMETER", "TEARDOWN"]),
    "vlc_play_tcp.bin": ("LibVLC", ["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "$1", "OPTIONS"]),
    "gstreamer_play.txt": ("GStreamer/1.", ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "PLAY", "TEARDOWN"]),
    "gstreamer_record.txt": ("GStreamer/1.", ["ANNOUNCE", "SETUP", "SETUP", "RECORD"]),
}


def _names(events):
    return [f"${e.channel}" if isinstance(e, p.InterleavedFrame) else e.method for e in events]


@pytest.mark.parametrize("name", CLIENTS)
def test_real_client_conversation_parses_and_is_served(name):
    agent, methods = CLIENTS[name]
    events, error = events_of((CORPUS / name).read_bytes())
    assert error is None and _names(events) == methods
    requests = [e for e in events if isinstance(e, p.Request)]
    assert all(r.version == "RTSP/1.0" and r.header("user-agent").startswith(agent) for r in requests)
    assert [int(r.cseq) for r in requests] == sorted(int(r.cseq) for r in requests)
    assert fuzz.simulate(events) == [200] * len(requests)  # the session machine accepts every step


def test_ffmpeg_announce_body_and_record_transport():
    events, _ = events_of((CORPUS / "ffmpeg_publish_tcp.bin").read_bytes())
    announce, setup = events[1], events[2]
    assert announce.header("Content-Type") == "application/sdp"
    assert announce.body.startswith(b"v=0\r\n") and len(announce.body) == int(announce.header("content-length"))
    assert h.parse_transport(setup.header("Transport")) == [
        h.TransportSpec(lower="TCP", interleaved=(0, 1), mode="RECORD")]
    assert h.parse_url(setup.uri, ["streamid=0", "streamid=1"]) == \
        h.RtspUrl("127.0.0.1", 8554, "live/pub", "streamid=0")
    assert events[5] == p.InterleavedFrame(0, events[5].payload) and events[5].payload[:1] == b"\x80"


@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda q: q.name)
def test_split_at_every_byte_gives_the_same_events(path):
    data = path.read_bytes()
    whole = events_of(data)
    for cut in range(1, len(data)):
        assert fuzz.parse_all([data[:cut], data[cut:]]) == whole, cut
    assert fuzz.parse_all([data[i:i + 1] for i in range(len(data))]) == whole


# ---------------------------------------------------------------------------------------------
# Errors the peer makes

OPTIONS = b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 3\r\n\r\n"


@pytest.mark.parametrize("data, status", [
    (b"\x16\x03\x01\x00\xa5\x01", 400),  # a TLS hello: refused from its first byte
    (b"hello world\r\n", 400),  # refused at the end of its first line, before any blank line
    (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"OPTIONS rtsp://h/cam RTSP/2.0\r\nCSeq: 1\r\n\r\n", 505),
    (b"OPTIONS rtsp://h/cam\r\nCSeq: 1\r\n\r\n", 400),
    (b"OPTIONS  rtsp://h/cam RTSP/1.0\r\n\r\n", 400),
    (b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq 1\r\n\r\n", 400),
    (b"OPTIONS rtsp://h/cam RTSP/1.0\r\n: empty\r\n\r\n", 400),
    (b"OPTIONS rtsp://h/cam RTSP/1.0\r\n continuation first\r\n\r\n", 400),
    (b"OPTIONS rtsp://h/cam RTSP/1.0\r\nX: a\x00b\r\n\r\n", 400),
    (b"OPTIONS rtsp://h/cam RTSP/1.0\r\nX: a\rb\r\n\r\n", 400),
    (b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nContent-Length: -4\r\n\r\nv=0\r\n", 400),
    (b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nContent-Length: ten\r\n\r\n", 400),
    (b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    (b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nContent-Length: 99999999999999\r\n\r\n", 400),
    (b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nContent-Length: 262145\r\n\r\n", 413),
    (b"DESCRIBE rtsp://h/cam RTSP/1.0\r\nCSeq: 2\r\n", 400),  # truncated, then EOF
    (b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nContent-Length: 100\r\n\r\nv=0\r\n", 400),  # lies long, EOF
    (b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nContent-Length: 2\r\n\r\nv=0\r\n", 400),  # lies short
    (b"$\x00\x00\x10abc", 400),  # a frame cut by EOF
])
def test_bad_input_is_refused_with_its_status(data, status):
    e = refused(data)
    assert e.status_hint == status and e.message


def test_lying_content_length_waits_for_the_promised_bytes():
    conn = p.Connection()
    conn.receive_data(b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 10\r\n\r\nv=0\r\n")
    assert conn.next_event() is p.NEED_DATA  # the adapter's idle timeout ends this
    conn.receive_data(b"12345" + OPTIONS)
    assert conn.next_event().body == b"v=0\r\n12345"
    assert conn.next_event().method == "OPTIONS"


def test_short_content_length_leaves_the_rest_to_parse_as_the_next_message():
    conn = p.Connection()
    conn.receive_data(b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nContent-Length: 3\r\n\r\nv=0\r\no=- 0 0\r\n\r\n")
    assert conn.next_event().body == b"v=0"
    with pytest.raises(p.RemoteProtocolError):
        conn.next_event()


def test_header_block_over_64_kib_is_refused_at_64_kib_with_bounded_memory():
    conn = p.Connection()
    conn.receive_data(b"OPTIONS rtsp://h/cam RTSP/1.0\r\n")
    chunk = b"X-Pad: " + b"a" * 1017 + b"\r\n"
    fed = 0
    with pytest.raises(p.RemoteProtocolError) as info:
        while True:
            assert conn.next_event() is p.NEED_DATA
            assert conn.buffered <= p.MAX_HEADER_BYTES
            conn.receive_data(chunk)
            fed += len(chunk)
    assert info.value.status_hint == 400 and "64 KiB" in info.value.message
    assert fed <= p.MAX_HEADER_BYTES + len(chunk) and conn.buffered == 0
    # exactly at the limit is fine, fed whole or split
    block = b"OPTIONS rtsp://h/cam RTSP/1.0\r\nX: " + b"a" * (p.MAX_HEADER_BYTES - 38) + b"\r\n\r\n"
    assert len(block) == p.MAX_HEADER_BYTES
    assert events_of(block)[1] is None and fuzz.parse_all([block[:40000], block[40000:]]) == events_of(block)
    assert events_of(block[:-4] + b"a\r\n\r\n")[1] == 400


def test_a_request_line_without_end_is_refused_at_64_kib():
    assert refused(b"OPTIONS " + b"x" * p.MAX_HEADER_BYTES).status_hint == 400


def test_error_state_is_sticky_and_input_is_dropped():
    conn = p.Connection()
    conn.receive_data(b"garbage\r\n")
    with pytest.raises(p.RemoteProtocolError):
        conn.next_event()
    conn.receive_data(OPTIONS)
    assert conn.buffered == 0
    with pytest.raises(p.RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 400 and "earlier" in info.value.message


def test_refused_request_after_its_headers_still_gets_its_cseq_echoed():
    conn = p.Connection()
    conn.receive_data(b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nCSeq: 7\r\nContent-Length: 900000\r\n\r\n")
    with pytest.raises(p.RemoteProtocolError) as info:
        conn.next_event()
    out = conn.send_response(p.error_response(info.value))
    assert out.startswith(b"RTSP/1.0 413 Request Entity Too Large\r\nCSeq: 7\r\n")
    (response,), _ = events_of(out, p.CLIENT)
    assert response.header("Content-Type").startswith("text/plain") and b"262144" in response.body


def test_error_response_for_garbage_has_no_cseq_and_sanitized_message():
    e = p.RemoteProtocolError("bad\r\nthing", 455, headers=(("Allow", "OPTIONS, SETUP"),))
    response = p.error_response(e)
    assert response.status == 455 and response.reason == "Method Not Valid in This State"
    assert response.header("allow") == "OPTIONS, SETUP" and b"\r\n" not in response.body[:-2]
    assert p.Connection().send_response(response).startswith(b"RTSP/1.0 455 Method Not Valid in This State\r\n"
                                                             b"Allow: ")


# ---------------------------------------------------------------------------------------------
# Framing details


def test_cseq_echo_follows_request_order_and_an_explicit_cseq_wins():
    conn = p.Connection()
    conn.receive_data(OPTIONS.replace(b"3", b"5") + OPTIONS.replace(b"3", b"6") + b"OPTIONS * RTSP/1.0\r\n\r\n")
    assert [conn.next_event().cseq for _ in range(3)] == ["5", "6", None]
    assert b"CSeq: 5\r\n" in conn.send_response(p.Response(200, "OK"))
    assert b"CSeq: 99\r\n" in conn.send_response(p.Response(200, "OK", (("CSeq", "99"),)))
    assert b"CSeq" not in conn.send_response(p.Response(200, "OK"))
    assert b"CSeq" not in conn.send_response(p.Response(200, "OK"))  # nothing pending


def test_content_length_is_added_for_a_body_and_checked_when_given():
    out = p.Connection().send_response(p.Response(200, "OK", (("Content-Type", "application/sdp"),), b"v=0\r\n"))
    assert out.endswith(b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n")
    assert b"Content-Length" not in p.Connection().send_response(p.Response(200, "OK"))
    with pytest.raises(p.LocalProtocolError):
        p.encode_response(p.Response(200, "OK", (("Content-Length", "4"),), b"v=0\r\n"))


def test_header_lookup_is_case_insensitive_and_returns_the_first():
    r = p.Request("OPTIONS", "*", headers=(("cseq", "1"), ("X-A", "1"), ("x-a", "2")))
    assert r.header("CSEQ") == "1" == r.cseq and r.header("X-A") == "1" and r.header("nope", "d") == "d"


def test_lenient_forms_lf_folding_blank_lines_and_tabs():
    events, _ = events_of((CORPUS / "lf_only.txt").read_bytes())
    assert events[0].headers == (("CSeq", "1"), ("User-Agent", "nc"))
    events, _ = events_of((CORPUS / "folded_header.txt").read_bytes())
    assert events[0].header("X-Long") == "a b"
    events, _ = events_of((CORPUS / "keepalive_crlf.txt").read_bytes())
    assert events == [p.Request("OPTIONS", "*", "RTSP/1.0", (("CSeq", "9"),))]
    events, _ = events_of(b"OPTIONS * RTSP/1.0\r\nCSeq :\t 4 \t\r\nX-Empty:\r\n\r\n")
    assert events[0].headers == (("CSeq", "4"), ("X-Empty", ""))


def test_frames_and_text_interleave_in_any_order():
    data = (p.encode_interleaved(0, b"") + OPTIONS + p.encode_interleaved(255, b"\r\n\r\n$")
            + p.encode_interleaved(1, bytes(65535)))
    events, error = events_of(data)
    assert error is None and [type(e).__name__ for e in events] == ["InterleavedFrame", "Request",
                                                                    "InterleavedFrame", "InterleavedFrame"]
    assert events[2] == p.InterleavedFrame(255, b"\r\n\r\n$") and len(events[3].payload) == 65535
    assert p.Connection().interleaved(3, b"ab") == b"$\x03\x00\x02ab"


def test_client_role_reads_responses():
    data = (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n"
            b"RTSP/1.0 454 Session Not Found\r\nCSeq: 2\r\n\r\nRTSP/1.0 200\r\nContent-Length: 2\r\n\r\nhi")
    events, error = events_of(data, p.CLIENT)
    assert error is None and [(e.status, e.reason) for e in events] == [(200, "OK"), (454, "Session Not Found"),
                                                                      (200, "")]
    assert events[2].body == b"hi"
    assert events_of(b"OPTIONS * RTSP/1.0\r\n\r\n", p.CLIENT)[1] == 400


@pytest.mark.parametrize("call", [
    lambda: p.encode_request(p.Request("OPTIONS", "*", headers=(("X", "a\r\nInjected: 1"),))),
    lambda: p.encode_request(p.Request("OPTIONS", "*", headers=(("Bad Name", "1"),))),
    lambda: p.encode_request(p.Request("OPTIONS", "*", headers=(("X", " padded"),))),
    lambda: p.encode_request(p.Request("OPT IONS", "*")),
    lambda: p.encode_request(p.Request("OPTIONS", "rtsp://h/a b")),
    lambda: p.encode_request(p.Request("OPTIONS", "*", "RTSP1.0")),
    lambda: p.encode_request(p.Request("OPTIONS", "*", body="text")),
    lambda: p.encode_response(p.Response(99, "Low")),
    lambda: p.encode_response(p.Response(200, "O\nK")),
    lambda: p.encode_interleaved(256, b""),
    lambda: p.encode_interleaved(-1, b""),
    lambda: p.encode_interleaved(0, bytes(65536)),
    lambda: p.Connection().send_request(p.Request("OPTIONS", "*")),
    lambda: p.Connection(p.CLIENT).send_response(p.Response(200, "OK")),
])
def test_our_misuse_is_a_local_protocol_error(call):
    with pytest.raises(p.LocalProtocolError):
        call()


def test_receive_after_eof_is_our_bug_and_eof_twice_is_fine():
    conn = p.Connection()
    conn.receive_data(b"")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), p.ConnectionClosed)
    assert isinstance(conn.next_event(), p.ConnectionClosed)
    with pytest.raises(p.LocalProtocolError):
        conn.receive_data(b"x")


# ---------------------------------------------------------------------------------------------
# Hypothesis: round trips and garbage

tokens = st.text(alphabet="!#%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-",
                 min_size=1, max_size=12)
values = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30).map(lambda v: v.strip(" \t"))
header_lists = st.lists(st.tuples(tokens.filter(lambda n: n.lower() != "content-length"), values), max_size=6)
uris = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


def _with_length(headers, body):
    return tuple(headers) + ((("Content-Length", str(len(body))),) if body else ())


requests = st.builds(lambda m, u, hs, b: p.Request(m, u, "RTSP/1.0", _with_length(hs, b), b),
                     tokens.filter(lambda m: not m.startswith("$")), uris, header_lists, st.binary(max_size=40))
responses = st.builds(lambda c, r, hs, b: p.Response(c, r, _with_length(hs, b), b),
                      st.integers(100, 999), values, header_lists, st.binary(max_size=40))
frames = st.builds(p.InterleavedFrame, st.integers(0, 255), st.binary(max_size=70))


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)]) if b > a]  # b"" would be EOF


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(requests, frames), max_size=8), st.lists(st.integers(0, 10**6), max_size=10))
def test_request_and_frame_sequences_round_trip(events, cuts):
    client = p.Connection(p.CLIENT)
    data = b"".join(client.interleaved(e.channel, e.payload) if isinstance(e, p.InterleavedFrame)
                    else client.send_request(e) for e in events)
    assert fuzz.parse_all(_split(data, cuts)) == (events, None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(responses, frames), max_size=8), st.lists(st.integers(0, 10**6), max_size=10))
def test_response_and_frame_sequences_round_trip(events, cuts):
    data = b"".join(p.encode_interleaved(e.channel, e.payload) if isinstance(e, p.InterleavedFrame)
                    else p.encode_response(e) for e in events)
    assert fuzz.parse_all(_split(data, cuts), p.CLIENT) == (events, None)


_seed = (CORPUS / "ffmpeg_publish_tcp.bin").read_bytes()


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.tuples(st.integers(0, len(_seed)), st.integers(0, len(_seed)), st.binary(max_size=8)).map(
                     lambda t: _seed[:t[0]] + t[2] + _seed[t[1]:])))
def test_garbage_gives_events_or_remote_protocol_error_only(data):
    fuzz.check_one(data)


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=1, max_size=64).filter(lambda b: b"\n" not in b and b[0] not in b"$\r\n"),
       st.integers(1000, 9000))
def test_endless_garbage_is_refused_within_64_kib(chunk, size):
    conn = p.Connection()
    fed = 0
    with pytest.raises(p.RemoteProtocolError):
        while fed <= p.MAX_HEADER_BYTES + size:
            conn.receive_data((chunk * (size // len(chunk) + 1))[:size])
            fed += size
            assert conn.next_event() is p.NEED_DATA
            assert conn.buffered <= p.MAX_HEADER_BYTES + size
    assert fed <= p.MAX_HEADER_BYTES + size
