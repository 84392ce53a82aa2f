"""MANSCDP XML bodies (GB/T 28181-2016 annex A) and the PTZ command (A.3), sans-IO.

Owns: :func:`decode_body` (charset by the XML declaration, GB2312 read as its superset GB18030,
falling back to UTF-8 then GB18030), :func:`parse` (a body to :class:`Keepalive`,
:class:`CatalogQuery`, :class:`CatalogResponse`, :class:`DeviceInfoQuery`,
:class:`DeviceInfoResponse`, :class:`DeviceControl` or :class:`Other`; or :class:`ManscdpError`
with a status hint), the builders the platform sends (and tests use to play a device), and
:func:`ptz_command`. No I/O; nothing of the package.

Real-device quirks tolerated (notes sections 3 and 8): a BOM, blanks or NULs around the document;
a declaration that says GB2312 on a UTF-8 body (and the reverse); bare ``&`` and ``<`` in text
(Hikvision's Address); element names in any case; blank or missing optional fields; Num/SumNum that
disagree with the items (the items count, :mod:`catalog` assembles). Refused (400): no root element
among Query/Control/Notify/Response, no CmdType, an SN that is not a number, a DOCTYPE (no entities).
Unknown CmdTypes parse to :class:`Other` (answer 200, notes section 3).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

CONTENT_TYPE = "Application/MANSCDP+xml"
ROOTS = ("Query", "Control", "Notify", "Response")
MAX_ITEMS = 10_000  # per message (standard annex N)

_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_.:-]+)[\"'][^>]*\?>", re.IGNORECASE)
_DECL_TEXT = re.compile(r"^\s*<\?xml[^>]*\?>")
_BARE_AMP = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_FLAT = re.compile(r"\s*(?:<\?xml[^<>]*\?>\s*)?<([A-Za-z]+)>\s*((?:<([A-Za-z][\w.-]*)>[^<>&]*</\3>\s*)*)</\1>\s*")
_FLAT_FIELD = re.compile(r"<([A-Za-z][\w.-]*)>([^<>&]*)</\1>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_BARE_LT = re.compile(r"<(?!/?[A-Za-z_][\w.:-]*(?:\s[^<>]*)?/?>|[?!])")  # not the start of a tag


class ManscdpError(Exception):
    """A body we cannot read; answer the MESSAGE with ``status_hint``."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_body(body: bytes) -> str:
    """The text of a MANSCDP body, decoded by its declaration with fallbacks."""
    body = bytes(body).lstrip(b"\xef\xbb\xbf").strip(b"\x00 \t\r\n")
    m = _DECL.match(body[:512])
    declared = m.group(1).decode("ascii").lower() if m else "utf-8"
    candidates = []
    if declared in ("gb2312", "gbk", "gb18030", "gb_2312-80", "cp936", "euc-cn"):
        candidates = ["gb18030", "utf-8"]
    else:
        candidates = ["utf-8", "gb18030"]
    for codec in candidates:
        try:
            return body.decode(codec)
        except UnicodeDecodeError:
            continue
    return body.decode("gb18030", "replace")


def _xml_root(text: str) -> ET.Element:
    text = _DECL_TEXT.sub("", text, count=1).strip().strip("\x00")
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise ManscdpError("a DOCTYPE/ENTITY in a MANSCDP body")
    lower = text.lower()
    end = max(lower.rfind(f"</{r.lower()}>") for r in ROOTS)
    if end >= 0:  # drop trailing junk after the root element
        text = text[:text.index(">", end) + 1]
    for attempt in (text, _BARE_LT.sub("&lt;", _BARE_AMP.sub("&amp;", text))):
        try:
            return ET.fromstring(attempt)
        except ET.ParseError:
            continue
        except (ValueError, RecursionError) as e:
            raise ManscdpError(f"unreadable XML: {e}") from None
    raise ManscdpError("not well-formed XML")


def _children(element: ET.Element) -> dict[str, ET.Element]:
    found: dict[str, ET.Element] = {}
    for child in element:
        if isinstance(child.tag, str):
            found.setdefault(child.tag.split("}")[-1].lower(), child)
    return found


