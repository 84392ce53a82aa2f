"""The web console (``GET /`` of the server's HTTP port) opened in Debian's Chromium via Playwright.

Owns :func:`console_browser` (one headless Chromium with the fake camera and microphone; never
``playwright install``) and :class:`ConsolePage`: a page of the console that records every console
error, page error and dialog (an injected ``alert`` would be one), waits on what the page shows,
and reads the pictures of its ``<video>`` elements back through a canvas."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from .browser import CHROMIUM, CHROMIUM_ARGS

PHONE = {"width": 390, "height": 844}

# The mean colour of the centre of a <video> and a 32x24 grey picture of the whole of it.
GRAB = """(selector) => {
  const v = document.querySelector(selector);
  if (!v || !v.videoWidth) return null;
  const c = document.createElement("canvas"); c.width = 32; c.height = 24;
  const ctx = c.getContext("2d", {willReadFrequently: true});
  ctx.drawImage(v, 0, 0, 32, 24);
  const px = ctx.getImageData(0, 0, 32, 24).data;
  const grey = [];
  for (let i = 0; i < px.length; i += 4) grey.push((px[i] + px[i + 1] + px[i + 2]) / 3);
  ctx.drawImage(v, v.videoWidth / 4, v.videoHeight / 4, v.videoWidth / 2, v.videoHeight / 2, 0, 0, 32, 24);
  const mid = ctx.getImageData(0, 0, 32, 24).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < mid.length; i += 4) { sum[0] += mid[i]; sum[1] += mid[i + 1]; sum[2] += mid[i + 2]; }
  const n = mid.length / 4;
  return {width: v.videoWidth, height: v.videoHeight, grey, rgb: [sum[0] / n, sum[1] / n, sum[2] / n]};
}"""


@contextlib.asynccontextmanager
async def console_browser(timeout: float = 20.0) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                           timeout=timeout * 1000)
        try:
            yield browser
        finally:
            await browser.close()


class ConsolePage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        asyncio.ensure_future(dialog.dismiss())

    @classmethod
    async def open(cls, browser: Browser, url: str, *, viewport: dict[str, int] | None = None,
                   timeout: float = 20.0) -> ConsolePage:
        page = await browser.new_page(viewport=viewport or {"width": 1400, "height": 1000})  # type: ignore[arg-type]
        console = cls(page)
        await page.goto(url, timeout=timeout * 1000)
        await console.wait("window.pmsConsole && window.pmsConsole.ready", timeout, "the console started")
        return console

    async def wait(self, expression: str, timeout: float, what: str, arg: Any = None) -> Any:
        """Poll a JS expression (or function of ``arg``) until truthy; its value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        for _ in range(int(timeout / 0.1) + 2):
            value = await self.page.evaluate(expression, arg)
            if value:
                return value
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.1)
        raise AssertionError(f"{what}: not within {timeout} s (last {value!r}; page errors {self.errors})")

    async def text(self, selector: str) -> str:
        return await self.page.evaluate("(s) => document.querySelector(s)?.textContent ?? ''", selector)

    async def stream_row(self, name: str, timeout: float) -> None:
        await self.wait("(n) => [...document.querySelectorAll('#streams tbody tr')].some("
                        "(r) => r.querySelector('.name').textContent === n)", timeout, f"{name!r} listed", name)

    async def stream_names(self) -> list[str]:
        return await self.page.evaluate(
            "[...document.querySelectorAll('#streams tbody tr .name')].map((c) => c.textContent)")

    async def grab(self, selector: str) -> dict[str, Any] | None:
        return await self.page.evaluate(GRAB, selector)

    async def stats(self, card: str) -> dict[str, float | None]:
        """The numbers a stats table shows (``card``: a selector of the element around it)."""
        shown: dict[str, str] = await self.page.evaluate(
            "(s) => Object.fromEntries([...document.querySelectorAll(s + ' [data-stat]')]"
            ".map((d) => [d.dataset.stat, d.textContent]))", card)
        out: dict[str, float | None] = {}
        for key, text in shown.items():
            match = re.match(r"^-?[\d.]+", text)
            out[key] = float(match.group(0)) if match else None
        return out


async def sample(read: Callable[[], Awaitable[dict[str, float | None]]], key: str, n: int,
                 interval: float = 1.0) -> list[float]:
    values = []
    for _ in range(n):
        value = (await read()).get(key)
        if value is not None:
            values.append(value)
        await asyncio.sleep(interval)
    return values


def median(values: list[float]) -> float:
    assert values, "no readings"
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def grey_difference(a: list[float], b: list[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)
