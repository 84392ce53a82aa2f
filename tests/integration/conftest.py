"""The real server as a fixture.

``server(**options)`` writes a config into the test's temp folder (everything on 127.0.0.1, every
port 0 or test-chosen, SIP off), starts ``pms-trio run -c CONFIG --ready-file READY`` as a child
process with its output in a log file, waits (at most 20 s) for the ready file and returns a
:class:`Server` with the URLs from it. At teardown each server still running gets SIGTERM and must
exit with status 0 within 5 s (unless started with ``graceful=False``); one that does not is
killed and the test errors. When a test fails, the server's log is printed with it.

Tests are plain sync functions that run their asyncio part with ``asyncio.run`` (aiortc is
asyncio; the server is a separate process), so the fixture is sync too.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest

from . import peers  # noqa: F401  (restricts aioice to 127.0.0.1 before any peer exists)

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
LOG_TAIL_LINES = 300


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: costs tens of seconds by design; runs by default")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_range(size: int, attempts: int = 50) -> tuple[int, int]:
    """``size`` consecutive UDP ports free on 127.0.0.1 right now (random base, bounded tries)."""
    for _ in range(attempts):
        base = random.randrange(40000, 60000 - size)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base, base + size - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {size} consecutive free UDP ports found in {attempts} tries")


def pms_trio_command() -> list[str]:
    script = Path(sys.executable).with_name("pms-trio")
    if script.exists():
        return [str(script)]
    found = shutil.which("pms-trio")
    if found:
        return [found]
    pytest.fail("the pms-trio command is not installed: run pip install '.[test]' first")


@dataclass
class Server:
    """A running ``pms-trio run``; URLs come from its ready file."""

    proc: subprocess.Popen[bytes]
    config: dict[str, Any]
    config_path: Path
    log_path: Path
    ready: dict[str, Any]
    graceful: bool = True
    returncode: int | None = None
    stop_seconds: float | None = None
    _log_file: Any = field(default=None, repr=False)

    @property
    def ws_url(self) -> str:
        return self.ready["websocket"]

    @property
    def http_url(self) -> str:
        return self.ready["http"].rstrip("/")

    @property
    def rtsp_url(self) -> str:
        return self.ready["rtsp"].rstrip("/")

    @property
    def webrtc_ports(self) -> list[int]:
        return list(self.ready["webrtc_ports"])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no log: {e})"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # HTTP API ---------------------------------------------------------------------------

    def api(self, path: str, timeout: float = 5.0) -> Any:
        with urllib.request.urlopen(self.http_url + path, timeout=timeout) as resp:
            assert resp.status == 200, (path, resp.status)
            return json.loads(resp.read())

    async def api_async(self, path: str, timeout: float = 5.0) -> Any:
        return await asyncio.wait_for(asyncio.to_thread(self.api, path, timeout), timeout + 1)

    def core(self) -> dict[str, int]:
        return self.api("/api/v1/server")["core"]

    async def wait_core(self, timeout: float = 10.0, **expected: int) -> dict[str, int]:
        """Poll ``GET /api/v1/server`` until ``core`` has the expected counts (bounded)."""
        deadline = time.monotonic() + timeout
        core: dict[str, int] = {}
        for _ in range(int(timeout / 0.2) + 2):
            core = (await self.api_async("/api/v1/server"))["core"]
            if all(core.get(k) == v for k, v in expected.items()):
                return core
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
        raise AssertionError(f"core counts {core} did not reach {expected} within {timeout} s")

    # Lifecycle --------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then wait at most ``timeout`` s; SIGKILL after 2 x ``timeout``.

        Returns the exit status when the process exited within ``timeout`` s, else ``None``
        (and the process is killed). Records ``stop_seconds``.
        """
        if self.returncode is not None or self.stop_seconds is not None:
            return self.returncode
        start = time.monotonic()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.returncode = None
        self.stop_seconds = time.monotonic() - start
        if self.returncode is None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        if self._log_file is not None:
            self._log_file.close()
        return self.returncode

    def _kill(self) -> None:
        for target in (lambda: os.killpg(self.proc.pid, signal.SIGKILL), self.proc.kill):
            try:
                target()
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


