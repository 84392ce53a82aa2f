"""SDP for RTSP, sans-IO: the DESCRIBE answer we build and the ANNOUNCE offer a publisher sends.

Owns: :func:`describe_sdp` (track descriptions -> SDP text) and :func:`parse_announce_sdp` /
:func:`parse_describe_sdp` (SDP text -> track descriptions), which use the same dict shape, so an
announced stream can be described back. It may not do I/O or import trio or the rest of the package
(the WebRTC SDP lives in the Rust core; this is the much smaller RTSP dialect: one payload type
per ``m=`` line, ``a=control`` per track).

A track description is a dict:

- ``kind``: ``"video"`` or ``"audio"``; ``codec``: ``H264``, ``H265``, ``VP8``, ``Opus``, ``PCMA``,
  ``PCMU`` or ``AAC`` (case-insensitive in, canonical out); ``payload_type``: 0-127;
  ``clock_rate``: Hz (defaults per codec; AAC needs it); ``channels``: audio channels;
  ``fmtp``: extra ``a=fmtp`` parameters as text (``"packetization-mode=1"``) or None;
  ``control``: ``trackID=N`` (describe: defaults to the track's index).
- H.264: ``sps``, ``pps`` (NAL units, with or without an Annex B start code). ``profile-level-id``
  comes from SPS bytes 1-3 and ``sprop-parameter-sets`` from both; they override the same keys in
  ``fmtp``, since the server passes the freshest parameter sets it has.
- H.265: ``vps``, ``sps``, ``pps`` -> ``sprop-vps``/``sprop-sps``/``sprop-pps``.
- AAC (``MPEG4-GENERIC``, AAC-hbr): ``config`` (AudioSpecificConfig bytes; computed for AAC-LC from
  the rate and channels when absent).

:func:`parse_announce_sdp` raises :class:`SdpError` with ``status_hint`` 400 for SDP it cannot read
(not ``v=0``, a malformed line, a track without ``a=control``, bad base64/hex) and 415 for a track
it cannot carry (another codec or profile, ``m=application``, AAC without ``config``): the whole
ANNOUNCE is refused, naming the track, rather than publishing half a stream. An absolute control URL
is reduced to its last path segment, the form SETUP URLs are matched against (``control_uri`` keeps
it as written). :func:`parse_describe_sdp` reads a DESCRIBE answer as a client (a cascade pull):
the same rules, except that a track it cannot carry is left out instead of refusing the stream.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

TOOL = "pms-trio"

# canonical name -> (kind, rtpmap encoding name, default clock rate, default channels)
CODECS: dict[str, tuple[str, str, int | None, int | None]] = {
    "H264": ("video", "H264", 90000, None),
    "H265": ("video", "H265", 90000, None),
    "VP8": ("video", "VP8", 90000, None),
    "Opus": ("audio", "opus", 48000, 2),
    "PCMA": ("audio", "PCMA", 8000, 1),
    "PCMU": ("audio", "PCMU", 8000, 1),
    "AAC": ("audio", "MPEG4-GENERIC", None, 2),
}
_BY_UPPER = {name.upper(): name for name in CODECS}
_BY_ENCODING = {enc.upper(): name for name, (_, enc, _, _) in CODECS.items()}
STATIC_PAYLOAD_TYPES = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1)}
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


class SdpError(Exception):
    """The peer's SDP is unusable; answer ``status_hint`` (400 or 415) with ``message``."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint


# ---------------------------------------------------------------------------------------------
# fmtp


def parse_fmtp(text: str | None) -> dict[str, str]:
    """``"a=1; b=2;flag"`` -> ``{"a": "1", "b": "2", "flag": ""}`` (keys lower-cased, order kept)."""
    out: dict[str, str] = {}
    for item in (text or "").split(";"):
        key, _, value = item.strip().partition("=")
        if key.strip():
            out[key.strip().lower()] = value.strip()
    return out


def _strip_start_code(nal: bytes) -> bytes:
    for code in (b"\x00\x00\x00\x01", b"\x00\x00\x01"):
        if nal.startswith(code):
            return nal[len(code):]
    return nal


