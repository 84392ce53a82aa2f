"""What the benchmarks share: starting a real pms-trio server, sampling it in /proc, and the step
loop and figures around a measurement.

``fanout/run.py`` and ``rtsp_fanout/run.py`` import it (``sys.path`` gets ``bench/``). Each step of a
benchmark starts a fresh server with :class:`Server` (``pms-trio run -c <temp config> --ready-file
<path>``; all ports 0, ``sip.enable`` false, ``master.numOfWorkProcess`` 1, console log level warn,
plus the benchmark's own overrides) and stops it with SIGINT. :func:`cpu_seconds`, :func:`thread_cpu`
and :func:`rss_kib` read /proc; :func:`player_steps` is the list of N a run goes through,
:func:`step_row` runs one step into a table row (an error row when it fails), :func:`cpu_share` and
:func:`fmt` make the figures. Stdlib only.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds of process ``pid`` (or of its thread ``tid``), from /proc."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of process ``pid`` (a thread that ends meanwhile is
    left out; an empty dict when the process is gone)."""
    out: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            out[int(tid)] = cpu_seconds(pid, int(tid))
        except OSError:
            pass
    return out


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raise_nofile() -> None:
    """The open-file limit up to the hard limit (inherited by the server and the clients)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def server_command(explicit: str | None) -> list[str]:
    """``--server-cmd`` if given; else the ``pms-trio`` next to this interpreter (a venv that is
    not on PATH: measure what was just installed there), else PATH's, else ``python -m pms_trio``."""
    if explicit:
        return explicit.split()
    beside = Path(sys.executable).with_name("pms-trio")
    exe = str(beside) if beside.exists() else shutil.which("pms-trio")
    if exe:
        return [exe]
    return [sys.executable, "-m", "pms_trio"]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def server_config(folder: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The benchmarks' config: loopback, every port 0, one worker, SIP off; then ``overrides``."""
    base = {
        "log": {"consoleLevel": "warn", "fileLevel": "warn", "workerLevel": "warn",
                "file": str(folder / "pms.log")},
        "websocket": {"port": 0, "listenIp": "127.0.0.1"},
        "http": {"port": 0, "listenIp": "127.0.0.1"},
        "webrtc": {"listenIp": "127.0.0.1", "announcedIp": "127.0.0.1", "minPort": 0, "maxPort": 0},
        "rtsp": {"port": 0, "listenIp": "127.0.0.1"},
        "record": {"cmdPort": 0, "recordPath": str(folder / "record")},
        "sip": {"enable": False},
        "master": {"numOfWorkProcess": 1},
    }
    return deep_merge(base, overrides or {})


class Server:
    """A pms-trio process in ``folder`` (config, ready file, output); ``ready`` is its ready file
    (URLs, ports, ``pid``). ``cpus``: pin the server to these CPUs."""

    def __init__(self, cmd: list[str], folder: Path, overrides: dict[str, Any] | None = None,
                 cpus: set[int] | None = None) -> None:
        self.folder = folder
        cfg = folder / "pms.json"
        cfg.write_text(json.dumps(server_config(folder, overrides), indent=2))
        self.ready_file = folder / "ready.json"
        self.log_path = folder / "server.out"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - the child holds it
        env = dict(os.environ)
        if cmd[1:3] == ["-m", "pms_trio"]:
            # Fallback when pms-trio is not installed: the source tree, with an in-place build.
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "python"), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(cmd + ["run", "-c", str(cfg), "--ready-file", str(self.ready_file)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=folder,
                                     preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        self.ready = self._wait_ready(30.0)
        self.pid = int(self.ready.get("pid") or self.proc.pid)

    def _wait_ready(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                ready: dict[str, Any] = json.loads(self.ready_file.read_text())
                return ready
            except (OSError, ValueError):
                time.sleep(0.05)
        raise RuntimeError(f"server not ready in {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT, 10.0)
        self.log.close()


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Send ``sig`` to ``proc`` if it still runs; kill it if it has not exited ``timeout`` s later."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------- steps


def player_steps(players: str | None, first: list[int], then: int, largest: int) -> tuple[list[int], bool]:
    """The N of each step and whether they were chosen here (auto): ``--players`` (comma-separated)
    when given, else ``first`` and then doubling from ``then`` while it stays <= ``largest``."""
    if players is not None:
        return [int(x) for x in players.split(",") if x.strip()], False
    steps = list(first)
    n = then
    while n <= largest:
        steps.append(n)
        n *= 2
    return steps, True


def step_row(n: int, step: Callable[[], dict[str, Any]], **error_fields: Any) -> dict[str, Any]:
    """``step()``'s row for N = ``n``, logged as JSON. A step that raises is reported and the run goes
    on: its row is ``{"players": n, **error_fields, "error": <first line of the exception>}``."""
    try:
        row = step()
    except Exception as e:  # noqa: BLE001 - report and go on
        text = str(e).strip()
        row = {"players": n, **error_fields, "error": text.splitlines()[0] if text else repr(e)}
        log(f"N = {n}: {e}")
    else:
        log(f"N = {n}: {json.dumps(row)}")
    return row


# ---------------------------------------------------------------------------------------------- figures


def cpu_share(seconds: float, wall: float) -> float | None:
    """CPU ``seconds`` per second of ``wall`` time, to 3 places; None for an empty window."""
    return round(seconds / wall, 3) if wall > 0 else None


def fmt(v: Any, spec: str = "") -> str:
    """A table cell: ``v`` formatted with ``spec``, "-" for a missing figure."""
    return "-" if v is None else format(v, spec)
