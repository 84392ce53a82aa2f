"""The cluster's stream directory on Redis (SPEC section 6, ``cluster`` keys).

Owns :class:`Directory`: what this node writes to Redis and the one GET a look-up makes. Each
stream that originates here (any source but a cascade pull) is ``pms:stream:NAME`` ->
``{"node", "rtsp", "since"}`` with a :data:`TTL` (15 s) expiry, refreshed every :data:`REFRESH`
(5 s) and deleted when the stream ends; the node itself is ``pms:node:ID`` ->
``{"node", "rtsp", "since", "streams"}`` with the same expiry, which ``GET /api/v1/cluster`` lists.
:class:`~pms_trio.cascade.pull.Pulls` asks :meth:`Directory.lookup` before its ``pull`` list.

Rules (where the spec is silent, the decision is written here):

- The client is redis-py (synchronous, well kept) behind ``trio.to_thread.run_sync`` with
  ``abandon_on_cancel=True`` and 1 s socket timeouts: a Redis that hangs never blocks signaling,
  and a cancelled call returns at once (its thread finishes on its own).
- Redis unreachable: one warning when it goes away and one line when it is back (not one per
  refresh); look-ups answer None, so the ``pull`` list still works. Every refresh rewrites all of
  this node's entries, so the directory repopulates itself within :data:`REFRESH` of Redis
  coming back (also after a Redis restart that lost its data).
- Publishes and ends are written at once: the refresh task also wakes on the registry's changes
  (at most every :data:`MIN_INTERVAL`).
- An entry is deleted only if it still names this node (another node may own the name by now).
  A look-up that finds this node's own entry (a stale one after a restart) answers None.
- At shutdown this node's entries are deleted (best effort, within 0.5 s).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote

import redis
import trio

log = logging.getLogger("pms_trio.cascade")

STREAM_KEY = "pms:stream:"
NODE_KEY = "pms:node:"
TTL = 15
REFRESH = 5.0
MIN_INTERVAL = 0.2
CALL_TIMEOUT = 1.0
PULLED = "cascade"  # the registry source of pulled streams: never written


class LocalStreams(Protocol):
    def snapshot(self) -> list[dict[str, Any]]: ...

    async def wait_changed(self, timeout: float = ...) -> None: ...


class Directory:
    def __init__(self, url: str, node_id: str, rtsp: str, registry: LocalStreams, *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.node_id = node_id
        self.rtsp = rtsp.rstrip("/")
        self._registry = registry
        self._wall = wall_clock
        self._client = redis.Redis.from_url(url, socket_timeout=CALL_TIMEOUT, socket_connect_timeout=CALL_TIMEOUT,
                                            decode_responses=True)
        self._since = wall_clock()
        self._written: dict[str, float] = {}  # stream -> since, as last written
        self._stream_since: dict[str, float] = {}
        self.up: bool | None = None  # None: not tried yet
        self.writes = 0
        self.failures = 0

    # -- the refresh task

    async def run(self, *, task_status: trio.TaskStatus[Directory] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        try:
            while True:
                await self.sync()
                await self._registry.wait_changed(REFRESH)
                await trio.sleep(MIN_INTERVAL)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                try:
                    await self._call(self._remove_all)
                except (redis.RedisError, OSError):
                    pass

    def _origin_streams(self) -> dict[str, float]:
        now = self._wall()
        live = {s["name"] for s in self._registry.snapshot() if s.get("live") and s.get("source") != PULLED}
        self._stream_since = {name: self._stream_since.get(name, now) for name in live}
        return dict(self._stream_since)

    async def sync(self) -> None:
        """Write this node's streams and node record; delete the entries of streams that ended."""
        streams = self._origin_streams()
        try:
            await self._call(self._write, streams, dict(self._written))
        except (redis.RedisError, OSError) as e:
            self.failures += 1
            self._mark(False, e)
            return
        self._written = streams
        self.writes += 1
        self._mark(True)

    def _write(self, streams: dict[str, float], written: dict[str, float]) -> None:
        """In a thread: one pipeline of SETs, then the DELs of ended streams still ours."""
        pipe = self._client.pipeline(transaction=False)
        for name, since in streams.items():
            pipe.set(STREAM_KEY + name, json.dumps({"node": self.node_id, "rtsp": self.rtsp, "since": since}),
                     ex=TTL)
        pipe.set(NODE_KEY + self.node_id, json.dumps({"node": self.node_id, "rtsp": self.rtsp, "since": self._since,
                                                       "streams": sorted(streams)}), ex=TTL)
        pipe.execute()
        for name in set(written) - set(streams):
            self._delete_if_ours(name)

    def _delete_if_ours(self, name: str) -> None:
        raw = self._client.get(STREAM_KEY + name)
        if raw is not None and _entry(raw).get("node") == self.node_id:
            self._client.delete(STREAM_KEY + name)

    def _remove_all(self) -> None:
        for name in list(self._written):
            self._delete_if_ours(name)
        self._client.delete(NODE_KEY + self.node_id)

    def _mark(self, up: bool, error: object = None) -> None:
        if up and self.up is False:
            log.info("cascade: the directory %s is reachable again; entries rewritten", self.url)
        elif not up and self.up is not False:
            log.warning("cascade: the directory %s is unreachable (%s); the pull list still works", self.url,
                        error)
        self.up = up

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(partial(fn, *args), abandon_on_cancel=True)

    # -- questions

    async def lookup(self, name: str) -> str | None:
        """The RTSP URL of stream ``name`` on the node the directory names, or None (not there,
        this node, or Redis unreachable)."""
        raw = None
        try:
            with trio.move_on_after(CALL_TIMEOUT + 0.5):
                raw = await self._call(self._client.get, STREAM_KEY + name)
        except (redis.RedisError, OSError) as e:
            self._mark(False, e)
            return None
        if raw is None:
            return None
        entry = _entry(raw)
        rtsp = entry.get("rtsp")
        if entry.get("node") == self.node_id or not isinstance(rtsp, str) or not rtsp.startswith("rtsp://"):
            return None
        return f"{rtsp.rstrip('/')}/{quote(name, safe='')}"

    async def nodes(self) -> list[dict[str, Any]]:
        """Every node record in the directory (for ``GET /api/v1/cluster``)."""
        def read() -> list[dict[str, Any]]:
            keys = sorted(self._client.scan_iter(match=NODE_KEY + "*", count=100))
            values = self._client.mget(keys) if keys else []
            return [e for e in (_entry(v) for v in values if v is not None) if e]

        try:
            with trio.fail_after(2 * CALL_TIMEOUT + 0.5):
                found: list[dict[str, Any]] = await self._call(read)
        except (redis.RedisError, OSError, trio.TooSlowError) as e:
            self._mark(False, e if not isinstance(e, trio.TooSlowError) else "no answer")
            raise DirectoryUnavailable(f"the directory {self.url} is unreachable") from None
        return found


class DirectoryUnavailable(Exception):
    pass


def _entry(raw: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
