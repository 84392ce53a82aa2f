"""The application: builds the media core and supervises every service in one root nursery.

Owns the start order, the startup report (``ready`` log line and ``--ready-file``), the graceful stop
and the mapping of startup failures to :class:`StartupError` (the CLI turns it into exit status 1).

Start order: the core (binds the WebRTC UDP ports) -> the event pump -> each enabled service, one
``await nursery.start(serve...)`` at a time, each reporting its bound address -> ``ready``.
The recording service (its ``execRecordDone`` jobs and retention sweep) runs beside them, and its
command port is one of the services. Cascade pulls are not written yet; their place is marked in
:func:`_start_services`.

Stop: SIGINT or SIGTERM cancels the root nursery. Every signaling session's ``finally`` closes its
transports (bounded: a WebSocket close handshake gets 1 s), then ``core.shutdown()`` runs: the
workers close every peer, so each recorder finishes its file; the last events are dispatched and
each finished file's ``execRecordDone`` runs in what is left of the budget. A watchdog ends the
process if all this takes more than 5 s.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from . import _core
from .auth import Auth
from .hooks import Hooks
from .cascade.directory import Directory
from .cascade.pull import Pulls
from .config import Config
from .events import drain as drain_events
from .events import pump_events
from .gb28181 import service as gb_service
from .http import server as http_server
from .http.api import Api
from .http.whip import WhipSessions
from .record import cmdport as record_cmdport
from .record.service import RecordingService
from .rtsp import server as rtsp_server
from .signaling import server as signaling_server
from .streams import StreamRegistry

log = logging.getLogger("pms_trio")

STOP_GRACE = 5.0


class StartupError(Exception):
    """The server cannot start (a port in use, a certificate that does not load...)."""


def _client_host(listen_ip: str) -> str:
    if listen_ip in ("0.0.0.0", ""):
        return "127.0.0.1"
    if listen_ip == "::":
        return "[::1]"
    return f"[{listen_ip}]" if ":" in listen_ip else listen_ip


def make_core(config: Config) -> _core.Core:
    w = config.webrtc
    try:
        core = _core.Core(workers=config.master.num_of_work_process, listen_ip=w.listen_ip,
                          announced_ips=list(w.announced_ip), min_port=w.min_port, max_port=w.max_port,
                          cert_file=w.dtls_certificate_file, key_file=w.dtls_private_key_file,
                          log_level=config.log.worker_level, log_tags=list(config.log.worker_tags),
                          rtsp_merge_write_ms=config.rtsp.merge_write_ms)
    except OSError as e:
        raise StartupError(f"webrtc: cannot bind a UDP port on {w.listen_ip} in {w.min_port}-{w.max_port} "
                           f"(webrtc.minPort/maxPort): {e.strerror or e}") from None
    except ValueError as e:
        raise StartupError(f"webrtc: cannot use the DTLS certificate/key (webrtc.dtlsCertificateFile/"
                           f"dtlsPrivateKeyFile): {e}") from None
    core.set_transcode_audio(w.transcode_audio, w.transcode_linger_ms, w.transcode_complexity)
    core.set_udp_gso(w.udp_gso)
    return core


def log_config_notes(config: Config) -> None:
    """Say which settings have no effect, and which sections are not served yet."""
    m = config.master
    for key, value, default in (("execPath", m.exec_path, "./"), ("workerName", m.worker_name, "mediasoup-worker"),
                                ("unixSocketPath", m.unix_socket_path, "")):
        if value != default:
            log.info("master.%s = %r has no effect (the media core runs in-process); accepted for "
                     "compatibility with the seeds' config", key, value)


async def run(config: Config, *, ready_file: str | None = None) -> None:
    """Run until SIGINT/SIGTERM. Raises :class:`StartupError` when a service cannot start."""
    log_config_notes(config)
    core = make_core(config)
    watchdog: threading.Timer | None = None
    try:
        watchdog_box: list[threading.Timer] = []
        await _supervise(config, core, ready_file, watchdog_box)
        watchdog = watchdog_box[0] if watchdog_box else None
    finally:
        try:
            core.shutdown()
        except Exception:
            log.exception("core shutdown failed")
        if ready_file:
            try:
                os.unlink(ready_file)
            except OSError:
                pass
        if watchdog is not None:
            watchdog.cancel()
    log.info("stopped")


async def _supervise(config: Config, core: _core.Core, ready_file: str | None,
                     watchdog_box: list[threading.Timer]) -> None:
    registry = StreamRegistry(core)
    sessions: dict[str, Any] = {}
    rtsp_sessions: dict[str, Any] = {}
    api = Api(core, registry, sessions, rtsp_sessions)
    rtsp_ports: set[int] = set()
    auth = Auth(config.auth.jwt_secret, config.auth.api_token)
    hooks = Hooks(config.hooks)
    registry.watch(partial(_notify_stream, hooks))
    pulls = Pulls([(peer.ip, peer.port) for peer in config.pull], core, registry, jwt_secret=auth.jwt_secret)
    rec = config.record
    recorder = RecordingService(folder=rec.record_path, exec_record_done=rec.exec_record_done,
                                segment_seconds=rec.segment_seconds, delete_after_hours=rec.delete_after_hours,
                                target_host=rec.target_host, target_port=rec.target_port,
                                local_rtsp_ports=lambda: rtsp_ports, core=core, registry=registry, remote=pulls,
                                done_time_limit=rec.exec_record_done_timeout)
    api.recorder = recorder
    api.cascade = pulls
    api.whip = WhipSessions(core, registry, auth, hooks)
    api.auth = auth
    api.hooks = hooks
    recorder.on_file_done = partial(hooks.notify, "record_done")
    startup_error: StartupError | None = None
    try:
        async with trio.open_nursery() as root:
            root.start_soon(_watch_signals, root.cancel_scope, watchdog_box)
            await root.start(partial(pump_events, core, registry, recordings=recorder))
            await root.start(recorder.run)
            await root.start(pulls.run)
            await root.start(hooks.run)
            try:
                bound = await _start_services(root, config, core, registry, sessions, rtsp_sessions, api)
            except StartupError as e:
                startup_error = e
                root.cancel_scope.cancel()
            else:
                rtsp_ports.add(bound["rtsp"][1])
                _report_ready(config, core, bound, ready_file)
    finally:
        _finish_recordings(core, registry, recorder)
    if startup_error is not None:
        raise startup_error


def _finish_recordings(core: _core.Core, registry: StreamRegistry, recorder: RecordingService) -> None:
    """Shutdown: the core finishes every recorder's file (its workers close every peer), the
    last events are handed out, then each finished file's ``execRecordDone`` runs within what is
    left of the stop budget."""
    started = time.monotonic()
    try:
        core.shutdown()
        drain_events(core, registry, recorder)
    except Exception:
        log.exception("core shutdown failed")
    recorder.run_pending_hooks_blocking(max(0.5, STOP_GRACE - 1.0 - (time.monotonic() - started)))


async def _start_services(root: trio.Nursery, config: Config, core: _core.Core, registry: StreamRegistry,
                          sessions: dict[str, Any], rtsp_sessions: dict[str, Any],
                          api: Api) -> dict[str, tuple[str, int]]:
    bound: dict[str, tuple[str, int]] = {}
    ws = config.websocket
    bound["websocket"] = await _start(
        root, "websocket", "websocket.port", ws.listen_ip, ws.port,
        partial(signaling_server.serve, ws, core, registry, sessions, auth=api.auth, hooks=api.hooks))
    api.ports["websocket"] = bound["websocket"][1]
    api.signaling = {"path": ws.location, "ssl": ws.ssl}

    h = config.http
    bound["http"] = await _start(root, "http", "http.port", h.listen_ip, h.port, partial(http_server.serve, h, api))
    api.ports["http"] = bound["http"][1]
    api.ports["webrtc"] = _webrtc_ports(core)

    r = config.rtsp
    bound["rtsp"] = await _start(root, "rtsp", "rtsp.port", r.listen_ip, r.port,
                                 partial(rtsp_server.serve, r, core, registry, rtsp_sessions, auth=api.auth,
                                         hooks=api.hooks))
    api.ports["rtsp"] = bound["rtsp"][1]

    api.rtsp_host = _client_host(r.listen_ip)
    if config.cluster.redis and api.cascade is not None:
        directory = _directory(config, registry, bound["rtsp"][1])
        await root.start(directory.run)
        api.cascade.directory = directory
        log.info("cascade: directory %s as node %s (%s)", directory.url, directory.node_id, directory.rtsp)
    if config.sip.enable:
        sip = config.sip
        if not sip.password:
            log.warning("sip: sip.password is empty: devices register without digest authentication")
        media_ports = _gb_listen(core, sip.listen_ip, sip.media_port)
        if media_ports is not None:
            api.ports["sip_media"] = list(media_ports)
            bound["sip_media"] = (sip.listen_ip, media_ports[0])
            bound["sip_media_udp"] = (sip.listen_ip, media_ports[1])
        gb = await _start(root, "sip", "sip.port", sip.listen_ip, sip.port,
                          partial(gb_service.serve, sip, core, registry, media_ports=media_ports),
                          address_of=lambda service: service.address)
        api.gb = gb
        if api.hooks is not None:
            hooks = api.hooks
            gb.on_device = lambda device_id, online: hooks.notify("device", device=device_id, online=online,
                                                                  kind="online" if online else "offline")
            gb.on_device_event = lambda device_id, kind, fields: hooks.notify("device", device=device_id, kind=kind,
                                                                              **fields)
        bound["sip"] = gb.address
        api.ports["sip"] = bound["sip"][1]

    rec = config.record
    record_ip = config.http.listen_ip  # the command port listens where the HTTP API does
    bound["record"] = await _start(root, "record", "record.cmdPort", record_ip, rec.cmd_port,
                                   partial(record_cmdport.serve, record_ip, rec.cmd_port, api.recorder.execute,
                                           allowed=partial(_api_allowed, api.auth)))
    api.ports["record"] = bound["record"][1]

    if api.cascade is not None:
        registry.add_resolver(api.cascade)  # after GB28181's: a camera registered here is INVITEd here
        if config.pull:
            log.info("cascade: pulls from %s on demand", ", ".join(f"{p.ip}:{p.port}" for p in config.pull))
    return bound


def _notify_stream(hooks: Hooks, event: str, **fields: Any) -> None:
    """The registry's ends to the hooks: ``unpublish`` (a stream ended) and ``stop`` (a player left)."""
    hooks.notify(event, **fields)


