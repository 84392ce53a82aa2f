#!/usr/bin/env python3
"""SIP load benchmark: a simulated fleet of GB28181 devices against the real pms-trio server.

Starts a fresh server (``pms-trio run -c <temp config> --ready-file <path>``: SIP on UDP with digest
authentication, one media worker, console log level warn), then drives it from one load client
(stdlib: non-blocking UDP sockets and ``selectors``; ``--sockets`` sockets, the devices spread over
them, every device with its own ID, digest and dialog state):

1. burst: ``--burst`` devices send REGISTER at once; each 401 is answered at once with the digest
   REGISTER; the figure is the time from the first REGISTER to the last 200 (target: 1,000 within
   5 s). The server's Catalog and DeviceInfo queries that follow are answered 200 by the client, as
   devices do.
2. fleet: the rest of ``--devices`` register (in batches of ``--batch`` per 0.1 s), then the client
   waits ``--settle`` s for the server's query transactions to calm down.
3. keepalive: every device sends a Keepalive MESSAGE every ``--interval`` s (60 s in GB28181), the
   timeline compressed: the client sends at the fleet's rate (devices / interval per second) for
   ``--seconds`` s, evenly spread, and the server's CPU seconds over that window (utime + stime
   from /proc, of the whole process and of its main thread, the trio control plane) give the CPU %
   of one core (target: < 10% for 10,000 devices). Every Keepalive must get its 200.

    python bench/sip_load/run.py                              # 10,000 devices, burst 1,000, 30 s window
    python bench/sip_load/run.py --devices 2000 --seconds 10 --json /tmp/sip.json

Stdlib only. Benchmarks print figures; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import selectors
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import Server, cpu_seconds, log, raise_nofile, server_command  # noqa: E402

SERVER_ID = "34020000002000000001"
REALM = "3402000000"
PASSWORD = "bench-secret"
TARGET_BURST_SECONDS = 5.0
TARGET_CPU_PERCENT = 10.0

_STATUS = re.compile(rb"^SIP/2\.0 (\d{3})")
_HEADER = {name: re.compile(rb"(?im)^" + name.encode() + rb"\s*:\s*(.*?)\r$") for name in
           ("Call-ID", "CSeq", "WWW-Authenticate", "Via", "From", "To")}


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def header(data: bytes, name: str) -> str:
    m = _HEADER[name].search(data)
    return m.group(1).decode("utf-8", "replace") if m else ""


# --------------------------------------------------------------------------------------------- server

def sip_server(cmd: list[str], folder: Path) -> Server:
    """The benchmark server with SIP on (port 0, registrations never expire during a run)."""
    server = Server(cmd, folder, {"sip": {"enable": True, "listenIp": "127.0.0.1", "port": 0, "mediaPort": 0,
                                          "password": PASSWORD, "keepaliveTimeout": 3600}})
    return server


# --------------------------------------------------------------------------------------------- client

class Fleet:
    """The simulated devices: ``n`` IDs over ``sockets`` UDP sockets, one selector."""

    def __init__(self, n: int, sockets: int, server: tuple[str, int]) -> None:
        self.server = server
        self.ids = [f"3402000000132{i:07d}" for i in range(n)]
        self.socks = []
        self.sel = selectors.DefaultSelector()
        for _ in range(min(sockets, n)):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.socks.append(s)
        self.cseq = 0
        # Call-ID -> (device index, first sent at, kind, the datagram, next resend at, interval)
        self.pending: dict[str, tuple[int, float, str, bytes, float, float]] = {}
        self.retransmissions = 0
        self._next_scan = 0.0
        self.registered: set[int] = set()
        self.ok_at: dict[str, list[float]] = {"register": [], "keepalive": []}
        self.failures: dict[str, int] = {}
        self.queries_answered = 0

    def _sock(self, i: int) -> socket.socket:
        return self.socks[i % len(self.socks)]

    def _send(self, i: int, method: str, call_id: str, kind: str, extra: str = "", body: bytes = b"") -> None:
        self.cseq += 1
        s = self._sock(i)
        host, port = s.getsockname()
        dev = self.ids[i]
        to = dev if method == "REGISTER" else SERVER_ID
        text = (f"{method} sip:{SERVER_ID}@{REALM} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:{port};rport;branch=z9hG4bK{self.cseq:x}b{i}\r\n"
                f"From: <sip:{dev}@{REALM}>;tag=t{i}\r\nTo: <sip:{to}@{REALM}>\r\nCall-ID: {call_id}\r\n"
                f"CSeq: {self.cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {len(body)}\r\n\r\n")
        data = text.encode() + body
        now = time.monotonic()
        self.pending[call_id] = (i, now, kind, data, now + 0.5, 0.5)
        self._sendto(s, data)

    def _sendto(self, s: socket.socket, data: bytes) -> None:
        try:
            s.sendto(data, self.server)
        except BlockingIOError:
            self.failures["send-blocked"] = self.failures.get("send-blocked", 0) + 1

    def _retransmit(self) -> None:
        """RFC 3261 Timer E as devices run it: resend at 0.5 s, doubling up to 4 s; give up at 32 s."""
        now = time.monotonic()
        if now < self._next_scan:
            return
        self._next_scan = now + 0.1
        for call_id, (i, first, kind, data, due, interval) in list(self.pending.items()):
            if now < due:
                continue
            if now - first > 32:
                del self.pending[call_id]
                self.failures[f"{kind} timeout"] = self.failures.get(f"{kind} timeout", 0) + 1
                continue
            interval = min(interval * 2, 4.0)
            self.pending[call_id] = (i, first, kind, data, now + interval, interval)
            self.retransmissions += 1
            self._sendto(self._sock(i), data)

    def register(self, i: int, auth: str = "") -> None:
        call_id = f"reg-{i}"
        s = self._sock(i)
        contact = f"Contact: <sip:{self.ids[i]}@{s.getsockname()[0]}:{s.getsockname()[1]}>\r\nExpires: 3600\r\n"
        self._send(i, "REGISTER", call_id, "register", contact + auth)

    def keepalive(self, i: int, sn: int) -> None:
        call_id = f"ka-{i}-{sn}"
        body = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>{sn}'
                f"</SN>\r\n<DeviceID>{self.ids[i]}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n").encode()
        self._send(i, "MESSAGE", call_id, "keepalive", "Content-Type: Application/MANSCDP+xml\r\n", body)

    def _authorize(self, i: int, challenge: str) -> str:
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        uri = f"sip:{SERVER_ID}@{REALM}"
        ha1 = md5(f"{self.ids[i]}:{params['realm']}:{PASSWORD}")
        response = md5(f"{ha1}:{params['nonce']}:{md5(f'REGISTER:{uri}')}")
        return (f'Authorization: Digest username="{self.ids[i]}", realm="{params["realm"]}", '
                f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", algorithm=MD5, '
                f'opaque="{params.get("opaque", "")}"\r\n')

    def poll(self, timeout: float) -> None:
        self._retransmit()
        for key, _ in self.sel.select(timeout):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            for _ in range(256):
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    break
                self._handle(s, data)

    def _handle(self, s: socket.socket, data: bytes) -> None:
        m = _STATUS.match(data)
        if m is None:  # a request from the server (Catalog/DeviceInfo query): 200 at once
            if data.startswith(b"MESSAGE ") or data.startswith(b"OPTIONS "):
                vias = "".join(f"Via: {v}\r\n" for v in re.findall(rb"(?im)^Via\s*:\s*(.*?)\r$", data)
                               for v in [v.decode()])
                reply = (f"SIP/2.0 200 OK\r\n{vias}From: {header(data, 'From')}\r\nTo: {header(data, 'To')};tag=q\r\n"
                         f"Call-ID: {header(data, 'Call-ID')}\r\nCSeq: {header(data, 'CSeq')}\r\n"
                         f"Content-Length: 0\r\n\r\n")
                try:
                    s.sendto(reply.encode(), self.server)
                    self.queries_answered += 1
                except BlockingIOError:
                    pass
            return
        status = int(m.group(1))
        call_id = header(data, "Call-ID")
        entry = self.pending.get(call_id)
        if entry is None or status < 200:
            return
        i, kind = entry[0], entry[2]
        if status == 401 and kind == "register":
            self.register(i, self._authorize(i, header(data, "WWW-Authenticate")))
            return
        del self.pending[call_id]
        if status == 200:
            self.ok_at[kind].append(time.monotonic())
            if kind == "register":
                self.registered.add(i)
        else:
            self.failures[f"{kind} {status}"] = self.failures.get(f"{kind} {status}", 0) + 1

    def run_until(self, predicate, timeout: float) -> bool:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.poll(min(0.05, left))
        return True

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll(0.05)


# --------------------------------------------------------------------------------------------- phases

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--burst", type=int, default=1_000)
    ap.add_argument("--interval", type=float, default=60.0, help="Keepalive period of each device (s)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measurement window (s)")
    ap.add_argument("--sockets", type=int, default=200)
    ap.add_argument("--batch", type=int, default=50, help="REGISTERs per 0.1 s after the burst")
    ap.add_argument("--settle", type=float, default=35.0,
                    help="seconds between the fleet's registration and the window (Timer J: 32 s)")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds measured without traffic first")
    ap.add_argument("--server-cmd")
    ap.add_argument("--json")
    args = ap.parse_args()
    raise_nofile()

    with tempfile.TemporaryDirectory(prefix="sip-load-") as tmp:
        server = sip_server(server_command(args.server_cmd), Path(tmp))
        try:
            return run(server, args)
        finally:
            server.stop()


def run(server: Server, args: argparse.Namespace) -> int:
    sip_port = int(server.ready["sip"])
    fleet = Fleet(args.devices, args.sockets, ("127.0.0.1", sip_port))
    burst = min(args.burst, args.devices)
    log(f"server pid {server.pid}, sip udp {sip_port}; burst of {burst} REGISTERs")
    start = time.monotonic()
    for i in range(burst):
        fleet.register(i)
    done = fleet.run_until(lambda: len(fleet.registered) >= burst, 60)
    burst_seconds = (max(fleet.ok_at["register"]) - start) if fleet.ok_at["register"] else float("nan")
    if not done:
        log(f"burst: only {len(fleet.registered)} of {burst} registered in 60 s: {fleet.failures}")

    log(f"fleet: registering the other {args.devices - burst}")
    t0 = time.monotonic()
    for first in range(burst, args.devices, args.batch):
        for i in range(first, min(first + args.batch, args.devices)):
            fleet.register(i)
        fleet.drain(0.1)
    fleet.run_until(lambda: len(fleet.registered) >= args.devices, 120)
    fleet_seconds = time.monotonic() - t0
    log(f"fleet: {len(fleet.registered)} registered in {fleet_seconds:.1f} s; settling {args.settle:g} s")
    fleet.drain(args.settle)

    log(f"idle: {args.idle:g} s without traffic (the control plane's cost at rest)")
    idle0, idlew0 = cpu_seconds(server.pid, server.pid), time.monotonic()
    fleet.drain(args.idle)
    idle_percent = 100 * (cpu_seconds(server.pid, server.pid) - idle0) / (time.monotonic() - idlew0)

    rate = args.devices / args.interval
    total = int(rate * args.seconds)
    log(f"keepalive: {rate:.1f}/s for {args.seconds:g} s ({total} MESSAGEs)")
    before_ok = len(fleet.ok_at["keepalive"])
    cpu0, main0, w0 = cpu_seconds(server.pid), cpu_seconds(server.pid, server.pid), time.monotonic()
    for k in range(total):
        due = w0 + k / rate
        while time.monotonic() < due:
            fleet.poll(max(0.0, min(0.01, due - time.monotonic())))
        fleet.keepalive(k % args.devices, k // args.devices + 1)
    while time.monotonic() < w0 + args.seconds:
        fleet.poll(0.01)
    cpu1, main1, w1 = cpu_seconds(server.pid), cpu_seconds(server.pid, server.pid), time.monotonic()
    fleet.run_until(lambda: not any(e[2] == "keepalive" for e in fleet.pending.values()), 5)
    answered = len(fleet.ok_at["keepalive"]) - before_ok
    window = w1 - w0
    result = {
        "devices": args.devices, "registered": len(fleet.registered), "burst": burst,
        "burst_seconds_to_last_200": round(burst_seconds, 3), "fleet_register_seconds": round(fleet_seconds, 2),
        "keepalive_rate_per_s": round(rate, 1), "window_s": round(window, 2), "keepalives_sent": total,
        "keepalives_answered_200": answered,
        "cpu_percent_process": round(100 * (cpu1 - cpu0) / window, 2),
        "cpu_percent_main_thread": round(100 * (main1 - main0) / window, 2),
        "cpu_percent_main_thread_idle": round(idle_percent, 2),
        "queries_answered": fleet.queries_answered, "client_retransmissions": fleet.retransmissions,
        "failures": fleet.failures,
    }
    print(f"SIP load, pms-trio (server pid {server.pid})")
    print(f"  burst: {burst} REGISTERs (401 + digest) answered, last 200 after {burst_seconds:.2f} s "
          f"(target < {TARGET_BURST_SECONDS:g} s)")
    print(f"  fleet: {len(fleet.registered)} of {args.devices} devices registered "
          f"({fleet_seconds:.1f} s for the rest, {fleet.queries_answered} server queries answered, "
          f"{fleet.retransmissions} client retransmissions)")
    print(f"  keepalive: {answered}/{total} answered 200 at {rate:.1f}/s ({args.devices} devices every "
          f"{args.interval:g} s) over {window:.1f} s")
    print(f"  server CPU: {result['cpu_percent_process']:.2f}% of one core (whole process), "
          f"{result['cpu_percent_main_thread']:.2f}% (main thread: trio control plane) "
          f"(target < {TARGET_CPU_PERCENT:g}%); at rest with the fleet registered: {idle_percent:.2f}%")
    if fleet.failures:
        print(f"  failures: {fleet.failures}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