def _b64(nal: bytes) -> str:
    return base64.b64encode(_strip_start_code(bytes(nal))).decode("ascii")


def aac_config(clock_rate: int, channels: int, object_type: int = 2) -> bytes:
    """An AudioSpecificConfig for AAC (LC by default) at a standard rate."""
    if clock_rate not in AAC_RATES or not 1 <= channels <= 7:
        raise ValueError(f"no AudioSpecificConfig for {clock_rate} Hz, {channels} channels")
    bits = (object_type << 11) | (AAC_RATES.index(clock_rate) << 7) | (channels << 3)
    return bits.to_bytes(2, "big")


# ---------------------------------------------------------------------------------------------
# DESCRIBE


def _canonical(codec: Any) -> str:
    name = _BY_UPPER.get(str(codec).upper()) or _BY_ENCODING.get(str(codec).upper())
    if name is None:
        raise ValueError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
    return name


def _media_lines(index: int, track: Mapping[str, Any]) -> list[str]:
    codec = _canonical(track.get("codec"))
    kind, encoding, default_rate, default_channels = CODECS[codec]
    pt = track.get("payload_type")
    if not isinstance(pt, int) or not 0 <= pt <= 127:
        raise ValueError(f"track {index}: payload_type {pt!r} is not 0-127")
    rate = track.get("clock_rate") or default_rate
    if not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"track {index}: clock_rate {rate!r}")
    channels: int = 2 if codec == "Opus" else (track.get("channels") or default_channels or 1)
    rtpmap = f"{encoding}/{rate}" + (f"/{channels}" if kind == "audio" and channels != 1 else "")
    params = parse_fmtp(track.get("fmtp"))
    if codec == "H264":
        params.setdefault("packetization-mode", "1")
        sps, pps = track.get("sps"), track.get("pps")
        if sps:
            body = _strip_start_code(bytes(sps))
            if len(body) >= 4:
                params["profile-level-id"] = body[1:4].hex()
        if sps and pps:
            params["sprop-parameter-sets"] = f"{_b64(sps)},{_b64(pps)}"
    elif codec == "H265":
        for key in ("vps", "sps", "pps"):
            if track.get(key):
                params[f"sprop-{key}"] = _b64(track[key])
    elif codec == "AAC":
        config = track.get("config") or aac_config(rate, channels)
        for key, value in (("streamtype", "5"), ("profile-level-id", "1"), ("mode", "AAC-hbr"),
                           ("sizelength", "13"), ("indexlength", "3"), ("indexdeltalength", "3")):
            params.setdefault(key, value)
        params["config"] = bytes(config).hex()
    control = track.get("control") or f"trackID={index}"
    if any(c in str(control) for c in "\r\n"):
        raise ValueError(f"track {index}: control {control!r}")
    lines = [f"m={kind} 0 RTP/AVP {pt}", f"a=rtpmap:{pt} {rtpmap}"]
    if params:
        lines.append(f"a=fmtp:{pt} " + ";".join(k if v == "" else f"{k}={v}" for k, v in params.items()))
    lines.append(f"a=control:{control}")
    return lines


def describe_sdp(stream: str, tracks: Iterable[Mapping[str, Any]], server_ip: str, *,
                 session_id: int = 0, tool: str = TOOL) -> str:
    """The DESCRIBE body for ``stream``: session-level ``a=control:*`` and ``a=range:npt=0-``, one
    ``m=`` section per track with ``a=control:trackID=N``. ``ValueError`` for tracks we cannot
    describe (our bug: the server only keeps tracks of the codecs above)."""
    family = "IP6" if ipaddress.ip_address(server_ip).version == 6 else "IP4"
    any_address = "::" if family == "IP6" else "0.0.0.0"
    name = re.sub(r"[\x00-\x1f\x7f]", " ", stream) or "-"
    lines = ["v=0", f"o=- {int(session_id)} 1 IN {family} {server_ip}", f"s={name}",
             f"c=IN {family} {any_address}", "t=0 0", f"a=tool:{tool}", "a=range:npt=0-", "a=control:*"]
    count = 0
    for index, track in enumerate(tracks):
        lines += _media_lines(index, track)
        count += 1
    if not count:
        raise ValueError("a stream to describe has at least one track")
    return "\r\n".join(lines) + "\r\n"


