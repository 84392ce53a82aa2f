"""The dictionaries the media core's commands take and return, as ``TypedDict``s.

Owns the shape of a track crossing the boundary: :class:`CoreTrack` (one record of
``Core.stream_tracks``), :class:`PublishTrack` (one track of ``Core.create_rtsp_publisher``) and
:class:`TrackSetup` (what ``Core.rtsp_add_track`` returns). ``_core.pyi`` declares the commands with
them, so mypy checks every caller. Imports nothing of ours.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

Kind = Literal["audio", "video"]


class CoreTrack(TypedDict):
    """A producer track of a live stream, for DESCRIBE; ``index`` is the ``track`` of
    ``rtsp_add_track`` for players."""

    index: int
    kind: str  # "audio" | "video"
    codec: str  # "H264", "opus", "MPEG4-GENERIC"...
    payload_type: int
    clock_rate: int
    channels: int  # 0 for video
    fmtp: str


class PublishTrack(TypedDict):
    """A track of an RTSP ANNOUNCE, as ``create_rtsp_publisher`` takes it."""

    kind: str
    codec: str
    payload_type: int
    clock_rate: NotRequired[int]
    channels: NotRequired[int]
    fmtp: NotRequired[str]


class TrackSetup(TypedDict, total=False):
    """One SETUP's result: ``ssrc``/``seq``/``rtptime`` for players (``RTP-Info``), ``server_port``
    over UDP."""

    ssrc: int
    seq: int
    rtptime: int
    server_port: tuple[int, int]
