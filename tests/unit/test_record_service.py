"""The recording service's bookkeeping with the real stream registry and a stand-in for the media
core's two recorder commands (the media path itself is tested against the real server in
tests/integration/): conflicts, not-found, stop waiting for the last file, execRecordDone with its
time limit, retention and listings."""

from __future__ import annotations

import json
import os
import time

import pytest
import trio

from pms_trio._core import CoreError
from pms_trio.record.protocol import CommandError, StartRecording
from pms_trio.record.service import RecordingService
from pms_trio.streams import StreamRegistry


class Owner:
    def transport_closed(self, *args):
        pass


class FakeCore:
    """Stands in for create_recorder/close_transport; 'files' it opens are reported like the core does."""

    def __init__(self):
        self.next_id = 100
        self.service: RecordingService | None = None
        self.open: dict[int, str] = {}
        self.refuse: int | None = None

    def create_recorder(self, stream, folder, pattern, *, container, segment_seconds=0.0):
        if self.refuse:
            raise CoreError(self.refuse, "H264 cannot be recorded to .webm")
        self.next_id += 1
        path = os.path.join(folder, time.strftime(pattern))
        open(path, "wb").write(b"x" * 10)
        self.open[self.next_id] = path
        # like the real core: events reach the service later, through the event pump
        trio.lowlevel.current_trio_token().run_sync_soon(self.service.on_file_started, self.next_id, path)
        return self.next_id

    def close_transport(self, tid):
        path = self.open.pop(tid, None)
        token = trio.lowlevel.current_trio_token()
        if path is not None:
            token.run_sync_soon(self.service.on_file, tid, path, 10, 1.5)
        token.run_sync_soon(self.service.on_ended, tid, "closed")


def make(tmp_path, **kw):
    core = FakeCore()
    registry = StreamRegistry()
    registry.add_publisher("cam", 1, Owner())
    options = dict(folder=str(tmp_path / "rec"), exec_record_done="", segment_seconds=0, delete_after_hours=0,
                   target_host="127.0.0.1", target_port=8554, local_rtsp_ports=lambda: {8554}, core=core,
                   registry=registry)
    options.update(kw)
    service = RecordingService(**options)
    core.service = service
    return service, core, registry


@pytest.mark.trio
async def test_start_stop_conflict_and_not_found(tmp_path):
    service, core, registry = make(tmp_path)
    data = await service.start(StartRecording("cam", "a.mkv", "mkv"))
    assert data["fileName"] == "a.mkv"
    assert service.recording_streams() == {"cam"}
    assert registry.get("cam").players == {101}
    with pytest.raises(CommandError) as e:
        await service.start(StartRecording("cam", "b.mkv", "mkv"))
    assert e.value.code == 409
    with trio.fail_after(2):
        with pytest.raises(CommandError) as e:
            await service.start(StartRecording("nope", "c.mkv", "mkv"))  # waits for the registry's locate
    assert e.value.code == 404
    stopped = await service.stop("cam")
    assert stopped["files"] == [{"name": "a.mkv", "state": "done", "bytes": 10, "duration": 1.5}]
    assert registry.get("cam").players == set()
    with pytest.raises(CommandError) as e:
        await service.stop("cam")
    assert e.value.code == 404
    # the same name again: the file exists
    with pytest.raises(CommandError) as e:
        await service.start(StartRecording("cam", "a.mkv", "mkv"))
    assert e.value.code == 409 and "exists" in e.value.message
    records = service.records()
    assert [(r["name"], r["stream"], r["state"], r["size"]) for r in records] == [("a.mkv", "cam", "done", 10)]
    assert service.path_of("a.mkv").endswith("/rec/a.mkv") and service.path_of("../a.mkv") is None


@pytest.mark.trio
async def test_core_refusal_and_remote_target(tmp_path):
    service, core, registry = make(tmp_path)
    core.refuse = 415
    reply = json.loads(await service.execute(json.dumps(
        {"stream": "cam", "method": "record.start", "data": {"fileName": "a.webm"}}).encode()))
    assert reply["err"] == 415 and "H264" in reply["err_msg"]
    core.refuse = None
    reply = json.loads(await service.execute(json.dumps(
        {"stream": "cam", "method": "record.start", "data": {"fileName": "a.webm", "targetHost": "10.1.1.1"}}).encode()))
    assert reply["err"] == 501
    assert service.recording_streams() == set()


@pytest.mark.trio
async def test_stream_end_ends_the_recording(tmp_path):
    service, core, registry = make(tmp_path)
    await service.start(StartRecording("cam", "a.mkv", "mkv"))
    registry.remove_transport(1, "closed")  # the publisher leaves: the registry tells the recorder's owner
    assert service.recording_streams() == set()
    core.close_transport(101)  # the core finishes the file
    await trio.sleep(0.01)
    assert service.records()[0]["state"] == "done"


@pytest.mark.trio
async def test_exec_record_done_runs_quoted_with_a_time_limit(tmp_path):
    marker = tmp_path / "done.txt"
    service, core, registry = make(
        tmp_path, exec_record_done=f'printf "%s %s $PMS_RECORD_STREAM" {{file}} {{stream}} >> {marker}; echo hi')
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            await service.start(StartRecording("cam", "my file.mkv", "mkv"))
            await service.stop("cam")
            while not marker.exists():
                await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    assert marker.read_text() == f"{tmp_path}/rec/my file.mkv cam cam"
    assert service.counters.hooks_failed == 0

    from pms_trio.record.service import run_done_command
    with trio.fail_after(5):
        await run_done_command("sleep 30", "/x", "s", 0.3, service.counters)
        await run_done_command("exit 3", "/x", "s", 5, service.counters)
    assert service.counters.hooks_failed == 2


def test_retention_deletes_only_old_finished_files(tmp_path):
    service, core, registry = make(tmp_path, delete_after_hours=1)
    folder = tmp_path / "rec"
    folder.mkdir()
    for name, age in (("old.mkv", 7200), ("new.mkv", 60), ("notes.txt", 7200)):
        path = folder / name
        path.write_bytes(b"x")
        os.utime(path, (time.time() - age, time.time() - age))
    assert service.sweep() == ["old.mkv"]
    assert sorted(os.listdir(folder)) == ["new.mkv", "notes.txt"]
