"""The web console on a small phone's screen (375x667) and from the keyboard alone (Chromium).

With a live stream of a long unbroken name listed and playing, the document never scrolls
sideways; walking the page with Tab reaches the main controls in reading order (navigation,
Publish form, Play form, the stream's row), each one on screen when focused and drawn with a
focus ring; Enter on the stream's Play button opens a player that plays, and Shift+Tab back to
its Mute video button and Enter mutes it on the server."""

from __future__ import annotations

import asyncio
from typing import Any

from . import peers
from .conftest import ServerFactory
from .console_page import ConsolePage, console_browser

SMALL_PHONE = {"width": 375, "height": 667}
LONG = "phone-camera-" + "0123456789" * 6  # no break opportunity: it must wrap inside its cell

# What has the focus: its id or label, and where it is drawn.
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const r = e.getBoundingClientRect();
  return {id: e.id, tag: e.tagName.toLowerCase(), type: e.type || "",
          label: e.getAttribute("aria-label") || e.textContent.trim().slice(0, 80),
          left: r.left, right: r.right, top: r.top, bottom: r.bottom,
          ring: getComputedStyle(e).outlineStyle !== "none" && parseFloat(getComputedStyle(e).outlineWidth) > 0};
}"""


async def tab_until(page: ConsolePage, label: str, *, back: bool = False, limit: int = 80) -> list[dict[str, Any]]:
    """Presses Tab (Shift+Tab with ``back``) until the element labelled ``label`` has the focus."""
    walked: list[dict[str, Any]] = []
    for _ in range(limit):
        await page.page.keyboard.press("Shift+Tab" if back else "Tab")
        focused = await page.page.evaluate(FOCUSED)
        if focused:
            walked.append(focused)
            if focused["label"] == label:
                return walked
    raise AssertionError(f"{label!r} not reached in {limit} presses: {[w['id'] or w['label'] for w in walked]}")


def test_console_on_a_small_phone_from_the_keyboard(server: ServerFactory) -> None:
    srv = server()

    async def main() -> None:
        pub = await peers.publish(srv.ws_url, LONG, audio_codec=None)
        try:
            async with console_browser() as browser:
                page = await ConsolePage.open(browser, srv.http_url + "/", viewport=SMALL_PHONE)
                await page.stream_row(LONG, 5)
                walked = await tab_until(page, f"Play {LONG}")
                names = [w["id"] or w["label"] for w in walked]
                wanted = ["Publish", "pub-name", "pub-camera", "pub-mic", "pub-codec", "pub-bitrate", "Publish",
                          "play-name", "Play", f"Copy the RTSP URL of {LONG}", f"Play {LONG}"]
                at = [names.index(w, names.index(wanted[i - 1]) + 1 if i else 0) for i, w in enumerate(wanted)]
                assert at == sorted(at), (at, names)
                assert walked[at[6]]["type"] == "submit" and walked[at[8]]["type"] == "submit", walked
                for w in walked:  # every focus stop is on screen (scrolled to) and shows a ring
                    assert w["right"] > w["left"] >= 0 and w["right"] <= SMALL_PHONE["width"], w
                    assert w["bottom"] > w["top"] >= 0 and w["bottom"] <= SMALL_PHONE["height"], w
                    assert w["ring"], w

                await page.page.keyboard.press("Enter")
                card = f'#play .player[data-stream="{LONG}"]'
                await page.wait(f"Number(document.querySelector('{card} [data-stat=packets]')?.textContent) > 0", 20,
                                "the player opened with Enter plays")
                back = await tab_until(page, "Mute video", back=True, limit=30)
                assert all(w["right"] <= SMALL_PHONE["width"] for w in back), back
                await page.page.keyboard.press("Enter")
                await page.wait(f"document.querySelector('{card} [aria-pressed=true]')?.textContent === "
                                "'Unmute video'", 5, "muted from the keyboard")
                await asyncio.sleep(1)  # a stats refresh with the card open
                assert await page.page.evaluate("document.documentElement.scrollWidth") <= SMALL_PHONE["width"]
                for selector in ["#publish button[type=submit]", "#play button[type=submit]", f"{card} video",
                                 "#streams tbody tr button"]:
                    box = await page.page.locator(selector).first.bounding_box()
                    assert box and box["width"] > 0 and box["x"] >= 0 and box["x"] + box["width"] <= 375, (selector, box)
                assert page.errors == [] and page.dialogs == [], (page.errors, page.dialogs)
        finally:
            await pub.close()

    peers.run(main(), timeout=60)