def _text(element: ET.Element | None, name: str, default: str = "") -> str:
    if element is None:
        return default
    child = _children(element).get(name.lower())
    if child is None or child.text is None:
        return default
    return child.text.strip()


def _int(text: str, default: int | None = None) -> int | None:
    text = text.strip()
    if text.isascii() and text.lstrip("-").isdigit() and len(text) <= 12:
        return int(text)
    return default


# ---------------------------------------------------------------------------------------------
# Messages


@dataclass(frozen=True, slots=True)
class Keepalive:
    sn: int
    device_id: str
    status: str = "OK"
    faulty: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CatalogQuery:
    sn: int
    device_id: str


@dataclass(frozen=True, slots=True)
class CatalogItem:
    device_id: str
    name: str = ""
    manufacturer: str = ""
    model: str = ""
    owner: str = ""
    civil_code: str = ""
    address: str = ""
    parental: int = 0
    parent_id: str = ""
    register_way: int = 1
    secrecy: int = 0
    ip_address: str = ""
    port: int = 0
    status: str = ""
    longitude: str = ""
    latitude: str = ""
    ptz_type: int = 0
    resolution: str = ""  # Info/Resolution: f= codes joined by "/" (e.g. "6/4/2")
    download_speed: str = ""  # Info/DownloadSpeed: the speeds a download may ask, e.g. "1/2/4/8"
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # other leaf fields


@dataclass(frozen=True, slots=True)
class CatalogResponse:
    sn: int
    device_id: str
    sum_num: int
    items: tuple[CatalogItem, ...] = ()
    num: int | None = None  # DeviceList Num as written (may disagree with len(items))


@dataclass(frozen=True, slots=True)
class DeviceInfoQuery:
    sn: int
    device_id: str


@dataclass(frozen=True, slots=True)
class DeviceInfoResponse:
    sn: int
    device_id: str
    device_name: str = ""
    result: str = ""
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    channel: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceControl:
    sn: int
    device_id: str
    ptz_cmd: str | None = None
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Other:
    """A well-formed message we do not act on (answer it with 200 all the same)."""

    root: str
    cmd_type: str
    sn: int
    device_id: str



_ITEM_FIELDS = {
    "deviceid": "device_id", "name": "name", "manufacturer": "manufacturer", "model": "model",
    "owner": "owner", "civilcode": "civil_code", "address": "address", "parentid": "parent_id",
    "ipaddress": "ip_address", "status": "status", "longitude": "longitude", "latitude": "latitude",
}
_ITEM_INTS = {"parental": "parental", "registerway": "register_way", "secrecy": "secrecy", "port": "port"}


def _item(element: ET.Element) -> CatalogItem | None:
    values: dict[str, object] = {}
    extra: list[tuple[str, str]] = []
    for tag, child in _children(element).items():
        text = (child.text or "").strip()
        if tag in _ITEM_FIELDS:
            values[_ITEM_FIELDS[tag]] = text
        elif tag in _ITEM_INTS:
            number = _int(text)
            if number is not None:
                values[_ITEM_INTS[tag]] = number
        elif tag == "info":
            ptz = _int(_text(child, "PTZType"))
            if ptz is not None:
                values["ptz_type"] = ptz
            values["resolution"] = _text(child, "Resolution")[:64]
            values["download_speed"] = _text(child, "DownloadSpeed")[:64]
        elif len(child) == 0 and text:
            extra.append((child.tag if isinstance(child.tag, str) else tag, text))
    if not values.get("device_id"):
        return None  # an empty item (notes M-pit 10.1)
    return CatalogItem(**values, extra=tuple(extra))  # type: ignore[arg-type]


def _flat(text: str) -> tuple[str, list[tuple[str, str]]] | None:
    """A document that is one root of plain leaf elements (``<CmdType>Keepalive</CmdType>``, no
    attributes, entities, comments or nesting): its root name and ``(tag, text)`` fields, read
    without building a tree. Every Keepalive, query and most answers look like this; anything else
    is None and goes through ElementTree. The pattern only accepts well-formed XML, so both readings
    agree on what it accepts."""
    m = _FLAT.fullmatch(text)
    if m is None:
        return None
    fields = [(tag, value.strip()) for tag, value in _FLAT_FIELD.findall(m.group(2))]
    if "\r" in m.group(2):  # XML turns CR LF and lone CR into LF (2.11), as ElementTree does
        fields = [(tag, value.replace("\r\n", "\n").replace("\r", "\n")) for tag, value in fields]
    return m.group(1), fields


