"""Cascade pulls (SPEC section 6): streams brought in from other servers over RTSP, on demand.

Owns :class:`Pull` (one stream pulled from one origin: the RTSP client that set it up, the media
core's publisher transport that carries it, its keep-alive and its end) and :class:`Pulls`, which
is two things: the stream registry's resolver for names not live here (it finds an origin among
the ``pull`` peers, later the Redis directory) and the recording service's way to a remote
``record.targetHost`` (:meth:`Pulls.pull_from`). It is the registry's owner of each pull's
transport, so the core's ``transport_closed``, ``rtsp_message`` and ``rtsp_alive`` reach it. Python
never touches a packet: after PLAY the core owns the connection and feeds the producer.

Rules (where the spec is silent, the decision is written here):

- Looking for a name asks the directory first when there is one (``cluster.redis``: one GET, and
  a pull from the node it names), then every ``pull`` peer in parallel, with
  ``DESCRIBE rtsp://PEER/NAME`` carrying ``X-Pms-Cascade: 1``; each source gets at most
  :data:`SOURCE_TIMEOUT` (3 s) to connect and answer OPTIONS (so a peer that is down or hangs, or
  a directory entry naming a dead node, costs at most 3 s), then up to :data:`DESCRIBE_TIMEOUT`
  (10 s, a player's own wait) to answer DESCRIBE: a live peer may be bringing the stream in itself
  (a GB28181 camera's INVITE on the origin). The first 200 with a track we can carry wins and
  the other attempts are cancelled.
  A request that itself carries ``X-Pms-Cascade`` never starts a pull (``knows`` says no), so two
  servers that list each other cannot loop.
- With ``auth.jwtSecret`` set, each request carries ``?token=`` with a play token for the name that
  this node signs itself (60 s, fresh for every DESCRIBE): nodes of one cluster share the secret.
- The winner's connection goes on: SETUP of every track we carry (TCP interleaved), PLAY, and the
  core takes the socket. The stream is published here under the same name with source ``cascade``
  (claimed at DESCRIBE, live at PLAY), so every local consumer (WebRTC and RTSP players, recorders)
  shares the one pull. Parameter sets from the origin's SDP are handed to the registry for DESCRIBE.
- The pull keeps the origin's session alive (``GET_PARAMETER`` or ``OPTIONS`` every half session
  timeout, written by the core on the pulled connection) and ends: :data:`LINGER` (10 s) after its
  last local consumer left (also when the consumer that asked never joined); when the origin ends
  the stream or closes the connection (local players get ``stream.closed``); after
  :data:`MEDIA_TIMEOUT` (10 s) without a byte from the origin; when the origin refuses a keep-alive
  (its session is gone); at shutdown.
- A broken connection (the origin crashed or restarted, the network failed: EOF, reset, a stall)
  is not an end: the core keeps the stream and its players (``RtspDisconnected``) while the pull
  connects again with backoff (:data:`RETRY_FIRST` 1 s doubling to :data:`RETRY_MAX` 30 s) to the
  same origin, and hands the new connection over (``rtsp_resume``); players go on at the next
  keyframe with contiguous sequence numbers and timestamps, without a new ``stream.play``. An
  origin that ends the stream says so with an RTCP BYE (ours does, as gst-rtsp-server does): the
  pull ends at once and local players get ``stream.closed``. Retrying stops when the last
  consumer leaves, when the origin's tracks changed (another codec: players would need a new
  negotiation), or after :data:`RETRY_GIVE_UP` (60 s) of failed attempts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import trio

from ..auth import sign
from ..core_errors import core_error_status
from ..rtsp import protocol as p
from ..rtsp.headers import CASCADE_HEADER
from ..rtsp.tracks import core_track
from ..streams import StreamRegistry
from .client import Description, RtspClient, RtspClientError
from .directory import Directory

if TYPE_CHECKING:
    from .. import _core

log = logging.getLogger("pms_trio.cascade")

SOURCE_TIMEOUT = 3.0
DESCRIBE_TIMEOUT = 10.0
SETUP_TIMEOUT = 5.0
LINGER = 10.0
MEDIA_TIMEOUT = 10.0
RETRY_FIRST = 1.0
RETRY_MAX = 30.0
RETRY_GIVE_UP = 60.0
TOKEN_TTL = 60.0  # a pull's own play token: used once, at DESCRIBE
SOURCE = "cascade"


class PullError(Exception):
    """A pull that could not start: ``code`` the reply a caller gives (404, 409, 415, 502...)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(eq=False, slots=True)
