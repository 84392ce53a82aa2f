"""Debian's Firefox ESR (headless) driven by Selenium and geckodriver, inside a network namespace.

Firefox offers no host ICE candidate on loopback (shared notes, peers.md), so
:func:`firefox_browser` runs it in the private namespace of :func:`.netns.veth_namespace`: every
Selenium call runs on one thread that entered the namespace, so geckodriver (started by Selenium
from that thread) and the Firefox it starts live there, and the page reaches the server on the
namespace's outer address. geckodriver is the crate (``cargo install geckodriver``) that
``scripts/install-test-peers`` builds into ``~/.cache/pms-trio/cargo-bin``; one on PATH does too.

Prefs: fake camera and microphone without a permission prompt, host candidates not hidden behind
mDNS names, autoplay allowed. Console messages of level error and uncaught JavaScript errors
reach :attr:`FirefoxPage.errors` through WebDriver BiDi (``log.entryAdded``), from the first
script of the page on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.firefox.service import Service

from .netns import Netns

FIREFOX = "/usr/bin/firefox-esr"
GECKODRIVER_CACHE = Path.home() / ".cache" / "pms-trio" / "cargo-bin" / "bin" / "geckodriver"
PREFS: dict[str, Any] = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.autoplay.default": 0,
    # Nothing of its own on the network: no updates, telemetry, captive portal checks, safe browsing.
    "app.update.disabledForTesting": True,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.safebrowsing.update.enabled": False,
}
T = TypeVar("T")


def geckodriver() -> str:
    found = str(GECKODRIVER_CACHE) if GECKODRIVER_CACHE.is_file() else shutil.which("geckodriver")
    assert found, f"no geckodriver in {GECKODRIVER_CACHE} or on PATH: run scripts/install-test-peers"
    return found


class FirefoxPage:
    """The one page of a Firefox session; every method runs its Selenium calls on the namespace's thread."""

    def __init__(self, pool: ThreadPoolExecutor, driver: webdriver.Firefox, errors: list[str]) -> None:
        self._pool = pool
        self.driver = driver
        self.errors = errors

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def goto(self, url: str) -> None:
        await self.run(self.driver.get, url)

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        """The value of a JS expression, or of a function expression called with ``arg``."""
        script = f"const f = ({expression}); return typeof f === 'function' ? f(arguments[0]) : f;"
        return await self.run(self.driver.execute_script, script, arg)

    async def evaluate_async(self, body: str, arg: Any = None) -> Any:
        """Runs ``body`` (an async function's text, taking ``arg``) and returns what it resolves to."""
        script = f"const done = arguments[arguments.length - 1]; ({body})(arguments[0]).then(done, (e) => done({{error: String(e)}}));"
        return await self.run(self.driver.execute_async_script, script, arg)

    async def wait(self, expression: str, timeout: float, what: str, arg: Any = None) -> Any:
        deadline = time.monotonic() + timeout
        value: Any = None
        while True:
            value = await self.evaluate(expression, arg)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what}: not within {timeout} s (last {value!r}; page errors {self.errors})")
            await asyncio.sleep(0.2)

    async def text(self, selector: str) -> str:
        return await self.evaluate("(s) => document.querySelector(s)?.textContent ?? ''", selector)

    async def click(self, selector: str) -> None:
        await self.evaluate("(s) => document.querySelector(s).click()", selector)


def _start(ns: Netns, errors: list[str], log: Path) -> webdriver.Firefox:
    options = webdriver.FirefoxOptions()
    options.binary_location = FIREFOX
    options.add_argument("-headless")
    options.enable_bidi = True
    for key, value in PREFS.items():
        options.set_preference(key, value)
    # The page comes from http://<outer address>, not localhost: a camera needs a secure context,
    # which a user gets with https or localhost and the test by listing that origin's host as secure.
    options.set_preference("dom.securecontext.allowlist", ns.outer)
    service = Service(executable_path=geckodriver(), log_output=str(log), env={**os.environ, "MOZ_HEADLESS": "1"})
    driver = webdriver.Firefox(options=options, service=service)
    driver.set_script_timeout(30)

    def console(entry: Any) -> None:
        if getattr(entry, "level", "") == "error":
            errors.append(f"console.error: {getattr(entry, 'text', entry)}")

    def javascript(entry: Any) -> None:
        errors.append(f"JavaScript error: {getattr(entry, 'text', entry)}")

    driver.script.add_console_message_handler(console)
    driver.script.add_javascript_error_handler(javascript)
    return driver


@contextlib.asynccontextmanager
async def firefox_browser(ns: Netns, folder: Path) -> AsyncIterator[FirefoxPage]:
    """Headless Firefox ESR in ``ns``, its geckodriver log in ``folder``; quit on exit."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netns-{ns.name}", initializer=ns.enter)
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    try:
        driver = await asyncio.wait_for(
            loop.run_in_executor(pool, _start, ns, errors, folder / "geckodriver.log"), 60)
        try:
            yield FirefoxPage(pool, driver, errors)
        finally:
            await asyncio.wait_for(loop.run_in_executor(pool, driver.quit), 30)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
