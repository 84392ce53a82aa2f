"""``CoreError`` is typed (``code``, ``message``) and one helper maps it to each protocol's reply."""

from __future__ import annotations

import pickle

import pytest

from pms_trio._core import CoreError
from pms_trio.core_errors import core_error_status, is_mapped, reply_status


def test_core_error_is_typed() -> None:
    e = CoreError(409, "stream cam is already published")
    assert isinstance(e, Exception) and e.code == 409 and e.message == "stream cam is already published"
    assert str(e) == e.message
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is CoreError and (again.code, again.message) == (409, e.message)


@pytest.mark.parametrize(("code", "signaling", "rtsp", "sip", "http"), [
    (400, 400, 400, 400, 400),
    (404, 404, 404, 404, 500),
    (409, 409, 409, 486, 409),
    (415, 415, 415, 488, 500),
    (422, 422, 400, 488, 500),
    (500, 500, 500, 500, 500),
    (418, 500, 500, 500, 500),  # a code the core does not use: internal
])
def test_reply_codes(code: int, signaling: int, rtsp: int, sip: int, http: int) -> None:
    assert [reply_status(code, t) for t in ("signaling", "rtsp", "sip", "http")] == [signaling, rtsp, sip, http]


def test_core_error_status_and_other_exceptions() -> None:
    assert core_error_status(CoreError(422, "no m= line"), "rtsp") == (400, "no m= line")
    assert core_error_status(CoreError(409, "taken"), "http", "cannot receive cam") == (409, "cannot receive cam: taken")
    assert core_error_status(AttributeError("no create_gb_ingest"), "http", "cannot receive cam") == (
        500, "cannot receive cam: no create_gb_ingest")
    assert is_mapped(CoreError(415, "x"), "signaling") and not is_mapped(CoreError(418, "x"), "signaling")
    assert not is_mapped(ValueError("x"), "rtsp") and not is_mapped(CoreError(500, "x"), "rtsp")