class Pull:
    name: str
    urls: tuple[str, ...]  # where it may come from (the first to answer wins)
    use_directory: bool = False  # ask the directory before ``urls``
    url: str = ""  # where it comes from, once found
    transport_id: int | None = None
    live: trio.Event = field(default_factory=trio.Event)
    ended: trio.Event = field(default_factory=trio.Event)
    error: PullError | None = None
    reason: str = ""
    linger: trio.CancelScope | None = None
    last_alive: float = 0.0
    started_at: float = 0.0
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    replies: p.Connection = field(default_factory=lambda: p.Connection(p.CLIENT))
    client: RtspClient | None = None  # after PLAY: builds the keep-alives and TEARDOWN the core writes
    tracks: list[tuple[str, str, int, int]] = field(default_factory=list)  # (kind, codec, pt, rate) pulled
    broken: str = ""  # why the connection broke (RtspDisconnected), until it is replaced
    wake: trio.Event = field(default_factory=trio.Event)  # set on a disconnection
    retries: int = 0

    def end(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
        self.scope.cancel()


@dataclass(slots=True)
class Counters:
    started: int = 0
    failed: int = 0
    ended: int = 0
    retries: int = 0


class Pulls:
    def __init__(self, peers: Sequence[tuple[str, int]], core: _core.Core, registry: StreamRegistry,
                 directory: Directory | None = None, jwt_secret: str = "") -> None:
        self.peers = tuple(peers)
        self.jwt_secret = jwt_secret
        self.directory = directory
        self._core = core
        self._registry = registry
        self._nursery: trio.Nursery | None = None
        self.by_name: dict[str, Pull] = {}
        self.by_transport: dict[int, Pull] = {}
        self.counters = Counters()

    async def run(self, *, task_status: trio.TaskStatus[Pulls] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise the pulls until cancelled (each pull is a task of this nursery)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started(self)
            await trio.sleep_forever()

    # -- the registry's resolver

    def knows(self, name: str, from_peer: bool) -> bool:
        return not from_peer and bool(name) and (bool(self.peers) or self.directory is not None)

    async def resolve(self, name: str, timeout: float) -> bool:
        try:
            await self._ensure(name, tuple(self._peer_url(ip, port, name) for ip, port in self.peers), timeout,
                               use_directory=True)
        except PullError as e:
            log.info("cascade: %s: %s", name, e.message)
            return False
        return True

    def players_changed(self, name: str, players: int) -> None:
        pull = self.by_name.get(name)
        if pull is None or pull.ended.is_set():
            return
        if players > 0:
            if pull.linger is not None:
                pull.linger.cancel()
                pull.linger = None
        elif pull.linger is None and pull.live.is_set():
            pull.linger = trio.CancelScope()
            self._spawn(self._linger, pull, pull.linger)

    def keyframe_wanted(self, name: str) -> None:
        """RTSP has no way to ask an origin for a keyframe; the origin's own players' PLIs and its
        GOP bring one."""

    # -- the recording service's remote target

    async def pull_from(self, name: str, url: str, timeout: float) -> None:
        """Make ``name`` live here, pulled from ``url`` (``rtsp://host:port/NAME``); returns once
        it is live (the caller then joins it as a consumer within :data:`LINGER` s). A stream
        of that name live here from another source is 409."""
        pull = self.by_name.get(name)
        if pull is None and self._registry.is_claimed(name):
            raise PullError(409, f"stream {name} is live here from another source; it cannot also be pulled "
                                 f"from {url}")
        if pull is not None and url not in pull.urls:
            raise PullError(409, f"stream {name} is already pulled from {pull.url or pull.urls[0]}")
        await self._ensure(name, (url,), timeout)

    def _signed(self, url: str, name: str) -> str:
        """``url`` with a fresh play token for ``name`` (SPEC 10: nodes sharing ``auth.jwtSecret``
        sign their own pulls), or as it is without a secret."""
        if not self.jwt_secret:
            return url
        parts = urlsplit(_without_token(url))
        token = sign(self.jwt_secret, name, play=True, ttl=TOKEN_TTL)
        query = "&".join(q for q in (parts.query, urlencode({"token": token})) if q)
        return urlunsplit(parts._replace(query=query))

    @staticmethod
    def _peer_url(ip: str, port: int, name: str) -> str:
        host = f"[{ip}]" if ":" in ip else ip
        return f"rtsp://{host}:{port}/{quote(name, safe='')}"

    # -- starting

    async def _ensure(self, name: str, urls: tuple[str, ...], timeout: float, *, use_directory: bool = False) -> Pull:
        """Join the pull of ``name`` or start one; wait until it is live (or failed/ended)."""
        pull = self.by_name.get(name)
        if pull is None:
            if self._registry.is_claimed(name):
                raise PullError(409, f"stream {name} is being published here")
            pull = Pull(name, urls, use_directory=use_directory and self.directory is not None,
                        started_at=trio.current_time())
            self.by_name[name] = pull
            self.counters.started += 1
            self._spawn(self._run, pull)
        with trio.move_on_after(timeout):
            while not pull.live.is_set() and not pull.ended.is_set():
                await _first(pull.live, pull.ended)
        if pull.live.is_set() and not pull.ended.is_set():
            return pull
        if pull.error is not None:
            raise pull.error
        if pull.ended.is_set():
            raise PullError(502, f"the pull of {name} from {pull.url or ', '.join(urls)} ended ({pull.reason})")
        raise PullError(504, f"the pull of {name} did not start in {timeout:g} s")

    def _spawn(self, fn: Any, *args: Any) -> None:
        if self._nursery is None:
            raise PullError(503, "the cascade is not running")
        self._nursery.start_soon(fn, *args)

    async def _run(self, pull: Pull) -> None:
        client: RtspClient | None = None
        try:
            with pull.scope:
                found = await self._first_source(pull)
                if found is None:
                    return
                client, description = found
                await self._start(pull, client, description)
                client = None  # the core owns the connection now
                while True:
                    await self._follow(pull)
                    await self._reconnect(pull)
        except PullError as e:
            pull.error = e
            pull.reason = pull.reason or e.message
            self.counters.failed += 1
            log.info("cascade: %s: %s", pull.name, e.message)
        except Exception as e:  # a bug in one pull must not end the others (nor the server)
            log.exception("cascade: the pull of %s failed", pull.name)
            pull.error = PullError(500, f"the pull of {pull.name} failed: {e!r}")
            pull.reason = pull.reason or "internal-error"
            self.counters.failed += 1
        finally:
            if client is not None:
                await client.aclose()
            self._finish(pull)

    async def _first_source(self, pull: Pull) -> tuple[RtspClient, Description] | None:
        """Ask every source at once; the first to describe the stream wins."""
        winner: tuple[RtspClient, Description] | None = None
        refusals: list[tuple[int, str]] = []

        async def attempt(url: str, cancel: trio.CancelScope) -> None:
            nonlocal winner
            client = RtspClient(self._signed(url, pull.name), extra_headers=((CASCADE_HEADER, "1"),),
                                timeout=SOURCE_TIMEOUT)
            try:
                with trio.fail_after(SOURCE_TIMEOUT):
                    await client.connect()
                    await client.options()
                client.timeout = DESCRIBE_TIMEOUT
                description = await client.describe()
            except trio.TooSlowError:
                refusals.append((504, f"{client.peer}: no answer in {SOURCE_TIMEOUT:g} s"))
            except RtspClientError as e:
                refusals.append((e.status, e.message))
            else:
                if winner is None:
                    winner = (client, description)
                    cancel.cancel()
                    return
            finally:
                if winner is None or winner[0] is not client:
                    await client.aclose()

        if pull.use_directory and self.directory is not None:
            url = await self.directory.lookup(pull.name)
            if url is not None:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(attempt, url, nursery.cancel_scope)
        if winner is None:
            async with trio.open_nursery() as nursery:
                for url in pull.urls:
                    nursery.start_soon(attempt, url, nursery.cancel_scope)
        if winner is None:
            pull.error = _refusal(pull.name, refusals)
            pull.reason = pull.error.message
            self.counters.failed += 1
            log.info("cascade: %s: %s", pull.name, pull.error.message)
            return None
        client, description = winner
        pull.url = _without_token(client.target.url)
        return winner

    async def _start(self, pull: Pull, client: RtspClient, description: Description) -> None:
        """SETUP and PLAY on the winner's connection; the core takes it."""
        name, core = pull.name, self._core
        if self._registry.is_claimed(name):
            raise PullError(409, f"stream {name} was published here meanwhile")
        try:
            tid = core.create_rtsp_publisher(name, [core_track(t) for t in description.tracks], resumable=True)
        except Exception as e:  # CoreError: 409 (published meanwhile), 415 (no track we forward)
            code, message = core_error_status(e, "http", f"cannot pull {name}")
            raise PullError(code, message) from None
        pull.transport_id = tid
        self.by_transport[tid] = pull
        self._registry.add_publisher(name, tid, self, source=SOURCE, pending=True, origin=pull.url)
        for t in description.tracks:
            keys = ("vps", "sps", "pps") if t["codec"] == "H265" else ("sps", "pps")
            nals = [t.get(k) for k in keys]
            if t["codec"] in ("H264", "H265") and all(nals):
                self._registry.on_parameter_sets(name, t["codec"], [bytes(n) for n in nals if n])
        fd, pending, _ = await self._setup_and_play(client, description, tid)
        try:
            core.rtsp_start(tid, fd=fd, pending=pending)
        except Exception as e:  # the transport ended meanwhile; the core closed the fd
            raise PullError(502, f"the core could not take the pulled connection: {e}") from None
        pull.tracks = _signature(description)
        pull.client = client
        pull.last_alive = trio.current_time()
        self._registry.mark_live(name)
        pull.live.set()
        skipped = f"; left out: {'; '.join(description.skipped)}" if description.skipped else ""
        log.info("cascade: %s pulled from %s (%s)%s", name, pull.url,
                 ", ".join(t["codec"] for t in description.tracks), skipped)
        live = self._registry.get(name)
        self.players_changed(name, len(live.players) if live is not None else 0)

    async def _setup_and_play(self, client: RtspClient, description: Description,
                              tid: int | None) -> tuple[int, bytes, list[tuple[int, int]]]:
        """SETUP every track (telling the core each track's channels when ``tid`` is a new
        transport) and PLAY; returns the detached socket, bytes read past PLAY's reply, and the
        channels."""
        client.timeout = SETUP_TIMEOUT
        channels: list[tuple[int, int]] = []
        try:
            for index, track in enumerate(description.tracks):
                pair = await client.setup(track)
                channels.append(pair)
                if tid is not None:
                    self._core.rtsp_add_track(tid, index, channels=pair)
            await client.play(description.play_url)
        except RtspClientError as e:
            raise PullError(502, e.message) from None
        fd, pending = client.detach()
        return fd, pending, channels

    async def _follow(self, pull: Pull) -> None:
        """Keep the origin's session alive and watch for silence; returns when the connection
        broke (the pull itself ends by cancellation)."""
        client = pull.client
        assert client is not None
        next_keepalive = trio.current_time() + client.keepalive_interval
        while not pull.broken:
            now = trio.current_time()
            if now - pull.last_alive > MEDIA_TIMEOUT:
                pull.end("media-timeout")
                log.info("cascade: %s: nothing from %s for %g s", pull.name, pull.url, MEDIA_TIMEOUT)
                return
            if now >= next_keepalive and pull.transport_id is not None:
                next_keepalive = now + client.keepalive_interval
                try:
                    self._core.rtsp_send(pull.transport_id, client.keepalive())
                except Exception:  # noqa: BLE001 - the transport is closing; its event ends the pull
                    pass
            with trio.move_on_after(min(1.0, max(0.0, next_keepalive - now))):
                await pull.wake.wait()

    async def _reconnect(self, pull: Pull) -> None:
        """The connection broke: connect again with backoff while consumers are left."""
        log.info("cascade: %s: the connection to %s broke (%s); reconnecting", pull.name, pull.url, pull.broken)
        delay, started = RETRY_FIRST, trio.current_time()
        while True:
            live = self._registry.get(pull.name)
            if live is None or not live.players:
                pull.end("no consumer")
                await trio.sleep_forever()  # cancelled by end()
            await trio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)
            client = RtspClient(self._signed(pull.url, pull.name), extra_headers=((CASCADE_HEADER, "1"),),
                                timeout=SOURCE_TIMEOUT)
            try:
                with trio.fail_after(SOURCE_TIMEOUT):
                    await client.connect()
                    await client.options()
                    description = await client.describe()
                if _signature(description) != pull.tracks:
                    await client.aclose()
                    raise PullError(502, f"the origin's tracks of {pull.name} changed; players must play again")
                fd, pending, channels = await self._setup_and_play(client, description, None)
            except (RtspClientError, PullError, trio.TooSlowError) as e:
                await client.aclose()
                if isinstance(e, PullError) and "changed" in e.message:
                    raise
                message = e.message if isinstance(e, (RtspClientError, PullError)) else "no answer"
                pull.retries += 1
                self.counters.retries += 1
                if trio.current_time() - started >= RETRY_GIVE_UP:
                    raise PullError(502, f"the origin of {pull.name} has been unreachable for "
                                         f"{RETRY_GIVE_UP:g} s ({message})") from None
                log.info("cascade: %s: retry %d failed (%s); next in %g s", pull.name, pull.retries, message, delay)
                continue
            if pull.transport_id is None:
                os.close(fd)
                raise PullError(502, f"the pull of {pull.name} ended while reconnecting")
            try:
                self._core.rtsp_resume(pull.transport_id, fd=fd, channels=channels, pending=pending)
            except Exception as e:  # noqa: BLE001 - the transport ended meanwhile (the core closed the fd)
                raise PullError(502, f"the core could not take the new connection: {e}") from None
            pull.retries += 1
            self.counters.retries += 1
            pull.client, pull.broken, pull.wake = client, "", trio.Event()
            pull.last_alive = trio.current_time()
            log.info("cascade: %s: pulled again from %s", pull.name, pull.url)
            return

    async def _linger(self, pull: Pull, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(LINGER)
            if self.by_name.get(pull.name) is pull and pull.linger is scope:
                log.info("cascade: %s had no consumer for %g s; the pull ends", pull.name, LINGER)
                pull.end("no consumer")

    def _finish(self, pull: Pull) -> None:
        if self.by_name.get(pull.name) is pull:
            del self.by_name[pull.name]
        if pull.linger is not None:
            pull.linger.cancel()
        tid, pull.transport_id = pull.transport_id, None
        if tid is not None:
            self.by_transport.pop(tid, None)
            client = pull.client
            if client is not None and pull.reason in ("no consumer", "shutdown"):
                try:
                    self._core.rtsp_send(tid, client.teardown())
                except Exception:  # noqa: BLE001 - best effort
                    pass
            self._registry.remove_transport(tid, pull.reason or "closed")
            try:
                self._core.close_transport(tid)
            except Exception:  # noqa: BLE001
                log.exception("cascade: closing transport %d failed", tid)
        if pull.live.is_set():
            self.counters.ended += 1
            log.info("cascade: pull of %s from %s ended (%s)", pull.name, pull.url, pull.reason or "closed")
        pull.ended.set()

    # -- the transport's owner (the event pump calls these; never block)

    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None:
        pull = self.by_transport.pop(transport_id, None)
        if pull is not None:
            pull.transport_id = None  # the registry forgot it; the core closed it
            pull.end("origin closed" if reason == "eof" else reason)

    def rtsp_message(self, transport_id: int, data: bytes) -> None:
        """Replies to our keep-alives (or a request from the origin, which we do not serve)."""
        pull = self.by_transport.get(transport_id)
        if pull is None:
            return
        pull.last_alive = trio.current_time()
        try:
            pull.replies.receive_data(data)
            while True:
                event = pull.replies.next_event()
                if event is p.NEED_DATA:
                    return
                if isinstance(event, p.Response) and event.status >= 400:
                    log.info("cascade: %s: %s refused a keep-alive (%d %s)", pull.name, pull.url, event.status,
                             event.reason)
                    pull.end("session lost")
                    return
        except p.RemoteProtocolError as e:
            log.info("cascade: %s: %s sent something that is not an RTSP reply (%s)", pull.name, pull.url,
                     e.message)
            pull.end("protocol-error")

    def rtsp_alive(self, transport_id: int) -> None:
        pull = self.by_transport.get(transport_id)
        if pull is not None:
            pull.last_alive = trio.current_time()

    def rtsp_disconnected(self, transport_id: int, reason: str) -> None:
        pull = self.by_transport.get(transport_id)
        if pull is not None:
            pull.broken = reason
            pull.wake.set()

    # -- listings

    def snapshot(self) -> list[dict[str, Any]]:
        now = trio.current_time()
        return [{"stream": pull.name, "from": pull.url or None, "state": "live" if pull.live.is_set() else "starting",
                 "age": round(now - pull.started_at, 3), "transport_id": pull.transport_id, "retries": pull.retries,
                 "broken": pull.broken or None}
                for pull in sorted(self.by_name.values(), key=lambda p_: p_.name)]


def _without_token(url: str) -> str:
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"])
    return urlunsplit(parts._replace(query=query))


def _signature(description: Description) -> list[tuple[str, str, int, int]]:
    return [(t["kind"], t["codec"], t["payload_type"], t.get("clock_rate") or 0) for t in description.tracks]


def _refusal(name: str, refusals: list[tuple[int, str]]) -> PullError:
    """The error for a name no source had: 404 when every source answered and none has it."""
    if not refusals:
        return PullError(404, f"stream {name} is not live here, not in the directory, and no pull peer is listed")
    statuses = {status for status, _ in refusals}
    code = 404 if statuses <= {404} else (415 if statuses <= {404, 415} and 415 in statuses else 502)
    return PullError(code, f"no peer has stream {name}: " + "; ".join(m for _, m in refusals))


async def _first(*events: trio.Event) -> None:
    """Return when any of ``events`` is set."""
    async with trio.open_nursery() as nursery:
        for event in events:
            async def wait(e: trio.Event = event) -> None:
                await e.wait()
                nursery.cancel_scope.cancel()
            nursery.start_soon(wait)

