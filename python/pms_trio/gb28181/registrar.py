"""The GB28181 registrar and MESSAGE front door (GB/T 28181-2016 9.1, 9.6; SPEC section 7), sans-IO.

Owns: :class:`Registrar`, which answers REGISTER (401 with a fresh digest challenge, 200 with To
tag, Contact, Expires and ``Date``; 403 on a wrong password; ``Expires: 0`` unregisters; a REGISTER
from a new address moves the device) and MESSAGE (200 for a known device, its body parsed; 400 for
a device that never registered, as srs-sip does; 400 for an unreadable body; 200 for CmdTypes we do
not act on), the device table with registration and keepalive expiry as deadlines, and the
per-source failure throttle's delay. It sends nothing: every call returns the response and what
happened; the adapter sends the response after the delay (through the transaction layer) and
queries Catalog/DeviceInfo after a ``registered`` outcome. Clock values come in: ``now``
(monotonic, deadlines) and ``wall`` (Unix seconds, only for the ``Date`` header).

Devices are keyed by the From user (the device ID). Their address is the packet source (with the
transport), refreshed on every REGISTER and MESSAGE: behind NAT Contact holds a private address.
Route headers on REGISTER (Dahua/Hikvision NVRs) are ignored. A device is offline after
``keepalive_timeout`` (3 x 60 s) without a MESSAGE or when its registration expires.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

from ..sip.addressing import Destination
from ..sip.dialog import new_tag
from ..sip.digest import DigestAuthenticator, FailureThrottle, Verdict
from ..sip.message import Request, Response, SipParseError, response_to
from . import manscdp

MIN_EXPIRES = 3600
DEFAULT_EXPIRES = 86400
BEIJING = 8 * 3600


def date_header(wall: float) -> str:
    """``Date`` for a 200 to REGISTER: Beijing local time, milliseconds, no zone (standard 9.10)."""
    seconds = int(wall)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds + BEIJING))
    return f"{text}.{min(999, round((wall - seconds) * 1000)):03d}"


@dataclass(slots=True)
class Device:
    device_id: str
    address: Destination
    contact: str
    registered_at: float
    expires_at: float
    last_seen: float
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    response: Response
    event: str  # challenged | registered | refreshed | unregistered | forbidden | bad | message | unknown
    device_id: str | None = None
    delay: float = 0.0  # hold the response this long (repeated failures from this source)
    body: manscdp.Manscdp | None = None


class Registrar:
    def __init__(self, *, realm: str, password: str | None, authenticator: DigestAuthenticator | None = None,
                 throttle: FailureThrottle | None = None, keepalive_timeout: float = 180.0,
                 default_expires: int = DEFAULT_EXPIRES) -> None:
        self.realm = realm
        self.password = password
        self.authenticator = authenticator or DigestAuthenticator(realm)
        self.throttle = throttle or FailureThrottle()
        self.keepalive_timeout = keepalive_timeout
        self.default_expires = default_expires
        self.devices: dict[str, Device] = {}
        # (deadline, device ID): pushed on every REGISTER and MESSAGE; an entry whose device is gone
        # or whose deadline moved is stale and dropped when it comes up (no scan of the table).
        self._deadlines: list[tuple[float, str]] = []

    def _schedule(self, device: Device) -> None:
        heapq.heappush(self._deadlines, (self.deadline_of(device), device.device_id))

    def _valid(self, entry: tuple[float, str]) -> bool:
        device = self.devices.get(entry[1])
        return device is not None and self.deadline_of(device) == entry[0]

    # -- REGISTER

    def handle_register(self, request: Request, source: Destination, now: float, wall: float) -> Outcome:
        try:
            device_id = request.from_.sip_uri.user or ""
            expires = self._expires(request)
        except SipParseError:
            return Outcome(response_to(request, 400, to_tag=new_tag()), "bad", None)
        if not device_id:
            return Outcome(response_to(request, 400, to_tag=new_tag()), "bad", None)
        key = source.host
        if self.password is not None:
            result = self.authenticator.verify("REGISTER", request.header("Authorization"), self.password, now,
                                               username=device_id)
            if result.verdict in (Verdict.MISSING, Verdict.STALE):
                challenge = self.authenticator.challenge(now, stale=result.verdict is Verdict.STALE)
                response = response_to(request, 401, to_tag=new_tag(),
                                       headers=(("WWW-Authenticate", challenge.header_value()),))
                return Outcome(response, "challenged", device_id, self.throttle.delay(key, now))
            if result.verdict is not Verdict.OK:
                status = 400 if result.verdict is Verdict.MALFORMED else 403
                delay = self.throttle.record_failure(key, now)
                return Outcome(response_to(request, status, to_tag=new_tag()),
                               "bad" if status == 400 else "forbidden", device_id, delay)
            self.throttle.record_success(key)
        contact = request.header("Contact") or ""
        headers = [("Contact", contact)] if contact else []
        if expires == 0:
            self.devices.pop(device_id, None)
            response = response_to(request, 200, to_tag=new_tag(),
                                   headers=(*headers, ("Expires", "0"), ("Date", date_header(wall))))
            return Outcome(response, "unregistered", device_id)
        known = device_id in self.devices
        device = self.devices[device_id] = Device(device_id, source, contact, now, now + expires, now,
                                                  request.header("User-Agent") or "")
        self._schedule(device)
        response = response_to(request, 200, to_tag=new_tag(),
                                headers=(*headers, ("Expires", str(expires)), ("Date", date_header(wall))))
        return Outcome(response, "refreshed" if known else "registered", device_id)

    def _expires(self, request: Request) -> int:
        value = request.header("Expires")
        if value is None:
            contact = request.header("Contact") or ""
            for part in contact.split(";")[1:]:
                name, _, number = part.partition("=")
                if name.strip().lower() == "expires":
                    value = number
        if value is None:
            return self.default_expires
        value = value.strip()
        if not value.isascii() or not value.isdigit() or len(value) > 10:
            raise SipParseError(f"Expires {value[:20]!r} is not a number")
        return int(value)

    # -- MESSAGE

    def handle_message(self, request: Request, source: Destination, now: float) -> Outcome:
        try:
            device_id = request.from_.sip_uri.user or ""
        except SipParseError:
            return Outcome(response_to(request, 400, to_tag=new_tag()), "bad")
        device = self.devices.get(device_id)
        if device is None:
            return Outcome(response_to(request, 400, to_tag=new_tag()), "unknown", device_id)
        device.last_seen = now
        device.address = source  # NAT: the latest source wins
        self._schedule(device)
        try:
            body = manscdp.parse(request.body)
        except manscdp.ManscdpError as e:
            return Outcome(response_to(request, e.status_hint, to_tag=new_tag()), "bad", device_id)
        return Outcome(response_to(request, 200, to_tag=new_tag()), "message", device_id, body=body)

    # -- expiry

    def deadline_of(self, device: Device) -> float:
        return min(device.expires_at, device.last_seen + self.keepalive_timeout)

    def next_deadline(self) -> float | None:
        heap = self._deadlines
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def handle_timeout(self, now: float) -> list[str]:
        """Devices now offline (registration expired, or keepalives missed)."""
        gone = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._valid(entry):
                del self.devices[entry[1]]
                gone.append(entry[1])
        return gone
