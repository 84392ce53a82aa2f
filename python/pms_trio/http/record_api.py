"""The HTTP API's recording routes (SPEC section 5): commands, the list of recordings, and the files.

Owns ``POST /api/v1/record/start`` and ``/stop`` (the command port's JSON commands; the method
comes from the path, so ``{"stream": "cam", "data": {"fileName": "cam.webm"}}`` is enough), ``GET
/api/v1/records`` and ``GET``/``HEAD /records/NAME`` with Range support, so that a browser's
``<video>`` plays and seeks a recording. Only plain names of recording files directly under
``recordPath`` are ever served (decoded first: ``..%2F`` is refused like ``../``).

The recording service is handed in as a small Protocol; this module imports nothing above it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol
from urllib.parse import unquote

from .ranges import RangeNotSatisfiable, parse_range
from .responses import FileResponse, Response, error_response, json_response

PREFIX = "/api/v1/record"
RECORDS = "/api/v1/records"
FILES = "/records/"
CONTENT_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska", ".mp4": "video/mp4"}


class Recordings(Protocol):
    async def execute(self, body: bytes) -> str: ...

    def records(self) -> list[dict[str, Any]]: ...

    def path_of(self, name: str) -> str | None: ...


def owns(path: str) -> bool:
    return path in (PREFIX + "/start", PREFIX + "/stop", RECORDS) or path.startswith(FILES) or path == "/records"


async def handle(service: Recordings | None, method: str, path: str, body: bytes,
                 headers: dict[str, str]) -> Response | FileResponse:
    if service is None:
        return error_response(503, "recording is not running")
    if path in (PREFIX + "/start", PREFIX + "/stop"):
        if method != "POST":
            return error_response(405, f"{path} answers POST only")
        return await _command(service, path.rsplit("/", 1)[1], body)
    if method not in ("GET", "HEAD"):
        return error_response(405, f"{path} answers GET only")
    if path == RECORDS:
        return json_response(200, {"records": service.records()})
    return _file(service, unquote(path[len(FILES):]) if path.startswith(FILES) else "", headers.get("range"))


async def _command(service: Recordings, action: str, body: bytes) -> Response:
    method = f"record.{action}"
    try:
        document = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict):
        if document.get("method") not in (None, method):
            return error_response(400, f"this route takes {method}, not {document.get('method')!r}")
        body = json.dumps({**document, "method": method}).encode()
    reply = await service.execute(body)
    try:
        err = json.loads(reply).get("err", 500)
    except (ValueError, AttributeError):
        err = 500
    status = err if isinstance(err, int) and 400 <= err < 600 else 200
    return Response(status, reply.encode() + b"\n")


def _file(service: Recordings, name: str, range_header: str | None) -> Response | FileResponse:
    path = service.path_of(name) if name else None
    if path is None:
        return error_response(404, "no such recording")
    try:
        size = os.stat(path).st_size
    except OSError:
        return error_response(404, "no such recording")
    content_type = CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")
    accept = (("Accept-Ranges", "bytes"),)
    try:
        span = parse_range(range_header, size)
    except RangeNotSatisfiable:
        return Response(416, b"", "text/plain", accept + (("Content-Range", f"bytes */{size}"),))
    if span is None:
        return FileResponse(200, path, 0, size, content_type, accept)
    first, last = span
    return FileResponse(206, path, first, last - first + 1, content_type,
                        accept + (("Content-Range", f"bytes {first}-{last}/{size}"),))
