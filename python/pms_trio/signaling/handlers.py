"""Signaling requests -> media core commands, for one session.

Owns the meaning of each method (SPEC section 3) on top of :mod:`.protocol`: ``stream.publish`` ->
``Core.create_publisher``, ``stream.play`` -> ``Core.create_player``, ``stream.mute`` ->
``Core.set_muted``, ``stream.close`` -> ``Core.close_transport``; keeping the stream registry and the
session's own tables in step; turning :class:`CoreError` codes into reply codes.

It is the transport owner the registry calls back (``transport_closed``), and queues a
``stream.closed`` notification for the connection when a transport ends without being asked to.
Core calls are quick and non-blocking, so they are made directly. No socket I/O happens here: the
adapter (``server``) passes frames in and sends what comes out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from .. import _core
from .._core import CoreError
from ..auth import Action, Auth, AuthError
from ..core_errors import core_error_status, is_mapped
from ..hooks import HookRefused, Hooks
from ..streams import StreamRegistry
from . import protocol as p

log = logging.getLogger("pms_trio.signaling")

Params = ParamSpec("Params")
Result = TypeVar("Result")


class SessionHandler:
    def __init__(self, session: p.Session, core: _core.Core, registry: StreamRegistry,
                 notify: Callable[[str], None], auth: Auth | None = None, hooks: Hooks | None = None) -> None:
        self.session = session
        self._auth = auth or Auth()
        self._hooks = hooks
        self._core = core
        self._registry = registry
        self._notify = notify  # queues a text frame for the peer; never blocks

    async def handle_frame(self, frame: str | bytes, now: float) -> str:
        """One frame in, one reply out (never raises for anything the peer sent)."""
        sid = self.session.id
        method = "ack"
        try:
            request = self.session.receive(frame, now)
            method = request.method
            data = await self._handle(request)
            return p.build_reply(method, sid, data)
        except p.ProtocolError as e:
            if e.code >= 500:
                log.error("session %s: %s %s: %s", sid, e.method, e.stream, e.message)
            else:
                log.info("session %s: %s %s -> %d %s", sid, e.method, e.stream, e.code, e.message)
            return p.error_reply(e, sid)
        except Exception:
            log.exception("session %s: internal error", sid)
            return p.build_reply(method, sid, {}, err=p.ErrorCode.INTERNAL,
                                 err_msg="internal server error; the server log has the details")

    async def _handle(self, request: p.Request) -> dict[str, Any]:
        if isinstance(request, p.Publish):
            return await self._handle_publish(request)
        if isinstance(request, p.Play):
            return await self._handle_play(request)
        if isinstance(request, p.Mute):
            return self._handle_mute(request)
        if isinstance(request, p.Close):
            return self._handle_close(request)
        return {}  # Heartbeat: receiving it was the point

    async def _allow(self, r: p.Publish | p.Play, action: Action) -> None:
        """The token (SPEC 10), then the admission hook; 401/403 otherwise."""
        try:
            self._auth.check(r.token, r.stream, action)
            if self._hooks is not None:
                await self._hooks.admit(action, r.stream, session=self.session.id, kind="webrtc",
                                        peer=self.session.peer, token=r.token)
        except AuthError as e:
            raise p.ProtocolError(e.status, e.message, method=r.method, stream=r.stream) from None
        except HookRefused as e:
            raise p.ProtocolError(p.ErrorCode.FORBIDDEN, str(e), method=r.method, stream=r.stream) from None

    async def _handle_publish(self, r: p.Publish) -> dict[str, Any]:
        await self._allow(r, "publish")
        if r.stream in self.session.publishing:
            raise p.ProtocolError(p.ErrorCode.CONFLICT, f"this session already publishes stream {r.stream}; "
                                  f"send stream.close first", method=r.method, stream=r.stream)
        if self._registry.is_claimed(r.stream):
            raise p.ProtocolError(p.ErrorCode.CONFLICT, f"stream {r.stream} is already being published; "
                                  f"choose another name or stop the other publisher", method=r.method,
                                  stream=r.stream)
        transport_id, answer = self._core_call(r, self._core.create_publisher, r.stream, r.sdp, r.max_bitrate)
        self.session.publishing[r.stream] = transport_id
        self._registry.add_publisher(r.stream, transport_id, self)
        log.info("session %s: publishes %s (transport %d%s)", self.session.id, r.stream, transport_id,
                 f", max {r.max_bitrate} bps" if r.max_bitrate else "")
        return {"sdp": answer}

    async def _handle_play(self, r: p.Play) -> dict[str, Any]:
        await self._allow(r, "play")
        if r.stream in self.session.playing:
            raise p.ProtocolError(p.ErrorCode.CONFLICT, f"this session already plays stream {r.stream}; "
                                  f"send stream.close first", method=r.method, stream=r.stream)
        location = await self._registry.locate(r.stream)
        if location is None or not self._registry.is_live(r.stream):
            raise p.ProtocolError(p.ErrorCode.NOT_FOUND, f"stream {r.stream} is not live here; publish it "
                                  f"first or check its name", method=r.method, stream=r.stream)
        if r.stream in self.session.playing:  # a concurrent play of ours finished while we waited
            raise p.ProtocolError(p.ErrorCode.CONFLICT, f"this session already plays stream {r.stream}",
                                  method=r.method, stream=r.stream)
        transport_id, answer = self._core_call(r, self._core.create_player, r.stream, r.sdp)
        self.session.playing[r.stream] = transport_id
        self._registry.add_player(r.stream, transport_id, self)
        log.info("session %s: plays %s (transport %d)", self.session.id, r.stream, transport_id)
        return {"sdp": answer}

    def _handle_mute(self, r: p.Mute) -> dict[str, Any]:
        transport_id = self.session.publishing.get(r.stream, self.session.playing.get(r.stream))
        if transport_id is None:
            raise p.ProtocolError(p.ErrorCode.NOT_FOUND, f"this session neither publishes nor plays stream "
                                  f"{r.stream}", method=r.method, stream=r.stream)
        try:
            video, audio = self._core.set_muted(transport_id, r.video, r.audio)
        except KeyError:
            self._forget(transport_id, "closed")
            raise p.ProtocolError(p.ErrorCode.NOT_FOUND, f"stream {r.stream} has ended for this session",
                                  method=r.method, stream=r.stream) from None
        return {"video": bool(video), "audio": bool(audio)}

    def _handle_close(self, r: p.Close) -> dict[str, Any]:
        for transport_id in self.session.transports_of(r.stream):
            self._close(transport_id)
        return {}

    # -- helpers

    def _core_call(self, r: p.Request, fn: Callable[Params, Result], *args: Params.args,
                   **kwargs: Params.kwargs) -> Result:
        """``fn(*args)`` (a core command, its arguments checked against the stub), a refusal
        turned into the reply's code."""
        try:
            return fn(*args, **kwargs)
        except CoreError as e:
            code, message = core_error_status(e, "signaling")
            if not is_mapped(e, "signaling"):
                log.error("core returned unknown error code %r for %s: %s", e.code, r.method, message)
            raise p.ProtocolError(code, message, method=r.method, stream=r.stream) from None

    def _close(self, transport_id: int) -> None:
        self._forget(transport_id, "closed")
        self._core.close_transport(transport_id)

    def _forget(self, transport_id: int, reason: str) -> None:
        self.session.forget(transport_id)
        self._registry.remove_transport(transport_id, reason)

    def close_all(self, reason: str) -> None:
        """The connection ends: close every transport of this session at once."""
        transports = self.session.transports()
        for transport_id in transports:
            try:
                self._close(transport_id)
            except Exception:
                log.exception("session %s: closing transport %d failed", self.session.id, transport_id)
        if transports:
            log.info("session %s: %s; closed %d transports", self.session.id, reason, len(transports))

    # -- TransportOwner: called by the registry (from the event pump)

    def rtsp_message(self, transport_id: int, data: bytes) -> None:
        """Never sent for a WebRTC transport."""

    def rtsp_alive(self, transport_id: int) -> None:
        """Never sent for a WebRTC transport (ICE consent is the core's)."""

    def rtsp_disconnected(self, transport_id: int, reason: str) -> None:
        """Never sent for a WebRTC transport (only pulls)."""

    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None:
        if self.session.forget(transport_id) is None:
            return
        log.info("session %s: %s of %s ended (%s)", self.session.id, role, stream, reason)
        self._notify(p.closed_notification(self.session.id, stream, reason))
