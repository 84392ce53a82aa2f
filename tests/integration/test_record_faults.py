"""Recording faults (issue 10, "Bad input and faults") through the real server and real peers: the
recording folder removed mid-recording, a full disk, an ``execRecordDone`` that hangs or exits 1,
30 s without media, and a command flood on ``record.cmdPort``.

What is checked is what a user sees: command replies, ``/api/v1/records`` and ``/api/v1/streams``,
``/metrics`` counters, files judged by PyAV and ffprobe, and other streams' players still decoding
at their rate. Never the server's log.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .peers import FPS, play, publish, run, wait_until
from .record_support import CounterVideoTrack, decode_file, ffprobe, get, record, record_url

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def record_path(srv: Any) -> Path:
    return Path(srv.config["record"]["recordPath"])


def metrics(srv: Any) -> dict[str, float]:
    """``/metrics`` as ``{name: value}`` (unlabelled samples only)."""
    status, _, body = get(srv.http_url + "/metrics")
    assert status == 200, status
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
            out[parts[0]] = float(parts[1])
    return out


async def metrics_async(srv: Any) -> dict[str, float]:
    return await asyncio.wait_for(asyncio.to_thread(metrics, srv), 10)


async def recording(srv: Any, stream: str) -> bool:
    streams = {s["name"]: s for s in (await srv.api_async("/api/v1/streams"))["streams"]}
    return bool(streams.get(stream, {}).get("recording"))


async def live_streams(srv: Any) -> set[str]:
    return {s["name"] for s in (await srv.api_async("/api/v1/streams"))["streams"]}


async def records(srv: Any) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in (await srv.api_async("/api/v1/records"))["records"]}


async def poll(check: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
    """Await ``check()`` every ``interval`` s until it returns something true (at most ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    for _ in range(int(timeout / interval) + 2):
        last = await check()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


async def start_ok(url: str, stream: str, file_name: str) -> None:
    status, reply = await record(url, stream, "record.start", fileName=file_name)
    assert status == 200 and reply["err"] == 0, reply


async def stop_ok(url: str, stream: str) -> list[dict[str, Any]]:
    status, reply = await record(url, stream, "record.stop")
    assert status == 200 and reply["err"] == 0, reply
    return list(reply["data"]["files"])


def check_numbered(path: Path, min_seconds: float) -> None:
    """The file decodes (PyAV and ffprobe), holds at least ``min_seconds`` of frames, and the frame
    numbers it shows have no gap and no repeat."""
    ffprobe(path)
    decoded = decode_file(path, counters=True)
    assert not decoded.error, f"{path.name}: {decoded.error}"
    assert decoded.first_is_key, f"{path.name} does not start with a keyframe"
    assert decoded.video_span >= min_seconds, f"{path.name}: {decoded.video_span:.2f} s < {min_seconds} s"
    numbers = [n for n in decoded.counters if n is not None]
    assert len(numbers) >= 0.95 * decoded.video_frames, "the frames do not show the numbers that were sent"
    steps = {b - a for a, b in zip(numbers, numbers[1:])}
    assert steps <= {1, -4095}, f"{path.name}: frames missing or repeated: steps {sorted(steps)[:10]}"


async def frame_rate(player: Any, seconds: float) -> float:
    before, t0 = player.video_frames, time.monotonic()
    await asyncio.sleep(seconds)
    return (player.video_frames - before) / (time.monotonic() - t0)


# --------------------------------------------------------------------------------------------
# The folder removed


def test_folder_removed_mid_recording_fails_that_recording_only(server):
    srv = server()
    url, folder = record_url(srv.ready), record_path(srv)

    async def main() -> None:
        a = await publish(srv.ws_url, "a", video_codec="video/VP8", video_track=CounterVideoTrack())
        b = await publish(srv.ws_url, "b", video_codec="video/VP8", video_track=CounterVideoTrack())
        player = await play(srv.ws_url, "b")
        try:
            await start_ok(url, "a", "a.webm")
            await asyncio.sleep(2)
            assert (folder / "a.webm").stat().st_size > 0
            shutil.rmtree(folder)
            removed = time.monotonic()
            m = await poll(lambda: _failed_and_stopped(srv, "a"), 10, "the recording of a to end as failed")
            assert m["pms_record_files_failed_total"] == 1 and m["pms_record_files_total"] == 0, m
            assert time.monotonic() - removed <= 5, "the recorder took more than 5 s to notice"
            assert "a" in await live_streams(srv), "the stream itself is not affected"
            status, reply = await record(url, "a", "record.stop")
            assert status == 404 and reply["err"] == 404, reply  # it ended by itself
            assert await frame_rate(player, 2) >= 0.7 * FPS, "the other stream's player slowed down"

            # The same recordPath, recreated by the next start, records as before.
            await start_ok(url, "b", "b.webm")
            await asyncio.sleep(4)
            [done] = await stop_ok(url, "b")
            assert done["name"] == "b.webm" and done["state"] == "done", done
            assert (await records(srv))["b.webm"]["state"] == "done"
            m = await metrics_async(srv)
            assert m["pms_record_files_failed_total"] == 1 and m["pms_record_files_total"] == 1, m
        finally:
            for peer in (player, b, a):
                await peer.close()

    run(main())
    check_numbered(folder / "b.webm", 3)


async def _failed_and_stopped(srv: Any, stream: str) -> dict[str, float] | None:
    m = await metrics_async(srv)
    if m.get("pms_record_files_failed_total", 0) >= 1 and not await recording(srv, stream):
        return m
    return None


# --------------------------------------------------------------------------------------------
# The disk full


def _can_mount_tmpfs() -> str:
    """Why a private tmpfs cannot be mounted here ("" when it can)."""
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs in a private mount namespace"
    if shutil.which("unshare") is None:
        return "needs unshare(1) (util-linux)"
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True, timeout=10)
    if probe.returncode != 0:
        return f"unshare --mount cannot mount a tmpfs here: {probe.stderr.decode(errors='replace').strip()}"
    return ""


