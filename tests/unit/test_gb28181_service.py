"""The GB28181 service without sockets: messages go in through ``on_message`` and what it sends is
read from its send queue; the registry's resolver hook with a fake resolver; the srs-sip routes
against garbage bodies. trio with MockClock, so timers run in microseconds."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from pms_trio.config import SipConfig
from pms_trio.gb28181 import manscdp
from pms_trio.gb28181.service import GbService
from pms_trio.http import gb_api
from pms_trio.sip.addressing import Destination
from pms_trio.sip.digest import digest_response, parse_digest
from pms_trio.sip.message import Request, Response, parse_datagram
from pms_trio.streams import StreamRegistry

DEVICE = "34020000001320000001"
SOURCE = Destination("UDP", "192.0.2.7", 5060)


def config(**kw: Any) -> SipConfig:
    values = {"enable": True, "serial": "34020000002000000001", "realm": "3402000000", "listen_ip": "127.0.0.1",
              "port": 0, "announced_ip": "", "password": "pw", "keepalive_timeout": 30.0, "media_port": 9000,
              "media_transport": "tcp-passive"}
    values.update(kw)
    return SipConfig(**values)  # type: ignore[arg-type]


def register(cseq: int, auth: str | None = None, expires: int = 3600, branch: str = "z9hG4bKr") -> Request:
    headers = [("Via", f"SIP/2.0/UDP 10.0.0.9:5060;rport;branch={branch}{cseq}"),
               ("From", f"<sip:{DEVICE}@3402000000>;tag=dev1"), ("To", f"<sip:{DEVICE}@3402000000>"),
               ("Call-ID", "reg-1"), ("CSeq", f"{cseq} REGISTER"), ("Contact", f"<sip:{DEVICE}@10.0.0.9:5060>"),
               ("Expires", str(expires))]
    if auth:
        headers.append(("Authorization", auth))
    return Request("REGISTER", "sip:34020000002000000001@3402000000", tuple(headers))


def keepalive(n: int) -> Request:
    return Request("MESSAGE", "sip:34020000002000000001@3402000000", (
        ("Via", f"SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKk{n}"), ("From", f"<sip:{DEVICE}@3402000000>;tag=k{n}"),
        ("To", "<sip:34020000002000000001@3402000000>"), ("Call-ID", f"ka-{n}"), ("CSeq", f"{n} MESSAGE"),
        ("Content-Type", "Application/MANSCDP+xml")), manscdp.keepalive(n, DEVICE))


def sent(service: GbService) -> list[tuple[Any, Destination]]:
    out = []
    while True:
        try:
            data, destination = service._send_out.receive_nowait()
        except trio.WouldBlock:
            return out
        out.append((parse_datagram(data), destination))


def authorization(challenge: str, password: str) -> str:
    params = parse_digest(challenge)
    uri = "sip:34020000002000000001@127.0.0.1:5060"  # not the Request-URI: the header's uri is hashed
    response = digest_response(method="REGISTER", uri=uri, username=DEVICE, realm=params["realm"],
                               password=password, nonce=params["nonce"])
    return (f'Digest username="{DEVICE}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
            f'response="{response}", algorithm=MD5')


def test_register_challenge_200_queries_keepalive_and_offline() -> None:
    async def main() -> None:
        registry = StreamRegistry()
        service = GbService(config(), None, registry)
        service.transport.address = ("127.0.0.1", 5060)  # as if bound
        service.on_message(register(1), SOURCE)
        (challenge, where), = sent(service)
        assert isinstance(challenge, Response) and challenge.status == 401
        assert where == SOURCE  # rport: the packet's source, not the Via's 10.0.0.9
        service.on_message(register(2, authorization(challenge.header("WWW-Authenticate") or "", "pw")), SOURCE)
        out = sent(service)
        assert isinstance(out[0][0], Response) and out[0][0].status == 200 and out[0][0].header("Date")
        queries = [m for m, _ in out[1:] if isinstance(m, Request)]
        assert [manscdp.parse(q.body).__class__.__name__ for q in queries] == ["CatalogQuery", "DeviceInfoQuery"]
        assert all(q.uri == f"sip:{DEVICE}@192.0.2.7:5060" for q in queries)
        assert service.devices[DEVICE].online
        service.on_message(keepalive(1), SOURCE)
        assert sent(service)[0][0].status == 200 and service.devices[DEVICE].keepalives == 1
        await trio.sleep(31)  # keepaliveTimeout 30 s (MockClock): expiry runs in the registrar
        assert service.registrar.handle_timeout(trio.current_time()) == [DEVICE]
        service._offline(DEVICE)
        assert not service.devices[DEVICE].online
        service.on_message(keepalive(2), SOURCE)
        assert sent(service)[0][0].status == 400  # forgotten: it must REGISTER again

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_wrong_password_403_then_throttled() -> None:
    async def main() -> None:
        service = GbService(config(), None, StreamRegistry())
        service.transport.address = ("127.0.0.1", 5060)
        async with trio.open_nursery() as nursery:
            service._nursery = nursery
            statuses = []
            for n in range(1, 5):
                service.on_message(register(2 * n - 1, branch=f"z9hG4bKw{n}x"), SOURCE)
                (challenge, _), = sent(service)
                bad = authorization(challenge.header("WWW-Authenticate") or "", "nope")
                service.on_message(register(2 * n, bad, branch=f"z9hG4bKw{n}y"), SOURCE)
                statuses.append([m.status for m, _ in sent(service)])
            assert statuses == [[403], [403], [403], []]  # the 4th is held by the throttle
            await trio.sleep(1.1)
            assert [m.status for m, _ in sent(service)] == [403]  # after 1 s
            service.on_message(register(11, branch="z9hG4bKw5x"), SOURCE)
            service.on_message(register(11, branch="z9hG4bKw5x"), SOURCE)  # a retransmission fetches nothing
            assert sent(service) == []  # even the challenge waits now
            await trio.sleep(2.1)
            assert [m.status for m, _ in sent(service)] == [401]
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


class FakeResolver:
    def __init__(self, registry: StreamRegistry) -> None:
        self.registry = registry
        self.resolved: list[str] = []
        self.players: list[tuple[str, int]] = []
        self.keyframes: list[str] = []

    def knows(self, name: str, from_peer: bool) -> bool:
        return name.startswith("3402")

    async def resolve(self, name: str, timeout: float) -> bool:
        self.resolved.append(name)
        self.registry.add_publisher(name, 7, self, source="gb28181", pending=True)
        await trio.sleep(0.5)
        self.registry.on_producer_started(name, ["video/H264"])
        return True

    def players_changed(self, name: str, players: int) -> None:
        self.players.append((name, players))

    def keyframe_wanted(self, name: str) -> None:
        self.keyframes.append(name)

    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None:
        pass


class Owner:
    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None:
        pass


def test_registry_resolver_hook() -> None:
    async def main() -> None:
        registry = StreamRegistry()
        resolver = FakeResolver(registry)
        registry.add_resolver(resolver)
        assert await registry.locate("unknown-name") is None and resolver.resolved == []
        found = await registry.locate("34020000001310000001")
        assert found is not None and found.kind == "gb28181" and registry.is_live("34020000001310000001")
        registry.add_player("34020000001310000001", 8, Owner())
        registry.remove_transport(8)
        assert resolver.players == [("34020000001310000001", 1), ("34020000001310000001", 0)]
        registry.on_keyframe_wanted("34020000001310000001")
        registry.on_keyframe_wanted("not-a-stream")
        assert resolver.keyframes == ["34020000001310000001"]

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


class FakeGb:
    def list_devices(self) -> list[Any]:
        return []

    def list_channels(self, device_id: str | None = None) -> list[Any]:
        return []

    async def ptz(self, *args: Any) -> None:
        raise AssertionError("garbage reached ptz")


GARBAGE = [b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"channel_id": 5}', b'{"channel_id": ""}', b'"string"',
           b"1e999999", b'{"channel_id": "y", "transport": 3}', b'{"channel_id": "y", "play_type": 1}']
BAD_SPEED = [b'{"device_id": "x", "channel_id": "y", "ptz": "up", "speed": %s}' % v for v in (b"-1", b"true", b"256",
                                                                                              b'"fast"', b"1.5")]
CASES = [(route, body) for route in ("invite", "bye", "ptz") for body in GARBAGE
         if not (route == "bye" and b"transport" in body or route == "bye" and b"play_type" in body)
         and not (route == "ptz" and (b"transport" in body or b"play_type" in body))]
CASES += [("ptz", body) for body in BAD_SPEED]


@pytest.mark.parametrize(("route", "body"), CASES)
def test_srs_sip_routes_refuse_garbage_bodies(route: str, body: bytes) -> None:
    response = trio.run(gb_api.handle, FakeGb(), "POST", f"/srs-sip/v1/{route}", body, "rtsp://h:1")
    doc = json.loads(response.body)
    assert response.status == 400 and doc["code"] == 400 and doc["data"]["msg"], (route, body, doc)


def test_srs_sip_routes_envelope_and_methods() -> None:
    ok = trio.run(gb_api.handle, FakeGb(), "GET", "/srs-sip/v1/devices", b"", "rtsp://h:1")
    assert ok.status == 200 and json.loads(ok.body) == {"code": 0, "data": []}
    wrong = trio.run(gb_api.handle, FakeGb(), "DELETE", "/srs-sip/v1/channels", b"", "rtsp://h:1")
    assert wrong.status == 405
    off = trio.run(gb_api.handle, None, "GET", "/srs-sip/v1/devices", b"", "rtsp://h:1")
    assert off.status == 503 and json.loads(off.body)["code"] == 503
    missing = trio.run(gb_api.handle, FakeGb(), "GET", "/srs-sip/v1/nothing", b"", "rtsp://h:1")
    assert missing.status == 404


def test_keyframe_wanted_sends_ifamecmd_to_the_device() -> None:
    async def main() -> None:
        service = GbService(config(password=""), None, StreamRegistry())
        service.transport.address = ("127.0.0.1", 5060)
        service.on_message(register(1), SOURCE)
        sent(service)
        channel = "34020000001310000001"
        service.keyframe(service.devices[DEVICE], channel)
        (request, where), = sent(service)
        body = manscdp.parse(request.body)
        assert isinstance(body, manscdp.DeviceControl) and body.device_id == channel
        assert ("IFameCmd", "Send") in body.fields and where == SOURCE

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
