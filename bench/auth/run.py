#!/usr/bin/env python3
"""Admission costs (SPEC section 10): JWT checks per second per core, and the latency an admission hook
adds to the join path.

1. JWT: ``pms_trio.auth.Auth.check`` (PyJWT, HS256, the stream glob and the action) of one good token in
   a loop for ``--seconds``, in this process: checks per second of one core (the control plane is one
   trio thread), and the same for a refused token (bad signature) and for ``sign``.
2. Hook: a real server on loopback (``pms-trio run``) with one stream published over RTSP (ANNOUNCE +
   RECORD with ``sprop-parameter-sets``, so DESCRIBE needs no media), then ``--joins`` RTSP DESCRIBEs of
   it, each on a new connection (the join path of a player), timed from connect to the 200: without a
   hook, then with ``hooks.onPlay`` pointing to a local HTTP receiver in this process (stdlib threading
   server answering 204). The difference of the percentiles is what the hook adds.

    python bench/auth/run.py [--seconds 3] [--joins 300] [--json PATH]

Stdlib only (plus the installed pms_trio for part 1). Benchmarks print figures; nothing here is a
pass/fail test.
"""

from __future__ import annotations

import argparse
import http.server
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import Server, log, server_command  # noqa: E402

SECRET = "bench-secret-of-thirty-two-bytes-or-more"
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bench\r\nt=0 0\r\n"
       "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
       "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAA8jxYuS,aMuMsg==\r\n"
       "a=control:trackID=0\r\n")


def jwt_rates(seconds: float) -> dict[str, float]:
    from pms_trio.auth import Auth, AuthError, sign

    auth = Auth(SECRET)
    good = sign(SECRET, "cam*", play=True)
    bad = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    out: dict[str, float] = {}
    for label, fn in (("check_ok_per_s", lambda: auth.check(good, "cam7", "play")),
                      ("check_refused_per_s", lambda: _refused(auth, bad, AuthError)),
                      ("sign_per_s", lambda: sign(SECRET, "cam7", play=True))):
        n, start = 0, time.process_time()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _ in range(100):
                fn()
            n += 100
        out[label] = round(n / max(1e-9, time.process_time() - start))
    return out


def _refused(auth: Any, token: str, error: type[Exception]) -> None:
    try:
        auth.check(token, "cam7", "play")
    except error:
        return
    raise AssertionError("a bad token was accepted")


class Receiver:
    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/on_play"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _exchange(sock: socket.socket, request: str, buf: bytearray) -> str:
    sock.sendall(request.encode())
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("connection closed")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        rest += sock.recv(65536)
    buf[:] = rest[length:]
    return head.decode("latin-1")


def publish(host: str, port: int, name: str) -> socket.socket:
    """ANNOUNCE + SETUP + RECORD over TCP; the socket stays open (the stream stays live)."""
    sock = socket.create_connection((host, port), timeout=10)
    buf = bytearray()
    url = f"rtsp://{host}:{port}/{name}"
    head = _exchange(sock, f"ANNOUNCE {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\n"
                           f"Content-Length: {len(SDP)}\r\n\r\n{SDP}", buf)
    assert " 200 " in head.split("\r\n")[0], head
    head = _exchange(sock, f"SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\n"
                           f"Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n", buf)
    session = next(line.split(":", 1)[1].split(";")[0].strip() for line in head.split("\r\n")
                   if line.lower().startswith("session:"))
    head = _exchange(sock, f"RECORD {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n", buf)
    assert " 200 " in head.split("\r\n")[0], head
    return sock


def joins(host: str, port: int, name: str, n: int) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        with socket.create_connection((host, port), timeout=10) as sock:
            head = _exchange(sock, f"DESCRIBE rtsp://{host}:{port}/{name} RTSP/1.0\r\nCSeq: {i}\r\n"
                                   f"Accept: application/sdp\r\n\r\n", bytearray())
        if " 200 " not in head.split("\r\n")[0]:
            raise RuntimeError(f"DESCRIBE: {head.splitlines()[0]}")
        times.append((time.perf_counter() - start) * 1000)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def hook_latency(cmd: list[str], n: int) -> dict[str, Any]:
    receiver = Receiver()
    out: dict[str, Any] = {}
    try:
        for label, hooks in (("no_hook", {}), ("on_play_hook", {"onPlay": receiver.url})):
            with tempfile.TemporaryDirectory(prefix="pms-bench-auth-") as tmp:
                server = Server(cmd, Path(tmp), {"hooks": hooks})
                try:
                    rtsp = urlsplit(server.ready["rtsp"])
                    host, port = rtsp.hostname or "127.0.0.1", int(rtsp.port or 0)
                    pub = publish(host, port, "bench")
                    try:
                        joins(host, port, "bench", 20)  # warm-up
                        times = joins(host, port, "bench", n)
                    finally:
                        pub.close()
                finally:
                    server.stop()
            out[label] = {"p50_ms": pct(times, 0.5), "p95_ms": pct(times, 0.95), "p99_ms": pct(times, 0.99)}
            log(f"{label}: {out[label]}")
    finally:
        receiver.close()
    out["added_p50_ms"] = round(out["on_play_hook"]["p50_ms"] - out["no_hook"]["p50_ms"], 3)
    out["added_p95_ms"] = round(out["on_play_hook"]["p95_ms"] - out["no_hook"]["p95_ms"], 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--joins", type=int, default=300)
    ap.add_argument("--server-cmd")
    ap.add_argument("--json")
    args = ap.parse_args()
    result: dict[str, Any] = {"jwt": jwt_rates(args.seconds)}
    log(f"jwt: {result['jwt']}")
    result["hook"] = hook_latency(server_command(args.server_cmd), args.joins)
    print(f"JWT checks per core-second: {result['jwt']['check_ok_per_s']:,} good, "
          f"{result['jwt']['check_refused_per_s']:,} refused; signs: {result['jwt']['sign_per_s']:,}")
    h = result["hook"]
    print(f"RTSP DESCRIBE join without hook: p50 {h['no_hook']['p50_ms']} ms, p95 {h['no_hook']['p95_ms']} ms; "
          f"with onPlay hook: p50 {h['on_play_hook']['p50_ms']} ms, p95 {h['on_play_hook']['p95_ms']} ms; "
          f"added p50 {h['added_p50_ms']} ms, p95 {h['added_p95_ms']} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
