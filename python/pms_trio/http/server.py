"""The HTTP server: h11 on trio, in the shape of h11's ``examples/trio-server.py``.

Owns the listening socket (``http.listenIp``/``port``) and the per-connection loop: read a request
(body up to 256 KiB: a WHIP/WHEP offer, the JSON of the POST routes; ignored by the GET routes), ask
:class:`.api.Api` for the response, send it, keep the connection alive while h11 allows. A
malformed request gets 400 and the connection is closed; an idle connection is closed after 30 s.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import h11
import trio

from .. import __version__
from ..config import HttpConfig
from .api import Api, Response, error_response
from .responses import FileResponse

log = logging.getLogger("pms_trio.http")

MAX_BODY = 256 * 1024  # a WHIP/WHEP offer (SPEC 9); the JSON routes need far less
IDLE_TIMEOUT = 30.0
READ_SIZE = 16 * 1024
FILE_CHUNK = 64 * 1024


async def serve(config: HttpConfig, api: Api, *,
                task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen and serve until cancelled; reports ``(ip, port)`` once bound. Raises ``OSError``
    when the port cannot be bound."""
    listeners = await trio.open_tcp_listeners(config.port, host=config.listen_ip)
    host, port = listeners[0].socket.getsockname()[:2]

    async def handler(stream: trio.SocketStream) -> None:
        try:
            await _serve_connection(stream, api)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("http: connection failed")
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started((host, port))


async def _serve_connection(stream: trio.SocketStream, api: Api) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
    try:
        peer = str(stream.socket.getpeername()[0])
    except OSError:
        peer = ""
    while True:
        try:
            with trio.fail_after(IDLE_TIMEOUT):
                request, body = await _read_request(stream, conn)
        except trio.TooSlowError:
            return
        except h11.RemoteProtocolError as e:
            await _send_error_and_close(stream, conn, e.error_status_hint, f"bad HTTP request: {e}")
            return
        if request is None:
            return
        if len(body) > MAX_BODY:
            await _send_error_and_close(stream, conn, 413, f"request body over {MAX_BODY} bytes")
            return
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in request.headers}
        response = await api.handle_async(method, target, bytes(body), headers, peer)
        if isinstance(response, FileResponse):
            await _send_file(stream, conn, response, head_only=(method == "HEAD"))
        else:
            await _send(stream, conn, response, head_only=(method == "HEAD"))
        log.debug("http: %s %s -> %d", method, target, response.status)
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return


async def _read_request(stream: trio.SocketStream, conn: h11.Connection) -> tuple[Any, bytearray]:
    """The next request and its body (at most ``MAX_BODY`` + one read), or (None, b"") at EOF."""
    request = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(READ_SIZE)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                return request, body
        elif isinstance(event, h11.EndOfMessage):
            return request, body
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None, bytearray()


def _headers(response: Response | FileResponse, length: int, close: bool) -> list[tuple[str, str]]:
    headers = [("Content-Type", response.content_type), ("Content-Length", str(length)),
               ("Server", f"pms-trio/{__version__}"), ("Cache-Control", "no-store"), *response.headers]
    if close:
        headers.append(("Connection", "close"))
    return headers


async def _send_file(stream: trio.SocketStream, conn: h11.Connection, response: FileResponse, *,
                     head_only: bool = False) -> None:
    """Streams a span of a file (a recording, possibly still growing) in 64 KiB reads."""
    headers = _headers(response, response.length, False)
    await stream.send_all(conn.send(h11.Response(status_code=response.status, headers=headers,
                                                 reason=_reason(response.status))) or b"")
    if not head_only:
        async with await trio.open_file(response.path, "rb") as f:
            await f.seek(response.start)
            left = response.length
            while left > 0:
                chunk = await f.read(min(FILE_CHUNK, left))
                if not chunk:  # the file shrank: h11 refuses the short body and the connection ends
                    break
                left -= len(chunk)
                await stream.send_all(conn.send(h11.Data(data=chunk)) or b"")
    await stream.send_all(conn.send(h11.EndOfMessage()) or b"")


async def _send(stream: trio.SocketStream, conn: h11.Connection, response: Response, *,
                head_only: bool = False, close: bool = False) -> None:
    headers = _headers(response, len(response.body), close)
    data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
    if not head_only:
        data += conn.send(h11.Data(data=response.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


async def _send_error_and_close(stream: trio.SocketStream, conn: h11.Connection, status: int,
                                message: str) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    response = error_response(status if 400 <= status < 600 else 400, message)
    try:
        await _send(stream, conn, response, close=True)
    except h11.LocalProtocolError:
        # h11 refuses to speak on a connection it saw broken: write the reply by hand.
        body = response.body
        head = (f"HTTP/1.1 {response.status} {_reason(response.status).decode()}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        await stream.send_all(head + body)

