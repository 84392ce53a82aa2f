"""A server-side WebSocket driven by one task: wsproto for the protocol, a trio stream for the bytes.

Why not trio-websocket: a signaling session there costs a reader task, a memory channel, events and
cancel scopes on top of the session's own tasks, about 30 KiB of Python objects per idle player
(measured with tracemalloc, issue 13), which is as much as the media core spends on the player. Here
one task owns everything of a connection: it reads, answers pings, hands each message to its caller
and writes replies; notifications from other tasks (:meth:`WsConnection.queue`) are appended to a
deque and wake the task by cancelling its read (a cancelled ``receive_some`` loses no data). After
the handshake only wsproto's low-level :class:`wsproto.connection.Connection` is kept (the h11
machinery of the handshake is dropped).

Limits: the handshake must arrive within ``handshake_timeout`` (else the socket is closed); a
message over ``max_message`` bytes closes the connection with 1009; a send that stays blocked for
``SEND_TIMEOUT`` (a client that stopped reading) closes it too.
"""

from __future__ import annotations

import contextlib
from collections import deque

import trio
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

READ_SIZE = 16 * 1024
SEND_TIMEOUT = 10.0
CLOSE_TIMEOUT = 1.0

__all__ = ["ConnectionClosed", "WsConnection", "accept"]


