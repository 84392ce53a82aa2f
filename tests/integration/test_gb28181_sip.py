"""GB28181 SIP signaling against the real server: the camera simulator (tests/gb28181/camera.py) as
the device, the srs-sip HTTP API as the operator. No media here (test_gb28181_media.py has it)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gb28181"))
from camera import SERVER_ID, Camera, Msg, parse  # noqa: E402

from .conftest import Server, ServerFactory

PASSWORD = "s3cret"
DEVICE = "34020000001320000001"
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")


def gb_server(server: ServerFactory, **sip: Any) -> Server:
    cfg = {"sip": {"enable": True, "password": PASSWORD, "keepaliveTimeout": 60, **sip}}
    srv = server(cfg)
    assert isinstance(srv.ready.get("sip"), int) and srv.ready["sip"] > 0, srv.ready
    return srv


def sip_port(srv: Server) -> int:
    return int(srv.ready["sip"])


def call(srv: Server, method: str, path: str, body: dict[str, Any] | None = None,
         timeout: float = 15.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(srv.http_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def acall(srv: Server, method: str, path: str, body: dict[str, Any] | None = None,
                timeout: float = 15.0) -> tuple[int, Any]:
    return await asyncio.wait_for(asyncio.to_thread(call, srv, method, path, body, timeout), timeout + 2)


async def wait_api(srv: Server, path: str, predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    doc: Any = None
    for _ in range(int(timeout / 0.1) + 2):
        status, doc = await acall(srv, "GET", path)
        if status == 200 and predicate(doc["data"]):
            return doc["data"]
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s; last {doc}")


def device_doc(devices: list[dict[str, Any]], device_id: str = DEVICE) -> dict[str, Any] | None:
    return next((d for d in devices if d["device_id"] == device_id), None)


def test_register_digest_401_then_200_with_date(server: ServerFactory) -> None:
    srv = gb_server(server)

    async def main() -> None:
        cam = await Camera("127.0.0.1", sip_port(srv), password=PASSWORD).start()
        try:
            contact = [("Contact", f"<sip:{DEVICE}@127.0.0.1:{cam.local[1]}>"), ("Expires", "3600")]
            first = await cam.send_request(cam._request("REGISTER", extra=contact))
            assert first.status == 401, first.start
            challenge = first.h("WWW-Authenticate")
            assert challenge.startswith("Digest ") and 'realm="3402000000"' in challenge and "nonce=" in challenge
            ok = await cam.register()
            assert ok.status == 200, ok.start
            assert DATE.match(ok.h("Date")), ok.h("Date")
            assert ok.h("Expires") == "3600" and ok.h("Contact")
            devices = await wait_api(srv, "/srs-sip/v1/devices", lambda d: device_doc(d) is not None, 5,
                                     "device listed")
            doc = device_doc(devices)
            assert doc is not None and doc["status"] == "online" and doc["network_type"] == "UDP"
            assert doc["source_addr"] == f"127.0.0.1:{cam.local[1]}"
        finally:
            await cam.close()

    asyncio.run(main())


def test_register_wrong_password_403_and_unregister(server: ServerFactory) -> None:
    srv = gb_server(server)

    async def main() -> None:
        cam = await Camera("127.0.0.1", sip_port(srv), password=PASSWORD, transport="tcp").start()
        try:
            bad = await cam.register(password="wrong")
            assert bad.status == 403, bad.start
            status, doc = await acall(srv, "GET", "/srs-sip/v1/devices")
            assert status == 200 and doc["code"] == 0 and device_doc(doc["data"]) is None
            ok = await cam.register()
            assert ok.status == 200
            await wait_api(srv, "/srs-sip/v1/devices", lambda d: (device_doc(d) or {}).get("status") == "online",
                           5, "online")
            gone = await cam.register(expires=0)
            assert gone.status == 200 and gone.h("Expires") == "0"
            await wait_api(srv, "/srs-sip/v1/devices", lambda d: (device_doc(d) or {}).get("status") == "offline",
                           5, "offline after Expires 0")
            after = await cam.keepalive()
            assert after.status == 400, "a Keepalive after unregistering is from an unknown device"
        finally:
            await cam.close()

    asyncio.run(main())


def test_reregister_from_a_new_address_and_transport(server: ServerFactory) -> None:
    """A digest with qop=auth (nc, cnonce) is accepted; a REGISTER from a new address and transport
    moves the device (NAT, reboot)."""
    srv = gb_server(server)

    async def main() -> None:
        first = await Camera("127.0.0.1", sip_port(srv), password=PASSWORD, qop=True).start()  # Dahua style
        second = await Camera("127.0.0.1", sip_port(srv), password=PASSWORD, transport="tcp").start()
        try:
            assert (await first.register()).status == 200
            await wait_api(srv, "/srs-sip/v1/devices", lambda d: device_doc(d) is not None, 5, "listed")
            assert (await second.register()).status == 200
            devices = await wait_api(
                srv, "/srs-sip/v1/devices",
                lambda d: (device_doc(d) or {}).get("source_addr") == f"127.0.0.1:{second.local[1]}", 5,
                "the device moved to its new address")
            assert (device_doc(devices) or {})["network_type"] == "TCP"
            assert (await second.keepalive()).status == 200
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())


def test_keepalive_unknown_device_400_and_offline_after_timeout(server: ServerFactory) -> None:
    srv = gb_server(server, keepaliveTimeout=2)

    async def main() -> None:
        stranger = await Camera("127.0.0.1", sip_port(srv), device_id="34020000001320000099").start()
        cam = await Camera("127.0.0.1", sip_port(srv), password=PASSWORD).start()
        try:
            assert (await stranger.keepalive()).status == 400
            assert (await cam.register()).status == 200
            for sn in range(1, 4):  # kept online by keepalives, 3 x 1 s > keepaliveTimeout
                assert (await cam.keepalive(sn)).status == 200
                await asyncio.sleep(1.0)
            devices = await wait_api(srv, "/srs-sip/v1/devices", lambda d: device_doc(d) is not None, 5, "listed")
            assert (device_doc(devices) or {})["status"] == "online"
            assert (device_doc(devices) or {})["keepalives"] == 3
            started = time.monotonic()
            await wait_api(srv, "/srs-sip/v1/devices", lambda d: (device_doc(d) or {}).get("status") == "offline",
                           6, "offline after keepaliveTimeout")
            assert time.monotonic() - started >= 0.5  # not at once: the timeout runs from the last keepalive
            channels = (await acall(srv, "GET", f"/srs-sip/v1/devices/{DEVICE}/channels"))[1]["data"]
            assert channels and all(c["status"] == "OFF" for c in channels)
            metrics = urllib.request.urlopen(srv.http_url + "/metrics", timeout=5).read().decode()
            assert "pms_gb28181_devices_online 0" in metrics
        finally:
            await stranger.close()
            await cam.close()

    asyncio.run(main())


def test_catalog_in_several_messages_and_deviceinfo(server: ServerFactory) -> None:
    srv = gb_server(server)
    channels = [f"3402000000131000{n:04d}" for n in range(1, 8)]

    async def main() -> None:
        cam = await Camera("127.0.0.1", sip_port(srv), password=PASSWORD, transport="tcp", channels=channels,
                           catalog_parts=3).start()
        partial = await Camera("127.0.0.1", sip_port(srv), device_id="34020000001180000002", password=PASSWORD,
                               channels=["34020000001310009001", "34020000001310009002"], sum_num=5).start()
        try:
            assert (await cam.register()).status == 200
            assert (await partial.register()).status == 200
            got = await wait_api(srv, f"/srs-sip/v1/devices/{DEVICE}/channels", lambda d: len(d) == 7, 10,
                                 "7 channels from 3 Catalog MESSAGEs")
            assert sorted(c["device_id"] for c in got) == channels
            assert all(c["parent_device"] == DEVICE and c["status"] == "ON" for c in got)
            assert {c["name"] for c in got} == {f"通道{i}" for i in (1, 2, 3)}  # GB2312 names
            catalog_queries = [r for r in cam.requests if r.method == "MESSAGE" and b"Catalog" in r.body]
            assert len(catalog_queries) == 1 and r"Application/MANSCDP+xml" in catalog_queries[0].h("Content-Type")
            devices = await wait_api(srv, "/srs-sip/v1/devices",
                                     lambda d: (device_doc(d) or {}).get("manufacturer") == "pms-tests", 5,
                                     "DeviceInfo")
            doc = device_doc(devices) or {}
            assert doc["model"] == "sim-1" and doc["firmware"] == "V1.0" and doc["catalog_complete"] is True
            # SumNum 5 that never arrives: the 2 channels are kept
            got2 = await wait_api(srv, "/srs-sip/v1/devices/34020000001180000002/channels", lambda d: len(d) == 2,
                                  5, "partial catalog")
            assert {c["device_id"] for c in got2} == {"34020000001310009001", "34020000001310009002"}
            every = (await acall(srv, "GET", "/srs-sip/v1/channels"))[1]
            assert every["code"] == 0 and len(every["data"]) == 9
            status, missing = await acall(srv, "GET", "/srs-sip/v1/devices/34020000001320000077/channels")
            assert status == 404 and missing["code"] == 404 and missing["data"]["msg"]
        finally:
            await cam.close()
            await partial.close()

    asyncio.run(main())


def test_ptz_bytes_reach_the_camera(server: ServerFactory) -> None:
    srv = gb_server(server)
    channel = "34020000001310000001"

    async def main() -> None:
        cam = await Camera("127.0.0.1", sip_port(srv), password=PASSWORD, channels=[channel]).start()
        try:
            assert (await cam.register()).status == 200
            await wait_api(srv, "/srs-sip/v1/channels", lambda d: len(d) == 1, 5, "channel")
            for ptz, speed in (("right", 128), ("stop", 0), ("zoomin", 255)):
                status, doc = await acall(srv, "POST", "/srs-sip/v1/ptz",
                                          {"device_id": DEVICE, "channel_id": channel, "ptz": ptz, "speed": speed})
                assert status == 200 and doc["code"] == 0, doc
            # notes/gb28181.md section 4: right at 0x80, stop; zoom in: speed 255 -> zoom nibble F in byte 7
            assert cam.ptz_commands == ["A50F010180000036", "A50F0100000000B5", "A50F01100000F0B5"]
            assert all(f"<DeviceID>{channel}</DeviceID>" in body for body in cam.controls)
            status, doc = await acall(srv, "POST", "/srs-sip/v1/ptz",
                                      {"device_id": DEVICE, "channel_id": channel, "ptz": "sideways", "speed": 1})
            assert status == 400 and doc["code"] == 400
            status, doc = await acall(srv, "POST", "/srs-sip/v1/ptz", {"device_id": DEVICE})
            assert status == 400 and "channel_id" in doc["data"]["msg"]
        finally:
            await cam.close()

    asyncio.run(main())


def test_malformed_sip_is_answered_or_dropped(server: ServerFactory) -> None:
    srv = gb_server(server)
    port = sip_port(srv)

    async def main() -> None:
        cam = await Camera("127.0.0.1", port, password=PASSWORD).start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2.0)
                s.sendto(b"\x00\xffgarbage\r\n\r\n", ("127.0.0.1", port))  # unaddressable: dropped
                via = f"SIP/2.0/UDP 127.0.0.1:{s.getsockname()[1]};branch=z9hG4bKbad1"
                head = (f"MESSAGE sip:{SERVER_ID}@3402000000 SIP/2.0\r\nVia: {via}\r\n"
                        f"From: <sip:{DEVICE}@3402000000>;tag=1\r\nTo: <sip:{SERVER_ID}@3402000000>\r\n")
                s.sendto((head + "Call-ID: bad-0\r\nCSeq: x MESSAGE\r\n\r\n").encode(), ("127.0.0.1", port))
                s.sendto((head + "Call-ID: bad-1\r\nCSeq: 1 MESSAGE\r\nContent-Length: zz\r\n\r\n").encode(),
                         ("127.0.0.1", port))
                answer = parse(s.recvfrom(65536)[0])  # the unreadable CSeq got nothing: no CSeq to answer
                assert answer.status == 400 and answer.h("Call-ID") == "bad-1"
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"this is not SIP at all\r\n\r\n")
            await writer.drain()
            closed = await asyncio.wait_for(reader.read(65536), 5)
            for _ in range(100):  # the server may answer before closing; it must close
                if not closed:
                    break
                closed = await asyncio.wait_for(reader.read(65536), 5)
            assert closed == b"", "the server kept a connection that sent garbage open"
            writer.close()
            assert (await cam.register()).status == 200  # everyone else is fine
            assert (await cam.message(b"<Notify><CmdType>Keepalive</CmdType><SN>x")).status == 400
            assert (await cam.keepalive()).status == 200
        finally:
            await cam.close()

    asyncio.run(main())


def test_register_flood_is_throttled_while_others_register(server: ServerFactory) -> None:
    srv = gb_server(server)

    async def main() -> None:
        flood = await Camera("127.0.0.1", sip_port(srv), device_id="34020000001320000066", password="nope",
                             bind_host="127.0.0.2").start()
        cam = await Camera("127.0.0.1", sip_port(srv), password=PASSWORD).start()
        try:
            times = []
            for _ in range(5):
                t0 = time.monotonic()
                answer = await flood.register()
                times.append(time.monotonic() - t0)
                assert answer.status == 403
            assert max(times[:3]) < 0.9, times  # the first failures are answered at once
            assert times[3] >= 0.9 and times[4] >= 1.8, times  # then held 1 s, 2 s...
            t0 = time.monotonic()
            assert (await cam.register()).status == 200  # another source is not slowed
            assert time.monotonic() - t0 < 0.9
            # a burst from the flooding source does not stop the server either
            bursts = [asyncio.create_task(flood.register()) for _ in range(30)]
            assert (await cam.keepalive()).status == 200
            for task in bursts:
                task.cancel()
            await asyncio.gather(*bursts, return_exceptions=True)
        finally:
            await flood.close()
            await cam.close()

    asyncio.run(main())


def test_http_api_errors_and_envelope(server: ServerFactory) -> None:
    srv = gb_server(server)
    status, doc = call(srv, "GET", "/srs-sip/v1/devices")
    assert status == 200 and doc == {"code": 0, "data": []}
    status, doc = call(srv, "POST", "/srs-sip/v1/invite", {"device_id": DEVICE, "channel_id": "3402000000131000"
                                                                                              "0001"})
    assert status == 404 and doc["code"] == 404 and "msg" in doc["data"]
    status, doc = call(srv, "POST", "/srs-sip/v1/bye", {"channel_id": "34020000001310000001"})
    assert status == 404 and doc["code"] == 404
    request = urllib.request.Request(srv.http_url + "/srs-sip/v1/invite", data=b"{not json", method="POST")
    try:
        urllib.request.urlopen(request, timeout=5)
        raise AssertionError("a bad body was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 400 and json.loads(e.read())["code"] == 400
    status, doc = call(srv, "GET", "/srs-sip/v1/invite")
    assert status == 405


def test_invite_refused_by_device_and_bye_signaling(server: ServerFactory) -> None:
    """INVITE carries SPEC 7's Subject and SDP; a 486 from the device is an error for /invite."""
    srv = gb_server(server)
    channel = "34020000001310000001"

    async def main() -> None:
        cam = await Camera("127.0.0.1", sip_port(srv), password=PASSWORD, channels=[channel],
                           answer_invites=False).start()
        try:
            assert (await cam.register()).status == 200
            await wait_api(srv, "/srs-sip/v1/channels", lambda d: len(d) == 1, 5, "channel")
            status, doc = await acall(srv, "POST", "/srs-sip/v1/invite",
                                      {"device_id": DEVICE, "channel_id": channel, "transport": "udp"})
            assert status == 502 and doc["code"] == 502 and "486" in doc["data"]["msg"], doc
            invite = next(r for r in cam.requests if r.method == "INVITE")
            check_invite(invite, channel, "udp")
            acks = [r for r in cam.requests if r.method == "ACK"]
            assert len(acks) == 1 and acks[0].h("Call-ID") == invite.h("Call-ID")
            status, _ = await acall(srv, "GET", "/srs-sip/v1/channels")
            assert status == 200
        finally:
            await cam.close()

    asyncio.run(main())


