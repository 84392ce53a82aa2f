"""A camera-like MPEG-PS muxer for GB28181 tests (stdlib + PyAV + numpy).

What real cameras send (shared/notes/gb28181.md section 7), unlike FFmpeg's MPEG-PS muxer
(which writes no PSM and uses stream id 0xE2):

- one pack header (ISO/IEC 13818-1 2.5.3.3, SCR = the frame's PTS) per video frame;
- on each IDR also the system header (2.5.3.5) and the PSM (2.5.4.1; stream_type 0x1B H.264 or
  0x24 H.265, 0x90 G.711A or 0x0F AAC for audio; CRC-32/MPEG-2 computed, though cameras often
  get it wrong);
- the access unit in PES 0xE0 with a PTS, cut into several PES of at most ~60 KiB, each with
  the same PTS, as cameras do with large IDRs;
- optionally audio of a 440 Hz tone in PES 0xC0 after the video, with a PTS (90 kHz):
  ``audio="g711a"`` (or ``True``): G.711 A-law, 8 kHz mono, one PES per video frame;
  ``audio="aac"``: AAC-LC mono (16 kHz by default, ``aac_rate``) encoded by PyAV's ``aac``
  encoder, one ADTS frame (7-byte header, no CRC; ISO/IEC 14496-3 1.A.2.2) per PES, each in the
  pack of the video frame it plays with (:class:`AacTone` keeps the tone continuous across
  calls, so a sender muxing frame by frame gets one unbroken stream).

`rtp_packets()` cuts the PS byte stream into RTP payloads of at most 1400 bytes regardless of
the PS structure, as cameras do, with the pack's 90 kHz timestamp and the marker on its last
packet.

Command line (writes the PS file and a sidecar listing what was wrapped):

    python tests/gb28181/psmux.py -o out.ps --codec h264 --frames 12 --size 160x120
        [--audio [g711a|aac]] [--aac-rate 16000]
        [--no-psm] [--unbounded-pes] [--gop 6] [--fps 25] [--noise] [--repeat-seconds 30]
"""

from __future__ import annotations

import argparse
import itertools
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

VIDEO_ID = 0xE0
AUDIO_ID = 0xC0
STREAM_TYPE = {"h264": 0x1B, "hevc": 0x24}
G711A_TYPE = 0x90
AAC_TYPE = 0x0F
AUDIO_TYPE = {"g711a": G711A_TYPE, "aac": AAC_TYPE}
# ADTS sampling_frequency_index (ISO/IEC 14496-3 Table 1.18).
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
AAC_SAMPLES = 1024  # per AAC-LC frame
MAX_PES_PAYLOAD = 60 * 1024
CLOCK = 90_000


@dataclass
class AccessUnit:
    pts: int  # 90 kHz
    data: bytes  # Annex B
    keyframe: bool


@dataclass
class Muxed:
    """A muxed stream: the PS bytes and what went into them."""

    ps: bytes
    video: list[AccessUnit]
    audio: list[tuple[int, bytes]] = field(default_factory=list)
    codec: str = "h264"
    audio_codec: str | None = None  # "g711a" or "aac" when there is audio


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def encode(
    codec: str = "h264",
    width: int = 160,
    height: int = 120,
    frames: int = 12,
    fps: int = 25,
    gop: int = 6,
    noise: bool = False,
    bitrate: int | None = None,
) -> list[AccessUnit]:
    """Encodes `frames` frames (solid colours, or noise for a realistic bitrate) with libx264 or
    libx265, no B-frames, an IDR every `gop` frames with its parameter sets."""
    name = {"h264": "libx264", "hevc": "libx265"}[codec]
    ctx = av.CodecContext.create(name, "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.gop_size = gop
    if bitrate:
        ctx.bit_rate = bitrate
    if codec == "h264":
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "bf": "0",
            "sc_threshold": "0",
        }
        ctx.options["x264-params"] = (
            f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
        )
    else:
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:log-level=error"
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x265-params": params,
        }
    rng = np.random.default_rng(7)
    out: list[AccessUnit] = []

    def take(packets) -> None:
        for p in packets:
            pts = int(p.pts) * CLOCK // fps
            out.append(AccessUnit(pts + CLOCK, bytes(p), bool(p.is_keyframe)))

    for i in range(frames):
        if noise:
            arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        else:
            arr = np.empty((height, width, 3), dtype=np.uint8)
            arr[:] = ((i * 40) % 256, (80 + i * 25) % 256, (160 + i * 15) % 256)
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(
            format="yuv420p"
        )
        frame.pts = i
        frame.time_base = ctx.time_base
        take(ctx.encode(frame))
    take(ctx.encode(None))
    return out


