"""RTSP 1.0 messages and framing, sans-IO (RFC 2326; SPEC section 4).

Owns: the event types (:class:`Request`, :class:`Response`, :class:`InterleavedFrame`,
:class:`ConnectionClosed`, the :data:`NEED_DATA` sentinel), the two error directions
(:class:`RemoteProtocolError`: the peer's mistake, answered with ``status_hint``;
:class:`LocalProtocolError`: our misuse, a bug) and :class:`Connection`, which turns received bytes
into events and events into bytes. It may not do I/O, read a clock, or import trio or the rest of the
package but ``textframe``, the framing it shares with SIP (buffer, header block and Content-Length
limits, ``NEED_DATA``, :class:`RemoteProtocolError` itself). Header helpers live in ``headers``, the
session state machine in ``session``.

Theory of operation (like h11, one object per TCP connection):

- The adapter calls :meth:`Connection.receive_data` with what it read (``b""`` at EOF), then
  :meth:`Connection.next_event` until it returns :data:`NEED_DATA` (read more) or
  :class:`ConnectionClosed` (close). Text messages and ``$`` interleaved frames may arrive split at any
  byte and mixed in any order; the events are the same however the bytes are cut.
- A ``SERVER`` connection reads requests and writes responses; a ``CLIENT`` connection (tests, pulls)
  reads responses and writes requests. Both read and write interleaved frames.
- Limits (``textframe``'s, the media core's too): a header block (start line to the blank line) over
  :data:`MAX_HEADER_BYTES` (64 KiB) is
  refused with **400**, not 431: 431 is not an RTSP status (RFC 2326 section 7.1.1, RFC 7826), and an
  RTSP client maps an unknown 4xx to 400 anyway. It is refused as soon as 64 KiB arrive without the
  blank line, so memory stays bounded. A body over :data:`MAX_BODY_BYTES` (256 KiB) is 413, refused from its
  Content-Length before any of it is buffered. A malformed start line is refused as soon as its line
  ends (a TLS hello or an HTTP proxy probe gets its 400 at once).
- Content-Length absent means no body (RFC 2326 section 4.3: RTSP has no read-until-close bodies).
  A Content-Length larger than what is sent makes the connection wait (the adapter's idle timeout ends
  it; EOF mid-body is a 400); a smaller one leaves bytes that must parse as the next message.
- Only ``RTSP/1.0`` is served: another ``RTSP/x.y`` is 505, anything else (``HTTP/1.1``) 400.
- Any :class:`RemoteProtocolError` from :meth:`next_event` is fatal: the framing is lost, the
  connection is in the ``ERROR`` state and keeps raising. The adapter answers with
  :func:`error_response` through :meth:`Connection.send_response` (best effort) and closes.
  Errors from ``headers`` and ``session`` helpers are per request: answer and carry on.
- CSeq: a server connection remembers the CSeq of each request it returned (and of a request it
  refused after reading its headers) and :meth:`Connection.send_response` echoes the oldest pending
  one when the response has none. A request without CSeq is accepted (the response then has none).
- Header values are decoded as UTF-8 with invalid bytes replaced (never refused for that); names
  must be tokens. Folded header lines (leading space or tab) are joined with one space.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from ..textframe import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    NEED_DATA,
    ConnectionClosed,
    NeedData,
    RemoteProtocolError,
    TextFramer,
    content_length,
    lookup,
    show,
    split_block,
)

__all__ = [
    "CLIENT", "MAX_BODY_BYTES", "MAX_FRAME_PAYLOAD", "MAX_HEADER_BYTES", "NEED_DATA", "REASONS", "RTSP_VERSION",
    "SERVER", "Connection", "ConnectionClosed", "Event", "InterleavedFrame", "LocalProtocolError", "NeedData",
    "RemoteProtocolError", "Request", "Response", "Role", "encode_interleaved", "encode_request",
    "encode_response", "error_response",
]

RTSP_VERSION = "RTSP/1.0"
MAX_FRAME_PAYLOAD = 0xFFFF

REASONS: dict[int, str] = {
    100: "Continue", 200: "OK", 201: "Created", 250: "Low on Storage Space", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 304: "Not Modified", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
    411: "Length Required", 413: "Request Entity Too Large", 414: "Request-URI Too Large",
    415: "Unsupported Media Type", 451: "Parameter Not Understood", 453: "Not Enough Bandwidth",
    454: "Session Not Found", 455: "Method Not Valid in This State",
    456: "Header Field Not Valid for Resource", 457: "Invalid Range", 458: "Parameter Is Read-Only",
    459: "Aggregate Operation Not Allowed", 460: "Only Aggregate Operation Allowed",
    461: "Unsupported Transport", 462: "Destination Unreachable", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
    505: "RTSP Version Not Supported", 551: "Option Not Supported",
}

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN_BYTES = frozenset(b"!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e\x80-\xff]+) ([\x21-\x7e]+)")
_STATUS_LINE = re.compile(rb"([A-Za-z]+/[0-9]+\.[0-9]+) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_VERSION = re.compile(rb"[A-Za-z]+/[0-9]+\.[0-9]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


# ---------------------------------------------------------------------------------------------
# Errors in two directions


# RemoteProtocolError (the peer's mistake, answered with ``status_hint`` plus ``headers``, e.g.
# ``Allow`` for 455) is ``textframe``'s, shared with SIP.


class LocalProtocolError(Exception):
    """We asked for something RTSP cannot express (a header value with a newline, a channel over
    255...). A bug in the caller, never the peer's fault."""


