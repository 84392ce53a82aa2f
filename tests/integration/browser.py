"""Headless Chromium as a WebRTC player: the browser a platform's users watch in.

:func:`chromium_player` serves a small page from ``http://127.0.0.1:<port>`` (a stdlib HTTP server
in a thread), opens it in Debian's Chromium driven by Playwright (``executable_path`` below; never
``playwright install``), and the page plays a stream the way a web client of this server does: one
WebSocket, ``stream.play`` with a complete receive-only offer (ICE gathered first, no trickle),
the answer, a heartbeat every 5 s. :func:`chromium_publisher` publishes a canvas painted one colour
with the browser's own encoder. :meth:`BrowserPlayer.state` reads back what the browser itself
says: the ``<video>`` size, ``framesDecoded`` and the codec from ``getStats()``, and the mean
colour of the centre of the picture (drawn to a canvas).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
]

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>pms-trio player</title>
<video id="v" autoplay muted playsinline></video>
<canvas id="c" width="64" height="48"></canvas>
<script>
window.player = {error: null, connection: "new", answer: null};
async function signaling(wsUrl, stream) {
  // One WebSocket; request(method, data) resolves with the next reply of that method.
  const ws = new WebSocket(wsUrl);
  const replies = {};
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    (replies[msg.method] || []).shift()?.(msg);
  };
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error("websocket")); });
  const request = (method, data) => new Promise((ok) => {
    (replies[method] = replies[method] || []).push(ok);
    ws.send(JSON.stringify({version: "1.0", method, stream, session: "", data}));
  });
  setInterval(() => request("stream.heartbeat", {}), 5000);
  return request;
}
function peerConnection() {
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  pc.onconnectionstatechange = () => { window.player.connection = pc.connectionState; };
  return pc;
}
async function negotiate(pc, request, method) {
  // A complete offer (ICE gathered first: the server takes no trickle), then the answer.
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => {
    if (pc.iceGatheringState === "complete") return ok();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") ok(); };
  });
  const reply = await request(method, {sdp: pc.localDescription.sdp});
  if (reply.err !== 0) throw new Error(`${method}: ${reply.err} ${reply.err_msg}`);
  window.player.answer = reply.data.sdp;
  await pc.setRemoteDescription({type: "answer", sdp: reply.data.sdp});
}
async function play(wsUrl, stream, audio) {
  const request = await signaling(wsUrl, stream);
  const pc = peerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  if (audio) pc.addTransceiver("audio", {direction: "recvonly"});
  pc.ontrack = (e) => { document.getElementById("v").srcObject = e.streams[0] || new MediaStream([e.track]); };
  await negotiate(pc, request, "stream.play");
}
async function publish(wsUrl, stream, rgb) {
  // A canvas painted one colour, 25 frames a second, is the camera: the player checks the colour.
  const canvas = document.getElementById("c");
  canvas.width = 320; canvas.height = 240;
  const ctx = canvas.getContext("2d");
  setInterval(() => { ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`; ctx.fillRect(0, 0, 320, 240); }, 40);
  const request = await signaling(wsUrl, stream);
  const pc = peerConnection();
  const media = canvas.captureStream(25);
  media.getTracks().forEach((t) => pc.addTransceiver(t, {direction: "sendonly", streams: [media]}));
  await negotiate(pc, request, "stream.publish");
}
async function whep(url) {
  // WHEP (RFC 9725) from this page's origin to the server's: fetch with CORS, a complete offer.
  const pc = peerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  pc.ontrack = (e) => { document.getElementById("v").srcObject = e.streams[0] || new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => {
    if (pc.iceGatheringState === "complete") return ok();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") ok(); };
  });
  const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/sdp"},
                              body: pc.localDescription.sdp});
  if (r.status !== 201) throw new Error(`WHEP ${r.status}: ${await r.text()}`);
  window.player.location = r.headers.get("Location");
  await pc.setRemoteDescription({type: "answer", sdp: await r.text()});
}
async function state() {
  const v = document.getElementById("v");
  let frames = 0, codec = "";
  if (window.pc) {
    const stats = await window.pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        frames = s.framesDecoded || 0;
        const c = stats.get(s.codecId);
        if (c) codec = c.mimeType;
      }
    });
  }
  let rgb = null;
  if (v.videoWidth > 0) {
    const ctx = document.getElementById("c").getContext("2d", {willReadFrequently: true});
    const w = v.videoWidth, h = v.videoHeight;
    ctx.drawImage(v, w / 4, h / 4, w / 2, h / 2, 0, 0, 64, 48);
    const px = ctx.getImageData(0, 0, 64, 48).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < px.length; i += 4) { sum[0] += px[i]; sum[1] += px[i + 1]; sum[2] += px[i + 2]; }
    const n = px.length / 4;
    rgb = [sum[0] / n, sum[1] / n, sum[2] / n];
  }
  return {width: v.videoWidth, height: v.videoHeight, frames, codec, rgb,
          connection: window.player.connection, error: window.player.error};
}
</script>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


VIDEO_PAGE = """<!doctype html>
<html><body>
<video id="v" muted autoplay playsinline></video>
<script>
function videoState() {
  const v = document.getElementById("v");
  return {time: v.currentTime, width: v.videoWidth, height: v.videoHeight, paused: v.paused,
          error: v.error ? v.error.code + " " + v.error.message : null};
}
</script>
</body></html>
"""


@contextlib.contextmanager
def _serve_page(folder: Path, page: str = PAGE) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(page, encoding="utf-8")
    handler = functools.partial(_Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


class BrowserPlayer:
    def __init__(self, page: Page) -> None:
        self.page = page

    async def state(self) -> dict[str, Any]:
        return await self.page.evaluate("state()")  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def _chromium_page(folder: Path, timeout: float, page_text: str = PAGE) -> AsyncIterator[Page]:
    with _serve_page(folder, page_text) as url:
        async with async_playwright() as pw:
            browser: Browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                        headless=True, timeout=timeout * 1000)
            try:
                page = await browser.new_page()
                await page.goto(url, timeout=timeout * 1000)
                yield page
            finally:
                await browser.close()


@contextlib.asynccontextmanager
async def chromium_video(folder: Path, src: str, *, timeout: float = 20.0) -> AsyncIterator[Page]:
    """A Chromium page whose ``<video>`` plays the file at ``src`` (muted, autoplay); read it
    with ``page.evaluate("videoState()")``."""
    async with _chromium_page(folder, timeout, VIDEO_PAGE) as page:
        await page.evaluate("(src) => { const v = document.getElementById('v'); v.src = src; v.play(); }", src)
        yield page


@contextlib.asynccontextmanager
async def chromium_player(folder: Path, ws_url: str, stream: str, *, audio: bool = True,
                          timeout: float = 20.0) -> AsyncIterator[BrowserPlayer]:
    """A Chromium page playing ``stream`` from the signaling URL ``ws_url``; closed on exit."""
    async with _chromium_page(folder, timeout) as page:
        await page.evaluate("([ws, stream, audio]) => play(ws, stream, audio)", [ws_url, stream, audio])
        yield BrowserPlayer(page)


@contextlib.asynccontextmanager
async def chromium_publisher(folder: Path, ws_url: str, stream: str, rgb: tuple[int, int, int], *,
                             timeout: float = 20.0) -> AsyncIterator[BrowserPlayer]:
    """A Chromium page publishing ``stream``: a 320x240 canvas of colour ``rgb`` at 25 fps, with the
    browser's own encoder (its first video codec in the offer); closed on exit."""
    async with _chromium_page(folder, timeout) as page:
        await page.evaluate("([ws, stream, rgb]) => publish(ws, stream, rgb)", [ws_url, stream, list(rgb)])
        yield BrowserPlayer(page)


@contextlib.asynccontextmanager
async def chromium_whep_player(folder: Path, whep_url: str, *, timeout: float = 20.0) -> AsyncIterator[BrowserPlayer]:
    """A Chromium page (its own origin: another port) playing ``whep_url`` with ``fetch``."""
    async with _chromium_page(folder, timeout) as page:
        await page.evaluate("(url) => whep(url)", whep_url)
        yield BrowserPlayer(page)