async def _api_allowed(auth: Auth, authorization: str | None, peer: str) -> bool:
    """``auth.apiToken`` for the record command port (a source that keeps failing waits)."""
    ok, delay = auth.check_api(authorization, peer, trio.current_time())
    if delay:
        await trio.sleep(delay)
    return ok


def _directory(config: Config, registry: StreamRegistry, rtsp_port: int) -> Directory:
    """The Redis directory with SPEC 6's defaults: ``nodeId`` HOSTNAME:PORT, ``advertiseRtsp``
    rtsp://HOST:PORT where HOST is ``webrtc.announcedIp`` (first), else ``rtsp.listenIp`` unless
    it is a wildcard, else the host name."""
    cluster = config.cluster
    node_id = cluster.node_id or f"{socket.gethostname()}:{rtsp_port}"
    rtsp = cluster.advertise_rtsp
    if not rtsp:
        announced = config.webrtc.announced_ip
        host = announced[0] if announced else config.rtsp.listen_ip
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        rtsp = f"rtsp://{f'[{host}]' if ':' in host else host}:{rtsp_port}"
    return Directory(cluster.redis, node_id, rtsp, registry)


async def _start(root: trio.Nursery, name: str, key: str, ip: str, port: int,
                 serve: Callable[..., Awaitable[Any]],
                 address_of: Callable[[Any], tuple[str, int]] = lambda started: started) -> Any:
    """Start one service; returns what it reported (its bound address, or the GB28181 service,
    whose address ``address_of`` reads)."""
    try:
        started = await root.start(serve)
        address = address_of(started)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise StartupError(f"{name}: port {port} on {ip} is already in use ({key}); stop the other "
                               f"program or choose another port") from None
        raise StartupError(f"{name}: cannot listen on {ip}:{port} ({key}): {e.strerror or e}") from None
    log.info("%s: listening on %s:%d", name, address[0], address[1])
    return started


