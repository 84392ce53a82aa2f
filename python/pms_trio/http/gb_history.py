"""The srs-sip routes for looking back (SPEC section 7): records, playback, download, alarms.

Owns ``POST query-record``, ``invite`` with ``play_type`` 1 (playback) and 2 (download), ``POST
pause`` / ``resume`` / ``speed`` / ``seek``, ``GET downloads``, ``GET playbacks`` and ``GET
alarms``, under ``/srs-sip/v1``; ``gb_api`` routes here. No I/O of its own: the GB28181 service's
:class:`~pms_trio.gb28181.playback.History` does the SIP, the recording service writes downloads.

Fields as srs-sip's API takes them: times are UNIX seconds (numbers or digit strings; ISO 8601 is
accepted too, see ``gb28181.records``); ``pause``/``resume``/``speed`` name the session by
``{"device_id", "channel_id", "url"}`` (the ``url`` ``invite`` answered; without it the channel's
only playback); ``speed`` is a number 0.25-8. ``seek`` (not in srs-sip) takes ``time`` (UNIX
seconds inside the span) or ``position`` (seconds from its start). A download (``play_type`` 2,
``download_speed`` 1-8, default the highest the channel's catalog offers, else 1) is recorded into
``recordPath`` as ``STREAM.mkv`` (``-1``, ``-2``... when taken); ``GET downloads`` reports its
progress and file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..gb28181.devices import GbError
from ..gb28181.records import TimeError, parse_time
from ..record import protocol as rp

if TYPE_CHECKING:
    from ..gb28181.playback import History

ROUTES = ("query-record", "pause", "resume", "speed", "seek", "downloads", "playbacks", "alarms")


def _time(doc: dict[str, Any], name: str) -> int:
    if name not in doc:
        raise GbError(400, f"{name} is missing")
    try:
        return parse_time(doc[name], name)
    except TimeError as e:
        raise GbError(400, str(e)) from None


def _text(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise GbError(400, f"{name} is not a string")
    return value


def _number(doc: dict[str, Any], name: str) -> float:
    value = doc.get(name)
    if isinstance(value, str):
        text = value
        try:
            value = float(text)
        except ValueError:
            raise GbError(400, f"{name} {text[:20]!r} is not a number") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise GbError(400, f"{name} is missing or not a number")
    return float(value)


async def query_record(history: History, doc: dict[str, Any]) -> list[dict[str, Any]]:
    start, end = _time(doc, "start_time"), _time(doc, "end_time")
    kind = (_text(doc, "type") or "all").lower()
    return await history.query_records(doc["channel_id"], _text(doc, "device_id"), start, end, kind)


async def invite(gb: Any, recorder: Any, doc: dict[str, Any], play_type: int, rtsp_base: str) -> dict[str, Any]:
    """``invite`` with play_type 1 or 2: answers srs-sip's ``{"channel_id", "url"}`` and more.
    ``gb`` is the GB28181 service (its ``history`` is used once the fields are read)."""
    start, end = _time(doc, "start_time"), _time(doc, "end_time")
    history: History = gb.history
    channel_id = doc["channel_id"]
    device_id = _text(doc, "device_id")
    speed = 1
    if play_type == 2:
        if doc.get("download_speed") not in (None, ""):
            speed = int(_number(doc, "download_speed"))
        else:
            speed = _catalog_speed(history, channel_id, device_id)
        if recorder is None:
            raise GbError(503, "downloads need the recording service")
    play = await history.start(channel_id, device_id, _text(doc, "transport"),
                               kind="playback" if play_type == 1 else "download", start=start, end=end,
                               stream=_text(doc, "stream"), download_speed=speed)
    reply: dict[str, Any] = {"channel_id": play.channel_id, "url": f"{rtsp_base}/{play.stream}",
                             "device_id": play.device.device_id, "stream": play.stream, "ssrc": play.ssrc,
                             "transport": play.transport, "play_type": play_type, "start_time": start,
                             "end_time": end}
    if play_type == 2:
        name = _file_name(recorder, play.stream)
        try:
            await recorder.start(rp.StartRecording(play.stream, name, "mkv"))
        except rp.CommandError as e:
            play.control.record_error = e.message
            history.plays.end(play, f"cannot record the download: {e.message}")
            raise GbError(502, f"cannot record the download: {e.message}") from None
        play.control.file = name
        reply.update(file=name, download_speed=speed)
    return reply


def _catalog_speed(history: History, channel_id: str, device_id: str | None) -> int:
    try:
        _, item = history.host.find_channel(channel_id, device_id)
    except GbError:
        return 1
    speeds = [int(x) for x in str(getattr(item, "download_speed", "")).split("/") if x.strip().isdigit()]
    return max([s for s in speeds if 1 <= s <= 8], default=1)


def _file_name(recorder: Any, stream: str) -> str:
    folder = getattr(recorder, "folder", "")
    name = f"{stream}.mkv"
    for n in range(1, 1000):
        if not folder or not os.path.lexists(os.path.join(folder, name)):
            return name
        name = f"{stream}-{n}.mkv"
    return name


async def control(history: History, action: str, doc: dict[str, Any]) -> dict[str, Any]:
    play = history.find(_text(doc, "device_id"), doc["channel_id"], _text(doc, "url"))
    if action == "pause":
        await history.pause(play)
    elif action == "resume":
        await history.resume(play)
    elif action == "speed":
        await history.speed(play, _number(doc, "speed"))
    else:
        if doc.get("time") not in (None, ""):
            at = _time(doc, "time")
        else:
            at = play.start_time + int(_number(doc, "position"))
        await history.seek(play, at)
    return {"msg": "success", **history.describe(play)}  # srs-sip answers {"msg": "success"}
