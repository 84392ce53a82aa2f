"""What the GB28181 service knows of a device, and the error its API requests end in.

Owns :class:`DeviceState` (address, online flag, DeviceInfo, channels from the Catalog), the JSON
shape of a device and a channel for the HTTP API, and :class:`GbError`. A leaf under the service
and the plays: it imports only the sans-IO pieces (``manscdp``, ``sip.addressing``).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..sip.addressing import Destination
from . import manscdp

DEFAULT_HEARTBEAT = 60  # standard 9.6.1
_ALARM_IDS = itertools.count(1)  # alarms in the order they arrived, across devices
MAX_ALARMS = 100  # kept per device, the newest


@dataclass(slots=True)
class DeviceState:
    device_id: str
    address: Destination
    online: bool = True
    registered_at: float = 0.0  # wall clock
    last_seen: float = 0.0  # wall clock
    user_agent: str = ""
    info: manscdp.DeviceInfoResponse | None = None
    channels: dict[str, manscdp.CatalogItem] = field(default_factory=dict)
    sum_num: int | None = None
    catalog_complete: bool = False
    keepalives: int = 0
    last_keepalive: float = 0.0  # wall clock
    heart_beat_interval: int = DEFAULT_HEARTBEAT  # seen between keepalives (seconds)
    alarms: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_ALARMS))
    keepalive_timeout: float = 0.0  # sip.keepaliveTimeout, for heart_beat_count

    def keepalive(self, wall: float) -> None:
        """A Keepalive: counts it and learns the device's interval (srs-sip's heart_beat_interval)."""
        if self.last_keepalive and 1.0 <= wall - self.last_keepalive <= 3600:
            self.heart_beat_interval = max(1, round(wall - self.last_keepalive))
        self.last_keepalive = wall
        self.keepalives += 1

    def add_alarm(self, alarm: manscdp.Alarm, wall: float) -> dict[str, Any]:
        doc = {"id": next(_ALARM_IDS), "device_id": self.device_id, "channel_id": alarm.device_id,
               "priority": alarm.priority, "method": alarm.method, "time": alarm.time, "description": alarm.description,
               "type": alarm.alarm_type, "sn": alarm.sn, "received": round(wall, 3)}
        self.alarms.append(doc)
        return doc

    def describe(self) -> dict[str, Any]:
        info = self.info
        return {"device_id": self.device_id, "name": info.device_name if info else "",
                "manufacturer": info.manufacturer if info else "", "model": info.model if info else "",
                "firmware": info.firmware if info else "", "status": "online" if self.online else "offline",
                "online": self.online, "source_addr": f"{self.address.host}:{self.address.port}",
                "network_type": self.address.transport.upper(), "user_agent": self.user_agent,
                "heart_beat_interval": self.heart_beat_interval,
                "heart_beat_count": max(1, round((self.keepalive_timeout or 3 * self.heart_beat_interval)
                                                 / self.heart_beat_interval)),
                "channel_count": len(self.channels), "sum_num": self.sum_num,
                "catalog_complete": self.catalog_complete, "keepalives": self.keepalives,
                "registered_at": self.registered_at, "last_seen": self.last_seen}


def describe_channel(device: DeviceState, item: manscdp.CatalogItem, playing: bool) -> dict[str, Any]:
    online = device.online and item.status.upper() not in ("OFF", "OFFLINE")
    return {"device_id": item.device_id, "parent_device": device.device_id, "name": item.name,
            "manufacturer": item.manufacturer, "model": item.model, "owner": item.owner,
            "civil_code": item.civil_code, "address": item.address, "parental": item.parental,
            "parent_id": item.parent_id, "ip_address": item.ip_address, "port": item.port,
            "status": "ON" if online else "OFF", "online": online, "ptz_type": item.ptz_type,
            "longitude": item.longitude, "latitude": item.latitude, "playing": playing,
            "info": {"ptz_type": item.ptz_type, "resolution": item.resolution,
                     "download_speed": item.download_speed}}


class GbError(Exception):
    """A request the HTTP API refuses: ``code`` is the envelope's (and the HTTP status)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
