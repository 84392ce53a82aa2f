"""The web console at ``GET /`` (issue 12) in a real browser against the real server.

Debian's Chromium (Playwright, fake camera and microphone) opens the page the server serves:
it publishes the fake camera from the Publish panel, plays streams from the Streams list, shows
getStats numbers, lists a GB28181 camera simulator's device and channel, plays the channel and
steers it, survives a restart of the server, and renders hostile stream names as text. Every
page must end without console errors."""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
from pathlib import Path
from typing import Any

from . import peers
from .conftest import ServerFactory
from .console_page import PHONE, ConsolePage, console_browser, grey_difference, median, sample
from .test_gb28181_media import CHANNEL, gb_media_server, registered_camera
from .test_gb28181_sip import DEVICE

BLUE = (20, 40, 210)
# GB2312 names (the simulator encodes them so) with markup, quotes and odd punctuation in them.
GB_DEVICE_NAME = '门口摄像机 <b>&"№1'
GB_CHANNEL_NAME = "通道1【<i>'※&amp;①】"
HOSTILE = "<img src=x onerror=alert(1)>\"'&amp;<script>alert(2)</script>"


async def publish_from_page(page: ConsolePage, name: str) -> None:
    await page.page.fill("#pub-name", name)
    await page.page.click("#publish button[type=submit]")
    await page.wait("(n) => document.querySelector('#publish .status').textContent === 'Publishing ' + n", 20,
                    "the Publish panel says it publishes", name)


async def play_from_list(page: ConsolePage, name: str) -> str:
    """Clicks the stream's Play button in the Streams panel; the player card's selector."""
    await page.stream_row(name, 10)
    await page.page.get_by_role("button", name=f"Play {name}", exact=True).click()
    card = f'#play .player[data-stream="{name}"]'
    await page.wait(f"document.querySelector('{card}')", 5, "a player card")
    return card


async def wait_picture(page: ConsolePage, card: str, timeout: float) -> dict[str, Any]:
    return await page.wait(f"(() => {{ const s = document.querySelector('{card} [data-stat=packets]');"
                           f" const v = document.querySelector('{card} video');"
                           f" return s && Number(s.textContent) > 0 && v.videoWidth > 0; }})()",
                           timeout, "packets received and a picture")


def test_console_publishes_the_camera_and_plays_it_from_the_list(server: ServerFactory, tmp_path: Path) -> None:
    """(a) fake camera -> server -> second page; frames change and are not black; packets counted.
    (d) the player's bitrate and frame rate are within 20% of what the publisher page sends.
    The screenshot of the page playing is kept in the test's folder."""
    srv = server()

    async def main() -> None:
        async with console_browser() as browser:
            pub = await ConsolePage.open(browser, srv.http_url + "/")
            view = await ConsolePage.open(browser, srv.http_url + "/")
            await publish_from_page(pub, "cam1")
            card = await play_from_list(view, "cam1")
            await wait_picture(view, card, 20)
            first = await view.grab(f"{card} video")
            await asyncio.sleep(1.5)
            second = await view.grab(f"{card} video")
            assert first and second, (first, second)
            assert (second["width"], second["height"]) == (640, 480), second  # Chromium's fake camera
            assert sum(second["grey"]) / len(second["grey"]) > 30, "the picture is black"
            assert grey_difference(first["grey"], second["grey"]) > 0.5, "the picture does not change"
            packets = (await view.stats(card))["packets"]
            assert packets and packets > 50, packets
            # (d) Let the publisher's bandwidth estimate settle, then compare 6 readings of each side.
            await asyncio.sleep(4)
            sent, got = await asyncio.gather(sample(lambda: pub.stats("#publish"), "bitrate", 6),
                                             sample(lambda: view.stats(card), "bitrate", 6))
            sent_fps, got_fps = await asyncio.gather(sample(lambda: pub.stats("#publish"), "fps", 4),
                                                     sample(lambda: view.stats(card), "fps", 4))
            assert abs(median(got) - median(sent)) <= 0.2 * median(sent), (sent, got)
            assert abs(median(got_fps) - median(sent_fps)) <= 0.2 * median(sent_fps), (sent_fps, got_fps)
            assert median(sent) > 50 and median(sent_fps) > 10, (sent, sent_fps)
            # The GB28181 panel of a server without SIP says so instead of failing.
            assert "not enabled" in await view.text("#gb28181 .body")
            # The publisher's page plays its own stream too: the screenshot shows both sides.
            await wait_picture(pub, await play_from_list(pub, "cam1"), 20)
            await asyncio.sleep(2)  # two stats readings: the bitrate shows
            await pub.page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
            assert (tmp_path / "console.png").stat().st_size > 10_000
            doc = await srv.api_async("/api/v1/streams")
            assert [s["players"] for s in doc["streams"] if s["name"] == "cam1"] == [2], doc
            assert pub.errors == [] and view.errors == [], (pub.errors, view.errors)

    peers.run(main(), timeout=120)