def parse(body: bytes) -> Manscdp:
    """One MANSCDP body; :class:`ManscdpError` when it is not one."""
    text = decode_body(body)
    flat = _flat(text)
    if flat is not None:
        root_name, fields = flat
        root: ET.Element | None = None
        kids: dict[str, str] = {}
        for tag, value in fields:
            kids.setdefault(tag.lower(), value)
    else:
        root = _xml_root(text)
        root_name = root.tag.split("}")[-1] if isinstance(root.tag, str) else ""
        fields = [(c.tag, (c.text or "").strip()) for c in root if isinstance(c.tag, str) and len(c) == 0]
        kids = {tag: (child.text or "").strip() for tag, child in _children(root).items()}
    canonical = next((r for r in ROOTS if r.lower() == root_name.lower()), None)
    if canonical is None:
        raise ManscdpError(f"root <{root_name[:30]}> is not Query/Control/Notify/Response")
    cmd = kids.get("cmdtype", "")
    if not cmd:
        raise ManscdpError("no CmdType")
    sn = _int(kids.get("sn", ""))
    if sn is None or sn < 0:
        raise ManscdpError(f"SN {kids.get('sn', '')[:20]!r} is not a number")
    device_id = kids.get("deviceid", "")
    kind = cmd.lower()
    if canonical == "Notify" and kind == "keepalive":
        info = _children(root).get("info") if root is not None else None
        faulty = tuple((c.text or "").strip() for c in info if isinstance(c.tag, str)
                       and c.tag.lower() == "deviceid") if info is not None else ()
        return Keepalive(sn, device_id, (kids.get("status") or "OK").upper(), faulty)
    if kind == "catalog" and canonical == "Query":
        return CatalogQuery(sn, device_id)
    if kind == "catalog" and canonical in ("Response", "Notify"):
        sum_num = _int(kids.get("sumnum", ""), 0) or 0
        device_list = _children(root).get("devicelist") if root is not None else None
        items: list[CatalogItem] = []
        num = None
        if device_list is not None:
            num = _int(device_list.get("Num") or device_list.get("num") or "")
            for child in device_list:
                if isinstance(child.tag, str) and child.tag.lower() == "item" and len(items) < MAX_ITEMS:
                    item = _item(child)
                    if item is not None:
                        items.append(item)
        return CatalogResponse(sn, device_id, max(sum_num, 0), tuple(items), num)
    if kind == "deviceinfo" and canonical == "Query":
        return DeviceInfoQuery(sn, device_id)
    if kind == "deviceinfo" and canonical == "Response":
        return DeviceInfoResponse(sn, device_id, kids.get("devicename", ""), kids.get("result", ""),
                                  kids.get("manufacturer", ""), kids.get("model", ""),
                                  kids.get("firmware", ""), _int(kids.get("channel", "")))
    if kind == "recordinfo":
        return _record_info(canonical, sn, device_id, kids, root)
    if kind == "mediastatus" and canonical == "Notify":
        return MediaStatus(sn, device_id, kids.get("notifytype", ""))
    if kind == "alarm" and canonical == "Notify":
        info = _children(root).get("info") if root is not None else None
        return Alarm(sn, device_id, kids.get("alarmpriority", ""), kids.get("alarmmethod", ""),
                     kids.get("alarmtime", ""), kids.get("alarmdescription", "")[:256],
                     _text(info, "AlarmType") or kids.get("alarmtype", ""))
    if kind == "devicecontrol" and canonical == "Control":
        control = tuple((tag, value) for tag, value in fields if tag.lower() not in ("cmdtype", "sn", "deviceid"))
        return DeviceControl(sn, device_id, kids.get("ptzcmd") or None, control)
    return Other(canonical, cmd, sn, device_id)


