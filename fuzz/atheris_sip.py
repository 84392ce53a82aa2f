"""Atheris fuzz target for the SIP message layer (``pms_trio.sip``).

Invariant: any bytes either parse or raise ``SipParseError`` (status 400-599), never another
exception; as a UDP datagram and as a TCP stream fed whole, byte by byte and cut in two at every
sixteenth of its length, the stream gives the same messages and the same outcome; a refused
request's answer (when it can be addressed) parses back as a response; every message re-serializes
to bytes that parse back to the same message (Content-Length aside), and a second round trip is
exact; the header helpers (Via, From/To, CSeq, digest parameters), the response addressing and the
transaction layer raise nothing on a parsed message.

    pip install atheris
    python fuzz/atheris_sip.py -runs=100000 fuzz/corpus/sip

``check_one`` and ``parse_stream`` are importable without atheris; ``tests/unit/test_fuzz_corpus.py``
replays the corpus.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from pms_trio.sip import digest as d
from pms_trio.sip import message as m
from pms_trio.sip import transaction as t
from pms_trio.sip.addressing import Destination, response_destination, stamp_received


def parse_stream(chunks: list[bytes]) -> tuple[list[m.Message], int | None]:
    """Feed ``chunks`` then EOF to a framer; the messages and the refusing status (None: clean)."""
    framer = m.StreamFramer()
    out: list[m.Message] = []
    biggest = max((len(c) for c in chunks), default=0)
    for chunk in [*(c for c in chunks if c), b""]:  # b"" is EOF, so only at the end
        framer.receive_data(chunk)
        while True:
            try:
                event = framer.next_event()
            except m.SipParseError as e:
                assert 400 <= e.status_hint <= 599 and e.message, e
                assert framer.errored
                _check_error_answer(e)
                return out, e.status_hint
            assert framer.buffered <= m.MAX_HEADER_BYTES + biggest + m.MAX_BODY_BYTES
            if event is m.NEED_DATA:
                assert chunk, "NEED_DATA after EOF"
                break
            if isinstance(event, m.ConnectionClosed):
                assert not chunk
                return out, None
            assert isinstance(event, (m.Request, m.Response)), event
            out.append(event)
    raise AssertionError("EOF gave neither ConnectionClosed nor an error")


def parse_datagram(data: bytes) -> tuple[m.Message | None, int | None]:
    try:
        return m.parse_datagram(data), None
    except m.SipParseError as e:
        assert 400 <= e.status_hint <= 599 and e.message, e
        _check_error_answer(e)
        return None, e.status_hint


def _check_error_answer(error: m.SipParseError) -> None:
    answer = m.error_response(error)
    if answer is not None:
        again = m.parse_datagram(m.serialize(answer))
        assert isinstance(again, m.Response) and again.status == answer.status


def _without_length(message: m.Message) -> m.Message:
    return replace(message, headers=tuple(h for h in message.headers if h[0].lower() != "content-length"))


def _round_trip(message: m.Message) -> None:
    once = m.parse_datagram(m.serialize(message))
    assert once is not None and _without_length(once) == _without_length(message), (message, once)
    twice = m.parse_datagram(m.serialize(once))
    assert twice == once
    streamed, error = parse_stream([m.serialize(once)])
    assert error is None and streamed == [once]


def _exercise(message: m.Message) -> None:
    """The helpers the adapters will call on a parsed message must not raise (but SipParseError)."""
    for via in message.vias:
        _ = via.branch, via.sent_by, str(via)
    _ = message.cseq, message.call_id
    for name in ("From", "To", "Contact"):
        value = message.header(name)
        if value is not None:
            try:
                address = m.parse_name_addr(value)
                _ = address.tag, str(address)
                address.sip_uri  # noqa: B018
            except m.SipParseError:
                pass
    if isinstance(message, m.Request):
        stamped = stamp_received(message, ("198.51.100.7", 40000))
        for transport in ("UDP", "TCP"):
            response_destination(stamped, transport)
        for name in ("Authorization", "WWW-Authenticate"):
            value = message.header(name)
            if value is not None:
                try:
                    d.parse_digest(value)
                except d.DigestError:
                    pass
        auth = d.DigestAuthenticator("3402000000", secret=b"fuzz")
        auth.verify(message.method, message.header("Authorization"), "12345678", 0.0)
    layer = t.TransactionLayer()
    source = Destination("UDP", "198.51.100.7", 40000)
    outputs = layer.receive(message, source, 0.0)
    for output in outputs:
        if isinstance(output, t.Send):
            assert m.parse_datagram(output.data) is not None
    deadline = layer.next_deadline()
    if deadline is not None:
        layer.handle_timeout(deadline + 100.0)


def check_one(data: bytes) -> None:
    """The fuzzed property for one input."""
    message, _ = parse_datagram(data)
    whole = parse_stream([data])
    assert parse_stream([data[i:i + 1] for i in range(len(data))]) == whole
    for cut in range(0, len(data), max(1, len(data) // 16)):
        assert parse_stream([data[:cut], data[cut:]]) == whole
    for event in [*whole[0], *([message] if message is not None else [])]:
        _round_trip(event)
        try:
            _exercise(event)
        except m.SipParseError:
            pass


def main() -> None:
    import atheris

    # The code under test was imported above (check_one must work without atheris): instrument the
    # already-loaded modules now, or libFuzzer sees no coverage and fuzzes blind.
    atheris.instrument_all()
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
