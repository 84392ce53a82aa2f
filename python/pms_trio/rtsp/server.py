"""The RTSP server: the trio adapter around the sans-IO RTSP layer (SPEC section 4).

Owns the listening socket (``rtsp.listenIp``/``rtsp.port``), one task per TCP connection, and that
connection's :class:`~.session.RtspSession`. It reads, feeds :class:`~.protocol.Connection`, checks
each request with the session, acts on the media core and the stream registry, and writes the
response. It may not parse RTSP text itself (``protocol``/``headers``/``sdp`` do) nor touch a packet
(the core does); what DESCRIBE and ANNOUNCE pass between the core's track records and SDP is
translated in ``tracks``.

Theory of operation:

1. Python owns the socket while the client negotiates: OPTIONS, DESCRIBE, ANNOUNCE, SETUP; for a
   UDP session (``client_port=``) every later request too (PLAY, PAUSE, GET_PARAMETER, TEARDOWN),
   while the core sends and receives RTP/RTCP on a UDP port pair of its own.
2. PLAY or RECORD of a TCP interleaved session hands the socket to the core (``sock.detach()`` ->
   ``core.rtsp_start(fd=..., reply=..., pending=...)``): the core writes our reply, then the
   interleaved frames. From then on the client's requests arrive as ``rtsp_message`` events (the
   registry hands them to :meth:`RtspConnection.rtsp_message`), go through the same handlers, and
   the replies go back with ``core.rtsp_send`` (a resuming PLAY with ``rtsp_start(reply=...)``). The
   core ends such a connection on EOF, a stalled reader or a framing error (``transport_closed``).
3. A session ends at TEARDOWN, when its connection ends, when its transport closes (the stream
   ended: ``producer-closed``), or ``rtsp.sessionTimeout`` (60 s) after its last sign of life,
   whoever owns the socket. Signs of life are requests and the core's ``rtsp_alive`` events (it
   read RTCP, a publisher's media or anything else from the peer: at most one every 2 s), so a UDP
   player that sends only RTCP receiver reports (FFmpeg) plays on, and one that sends nothing
   expires. The same deadline closes a connection that never completes a request. Whatever ends
   it, the ``finally`` of :meth:`RtspConnection.run` closes the core transport, and the connection
   handler's closes the socket (unless the core owns it; then closing the transport closes it).
4. Every connection is listed in ``sessions`` (session id -> connection) while it runs; the HTTP
   API's ``/api/v1/sessions`` shows them with :meth:`RtspConnection.describe`.

Publishing: ANNOUNCE claims the name in the registry (a second publisher gets 409, over RTSP or
WebRTC) and creates the core publisher; RECORD makes the stream live (:meth:`StreamRegistry.mark_live`).
DESCRIBE of a name being published waits (10 s at most) for its RECORD, and (2 s at most) for
H.264/H.265 parameter sets a WebRTC publisher sends only in band.
"""

from __future__ import annotations

import errno
import logging
import secrets
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import trio

from .. import __version__
from .. import _core
from .._core import CoreError
from ..auth import Action, Auth
from ..config import RtspConfig
from ..core_errors import core_error_status, is_mapped
from ..hooks import HookRefused, Hooks
from ..streams import StreamRegistry
from . import headers as h
from . import protocol as p
from . import sdp
from . import session as s
from .auth import RtspAuth
from .tracks import core_track, describable

log = logging.getLogger("pms_trio.rtsp")

SERVER = f"pms-trio/{__version__}"
RECV_SIZE = 64 * 1024
DESCRIBE_WAIT = 10.0  # a stream being published (ANNOUNCE done, RECORD pending)
PARAMETER_SETS_WAIT = 2.0  # H.264/H.265 SPS/PPS not known yet (a WebRTC publisher sends them in band)
SEND_TIMEOUT = 10.0  # a client that does not read our replies is dropped
INBOX_SIZE = 64  # requests queued from a core-owned connection before we call it a flood
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY = 0.1

