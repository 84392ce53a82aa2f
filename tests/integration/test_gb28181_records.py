"""GB28181 against the real server, srs-sip's API for devices and what they recorded: the version
and route list, the device and channel fields srs-sip writes, PTZ in srs-sip's spellings,
RecordInfo over several MESSAGEs (and one that never completes), alarms. The SD-card camera
simulator (tests/gb28181/sdcard.py) is the device."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Server, ServerFactory
from .test_gb28181_sip import DEVICE, PASSWORD, acall, gb_server, sip_port, wait_api
from .test_hooks import Receiver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gb28181"))
from sdcard import SdCamera, device_time  # noqa: E402

CHANNEL = "34020000001310000001"
T0 = 1_700_000_000  # 2023-11-15T06:13:20+08:00
SPANS = [(T0, T0 + 600), (T0 + 900, T0 + 1200), (T0 + 3600, T0 + 3660), (T0 + 7200, T0 + 7300)]


async def sd_camera(srv: Server, **kw: Any) -> SdCamera:
    cam = await SdCamera("127.0.0.1", sip_port(srv), password=PASSWORD, channels=[CHANNEL], **kw).start()
    assert (await cam.register()).status == 200
    await wait_api(srv, "/srs-sip/v1/channels", lambda d: len(d) == 1, 5, "the channel")
    return cam


def test_srs_sip_version_routes_device_and_channel_fields_ptz(server: ServerFactory) -> None:
    srv = gb_server(server, keepaliveTimeout=90)

    async def main() -> None:
        cam = await sd_camera(srv)
        try:
            status, doc = await acall(srv, "GET", "/srs-sip")
            assert status == 200 and doc == {"version": "v1"}
            status, doc = await acall(srv, "GET", "/srs-sip/v1")
            routes = {(r["method"], r["path"]) for r in doc["data"]}
            for route in (("GET", "/srs-sip/v1/devices"), ("POST", "/srs-sip/v1/invite"),
                          ("POST", "/srs-sip/v1/query-record"), ("POST", "/srs-sip/v1/pause"),
                          ("POST", "/srs-sip/v1/resume"), ("POST", "/srs-sip/v1/speed"),
                          ("GET", "/srs-sip/v1/alarms"), ("POST", "/srs-sip/v1/ptz")):
                assert route in routes, (route, routes)
            for n in range(2):
                assert (await cam.keepalive(sn=10 + n)).status == 200
                await asyncio.sleep(1.1)
            device = next(d for d in (await acall(srv, "GET", "/srs-sip/v1/devices"))[1]["data"]
                          if d["device_id"] == DEVICE)
            assert device["network_type"] == "UDP" and device["online"] is True
            assert device["heart_beat_interval"] == 1 and device["heart_beat_count"] == 90, device
            channel = (await acall(srv, "GET", f"/srs-sip/v1/devices/{DEVICE}/channels"))[1]["data"][0]
            assert channel["info"] == {"ptz_type": 1, "resolution": "", "download_speed": ""}, channel
            assert channel["ptz_type"] == 1 and channel["status"] == "ON"  # today's fields stay
            for ptz, speed in (("zoom_in", "9"), ("zoom_out", "1"), ("up", "5"), ("left", 200)):
                status, doc = await acall(srv, "POST", "/srs-sip/v1/ptz", {"device_id": DEVICE, "channel_id": CHANNEL,
                                                                          "ptz": ptz, "speed": speed})
                assert status == 200 and doc["code"] == 0, doc
            await cam.wait_for(lambda: len(cam.ptz_commands) == 4, 5, "four PTZ commands")
            zoom_in, zoom_out, up, left = (bytes.fromhex(c) for c in cam.ptz_commands)
            assert zoom_in[3] == 0x10 and zoom_in[6] >> 4 == 0xF  # "9" is full speed: 255 >> 4
            assert zoom_out[3] == 0x20 and zoom_out[6] >> 4 == 1  # "1": 28 >> 4
            assert up[3] == 0x08 and up[5] == 142  # "5" of 9 is 142 of 255, not 5
            assert left[3] == 0x02 and left[4] == 200  # an integer is the byte itself
            status, doc = await acall(srv, "POST", "/srs-sip/v1/ptz", {"device_id": DEVICE, "channel_id": CHANNEL,
                                                                      "ptz": "up", "speed": "fast"})
            assert status == 400 and doc["code"] == 400
        finally:
            await cam.close()

    asyncio.run(main())


def test_query_record_over_two_messages_returns_every_span(server: ServerFactory) -> None:
    srv = gb_server(server)

    async def main() -> None:
        cam = await sd_camera(srv, records=SPANS, record_parts=2)
        try:
            status, doc = await acall(srv, "POST", "/srs-sip/v1/query-record", {
                "device_id": DEVICE, "channel_id": CHANNEL, "start_time": T0 - 60, "end_time": T0 + 4000})
            assert status == 200 and doc["code"] == 0, doc
            items = doc["data"]
            assert [(i["start"], i["end"]) for i in items] == SPANS[:3]
            first = items[0]
            assert first["start_time"] == device_time(T0) == "2023-11-15T06:13:20"
            assert set(first) >= {"device_id", "name", "file_path", "address", "start_time", "end_time", "secrecy",
                                  "type"}
            assert first["device_id"] == CHANNEL and first["file_path"] == f"/sd/{T0}.mp4" and first["type"] == "time"
            query = cam.record_queries[-1]
            assert re.search(r"<StartTime>2023-11-15T06:12:20</StartTime>", query), query
            assert "<DeviceID>34020000001310000001</DeviceID>" in query
            # ISO 8601 is accepted too, and a window with no record is an empty list
            status, doc = await acall(srv, "POST", "/srs-sip/v1/query-record", {
                "device_id": DEVICE, "channel_id": CHANNEL, "start_time": "2023-11-15T06:10:00+08:00",
                "end_time": "2023-11-14T22:30:00Z"})
            assert status == 200 and [(i["start"], i["end"]) for i in doc["data"]] == SPANS[:2], doc
            status, doc = await acall(srv, "POST", "/srs-sip/v1/query-record", {
                "device_id": DEVICE, "channel_id": CHANNEL, "start_time": T0 + 20000, "end_time": T0 + 30000})
            assert status == 200 and doc["data"] == []
            # impossible times: refused without asking the device
            asked = len(cam.record_queries)
            for bad in ({"start_time": T0, "end_time": T0 - 5}, {"start_time": "yesterday", "end_time": T0},
                        {"start_time": 10 ** 13, "end_time": 10 ** 13 + 5}, {"end_time": T0}):
                status, doc = await acall(srv, "POST", "/srs-sip/v1/query-record",
                                          {"device_id": DEVICE, "channel_id": CHANNEL, **bad})
                assert status == 400 and doc["code"] == 400 and doc["data"]["msg"], (bad, doc)
            assert len(cam.record_queries) == asked
        finally:
            await cam.close()

    asyncio.run(main())


def test_query_record_that_never_completes_is_a_clear_error(server: ServerFactory) -> None:
    srv = gb_server(server)

    async def main() -> None:
        cam = await sd_camera(srv, records=SPANS, record_parts=1, record_sum_num=9)
        try:
            began = time.monotonic()
            status, doc = await acall(srv, "POST", "/srs-sip/v1/query-record", {
                "device_id": DEVICE, "channel_id": CHANNEL, "start_time": T0, "end_time": T0 + 8000}, timeout=40)
            waited = time.monotonic() - began
            assert status == 504 and doc["code"] == 504, doc
            assert "4 of 9" in doc["data"]["msg"], doc
            assert 4.0 <= waited <= 12.0, waited  # the idle limit after the last part, not a hang
        finally:
            await cam.close()

    asyncio.run(main())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_alarm_is_answered_kept_listed_and_sent_to_on_device(server: ServerFactory, receiver: Receiver) -> None:
    srv = server({"sip": {"enable": True, "password": PASSWORD, "keepaliveTimeout": 60},
                  "hooks": {"onDevice": receiver.url("/allow")}})

    async def main() -> None:
        cam = await sd_camera(srv)
        try:
            for sn in range(1, 4):
                body = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Alarm</CmdType>\r\n'
                        f"<SN>{sn}</SN>\r\n<DeviceID>{CHANNEL}</DeviceID>\r\n<AlarmPriority>1</AlarmPriority>\r\n"
                        f"<AlarmMethod>2</AlarmMethod>\r\n<AlarmTime>2023-11-15T06:13:2{sn}</AlarmTime>\r\n"
                        "<AlarmDescription>motion</AlarmDescription>\r\n<Info>\r\n<AlarmType>2</AlarmType>\r\n"
                        "</Info>\r\n</Notify>\r\n")
                assert (await cam.message(body.encode())).status == 200
            await cam.wait_for(lambda: sum("<CmdType>Alarm</CmdType>" in c for c in
                                           [r.body.decode("gb2312", "replace") for r in cam.requests]) == 3,
                               5, "three Alarm Responses")
            answer = next(r.body.decode() for r in cam.requests if b"<CmdType>Alarm</CmdType>" in r.body)
            assert "<Response>" in answer and "<Result>OK</Result>" in answer and "<SN>1</SN>" in answer
            status, doc = await acall(srv, "GET", f"/srs-sip/v1/alarms?device_id={DEVICE}")
            assert status == 200 and [a["sn"] for a in doc["data"]] == [3, 2, 1], doc
            alarm = doc["data"][-1]
            assert (alarm["channel_id"], alarm["priority"], alarm["method"], alarm["type"], alarm["description"]) == (
                CHANNEL, "1", "2", "2", "motion")
            status, doc = await acall(srv, "GET", "/srs-sip/v1/alarms?device_id=34020000001320000999")
            assert status == 404
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(receiver.events("/allow", "device")) < 4:
                await asyncio.sleep(0.1)
            events = receiver.events("/allow", "device")
            assert [e["kind"] for e in events] == ["online", "alarm", "alarm", "alarm"], events
            assert events[0]["online"] is True and events[0]["device"] == DEVICE
            assert events[1]["alarm"]["channel_id"] == CHANNEL and events[1]["alarm"]["sn"] == 1, events[1]
        finally:
            await cam.close()

    asyncio.run(main())
