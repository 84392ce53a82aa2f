"""The stream registry: the one place that answers "where does stream NAME come from?".

Owns: which stream names are live here, which transport publishes each, which transports play it,
and who owns each transport (a :class:`TransportOwner`: a signaling session, an RTSP connection, a
GB28181 play; a recorder or a cascade edge later).

Rules:

- A stream is live from the moment its publish is accepted (``add_publisher``), before its first
  packet. ``producer_started`` events fill in its codecs.
- A pending publish claims its name (``add_publisher(..., pending=True)``: a second publisher of
  the name is refused, WebRTC or RTSP) and goes live in one of three ways, none of which names a
  kind of source: its owner says so (:meth:`mark_live`, an RTSP RECORD); it was added with
  ``live_at_media=True`` and its first media arrives (a camera: live once its codecs are known);
  or a :class:`Resolver` says so (``resolve()`` returning True is its word that the stream is live).
  :meth:`locate` waits (up to 10 s) for a pending stream to go live.
- H.264/H.265 parameter sets learned in band (``parameter_sets`` events) are kept per stream for
  RTSP DESCRIBE (a WebRTC publisher sends them only in band).
- Core events for a transport (``transport_closed``, ``rtsp_message``, ``rtsp_alive``) go to its
  owner, a :class:`TransportOwner` (every owner implements the three methods; a kind of transport
  that never gets a message ignores it).
- When a publisher's transport ends (its own close, its session's end, or a ``transport_closed``
  event), the stream stops being live at once and every player's owner is told
  (``transport_closed(..., reason="producer-closed")``). The core closes the players' transports
  itself; their later ``transport_closed`` events find nothing here and are ignored.
- :meth:`locate` is the hook for other sources: local live streams, then the :class:`Resolver`
  (the GB28181 plays: a channel id is INVITEd, once, shared by every consumer; the cascade: pulled
  from another server, once, shared). Signaling (WebRTC play), RTSP DESCRIBE and the recorder call
  it before answering 404. Every resolver hears every change of a stream's player count
  (``players_changed``) to end an on-demand source after its last consumer, and the core's
  ``keyframe_wanted``; each ignores names it did not bring in.
- Owners' callbacks must not block: the event pump calls them synchronously. The registry is the
  event pump's :class:`~pms_trio.events.EventSink`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import trio

if TYPE_CHECKING:
    from . import _core

log = logging.getLogger(__name__)

PUBLISH = "publish"
PLAY = "play"


class TransportOwner(Protocol):
    """Who created a transport (a signaling session, an RTSP connection, a GB28181 play) and hears
    what happens to it."""

    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None: ...

    def rtsp_message(self, transport_id: int, data: bytes) -> None:
        """A text message the core read on a connection it owns (RTSP after PLAY/RECORD)."""

    def rtsp_alive(self, transport_id: int) -> None:
        """The core read something from the transport's peer (a sign of life)."""

    def rtsp_disconnected(self, transport_id: int, reason: str) -> None:
        """A pull's connection broke; the transport waits for a new one (only pulls get it)."""


class Resolver(Protocol):
    """A source of streams that are not live until someone asks (GB28181 channels, cascade
    pulls). It publishes what it starts with ``add_publisher(..., source=<its kind>, pending=True)``;
    ``resolve`` returning True is its word that the stream is live (the registry marks it so).
    ``knows(name, from_peer)``: whether it may bring ``name`` in; ``from_peer`` is True for a
    request from another server of the cascade (``X-Pms-Cascade: 1``), which must never start a
    pull (SPEC section 6) but may start a camera's INVITE."""

    def knows(self, name: str, from_peer: bool) -> bool: ...

    async def resolve(self, name: str, timeout: float) -> bool: ...

    def players_changed(self, name: str, players: int) -> None: ...

    def keyframe_wanted(self, name: str) -> None: ...


