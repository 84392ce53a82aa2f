"""The stream registry learns no kind's name: owners and resolvers are typed Protocols, a pending
publish goes live by its owner's word, at its first media (``live_at_media``) or by a resolver's;
and the GB28181 service's timer task sleeps until the next deadline and wakes early for an earlier one."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from pms_trio.config import SipConfig
from pms_trio.gb28181.service import GbService, serve
from pms_trio.sip.addressing import Destination
from pms_trio.sip.message import Request, parse_datagram
from pms_trio.streams import Resolver, StreamRegistry, TransportOwner

DEVICE = "34020000001320000001"
SOURCE = Destination("UDP", "192.0.2.7", 5060)


def config(**kw: Any) -> SipConfig:
    values = {"enable": True, "serial": "34020000002000000001", "realm": "3402000000", "listen_ip": "127.0.0.1",
              "port": 0, "announced_ip": "", "password": "", "keepalive_timeout": 30.0, "media_port": 9000,
              "media_transport": "tcp-passive"}
    values.update(kw)
    return SipConfig(**values)  # type: ignore[arg-type]


def register(cseq: int) -> Request:
    return Request("REGISTER", "sip:34020000002000000001@3402000000", (
        ("Via", f"SIP/2.0/UDP 10.0.0.9:5060;rport;branch=z9hG4bKr{cseq}"),
        ("From", f"<sip:{DEVICE}@3402000000>;tag=dev1"), ("To", f"<sip:{DEVICE}@3402000000>"),
        ("Call-ID", "reg-1"), ("CSeq", f"{cseq} REGISTER"), ("Contact", f"<sip:{DEVICE}@10.0.0.9:5060>"),
        ("Expires", "3600")))


class Owner:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None:
        self.events.append(("closed", transport_id, stream, role, reason))

    def rtsp_message(self, transport_id: int, data: bytes) -> None:
        self.events.append(("message", transport_id, data))

    def rtsp_alive(self, transport_id: int) -> None:
        self.events.append(("alive", transport_id))

    def rtsp_disconnected(self, transport_id: int, reason: str) -> None:
        self.events.append(("disconnected", transport_id, reason))


class Pull:
    """A resolver of another kind (a cascade pull): it publishes as "cascade" and goes live by its word."""

    def __init__(self, registry: StreamRegistry) -> None:
        self.registry = registry

    def knows(self, name: str, from_peer: bool) -> bool:
        return name.startswith("edge/")

    async def resolve(self, name: str, timeout: float) -> bool:
        self.registry.add_publisher(name, 40, Owner(), source="cascade", pending=True)
        await trio.sleep(0.2)
        return True

    def players_changed(self, name: str, players: int) -> None:
        pass

    def keyframe_wanted(self, name: str) -> None:
        pass


def test_owner_and_resolver_are_protocols() -> None:
    owner: TransportOwner = Owner()
    resolver: Resolver = Pull(StreamRegistry())
    assert owner and resolver


def test_live_at_media_goes_live_at_producer_started_only() -> None:
    reg = StreamRegistry()
    owner = Owner()
    reg.add_publisher("cam", 1, owner, source="anything", pending=True, live_at_media=True)
    reg.add_publisher("rec", 2, owner, source="anything", pending=True)
    reg.on_producer_started("cam", ["video/H264"])
    reg.on_producer_started("rec", ["video/H264"])
    assert reg.is_live("cam") and not reg.is_live("rec")  # "rec" waits for its owner's mark_live
    reg.on_rtsp_alive(2)
    reg.on_rtsp_message(2, b"x")
    assert owner.events == [("alive", 2), ("message", 2, b"x")]


def test_a_resolver_marks_its_stream_live_and_names_its_kind() -> None:
    async def main() -> None:
        reg = StreamRegistry()
        reg.add_resolver(Pull(reg))
        found = await reg.locate("edge/cam")
        assert found is not None and found.kind == "cascade" and reg.is_live("edge/cam")
        assert await reg.locate("other") is None

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_serve_hands_back_the_service() -> None:
    async def main() -> None:
        registry = StreamRegistry()
        async with trio.open_nursery() as nursery:
            service = await nursery.start(serve, config(port=0), None, registry)
            assert isinstance(service, GbService) and service.address[1] > 0
            assert registry._resolvers == [service.plays]
            nursery.cancel_scope.cancel()

    trio.run(main)


def _requests(service: GbService) -> list[Request]:
    out = []
    while True:
        try:
            data, _ = service._send_out.receive_nowait()
        except trio.WouldBlock:
            return out
        message = parse_datagram(data)
        if isinstance(message, Request):
            out.append(message)


def test_timer_task_sleeps_to_the_deadline_and_wakes_early() -> None:
    """A MESSAGE over UDP is retransmitted at T1 (0.5 s) after it was sent, though the timer task
    was asleep with no deadline at all when it went out; a device expires at keepaliveTimeout."""

    async def main() -> None:
        service = GbService(config(), None, StreamRegistry())
        service.transport.address = ("127.0.0.1", 5060)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service._timers)
            await trio.sleep(100)  # nothing to do: the task waits for ever, not in ticks
            start = trio.current_time()
            service.on_message(register(1), SOURCE)  # registered: Catalog and DeviceInfo queries go out
            first = _requests(service)
            assert [r.method for r in first] == ["MESSAGE", "MESSAGE"]
            await trio.sleep(0.49)
            assert _requests(service) == []
            await trio.sleep(0.02)
            assert [r.method for r in _requests(service)] == ["MESSAGE", "MESSAGE"]  # at T1
            assert trio.current_time() - start < 0.52
            await trio.sleep(31)
            assert not service.devices[DEVICE].online  # keepaliveTimeout, at most SLOW_TICK late
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
