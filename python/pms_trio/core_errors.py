"""What a refused core command becomes in each protocol's reply: the one mapping of ``CoreError``.

Owns the tables from :class:`pms_trio._core.CoreError` ``code`` (400 bad arguments, 404 no such
stream, 409 name taken, 415 no common codec, 422 unusable SDP, 500 internal) to the reply code of
the signaling protocol, RTSP, SIP and the HTTP API. A code the table does not know, or an
exception that is not a ``CoreError`` (a bug, a core without the command), is 500. Imports only
``_core`` (for the class, when first asked: the GB28181 fuzz target imports the plays from the source
tree, where the built module may be absent), so every service may use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeGuard

if TYPE_CHECKING:
    from ._core import CoreError

Target = Literal["signaling", "rtsp", "sip", "http", "whip"]

INTERNAL = 500

_STATUS: dict[str, dict[int, int]] = {
    # Signaling replies carry the core's codes as they are (protocol.ErrorCode).
    "signaling": {400: 400, 404: 404, 409: 409, 415: 415, 422: 422, 500: 500},
    # RTSP has no 422: an SDP we cannot use is the client's bad request.
    "rtsp": {400: 400, 404: 404, 409: 409, 415: 415, 422: 400},
    # SIP: a media description we cannot serve is 488 Not Acceptable Here; a taken name is 486.
    "sip": {400: 400, 404: 404, 409: 486, 415: 488, 422: 488},
    # The GB28181 HTTP API (/srs-sip/v1/invite): the caller's argument or a name in use.
    "http": {400: 400, 409: 409},
    # WHIP/WHEP (SPEC 9): an SDP we cannot use is a bad request.
    "whip": {400: 400, 404: 404, 409: 409, 415: 415, 422: 400},
}


def reply_status(code: int, target: Target) -> int:
    """The reply code for core error ``code`` in ``target``'s protocol (500 when not mapped)."""
    return _STATUS[target].get(code, INTERNAL)


def core_error_status(error: BaseException, target: Target, context: str = "") -> tuple[int, str]:
    """``(reply code, message)`` for an exception a core command raised. ``context`` prefixes the
    message (``"cannot receive 3402..."``)."""
    if _is_core_error(error):
        status, message = reply_status(error.code, target), error.message or str(error)
    else:
        status, message = INTERNAL, str(error) or type(error).__name__
    return status, f"{context}: {message}" if context else message


def is_mapped(error: BaseException, target: Target) -> bool:
    """Whether ``error`` is a ``CoreError`` whose code ``target`` knows (else it is logged as a bug)."""
    return _is_core_error(error) and error.code in _STATUS[target]


def _is_core_error(error: BaseException) -> TypeGuard[CoreError]:
    from ._core import CoreError

    return isinstance(error, CoreError)