# ---------------------------------------------------------------------------------------------
# Records (A.2.4d, A.2.6h), media status (A.2.5, J.14), alarms (A.2.5b)

RECORD_TYPES = ("all", "time", "alarm", "manual")


@dataclass(frozen=True, slots=True)
class RecordInfoQuery:
    sn: int
    device_id: str
    start_time: str = ""
    end_time: str = ""
    record_type: str = "all"


@dataclass(frozen=True, slots=True)
class RecordItem:
    device_id: str
    name: str = ""
    file_path: str = ""
    address: str = ""
    start_time: str = ""  # as the device wrote it: 2024-01-01T08:00:00 (local time, no zone)
    end_time: str = ""
    secrecy: int = 0
    record_type: str = ""
    recorder_id: str = ""
    file_size: str = ""


@dataclass(frozen=True, slots=True)
class RecordInfoResponse:
    sn: int
    device_id: str
    sum_num: int
    items: tuple[RecordItem, ...] = ()
    name: str = ""


@dataclass(frozen=True, slots=True)
class MediaStatus:
    """Notify MediaStatus: ``NotifyType`` 121 is the end of a played-back or downloaded file."""

    sn: int
    device_id: str
    notify_type: str


@dataclass(frozen=True, slots=True)
class Alarm:
    sn: int
    device_id: str
    priority: str = ""
    method: str = ""
    time: str = ""
    description: str = ""
    alarm_type: str = ""


Manscdp = (Keepalive | CatalogQuery | CatalogResponse | DeviceInfoQuery | DeviceInfoResponse | DeviceControl
           | RecordInfoQuery | RecordInfoResponse | MediaStatus | Alarm | Other)


_RECORD_FIELDS = {"deviceid": "device_id", "name": "name", "filepath": "file_path", "address": "address",
                  "starttime": "start_time", "endtime": "end_time", "type": "record_type",
                  "recorderid": "recorder_id", "filesize": "file_size"}


def _record_info(root_name: str, sn: int, device_id: str, kids: dict[str, str],
                 root: ET.Element | None) -> RecordInfoQuery | RecordInfoResponse | Other:
    if root_name == "Query":
        return RecordInfoQuery(sn, device_id, kids.get("starttime", ""), kids.get("endtime", ""),
                               (kids.get("type") or "all").lower())
    if root_name != "Response":
        return Other(root_name, "RecordInfo", sn, device_id)
    items: list[RecordItem] = []
    record_list = _children(root).get("recordlist") if root is not None else None
    for child in record_list if record_list is not None else ():
        if not (isinstance(child.tag, str) and child.tag.lower() == "item") or len(items) >= MAX_ITEMS:
            continue
        values: dict[str, object] = {}
        for tag, leaf in _children(child).items():
            text = (leaf.text or "").strip()[:256]
            if tag in _RECORD_FIELDS:
                values[_RECORD_FIELDS[tag]] = text
            elif tag == "secrecy":
                values["secrecy"] = _int(text, 0) or 0
        if values.get("start_time") or values.get("end_time") or values.get("file_path"):
            items.append(RecordItem(**{"device_id": "", **values}))  # type: ignore[arg-type]
    sum_num = _int(kids.get("sumnum", ""), 0) or 0
    return RecordInfoResponse(sn, device_id, max(sum_num, 0), tuple(items), kids.get("name", "")[:256])


def record_info_query(sn: int, channel_id: str, start_time: str, end_time: str, record_type: str = "all") -> bytes:
    """Query RecordInfo (A.2.4d): times as ``2024-01-01T08:00:00``."""
    return _document("Query", [("CmdType", "RecordInfo"), ("SN", str(sn)), ("DeviceID", channel_id),
                               ("StartTime", start_time), ("EndTime", end_time), ("Secrecy", "0"),
                               ("Type", record_type)])


