"""Looking back: RecordInfo queries, playback and download plays, their MANSRTSP control (SPEC 7).

Owns :class:`History`, which the SIP service creates beside its :class:`~.play.Plays`: it sends
RecordInfo queries and waits for their parts (:mod:`.records` assembles them), starts playback
(``play_type`` 1) and download (``play_type`` 2) plays through ``Plays`` (INVITE with
``s=Playback|Download``, ``u=``, ``t=``, a ``y=`` starting with 1), sends ``INFO`` with
``Application/MANSRTSP`` bodies in their dialogs (pause, resume, speed, seek) and ends them on the
device's ``MediaStatus`` 121 (end of file). It imports neither the service nor the HTTP layer: the
service hands itself in as the plays' host, and the API calls in.

Decisions where the standard is silent:

- A playback's stream is named ``CHANNEL_START_END`` unless the caller names it; it is a stream
  like a live one (WebRTC, RTSP, recording) and never on demand (``/bye`` or the end of file ends it).
- The RTP timestamps follow the PS PTS (the media core's ingest), so a pause (the device stops,
  then continues its PTS) keeps the players' timeline continuous.
- Speed: ``Scale: N`` makes the device send N times faster (or slower) with the recording's own PTS;
  the core then re-times the playback's video (``Core.gb_set_scale``: timestamps advance 1/N of the
  PTS), so players see the recording advance N s per second on a smooth 1x clock. A seek's PTS
  jump continues the players' clock too. Downloads keep the recording's time (their file).
- End: ``MediaStatus`` 121 (matched by the dialog's Call-ID, else by channel among the device's
  history plays) ends the play at once with a BYE; a device that never sends it is ended when the
  span should have played out at 1x (or slower when asked; pauses excluded) plus :data:`EOF_GRACE`
  s, or by the core's 10 s media time-out when it goes quiet.
- A control the device refuses (SIP >= 300, or a MANSRTSP answer >= 300 in the 200's body) or does
  not answer in :data:`CONTROL_TIMEOUT` s is an API error (502 / 504); the play goes on as it was.
- A device that ignores ``Scale``: the core watches 3 s of its frames after the change and, when
  they come at about 1x, goes back to 1x itself (players are not slowed down); the API still reports
  the speed asked for (the core does not tell it yet), and the stream ends cleanly as ever.
- Downloads: the API starts the recorder (``http.gb_history``); ``downloads()`` lists them with an
  estimated ``progress`` (time played x speed / span; 1.0 at the end of file). The last
  :data:`MAX_FINISHED` finished ones stay listed.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ..sip.message import Request, Response
from . import manscdp, mansrtsp
from .devices import DeviceState, GbError
from .records import RecordAssembler, describe_item, device_time

if TYPE_CHECKING:
    from .play import Play, Plays

log = logging.getLogger("pms_trio.sip")

RECORD_FIRST_TIMEOUT = 10.0  # for the first part of a RecordInfo answer
RECORD_IDLE_TIMEOUT = 5.0  # between parts
RECORD_TOTAL_TIMEOUT = 30.0
CONTROL_TIMEOUT = 5.0
EOF_GRACE = 20.0
MAX_SPAN = 7 * 86400
MAX_FINISHED = 100


class HistoryHost(Protocol):
    """What :class:`History` needs of the SIP service (``GbService`` implements it)."""

    core: Any  # the media core: gb_set_scale

    def find_channel(self, channel_id: str, device_id: str | None = None) -> tuple[DeviceState, Any]: ...

    def message(self, device: DeviceState, body: bytes, target: str | None = None) -> Request: ...

    def next_sn(self) -> int: ...

    async def request(self, request: Request, device: DeviceState,
                      timeout: float = ...) -> Response | None: ...

    def local_ip(self, toward: str) -> str: ...

    @property
    def port(self) -> int: ...

    def spawn(self, fn: Any, *args: Any) -> None: ...


@dataclass(slots=True)
class Control:
    """The MANSRTSP side of a playback or download."""

    cseq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    scale: float = 1.0
    paused: bool = False
    played: float = 0.0  # seconds of the span the device should have sent (estimate)
    eof: bool = False
    started: float = field(default_factory=time.time)
    ended: float | None = None
    bound: float = 0.0  # the same at no more than 1x, for the end-of-file watchdog
    overdue: float = 0.0  # seconds since the span should have played out at 1x
    file: str = ""  # a download's recording file
    record_error: str = ""


class _Query:
    __slots__ = ("assembler", "changed")

    def __init__(self, assembler: RecordAssembler) -> None:
        self.assembler = assembler
        self.changed = trio.Event()


class History:
    def __init__(self, host: HistoryHost, plays: Plays) -> None:
        self.host = host
        self.plays = plays
        self._queries: dict[tuple[str, int], _Query] = {}
        self.finished: deque[dict[str, Any]] = deque(maxlen=MAX_FINISHED)
        plays.on_end = self._ended

    # -- RecordInfo

    async def query_records(self, channel_id: str, device_id: str | None, start: int, end: int,
                            record_type: str = "all") -> list[dict[str, Any]]:
        """Ask the device what it recorded of ``channel_id`` from ``start`` to ``end`` (UNIX s)."""
        if end <= start or end - start > 366 * 86400:
            raise GbError(400, f"end_time {end} must be after start_time {start} (at most a year later)")
        if record_type not in manscdp.RECORD_TYPES:
            raise GbError(400, f"type {record_type!r} is not one of {', '.join(manscdp.RECORD_TYPES)}")
        device, _ = self.host.find_channel(channel_id, device_id)
        if not device.online:
            raise GbError(503, f"device {device.device_id} is offline")
        sn = self.host.next_sn()
        query = _Query(RecordAssembler(device.device_id, sn))
        self._queries[(device.device_id, sn)] = query
        try:
            body = manscdp.record_info_query(sn, channel_id, device_time(start), device_time(end), record_type)
            answer = await self.host.request(self.host.message(device, body, channel_id), device)
            if answer is None:
                raise GbError(504, f"device {device.device_id} did not answer the RecordInfo query")
            if answer.status >= 300:
                raise GbError(502, f"device {device.device_id} answered the RecordInfo query with {answer.status}")
            await self._assemble(query)
            assembler = query.assembler
            if not assembler.complete:
                got = len(assembler.items)
                if assembler.parts == 0:
                    raise GbError(504, f"device {device.device_id} sent no RecordInfo answer within "
                                       f"{RECORD_FIRST_TIMEOUT:g} s")
                raise GbError(504, f"device {device.device_id} sent {got} of {assembler.sum_num} records, "
                                   "then stopped (time limit reached)")
            return [describe_item(i, channel_id) for i in assembler.sorted_items()]
        finally:
            self._queries.pop((device.device_id, sn), None)

    async def _assemble(self, query: _Query) -> None:
        total = trio.current_time() + RECORD_TOTAL_TIMEOUT
        deadline = trio.current_time() + RECORD_FIRST_TIMEOUT
        while not query.assembler.complete:
            with trio.move_on_at(min(deadline, total)):
                await query.changed.wait()
            if not query.changed.is_set():
                return  # timed out
            query.changed = trio.Event()
            deadline = trio.current_time() + RECORD_IDLE_TIMEOUT

    def on_record_info(self, device_id: str, response: manscdp.RecordInfoResponse) -> bool:
        """A RecordInfo Response part from ``device_id``; False when no query waits for it."""
        query = self._queries.get((device_id, response.sn))
        if query is None:
            return False
        query.assembler.add(response)
        query.changed.set()
        return True

    # -- playback and download

    async def start(self, channel_id: str, device_id: str | None, transport: str | None, *, kind: str,
                    start: int, end: int, stream: str | None = None, download_speed: int = 1) -> Play:
        if kind not in ("playback", "download"):
            raise GbError(400, f"unknown kind {kind!r}")
        if end <= start:
            raise GbError(400, f"end_time {end} must be after start_time {start}")
        if end - start > MAX_SPAN:
            raise GbError(400, f"a span of {end - start} s is longer than {MAX_SPAN} s")
        if not 1 <= download_speed <= 8:
            raise GbError(400, f"download_speed {download_speed} is not 1-8")
        name = stream or f"{channel_id}_{start}_{end}"
        if not name or len(name) > 128 or any(c in name for c in "/\\?#% ") or not name.isprintable():
            raise GbError(400, f"stream name {name[:40]!r} is not a plain name")
        play = self.plays._new_play(channel_id, device_id, transport, False, stream=name, kind=kind,
                                    start_time=start, end_time=end,
                                    download_speed=download_speed if kind == "download" else 0)
        play.control = Control(scale=float(download_speed) if kind == "download" else 1.0)
        await self.plays.answered(play)
        if kind == "playback":
            self._retime(play, 1.0)  # seeks continue the players' clock
        self.host.spawn(self._watch, play)
        return play

    def _retime(self, play: Play, scale: float) -> None:
        """The core re-times a playback's output by ``scale`` (players keep a 1x clock). A
        download is not re-timed: its file keeps the recording's own time."""
        if play.kind != "playback" or play.transport_id is None:
            return
        try:
            self.host.core.gb_set_scale(play.transport_id, scale)
        except Exception as e:  # noqa: BLE001 - the ingest ended meanwhile
            log.info("sip: %s: cannot re-time (%s)", play.stream, e)

    def find(self, device_id: str | None, channel_id: str, url: str | None) -> Play:
        """The playback or download a control request means: by the stream of ``url`` (what
        ``invite`` answered), else the only history play of the channel."""
        name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] if url else ""
        candidates = [p for p in self.plays.by_channel.values() if p.channel_id == channel_id and p.kind != "live"
                      and (not device_id or p.device.device_id == device_id) and (not name or p.stream == name)]
        if not candidates:
            raise GbError(404, f"no playback of channel {channel_id}" + (f" as {name}" if name else ""))
        if len(candidates) > 1:
            raise GbError(409, f"channel {channel_id} has {len(candidates)} playbacks: give the url")
        return candidates[0]

    async def pause(self, play: Play) -> None:
        await self._control(play, "PAUSE", lambda n: mansrtsp.pause(n))
        play.control.paused = True

    async def resume(self, play: Play) -> None:
        await self._control(play, "PLAY", lambda n: mansrtsp.play(n))
        play.control.paused = False

    async def speed(self, play: Play, scale: float) -> None:
        try:
            scale = mansrtsp.check_scale(scale)
        except ValueError as e:
            raise GbError(400, str(e)) from None
        await self._control(play, "PLAY", lambda n: mansrtsp.play(n, scale=scale))
        play.control.scale = scale
        play.control.paused = False
        self._retime(play, scale)

    async def seek(self, play: Play, at: int) -> None:
        """Play from UNIX second ``at`` (inside the span)."""
        if not play.start_time <= at < play.end_time:
            raise GbError(400, f"time {at} is outside the played span {play.start_time}-{play.end_time}")
        await self._control(play, "PLAY", lambda n: mansrtsp.play(n, seek=at - play.start_time))
        play.control.played = play.control.bound = float(at - play.start_time)
        play.control.paused = False

    async def _control(self, play: Play, what: str, body: Any) -> None:
        if play.ended or play.dialog is None:
            raise GbError(404, f"{play.stream} has ended")
        device = play.device
        address = device.address
        request = play.dialog.request("INFO", address.transport, self.host.local_ip(address.host), self.host.port,
                                      body=body(next(play.control.cseq)), content_type=mansrtsp.CONTENT_TYPE)
        answer = await self.host.request(request, device, CONTROL_TIMEOUT)
        if answer is None:
            raise GbError(504, f"device {device.device_id} did not answer {what} for {play.stream}")
        if answer.status >= 300:
            raise GbError(502, f"device {device.device_id} answered {what} with {answer.status} {answer.reason}")
        if answer.body.strip():
            try:
                reply = mansrtsp.parse(answer.body)
            except mansrtsp.MansRtspError:
                return  # a 200 with a body we cannot read: the SIP status said yes
            if reply.status >= 300:
                raise GbError(502, f"device {device.device_id} answered {what} with MANSRTSP {reply.status} "
                                   f"{reply.reason}")

    def on_media_status(self, device_id: str, call_id: str, status: manscdp.MediaStatus) -> bool:
        """A MediaStatus Notify; True when it ended a play (121: end of file)."""
        if status.notify_type.strip() != "121":
            log.info("sip: MediaStatus %s from %s", status.notify_type[:10], device_id)
            return False
        plays = [p for p in self.plays.by_channel.values() if p.kind != "live" and p.call_id == call_id]
        if not plays:
            plays = [p for p in self.plays.by_channel.values() if p.kind != "live"
                     and p.device.device_id == device_id and p.channel_id == status.device_id]
        for play in plays[:1]:
            play.control.eof = True
            log.info("sip: %s: end of file (MediaStatus 121)", play.stream)
            self.plays.end(play, "end of file")
            return True
        return False

    async def _watch(self, play: Play) -> None:
        """Estimate how far the device got; end a play whose end of file never comes."""
        span = play.end_time - play.start_time
        while not play.ended:
            await trio.sleep(1.0)
            control = play.control
            if control.paused or play.ended:
                continue
            control.played = min(float(span), control.played + control.scale)
            if control.bound < span:  # at most 1x: a device that ignores Scale is not cut short
                control.bound = min(float(span), control.bound + min(1.0, control.scale))
                continue
            control.overdue += 1.0
            if control.overdue >= EOF_GRACE:
                log.info("sip: %s: no end of file %g s after the span should have played: BYE", play.stream,
                         EOF_GRACE)
                self.plays.end(play, "no end of file from the device")

    # -- listings

    def _ended(self, play: Play) -> None:
        if play.kind == "live" or play.control is None:
            return
        play.control.ended = time.time()
        self.finished.append(self.describe(play))

    def describe(self, play: Play) -> dict[str, Any]:
        control = play.control
        span = max(1, play.end_time - play.start_time)
        progress = 1.0 if control.eof else round(min(0.99, control.played / span), 3)
        return {"stream": play.stream, "device_id": play.device.device_id, "channel_id": play.channel_id,
                "play_type": 1 if play.kind == "playback" else 2, "start_time": play.start_time,
                "end_time": play.end_time, "speed": control.scale, "paused": control.paused,
                "progress": progress, "state": "playing" if not play.ended else ("done" if control.eof else "ended"),
                "reason": play.reason, "file": control.file, "record_error": control.record_error,
                "started": round(control.started, 3),
                "ended": round(control.ended, 3) if control.ended else None}

    def history_plays(self, kind: str | None = None) -> list[dict[str, Any]]:
        live = [self.describe(p) for p in self.plays.by_channel.values()
                if p.kind != "live" and p.control is not None and (kind is None or p.kind == kind)]
        done = [d for d in self.finished if kind is None or d["play_type"] == (1 if kind == "playback" else 2)]
        return live + done
