"""MANSRTSP: the playback control bodies of GB/T 28181-2016 annex B, sans-IO.

Owns the builders of the bodies the platform sends in an in-dialog ``INFO`` with
``Content-Type: Application/MANSRTSP`` (:func:`pause`, :func:`play`) and :func:`parse`, which reads
such a body back (a request ``PLAY RTSP/1.0`` or an answer ``RTSP/1.0 200 OK``) into
:class:`MansRtsp`, or raises :class:`MansRtspError` (status hint 400). No I/O; nothing of the
package.

- ``PLAY``: ``Scale:`` (0.25 to 8 here; the standard lists 0.25-4, devices that offer 8 in their
  catalog's DownloadSpeed take 8; negative would be reverse play, not offered) and ``Range:
  npt=now-`` (resume where paused) or ``npt=SECONDS-`` (seek: seconds from the start of the
  played span).
- ``PAUSE``: ``PauseTime: now``.
- The start line says ``RTSP/1.0`` (wvp and srs-sip do; annex J.14 shows ``MANSRTSP/1.0``: both are
  read). ``CSeq`` is ours and increases per dialog (callers keep the counter).
"""

from __future__ import annotations

from dataclasses import dataclass

CONTENT_TYPE = "Application/MANSRTSP"
MIN_SCALE = 0.25
MAX_SCALE = 8.0
MAX_BODY = 4096
METHODS = ("PLAY", "PAUSE", "TEARDOWN")


class MansRtspError(Exception):
    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint


@dataclass(frozen=True, slots=True)
class MansRtsp:
    """A request (``method`` set) or an answer (``status`` set)."""

    method: str  # "" for an answer
    status: int  # 0 for a request
    cseq: int
    scale: float | None = None
    range_start: float | None = None  # npt=N-: seconds; None: absent or "now"
    range_now: bool = False  # npt=now-
    pause_time: str = ""
    reason: str = ""


def _body(first: str, cseq: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [first, f"CSeq: {int(cseq)}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def check_scale(scale: float) -> float:
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not MIN_SCALE <= float(scale) <= MAX_SCALE:
        raise ValueError(f"speed {scale!r} is not a number from {MIN_SCALE} to {MAX_SCALE}")
    return float(scale)


def play(cseq: int, *, scale: float | None = None, seek: float | None = None) -> bytes:
    """``PLAY``: resume (``Range: npt=now-``), change speed (``Scale``), or seek to ``seek`` s."""
    headers: list[tuple[str, str]] = []
    if scale is not None:
        headers.append(("Scale", str(check_scale(scale))))  # 4.0, 0.25
    if seek is not None:
        if seek < 0 or seek != seek or seek > 1e9:
            raise ValueError(f"seek position {seek!r} is not a number of seconds >= 0")
        headers.append(("Range", f"npt={int(seek)}-"))
    elif scale is None:
        headers.append(("Range", "npt=now-"))
    return _body("PLAY RTSP/1.0", cseq, headers)


def pause(cseq: int) -> bytes:
    return _body("PAUSE RTSP/1.0", cseq, [("PauseTime", "now")])


def _number(text: str) -> float | None:
    text = text.strip()
    if not text or len(text) > 20:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def parse(body: bytes | str) -> MansRtsp:
    """One MANSRTSP body; :class:`MansRtspError` when it is not one."""
    if isinstance(body, (bytes, bytearray)):
        if len(body) > MAX_BODY:
            raise MansRtspError(f"a MANSRTSP body of {len(body)} bytes")
        text = bytes(body).decode("utf-8", "replace")
    else:
        text = body[:MAX_BODY]
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        raise MansRtspError("an empty MANSRTSP body")
    words = lines[0].split(None, 2)
    method, status, reason = "", 0, ""
    if words and words[0].upper().endswith("RTSP/1.0") and len(words) >= 2:
        if not (words[1].isascii() and words[1].isdigit() and len(words[1]) == 3):
            raise MansRtspError(f"status {words[1][:10]!r} is not three digits")
        status, reason = int(words[1]), words[2] if len(words) > 2 else ""
    elif len(words) >= 2 and words[0].upper() in METHODS and words[1].upper() in ("RTSP/1.0", "MANSRTSP/1.0"):
        method = words[0].upper()
    else:
        raise MansRtspError(f"start line {lines[0][:40]!r} is neither a request nor an answer")
    cseq: int | None = None
    scale = range_start = None
    range_now = False
    pause_time = ""
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise MansRtspError(f"header line {line[:40]!r} has no colon")
        name, value = name.strip().lower(), value.strip()
        if name == "cseq":
            if not (value.isascii() and value.isdigit() and len(value) <= 10):
                raise MansRtspError(f"CSeq {value[:20]!r} is not a number")
            cseq = int(value)
        elif name == "scale":
            scale = _number(value)
            if scale is None:
                raise MansRtspError(f"Scale {value[:20]!r} is not a number")
        elif name == "range":
            spec = value.lower().replace(" ", "")
            if not spec.startswith("npt="):
                raise MansRtspError(f"Range {value[:30]!r} is not npt=")
            first = spec[4:].split("-", 1)[0]
            if first == "now":
                range_now = True
            else:
                range_start = _number(first)
                if range_start is None or range_start < 0:
                    raise MansRtspError(f"Range {value[:30]!r} has no start")
        elif name == "pausetime":
            pause_time = value[:40]
    if cseq is None:
        raise MansRtspError("no CSeq")
    return MansRtsp(method, status, cseq, scale, range_start, range_now, pause_time, reason[:80])