def _gb_listen(core: _core.Core, ip: str, port: int) -> tuple[int, int] | None:
    """Bind the GB28181 media port (TCP, UDP) in the core."""
    try:
        tcp_port, udp_port = core.gb_listen(ip, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise StartupError(f"sip: media port {port} on {ip} is already in use (sip.mediaPort); stop the "
                               f"other program or choose another port") from None
        raise StartupError(f"sip: cannot bind the media port {ip}:{port} (sip.mediaPort): {e.strerror or e}") from None
    log.info("sip: media on %s tcp %d udp %d", ip, tcp_port, udp_port)
    return int(tcp_port), int(udp_port)


def _webrtc_ports(core: _core.Core) -> list[int]:
    try:
        return sorted(int(p) for p in core.bound_ports())
    except Exception:  # noqa: BLE001
        log.exception("core.bound_ports() failed")
        return []


def _report_ready(config: Config, core: _core.Core, bound: dict[str, tuple[str, int]], ready_file: str | None) -> None:
    ws, http = config.websocket, config.http
    scheme = "wss" if ws.ssl else "ws"
    ws_url = f"{scheme}://{_client_host(ws.listen_ip)}:{bound['websocket'][1]}{ws.location}"
    http_url = f"http://{_client_host(http.listen_ip)}:{bound['http'][1]}"
    rtsp_url = f"rtsp://{_client_host(config.rtsp.listen_ip)}:{bound['rtsp'][1]}"
    webrtc_ports = _webrtc_ports(core)
    shown = (webrtc_ports if len(webrtc_ports) <= 8
             else f"{webrtc_ports[0]}..{webrtc_ports[-1]} ({len(webrtc_ports)} ports)")
    log.info("ready: websocket %s (on %s), http %s (on %s), rtsp %s (on %s), webrtc udp %s ports %s",
             ws_url, ws.listen_ip, http_url, http.listen_ip, rtsp_url, config.rtsp.listen_ip,
             config.webrtc.listen_ip, shown)
    if "sip" in bound:
        log.info("ready: sip udp+tcp %s:%d", config.sip.listen_ip, bound["sip"][1])
    if ready_file:
        document: dict[str, Any] = {"websocket": ws_url, "http": http_url, "rtsp": rtsp_url,
                                    "webrtc_ports": webrtc_ports, "pid": os.getpid()}
        if "sip" in bound:
            document["sip"] = bound["sip"][1]
        if "sip_media" in bound:
            document["sip_media"] = [bound["sip_media"][1], bound["sip_media_udp"][1]]
        if "record" in bound:
            document["record"] = f"http://{_client_host(config.http.listen_ip)}:{bound['record'][1]}/"
        write_atomically(ready_file, json.dumps(document) + "\n")


def write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def _watch_signals(scope: trio.CancelScope, watchdog_box: list[threading.Timer]) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("%s: stopping (closing sessions, then the media core)", signal.Signals(signum).name)
            watchdog = threading.Timer(STOP_GRACE, _stop_overdue)
            watchdog.daemon = True
            watchdog.start()
            watchdog_box.append(watchdog)
            scope.cancel()
            return


def _stop_overdue() -> None:
    log.error("shutdown took more than %g s; exiting now", STOP_GRACE)
    logging.shutdown()
    os._exit(1)
