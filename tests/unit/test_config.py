"""config: defaults, every validation error named, JSON/YAML, alias, paths, aggregate errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pms_trio import config as c
from pms_trio.cli import main


def resolve(raw, base="/srv/pms"):
    return c.resolve(raw, base_dir=base, check_files=False)


def errors_of(raw) -> list[str]:
    with pytest.raises(c.ConfigError) as info:
        resolve(raw)
    return info.value.messages


def test_empty_object_gives_every_default():
    cfg, warnings = resolve({})
    assert warnings == []
    assert cfg.websocket.port == 8889 and cfg.websocket.location == "/" and cfg.websocket.heartbeat_timeout == 30
    assert cfg.websocket.ssl is False and cfg.websocket.listen_ip == "0.0.0.0"
    assert cfg.master.num_of_work_process == 0 and cfg.master.worker_name == "mediasoup-worker"
    assert (cfg.webrtc.min_port, cfg.webrtc.max_port, cfg.webrtc.announced_ip) == (20000, 30000, ())
    assert cfg.webrtc.transcode_audio is True and cfg.webrtc.transcode_linger_ms == 10_000
    assert cfg.webrtc.transcode_complexity == 5
    assert cfg.rtsp.port == 8554 and cfg.http.port == 8025
    assert cfg.rtsp.session_timeout == 60 and cfg.rtsp.merge_write_ms == 0
    assert cfg.record.target_host == "127.0.0.1" and cfg.record.target_port == 8554 and cfg.record.cmd_port == 8888
    assert cfg.pull == ()
    assert cfg.sip.enable is True and cfg.sip.serial == "34020000002000000001" and cfg.sip.realm == "3402000000"
    assert cfg.sip.media_transport == "tcp-passive" and cfg.sip.keepalive_timeout == 180
    assert cfg.log.worker_level == "warn" and cfg.log.console_level == "info" and "dtls" in cfg.log.worker_tags
    assert cfg.log.file == "/srv/pms/logs/pms.log"
    assert cfg.record.record_path == "/srv/pms/record/"


def test_to_dict_has_every_spec_key():
    doc = resolve({})[0].to_dict()
    assert set(doc) == {"log", "websocket", "master", "webrtc", "rtsp", "record", "pull", "sip", "http", "auth", "hooks",
                        "cluster"}
    assert doc["auth"] == {"jwtSecret": "", "apiToken": ""}
    assert doc["hooks"] == {"onPublish": "", "onUnpublish": "", "onPlay": "", "onStop": "", "onRecordDone": "",
                            "onDevice": "", "timeout": 3}
    assert doc["cluster"] == {"redis": "", "nodeId": "", "advertiseRtsp": ""}
    assert set(doc["websocket"]) == {"port", "listenIp", "ssl", "keyFile", "certFile", "passPhrase", "location",
                                     "heartbeatTimeout"}
    assert set(doc["sip"]) == {"enable", "serial", "realm", "listenIp", "port", "announcedIp", "password",
                               "keepaliveTimeout", "mediaPort", "mediaTransport"}
    assert set(doc["record"]) == {"targetHost", "targetPort", "recordPath", "execRecordDone", "cmdPort",
                                      "segmentSeconds", "deleteAfterHours", "execRecordDoneTimeout"}
    json.dumps(doc)  # serialisable
    assert doc == c.resolve(doc, base_dir="/srv/pms", check_files=False)[0].to_dict()  # a fixed point


def test_record_target_port_follows_rtsp_port():
    assert resolve({"rtsp": {"port": 9554}})[0].record.target_port == 9554
    assert resolve({"rtsp": {"port": 9554}, "record": {"targetPort": 1234}})[0].record.target_port == 1234


def test_alias_num_of_worker_process():
    assert resolve({"master": {"numOfWorkerProcess": 3}})[0].master.num_of_work_process == 3
    assert errors_of({"master": {"numOfWorkerProcess": "x"}}) == [
        'master.numOfWorkerProcess: expected integer 0-1024, got "x"']
    assert any("numOfWorkerProcess" in e for e in errors_of({"master": {"numOfWorkerProcess": 3,
                                                                        "numOfWorkProcess": 4}}))


def test_seed_spellings_are_aliases():
    cfg, warnings = resolve({"log": {"consolLevel": "debug"}, "websocket": {"cerFile": "c.pem"}})
    assert cfg.log.console_level == "debug"
    assert cfg.websocket.cert_file.endswith("c.pem")
    assert not [w for w in warnings if "consolLevel" in w or "cerFile" in w]
    assert errors_of({"log": {"consolLevel": "loud"}}) and all(
        "log.consolLevel" in e for e in errors_of({"log": {"consolLevel": "loud"}}))


def test_record_segments_and_retention():
    cfg = resolve({})[0]
    assert cfg.record.segment_seconds == 0 and cfg.record.delete_after_hours == 0
    cfg = resolve({"record": {"segmentSeconds": 4, "deleteAfterHours": 0.5}})[0]
    assert cfg.record.segment_seconds == 4 and cfg.record.delete_after_hours == 0.5
    assert errors_of({"record": {"segmentSeconds": -1}}) == [
        "record.segmentSeconds: expected a number from 0 to 86400, got -1"]
    assert errors_of({"record": {"deleteAfterHours": "x"}})


def test_exec_record_done_timeout():
    assert resolve({})[0].record.exec_record_done_timeout == 60
    assert resolve({"record": {"execRecordDoneTimeout": 2.5}})[0].record.exec_record_done_timeout == 2.5
    assert errors_of({"record": {"execRecordDoneTimeout": 0}}) == [
        "record.execRecordDoneTimeout: expected a number of seconds > 0, got 0"]


def test_unknown_keys_are_warnings():
    cfg, warnings = resolve({"extra": 1, "websocket": {"prot": 1}, "pull": [{"ip": "a", "port": 1, "x": 2}]})
    assert cfg.websocket.port == 8889
    assert any(w.startswith("extra:") for w in warnings)
    assert any(w.startswith("websocket.prot:") for w in warnings)
    assert any(w.startswith("pull[0].x:") for w in warnings)


@pytest.mark.parametrize("raw, field", [
    ({"websocket": {"port": "x"}}, "websocket.port"),
    ({"websocket": {"port": 70000}}, "websocket.port"),
    ({"websocket": {"port": True}}, "websocket.port"),
    ({"websocket": {"listenIp": "nowhere"}}, "websocket.listenIp"),
    ({"websocket": {"ssl": "yes"}}, "websocket.ssl"),
    ({"websocket": {"ssl": True, "keyFile": "k.pem"}}, "websocket.certFile"),
    ({"websocket": {"location": "ws"}}, "websocket.location"),
    ({"websocket": {"heartbeatTimeout": 0}}, "websocket.heartbeatTimeout"),
    ({"websocket": {"passPhrase": 5}}, "websocket.passPhrase"),
    ({"websocket": {"keyFile": 5}}, "websocket.keyFile"),
    ({"master": {"numOfWorkProcess": -1}}, "master.numOfWorkProcess"),
    ({"master": {"execPath": 1}}, "master.execPath"),
    ({"webrtc": {"listenIp": 1}}, "webrtc.listenIp"),
    ({"webrtc": {"announcedIp": "not-an-ip"}}, "webrtc.announcedIp"),
    ({"webrtc": {"minPort": 3000, "maxPort": 2000}}, "webrtc.maxPort"),
    ({"webrtc": {"minPort": "a"}}, "webrtc.minPort"),
    ({"webrtc": {"dtlsCertificateFile": "/x.pem"}}, "webrtc.dtlsPrivateKeyFile"),
    ({"rtsp": {"port": -5}}, "rtsp.port"),
    ({"rtsp": {"listenIp": ""}}, "rtsp.listenIp"),
    ({"rtsp": {"sessionTimeout": 4}}, "rtsp.sessionTimeout"),
    ({"rtsp": {"sessionTimeout": 60.5}}, "rtsp.sessionTimeout"),
    ({"webrtc": {"transcodeAudio": "yes"}}, "webrtc.transcodeAudio"),
    ({"webrtc": {"transcodeLingerMs": -1}}, "webrtc.transcodeLingerMs"),
    ({"webrtc": {"transcodeComplexity": 11}}, "webrtc.transcodeComplexity"),
    ({"webrtc": {"transcodeLingerMs": 3_600_001}}, "webrtc.transcodeLingerMs"),
    ({"rtsp": {"mergeWriteMs": -1}}, "rtsp.mergeWriteMs"),
    ({"rtsp": {"mergeWriteMs": 1001}}, "rtsp.mergeWriteMs"),
    ({"record": {"targetHost": ""}}, "record.targetHost"),
    ({"record": {"targetPort": 0}}, "record.targetPort"),
    ({"record": {"cmdPort": "8888"}}, "record.cmdPort"),
    ({"record": {"execRecordDone": ["ls"]}}, "record.execRecordDone"),
    ({"pull": {"ip": "a"}}, "pull"),
    ({"pull": ["a"]}, "pull[0]"),
    ({"pull": [{"port": 1}]}, "pull[0].ip"),
    ({"pull": [{"ip": "a", "port": 1}, {"ip": "b", "port": "x"}]}, "pull[1].port"),
    ({"sip": {"enable": 1}}, "sip.enable"),
    ({"sip": {"serial": "123"}}, "sip.serial"),
    ({"sip": {"realm": "abc"}}, "sip.realm"),
    ({"sip": {"announcedIp": "x"}}, "sip.announcedIp"),
    ({"sip": {"keepaliveTimeout": -1}}, "sip.keepaliveTimeout"),
    ({"sip": {"mediaPort": 65536}}, "sip.mediaPort"),
    ({"sip": {"mediaTransport": "tcp"}}, "sip.mediaTransport"),
    ({"sip": {"password": None}}, "sip.password"),
    ({"http": {"port": 1.5}}, "http.port"),
    ({"log": {"workerLevel": "loud"}}, "log.workerLevel"),
    ({"log": {"consoleLevel": 3}}, "log.consoleLevel"),
    ({"log": {"workerTags": "ice"}}, "log.workerTags"),
    ({"log": {"file": 3}}, "log.file"),
    ({"http": []}, "http"),
])
def test_each_invalid_field_is_named(raw, field):
    errors = errors_of(raw)
    assert len(errors) == 1, errors
    assert errors[0].startswith(field + ": "), errors


def test_example_message_from_spec():
    assert errors_of({"pull": [{"ip": "a", "port": 1}, {"ip": "b", "port": "x"}]}) == [
        'pull[1].port: expected integer 1-65535, got "x"']


def test_every_error_is_reported_at_once():
    errors = errors_of({"websocket": {"port": "x", "ssl": 2}, "http": {"port": -1}, "sip": {"serial": 1},
                        "pull": [{"ip": "", "port": 0}], "log": {"fileLevel": "loud"}})
    fields = [e.split(":", 1)[0] for e in errors]
    assert sorted(fields) == sorted(["websocket.port", "websocket.ssl", "http.port", "sip.serial", "pull[0].ip",
                                     "pull[0].port", "log.fileLevel"])


def test_top_level_must_be_an_object():
    assert errors_of([1, 2])[0].startswith("(top level):")


def test_paths_are_relative_to_the_config_folder(tmp_path: Path):
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "pms.conf").write_text(json.dumps({"log": {"file": "logs/a.log"}, "record": {"recordPath": "/abs/r"}}))
    cfg, _ = c.load(folder / "pms.conf")
    assert cfg.log.file == str(folder / "logs" / "a.log")
    assert cfg.record.record_path == "/abs/r"
    assert cfg.websocket.cert_file == ""


def test_missing_certificate_files_are_errors(tmp_path: Path):
    (tmp_path / "c.json").write_text(json.dumps({"websocket": {"ssl": True, "certFile": "no.pem", "keyFile": "k.pem"}}))
    (tmp_path / "k.pem").write_text("x")
    with pytest.raises(c.ConfigError) as info:
        c.load(tmp_path / "c.json")
    assert info.value.messages == [f"websocket.certFile: file not found: {tmp_path / 'no.pem'}"]


def test_yaml_file(tmp_path: Path):
    (tmp_path / "pms.yaml").write_text("websocket:\n  port: 9000\npull:\n  - {ip: 10.0.0.1, port: 8554}\n")
    cfg, _ = c.load(tmp_path / "pms.yaml")
    assert cfg.websocket.port == 9000 and cfg.pull == (c.PullPeer("10.0.0.1", 8554),)


def test_yaml_content_in_a_conf_file(tmp_path: Path):
    (tmp_path / "pms.conf").write_text("http:\n  port: 9001\n")
    assert c.load(tmp_path / "pms.conf")[0].http.port == 9001


def test_broken_json_names_the_json_error(tmp_path: Path):
    (tmp_path / "pms.conf").write_text('{"http": {"port": 1}')  # a brace short: neither JSON nor YAML
    with pytest.raises(c.ConfigError) as info:
        c.load(tmp_path / "pms.conf")
    assert info.value.messages[0].startswith("(file): not valid JSON")


def test_empty_file_is_empty_config(tmp_path: Path):
    (tmp_path / "pms.conf").write_text("")
    assert c.load(tmp_path / "pms.conf")[0].http.port == 8025


def test_unreadable_file(tmp_path: Path):
    with pytest.raises(c.ConfigError) as info:
        c.load(tmp_path / "missing.conf")
    assert "cannot read" in info.value.messages[0]


def test_repo_default_config_is_valid():
    cfg, warnings = c.load(Path(__file__).parents[2] / "conf" / "pms.conf")
    assert warnings == [] and cfg.websocket.port == 8889


def test_cli_check(tmp_path: Path, capsys):
    good = tmp_path / "good.conf"
    good.write_text("{}")
    assert main(["check", "-c", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["http"]["port"] == 8025
    bad = tmp_path / "bad.conf"
    bad.write_text(json.dumps({"http": {"port": "x"}, "rtsp": {"port": -1}}))
    assert main(["check", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert 'http.port: expected integer 0-65535, got "x"' in err and "rtsp.port:" in err


def test_cli_run_with_bad_config_exits_2_before_binding(tmp_path: Path):
    bad = tmp_path / "bad.conf"
    bad.write_text(json.dumps({"websocket": {"port": "x"}}))
    assert main(["run", "-c", str(bad)]) == 2


def test_cluster_urls_are_checked():
    ok = resolve({"cluster": {"redis": "redis://10.0.0.5:6380/2", "advertiseRtsp": "rtsp://edge1:8554"}})[0]
    assert ok.cluster.redis == "redis://10.0.0.5:6380/2" and ok.cluster.advertise_rtsp == "rtsp://edge1:8554"
    with pytest.raises(c.ConfigError) as e:
        resolve({"cluster": {"redis": "http://x", "advertiseRtsp": "rtsp://h:99999"}})
    assert any(m.startswith("cluster.redis:") for m in e.value.messages), e.value.messages
    assert any(m.startswith("cluster.advertiseRtsp:") for m in e.value.messages), e.value.messages
