"""The HTTP API's reply values and its JSON envelope helpers, shared by the route modules.

Owns :class:`Response` (status, body, content type, extra headers), :class:`FileResponse` (a span
of a file the server streams from disk, for recordings) and the error envelope
``{"code": N, "data": {"msg": ...}}`` of srs-sip. A leaf: imports nothing of ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class FileResponse:
    """Bytes ``start`` .. ``start + length`` of the file at ``path``, sent as they are read."""

    status: int
    path: str
    start: int
    length: int
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, document: Any) -> Response:
    return Response(status, json.dumps(document).encode() + b"\n")


def error_response(status: int, message: str) -> Response:
    return json_response(status, {"code": status, "data": {"msg": message}})
