"""Looking back without sockets: API times and device clocks, the RecordInfo assembler, MANSRTSP
bodies, the playback SDP, and the service's RecordInfo query (parts, SumNum never reached, a
device that answers 4xx) driven through ``on_message`` under trio's MockClock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from pms_trio.gb28181 import manscdp, mansrtsp, media
from pms_trio.gb28181.devices import GbError
from pms_trio.gb28181.playback import RECORD_IDLE_TIMEOUT
from pms_trio.gb28181.records import RecordAssembler, TimeError, device_time, from_device_time, parse_time
from pms_trio.gb28181.service import GbService
from pms_trio.sip.message import Request, Response
from pms_trio.streams import StreamRegistry

from test_gb28181_service import DEVICE, SOURCE, config, register, sent  # tests/unit is on sys.path

CHANNEL = "34020000001310000001"
T0 = 1_700_000_000


def test_api_times_and_the_device_clock() -> None:
    assert parse_time(T0) == parse_time(str(T0)) == parse_time("2023-11-14T22:13:20Z") == T0
    assert parse_time("2023-11-15T06:13:20+08:00") == parse_time("2023-11-15T06:13:20") == T0  # no zone: UTC+8
    assert parse_time("2023-11-15 06:13:20") == T0
    for bad in ("", "soon", True, None, -1, 10 ** 13, "2023-13-45T00:00:00", "1e9", [T0]):
        with pytest.raises(TimeError):
            parse_time(bad)
    assert device_time(T0) == "2023-11-15T06:13:20"
    assert from_device_time("2023-11-15T06:13:20") == T0
    assert from_device_time("2023-11-14T22:13:20Z") == T0
    assert from_device_time("yesterday") is None and from_device_time("2023-02-30T00:00:00") is None


def item(start: int, end: int, path: str = "") -> manscdp.RecordItem:
    return manscdp.RecordItem(CHANNEL, "cam", path or f"/sd/{start}", "", device_time(start), device_time(end), 0,
                              "time")


def test_record_assembler_counts_distinct_items_and_trusts_no_num() -> None:
    a = RecordAssembler(DEVICE, 5)
    assert not a.add(manscdp.RecordInfoResponse(5, CHANNEL, 3, (item(T0, T0 + 60), item(T0 + 60, T0 + 120))))
    assert not a.add(manscdp.RecordInfoResponse(5, CHANNEL, 3, (item(T0, T0 + 60),)))  # a repeated item
    assert a.add(manscdp.RecordInfoResponse(5, CHANNEL, 2, (item(T0 + 300, T0 + 360),)))  # SumNum: the largest
    assert [i.file_path for i in a.sorted_items()] == [f"/sd/{T0}", f"/sd/{T0 + 60}", f"/sd/{T0 + 300}"]
    empty = RecordAssembler(DEVICE, 6)
    assert empty.add(manscdp.RecordInfoResponse(6, CHANNEL, 0))


def test_mansrtsp_bodies_and_their_answers() -> None:
    assert mansrtsp.pause(1) == b"PAUSE RTSP/1.0\r\nCSeq: 1\r\nPauseTime: now\r\n\r\n"
    assert mansrtsp.play(2) == b"PLAY RTSP/1.0\r\nCSeq: 2\r\nRange: npt=now-\r\n\r\n"
    assert mansrtsp.play(3, scale=0.25) == b"PLAY RTSP/1.0\r\nCSeq: 3\r\nScale: 0.25\r\n\r\n"
    assert mansrtsp.play(4, seek=90) == b"PLAY RTSP/1.0\r\nCSeq: 4\r\nRange: npt=90-\r\n\r\n"
    for bad in (0.1, 16, float("nan"), True):
        with pytest.raises(ValueError):
            mansrtsp.play(5, scale=bad)
    answer = mansrtsp.parse(b"RTSP/1.0 457 Invalid Range\r\nCSeq: 4\r\n\r\n")
    assert (answer.status, answer.cseq, answer.reason) == (457, 4, "Invalid Range")
    for bad in (b"", b"GET / HTTP/1.1\r\nCSeq: 1\r\n", b"PLAY RTSP/1.0\r\n", b"PLAY RTSP/1.0\r\nCSeq: x\r\n",
                b"PLAY RTSP/1.0\r\nCSeq: 1\r\nRange: clock=now-\r\n", b"PLAY RTSP/1.0\r\nCSeq: 1\r\nbroken\r\n"):
        with pytest.raises(mansrtsp.MansRtspError):
            mansrtsp.parse(bad)


def test_playback_and_download_offers() -> None:
    sdp = media.invite_sdp(server_id="34020000002000000001", media_ip="10.0.0.1", media_port=9000,
                           ssrc="1200000001", session="Download", channel_id=CHANNEL, times=(T0, T0 + 60),
                           download_speed=4).decode()
    lines = sdp.split("\r\n")
    assert lines[2:5] == ["s=Download", f"u={CHANNEL}:0", "c=IN IP4 10.0.0.1"]
    assert f"t={T0} {T0 + 60}" in lines and "a=downloadspeed:4" in lines and lines[-2] == "y=1200000001"
    live = media.invite_sdp(server_id="s", media_ip="10.0.0.1", media_port=9000, ssrc="0200000001").decode()
    assert "u=" not in live and "t=0 0" in live and "downloadspeed" not in live


def answer(request: Request, status: int) -> Response:
    return Response(status, "OK" if status == 200 else "Refused", (
        ("Via", request.header("Via") or ""), ("From", request.header("From") or ""),
        ("To", (request.header("To") or "") + ";tag=dev"), ("Call-ID", request.call_id),
        ("CSeq", request.header("CSeq") or "")))


def part(sn: int, sum_num: int, items: list[manscdp.RecordItem], n: int) -> Request:
    return Request("MESSAGE", "sip:34020000002000000001@3402000000", (
        ("Via", f"SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKp{sn}x{n}"), ("From", f"<sip:{DEVICE}@3402000000>;tag=p{n}"),
        ("To", "<sip:34020000002000000001@3402000000>"), ("Call-ID", f"part-{sn}-{n}"), ("CSeq", f"{n} MESSAGE"),
        ("Content-Type", "Application/MANSCDP+xml")), manscdp.record_info_response(sn, CHANNEL, sum_num, items))


def registered() -> GbService:
    service = GbService(config(password=""), None, StreamRegistry())
    service.transport.address = ("127.0.0.1", 5060)
    service.on_message(register(1), SOURCE)
    service.devices[DEVICE].channels[CHANNEL] = manscdp.CatalogItem(CHANNEL)
    sent(service)
    return service


def test_record_query_assembles_parts_and_ends_at_the_time_limit_when_short() -> None:
    async def main() -> None:
        service = registered()
        results: list[object] = []

        async def ask(start: int, end: int) -> None:
            try:
                results.append(await service.history.query_records(CHANNEL, DEVICE, start, end))
            except GbError as e:
                results.append(e)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, T0, T0 + 3600)
            await trio.sleep(0.01)
            (query, _), = [(r, d) for r, d in sent(service) if isinstance(r, Request)]
            body = manscdp.parse(query.body)
            assert isinstance(body, manscdp.RecordInfoQuery) and body.device_id == CHANNEL
            assert (body.start_time, body.end_time, body.record_type) == ("2023-11-15T06:13:20",
                                                                          "2023-11-15T07:13:20", "all")
            service.on_message(answer(query, 200), SOURCE)
            service.on_message(part(body.sn, 3, [item(T0, T0 + 60), item(T0 + 60, T0 + 120)], 1), SOURCE)
            await trio.sleep(1.0)
            service.on_message(part(body.sn, 3, [item(T0 + 300, T0 + 360)], 2), SOURCE)
        assert [(r["start"], r["end"]) for r in results[0]] == [(T0, T0 + 60), (T0 + 60, T0 + 120),
                                                               (T0 + 300, T0 + 360)]

        results.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, T0, T0 + 3600)
            await trio.sleep(0.01)
            (query, _), = [(r, d) for r, d in sent(service) if isinstance(r, Request)]
            sn = manscdp.parse(query.body).sn
            service.on_message(answer(query, 200), SOURCE)
            began = trio.current_time()
            service.on_message(part(sn, 9, [item(T0, T0 + 60)], 1), SOURCE)
        error = results[0]
        assert isinstance(error, GbError) and error.code == 504 and "1 of 9" in error.message
        assert trio.current_time() - began == pytest.approx(RECORD_IDLE_TIMEOUT, abs=0.1)
        assert not service.history._queries  # nothing left waiting

        results.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, T0, T0 + 3600)
            await trio.sleep(0.01)
            (query, _), = [(r, d) for r, d in sent(service) if isinstance(r, Request)]
            service.on_message(answer(query, 403), SOURCE)
        assert isinstance(results[0], GbError) and results[0].code == 502

        for start, end in ((T0, T0), (T0 + 10, T0), (T0, T0 + 400 * 86400)):
            with pytest.raises(GbError) as refused:
                await service.history.query_records(CHANNEL, DEVICE, start, end)
            assert refused.value.code == 400
        assert not [r for r, _ in sent(service) if isinstance(r, Request)]

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
