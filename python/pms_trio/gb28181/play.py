"""Playing GB28181 channels: INVITE, ACK, BYE, the media ingest, on-demand plays (SPEC section 7).

Owns :class:`Play` (one channel being received: its dialog, SSRC, the core's ingest transport) and
:class:`Plays`, which starts and ends them for the HTTP API (``/invite``, ``/bye``) and for the
stream registry (the resolver hook: a WebRTC play or RTSP DESCRIBE of a channel id that is not
live). It is the registry's owner of each ingest transport, so the core's ``transport_closed``
(media-timeout, eof...) and ``keyframe_wanted`` events reach it.

It does not import the service: the service hands itself in as a :class:`PlayHost` (what a play
needs of it: sending SIP, the device look-up, our address, a nursery), and calls back in with the
device's answers (:meth:`Plays.on_invite_response`, :meth:`Plays.on_bye`...).

Decisions where the spec is silent:

- The stream is named after the channel id. Its name is claimed in the registry when the ingest is
  created (pending), and it is live when the core raises ``producer_started`` (codecs known).
- TCP passive and UDP: the ingest is created *before* the INVITE goes out (a camera may connect as
  soon as it sends its 200); TCP active: after the 200, connecting to the answer's c=/m= address.
  An answer in ``RTP/AVP`` to a TCP offer switches to UDP (notes section 5). A camera answering
  with another ``y=`` is left to the core, which matches it by source address when it is the only
  ingest waiting from that IP (the contract's rule), so no re-keying here.
- The INVITE waits :data:`INVITE_TIMEOUT` s for a final response (not Timer B's 32 s: a player is
  waiting); no answer or an error ends the play (the ingest is closed).
- ACK and BYE go to the device's registered address (NAT), addressed to the 200's Contact URI.
- BYE to the device: ``/bye``; the core reporting ``media-timeout``/``eof``/``connect-failed``/
  ``protocol-error``; the device going offline; the last consumer of an on-demand play leaving
  (after :data:`LINGER` s); the server stopping. A BYE from the device ends the stream at once. A
  camera that closes its TCP media and then sends BYE races our own BYE (the core reports eof
  first): a BYE for a dialog we ended lately (the last :data:`MAX_ABANDONED`) gets 200, not 481.
- A play started by ``/invite`` is not on demand: consumers leaving do not end it. An on-demand
  play that ``/invite`` asks for becomes a kept one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ..config import SipConfig
from ..core_errors import core_error_status
from ..sip.addressing import Destination
from ..sip.dialog import Dialog, DialogTable, new_tag
from ..sip.message import Request, Response, response_to, serialize
from ..streams import StreamRegistry
from . import manscdp
from .devices import DeviceState, GbError
from .media import TRANSPORTS, SdpAnswerError, SsrcAllocator, invite_sdp, parse_sdp_answer, subject

if TYPE_CHECKING:
    from .. import _core

log = logging.getLogger("pms_trio.sip")

INVITE_TIMEOUT = 10.0
START_TIMEOUT = 10.0
LINGER = 10.0
MAX_ABANDONED = 1000


@dataclass(slots=True)
class Play:
    channel_id: str
    device: DeviceState
    ssrc: str
    transport: str
    on_demand: bool
    stream: str = ""  # the stream's name: the channel id when live (set in __post_init__)
    kind: str = "live"  # live | playback | download
    start_time: int = 0  # playback/download: the span asked for, UNIX seconds
    end_time: int = 0
    download_speed: int = 0
    invite: Request | None = None
    dialog: Dialog | None = None
    transport_id: int | None = None
    answered: trio.Event = field(default_factory=trio.Event)
    status: int = 0  # the INVITE's final status (0: none yet)
    ended: bool = False
    error: str = ""
    reason: str = ""  # why it ended
    linger: trio.CancelScope | None = None
    control: Any = None  # playback.Control: MANSRTSP state of a playback or download

    def __post_init__(self) -> None:
        self.stream = self.stream or self.channel_id

    @property
    def call_id(self) -> str:
        return self.invite.call_id if self.invite is not None else ""


class PlayHost(Protocol):
    """What plays need of the SIP service (``GbService`` implements it)."""

    config: SipConfig
    core: _core.Core
    registry: StreamRegistry
    media_ports: tuple[int, int]

    @property
    def port(self) -> int: ...

    def local_ip(self, toward: str) -> str: ...

    def send(self, data: bytes, destination: Destination) -> None: ...

    def new_request(self, method: str, device: DeviceState, target_user: str, *, body: bytes = b"",
                    content_type: str | None = None, extra: tuple[tuple[str, str], ...] = ()) -> Request: ...

    def start_request(self, request: Request, device: DeviceState) -> trio.Event: ...

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None: ...

    def find_channel(self, channel_id: str,
                     device_id: str | None = None) -> tuple[DeviceState, manscdp.CatalogItem]: ...

    def knows_channel(self, channel_id: str) -> bool: ...

    def keyframe(self, device: DeviceState, channel_id: str) -> None: ...


class Plays:
    def __init__(self, service: PlayHost) -> None:
        self.service = service
        self.ssrcs = SsrcAllocator(service.config.realm)
        self.by_channel: dict[str, Play] = {}
        self.by_transport: dict[int, Play] = {}
        self.dialogs = DialogTable()
        self.abandoned: dict[str, tuple[Request, DeviceState]] = {}  # Call-ID -> unanswered INVITE
        self.ended: dict[str, None] = {}  # Call-IDs of dialogs we ended lately (a crossing BYE gets 200)
        self.on_end: Callable[[Play], None] | None = None  # hears every play that ended (downloads)

    def is_playing(self, channel_id: str) -> bool:
        return channel_id in self.by_channel  # the live stream is named after the channel

    # -- the registry's resolver hook

    def knows(self, name: str, from_peer: bool) -> bool:
        return self.service.knows_channel(name)  # a peer's request may INVITE a camera registered here

    async def resolve(self, name: str, timeout: float) -> bool:
        """INVITE channel ``name`` (once, shared) and wait until it is live."""
        try:
            await self.start(name, None, None, on_demand=True, wait_live=timeout)
        except GbError as e:
            log.info("sip: on-demand play of %s failed: %s", name, e.message)
            return False
        return bool(self.service.registry.is_live(name))

    def players_changed(self, name: str, players: int) -> None:
        play = self.by_channel.get(name)
        if play is None or not play.on_demand or play.ended:
            return
        if players > 0:
            if play.linger is not None:
                play.linger.cancel()
                play.linger = None
        elif play.linger is None:
            play.linger = trio.CancelScope()
            self.service.spawn(self._linger, play, play.linger)

    async def _linger(self, play: Play, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(LINGER)
            if self.by_channel.get(play.stream) is play and play.linger is scope:
                log.info("sip: %s had no consumer for %g s: BYE", play.stream, LINGER)
                self.end(play, "no consumer")

    def keyframe_wanted(self, name: str) -> None:
        play = self.by_channel.get(name)
        if play is not None and play.device.online:
            self.service.keyframe(play.device, play.channel_id)

    # -- starting

    async def start(self, channel_id: str, device_id: str | None, transport: str | None, *,
                    on_demand: bool, wait_live: float | None = None) -> Play:
        """INVITE ``channel_id`` (or join the play already there). Returns once the device accepted
        (and, with ``wait_live``, once the stream is live or that many seconds passed)."""
        existing = self.by_channel.get(channel_id)
        if existing is not None and not existing.ended and existing.kind == "live":
            if not on_demand:
                existing.on_demand = False
            play = existing
        else:
            play = self._new_play(channel_id, device_id, transport, on_demand)
        await self.answered(play)
        if wait_live:
            registry = self.service.registry
            with trio.move_on_after(wait_live):
                while not registry.is_live(channel_id) and not play.ended:
                    await registry.wait_changed(0.5)
        if play.on_demand and not play.ended:
            live = self.service.registry.get(channel_id)
            self.players_changed(channel_id, len(live.players) if live is not None else 0)
        return play

    async def answered(self, play: Play) -> None:
        """Wait for the device's final answer to ``play``'s INVITE; :class:`GbError` when it
        refused, did not answer in :data:`INVITE_TIMEOUT` s, or the play ended meanwhile."""
        with trio.move_on_after(INVITE_TIMEOUT):
            await play.answered.wait()
        if not play.answered.is_set():
            self.end(play, "no answer to INVITE")
            raise GbError(504, f"device {play.device.device_id} did not answer the INVITE for {play.channel_id}")
        if play.ended or play.status >= 300:
            raise GbError(502, play.error or f"INVITE for {play.channel_id} failed")

    def _new_play(self, channel_id: str, device_id: str | None, transport: str | None, on_demand: bool,
                  **history: Any) -> Play:
        """A new play; ``history`` (``stream``, ``kind``, ``start_time``, ``end_time``,
        ``download_speed``) makes it a playback or download (``gb28181.playback``)."""
        service = self.service
        device, _ = service.find_channel(channel_id, device_id)
        if not device.online:
            raise GbError(503, f"device {device.device_id} is offline")
        transport = transport or service.config.media_transport
        if transport not in TRANSPORTS:
            raise GbError(400, f"transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
        stream = history.get("stream") or channel_id
        if service.registry.is_claimed(stream) or stream in self.by_channel:
            raise GbError(409, f"stream {stream} is already published by another source")
        play = Play(channel_id, device, self.ssrcs.allocate(history=bool(history)), transport, on_demand, **history)
        self.by_channel[play.stream] = play
        try:
            if transport != "tcp-active":
                self._create_ingest(play, transport, None)
            self._send_invite(play)
        except GbError:
            self._forget(play)
            raise
        return play

    def _create_ingest(self, play: Play, transport: str, connect: tuple[str, int] | None) -> None:
        core = self.service.core
        try:
            transport_id = core.create_gb_ingest(play.stream, int(play.ssrc), transport=transport,
                                                 peer_ip=play.device.address.host, connect=connect)
        except Exception as e:  # CoreError 409/400, or a core without the ingest
            code, message = core_error_status(e, "http", f"cannot receive {play.stream}")
            raise GbError(code, message) from None
        play.transport_id = transport_id
        self.by_transport[transport_id] = play
        self.service.registry.add_publisher(play.stream, transport_id, self, source="gb28181", pending=True,
                                            live_at_media=True)

    def _send_invite(self, play: Play) -> None:
        service = self.service
        device = play.device
        media_ip = service.local_ip(device.address.host)
        tcp_port, udp_port = service.media_ports
        history = play.kind != "live"
        body = invite_sdp(server_id=service.config.serial, media_ip=media_ip,
                          media_port=udp_port if play.transport == "udp" else tcp_port, ssrc=play.ssrc,
                          transport=play.transport, session={"live": "Play", "playback": "Playback"}.get(
                              play.kind, "Download"), channel_id=play.channel_id,
                          times=(play.start_time, play.end_time) if history else None,
                          download_speed=play.download_speed if play.kind == "download" else None)
        ours = service.local_ip(device.address.host)
        contact = ("Contact", f"<sip:{service.config.serial}@{ours}:{service.port}>")
        subj = ("Subject", subject(play.channel_id, play.ssrc, service.config.serial))
        request = service.new_request("INVITE", device, play.channel_id, body=body, content_type="APPLICATION/SDP",
                                      extra=(contact, subj))
        play.invite = request
        service.start_request(request, device)
        log.info("sip: INVITE %s (%s) on %s (%s, ssrc %s)", play.channel_id, play.kind, device.device_id,
                 play.transport, play.ssrc)

    # -- the device's answers

    def _play_of(self, message: Request | Response) -> Play | None:
        call_id = message.call_id
        return next((p for p in self.by_channel.values() if p.call_id == call_id), None)

    def on_invite_response(self, response: Response) -> None:
        play = self._play_of(response)
        if response.status < 200:
            return
        if play is None or play.ended:
            if 200 <= response.status < 300:
                self._ack_and_bye_stray(response)
            return
        if play.answered.is_set():
            if 200 <= response.status < 300 and play.dialog is not None:
                self._send_ack(play)  # a 2xx retransmission: our ACK was lost
            return
        play.status = response.status
        if response.status >= 300:
            play.error = f"device answered the INVITE with {response.status} {response.reason}"
            play.answered.set()
            self.end(play, play.error, bye=False)
            return
        assert play.invite is not None
        try:
            play.dialog = Dialog.from_uac(play.invite, response)
        except Exception as e:  # noqa: BLE001 - a 200 without To tag
            play.error = f"unusable 200 to INVITE: {e}"
            play.answered.set()
            self.end(play, play.error, bye=False)
            return
        self.dialogs.add(play.dialog)
        self._send_ack(play)
        try:
            answer = parse_sdp_answer(response.body)
            if answer.vendor_private:
                raise SdpAnswerError(f"vendor-private stream ({answer.rtpmap}), not PS")
            transport = play.transport
            if transport != "udp" and answer.transport == "udp":
                transport = "udp"  # RTP/AVP answering a TCP offer
            if play.transport_id is None:
                self._create_ingest(play, transport, (answer.ip, answer.port) if transport == "tcp-active" else None)
            elif transport != play.transport:
                self._recreate(play, transport)
        except (SdpAnswerError, GbError) as e:
            play.error = f"cannot use the device's answer: {getattr(e, 'message', e)}"
            play.answered.set()
            self.end(play, play.error)
            return
        play.answered.set()
        log.info("sip: %s accepted the INVITE for %s", play.device.device_id, play.channel_id)

    def _recreate(self, play: Play, transport: str) -> None:
        old = play.transport_id
        if old is not None:
            self.by_transport.pop(old, None)
            self.service.registry.remove_transport(old, "closed")
            self._close_transport(old)
            play.transport_id = None
        play.transport = transport
        self._create_ingest(play, transport, None)

    def _send_ack(self, play: Play) -> None:
        assert play.dialog is not None
        address = play.device.address
        ack = play.dialog.ack(address.transport, self.service.local_ip(address.host), self.service.port)
        self.service.send(serialize(ack), address)

    def _ack_and_bye_stray(self, response: Response) -> None:
        """A 2xx for an INVITE we gave up on (timed out, /bye before the answer): ACK it and hang
        up at once (RFC 3261 15), so the camera does not stream to nobody."""
        found = self.abandoned.pop(response.call_id, None)
        if found is None:
            return
        invite, device = found
        try:
            dialog = Dialog.from_uac(invite, response)
        except Exception:  # noqa: BLE001 - no To tag: nothing to hang up
            return
        address = device.address
        ours = self.service.local_ip(address.host)
        self.service.send(serialize(dialog.ack(address.transport, ours, self.service.port)), address)
        self.service.start_request(dialog.bye(address.transport, ours, self.service.port), device)
        log.info("sip: 2xx for an abandoned INVITE (Call-ID %s): ACK and BYE", response.call_id)

    def on_invite_timeout(self, request: Request) -> None:
        play = self._play_of(request)
        if play is not None and not play.answered.is_set():
            play.error = "no answer to INVITE"
            play.answered.set()
            self.end(play, play.error, bye=False)

    def on_bye(self, request: Request) -> Response:
        dialog = self.dialogs.find(request)
        if dialog is None:
            if request.call_id in self.ended:
                return response_to(request, 200)  # both sides hung up at once (our BYE crossed theirs)
            return response_to(request, 481, to_tag=new_tag())
        status = dialog.receive_request(request)
        play = next((p for p in self.by_channel.values() if p.dialog is dialog), None)
        if status == 200 and play is not None:
            log.info("sip: %s sent BYE for %s", play.device.device_id, play.channel_id)
            self.end(play, "device BYE", bye=False)
        return response_to(request, status)

    # -- the core's events (the registry calls us as the ingest's owner)

    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None:
        play = self.by_transport.get(transport_id)
        if play is None:
            return
        self.by_transport.pop(transport_id, None)
        play.transport_id = None
        log.info("sip: media of %s ended (%s)", stream, reason)
        self.end(play, reason, bye=reason != "closed")

    def rtsp_message(self, transport_id: int, data: bytes) -> None:
        """Never sent for an ingest (TransportOwner: only RTSP connections get messages)."""

    def rtsp_alive(self, transport_id: int) -> None:
        """Never sent for an ingest (the core times it out itself: ``media-timeout``)."""

    def rtsp_disconnected(self, transport_id: int, reason: str) -> None:
        """Never sent for an ingest (only pulls)."""

    # -- ending

    def end(self, play: Play, reason: str, *, bye: bool = True) -> None:
        """End ``play`` now: BYE the device (when a dialog exists), close the ingest."""
        if play.ended:
            return
        play.ended = True
        play.reason = reason
        if play.linger is not None:
            play.linger.cancel()
        if bye and play.dialog is not None and play.device.online:
            self._send_bye(play)
        if play.dialog is not None:
            self.dialogs.remove(play.dialog)
            self.ended[play.call_id] = None
            while len(self.ended) > MAX_ABANDONED:
                self.ended.pop(next(iter(self.ended)))
        if play.transport_id is not None:
            transport_id = play.transport_id
            self.by_transport.pop(transport_id, None)
            play.transport_id = None
            self.service.registry.remove_transport(transport_id, reason)
            self._close_transport(transport_id)
        self._forget(play)
        if not play.answered.is_set():
            play.error = play.error or reason
            play.answered.set()
        log.info("sip: play of %s ended (%s)", play.stream, reason)
        if self.on_end is not None:
            self.on_end(play)

    def _send_bye(self, play: Play) -> None:
        assert play.dialog is not None
        address = play.device.address
        try:
            bye = play.dialog.bye(address.transport, self.service.local_ip(address.host), self.service.port)
        except Exception:  # noqa: BLE001 - a terminated dialog
            return
        self.service.start_request(bye, play.device)

    def _close_transport(self, transport_id: int) -> None:
        try:
            self.service.core.close_transport(transport_id)
        except Exception as e:  # noqa: BLE001 - already gone
            log.debug("sip: close_transport(%d): %s", transport_id, e)

    def _forget(self, play: Play) -> None:
        if self.by_channel.get(play.stream) is play:
            del self.by_channel[play.stream]
        if play.invite is not None and play.dialog is None:
            self.abandoned[play.call_id] = (play.invite, play.device)
            while len(self.abandoned) > MAX_ABANDONED:
                self.abandoned.pop(next(iter(self.abandoned)))
        self.ssrcs.release(play.ssrc)

    async def stop(self, channel_id: str, device_id: str | None = None, stream: str | None = None) -> None:
        play = self.by_channel.get(stream or channel_id)
        if play is None or (device_id and play.device.device_id != device_id) or play.channel_id != channel_id:
            raise GbError(404, f"channel {channel_id} is not playing" + (f" as {stream}" if stream else ""))
        self.end(play, "bye requested")

    def device_offline(self, device_id: str) -> None:
        for play in [p for p in self.by_channel.values() if p.device.device_id == device_id]:
            self.end(play, "device offline", bye=False)

    def end_all(self) -> None:
        """At stop: end every play (the BYEs are queued; the service writes them)."""
        for play in list(self.by_channel.values()):
            self.end(play, "server stopping")