def alaw(samples: np.ndarray) -> bytes:
    """G.711 A-law (ITU-T G.711 Table 1) of 16-bit linear samples."""
    s = samples.astype(np.int32) >> 3  # 13-bit
    sign = np.where(s >= 0, 0x80, 0x00)
    mag = np.minimum(np.abs(s), 0xFFF)
    seg = np.zeros_like(mag)
    for i in range(1, 8):
        seg = np.where(mag >= (0x20 << (i - 1)), i, seg)
    mant = np.where(seg == 0, mag >> 1, mag >> seg) & 0x0F
    return bytes(((sign | (seg << 4) | mant) ^ 0x55).astype(np.uint8))


def tone(n_samples: int, start: int, rate: int = 8000) -> np.ndarray:
    t = (np.arange(n_samples) + start) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)


# --------------------------------------------------------------------------------------------
# PS syntax (ISO/IEC 13818-1)
# --------------------------------------------------------------------------------------------


def _crc32_mpeg2(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
            crc &= 0xFFFFFFFF
    return crc


def pack_header(scr: int, mux_rate: int = 0x3FFFFF // 8, stuffing: int = 0) -> bytes:
    """Table 2-33: '01', SCR base 33 bits with markers, extension 0, mux rate, stuffing."""
    scr &= (1 << 33) - 1
    b = bytearray(b"\x00\x00\x01\xba")
    b.append(0x40 | ((scr >> 27) & 0x38) | 0x04 | ((scr >> 28) & 0x03))
    b.append((scr >> 20) & 0xFF)
    b.append(((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03))
    b.append((scr >> 5) & 0xFF)
    b.append(((scr << 3) & 0xF8) | 0x04)  # + SCR extension high bits (0)
    b.append(0x01)  # SCR extension low bits (0) + marker
    b += struct.pack(">I", ((mux_rate & 0x3FFFFF) << 10) | 0x3FF)[:3]
    b.append(0xF8 | stuffing)
    b += b"\xff" * stuffing
    return bytes(b)


def system_header(has_audio: bool) -> bytes:
    """Table 2-34 with one entry per stream (P-STD buffer bounds as Hikvision writes them)."""
    body = bytearray()
    body += struct.pack(">I", (1 << 31) | ((0x3FFFFF // 8) << 9) | (1 << 8))[
        :3
    ]  # rate bound
    body.append(((1 if has_audio else 0) << 2) | 0x00)  # audio_bound, fixed 0, CSPS 0
    body.append(0xE1)  # audio lock, video lock, marker, video_bound 1
    body.append(0x7F)  # packet_rate_restriction 0 + reserved
    body += bytes([VIDEO_ID, 0xE0 | 0x20 | 0x00, 0x80])  # buffer scale 1, size 128 KiB
    if has_audio:
        body += bytes([AUDIO_ID, 0xC0, 0x20])  # buffer scale 0, size 4 KiB
    return b"\x00\x00\x01\xbb" + struct.pack(">H", len(body)) + bytes(body)


def psm(video_type: int | None, audio_type: int | None) -> bytes:
    """Table 2-35 with no descriptors."""
    es = bytearray()
    if video_type is not None:
        es += bytes([video_type, VIDEO_ID, 0, 0])
    if audio_type is not None:
        es += bytes([audio_type, AUDIO_ID, 0, 0])
    body = bytearray([0x80 | 0x20, 0xFF]) + struct.pack(
        ">H", 0
    )  # current_next 1, version 0
    body += struct.pack(">H", len(es)) + es
    head = b"\x00\x00\x01\xbc" + struct.pack(">H", len(body) + 4)
    crc = _crc32_mpeg2(head + body)
    return head + bytes(body) + struct.pack(">I", crc)


def pts_field(prefix: int, ts: int) -> bytes:
    ts &= (1 << 33) - 1
    return bytes(
        [
            (prefix << 4) | (((ts >> 30) & 7) << 1) | 1,
            (ts >> 22) & 0xFF,
            (((ts >> 15) & 0x7F) << 1) | 1,
            (ts >> 7) & 0xFF,
            ((ts & 0x7F) << 1) | 1,
        ]
    )


def pes(stream_id: int, payload: bytes, pts: int | None) -> bytes:
    """One PES (Table 2-21): '10', data_alignment set, PTS only."""
    if pts is None:
        head = bytes([0x80, 0x00, 0])
    else:
        head = bytes([0x84, 0x80, 5]) + pts_field(2, pts)
    length = len(head) + len(payload)
    assert length <= 0xFFFF
    return (
        b"\x00\x00\x01"
        + bytes([stream_id])
        + struct.pack(">H", length)
        + head
        + payload
    )


def video_pes(
    au: bytes, pts: int, max_payload: int = MAX_PES_PAYLOAD, unbounded: bool = False
) -> bytes:
    """The access unit in PES of at most `max_payload` bytes, each with the same PTS; or, with
    `unbounded`, in one PES with PES_packet_length 0 (allowed for video, 13818-1 2.4.3.7; what
    Hikvision sends)."""
    if unbounded:
        head = bytes([0x84, 0x80, 5]) + pts_field(2, pts)
        return b"\x00\x00\x01" + bytes([VIDEO_ID]) + b"\x00\x00" + head + au
    parts = [au[i : i + max_payload] for i in range(0, len(au), max_payload)] or [b""]
    return b"".join(pes(VIDEO_ID, p, pts) for p in parts)


def audio_kind(audio: bool | str | None) -> str | None:
    """``False``/``None`` -> no audio; ``True`` -> ``"g711a"`` (the original option); else the
    name, checked."""
    if not audio:
        return None
    kind = "g711a" if audio is True else str(audio).lower()
    if kind not in AUDIO_TYPE:
        raise ValueError(f"audio {audio!r} is not one of {', '.join(AUDIO_TYPE)}")
    return kind


def adts_header(frame_len: int, rate: int, channels: int = 1, object_type: int = 2) -> bytes:
    """ISO/IEC 14496-3 1.A.2.2.1 without CRC: syncword, MPEG-4, layer 0, protection_absent,
    profile = object type - 1, sampling_frequency_index, channel_configuration,
    aac_frame_length (13 bits, header included), buffer fullness 0x7FF (VBR), 1 raw block."""
    length = frame_len + 7
    assert length < 1 << 13 and rate in AAC_RATES
    sfi = AAC_RATES.index(rate)
    return bytes([
        0xFF,
        0xF1,
        ((object_type - 1) << 6) | (sfi << 2) | (channels >> 2),
        ((channels & 3) << 6) | (length >> 11),
        (length >> 3) & 0xFF,
        ((length & 7) << 5) | 0x1F,
        0xFC,
    ])


class AacTone:
    """A continuous 440 Hz tone as ADTS AAC-LC mono frames (PyAV ``aac`` encoder), with their
    90 kHz PTS: frame k plays at ``start_pts + k * 1024 samples``. :meth:`until` encodes on
    demand, so one instance feeds a sender that muxes frame by frame for as long as it runs."""

    def __init__(self, rate: int = 16000, start_pts: int = CLOCK, amplitude: float = 0.25) -> None:
        self.rate = rate
        self.start_pts = start_pts
        self.amplitude = amplitude
        self._ctx = av.CodecContext.create("aac", "w")
        self._ctx.sample_rate = rate
        self._ctx.layout = "mono"
        self._ctx.format = "fltp"
        self._ctx.bit_rate = 32_000
        self._ctx.open()
        self._fed = 0  # samples given to the encoder
        self._frames = 0  # ADTS frames handed out
        self._ready: list[bytes] = []

    def pts_of(self, k: int) -> int:
        return self.start_pts + k * AAC_SAMPLES * CLOCK // self.rate

    def _encode_more(self) -> None:
        t = (np.arange(AAC_SAMPLES) + self._fed) / self.rate
        samples = (np.sin(2 * np.pi * 440 * t) * self.amplitude).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._fed
        self._fed += AAC_SAMPLES
        for p in self._ctx.encode(frame):
            raw = bytes(p)
            self._ready.append(adts_header(len(raw), self.rate) + raw)

    def until(self, pts: int) -> list[tuple[int, bytes]]:
        """The next ADTS frames whose PTS is before ``pts``: ``(pts_90k, frame)``."""
        out = []
        while self.pts_of(self._frames) < pts:
            while not self._ready:
                self._encode_more()
            out.append((self.pts_of(self._frames), self._ready.pop(0)))
            self._frames += 1
        return out


def mux_frame(
    au: AccessUnit,
    codec: str = "h264",
    audio_type: int | None = None,
    audio: Sequence[tuple[int, bytes]] = (),
    with_psm: bool = True,
    unbounded: bool = False,
) -> bytes:
    """One pack: header, system header + PSM on an IDR (listing ``audio_type`` when given),
    the video PES, then one audio PES per ``(pts, payload)`` of ``audio``."""
    out = bytearray(pack_header(au.pts))
    if au.keyframe and with_psm:
        out += system_header(audio_type is not None)
        out += psm(STREAM_TYPE[codec], audio_type)
    out += video_pes(au.data, au.pts, unbounded=unbounded)
    for pts, payload in audio:
        out += pes(AUDIO_ID, payload, pts)
    return bytes(out)


def mux(
    video: list[AccessUnit],
    codec: str = "h264",
    audio: bool | str | None = False,
    with_psm: bool = True,
    fps: int = 25,
    unbounded: bool = False,
    aac_rate: int = 16000,
) -> Muxed:
    """One pack per frame; system header + PSM before each IDR; audio after the video
    (``audio``: ``False``, ``True``/``"g711a"`` or ``"aac"``; see the module docstring)."""
    kind = audio_kind(audio)
    out = bytearray()
    audio_frames: list[tuple[int, bytes]] = []
    per_frame = 8000 // fps
    tone_aac = AacTone(aac_rate, video[0].pts) if kind == "aac" and video else None
    for i, au in enumerate(video):
        chunk: list[tuple[int, bytes]] = []
        if kind == "g711a":
            chunk = [(au.pts, alaw(tone(per_frame, i * per_frame)))]
        elif tone_aac is not None:
            end = video[i + 1].pts if i + 1 < len(video) else au.pts + CLOCK // fps
            chunk = tone_aac.until(end)
        out += mux_frame(au, codec, AUDIO_TYPE[kind] if kind else None, chunk, with_psm, unbounded)
        audio_frames += chunk
    return Muxed(bytes(out), video, audio_frames, codec, kind)


# --------------------------------------------------------------------------------------------
# RTP
# --------------------------------------------------------------------------------------------


def _pack_starts(ps: bytes) -> list[int]:
    starts, at = [], ps.find(b"\x00\x00\x01\xba")
    while at >= 0:
        starts.append(at)
        at = ps.find(b"\x00\x00\x01\xba", at + 4)
    return starts


def _scr(ps: bytes, at: int) -> int:
    b = ps[at + 4 : at + 10]
    return (
        ((b[0] >> 3) & 7) << 30
        | (b[0] & 3) << 28
        | b[1] << 20
        | ((b[2] >> 3) & 0x1F) << 15
        | (b[2] & 3) << 13
        | b[3] << 5
        | (b[4] >> 3)
    )


def rtp_packets(
    ps_bytes: bytes, ssrc: int, pt: int = 96, *, seq: int = 0, max_payload: int = 1400
) -> list[bytes]:
    """RTP packets (RFC 3550 header, no extension) carrying `ps_bytes` as cameras send it: each
    pack (one frame) cut into payloads of at most `max_payload` bytes regardless of the PES
    inside, timestamp = the pack's SCR (our muxer writes SCR = PTS, 90 kHz), marker on the
    pack's last packet. Bytes before the first pack go out with timestamp 0."""
    starts = _pack_starts(ps_bytes)
    bounds = ([0] if not starts or starts[0] != 0 else []) + starts + [len(ps_bytes)]
    packets = []
    for a, b in itertools.pairwise(bounds):
        if a == b:
            continue
        ts = (
            _scr(ps_bytes, a) & 0xFFFFFFFF
            if ps_bytes[a : a + 4] == b"\x00\x00\x01\xba"
            else 0
        )
        for i in range(a, b, max_payload):
            chunk = ps_bytes[i : min(i + max_payload, b)]
            marker = i + max_payload >= b
            head = struct.pack(
                ">BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts, ssrc
            )
            packets.append(head + chunk)
            seq += 1
    return packets


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def sidecar(m: Muxed, with_psm: bool) -> str:
    """What was wrapped, one line each (read by rust/core/tests/ps.rs): `codec <h264|hevc>
    psm <0|1>` (followed by ` audio aac` for AAC; G.711A files say nothing, as before), then `video <pts> <size> <fnv1a64 hex> <keyframe 0|1>` and
    `audio <pts> <size> <fnv1a64 hex>` in stream order."""
    lines = [f"codec {m.codec} psm {int(with_psm)}" + (" audio aac" if m.audio_codec == "aac" else "")]
    for au in m.video:
        lines.append(
            f"video {au.pts} {len(au.data)} {fnv1a64(au.data):016x} {int(au.keyframe)}"
        )
    for pts, d in m.audio:
        lines.append(f"audio {pts} {len(d)} {fnv1a64(d):016x}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, type=Path)
    ap.add_argument("--codec", choices=["h264", "hevc"], default="h264")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=int, default=6)
    ap.add_argument(
        "--audio",
        nargs="?",
        const="g711a",
        default=None,
        choices=sorted(AUDIO_TYPE),
        help="audio of a 440 Hz tone (bare --audio: G.711A)",
    )
    ap.add_argument("--aac-rate", type=int, default=16000, choices=AAC_RATES)
    ap.add_argument("--no-psm", action="store_true")
    ap.add_argument(
        "--unbounded-pes", action="store_true", help="video PES length 0 (Hikvision)"
    )
    ap.add_argument(
        "--noise", action="store_true", help="random pixels (realistic bitrates)"
    )
    ap.add_argument("--bitrate", type=int, default=None, help="encoder bit rate, bit/s")
    ap.add_argument(
        "--repeat-seconds",
        type=float,
        default=0,
        help="repeat the encoded GOPs (with advancing PTS) up to this duration (benchmark files)",
    )
    ap.add_argument(
        "--sidecar", type=Path, default=None, help="text list of what was wrapped"
    )
    a = ap.parse_args(argv)
    w, h = (int(x) for x in a.size.split("x"))
    video = encode(a.codec, w, h, a.frames, a.fps, a.gop, a.noise, a.bitrate)
    if a.repeat_seconds:
        step = CLOCK // a.fps
        n = int(a.repeat_seconds * a.fps)
        video = [
            AccessUnit(
                CLOCK + i * step,
                video[i % len(video)].data,
                video[i % len(video)].keyframe,
            )
            for i in range(n)
        ]
    m = mux(video, a.codec, a.audio, not a.no_psm, a.fps, a.unbounded_pes, a.aac_rate)
    a.output.write_bytes(m.ps)
    if a.sidecar:
        a.sidecar.write_text(sidecar(m, not a.no_psm))
    print(f"{a.output}: {len(m.ps)} bytes, {len(video)} frames", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