def test_console_plays_a_gb28181_channel_and_steers_it(server: ServerFactory) -> None:
    """(b) the simulator's device and channel are listed; Play shows the camera's colour; a PTZ
    button sends the camera a DeviceControl PTZCmd."""
    srv = gb_media_server(server)

    async def main() -> None:
        cam = await registered_camera(srv, colour=BLUE, device_name=GB_DEVICE_NAME,
                                      channel_names={CHANNEL: GB_CHANNEL_NAME})
        try:
            async with console_browser() as browser:
                page = await ConsolePage.open(browser, srv.http_url + "/", viewport=PHONE)
                await page.wait("(d) => document.querySelector('#gb28181 .dev-name')?.textContent.includes(d)", 10,
                                "the device listed", DEVICE)
                assert "online" in await page.text("#gb28181 .badge")
                # Names sent in GB2312 with XML-escaped markup show decoded, as text.
                await page.wait("(n) => document.querySelector('#gb28181 .dev-name').textContent.startsWith(n)", 10,
                                "the device's GB2312 name", GB_DEVICE_NAME)
                assert await page.text("#gb28181 .ch-name") == GB_CHANNEL_NAME
                assert await page.page.evaluate("document.querySelectorAll('#gb28181 b, #gb28181 i').length") == 0
                # A phone-sized screen: nothing wider than the screen (tables scroll inside their panel).
                assert await page.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
                await page.page.get_by_role("button", name=f"Play channel {CHANNEL}").click()
                card = f'#play .player[data-stream="{CHANNEL}"]'
                await wait_picture(page, card, 30)
                await asyncio.sleep(1)
                picture = await page.grab(f"{card} video")
                assert picture and peers.colour_matches(picture["rgb"], BLUE), picture
                assert not cam.ptz_commands
                await page.page.get_by_role("button", name="PTZ up").click()
                await cam.wait_for(lambda: len(cam.ptz_commands) == 1, 10, "a PTZ command")
                await page.wait("document.querySelector('#gb28181 .status').textContent.startsWith('PTZ up sent')",
                                5, "the page says it sent PTZ up")
                assert page.errors == [] and page.dialogs == [], (page.errors, page.dialogs)
        finally:
            await cam.close()

    peers.run(main(), timeout=120)


def test_console_lists_an_aiortc_stream_within_two_seconds_and_drops_it_when_it_ends(server: ServerFactory) -> None:
    """(c) the list follows the server: a publish appears within 2 s and is gone within 2 s of its end."""
    srv = server()

    async def main() -> None:
        async with console_browser() as browser:
            page = await ConsolePage.open(browser, srv.http_url + "/")
            pub = await peers.publish(srv.ws_url, "aio", audio_codec=None)
            started = time.monotonic()
            await page.stream_row("aio", 2)
            listed_after = time.monotonic() - started
            assert "webrtc" in await page.text("#streams tbody tr .source")
            await pub.close(signal=True)
            ended = time.monotonic()
            await page.wait("![...document.querySelectorAll('#streams tbody tr .name')].length", 2.5,
                            "the stream gone from the list")
            assert listed_after <= 2 and time.monotonic() - ended <= 2.5
            assert page.errors == [], page.errors

    peers.run(main(), timeout=60)