def record_info_response(sn: int, channel_id: str, sum_num: int, items: list[RecordItem] | tuple[RecordItem, ...],
                         name: str = "", *, encoding: str = "GB2312") -> bytes:
    """A device's RecordInfo Response part (for tests and device simulators)."""
    parts = [f'<RecordList Num="{len(items)}">']
    for it in items:
        leaf = [("DeviceID", it.device_id), ("Name", it.name), ("FilePath", it.file_path),
                ("Address", it.address), ("StartTime", it.start_time), ("EndTime", it.end_time),
                ("Secrecy", str(it.secrecy)), ("Type", it.record_type)]
        if it.recorder_id:
            leaf.append(("RecorderID", it.recorder_id))
        if it.file_size:
            leaf.append(("FileSize", it.file_size))
        parts.append("<Item>\r\n" + "".join(f"<{k}>{escape(v)}</{k}>\r\n" for k, v in leaf) + "</Item>")
    parts.append("</RecordList>")
    return _document("Response", [("CmdType", "RecordInfo"), ("SN", str(sn)), ("DeviceID", channel_id),
                                  ("Name", name), ("SumNum", str(sum_num))], "\r\n".join(parts) + "\r\n",
                     encoding=encoding)


def media_status(sn: int, channel_id: str, notify_type: str = "121") -> bytes:
    return _document("Notify", [("CmdType", "MediaStatus"), ("SN", str(sn)), ("DeviceID", channel_id),
                                ("NotifyType", notify_type)])


def alarm_response(sn: int, device_id: str) -> bytes:
    """The platform's answer to an Alarm Notify (9.4, J.8): ``Response`` Alarm ``Result OK``."""
    return _document("Response", [("CmdType", "Alarm"), ("SN", str(sn)), ("DeviceID", device_id),
                                  ("Result", "OK")])


# ---------------------------------------------------------------------------------------------
# Builders


def _document(root: str, fields: list[tuple[str, str]], inner: str = "", *, encoding: str = "GB2312") -> bytes:
    lines = [f"<{root}>"] + [f"<{k}>{escape(str(v))}</{k}>" for k, v in fields]
    text = _CONTROL.sub("", "\r\n".join(lines) + "\r\n" + inner + f"</{root}>\r\n")  # not allowed in XML 1.0
    if encoding.upper() == "GB2312":
        try:
            return f'<?xml version="1.0" encoding="GB2312"?>\r\n{text}'.encode("gb2312")
        except UnicodeEncodeError:
            pass  # a name outside GB2312: say UTF-8 rather than lie
    return f'<?xml version="1.0" encoding="UTF-8"?>\r\n{text}'.encode()


def catalog_query(sn: int, device_id: str) -> bytes:
    return _document("Query", [("CmdType", "Catalog"), ("SN", str(sn)), ("DeviceID", device_id)])


def device_info_query(sn: int, device_id: str) -> bytes:
    return _document("Query", [("CmdType", "DeviceInfo"), ("SN", str(sn)), ("DeviceID", device_id)])


def keepalive(sn: int, device_id: str, status: str = "OK") -> bytes:
    return _document("Notify", [("CmdType", "Keepalive"), ("SN", str(sn)), ("DeviceID", device_id),
                                ("Status", status)])


def ptz_control(sn: int, channel_id: str, ptz_cmd: str, priority: int = 5) -> bytes:
    """DeviceControl with PTZCmd (standard J.6)."""
    inner = f"<Info>\r\n<ControlPriority>{int(priority)}</ControlPriority>\r\n</Info>\r\n"
    return _document("Control", [("CmdType", "DeviceControl"), ("SN", str(sn)),
                                 ("DeviceID", channel_id), ("PTZCmd", ptz_cmd)], inner)


def keyframe_control(sn: int, channel_id: str) -> bytes:
    """DeviceControl ``IFameCmd Send`` (the standard's spelling, A.2.3): the camera sends an IDR now."""
    return _document("Control", [("CmdType", "DeviceControl"), ("SN", str(sn)), ("DeviceID", channel_id),
                                 ("IFameCmd", "Send")])


