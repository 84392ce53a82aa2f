"""WHIP and WHEP (RFC 9725; SPEC section 9) on the HTTP port: WebRTC publish and play for standard
clients (OBS, GStreamer's whipclientsink/whepsrc, FFmpeg's WHIP muxer, a browser's ``fetch``).

Owns the WHIP/WHEP sessions (one per ``POST``: its stream, the core's transport, its ``ETag``) and
the routes ``POST /whip/NAME``, ``POST /whep/NAME``, ``DELETE``/``PATCH`` on the ``Location``
(``/whip/NAME/SESSION``) and the CORS preflight ``OPTIONS``. It is the stream registry's owner of
each session's transport. There is no second media path: a publish is ``Core.create_publisher`` and
``StreamRegistry.add_publisher``, a play ``StreamRegistry.locate`` (cascade, GB28181) then
``Core.create_player``, exactly as the WebSocket signaling does, so the streams are shared.

Rules (where the spec is silent, the decision is written here):

- ``POST`` needs ``Content-Type: application/sdp`` (else 415) and a body of at most 256 KiB (413, the
  HTTP server's limit). Answers: 201 with ``Location``, ``ETag`` and the answer SDP. Errors: a
  one-line ``text/plain`` body with SPEC 9's status (400 bad SDP, 404 no such stream, 409 already
  published, 415 no codec in common).
- The answer is complete (ICE-lite: one host candidate per port, ``end-of-candidates``), so no trickle
  is needed. A ``PATCH`` with ``application/trickle-ice-sdpfrag`` on a live session is 204: the
  client's candidates are not needed, since an ICE-lite server learns the client's address from its
  connectivity checks. An ICE restart is not supported: a fragment with new ``ice-ufrag``/``ice-pwd``
  is 405 (RFC 9725 4.3 lets a server refuse it). An ``If-Match`` that is not the session's ``ETag``
  is 412.
- ``DELETE`` on the ``Location`` ends the session (200); an unknown or ended session is 404. The
  session id is 16 random bytes (hex): knowing a stream name is not enough to end another client's
  session.
- A session ends with its transport (ICE or DTLS failure, the publisher gone for a player, the
  publisher's own end): the registry tells :meth:`WhipSessions.transport_closed`.
- CORS: every response allows any origin and exposes ``Location``, ``ETag``, ``Accept-Patch`` and
  ``Link``; the preflight allows ``POST, DELETE, PATCH, OPTIONS`` and the headers
  ``Content-Type, Authorization, If-Match``.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import trio

from ..auth import Action, Auth, AuthError, bearer
from ..core_errors import core_error_status
from ..hooks import HookRefused, Hooks
from ..streams import StreamRegistry
from .responses import Response

if TYPE_CHECKING:
    from .. import _core

log = logging.getLogger("pms_trio.whip")

PUBLISH, PLAY = "whip", "whep"
SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"
MAX_NAME = 255
CORS = (("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Expose-Headers", "Location, ETag, Accept-Patch, Link"))
PREFLIGHT = (*CORS, ("Access-Control-Allow-Methods", "POST, DELETE, PATCH, OPTIONS"),
             ("Access-Control-Allow-Headers", "Content-Type, Authorization, If-Match"),
             ("Access-Control-Max-Age", "86400"))
_PATH = re.compile(r"^/(whip|whep)/([^/]+)(?:/([0-9a-f]{32}))?/?$")
_UFRAG = re.compile(r"^a=ice-(?:ufrag|pwd):(\S+)", re.MULTILINE)


def owns(path: str) -> bool:
    return path.startswith(("/whip/", "/whep/"))


@dataclass(eq=False, slots=True)
class WhipSession:
    id: str
    kind: str  # PUBLISH ("whip") or PLAY ("whep")
    stream: str
    transport_id: int
    etag: str
    started: float = 0.0  # trio.current_time() at the POST
    ice: tuple[str, ...] = ()  # the offer's ice-ufrag/ice-pwd (an ICE restart changes them)

    @property
    def location(self) -> str:
        return f"/{self.kind}/{self.stream}/{self.id}"

    def describe(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "stream": self.stream, "role": "publish" if self.kind == PUBLISH
                else "play", "transport_id": self.transport_id, "age": round(max(0.0, now - self.started), 3)}


def _text(status: int, message: str, extra: tuple[tuple[str, str], ...] = ()) -> Response:
    body = (message.replace("\r", " ").replace("\n", " ") + "\n").encode("utf-8")
    return Response(status, body, "text/plain; charset=utf-8", (*CORS, *extra))


class WhipSessions:
    def __init__(self, core: _core.Core, registry: StreamRegistry, auth: Auth | None = None,
                 hooks: Hooks | None = None) -> None:
        self._auth = auth or Auth()
        self._hooks = hooks
        self._core = core
        self._registry = registry
        self.by_id: dict[str, WhipSession] = {}
        self._by_transport: dict[int, WhipSession] = {}

    async def handle(self, method: str, path: str, body: bytes, headers: dict[str, str], peer: str = "") -> Response:
        m = _PATH.match(path)
        name = unquote(m.group(2)) if m else ""
        if m is None or not name or len(name) > MAX_NAME or any(c < " " for c in name):
            return _text(404, f"no such resource: {path}; use /whip/NAME or /whep/NAME")
        kind, session_id = m.group(1), m.group(3)
        if method == "OPTIONS":
            return Response(204, b"", "text/plain", PREFLIGHT)
        if session_id is None:
            if method != "POST":
                return _text(405, f"/{kind}/NAME answers POST (and OPTIONS)", (("Allow", "POST, OPTIONS"),))
            return await self._post(kind, name, body, headers, peer)
        session = self.by_id.get(session_id)
        if session is None or session.kind != kind or session.stream != name:
            return _text(404, "no such session (it ended, or the URL is not its Location)")
        if method == "DELETE":
            self._end(session, "closed", close=True)
            return Response(200, b"", "text/plain", CORS)
        if method == "PATCH":
            return self._patch(session, body, headers)
        return _text(405, "a session answers DELETE and PATCH", (("Allow", "DELETE, PATCH, OPTIONS"),))

    async def _post(self, kind: str, name: str, body: bytes, headers: dict[str, str], peer: str) -> Response:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != SDP:
            return _text(415, f"the offer must be sent as {SDP}, not {content_type or 'no Content-Type'}")
        action: Action = "publish" if kind == PUBLISH else "play"
        try:
            self._auth.check(bearer(headers), name, action)
            if self._hooks is not None:
                await self._hooks.admit(action, name, session="", kind=kind, peer=peer, token=bearer(headers))
        except AuthError as e:
            challenge = (("WWW-Authenticate", 'Bearer realm="pms-trio"'),) if e.status == 401 else ()
            return _text(e.status, e.message, challenge)
        except HookRefused as e:
            return _text(403, str(e))
        try:
            offer = body.decode("utf-8")
        except UnicodeDecodeError:
            return _text(400, "the offer is not UTF-8 text")
        if kind == PUBLISH:
            if self._registry.is_claimed(name):
                return _text(409, f"stream {name} is already being published")
            try:
                tid, answer = self._core.create_publisher(name, offer, 0)
            except Exception as e:  # CoreError: 400/415/422 (the offer), 409 (taken meanwhile)
                return self._refused(e, name)
            session = self._new(kind, name, tid, offer)
            self._registry.add_publisher(name, tid, self)
        else:
            if await self._registry.locate(name) is None or not self._registry.is_live(name):
                return _text(404, f"stream {name} is not live here")
            try:
                tid, answer = self._core.create_player(name, offer)
            except Exception as e:
                return self._refused(e, name)
            session = self._new(kind, name, tid, offer)
            self._registry.add_player(name, tid, self)
        log.info("%s %s: session %s (transport %d)", kind, name, session.id, tid)
        return Response(201, answer.encode("utf-8"), SDP,
                        (*CORS, ("Location", session.location), ("ETag", session.etag),
                         ("Accept-Patch", TRICKLE)))

    def _refused(self, error: Exception, name: str) -> Response:
        status, message = core_error_status(error, "whip", name)
        if status >= 500:
            log.error("whip: %s", message)
        return _text(status, message)

    def _new(self, kind: str, name: str, tid: int, offer: str) -> WhipSession:
        session_id = secrets.token_hex(16)
        session = WhipSession(session_id, kind, name, tid, f'"{secrets.token_hex(8)}"', trio.current_time(),
                              ice=tuple(_UFRAG.findall(offer)))
        self.by_id[session_id] = session
        self._by_transport[tid] = session
        return session

    def _patch(self, session: WhipSession, body: bytes, headers: dict[str, str]) -> Response:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != TRICKLE:
            return _text(415, f"PATCH takes {TRICKLE}")
        match = headers.get("if-match")
        if match is not None and match.strip() not in ("*", session.etag):
            return _text(412, "If-Match is not this session's ETag")
        ice = tuple(_UFRAG.findall(body.decode("utf-8", "replace")))
        if ice and session.ice and ice != session.ice:
            return _text(405, "ICE restarts are not supported; DELETE the session and POST again")
        return Response(204, b"", "text/plain", CORS)

    def _end(self, session: WhipSession, reason: str, *, close: bool) -> None:
        self.by_id.pop(session.id, None)
        self._by_transport.pop(session.transport_id, None)
        if close:
            self._registry.remove_transport(session.transport_id, reason)
            try:
                self._core.close_transport(session.transport_id)
            except Exception:  # noqa: BLE001 - already gone in the core
                pass
        log.info("%s %s: session %s ended (%s)", session.kind, session.stream, session.id, reason)

    def kick(self, session_id: str) -> bool:
        session = self.by_id.get(session_id)
        if session is None:
            return False
        self._end(session, "kicked", close=True)
        return True

    def describe(self, now: float) -> list[dict[str, Any]]:
        return [s.describe(now) for s in self.by_id.values()]

    def close_all(self) -> None:
        for session in list(self.by_id.values()):
            self._end(session, "shutdown", close=True)

    # -- TransportOwner (the registry calls these from the event pump; never block)

    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None:
        session = self._by_transport.get(transport_id)
        if session is not None:
            self._end(session, reason, close=False)

    def rtsp_message(self, transport_id: int, data: bytes) -> None:
        """Never sent for a WebRTC transport."""

    def rtsp_alive(self, transport_id: int) -> None:
        """Never sent for a WebRTC transport."""

    def rtsp_disconnected(self, transport_id: int, reason: str) -> None:
        """Never sent for a WebRTC transport."""
