"""The cascade benchmark's stamped stream: a raw RTSP publisher whose RTP payloads carry their send
time, and a probe player that reads it back. Stdlib only.

:func:`publisher_worker` publishes synthetic H.264 over RTSP/TCP interleaved (OPTIONS, ANNOUNCE with
``sprop-parameter-sets``, SETUP ``interleaved=0-1``, RECORD): ``fps`` frames a second, an IDR (8x a
P frame) with its SPS and PPS in a STAP-A every ``gop`` frames, sized for ``bitrate``, packetized
as single NAL units or FU-A of at most :data:`MAX_PAYLOAD` bytes. Right after the NAL header (single
NAL) or the FU header (FU-A) every packet carries :data:`MAGIC`, ``time.monotonic_ns()`` taken just
before the packet is written, and a packet counter (:data:`STAMP`). The server forwards RTP payloads
unchanged (only the header is rewritten), and CLOCK_MONOTONIC is one clock for every process of a
machine, so a player's arrival time minus the stamp is the latency from the publisher's ``send`` to
the player's ``recv``.

:func:`probe_worker` plays one or more URLs (DESCRIBE, SETUP interleaved, PLAY; blocking with
timeouts), then reads every socket as soon as it is readable (one ``selectors`` loop, no polling
delay) and records, per stamped packet, (counter, arrival ns, latency ns).

Both run in forked processes and talk to ``run.py`` over a pipe; every loop is bounded by a stop
message and by :data:`MAX_RUN_S`.
"""

from __future__ import annotations

import array
import base64
import select
import selectors
import signal
import socket
import struct
import time
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rtsp_fanout"))
from loadclient import parse_response  # noqa: E402  (one RTSP reply parser for the load clients)

# SPS/PPS of libx264 baseline 320x240 (the slices are filler: players here only read the stamps).
SPS = bytes.fromhex("6742c00dd90141fb011000000300100000030320f142a480")
PPS = bytes.fromhex("68cb83cb20")
MAGIC = b"PMTS"
STAMP = struct.Struct("!4sQI")  # magic, CLOCK_MONOTONIC ns at send, packet counter
MAX_PAYLOAD = 1200
MAX_RUN_S = 3600.0
KEEPALIVE_S = 20.0
FILLER = bytes(range(0x10, 0xF0)) * 64


class Rtsp:
    """A blocking RTSP/TCP connection for the handshake (every read bounded by ``timeout``)."""

    def __init__(self, url: str, timeout: float, agent: str) -> None:
        u = urlsplit(url)
        self.url = url
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 554), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.cseq = 0
        self.session = ""
        self.agent = agent
        self.deadline = time.monotonic() + timeout

    def request(self, method: str, target: str, extra: str = "", body: bytes = b"") -> tuple[dict[str, str], bytes]:
        self.cseq += 1
        sess = f"Session: {self.session}\r\n" if self.session else ""
        length = f"Content-Length: {len(body)}\r\n" if body else ""
        self.sock.sendall(f"{method} {target} RTSP/1.0\r\nCSeq: {self.cseq}\r\nUser-Agent: {self.agent}\r\n"
                          f"{sess}{extra}{length}\r\n".encode() + body)
        while True:
            r = parse_response(self.buf)
            if r is not None:
                del self.buf[:r[3]]
                if r[0] != 200:
                    raise RuntimeError(f"{method} {target}: status {r[0]}")
                return r[1], r[2]
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"{method} {target}: no answer in time")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"{method} {target}: connection closed")
            self.buf += chunk


# ------------------------------------------------------------------------------------------ publisher

def announce_sdp() -> bytes:
    sprop = ",".join(base64.b64encode(n).decode() for n in (SPS, PPS))
    return ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=pms-cascade-bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
            f"a=fmtp:96 packetization-mode=1;profile-level-id={SPS[1:4].hex()};sprop-parameter-sets={sprop}\r\n"
            "a=control:streamid=0\r\n").encode()


def frame_packets(nal_header: int, size: int) -> list[tuple[bytes, int]]:
    """(payload prefix, filler bytes after the stamp) of each RTP packet of one NAL of ``size`` bytes:
    a single NAL unit, or FU-A fragments of at most MAX_PAYLOAD bytes."""
    size = max(size, 1 + STAMP.size)
    if size <= MAX_PAYLOAD:
        return [(bytes([nal_header]), size - 1 - STAMP.size)]
    body = size - 1
    per = MAX_PAYLOAD - 2
    out = []
    pos = 0
    while pos < body:
        take = min(per, body - pos)
        fu_header = (nal_header & 0x1F) | (0x80 if pos == 0 else 0) | (0x40 if pos + take >= body else 0)
        out.append((bytes([(nal_header & 0xE0) | 28, fu_header]), max(0, take - STAMP.size)))
        pos += take
    return out