# ---------------------------------------------------------------------------------------------
# ANNOUNCE

_LINE = re.compile(r"([a-z])=(.*)")
_MEDIA = re.compile(r"(\S+) (\d+)(?:/\d+)? (\S+)((?: \S+)+)")
_RTPMAP = re.compile(r"(\d{1,3}) ([^/\s]+)/(\d{1,6})(?:/(\d{1,2}))?")


def _control(value: str, index: int) -> str:
    value = value.strip()
    if value.lower().startswith(("rtsp://", "rtspt://")):
        value = unquote(urlsplit(value).path).strip("/").rsplit("/", 1)[-1]
    if not value or value == "*":
        raise SdpError(f"track {index}: a=control:{value} does not name a track")
    return value


def _nals(text: str, index: int, what: str) -> list[bytes]:
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(base64.b64decode(item + "=" * (-len(item) % 4), validate=True))
        except (binascii.Error, ValueError):
            raise SdpError(f"track {index}: {what} is not base64: {item[:40]!r}") from None
    return [n for n in out if n]


def _track(index: int, media: str, proto: str, pt_text: str, attrs: list[tuple[str, str]]) -> dict[str, Any]:
    if media not in ("video", "audio"):
        raise SdpError(f"track {index}: m={media} is not served (video and audio only)", 415)
    if proto.upper() not in ("RTP/AVP", "RTP/AVPF"):
        raise SdpError(f"track {index}: transport {proto} is not RTP/AVP", 415)
    pt = int(pt_text) if pt_text.isdigit() and len(pt_text) <= 3 else -1
    if not 0 <= pt <= 127:
        raise SdpError(f"track {index}: payload type {pt_text[:10]!r} is not 0-127")
    rtpmap = fmtp = control = control_uri = None
    for key, value in attrs:
        if key == "rtpmap" and value.split(" ", 1)[0] == str(pt):
            m = _RTPMAP.fullmatch(value.strip())
            if m is None:
                raise SdpError(f"track {index}: a=rtpmap:{value[:60]} is not PT NAME/RATE[/CHANNELS]")
            rtpmap = (m.group(2), int(m.group(3)), int(m.group(4)) if m.group(4) else None)
        elif key == "fmtp" and value.split(" ", 1)[0] == str(pt):
            fmtp = value.partition(" ")[2].strip()
        elif key == "control":
            control = _control(value, index)
            control_uri = value.strip()
    if rtpmap is None:
        if pt not in STATIC_PAYLOAD_TYPES:
            raise SdpError(f"track {index}: dynamic payload type {pt} has no a=rtpmap")
        rtpmap = STATIC_PAYLOAD_TYPES[pt]
    if control is None:
        raise SdpError(f"track {index}: no a=control (SETUP could not name it)")
    encoding, rate, channels = rtpmap
    codec = _BY_ENCODING.get(encoding.upper())
    if codec is None or CODECS[codec][0] != media or rate <= 0:
        raise SdpError(f"track {index}: {media} codec {encoding}/{rate} is not served "
                       f"(served: {', '.join(CODECS)})", 415)
    params = parse_fmtp(fmtp)
    track: dict[str, Any] = {"kind": media, "codec": codec, "payload_type": pt, "clock_rate": rate,
                             "channels": channels if media == "audio" else None, "fmtp": fmtp,
                             "control": control, "control_uri": control_uri}
    if media == "audio" and channels is None:
        track["channels"] = 2 if codec == "Opus" else 1
    if codec == "H264":
        sps = pps = None
        for nal in _nals(params.get("sprop-parameter-sets", ""), index, "sprop-parameter-sets"):
            nal_type = nal[0] & 0x1F
            if nal_type == 7 and sps is None:
                sps = nal
            elif nal_type == 8 and pps is None:
                pps = nal
        track.update(sps=sps, pps=pps)
        track["profile_level_id"] = (sps[1:4].hex() if sps is not None and len(sps) >= 4
                                     else params.get("profile-level-id", "").lower() or None)
    elif codec == "H265":
        for key in ("vps", "sps", "pps"):
            nals = _nals(params.get(f"sprop-{key}", ""), index, f"sprop-{key}")
            track[key] = nals[0] if nals else None
    elif codec == "AAC":
        if params.get("mode", "").lower() not in ("aac-hbr", "aac-lbr"):
            raise SdpError(f"track {index}: MPEG4-GENERIC mode={params.get('mode', '')[:20]} is not "
                           f"AAC-hbr or AAC-lbr", 415)
        try:
            config = bytes.fromhex(params.get("config", ""))
        except ValueError:
            raise SdpError(f"track {index}: AAC config={params.get('config', '')[:40]!r} is not hex") from None
        if not config:
            raise SdpError(f"track {index}: AAC without config= (the decoder needs it)", 415)
        track["config"] = config
    return track


