"""The record command port (``record.cmdPort``): the seed's JSON commands over HTTP and WebSocket on one port.

Owns the listening socket and, per connection, telling the two apart: h11 reads the first request;
a ``GET`` with ``Upgrade: websocket`` is handed, with every byte read so far, to wsproto, which
does the handshake, and each text (or binary) frame is then one command with one reply frame.
Anything else is plain HTTP: ``POST /`` with the command as the body gets the reply as the body
(HTTP status 200 on success, else the reply's ``err`` as the status, so both the seed's clients,
which read ``err``, and ``curl -f`` see the failure). Keep-alive is kept while h11 allows.

What a command does is not this module's business: it is handed ``execute(body) -> reply text``,
and ``allowed(authorization, peer)`` (``auth.apiToken``, SPEC 10): a request or WebSocket handshake
it refuses gets 401 (the handshake is rejected with 401) before any command runs.
Limits: a command over 64 KiB gets 413 (a WebSocket is closed with 1009); an HTTP connection idle
for 60 s and a WebSocket idle for 10 minutes are closed; a client that does not read its replies is
dropped after 10 s of a blocked send.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError as WsLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WsRemoteProtocolError

from .protocol import MAX_COMMAND_BYTES, TOO_LARGE, build_reply

log = logging.getLogger("pms_trio.record")

Execute = Callable[[bytes], Awaitable[str]]
Allowed = Callable[[str | None, str], Awaitable[bool]]

IDLE_TIMEOUT = 60.0  # an HTTP connection with no request
WS_IDLE_TIMEOUT = 600.0  # a WebSocket with no frame (a client may ping to keep it)
SEND_TIMEOUT = 10.0
READ_SIZE = 16 * 1024


async def serve(listen_ip: str, port: int, execute: Execute, *, allowed: Allowed | None = None,
                task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen and serve until cancelled; reports ``(ip, port)`` once bound. Raises ``OSError``
    when the port cannot be bound."""
    listeners = await trio.open_tcp_listeners(port, host=listen_ip)
    host, bound = listeners[0].socket.getsockname()[:2]

    async def handler(stream: trio.SocketStream) -> None:
        try:
            await _serve_connection(stream, execute, allowed)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            pass
        except Exception:  # noqa: BLE001 - one broken connection never stops the port
            log.exception("record command port: connection failed")
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started((host, bound))


async def _serve_connection(stream: trio.SocketStream, execute: Execute, allowed: Allowed | None) -> None:
    try:
        peer = str(stream.socket.getpeername()[0])
    except OSError:
        peer = ""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_COMMAND_BYTES)
    raw = bytearray()  # the bytes up to the first request's head, for wsproto if it is an upgrade
    first = True
    while True:
        body = bytearray()
        request: h11.Request | None = None
        try:
            with trio.fail_after(IDLE_TIMEOUT):
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(READ_SIZE)
                        if first:
                            raw += data
                        conn.receive_data(data)
                        continue
                    if isinstance(event, h11.Request):
                        request = event
                        if first and _is_upgrade(event):
                            ok = allowed is None or await allowed(_header(event, b"authorization"), peer)
                            await _serve_websocket(stream, bytes(raw), execute, ok)
                            return
                        first = False
                        raw.clear()
                    elif isinstance(event, h11.Data):
                        body += event.data
                        if len(body) > MAX_COMMAND_BYTES:
                            break
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:  # ConnectionClosed, PAUSED
                        return
        except h11.RemoteProtocolError as e:
            await _send_http(stream, conn, e.error_status_hint or 400,
                             _plain_error(e.error_status_hint or 400, f"bad HTTP request: {e}"), close=True)
            return
        assert request is not None  # a Data or EndOfMessage event follows a Request
        if allowed is not None and not await allowed(_header(request, b"authorization"), peer):
            status, reply = 401, _plain_error(401, "this port needs Authorization: Bearer <auth.apiToken>")
        else:
            status, reply = await _http_command(request, bytes(body), execute)
        await _send_http(stream, conn, status, reply, close=len(body) > MAX_COMMAND_BYTES)
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return


