"""RTSP header values and URLs, sans-IO: Transport, Session, Range, RTP-Info, and stream names.

Owns: reading and writing the structured headers a server needs (RFC 2326 sections 12.29, 12.33,
12.37, 12.39) and splitting a request URI into stream name and track control. It may not do I/O or
import trio or the rest of the package; a peer's bad value raises ``RemoteProtocolError`` with the
status to answer (400, 457, 461), our own bad value raises ``LocalProtocolError``.

Decisions:

- Transport: we serve ``RTP/AVP`` (= ``RTP/AVP/UDP``) with ``client_port=``, and ``RTP/AVP/TCP``
  (``interleaved=`` optional: the server picks channels when absent). ``unicast`` is assumed when
  neither ``unicast`` nor ``multicast`` is given (RFC 2326 says multicast, but no client means it);
  ``multicast``, other profiles (``RTP/SAVP``, ``RTP/AVPF``...) and UDP without ``client_port`` are
  unsupported alternatives. :func:`parse_transport` returns the supported alternatives in the
  client's order and raises 461 when none is left; a malformed value (``interleaved=x``) is 400.
  ``mode`` is ``"PLAY"``, ``"RECORD"`` or ``None`` when absent, so a session can tell "not said" from
  "said play" (ffmpeg sends ``mode=record``, RFC 2326 ``mode="RECORD"``; both are accepted).
- URLs: the stream name is the percent-decoded path, slashes inside kept (``live/cam1``), without
  the leading and trailing slashes and without a trailing control segment. A control segment is one
  of the ``controls`` the caller knows (those of the DESCRIBE or ANNOUNCE SDP), else one matching
  ``trackID=N``, ``streamid=N`` or ``stream=N`` (ours, ffmpeg's, GStreamer's). The query string is
  kept apart (``query``) and never part of the name. ``*`` (``OPTIONS *``) has an empty name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .protocol import LocalProtocolError, RemoteProtocolError

SUPPORTED_TRANSPORTS = "RTP/AVP/TCP;unicast;interleaved=N-M or RTP/AVP;unicast;client_port=N-M"


# ---------------------------------------------------------------------------------------------
# Transport


# A request from another pms-trio server of the cascade (SPEC section 6): answered only from
# streams live on the server it asks, never by pulling further.
CASCADE_HEADER = "X-Pms-Cascade"


@dataclass(frozen=True, slots=True)
class TransportSpec:
    lower: str = "UDP"  # "UDP" or "TCP" (the profile is always RTP/AVP)
    interleaved: tuple[int, int] | None = None
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    mode: str | None = None  # "PLAY", "RECORD" or None when the client did not say
    ssrc: int | None = None
    destination: str | None = None
    source: str | None = None

    @property
    def is_tcp(self) -> bool:
        return self.lower == "TCP"


_TRANSPORT_ID = re.compile(r"RTP/AVP(?:/(UDP|TCP))?", re.IGNORECASE)


def _pair(name: str, value: str | None, top: int) -> tuple[int, int]:
    parts = (value or "").split("-")
    if len(parts) > 2 or not all(p.isascii() and p.isdigit() and len(p) <= 5 for p in parts):
        raise RemoteProtocolError(f"Transport: {name}={value} is not N or N-M")
    first = int(parts[0])
    second = int(parts[1]) if len(parts) == 2 else first + 1
    if not (0 <= first <= top and 0 <= second <= top):
        raise RemoteProtocolError(f"Transport: {name}={value} is out of range (0-{top})")
    return first, second


def _one_transport(text: str) -> TransportSpec | str:
    """A spec, or the reason this alternative is unsupported."""
    fields = [f.strip() for f in text.split(";")]
    head = fields[0]
    match = _TRANSPORT_ID.fullmatch(head)
    if match is None:
        return f"{head or 'an empty transport'} is not RTP/AVP"
    lower = (match.group(1) or "UDP").upper()
    values: dict[str, str | None] = {}
    for field in fields[1:]:
        if not field:
            continue
        name, eq, value = field.partition("=")
        values[name.strip().lower()] = value.strip().strip('"') if eq else None
    if "multicast" in values:
        return f"{head};multicast (multicast is not served)"
    kw: dict[str, object] = {}
    if "interleaved" in values:
        kw["interleaved"] = _pair("interleaved", values["interleaved"], 255)
    for name in ("client_port", "server_port"):
        if name in values:
            kw[name] = _pair(name, values[name], 65535)
    if "mode" in values:
        mode = (values["mode"] or "").upper()
        if mode == "RECEIVE":  # RFC 2326 section 12.39 lists it next to RECORD
            mode = "RECORD"
        if mode not in ("PLAY", "RECORD"):
            raise RemoteProtocolError(f"Transport: mode={values['mode']} is not play or record")
        kw["mode"] = mode
    if values.get("ssrc"):
        ssrc = values["ssrc"] or ""
        if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", ssrc):
            raise RemoteProtocolError(f"Transport: ssrc={ssrc} is not 1-8 hex digits")
        kw["ssrc"] = int(ssrc, 16)
    for name in ("destination", "source"):
        if values.get(name):
            kw[name] = values[name]
    spec = TransportSpec(lower=lower, **kw)  # type: ignore[arg-type]
    if lower == "UDP" and spec.client_port is None:
        return f"{head} without client_port= (UDP needs the client's port pair)"
    return spec


def parse_transport(header: str | None) -> list[TransportSpec]:
    """The supported alternatives of a Transport header, in the client's order of preference."""
    if header is None or not header.strip():
        raise RemoteProtocolError(f"SETUP needs a Transport header ({SUPPORTED_TRANSPORTS})", 461)
    specs: list[TransportSpec] = []
    refused: list[str] = []
    for alternative in header.split(","):
        result = _one_transport(alternative.strip())
        if isinstance(result, str):
            refused.append(result)
        else:
            specs.append(result)
    if not specs:
        raise RemoteProtocolError(f"unsupported transport: {'; '.join(refused)}. This server offers "
                                  f"{SUPPORTED_TRANSPORTS}", 461)
    return specs


