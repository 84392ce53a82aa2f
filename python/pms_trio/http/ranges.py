"""HTTP byte ranges (RFC 9110 section 14), sans-IO: a ``Range`` header and a size in, the span to send out.

Owns reading ``bytes=FIRST-LAST``, ``bytes=FIRST-`` and ``bytes=-SUFFIX`` for one range (what
browsers' ``<video>`` and players send). Several ranges in one header are answered with the first
one alone (RFC 9110 allows a server to ignore Range; sending one part is simpler than multipart).
"""

from __future__ import annotations

import re

_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


class RangeNotSatisfiable(Exception):
    """416: the range lies outside the file; the reply carries ``Content-Range: bytes */SIZE``."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive for a satisfiable range, ``None`` to send the whole file (no
    header, another unit, or a header that does not parse: RFC 9110 says to ignore it), or raises
    :class:`RangeNotSatisfiable`."""
    if not header:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs:
        return None
    match = _SPEC.fullmatch(specs.split(",", 1)[0])
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix: the last N bytes
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"bytes */{size}")
        return max(0, size - suffix), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if first >= size:
        raise RangeNotSatisfiable(f"bytes */{size}")
    if last < first:
        return None
    return first, min(last, size - 1)
