"""Atheris fuzz target for MANSCDP bodies and the GB28181 helpers (``pms_trio.gb28181``).

Invariant: any body parses to a MANSCDP message or raises ``ManscdpError`` (status 400), never
another exception; the same body carried in a SIP MESSAGE over a TCP stream, fed whole or cut in two
at every sixteenth, gives the same message; a Catalog Response re-built with ``catalog_response``
parses back to the same items; the catalog assembler, fed the parsed response and then timed out,
returns each catalog once with at most SumNum-or-more distinct items; a PTZCmd either reads back
through ``parse_ptz_command`` or is refused; the SDP-answer parser raises only ``SdpAnswerError``;
a RecordInfo Response re-built with ``record_info_response`` parses back to the same items, the
record assembler counts each distinct item once, and every item's times read as UNIX seconds or
None (``describe_item`` never raises); a MediaStatus/Alarm keeps its fields bounded.

    pip install atheris
    python fuzz/atheris_manscdp.py -runs=100000 fuzz/corpus/manscdp

``check_one`` is importable without atheris; ``tests/unit/test_fuzz_corpus.py`` replays the corpus.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from pms_trio.gb28181 import catalog as c
from pms_trio.gb28181 import manscdp as x
from pms_trio.gb28181 import media
from pms_trio.gb28181 import records as r
from pms_trio.sip import message as m

DEVICE = "34020000001320000001"


def parse_body(body: bytes) -> x.Manscdp | int:
    try:
        return x.parse(body)
    except x.ManscdpError as e:
        assert e.status_hint == 400 and e.message, e
        return e.status_hint


def _carried(body: bytes, cut: int | None) -> x.Manscdp | int | None:
    request = m.Request("MESSAGE", f"sip:{DEVICE}@3402000000", (
        ("Via", "SIP/2.0/TCP 192.168.1.64:5060;branch=z9hG4bKfuzz"), ("From", f"<sip:{DEVICE}@3402000000>;tag=1"),
        ("To", "<sip:34020000002000000001@3402000000>"), ("Call-ID", "fuzz"), ("CSeq", "1 MESSAGE"),
        ("Content-Type", x.CONTENT_TYPE)), body)
    data = m.serialize(request)
    framer = m.StreamFramer()
    chunks = [data] if cut is None else [data[:cut], data[cut:]]
    for chunk in chunks:
        if chunk:  # b"" would be EOF
            framer.receive_data(chunk)
    event = framer.next_event()
    if not isinstance(event, m.Request):
        return None
    return parse_body(event.body)


def check_one(data: bytes) -> None:
    parsed = parse_body(data)
    if len(data) <= m.MAX_BODY_BYTES:
        assert _carried(data, None) == parsed
        for cut in range(0, len(data), max(1, len(data) // 16)):
            assert _carried(data, cut) == parsed
    if isinstance(parsed, x.CatalogResponse):
        rebuilt = x.parse(x.catalog_response(parsed.sn, parsed.device_id, parsed.sum_num, parsed.items,
                                             encoding="UTF-8"))
        assert isinstance(rebuilt, x.CatalogResponse)
        assert [i.device_id for i in rebuilt.items] == [i.device_id for i in parsed.items]
        assembler = c.CatalogAssembler()
        done = assembler.add(parsed.device_id, parsed, 0.0)
        done += assembler.handle_timeout(1e9)
        assert len(done) == 1 and len(assembler) == 0
        assert len({i.device_id for i in done[0].items}) == len(done[0].items)
    if isinstance(parsed, x.RecordInfoResponse):
        rebuilt = x.parse(x.record_info_response(parsed.sn, parsed.device_id, parsed.sum_num, parsed.items,
                                                 parsed.name, encoding="UTF-8"))
        assert isinstance(rebuilt, x.RecordInfoResponse)
        assert [(i.start_time, i.end_time, i.file_path) for i in rebuilt.items] == [
            (i.start_time, i.end_time, i.file_path) for i in parsed.items]
        assembler = r.RecordAssembler(parsed.device_id, parsed.sn)
        assembler.add(parsed)
        assembler.add(parsed)  # a repeated part adds nothing
        assert len(assembler.items) <= len(parsed.items) and assembler.parts == 2
        for item in assembler.sorted_items():
            doc = r.describe_item(item, DEVICE)
            assert doc["start"] is None or isinstance(doc["start"], int)
    if isinstance(parsed, x.Alarm):
        assert len(parsed.description) <= 256
    if isinstance(parsed, x.DeviceControl) and parsed.ptz_cmd:
        try:
            cmd = x.parse_ptz_command(parsed.ptz_cmd)
            assert 0 <= cmd.address <= 0xFFF
        except x.ManscdpError:
            pass
    try:
        media.parse_sdp_answer(data)
    except media.SdpAnswerError as e:
        assert e.status_hint == 488


def main() -> None:
    import atheris

    # The code under test was imported above (check_one must work without atheris): instrument the
    # already-loaded modules now, or libFuzzer sees no coverage and fuzzes blind.
    atheris.instrument_all()
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