def _sections(text: str | bytes) -> list[tuple[str, list[tuple[str, str]]]]:
    """The ``m=`` sections of an SDP: (media line, its attributes)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("the SDP is not UTF-8 text") from None
    lines = [line.strip() for line in re.split(r"\r?\n|\r", text) if line.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError("not an SDP: the body does not start with v=0")
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for number, line in enumerate(lines, 1):
        m = _LINE.fullmatch(line)
        if m is None:
            raise SdpError(f"SDP line {number} is not type=value: {line[:60]!r}")
        kind, value = m.groups()
        if kind == "m":
            sections.append((value, []))
        elif kind == "a" and sections:
            key, _, rest = value.partition(":")
            sections[-1][1].append((key.strip().lower(), rest.strip()))
    if not sections:
        raise SdpError("the SDP has no m= line (no tracks)")
    return sections


def _section_track(index: int, media_line: str, attrs: list[tuple[str, str]]) -> dict[str, Any]:
    m = _MEDIA.fullmatch(media_line.strip())
    if m is None:
        raise SdpError(f"track {index}: m={media_line[:60]} is not MEDIA PORT PROTO FORMAT")
    return _track(index, m.group(1), m.group(3), m.group(4).split()[0], attrs)


def _check_controls(tracks: list[dict[str, Any]]) -> None:
    controls = [t["control"] for t in tracks]
    if len(set(controls)) != len(controls):
        raise SdpError(f"two tracks share a control ({', '.join(controls)})")


def parse_announce_sdp(text: str | bytes) -> list[dict[str, Any]]:
    """The tracks of a publisher's SDP (see the module docstring for what is refused)."""
    tracks = [_section_track(i, media, attrs) for i, (media, attrs) in enumerate(_sections(text))]
    _check_controls(tracks)
    return tracks


def parse_describe_sdp(text: str | bytes) -> tuple[list[dict[str, Any]], list[str]]:
    """The tracks of a server's DESCRIBE answer, as a client (a pull) reads it: like
    :func:`parse_announce_sdp`, but a track we do not serve (another codec or media, status 415) is
    left out rather than refusing the whole stream: returns (the tracks we can take, why each other
    one was left out). Each track keeps ``control_uri``, its ``a=control`` as written, for SETUP.
    An SDP with no track we can take is an :class:`SdpError` 415 naming them all."""
    tracks: list[dict[str, Any]] = []
    skipped: list[str] = []
    for index, (media, attrs) in enumerate(_sections(text)):
        try:
            tracks.append(_section_track(index, media, attrs))
        except SdpError as e:
            if e.status_hint != 415:
                raise
            skipped.append(str(e))
    if not tracks:
        raise SdpError("no track we can take: " + "; ".join(skipped), 415)
    _check_controls(tracks)
    return tracks, skipped
