"""The RTSP fan-out benchmark's load client: many RTSP/TCP players in one process, stdlib only.

:func:`client_worker` runs in each load-client process that ``run.py`` forks: ``count`` players on
raw non-blocking sockets and two ``selectors`` (players still negotiating are served at once;
playing players are read every ``poll_interval``, so one ``recv()`` takes several packets and the
client costs far less than the server it measures). Each player sends OPTIONS, DESCRIBE, SETUP
(interleaved=0-1 on the video track) and PLAY, then counts the RTP packets of the interleaved
frames and the gaps in their sequence numbers, and keeps its session with GET_PARAMETER every
:data:`KEEPALIVE_S`. The process reports to ``run.py`` over a pipe (see :func:`client_worker`).
:func:`wait_stream` waits until the publisher is live (DESCRIBE answers 200 with a video track).
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import time
from urllib.parse import urlsplit

HANDSHAKE, STREAMING, FAILED = 0, 1, 2
KEEPALIVE_S = 20.0


class Player:
    __slots__ = ("sock", "state", "step", "buf", "cseq", "session", "control", "last_seq", "packets",
                 "next_keepalive", "out")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.state = HANDSHAKE
        self.step = 0
        self.buf = bytearray()
        self.cseq = 0
        self.session = ""
        self.control = ""
        self.last_seq = -1
        self.packets = 0
        self.next_keepalive = 0.0
        self.out = b""


def parse_response(buf: bytearray) -> tuple[int, dict[str, str], bytes, int] | None:
    """(status, headers, body, consumed) of one RTSP response at the start of buf, or None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or 0)
    total = end + 4 + length
    if len(buf) < total:
        return None
    parts = head[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, headers, bytes(buf[end + 4:total]), total


def video_control(sdp: str, base: str) -> str:
    """The a=control URL of the first video m-section, resolved against base."""
    in_video = False
    control = ""
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            if in_video and control:
                break
            in_video = line.startswith("m=video")
            control = ""
        elif in_video and line.startswith("a=control:"):
            control = line[len("a=control:"):]
    if not control:
        raise RuntimeError("no video a=control in the DESCRIBE SDP")
    if control.startswith("rtsp://"):
        return control
    if control == "*":
        return base
    return base.rstrip("/") + "/" + control


def client_worker(url: str, count: int, conn, connect_batch: int, first_packet_timeout: float,
                  poll_interval: float) -> None:
    """One load-client process: `count` players on one selector. Talks to the parent over `conn`:
    sends ("ready", stats) once every player streams or failed, then answers "snap" with stats and
    "stop" with stats and exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    u = urlsplit(url)
    addr = (u.hostname or "127.0.0.1", u.port or 554)
    sel = selectors.DefaultSelector()  # connecting players, served at once
    ssel = selectors.DefaultSelector()  # playing players, read every poll_interval
    players: list[Player] = []
    totals = {"bytes": 0, "rtp": 0, "other_frames": 0, "gaps": 0, "closed": 0}
    errors: list[str] = []
    pending = count
    in_handshake = 0
    streaming = 0
    failed = 0
    ready_sent = False
    t_start = time.monotonic()
    last_progress = t_start
    next_keepalive_scan = t_start + 1.0
    next_stream_poll = t_start

    def send_request(p: Player, method: str, target: str, extra: str = "") -> None:
        p.cseq += 1
        sess = f"Session: {p.session}\r\n" if p.session else ""
        p.out += (f"{method} {target} RTSP/1.0\r\nCSeq: {p.cseq}\r\nUser-Agent: pms-rtsp-fanout\r\n"
                  f"{sess}{extra}\r\n").encode()
        flush(p)

    def flush(p: Player) -> None:
        if not p.out or p.state == FAILED:
            return
        try:
            n = p.sock.send(p.out)
        except BlockingIOError:
            n = 0
        except OSError as e:
            fail(p, f"send: {e}")
            return
        p.out = p.out[n:]
        if p.state == STREAMING:  # the rest, if any, goes at the next keep-alive scan
            return
        ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if p.out else 0)
        sel.modify(p.sock, ev, p)

    def fail(p: Player, why: str) -> None:
        nonlocal failed, in_handshake, streaming
        if p.state == FAILED:
            return
        if p.state == HANDSHAKE:
            in_handshake -= 1
        elif p.state == STREAMING and p.packets:
            streaming -= 1
        if p.state == STREAMING:
            totals["closed"] += 1
        p.state = FAILED
        failed += 1
        if len(errors) < 5:
            errors.append(why)
        for selector in (sel, ssel):
            try:
                selector.unregister(p.sock)
            except (KeyError, ValueError):
                pass
        p.sock.close()

    def on_response(p: Player, status: int, headers: dict[str, str], body: bytes) -> None:
        nonlocal in_handshake
        if p.state == STREAMING:  # keep-alive answer
            return
        if status != 200:
            fail(p, f"step {p.step}: status {status}")
            return
        if p.step == 0:  # OPTIONS answered
            p.step = 1
            send_request(p, "DESCRIBE", url, "Accept: application/sdp\r\n")
        elif p.step == 1:
            base = headers.get("content-base") or headers.get("content-location") or url
            try:
                p.control = video_control(body.decode("utf-8", "replace"), base)
            except RuntimeError as e:
                fail(p, str(e))
                return
            p.step = 2
            send_request(p, "SETUP", p.control, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
        elif p.step == 2:
            p.session = headers.get("session", "").split(";")[0].strip()
            p.step = 3
            send_request(p, "PLAY", url, "Range: npt=0.000-\r\n")
        elif p.step == 3:
            p.state = STREAMING
            in_handshake -= 1
            sel.unregister(p.sock)
            ssel.register(p.sock, selectors.EVENT_READ, p)
            p.next_keepalive = time.monotonic() + KEEPALIVE_S

    def on_readable(p: Player) -> None:
        nonlocal streaming
        try:
            data = p.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError as e:
            fail(p, f"recv: {e}")
            return
        if not data:
            fail(p, "closed by the server")
            return
        totals["bytes"] += len(data)
        buf = p.buf
        buf += data
        pos = 0
        n = len(buf)
        rtp = 0
        gaps = 0
        other = 0
        last = p.last_seq
        while n - pos >= 4:
            if buf[pos] == 0x24:
                ln = (buf[pos + 2] << 8) | buf[pos + 3]
                if n - pos < 4 + ln:
                    break
                if buf[pos + 1] == 0 and ln >= 12:
                    seq = (buf[pos + 6] << 8) | buf[pos + 7]
                    if last >= 0:
                        d = (seq - last - 1) & 0xFFFF
                        if d < 0x8000:
                            gaps += d
                            last = seq
                    else:
                        last = seq
                    rtp += 1
                else:
                    other += 1
                pos += 4 + ln
            elif buf[pos] == 0x52:  # 'R': an RTSP response
                r = parse_response(buf[pos:])
                if r is None:
                    break
                pos += r[3]
                p.last_seq = last
                on_response(p, r[0], r[1], r[2])
                if p.state == FAILED:
                    return
                last = p.last_seq
            else:
                fail(p, f"unexpected byte 0x{buf[pos]:02x}")
                return
        del buf[:pos]
        p.last_seq = last
        if rtp:
            if p.packets == 0 and p.state == STREAMING:
                streaming += 1
            p.packets += rtp
            totals["rtp"] += rtp
            totals["gaps"] += gaps
        totals["other_frames"] += other

    def stats() -> dict:
        return {"bytes": totals["bytes"], "rtp": totals["rtp"], "gaps": totals["gaps"],
                "other_frames": totals["other_frames"], "streaming": streaming, "failed": failed,
                "closed": totals["closed"], "errors": list(errors), "t": time.monotonic(),
                "connect_s": round(last_progress - t_start, 2), "in_handshake": in_handshake,
                "not_started": pending}

    while True:
        # Open new connections, at most connect_batch handshakes in flight.
        while pending and in_handshake < connect_batch:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            p = Player(s)
            players.append(p)
            pending -= 1
            in_handshake += 1
            sel.register(s, selectors.EVENT_WRITE, p)
            err = s.connect_ex(addr)
            if err not in (0, 115):  # EINPROGRESS
                fail(p, f"connect: {os.strerror(err)}")
        for key, mask in sel.select(0.005 if in_handshake else 0):
            p = key.data
            if p.state == FAILED:
                continue
            if mask & selectors.EVENT_WRITE:
                if p.step == 0 and p.cseq == 0:
                    err = p.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(p, f"connect: {os.strerror(err)}")
                        continue
                    sel.modify(p.sock, selectors.EVENT_READ, p)
                    send_request(p, "OPTIONS", url)
                else:
                    flush(p)
            if mask & selectors.EVENT_READ and p.state != FAILED:
                on_readable(p)
        now = time.monotonic()
        if now >= next_stream_poll:
            next_stream_poll = now + poll_interval
            for key, _ in ssel.select(0):
                if key.data.state == STREAMING:
                    on_readable(key.data)
            now = time.monotonic()
        if not ready_sent:
            if streaming + failed >= count or now - t_start > first_packet_timeout:
                last_progress = now
                ready_sent = True
                conn.send(("ready", stats()))
        if now >= next_keepalive_scan:  # keep-alives (sessions expire after 60 s without a request)
            next_keepalive_scan = now + 1.0
            for p in players:
                if p.state == STREAMING and now >= p.next_keepalive:
                    p.next_keepalive = now + KEEPALIVE_S
                    send_request(p, "GET_PARAMETER", url)
                elif p.out:
                    flush(p)
        if conn.poll():
            cmd = conn.recv()
            conn.send(("stats", stats()))
            if cmd == "stop":
                break
        # Playing players are read at most every poll_interval, so that one recv() takes several
        # packets (25 fps: ~5 per 0.2 s): the client then costs far less than the server it measures.
        if not pending and not in_handshake:
            rest = min(next_stream_poll - time.monotonic(), 0.05)
            if rest > 0:
                time.sleep(rest)
    for p in players:
        if p.state != FAILED:
            p.sock.close()


def wait_stream(url: str, timeout: float) -> None:
    """Until DESCRIBE of url answers 200 (the publisher is live)."""
    u = urlsplit(url)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((u.hostname, u.port), timeout=12) as s:
                s.sendall(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n".encode())
                buf = bytearray()
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                    r = parse_response(buf)
                    if r:
                        if r[0] == 200 and b"m=video" in r[2]:
                            return
                        last = f"status {r[0]}"
                        break
        except OSError as e:
            last = str(e)
        time.sleep(0.3)
    raise RuntimeError(f"stream not live in {timeout:.0f} s ({last})")
