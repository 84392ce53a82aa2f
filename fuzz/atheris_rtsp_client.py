"""Atheris fuzz target for the cascade's RTSP client: what an origin server sends it.

Invariant: any bytes read as the replies of an origin (a client :class:`Connection`, fed whole and
one byte at a time) give the same events or one ``RemoteProtocolError``; each reply then goes
through what :class:`~pms_trio.cascade.client.RtspClient` does with it (the DESCRIBE SDP with
:func:`parse_describe_sdp`, ``Content-Base`` and ``a=control`` joined into SETUP URLs, ``Session``
and ``Transport`` headers, a 401's ``WWW-Authenticate`` challenge and the ``Authorization`` it
answers with, written into a real request) and the pull's handling of keep-alive replies, raising
nothing but the documented errors (``SdpError``, ``RemoteProtocolError``, ``RtspClientError``):
no other exception may escape into the pull's task.

    pip install atheris
    python fuzz/atheris_rtsp_client.py -runs=100000 fuzz/corpus/rtsp_client

``check_one`` is importable without atheris; ``tests/unit/test_fuzz_corpus.py`` replays the corpus.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from pms_trio.cascade import client as c  # noqa: E402
from pms_trio.rtsp import headers as h  # noqa: E402
from pms_trio.rtsp import protocol as p  # noqa: E402
from pms_trio.rtsp.sdp import SdpError, parse_describe_sdp  # noqa: E402

URL = "rtsp://viewer:secret@127.0.0.1:8554/cam"


def _events(chunks: list[bytes]) -> tuple[list[p.Event], bool]:
    conn = p.Connection(p.CLIENT)
    events: list[p.Event] = []
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        while True:
            try:
                event = conn.next_event()
            except p.RemoteProtocolError as e:
                assert e.message and conn.errored
                return events, True
            if event is p.NEED_DATA:
                break
            if isinstance(event, p.ConnectionClosed):
                return events, False
            events.append(event)
    return events, False


def _use(response: p.Response) -> None:
    """What the client does with a reply (RtspClient.describe/setup/request), without sockets."""
    client = c.RtspClient(URL)
    try:
        tracks, skipped = parse_describe_sdp(response.body)
    except SdpError as e:
        assert e.status_hint in (400, 415) and e.message
    else:
        assert tracks and all(isinstance(s, str) for s in skipped)
        base = response.header("Content-Base") or response.header("Content-Location") or client.target.url
        for t in tracks:
            url = c.join_url(base, t.get("control_uri") or t["control"])
            try:
                p.encode_request(p.Request("SETUP", url))
            except p.LocalProtocolError:
                pass  # a URL with blanks: the client's request() turns it into an RtspClientError
        c._session_control(response.body)
    for name, parse in (("Session", h.parse_session), ("Transport", h.parse_transport)):
        value = response.header(name)
        if value is not None:
            try:
                parse(value)
            except p.RemoteProtocolError:
                pass
    if client._challenge(response):
        for method in ("DESCRIBE", "SETUP", "PLAY"):
            client.build(method, client.target.url)  # must encode: no LocalProtocolError


def check_one(data: bytes) -> None:
    whole, failed = _events([data])
    bytewise, failed_bytewise = _events([data[i:i + 1] for i in range(len(data))])
    assert failed == failed_bytewise
    assert whole == bytewise
    for event in whole:
        if isinstance(event, p.Response):
            _use(event)


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
