"""The text-message framer RTSP and SIP share (``pms_trio.textframe``): the same limits as the media
core's RTSP framing, need-more-data however the bytes are cut, one error name for the peer's
mistakes, and each protocol's own status for a header block over the limit."""

from __future__ import annotations

import pytest

from pms_trio import _core, textframe
from pms_trio.rtsp import protocol as rtsp
from pms_trio.sip import message as sip
from pms_trio.sip.errors import SipParseError

SIP_MESSAGE = (b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n"
               b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 4\r\n\r\nbody")


def test_limits_are_the_media_cores() -> None:
    assert textframe.MAX_BODY_BYTES == _core.RTSP_MAX_BODY == 256 * 1024
    assert textframe.MAX_HEADER_BYTES == _core.RTSP_MAX_HEADER == 64 * 1024
    assert rtsp.MAX_BODY_BYTES == sip.MAX_BODY_BYTES == textframe.MAX_BODY_BYTES
    assert rtsp.MAX_HEADER_BYTES == sip.MAX_HEADER_BYTES == textframe.MAX_HEADER_BYTES


def test_one_error_name_and_one_need_data() -> None:
    assert rtsp.RemoteProtocolError is textframe.RemoteProtocolError
    assert issubclass(SipParseError, textframe.RemoteProtocolError)
    assert rtsp.NEED_DATA is sip.NEED_DATA is textframe.NEED_DATA
    assert rtsp.ConnectionClosed is sip.ConnectionClosed is textframe.ConnectionClosed


def _framer() -> textframe.TextFramer[bytes]:
    def head(block: bytes) -> tuple[bytes, int]:
        start, lines = textframe.split_block(block)
        headers = tuple((k.strip(), v.strip()) for k, _, v in (line.decode().partition(":") for line in lines))
        return start, textframe.content_length(headers) or 0

    return textframe.TextFramer(head, name="TEST", first_bytes=frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                                header_status=431)


def test_messages_cut_at_every_byte() -> None:
    stream = b"\r\nONE x\r\nContent-Length: 3\r\n\r\nabc\r\nTWO y\r\n\r\n"
    for cut in range(len(stream) + 1):
        f = _framer()
        out = []
        for piece in (p for p in (stream[:cut], stream[cut:]) if p):
            f.receive_data(piece)
            while (m := f.next_message()) is not textframe.NEED_DATA:
                out.append(m)
        f.receive_data(b"")
        assert out == [(b"ONE x", b"abc"), (b"TWO y", b"")], cut
        assert isinstance(f.at_end(), textframe.ConnectionClosed)


def test_content_length_rules() -> None:
    assert textframe.content_length(()) is None
    assert textframe.content_length((("content-length", "12"),)) == 12
    assert textframe.content_length((("Content-Length", "5"), ("CONTENT-LENGTH", "5"))) == 5
    for bad in ((("Content-Length", "5"), ("Content-Length", "6")), (("Content-Length", "-1"),),
                (("Content-Length", "1" * 13),)):
        with pytest.raises(textframe.RemoteProtocolError) as e:
            textframe.content_length(bad)
        assert e.value.status_hint == 400
    with pytest.raises(textframe.RemoteProtocolError) as e:
        textframe.content_length((("Content-Length", str(textframe.MAX_BODY_BYTES + 1)),))
    assert e.value.status_hint == 413
    with pytest.raises(SipParseError):
        textframe.content_length((("Content-Length", "x"),), SipParseError)


def test_errors_are_fatal_and_eof_mid_message_is_one() -> None:
    f = _framer()
    f.receive_data(b"ONE x\r\nContent-Length: 9\r\n\r\nabc")
    assert f.next_message() is textframe.NEED_DATA
    f.receive_data(b"")
    with pytest.raises(textframe.RemoteProtocolError):
        f.at_end()
    g = _framer()
    g.receive_data(b"\x16\x03\x01")
    with pytest.raises(textframe.RemoteProtocolError):
        g.next_message()


def test_each_protocol_keeps_its_status_for_a_long_header_block() -> None:
    block = b"X: " + b"a" * textframe.MAX_HEADER_BYTES
    conn = rtsp.Connection()
    conn.receive_data(b"OPTIONS rtsp://h/ RTSP/1.0\r\n" + block)
    with pytest.raises(rtsp.RemoteProtocolError) as e:
        conn.next_event()
    assert e.value.status_hint == 400  # 431 is not an RTSP status
    framer = sip.StreamFramer()
    framer.receive_data(b"MESSAGE sip:a@b SIP/2.0\r\n" + block)
    with pytest.raises(SipParseError) as s:
        framer.next_event()
    assert s.value.status_hint == 413
    assert framer.errored and conn.errored


def test_body_over_the_limit_is_413_in_both() -> None:
    too_long = str(textframe.MAX_BODY_BYTES + 1).encode()
    conn = rtsp.Connection()
    conn.receive_data(b"ANNOUNCE rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nContent-Length: " + too_long + b"\r\n\r\n")
    with pytest.raises(rtsp.RemoteProtocolError) as e:
        conn.next_event()
    assert e.value.status_hint == 413
    framer = sip.StreamFramer()
    framer.receive_data(SIP_MESSAGE.replace(b"Content-Length: 4", b"Content-Length: " + too_long))
    with pytest.raises(SipParseError) as s:
        framer.next_event()
    assert s.value.status_hint == 413 and s.value.headers  # a request: answerable


def test_sip_stream_through_the_shared_framer() -> None:
    framer = sip.StreamFramer()
    for b in b"\r\n" + SIP_MESSAGE + SIP_MESSAGE:
        framer.receive_data(bytes([b]))
    first, second = framer.next_event(), framer.next_event()
    assert isinstance(first, sip.Request) and first.body == b"body" and second == first
    assert framer.next_event() is sip.NEED_DATA
    framer.receive_data(b"")
    assert isinstance(framer.next_event(), sip.ConnectionClosed)