FULL_TMPFS = "3m"
FULL_FILLER_KIB = 2816  # leaves 256 KiB for recordings: full in about 15 s


def _in_small_tmpfs(command: list[str], config: dict[str, Any]) -> list[str]:
    folder = shlex.quote(config["record"]["recordPath"])
    script = (f"mkdir -p {folder} && mount -t tmpfs -o size={FULL_TMPFS} tmpfs {folder} && "
              f"head -c {FULL_FILLER_KIB}k /dev/zero > {folder}/filler.bin && exec {shlex.join(command)}")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def test_disk_full_fails_the_recording_and_nothing_else(server, tmp_path):
    why = _can_mount_tmpfs()
    if why:
        pytest.skip(why)
    srv = server(wrap=_in_small_tmpfs)
    url = record_url(srv.ready)
    # The tmpfs is in the server's mount namespace only: its files are seen through /proc/PID/root.
    inside = Path(f"/proc/{srv.pid}/root") / str(record_path(srv)).lstrip("/")

    async def main() -> None:
        a = await publish(srv.ws_url, "a", video_codec="video/VP8", video_track=CounterVideoTrack())
        b = await publish(srv.ws_url, "b", video_codec="video/VP8", video_track=CounterVideoTrack())
        player = await play(srv.ws_url, "b")
        try:
            await start_ok(url, "a", "a.webm")
            m = await poll(lambda: _failed_and_stopped(srv, "a"), 60, "the recording of a to fail on a full disk")
            assert m["pms_record_files_failed_total"] == 1, m
            assert "a" in await live_streams(srv)
            listed = (await records(srv))["a.webm"]
            assert listed["state"] == "failed" and listed["size"] > 100_000, listed
            assert await frame_rate(player, 2) >= 0.7 * FPS, "the other stream's player slowed down"

            # Room again: the next recording works.
            (inside / "filler.bin").unlink()
            await start_ok(url, "b", "b.webm")
            await asyncio.sleep(4)
            [done] = await stop_ok(url, "b")
            assert done["state"] == "done", done
        finally:
            for peer in (player, b, a):
                await peer.close()

    run(main())
    for name in ("a.webm", "b.webm"):  # fetched as a user would, through GET /records/NAME
        status, _, body = get(srv.http_url + "/records/" + name)
        assert status == 200, (name, status)
        (tmp_path / name).write_bytes(body)
    partial = decode_file(tmp_path / "a.webm", counters=True)
    assert partial.video_span >= 1.0, f"the partial file decodes {partial.video_span:.2f} s ({partial.error})"
    numbers = [n for n in partial.counters if n is not None]
    assert {b - a for a, b in zip(numbers, numbers[1:])} <= {1, -4095}, "the partial file has a gap"
    check_numbered(tmp_path / "b.webm", 3)