def publisher_worker(url: str, bitrate: int, fps: int, gop: int, conn, timeout: float = 15.0) -> None:
    """Publish the stamped stream to ``url`` until "stop" arrives on ``conn`` (or MAX_RUN_S). Sends
    ("ready", {}) after RECORD, ("error", {"error": ...}) on failure, and answers "stop" with
    ("stats", {"packets", "frames", "late_ms_max", "error"})."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stats = {"packets": 0, "frames": 0, "late_ms_max": 0.0, "error": None}
    try:
        c = Rtsp(url, timeout, "pms-cascade-bench-publisher")
        c.request("OPTIONS", url)
        c.request("ANNOUNCE", url, "Content-Type: application/sdp\r\n", announce_sdp())
        headers, _ = c.request("SETUP", url + "/streamid=0",
                               "Transport: RTP/AVP/TCP;unicast;mode=record;interleaved=0-1\r\n")
        c.session = headers.get("session", "").split(";")[0].strip()
        c.request("RECORD", url, "Range: npt=0.000-\r\n")
    except (OSError, RuntimeError) as e:
        conn.send(("error", {"error": f"publisher: {e}"}))
        return
    conn.send(("ready", {}))
    sock = c.sock
    sock.settimeout(timeout)
    avg = bitrate / 8 / fps
    p_size = int(avg * gop / (gop + 7))  # an IDR is 8 P frames
    stap = bytes([0x18]) + struct.pack("!H", len(SPS)) + SPS + struct.pack("!H", len(PPS)) + PPS
    ssrc = 0x5EED0001
    seq = 0
    counter = 0
    t0 = time.monotonic()
    frame = 0
    try:
        while frame < MAX_RUN_S * fps:
            if conn.poll():
                conn.recv()
                break
            due = t0 + frame / fps
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            else:
                stats["late_ms_max"] = max(stats["late_ms_max"], (now - due) * 1000)
            ts = (frame * 90000 // fps) & 0xFFFFFFFF
            idr = frame % gop == 0
            out = []
            if idr:
                out.append((stap, None))
            out += frame_packets(0x65 if idr else 0x41, p_size * 8 if idr else p_size)
            for i, (prefix, filler) in enumerate(out):
                marker = 0x80 if i == len(out) - 1 else 0
                header = struct.pack("!BBHII", 0x80, marker | 96, seq, ts, ssrc)
                seq = (seq + 1) & 0xFFFF
                if filler is None:
                    payload = prefix
                else:
                    counter += 1
                    payload = prefix + STAMP.pack(MAGIC, time.monotonic_ns(), counter) + FILLER[:filler]
                pkt = header + payload
                sock.sendall(b"$\x00" + struct.pack("!H", len(pkt)) + pkt)
                stats["packets"] += 1
            frame += 1
            stats["frames"] = frame
            # The server's RTCP and answers: read and dropped (select first: the socket has a timeout,
            # so recv would wait for data).
            for _ in range(16):
                if not select.select([sock], [], [], 0)[0]:
                    break
                if not sock.recv(65536):
                    raise OSError("closed by the server")
    except OSError as e:
        stats["error"] = f"publisher: {e}"
        if conn.poll(5):
            conn.recv()
    conn.send(("stats", stats))
    sock.close()


# ---------------------------------------------------------------------------------------------- probe

def video_control(sdp: str, base: str) -> str:
    control = ""
    in_video = False
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            if in_video and control:
                break
            in_video = line.startswith("m=video")
        elif in_video and line.startswith("a=control:"):
            control = line[len("a=control:"):]
    if not control or control == "*":
        return base
    return control if control.startswith("rtsp://") else base.rstrip("/") + "/" + control


def stamp_of(pkt: memoryview) -> tuple[int, int] | None:
    """(send ns, counter) of an RTP packet carrying a stamp, else None."""
    if len(pkt) < 12:
        return None
    off = 12 + 4 * (pkt[0] & 0x0F)
    if pkt[0] & 0x10:
        if len(pkt) < off + 4:
            return None
        off += 4 + 4 * ((pkt[off + 2] << 8) | pkt[off + 3])
    if len(pkt) <= off:
        return None
    off += 2 if pkt[off] & 0x1F == 28 else 1
    if len(pkt) < off + STAMP.size or pkt[off:off + 4] != MAGIC:
        return None
    _, sent, counter = STAMP.unpack_from(pkt, off)
    return sent, counter


class Probe:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.counters = array.array("q")
        self.arrivals = array.array("q")
        self.latencies = array.array("q")
        self.unstamped = 0
        self.gaps = 0
        self.last_seq = -1
        self.closed = ""
        self.cseq = 10
        self.session = ""


def probe_worker(urls: list[str], conn, timeout: float = 20.0) -> None:
    """Play every URL, then record stamps until "stop" (or MAX_RUN_S). Sends ("ready", {"playing":
    [url, ...], "errors": [...]}) once every probe received a stamped packet or ``timeout`` passed, and
    answers "stop" with ("samples", [per URL: {"url", "counters", "arrivals", "latencies", "unstamped",
    "gaps", "closed"}]) (arrays of int64 ns)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    probes = [Probe(u) for u in urls]
    errors: list[str] = []
    t_start = time.monotonic()
    for pr in probes:
        try:
            c = Rtsp(pr.url, timeout, "pms-cascade-bench-probe")
            headers, body = c.request("DESCRIBE", pr.url, "Accept: application/sdp\r\n")
            control = video_control(body.decode("utf-8", "replace"), headers.get("content-base") or pr.url)
            headers, _ = c.request("SETUP", control, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
            c.session = headers.get("session", "").split(";")[0].strip()
            c.request("PLAY", pr.url, "Range: npt=0.000-\r\n")
        except (OSError, RuntimeError) as e:
            errors.append(f"{pr.url}: {e}")
            pr.closed = str(e)
            continue
        pr.sock, pr.buf, pr.session, pr.cseq = c.sock, c.buf, c.session, c.cseq
        pr.sock.setblocking(False)
    sel = selectors.DefaultSelector()
    for pr in probes:
        if pr.sock is not None:
            sel.register(pr.sock, selectors.EVENT_READ, pr)
    ready_sent = False
    next_keepalive = time.monotonic() + KEEPALIVE_S

    def read(pr: Probe) -> None:
        assert pr.sock is not None
        try:
            data = pr.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            data, pr.closed = b"", f"recv: {e}"
        now = time.monotonic_ns()
        if not data:
            pr.closed = pr.closed or "closed by the server"
            sel.unregister(pr.sock)
            pr.sock.close()
            pr.sock = None
            return
        buf = pr.buf
        buf += data
        mv = memoryview(buf)
        pos, n = 0, len(buf)
        try:
            while n - pos >= 4:
                if buf[pos] == 0x24:
                    ln = (buf[pos + 2] << 8) | buf[pos + 3]
                    if n - pos < 4 + ln:
                        break
                    if buf[pos + 1] == 0 and ln >= 12:
                        seq = (buf[pos + 6] << 8) | buf[pos + 7]
                        if pr.last_seq >= 0:
                            d = (seq - pr.last_seq - 1) & 0xFFFF
                            if d < 0x8000:
                                pr.gaps += d
                                pr.last_seq = seq
                        else:
                            pr.last_seq = seq
                        st = stamp_of(mv[pos + 4:pos + 4 + ln])
                        if st is None:
                            pr.unstamped += 1
                        else:
                            pr.counters.append(st[1])
                            pr.arrivals.append(now)
                            pr.latencies.append(now - st[0])
                    pos += 4 + ln
                elif buf[pos] == 0x52:  # 'R': a keep-alive answer
                    r = parse_response(buf[pos:])
                    if r is None:
                        break
                    pos += r[3]
                else:
                    pr.closed = f"unexpected byte 0x{buf[pos]:02x}"
                    sel.unregister(pr.sock)
                    pr.sock.close()
                    pr.sock = None
                    return
        finally:
            mv.release()
        del buf[:pos]

    while time.monotonic() - t_start < MAX_RUN_S:
        for key, _ in sel.select(0.05):
            read(key.data)
        now = time.monotonic()
        if not ready_sent and (all(pr.latencies or pr.sock is None for pr in probes) or now - t_start > timeout):
            ready_sent = True
            conn.send(("ready", {"playing": [pr.url for pr in probes if pr.latencies], "errors": errors}))
        if now >= next_keepalive:
            next_keepalive = now + KEEPALIVE_S
            for pr in probes:
                if pr.sock is not None:
                    pr.cseq += 1
                    msg = f"GET_PARAMETER {pr.url} RTSP/1.0\r\nCSeq: {pr.cseq}\r\nSession: {pr.session}\r\n\r\n"
                    try:
                        pr.sock.send(msg.encode())
                    except OSError:
                        pass
        if conn.poll():
            conn.recv()
            break
    conn.send(("samples", [{"url": pr.url, "counters": pr.counters, "arrivals": pr.arrivals,
                            "latencies": pr.latencies, "unstamped": pr.unstamped, "gaps": pr.gaps,
                            "closed": pr.closed} for pr in probes]))
    for pr in probes:
        if pr.sock is not None:
            pr.sock.close()
