"""Tracks between the media core and RTSP's SDP: two pure translations (SPEC section 4).

Owns what the RTSP server hands the core and ``sdp`` about a stream's tracks:
:func:`describable` turns a core track (one record of ``Core.stream_tracks``) into the track
:func:`~.sdp.describe_sdp` writes for DESCRIBE, with the H.264/H.265 parameter sets the stream
registry knows (and says when none are known yet); :func:`core_track` turns an ANNOUNCE track
(from :func:`~.sdp.parse_announce_sdp`) into what ``Core.create_rtsp_publisher`` takes. It may not
do I/O, wait, or call the core or the registry: the server asks them and passes the records in.
"""

from __future__ import annotations

from typing import Any

from ..core_types import CoreTrack, PublishTrack
from . import sdp


def _nal_type(nal: bytes, codec: str) -> int:
    return (nal[0] & 0x1F) if codec == "H264" else (nal[0] >> 1) & 0x3F


def describable(t: CoreTrack, parameter_sets: dict[str, tuple[bytes, ...]]) -> dict[str, Any] | None:
    """A core track (``stream_tracks``) as a DESCRIBE track, or None for a codec RTSP here
    cannot describe. ``missing_parameter_sets``: H.264/H.265 with no sets known at all."""
    try:
        codec = sdp._canonical(t.get("codec"))
    except ValueError:
        return None
    fmtp = t.get("fmtp") or None
    track: dict[str, Any] = {"kind": t.get("kind"), "codec": codec, "payload_type": int(t["payload_type"]),
                             "clock_rate": int(t.get("clock_rate") or 0) or None,
                             "channels": int(t.get("channels") or 0) or None, "fmtp": fmtp,
                             "control": f"trackID={int(t['index'])}", "index": int(t["index"])}
    params = sdp.parse_fmtp(fmtp)
    if codec in ("H264", "H265"):
        wanted = {"H264": {7: "sps", 8: "pps"}, "H265": {32: "vps", 33: "sps", 34: "pps"}}[codec]
        for nal in parameter_sets.get(codec, ()):
            key = wanted.get(_nal_type(nal, codec)) if nal else None
            if key is not None:
                track.setdefault(key, nal)
        in_fmtp = "sprop-parameter-sets" in params if codec == "H264" else "sprop-sps" in params
        track["missing_parameter_sets"] = not in_fmtp and not all(k in track for k in wanted.values())
    elif codec == "AAC" and params.get("config"):
        try:
            track["config"] = bytes.fromhex(params["config"])
        except ValueError:
            return None
    return track


def core_track(t: dict[str, Any]) -> PublishTrack:
    """An ANNOUNCE track as ``create_rtsp_publisher`` takes it."""
    return {"kind": t["kind"], "codec": sdp.CODECS[t["codec"]][1], "payload_type": t["payload_type"],
            "clock_rate": t.get("clock_rate") or 0, "channels": t.get("channels") or 0, "fmtp": t.get("fmtp") or ""}


