"""Atheris fuzz target for the GB28181 service's network inputs (``pms_trio.gb28181.service`` and the
``/srs-sip/v1`` routes of ``pms_trio.http.gb_api``), socket-less.

Invariant: any datagram, delivered from a device address to a :class:`GbService` (with digest on),
either does not parse (the transport answers or drops it, see atheris_sip.py) or is handled without
an exception, and everything the service queues to send parses back as SIP; a device that
registered (no password) and then sends the input as a MESSAGE body gets exactly one final
response, 200 or 400. The same bytes as the JSON body of each POST route (live and playback
``invite``, ``bye``, ``ptz``, ``query-record``, ``pause``/``resume``/``speed``/``seek``) give a JSON
envelope whose ``code`` equals the HTTP status, never an exception.

    pip install atheris
    python fuzz/atheris_gb_service.py -runs=100000 fuzz/corpus/gb_service

``check_one`` is importable without atheris; ``tests/unit/test_fuzz_corpus.py`` replays the corpus.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import trio
import trio.testing

from pms_trio.config import SipConfig
from pms_trio.gb28181.service import GbService
from pms_trio.http import gb_api
from pms_trio.sip import message as m
from pms_trio.sip.addressing import Destination
from pms_trio.streams import StreamRegistry

DEVICE = "34020000001320000001"
SOURCE = Destination("UDP", "192.0.2.7", 5062)


def _config(password: str) -> SipConfig:
    return SipConfig(enable=True, serial="34020000002000000001", realm="3402000000", listen_ip="127.0.0.1", port=0,
                     announced_ip="", password=password, keepalive_timeout=180.0, media_port=9000,
                     media_transport="tcp-passive")


def _service(password: str) -> GbService:
    service = GbService(_config(password), None, StreamRegistry())
    service.transport.address = ("127.0.0.1", 5060)
    return service


def _drain(service: GbService) -> list[m.Message]:
    out = []
    while True:
        try:
            data, _ = service._send_out.receive_nowait()
        except trio.WouldBlock:
            return out
        parsed = m.parse_datagram(data)
        assert parsed is not None
        out.append(parsed)


def _register() -> m.Request:
    return m.Request("REGISTER", "sip:34020000002000000001@3402000000", (
        ("Via", "SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKreg"), ("From", f"<sip:{DEVICE}@3402000000>;tag=a"),
        ("To", f"<sip:{DEVICE}@3402000000>"), ("Call-ID", "r"), ("CSeq", "1 REGISTER")))


def _message(body: bytes) -> m.Request:
    return m.Request("MESSAGE", "sip:34020000002000000001@3402000000", (
        ("Via", "SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKmsg"), ("From", f"<sip:{DEVICE}@3402000000>;tag=b"),
        ("To", "<sip:34020000002000000001@3402000000>"), ("Call-ID", "m"), ("CSeq", "2 MESSAGE"),
        ("Content-Type", "Application/MANSCDP+xml")), body)


class _Gb:
    """The routes' view of the service, for bodies that get past validation."""

    def __init__(self, service: GbService) -> None:
        self.service = service
        self.plays = service.plays

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)


async def _check(data: bytes) -> None:
    service = _service("pw")
    try:
        message = m.parse_datagram(data)
    except m.SipParseError:
        message = None
    if message is not None:
        service.on_message(message, SOURCE)
        _drain(service)
    open_service = _service("")
    open_service.on_message(_register(), SOURCE)
    _drain(open_service)
    if len(data) <= m.MAX_BODY_BYTES:
        open_service.on_message(_message(data), SOURCE)
        finals = [r for r in _drain(open_service) if isinstance(r, m.Response)]
        assert len(finals) == 1 and finals[0].status in (200, 400), finals
    for route in ("invite", "bye", "ptz", "query-record", "pause", "resume", "speed", "seek"):
        with trio.move_on_after(1):  # a body that passes asks the service, which knows no device: 404
            response = await gb_api.handle(_Gb(open_service), "POST", f"/srs-sip/v1/{route}", data, "rtsp://h:1")
            doc = json.loads(response.body)
            assert doc["code"] == (0 if response.status == 200 else response.status), doc


def check_one(data: bytes) -> None:
    # Virtual time: a body that passes validation waits for a device that never answers.
    trio.run(_check, data, clock=trio.testing.MockClock(autojump_threshold=0))


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
