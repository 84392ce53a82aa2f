"""Janus 1.1 (Debian ``janus``) as the second server of the fan-out benchmark, and the private network
namespace both servers run in when Janus is measured.

Janus gathers no loopback ICE candidates, so ``run.py --peer janus|both`` runs itself again inside a
network namespace it creates (:class:`Netns`: ``ip netns add``, ``lo`` up, a veth pair inside it
whose first end has the first address of a private /30 out of 10.213.0.0/16, no default route) and
deletes afterwards, on every exit path. Inside, pms-trio, Janus and the load client all use that
address, so both servers are measured under the same conditions. Needs root (``ip netns``).

:class:`Janus` writes a temporary config folder (nothing under /etc is touched): only the VideoRoom
plugin and the WebSocket transport are loaded (every other plugin, transport, logger and event
handler disabled), ICE-lite as pms-trio (the client then is the controlling agent towards both;
``--janus-ice full`` keeps Janus's full ICE, and the client is then the controlled agent of the
players, whose offer comes from Janus), the candidate only on that veth end, warnings-only logging
to a file, Janus's other defaults (one event loop thread per handle, its NACK queue, and so on).
The client creates the room itself (H.264 + Opus, one publisher). Stdlib only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import log, stop_process  # noqa: E402

JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
JANUS_WS_PORT = 8188
IFACE = "pmsb0"
ROOM = 1


def janus_binary() -> str:
    """The ``janus`` executable; installs the Debian package when it is missing and we are root."""
    exe = shutil.which("janus")
    if exe:
        return exe
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("janus not found: apt-get install -y janus ...")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "janus"], env=env, stdout=subprocess.DEVNULL)
        exe = shutil.which("janus")
        if r.returncode == 0 and exe:
            return exe
    sys.exit("run.py --peer janus: the `janus` binary is missing; install Debian's package "
             "(apt-get install -y janus) and run again")


def lib_folder() -> Path:
    for cand in (JANUS_LIB, Path("/usr/lib/janus"), Path("/usr/local/lib/janus"), Path("/opt/janus/lib/janus")):
        if (cand / "plugins" / "libjanus_videoroom.so").exists():
            return cand
    sys.exit("run.py --peer janus: libjanus_videoroom.so not found under /usr/lib/x86_64-linux-gnu/janus")


class Netns:
    """A private network namespace with a veth end on ``addr`` (a /30 of 10.213.0.0/16 chosen from
    our PID, so two runs do not collide). :meth:`close` deletes it (the veth pair goes with it)
    after ending what still runs inside; it is safe to call twice."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            sys.exit("run.py --peer janus|both needs root: it creates a network namespace (ip netns add)")
        if not shutil.which("ip"):
            sys.exit("run.py --peer janus|both needs the `ip` command (Debian iproute2)")
        pid = os.getpid()
        self.name = f"pms-fanout-{pid}"
        block = pid % 16384  # 16384 /30 blocks in 10.213.0.0/16
        self.addr = f"10.213.{block // 64}.{(block % 64) * 4 + 1}"
        self.open = False
        self._run("ip", "netns", "add", self.name)
        self.open = True
        try:
            ns = ["ip", "-n", self.name]
            self._run(*ns, "link", "set", "lo", "up")
            # A veth pair with both ends inside (this kernel may lack the dummy driver); Janus
            # gathers on the first end. Traffic between local addresses goes through `lo` anyway.
            self._run(*ns, "link", "add", IFACE, "type", "veth", "peer", "name", IFACE + "p")
            self._run(*ns, "addr", "add", f"{self.addr}/30", "dev", IFACE)
            self._run(*ns, "link", "set", IFACE, "up")
            self._run(*ns, "link", "set", IFACE + "p", "up")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _run(*cmd: str) -> None:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def close(self) -> None:
        if not self.open:
            return
        self.open = False
        # Whatever still runs in it was started by this run (the namespace is ours alone).
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        for pid in (int(p) for p in r.stdout.split() if p.isdigit()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def janus_config(folder: Path, addr: str, lib: Path, ice_lite: bool = True) -> Path:
    """Writes janus.jcfg and the two configs Janus loads into ``folder``; returns janus.jcfg."""
    def others(kind: str, keep: str = "") -> str:
        names = sorted(p.name for p in (lib / kind).glob("libjanus_*.so"))
        return ",".join(n for n in names if n != keep)

    (folder / "janus.jcfg").write_text(f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{lib / 'plugins'}"
    transports_folder = "{lib / 'transports'}"
    events_folder = "{lib / 'events'}"
    loggers_folder = "{lib / 'loggers'}"
    debug_level = 3
    log_to_stdout = false
    log_to_file = "{folder / 'janus.log'}"
    session_timeout = 60
    hide_dependencies = true
}}
certificates: {{
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    nice_debug = false
    ice_lite = {"true" if ice_lite else "false"}
    ice_tcp = false
    full_trickle = false
    ice_enforce_list = "{IFACE}"
    ignore_mdns = true
}}
plugins: {{
    disable = "{others('plugins', 'libjanus_videoroom.so')}"
}}
transports: {{
    disable = "{others('transports', 'libjanus_websockets.so')}"
}}
loggers: {{
    disable = "{others('loggers')}"
}}
events: {{
    broadcast = false
    disable = "{others('events')}"
}}
""")
    (folder / "janus.transport.websockets.jcfg").write_text(f"""general: {{
    json = "compact"
    ws = true
    ws_port = {JANUS_WS_PORT}
    ws_ip = "{addr}"
    wss = false
}}
admin: {{
    admin_ws = false
    admin_wss = false
}}
""")
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    return folder / "janus.jcfg"


class Janus:
    """A Janus process with the bench's config in ``folder`` (already inside the namespace);
    ``pid`` for sampling, ``ws`` the WebSocket API URL, ``room`` the room the client creates."""

    def __init__(self, folder: Path, addr: str, cpus: set[int] | None = None, ice_lite: bool = True) -> None:
        exe = janus_binary()
        cfg = janus_config(folder, addr, lib_folder(), ice_lite)
        self.folder = folder
        self.out_path = folder / "janus.out"
        self.out = open(self.out_path, "wb")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen([exe, "-F", str(folder), "-C", str(cfg)], stdout=self.out,
                                     stderr=subprocess.STDOUT, cwd=folder,
                                     preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        self.pid = self.proc.pid
        self.ws = f"ws://{addr}:{JANUS_WS_PORT}/"
        self.room = ROOM
        self._wait_ready(addr, 20.0)

    def _wait_ready(self, addr: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with socket.create_connection((addr, JANUS_WS_PORT), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"janus: no WebSocket API on {addr}:{JANUS_WS_PORT} in {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        text = ""
        for p in (self.out_path, self.folder / "janus.log"):
            try:
                text += "\n".join(p.read_text(errors="replace").splitlines()[-lines:]) + "\n"
            except OSError:
                pass
        return text

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT, 10.0)
        self.out.close()
