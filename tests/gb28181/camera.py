"""A GB28181 camera/NVR simulator for tests (asyncio, stdlib + PyAV through ``psmux``).

A SIP user agent written here, independent of the server's SIP stack (its own tiny parser and
writer), over UDP or TCP:

- REGISTER with digest (MD5, qop=auth when offered; the ``uri`` is the Request-URI), Expires 0;
- Keepalive MESSAGEs; answers Catalog queries with several Response MESSAGEs (``catalog_parts``,
  each sent after the 200 of the previous one), DeviceInfo queries, and records DeviceControl
  commands (``ptz_commands``: the PTZCmd hex strings received, ``controls``: every body);
- answers INVITE with its own SDP (``a=sendonly``, ``y=`` the offer's SSRC), waits for the ACK,
  then sends media: PS over RTP (``psmux``: one pack per frame, system header + PSM on each IDR)
  encoded by PyAV (libx264 / libx265) from a solid colour ``colour``, in real time (``fps``),
  with ``audio`` (``"aac"``: ADTS AAC-LC mono at ``aac_rate``; ``"g711a"``: G.711 A-law; of a
  continuous 440 Hz tone, in the pack of the video frame it plays with; default none),
  over TCP (RFC 4571 2-byte length; the camera connects for ``tcp-passive`` offers, listens for
  ``tcp-active``) or UDP; BYE from either side stops it; ``media_stop()`` stops sending without
  BYE (the server must notice);
- everything received is in ``requests`` (method, headers, body) for assertions.

Every wait is bounded (``asyncio.wait_for``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import struct
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import av
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psmux  # noqa: E402

SERVER_ID = "34020000002000000001"
REALM = "3402000000"


# ------------------------------------------------------------------------------------------
# SIP text


@dataclass
class Msg:
    start: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def h(self, name: str, default: str = "") -> str:
        short = {"via": "v", "from": "f", "to": "t", "call-id": "i", "cseq": "", "contact": "m",
                 "content-type": "c", "content-length": "l"}.get(name.lower(), "")
        for k, v in self.headers:
            if k.lower() == name.lower() or (short and k.lower() == short):
                return v
        return default

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def is_response(self) -> bool:
        return self.start.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.start.split()[1]) if self.is_response else 0

    @property
    def method(self) -> str:
        return self.start.split()[0] if not self.is_response else self.cseq[1]

    @property
    def cseq(self) -> tuple[int, str]:
        n, m = self.h("CSeq").split()
        return int(n), m

    def encode(self) -> bytes:
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(self.body))))
        text = self.start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        return text.encode("utf-8") + self.body


def parse(data: bytes) -> Msg:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    msg = Msg(lines[0], headers)
    length = msg.h("Content-Length")
    msg.body = body[: int(length)] if length.isdigit() else body
    return msg


def tag_of(value: str) -> str:
    m = re.search(r";tag=([^;>\s]+)", value)
    return m.group(1) if m else ""


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------------
# Media


def encode_solid(codec: str, colour: tuple[int, int, int], frames: int, fps: int, gop: int,
                 size: tuple[int, int] = (320, 240)) -> list[psmux.AccessUnit]:
    """``frames`` frames of one colour, libx264/libx265, an IDR every ``gop`` frames."""
    name = {"h264": "libx264", "hevc": "libx265"}[codec]
    ctx = av.CodecContext.create(name, "w")
    ctx.width, ctx.height = size
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.gop_size = gop
    extra = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
    if codec == "h264":
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": extra}
    else:
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency",
                       "x265-params": extra + ":repeat-headers=1:log-level=error"}
    arr = np.empty((size[1], size[0], 3), dtype=np.uint8)
    arr[:] = colour
    out: list[psmux.AccessUnit] = []
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = ctx.time_base
        for p in ctx.encode(frame):
            out.append(psmux.AccessUnit(int(p.pts) * psmux.CLOCK // fps, bytes(p), bool(p.is_keyframe)))
    for p in ctx.encode(None):
        out.append(psmux.AccessUnit(int(p.pts) * psmux.CLOCK // fps, bytes(p), bool(p.is_keyframe)))
    return out


@dataclass
class Session:
    call_id: str
    local_tag: str
    remote_tag: str
    remote_uri: str
    local_uri: str
    ssrc: int
    media_ip: str
    media_port: int
    transport: str  # tcp-passive (we connect) | tcp-active (we listen) | udp
    cseq: int = 1
    task: asyncio.Task[None] | None = None
    listener: asyncio.base_events.Server | None = None
    listen_port: int = 0
    packets_sent: int = 0
    ended_by: str = ""


@dataclass
class Camera:
    host: str
    port: int
    device_id: str = "34020000001320000001"
    password: str = ""
    transport: str = "udp"  # SIP transport
    channels: list[str] = field(default_factory=lambda: ["34020000001310000001"])
    catalog_parts: int = 1
    sum_num: int | None = None  # None: len(channels); bigger: a SumNum that never arrives
    codec: str = "h264"
    colour: tuple[int, int, int] = (0, 200, 0)
    fps: int = 25
    audio: str | None = None  # None, "aac" or "g711a" (psmux.audio_kind)
    aac_rate: int = 16000
    answer_invites: bool = True
    auto_media: bool = True
    bind_host: str = "127.0.0.1"  # another loopback address (127.0.0.2) is another source
    qop: bool = False  # answer with qop=auth (nc, cnonce) even when the challenge does not offer it
    device_name: str = "SimCam"  # DeviceInfo's DeviceName (sent in GB2312, XML-escaped)
    channel_names: dict[str, str] = field(default_factory=dict)  # Catalog Name by channel id; else 通道N

    requests: list[Msg] = field(default_factory=list)
    ptz_commands: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    sessions: dict[str, Session] = field(default_factory=dict)
    byes_received: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pending: dict[tuple[str, int], asyncio.Future[Msg]] = {}
        self._cseq = 1
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.local = ("127.0.0.1", 0)
        self._media_cache: dict[str, list[psmux.AccessUnit]] = {}
        self.got_request = asyncio.Event()

    # -- connection

    async def start(self) -> Camera:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            cam = self

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    cam._received(data)

            self._udp, _ = await loop.create_datagram_endpoint(Proto, local_addr=(self.bind_host, 0),
                                                               remote_addr=(self.host, self.port))
            self.local = self._udp.get_extra_info("sockname")[:2]
        else:
            reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, local_addr=(self.bind_host, 0)), 5)
            self.local = self._writer.get_extra_info("sockname")[:2]
            self._reader_task = asyncio.create_task(self._tcp_reader(reader))
        return self

    async def close(self) -> None:
        for s in list(self.sessions.values()):
            await self._stop_media(s)
        for t in list(self._tasks):
            t.cancel()
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()

    async def _tcp_reader(self, reader: asyncio.StreamReader) -> None:
        buf = b""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                length = int(m.group(1)) if m else 0
                if len(rest) < length:
                    break
                self._received(head + b"\r\n\r\n" + rest[:length])
                buf = rest[length:]

    def send_raw(self, data: bytes) -> None:
        if self._udp is not None:
            self._udp.sendto(data)
        elif self._writer is not None:
            self._writer.write(data)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- receiving

    def _received(self, data: bytes) -> None:
        try:
            msg = parse(data)
        except (ValueError, IndexError):
            return
        if msg.is_response:
            key = (msg.h("Call-ID"), msg.cseq[0])
            fut = self._pending.get(key)
            if fut is not None and not fut.done() and msg.status >= 200:
                fut.set_result(msg)
            return
        self.requests.append(msg)
        self.got_request.set()
        method = msg.start.split()[0]
        if method == "MESSAGE":
            self._on_message(msg)
        elif method == "INVITE":
            self._on_invite(msg)
        elif method == "ACK":
            s = self.sessions.get(msg.h("Call-ID"))
            if s is not None and s.task is None and self.auto_media and s.transport != "tcp-active":
                s.task = asyncio.create_task(self._media(s))  # tcp-active: the server connects to us
        elif method == "BYE":
            s = self.sessions.pop(msg.h("Call-ID"), None)
            self.byes_received.append(msg.h("Call-ID"))
            self.reply(msg, 200 if s is not None else 481)
            if s is not None:
                s.ended_by = "server"
                self._spawn(self._stop_media(s))
        else:
            self.reply(msg, 200)

    def reply(self, request: Msg, status: int, reason: str = "", body: bytes = b"",
              extra: list[tuple[str, str]] | None = None) -> None:
        to = request.h("To")
        if status != 100 and not tag_of(to):
            to += f";tag={secrets.token_hex(4)}"
        headers = [("Via", v) for v in request.all("Via") or [request.h("Via")]]
        headers += [("From", request.h("From")), ("To", to), ("Call-ID", request.h("Call-ID")),
                    ("CSeq", request.h("CSeq")), ("User-Agent", "IP Camera")]
        headers += extra or []
        self.send_raw(Msg(f"SIP/2.0 {status} {reason or 'OK'}", headers, body).encode())

    def _on_message(self, msg: Msg) -> None:
        body = msg.body.decode("gb2312", "replace")
        self.reply(msg, 200)
        cmd = re.search(r"<CmdType>(\w+)</CmdType>", body)
        sn = re.search(r"<SN>(\d+)</SN>", body)
        kind = cmd.group(1) if cmd else ""
        if kind == "Catalog":
            self._spawn(self._send_catalog(int(sn.group(1)) if sn else 1))
        elif kind == "DeviceInfo":
            doc = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Response>\r\n<CmdType>DeviceInfo</CmdType>\r\n'
                   f"<SN>{sn.group(1) if sn else 1}</SN>\r\n<DeviceID>{self.device_id}</DeviceID>\r\n"
                   f"<DeviceName>{xml_escape(self.device_name)}</DeviceName>\r\n<Result>OK</Result>\r\n<Manufacturer>pms-tests"
                   f"</Manufacturer>\r\n<Model>sim-1</Model>\r\n<Firmware>V1.0</Firmware>\r\n<Channel>"
                   f"{len(self.channels)}</Channel>\r\n</Response>\r\n")
            self._spawn(self.message(doc.encode("gb2312")))
        elif kind == "DeviceControl":
            self.controls.append(body)
            ptz = re.search(r"<PTZCmd>([0-9A-Fa-f]+)</PTZCmd>", body)
            if ptz:
                self.ptz_commands.append(ptz.group(1).upper())

    # -- requests we send

    def _request(self, method: str, body: bytes = b"", content_type: str = "",
                 extra: list[tuple[str, str]] | None = None, call_id: str | None = None,
                 from_tag: str | None = None) -> Msg:
        self._cseq += 1
        host, port = self.local
        via = f"SIP/2.0/{self.transport.upper()} {host}:{port};rport;branch=z9hG4bK{secrets.token_hex(8)}"
        headers = [("Via", via), ("From", f"<sip:{self.device_id}@{REALM}>;tag={from_tag or secrets.token_hex(4)}"),
                   ("To", f"<sip:{self.device_id}@{REALM}>" if method == "REGISTER" else f"<sip:{SERVER_ID}@{REALM}>"),
                   ("Call-ID", call_id or secrets.token_hex(10)), ("CSeq", f"{self._cseq} {method}"),
                   ("Max-Forwards", "70"), ("User-Agent", "IP Camera")]
        headers += extra or []
        if content_type:
            headers.append(("Content-Type", content_type))
        uri = f"sip:{SERVER_ID}@{REALM}"
        return Msg(f"{method} {uri} SIP/2.0", headers, body)

    async def send_request(self, msg: Msg, timeout: float = 5.0) -> Msg:
        key = (msg.h("Call-ID"), msg.cseq[0])
        fut: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        try:
            data = msg.encode()
            for _attempt in range(4 if self.transport == "udp" else 1):  # our own Timer E, short
                self.send_raw(data)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), timeout / 4 if self.transport == "udp"
                                                  else timeout)
                except TimeoutError:
                    continue
            raise TimeoutError(f"no final answer to {msg.start}")
        finally:
            self._pending.pop(key, None)

    async def register(self, password: str | None = None, expires: int = 3600, *,
                       call_id: str | None = None) -> Msg:
        """REGISTER; answers a 401 with the digest of ``password`` (default: ours). Returns the
        final response to the last REGISTER sent."""
        call_id = call_id or secrets.token_hex(10)
        tag = secrets.token_hex(4)
        contact = [("Contact", f"<sip:{self.device_id}@{self.local[0]}:{self.local[1]}>"), ("Expires", str(expires))]
        first = await self.send_request(self._request("REGISTER", extra=contact, call_id=call_id, from_tag=tag))
        if first.status != 401:
            return first
        challenge = first.h("WWW-Authenticate")
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        uri = f"sip:{SERVER_ID}@{REALM}"
        pw = self.password if password is None else password
        ha1 = md5(f"{self.device_id}:{params['realm']}:{pw}")
        ha2 = md5(f"REGISTER:{uri}")
        auth = (f'Digest username="{self.device_id}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
                f'uri="{uri}", algorithm=MD5')
        if "qop" in params or self.qop:
            cnonce, nc = secrets.token_hex(4), "00000001"
            response = md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
            auth += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            response = md5(f"{ha1}:{params['nonce']}:{ha2}")
        auth += f', response="{response}"'
        if "opaque" in params:
            auth += f', opaque="{params["opaque"]}"'
        return await self.send_request(self._request("REGISTER", extra=[*contact, ("Authorization", auth)],
                                                     call_id=call_id, from_tag=tag))

    async def message(self, body: bytes, timeout: float = 5.0) -> Msg:
        return await self.send_request(self._request("MESSAGE", body, "Application/MANSCDP+xml"), timeout)

    async def keepalive(self, sn: int = 1) -> Msg:
        doc = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
               f"<SN>{sn}</SN>\r\n<DeviceID>{self.device_id}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n")
        return await self.message(doc.encode())

    async def _send_catalog(self, sn: int) -> None:
        parts = max(1, self.catalog_parts)
        chunks = [self.channels[i::parts] for i in range(parts)]
        total = self.sum_num if self.sum_num is not None else len(self.channels)
        for chunk in chunks:
            items = "".join(
                f"<Item>\r\n<DeviceID>{c}</DeviceID>\r\n<Name>{xml_escape(self.channel_names.get(c, '通道' + str(i + 1)))}</Name>\r\n<Manufacturer>pms-tests"
                f"</Manufacturer>\r\n<Model>sim-1</Model>\r\n<Owner>Owner</Owner>\r\n<CivilCode>3402000000"
                f"</CivilCode>\r\n<Address>Address</Address>\r\n<Parental>0</Parental>\r\n<ParentID>"
                f"{self.device_id}</ParentID>\r\n<SafetyWay>0</SafetyWay>\r\n<RegisterWay>1</RegisterWay>\r\n"
                f"<Secrecy>0</Secrecy>\r\n<Status>ON</Status>\r\n<Info>\r\n<PTZType>1</PTZType>\r\n</Info>\r\n"
                f"</Item>\r\n" for i, c in enumerate(chunk))
            doc = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Response>\r\n<CmdType>Catalog</CmdType>\r\n'
                   f"<SN>{sn}</SN>\r\n<DeviceID>{self.device_id}</DeviceID>\r\n<SumNum>{total}</SumNum>\r\n"
                   f'<DeviceList Num="{len(chunk)}">\r\n{items}</DeviceList>\r\n</Response>\r\n')
            answer = await self.message(doc.encode("gb2312"))
            assert answer.status == 200, answer.start

    # -- INVITE / media

    def _on_invite(self, msg: Msg) -> None:
        if not self.answer_invites:
            self.reply(msg, 486, "Busy Here")
            return
        sdp = msg.body.decode()
        c = re.search(r"(?m)^c=IN IP4 (\S+)", sdp)
        m = re.search(r"(?m)^m=video (\d+) (\S+)", sdp)
        y = re.search(r"(?m)^y=(\d+)", sdp)
        setup = re.search(r"(?m)^a=setup:(\w+)", sdp)
        if not (c and m and y):
            self.reply(msg, 488, "Not Acceptable Here")
            return
        transport = "udp" if m.group(2) == "RTP/AVP" else f"tcp-{setup.group(1) if setup else 'passive'}"
        channel = msg.start.split()[1].split(":")[1].split("@")[0]
        session = Session(msg.h("Call-ID"), secrets.token_hex(4), tag_of(msg.h("From")), msg.h("From"),
                          msg.h("To"), int(y.group(1)), c.group(1), int(m.group(1)), transport)
        self.sessions[session.call_id] = session
        self._spawn(self._answer_invite(msg, session, channel))

    async def _answer_invite(self, msg: Msg, s: Session, channel: str) -> None:
        self.reply(msg, 100, "Trying")
        host = self.local[0]
        port = 0
        if s.transport == "tcp-active":
            s.listener = await asyncio.start_server(lambda r, w: self._media_conn(s, w), "127.0.0.1", 0)
            port = s.listener.sockets[0].getsockname()[1]
        proto = "RTP/AVP" if s.transport == "udp" else "TCP/RTP/AVP"
        lines = ["v=0", f"o={channel} 0 0 IN IP4 {host}", "s=Play", f"c=IN IP4 {host}", "t=0 0",
                 f"m=video {port or 15060} {proto} 96", "a=sendonly", "a=rtpmap:96 PS/90000"]
        if s.transport != "udp":
            lines.append(f"a=setup:{'passive' if s.transport == 'tcp-active' else 'active'}")
            lines.append("a=connection:new")
        lines.append(f"y={s.ssrc:010d}")
        body = ("\r\n".join(lines) + "\r\n").encode()
        to = msg.h("To") + f";tag={s.local_tag}"
        headers = [("Via", v) for v in msg.all("Via") or [msg.h("Via")]]
        headers += [("From", msg.h("From")), ("To", to), ("Call-ID", msg.h("Call-ID")), ("CSeq", msg.h("CSeq")),
                    ("Contact", f"<sip:{channel}@{host}:{self.local[1]}>"), ("Content-Type", "APPLICATION/SDP"),
                    ("User-Agent", "IP Camera")]
        self.send_raw(Msg("SIP/2.0 200 OK", headers, body).encode())
        s.local_uri = to

    def _units(self) -> list[psmux.AccessUnit]:
        units = self._media_cache.get(self.codec)
        if units is None:
            units = self._media_cache[self.codec] = encode_solid(self.codec, self.colour, self.fps * 2,
                                                                 self.fps, self.fps)
        return units

    async def _media(self, s: Session) -> None:
        try:
            if s.transport == "udp":
                loop = asyncio.get_running_loop()
                udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                             remote_addr=(s.media_ip, s.media_port))
                try:
                    await self._pump(s, lambda p: udp.sendto(p), None)
                finally:
                    udp.close()
            else:
                _, writer = await asyncio.wait_for(asyncio.open_connection(s.media_ip, s.media_port), 5)
                try:
                    await self._pump(s, lambda p: writer.write(struct.pack(">H", len(p)) + p), writer)
                finally:
                    writer.close()
        except (OSError, ConnectionError):
            return

    def _media_conn(self, s: Session, writer: asyncio.StreamWriter) -> None:
        async def run() -> None:
            try:
                await self._pump(s, lambda p: writer.write(struct.pack(">H", len(p)) + p), writer)
            except (OSError, ConnectionError):
                pass
            finally:
                writer.close()

        if s.task is None or s.task.done():
            s.task = asyncio.create_task(run())

    async def _pump(self, s: Session, send: Any, writer: asyncio.StreamWriter | None,
                    max_seconds: float = 120.0) -> None:
        """Send the encoded frames again and again in real time, PTS continuing."""
        units = self._units()
        period = units[-1].pts + psmux.CLOCK // self.fps
        step = psmux.CLOCK // self.fps
        kind = psmux.audio_kind(self.audio)
        audio_type = psmux.AUDIO_TYPE[kind] if kind else None
        aac = psmux.AacTone(self.aac_rate, psmux.CLOCK) if kind == "aac" else None
        g711_per_frame = 8000 // self.fps
        loop = asyncio.get_running_loop()
        start = loop.time()
        seq = 0
        frame = 0
        for rep in range(int(max_seconds * self.fps / len(units)) + 1):
            shifted = [psmux.AccessUnit(u.pts + rep * period + psmux.CLOCK, u.data, u.keyframe) for u in units]
            for unit in shifted:
                audio: list[tuple[int, bytes]] = []
                if aac is not None:
                    audio = aac.until(unit.pts + step)
                elif kind == "g711a":
                    samples = psmux.tone(g711_per_frame, frame * g711_per_frame)
                    audio = [(unit.pts, psmux.alaw(samples))]
                ps = psmux.mux_frame(unit, self.codec, audio_type, audio)
                packets = psmux.rtp_packets(ps, s.ssrc, seq=seq)
                seq += len(packets)
                for p in packets:
                    send(p)
                s.packets_sent += len(packets)
                if writer is not None:
                    await writer.drain()
                frame += 1
                delay = start + frame / self.fps - loop.time()
                await asyncio.sleep(max(0.0, delay))

    async def _stop_media(self, s: Session) -> None:
        if s.task is not None:
            s.task.cancel()
            try:
                await s.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass
        if s.listener is not None:
            s.listener.close()

    async def media_stop(self) -> None:
        """Stop sending media without a BYE (a camera that just goes quiet)."""
        for s in self.sessions.values():
            task = s.task
            s.task = asyncio.create_task(asyncio.sleep(0))
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass

    async def bye(self, call_id: str | None = None) -> Msg:
        """The camera hangs up a session (the first one by default)."""
        s = self.sessions.pop(call_id or next(iter(self.sessions)))
        s.ended_by = "camera"
        await self._stop_media(s)
        self._cseq += 1
        host, port = self.local
        headers = [("Via", f"SIP/2.0/{self.transport.upper()} {host}:{port};rport;branch=z9hG4bK{secrets.token_hex(8)}"),
                   ("From", s.local_uri), ("To", s.remote_uri), ("Call-ID", s.call_id),
                   ("CSeq", f"{self._cseq} BYE"), ("Max-Forwards", "70")]
        return await self.send_request(Msg(f"BYE sip:{SERVER_ID}@{self.host}:{self.port} SIP/2.0", headers))

    async def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        """Wait (bounded) until ``predicate()`` is true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for _ in range(int(timeout / 0.05) + 2):
            if predicate():
                return
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"camera {self.device_id}: {what} not within {timeout} s")
