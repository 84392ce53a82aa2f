"""gb28181.catalog: the Hikvision NVR catalog in three MESSAGEs (tests/data/sip), any order, repeats,
a missing last part (the partial list is kept after the idle timeout), a first part that never
comes, SumNum 0, an unsolicited catalog, and the limits."""

from __future__ import annotations

import itertools
from pathlib import Path

from pms_trio.gb28181 import manscdp as x
from pms_trio.gb28181.catalog import CatalogAssembler
from pms_trio.sip import message as m

DATA = Path(__file__).parents[1] / "data" / "sip"
NVR = "34020000001180000001"
PARTS = [f"hikvision_nvr_catalog_{n}of3.txt" for n in (1, 2, 3)]


def part(name: str) -> tuple[str, x.CatalogResponse]:
    request = m.parse_datagram((DATA / name).read_bytes())
    body = x.parse(request.body)
    assert isinstance(body, x.CatalogResponse)
    return request.from_.sip_uri.user, body


def test_three_messages_complete_at_sum_num_in_any_order():
    for order in itertools.permutations(PARTS):
        assembler = CatalogAssembler()
        assert assembler.expect(NVR, 17, 0.0) == []
        results = []
        for t, name in enumerate(order):
            results += assembler.add(*part(name), now=1.0 + t)
        assert len(results) == 1 and results[0].complete and len(assembler) == 0
        catalog = results[0]
        assert (catalog.device_id, catalog.sn, catalog.sum_num) == (NVR, 17, 5)
        assert {i.name for i in catalog.items} == {"大门口", "停车场东", "仓库走廊", "一楼大厅", "楼顶云台"}
        assert assembler.next_deadline() is None


def test_missing_last_part_keeps_the_partial_list_after_the_idle_timeout():
    assembler = CatalogAssembler(first_timeout=120, idle_timeout=5)
    assembler.expect(NVR, 17, 0.0)
    assert assembler.next_deadline() == 120.0
    assert assembler.add(*part(PARTS[0]), now=1.0) == []
    assert assembler.add(*part(PARTS[1]), now=2.0) == []
    assert assembler.next_deadline() == 7.0
    assert assembler.handle_timeout(6.9) == []
    [catalog] = assembler.handle_timeout(7.0)
    assert not catalog.complete and catalog.sum_num == 5 and len(catalog.items) == 4
    assert len(assembler) == 0


def test_repeated_part_does_not_count_twice():
    assembler = CatalogAssembler()
    for name in (PARTS[0], PARTS[0], PARTS[1]):
        assert assembler.add(*part(name), now=0.0) == []  # 4 distinct of 5: not complete
    [catalog] = assembler.add(*part(PARTS[2]), now=0.0)
    assert catalog.complete and len(catalog.items) == 5


def test_first_part_that_never_comes_gives_an_empty_partial_catalog():
    assembler = CatalogAssembler(first_timeout=120)
    assembler.expect(NVR, 99, 0.0)
    [catalog] = assembler.handle_timeout(120.0)
    assert catalog.items == () and not catalog.complete and catalog.sum_num == 0


def test_sum_num_zero_and_unsolicited_catalogs():
    assembler = CatalogAssembler()
    empty = x.parse(b"<Response><CmdType>Catalog</CmdType><SN>7</SN><DeviceID>d</DeviceID><SumNum>0</SumNum></Response>")
    [catalog] = assembler.add("d", empty, 0.0)
    assert catalog.complete and catalog.items == ()
    [catalog] = assembler.add("d", x.parse(x.catalog_response(1234, "d", 1, [x.CatalogItem("c1", "门")])), 0.0)
    assert catalog.complete and catalog.sn == 1234


def test_limits():
    assembler = CatalogAssembler(max_items=3, max_pending=2)
    assert assembler.add(*part(PARTS[0]), now=0.0) == []
    [capped] = assembler.add(*part(PARTS[1]), now=0.0)
    assert len(capped.items) == 3 and not capped.complete
    assembler.expect("a", 1, 0.0)
    assembler.expect("b", 1, 1.0)
    [evicted] = assembler.expect("c", 1, 2.0)
    assert evicted.device_id == "a" and len(assembler) == 2