PLAYER = "play"
PUBLISHER = "publish"


async def serve(config: RtspConfig, core: _core.Core, registry: StreamRegistry, sessions: dict[str, Any] | None = None,
                *, auth: Auth | None = None, hooks: Hooks | None = None,
                task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen and serve until cancelled; reports ``(ip, port)`` once bound. Raises ``OSError``
    when the port cannot be bound. ``sessions`` (session id -> :class:`RtspConnection`) lists the
    open connections for the HTTP API."""
    listeners = await trio.open_tcp_listeners(config.port, host=config.listen_ip or None)
    listing: dict[str, Any] = {} if sessions is None else sessions
    rtsp_auth = RtspAuth(auth or Auth())

    async def handler(stream: trio.SocketStream) -> None:
        connection: RtspConnection | None = None
        try:
            connection = RtspConnection(stream, core, registry, timeout=config.session_timeout, auth=rtsp_auth,
                                        hooks=hooks)
            listing[connection.session.id] = connection
            await connection.run()
        except Exception:  # one broken connection must never stop the server
            log.exception("connection failed")
        finally:
            if connection is not None:
                listing.pop(connection.session.id, None)
            if connection is None or not connection.core_owned:  # else the core closes it
                # A plain close rather than ``await trio.aclose_forcefully(stream)``: no checkpoint,
                # so no second Cancelled per connection at shutdown; 10,000 idle connections then
                # end well within the 5 s a graceful stop may take (SPEC section 1).
                stream.socket.close()

    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, listener, handler, nursery)
        host, port = listeners[0].socket.getsockname()[:2]
        task_status.started((host, port))


async def _accept_loop(listener: trio.SocketListener, handler: Any, nursery: trio.Nursery) -> None:
    """``trio.serve_listeners`` without its own ``aclose_forcefully`` per connection (see
    ``handler``); like it, waits and retries when out of file descriptors."""
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as e:
                if e.errno in ACCEPT_CAPACITY_ERRNOS:
                    log.error("accept failed (%s): out of file descriptors or memory; retrying in %g s",
                              e.strerror or e, ACCEPT_RETRY)
                    await trio.sleep(ACCEPT_RETRY)
                    continue
                raise
            nursery.start_soon(handler, stream)


class RtspConnection:
    """One TCP connection and its session. The registry's owner of the session's transport."""

    def __init__(self, stream: trio.SocketStream, core: _core.Core, registry: StreamRegistry, *,
                 timeout: int = s.SESSION_TIMEOUT, auth: RtspAuth | None = None, hooks: Hooks | None = None) -> None:
        self._stream = stream
        self._auth = auth or RtspAuth(Auth())
        self._hooks = hooks
        self._core = core
        self._registry = registry
        self._conn = p.Connection(p.SERVER)
        self.started = trio.current_time()
        self.session = s.RtspSession(secrets.token_hex(8), last_activity=self.started, timeout=timeout)
        try:
            self.peer: tuple[str, int] = tuple(stream.socket.getpeername()[:2])  # type: ignore[assignment]
            self.local_ip: str = stream.socket.getsockname()[0]
        except OSError:  # reset between accept and now: run() sees EOF and closes
            self.peer, self.local_ip = ("?", 0), "127.0.0.1"
        self.transport_id: int | None = None
        self.role: str | None = None  # PLAYER or PUBLISHER once a transport exists
        self.tcp: bool | None = None  # the session's lower transport, fixed by its first SETUP
        self.track_index: dict[str, int] = {}  # control -> the core's track index
        self.rtp_info: dict[str, tuple[int | None, int | None]] = {}  # control -> (seq, rtptime)
        self.core_owned = False
        self.dropped_frames = 0
        self._scope = trio.CancelScope()
        self._ended: str | None = None
        self._inbox_send, self._inbox = trio.open_memory_channel[bytes](INBOX_SIZE)

    @property
    def name(self) -> str:
        return f"rtsp {self.peer[0]}:{self.peer[1]} session {self.session.id}"

    # -- the connection task

    async def run(self) -> None:
        reason = "closed"
        log.debug("%s: connected", self.name)
        try:
            with self._scope:
                reason = await self._serve_socket()
                if self.core_owned:
                    reason = await self._serve_core_owned()
            if self._ended is not None:
                reason = self._ended
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            reason = "eof"
        except trio.TooSlowError:
            log.info("%s: the client did not read a reply for %g s; closing", self.name, SEND_TIMEOUT)
            reason = "send-timeout"
        finally:
            self._close_transport(reason)  # the socket: closed by the handler (or the core)
            log.debug("%s: ended (%s)", self.name, reason)

    async def _serve_socket(self) -> str:
        """Python owns the socket: read, feed, handle, write. Returns why it stopped (``handed``
        when the core took the socket)."""
        while True:
            try:
                event = self._conn.next_event()
            except p.RemoteProtocolError as e:
                log.info("%s: bad input: %s -> %d", self.name, e.message, e.status_hint)
                with trio.move_on_after(1):
                    await self._stream.send_all(self._conn.send_response(self._decorate(p.error_response(e))))
                return "protocol-error"
            if event is p.NEED_DATA:
                data = None
                with trio.move_on_at(self.session.next_deadline()):
                    data = await self._stream.receive_some(RECV_SIZE)
                if data is None:
                    if self._expired():
                        return "timeout"
                    continue
                self._conn.receive_data(data)
                continue
            if isinstance(event, p.ConnectionClosed):
                return "eof"
            if isinstance(event, p.InterleavedFrame):
                # Only the core reads media; frames before PLAY/RECORD or on a UDP session's
                # control connection belong to no track we serve.
                self.dropped_frames += 1
                continue
            if not isinstance(event, p.Request):
                continue
            response, action = await self._handle(event)
            reply = self._conn.send_response(response)
            if action == "handover":
                try:
                    self._hand_over(reply)
                except CoreError as e:  # the transport ended meanwhile; the core closed the socket
                    log.info("%s: the core could not take the connection: %s", self.name, e)
                    return "closed"
                return "handed"
            with trio.fail_after(SEND_TIMEOUT):
                await self._stream.send_all(reply)

    def _hand_over(self, reply: bytes) -> None:
        """PLAY/RECORD over TCP: the core takes the socket, writes ``reply`` and then media."""
        assert self.transport_id is not None
        sock = self._stream.socket
        pending = self._conn.trailing_data
        trio.lowlevel.notify_closing(sock)  # no task waits on it; drop trio's epoll registration
        fd = sock.detach()
        self.core_owned = True  # the core closes the fd, even when rtsp_start fails
        self._core.rtsp_start(self.transport_id, fd=fd, reply=reply, pending=pending)
        if self.role == PUBLISHER and self.session.stream is not None:
            self._registry.mark_live(self.session.stream)
        log.info("%s: %s %s over TCP (the core owns the connection)", self.name,
                 "plays" if self.role == PLAYER else "publishes", self.session.stream)

    async def _serve_core_owned(self) -> str:
        """The core owns the socket: requests come from :meth:`rtsp_message`, replies go back
        through the core. Ends when the transport closes (the scope is cancelled) or at TEARDOWN."""
        conn = p.Connection(p.SERVER)
        while True:
            data = None
            with trio.move_on_at(self.session.next_deadline()):
                try:
                    data = await self._inbox.receive()
                except trio.EndOfChannel:
                    return "closed"
            if data is None:
                if self._expired():
                    return "timeout"
                continue
            conn.receive_data(data)
            while True:
                tid = self.transport_id
                if tid is None:
                    return "closed"
                try:
                    event = conn.next_event()
                except p.RemoteProtocolError as e:
                    self._core_write(tid, conn.send_response(self._decorate(p.error_response(e))))
                    return "protocol-error"
                if event is p.NEED_DATA:
                    break
                if not isinstance(event, p.Request):
                    continue
                response, action = await self._handle(event)
                if not self._core_write(tid, conn.send_response(response), resume=action == "resume"):
                    return "closed"
                if action == "teardown":
                    return "teardown"

    def _expired(self) -> bool:
        """At a session deadline: True (logged) when no request and no sign of life came in
        the session timeout; False when one moved the deadline on."""
        if not self.session.handle_timeout(trio.current_time()):
            return False
        log.info("%s: no request and no sign of life for %d s; closing", self.name, self.session.timeout)
        return True

    def _core_write(self, tid: int, reply: bytes, *, resume: bool = False) -> bool:
        """A reply on a core-owned connection; False when the core no longer has it (the client
        closed it and the ``transport_closed`` event is still on its way)."""
        try:
            if resume:
                self._core.rtsp_start(tid, reply=reply)
            else:
                self._core.rtsp_send(tid, reply)
        except CoreError as e:
            log.debug("%s: reply not sent: %s", self.name, e)
            return False
        return True

    def _close_transport(self, reason: str) -> None:
        tid, self.transport_id = self.transport_id, None
        if tid is None:
            return
        self._registry.remove_transport(tid, reason)
        try:
            self._core.close_transport(tid)
        except Exception:
            log.exception("%s: closing transport %d failed", self.name, tid)
        self.role, self.tcp = None, None
        self.track_index.clear()
        self.rtp_info.clear()

    # -- TransportOwner (called by the registry from the event pump; never block)

    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None:
        if transport_id != self.transport_id:
            return
        log.info("%s: %s of %s ended (%s)", self.name, role, stream, reason)
        self.transport_id = None  # the registry forgot it; the core closed it
        self._ended = reason
        self._scope.cancel()

    def kick(self) -> None:
        """``DELETE /api/v1/sessions/ID``: end the session and its connection."""
        self._ended = "kicked"
        self._scope.cancel()

    def rtsp_alive(self, transport_id: int) -> None:
        """The core read something from this session's peer (RTCP, media): a keep-alive."""
        if transport_id == self.transport_id:
            self.session.touch(trio.current_time())

    def rtsp_disconnected(self, transport_id: int, reason: str) -> None:
        """Never sent for a server session (only pulls)."""

    def describe(self, now: float) -> dict[str, Any]:
        """This connection for ``/api/v1/sessions``: ``kind`` "rtsp", ``role`` "play"/"publish" (None
        before SETUP/ANNOUNCE), ``transport`` "tcp"/"udp" (None before SETUP), ``state`` the RTSP
        state (Init, Ready, Playing, Recording), ``idle`` seconds since the last sign of life."""
        return {"id": self.session.id, "kind": "rtsp", "peer": f"{self.peer[0]}:{self.peer[1]}",
                "stream": self.session.stream, "role": self.role,
                "transport": None if self.tcp is None else ("tcp" if self.tcp else "udp"),
                "state": self.session.state.value, "transport_id": self.transport_id,
                "age": round(max(0.0, now - self.started), 3),
                "idle": round(max(0.0, now - self.session.last_activity), 3)}

    def rtsp_message(self, transport_id: int, data: bytes) -> None:
        if transport_id != self.transport_id:
            return
        try:
            self._inbox_send.send_nowait(data)
        except trio.WouldBlock:
            log.warning("%s: over %d requests waiting; closing", self.name, INBOX_SIZE)
            self._ended = "flood"
            self._scope.cancel()

    # -- requests

    async def _handle(self, request: p.Request) -> tuple[p.Response, str | None]:
        """The response to ``request`` and what to do after writing it: ``None``, ``"handover"``
        (PLAY/RECORD over TCP), ``"resume"`` (PLAY after PAUSE on a core-owned connection) or
        ``"teardown"``. Never raises for anything the peer sent."""
        action: str | None = None
        try:
            self.session.check(request, trio.current_time())
            handler = getattr(self, f"_handle_{request.method.lower()}")
            response, action = await handler(request)
        except p.RemoteProtocolError as e:
            response = p.error_response(e)
        except sdp.SdpError as e:
            response = p.error_response(p.RemoteProtocolError(e.message, e.status_hint))
        except CoreError as e:
            status, message = core_error_status(e, "rtsp")
            if not is_mapped(e, "rtsp"):
                log.error("%s: %s: core error %s: %s", self.name, request.method, e.code, message)
            response = p.error_response(p.RemoteProtocolError(message, status))
        except Exception:
            log.exception("%s: %s failed", self.name, request.method)
            response = p.error_response(p.RemoteProtocolError("internal error; the server log has the details",
                                                              500))
        if response.status >= 400:
            log.info("%s: %s %s -> %d", self.name, request.method, request.uri[:200], response.status)
        return self._decorate(response), action

    def _decorate(self, response: p.Response) -> p.Response:
        extra = [("Server", SERVER)]
        if self.session.established and response.header("Session") is None:
            extra.append(("Session", self.session.session_header()))
        return replace(response, headers=(*response.headers, *extra))

    async def _handle_options(self, request: p.Request) -> tuple[p.Response, None]:
        return p.Response(200, "OK", (("Public", s.PUBLIC),)), None

    async def _handle_get_parameter(self, request: p.Request) -> tuple[p.Response, None]:
        return p.Response(200, "OK"), None  # a keep-alive: check() counted it

    async def _handle_set_parameter(self, request: p.Request) -> tuple[p.Response, None]:
        return p.Response(200, "OK"), None

    async def _admit(self, request: p.Request, url: h.RtspUrl, action: Action) -> None:
        """The token (SPEC 10: 401 with challenges, or 403), then the admission hook (403)."""
        self._auth.check(request, url.query, url.stream, action, trio.current_time())
        if self._hooks is not None:
            try:
                await self._hooks.admit(action, url.stream, session=self.session.id, kind="rtsp",
                                        peer=f"{self.peer[0]}:{self.peer[1]}")
            except HookRefused as e:
                raise p.RemoteProtocolError(str(e), 403) from None

    async def _handle_describe(self, request: p.Request) -> tuple[p.Response, None]:
        url = h.parse_url(request.uri)
        if not url.stream:
            raise p.RemoteProtocolError("DESCRIBE needs a stream: rtsp://HOST:PORT/NAME", 404)
        if self.role == PUBLISHER:
            raise p.RemoteProtocolError("DESCRIBE on a publishing session (it was ANNOUNCEd)", 455)
        await self._admit(request, url, "play")
        from_peer = (request.header(h.CASCADE_HEADER) or "").strip() == "1"  # a cascade peer: never pull
        if await self._registry.locate(url.stream, DESCRIBE_WAIT, from_peer=from_peer) is None:
            raise p.RemoteProtocolError(f"stream {url.stream} is not live here; publish it first or check "
                                        f"its name", 404)
        tracks = await self._describable_tracks(url.stream)
        if not tracks:
            raise p.RemoteProtocolError(f"stream {url.stream} has no track RTSP can carry", 415)
        body = sdp.describe_sdp(url.stream, tracks, self.local_ip, session_id=secrets.randbelow(1 << 31))
        self.session.describe(url.stream, [t["control"] for t in tracks])
        self.track_index = {t["control"]: t["index"] for t in tracks}
        headers = (("Content-Base", _base_url(request.uri)), ("Content-Type", "application/sdp"))
        return p.Response(200, "OK", headers, body.encode()), None

    async def _describable_tracks(self, name: str) -> list[dict[str, Any]]:
        """The stream's tracks as :func:`sdp.describe_sdp` takes them, with the freshest
        parameter sets; waits a little for sets a WebRTC publisher has not sent yet."""
        deadline = trio.current_time() + PARAMETER_SETS_WAIT
        while True:
            raw = self._core.stream_tracks(name)
            live = self._registry.get(name)
            if raw is None or live is None:
                raise p.RemoteProtocolError(f"stream {name} ended", 404)
            tracks, missing = [], False
            for t in raw:
                track = describable(t, live.parameter_sets)
                if track is None:
                    continue
                tracks.append(track)
                missing = missing or track.pop("missing_parameter_sets", False)
            if not missing or trio.current_time() >= deadline:
                return tracks
            await self._registry.wait_changed(deadline - trio.current_time())

    async def _handle_announce(self, request: p.Request) -> tuple[p.Response, None]:
        url = h.parse_url(request.uri)
        if not url.stream:
            raise p.RemoteProtocolError("ANNOUNCE needs a stream: rtsp://HOST:PORT/NAME", 400)
        if self.transport_id is not None:
            raise p.RemoteProtocolError("this connection already plays or publishes a stream; one per "
                                        "connection", 455)
        await self._admit(request, url, "publish")
        tracks = sdp.parse_announce_sdp(request.body)
        if self._registry.is_claimed(url.stream):
            raise p.RemoteProtocolError(f"stream {url.stream} is already being published; choose another "
                                        f"name or stop the other publisher", 409)
        tid = self._core.create_rtsp_publisher(url.stream, [core_track(t) for t in tracks])
        self.transport_id, self.role = tid, PUBLISHER
        self._registry.add_publisher(url.stream, tid, self, source="rtsp", pending=True)
        for t in tracks:
            nals = [t.get(k) for k in (("vps", "sps", "pps") if t["codec"] == "H265" else ("sps", "pps"))]
            if t["codec"] in ("H264", "H265") and all(nals):
                self._registry.on_parameter_sets(url.stream, t["codec"], [bytes(n) for n in nals if n])
        self.track_index = {t["control"]: i for i, t in enumerate(tracks)}
        self.session.announce(url.stream, self.track_index)
        log.info("%s: ANNOUNCE %s (%s)", self.name, url.stream, ", ".join(t["codec"] for t in tracks))
        return p.Response(200, "OK"), None

    async def _handle_setup(self, request: p.Request) -> tuple[p.Response, None]:
        ses = self.session
        url = h.parse_url(request.uri, ses.controls)
        if url.stream != ses.stream:
            raise p.RemoteProtocolError(f"SETUP of stream {url.stream[:80]}, but this session "
                                        f"{'announced' if ses.mode == 'RECORD' else 'described'} {ses.stream}", 455)
        control = url.control or (ses.controls[0] if len(ses.controls) == 1 else None)
        if control is None:
            raise p.RemoteProtocolError(f"SETUP names a track: one of {', '.join(ses.controls)}", 459)
        specs = h.parse_transport(request.header("Transport"))
        if self.tcp is not None:
            specs = [spec for spec in specs if spec.is_tcp == self.tcp]
            if not specs:
                raise p.RemoteProtocolError(f"this session's tracks use {'TCP' if self.tcp else 'UDP'}; every "
                                            f"track of a session uses the same transport", 461)
        saved = (dict(ses.tracks), ses.state, ses.established)
        track = ses.setup(control, specs[0])
        try:
            result = self._add_track(control, track.transport)
        except BaseException:
            ses.tracks, ses.state, ses.established = saved
            raise
        self.tcp = track.transport.is_tcp
        if self.role == PLAYER:
            self.rtp_info[control] = (result.get("seq"), result.get("rtptime"))
        server_port = result.get("server_port")
        reply = replace(track.transport, destination=None, source=None, ssrc=result.get("ssrc"),
                        server_port=tuple(server_port) if server_port else None)
        return p.Response(200, "OK", (("Transport", h.format_transport(reply)),
                                      ("Session", ses.session_header()))), None

    def _add_track(self, control: str, transport: h.TransportSpec) -> dict[str, Any]:
        stream = self.session.stream
        assert stream is not None
        if self.transport_id is None:
            if not self._registry.is_live(stream):
                raise p.RemoteProtocolError(f"stream {stream} is not live any more", 404)
            self.transport_id = self._core.create_rtsp_player(stream)
            self.role = PLAYER
            self._registry.add_player(stream, self.transport_id, self)
        if transport.is_tcp:
            assert transport.interleaved is not None
            return dict(self._core.rtsp_add_track(self.transport_id, self.track_index[control],
                                                  channels=transport.interleaved))
        assert transport.client_port is not None
        client = (self.peer[0], transport.client_port[0], transport.client_port[1])
        return dict(self._core.rtsp_add_track(self.transport_id, self.track_index[control], client=client))

    async def _handle_play(self, request: p.Request) -> tuple[p.Response, str | None]:
        if request.header("Range") is not None:
            h.parse_range(request.header("Range") or "")  # 457 for a bad one; a live stream plays from now
        assert self.transport_id is not None
        was = self.session.state
        headers = [("Range", "npt=0.000-")]
        info = self._rtp_info(request.uri)
        if info:
            headers.append(("RTP-Info", info))
        action: str | None = None
        if was is not s.State.PLAYING:
            if self.tcp and not self.core_owned:
                action = "handover"
            elif self.core_owned:
                action = "resume"
            else:
                self._core.rtsp_start(self.transport_id)
        self.session.play()
        if action is None and was is not s.State.PLAYING:
            log.info("%s: plays %s over UDP", self.name, self.session.stream)
        return p.Response(200, "OK", tuple(headers)), action

    def _rtp_info(self, uri: str) -> str | None:
        base = _base_url(uri)
        entries = [h.RtpInfo(base + control, seq, rtptime) for control, (seq, rtptime) in self.rtp_info.items()]
        try:
            return h.format_rtp_info(entries) if entries else None
        except p.LocalProtocolError:  # a stream name RTP-Info cannot carry (a comma...): leave it out
            return None

    async def _handle_record(self, request: p.Request) -> tuple[p.Response, str | None]:
        assert self.transport_id is not None and self.session.stream is not None
        action: str | None = None
        if self.session.state is not s.State.RECORDING:
            if self.tcp and not self.core_owned:
                action = "handover"  # mark_live after the core took the socket
            else:
                self._core.rtsp_start(self.transport_id)
                self._registry.mark_live(self.session.stream)
                log.info("%s: publishes %s over UDP", self.name, self.session.stream)
        self.session.record()
        return p.Response(200, "OK"), action

    async def _handle_pause(self, request: p.Request) -> tuple[p.Response, None]:
        assert self.transport_id is not None
        if self.role == PLAYER:
            self._core.rtsp_pause(self.transport_id)
        self.session.pause()
        return p.Response(200, "OK"), None

    async def _handle_teardown(self, request: p.Request) -> tuple[p.Response, str | None]:
        session_id = self.session.id
        url = h.parse_url(request.uri, self.session.controls)
        ended = self.session.teardown(url.control) if self.session.established else True
        headers = (("Session", session_id),)
        if not ended:
            return p.Response(200, "OK", headers), None
        if self.core_owned:
            return p.Response(200, "OK", headers), "teardown"  # closed in run()'s finally
        self._close_transport("teardown")
        return p.Response(200, "OK", headers), None


# ---------------------------------------------------------------------------------------------
# helpers (pure; the track translations are in ``tracks``)


def _base_url(uri: str) -> str:
    """The aggregate URL with a trailing slash (Content-Base; RTP-Info URLs are base + control)."""
    try:
        parts = urlsplit(uri)
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", "", ""))
    except ValueError:
        return uri
