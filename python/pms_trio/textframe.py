"""Framing of text messages on a byte stream (RTSP over TCP, SIP over TCP), sans-IO.

Owns what RTSP and SIP framing share: the receive buffer, skipping CR/LF between messages, finding
the end of a header block within :data:`MAX_HEADER_BYTES` (refused as soon as that much arrived
without the blank line, so memory stays bounded), ``Content-Length`` (:func:`content_length`, the
body refused over :data:`MAX_BODY_BYTES` before any of it is buffered), the need-more-data state
(:data:`NEED_DATA`), end of stream (:class:`ConnectionClosed`, or an error in the middle of a
message), and :class:`RemoteProtocolError`, the one name for the peer's mistakes (RTSP uses it as
it is; SIP's ``SipParseError`` derives from it). Each protocol keeps its own start line, header
syntax and error replies: it parses the header block :class:`TextFramer` hands it and says which
status a too-long header block gets. Imports nothing of ours; no I/O, no clock.

The limits are the media core's (``rust/core/src/rtsp_framing.rs``, exported as
``_core.RTSP_MAX_HEADER``/``RTSP_MAX_BODY``), so a message the core forwards from a connection it
owns is one this framer accepts; a test holds them equal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 256 * 1024

_HEADER_END = re.compile(rb"\r?\n\r?\n")

Headers = tuple[tuple[str, str], ...]
H = TypeVar("H")


class RemoteProtocolError(Exception):
    """The peer sent something we cannot read or serve. ``status_hint`` is the reply's status,
    ``headers`` what the reply needs (RTSP: ``Allow`` for 455; SIP: the request's Via, From, To,
    Call-ID and CSeq to address it), ``message`` the reason detail."""

    def __init__(self, message: str, status_hint: int = 400, *, headers: Headers = ()) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = int(status_hint)
        self.headers = tuple(headers)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, {self.status_hint})"


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side cleanly, between messages."""


class NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()
"""A complete message (or frame) needs more bytes: read more."""


