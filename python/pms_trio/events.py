"""The event pump: the one trio task that reads the media core's events and hands them out.

Owns the wait on ``core.event_fd()`` and the dispatch of each event record (``_core.pyi``) by its
class: :class:`~pms_trio._core.LogRecord` -> the ``pms_trio.core`` logger
(:func:`pms_trio.logs.core_log`); the recorders' files and ends -> the :class:`RecordingSink` (the
recording service, which owns recorders); every other kind -> the :class:`EventSink` it is handed
(the stream registry, which tells the transport's owner). It imports nothing above it: the sink is a
Protocol, so the graph runs streams -> events -> _core.

Handlers are synchronous and never block; an exception in one is logged and the pump goes on. An
object of an unknown class is logged at debug level (a newer core may send more kinds).
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

from . import _core, logs

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Who hears the core's events (the stream registry implements it)."""

    def on_transport_closed(self, transport_id: int, reason: str) -> None: ...

    def on_transport_connected(self, transport_id: int) -> None: ...

    def on_producer_started(self, name: str, codecs: list[str]) -> None: ...

    def on_parameter_sets(self, name: str, codec: str, nals: list[bytes]) -> None: ...

    def on_rtsp_alive(self, transport_id: int) -> None: ...

    def on_rtsp_disconnected(self, transport_id: int, reason: str) -> None: ...

    def on_keyframe_wanted(self, name: str) -> None: ...

    def on_rtsp_message(self, transport_id: int, data: bytes) -> None: ...


class RecordingSink(Protocol):
    """Who hears about recorders' files (the recording service implements it)."""

    def on_file_started(self, transport_id: int, path: str) -> None: ...

    def on_file(self, transport_id: int, path: str, size: int, duration: float, error: str = "") -> None: ...

    def on_ended(self, transport_id: int, reason: str) -> None: ...


def dispatch(event: _core.Event, sink: EventSink, recordings: RecordingSink | None = None) -> None:
    """Hand one event to its owner."""
    try:
        if isinstance(event, _core.LogRecord):
            logs.core_log(event.level, event.tag, event.message)
        elif isinstance(event, (_core.RecordingFileStarted, _core.RecordingFile, _core.RecordingEnded)):
            if recordings is None:
                log.debug("core: %r with no recording service", event)
            elif isinstance(event, _core.RecordingFileStarted):
                recordings.on_file_started(event.transport_id, event.path)
            elif isinstance(event, _core.RecordingFile):
                recordings.on_file(event.transport_id, event.path, event.bytes, event.duration, event.error)
            else:
                recordings.on_ended(event.transport_id, event.reason)
        elif isinstance(event, _core.TransportClosed):
            sink.on_transport_closed(event.transport_id, event.reason)
        elif isinstance(event, _core.TransportConnected):
            sink.on_transport_connected(event.transport_id)
        elif isinstance(event, _core.ProducerStarted):
            sink.on_producer_started(event.stream, list(event.codecs))
        elif isinstance(event, _core.ParameterSets):
            sink.on_parameter_sets(event.stream, event.codec, list(event.nals))
        elif isinstance(event, _core.RtspAlive):
            sink.on_rtsp_alive(event.transport_id)
        elif isinstance(event, _core.RtspDisconnected):
            sink.on_rtsp_disconnected(event.transport_id, event.reason)
        elif isinstance(event, _core.KeyframeWanted):
            sink.on_keyframe_wanted(event.stream)
        elif isinstance(event, _core.RtspMessage):
            sink.on_rtsp_message(event.transport_id, event.data)
        else:
            log.debug("core: unhandled event %r", event)
    except Exception:
        log.exception("core: handling event %r failed", event)


async def pump_events(core: _core.Core, sink: EventSink, *, recordings: RecordingSink | None = None,
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Wait for the wakeup fd, drain the queue, dispatch; forever (until cancelled)."""
    fd = core.event_fd()
    task_status.started()
    while True:
        drain(core, sink, recordings)
        await trio.lowlevel.wait_readable(fd)


def drain(core: _core.Core, sink: EventSink, recordings: RecordingSink | None = None) -> None:
    """Dispatch every queued event now (also after ``core.shutdown()``, when the recorders have
    reported their last files and the pump is gone)."""
    for event in core.poll_events():
        dispatch(event, sink, recordings)
