"""The core's events are frozen records, one class per kind (``rust/py/src/events.rs``), and the event
pump (``pms_trio.events``) hands each to its sink by class."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pms_trio import _core
from pms_trio.events import dispatch

RECORDS = [
    (_core.TransportConnected(7), {"transport_id": 7}),
    (_core.TransportClosed(7, "ice-timeout"), {"transport_id": 7, "reason": "ice-timeout"}),
    (_core.ProducerStarted("cam", ["video/H264", "audio/opus"]), {"stream": "cam",
                                                                   "codecs": ("video/H264", "audio/opus")}),
    (_core.RtspMessage(3, b"OPTIONS * RTSP/1.0\r\n\r\n"), {"transport_id": 3, "data": b"OPTIONS * RTSP/1.0\r\n\r\n"}),
    (_core.RtspAlive(3), {"transport_id": 3}),
    (_core.ParameterSets("cam", "H264", [b"\x67\x42", b"\x68\xce"]), {"stream": "cam", "codec": "H264",
                                                                      "nals": (b"\x67\x42", b"\x68\xce")}),
    (_core.KeyframeWanted("cam"), {"stream": "cam"}),
    (_core.LogRecord("warn", "ice", "no candidate"), {"level": "warn", "tag": "ice", "message": "no candidate"}),
]


@pytest.mark.parametrize(("record", "fields"), RECORDS, ids=lambda r: type(r).__name__)
def test_records_are_frozen_and_compare_by_value(record: Any, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        assert getattr(record, name) == value
        with pytest.raises(AttributeError):
            setattr(record, name, value)
    assert record == type(record)(*fields.values())
    assert record != object() and type(record).__name__ in repr(record)


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, *args))


def test_dispatch_by_class() -> None:
    sink = Sink()
    for record, _ in RECORDS:
        dispatch(record, sink)  # type: ignore[arg-type]
    assert sink.calls == [
        ("on_transport_connected", 7),
        ("on_transport_closed", 7, "ice-timeout"),
        ("on_producer_started", "cam", ["video/H264", "audio/opus"]),
        ("on_rtsp_message", 3, b"OPTIONS * RTSP/1.0\r\n\r\n"),
        ("on_rtsp_alive", 3),
        ("on_parameter_sets", "cam", "H264", [b"\x67\x42", b"\x68\xce"]),
        ("on_keyframe_wanted", "cam"),
    ]  # the log record went to the pms_trio.core logger


def test_dispatch_survives_a_failing_sink_and_unknown_objects(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        def on_transport_closed(self, transport_id: int, reason: str) -> None:
            raise RuntimeError("bug in an owner")

    with caplog.at_level(logging.DEBUG, logger="pms_trio.events"):
        dispatch(_core.TransportClosed(1, "eof"), Failing())  # type: ignore[arg-type]
        dispatch(("transport_closed", 1, "eof"), Failing())  # type: ignore[arg-type]
    assert "handling event" in caplog.text and "unhandled event" in caplog.text
