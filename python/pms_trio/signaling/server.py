"""The signaling server: the WebSocket adapter (:mod:`.wsconn`) around :mod:`.protocol` and :mod:`.handlers`.

Owns the listening socket (``websocket.listenIp``/``port``, ws or wss), the handshake check of the
path (``websocket.location``; any other path is rejected with HTTP 404), and exactly one task per
connection: it reads frames, passes them to its :class:`SessionHandler`, sends the replies and the
session's notifications, and closes the connection when the session's heartbeat deadline passes.
Whatever ends a connection, its ``finally`` closes every transport of its session.

The adapter's message limit is 1 MiB so that frames over 256 KiB reach the protocol module and get
err 413 (the connection stays open); only frames over 1 MiB close the connection (code 1009).
"""

from __future__ import annotations

import logging
import secrets
import ssl
from typing import Any

import trio

from .. import _core
from ..config import WebSocketConfig
from ..auth import Auth
from ..hooks import Hooks
from ..streams import StreamRegistry
from . import protocol as p
from .handlers import SessionHandler
from .wsconn import ConnectionClosed, WsConnection, accept, normal_path

log = logging.getLogger("pms_trio.signaling")

MAX_MESSAGE = 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0


def make_ssl_context(config: WebSocketConfig) -> ssl.SSLContext:
    """Server TLS context from ``certFile``/``keyFile``/``passPhrase``. Raises ``OSError`` or
    ``ssl.SSLError`` when they cannot be loaded."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.cert_file, config.key_file, password=config.pass_phrase or None)
    return context


async def serve(config: WebSocketConfig, core: _core.Core, registry: StreamRegistry, sessions: dict[str, p.Session],
                *, auth: Auth | None = None, hooks: Hooks | None = None,
                task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen and serve until cancelled. Reports ``(ip, port)`` once bound. ``sessions`` is the
    live-session table (read by the HTTP API). Raises ``OSError`` when the port cannot be bound."""
    ssl_context = make_ssl_context(config) if config.ssl else None
    listeners: list[Any] = list(await trio.open_tcp_listeners(config.port, host=config.listen_ip))
    if ssl_context is not None:
        listeners = [trio.SSLListener(listener, ssl_context, https_compatible=True) for listener in listeners]
    location = normal_path(config.location)
    reject_body = f"no WebSocket here; connect to {config.location}\n".encode()
    auth = auth or Auth()

    async def handler(stream: trio.abc.Stream) -> None:
        peer = _peer(stream)
        try:
            connection = await accept(stream, check_path=location, reject_body=reject_body,
                                      handshake_timeout=HANDSHAKE_TIMEOUT, max_message=MAX_MESSAGE)
            if connection is None:
                await trio.aclose_forcefully(stream)
                return
            await _run_session(connection, peer, config, core, registry, sessions, auth, hooks)
        except Exception:  # noqa: BLE001 - one broken session must never stop the server
            log.exception("session from %s failed", peer)
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        sockname = _sockname(listeners[0])
        task_status.started(sockname)


def _sockname(listener: Any) -> tuple[str, int]:
    inner = getattr(listener, "transport_listener", listener)
    host, port = inner.socket.getsockname()[:2]
    return host, port


async def _run_session(connection: WsConnection, peer: str, config: WebSocketConfig, core: _core.Core,
                       registry: StreamRegistry, sessions: dict[str, p.Session], auth: Auth,
                       hooks: Hooks | None = None) -> None:
    now = trio.current_time()
    session = p.Session(id=secrets.token_urlsafe(12), heartbeat_timeout=config.heartbeat_timeout,
                        last_activity=now, created=now, peer=peer)
    handler = SessionHandler(session, core, registry, connection.queue, auth, hooks)
    sessions[session.id] = session
    log.info("session %s: connected from %s", session.id, session.peer)
    reason = "connection closed"
    try:
        with trio.CancelScope() as kicked:
            session.kick = kicked.cancel
            reason = await _read_loop(connection, session, handler)
        if kicked.cancelled_caught:
            reason = "kicked"
    finally:
        sessions.pop(session.id, None)
        handler.close_all(reason)
        log.info("session %s: ended (%s)", session.id, reason)
        with trio.CancelScope(shield=True):
            await connection.aclose(code=1000 if reason != "heartbeat timeout" else 1001, reason=reason)


async def _read_loop(connection: WsConnection, session: p.Session, handler: SessionHandler) -> str:
    """Read, handle, reply; returns why it stopped. Only the wait for a frame is bounded by the
    heartbeat deadline: a request being handled is never cut short by it."""
    while True:
        try:
            frame = await connection.receive(session.next_deadline())
        except ConnectionClosed:
            return "connection closed"
        if frame is None:
            if session.handle_timeout(trio.current_time()):
                log.info("session %s: no request for %g s", session.id, session.heartbeat_timeout)
                return "heartbeat timeout"
            continue
        reply = await handler.handle_frame(frame, trio.current_time())
        try:
            await connection.send(reply)
        except ConnectionClosed:
            return "connection closed"


def _peer(stream: trio.abc.Stream) -> str:
    inner: Any = getattr(stream, "transport_stream", stream)
    try:
        address, port = inner.socket.getpeername()[:2]
    except (AttributeError, OSError):
        return "unknown"
    return f"{address}:{port}"
