"""The srs-sip compatible routes (SPEC section 7) on the HTTP API's port, without I/O of their own.

Owns the ``/srs-sip/v1/...`` documents: ``GET devices``, ``GET devices/{id}/channels``,
``GET channels``, ``POST invite`` / ``bye`` / ``ptz``, ``GET /srs-sip`` (the version) and
``GET /srs-sip/v1`` (the routes); looking back (``query-record``, playback and download
``invite``, ``pause``/``resume``/``speed``/``seek``, ``downloads``, ``playbacks``, ``alarms``) is
``gb_history``'s. Every reply is the envelope
``{"code": 0, "data": ...}``; an error is ``{"code": N, "data": {"msg": ...}}`` with the HTTP status N
too (srs-sip answers 200 with ``code`` 500 for every error; a real status is more useful and the
envelope stays the same). ``POST`` bodies are JSON objects; an unreadable body or a missing field is
400, an unknown device or channel 404, an offline device 503, a device that does not answer 504.
With ``sip.enable`` false every route answers 503.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs
from typing import TYPE_CHECKING, Any, Protocol

from ..gb28181.devices import GbError
from . import gb_history
from .responses import Response, error_response, json_response

if TYPE_CHECKING:
    from ..gb28181.play import Plays
    from ..gb28181.playback import History

ROOT = "/srs-sip"
PREFIX = "/srs-sip/v1"
# What GET /srs-sip/v1 lists (srs-sip's shape: {"method", "path"} per route and method).
ROUTES = (("GET", "/devices"), ("GET", "/devices/{id}/channels"), ("GET", "/channels"), ("POST", "/invite"),
          ("POST", "/bye"), ("POST", "/ptz"), ("POST", "/query-record"), ("POST", "/pause"), ("POST", "/resume"),
          ("POST", "/speed"), ("POST", "/seek"), ("GET", "/downloads"), ("GET", "/playbacks"), ("GET", "/alarms"),
          ("GET", ""))
PTZ_ALIASES = {"zoom_in": "zoomin", "zoom_out": "zoomout"}


def _ok(data: Any) -> Response:
    return json_response(200, {"code": 0, "data": data})


def _fields(body: bytes, *required: str) -> dict[str, Any]:
    try:
        doc = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise _Refused(400, f"the body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _Refused(400, "the body is not a JSON object")
    for name in required:
        value = doc.get(name)
        if not isinstance(value, str) or not value:
            raise _Refused(400, f"{name} is missing or not a string")
    return doc


class GbApi(Protocol):
    """What these routes need of the GB28181 service (``GbService`` implements it)."""

    plays: Plays
    history: History

    def list_alarms(self, device_id: str | None = None) -> list[dict[str, Any]]: ...

    def list_devices(self) -> list[dict[str, Any]]: ...

    def list_channels(self, device_id: str | None = None) -> list[dict[str, Any]]: ...

    async def ptz(self, device_id: str, channel_id: str, direction: str, speed: int) -> None: ...

    def online_devices(self) -> int: ...


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def handle(gb: GbApi | None, method: str, path: str, body: bytes, rtsp_base: str,
                 recorder: Any = None, query: str = "") -> Response:
    """Answer one ``/srs-sip`` or ``/srs-sip/v1`` request. ``gb`` is the GB28181 service (None when
    disabled); ``recorder`` the recording service (downloads); ``query`` the URL's query string."""
    if path == ROOT:
        return json_response(200, {"version": "v1"})  # srs-sip answers this one without the envelope
    if path == PREFIX and method in ("GET", "HEAD"):
        return _ok([{"method": m, "path": PREFIX + p} for m, p in ROUTES])
    if gb is None:
        return error_response(503, "GB28181 is disabled (sip.enable is false)")

    route = path[len(PREFIX):].strip("/").split("/")
    try:
        if route == ["devices"]:
            _method(method, "GET")
            return _ok(gb.list_devices())
        if len(route) == 3 and route[0] == "devices" and route[2] == "channels":
            _method(method, "GET")
            return _ok(gb.list_channels(route[1]))
        if route == ["channels"]:
            _method(method, "GET")
            return _ok(gb.list_channels())
        if route == ["invite"]:
            _method(method, "POST")
            doc = _fields(body, "channel_id")
            transport = doc.get("transport")
            if transport is not None and not isinstance(transport, str):
                raise _Refused(400, "transport is not a string")
            play_type = doc.get("play_type", 0)
            if play_type in (1, "1", 2, "2"):
                return _ok(await gb_history.invite(gb, recorder, doc, int(play_type), rtsp_base))
            if play_type not in (0, "0", None):
                raise _Refused(400, "play_type is 0 (live), 1 (playback) or 2 (download)")
            device_id = doc.get("device_id") if isinstance(doc.get("device_id"), str) else None
            play = await gb.plays.start(doc["channel_id"], device_id or None, transport, on_demand=False)
            return _ok({"channel_id": play.channel_id, "device_id": play.device.device_id,
                        "stream": play.channel_id, "ssrc": play.ssrc, "transport": play.transport,
                        "url": f"{rtsp_base}/{play.channel_id}"})
        if route == ["bye"]:
            _method(method, "POST")
            doc = _fields(body, "channel_id")
            device_id = doc.get("device_id") if isinstance(doc.get("device_id"), str) else None
            url = doc.get("url") if isinstance(doc.get("url"), str) else ""
            stream = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] if url else None
            await gb.plays.stop(doc["channel_id"], device_id or None, stream or None)
            return _ok({"channel_id": doc["channel_id"], "msg": "success"})
        if route == ["ptz"]:
            _method(method, "POST")
            doc = _fields(body, "device_id", "channel_id", "ptz")
            speed = _ptz_speed(doc.get("speed", 128))
            direction = PTZ_ALIASES.get(doc["ptz"].lower(), doc["ptz"])
            await gb.ptz(doc["device_id"], doc["channel_id"], direction, speed)
            return _ok({"channel_id": doc["channel_id"], "ptz": doc["ptz"], "speed": speed, "msg": "success"})
        if route == ["query-record"]:
            _method(method, "POST")
            return _ok(await gb_history.query_record(gb.history, _fields(body, "channel_id")))
        if len(route) == 1 and route[0] in ("pause", "resume", "speed", "seek"):
            _method(method, "POST")
            return _ok(await gb_history.control(gb.history, route[0], _fields(body, "channel_id")))
        if route == ["downloads"] or route == ["playbacks"]:
            _method(method, "GET")
            return _ok(gb.history.history_plays("download" if route == ["downloads"] else "playback"))
        if route == ["alarms"]:
            _method(method, "GET")
            device_id = parse_qs(query).get("device_id", [None])[0]
            return _ok(gb.list_alarms(device_id or None))
    except _Refused as e:
        return error_response(e.code, e.message)
    except GbError as e:
        return error_response(e.code, e.message)
    return error_response(404, f"no such resource: {path}")


def _ptz_speed(speed: Any) -> int:
    """srs-sip's speed is a string "1"-"9" (scaled onto 0-255: 9 is 255); an integer (or digits)
    above 9 is taken as the PTZCmd byte itself, 0-255 (SPEC section 7)."""
    if isinstance(speed, str):
        if not (speed.isascii() and speed.isdigit() and len(speed) <= 3):
            raise _Refused(400, "speed is not a number: a string \"1\"-\"9\" or an integer 0-255")
        number = int(speed)
        if 1 <= number <= 9:
            return round(number * 255 / 9)
        speed = number
    if not isinstance(speed, int) or isinstance(speed, bool) or not 0 <= speed <= 255:
        raise _Refused(400, "speed is not a string \"1\"-\"9\" or an integer 0-255")
    return speed


def _method(method: str, wanted: str) -> None:
    if method != wanted and not (wanted == "GET" and method == "HEAD"):
        raise _Refused(405, f"this resource answers {wanted} only")
