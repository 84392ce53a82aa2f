"""Checks of the camera-like PS muxer (tests/gb28181/psmux.py): the layout cameras send, RTP cutting,
and that FFmpeg reads the video back unchanged."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import av
import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "psmux", Path(__file__).with_name("psmux.py")
)
psmux = importlib.util.module_from_spec(_spec)
sys.modules["psmux"] = psmux  # dataclasses look their module up
_spec.loader.exec_module(psmux)


@pytest.fixture(scope="module", params=["h264", "hevc"])
def muxed(request):
    video = psmux.encode(request.param, 160, 120, frames=8, gop=4)
    return psmux.mux(video, request.param, audio=True)


def test_layout_is_camera_like(muxed):
    ps = muxed.ps
    packs = psmux._pack_starts(ps)
    assert len(packs) == len(muxed.video)
    keyframes = [au.keyframe for au in muxed.video]
    assert keyframes[0] and keyframes.count(True) == 2
    for at, au in zip(packs, muxed.video, strict=True):
        assert psmux._scr(ps, at) == au.pts
        after = ps[at + 14 : at + 18]
        # System header then PSM on each IDR; straight to the video PES otherwise.
        assert after == (b"\x00\x00\x01\xbb" if au.keyframe else b"\x00\x00\x01\xe0")
    psm_at = ps.index(b"\x00\x00\x01\xbc")
    length = struct.unpack(">H", ps[psm_at + 4 : psm_at + 6])[0]
    psm = ps[psm_at : psm_at + 6 + length]
    assert psmux._crc32_mpeg2(psm) == 0  # CRC over the whole section including the CRC
    stream_type = psmux.STREAM_TYPE[muxed.codec]
    assert bytes([stream_type, 0xE0, 0, 0, 0x90, 0xC0, 0, 0]) in psm
    assert ps.count(b"\x00\x00\x01\xc0") == len(muxed.audio) == len(muxed.video)


def test_large_frames_are_split_into_pes_with_the_same_pts():
    au = psmux.AccessUnit(90_000, b"\x00\x00\x00\x01\x65" + bytes(150_000), True)
    ps = psmux.video_pes(au.data, au.pts)
    starts = [i for i in range(len(ps) - 3) if ps[i : i + 4] == b"\x00\x00\x01\xe0"]
    assert len(starts) == 3
    for i in starts:
        assert ps[i + 9 : i + 14] == psmux.pts_field(2, 90_000)
    unbounded = psmux.video_pes(au.data, au.pts, unbounded=True)
    assert unbounded[4:6] == b"\x00\x00" and unbounded.endswith(au.data)


def test_rtp_packets_cut_packs_regardless_of_pes(muxed):
    pkts = psmux.rtp_packets(muxed.ps, ssrc=0x01020304, pt=96, seq=65530)
    assert b"".join(p[12:] for p in pkts) == muxed.ps
    assert all(len(p) - 12 <= 1400 for p in pkts)
    seqs = [struct.unpack(">H", p[2:4])[0] for p in pkts]
    assert seqs == [(65530 + i) & 0xFFFF for i in range(len(pkts))]
    markers = [p for p in pkts if p[1] & 0x80]
    assert len(markers) == len(muxed.video)
    assert [struct.unpack(">I", p[4:8])[0] for p in markers] == [
        au.pts for au in muxed.video
    ]
    assert {struct.unpack(">I", p[8:12])[0] for p in pkts} == {0x01020304}
    assert {p[1] & 0x7F for p in pkts} == {96}


def test_ffmpeg_reads_the_video_back(muxed, tmp_path):
    path = tmp_path / "cam.ps"
    path.write_bytes(muxed.ps)
    with av.open(str(path), format="mpeg") as c:
        got = [bytes(p) for p in c.demux(video=0) if p.size]
    assert b"".join(got) == b"".join(au.data for au in muxed.video)


@pytest.mark.parametrize("rate", [16000, 8000])
def test_aac_as_cameras_send_it(rate, tmp_path):
    """audio="aac": PSM stream_type 0x0F, one ADTS frame (7-byte header, AAC-LC, mono, the
    rate's index) per PES 0xC0 with a PTS 1024 samples apart, and FFmpeg decodes a 440 Hz tone."""
    video = psmux.encode("h264", 160, 120, frames=25, gop=25)
    m = psmux.mux(video, "h264", audio="aac", aac_rate=rate)
    psm_at = m.ps.index(b"\x00\x00\x01\xbc")
    assert bytes([0x0F, 0xC0, 0, 0]) in m.ps[psm_at : psm_at + 32]
    step = 1024 * 90_000 // rate
    assert [pts for pts, _ in m.audio] == [video[0].pts + k * step for k in range(len(m.audio))]
    assert len(m.audio) == -(-(video[-1].pts + 3600 - video[0].pts) // step)
    for pts, frame in m.audio:
        assert frame[:2] == b"\xff\xf1"  # MPEG-4, layer 0, no CRC
        assert frame[2] >> 6 == 1 and (frame[2] >> 2) & 0xF == psmux.AAC_RATES.index(rate)
        assert ((frame[2] & 1) << 2 | frame[3] >> 6) == 1  # mono
        assert ((frame[3] & 3) << 11 | frame[4] << 3 | frame[5] >> 5) == len(frame)
        assert psmux.pes(psmux.AUDIO_ID, frame, pts) in m.ps
    assert m.ps.count(b"\x00\x00\x01\xc0") == len(m.audio)
    path = tmp_path / "aac.ps"
    path.write_bytes(m.ps)
    with av.open(str(path), format="mpeg") as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        pcm = [f.to_ndarray()[0] for p in c.demux(audio=0) for f in p.decode()]
    x = np.concatenate(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    assert abs(np.argmax(spectrum) * rate / len(x) - 440) < 5


def test_audio_option_names():
    assert psmux.audio_kind(True) == "g711a" and psmux.audio_kind(False) is None
    assert psmux.audio_kind("AAC") == "aac"
    with pytest.raises(ValueError):
        psmux.audio_kind("opus")
