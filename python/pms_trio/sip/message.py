"""SIP messages, sans-IO (RFC 3261 sections 7, 18.3, 20, 25): parse and serialize.

Owns: the event types (:class:`Request`, :class:`Response`, :class:`ConnectionClosed`, the
:data:`NEED_DATA` sentinel), the two error directions (:class:`SipParseError`: the peer's mistake,
answered with ``status_hint`` when the message was a readable request, otherwise dropped;
:class:`LocalProtocolError`: our misuse, a bug), :func:`parse_datagram` (UDP: one datagram, one
message), :class:`StreamFramer` (TCP: splits a byte stream on Content-Length), :func:`serialize`,
and the helpers to answer (:func:`response_to`, :func:`error_response`); the header value types
(:class:`Via`, :class:`NameAddr`, :class:`SipUri`) live in ``sip.headers`` and the errors in
``sip.errors``, both re-exported here; the stream framing it shares with RTSP is ``textframe``'s. It
may not do I/O, read a clock, or import trio or the rest of the package.

Theory of operation:

- Header names are matched case-insensitively; compact forms (``v``, ``f``, ``t``, ``i``, ``m``,
  ``l``, ``c``, ``k``, ``s``, ``e``, ``o``, ``u``, ``x``...) are expanded to their full names when
  parsed, so ``request.header("Via")`` finds ``v:``. Folded lines (leading space or tab) are joined
  with one space. Header values are UTF-8, or GB18030 when they are not valid UTF-8 (some devices put
  GB2312 display names in From); bodies stay bytes (the MANSCDP layer decodes them).
- Several Via headers and comma-separated Via values are both kept as written; :attr:`Request.vias`
  splits them (outside quotes) and parses each.
- A request is served only with Via, From, To, Call-ID and a ``CSeq: <number> <METHOD>`` whose method
  is the request's (RFC 3261 8.1.1); anything else is :class:`SipParseError` 400. Max-Forwards is not
  required (devices omit it). A version other than SIP/2.0 is 505.
- UDP (RFC 3261 18.3): Content-Length absent means the rest of the datagram is the body; a longer
  datagram is truncated to it; a shorter one is refused. A datagram of CR/LF only is a keepalive ping
  (RFC 5626) and parses to ``None``.
- TCP: Content-Length absent means no body (the RFC makes it mandatory on streams; a body sent
  without it fails to parse as the next message). CR/LF between messages is skipped. The header block
  is bounded (:data:`MAX_HEADER_BYTES`, 64 KiB, refused with 413 as soon as that much arrives without
  the blank line) and so is the body (:data:`MAX_BODY_BYTES`, 256 KiB as RTSP's, 413 from its
  Content-Length before any of it is buffered). Any error is fatal for the stream: the adapter answers if it can
  (:func:`error_response`) and closes. The events are the same however the bytes are cut.
- :func:`serialize` writes full header names as given and sets Content-Length to the body's length
  (in place if present, appended otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ..textframe import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    NEED_DATA,
    ConnectionClosed,
    NeedData,
    TextFramer,
    content_length,
    show,
    split_block,
)
from .errors import LocalProtocolError, SipParseError
from .headers import (
    NameAddr,
    SipUri,
    Via,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_commas,
)

__all__ = [
    "BRANCH_MAGIC", "COMPACT_FORMS", "MAX_BODY_BYTES", "MAX_HEADER_BYTES", "NEED_DATA", "REASONS", "SIP_VERSION",
    "ConnectionClosed", "Headers", "LocalProtocolError", "Message", "NameAddr", "Request", "Response",
    "SipParseError", "SipUri", "StreamFramer", "Via", "error_response", "parse_datagram", "parse_name_addr",
    "parse_uri", "parse_via", "response_to", "serialize", "split_commas", "with_header",
]

SIP_VERSION = "SIP/2.0"
BRANCH_MAGIC = "z9hG4bK"

COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires", "y": "Identity",
}

REASONS: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    413: "Request Entity Too Large", 415: "Unsupported Media Type", 420: "Bad Extension",
    423: "Interval Too Brief", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 603: "Decline",
}

_TOKEN = re.compile(r"[!%'*+._`~0-9A-Za-z-]+")
_TOKEN_BYTES = frozenset(b"!%'*+._`~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_REQUEST_LINE = re.compile(rb"([!%'*+._`~0-9A-Za-z-]+) +([\x21-\x7e\x80-\xff]+) +([A-Za-z]+/[0-9]+\.[0-9]+) *")
_STATUS_LINE = re.compile(rb"([A-Za-z]+/[0-9]+\.[0-9]+) +([1-6][0-9]{2})(?: +([^\x00-\x08\x0a-\x1f\x7f]*))?")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# A header line's name and colon; the value is the rest. Checked on bytes: no byte of a multi-byte
# UTF-8 or GB18030 character is below 0x80 or 0x7f, so a control byte is a control character.
_HEADER_LINE = re.compile(rb"([!%'*+._`~0-9A-Za-z-]+)[ \t]*:")
_BAD_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CSEQ = re.compile(r"([0-9]{1,10})\s+([!%'*+._`~0-9A-Za-z-]+)")


# ---------------------------------------------------------------------------------------------
# Events: frozen, slotted nouns

Headers = tuple[tuple[str, str], ...]


def _lookup(headers: Headers, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


_WANTED: dict[str, str] = {}


def _wanted(name: str) -> str:
    """The index key for a header name as asked: full form, lower case (``v`` and ``VIA`` are ``via``)."""
    key = _WANTED.get(name)
    if key is None:
        key = COMPACT_FORMS.get(name.lower(), name).lower()
        if len(_WANTED) < 1024:  # the names the code asks for; a peer's names never come here
            _WANTED[name] = key
    return key


class _HeaderAccess:
    """Lookups shared by requests and responses (they only read ``self.headers``).

    A message is read many times on its way through the transaction layer and the service (the
    top Via for the key, the stamp and the answer; From for the device; CSeq for matching), so the
    first lookup builds an index of the first value of each header and the parsed top Via, CSeq,
    From and To are kept on the message (``_cache``, never compared). The message is frozen, so they
    stay true."""

    __slots__ = ()
    headers: Headers
    _cache: dict[str, object] | None

    def _memo(self) -> dict[str, object]:
        cache = self._cache
        if cache is None:
            cache = {}
            for key, value in self.headers:
                cache.setdefault(key.lower(), value)
            object.__setattr__(self, "_cache", cache)
        return cache

    def inherit(self, original: _HeaderAccess, *, via: str, top_via: Via) -> None:
        """Take ``original``'s parsed values, for a copy whose first Via alone was rewritten."""
        cache = dict(original._memo())
        cache["via"], cache[" top_via"] = via, top_via
        object.__setattr__(self, "_cache", cache)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first header called ``name`` (case-insensitive, compact forms too), or ``default``."""
        found = self._memo().get(_wanted(name))
        return default if found is None else found  # type: ignore[return-value]

    def header_all(self, name: str) -> list[str]:
        wanted = _wanted(name)
        return [v for k, v in self.headers if k.lower() == wanted]

    @property
    def vias(self) -> list[Via]:
        return [via for value in self.header_all("Via") for via in parse_via(value)]

    @property
    def top_via(self) -> Via:
        cache = self._memo()
        via = cache.get(" top_via")
        if via is None:
            value = cache.get("via")
            parts = split_commas(value) if isinstance(value, str) else []
            if not parts:
                raise SipParseError("no Via")
            via = cache[" top_via"] = parse_via(parts[0])[0]  # the others are read only when asked for (vias)
        return via  # type: ignore[return-value]

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        cache = self._memo()
        found = cache.get(" cseq")
        if found is None:
            m = _CSEQ.fullmatch((self.header("CSeq") or "").strip())
            if m is None:
                raise SipParseError(f"CSeq {self.header('CSeq')!r} is not '<number> <METHOD>'")
            found = cache[" cseq"] = (int(m.group(1)), m.group(2).upper())
        return found  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        cache = self._memo()
        found = cache.get(" from")
        if found is None:
            found = cache[" from"] = parse_name_addr(self.header("From") or "")
        return found  # type: ignore[return-value]

    @property
    def to(self) -> NameAddr:
        cache = self._memo()
        found = cache.get(" to")
        if found is None:
            found = cache[" to"] = parse_name_addr(self.header("To") or "")
        return found  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Request(_HeaderAccess):
    method: str
    uri: str
    headers: Headers = ()
    body: bytes = b""
    version: str = SIP_VERSION
    _cache: dict[str, object] | None = field(default=None, init=False, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Response(_HeaderAccess):
    status: int
    reason: str = ""
    headers: Headers = ()
    body: bytes = b""
    version: str = SIP_VERSION
    _cache: dict[str, object] | None = field(default=None, init=False, repr=False, compare=False)


Message = Request | Response


def with_header(message: Message, name: str, value: str) -> Message:
    """``message`` with the first ``name`` header replaced (or appended)."""
    headers, done = [], False
    for key, old in message.headers:
        if not done and key.lower() == name.lower():
            headers.append((key, value))
            done = True
        else:
            headers.append((key, old))
    if not done:
        headers.append((name, value))
    return replace(message, headers=tuple(headers))


_DIALOG_HEADERS = ("via", "from", "to", "call-id", "cseq")


def response_to(request: Request | Headers, status: int, reason: str | None = None, *,
                to_tag: str | None = None, headers: Iterable[tuple[str, str]] = (),
                body: bytes = b"") -> Response:
    """A response to ``request`` (RFC 3261 8.2.6.2): every Via, From, To (with ``to_tag`` added when
    it has none and the status is not 100), Call-ID and CSeq copied, then ``headers``."""
    source = request.headers if isinstance(request, Request) else request
    copied: list[tuple[str, str]] = []
    for key, value in source:
        low = key.lower()
        if low not in _DIALOG_HEADERS:
            continue
        if low == "to" and to_tag and status != 100 and parse_name_addr(value).tag is None:
            value = f"{value};tag={to_tag}"
        copied.append((key, value))
    return Response(status, REASONS.get(status, "Unknown") if reason is None else reason,
                    (*copied, *headers), body)


def error_response(error: SipParseError) -> Response | None:
    """The answer to a refused request, or None when it cannot be addressed (no readable Via,
    From, To, Call-ID or CSeq: drop it)."""
    names = {k.lower() for k, _ in error.headers}
    if not set(_DIALOG_HEADERS) <= names:
        return None
    status = error.status_hint if 400 <= error.status_hint <= 699 else 400
    reason = REASONS.get(status, "Bad Request")
    answer = response_to(error.headers, status, reason,
                         headers=(("Warning", '399 pms-trio "' + _warning_text(error.message) + '"'),))
    try:
        _validate(answer, None)  # an unreadable Via, CSeq, From or To: nowhere to send it
    except SipParseError:
        return None
    return answer


def _warning_text(text: str) -> str:
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)[:200]


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


def serialize(message: Message) -> bytes:
    """The bytes of ``message`` with a correct Content-Length."""
    if isinstance(message, Request):
        if not _TOKEN.fullmatch(message.method):
            raise LocalProtocolError(f"method {message.method!r} is not a token")
        if not message.uri or any(c <= " " or c == "\x7f" for c in message.uri):
            raise LocalProtocolError(f"request URI {message.uri!r} is empty or has blanks")
        start = f"{message.method} {message.uri} {message.version}"
    elif isinstance(message, Response):
        if not isinstance(message.status, int) or not 100 <= message.status <= 699:
            raise LocalProtocolError(f"status {message.status!r} is not 100-699")
        if _BAD_VALUE.search(message.reason) or message.reason != message.reason.strip(" \t"):
            raise LocalProtocolError(f"reason {message.reason!r} has control characters")
        start = f"{message.version} {message.status} {message.reason}".rstrip(" ")
    else:
        raise LocalProtocolError(f"cannot serialize {type(message).__name__}")
    if not isinstance(message.body, (bytes, bytearray)):
        raise LocalProtocolError(f"a body is bytes, not {type(message.body).__name__}")
    if len(message.body) > MAX_BODY_BYTES:
        raise LocalProtocolError(f"a body of {len(message.body)} bytes is over {MAX_BODY_BYTES}")
    headers = _check_headers(message.headers)
    length = str(len(message.body))
    if any(k.lower() == "content-length" for k, _ in headers):
        headers = [(k, length if k.lower() == "content-length" else v) for k, v in headers]
    else:
        headers.append(("Content-Length", length))
    lines = [start, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("utf-8") + bytes(message.body)


# ---------------------------------------------------------------------------------------------
# Parsing


_show = show


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("gb18030", "replace")


def _parse_headers(lines: list[bytes]) -> Headers:
    headers: list[list[str]] = []
    for raw in lines:
        m = _HEADER_LINE.match(raw)
        if m is None:
            if raw[:1] not in (b" ", b"\t"):
                raise SipParseError(f"not a header line (NAME: value): {_show(raw)}")
            if not headers:
                raise SipParseError(f"a continuation line before any header: {_show(raw)}")
            raw_value = raw.strip(b" \t")
            if _BAD_BYTES.search(raw_value):
                raise SipParseError(f"header {headers[-1][0]} has control characters")
            headers[-1][1] = (headers[-1][1] + " " + _decode(raw_value)).strip(" \t")
            continue
        name = m.group(1).decode("ascii")
        if len(name) == 1:
            name = COMPACT_FORMS.get(name.lower(), name)
        raw_value = raw[m.end():]
        if _BAD_BYTES.search(raw_value):
            raise SipParseError(f"header {name} has control characters")
        headers.append([name, _decode(raw_value).strip(" \t")])
    return tuple((k, v) for k, v in headers)


def _content_length(headers: Headers) -> int | None:
    return content_length(headers, SipParseError)


def _start_line(line: bytes) -> tuple[bool, tuple[str, str, str]]:
    """(is_request, parts); refuses a line that is neither."""
    m = _STATUS_LINE.fullmatch(line)
    if m is not None:
        return False, (m.group(1).decode("ascii"), m.group(2).decode("ascii"),
                       _decode(m.group(3) or b"").strip(" \t"))
    m = _REQUEST_LINE.fullmatch(line)
    if m is None:
        raise SipParseError(f"not a SIP start line: {_show(line)}")
    return True, (m.group(1).decode("ascii"), _decode(m.group(2)), m.group(3).decode("ascii"))


def _build(start: bytes, headers: Headers, body: bytes) -> Message:
    is_request, parts = _start_line(start)
    if is_request:
        method, uri, version = parts
        if version.upper() != SIP_VERSION:
            raise SipParseError(f"{version} is not SIP/2.0", 505, headers=_readable(headers))
        request = Request(method.upper(), uri, headers, body, SIP_VERSION)
        try:
            _validate(request, method.upper())
        except SipParseError as e:
            raise SipParseError(e.message, e.status_hint, headers=_readable(headers)) from None
        return request
    version, status, reason = parts
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"a response in {version}, not SIP/2.0", 505)
    response = Response(int(status), reason, headers, body, SIP_VERSION)
    _validate(response, None)
    return response


def _readable(headers: Headers, start: bytes | None = None) -> Headers:
    """The headers an error answer copies (none when ``start`` is not a request line: a
    response is never answered)."""
    if start is not None and _REQUEST_LINE.fullmatch(start) is None:
        return ()
    return tuple((k, v) for k, v in headers if k.lower() in _DIALOG_HEADERS)


def _validate(message: Message, method: str | None) -> None:
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if message.header(name) is None:
            raise SipParseError(f"no {name} header")
    _ = message.top_via
    _, cseq_method = message.cseq
    if method is not None and cseq_method != method:
        raise SipParseError(f"CSeq method {cseq_method} is not the request's {method}")
    if not message.call_id.strip():
        raise SipParseError("an empty Call-ID")
    message.from_.uri  # noqa: B018 - parse for the error
    message.to.uri  # noqa: B018


def _split_head(data: bytes) -> tuple[bytes, Headers, int] | None:
    match = _HEADER_END.search(data, 0, MAX_HEADER_BYTES + 4)
    if match is None:
        return None
    lines = data[:match.start()].replace(b"\r\n", b"\n").split(b"\n")
    return lines[0].rstrip(b"\r"), _parse_headers([line.rstrip(b"\r") for line in lines[1:]]), match.end()


def parse_datagram(data: bytes) -> Message | None:
    """One UDP datagram: the message, None for a CR/LF keepalive, or :class:`SipParseError`."""
    data = bytes(data)
    if not data.strip(b"\r\n"):
        return None
    data = data.lstrip(b"\r\n")
    if len(data) > MAX_HEADER_BYTES + MAX_BODY_BYTES:
        raise SipParseError(f"a datagram of {len(data)} bytes is too large", 413)
    split = _split_head(data)
    if split is None:
        if len(data) >= MAX_HEADER_BYTES:
            raise SipParseError("the header block is over 64 KiB", 413)
        raise SipParseError("no blank line after the headers")
    start, headers, end = split
    try:
        length = _content_length(headers)
    except SipParseError as e:
        raise SipParseError(e.message, e.status_hint, headers=_readable(headers, start)) from None
    rest = data[end:]
    if length is None:
        body = rest
    elif len(rest) < length:
        raise SipParseError(f"Content-Length {length} but only {len(rest)} bytes follow",
                            headers=_readable(headers, start))
    else:
        body = rest[:length]
    return _build(start, headers, body)


def _stream_head(block: bytes) -> tuple[tuple[bytes, Headers], int]:
    """A complete header block on a stream -> (start line, headers) and the body length (0 when
    Content-Length is absent)."""
    start, lines = split_block(block)
    headers = _parse_headers(lines)
    is_request, _ = _start_line(start)
    try:
        length = _content_length(headers) or 0
    except SipParseError as e:
        readable = tuple((k, v) for k, v in headers if k.lower() in _DIALOG_HEADERS) if is_request else ()
        raise SipParseError(e.message, e.status_hint, headers=readable) from None
    return (start, headers), length


class StreamFramer:
    """Splits one TCP stream into messages. See the module docstring for the rules."""

    def __init__(self) -> None:
        self._framer: TextFramer[tuple[bytes, Headers]] = TextFramer(
            _stream_head, name="SIP", error=SipParseError, first_bytes=_TOKEN_BYTES, header_status=413)

    @property
    def errored(self) -> bool:
        return self._framer.errored

    @property
    def buffered(self) -> int:
        return self._framer.buffered

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` means the peer closed its side."""
        self._framer.receive_data(data, LocalProtocolError)

    def next_event(self) -> Message | ConnectionClosed | NeedData:
        framer = self._framer
        framer.check()
        try:
            message = framer.next_message()
            if not isinstance(message, NeedData):
                (start, headers), body = message
                return _build(start, headers, body)
            return framer.at_end() or NEED_DATA
        except SipParseError as e:
            framer.fail(e)
            raise
