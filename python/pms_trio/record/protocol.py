"""Recording commands, sans-IO (SPEC section 5): a command's bytes in, a typed command or an error out.

Owns: reading the seed's ``record.start`` / ``record.stop`` JSON objects (as an HTTP body or a
WebSocket text frame, the same text either way), checking the file name a recording is asked to
write, naming the files of a segmented recording, and building replies in the signaling reply
header (``version``, ``err``, ``err_msg``, ``method``, ``data``).

Rules:

- A file name is one plain name inside ``record.recordPath``: no path separator (``/`` or ``\\``),
  no ``..``, no NUL or other control character, no leading dot, not absolute, at most 255 bytes,
  and one of the extensions ``.webm``, ``.mkv``, ``.mp4`` (case-insensitive). Anything else is
  err 400 with the reason. Which codecs a container holds is the media core's business (err 415).
- ``data.segmentSeconds`` (number >= 0, at most a day) and ``data.targetHost``/``data.targetPort``
  are optional; absent means "the config's value".
- A segment of ``cam.mkv`` started at 2026-12-05 08:15:00 (local time) is
  ``cam-20261205-081500.mkv`` (:func:`segment_pattern`); a second segment in the same second gets
  ``-1``, ``-2``... appended by the media core, which opens the segments.

This module imports nothing from trio nor from the rest of the package.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

VERSION = "1.0"
START = "record.start"
STOP = "record.stop"
METHODS = (START, STOP)
MAX_COMMAND_BYTES = 64 * 1024
MAX_STREAM_NAME = 255
MAX_FILE_NAME = 255
MAX_SEGMENT_SECONDS = 86_400.0

#: File extension -> container name the media core takes.
CONTAINERS = {".webm": "webm", ".mkv": "mkv", ".mp4": "mp4"}

BAD_REQUEST = 400
NOT_FOUND = 404
UNKNOWN_METHOD = 405
CONFLICT = 409
TOO_LARGE = 413
UNSUPPORTED = 415
INTERNAL = 500


class CommandError(Exception):
    """A command that cannot be carried out: ``code`` is the reply's ``err``, ``message`` its
    ``err_msg``; ``method``/``stream`` echo what the command said (``"ack"`` when it had no method)."""

    def __init__(self, code: int, message: str, *, method: str = "ack", stream: str = "") -> None:
        super().__init__(f"{code} {message}")
        self.code = int(code)
        self.message = message
        self.method = method
        self.stream = stream


@dataclass(frozen=True, slots=True)
class StartRecording:
    stream: str
    file_name: str
    container: str
    segment_seconds: float | None = None
    target_host: str | None = None
    target_port: int | None = None


@dataclass(frozen=True, slots=True)
class StopRecording:
    stream: str


Command = StartRecording | StopRecording


def parse_command(body: str | bytes) -> Command:
    """Read one command. Returns :class:`StartRecording` or :class:`StopRecording`, or raises
    :class:`CommandError` with the reply code."""
    obj = _decode(body)
    if not isinstance(obj, dict):
        raise CommandError(BAD_REQUEST, "the command must be a JSON object such as "
                           "{\"stream\": \"NAME\", \"method\": \"record.start\", "
                           "\"data\": {\"fileName\": \"NAME.webm\"}}")
    method = obj.get("method")
    if not isinstance(method, str):
        raise CommandError(BAD_REQUEST, "the command has no string \"method\" (record.start or record.stop)")
    if method not in METHODS:
        raise CommandError(UNKNOWN_METHOD, f"unknown method {_show(method)}; use record.start or record.stop",
                           method=method)
    stream = _stream_name(obj.get("stream"), method)
    data = obj.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CommandError(BAD_REQUEST, "\"data\" must be a JSON object", method=method, stream=stream)
    if method == STOP:
        return StopRecording(stream)
    file_name = data.get("fileName")
    if not isinstance(file_name, str):
        raise CommandError(BAD_REQUEST, "\"data.fileName\" must name the file to write, e.g. \"cam1.webm\"",
                           method=method, stream=stream)
    try:
        container = container_of(file_name)
    except ValueError as e:
        raise CommandError(BAD_REQUEST, str(e), method=method, stream=stream) from None
    return StartRecording(
        stream=stream,
        file_name=file_name,
        container=container,
        segment_seconds=_segment_seconds(data, method, stream),
        target_host=_target_host(data, method, stream),
        target_port=_target_port(data, method, stream),
    )


def container_of(file_name: str) -> str:
    """The container a file name asks for; ``ValueError`` (with the reason) for a name that is not
    one plain file name inside the recording folder with a known extension."""
    if not file_name:
        raise ValueError("the file name is empty")
    if len(file_name.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME:
        raise ValueError(f"the file name is longer than {MAX_FILE_NAME} bytes")
    if "/" in file_name or "\\" in file_name:
        raise ValueError(f"the file name {_show(file_name)} contains a path separator; give a plain file name, "
                         "the file goes into record.recordPath")
    if ".." in file_name:
        raise ValueError(f"the file name {_show(file_name)} contains \"..\"")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in file_name):
        raise ValueError("the file name contains a NUL or another control character")
    if file_name.startswith("."):
        raise ValueError(f"the file name {_show(file_name)} starts with a dot")
    if file_name.startswith("~") or (len(file_name) > 1 and file_name[1] == ":"):
        raise ValueError(f"the file name {_show(file_name)} is not a plain file name")
    dot = file_name.rfind(".")
    ext = file_name[dot:].lower() if dot > 0 else ""
    container = CONTAINERS.get(ext)
    if container is None:
        raise ValueError(f"the file name {_show(file_name)} has no supported extension; use "
                         f"{', '.join(CONTAINERS)}")
    return container


def segment_pattern(file_name: str) -> str:
    """The ``strftime`` pattern of the segments of ``file_name`` (an accepted name):
    ``BASE-%Y%m%d-%H%M%S.EXT``, any ``%`` of the name escaped. The media core formats it in local
    time when it opens each segment and appends ``-1``, ``-2``... when that name exists."""
    dot = file_name.rfind(".")
    base, ext = file_name[:dot].replace("%", "%%"), file_name[dot:].replace("%", "%%")
    return f"{base}-%Y%m%d-%H%M%S{ext}"


def single_pattern(file_name: str) -> str:
    """The ``strftime`` pattern that names exactly ``file_name`` (one file, no segments)."""
    return file_name.replace("%", "%%")


def build_reply(method: str, data: dict[str, Any] | None = None, *, stream: str = "", err: int = 0,
                err_msg: str = "success") -> str:
    reply: dict[str, Any] = {"version": VERSION, "err": int(err), "err_msg": err_msg, "method": method}
    if stream:
        reply["stream"] = stream
    reply["data"] = {} if data is None else data
    return json.dumps(reply)


def error_reply(error: CommandError) -> str:
    return build_reply(error.method, {}, stream=error.stream, err=error.code, err_msg=error.message)


# ---------------------------------------------------------------------------------------------


def _decode(body: str | bytes) -> Any:
    if isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
        if len(raw) > MAX_COMMAND_BYTES:
            raise CommandError(TOO_LARGE, f"the command is {len(raw)} bytes, over the limit of "
                               f"{MAX_COMMAND_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError(BAD_REQUEST, "the command is not UTF-8 text") from None
    elif isinstance(body, str):
        text = body
        if len(text) * 4 > MAX_COMMAND_BYTES and len(text.encode("utf-8", "surrogatepass")) > MAX_COMMAND_BYTES:
            raise CommandError(TOO_LARGE, f"the command is over the limit of {MAX_COMMAND_BYTES} bytes")
    else:
        raise TypeError(f"a command is str or bytes, not {type(body).__name__}")  # our bug
    try:
        return json.loads(text)
    except RecursionError:
        raise CommandError(BAD_REQUEST, "the command nests too deeply") from None
    except ValueError as e:
        detail = e.args[0] if e.args else "invalid JSON"
        raise CommandError(BAD_REQUEST, f"the command is not valid JSON ({detail})") from None


def _show(value: str, limit: int = 64) -> str:
    return json.dumps(value if len(value) <= limit else value[:limit] + "...")


def _stream_name(value: Any, method: str) -> str:
    if not isinstance(value, str) or not value:
        raise CommandError(BAD_REQUEST, "\"stream\" must be a non-empty string naming the stream", method=method)
    if len(value) > MAX_STREAM_NAME:
        raise CommandError(BAD_REQUEST, f"\"stream\" is longer than {MAX_STREAM_NAME} characters", method=method)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise CommandError(BAD_REQUEST, "\"stream\" must not contain control characters", method=method)
    return value


def _segment_seconds(data: dict[str, Any], method: str, stream: str) -> float | None:
    value = data.get("segmentSeconds")
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value < 0 or value > MAX_SEGMENT_SECONDS):
        raise CommandError(BAD_REQUEST, "\"data.segmentSeconds\" must be a number of seconds from 0 (one file) "
                           f"to {int(MAX_SEGMENT_SECONDS)}", method=method, stream=stream)
    return float(value)


def _target_host(data: dict[str, Any], method: str, stream: str) -> str | None:
    value = data.get("targetHost")
    if value is None or value == "":
        return None
    if (not isinstance(value, str) or len(value) > 253
            or any(c.isspace() or c in "/?#@" or ord(c) < 0x20 for c in value)):
        raise CommandError(BAD_REQUEST, "\"data.targetHost\" must be a host name or IP address",
                           method=method, stream=stream)
    return value


def _target_port(data: dict[str, Any], method: str, stream: str) -> int | None:
    value = data.get("targetPort")
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise CommandError(BAD_REQUEST, "\"data.targetPort\" must be an integer 1-65535",
                           method=method, stream=stream)
    return value
