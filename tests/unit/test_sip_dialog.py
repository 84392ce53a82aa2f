"""sip.dialog: the GB28181 play INVITE (Subject, SDP offer) answered by the camera text in
tests/data/sip, the UAC's ACK for the 2xx, BYE from us and from the device, CSeq and tag checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pms_trio.gb28181 import media
from pms_trio.sip import message as m
from pms_trio.sip.dialog import Dialog, DialogState, DialogTable

DATA = Path(__file__).parents[1] / "data" / "sip"
SERVER = "34020000002000000001"
CHANNEL = "34020000001320000001"


def our_invite() -> m.Request:
    ssrc = media.make_ssrc(SERVER, 7585)
    body = media.invite_sdp(server_id=SERVER, media_ip="192.168.1.10", media_port=9000, ssrc=ssrc)
    return m.Request("INVITE", f"sip:{CHANNEL}@192.168.1.64:5060", (
        ("Via", "SIP/2.0/UDP 192.168.1.10:5060;rport;branch=z9hG4bKinvite0001"),
        ("From", f"<sip:{SERVER}@3402000000>;tag=pms0001"), ("To", f"<sip:{CHANNEL}@192.168.1.64:5060>"),
        ("Call-ID", "0a1b2c3d4e5f@192.168.1.10"), ("CSeq", "1 INVITE"),
        ("Contact", f"<sip:{SERVER}@192.168.1.10:5060>"), ("Subject", media.subject(CHANNEL, ssrc, SERVER)),
        ("Content-Type", "APPLICATION/SDP"), ("Max-Forwards", "70")), body)


def camera_ok() -> m.Response:
    response = m.parse_datagram((DATA / "camera_invite_200.txt").read_bytes())
    assert isinstance(response, m.Response)
    return response


def test_invite_has_subject_and_y_line():
    invite = our_invite()
    assert invite.header("Subject") == f"{CHANNEL}:0200007585,{SERVER}:0"
    assert b"\r\ny=0200007585\r\n" in invite.body and invite.body.endswith(b"\r\n")
    assert m.parse_datagram(m.serialize(invite)) is not None


def test_uac_dialog_ack_and_bye():
    invite, ok = our_invite(), camera_ok()
    dialog = Dialog.from_uac(invite, ok)
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.key == ("0a1b2c3d4e5f@192.168.1.10", "pms0001", "1395712263")
    assert dialog.remote_target == f"sip:{CHANNEL}@192.168.1.64:5060"
    ack = dialog.ack("UDP", "192.168.1.10", 5060)
    assert ack.method == "ACK" and ack.cseq == (1, "ACK") and ack.uri == dialog.remote_target
    assert ack.from_.tag == "pms0001" and ack.to.tag == "1395712263" and ack.call_id == invite.call_id
    assert ack.top_via.branch != invite.top_via.branch and ack.top_via.branch.startswith("z9hG4bK")
    bye = dialog.bye("UDP", "192.168.1.10", 5060)
    assert bye.cseq == (2, "BYE") and bye.to.tag == "1395712263" and bye.call_id == invite.call_id
    assert dialog.state is DialogState.TERMINATED
    assert m.parse_datagram(m.serialize(bye)) == bye.__class__(**{
        **{f: getattr(bye, f) for f in ("method", "uri", "body", "version")},
        "headers": (*bye.headers, ("Content-Length", "0"))})
    with pytest.raises(m.LocalProtocolError):
        dialog.request("INFO", "UDP", "192.168.1.10", 5060)


def test_record_route_becomes_the_route_set_reversed():
    ok = m.with_header(camera_ok(), "Record-Route", "<sip:p2@10.0.0.2;lr>, <sip:p1@10.0.0.1;lr>")
    dialog = Dialog.from_uac(our_invite(), ok)
    assert dialog.route_set == ("<sip:p1@10.0.0.1;lr>", "<sip:p2@10.0.0.2;lr>")
    assert dialog.ack("UDP", "h", 5060).header_all("Route") == list(dialog.route_set)


def test_device_bye_ends_the_dialog_and_stale_cseq_is_500():
    invite, ok = our_invite(), camera_ok()
    table = DialogTable()
    dialog = Dialog.from_uac(invite, ok)
    table.add(dialog)
    bye = m.Request("BYE", f"sip:{SERVER}@192.168.1.10:5060", (
        ("Via", "SIP/2.0/UDP 192.168.1.64:5060;branch=z9hG4bKbye1"), ("From", ok.header("To")),
        ("To", invite.header("From")), ("Call-ID", invite.call_id), ("CSeq", "21 BYE")))
    assert table.find(bye) is dialog
    info = m.with_header(bye, "CSeq", "20 INFO")
    assert dialog.receive_request(m.Request("INFO", bye.uri, info.headers)) == 200
    assert dialog.receive_request(bye) == 200 and dialog.state is DialogState.TERMINATED
    assert dialog.receive_request(bye) == 500  # the same CSeq again
    stranger = m.with_header(bye, "Call-ID", "other")
    assert table.find(stranger) is None and dialog.receive_request(stranger) == 481
    table.remove(dialog)
    assert len(table) == 0


def test_uas_dialog_from_an_invite_we_answered():
    invite = m.Request("INVITE", f"sip:{SERVER}@192.168.1.10", (
        ("Via", "SIP/2.0/UDP 192.168.1.64:5060;branch=z9hG4bKi"), ("From", f"<sip:{CHANNEL}@3402000000>;tag=dev"),
        ("To", f"<sip:{SERVER}@3402000000>"), ("Call-ID", "c2"), ("CSeq", "4 INVITE"),
        ("Contact", f"<sip:{CHANNEL}@192.168.1.64:5060>")))
    ok = m.response_to(invite, 200, to_tag="ours")
    dialog = Dialog.from_uas(invite, ok)
    assert dialog.key == ("c2", "ours", "dev") and dialog.remote_seq == 4
    bye = dialog.bye("UDP", "192.168.1.10", 5060)
    assert bye.from_.tag == "ours" and bye.to.tag == "dev" and bye.cseq == (1, "BYE")
    assert bye.uri == f"sip:{CHANNEL}@192.168.1.64:5060"


def test_response_without_to_tag_cannot_make_a_dialog():
    ok = m.with_header(camera_ok(), "To", f"<sip:{CHANNEL}@192.168.1.64:5060>")
    with pytest.raises(m.SipParseError):
        Dialog.from_uac(our_invite(), ok)
