"""The recording service: starts and stops recordings, follows their files, runs ``execRecordDone``.

Owns the table of recordings (one per stream at a time), the files they wrote in this run (state,
size, duration), the ``execRecordDone`` jobs and the retention sweep. It never touches media: the
media core's recorder is a consumer of the stream on the stream's worker that writes the file
itself, and reports each file it opens and finishes (:meth:`RecordingService.on_file_started`,
:meth:`~RecordingService.on_file`), then its own end (:meth:`~RecordingService.on_ended`).

Rules:

- ``record.start`` of a stream already being recorded: 409; a stream that is not live and that no
  resolver can bring in within 10 s (GB28181 channel, cascade): 404; a container that cannot hold
  the stream's codecs: 415 (the core decides). Without segments, an existing file of the requested
  name is not overwritten: 409 (pick another name, or remove it first).
- The recorder counts as a player of the stream in the registry, so an on-demand source (a
  GB28181 INVITE) lasts while it records, and the recording ends when the stream ends.
- ``record.stop`` closes the recorder and answers once the core has finished its last file (at
  most 5 s), with the files it wrote.
- Each finished file (stop, the stream ending, 30 s without media, a write error, shutdown, or a
  segment cut) runs ``execRecordDone`` once, in the server's working folder, in a shell, with
  ``{file}``/``{stream}`` substituted and quoted and ``PMS_RECORD_FILE``/``PMS_RECORD_STREAM`` set,
  under a time limit (``record.execRecordDoneTimeout``, 60 s by default; at shutdown whatever is
  left of the stop budget), after which its process group is killed. Its exit status and
  output are logged; its failure changes nothing else.
- ``record.targetHost``/``targetPort`` (or ``targetHost``/``targetPort`` in ``record.start`` data)
  other than this server: the stream is pulled from ``rtsp://HOST:PORT/STREAM`` by the cascade
  (:meth:`~pms_trio.cascade.pull.Pulls.pull_from`) and published here under its name, and the
  recorder records that. The pull is shared with local players and ends 10 s after its last
  consumer. A stream of that name live here from another source: 409; the target does not have it:
  404; the target unreachable or broken: 502.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from urllib.parse import quote
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ..cascade.pull import PullError
from ..core_errors import core_error_status
from . import protocol as p
from .done import done_command, done_environment
from .retention import RecordFile, expired

log = logging.getLogger("pms_trio.record")

DONE_TIME_LIMIT = 60.0
STOP_WAIT = 5.0
LOCATE_TIMEOUT = 10.0
MAX_WAITING_HOOKS = 1000
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})


class RemoteSource(Protocol):
    """Brings a stream in from another server (the cascade's pulls)."""

    async def pull_from(self, name: str, url: str, timeout: float) -> None: ...


class RecorderCore(Protocol):
    def create_recorder(self, stream: str, folder: str, pattern: str, *, container: str,
                        segment_seconds: float = 0.0) -> int: ...

    def close_transport(self, transport_id: int) -> None: ...


class StreamSource(Protocol):
    """What the service needs of the stream registry."""

    async def locate(self, name: str, timeout: float = ...) -> Any: ...

    def add_player(self, name: str, transport_id: int, owner: Any) -> None: ...

    def remove_transport(self, transport_id: int, reason: str = ...) -> None: ...


@dataclass(slots=True)
class FileInfo:
    name: str
    stream: str
    started: float  # UNIX time the file was opened
    state: str = "recording"  # recording | done | failed
    bytes: int = 0
    duration: float | None = None
    error: str = ""


@dataclass(slots=True)
class Recording:
    transport_id: int
    stream: str
    file_name: str
    container: str
    segment_seconds: float
    started: float
    files: list[str] = field(default_factory=list)
    ended: trio.Event = field(default_factory=trio.Event)
    reason: str = ""


@dataclass(slots=True)
class Counters:
    started: int = 0
    files_done: int = 0
    files_failed: int = 0
    bytes: int = 0
    hooks_failed: int = 0


class RecordingService:
    def __init__(self, *, folder: str, exec_record_done: str, segment_seconds: float, delete_after_hours: float,
                 target_host: str, target_port: int, local_rtsp_ports: Callable[[], set[int]],
                 core: RecorderCore, registry: StreamSource, remote: RemoteSource | None = None,
                 wall_clock: Callable[[], float] = time.time, done_time_limit: float = DONE_TIME_LIMIT) -> None:
        self.folder = os.path.abspath(folder)
        self.exec_record_done = exec_record_done
        self.segment_seconds = segment_seconds
        self.delete_after_hours = delete_after_hours
        self.done_time_limit = done_time_limit
        self.target_host = target_host
        self.target_port = target_port
        self._local_rtsp_ports = local_rtsp_ports
        self._core = core
        self._registry = registry
        self._remote = remote
        self.on_file_done: Callable[..., None] | None = None  # the onRecordDone hook: (file=, stream=, ...)
        self._wall = wall_clock
        self._by_stream: dict[str, Recording] = {}
        self._by_id: dict[int, Recording] = {}
        self._files: dict[str, FileInfo] = {}  # file name -> what this run knows of it
        self._starting: set[str] = set()  # streams between record.start and the recorder
        self._hook_queue: list[FileInfo] = []  # finished files whose execRecordDone has not started
        self._hook_wakeup = trio.Event()
        self._hooks_spawned: set[int] = set()  # ids of queued files whose job task exists
        self.counters = Counters()

    # -- the command port and the HTTP API

    async def execute(self, body: bytes) -> str:
        """One command's text in, the reply's text out (the command port's ``execute``)."""
        try:
            command = p.parse_command(body)
            if isinstance(command, p.StartRecording):
                data = await self.start(command)
                return p.build_reply(p.START, data, stream=command.stream)
            data = await self.stop(command.stream)
            return p.build_reply(p.STOP, data, stream=command.stream)
        except p.CommandError as e:
            return p.error_reply(e)

    async def start(self, command: p.StartRecording) -> dict[str, Any]:
        stream = command.stream
        method = p.START
        if stream in self._by_stream or stream in self._starting:
            raise p.CommandError(p.CONFLICT, f"stream {stream} is already being recorded; record.stop it first",
                                 method=method, stream=stream)
        host = command.target_host or self.target_host
        port = command.target_port or self.target_port
        remote_url = None if self._is_local(host, port) else _rtsp_url(host, port, stream)
        segment = self.segment_seconds if command.segment_seconds is None else command.segment_seconds
        pattern = p.segment_pattern(command.file_name) if segment > 0 else p.single_pattern(command.file_name)
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as e:
            raise p.CommandError(p.INTERNAL, f"cannot create the recording folder {self.folder}: "
                                 f"{e.strerror or e}", method=method, stream=stream) from None
        if segment <= 0 and os.path.lexists(os.path.join(self.folder, command.file_name)):
            raise p.CommandError(p.CONFLICT, f"{command.file_name} exists in the recording folder; choose another "
                                 "name or delete it", method=method, stream=stream)
        self._starting.add(stream)
        try:
            if remote_url is not None:
                await self._pull(stream, remote_url)
            elif await self._registry.locate(stream, LOCATE_TIMEOUT) is None:
                raise p.CommandError(p.NOT_FOUND, f"stream {stream} is not live here and no source has it",
                                     method=method, stream=stream)
            try:
                tid = self._core.create_recorder(stream, self.folder, pattern, container=command.container,
                                                 segment_seconds=segment)
            except Exception as e:  # the core's CoreError carries the reply code
                code, message = core_error_status(e, "signaling", f"record {stream}")
                raise p.CommandError(code, message, method=method, stream=stream) from None
            try:
                self._registry.add_player(stream, tid, self)
            except RuntimeError:
                self._core.close_transport(tid)
                raise p.CommandError(p.NOT_FOUND, f"stream {stream} ended before the recording started",
                                     method=method, stream=stream) from None
        finally:
            self._starting.discard(stream)
        recording = Recording(tid, stream, command.file_name, command.container, segment, self._wall())
        self._by_stream[stream] = recording
        self._by_id[tid] = recording
        self.counters.started += 1
        log.info("record %s: started (%s%s, recorder %d)", stream, command.file_name,
                 f", segments of {segment:g} s" if segment > 0 else "", tid)
        return {"fileName": command.file_name, "container": command.container, "segmentSeconds": segment}

    async def stop(self, stream: str) -> dict[str, Any]:
        recording = self._by_stream.get(stream)
        if recording is None:
            raise p.CommandError(p.NOT_FOUND, f"stream {stream} is not being recorded", method=p.STOP, stream=stream)
        self._end(recording, "stopped")
        self._core.close_transport(recording.transport_id)
        with trio.move_on_after(STOP_WAIT):
            await recording.ended.wait()
        files = [self._files[n] for n in recording.files if n in self._files]
        return {"files": [{"name": f.name, "state": f.state, "bytes": f.bytes, "duration": f.duration}
                          for f in files]}

    async def _pull(self, stream: str, url: str) -> None:
        if self._remote is None:
            raise p.CommandError(501, f"recording from another server ({url}) needs the cascade, which is not "
                                 "running", method=p.START, stream=stream)
        try:
            await self._remote.pull_from(stream, url, LOCATE_TIMEOUT)
        except PullError as e:
            raise p.CommandError(e.code, e.message, method=p.START, stream=stream) from None

    def _is_local(self, host: str, port: int) -> bool:
        return host in LOCAL_HOSTS and (port == 0 or port == self.target_port or port in self._local_rtsp_ports())

    # -- the stream registry (the recorder is a player of its stream)

    def transport_closed(self, transport_id: int, stream: str, role: str, reason: str) -> None:
        """The registry's word that the stream ended (``producer-closed``): the core closes the
        recorder itself and says so with :meth:`on_ended`."""
        recording = self._by_id.get(transport_id)
        if recording is not None:
            self._end(recording, reason)

    def _end(self, recording: Recording, reason: str) -> None:
        if self._by_stream.get(recording.stream) is recording:
            del self._by_stream[recording.stream]
            recording.reason = reason
            log.info("record %s: ending (%s)", recording.stream, reason)

    # -- core events (the event pump calls these; they never block)

    def on_ended(self, transport_id: int, reason: str) -> None:
        """The core's recorder is gone; every file it opened has been reported by :meth:`on_file`."""
        recording = self._by_id.pop(transport_id, None)
        self._registry.remove_transport(transport_id, reason)
        if recording is not None:
            self._end(recording, recording.reason or reason)
            recording.ended.set()

    def on_file_started(self, transport_id: int, path: str) -> None:
        recording = self._by_id.get(transport_id)
        name = os.path.basename(path)
        stream = recording.stream if recording is not None else ""
        self._files[name] = FileInfo(name, stream, self._wall())
        if recording is not None:
            recording.files.append(name)
        log.info("record %s: writing %s", stream, path)

    def on_file(self, transport_id: int, path: str, size: int, duration: float, error: str = "") -> None:
        """The core finished (or gave up on) one file: ``error`` empty means it is complete."""
        name = os.path.basename(path)
        recording = self._by_id.get(transport_id)
        info = self._files.get(name)
        if info is None:
            info = self._files[name] = FileInfo(name, recording.stream if recording else "", self._wall() - duration)
        info.bytes, info.duration = size, duration
        info.state = "failed" if error else "done"
        info.error = error
        if recording is not None and name not in recording.files:
            recording.files.append(name)
        self.counters.bytes += size
        if error:
            self.counters.files_failed += 1
            log.error("record %s: %s failed after %d bytes: %s", info.stream, name, size, error)
        else:
            self.counters.files_done += 1
            log.info("record %s: %s done (%d bytes, %.1f s)", info.stream, name, size, duration)
            if self.on_file_done is not None:
                try:
                    self.on_file_done(file=name, stream=info.stream, duration=duration, bytes=size)
                except Exception:
                    log.exception("record %s: the onRecordDone hook failed", info.stream)
        self._queue_hook(info)

    # -- execRecordDone

    def _queue_hook(self, info: FileInfo) -> None:
        """Runs ``execRecordDone`` for a finished file: soon by :meth:`run`, or at shutdown by
        :meth:`run_pending_hooks_blocking` when it had not started by then."""
        if not self.exec_record_done:
            return
        if len(self._hook_queue) >= MAX_WAITING_HOOKS:
            self.counters.hooks_failed += 1
            log.error("record %s: execRecordDone not run for %s: %d commands already waiting", info.stream,
                      info.name, len(self._hook_queue))
            return
        self._hook_queue.append(info)
        self._hook_wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The service's background work: ``execRecordDone`` jobs (at most 4 at once) and the
        retention sweep. Runs until cancelled."""
        limiter = trio.CapacityLimiter(4)
        async with trio.open_nursery() as nursery:
            if self.delete_after_hours > 0:
                nursery.start_soon(self._sweep_forever)
            task_status.started()
            while True:
                await self._hook_wakeup.wait()
                self._hook_wakeup = trio.Event()
                for info in self._hook_queue:
                    if id(info) not in self._hooks_spawned:
                        self._hooks_spawned.add(id(info))
                        nursery.start_soon(self._run_hook, info, limiter, self.done_time_limit)

    async def _run_hook(self, info: FileInfo, limiter: trio.CapacityLimiter, limit: float) -> None:
        try:
            async with limiter:
                # Out of the queue only once it runs: one cancelled before (shutdown) runs then.
                self._hook_queue.remove(info)
                self._hooks_spawned.discard(id(info))
                await run_done_command(self.exec_record_done, os.path.join(self.folder, info.name), info.stream,
                                       limit, self.counters)
        finally:
            self._hooks_spawned.discard(id(info))

    def run_pending_hooks_blocking(self, limit: float) -> None:
        """At shutdown, after the core finished every file: run the hooks still queued, one after
        the other, within ``limit`` seconds in all (blocking: the event loop is gone)."""
        import subprocess

        deadline = time.monotonic() + limit
        for info in self._hook_queue:
            left = deadline - time.monotonic()
            if left <= 0:
                log.error("record: no time left to run execRecordDone for %s", info.name)
                self.counters.hooks_failed += 1
                continue
            path = os.path.join(self.folder, info.name)
            command = done_command(self.exec_record_done, path, info.stream)
            try:
                result = subprocess.run(command, shell=True, env=done_environment(os.environ, path, info.stream),
                                        capture_output=True, timeout=left, start_new_session=True)
                _log_result(info.stream, command, result.returncode, result.stdout + result.stderr, self.counters)
            except subprocess.TimeoutExpired:
                self.counters.hooks_failed += 1
                log.error("record %s: execRecordDone timed out: %s", info.stream, command)
        self._hook_queue.clear()

    # -- retention

    async def _sweep_forever(self) -> None:
        period = min(600.0, max(1.0, self.delete_after_hours * 3600.0 / 4))
        while True:
            await trio.to_thread.run_sync(self.sweep)
            await trio.sleep(period)

    def sweep(self) -> list[str]:
        """Delete finished recordings older than ``record.deleteAfterHours``; returns their names."""
        active = {n for n, f in self._files.items() if f.state == "recording"}
        doomed = expired(self._scan(), now=self._wall(), hours=self.delete_after_hours, active=active)
        removed = []
        for name in doomed:
            try:
                os.unlink(os.path.join(self.folder, name))
                removed.append(name)
                self._files.pop(name, None)
            except OSError as e:
                log.warning("record: cannot delete %s: %s", name, e.strerror or e)
        if removed:
            log.info("record: deleted %d recordings older than %g h", len(removed), self.delete_after_hours)
        return removed

    def _scan(self) -> list[RecordFile]:
        out = []
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return []
        for entry in entries:
            try:
                p.container_of(entry.name)
                st = entry.stat(follow_symlinks=False)
            except (ValueError, OSError):
                continue
            if entry.is_file(follow_symlinks=False):
                out.append(RecordFile(entry.name, st.st_mtime, st.st_size))
        return out

    # -- listings

    def recording_streams(self) -> set[str]:
        return set(self._by_stream)

    def records(self) -> list[dict[str, Any]]:
        """Every recording file under ``recordPath``: name, stream, size, start, duration, state."""
        out = []
        for f in sorted(self._scan(), key=lambda f: f.name):
            info = self._files.get(f.name)
            if info is None:  # from an earlier run: what the file system tells
                out.append({"name": f.name, "stream": "", "size": f.size, "start": None, "duration": None,
                            "state": "done"})
            else:
                out.append({"name": f.name, "stream": info.stream, "size": f.size, "start": round(info.started, 3),
                            "duration": info.duration, "state": info.state})
        return out

    def path_of(self, name: str) -> str | None:
        """The path of recording ``name`` to serve, or None: only plain names of files directly
        under ``recordPath`` with a recording extension."""
        try:
            p.container_of(name)
        except ValueError:
            return None
        path = os.path.join(self.folder, name)
        return path if os.path.isfile(path) and not os.path.islink(path) else None


async def run_done_command(template: str, path: str, stream: str, limit: float, counters: Counters) -> None:
    command = done_command(template, path, stream)
    env = done_environment(os.environ, path, stream)

    async def kill_group(proc: trio.Process) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()

    with trio.move_on_after(limit) as scope:
        result = await trio.run_process(command, shell=True, env=env, capture_stdout=True, capture_stderr=True,
                                        check=False, start_new_session=True, deliver_cancel=kill_group)
        _log_result(stream, command, result.returncode, result.stdout + result.stderr, counters)
    if scope.cancelled_caught:
        counters.hooks_failed += 1
        log.error("record %s: execRecordDone killed after %g s: %s", stream, limit, command)


def _log_result(stream: str, command: str, status: int, output: bytes, counters: Counters) -> None:
    text = output.decode("utf-8", "replace").strip()
    if len(text) > 2000:
        text = text[:2000] + "..."
    if status == 0:
        log.info("record %s: execRecordDone exited 0: %s%s", stream, command, f"\n{text}" if text else "")
    else:
        counters.hooks_failed += 1
        log.error("record %s: execRecordDone exited %d: %s%s", stream, status, command, f"\n{text}" if text else "")


def _rtsp_url(host: str, port: int, stream: str) -> str:
    return f"rtsp://{f'[{host}]' if ':' in host else host}:{port}/{quote(stream, safe='')}"
