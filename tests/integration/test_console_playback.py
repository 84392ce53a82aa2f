"""The web console's GB28181 playback panel in a real browser (Debian's Chromium via Playwright)
against the real server and the SD-card camera simulator: search a channel's records for a time
range, see them on the time line, play one (the Play panel shows its picture), pause it and set
its speed (the camera receives the MANSRTSP INFO), stop it. The page must end without errors."""

from __future__ import annotations

import asyncio

from . import peers
from .conftest import ServerFactory
from .console_page import ConsolePage, console_browser
from .test_console import wait_picture
from .test_gb28181_playback import CHANNEL, T0, pb_server, sd_camera

LOCAL = ("(t) => { const d = new Date(t * 1000); const p = (n) => String(n).padStart(2, '0');"
         " return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:"
         "${p(d.getMinutes())}:${p(d.getSeconds())}`; }")


def test_console_searches_records_plays_one_pauses_speeds_and_stops(server: ServerFactory) -> None:
    srv = pb_server(server)

    async def main() -> None:
        cam = await sd_camera(srv)
        try:
            async with console_browser() as browser:
                page = await ConsolePage.open(browser, srv.http_url + "/")
                await page.wait("(c) => [...document.querySelectorAll('#pb-channel option')]"
                                ".some((o) => o.value.endsWith('/' + c))", 10, "the channel offered", CHANNEL)
                for field, t in (("#pb-from", T0 - 600), ("#pb-to", T0 + 600)):
                    await page.page.fill(field, await page.page.evaluate(LOCAL, t))
                await page.page.click("#playback button[type=submit]")
                await page.wait("document.querySelectorAll('#playback .records tbody tr').length === 1"
                                " && document.querySelectorAll('#playback .tl-item').length === 1", 15,
                                "one record listed and on the time line")
                assert "2023-11-15T06:13:20" in await page.text("#playback .records tbody")
                await page.page.get_by_role("button", name="Play 2023-11-15T06:13:20", exact=True).click()
                stream = f"{CHANNEL}_{T0}_{T0 + 120}"
                card = f'#play .player[data-stream="{stream}"]'
                await page.wait(f"document.querySelector('{card}')", 15, "a player card for the playback")
                await wait_picture(page, card, 30)
                await page.page.get_by_role("button", name="Pause", exact=True).click()
                await cam.wait_for(lambda: any(i.startswith("PAUSE") for i in cam.infos), 10, "PAUSE")
                await page.page.select_option("#pb-speed", "4")
                await page.page.get_by_role("button", name="Set speed", exact=True).click()
                await cam.wait_for(lambda: any("Scale: 4.0" in i for i in cam.infos), 10, "Scale 4")
                await page.wait("document.querySelector('#playback .status').textContent.startsWith('Speed 4')", 5,
                                "the page says the speed")
                await page.page.get_by_role("button", name="Stop playback", exact=True).click()
                await cam.wait_for(lambda: len(cam.byes_received) == 1, 10, "the BYE")
                await asyncio.sleep(0.5)
                assert page.errors == [] and page.dialogs == [], (page.errors, page.dialogs)
        finally:
            await cam.close()

    peers.run(main(), timeout=120)
