"""The recording command protocol, file names, segment names, execRecordDone quoting, retention and
HTTP ranges: sans-IO, no server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pms_trio.http.ranges import RangeNotSatisfiable, parse_range
from pms_trio.record.done import done_command, done_environment
from pms_trio.record.protocol import (
    CommandError,
    StartRecording,
    StopRecording,
    build_reply,
    container_of,
    error_reply,
    parse_command,
    segment_pattern,
    single_pattern,
)
from pms_trio.record.retention import RecordFile, expired


def _cmd(**kw):
    return json.dumps(kw)


def test_seed_commands_parse():
    start = parse_command(_cmd(stream="123456", method="record.start",
                               data={"fileName": "123456-20201123-231523.webm"}))
    assert start == StartRecording("123456", "123456-20201123-231523.webm", "webm")
    assert parse_command(_cmd(stream="123456", method="record.stop", data={})) == StopRecording("123456")
    assert parse_command(b'{"stream": "a", "method": "record.stop"}') == StopRecording("a")


def test_start_options():
    start = parse_command(_cmd(stream="cam", method="record.start",
                               data={"fileName": "cam.MP4", "segmentSeconds": 4, "targetHost": "10.0.0.2",
                                     "targetPort": 8554.0}))
    assert start == StartRecording("cam", "cam.MP4", "mp4", 4.0, "10.0.0.2", 8554)


@pytest.mark.parametrize("body, code", [
    (b"\xff\xfe", 400),
    ("[1, 2]", 400),
    ("not json", 400),
    ('{"stream": "a"}', 400),
    ('{"stream": "a", "method": "record.pause"}', 405),
    ('{"method": "record.start", "data": {"fileName": "a.webm"}}', 400),
    ('{"stream": "", "method": "record.stop"}', 400),
    ('{"stream": "a\\u0000", "method": "record.stop"}', 400),
    ('{"stream": "a", "method": "record.start", "data": []}', 400),
    ('{"stream": "a", "method": "record.start", "data": {}}', 400),
    ('{"stream": "a", "method": "record.start", "data": {"fileName": 5}}', 400),
    ('{"stream": "a", "method": "record.start", "data": {"fileName": "a.webm", "segmentSeconds": -1}}', 400),
    ('{"stream": "a", "method": "record.start", "data": {"fileName": "a.webm", "segmentSeconds": true}}', 400),
    ('{"stream": "a", "method": "record.start", "data": {"fileName": "a.webm", "targetPort": 0}}', 400),
    ('{"stream": "a", "method": "record.start", "data": {"fileName": "a.webm", "targetPort": "x"}}', 400),
    ('{"stream": "a", "method": "record.start", "data": {"fileName": "a.webm", "targetHost": "a/b"}}', 400),
    ("[" * 100_000 + "]" * 100_000, 413),
    ("[" * 20_000 + "]" * 20_000, 400),
])
def test_bad_commands(body, code):
    with pytest.raises(CommandError) as info:
        parse_command(body)
    assert info.value.code == code
    reply = json.loads(error_reply(info.value))
    assert reply["err"] == code and reply["err_msg"] and reply["version"] == "1.0"


@pytest.mark.parametrize("name", [
    "../x.webm", "a/../b.webm", "/etc/x.mkv", "a/b.mkv", "a\\b.mkv", "x..mkv", ".hidden.mkv", "a\x00.mkv",
    "a\n.mkv", "cam.avi", "cam", "cam.", "", ".mkv", "~root.mkv", "C:x.mkv", "a" * 300 + ".mkv",
])
def test_file_names_refused(name):
    with pytest.raises(ValueError):
        container_of(name)
    with pytest.raises(CommandError) as info:
        parse_command(_cmd(stream="s", method="record.start", data={"fileName": name}))
    assert info.value.code == 400


@pytest.mark.parametrize("name, container", [
    ("cam.webm", "webm"), ("cam.MKV", "mkv"), ("123456-20201123-231523.mp4", "mp4"), ("a b.mkv", "mkv"),
    ("摄像头.mkv", "mkv"),
])
def test_file_names_accepted(name, container):
    assert container_of(name) == container


@given(st.text(max_size=80))
def test_an_accepted_name_stays_inside_the_folder(name):
    try:
        container_of(name)
    except ValueError:
        return
    folder = "/srv/record"
    path = os.path.normpath(os.path.join(folder, name))
    assert os.path.dirname(path) == folder
    assert os.path.basename(path) == name
    assert not name.startswith(".")


def test_segment_patterns():
    t = time.localtime(time.mktime((2026, 12, 5, 8, 15, 0, 0, 0, -1)))
    assert time.strftime(segment_pattern("cam.mkv"), t) == "cam-20261205-081500.mkv"
    assert time.strftime(segment_pattern("a.b.webm"), t) == "a.b-20261205-081500.webm"
    assert time.strftime(segment_pattern("100%.mp4"), t) == "100%-20261205-081500.mp4"
    assert time.strftime(single_pattern("%Y 100%.mkv"), t) == "%Y 100%.mkv"


def test_reply_header():
    reply = json.loads(build_reply("record.start", {"file": "x.webm"}, stream="s"))
    assert reply == {"version": "1.0", "err": 0, "err_msg": "success", "method": "record.start", "stream": "s",
                     "data": {"file": "x.webm"}}


def test_done_command_quotes_names(tmp_path):
    marker = tmp_path / "out"
    cmd = done_command("printf '%s|%s' {file} {stream} > " + shlex.quote(str(marker)),
                       "/srv/my file's.mkv", "cam; rm -rf /")
    env = done_environment({"PATH": os.environ["PATH"]}, "/srv/f.mkv", "cam")
    assert env["PMS_RECORD_FILE"] == "/srv/f.mkv" and env["PMS_RECORD_STREAM"] == "cam"
    subprocess.run(cmd, shell=True, check=True, env=env, timeout=10)
    assert marker.read_text() == "/srv/my file's.mkv|cam; rm -rf /"
    assert done_command("echo ${HOME} {file}", "a", "b") == "echo ${HOME} a"


def test_retention():
    now = 1_000_000.0
    files = [RecordFile("old.mkv", now - 7200, 10), RecordFile("new.mkv", now - 60, 10),
             RecordFile("old-active.mkv", now - 7200, 10)]
    assert expired(files, now=now, hours=1, active={"old-active.mkv"}) == ["old.mkv"]
    assert expired(files, now=now, hours=0, active=set()) == []


@pytest.mark.parametrize("header, size, span", [
    (None, 100, None), ("", 100, None), ("items=0-1", 100, None), ("bytes=0-9", 100, (0, 9)),
    ("bytes=90-", 100, (90, 99)), ("bytes=-10", 100, (90, 99)), ("bytes=-500", 100, (0, 99)),
    ("bytes=0-1000", 100, (0, 99)), ("bytes=5-2", 100, None), ("bytes=x-y", 100, None),
    ("bytes=0-0, 5-9", 100, (0, 0)), ("bytes=-", 100, None),
])
def test_ranges(header, size, span):
    assert parse_range(header, size) == span


@pytest.mark.parametrize("header, size", [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-5", 0)])
def test_unsatisfiable_ranges(header, size):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)