def _header(request: h11.Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _is_upgrade(request: h11.Request) -> bool:
    if request.method != b"GET":
        return False
    for name, value in request.headers:
        if name == b"upgrade" and value.strip().lower() == b"websocket":
            return True
    return False


async def _http_command(request: h11.Request, body: bytes, execute: Execute) -> tuple[int, str]:
    path = request.target.split(b"?", 1)[0].rstrip(b"/") or b"/"
    if path != b"/":
        return 404, _plain_error(404, "send commands as POST / (or over a WebSocket on this port)")
    if request.method != b"POST":
        return 405, _plain_error(405, "send commands as POST / with the JSON command as the body")
    if len(body) > MAX_COMMAND_BYTES:
        return TOO_LARGE, _plain_error(TOO_LARGE, f"the command is over {MAX_COMMAND_BYTES} bytes")
    reply = await execute(body)
    err = _err_of(reply)
    return (err if 400 <= err < 600 else 200), reply


def _err_of(reply: str) -> int:
    try:
        value = json.loads(reply).get("err", 0)
    except (ValueError, AttributeError):
        return 500
    return value if isinstance(value, int) else 500


def _plain_error(code: int, message: str) -> str:
    return build_reply("ack", {}, err=code, err_msg=message)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


async def _send_http(stream: trio.SocketStream, conn: h11.Connection, status: int, reply: str, *,
                     close: bool = False) -> None:
    body = reply.encode() + b"\n"
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store")]
    if close:
        headers.append(("Connection", "close"))
    try:
        data = conn.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        data = (data or b"") + (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
    except h11.LocalProtocolError:
        # h11 refuses to answer on a connection it saw broken: answer once by hand, then close.
        data = (f"HTTP/1.1 {status} {_reason(status).decode()}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    with trio.fail_after(SEND_TIMEOUT):
        await stream.send_all(data)


async def _serve_websocket(stream: trio.SocketStream, raw: bytes, execute: Execute, authorized: bool = True) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(raw)
    text_parts: list[str] = []
    byte_parts: list[bytes] = []
    size = 0
    while True:
        out = bytearray()
        try:
            for event in ws.events():
                if isinstance(event, Request):
                    if not authorized:
                        out += ws.send(RejectConnection(status_code=401))
                        await _ws_send(stream, out)
                        return
                    out += ws.send(AcceptConnection())
                elif isinstance(event, Ping):
                    out += ws.send(event.response())
                elif isinstance(event, CloseConnection):
                    if ws.state.name not in ("CLOSED", "LOCAL_CLOSING"):
                        out += ws.send(event.response())
                    await _ws_send(stream, out)
                    return
                elif isinstance(event, (TextMessage, BytesMessage)):
                    size += len(event.data)
                    if size > MAX_COMMAND_BYTES:
                        out += ws.send(CloseConnection(code=1009, reason="command over 64 KiB"))
                        await _ws_send(stream, out)
                        return
                    if isinstance(event, TextMessage):
                        text_parts.append(event.data)
                    else:
                        byte_parts.append(bytes(event.data))
                    if not event.message_finished:
                        continue
                    command = "".join(text_parts).encode() if text_parts else b"".join(byte_parts)
                    text_parts.clear()
                    byte_parts.clear()
                    size = 0
                    reply = await execute(command)
                    out += ws.send(TextMessage(data=reply))
        except (WsRemoteProtocolError, WsLocalProtocolError) as e:
            if isinstance(e, WsRemoteProtocolError) and e.event_hint is not None:
                try:
                    out += ws.send(e.event_hint)
                except (WsLocalProtocolError, TypeError):
                    pass
            await _ws_send(stream, out)
            return
        await _ws_send(stream, out)
        with trio.fail_after(WS_IDLE_TIMEOUT):
            data = await stream.receive_some(READ_SIZE)
        if not data:
            return
        ws.receive_data(data)


async def _ws_send(stream: trio.SocketStream, data: Any) -> None:
    if data:
        with trio.fail_after(SEND_TIMEOUT):
            await stream.send_all(bytes(data))

