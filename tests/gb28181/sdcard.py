"""The camera simulator with an SD card: recorded spans, RecordInfo answers, playback and download.

:class:`SdCamera` is :class:`camera.Camera` plus:

- ``records``: the recorded spans ``(start, end)`` in UNIX seconds; a RecordInfo query is answered
  with the spans that overlap it, in ``record_parts`` Response MESSAGEs (each after the 200 of the
  previous one), ``SumNum`` = the count (or ``record_sum_num``: a larger one never completes);
  times are the device clock, UTC+8, as the server set it at REGISTER.
- An INVITE with ``s=Playback`` or ``s=Download`` (``t=START END``, ``a=downloadspeed:N``) plays the
  span: H.264 at ``pb_fps`` frames per second, each frame's picture stamping its recording time
  (:func:`stamp_picture`: the UNIX second mod 65536 as 16 black/white blocks, read back with
  :func:`read_stamp`), PTS = 90 kHz recording time since the span's start (plus 1 s), sent at
  ``Scale`` (or the download speed) times real time. At the end: ``MediaStatus`` 121 in the
  dialog's Call-ID (unless ``send_eof`` is False), then it waits for the server's BYE.
- ``INFO`` with ``Application/MANSRTSP``: ``PAUSE`` stops sending, ``PLAY`` with ``Scale`` changes the
  rate (``ignore_scale``: it does not), ``Range: npt=now-`` resumes, ``npt=N-`` seeks to start + N
  (a new IDR). Every INFO body is kept in ``infos``; ``info_status`` answers them with another status.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import av
import numpy as np

import psmux
from camera import Camera, Msg, Session

ZONE = timezone(timedelta(hours=8))
WIDTH, HEIGHT = 320, 240


def device_time(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), ZONE).strftime("%Y-%m-%dT%H:%M:%S")


def from_device_time(text: str) -> int:
    return int(datetime.fromisoformat(text.strip()).replace(tzinfo=ZONE).timestamp())


def stamp_picture(second: int) -> np.ndarray:
    """An RGB picture whose 4x4 blocks are the 16 bits of ``second`` mod 65536 (MSB first)."""
    value = second % 65536
    img = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    bw, bh = WIDTH // 4, HEIGHT // 4
    for bit in range(16):
        if value >> (15 - bit) & 1:
            r, c = divmod(bit, 4)
            img[r * bh:(r + 1) * bh, c * bw:(c + 1) * bw] = 255
    return img


def read_stamp(img: np.ndarray) -> int:
    """The second :func:`stamp_picture` drew (mod 65536), from a decoded RGB picture of any size."""
    h, w = img.shape[:2]
    bw, bh = w / 4, h / 4
    value = 0
    for bit in range(16):
        r, c = divmod(bit, 4)
        y, x = int((r + 0.5) * bh), int((c + 0.5) * bw)
        patch = img[max(0, y - 4):y + 4, max(0, x - 4):x + 4].mean()
        value = value << 1 | (1 if patch > 128 else 0)
    return value


class StampEncoder:
    def __init__(self, fps: int) -> None:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = WIDTH, HEIGHT
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, fps)
        ctx.framerate = Fraction(fps, 1)
        ctx.gop_size = fps
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency",
                       "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:bframes=0"}
        self.ctx = ctx
        self.n = 0

    def encode(self, second: int) -> list[tuple[bytes, bool]]:
        frame = av.VideoFrame.from_ndarray(stamp_picture(second), format="rgb24").reformat(format="yuv420p")
        frame.pts = self.n
        frame.time_base = self.ctx.time_base
        self.n += 1
        return [(bytes(p), bool(p.is_keyframe)) for p in self.ctx.encode(frame)]


@dataclass
class Playback:
    session: Session
    kind: str  # Playback | Download
    start: int
    end: int
    scale: float = 1.0
    paused: bool = False
    seek_to: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    frames_sent: int = 0
    done: bool = False


@dataclass
class SdCamera(Camera):
    records: list[tuple[int, int]] = field(default_factory=list)
    record_parts: int = 2
    record_sum_num: int | None = None
    pb_fps: int = 10
    send_eof: bool = True
    ignore_scale: bool = False
    info_status: int = 200
    playbacks: dict[str, Playback] = field(default_factory=dict)
    infos: list[str] = field(default_factory=list)
    record_queries: list[str] = field(default_factory=list)

    # -- SIP

    def _received(self, data: bytes) -> None:
        if data.startswith(b"INFO "):
            from camera import parse
            msg = parse(data)
            self.requests.append(msg)
            self._on_info(msg)
            return
        super()._received(data)

    def _on_message(self, msg: Msg) -> None:
        body = msg.body.decode("gb2312", "replace")
        if "<CmdType>RecordInfo</CmdType>" in body and "<Query>" in body:
            self.reply(msg, 200)
            self.record_queries.append(body)
            self._spawn(self._send_records(body))
            return
        super()._on_message(msg)

    async def _send_records(self, query: str) -> None:
        def field_of(name: str) -> str:
            m = re.search(rf"<{name}>([^<]*)</{name}>", query)
            return m.group(1) if m else ""

        sn, channel = field_of("SN"), field_of("DeviceID")
        lo, hi = from_device_time(field_of("StartTime")), from_device_time(field_of("EndTime"))
        spans = [(a, b) for a, b in self.records if a < hi and b > lo]
        total = self.record_sum_num if self.record_sum_num is not None else len(spans)
        parts = max(1, self.record_parts)
        chunks = [spans[i::parts] for i in range(parts)] if spans else [[]]
        for chunk in chunks:
            items = "".join(
                f"<Item>\r\n<DeviceID>{channel}</DeviceID>\r\n<Name>SimCam</Name>\r\n<FilePath>/sd/{a}.mp4</FilePath>"
                f"\r\n<Address>SD card</Address>\r\n<StartTime>{device_time(a)}</StartTime>\r\n<EndTime>"
                f"{device_time(b)}</EndTime>\r\n<Secrecy>0</Secrecy>\r\n<Type>time</Type>\r\n</Item>\r\n"
                for a, b in chunk)
            doc = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Response>\r\n<CmdType>RecordInfo</CmdType>\r\n'
                   f"<SN>{sn}</SN>\r\n<DeviceID>{channel}</DeviceID>\r\n<Name>SimCam</Name>\r\n"
                   f"<SumNum>{total}</SumNum>\r\n<RecordList Num=\"{len(chunk)}\">\r\n{items}</RecordList>\r\n"
                   "</Response>\r\n")
            answer = await self.message(doc.encode("gb2312"))
            assert answer.status == 200, answer.start

    def _on_invite(self, msg: Msg) -> None:
        super()._on_invite(msg)
        sdp = msg.body.decode()
        s = self.sessions.get(msg.h("Call-ID"))
        kind = re.search(r"(?m)^s=(\w+)", sdp)
        times = re.search(r"(?m)^t=(\d+) (\d+)", sdp)
        if s is None or kind is None or kind.group(1) not in ("Playback", "Download") or times is None:
            return
        speed = re.search(r"(?m)^a=downloadspeed:(\d+)", sdp)
        pb = Playback(s, kind.group(1), int(times.group(1)), int(times.group(2)))
        if pb.kind == "Download" and speed:
            pb.scale = float(speed.group(1))
        self.playbacks[s.call_id] = pb

    def _on_info(self, msg: Msg) -> None:
        body = msg.body.decode("utf-8", "replace")
        self.infos.append(body)
        pb = self.playbacks.get(msg.h("Call-ID"))
        if pb is None:
            self.reply(msg, 481, "Call Does Not Exist")
            return
        if self.info_status != 200:
            self.reply(msg, self.info_status, "Refused")
            return
        self.reply(msg, 200)
        if body.startswith("PAUSE"):
            pb.paused = True
        elif body.startswith("PLAY"):
            scale = re.search(r"(?mi)^Scale:\s*([0-9.]+)", body)
            if scale and not self.ignore_scale:
                pb.scale = float(scale.group(1))
            seek = re.search(r"(?mi)^Range:\s*npt=(\d+(?:\.\d+)?)-", body)
            if seek:
                pb.seek_to = pb.start + float(seek.group(1))
            pb.paused = False
        pb.changed.set()

    # -- media

    async def _pump(self, s: Session, send: Any, writer: asyncio.StreamWriter | None,
                    max_seconds: float = 120.0) -> None:
        pb = self.playbacks.get(s.call_id)
        if pb is None:
            await super()._pump(s, send, writer, max_seconds)
            return
        loop = asyncio.get_running_loop()
        encoder = StampEncoder(self.pb_fps)
        t = float(pb.start)
        seq = 0
        due = loop.time()
        step = 1.0 / self.pb_fps
        while t < pb.end:
            if pb.paused:
                pb.changed.clear()
                await pb.changed.wait()
                due = loop.time()
                continue
            if pb.seek_to is not None:
                t, pb.seek_to = pb.seek_to, None
                encoder = StampEncoder(self.pb_fps)  # an IDR at the new place
            pts = int((t - pb.start + 1) * psmux.CLOCK)
            for data, key in encoder.encode(int(t)):
                ps = psmux.mux_frame(psmux.AccessUnit(pts, data, key), "h264")
                packets = psmux.rtp_packets(ps, s.ssrc, seq=seq)
                seq = (seq + len(packets)) % 65536
                for p in packets:
                    send(p)
                s.packets_sent += len(packets)
                pb.frames_sent += 1
            if writer is not None:
                await writer.drain()
            t += step
            due += step / pb.scale
            await asyncio.sleep(max(0.0, due - loop.time()))
        pb.done = True
        if self.send_eof:
            doc = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>MediaStatus</CmdType>\r\n'
                   f"<SN>99</SN>\r\n<DeviceID>{self.channels[0]}</DeviceID>\r\n<NotifyType>121</NotifyType>\r\n"
                   "</Notify>\r\n")
            request = self._request("MESSAGE", doc.encode(), "Application/MANSCDP+xml", call_id=s.call_id)
            await self.send_request(request)
        await asyncio.sleep(30)  # hold the connection until the BYE (the server closes it)