class ConnectionClosed(Exception):
    """The connection is gone (closed by either side, or broken); ``code`` as sent or received."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code, self.reason = code, reason


async def accept(stream: trio.abc.Stream, *, check_path: str, reject_body: bytes,
                 handshake_timeout: float, max_message: int) -> WsConnection | None:
    """Reads the opening handshake. Accepts when the request's path (without query) is
    ``check_path`` (trailing slashes ignored); otherwise answers 404 with ``reject_body`` and
    returns ``None``, as it does for a handshake that is not one, broken or too slow."""
    handshake = H11Handshake(ConnectionType.SERVER)
    with trio.move_on_after(handshake_timeout):
        try:
            while True:
                for event in handshake.events():
                    if not isinstance(event, Request):
                        continue
                    if normal_path(event.target) != check_path:
                        out = handshake.send(RejectConnection(
                            status_code=404, has_body=True,
                            headers=[(b"content-type", b"text/plain"),
                                     (b"content-length", str(len(reject_body)).encode())]))
                        out += handshake.send(RejectData(data=reject_body))
                        await _send_quietly(stream, out)
                        return None
                    out = handshake.send(AcceptConnection())
                    await _send_quietly(stream, out)
                    connection = handshake.connection
                    return WsConnection(stream, connection, max_message) if connection is not None else None
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    return None
                handshake.receive_data(bytes(data))
        except (RemoteProtocolError, LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return None
    return None


async def _send_quietly(stream: trio.abc.Stream, data: bytes) -> None:
    with trio.move_on_after(SEND_TIMEOUT):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(data)


def normal_path(path: str) -> str:
    path = path.split("?", 1)[0].split("#", 1)[0]
    return path.rstrip("/") or "/"


class WsConnection:
    """An open WebSocket. One task calls :meth:`receive`, :meth:`send` and :meth:`aclose`; any
    task may call :meth:`queue`."""

    __slots__ = ("_conn", "_max", "_out", "_parts", "_raw", "_size", "_stream", "_wake", "closed")

    def __init__(self, stream: trio.abc.Stream, connection: Connection, max_message: int) -> None:
        self._stream, self._conn, self._max = stream, connection, max_message
        self._out: deque[str] = deque()
        self._raw = bytearray()  # control frames (pongs) to go out with the next write
        self._parts: list[str | bytes] = []
        self._size = 0
        self._wake: trio.CancelScope | None = None
        self.closed: ConnectionClosed | None = None

    def queue(self, text: str) -> None:
        """Send ``text`` as soon as the connection's task can (from any task, never blocks)."""
        if self.closed is not None:
            return
        self._out.append(text)
        if self._wake is not None:
            self._wake.cancel()

    async def receive(self, deadline: float = float("inf")) -> str | bytes | None:
        """The next message (queued notifications are sent meanwhile); ``None`` at ``deadline``.
        Raises :class:`ConnectionClosed`."""
        while True:
            if self.closed is not None:
                raise self.closed
            message = await self._next_message()
            if message is not None:
                return message
            await self._flush()
            if trio.current_time() >= deadline:
                return None
            with trio.CancelScope(deadline=deadline) as scope:
                self._wake = scope
                try:
                    data = await self._stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
                    self._gone(1006, "broken")
                    raise ConnectionClosed(1006, "broken") from e
                finally:
                    self._wake = None
            if scope.cancelled_caught:
                continue  # woken to send, or the deadline (checked above)
            if not data:
                self._gone(1006, "eof")
                continue
            try:
                self._conn.receive_data(bytes(data))
            except RemoteProtocolError:
                await self.aclose(1002, "protocol error")

    async def _next_message(self) -> str | bytes | None:
        """The next complete message among wsproto's events; answers pings and the peer's close."""
        for event in self._conn.events():
            if isinstance(event, Message):
                self._size += len(event.data)
                if self._size > self._max:
                    await self.aclose(1009, "message too big")
                    return None
                self._parts.append(event.data)
                if not event.message_finished:
                    continue
                parts, self._parts, self._size = self._parts, [], 0
                if isinstance(event, TextMessage):
                    return "".join(parts)  # type: ignore[arg-type]
                return b"".join(parts)  # type: ignore[arg-type]
            if isinstance(event, Ping):
                self._raw += self._conn.send(event.response())
            elif isinstance(event, CloseConnection):
                if self._conn.state is ConnectionState.REMOTE_CLOSING:
                    self._raw += self._conn.send(event.response())
                    with contextlib.suppress(ConnectionClosed):
                        await self._write(b"")
                self._gone(event.code, event.reason or "")
                with contextlib.suppress(Exception):
                    await trio.aclose_forcefully(self._stream)
                return None
        return None

    async def send(self, text: str) -> None:
        """Sends one text message (after any queued ones). Raises :class:`ConnectionClosed`."""
        if self.closed is not None:
            raise self.closed
        self._out.append(text)
        await self._flush()

    async def _flush(self) -> None:
        if not self._out and not self._raw:
            return
        while self._out:
            self._raw += self._conn.send(TextMessage(data=self._out.popleft()))
        await self._write(b"")

    async def _write(self, data: bytes) -> None:
        out = bytes(self._raw) + data
        self._raw.clear()
        if not out:
            return
        try:
            with trio.fail_after(SEND_TIMEOUT):
                await self._stream.send_all(out)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as e:
            self._gone(1006, "send failed")
            with contextlib.suppress(Exception):
                await trio.aclose_forcefully(self._stream)
            raise ConnectionClosed(1006, "send failed") from e

    def _gone(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = ConnectionClosed(code, reason)
        self._out.clear()

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Closing handshake (bounded by ``CLOSE_TIMEOUT``), then the stream is closed."""
        if self.closed is None:
            with trio.move_on_after(CLOSE_TIMEOUT):
                try:
                    if self._conn.state is ConnectionState.OPEN:
                        self._raw += self._conn.send(CloseConnection(code=code, reason=reason))
                        await self._stream.send_all(bytes(self._raw))
                        self._raw.clear()
                        # Wait for the peer's close frame (or the end of the stream).
                        while self._conn.state is not ConnectionState.CLOSED:
                            data = await self._stream.receive_some(READ_SIZE)
                            if not data:
                                break
                            self._conn.receive_data(bytes(data))
                            for _ in self._conn.events():
                                pass
                except (trio.BrokenResourceError, trio.ClosedResourceError, LocalProtocolError,
                        RemoteProtocolError):
                    pass
        self._gone(code, reason)
        with contextlib.suppress(Exception):
            await trio.aclose_forcefully(self._stream)