def test_console_shows_a_hostile_stream_name_as_text(server: ServerFactory) -> None:
    """(e) HTML and quotes in a stream name (signaling allows any printable name up to 255
    characters): the list and the player show the text, no element is injected, no dialog opens."""
    srv = server()

    async def main() -> None:
        pub = await peers.publish(srv.ws_url, HOSTILE, audio_codec=None)
        try:
            async with console_browser() as browser:
                page = await ConsolePage.open(browser, srv.http_url + "/")
                await page.stream_row(HOSTILE, 5)
                await page.page.get_by_role("button", name=f"Play {HOSTILE}", exact=True).click()
                await page.wait("(n) => [...document.querySelectorAll('#play .player h3')].some("
                                "(h) => h.textContent === n)", 5, "the player titled with the name", HOSTILE)
                await page.wait("Number(document.querySelector('#play [data-stat=packets]').textContent) > 0", 20,
                                "the hostile-named stream plays")
                await asyncio.sleep(1)
                assert await page.page.evaluate("document.querySelectorAll('img, script:not([src])').length") == 0
                assert HOSTILE in await page.text("#streams tbody")
                assert page.dialogs == [] and page.errors == [], (page.dialogs, page.errors)
        finally:
            await pub.close()

    peers.run(main(), timeout=60)


def test_console_static_files_and_traversal(server: ServerFactory) -> None:
    """(f) the page and its files with their types; anything else under them is 404."""
    srv = server()
    host, port = srv.http_url.removeprefix("http://").split(":")

    def get(path: str) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.putrequest("GET", path, skip_accept_encoding=True)  # sent as written, not normalised
            conn.endheaders()
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type", ""), r.read()
        finally:
            conn.close()

    status, ctype, body = get("/")
    assert status == 200 and ctype.startswith("text/html") and b"/static/app.js" in body
    assert get("/static/app.js")[:2] == (200, "text/javascript; charset=utf-8")
    assert get("/static/style.css")[:2] == (200, "text/css; charset=utf-8")
    assert get("/static/favicon.svg")[:2] == (200, "image/svg+xml")
    for path in ["/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/http/server.py",
                 "/static/%2e%2e%2f%2e%2e%2fpyproject.toml", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
                 "/static/..\\app.py", "/static/app.js%00.css", "/static/.", "/static/", "/static/web/app.js",
                 "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/static/./app.js", "/static/APP.JS",
                 "/static/__init__.py", "/static/%61pp.js"]:
        status, _, body = get(path)
        assert status == 404, (path, status, body[:200])

    peers.run(asyncio.sleep(0), timeout=5)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_console_survives_a_server_restart(server: ServerFactory) -> None:
    """(g) the server stops: the page says it lost the connection; the server comes back on the
    same ports: the page says it reconnected and publishes its camera again."""
    fixed = {"websocket": {"port": free_tcp_port()}, "http": {"port": free_tcp_port()},
             "rtsp": {"port": free_tcp_port()}}
    srv = server(fixed)

    async def main() -> None:
        async with console_browser() as browser:
            page = await ConsolePage.open(browser, srv.http_url + "/")
            await publish_from_page(page, "cam1")
            srv.stop()
            await page.wait("document.querySelector('#conn').dataset.state !== 'connected'", 5, "the header says lost")
            assert "Lost the connection" in await page.text("#banner")
            again = server(fixed)
            assert again.http_url == srv.http_url
            await page.wait("document.querySelector('#conn').dataset.state === 'connected'", 15, "reconnected")
            await page.wait("document.querySelector('#banner').textContent.startsWith('Reconnected')", 2,
                            "the banner says so")
            for _ in range(50):
                if [s for s in (await again.api_async("/api/v1/streams"))["streams"] if s["name"] == "cam1"]:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the page did not publish again after the restart")
            await publish_state(page)

    peers.run(main(), timeout=90)


