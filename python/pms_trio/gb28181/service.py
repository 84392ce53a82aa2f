"""The GB28181 SIP service: registrations, device queries, keepalive expiry (SPEC section 7).

Owns the state of the devices this server knows (:class:`DeviceState`: address, online flag,
DeviceInfo, channels from the Catalog) and drives the sans-IO pieces beneath it: the transaction
layer (``sip.transaction``), the registrar (``gb28181.registrar``), the catalog assembler
(``gb28181.catalog``). Plays (INVITE/ACK/BYE, on demand) live in ``gb28181.play`` and use this
service to send. The sockets are ``gb28181.transport``'s. Entry point: :func:`serve`, supervised by
the app's root nursery; it reports the bound ``(ip, port)`` (UDP and TCP, the same number).

Decisions where the spec is silent:

- Message handling is synchronous (the transport calls :meth:`GbService.on_message`). A UDP send
  goes out at once (non-blocking ``sendto``); only when the socket buffer is full is it queued, and
  one task writes the queue (later sends queue behind it, so order holds). A TCP send is a task of
  its own, so a slow TCP peer delays no one.
- Timers stay data in the sans-IO modules (``next_deadline()``/``handle_timeout(now)``). One timer
  task sleeps until the earliest deadline (``trio.move_on_at``) and is woken early when handling a
  message or sending a request sets an earlier one. Transaction timers (retransmissions over UDP)
  run at their deadline; catalog idle timeouts and keepalive/registration expiry at most every
  :data:`SLOW_TICK` s (seconds matter there, and the catalog look-up scans every pending query).
- After a REGISTER that makes a device online (first registration, or a device that was offline)
  the server sends a Catalog query and a DeviceInfo query. Channels from every Catalog Response part
  are merged into the device at once (the API shows a partial list while parts arrive, and keeps
  it when SumNum is never reached); the assembler only says when a catalog is complete.
- A device offline (``sip.keepaliveTimeout`` without a MESSAGE, registration expired, or
  ``Expires: 0``) stays listed with ``status: "offline"``; its channels are offline, its streams end
  (BYE). A device that was forgotten by the registrar must REGISTER again: its Keepalive gets 400
  (as srs-sip does).
- Requests to a device go to the address its last REGISTER or MESSAGE came from, over the same
  transport (NAT: Contact holds a private address). Our Via/From/SDP address is ``sip.announcedIp``,
  else ``sip.listenIp``, else (``0.0.0.0``) the local address the system routes to the device from.
"""

from __future__ import annotations

import itertools
import logging
import math
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..config import SipConfig
from ..streams import StreamRegistry
from ..sip.addressing import Destination, make_via, new_branch
from ..sip.dialog import new_call_id, new_tag
from ..sip.message import (
    LocalProtocolError,
    Message,
    Request,
    Response,
    SipParseError,
    error_response,
    response_to,
)
from ..sip.transaction import Deliver, Output, Send, TimedOut, TransactionLayer
from . import manscdp
from .catalog import CatalogAssembler
from .devices import DeviceState, GbError, describe_channel
from .play import Plays
from .playback import History
from .registrar import Registrar
from .transport import SipTransport

if TYPE_CHECKING:
    from .. import _core

__all__ = ["DeviceState", "GbError", "GbService", "describe_channel", "serve"]

log = logging.getLogger("pms_trio.sip")

SLOW_TICK = 0.5
USER_AGENT = "pms-trio"
MANSCDP = "Application/MANSCDP+xml"
REQUEST_TIMEOUT = 5.0
SEND_QUEUE = 20_000
MAX_DELAYED = 2_000
# Over UDP a finished non-INVITE server transaction lives 32 s (Timer J) and every registration
# makes four transactions: 10,000 devices registering at 500/s hold ~40,000. Past this, 503.
MAX_TRANSACTIONS = 60_000


