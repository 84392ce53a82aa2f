"""HTTP hooks (SPEC section 10) against a real HTTP receiver started by the test (the stdlib's
threading HTTP server on loopback): admission hooks that allow, deny or time out, on the signaling,
WHEP and RTSP; notifications that arrive once, with their fields, even when the receiver fails its
first two tries; and ``DELETE /api/v1/sessions/ID``.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from . import peers
from .conftest import Server, ServerFactory
from .peers import RED, publish, run
from .record_support import record, record_url
from .rtsp_peers import RawRtsp

pytestmark = pytest.mark.integration


class Receiver:
    """POST /allow -> 200, /deny -> 403, /redirect -> 302 to /allow, /huge -> 200 with a 1 GiB body, /slow -> 200 after 5 s, /flaky -> 500 twice per event, then 200.
    ``received`` keeps every document answered 2xx, by path."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.failures: dict[str, int] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                path = self.path
                status = 200
                if path == "/deny":
                    status = 403
                elif path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/allow")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                elif path == "/huge":  # 200 and a body far too big to read: the server must not wait for it
                    with receiver.lock:
                        receiver.received.setdefault(path, []).append(body)
                    self.send_response(200)
                    self.send_header("Content-Length", str(1 << 30))
                    self.end_headers()
                    try:
                        for _ in range(1 << 14):
                            self.wfile.write(b"x" * 65536)
                    except OSError:
                        pass
                    return
                elif path == "/slow":
                    time.sleep(5)
                elif path == "/flaky":
                    key = json.dumps({k: v for k, v in body.items() if k != "time"}, sort_keys=True)
                    with receiver.lock:
                        n = receiver.failures.get(key, 0)
                        receiver.failures[key] = n + 1
                    status = 500 if n < 2 else 200
                if 200 <= status < 300:
                    with receiver.lock:
                        receiver.received.setdefault(path, []).append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def events(self, path: str, event: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for d in self.received.get(path, []) if d.get("event") == event]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def _err(srv: Server, method: str, stream: str, sdp: str) -> int:
    sig = await peers.SignalingClient.connect(srv.ws_url)
    try:
        await sig.request(method, stream, {"sdp": sdp}, timeout=15)
        return 0
    except peers.SignalingError as e:
        return int(e.reply["err"])
    finally:
        await sig.close()


async def _offer(publisher: bool) -> str:
    pc = peers.build_publisher_pc("video/H264", None, RED)[0] if publisher else peers.build_player_pc()
    try:
        return await peers.make_offer(pc)
    finally:
        await pc.close()


def test_admission_hooks_allow_deny_and_time_out(server: ServerFactory, receiver: Receiver) -> None:
    deny = server({"hooks": {"onPublish": receiver.url("/deny"), "timeout": 1}})
    slow = server({"hooks": {"onPublish": receiver.url("/slow"), "timeout": 1}})
    allow = server({"hooks": {"onPublish": receiver.url("/allow"), "onPlay": receiver.url("/deny")}})

    async def scenario() -> None:
        offer = await _offer(True)
        assert await _err(deny, "stream.publish", "a", offer) == 403
        started = time.monotonic()
        assert await _err(slow, "stream.publish", "a", offer) == 403
        assert time.monotonic() - started < 3  # hooks.timeout is 1 s
        pub = await publish(allow.ws_url, "cam", colour=RED)
        try:
            document = receiver.received["/allow"][-1]
            assert document["action"] == "publish" and document["stream"] == "cam"
            assert document["kind"] == "webrtc" and document["session"] and document["peer"].startswith("127.0.0.1")
            assert await _err(allow, "stream.play", "cam", await _offer(False)) == 403  # onPlay denies
            async with httpx.AsyncClient(base_url=allow.http_url, timeout=10) as http:
                r = await http.post("/whep/cam", content=(await _offer(False)).encode(),
                                    headers={"Content-Type": "application/sdp"})
                assert r.status_code == 403, r.text
            raw = RawRtsp(allow.rtsp_url)
            try:
                assert raw.request("DESCRIBE", "cam").status == 403
            finally:
                raw.sock.close()
        finally:
            await pub.close()

    run(scenario(), 90)