def format_transport(spec: TransportSpec) -> str:
    """The Transport header of a SETUP response (or request): profile, unicast, then parameters."""
    parts = ["RTP/AVP/TCP" if spec.is_tcp else "RTP/AVP", "unicast"]
    for name in ("destination", "source"):
        value = getattr(spec, name)
        if value is not None:
            if not value or any(c in value for c in ';,"\r\n') or value != value.strip():
                raise LocalProtocolError(f"Transport {name}={value!r}")
            parts.append(f"{name}={value}")
    for name, top in (("interleaved", 255), ("client_port", 65535), ("server_port", 65535)):
        pair = getattr(spec, name)
        if pair is not None:
            if not all(isinstance(v, int) and 0 <= v <= top for v in pair):
                raise LocalProtocolError(f"Transport {name}={pair!r}")
            parts.append(f"{name}={pair[0]}-{pair[1]}")
    if spec.ssrc is not None:
        if not 0 <= spec.ssrc <= 0xFFFFFFFF:
            raise LocalProtocolError(f"Transport ssrc={spec.ssrc!r}")
        parts.append(f"ssrc={spec.ssrc:08X}")
    if spec.mode is not None:
        if spec.mode not in ("PLAY", "RECORD"):
            raise LocalProtocolError(f"Transport mode={spec.mode!r}")
        parts.append(f"mode={spec.mode.lower()}")
    return ";".join(parts)


# ---------------------------------------------------------------------------------------------
# Session

_SESSION_ID = re.compile(r"[0-9A-Za-z$\-_.+]+")


def parse_session(header: str) -> tuple[str, int | None]:
    """``"12345678;timeout=60"`` -> ``("12345678", 60)``; the timeout is None when absent."""
    session_id, _, rest = header.partition(";")
    session_id = session_id.strip()
    if not _SESSION_ID.fullmatch(session_id):
        raise RemoteProtocolError(f"Session {header[:80]!r} is not a session id", 454)
    timeout = None
    for param in rest.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "timeout":
            value = value.strip()
            if not (value.isascii() and value.isdigit() and len(value) <= 9):
                raise RemoteProtocolError(f"Session timeout={value[:20]!r} is not a number of seconds")
            timeout = int(value)
    return session_id, timeout


def format_session(session_id: str, timeout: int | None = None) -> str:
    if not _SESSION_ID.fullmatch(session_id):
        raise LocalProtocolError(f"session id {session_id!r}")
    return session_id if timeout is None else f"{session_id};timeout={int(timeout)}"


# ---------------------------------------------------------------------------------------------
# Range (npt only)


@dataclass(frozen=True, slots=True)
class NptRange:
    start: float | None  # None = "now" (a live stream's current position)
    end: float | None = None  # None = open-ended


_NPT_TIME = re.compile(r"now|\d+(?:\.\d*)?|\d+:\d{1,2}:\d{1,2}(?:\.\d*)?")


def _npt_seconds(text: str) -> float | None:
    if not _NPT_TIME.fullmatch(text):
        raise RemoteProtocolError(f"Range: {text[:40]!r} is not an npt time", 457)
    if text == "now":
        return None
    if ":" in text:
        h, m, s = text.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    return float(text)


