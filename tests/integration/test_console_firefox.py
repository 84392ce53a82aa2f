"""The web console in the second browser engine: Debian's Firefox ESR (Selenium + geckodriver).

Firefox runs in a private network namespace (it offers no ICE candidate on loopback); the server
listens on the namespace's outer veth address, which the test reaches too. The console page
publishes Firefox's fake camera in VP8 (Debian's Firefox has no H.264 offline), plays it back
from the Streams list in the same page, and the test grabs the ``<video>`` into a canvas: the
picture changes and is not black, and getStats counts packets. A stream that is only H.264 (an
aiortc publisher) gets a clear refusal in words in the player (SPEC: 415), and the page logs no
console error and throws no JavaScript error throughout (WebDriver BiDi log events).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from . import peers
from .conftest import ServerFactory
from .console_page import GRAB, grey_difference
from .firefox import FirefoxPage, firefox_browser
from .netns import veth_namespace


def on(address: str) -> dict[str, object]:
    """The server's signaling, HTTP and WebRTC on ``address`` (the namespace's outer end)."""
    return {"websocket": {"listenIp": address}, "http": {"listenIp": address},
            "webrtc": {"listenIp": address, "announcedIp": address}}


async def play_from_list(page: FirefoxPage, name: str) -> str:
    await page.wait("(n) => [...document.querySelectorAll('#streams tbody tr')].some("
                    "(r) => r.querySelector('.name').textContent === n)", 10, f"{name} listed", name)
    await page.evaluate("(n) => document.querySelector(`#streams button[aria-label=\"Play ${n}\"]`).click()", name)
    card = f'#play .player[data-stream="{name}"]'
    await page.wait(f"document.querySelector('{card}')", 5, "a player card")
    return card


async def wait_until(check: Callable[[], bool], timeout: float) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)


def test_console_in_firefox_publishes_vp8_plays_it_and_refuses_h264_in_words(server: ServerFactory,
                                                                             tmp_path: Path) -> None:
    async def main() -> None:
        with veth_namespace("ffx") as ns:
            srv = await asyncio.to_thread(server, on(ns.outer))
            async with firefox_browser(ns, tmp_path) as page:
                await page.goto(srv.http_url + "/")
                await page.wait("window.pmsConsole && window.pmsConsole.ready", 20, "the console started")
                codecs = await page.evaluate("[...document.querySelectorAll('#pub-codec option')].map((o) => o.value)")
                assert "video/VP8" in codecs and "video/H264" not in codecs, codecs
                await page.evaluate("document.getElementById('pub-codec').value = 'video/VP8'")
                await page.evaluate("document.getElementById('pub-name').value = 'fox'")
                await page.click("#publish button[type=submit]")
                await page.wait("document.querySelector('#publish .status').textContent === 'Publishing fox'", 20,
                                "the Publish panel says it publishes")
                doc = await srv.api_async("/api/v1/streams")
                assert [s["codecs"] for s in doc["streams"] if s["name"] == "fox"] == [["audio/opus", "video/VP8"]], doc

                card = await play_from_list(page, "fox")
                await page.wait(f"(() => {{ const s = document.querySelector('{card} [data-stat=packets]');"
                                f" const v = document.querySelector('{card} video');"
                                f" return s && Number(s.textContent) > 0 && v.videoWidth > 0; }})()",
                                20, "packets received and a picture")
                first = await page.evaluate(GRAB, f"{card} video")
                await asyncio.sleep(1.5)
                second = await page.evaluate(GRAB, f"{card} video")
                assert first and second, (first, second)
                assert sum(second["grey"]) / len(second["grey"]) > 30, "the picture is black"
                assert grey_difference(first["grey"], second["grey"]) > 0.5, "the picture does not change"
                packets = float(await page.text(f"{card} [data-stat=packets]"))
                assert packets > 50, packets
                assert (await page.text(f"{card} [data-stat=codec]")).lower() == "video/vp8"

                # An H.264-only stream: the player says in words that this browser cannot play it.
                pub = await peers.publish(srv.ws_url, "h264only", audio_codec=None)
                try:
                    card = await play_from_list(page, "h264only")
                    status = await page.wait(f"(() => {{ const t = document.querySelector('{card} .status');"
                                             " return t.dataset.kind === 'error' && t.textContent; })()", 10,
                                             "the player's refusal")
                    assert "cannot play" in status and "H264" in status and "415" in status, status
                    await asyncio.sleep(4)  # no retry loop replaces the message
                    assert await page.text(f"{card} .status") == status
                    assert await page.evaluate(f"document.querySelector('{card} video').videoWidth") == 0
                finally:
                    await pub.close()
                assert page.errors == [], page.errors
                print(f"Firefox player's words for the H.264 stream: {status}")
                # The error collection is live: a console.error and an uncaught error both reach it.
                await page.evaluate("() => { console.error('probe-console'); setTimeout(() => { throw new Error('probe-throw'); }); }")
                await wait_until(lambda: len(page.errors) >= 2, 5)
                assert "probe-console" in page.errors[0] and "probe-throw" in page.errors[1], page.errors

    peers.run(main(), timeout=120)