def check_invite(invite: Msg, channel: str, transport: str) -> None:
    """SPEC 7: Subject CHANNEL:SSRC,SERVER:0; y= 10 digits (0, realm digits 4-8, sequence) = the
    Subject's SSRC; m= proto and a=setup by transport; rtpmap 96 PS."""
    assert invite.start.startswith(f"INVITE sip:{channel}@"), invite.start
    subject = re.fullmatch(rf"{channel}:(\d{{10}}),{SERVER_ID}:0", invite.h("Subject"))
    assert subject, invite.h("Subject")
    sdp = invite.body.decode()
    y = re.search(r"(?m)^y=(\d+)\r$", sdp)
    assert y and y.group(1) == subject.group(1) and y.group(1)[:6] == "0" + "3402000000"[3:8], sdp
    assert sdp.endswith("\r\n") and "a=rtpmap:96 PS/90000" in sdp and "a=recvonly" in sdp
    m = re.search(r"(?m)^m=video (\d+) (\S+) ", sdp)
    assert m and int(m.group(1)) > 0
    if transport == "udp":
        assert m.group(2) == "RTP/AVP" and "a=setup" not in sdp
    else:
        assert m.group(2) == "TCP/RTP/AVP" and f"a=setup:{transport.split('-')[1]}" in sdp
    assert re.search(r"(?m)^c=IN IP4 127\.0\.0\.1\r$", sdp), sdp