async def publish_state(page: ConsolePage) -> None:
    await page.wait("document.querySelector('#publish .status').textContent === 'Publishing cam1'", 15,
                    "the Publish panel publishes again")


def test_console_records_a_stream_and_plays_the_file_and_mutes(server: ServerFactory) -> None:
    """The Streams panel starts and stops a recording; the Recording panel lists the file and plays
    it in its <video>; a player's Mute video button gets the server's stream.mute state."""
    srv = server()

    async def main() -> None:
        async with console_browser() as browser:
            page = await ConsolePage.open(browser, srv.http_url + "/")
            await publish_from_page(page, "rec1")
            await page.stream_row("rec1", 5)
            await page.page.get_by_role("button", name="Record rec1", exact=True).click()
            await page.wait("document.querySelector('#streams tbody tr .recording').textContent === 'recording'", 5,
                            "the list says recording")
            card = await play_from_list(page, "rec1")
            await wait_picture(page, card, 20)
            await page.page.click(f"{card} button:text('Mute video')")
            await page.wait(f"document.querySelector('{card} [aria-pressed=true]')?.textContent === 'Unmute video'",
                            5, "the server's mute state shown")
            await asyncio.sleep(3)
            await page.page.get_by_role("button", name="Stop recording rec1", exact=True).click()
            name = await page.wait("[...document.querySelectorAll('#recording tbody tr')].map((r) => "
                                   "r.querySelector('.state').textContent === 'done' && "
                                   "r.querySelector('.file').textContent)[0]", 10, "a finished recording listed")
            assert name.startswith("rec1-") and name.endswith(".webm"), name
            await page.page.get_by_role("button", name=f"Play recording {name}", exact=True).click()
            await page.wait("document.querySelector('#recording video').currentTime > 1", 10,
                            "the recording plays in the page")
            assert page.errors == [], page.errors

    peers.run(main(), timeout=90)


def test_console_asks_for_the_tokens_the_server_needs(server: ServerFactory) -> None:
    """With auth.apiToken and auth.jwtSecret (SPEC 10): the page says the API needs a token, starts once
    it is entered under Tokens, and publishes once a stream token (from ``pms-trio token``) is there."""
    from .test_auth import API_TOKEN, SECRET, token

    srv = server({"auth": {"jwtSecret": SECRET, "apiToken": API_TOKEN}})
    stream_token = token(srv, "cam*", "publish")

    async def main() -> None:
        async with console_browser() as browser:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            console = ConsolePage(page)
            await page.goto(srv.http_url + "/", timeout=20_000)
            await console.wait("document.getElementById('banner').textContent.includes('API token')", 10,
                               "the page says the API needs a token")
            await page.click("#tokens summary")
            await page.fill("#api-token", API_TOKEN)
            await page.dispatch_event("#api-token", "change")
            await console.wait("window.pmsConsole && window.pmsConsole.ready", 20, "the console started")
            await page.fill("#pub-name", "cam7")
            await page.click("#publish button[type=submit]")
            await console.wait("document.querySelector('#publish .status').textContent.includes('401')", 20,
                               "the publish refused for want of a token")
            await page.fill("#stream-token", stream_token)
            await page.dispatch_event("#stream-token", "change")
            await page.click("#publish button[type=submit]")
            await console.wait("document.querySelector('#publish .status').textContent === 'Publishing cam7'", 20,
                               "the Publish panel publishes with the token")
            assert console.dialogs == []

    peers.run(main(), timeout=90)