@dataclass(slots=True)
class LiveStream:
    name: str
    source: str  # what the publisher said it is ("webrtc", "rtsp", "gb28181"...): shown, never tested
    publisher: int  # transport id
    started_at: float
    codecs: tuple[str, ...] = ()
    players: set[int] = field(default_factory=set)
    pending: bool = False  # claimed (RTSP ANNOUNCE) but not live until RECORD
    live_at_media: bool = False  # a pending stream goes live at its producer_started
    parameter_sets: dict[str, tuple[bytes, ...]] = field(default_factory=dict)  # "H264" -> (SPS, PPS)
    origin: str = ""  # where a pulled stream comes from (shown, never tested)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a stream comes from: ``kind`` "local" (live here), or the ``source`` a resolver
    published it as ("gb28181"; later "cascade")."""

    kind: str
    stream: str


@dataclass(slots=True)
class _Entry:
    stream: str
    role: str
    owner: TransportOwner
    connected: bool = False


class StreamRegistry:
    def __init__(self, core: _core.Core | None = None) -> None:
        self._core = core  # for stream_codecs(); may be None in tests
        self._streams: dict[str, LiveStream] = {}
        self._transports: dict[int, _Entry] = {}
        self._changed = trio.Event()  # set (and replaced) on every change a waiter may care about
        self._resolvers: list[Resolver] = []
        self._watchers: list[Callable[..., None]] = []

    def watch(self, watcher: Callable[..., None]) -> None:
        """``watcher(event, stream=, transport=, source=, reason=)`` hears ``"unpublish"`` (a stream
        ended) and ``"stop"`` (a player left), synchronously: it must not block (the hooks queue)."""
        self._watchers.append(watcher)

    def _tell_watchers(self, event: str, **fields: Any) -> None:
        for watcher in self._watchers:
            try:
                watcher(event, **fields)
            except Exception:
                log.exception("stream %s: a watcher failed on %s", fields.get("stream"), event)

    def add_resolver(self, resolver: Resolver) -> None:
        """Resolvers are asked in the order they were added (GB28181 before the cascade: a
        channel id of a camera registered here is brought in here)."""
        self._resolvers.append(resolver)

    # -- questions

    def is_live(self, name: str) -> bool:
        stream = self._streams.get(name)
        return stream is not None and not stream.pending

    def is_claimed(self, name: str) -> bool:
        """Live, or being published (RTSP ANNOUNCE accepted, RECORD pending): a second publisher
        of the name is refused (409)."""
        return name in self._streams

    def get(self, name: str) -> LiveStream | None:
        return self._streams.get(name)

    async def locate(self, name: str, timeout: float = 10.0, *, from_peer: bool = False) -> Location | None:
        """Where stream ``name`` comes from, or ``None``. A stream being published (ANNOUNCE
        done, RECORD pending) is waited for up to ``timeout`` s; then the first resolver that
        knows the name brings it in (a GB28181 INVITE, a cascade pull), waited for the same way.
        ``from_peer``: the request comes from another server of the cascade (no pull)."""
        deadline = trio.current_time() + timeout
        with trio.move_on_at(deadline):
            while True:
                stream = self._streams.get(name)
                if stream is None:
                    break
                if not stream.pending:
                    return Location("local", name)
                await self.wait_changed()
        resolver = next((r for r in self._resolvers if r.knows(name, from_peer)), None)
        if resolver is not None:
            remaining = max(0.0, deadline - trio.current_time())
            with trio.move_on_after(remaining):
                if await resolver.resolve(name, remaining):
                    self.mark_live(name)  # the resolver's word
                    stream = self._streams.get(name)
                    if stream is not None and not stream.pending:
                        return Location(stream.source, name)
        return None

    async def wait_changed(self, timeout: float = math.inf) -> None:
        """Return at the next change of any stream (publish, RECORD, end, parameter sets), or
        after ``timeout`` s."""
        with trio.move_on_after(timeout):
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def snapshot(self) -> list[dict[str, Any]]:
        out = []
        for s in sorted(self._streams.values(), key=lambda s: s.name):
            codecs = list(s.codecs)
            if not codecs and self._core is not None:
                try:
                    codecs = list(self._core.stream_codecs(s.name) or [])
                except Exception:  # noqa: BLE001 - a listing never fails for a stats call
                    codecs = []
            out.append({"name": s.name, "source": s.source, "codecs": codecs, "players": len(s.players),
                        "transcoded": self._transcoded(s.name),
                        "publisher": s.publisher, "live": not s.pending,
                        "age": round(time.monotonic() - s.started_at, 3),
                        **({"origin": s.origin} if s.origin else {})})
        return out

    def _transcoded(self, name: str) -> list[dict[str, Any]]:
        """SPEC 11: the stream's tracks the core transcodes for WebRTC players."""
        if self._core is None:
            return []
        try:
            tracks = self._core.stream_transcodes(name)
        except Exception:  # noqa: BLE001 - a listing never fails for a stats call
            return []
        return [{"from": src, "to": codec, "players": players, "running": running}
                for src, codec, players, running in tracks]

    def players_by_stream(self) -> dict[str, int]:
        """Live stream name -> its players (cheap: no core calls; for ``/metrics``)."""
        return {s.name: len(s.players) for s in self._streams.values() if not s.pending}

    def counts(self) -> tuple[int, int]:
        """(live streams, players)."""
        return len(self._streams), sum(len(s.players) for s in self._streams.values())

    # -- changes made by services

    def add_publisher(self, name: str, transport_id: int, owner: TransportOwner, *, source: str = "webrtc",
                      pending: bool = False, live_at_media: bool = False, origin: str = "") -> None:
        """``source`` is a label for listings, ``origin`` where it comes from (a pull's URL).
        ``pending``: claimed, not live until :meth:`mark_live` (or, with ``live_at_media``, until
        its first media)."""
        if name in self._streams:
            raise RuntimeError(f"stream {name!r} is already live")  # callers check is_claimed() first
        self._streams[name] = LiveStream(name, source, transport_id, time.monotonic(), pending=pending,
                                         live_at_media=live_at_media, origin=origin)
        self._transports[transport_id] = _Entry(name, PUBLISH, owner)
        log.info("stream %s: %s (%s, transport %d)", name, "being published" if pending else "live", source,
                 transport_id)
        self._notify()

    def mark_live(self, name: str) -> None:
        """A pending publish (RTSP ANNOUNCE) is now live (RECORD accepted)."""
        stream = self._streams.get(name)
        if stream is not None and stream.pending:
            stream.pending = False
            log.info("stream %s: live (%s, transport %d)", name, stream.source, stream.publisher)
            self._notify()

    def add_player(self, name: str, transport_id: int, owner: TransportOwner) -> None:
        stream = self._streams.get(name)
        if stream is None or stream.pending:
            raise RuntimeError(f"stream {name!r} is not live")
        stream.players.add(transport_id)
        self._transports[transport_id] = _Entry(name, PLAY, owner)
        log.info("stream %s: player joined (transport %d, %d players)", name, transport_id, len(stream.players))
        self._players_changed(name, len(stream.players))

    def _players_changed(self, name: str, players: int) -> None:
        for resolver in self._resolvers:
            try:
                resolver.players_changed(name, players)
            except Exception:
                log.exception("stream %s: a resolver failed on a player change", name)

    def remove_transport(self, transport_id: int, reason: str = "closed") -> None:
        """A transport ends (its owner closed it, or the core says so). Idempotent."""
        entry = self._transports.pop(transport_id, None)
        if entry is None:
            return
        stream = self._streams.get(entry.stream)
        if entry.role == PLAY:
            if stream is not None:
                stream.players.discard(transport_id)
                self._players_changed(entry.stream, len(stream.players))
            log.info("stream %s: player left (transport %d, %s)", entry.stream, transport_id, reason)
            self._tell_watchers("stop", stream=entry.stream, transport=transport_id, reason=reason)
            return
        if stream is None or stream.publisher != transport_id:
            return
        del self._streams[entry.stream]
        self._notify()
        log.info("stream %s: ended (%s), %d players told", entry.stream, reason, len(stream.players))
        self._tell_watchers("unpublish", stream=entry.stream, transport=transport_id, source=stream.source,
                            reason=reason)
        for player in sorted(stream.players):
            player_entry = self._transports.pop(player, None)
            if player_entry is not None:
                _tell(player_entry, player, "producer-closed")
                self._tell_watchers("stop", stream=entry.stream, transport=player, reason="producer-closed")

    # -- core events (called by the event pump; never block)

    def on_transport_closed(self, transport_id: int, reason: str) -> None:
        entry = self._transports.get(transport_id)
        if entry is None:
            return  # already forgotten (closed by its owner, or a player of an ended stream)
        self.remove_transport(transport_id, reason)
        _tell(entry, transport_id, reason)

    def on_transport_connected(self, transport_id: int) -> None:
        entry = self._transports.get(transport_id)
        if entry is not None:
            entry.connected = True
            log.debug("stream %s: transport %d connected (%s)", entry.stream, transport_id, entry.role)

    def on_producer_started(self, name: str, codecs: list[str]) -> None:
        stream = self._streams.get(name)
        if stream is not None:
            stream.codecs = tuple(codecs)
            log.info("stream %s: media started (%s)", name, ", ".join(codecs))
            if stream.pending and stream.live_at_media:
                self.mark_live(name)  # e.g. a camera's stream: live once its codecs are known
            self._notify()

    def on_keyframe_wanted(self, name: str) -> None:
        """A player of GB28181 stream ``name`` waits for a keyframe the cache lacks: the resolver
        (the GB28181 service) answers with DeviceControl ``IFameCmd``."""
        if name in self._streams:
            for resolver in self._resolvers:
                resolver.keyframe_wanted(name)

    def on_parameter_sets(self, name: str, codec: str, nals: list[bytes]) -> None:
        stream = self._streams.get(name)
        if stream is not None:
            stream.parameter_sets[str(codec).upper()] = tuple(bytes(n) for n in nals)
            log.debug("stream %s: %s parameter sets (%d NAL units)", name, codec, len(nals))
            self._notify()

    def on_rtsp_message(self, transport_id: int, data: bytes) -> None:
        """An RTSP request the core read on a connection it owns: to the transport's owner."""
        entry = self._transports.get(transport_id)
        if entry is None:
            log.debug("rtsp_message for transport %d, which has no owner: dropped", transport_id)
            return
        try:
            entry.owner.rtsp_message(transport_id, data)
        except Exception:
            log.exception("stream %s: owner of transport %d failed on an RTSP message", entry.stream,
                          transport_id)

    def on_rtsp_disconnected(self, transport_id: int, reason: str) -> None:
        """A pull's connection to its origin broke (the stream stays live): to its owner."""
        entry = self._transports.get(transport_id)
        if entry is None:
            return
        try:
            entry.owner.rtsp_disconnected(transport_id, reason)
        except Exception:
            log.exception("stream %s: owner of transport %d failed on a disconnection", entry.stream,
                          transport_id)

    def on_rtsp_alive(self, transport_id: int) -> None:
        """The core read something from an RTSP peer (RTCP, a publisher's media): to the
        transport's owner, whose session timeout counts it as a keep-alive."""
        entry = self._transports.get(transport_id)
        if entry is None:
            return
        try:
            entry.owner.rtsp_alive(transport_id)
        except Exception:
            log.exception("stream %s: owner of transport %d failed on a sign of life", entry.stream,
                          transport_id)


def _tell(entry: _Entry, transport_id: int, reason: str) -> None:
    try:
        entry.owner.transport_closed(transport_id, entry.stream, entry.role, reason)
    except Exception:  # a bug in one owner must not stop the event pump
        log.exception("stream %s: owner of transport %d failed on close", entry.stream, transport_id)
