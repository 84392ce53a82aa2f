"""The HTTP API's reply value and its JSON envelope helpers, shared by ``api`` and ``gb_api``.

Owns :class:`Response` (status, body, content type) and the error envelope
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


def json_response(status: int, document: Any) -> Response:
    return Response(status, json.dumps(document).encode() + b"\n")


def error_response(status: int, message: str) -> Response:
    return json_response(status, {"code": status, "data": {"msg": message}})
