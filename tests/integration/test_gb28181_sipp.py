"""sipp (Debian package sip-tester) against the server: an outside SIP implementation runs the
GB28181 registration, keepalive and catalog scenarios of tests/data/sipp/. sipp computes the digest
itself (its ``uri=`` is the remote host, not our Request-URI); its exit status is 0 only when every
expected message arrived (and each ``check_it`` regexp matched, e.g. the 200's Date)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .conftest import Server, ServerFactory, free_udp_port
from .test_gb28181_sip import PASSWORD, call, gb_server

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "sipp"


def sipp(srv: Server, scenario: str, device: str, password: str, tmp: Path,
         ooc: str = "ooc_answer.xml") -> subprocess.CompletedProcess[str]:
    exe = shutil.which("sipp")
    if exe is None:
        pytest.fail("sipp is not installed: apt-get install -y sip-tester (see .ci/run)")
    command = [exe, f"127.0.0.1:{srv.ready['sip']}", "-sf", str(SCENARIOS / scenario), "-m", "1", "-t", "u1",
               "-i", "127.0.0.1", "-p", str(free_udp_port()), "-s", device, "-au", device, "-ap", password, "-oocsf", str(SCENARIOS / ooc),
               "-timeout", "20s", "-timeout_error", "-max_recv_loops", "1000", "-nostdin",
               "-trace_err", "-error_file", str(tmp / "sipp_errors.log")]
    result = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=40)
    if result.returncode != 0:
        errors = (tmp / "sipp_errors.log").read_text(errors="replace") if (tmp / "sipp_errors.log").exists() else ""
        print(result.stdout[-3000:], result.stderr[-3000:], errors[-3000:])
    return result


def test_sipp_register_with_digest_and_unregister(server: ServerFactory, tmp_path: Path) -> None:
    srv = gb_server(server)
    device = "34020000001320000031"
    assert sipp(srv, "register.xml", device, PASSWORD, tmp_path).returncode == 0
    devices = srv.api("/srs-sip/v1/devices")["data"]
    assert [(d["device_id"], d["status"]) for d in devices] == [(device, "offline")]  # Expires 0 at the end


def test_sipp_wrong_password_gets_403(server: ServerFactory, tmp_path: Path) -> None:
    srv = gb_server(server)
    assert sipp(srv, "register_wrong_password.xml", "34020000001320000032", "not-it", tmp_path).returncode == 0
    assert srv.api("/srs-sip/v1/devices")["data"] == []


def test_sipp_keepalive_and_catalog_in_two_messages(server: ServerFactory, tmp_path: Path) -> None:
    srv = gb_server(server)
    device = "34020000001320000033"
    assert sipp(srv, "keepalive_catalog.xml", device, PASSWORD, tmp_path).returncode == 0
    channels = srv.api(f"/srs-sip/v1/devices/{device}/channels")["data"]
    assert sorted(c["device_id"] for c in channels) == [f"3402000000131000010{n}" for n in (1, 2, 3)]
    assert {c["name"] for c in channels} == {"sipp-1", "sipp-2", "sipp-3"}
    doc = next(d for d in srv.api("/srs-sip/v1/devices")["data"] if d["device_id"] == device)
    assert doc["status"] == "online" and doc["keepalives"] == 1 and doc["catalog_complete"] is True
    assert doc["manufacturer"] == "SIPp" and doc["model"] == "sipp-3.6"


def test_sipp_device_answers_record_info_in_two_messages_and_a_playback_invite(server: ServerFactory,
                                                                               tmp_path: Path) -> None:
    """sipp as an IPC (its channel is its own ID): RecordInfo with the query's SN in two parts, then
    the playback INVITE, whose SDP and Subject sipp checks (ooc_history.xml), and the BYE."""
    srv = server({"sip": {"enable": True, "password": PASSWORD, "mediaTransport": "tcp-passive"}})
    device = "34020000001320000034"
    result: list[subprocess.CompletedProcess[str]] = []
    runner = threading.Thread(target=lambda: result.append(
        sipp(srv, "register_stay.xml", device, PASSWORD, tmp_path, ooc="ooc_history.xml")))
    runner.start()
    try:
        for _ in range(100):
            devices = call(srv, "GET", "/srs-sip/v1/devices")[1]["data"]
            if any(d["device_id"] == device and d["online"] for d in devices):
                break
            time.sleep(0.1)
        status, doc = call(srv, "POST", "/srs-sip/v1/query-record", {
            "device_id": device, "channel_id": device, "start_time": 1_700_000_000, "end_time": 1_700_010_000})
        assert status == 200 and doc["code"] == 0, doc
        assert [(i["file_path"], i["type"], i["start"]) for i in doc["data"]] == [
            ("/sd/1.mp4", "time", 1_700_000_000), ("/sd/2.mp4", "alarm", 1_700_001_000),
            ("/sd/3.mp4", "time", 1_700_003_600)]
        status, doc = call(srv, "POST", "/srs-sip/v1/invite", {
            "device_id": device, "channel_id": device, "play_type": 1, "start_time": 1_700_000_000,
            "end_time": 1_700_000_600})
        assert status == 200 and doc["data"]["url"].endswith(f"/{device}_1700000000_1700000600"), doc
        status, doc = call(srv, "POST", "/srs-sip/v1/bye", {"device_id": device, "channel_id": device,
                                                           "url": doc["data"]["url"]})
        assert status == 200, doc
    finally:
        runner.join(40)
    assert result and result[0].returncode == 0, result[0].stdout[-2000:] if result else "sipp did not end"