# ---------------------------------------------------------------------------------------------
# Events: frozen, slotted nouns


_lookup = lookup


class _HeaderLookup:
    """Lookups shared by requests and responses (they only read ``self.headers``)."""

    __slots__ = ()
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first header called ``name`` (case-insensitive), or ``default``."""
        found = _lookup(self.headers, name)
        return default if found is None else found

    @property
    def cseq(self) -> str | None:
        return _lookup(self.headers, "CSeq")


@dataclass(frozen=True, slots=True)
class Request(_HeaderLookup):
    method: str
    uri: str
    version: str = RTSP_VERSION
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Response(_HeaderLookup):
    status: int
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class InterleavedFrame:
    """One ``$`` frame (RFC 2326 section 10.12): RTP or RTCP on ``channel`` (0-255)."""

    channel: int
    payload: bytes


Event = Request | Response | InterleavedFrame | ConnectionClosed


def error_response(error: RemoteProtocolError) -> Response:
    """The response for a refused request: ``status_hint`` with its standard reason, the error's
    headers, and the message as a ``text/plain`` body so a human reading a capture knows why."""
    status = error.status_hint if 100 <= error.status_hint <= 999 else 400
    body = (error.message.replace("\r", " ").replace("\n", " ") + "\r\n").encode("utf-8")
    headers = (*error.headers, ("Content-Type", "text/plain; charset=utf-8"))
    return Response(status, REASONS.get(status, "Error"), headers, body)


# ---------------------------------------------------------------------------------------------
# Serialization


def _check_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for name, value in headers:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise LocalProtocolError(f"header name {name!r} is not a token")
        if not isinstance(value, str) or _BAD_VALUE.search(value) or value != value.strip(" \t"):
            raise LocalProtocolError(f"header {name}: value {value!r} has control characters or "
                                     f"surrounding blanks")
        out.append((name, value))
    return out


def _serialize(start: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    if not isinstance(body, (bytes, bytearray)):
        raise LocalProtocolError(f"a body is bytes, not {type(body).__name__}")
    declared = _lookup(tuple(headers), "Content-Length")
    if declared is None:
        if body:
            headers.append(("Content-Length", str(len(body))))
    elif not (declared.isascii() and declared.isdigit() and int(declared) == len(body)):
        raise LocalProtocolError(f"Content-Length {declared} but the body is {len(body)} bytes")
    if len(body) > MAX_BODY_BYTES:
        raise LocalProtocolError(f"a body of {len(body)} bytes is over {MAX_BODY_BYTES}")
    lines = [start, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("utf-8") + bytes(body)


def encode_request(request: Request) -> bytes:
    if not _TOKEN.fullmatch(request.method):
        raise LocalProtocolError(f"method {request.method!r} is not a token")
    if not request.uri or any(c <= " " or c == "\x7f" for c in request.uri):
        raise LocalProtocolError(f"request URI {request.uri!r} is empty or has blanks")
    if not _VERSION.fullmatch(request.version.encode("utf-8", "replace")):
        raise LocalProtocolError(f"version {request.version!r} is not NAME/x.y")
    return _serialize(f"{request.method} {request.uri} {request.version}",
                      _check_headers(request.headers), request.body)


def encode_response(response: Response) -> bytes:
    if not isinstance(response.status, int) or not 100 <= response.status <= 999:
        raise LocalProtocolError(f"status {response.status!r} is not three digits")
    if _BAD_VALUE.search(response.reason) or response.reason != response.reason.strip(" \t"):
        raise LocalProtocolError(f"reason {response.reason!r} has control characters")
    start = f"{RTSP_VERSION} {response.status}" + (f" {response.reason}" if response.reason else "")
    return _serialize(start, _check_headers(response.headers), response.body)


def encode_interleaved(channel: int, payload: bytes) -> bytes:
    if not isinstance(channel, int) or not 0 <= channel <= 255:
        raise LocalProtocolError(f"interleaved channel {channel!r} is not 0-255")
    if len(payload) > MAX_FRAME_PAYLOAD:
        raise LocalProtocolError(f"an interleaved payload of {len(payload)} bytes is over 65535")
    return b"$" + bytes((channel, len(payload) >> 8, len(payload) & 0xFF)) + bytes(payload)


# ---------------------------------------------------------------------------------------------
# Parsing


class Role(Enum):
    SERVER = "server"  # reads requests, writes responses
    CLIENT = "client"  # reads responses, writes requests


SERVER = Role.SERVER
CLIENT = Role.CLIENT


_show = show


def _parse_headers(lines: list[bytes]) -> tuple[tuple[str, str], ...]:
    headers: list[list[str]] = []
    for raw in lines:
        if raw[:1] in (b" ", b"\t"):
            if not headers:
                raise RemoteProtocolError(f"a continuation line before any header: {_show(raw)}")
            headers[-1][1] = (headers[-1][1] + " " + raw.strip(b" \t").decode("utf-8", "replace")).strip(" \t")
            continue
        raw_name, colon, raw_value = raw.partition(b":")
        raw_name = raw_name.rstrip(b" \t")
        if not colon or not raw_name or not all(b in _TOKEN_BYTES for b in raw_name):
            raise RemoteProtocolError(f"not a header line (NAME: value): {_show(raw)}")
        headers.append([raw_name.decode("ascii"), raw_value.decode("utf-8", "replace").strip(" \t")])
    for name, value in headers:
        if _BAD_VALUE.search(value):
            raise RemoteProtocolError(f"header {name} has control characters")
    return tuple((k, v) for k, v in headers)


class Connection:
    """One RTSP connection's framing state. See the module docstring for the rules."""

    def __init__(self, our_role: Role = SERVER) -> None:
        self.our_role = our_role
        self._framer: TextFramer[tuple[bytes, tuple[tuple[str, str], ...]]] = TextFramer(
            self._parse_head, name="RTSP", first_bytes=_TOKEN_BYTES, header_status=400,
            check_start_line=self._start_line)
        self._pending_cseq: deque[str | None] = deque()

    # -- input

    @property
    def errored(self) -> bool:
        return self._framer.errored

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as events (bounded by a message plus one read)."""
        return self._framer.buffered

    @property
    def trailing_data(self) -> bytes:
        """The bytes received and not yet returned as events (as h11's ``trailing_data``): what
        the adapter hands on with the connection when another owner takes it over."""
        return bytes(self._framer.buffer)

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` means the peer closed its side."""
        self._framer.receive_data(data, LocalProtocolError)

    def next_event(self) -> Event | NeedData:
        self._framer.check()
        try:
            return self._next_event()
        except RemoteProtocolError as e:
            self._framer.fail(e)
            raise

    def _next_event(self) -> Event | NeedData:
        framer = self._framer
        if framer.between_messages() and framer.buffer[:1] == b"$":
            frame = self._frame()
            if frame is not NEED_DATA:
                return frame
        else:
            message = framer.next_message()
            if not isinstance(message, NeedData):
                (start, headers), body = message
                return self._message(start, headers, body)
        return framer.at_end() or NEED_DATA

    def _frame(self) -> InterleavedFrame | NeedData:
        buf = self._framer.buffer
        if len(buf) < 4:
            return NEED_DATA
        length = (buf[2] << 8) | buf[3]
        if len(buf) < 4 + length:
            return NEED_DATA
        frame = InterleavedFrame(buf[1], bytes(buf[4:4 + length]))
        self._framer.consumed(4 + length)
        return frame

    def _parse_head(self, block: bytes) -> tuple[tuple[bytes, tuple[tuple[str, str], ...]], int]:
        """A complete header block -> (start line, headers) and the body length."""
        start, lines = split_block(block)
        headers = _parse_headers(lines)
        if self.our_role is SERVER:
            self._pending_cseq.append(_lookup(headers, "CSeq"))  # echoed even if refused below
        self._check_version(start)
        return (start, headers), content_length(headers) or 0

    def _start_line(self, line: bytes) -> tuple[str, ...]:
        if self.our_role is SERVER:
            m = _REQUEST_LINE.fullmatch(line)
            if m is None:
                raise RemoteProtocolError(f"not an RTSP request line (METHOD URI RTSP/1.0): {_show(line)}")
            return m.group(1).decode("ascii"), m.group(2).decode("utf-8", "replace"), m.group(3).decode("ascii")
        m = _STATUS_LINE.fullmatch(line)
        if m is None:
            raise RemoteProtocolError(f"not an RTSP status line (RTSP/1.0 CODE REASON): {_show(line)}")
        return m.group(1).decode("ascii"), m.group(2).decode("ascii"), \
            (m.group(3) or b"").decode("utf-8", "replace").strip(" \t")

    def _check_version(self, start: bytes) -> None:
        parts = self._start_line(start)
        version = parts[2] if self.our_role is SERVER else parts[0]
        if version != RTSP_VERSION:
            if _VERSION.fullmatch(version.encode()) and version.upper().startswith("RTSP/"):
                raise RemoteProtocolError(f"{version} is not supported; this server speaks RTSP/1.0", 505)
            raise RemoteProtocolError(f"{_show(version)} is not RTSP/1.0 (is this an RTSP peer?)")

    def _message(self, start: bytes, headers: tuple[tuple[str, str], ...], body: bytes) -> Event:
        parts = self._start_line(start)
        if self.our_role is SERVER:
            return Request(parts[0], parts[1], parts[2], headers, body)
        return Response(int(parts[1]), parts[2], headers, body)

    # -- output

    def send_response(self, response: Response) -> bytes:
        """Bytes for ``response``, with the pending request's CSeq added when it has none and a
        Content-Length when it has a body."""
        if self.our_role is not SERVER:
            raise LocalProtocolError("a client connection sends requests, not responses")
        cseq = self._pending_cseq.popleft() if self._pending_cseq else None
        if cseq is not None and response.cseq is None:
            response = Response(response.status, response.reason, (("CSeq", cseq), *response.headers),
                                response.body)
        return encode_response(response)

    def send_request(self, request: Request) -> bytes:
        if self.our_role is not CLIENT:
            raise LocalProtocolError("a server connection sends responses, not requests")
        return encode_request(request)

    def interleaved(self, channel: int, payload: bytes) -> bytes:
        """Bytes for one ``$`` frame."""
        return encode_interleaved(channel, payload)
