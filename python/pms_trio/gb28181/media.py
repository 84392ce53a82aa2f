"""GB28181 play helpers (SPEC section 7; standard annexes F and K), sans-IO.

Owns: the SSRC / ``y=`` value (:func:`make_ssrc`, :class:`SsrcAllocator`), the ``Subject`` header
(:func:`subject`), the INVITE SDP offer (:func:`invite_sdp`: TCP passive, TCP active or UDP) and the
reading of the camera's answer (:func:`parse_sdp_answer`). No I/O; nothing of the package.

- ``y=`` is 10 decimal digits: ``0`` live / ``1`` history, digits 4-8 of the SIP domain (realm or
  server ID; wvp and SRS use ``substring(3, 8)``), then a 4-digit sequence. As an RTP SSRC it is
  ``int(y)`` (at most 1999999999 < 2**32).
- The answer: the device's c= and m= say where its media comes from or where to connect (TCP
  active), ``a=setup`` is the device's role, ``y=`` its SSRC (kept as ours when missing; callers
  re-key when it differs), an ``RTP/AVP`` answer to a TCP offer means UDP, and an rtpmap of
  ``HIKVISION``/``DAHUA`` flags a vendor-private stream (not PS). Unreadable answers are
  :class:`SdpAnswerError` with 488.
"""

from __future__ import annotations

from dataclasses import dataclass

TRANSPORTS = ("tcp-passive", "tcp-active", "udp")


class SdpAnswerError(Exception):
    def __init__(self, message: str, status_hint: int = 488) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint


def make_ssrc(domain: str, sequence: int, *, history: bool = False) -> str:
    """``y=``: ``0|1`` + digits 4-8 of ``domain`` + ``sequence`` as 4 digits."""
    digits = "".join(c for c in domain if c.isdigit())
    if len(digits) < 8:
        raise ValueError(f"domain {domain!r} has fewer than 8 digits")
    return f"{1 if history else 0}{digits[3:8]}{sequence % 10000:04d}"


class SsrcAllocator:
    """Hands out unused sequences for one domain (wraps at 10000, skipping those in use)."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self._next = 1
        self._used: set[str] = set()

    def allocate(self, *, history: bool = False) -> str:
        for _ in range(10000):
            ssrc = make_ssrc(self.domain, self._next, history=history)
            self._next = self._next % 9999 + 1
            if ssrc not in self._used:
                self._used.add(ssrc)
                return ssrc
        raise RuntimeError("all 9999 SSRCs of this domain are in use")

    def release(self, ssrc: str) -> None:
        self._used.discard(ssrc)


def subject(channel_id: str, ssrc: str, server_id: str, receiver_stream: int = 0) -> str:
    """``Subject: <channelID>:<ssrc>,<serverID>:0`` (standard annex K: sender:stream, receiver:no.)."""
    return f"{channel_id}:{ssrc},{server_id}:{receiver_stream}"


def invite_sdp(*, server_id: str, media_ip: str, media_port: int, ssrc: str, transport: str = "tcp-passive",
               session: str = "Play", channel_id: str = "", times: tuple[int, int] | None = None,
               download_speed: int | None = None) -> bytes:
    """The platform's offer (wvp's shape, SPEC section 7); ends with CRLF (Hikvision needs it).

    Playback and download (standard 9.8, 9.9, annex F): ``session`` ``"Playback"``/``"Download"``
    adds ``u=CHANNEL:0`` and ``t=START END`` (UNIX seconds); a download ``a=downloadspeed:N``."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r} is not one of {TRANSPORTS}")
    proto = "RTP/AVP" if transport == "udp" else "TCP/RTP/AVP"
    lines = ["v=0", f"o={server_id} 0 0 IN IP4 {media_ip}", f"s={session}"]
    if times is not None:
        lines.append(f"u={channel_id}:0")
    lines += [f"c=IN IP4 {media_ip}", f"t={times[0]} {times[1]}" if times is not None else "t=0 0",
              f"m=video {media_port} {proto} 96 97 98 99", "a=recvonly", "a=rtpmap:96 PS/90000",
              "a=rtpmap:97 MPEG4/90000", "a=rtpmap:98 H264/90000", "a=rtpmap:99 H265/90000"]
    if transport != "udp":
        lines += [f"a=setup:{transport.split('-')[1]}", "a=connection:new"]
    if download_speed is not None:
        lines.append(f"a=downloadspeed:{int(download_speed)}")
    lines.append(f"y={ssrc}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


@dataclass(frozen=True, slots=True)
class SdpAnswer:
    ip: str
    port: int
    transport: str  # "tcp" or "udp"
    setup: str | None  # the device's a=setup: "active" (it connects), "passive", or None
    ssrc: str | None  # y=, None when absent
    rtpmap: tuple[tuple[int, str], ...] = ()
    direction: str | None = None
    vendor_private: bool = False

    @property
    def ssrc_value(self) -> int | None:
        return int(self.ssrc) if self.ssrc else None


def parse_sdp_answer(body: bytes | str) -> SdpAnswer:
    """The camera's answer (the first video m= section)."""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
    session_ip = media_ip = None
    port = None
    proto = ""
    setup = ssrc = direction = None
    rtpmap: list[tuple[int, str]] = []
    in_video = False
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        if kind == "m":
            parts = value.split()
            in_video = port is None and len(parts) >= 3 and parts[0].lower() == "video"
            if in_video:
                if not parts[1].split("/")[0].isdigit():
                    raise SdpAnswerError(f"m= port {parts[1][:10]!r} is not a number")
                port, proto = int(parts[1].split("/")[0]), parts[2].upper()
        elif kind == "c":
            parts = value.split()
            if len(parts) >= 3:
                if in_video:
                    media_ip = parts[2].split("/")[0]
                elif port is None:
                    session_ip = parts[2].split("/")[0]
        elif kind == "y":
            if value.isascii() and value.isdigit() and len(value) <= 10 and int(value) < 2 ** 32:
                ssrc = value
        elif kind == "a" and (in_video or port is None):
            name, _, arg = value.partition(":")
            name = name.lower()
            if name == "setup":
                setup = arg.strip().lower() or None
            elif name in ("sendonly", "recvonly", "sendrecv", "inactive"):
                direction = name
            elif name == "rtpmap":
                pt, _, codec = arg.strip().partition(" ")
                if pt.isdigit():
                    rtpmap.append((int(pt), codec.strip()))
    ip = media_ip or session_ip
    if port is None or not ip or not 0 <= port <= 65535:
        raise SdpAnswerError("the answer has no video m= line with a c= address")
    private = any(codec.upper().startswith(("HIKVISION", "DAHUA")) for _, codec in rtpmap)
    transport = "tcp" if proto.startswith("TCP") else "udp"
    return SdpAnswer(ip, port, transport, setup if transport == "tcp" else None, ssrc, tuple(rtpmap),
                     direction, private)
