"""gb28181.manscdp and gb28181.media: the device bodies from tests/data/sip (GB2312 and UTF-8), the
real-device quirks, the builders, the standard's PTZ examples, y=/SSRC, Subject, the INVITE offer in
the three transports and the camera's answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pms_trio.gb28181 import manscdp as x
from pms_trio.gb28181 import media
from pms_trio.sip import message as m

DATA = Path(__file__).parents[1] / "data" / "sip"


def body_of(name: str) -> bytes:
    message = m.parse_datagram((DATA / name).read_bytes())
    assert message is not None
    return message.body


def test_bodies_on_disk_are_gb2312_bytes():
    raw = body_of("hikvision_nvr_catalog_1of3.txt")
    assert "大门口".encode("gb2312") in raw and "大门口".encode() not in raw


def test_hikvision_keepalive():
    assert x.parse(body_of("hikvision_keepalive.txt")) == x.Keepalive(9, "34020000001320000001", "OK", ())


def test_dahua_keepalive_with_standalone_declaration():
    assert x.parse(body_of("dahua_keepalive_compact.txt")) == x.Keepalive(43, "34020000001320000002")


def test_catalog_part_with_gb2312_names_and_bare_ampersand():
    first = x.parse(body_of("hikvision_nvr_catalog_1of3.txt"))
    assert isinstance(first, x.CatalogResponse)
    assert (first.sn, first.device_id, first.sum_num, first.num) == (17, "34020000001180000001", 5, 2)
    a, b = first.items
    assert (a.device_id, a.name, a.manufacturer, a.address, a.status) == (
        "34020000001310000001", "大门口", "Hikvision", "杭州市滨江区", "ON")
    assert (a.parental, a.parent_id, a.register_way, a.port, a.ptz_type) == (0, "34020000001180000001", 1, 8000, 3)
    assert ("SafetyWay", "0") in a.extra and b.name == "停车场东"
    second = x.parse(body_of("hikvision_nvr_catalog_2of3.txt"))
    assert second.items[0].address == "滨江 A&B 栋"  # Hikvision's unescaped & survives


def test_dahua_utf8_catalog_drops_the_empty_item():
    catalog = x.parse(body_of("dahua_catalog_utf8.txt"))
    assert catalog.num == 2 and [i.name for i in catalog.items] == ["通道一 南门"]


def test_device_info():
    info = x.parse(body_of("hikvision_nvr_deviceinfo.txt"))
    assert info == x.DeviceInfoResponse(18, "34020000001180000001", "仓库录像机", "OK", "Hikvision", "DS-7808N-K1",
                                        "V4.30.000", 5)


@pytest.mark.parametrize("body,expected", [
    (('<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN>'
      '<DeviceID>中</DeviceID><Status>OK</Status></Notify>').encode(), "中"),  # declared GB2312, sent UTF-8
    (('<?xml version="1.0" encoding="UTF-8"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN>'
      '<DeviceID>中</DeviceID><Status>OK</Status></Notify>').encode("gb2312"), "中"),  # the reverse
    ((b'\xef\xbb\xbf  <?xml version="1.0"?>\r\n<notify><cmdtype>Keepalive</cmdtype><sn>1</sn><deviceid>d</deviceid>'
      b'</notify>\x00\x00junk'), "d"),  # BOM, lower-case tags, NULs and junk after the root
    (b'<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>a<b</DeviceID></Notify>', "a<b"),
])
def test_quirks_are_tolerated(body, expected):
    keepalive = x.parse(body)
    assert isinstance(keepalive, x.Keepalive) and keepalive.device_id == expected


@pytest.mark.parametrize("body", [
    b"", b"not xml", b"<Foo><CmdType>Keepalive</CmdType><SN>1</SN></Foo>", b"<Notify><SN>1</SN></Notify>",
    b"<Notify><CmdType>Keepalive</CmdType><SN>one</SN></Notify>",
    b'<!DOCTYPE x [<!ENTITY a "b">]><Notify><CmdType>&a;</CmdType><SN>1</SN></Notify>',
])
def test_refused_bodies(body):
    with pytest.raises(x.ManscdpError) as info:
        x.parse(body)
    assert info.value.status_hint == 400


def test_unknown_cmd_type_is_other():
    body = b"<Notify><CmdType>DataTransfer</CmdType><SN>4</SN><DeviceID>d</DeviceID></Notify>"
    assert x.parse(body) == x.Other("Notify", "DataTransfer", 4, "d")


def test_builders_parse_back():
    assert x.parse(x.catalog_query(3, "34020000001320000001")) == x.CatalogQuery(3, "34020000001320000001")
    assert x.parse(x.device_info_query(4, "d")) == x.DeviceInfoQuery(4, "d")
    assert x.parse(x.keepalive(5, "d")) == x.Keepalive(5, "d")
    assert x.catalog_query(3, "d").startswith(b'<?xml version="1.0" encoding="GB2312"?>\r\n<Query>')
    items = (x.CatalogItem("34020000001310000001", "大门口 <东>", address="A&B"), x.CatalogItem("2", "😀"))
    for encoding in ("GB2312", "UTF-8"):
        body = x.catalog_response(1, "nvr", 2, items, encoding=encoding)
        assert x.parse(body).items == items
    assert b'encoding="UTF-8"' in x.catalog_response(1, "nvr", 2, items)  # the emoji is not GB2312


def test_ptz_examples_from_the_standard():
    assert x.ptz_command("stop") == "A50F0100000000B5"
    assert x.ptz_command("right", 0x80) == "A50F010180000036"
    assert x.ptz_command("zoomin", 0x10, address=0x4D) == "A50F4D1000001021"
    up = x.parse_ptz_command(x.ptz_command("up", 200))
    assert (up.command, up.pan_speed, up.tilt_speed, up.zoom_speed) == (0x08, 0, 200, 0)
    zoom = x.parse_ptz_command(x.ptz_command("zoomout", 255))
    assert (zoom.command, zoom.zoom_speed) == (0x20, 15)  # 4 bits: no overflow
    diag = x.parse_ptz_command(x.ptz_command("up-left", 9, address=0x123))
    assert (diag.command, diag.pan_speed, diag.tilt_speed, diag.address) == (0x0A, 9, 9, 0x123)
    control = x.parse(x.ptz_control(11, "34020000001310000001", x.ptz_command("left", 1)))
    assert isinstance(control, x.DeviceControl) and control.ptz_cmd == "A50F0102010000B8"
    with pytest.raises(ValueError):
        x.ptz_command("sideways")
    with pytest.raises(ValueError):
        x.ptz_command("up", 256)
    with pytest.raises(x.ManscdpError):
        x.parse_ptz_command("A50F0100000000B6")


@given(st.sampled_from(x.PTZ_DIRECTIONS), st.integers(0, 255), st.integers(0, 0xFFF))
def test_ptz_commands_always_check(direction, speed, address):
    cmd = x.ptz_command(direction, speed, address=address)
    assert len(cmd) == 16 and x.parse_ptz_command(cmd).address == address


# -- media helpers


def test_ssrc_is_live_flag_realm_digits_and_sequence():
    assert media.make_ssrc("34020000002000000001", 7585) == "0200007585"
    assert media.make_ssrc("3402000000", 1, history=True) == "1200000001"
    allocator = media.SsrcAllocator("3402000000")
    first, second = allocator.allocate(), allocator.allocate()
    assert (first, second) == ("0200000001", "0200000002")
    allocator.release(first)
    assert int(second) < 2 ** 32


@pytest.mark.parametrize("transport,proto,setup", [
    ("tcp-passive", "TCP/RTP/AVP", "a=setup:passive"), ("tcp-active", "TCP/RTP/AVP", "a=setup:active"),
    ("udp", "RTP/AVP", None)])
def test_invite_offer(transport, proto, setup):
    sdp = media.invite_sdp(server_id="34020000002000000001", media_ip="10.1.1.1", media_port=9000,
                           ssrc="0200000001", transport=transport).decode()
    lines = sdp.split("\r\n")
    assert lines[:5] == ["v=0", "o=34020000002000000001 0 0 IN IP4 10.1.1.1", "s=Play", "c=IN IP4 10.1.1.1",
                         "t=0 0"]
    assert f"m=video 9000 {proto} 96 97 98 99" in lines and "a=rtpmap:96 PS/90000" in lines
    assert "a=recvonly" in lines and lines[-2:] == ["y=0200000001", ""]
    assert (setup in lines) if setup else not any(line.startswith("a=setup") for line in lines)


def test_camera_answer():
    answer = media.parse_sdp_answer(body_of("camera_invite_200.txt"))
    assert (answer.ip, answer.port, answer.transport, answer.setup, answer.ssrc) == (
        "192.168.1.64", 15060, "tcp", "active", "0200007585")
    assert answer.ssrc_value == 200007585 and answer.direction == "sendonly" and not answer.vendor_private


def test_answer_quirks():
    udp = media.parse_sdp_answer(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 6000 RTP/AVP 96\r\na=rtpmap:96 HIKVISION/90000\r\n")
    assert udp.transport == "udp" and udp.setup is None and udp.ssrc is None and udp.vendor_private
    with pytest.raises(media.SdpAnswerError) as info:
        media.parse_sdp_answer(b"v=0\r\nm=audio 1 RTP/AVP 8\r\n")
    assert info.value.status_hint == 488


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_bodies_only_raise_manscdp_error(data):
    try:
        x.parse(data)
    except x.ManscdpError:
        pass
    try:
        media.parse_sdp_answer(data)
    except media.SdpAnswerError:
        pass


# Flat documents (a root of plain leaf elements) are read by a pattern, the rest by ElementTree:
# both must say the same of every flat document.
_FLAT_TAGS = ["CmdType", "SN", "DeviceID", "Status", "DeviceName", "Manufacturer", "Model", "Firmware",
              "Channel", "Result", "SumNum", "PTZCmd", "cmdtype", "sn", "deviceid", "Extra"]
_FLAT_TEXT = st.text(alphabet=st.sampled_from(list("0123456789 abcKeepaliveCatalogDeviceInfoControl\r\n\t摄像机")),
                     max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["Notify", "Query", "Response", "Control", "Other", "notify"]),
       st.lists(st.tuples(st.sampled_from(_FLAT_TAGS), _FLAT_TEXT), max_size=8),
       st.booleans(), st.sampled_from(["\r\n", "\n", "", "  "]))
def test_flat_documents_read_the_same_without_elementtree(root, fields, declared, gap):
    fields = [("CmdType", "Keepalive"), *fields] if len(fields) % 3 == 0 else fields
    text = ('<?xml version="1.0" encoding="UTF-8"?>' + gap if declared else "") + f"<{root}>" + gap
    text += gap.join(f"<{tag}>{value}</{tag}>" for tag, value in fields) + gap + f"</{root}>" + gap
    body = text.encode()
    assert x._flat(x.decode_body(body)) is not None

    def outcome(fast: bool) -> object:
        original = x._flat
        if not fast:
            x._flat = lambda _text: None
        try:
            return x.parse(body)
        except x.ManscdpError as e:
            return ("error", e.status_hint)
        finally:
            x._flat = original

    assert outcome(True) == outcome(False)


@pytest.mark.parametrize("body", [
    b"<Notify><CmdType>Keepalive</CmdType><SN>1</SN><Info><DeviceID>1</DeviceID></Info></Notify>",
    b'<Notify xmlns="x"><CmdType>Keepalive</CmdType><SN>1</SN></Notify>',
    b"<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>a&amp;b</DeviceID></Notify>",
    b"<Notify><!-- c --><CmdType>Keepalive</CmdType><SN>1</SN></Notify>",
    b"<Notify><CmdType>Keepalive</CmdType><SN>1</SN></Notify> junk",
    b"<Notify><CmdType>Keepalive</CmdType><SN>1</sn></Notify>",
])
def test_documents_that_are_not_flat_go_through_elementtree(body):
    assert x._flat(x.decode_body(body)) is None
    try:
        x.parse(body)  # ElementTree reads them (the quirk rules apply), or refuses them
    except x.ManscdpError:
        pass
