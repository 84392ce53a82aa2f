"""The signaling server: the trio-websocket adapter around :mod:`.protocol` and :mod:`.handlers`.

Owns the listening socket (``websocket.listenIp``/``port``, ws or wss), the handshake check of the
path (``websocket.location``; any other path is rejected with HTTP 404), and one task per
connection that reads frames, passes them to its :class:`SessionHandler`, sends the replies, and
closes the connection when the session's heartbeat deadline passes. Whatever ends a connection,
its ``finally`` closes every transport of its session.

trio-websocket's own message limit is set to 1 MiB so that frames over 256 KiB reach the protocol
module and get err 413 (the connection stays open); only frames over 1 MiB are refused by the
library (close code 1009).
"""

from __future__ import annotations

import logging
import math
import secrets
import ssl
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, WebSocketServer

from .. import _core
from ..config import WebSocketConfig
from ..auth import Auth
from ..hooks import Hooks
from ..streams import StreamRegistry
from . import protocol as p
from .handlers import SessionHandler

log = logging.getLogger("pms_trio.signaling")

LIBRARY_MAX_MESSAGE = 1024 * 1024


def make_ssl_context(config: WebSocketConfig) -> ssl.SSLContext:
    """Server TLS context from ``certFile``/``keyFile``/``passPhrase``. Raises ``OSError`` or
    ``ssl.SSLError`` when they cannot be loaded."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.cert_file, config.key_file, password=config.pass_phrase or None)
    return context


def _normal_path(path: str) -> str:
    path = path.split("?", 1)[0].split("#", 1)[0]
    return path.rstrip("/") or "/"


async def serve(config: WebSocketConfig, core: _core.Core, registry: StreamRegistry, sessions: dict[str, p.Session],
                *, auth: Auth | None = None, hooks: Hooks | None = None,
                task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen and serve until cancelled. Reports ``(ip, port)`` once bound. ``sessions`` is the
    live-session table (read by the HTTP API). Raises ``OSError`` when the port cannot be bound."""
    ssl_context = make_ssl_context(config) if config.ssl else None
    listeners: list[Any] = list(await trio.open_tcp_listeners(config.port, host=config.listen_ip))
    if ssl_context is not None:
        listeners = [trio.SSLListener(listener, ssl_context, https_compatible=True) for listener in listeners]
    location = _normal_path(config.location)

    async def handler(request: WebSocketRequest) -> None:
        if _normal_path(request.path) != location:
            await request.reject(404, extra_headers=[(b"Content-Type", b"text/plain")],
                                 body=f"no WebSocket here; connect to {config.location}\n".encode())
            return
        connection = await request.accept()
        try:
            await _run_session(connection, config, core, registry, sessions, auth or Auth(), hooks)
        except Exception:  # noqa: BLE001 - one broken session must never stop the server
            log.exception("session from %s failed", _peer(connection))

    server = WebSocketServer(handler, listeners, max_message_size=LIBRARY_MAX_MESSAGE,
                             connect_timeout=10, disconnect_timeout=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        sockname = _sockname(listeners[0])
        task_status.started(sockname)


def _sockname(listener: Any) -> tuple[str, int]:
    inner = getattr(listener, "transport_listener", listener)
    host, port = inner.socket.getsockname()[:2]
    return host, port


async def _run_session(connection: WebSocketConnection, config: WebSocketConfig, core: _core.Core,
                       registry: StreamRegistry, sessions: dict[str, p.Session], auth: Auth,
                       hooks: Hooks | None = None) -> None:
    now = trio.current_time()
    session = p.Session(id=secrets.token_urlsafe(12), heartbeat_timeout=config.heartbeat_timeout,
                        last_activity=now, created=now, peer=_peer(connection))
    send_out, receive_out = trio.open_memory_channel[str](math.inf)
    handler = SessionHandler(session, core, registry, send_out.send_nowait, auth, hooks)
    sessions[session.id] = session
    log.info("session %s: connected from %s", session.id, session.peer)
    reason = "connection closed"
    try:
        async with trio.open_nursery() as nursery:
            kicked = trio.CancelScope()
            session.kick = kicked.cancel
            nursery.start_soon(_send_notifications, connection, receive_out)
            with kicked:
                reason = await _read_loop(connection, session, handler)
            if kicked.cancelled_caught:
                reason = "kicked"
            nursery.cancel_scope.cancel()
    except ConnectionClosed:
        reason = "connection closed"
    finally:
        sessions.pop(session.id, None)
        handler.close_all(reason)
        send_out.close()
        log.info("session %s: ended (%s)", session.id, reason)
        with trio.move_on_after(1) as scope:
            scope.shield = True
            try:
                await connection.aclose(code=1000 if reason != "heartbeat timeout" else 1001, reason=reason)
            except Exception:  # noqa: BLE001 - the peer may be gone already
                pass


async def _read_loop(connection: WebSocketConnection, session: p.Session, handler: SessionHandler) -> str:
    """Read, handle, reply; returns why it stopped. Only the wait for a frame is bounded by the
    heartbeat deadline: a request being handled is never cut short by it."""
    while True:
        frame: str | bytes | None = None
        with trio.move_on_at(session.next_deadline()):
            try:
                frame = await connection.get_message()
            except ConnectionClosed:
                return "connection closed"
        if frame is None:
            if session.handle_timeout(trio.current_time()):
                log.info("session %s: no request for %g s", session.id, session.heartbeat_timeout)
                return "heartbeat timeout"
            continue
        reply = await handler.handle_frame(frame, trio.current_time())
        try:
            await connection.send_message(reply)
        except ConnectionClosed:
            return "connection closed"


async def _send_notifications(connection: WebSocketConnection, receive_out: trio.MemoryReceiveChannel[str]
                              ) -> None:
    async for text in receive_out:
        try:
            await connection.send_message(text)
        except ConnectionClosed:
            return


def _peer(connection: WebSocketConnection) -> str:
    remote = connection.remote
    address = getattr(remote, "address", None)
    port = getattr(remote, "port", None)
    return f"{address}:{port}" if address is not None else str(remote)