# --------------------------------------------------------------------------------------------
# execRecordDone that hangs or fails


HOOK_LIMIT = 4.0
HOOK = ("case {stream} in "
        "hang) echo $$ > hang.pid; sleep 120 & echo $! > sleep.pid; echo {file} > hang.txt; wait;; "
        "fail) echo {file} > fail.txt; echo failing >&2; exit 1;; "
        "*) echo {file} > ok.txt;; esac")


def _gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def _marked(path: Path, content: str) -> bool:
    try:
        return path.read_text().strip() == content
    except OSError:
        return False


async def _hung_hook(cwd: Path, file: Path) -> tuple[float, list[int]]:
    """Wait for the hanging hook of ``file`` to be running: when it was seen, and its pids (the
    shell and its ``sleep``)."""
    await wait_until(lambda: _marked(cwd / "hang.txt", str(file)), 5, f"the hook of {file.name} to start",
                     interval=0.02)
    seen = time.monotonic()
    pids = [int((cwd / f).read_text()) for f in ("hang.pid", "sleep.pid")]
    assert not any(_gone(pid) for pid in pids), "the hanging hook is not running"
    return seen, pids


def test_exec_record_done_that_hangs_or_fails_changes_nothing_else(server):
    srv = server({"record": {"execRecordDone": HOOK, "execRecordDoneTimeout": HOOK_LIMIT}})
    url, folder, cwd = record_url(srv.ready), record_path(srv), srv.config_path.parent
    last_hang: list[int] = []

    async def main() -> None:
        pubs = [await publish(srv.ws_url, s, video_codec="video/VP8", video_track=CounterVideoTrack())
                for s in ("hang", "fail", "ok")]
        try:
            for s in ("hang", "fail"):
                await start_ok(url, s, f"{s}.webm")
            await asyncio.sleep(3)
            for s in ("hang", "fail"):
                t0 = time.monotonic()
                [done] = await stop_ok(url, s)
                assert done["state"] == "done" and time.monotonic() - t0 < 2, done
            started, hung = await _hung_hook(cwd, folder / "hang.webm")
            await wait_until(lambda: _marked(cwd / "fail.txt", str(folder / "fail.webm")), 5, "the failing hook")

            # While a hook hangs, commands and recordings go on as before.
            t0 = time.monotonic()
            await start_ok(url, "ok", "ok.webm")
            await asyncio.sleep(1)
            [done] = await stop_ok(url, "ok")
            assert done["state"] == "done" and time.monotonic() - t0 < 3, done
            await wait_until(lambda: _marked(cwd / "ok.txt", str(folder / "ok.webm")), 5, "the third hook")
            assert not any(_gone(pid) for pid in hung), "the hanging hook was killed before its time limit"

            # The hanging one is killed, with its children, at its time limit.
            await wait_until(lambda: all(_gone(pid) for pid in hung), HOOK_LIMIT + 2, "the hung hook to be killed",
                             interval=0.02)
            killed_after = time.monotonic() - started
            assert HOOK_LIMIT - 0.5 <= killed_after <= HOOK_LIMIT + 1.5, f"killed after {killed_after:.1f} s"
            m = await poll(lambda: _hooks_failed(srv, 2), 5, "two failed hooks in the metrics")
            assert m["pms_record_files_total"] == 3 and m["pms_record_files_failed_total"] == 0, m
            listed = await records(srv)
            assert all(listed[f"{s}.webm"]["state"] == "done" for s in ("hang", "fail", "ok")), listed

            # A hook still hanging at shutdown does not hold the server up.
            await start_ok(url, "hang", "hang2.webm")
            await asyncio.sleep(1)
            await stop_ok(url, "hang")
            last_hang.extend((await _hung_hook(cwd, folder / "hang2.webm"))[1])
        finally:
            for pub in pubs:
                await pub.close()

    run(main())
    assert srv.stop() == 0 and srv.stop_seconds is not None and srv.stop_seconds <= 5, srv.stop_seconds
    assert all(_gone(pid) for pid in last_hang), "the hook hanging at shutdown was left running"
    check_numbered(folder / "hang.webm", 2)
    check_numbered(folder / "fail.webm", 2)
    check_numbered(folder / "ok.webm", 0.5)