def test_notifications_arrive_once_with_their_fields(server: ServerFactory, receiver: Receiver) -> None:
    flaky = receiver.url("/flaky")
    srv = server({"hooks": {"onUnpublish": flaky, "onStop": flaky, "onRecordDone": flaky}})

    async def scenario() -> None:
        pub = await publish(srv.ws_url, "n1", video_codec="video/VP8", colour=RED)
        player = await peers.play(srv.ws_url, "n1")
        await player.wait_video_frames(10, timeout=20)
        url = record_url(srv.ready)
        status, reply = await record(url, "n1", "record.start", fileName="n1.webm")
        assert status == 200, reply
        await asyncio.sleep(2)
        status, reply = await record(url, "n1", "record.stop")
        assert status == 200, reply
        await player.close(signal=True)
        await pub.close(signal=True)
        deadline = time.monotonic() + 20  # two failures: retried after 1 s and 2 s
        while time.monotonic() < deadline and not (receiver.events("/flaky", "unpublish")
                                                   and len(receiver.events("/flaky", "stop")) >= 2
                                                   and receiver.events("/flaky", "record_done")):
            await asyncio.sleep(0.2)
        await asyncio.sleep(4)  # nothing more may come
        unpublish = receiver.events("/flaky", "unpublish")
        assert len(unpublish) == 1 and unpublish[0]["stream"] == "n1", unpublish
        stops = receiver.events("/flaky", "stop")
        assert len(stops) == 2 and {s["stream"] for s in stops} == {"n1"}, stops  # the player and the recorder
        done = receiver.events("/flaky", "record_done")
        assert len(done) == 1, done
        assert done[0]["file"] == "n1.webm" and done[0]["stream"] == "n1", done
        assert done[0]["bytes"] > 1000 and 1.0 <= done[0]["duration"] <= 4.0, done

    run(scenario(), 90)


def test_kick_a_session(server: ServerFactory) -> None:
    srv = server()

    async def scenario() -> None:
        pub = await publish(srv.ws_url, "k1", colour=RED)
        player = await peers.play(srv.ws_url, "k1")
        try:
            await player.wait_video_frames(5, timeout=20)
            async with httpx.AsyncClient(base_url=srv.http_url, timeout=10) as http:
                assert (await http.delete("/api/v1/sessions/nosuch")).status_code == 404
                r = await http.delete(f"/api/v1/sessions/{pub.signaling.session}")
                assert r.status_code == 200, r.text
            for _ in range(100):
                if any(m.get("method") == "stream.closed" for m in player.signaling.received):
                    break
                await asyncio.sleep(0.1)
            assert any(m.get("method") == "stream.closed" for m in player.signaling.received)
            await asyncio.wait_for(pub.signaling.closed.wait(), 5)  # the kicked connection is closed
        finally:
            await peers.close_all(player, pub)

    run(scenario(), 60)


def test_on_device_hears_a_camera_come_and_go(server: ServerFactory, receiver: Receiver) -> None:
    from .test_gb28181_media import PASSWORD, registered_camera

    srv = server({"sip": {"enable": True, "password": PASSWORD},
                  "hooks": {"onDevice": receiver.url("/allow")}})

    async def scenario() -> None:
        cam = await registered_camera(srv)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not receiver.events("/allow", "device"):
                await asyncio.sleep(0.1)
            assert (await cam.register(expires=0)).status == 200  # unregisters: offline
            while time.monotonic() < deadline and len(receiver.events("/allow", "device")) < 2:
                await asyncio.sleep(0.1)
        finally:
            await cam.close()
        events = receiver.events("/allow", "device")
        assert [(e["device"], e["online"]) for e in events] == [(cam.device_id, True), (cam.device_id, False)], events

    run(scenario(), 60)


def test_admission_hook_that_redirects_or_answers_a_huge_body(server: ServerFactory, receiver: Receiver) -> None:
    redirect = server({"hooks": {"onPublish": receiver.url("/redirect")}})
    huge = server({"hooks": {"onPublish": receiver.url("/huge")}})

    async def scenario() -> None:
        offer = await _offer(True)
        assert await _err(redirect, "stream.publish", "r", offer) == 403  # redirects are not followed
        assert "/allow" not in receiver.received
        started = time.monotonic()
        pub = await publish(huge.ws_url, "h", colour=RED)  # allowed at once: the body is never read
        try:
            assert time.monotonic() - started < 10
            assert receiver.received["/huge"][0]["stream"] == "h"
        finally:
            await pub.close()

    run(scenario(), 60)