def catalog_response(sn: int, device_id: str, sum_num: int, items: list[CatalogItem] | tuple[CatalogItem, ...],
                     *, encoding: str = "GB2312") -> bytes:
    """A device's Catalog Response (for tests and device simulators)."""
    parts = [f'<DeviceList Num="{len(items)}">']
    for it in items:
        leaf = [("DeviceID", it.device_id), ("Name", it.name), ("Manufacturer", it.manufacturer),
                ("Model", it.model), ("Owner", it.owner), ("CivilCode", it.civil_code),
                ("Address", it.address), ("Parental", str(it.parental)), ("ParentID", it.parent_id),
                ("RegisterWay", str(it.register_way)), ("Secrecy", str(it.secrecy)),
                ("IPAddress", it.ip_address), ("Port", str(it.port)), ("Status", it.status),
                ("Longitude", it.longitude), ("Latitude", it.latitude)]
        body = "".join(f"<{k}>{escape(v)}</{k}>\r\n" for k, v in leaf)
        if it.ptz_type:
            body += f"<Info>\r\n<PTZType>{it.ptz_type}</PTZType>\r\n</Info>\r\n"
        parts.append(f"<Item>\r\n{body}</Item>")
    parts.append("</DeviceList>")
    return _document("Response", [("CmdType", "Catalog"), ("SN", str(sn)), ("DeviceID", device_id),
                                  ("SumNum", str(sum_num))], "\r\n".join(parts) + "\r\n", encoding=encoding)


# ---------------------------------------------------------------------------------------------
# PTZ (annex A.3)

PTZ_BITS = {"right": 0x01, "left": 0x02, "down": 0x04, "up": 0x08, "zoomin": 0x10, "zoomout": 0x20}
PTZ_DIRECTIONS = ("stop", "up", "down", "left", "right", "upleft", "upright", "downleft", "downright",
                  "zoomin", "zoomout")


@dataclass(frozen=True, slots=True)
class PtzCommand:
    command: int  # byte 4
    pan_speed: int
    tilt_speed: int
    zoom_speed: int
    address: int


def ptz_command(direction: str, speed: int = 0x80, *, address: int = 1) -> str:
    """The 8-byte PTZCmd as 16 upper-case hex digits: ``A5 0F addr cmd pan tilt zoom|addrhi sum``.

    ``speed`` (0-255) drives the moving axes only; the zoom speed is 4 bits, ``speed >> 4`` (at least
    1 when zooming). ``stop`` clears every bit: ``A50F0100000000B5``."""
    direction = direction.lower().replace("-", "").replace("_", "").replace(" ", "")
    if direction not in PTZ_DIRECTIONS:
        raise ValueError(f"PTZ direction {direction!r} is not one of {', '.join(PTZ_DIRECTIONS)}")
    if not 0 <= speed <= 255:
        raise ValueError(f"PTZ speed {speed} is not 0-255")
    if not 0 <= address <= 0xFFF:
        raise ValueError(f"PTZ address {address} is not 0-4095")
    cmd = 0
    for name, bit in PTZ_BITS.items():
        if name in direction:
            cmd |= bit
    pan = speed if cmd & 0x03 else 0
    tilt = speed if cmd & 0x0C else 0
    zoom = max(1, speed >> 4) if cmd & 0x30 else 0
    data = [0xA5, 0x0F, address & 0xFF, cmd, pan, tilt, (zoom << 4) | ((address >> 8) & 0x0F)]
    data.append(sum(data) & 0xFF)
    return bytes(data).hex().upper()


def parse_ptz_command(text: str) -> PtzCommand:
    """Read a PTZCmd back (checks the header and checksum)."""
    try:
        data = bytes.fromhex(text.strip())
    except ValueError:
        raise ManscdpError(f"PTZCmd {text[:20]!r} is not hex") from None
    if len(data) != 8 or data[0] != 0xA5 or data[1] & 0x0F != (0xA + 0x5 + (data[1] >> 4)) & 0x0F:
        raise ManscdpError(f"PTZCmd {text[:20]!r} is not an A5 command")
    if sum(data[:7]) & 0xFF != data[7]:
        raise ManscdpError(f"PTZCmd {text[:20]!r} has a bad checksum")
    return PtzCommand(data[3], data[4], data[5], data[6] >> 4, data[2] | ((data[6] & 0x0F) << 8))