class GbService:
    def __init__(self, config: SipConfig, core: _core.Core, registry: StreamRegistry, *,
                 media_ports: tuple[int, int] | None = None) -> None:
        self.config = config
        self.core = core
        self.registry = registry
        self.media_ports = media_ports or (config.media_port, config.media_port)
        # Hears devices going online/offline (device id, online): the onDevice hook. Never blocks.
        self.on_device: Callable[[str, bool], None] | None = None
        # Hears a device's other events (device id, kind "alarm"|"media_status", fields): onDevice too.
        self.on_device_event: Callable[[str, str, dict[str, Any]], None] | None = None
        self.transport = SipTransport(self.on_message)
        self.tx = TransactionLayer(max_transactions=MAX_TRANSACTIONS)
        self.registrar = Registrar(realm=config.realm, password=config.password or None,
                                   keepalive_timeout=config.keepalive_timeout)
        self.catalogs = CatalogAssembler()
        self.devices: dict[str, DeviceState] = {}
        self._sn = itertools.count(1)
        self._waiters: dict[str, tuple[trio.Event, list[Response]]] = {}  # our branch -> final response
        self._send_in, self._send_out = trio.open_memory_channel[tuple[bytes, Destination]](SEND_QUEUE)
        self._nursery: trio.Nursery | None = None
        self._local_ips: dict[str, str] = {}
        self._delayed = 0
        self._send_queued = 0  # in the queue: later UDP sends queue behind them (order kept)
        self._wake = trio.Event()  # set when a deadline earlier than the timer task's wait appears
        self._waiting_until = math.inf  # what the timer task waits for
        self._slow_at = math.inf  # when catalog and device time-outs must next run
        self._last_slow = -math.inf
        self.plays = Plays(self)  # the service is the plays' PlayHost (sending, device look-up)
        self.history = History(self, self.plays)  # RecordInfo, playback, download
        self.keepalive_timeout = config.keepalive_timeout

    # -- lifecycle

    async def run(self, *, task_status: trio.TaskStatus[GbService] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; reports this service once its sockets are bound."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.transport.serve, self.config.listen_ip, self.config.port)
            nursery.start_soon(self._sender)
            nursery.start_soon(self._timers)
            self.registry.add_resolver(self.plays)
            task_status.started(self)
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(1.5):
                    await self._goodbye()
                self.transport.close()

    async def _goodbye(self) -> None:
        """At stop (SPEC 1: BYE to GB28181 devices): end every play, then write what is queued
        ourselves (the sender task is being cancelled)."""
        self.transport.closing = True
        self.plays.end_all()
        while True:
            try:
                data, destination = self._send_out.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            self._send_queued -= 1
            await self.transport.send(data, destination)

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(ip, port)`` (UDP and TCP)."""
        return self.transport.address

    @property
    def port(self) -> int:
        return self.transport.address[1]

    def spawn(self, fn: Any, *args: Any) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    def local_ip(self, toward: str) -> str:
        """Our address as ``toward`` sees it (module docstring)."""
        if self.config.announced_ip:
            return self.config.announced_ip
        if self.config.listen_ip not in ("0.0.0.0", "::", ""):
            return self.config.listen_ip
        cached = self._local_ips.get(toward)
        if cached is None:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.connect((toward, 9))
                    cached = s.getsockname()[0]
            except OSError:
                cached = "127.0.0.1"
            self._local_ips[toward] = cached
        return cached

    # -- sending

    def send(self, data: bytes, destination: Destination) -> None:
        if destination.reliable and not self.transport.closing:
            self.transport.send_soon(data, destination)
            return
        if not destination.reliable and self._send_queued == 0 and self.transport.send_udp_now(data, destination):
            return  # the usual case: no queue, no task switch
        self._send_queued += 1
        try:
            self._send_in.send_nowait((data, destination))
        except trio.WouldBlock:
            log.warning("sip: send queue full (%d); a message to %s:%d dropped", SEND_QUEUE,
                        destination.host, destination.port)

    async def _answer_later(self, request: Request, response: Response, delay: float) -> None:
        try:
            await trio.sleep(delay)
            self._outputs(self.tx.send_response(request, response, trio.current_time()))
            self._deadlines_changed()
        except LocalProtocolError:
            pass  # the transaction ended meanwhile (the device gave up)
        finally:
            self._delayed -= 1

    async def _sender(self) -> None:
        async for data, destination in self._send_out:
            self._send_queued -= 1
            await self.transport.send(data, destination)

    def _outputs(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Send):
                self.send(out.data, out.destination)
            elif isinstance(out, Deliver):
                if isinstance(out.message, Request):
                    self._handle_request(out.message, out.source or Destination("UDP", "", 0))
                else:
                    self._handle_response(out.message)
            elif isinstance(out, TimedOut):
                self._timed_out(out.request)

    def answer(self, request: Request, response: Response, delay: float = 0.0) -> None:
        """Answer through the server transaction. A held answer (the failure throttle) enters the
        transaction only when sent, so a retransmitted request cannot fetch it early; past
        :data:`MAX_DELAYED` held answers, further ones are dropped (the device retries)."""
        if delay <= 0:
            self._outputs(self.tx.send_response(request, response, trio.current_time()))
        elif self._delayed < MAX_DELAYED:
            self._delayed += 1
            self.spawn(self._answer_later, request, response, delay)

    def new_request(self, method: str, device: DeviceState, target_user: str, *, body: bytes = b"",
                    content_type: str | None = None, extra: tuple[tuple[str, str], ...] = ()) -> Request:
        """A request outside any dialog to ``target_user`` (device or channel ID) at the device."""
        address = device.address
        ours = self.local_ip(address.host)
        target = f"sip:{target_user}@{address.host}:{address.port}"
        headers: list[tuple[str, str]] = [
            ("Via", make_via(address.transport, ours, self.port, new_branch())),
            ("From", f"<sip:{self.config.serial}@{self.config.realm}>;tag={new_tag()}"),
            ("To", f"<{target}>"), ("Call-ID", new_call_id(ours)), ("CSeq", f"{next(self._sn)} {method}"),
            ("Max-Forwards", "70"), ("User-Agent", USER_AGENT), *extra]
        if content_type:
            headers.append(("Content-Type", content_type))
        return Request(method, target, tuple(headers), body)

    def start_request(self, request: Request, device: DeviceState) -> trio.Event:
        """Send through a client transaction; the event is set at its final response (or time-out)."""
        branch = request.top_via.branch or ""
        event = trio.Event()
        self._waiters[branch] = (event, [])
        self._outputs(self.tx.send_request(request, device.address, trio.current_time()))
        self._deadlines_changed()
        return event

    async def request(self, request: Request, device: DeviceState, timeout: float = REQUEST_TIMEOUT) -> Response | None:
        """Send and wait for the final response (``None``: no answer in ``timeout`` s)."""
        branch = request.top_via.branch or ""
        event = self.start_request(request, device)
        try:
            with trio.move_on_after(timeout):
                await event.wait()
            found = self._waiters.get(branch, (event, []))[1]
            return found[0] if found else None
        finally:
            self._waiters.pop(branch, None)

    def message(self, device: DeviceState, body: bytes, target: str | None = None) -> Request:
        return self.new_request("MESSAGE", device, target or device.device_id, body=body, content_type=MANSCDP)

    def next_sn(self) -> int:
        return next(self._sn)

    # -- receiving

    def on_message(self, message: Message, source: Destination) -> None:
        try:
            self._outputs(self.tx.receive(message, source, trio.current_time()))
        except SipParseError as e:  # an unreadable header in a response (requests are answered 400)
            log.info("sip %s %s:%d: message dropped (%s)", source.transport, source.host, source.port, e.message)
        self._deadlines_changed()

    def _handle_response(self, response: Response) -> None:
        try:
            branch = response.top_via.branch or ""
            method = response.cseq[1]
        except Exception:  # noqa: BLE001 - an unreadable stray response: nothing to do
            return
        if method == "INVITE":
            self.plays.on_invite_response(response)
        if response.status >= 200:
            waiter = self._waiters.get(branch)
            if waiter is not None and not waiter[1]:
                waiter[1].append(response)
                waiter[0].set()
            if response.status >= 300 and method == "MESSAGE":
                log.info("sip: MESSAGE to %s answered %d", response.to.sip_uri.user, response.status)

    def _timed_out(self, request: Request) -> None:
        branch = request.top_via.branch or ""
        waiter = self._waiters.get(branch)
        if waiter is not None:
            waiter[0].set()
        if request.method == "INVITE":
            self.plays.on_invite_timeout(request)
        else:
            log.info("sip: %s to %s got no answer", request.method, request.uri)

    def _handle_request(self, request: Request, source: Destination) -> None:
        """A new request: a header the parser kept but a handler cannot read (a To or Contact that
        does not parse...) is the peer's mistake: 400 when the answer can be addressed, else drop."""
        try:
            self._dispatch_request(request, source)
        except SipParseError as e:
            log.info("sip %s %s:%d: %s refused (%s)", source.transport, source.host, source.port, request.method,
                     e.message)
            answer = error_response(SipParseError(e.message, e.status_hint, headers=request.headers))
            if answer is not None and request.method != "ACK":
                try:
                    self.answer(request, answer)
                except LocalProtocolError:
                    pass  # already answered before the error

    def _dispatch_request(self, request: Request, source: Destination) -> None:
        method = request.method
        if method == "ACK":
            return
        if method == "REGISTER":
            self._handle_register(request, source)
        elif method == "MESSAGE":
            self._handle_message(request, source)
        elif method == "BYE":
            self.answer(request, self.plays.on_bye(request))
        elif method in ("OPTIONS", "NOTIFY", "INFO"):
            self.answer(request, response_to(request, 200, to_tag=new_tag()))
        elif method == "CANCEL":
            self.answer(request, response_to(request, 481, to_tag=new_tag()))
        else:
            self.answer(request, response_to(request, 405, to_tag=new_tag(), headers=(
                ("Allow", "REGISTER, MESSAGE, BYE, ACK, OPTIONS, NOTIFY, INFO"),)))

    def _handle_register(self, request: Request, source: Destination) -> None:
        outcome = self.registrar.handle_register(request, source, trio.current_time(), time.time())
        self.answer(request, outcome.response, outcome.delay)
        device_id = outcome.device_id or ""
        if outcome.event in ("registered", "refreshed"):
            device = self.devices.get(device_id)
            wall = time.time()
            query = device is None or not device.online
            if device is None:
                device = self.devices[device_id] = DeviceState(device_id, source,
                                                               keepalive_timeout=self.config.keepalive_timeout)
            device.address, device.online, device.last_seen = source, True, wall
            device.user_agent = request.header("User-Agent") or device.user_agent
            if query:
                device.registered_at = wall
                log.info("sip: device %s registered from %s %s:%d", device_id, source.transport, source.host,
                         source.port)
                self.query_device(device)
                self._device_changed(device_id, True)
        elif outcome.event == "unregistered":
            log.info("sip: device %s unregistered", device_id)
            self._offline(device_id)
        elif outcome.event in ("forbidden", "bad"):
            log.info("sip: REGISTER from %s:%d (%s): %d", source.host, source.port, device_id,
                     outcome.response.status)

    def query_device(self, device: DeviceState) -> None:
        sn = self.next_sn()
        self.catalogs.expect(device.device_id, sn, trio.current_time())
        self.start_request(self.message(device, manscdp.catalog_query(sn, device.device_id)), device)
        info_sn = self.next_sn()
        self.start_request(self.message(device, manscdp.device_info_query(info_sn, device.device_id)), device)

    def _handle_message(self, request: Request, source: Destination) -> None:
        now = trio.current_time()
        if self._dialog_message(request):
            return
        outcome = self.registrar.handle_message(request, source, now)
        self.answer(request, outcome.response)
        device = self.devices.get(outcome.device_id or "")
        if outcome.event != "message" or device is None:
            if outcome.event == "unknown":
                log.info("sip: MESSAGE from unknown device %s (%s:%d): 400", outcome.device_id, source.host,
                         source.port)
            return
        device.address, device.last_seen, device.online = source, time.time(), True
        body = outcome.body
        if isinstance(body, manscdp.Keepalive):
            device.keepalive(time.time())
        elif isinstance(body, manscdp.RecordInfoResponse):
            self.history.on_record_info(device.device_id, body)
        elif isinstance(body, manscdp.MediaStatus):
            self.history.on_media_status(device.device_id, request.call_id, body)
            self._device_event(device.device_id, "media_status", {"channel_id": body.device_id,
                                                                   "notify_type": body.notify_type})
        elif isinstance(body, manscdp.Alarm):
            alarm = device.add_alarm(body, time.time())
            self.start_request(self.message(device, manscdp.alarm_response(body.sn, body.device_id or
                                                                           device.device_id)), device)
            self._device_event(device.device_id, "alarm", {"alarm": alarm})
        elif isinstance(body, manscdp.CatalogResponse):
            for item in body.items:
                device.channels[item.device_id] = item
            device.sum_num = max(device.sum_num or 0, body.sum_num)
            for catalog in self.catalogs.add(device.device_id, body, now):
                self._catalog_done(catalog.device_id, catalog.complete, len(catalog.items), catalog.sum_num)
        elif isinstance(body, manscdp.DeviceInfoResponse):
            device.info = body

    def _catalog_done(self, device_id: str, complete: bool, count: int, sum_num: int) -> None:
        device = self.devices.get(device_id)
        if device is not None:
            device.catalog_complete = device.catalog_complete or complete
        log.info("sip: device %s catalog %s: %d of %d channels", device_id, "complete" if complete else "partial",
                 count, sum_num)

    def _offline(self, device_id: str) -> None:
        device = self.devices.get(device_id)
        if device is not None and device.online:
            device.online = False
            self.plays.device_offline(device_id)
            self._device_changed(device_id, False)

    def _dialog_message(self, request: Request) -> bool:
        """A MediaStatus MESSAGE in a playback's dialog (some NVRs put another ID in From, notes
        section 5: match it by Call-ID) when its sender is not a registered device: handled here."""
        call_id = request.call_id
        play = next((p for p in self.plays.by_channel.values() if p.kind != "live" and p.call_id == call_id), None)
        if play is None or request.from_.sip_uri.user in self.devices:
            return False
        try:
            body = manscdp.parse(request.body)
        except manscdp.ManscdpError as e:
            self.answer(request, response_to(request, e.status_hint, to_tag=new_tag()))
            return True
        self.answer(request, response_to(request, 200, to_tag=new_tag()))
        if isinstance(body, manscdp.MediaStatus):
            self.history.on_media_status(play.device.device_id, call_id, body)
        return True

    def _device_event(self, device_id: str, kind: str, fields: dict[str, Any]) -> None:
        if self.on_device_event is not None:
            try:
                self.on_device_event(device_id, kind, fields)
            except Exception:
                log.exception("sip: the device event watcher failed on %s", device_id)

    def list_alarms(self, device_id: str | None = None) -> list[dict[str, Any]]:
        if device_id is not None and device_id not in self.devices:
            raise GbError(404, f"device {device_id} is not known")
        out = [a for d in self.devices.values() if device_id is None or d.device_id == device_id for a in d.alarms]
        return sorted(out, key=lambda a: a["id"], reverse=True)  # newest first

    def _device_changed(self, device_id: str, online: bool) -> None:
        if self.on_device is not None:
            try:
                self.on_device(device_id, online)
            except Exception:
                log.exception("sip: the device watcher failed on %s", device_id)

    def _deadlines_changed(self) -> None:
        """Wake the timer task when a deadline earlier than the one it waits for appeared. Cheap:
        the transaction layer and the registrar keep heaps; a catalog in flight only asks for a
        slow round (which scans the catalogs for their next deadline)."""
        at = _earliest(self.registrar.next_deadline(), trio.current_time() if len(self.catalogs) else None)
        if at is not None:
            at = max(at, self._last_slow + SLOW_TICK)
            self._slow_at = min(self._slow_at, at)
        fast = self.tx.next_deadline()
        soonest = min(self._slow_at, math.inf if fast is None else fast)
        if soonest < self._waiting_until:
            self._wake.set()

    async def _timers(self) -> None:
        while True:
            fast = self.tx.next_deadline()
            self._waiting_until = min(self._slow_at, math.inf if fast is None else fast)
            with trio.move_on_at(self._waiting_until):
                await self._wake.wait()
            self._wake = trio.Event()
            self._waiting_until = math.inf
            now = trio.current_time()
            fast = self.tx.next_deadline()
            if fast is not None and now >= fast:
                self._outputs(self.tx.handle_timeout(now))
            if now >= self._slow_at:
                self._slow_round(now)

    def _slow_round(self, now: float) -> None:
        """Catalog idle time-outs and device expiry, then when the next round is due."""
        self._last_slow = now
        for catalog in self.catalogs.handle_timeout(now):
            self._catalog_done(catalog.device_id, catalog.complete, len(catalog.items), catalog.sum_num)
        deadline = self.registrar.next_deadline()
        if deadline is not None and now >= deadline:
            for device_id in self.registrar.handle_timeout(now):
                log.info("sip: device %s offline (no keepalive for %g s or registration expired)",
                         device_id, self.config.keepalive_timeout)
                self._offline(device_id)
        at = _earliest(self.registrar.next_deadline(), self.catalogs.next_deadline())
        self._slow_at = math.inf if at is None else max(at, now + SLOW_TICK)

    # -- questions for the HTTP API

    def find_channel(self, channel_id: str, device_id: str | None = None) -> tuple[DeviceState, manscdp.CatalogItem]:
        if device_id:
            device = self.devices.get(device_id)
            if device is None:
                raise GbError(404, f"device {device_id} is not known")
            item = device.channels.get(channel_id)
            if item is None and channel_id == device_id:
                item = manscdp.CatalogItem(channel_id)  # an IPC plays its own ID
            if item is None:
                raise GbError(404, f"device {device_id} has no channel {channel_id}")
            return device, item
        for device in self.devices.values():
            item = device.channels.get(channel_id)
            if item is not None:
                return device, item
        raise GbError(404, f"no device has channel {channel_id}")

    def knows_channel(self, channel_id: str) -> bool:
        return any(channel_id in d.channels for d in self.devices.values())

    def online_devices(self) -> int:
        return sum(1 for d in self.devices.values() if d.online)

    def list_devices(self) -> list[dict[str, Any]]:
        return [d.describe() for d in sorted(self.devices.values(), key=lambda d: d.device_id)]

    def list_channels(self, device_id: str | None = None) -> list[dict[str, Any]]:
        if device_id is not None and device_id not in self.devices:
            raise GbError(404, f"device {device_id} is not known")
        out: list[dict[str, Any]] = []
        for device in sorted(self.devices.values(), key=lambda d: d.device_id):
            if device_id is None or device.device_id == device_id:
                out.extend(describe_channel(device, item, self.plays.is_playing(item.device_id))
                           for item in device.channels.values())
        return out

    async def ptz(self, device_id: str, channel_id: str, direction: str, speed: int) -> None:
        device, _ = self.find_channel(channel_id, device_id)
        if not device.online:
            raise GbError(503, f"device {device_id} is offline")
        try:
            command = manscdp.ptz_command(direction, speed)
        except ValueError as e:
            raise GbError(400, str(e)) from None
        response = await self.request(self.message(device, manscdp.ptz_control(self.next_sn(), channel_id, command),
                                                   channel_id), device)
        if response is None:
            raise GbError(504, f"device {device_id} did not answer the PTZ command")
        if response.status >= 300:
            raise GbError(502, f"device {device_id} answered the PTZ command with {response.status}")

    def keyframe(self, device: DeviceState, channel_id: str) -> None:
        """DeviceControl IFameCmd (sic, standard A.2.3): the camera sends an IDR now."""
        body = manscdp.keyframe_control(self.next_sn(), channel_id)
        self.start_request(self.message(device, body, channel_id), device)


def _earliest(*times: float | None) -> float | None:
    return min((t for t in times if t is not None), default=None)


async def serve(config: SipConfig, core: _core.Core, registry: StreamRegistry, *,
                media_ports: tuple[int, int] | None = None,
                task_status: trio.TaskStatus[GbService] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the SIP service until cancelled; once bound, reports the service itself (its
    ``address`` is the bound ``(ip, port)``; the HTTP API's handle on it)."""
    service = GbService(config, core, registry, media_ports=media_ports)
    await service.run(task_status=task_status)