async def _hooks_failed(srv: Any, n: int) -> dict[str, float] | None:
    m = await metrics_async(srv)
    return m if m.get("pms_record_hooks_failed_total") == n else None


# --------------------------------------------------------------------------------------------
# 30 s without media


class PausableCounterTrack(CounterVideoTrack):
    """A :class:`CounterVideoTrack` whose frames stop while ``paused`` (the session stays up)."""

    def __init__(self) -> None:
        super().__init__()
        self.resume = asyncio.Event()
        self.resume.set()

    async def recv(self) -> Any:
        await self.resume.wait()
        return await super().recv()


@pytest.mark.slow
def test_thirty_seconds_without_media_ends_the_recording_with_its_file_finished(server):
    srv = server()
    url, folder = record_url(srv.ready), record_path(srv)
    recorded = 4.0

    async def main() -> None:
        track = PausableCounterTrack()
        pub = await publish(srv.ws_url, "cam", video_codec="video/VP8", audio_codec=None, video_track=track)
        try:
            await start_ok(url, "cam", "quiet.webm")
            await asyncio.sleep(recorded)
            track.resume.clear()
            paused = time.monotonic()
            await poll(lambda: _not_recording(srv, "cam"), 45, "the recording to end without media", interval=0.5)
            waited = time.monotonic() - paused
            assert 29 <= waited <= 35, f"the recording ended {waited:.1f} s after the media stopped"
            assert "cam" in await live_streams(srv), "the publisher's session ended: not a no-media test"
            listed = (await records(srv))["quiet.webm"]
            assert listed["state"] == "done" and abs(listed["duration"] - recorded) <= 1, listed
            m = await metrics_async(srv)
            assert m["pms_record_files_total"] == 1 and m["pms_record_files_failed_total"] == 0, m
        finally:
            await pub.close()

    run(main(), timeout=120)
    info = ffprobe(folder / "quiet.webm")
    assert abs(float(info["format"]["duration"]) - recorded) <= 1, info["format"]  # finished: Duration written
    check_numbered(folder / "quiet.webm", recorded - 1)


async def _not_recording(srv: Any, stream: str) -> bool:
    return not await recording(srv, stream)


# --------------------------------------------------------------------------------------------
# A command flood


FLOOD_CONNECTIONS = 4  # of each kind: HTTP keep-alive and WebSocket
FLOOD_SECONDS = 8.0  # each connection sends back to back for this long...
FLOOD_MAX_ROUNDS = 3000  # ...or this many rounds of flood_commands(), whichever comes first
FLOOD_MIN_COMMANDS = 3000  # fewer in all is not a flood: the test fails
FLOOD_TIME = 30.0


def flood_commands(stream: str) -> list[tuple[bytes, int]]:
    """Commands that fail (each with the ``err`` it must get): malformed, unknown, refused."""
    def cmd(doc: Any) -> bytes:
        return json.dumps(doc).encode()
    return [
        (b"garbage", 400),
        (b'{"stream": "x", "method": ', 400),
        (cmd({"stream": stream, "method": "record.x"}), 405),
        (cmd({"stream": stream, "method": "record.start", "data": {"fileName": "../x.webm"}}), 400),
        (cmd({"stream": stream, "method": "record.start", "data": {"fileName": "again.webm"}}), 409),
        (cmd({"stream": "nope", "method": "record.start", "data": {"fileName": "n.webm"}}), 404),
        (cmd({"stream": "nope", "method": "record.stop", "data": {}}), 404),
    ]