def base_config(tmp: Path, webrtc_range: tuple[int, int]) -> dict[str, Any]:
    return {
        "log": {
            "file": str(tmp / "logs" / "pms.log"),
            "consoleLevel": "debug",
            "fileLevel": "debug",
            "workerLevel": "warn",
        },
        "websocket": {"port": 0, "listenIp": "127.0.0.1", "location": "/", "heartbeatTimeout": 30},
        "master": {"numOfWorkProcess": 2},
        "webrtc": {
            "listenIp": "127.0.0.1",
            "announcedIp": "127.0.0.1",
            "minPort": webrtc_range[0],
            "maxPort": webrtc_range[1],
        },
        "rtsp": {"port": 0, "listenIp": "127.0.0.1"},
        "record": {"cmdPort": 0, "recordPath": str(tmp / "record")},
        "pull": [],
        "sip": {"enable": False, "listenIp": "127.0.0.1", "port": 0, "mediaPort": 0},
        "http": {"port": 0, "listenIp": "127.0.0.1"},
    }


ServerFactory = Callable[..., Server]


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Factory: ``server(config=None, *, heartbeat_timeout=None, graceful=True, wrap=None) -> Server``.

    ``config`` is deep-merged over the test defaults (see :func:`base_config`). ``graceful``:
    teardown asserts SIGTERM ends the process with status 0 within 5 s. ``wrap(command, config)``
    returns the command line to run instead (e.g. under ``unshare``); it must ``exec`` the server
    in the same process, so the ready file's pid is the child's.
    """
    started: list[Server] = []

    def start(
        config: dict[str, Any] | None = None,
        *,
        heartbeat_timeout: float | None = None,
        graceful: bool = True,
        wrap: Callable[[list[str], dict[str, Any]], list[str]] | None = None,
    ) -> Server:
        tmp = tmp_path_factory.mktemp("pms")
        cfg = base_config(tmp, free_udp_range(20))
        if heartbeat_timeout is not None:
            cfg["websocket"]["heartbeatTimeout"] = heartbeat_timeout
        cfg = deep_merge(cfg, config or {})
        config_path = tmp / "pms.conf"
        config_path.write_text(json.dumps(cfg, indent=2))
        ready_path = tmp / "ready.json"
        log_path = tmp / "server.log"
        log_file = open(log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", RUST_BACKTRACE="1")
        command = [*pms_trio_command(), "run", "-c", str(config_path), "--ready-file", str(ready_path)]
        proc = subprocess.Popen(
            wrap(command, cfg) if wrap is not None else command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env=env,
            start_new_session=True,
        )
        srv = Server(proc, cfg, config_path, log_path, {}, graceful=graceful, _log_file=log_file)
        started.append(srv)
        srv.ready = _wait_ready(srv, ready_path)
        return srv

    yield start

    failed = any(getattr(request.node, f"rep_{w}", None) is not None and getattr(request.node, f"rep_{w}").failed
                 for w in ("setup", "call"))
    problems = []
    for srv in started:
        crashed = not srv.alive() and srv.stop_seconds is None
        rc = srv.stop()
        if crashed:
            problems.append(f"server pid {srv.pid} died during the test with status {srv.proc.returncode}")
        elif srv.graceful and srv.stop_seconds is not None and (rc != 0 or srv.stop_seconds > STOP_TIMEOUT):
            problems.append(
                f"server pid {srv.pid}: SIGTERM gave status {rc} after {srv.stop_seconds:.1f} s"
                f" (want 0 within {STOP_TIMEOUT} s)"
            )
        if failed or problems:
            print(f"\n----- server log {srv.log_path} (last {LOG_TAIL_LINES} lines) -----\n{srv.log_tail()}")
    assert not problems, "; ".join(problems)


def _wait_ready(srv: Server, ready_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT
    last_error = "no ready file"
    for _ in range(int(READY_TIMEOUT / 0.05) + 1):
        if not srv.alive():
            srv.stop()
            pytest.fail(
                f"pms-trio exited with status {srv.proc.returncode} before it was ready\n{srv.log_tail()}",
                pytrace=False,
            )
        if ready_path.exists():
            try:
                ready = json.loads(ready_path.read_text())
                for key in ("websocket", "http", "rtsp", "webrtc_ports", "pid"):
                    assert key in ready, f"ready file lacks {key!r}: {ready}"
                assert ready["pid"] == srv.pid, f"ready file pid {ready['pid']} is not the child's {srv.pid}"
                return ready
            except json.JSONDecodeError as e:  # still being written
                last_error = f"ready file not valid JSON yet: {e}"
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    srv.stop()
    pytest.fail(f"pms-trio not ready within {READY_TIMEOUT} s ({last_error})\n{srv.log_tail()}", pytrace=False)


# --------------------------------------------------------------------------------------------
# TLS


@dataclass
class SelfSigned:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture
def self_signed(tmp_path: Path) -> SelfSigned:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1`` (PEM files in tmp_path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    out = SelfSigned(tmp_path / "cert.pem", tmp_path / "key.pem")
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return out
