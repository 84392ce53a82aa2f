"""The signaling WebSocket itself (``pms_trio.signaling.wsconn``), against the real server with
clients written by others (the ``websockets`` library; wsproto over a raw socket where a client
must misbehave): a wrong path gets HTTP 404 with a body, pings get pongs, fragmented messages are
joined, a message over 1 MiB closes with 1009, a client that stops reading is dropped after the
send timeout without hurting another session, a connection that never completes its handshake is
closed, and many idle sessions cost the server little memory.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from .conftest import Server, ServerFactory
from .peers import run

pytestmark = pytest.mark.integration

HEARTBEAT = json.dumps({"version": "1.0", "method": "stream.heartbeat", "stream": "", "session": "", "data": {}})


def sessions(srv: Server) -> list[dict[str, Any]]:
    with urllib.request.urlopen(srv.http_url + "/api/v1/sessions", timeout=5) as r:
        return [s for s in json.load(r)["sessions"] if s["kind"] == "webrtc"]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_wrong_path_ping_fragments_and_1009(server: ServerFactory) -> None:
    srv = server()
    url = urlsplit(srv.ws_url)

    async def go() -> None:
        wrong = f"ws://{url.hostname}:{url.port}/not-here"
        with pytest.raises(websockets.InvalidStatus) as e:
            await websockets.connect(wrong, open_timeout=5)
        assert e.value.response.status_code == 404
        assert b"connect to" in e.value.response.body

        async with websockets.connect(srv.ws_url, max_size=None, open_timeout=5) as ws:
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            # One request in three fragments is one request.
            third = len(HEARTBEAT) // 3
            await ws.send(iter([HEARTBEAT[:third], HEARTBEAT[third:2 * third], HEARTBEAT[2 * third:]]))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["err"] == 0 and reply["method"] == "stream.heartbeat", reply
            # Over 1 MiB: the connection is closed with 1009 (message too big).
            await ws.send("x" * (1024 * 1024 + 10))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
        assert sessions(srv) == []

    run(go(), 30)


def test_a_client_that_stops_reading_is_dropped_alone(server: ServerFactory) -> None:
    srv = server()
    url = urlsplit(srv.ws_url)

    async def go() -> None:
        async with websockets.connect(srv.ws_url, open_timeout=5) as good:
            # The stuck client: a tiny receive buffer, many requests, never a read.
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.connect((url.hostname, url.port))
            ws = WSConnection(ConnectionType.CLIENT)
            raw.sendall(ws.send(Request(host=f"{url.hostname}:{url.port}", target=url.path or "/")))
            raw.settimeout(5)
            ws.receive_data(raw.recv(4096))
            assert any(isinstance(e, AcceptConnection) for e in ws.events())
            raw.setblocking(False)
            request = ws.send(TextMessage(data=HEARTBEAT))
            sent = 0
            t0 = time.monotonic()
            while sent < 40_000 and time.monotonic() - t0 < 10:
                try:
                    raw.send(request)
                    sent += 1
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            assert sent > 1000, sent
            assert len(sessions(srv)) == 2
            # Meanwhile the other session is served at once, and keeps being served.
            for _ in range(5):
                t = time.monotonic()
                await good.send(HEARTBEAT)
                assert json.loads(await asyncio.wait_for(good.recv(), 2))["err"] == 0
                assert time.monotonic() - t < 1
                await asyncio.sleep(0.5)
            # The stuck one is dropped once its send has been blocked for 10 s.
            deadline = time.monotonic() + 20
            while len(sessions(srv)) > 1:
                assert time.monotonic() < deadline, sessions(srv)
                await asyncio.sleep(0.5)
            raw.close()
            await good.send(HEARTBEAT)
            assert json.loads(await asyncio.wait_for(good.recv(), 2))["err"] == 0

    run(go(), 60)


def test_unfinished_handshake_closed_and_idle_sessions_are_cheap(server: ServerFactory) -> None:
    srv = server()
    url = urlsplit(srv.ws_url)

    async def go() -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        await writer.drain()
        # 200 idle sessions: the server's memory grows by well under the 29 KiB each that the
        # previous adapter (trio-websocket) cost.
        before = rss_kib(srv.pid)
        conns = []
        for _ in range(200):
            ws = await websockets.connect(srv.ws_url, open_timeout=5)
            await ws.send(HEARTBEAT)
            await asyncio.wait_for(ws.recv(), 5)
            conns.append(ws)
        per_session = (rss_kib(srv.pid) - before) / 200
        print(f"server RSS per idle signaling session: {per_session:.1f} KiB")
        assert per_session < 20, per_session
        assert len(sessions(srv)) == 200
        for ws in conns:
            await ws.close()
        # The handshake that never finished is closed by the server after 10 s.
        data = await asyncio.wait_for(reader.read(), 15)
        assert data == b"" or data.startswith(b"HTTP/1.1 4"), data
        writer.close()

    run(go(), 60)