async def _flood_http(host: str, port: int, stream: str, counts: dict[str, int], stop: float) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(FLOOD_MAX_ROUNDS):
            if time.monotonic() >= stop:
                break
            for body, want in flood_commands(stream):
                writer.write(b"POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body))
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
                length = int(head.split("content-length:")[1].split("\r\n")[0])
                reply = json.loads(await reader.readexactly(length))
                counts["ok" if reply["err"] == want else f"http {want} got {reply['err']}"] += 1
                if "connection: close" in head:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def _flood_ws(url: str, stream: str, counts: dict[str, int], stop: float) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, max_queue=None) as ws:
        for _ in range(FLOOD_MAX_ROUNDS):
            if time.monotonic() >= stop:
                break
            for body, want in flood_commands(stream):
                await ws.send(body.decode())
                reply = json.loads(await ws.recv())
                counts["ok" if reply["err"] == want else f"ws {want} got {reply['err']}"] += 1


async def flood(url: str, stream: str) -> dict[str, int]:
    """What the flood process runs: FLOOD_CONNECTIONS HTTP and WebSocket clients at once, each
    sending its commands back to back. Returns the replies counted by outcome."""
    from collections import Counter

    counts: Counter[str] = Counter()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stop = time.monotonic() + FLOOD_SECONDS
    tasks = [_flood_http(host, int(port), stream, counts, stop) for _ in range(FLOOD_CONNECTIONS)]
    tasks += [_flood_ws(url.replace("http://", "ws://") + "/", stream, counts, stop)
              for _ in range(FLOOD_CONNECTIONS)]
    await asyncio.wait_for(asyncio.gather(*tasks), FLOOD_TIME)
    return dict(counts)


def test_command_flood_does_not_slow_media(server):
    srv = server()
    url, folder = record_url(srv.ready), record_path(srv)

    async def main() -> None:
        pub = await publish(srv.ws_url, "cam", video_codec="video/VP8", video_track=CounterVideoTrack())
        player = await play(srv.ws_url, "cam")
        try:
            await start_ok(url, "cam", "again.webm")
            await player.wait_video_frames(30)
            # The flood runs in its own process (at a lower priority than the peers of this one), so
            # what slows down is the server, not this process's decoder.
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c",
                "import asyncio, json, sys; from tests.integration.test_record_faults import flood; "
                "print(json.dumps(asyncio.run(flood(sys.argv[1], sys.argv[2]))))", url, "cam",
                cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                preexec_fn=lambda: os.nice(5))
            before, t0 = player.video_frames, time.monotonic()
            out, err = await asyncio.wait_for(proc.communicate(), FLOOD_TIME + 15)
            elapsed = time.monotonic() - t0
            rate = (player.video_frames - before) / elapsed
            assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
            counts = json.loads(out)
            total = counts.get("ok", 0)
            assert set(counts) == {"ok"}, f"replies other than expected: {counts}"
            assert total >= FLOOD_MIN_COMMANDS, f"only {total} commands answered in {elapsed:.1f} s"
            assert rate >= 0.7 * FPS, f"the player decoded {rate:.1f} fps during a {elapsed:.1f} s flood"

            # Afterwards the server answers as usual.
            assert await recording(srv, "cam")
            t1 = time.monotonic()
            [done] = await stop_ok(url, "cam")
            assert done["state"] == "done" and time.monotonic() - t1 < 2, done
            assert await frame_rate(player, 1) >= 0.7 * FPS
        finally:
            await player.close()
            await pub.close()
        print(f"flood: {total} commands in {elapsed:.1f} s, player at {rate:.1f} fps")

    run(main(), timeout=150)
    check_numbered(folder / "again.webm", 3)
