"""The HTTP API's routes (SPEC section 8), without I/O: a request line in, a :class:`Response` out.

Owns the JSON documents of ``/api/v1/server``, ``/api/v1/streams``, ``/api/v1/sessions`` and the
Prometheus text of ``/metrics``. Errors are JSON ``{"code": N, "data": {"msg": ...}}`` like the
srs-sip API that will share this port. Reads state only; changes nothing.

The ``/srs-sip/v1/...`` routes (section 7) are in ``gb_api`` (async: they may wait for a device);
the recording routes (section 5: ``/api/v1/record/start|stop``, ``/api/v1/records``,
``/records/NAME``) in ``record_api``; the web console's files (``/``, ``/static/NAME``) in ``static``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from .. import __version__
from ..streams import StreamRegistry
from . import gb_api, metrics, record_api, static
from .responses import FileResponse, Response, error_response, json_response
from .whip import owns as whip_owns

if TYPE_CHECKING:
    from .. import _core

__all__ = ["Api", "Response", "error_response", "json_response"]

CORE_GAUGES = ("transports", "producers", "consumers", "publishers", "gb_ingests", "gb_tcp_connections",
               "recordings", "transcoders")
API_PREFIXES = ("/api/v1/", "/srs-sip/v1/")

log = logging.getLogger("pms_trio.http")


@dataclass(slots=True)
class Api:
    core: _core.Core
    registry: StreamRegistry
    sessions: dict[str, Any]  # session id -> signaling Session
    rtsp_sessions: dict[str, Any] = field(default_factory=dict)  # session id -> rtsp RtspConnection
    ports: dict[str, Any] = field(default_factory=dict)  # filled by app as services bind
    started: float = field(default_factory=time.monotonic)
    rtsp_host: str = "127.0.0.1"  # the host in the play URLs /srs-sip/v1/invite returns

    gb: gb_api.GbApi | None = None  # the GB28181 service when sip.enable (the /srs-sip/v1 routes)
    recorder: Any = None  # the recording service (record_api.Recordings; also its counters)
    cascade: Any = None  # the cascade's pulls (cascade.pull.Pulls: snapshot() and counters)
    whip: Any = None  # WHIP/WHEP sessions (http.whip.WhipSessions)
    auth: Any = None  # auth.Auth: auth.apiToken guards /api/v1/* and /srs-sip/v1/* (SPEC 10)
    hooks: Any = None  # hooks.Hooks (SPEC 10)
    signaling: dict[str, Any] = field(default_factory=dict)  # {"path", "ssl"} of the WebSocket, for the page

    async def handle_async(self, method: str, target: str, body: bytes = b"",
                           headers: dict[str, str] | None = None, peer: str = "") -> Response | FileResponse:
        """Every route: the srs-sip ones may wait for a device (INVITE, PTZ), a record.stop for
        the last file. ``headers``: the request's, names in lower case; ``peer`` its source address
        (for the API token's failure throttle)."""
        path = urlsplit(target).path.rstrip("/") or "/"
        if self.auth is not None and (path.startswith(API_PREFIXES) or path == gb_api.PREFIX) and method != "OPTIONS":
            ok, delay = self.auth.check_api((headers or {}).get("authorization"), peer, trio.current_time())
            if delay:
                await trio.sleep(delay)
            if not ok:
                log.info("http: %s %s from %s: no valid API token", method, path, peer or "?")
                refused = error_response(401, "this API needs Authorization: Bearer <auth.apiToken>")
                return Response(refused.status, refused.body, refused.content_type,
                                (("WWW-Authenticate", 'Bearer realm="pms-trio"'),))
        if path.startswith(gb_api.PREFIX + "/") or path in (gb_api.PREFIX, gb_api.ROOT):
            rtsp_base = f"rtsp://{self.rtsp_host}:{self.ports.get('rtsp', 0)}"
            return await gb_api.handle(self.gb, method, path, body, rtsp_base, self.recorder,
                                       urlsplit(target).query)
        if whip_owns(path) and self.whip is not None:
            return await self.whip.handle(method, path, body, headers or {}, peer)
        if static.owns(path):
            return static.handle(method, path)
        if record_api.owns(path):
            return await record_api.handle(self.recorder, method, path, body, headers or {})
        if path.startswith("/api/v1/sessions/"):
            if method != "DELETE":
                return error_response(405, "a session answers DELETE (kick it)")
            return self._kick(path.removeprefix("/api/v1/sessions/"))
        if path == "/api/v1/cluster":
            if method not in ("GET", "HEAD"):
                return error_response(405, f"{path} answers GET only")
            return await self._cluster()
        return self.handle(method, target)

    async def _cluster(self) -> Response:
        """This node, and every node of the Redis directory with its streams (``cluster.redis``);
        503 when the directory does not answer."""
        directory = self.cascade.directory if self.cascade is not None else None
        if directory is None:
            local = [s["name"] for s in self.registry.snapshot() if s["live"] and s["source"] != "cascade"]
            return json_response(200, {"redis": None, "node": None, "nodes": [{"node": None, "streams": local}]})
        try:
            nodes = await directory.nodes()
        except Exception as e:  # noqa: BLE001 - DirectoryUnavailable, or a client error
            return error_response(503, str(e))
        return json_response(200, {"redis": directory.url, "node": directory.node_id, "up": directory.up,
                                   "nodes": nodes})

    def handle(self, method: str, target: str) -> Response:
        path = urlsplit(target).path.rstrip("/") or "/"
        routes = {
            "/api/v1/server": self._server,
            "/api/v1/streams": self._streams,
            "/api/v1/sessions": self._sessions,
            "/metrics": self._metrics,
        }
        route = routes.get(path)
        if route is None:
            return error_response(404, f"no such resource: {path}; see /api/v1/server, /api/v1/streams, "
                                       f"/api/v1/sessions, /api/v1/records, /api/v1/cluster, /metrics")
        if method not in ("GET", "HEAD"):
            return error_response(405, f"{path} answers GET only")
        return route()

    def _core_stats(self) -> dict[str, int]:
        try:
            return {str(k): int(v) for k, v in self.core.stats().items()}
        except Exception:  # noqa: BLE001 - the core may be shutting down
            return {}

    def uptime(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def _server(self) -> Response:
        return json_response(200, {"version": __version__, "uptime": self.uptime(), "ports": self.ports,
                                   "websocket": self.signaling,
                                   "core": self._core_stats()})

    def _streams(self) -> Response:
        recording = self.recorder.recording_streams() if self.recorder is not None else set()
        pulls = {p["stream"]: p for p in self.cascade.snapshot()} if self.cascade is not None else {}
        streams = [{**s, "recording": s["name"] in recording,
                    **({"pull": pulls[s["name"]]} if s["name"] in pulls else {})}
                   for s in self.registry.snapshot()]
        return json_response(200, {"streams": streams})

    def _sessions(self) -> Response:
        """Signaling sessions (``kind`` "webrtc") then RTSP connections (``kind`` "rtsp": stream,
        role play/publish, transport tcp/udp, peer, RTSP state), both with ``age`` and ``idle``."""
        now = _now()
        webrtc = [{"kind": "webrtc", **s.describe(now)} for s in list(self.sessions.values())]
        rtsp = [s.describe(now) for s in list(self.rtsp_sessions.values())]
        whip_sessions = self.whip.describe(now) if self.whip is not None else []
        return json_response(200, {"sessions": webrtc + rtsp + whip_sessions})

    def _kick(self, session_id: str) -> Response:
        """End a signaling, RTSP or WHIP/WHEP session by its id (SPEC 10), with what it publishes and plays."""
        signaling = self.sessions.get(session_id)
        if signaling is not None and getattr(signaling, "kick", None) is not None:
            signaling.kick()
        elif session_id in self.rtsp_sessions:
            self.rtsp_sessions[session_id].kick()
        elif self.whip is None or not self.whip.kick(session_id):
            return error_response(404, f"no session {session_id}")
        log.info("http: session %s kicked", session_id)
        return json_response(200, {"kicked": session_id})

    def _metrics(self) -> Response:
        streams, players = self.registry.counts()
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, value: float) -> None:
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"))

        metric("pms_uptime_seconds", "gauge", "Seconds since the server started.", self.uptime())
        metric("pms_streams", "gauge", "Live streams.", streams)
        metric("pms_sessions", "gauge", "Signaling sessions (WebSocket connections).", len(self.sessions))
        metric("pms_rtsp_sessions", "gauge", "RTSP connections (each with its session).", len(self.rtsp_sessions))
        metric("pms_players", "gauge", "Players of live streams.", players)
        if self.gb is not None:
            online = self.gb.online_devices()
            metric("pms_gb28181_devices_online", "gauge", "GB28181 devices online.", online)
        if self.recorder is not None:
            c = self.recorder.counters
            metric("pms_recordings", "gauge", "Recordings running.", len(self.recorder.recording_streams()))
            metric("pms_recordings_total", "counter", "Recordings started.", c.started)
            metric("pms_record_files_total", "counter", "Recording files finished complete.", c.files_done)
            metric("pms_record_files_failed_total", "counter", "Recording files given up on (write errors).",
                   c.files_failed)
            metric("pms_record_bytes_total", "counter", "Bytes of finished recording files.", c.bytes)
            metric("pms_record_hooks_failed_total", "counter", "execRecordDone runs that failed or timed out.",
                   c.hooks_failed)
        if self.cascade is not None:
            c = self.cascade.counters
            metric("pms_pulls", "gauge", "Streams pulled from other servers now.", len(self.cascade.by_name))
            metric("pms_pulls_total", "counter", "Pulls started.", c.started)
            metric("pms_pulls_failed_total", "counter", "Pulls that found no source or failed to start.", c.failed)
            metric("pms_pull_retries_total", "counter", "Reconnections of broken pulls (attempts).", c.retries)
        core_stats = self._core_stats()
        # SPEC 11: the audio transcoders' CPU time (thread CPU clock) in seconds.
        metric("pms_transcode_cpu_seconds_total", "counter", "CPU time of the audio transcoders (AAC/G.711 to Opus).",
               core_stats.get("transcode_cpu_us", 0) / 1e6)
        for key, value in sorted(core_stats.items()):
            name = "pms_core_" + "".join(c if c.isalnum() else "_" for c in key)
            if key in CORE_GAUGES:
                metric(name, "gauge", f"Media core: {key} now.", value)
            else:
                metric(name + "_total", "counter", f"Media core: {key.replace('_', ' ')} since start.", value)
        lines += self._stream_metrics()
        lines += self._worker_metrics()
        return Response(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _worker_metrics(self) -> list[str]:
        """Per media worker (label ``worker``): its transports, GB28181 ingests, packets sent and CPU time."""
        try:
            workers = self.core.worker_stats()
        except Exception:  # noqa: BLE001 - the core may be shutting down
            return []
        return metrics.worker_lines(workers)

    def _stream_metrics(self) -> list[str]:
        """Section 12: per-stream series (bounded label set) and the join histogram."""
        players = self.registry.players_by_stream()
        try:
            core_streams = self.core.stream_stats()
            join = self.core.join_histogram()
        except Exception:  # noqa: BLE001 - the core may be shutting down
            core_streams, join = {}, {}
        return metrics.stream_lines(core_streams, players) + metrics.join_lines(join)


def _now() -> float:
    try:
        return trio.current_time()  # the clock the signaling sessions use
    except RuntimeError:  # outside trio.run (tests)
        return time.monotonic()
