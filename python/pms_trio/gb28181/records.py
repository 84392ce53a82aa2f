"""What a device recorded: RecordInfo answers assembled across MESSAGEs, and device times, sans-IO.

Owns :class:`RecordAssembler` (the items of the RecordInfo Responses of one (device, SN) until
SumNum distinct items arrived; the caller times it out), :func:`parse_time` (an API time: UNIX
seconds as a number or digits, or ISO 8601), and the conversion between UNIX seconds and the
device's clock (:func:`device_time`, :func:`from_device_time`). Nothing of the package but
``gb28181.manscdp``; no I/O, no clock.

Device clock: MANSCDP times carry no zone (``2024-01-01T08:00:00``). The registrar sets every
device's clock to Beijing time (UTC+8, the ``Date`` of its 200 to REGISTER, standard 9.10), so
times sent to and read from devices are UTC+8; an ISO 8601 time given to the API with a zone or
``Z`` is converted, one without a zone is taken as the device's (UTC+8) time too.

Rules of assembly (as the catalog's, notes section 3): items are counted distinct by (DeviceID,
StartTime, EndTime, FilePath, Name), Num is not trusted, the largest SumNum wins, SumNum 0 is a
complete empty answer; at most ``max_items`` are kept. An item whose times cannot be read or whose
end is before its start is kept but flagged (``valid`` False in :func:`describe_item`), not
dropped: the operator sees what the device said.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from .manscdp import RecordInfoResponse, RecordItem

DEVICE_ZONE = timezone(timedelta(hours=8))
MAX_TIME = 4_102_444_800  # 2100-01-01: later "UNIX seconds" are a mistake (milliseconds...)
_ISO = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$")


class TimeError(ValueError):
    pass


def parse_time(value: Any, name: str = "time") -> int:
    """An API time to UNIX seconds: an integer (or digits), or ISO 8601 (module docstring)."""
    if isinstance(value, bool):
        raise TimeError(f"{name} is not a time")
    if isinstance(value, (int, float)):
        seconds = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 12:
        seconds = int(value.strip())
    elif isinstance(value, str) and _ISO.match(value.strip()):
        text = value.strip().replace(" ", "T").replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise TimeError(f"{name} {value[:40]!r} is not a date") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=DEVICE_ZONE)
        seconds = int(parsed.timestamp())
    else:
        raise TimeError(f"{name} is neither UNIX seconds nor ISO 8601")
    if not 0 <= seconds <= MAX_TIME:
        raise TimeError(f"{name} {seconds} is out of range")
    return seconds


def device_time(seconds: int) -> str:
    """UNIX seconds as the device's clock reads them: ``2024-01-01T08:00:00``."""
    return datetime.fromtimestamp(seconds, DEVICE_ZONE).strftime("%Y-%m-%dT%H:%M:%S")


def from_device_time(text: str) -> int | None:
    """A device's time (UTC+8, no zone; a zone when given is honoured) as UNIX seconds, or None."""
    text = text.strip()
    if not _ISO.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return calendar.timegm(parsed.timetuple()) - 8 * 3600
    return int(parsed.timestamp())


def describe_item(item: RecordItem, device_id: str) -> dict[str, Any]:
    """An item as ``/srs-sip/v1/query-record`` gives it: srs-sip's fields (``start_time``/``end_time``
    ISO 8601 as the device wrote them), plus ``start``/``end`` in UNIX seconds and ``valid``."""
    start, end = from_device_time(item.start_time), from_device_time(item.end_time)
    return {"device_id": item.device_id or device_id, "name": item.name, "file_path": item.file_path,
            "address": item.address, "start_time": item.start_time, "end_time": item.end_time,
            "secrecy": item.secrecy, "type": item.record_type, "recorder_id": item.recorder_id,
            "file_size": item.file_size, "start": start, "end": end,
            "valid": start is not None and end is not None and end >= start}


class RecordAssembler:
    """One RecordInfo query's answer, part by part."""

    def __init__(self, device_id: str, sn: int, *, max_items: int = 10_000) -> None:
        self.device_id = device_id
        self.sn = sn
        self.max_items = max_items
        self.sum_num = -1
        self.parts = 0
        self.items: dict[tuple[str, ...], RecordItem] = {}

    @property
    def complete(self) -> bool:
        return self.sum_num >= 0 and len(self.items) >= min(self.sum_num, self.max_items)

    def add(self, response: RecordInfoResponse) -> bool:
        """One Response part; True once the answer is complete."""
        self.parts += 1
        self.sum_num = max(self.sum_num, response.sum_num)
        for item in response.items:
            key = (item.device_id, item.start_time, item.end_time, item.file_path, item.name)
            if key in self.items or len(self.items) < self.max_items:
                self.items[key] = item
        return self.complete

    def sorted_items(self) -> list[RecordItem]:
        return sorted(self.items.values(), key=lambda i: (i.start_time, i.end_time, i.file_path))
