"""Catalog assembly across several MESSAGEs (GB/T 28181-2016 annex N), sans-IO.

Owns: :class:`CatalogAssembler`, which collects the items of the Catalog Responses of one
(device ID, SN) until SumNum distinct items arrived, and gives up with the partial list when a part
stops coming: ``first_timeout`` after the query for the first part, then ``idle_timeout`` after each
part (wvp's 2 min and 5 s). Timers are data: :meth:`next_deadline` and :meth:`handle_timeout`.
Nothing of the package but ``gb28181.manscdp``; no I/O, no clock.

Rules (notes section 3): items are counted by distinct DeviceID, a repeated ID replaces the older
item in place; Num and a changing SumNum are not trusted (the largest SumNum seen wins); a Response
for an SN we never asked (after REGISTER some devices push their catalog) starts an assembly all the
same; SumNum 0 finishes at once with no items. Memory is bounded by ``max_items`` per catalog and
``max_pending`` open catalogs (the one started first is finished early, partial).
"""

from __future__ import annotations

from dataclasses import dataclass

from .manscdp import CatalogItem, CatalogResponse


@dataclass(frozen=True, slots=True)
class Catalog:
    device_id: str
    sn: int
    sum_num: int
    items: tuple[CatalogItem, ...]
    complete: bool  # False: finished by a timeout (or a limit) with fewer items than SumNum


class _Pending:
    __slots__ = ("deadline", "device_id", "items", "parts", "sn", "sum_num")

    def __init__(self, device_id: str, sn: int, deadline: float) -> None:
        self.device_id = device_id
        self.sn = sn
        self.sum_num = -1
        self.items: dict[str, CatalogItem] = {}
        self.deadline = deadline
        self.parts = 0

    def result(self, complete: bool) -> Catalog:
        return Catalog(self.device_id, self.sn, max(self.sum_num, 0), tuple(self.items.values()), complete)


class CatalogAssembler:
    def __init__(self, *, first_timeout: float = 120.0, idle_timeout: float = 5.0,
                 max_items: int = 100_000, max_pending: int = 1_000) -> None:
        self.first_timeout = first_timeout
        self.idle_timeout = idle_timeout
        self.max_items = max_items
        self.max_pending = max_pending
        self._pending: dict[tuple[str, int], _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def expect(self, device_id: str, sn: int, now: float) -> list[Catalog]:
        """We sent a Catalog query with ``sn``; what had to be finished early to make room."""
        out = self._make_room()
        self._pending[(device_id, sn)] = _Pending(device_id, sn, now + self.first_timeout)
        return out

    def add(self, device_id: str, response: CatalogResponse, now: float) -> list[Catalog]:
        """One Response part from ``device_id`` (the SIP From user). Returns the catalogs finished
        (this one when complete, and any finished early to make room)."""
        key = (device_id, response.sn)
        out: list[Catalog] = []
        pending = self._pending.get(key)
        if pending is None:
            out = self._make_room()
            pending = self._pending[key] = _Pending(device_id, response.sn, now)
        pending.parts += 1
        pending.sum_num = max(pending.sum_num, response.sum_num)
        for item in response.items:
            if item.device_id in pending.items or len(pending.items) < self.max_items:
                pending.items[item.device_id] = item
        pending.deadline = now + self.idle_timeout
        if len(pending.items) >= pending.sum_num or len(pending.items) >= self.max_items:
            del self._pending[key]
            out.append(pending.result(len(pending.items) >= pending.sum_num))
        return out

    def next_deadline(self) -> float | None:
        return min((p.deadline for p in self._pending.values()), default=None)

    def handle_timeout(self, now: float) -> list[Catalog]:
        """Catalogs whose next part did not come in time, with what arrived (maybe nothing)."""
        done = [k for k, p in self._pending.items() if now >= p.deadline]
        return [self._pending.pop(k).result(False) for k in done]

    def _make_room(self) -> list[Catalog]:
        """Finish the catalogs started first (dict order: O(1), not a scan for the nearest
        deadline, which made a registration storm quadratic)."""
        out = []
        while len(self._pending) >= self.max_pending:
            oldest = next(iter(self._pending))
            out.append(self._pending.pop(oldest).result(False))
        return out
