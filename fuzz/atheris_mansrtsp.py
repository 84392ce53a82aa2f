"""Atheris fuzz target for MANSRTSP bodies (``pms_trio.gb28181.mansrtsp``) and API times
(``pms_trio.gb28181.records.parse_time``).

Invariant: any body parses to a :class:`MansRtsp` or raises ``MansRtspError`` (status 400), never
another exception; a parsed request re-built with ``play``/``pause`` parses back to the same method,
CSeq, Scale (when in range) and seek position; the same text as ``str`` parses the same; an API
time either reads as UNIX seconds in range or raises ``TimeError``.

    pip install atheris
    python fuzz/atheris_mansrtsp.py -runs=100000 fuzz/corpus/mansrtsp

``check_one`` is importable without atheris; ``tests/unit/test_fuzz_corpus.py`` replays the corpus.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from pms_trio.gb28181 import mansrtsp as m
from pms_trio.gb28181 import records as r


def parse(data: bytes | str) -> m.MansRtsp | int:
    try:
        return m.parse(data)
    except m.MansRtspError as e:
        assert e.status_hint == 400 and e.message, e
        return e.status_hint


def check_one(data: bytes) -> None:
    parsed = parse(data)
    if len(data) <= m.MAX_BODY:
        text = data.decode("utf-8", "replace")
        assert parse(text) == parsed
    if isinstance(parsed, m.MansRtsp) and parsed.method in ("PLAY", "PAUSE"):
        if parsed.method == "PAUSE":
            again = m.parse(m.pause(parsed.cseq))
        else:
            scale = parsed.scale if parsed.scale is not None and m.MIN_SCALE <= parsed.scale <= m.MAX_SCALE else None
            seek = int(parsed.range_start) if parsed.range_start is not None and parsed.range_start < 1e9 else None
            again = m.parse(m.play(parsed.cseq, scale=scale, seek=seek))
            assert again.scale == scale and (again.range_start is None) == (seek is None)
        assert (again.method, again.cseq) == (parsed.method, parsed.cseq)
    try:
        seconds = r.parse_time(data.decode("utf-8", "replace")[:64])
        assert 0 <= seconds <= r.MAX_TIME
    except r.TimeError:
        pass


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
