"""Atheris fuzz target for the RTSP message layer (``pms_trio.rtsp``).

Invariant: feeding any bytes to a server :class:`Connection` yields events or one
``RemoteProtocolError`` (with a 4xx/5xx status and a response that a client connection can read
back), never any other exception; the outcome is the same whether the bytes come whole or one at a
time; memory stays bounded (buffered bytes never exceed the 64 KiB header limit plus one read); every
request and frame re-serializes to bytes that parse back equal; and a simulated server (the header
helpers, the SDP parser and :class:`RtspSession` driven as the adapter will drive them) raises only
``RemoteProtocolError`` or ``SdpError``.

    pip install atheris
    python fuzz/atheris_rtsp.py -runs=100000 fuzz/corpus/rtsp

``check_one`` and ``simulate`` are importable without atheris; ``tests/unit/test_fuzz_corpus.py``
replays the corpus and ``tests/unit/test_rtsp_protocol.py`` runs the real client texts through
``simulate``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from pms_trio.rtsp import headers as h  # noqa: E402
from pms_trio.rtsp import protocol as p  # noqa: E402
from pms_trio.rtsp import sdp  # noqa: E402
from pms_trio.rtsp import session as s  # noqa: E402

SESSION_ID = "1a2b3c4d5e6f7081"  # the id the corpus conversations carry
PLAY_CONTROLS = ("trackID=0", "trackID=1")


def parse_all(chunks: list[bytes], role: p.Role = p.SERVER) -> tuple[list[p.Event], int | None]:
    """Feed ``chunks`` then EOF; the events and the refusing status (None after a clean close)."""
    conn = p.Connection(role)
    events: list[p.Event] = []
    biggest = max((len(c) for c in chunks), default=0)
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        while True:
            try:
                event = conn.next_event()
            except p.RemoteProtocolError as e:
                assert 400 <= e.status_hint <= 599 and e.message, e
                assert conn.errored
                if role is p.SERVER:
                    _check_error_response(conn.send_response(p.error_response(e)), e.status_hint)
                return events, e.status_hint
            assert conn.buffered <= p.MAX_HEADER_BYTES + biggest + p.MAX_BODY_BYTES, conn.buffered
            if event is p.NEED_DATA:
                assert chunk, "NEED_DATA after EOF"
                break
            if isinstance(event, p.ConnectionClosed):
                assert not chunk, "closed before EOF"
                return events, None
            assert isinstance(event, (p.Request, p.Response, p.InterleavedFrame)), event
            events.append(event)
    raise AssertionError("EOF gave neither ConnectionClosed nor an error")


def _check_error_response(data: bytes, status: int) -> None:
    events, error = parse_all([data], p.CLIENT)
    assert error is None and len(events) == 1, (events, error)
    assert isinstance(events[0], p.Response) and events[0].status == status


def _round_trip(event: p.Event) -> None:
    if isinstance(event, p.InterleavedFrame):
        data = p.encode_interleaved(event.channel, event.payload)
    else:
        assert isinstance(event, p.Request)
        data = p.encode_request(event)
    again, error = parse_all([data])
    assert error is None and again == [event], (event, again, error)


def simulate(events: list[p.Event], now: float = 0.0) -> list[int]:
    """Drive an :class:`RtspSession` as the server adapter will; the status of each request."""
    session = s.RtspSession(SESSION_ID, last_activity=now)
    statuses = []
    for event in events:
        if isinstance(event, p.InterleavedFrame):
            found = session.track_for_channel(event.channel)
            assert found is None or event.channel in found[0].transport.interleaved
            continue
        assert isinstance(event, p.Request)
        try:
            statuses.append(_serve(session, event, now))
        except (p.RemoteProtocolError, sdp.SdpError) as e:
            assert 400 <= e.status_hint <= 599 and e.message, e
            statuses.append(e.status_hint)
        assert (session.state is s.State.INIT) == (not session.tracks)
        assert session.next_deadline() == now + s.SESSION_TIMEOUT
    return statuses


def _serve(session: s.RtspSession, request: p.Request, now: float) -> int:
    session.check(request, now)
    for name, parse in (("Range", h.parse_range), ("Session", h.parse_session),
                        ("RTP-Info", h.parse_rtp_info)):
        value = request.header(name)
        if value is not None:
            parse(value)
    url = h.parse_url(request.uri, session.controls)
    method = request.method
    if method == s.DESCRIBE:
        text = sdp.describe_sdp(url.stream, [{"codec": "H264", "payload_type": 96},
                                             {"codec": "PCMA", "payload_type": 8}], "127.0.0.1")
        assert [t["control"] for t in sdp.parse_announce_sdp(text)] == list(PLAY_CONTROLS)
        session.describe(url.stream, PLAY_CONTROLS)
    elif method == s.ANNOUNCE:
        tracks = sdp.parse_announce_sdp(request.body)
        session.announce(url.stream, [t["control"] for t in tracks])
    elif method == s.SETUP:
        specs = h.parse_transport(request.header("Transport"))
        for spec in specs:
            plain = replace(spec, destination=None, source=None)
            assert h.parse_transport(h.format_transport(plain)) == [plain]
        track = session.setup(url.control or "", specs[0])
        h.format_transport(replace(track.transport, destination=None, source=None))
    elif method == s.PLAY:
        session.play()
    elif method == s.RECORD:
        session.record()
    elif method == s.PAUSE:
        session.pause()
    elif method == s.TEARDOWN:
        session.teardown(url.control)
    return 200


def check_one(data: bytes) -> None:
    """The fuzzed property for one input (raises AssertionError or the stray exception)."""
    whole = parse_all([data])
    by_byte = parse_all([data[i:i + 1] for i in range(len(data))])
    assert whole == by_byte, (whole, by_byte)
    events, _ = whole
    for event in events:
        _round_trip(event)
    simulate(events)


def main() -> None:
    import atheris

    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
