"""The signaling protocol, sans-IO (SPEC section 3): frames in, requests out, replies as text.

Owns: parsing one WebSocket frame into a :class:`Request` (or raising :class:`ProtocolError` with the
reply code), building replies and notifications, and :class:`Session`, the per-connection state
(session id, which streams it publishes and plays, and the heartbeat deadline as data).

Theory of operation:

- Every frame yields exactly one reply. A frame that cannot be read as a JSON object with a string
  ``method`` is answered with ``"method": "ack"`` and err 400; any other error echoes the request's
  ``method``. The connection stays open after an error.
- The frame size limit (256 KiB, err 413) is checked here, before decoding; the WebSocket library's
  own limit is set higher so that this code is the one that answers.
- ``session`` may be absent or empty (seed 001, and the first request of seed 003); a non-empty
  ``session`` that is not this connection's id gets err 410.
- Replies are ASCII JSON (non-ASCII escaped), so any string echoed from a request can be sent.
- Any frame, even an invalid one, counts as a sign of life. :meth:`Session.next_deadline` says when
  the session expires; the adapter waits until then and calls :meth:`Session.handle_timeout`.

This module imports nothing from trio nor from the rest of the package.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

VERSION = "1.0"
MAX_FRAME_BYTES = 256 * 1024
MAX_STREAM_NAME = 255

PUBLISH = "stream.publish"
PLAY = "stream.play"
MUTE = "stream.mute"
CLOSE = "stream.close"
HEARTBEAT = "stream.heartbeat"
CLOSED_NOTIFICATION = "stream.closed"
METHODS = (PUBLISH, PLAY, MUTE, CLOSE, HEARTBEAT)


class ErrorCode(IntEnum):
    OK = 0
    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    UNKNOWN_METHOD = 405
    CONFLICT = 409
    WRONG_SESSION = 410
    TOO_LARGE = 413
    CODEC_MISMATCH = 415
    UNUSABLE_SDP = 422
    INTERNAL = 500


KNOWN_CODES = frozenset(int(c) for c in ErrorCode if c)


class ProtocolError(Exception):
    """The peer's request cannot be served; ``code`` is the reply's ``err``, ``message`` its
    ``err_msg``, ``method`` the method to echo (``"ack"`` when the frame had none)."""

    def __init__(self, code: int, message: str, *, method: str = "ack", stream: str = "") -> None:
        super().__init__(f"{code} {message}")
        self.code = int(code)
        self.message = message
        self.method = method
        self.stream = stream


# ---------------------------------------------------------------------------------------------
# Requests: frozen, slotted nouns


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    stream: str
    session: str


@dataclass(frozen=True, slots=True)
class Publish(Request):
    sdp: str
    max_bitrate: int
    token: str | None = None  # data.token (SPEC 10)


@dataclass(frozen=True, slots=True)
class Play(Request):
    sdp: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Mute(Request):
    video: bool | None
    audio: bool | None


@dataclass(frozen=True, slots=True)
class Close(Request):
    pass


@dataclass(frozen=True, slots=True)
class Heartbeat(Request):
    pass


# ---------------------------------------------------------------------------------------------
# Parsing


def _bad(message: str, method: str = "ack", stream: str = "") -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message, method=method, stream=stream)


def _decode(frame: str | bytes) -> Any:
    if isinstance(frame, (bytes, bytearray, memoryview)):
        data = bytes(frame)
        if len(data) > MAX_FRAME_BYTES:
            raise ProtocolError(ErrorCode.TOO_LARGE, _too_large(len(data)))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("the frame is not UTF-8 text; send one JSON object per text frame") from None
    elif isinstance(frame, str):
        text = frame
        # n characters are n to 4n bytes of UTF-8: encode only when it can matter.
        if len(text) * 4 > MAX_FRAME_BYTES:
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > MAX_FRAME_BYTES:
                raise ProtocolError(ErrorCode.TOO_LARGE, _too_large(size))
    else:
        raise TypeError(f"a frame is str or bytes, not {type(frame).__name__}")  # our bug
    try:
        return json.loads(text)
    except RecursionError:
        raise _bad("the frame nests too deeply to be a signaling request") from None
    except ValueError as e:
        detail = e.args[0] if e.args else "invalid JSON"
        raise _bad(f"the frame is not valid JSON ({detail}); send one JSON object per text frame") from None


def _too_large(size: int) -> str:
    return (f"the frame is {size} bytes, over the limit of {MAX_FRAME_BYTES} bytes (256 KiB); "
            f"send a smaller SDP")


def parse_request(frame: str | bytes) -> Request:
    """Read one frame. Returns a :class:`Request` subclass or raises :class:`ProtocolError`."""
    obj = _decode(frame)
    if not isinstance(obj, dict):
        raise _bad("the frame must be a JSON object such as "
                   "{\"version\": \"1.0\", \"method\": \"stream.play\", \"stream\": \"NAME\", \"data\": {...}}")
    method = obj.get("method")
    if not isinstance(method, str):
        raise _bad("the request has no string \"method\" (stream.publish, stream.play, stream.mute, "
                   "stream.close or stream.heartbeat)")
    if method not in METHODS:
        raise ProtocolError(ErrorCode.UNKNOWN_METHOD,
                            f"unknown method {_show(method)}; use one of {', '.join(METHODS)}", method=method)

    version = obj.get("version")
    if version is not None and not isinstance(version, str):
        raise _bad("\"version\" must be a string (\"1.0\")", method)

    session = obj.get("session")
    if session is None:
        session = ""
    elif not isinstance(session, str):
        raise _bad("\"session\" must be a string (the id from an earlier reply, or \"\")", method)

    stream_raw = obj.get("stream")
    if method == HEARTBEAT and (stream_raw is None or stream_raw == ""):
        stream = ""  # a heartbeat is about the session, not a stream
    else:
        stream = _stream_name(stream_raw, method)

    data = obj.get("data", {})
    if not isinstance(data, dict):
        raise _bad("\"data\" must be a JSON object", method, stream)

    if method == PUBLISH:
        return Publish(method, stream, session, _sdp(data, method, stream), _max_bitrate(data, method, stream),
                       _token(data, method, stream))
    if method == PLAY:
        return Play(method, stream, session, _sdp(data, method, stream), _token(data, method, stream))
    if method == MUTE:
        video = _optional_bool(data, "video", method, stream)
        audio = _optional_bool(data, "audio", method, stream)
        return Mute(method, stream, session, video, audio)
    if method == CLOSE:
        return Close(method, stream, session)
    return Heartbeat(method, stream, session)


def _show(value: str, limit: int = 64) -> str:
    shown = value if len(value) <= limit else value[:limit] + "..."
    return json.dumps(shown)


def _stream_name(value: Any, method: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad("\"stream\" must be a non-empty string naming the stream", method)
    if len(value) > MAX_STREAM_NAME:
        raise _bad(f"\"stream\" is {len(value)} characters long; the limit is {MAX_STREAM_NAME}", method)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise _bad("\"stream\" must not contain control characters", method)
    return value


def _sdp(data: dict[str, Any], method: str, stream: str) -> str:
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp.strip():
        raise _bad("\"data.sdp\" must be the SDP offer as a non-empty string", method, stream)
    return sdp


def _token(data: dict[str, Any], method: str, stream: str) -> str | None:
    value = data.get("token")
    if value is None or isinstance(value, str):
        return value or None
    raise _bad("\"data.token\" must be a string (a JWT; SPEC section 10)", method, stream)


def _max_bitrate(data: dict[str, Any], method: str, stream: str) -> int:
    value = data.get("max_bitrate")
    if value is None:
        return 0
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= 2**63:
        raise _bad("\"data.max_bitrate\" must be a non-negative integer (bits per second; 0 = no cap)",
                   method, stream)
    return value


def _optional_bool(data: dict[str, Any], key: str, method: str, stream: str) -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _bad(f"\"data.{key}\" must be true, false or absent", method, stream)


# ---------------------------------------------------------------------------------------------
# Replies


def build_reply(method: str, session: str, data: dict[str, Any] | None = None, *,
                err: int = 0, err_msg: str = "success") -> str:
    return json.dumps({"version": VERSION, "err": int(err), "err_msg": err_msg, "method": method,
                       "session": session, "data": {} if data is None else data})


def error_reply(error: ProtocolError, session: str) -> str:
    return build_reply(error.method, session, {}, err=error.code, err_msg=error.message)


def closed_notification(session: str, stream: str, reason: str) -> str:
    """Sent unasked when a transport of this session ends for a reason other than its own
    ``stream.close`` (the publisher left, ICE timed out...)."""
    words = {
        "producer-closed": f"stream {stream} ended: its publisher left",
        "ice-timeout": f"stream {stream}: the media connection timed out (ICE)",
        "dtls-failed": f"stream {stream}: the DTLS handshake failed",
        "connect-timeout": f"stream {stream}: the media connection never completed",
    }
    message = words.get(reason, f"stream {stream} closed ({reason})")
    return json.dumps({"version": VERSION, "err": 0, "err_msg": message, "method": CLOSED_NOTIFICATION,
                       "session": session, "stream": stream, "data": {"reason": reason}})


# ---------------------------------------------------------------------------------------------
# Session state


@dataclass(slots=True)
class Session:
    """One WebSocket connection's state. Times are plain floats from the adapter's clock."""

    id: str
    heartbeat_timeout: float
    last_activity: float
    peer: str = ""
    created: float = 0.0
    publishing: dict[str, int] = field(default_factory=dict)  # stream -> transport id
    playing: dict[str, int] = field(default_factory=dict)
    expired: bool = False
    kick: Callable[[], None] | None = None  # set by the adapter: ends the connection (DELETE /api/v1/sessions/ID)

    def receive(self, frame: str | bytes, now: float) -> Request:
        """Parse a frame from this session's peer. Any frame counts as a sign of life."""
        self.last_activity = now
        request = parse_request(frame)
        if request.session and request.session != self.id:
            raise ProtocolError(ErrorCode.WRONG_SESSION,
                                f"unknown session {_show(request.session)}; this connection's session is "
                                f"{_show(self.id)} (send it, or leave \"session\" empty)",
                                method=request.method, stream=request.stream)
        return request

    def next_deadline(self) -> float:
        return self.last_activity + self.heartbeat_timeout

    def handle_timeout(self, now: float) -> bool:
        """True (and ``expired``) once ``heartbeat_timeout`` has passed without a frame."""
        if now >= self.next_deadline():
            self.expired = True
        return self.expired

    # -- what this session publishes and plays

    def transports(self) -> list[int]:
        return [*self.publishing.values(), *self.playing.values()]

    def transports_of(self, stream: str) -> list[int]:
        return [t for t in (self.publishing.get(stream), self.playing.get(stream)) if t is not None]

    def forget(self, transport_id: int) -> tuple[str, str] | None:
        """Drop a transport; returns ``(stream, "publish"|"play")`` or ``None`` if not ours."""
        for role, table in (("publish", self.publishing), ("play", self.playing)):
            for stream, tid in table.items():
                if tid == transport_id:
                    del table[stream]
                    return stream, role
        return None

    def describe(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "peer": self.peer, "age": round(max(0.0, now - self.created), 3),
                "idle": round(max(0.0, now - self.last_activity), 3),
                "publishing": sorted(self.publishing), "playing": sorted(self.playing)}
