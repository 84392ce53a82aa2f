"""Which finished recordings ``record.deleteAfterHours`` removes, sans-IO.

Owns the rule only: a file is removed when it is finished (not being written, not the one a
recording will still append to) and its last change is older than the limit. Listing the folder
and deleting are the recording service's job; a limit of 0 keeps everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecordFile:
    name: str
    mtime: float
    size: int


def expired(files: Iterable[RecordFile], *, now: float, hours: float, active: frozenset[str] | set[str]) -> list[str]:
    """Names of the files to delete: older than ``hours`` and not in ``active`` (names being written)."""
    if hours <= 0:
        return []
    limit = now - hours * 3600.0
    return sorted(f.name for f in files if f.mtime < limit and f.name not in active)
