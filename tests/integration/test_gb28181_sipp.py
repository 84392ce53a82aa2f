"""sipp (Debian package sip-tester) against the server: an outside SIP implementation runs the
GB28181 registration, keepalive and catalog scenarios of tests/data/sipp/. sipp computes the digest
itself (its ``uri=`` is the remote host, not our Request-URI); its exit status is 0 only when every
expected message arrived (and each ``check_it`` regexp matched, e.g. the 200's Date)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Server, ServerFactory, free_udp_port
from .test_gb28181_sip import PASSWORD, gb_server

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "sipp"


def sipp(srv: Server, scenario: str, device: str, password: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("sipp")
    if exe is None:
        pytest.fail("sipp is not installed: apt-get install -y sip-tester (see .ci/run)")
    command = [exe, f"127.0.0.1:{srv.ready['sip']}", "-sf", str(SCENARIOS / scenario), "-m", "1", "-t", "u1",
               "-i", "127.0.0.1", "-p", str(free_udp_port()), "-s", device, "-au", device, "-ap", password, "-oocsf", str(SCENARIOS / "ooc_answer.xml"),
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
