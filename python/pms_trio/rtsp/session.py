"""The RTSP session state machine, sans-IO (RFC 2326 Appendix A, server side; SPEC section 4).

Owns: which method is valid now (455 otherwise, with an ``Allow`` header), the Session header check
(454), the tracks set up so far (control -> transport, interleaved channel or client ports) and the
session timeout as data. It may not do I/O, read a clock, or import trio or the rest of the package;
time is passed in, the adapter waits for :meth:`RtspSession.next_deadline` and calls
:meth:`RtspSession.handle_timeout`.

One :class:`RtspSession` per connection. The adapter calls :meth:`RtspSession.check` for every
request before acting on it, does the work, and then records the outcome with
:meth:`~RtspSession.describe`, :meth:`~RtspSession.announce`, :meth:`~RtspSession.setup`,
:meth:`~RtspSession.play`, :meth:`~RtspSession.record`, :meth:`~RtspSession.pause` or
:meth:`~RtspSession.teardown`. Errors are ``RemoteProtocolError`` with the status to answer.

States (Appendix A)::

    Init      --SETUP--> Ready    --PLAY--> Playing     --PAUSE--> Ready
                         Ready    --RECORD--> Recording --PAUSE--> Ready
    any       --TEARDOWN (aggregate, or of the last track)--> Init

Decisions beyond the RFC table:

- SETUP needs a stream: a DESCRIBE (play) or ANNOUNCE (record) on this connection first, else 455.
  The controls it may name are those of that SDP (404 otherwise).
- SETUP while Playing or Recording is 455: transports do not change mid-stream (RFC 2326 section
  10.4 lets a server refuse). PLAY while Playing is allowed (a client's seek, a no-op live), PAUSE in
  Ready is 455 as in the table.
- PLAY on a publishing (ANNOUNCE) session or RECORD on a playing one is 455; an explicit
  ``mode=record`` in a play session's SETUP (or ``mode=play`` in a record one) is 461.
- Once a session is set up, PLAY/PAUSE/RECORD/TEARDOWN must carry its Session header (454 if
  missing or different); a SETUP without it adds to this connection's session. A Session header
  before any SETUP, or after TEARDOWN, is 454.
- Interleaved channels: the client's ``interleaved=a-b`` if free (461 if another track holds
  either), else the lowest free even pair. RTP is on ``a``, RTCP on ``b``.
- Every request, and every sign of life the adapter reports with :meth:`RtspSession.touch` (the
  core's ``rtsp_alive``: RTCP, a publisher's media), counts; the deadline runs from the start, so
  an idle connection that never sets up also expires. ``timeout`` is ``rtsp.sessionTimeout``.
- Unknown methods are 501.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum

from .headers import TransportSpec, format_session, parse_session
from .protocol import LocalProtocolError, RemoteProtocolError, Request

SESSION_TIMEOUT = 60

OPTIONS = "OPTIONS"
DESCRIBE = "DESCRIBE"
ANNOUNCE = "ANNOUNCE"
SETUP = "SETUP"
PLAY = "PLAY"
PAUSE = "PAUSE"
RECORD = "RECORD"
TEARDOWN = "TEARDOWN"
GET_PARAMETER = "GET_PARAMETER"
SET_PARAMETER = "SET_PARAMETER"
METHODS = (OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, PAUSE, RECORD, TEARDOWN, GET_PARAMETER, SET_PARAMETER)
PUBLIC = ", ".join(METHODS)  # the OPTIONS answer's Public header


class State(Enum):
    INIT = "Init"
    READY = "Ready"
    PLAYING = "Playing"
    RECORDING = "Recording"


@dataclass(frozen=True, slots=True)
class TrackSetup:
    control: str
    transport: TransportSpec  # interleaved filled in for TCP; mode filled in


@dataclass(slots=True)
class RtspSession:
    id: str
    last_activity: float
    timeout: int = SESSION_TIMEOUT
    state: State = State.INIT
    mode: str | None = None  # "PLAY" after DESCRIBE, "RECORD" after ANNOUNCE
    stream: str | None = None
    controls: tuple[str, ...] = ()
    tracks: dict[str, TrackSetup] = field(default_factory=dict)
    established: bool = False  # a SETUP succeeded and the client holds the id
    expired: bool = False

    def __post_init__(self) -> None:
        format_session(self.id)  # raises LocalProtocolError for an id RTSP cannot carry

    # -- asking

    def allowed_methods(self) -> tuple[str, ...]:
        return tuple(m for m in METHODS if self._why_not(m) is None)

    def _why_not(self, method: str) -> str | None:
        s = self.state
        if method in (OPTIONS, GET_PARAMETER, SET_PARAMETER, TEARDOWN, DESCRIBE):
            return None
        if method == ANNOUNCE:
            return None if not self.tracks else "ANNOUNCE after SETUP (one stream per session)"
        if method == SETUP:
            if s in (State.PLAYING, State.RECORDING):
                return f"SETUP while {s.value} (transports do not change mid-stream)"
            return None if self.controls else "SETUP before DESCRIBE (or ANNOUNCE when publishing)"
        if method == PLAY:
            if self.mode == "RECORD":
                return "PLAY on a publishing session (it was ANNOUNCEd: use RECORD)"
            return None if s in (State.READY, State.PLAYING) else f"PLAY in state {s.value} (SETUP first)"
        if method == RECORD:
            if self.mode == "PLAY":
                return "RECORD on a playing session (ANNOUNCE first to publish)"
            return None if s in (State.READY, State.RECORDING) else f"RECORD in state {s.value} (SETUP first)"
        if method == PAUSE:
            return None if s in (State.PLAYING, State.RECORDING) else f"PAUSE in state {s.value}"
        return f"unknown method {method}"

    def _refuse(self, method: str) -> None:
        why = self._why_not(method)
        if why is not None:
            raise RemoteProtocolError(f"{why}; valid now: {', '.join(self.allowed_methods())}", 455,
                                      headers=(("Allow", ", ".join(self.allowed_methods())),))

    def check(self, request: Request, now: float) -> None:
        """Raise the status for ``request`` if it cannot be served now (501, 454, 455). Counts as a
        sign of life either way."""
        self.touch(now)
        method = request.method
        if method not in METHODS:
            raise RemoteProtocolError(f"method {method[:40]} is not implemented; use one of {PUBLIC}", 501,
                                      headers=(("Public", PUBLIC),))
        header = request.header("Session")
        if header is not None:
            session_id, _ = parse_session(header)
            if not self.established or session_id != self.id:
                raise RemoteProtocolError(f"unknown session {session_id[:40]}", 454)
        elif self.established and method in (PLAY, PAUSE, RECORD, TEARDOWN):
            raise RemoteProtocolError(f"{method} needs the Session header ({self.id})", 454)
        self._refuse(method)

    def session_header(self) -> str:
        """``id;timeout=60`` for SETUP responses (and the id alone is fine elsewhere)."""
        return format_session(self.id, self.timeout)

    def track_for_channel(self, channel: int) -> tuple[TrackSetup, bool] | None:
        """The track an interleaved frame belongs to and whether it is RTCP; None if no track uses
        the channel (the adapter drops the frame)."""
        for track in self.tracks.values():
            pair = track.transport.interleaved
            if pair is not None and channel in pair:
                return track, channel == pair[1] and pair[0] != pair[1]
        return None

    # -- recording outcomes

    def describe(self, stream: str, controls: Iterable[str]) -> None:
        """A DESCRIBE of ``stream`` succeeded: its tracks may now be SETUP for play."""
        self._set_stream(stream, controls, "PLAY")

    def announce(self, stream: str, controls: Iterable[str]) -> None:
        """An ANNOUNCE of ``stream`` was accepted: its tracks may now be SETUP for record."""
        self._refuse(ANNOUNCE)
        self._set_stream(stream, controls, "RECORD")

    def _set_stream(self, stream: str, controls: Iterable[str], mode: str) -> None:
        controls = tuple(controls)
        if not controls:
            raise LocalProtocolError("a stream has at least one track control")
        if self.tracks and (stream != self.stream or mode != self.mode):
            raise RemoteProtocolError(f"this session already set up tracks of {self.stream}", 455)
        self.stream, self.controls, self.mode = stream, controls, mode

    def setup(self, control: str, transport: TransportSpec) -> TrackSetup:
        """Add (or redo) a track. Returns it with the channels and mode filled in; the adapter adds
        ``server_port``/``ssrc`` with ``dataclasses.replace`` for the response."""
        self._refuse(SETUP)
        if control not in self.controls:
            raise RemoteProtocolError(f"stream {self.stream} has no track {control[:40]} "
                                      f"(tracks: {', '.join(self.controls)})", 404)
        if transport.mode is not None and transport.mode != self.mode:
            raise RemoteProtocolError(f"Transport mode={transport.mode.lower()} on a "
                                      f"{'publishing' if self.mode == 'RECORD' else 'playing'} session",
                                      461)
        spec = replace(transport, mode=self.mode)
        if spec.is_tcp:
            taken = {ch for c, t in self.tracks.items() if c != control and t.transport.interleaved
                     for ch in t.transport.interleaved}
            if spec.interleaved is None:
                first = next((ch for ch in range(0, 256, 2) if ch not in taken and ch + 1 not in taken), None)
                if first is None:
                    raise RemoteProtocolError("no interleaved channel pair is free", 461)
                spec = replace(spec, interleaved=(first, first + 1))
            else:
                pair = spec.interleaved
                if pair[0] == pair[1] or taken.intersection(pair):
                    raise RemoteProtocolError(f"interleaved={pair[0]}-{pair[1]} is in use or not two "
                                              f"channels (taken: {sorted(taken)})", 461)
        track = TrackSetup(control, spec)
        self.tracks[control] = track
        self.established = True
        if self.state is State.INIT:
            self.state = State.READY
        return track

    def play(self) -> None:
        self._refuse(PLAY)
        self.state = State.PLAYING

    def record(self) -> None:
        self._refuse(RECORD)
        self.state = State.RECORDING

    def pause(self) -> None:
        self._refuse(PAUSE)
        self.state = State.READY

    def teardown(self, control: str | None = None) -> bool:
        """Tear down one track or (``None``) all. True when the session ended: back to Init, no
        stream, and the id no longer valid."""
        if control is not None and self.tracks:
            if control not in self.tracks:
                raise RemoteProtocolError(f"TEARDOWN of track {control[:40]}, which is not set up", 404)
            if len(self.tracks) > 1:
                del self.tracks[control]
                return False
        self.tracks.clear()
        self.state = State.INIT
        self.established = False
        self.stream, self.controls, self.mode = None, (), None
        return True

    # -- timers as data

    def touch(self, now: float) -> None:
        self.last_activity = max(self.last_activity, now)

    def next_deadline(self) -> float:
        return self.last_activity + self.timeout

    def handle_timeout(self, now: float) -> bool:
        """True (and ``expired``) once ``timeout`` seconds passed without a request or RTCP."""
        if now >= self.next_deadline():
            self.expired = True
        return self.expired
