"""Atheris fuzz target for the signaling parser (``pms_trio.signaling.protocol``).

Invariant: :func:`check_one` either gets a ``Request`` from ``parse_request`` or a
``ProtocolError`` with a known error code, never any other exception; and in both cases the reply
built from it is valid JSON with an ``int`` ``err`` and a string ``method``, encodable as UTF-8.
The input is tried as bytes (a binary frame) and, when it decodes, as text; a ``Session`` must
agree with the bare parser.

    pip install atheris
    python fuzz/atheris_signaling.py -runs=100000 fuzz/target/corpus/signaling fuzz/corpus/signaling

``check_one`` is importable without atheris; ``tests/unit/test_fuzz_corpus.py`` replays the corpus.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from pms_trio.signaling import protocol as p  # noqa: E402


def _check_reply(text: str) -> None:
    reply = json.loads(text)
    assert isinstance(reply, dict), reply
    assert isinstance(reply["err"], int) and not isinstance(reply["err"], bool), reply
    assert isinstance(reply["method"], str) and isinstance(reply["err_msg"], str), reply
    text.encode("utf-8")  # sendable


def _one(frame: str | bytes) -> p.Request | p.ProtocolError:
    try:
        request = p.parse_request(frame)
    except p.ProtocolError as e:
        assert e.code in p.KNOWN_CODES, e.code
        _check_reply(p.error_reply(e, "sid"))
        return e
    assert isinstance(request, p.Request), request
    _check_reply(p.build_reply(request.method, "sid", {}))
    return request


def check_one(data: bytes) -> None:
    """The fuzzed property for one input (raises AssertionError or the stray exception)."""
    as_bytes = _one(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    as_text = _one(text)
    if isinstance(as_bytes, p.Request):
        assert as_text == as_bytes, (as_text, as_bytes)
    else:
        assert isinstance(as_text, p.ProtocolError) and as_text.code == as_bytes.code
    session = p.Session(id="sid", heartbeat_timeout=30.0, last_activity=0.0)
    try:
        via_session = session.receive(text, 1.0)
    except p.ProtocolError as e:
        assert isinstance(as_text, p.ProtocolError) or e.code == p.ErrorCode.WRONG_SESSION
    else:
        assert via_session == as_text
    assert session.next_deadline() == 31.0


def main() -> None:
    import atheris

    # The parser was imported above (check_one must work without atheris), so instrument the
    # already-loaded code now; without this libFuzzer sees no coverage and fuzzes blind.
    atheris.instrument_all()
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
