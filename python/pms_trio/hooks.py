"""HTTP hooks (SPEC section 10): the operator's service says yes or no to a publish or a play, and hears
what ends (``hooks`` keys).

Owns :class:`Hooks`: the HTTP client (httpx, which runs on trio), the admission calls
(:meth:`Hooks.admit`: ``onPublish``/``onPlay``) and the notifications (:meth:`Hooks.notify`:
``onUnpublish``, ``onStop``, ``onRecordDone``, ``onDevice``), which its own task sends.

Rules (where the spec is silent, the decision is written here):

- Admission: ``POST`` of ``{"action", "stream", "session", "kind", "peer", "token"?}`` as JSON; a 2xx
  within ``hooks.timeout`` s allows; any other status, a redirect (not followed), a connection error
  or the time running out refuses (the caller answers 403). The answer's body is not read.
- Notifications never block the caller: :meth:`Hooks.notify` queues (at most :data:`MAX_QUEUED`;
  past that the oldest is dropped with a warning) and returns. Each is sent by a task of the hooks'
  own nursery (at most :data:`CONCURRENCY` at once), retried on failure (a non-2xx, an error, a
  time-out) after 1, 2, 4 and 8 s, then given up with a warning: at most :data:`ATTEMPTS` tries,
  so every notification arrives once when the receiver recovers within ~15 s.
- Every notification carries ``"event"`` (``unpublish``, ``stop``, ``record_done``, ``device``)
  and ``"time"`` (UNIX seconds) besides its fields.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Any

import httpx
import trio

from .config import HooksConfig

log = logging.getLogger("pms_trio.hooks")

MAX_QUEUED = 10_000
CONCURRENCY = 16
ATTEMPTS = 5
MAX_BODY_READ = 0  # the body of a hook's answer is never read

EVENTS = {"unpublish": "on_unpublish", "stop": "on_stop", "record_done": "on_record_done", "device": "on_device"}


class HookRefused(Exception):
    """An admission hook said no (or could not be asked)."""


class Hooks:
    def __init__(self, config: HooksConfig) -> None:
        self.config = config
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._wakeup = trio.Event()
        self._client: httpx.AsyncClient | None = None
        self.sent = 0
        self.failed = 0
        self.refused = 0

    @property
    def admission(self) -> bool:
        return bool(self.config.on_publish or self.config.on_play)

    async def run(self, *, task_status: trio.TaskStatus[Hooks] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the HTTP client and send the queued notifications, until cancelled."""
        async with httpx.AsyncClient(follow_redirects=False, timeout=self.config.timeout,
                                     limits=httpx.Limits(max_connections=64)) as client:
            self._client = client
            limiter = trio.CapacityLimiter(CONCURRENCY)
            try:
                async with trio.open_nursery() as nursery:
                    task_status.started(self)
                    while True:
                        while not self._queue:
                            await self._wakeup.wait()
                            self._wakeup = trio.Event()
                        url, document = self._queue.popleft()
                        borrower = object()
                        await limiter.acquire_on_behalf_of(borrower)
                        nursery.start_soon(self._deliver, url, document, limiter, borrower)
            finally:
                self._client = None

    # -- admission

    async def admit(self, action: str, stream: str, *, session: str, kind: str, peer: str,
                    token: str | None = None) -> None:
        """Ask ``onPublish``/``onPlay`` (when set); raises :class:`HookRefused` unless it allows."""
        url = self.config.on_publish if action == "publish" else self.config.on_play
        if not url:
            return
        document: dict[str, Any] = {"action": action, "stream": stream, "session": session, "kind": kind,
                                    "peer": peer}
        if token:
            document["token"] = token
        status = await self._post(url, document)
        if not 200 <= status < 300:
            self.refused += 1
            reason = "did not answer in time" if status == 0 else f"answered {status}"
            log.info("hooks: %s of %s refused: %s %s", action, stream, url, reason)
            raise HookRefused(f"the {'onPublish' if action == 'publish' else 'onPlay'} hook {reason}")

    # -- notifications

    def notify(self, event: str, **fields: Any) -> None:
        """Queue notification ``event`` (a key of :data:`EVENTS`) when its hook is set; never blocks."""
        url = getattr(self.config, EVENTS[event])
        if not url:
            return
        if len(self._queue) >= MAX_QUEUED:
            dropped = self._queue.popleft()
            log.warning("hooks: over %d notifications waiting; dropped a %s", MAX_QUEUED, dropped[1].get("event"))
        self._queue.append((url, {"event": event, "time": time.time(), **fields}))
        self._wakeup.set()

    async def _deliver(self, url: str, document: dict[str, Any], limiter: trio.CapacityLimiter,
                       borrower: object) -> None:
        try:
            delay = 1.0
            for attempt in range(1, ATTEMPTS + 1):
                status = await self._post(url, document)
                if 200 <= status < 300:
                    self.sent += 1
                    return
                if attempt < ATTEMPTS:
                    await trio.sleep(delay)
                    delay *= 2
            self.failed += 1
            log.warning("hooks: %s notification to %s given up after %d tries", document["event"], url, ATTEMPTS)
        finally:
            limiter.release_on_behalf_of(borrower)

    async def _post(self, url: str, document: dict[str, Any]) -> int:
        """The status of a POST of ``document`` (0: no answer in time, or a transport error)."""
        client = self._client
        if client is None:
            return 0
        body = json.dumps(document).encode()
        try:
            with trio.move_on_after(self.config.timeout) as scope:
                async with client.stream("POST", url, content=body,
                                         headers={"Content-Type": "application/json"}) as response:
                    return response.status_code
            if scope.cancelled_caught:
                return 0
        except httpx.HTTPError as e:
            log.debug("hooks: POST %s failed: %s", url, e)
        except Exception:  # noqa: BLE001 - a hook's failure (a bad URL...) never reaches the caller
            log.exception("hooks: POST %s failed", url)
        return 0
