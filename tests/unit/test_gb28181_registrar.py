"""gb28181.registrar with the device texts of tests/data/sip, each parsed and answered as the adapter
will do it (transaction layer + registrar): 401 challenge, 200 with Date/Contact/Expires, 403 on a
wrong password with a growing delay, Expires: 0, a re-REGISTER from a new address, Keepalive from a
known and an unknown device, the catalog parts, expiry after missed keepalives."""

from __future__ import annotations

import re
from pathlib import Path

from pms_trio.gb28181 import manscdp as x
from pms_trio.gb28181.registrar import Registrar, date_header
from pms_trio.sip import digest as d
from pms_trio.sip import message as m
from pms_trio.sip import transaction as t
from pms_trio.sip.addressing import Destination

DATA = Path(__file__).parents[1] / "data" / "sip"
REALM = "3402000000"
SECRET = b"pms-trio-test-secret"
NOW = 1_700_000_005.0  # the texts' nonce was issued at 1_700_000_000
WALL = 1_700_000_005.25
HIK = "34020000001320000001"
CAM = Destination("UDP", "192.168.1.64", 5060)


def registrar(password="12345678") -> Registrar:
    return Registrar(realm=REALM, password=password, authenticator=d.DigestAuthenticator(REALM, secret=SECRET),
                     throttle=d.FailureThrottle(free=1, base=1.0, cap=8.0))


def load(name: str) -> m.Request:
    request = m.parse_datagram((DATA / name).read_bytes())
    assert isinstance(request, m.Request)
    return request


def serve(reg: Registrar, name: str, source: Destination = CAM, now: float = NOW):
    """Through the transaction layer like the adapter: the outcome and the bytes on the wire."""
    layer = t.TransactionLayer()
    [delivered] = layer.receive(load(name), source, now)
    request = delivered.message
    if request.method == "REGISTER":
        outcome = reg.handle_register(request, source, now, WALL)
    else:
        outcome = reg.handle_message(request, source, now)
    [sent] = layer.send_response(request, outcome.response, now)
    assert sent.destination == source
    answer = m.parse_datagram(sent.data)
    assert answer.status == outcome.response.status and answer.to.tag
    assert answer.call_id == request.call_id and answer.cseq == request.cseq
    return outcome, answer


def test_first_register_is_challenged():
    outcome, answer = serve(registrar(), "hikvision_register.txt")
    assert outcome.event == "challenged" and answer.status == 401
    params = d.parse_digest(answer.header("WWW-Authenticate"))
    assert params["realm"] == REALM and params["algorithm"] == "MD5" and params["nonce"]


def test_register_with_credentials_then_keepalive_then_unregister():
    reg = registrar()
    outcome, answer = serve(reg, "hikvision_register_auth.txt")
    assert outcome.event == "registered" and answer.status == 200
    assert answer.header("Expires") == "3600" and answer.header("Contact") == f"<sip:{HIK}@192.168.1.64:5060>"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", answer.header("Date"))
    assert reg.devices[HIK].address == CAM
    outcome, answer = serve(reg, "hikvision_keepalive.txt", now=NOW + 60)
    assert answer.status == 200 and outcome.body == x.Keepalive(9, HIK)
    assert reg.devices[HIK].last_seen == NOW + 60 and not answer.body
    outcome, answer = serve(reg, "hikvision_unregister.txt")
    assert outcome.event == "unregistered" and answer.header("Expires") == "0" and HIK not in reg.devices


def test_dahua_qop_and_sipp_uri_register():
    reg = registrar()
    outcome, _ = serve(reg, "dahua_register_auth_qop.txt", Destination("UDP", "203.0.113.7", 40000))
    assert outcome.event == "registered" and outcome.device_id == "34020000001320000002"
    outcome, answer = serve(reg, "dahua_keepalive_compact.txt", Destination("UDP", "203.0.113.7", 40000))
    assert answer.status == 200 and isinstance(outcome.body, x.Keepalive)
    outcome, _ = serve(reg, "sipp_register_auth.txt", Destination("UDP", "127.0.1.1", 5061))
    assert outcome.event == "registered"


def test_wrong_password_is_403_and_slowed_down():
    reg = registrar(password="wrong")
    delays = [serve(reg, "hikvision_register_auth.txt")[0] for _ in range(4)]
    assert [o.response.status for o in delays] == [403] * 4 and [o.event for o in delays] == ["forbidden"] * 4
    assert [o.delay for o in delays] == [0.0, 1.0, 2.0, 4.0]
    assert serve(reg, "hikvision_register_auth.txt", Destination("UDP", "10.9.9.9", 5060))[0].delay == 0.0


def test_re_register_from_a_new_address_moves_the_device():
    reg = registrar()
    serve(reg, "hikvision_register_auth.txt")
    moved = Destination("UDP", "198.51.100.20", 18000)
    outcome, answer = serve(reg, "hikvision_register_auth.txt", moved)
    assert outcome.event == "refreshed" and reg.devices[HIK].address == moved
    assert "received=198.51.100.20" in answer.header("Via") and "rport=18000" in answer.header("Via")


def test_keepalive_from_an_unknown_device_is_400():
    outcome, answer = serve(registrar(), "hikvision_keepalive.txt")
    assert outcome.event == "unknown" and answer.status == 400


def test_nvr_catalog_and_device_info_are_answered_200():
    reg = registrar(password=None)  # no password configured: REGISTER is accepted as is
    outcome, _ = serve(reg, "hikvision_register.txt", Destination("UDP", "192.168.1.20", 5060))
    assert outcome.event == "registered"
    reg.devices["34020000001180000001"] = reg.devices.pop(HIK)  # the NVR, for the texts below
    for name in ("hikvision_nvr_catalog_1of3.txt", "hikvision_nvr_catalog_2of3.txt",
                 "hikvision_nvr_catalog_3of3.txt", "hikvision_nvr_deviceinfo.txt"):
        outcome, answer = serve(reg, name, Destination("UDP", "192.168.1.20", 5060))
        assert answer.status == 200 and outcome.body is not None


def test_bad_body_from_a_known_device_is_400_and_unknown_cmd_is_200():
    reg = registrar(password=None)
    serve(reg, "hikvision_register.txt")
    request = load("hikvision_keepalive.txt")
    bad = reg.handle_message(m.Request("MESSAGE", request.uri, request.headers, b"<oops"), CAM, NOW)
    assert bad.response.status == 400
    other = reg.handle_message(m.Request("MESSAGE", request.uri, request.headers,
                                         b"<Notify><CmdType>DataTransfer</CmdType><SN>1</SN></Notify>"), CAM, NOW)
    assert other.response.status == 200 and isinstance(other.body, x.Other)


def test_missed_keepalives_and_expiry_take_the_device_offline():
    reg = registrar()
    serve(reg, "hikvision_register_auth.txt")
    assert reg.next_deadline() == NOW + 180
    serve(reg, "hikvision_keepalive.txt", now=NOW + 100)
    assert reg.handle_timeout(NOW + 279) == [] and reg.next_deadline() == NOW + 280
    assert reg.handle_timeout(NOW + 280) == [HIK] and not reg.devices


def test_date_header_is_beijing_time():
    assert date_header(1288681286.115) == "2010-11-02T15:01:26.115"
