"""The event pump: the one trio task that reads the media core's events and hands them out.

Owns the wait on ``core.event_fd()`` and the dispatch of each event tuple (see ``_core.pyi``):

- ``("log", level, tag, message)`` -> the ``pms_trio.core`` logger (:func:`pms_trio.logs.core_log`);
- ``("transport_closed", id, reason)`` / ``("transport_connected", id)`` /
  ``("producer_started", stream, codecs)``, ``("parameter_sets", stream, codec, nals)``,
  ``("rtsp_message", id, data)``, ``("keyframe_wanted", stream)`` -> the stream registry, which
  tells the transport's owner.

Handlers are synchronous and never block; an exception in one is logged and the pump goes on. An
unknown event name is logged at debug level (a newer core may send more kinds).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from . import logs
from .streams import StreamRegistry

log = logging.getLogger(__name__)


def dispatch(event: Any, registry: StreamRegistry) -> None:
    """Hand one event to its owner."""
    if not isinstance(event, tuple) or not event:
        log.warning("core: malformed event %r", event)
        return
    kind = event[0]
    try:
        if kind == "log":
            _, level, tag, message = event
            logs.core_log(level, tag, message)
        elif kind == "transport_closed":
            _, transport_id, reason = event
            registry.on_transport_closed(transport_id, reason)
        elif kind == "transport_connected":
            registry.on_transport_connected(event[1])
        elif kind == "producer_started":
            _, stream, codecs = event
            registry.on_producer_started(stream, list(codecs))
        elif kind == "parameter_sets":
            _, stream, codec, nals = event
            registry.on_parameter_sets(stream, codec, list(nals))
        elif kind == "keyframe_wanted":
            registry.on_keyframe_wanted(event[1])
        elif kind == "rtsp_message":
            _, transport_id, data = event
            registry.on_rtsp_message(transport_id, bytes(data))
        else:
            log.debug("core: unhandled event %r", event)
    except Exception:
        log.exception("core: handling event %r failed", event)


async def pump_events(core: Any, registry: StreamRegistry, *,
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Wait for the wakeup fd, drain the queue, dispatch; forever (until cancelled)."""
    fd = core.event_fd()
    task_status.started()
    while True:
        for event in core.poll_events():
            dispatch(event, registry)
        await trio.lowlevel.wait_readable(fd)