def lookup(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first header called ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def show(data: bytes | str, limit: int = 60) -> str:
    """A short printable excerpt for an error message."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def content_length(headers: Iterable[tuple[str, str]], error: type[RemoteProtocolError] = RemoteProtocolError,
                   limit: int = MAX_BODY_BYTES) -> int | None:
    """The body length ``Content-Length`` declares (None when absent). Refused: several different
    values, a value that is not a byte count, and a length over ``limit`` (413)."""
    values = {v for k, v in headers if k.lower() == "content-length"}
    if not values:
        return None
    if len(values) > 1:
        raise error(f"conflicting Content-Length headers: {', '.join(sorted(values))}")
    value = values.pop()
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise error(f"Content-Length {show(value)} is not a byte count")
    length = int(value)
    if length > limit:
        raise error(f"a body of {length} bytes is over the limit of {limit} bytes", 413)
    return length


class TextFramer(Generic[H]):
    """One stream's buffer and head/body state. The protocol hands in ``parse_head`` (the header
    block, start line first and without the blank line -> its parsed head and the body length),
    ``error`` (the :class:`RemoteProtocolError` subclass to raise), ``first_bytes`` (the bytes a
    message may start with: a token character), ``header_status`` (the status of a header block
    over the limit) and optionally ``check_start_line`` (called on the first line as soon as it
    is complete, so a TLS hello gets its error at once). Any error is fatal: the framer keeps
    raising it and drops what it buffered."""

    def __init__(self, parse_head: Callable[[bytes], tuple[H, int]], *, name: str,
                 error: type[RemoteProtocolError] = RemoteProtocolError, first_bytes: frozenset[int],
                 header_status: int = 400, check_start_line: Callable[[bytes], object] | None = None) -> None:
        self._parse_head = parse_head
        self._name = name
        self._error_type = error
        self._first_bytes = first_bytes
        self._header_status = header_status
        self._check_start_line = check_start_line
        self.buffer = bytearray()
        self._scanned = 0  # bytes of buffer already searched for the end of the header block
        self._line_checked = False  # the current message's start line is complete and valid
        self._head: tuple[H, int] | None = None  # parsed, awaiting its body
        self._eof = False
        self._error: RemoteProtocolError | None = None

    # -- state

    @property
    def errored(self) -> bool:
        return self._error is not None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned (bounded by a message plus one read)."""
        return len(self.buffer)

    def receive_data(self, data: bytes, misuse: type[Exception] = RuntimeError) -> None:
        """Add bytes read from the peer; ``b""`` means the peer closed its side. ``misuse`` is the
        protocol's error for data after EOF (a bug in the adapter)."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise misuse("receive_data after EOF")
        if self._error is None:
            self.buffer += data

    def check(self) -> None:
        """Raise the earlier error again, if any."""
        if self._error is not None:
            raise self._error_type(f"the connection failed earlier: {self._error.message}",
                                   self._error.status_hint)

    def fail(self, error: RemoteProtocolError) -> None:
        """Remember a fatal error (raised by the framer or by the protocol around it)."""
        self._error = error
        self.buffer.clear()

    # -- reading

    def between_messages(self) -> bool:
        """No message is half read; CR/LF before the next one are skipped."""
        if self._head is not None:
            return False
        buf = self.buffer
        skip = 0
        while skip < len(buf) and buf[skip] in b"\r\n":
            skip += 1
        if skip:
            del buf[:skip]
            self._scanned = max(0, self._scanned - skip)
        return True

    def consumed(self, count: int) -> None:
        """The protocol took ``count`` bytes from the front of :attr:`buffer` itself (an RTSP
        interleaved frame)."""
        del self.buffer[:count]
        self._scanned = 0

    def next_message(self) -> tuple[H, bytes] | NeedData:
        """The next message's parsed head and body, or :data:`NEED_DATA`."""
        buf = self.buffer
        if self.between_messages() and buf:
            self._head_block()
        if self._head is not None:
            head, length = self._head
            if len(buf) >= length:
                body = bytes(buf[:length])
                del buf[:length]
                self._head = None
                return head, body
        return NEED_DATA

    def at_end(self) -> ConnectionClosed | None:
        """At EOF: :class:`ConnectionClosed` between messages, an error in the middle of one; None
        before EOF."""
        if not self._eof:
            return None
        if self.buffer or self._head is not None:
            raise self._error_type("the peer closed the connection in the middle of a message")
        return ConnectionClosed()

    def _head_block(self) -> None:
        """Parse the header block once it is complete; refuse a bad one as early as can be done
        the same way however the bytes are cut."""
        buf = self.buffer
        if buf[0] not in self._first_bytes:
            raise self._error_type(f"not an {self._name} message: starts with byte 0x{buf[0]:02x}")
        if self._check_start_line is not None and not self._line_checked:
            first_end = buf.find(b"\n", self._scanned, MAX_HEADER_BYTES)
            if first_end >= 0:
                self._check_start_line(bytes(buf[:first_end]).rstrip(b"\r"))
                self._line_checked = True
        match = _HEADER_END.search(buf, max(0, self._scanned - 3), MAX_HEADER_BYTES)
        if match is None:
            self._scanned = min(len(buf), MAX_HEADER_BYTES)
            if len(buf) >= MAX_HEADER_BYTES:
                raise self._error_type(f"the {self._name} header block is over {MAX_HEADER_BYTES} bytes (64 KiB) "
                                       f"without its closing blank line", self._header_status)
            return
        block = bytes(buf[:match.start()])
        del buf[:match.end()]
        self._scanned = 0
        self._line_checked = False
        self._head = self._parse_head(block)


def split_block(block: bytes) -> tuple[bytes, list[bytes]]:
    """A header block's start line and header lines (LF or CRLF line ends)."""
    lines = block.replace(b"\r\n", b"\n").split(b"\n")
    return lines[0].rstrip(b"\r"), [line.rstrip(b"\r") for line in lines[1:]]