def parse_range(header: str) -> NptRange:
    """``npt=10-``, ``npt=now-``, ``npt=0.000-12.5``, ``npt=00:01:02.5-``; other units are 457."""
    value = header.split(";")[0].strip()  # ";time=..." is ignored
    unit, eq, span = value.partition("=")
    if not eq or unit.strip().lower() != "npt":
        raise RemoteProtocolError(f"Range {header[:60]!r}: only npt ranges are served", 457)
    start, dash, end = span.strip().partition("-")
    if not dash:
        raise RemoteProtocolError(f"Range {header[:60]!r} has no '-'", 457)
    first = _npt_seconds(start.strip()) if start.strip() else 0.0
    last = _npt_seconds(end.strip()) if end.strip() else None
    if first is not None and last is not None and last < first:
        raise RemoteProtocolError(f"Range {header[:60]!r} ends before it starts", 457)
    return NptRange(first, last)


def format_range(start: float | None = 0.0, end: float | None = None) -> str:
    first = "now" if start is None else f"{start:.3f}"
    return f"npt={first}-" + ("" if end is None else f"{end:.3f}")


# ---------------------------------------------------------------------------------------------
# RTP-Info


@dataclass(frozen=True, slots=True)
class RtpInfo:
    url: str
    seq: int | None = None
    rtptime: int | None = None


def format_rtp_info(entries: Iterable[RtpInfo]) -> str:
    """``url=...;seq=N;rtptime=T`` per track, comma-separated (RFC 2326 section 12.33)."""
    parts = []
    for entry in entries:
        if not entry.url or any(c in entry.url for c in ",; \r\n"):
            raise LocalProtocolError(f"RTP-Info url {entry.url!r}")
        text = f"url={entry.url}"
        if entry.seq is not None:
            if not 0 <= entry.seq <= 0xFFFF:
                raise LocalProtocolError(f"RTP-Info seq {entry.seq!r}")
            text += f";seq={entry.seq}"
        if entry.rtptime is not None:
            if not 0 <= entry.rtptime <= 0xFFFFFFFF:
                raise LocalProtocolError(f"RTP-Info rtptime {entry.rtptime!r}")
            text += f";rtptime={entry.rtptime}"
        parts.append(text)
    if not parts:
        raise LocalProtocolError("RTP-Info needs at least one track")
    return ",".join(parts)


def parse_rtp_info(header: str) -> list[RtpInfo]:
    """For the client side (tests). Bad numbers are 400."""
    out = []
    for item in header.split(","):
        values = {}
        for param in item.split(";"):
            name, _, value = param.strip().partition("=")
            values[name.lower()] = value.strip()
        if not values.get("url"):
            raise RemoteProtocolError(f"RTP-Info entry {item[:60]!r} has no url")
        numbers = {}
        for key in ("seq", "rtptime"):
            if key in values:
                if not (values[key].isascii() and values[key].isdigit() and len(values[key]) <= 10):
                    raise RemoteProtocolError(f"RTP-Info {key}={values[key][:20]!r} is not a number")
                numbers[key] = int(values[key])
        out.append(RtpInfo(values["url"], numbers.get("seq"), numbers.get("rtptime")))
    return out


# ---------------------------------------------------------------------------------------------
# URLs


@dataclass(frozen=True, slots=True)
class RtspUrl:
    host: str
    port: int | None
    stream: str  # "" for "*" or a bare "rtsp://host/"
    control: str | None  # "trackID=1", or None for the aggregate URL
    query: str = ""


_CONTROL = re.compile(r"(?:trackID|streamid|stream)=\d{1,3}", re.IGNORECASE)


def parse_url(uri: str, controls: Iterable[str] = ()) -> RtspUrl:
    """Split a request URI into host, port, stream name and track control (module docstring)."""
    if uri == "*":
        return RtspUrl("", None, "", None)
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as e:
        raise RemoteProtocolError(f"request URI {uri[:80]!r} is not a URL ({e})") from None
    if parts.scheme.lower() not in ("rtsp", "rtspt") or not parts.hostname:
        raise RemoteProtocolError(f"request URI {uri[:80]!r} is not rtsp://HOST[:PORT]/NAME")
    path = unquote(parts.path).strip("/")
    control = None
    for known in sorted((c.strip("/") for c in controls if c and c != "*"), key=len, reverse=True):
        if path.endswith("/" + known):
            control = known
            break
    if control is None:
        last = path.rsplit("/", 1)[-1]
        if _CONTROL.fullmatch(last):
            control = last
    if control is not None:
        path = path[:len(path) - len(control)].rstrip("/")
    return RtspUrl(parts.hostname, port, path, control, parts.query)


def track_index(control: str | None) -> int | None:
    """``trackID=3`` / ``streamid=3`` / ``stream=3`` -> 3; anything else None."""
    if control and _CONTROL.fullmatch(control):
        return int(control.partition("=")[2])
    return None
