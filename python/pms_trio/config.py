"""The configuration file: load it, fill in defaults, validate it, resolve it (SPEC section 2).

Owns the schema (every key with its default and its check), the frozen dataclasses the rest of the
program reads, and the conversion back to the file's own key names (``pms-trio check``).

Rules:

- JSON or YAML, same keys: ``.yaml``/``.yml`` are YAML, anything else JSON then YAML; empty is ``{}``.
- Every key has a default; an unknown key is a warning (``warnings`` of :func:`load`), never an error.
- Validation never stops at the first problem: :class:`ConfigError` carries one line per invalid
  field, each naming it (``pull[1].port: expected integer 1-65535, got "x"``).
- Paths are resolved relative to the folder of the config file; ``record.targetPort`` defaults to ``rtsp.port``.
- The seeds' spellings are aliases: ``master.numOfWorkerProcess``, ``log.consolLevel``, ``websocket.cerFile``.

This module does no I/O beyond reading the file and checking that named certificate files exist.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import config_checks as c
from .config_checks import WORKER_TAGS

__all__ = [
    "Config", "ConfigError", "LogConfig", "WebSocketConfig", "MasterConfig", "WebRtcConfig", "RtspConfig",
    "RecordConfig", "PullPeer", "SipConfig", "HttpConfig", "AuthConfig", "HooksConfig", "ClusterConfig",
    "load", "resolve", "parse_text",
]

MEDIA_TRANSPORTS = ("tcp-passive", "tcp-active", "udp")


class ConfigError(Exception):
    """The config cannot be used. ``messages`` holds one line per problem, each naming its field."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = list(messages)


# ---------------------------------------------------------------------------------------------
# Resolved configuration (what the program reads)


@dataclass(frozen=True, slots=True)
class LogConfig:
    file: str
    worker_level: str
    file_level: str
    console_level: str
    worker_tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    port: int
    listen_ip: str
    ssl: bool
    key_file: str
    cert_file: str
    pass_phrase: str
    location: str
    heartbeat_timeout: float


@dataclass(frozen=True, slots=True)
class MasterConfig:
    num_of_work_process: int
    exec_path: str
    worker_name: str
    unix_socket_path: str


@dataclass(frozen=True, slots=True)
class WebRtcConfig:
    listen_ip: str
    announced_ip: tuple[str, ...]
    min_port: int
    max_port: int
    dtls_certificate_file: str
    dtls_private_key_file: str
    transcode_audio: bool = True  # SPEC 11: AAC (and G.711 to players without PCMA/PCMU) as Opus
    transcode_linger_ms: int = 10_000  # a transcoder runs on this long after its last player
    transcode_complexity: int = 5  # libopus complexity 0-10: quality against transcoders per core
    udp_gso: bool = True  # a player's packets of one wake-up leave as one segmented (GSO) send


@dataclass(frozen=True, slots=True)
class RtspConfig:
    port: int
    listen_ip: str
    session_timeout: int = 60  # s without a request or a sign of life from the core (RTCP, media)
    merge_write_ms: int = 0  # hold a TCP player's output this long to write it in one call; 0: off


@dataclass(frozen=True, slots=True)
class RecordConfig:
    target_host: str
    target_port: int
    record_path: str
    exec_record_done: str
    cmd_port: int
    segment_seconds: float = 0.0  # > 0: a new file at the first keyframe after every N seconds
    delete_after_hours: float = 0.0  # > 0: finished recordings older than this are deleted
    exec_record_done_timeout: float = 60.0  # s an execRecordDone may run before it is killed


@dataclass(frozen=True, slots=True)
class PullPeer:
    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class SipConfig:
    enable: bool
    serial: str
    realm: str
    listen_ip: str
    port: int
    announced_ip: str
    password: str
    keepalive_timeout: float
    media_port: int
    media_transport: str


@dataclass(frozen=True, slots=True)
class HttpConfig:
    port: int
    listen_ip: str


@dataclass(frozen=True, slots=True)
class AuthConfig:
    jwt_secret: str  # "": publishing and playing need no token
    api_token: str  # "": the APIs need no token


@dataclass(frozen=True, slots=True)
class HooksConfig:
    on_publish: str
    on_unpublish: str
    on_play: str
    on_stop: str
    on_record_done: str
    on_device: str
    timeout: float


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    redis: str  # "" (no directory) or redis://HOST[:PORT][/DB]
    node_id: str  # "": HOSTNAME:rtsp.port (the bound port)
    advertise_rtsp: str  # "": rtsp://ANNOUNCED_OR_LISTEN_IP:rtsp.port


@dataclass(frozen=True, slots=True)
class Config:
    log: LogConfig
    websocket: WebSocketConfig
    master: MasterConfig
    webrtc: WebRtcConfig
    rtsp: RtspConfig
    record: RecordConfig
    pull: tuple[PullPeer, ...]
    sip: SipConfig
    http: HttpConfig
    auth: AuthConfig
    hooks: HooksConfig
    cluster: ClusterConfig
    base_dir: str  # the folder relative paths were resolved against

    def to_dict(self) -> dict[str, Any]:
        """The resolved settings under the file's own key names (JSON-serialisable)."""
        out: dict[str, Any] = {}
        for section, (_cls, schema) in _SECTIONS.items():
            value = getattr(self, section)
            out[section] = {key: _jsonable(getattr(value, attr)) for key, attr, _check, _default in schema}
        out["pull"] = [{"ip": p.ip, "port": p.port} for p in self.pull]
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


_PATH = "path"  # marker: a string resolved relative to the config folder when non-empty

# section -> (dataclass, [(key, attribute, check, default)])
_Schema = list[tuple[str, str, Any, Any]]
_SECTIONS: dict[str, tuple[type, _Schema]] = {
    "log": (LogConfig, [
        ("file", "file", _PATH, "./logs/pms.log"),
        ("workerLevel", "worker_level", c.level, "warn"),
        ("fileLevel", "file_level", c.level, "info"),
        ("consoleLevel", "console_level", c.level, "info"),
        ("workerTags", "worker_tags", c.tags, list(WORKER_TAGS)),
    ]),
    "websocket": (WebSocketConfig, [
        ("port", "port", c.port, 8889),
        ("listenIp", "listen_ip", c.ip, "0.0.0.0"),
        ("ssl", "ssl", c.boolean, False),
        ("keyFile", "key_file", _PATH, ""),
        ("certFile", "cert_file", _PATH, ""),
        ("passPhrase", "pass_phrase", c.string, ""),
        ("location", "location", c.location, "/"),
        ("heartbeatTimeout", "heartbeat_timeout", c.positive_number, 30),
    ]),
    "master": (MasterConfig, [
        ("numOfWorkProcess", "num_of_work_process", c.int_range(0, 1024), 0),
        ("execPath", "exec_path", c.string, "./"),
        ("workerName", "worker_name", c.string, "mediasoup-worker"),
        ("unixSocketPath", "unix_socket_path", c.string, ""),
    ]),
    "webrtc": (WebRtcConfig, [
        ("listenIp", "listen_ip", c.ip, "0.0.0.0"),
        ("announcedIp", "announced_ip", c.announced_ips, ""),
        ("minPort", "min_port", c.port, 20000),
        ("maxPort", "max_port", c.port, 30000),
        ("dtlsCertificateFile", "dtls_certificate_file", _PATH, ""),
        ("dtlsPrivateKeyFile", "dtls_private_key_file", _PATH, ""),
        # SPEC 11: the media core transcodes AAC (and G.711 for players offering neither PCMA nor
        # PCMU) to Opus for WebRTC players; false answers their audio inactive, as before.
        ("transcodeAudio", "transcode_audio", c.boolean, True),
        # How long a transcoder runs on after its last player left (ms; tests shorten it).
        ("transcodeLingerMs", "transcode_linger_ms", c.int_range(0, 3_600_000), 10_000),
        # libopus complexity of the transcoders (0-10): 0 about doubles transcodes per core.
        ("transcodeComplexity", "transcode_complexity", c.int_range(0, 10), 5),
        # UDP GSO for WebRTC output (Linux 4.18+; off by itself where the kernel refuses it).
        ("udpGso", "udp_gso", c.boolean, True),
    ]),
    "rtsp": (RtspConfig, [
        ("port", "port", c.port, 8554),
        ("listenIp", "listen_ip", c.ip, "0.0.0.0"),
        # SPEC 4's 60 s; at least 5 s since the core reports signs of life at most every 2 s.
        ("sessionTimeout", "session_timeout", c.int_range(5, 86400), 60),
        # ZLMediaKit's mergeWriteMS: fewer system calls per player for up to this much latency.
        ("mergeWriteMs", "merge_write_ms", c.int_range(0, 1000), 0),
    ]),
    "record": (RecordConfig, [
        ("targetHost", "target_host", c.nonempty_string, "127.0.0.1"),
        ("targetPort", "target_port", c.peer_port, None),  # None: rtsp.port
        ("recordPath", "record_path", _PATH, "./record/"),
        ("execRecordDone", "exec_record_done", c.string, ""),
        ("cmdPort", "cmd_port", c.port, 8888),
        ("segmentSeconds", "segment_seconds", c.non_negative_number(86400), 0),
        ("deleteAfterHours", "delete_after_hours", c.non_negative_number(24 * 365 * 100), 0),
        ("execRecordDoneTimeout", "exec_record_done_timeout", c.positive_number, 60),
    ]),
    "sip": (SipConfig, [
        ("enable", "enable", c.boolean, True),
        ("serial", "serial", c.digits(20, 20), "34020000002000000001"),
        ("realm", "realm", c.digits(8, 20), "3402000000"),
        ("listenIp", "listen_ip", c.ip, "0.0.0.0"),
        ("port", "port", c.port, 5060),
        ("announcedIp", "announced_ip", c.optional_ip, ""),
        ("password", "password", c.string, ""),
        ("keepaliveTimeout", "keepalive_timeout", c.positive_number, 180),
        ("mediaPort", "media_port", c.port, 9000),
        ("mediaTransport", "media_transport", c.one_of(MEDIA_TRANSPORTS), "tcp-passive"),
    ]),
    "http": (HttpConfig, [
        ("port", "port", c.port, 8025),
        ("listenIp", "listen_ip", c.ip, "0.0.0.0"),
    ]),
    "auth": (AuthConfig, [
        ("jwtSecret", "jwt_secret", c.string, ""),
        ("apiToken", "api_token", c.string, ""),
    ]),
    "hooks": (HooksConfig, [
        ("onPublish", "on_publish", c.http_url, ""),
        ("onUnpublish", "on_unpublish", c.http_url, ""),
        ("onPlay", "on_play", c.http_url, ""),
        ("onStop", "on_stop", c.http_url, ""),
        ("onRecordDone", "on_record_done", c.http_url, ""),
        ("onDevice", "on_device", c.http_url, ""),
        ("timeout", "timeout", c.positive_number, 3),
    ]),
    "cluster": (ClusterConfig, [
        ("redis", "redis", c.redis_url, ""),
        ("nodeId", "node_id", c.string, ""),
        ("advertiseRtsp", "advertise_rtsp", c.rtsp_url, ""),
    ]),
}
_ORDER = ("log", "websocket", "master", "webrtc", "rtsp", "record", "pull", "sip", "http", "auth", "hooks",
          "cluster")
_ALIASES = {"master": {"numOfWorkerProcess": "numOfWorkProcess"}, "log": {"consolLevel": "consoleLevel"},
            "websocket": {"cerFile": "certFile"}}  # the seed documents' own spellings (SPEC section 2)


# ---------------------------------------------------------------------------------------------
# Loading


def parse_text(text: str, *, suffix: str = "") -> Any:
    """Decode the file's text: YAML for ``.yaml``/``.yml``, otherwise JSON, then YAML."""
    if suffix.lower() in (".yaml", ".yml"):
        return _parse_yaml(text)
    try:
        return json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as json_error:
        try:
            return _parse_yaml(text)
        except ConfigError:
            if text.lstrip().startswith(("{", "[")):
                # It was meant to be JSON: the JSON error is the useful one.
                detail = json_error.args[0] if json_error.args else str(json_error)
                raise ConfigError([f"(file): not valid JSON: {detail}"]) from None
            raise


def _parse_yaml(text: str) -> Any:
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as e:
        raise ConfigError([f"(file): neither valid JSON nor valid YAML: {_one_line(e)}"]) from None
    return {} if data is None else data


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def load(path: str | os.PathLike[str]) -> tuple[Config, list[str]]:
    """Read and resolve the config file; returns ``(config, warnings)``. Raises :class:`ConfigError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ConfigError([f"(file): cannot read {str(p)!r}: {e.strerror or e}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"(file): {str(p)!r} is not UTF-8 text"]) from None
    raw = parse_text(text, suffix=p.suffix)
    return resolve(raw, base_dir=p.resolve().parent)


def resolve(raw: Any, *, base_dir: str | os.PathLike[str], check_files: bool = True
            ) -> tuple[Config, list[str]]:
    """Validate decoded data and build the :class:`Config`. Raises :class:`ConfigError` with every
    problem found; returns the unknown-key warnings with the config."""
    base = Path(base_dir)
    errors: list[str] = []
    warnings: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): expected an object of sections, got {c.got(raw)}"])
    for key in raw:
        if key not in _ORDER:
            warnings.append(f"{key}: unknown section, ignored")

    sections: dict[str, Any] = {}
    for name, (_cls, schema) in _SECTIONS.items():
        section_raw = raw.get(name, {})
        if section_raw is None:
            section_raw = {}
        if not isinstance(section_raw, dict):
            errors.append(f"{name}: expected an object, got {c.got(section_raw)}")
            section_raw = {}
        section_raw, spelled = _apply_aliases(name, section_raw, errors)
        known = {key for key, *_ in schema}
        for key in section_raw:
            if key not in known:
                warnings.append(f"{name}.{key}: unknown key, ignored")
        values: dict[str, Any] = {}
        for key, attr, check, default in schema:
            where = f"{name}.{spelled.get(key, key)}"
            value = section_raw.get(key, default)
            if value is None and default is None:
                values[attr] = None  # filled in by _cross_checks (record.targetPort)
                continue
            try:
                values[attr] = _path(value, base) if check is _PATH else check(value)
            except c.Invalid as e:
                errors.append(f"{where}: {e}")
                values[attr] = None
        sections[name] = values

    pull = _resolve_pull(raw.get("pull", []), errors, warnings)
    _cross_checks(sections, errors, warnings, check_files)
    if errors:
        raise ConfigError(errors)

    built = {name: cls(**sections[name]) for name, (cls, _schema) in _SECTIONS.items()}
    config = Config(pull=pull, base_dir=str(base), **built)
    return config, warnings


def _apply_aliases(section: str, values: dict[str, Any], errors: list[str]
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """Rename alias keys to their canonical key; also returns canonical -> spelling used, so an
    error names the key the user wrote."""
    aliases = _ALIASES.get(section)
    spelled: dict[str, str] = {}
    if not aliases:
        return values, spelled
    values = dict(values)
    for alias, key in aliases.items():
        if alias in values:
            alias_value = values.pop(alias)
            if key in values and values[key] != alias_value:
                errors.append(f"{section}.{alias}: is an alias of {section}.{key}, and the two disagree "
                              f"({c.got(alias_value)} vs {c.got(values[key])}); keep one")
            elif key not in values:
                values[key] = alias_value
                spelled[key] = alias
    return values, spelled


def _path(value: Any, base: Path) -> str:
    if not isinstance(value, str):
        raise c.Invalid(f"expected a file path as a string, got {c.got(value)}")
    if not value:
        return ""
    p = Path(os.path.expanduser(value))
    resolved = p if p.is_absolute() else base / p
    text = os.path.normpath(resolved)
    if value.endswith(("/", os.sep)):
        text += os.sep  # keep the folder look of "./record/"
    return text


def _resolve_pull(raw: Any, errors: list[str], warnings: list[str]) -> tuple[PullPeer, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append(f"pull: expected a list of {{\"ip\": ..., \"port\": ...}}, got {c.got(raw)}")
        return ()
    peers = []
    for i, item in enumerate(raw):
        where = f"pull[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: expected an object {{\"ip\": ..., \"port\": ...}}, got {c.got(item)}")
            continue
        for key in item:
            if key not in ("ip", "port"):
                warnings.append(f"{where}.{key}: unknown key, ignored")
        ok = True
        ip = port = None
        if "ip" not in item:
            errors.append(f"{where}.ip: missing; expected the peer's address")
            ok = False
        else:
            try:
                ip = c.nonempty_string(item["ip"])
            except c.Invalid as e:
                errors.append(f"{where}.ip: {e}")
                ok = False
        try:
            port = c.peer_port(item.get("port", 8554))
        except c.Invalid as e:
            errors.append(f"{where}.port: {e}")
            ok = False
        if ok:
            peers.append(PullPeer(ip=str(ip), port=int(port)))  # type: ignore[arg-type]
    return tuple(peers)


def _cross_checks(s: dict[str, dict[str, Any]], errors: list[str], warnings: list[str],
                  check_files: bool) -> None:
    rec = s["record"]
    if rec["target_port"] is None:
        # Our own RTSP port; 0 ("pick a free port") is replaced by the bound port at run time.
        rec["target_port"] = s["rtsp"]["port"] if s["rtsp"]["port"] is not None else 8554
    w = s["webrtc"]
    if w["min_port"] is not None and w["max_port"] is not None and w["min_port"] > w["max_port"]:
        errors.append(f"webrtc.maxPort: must be >= webrtc.minPort ({w['min_port']}), got {w['max_port']}")
    if w["min_port"] == 0 and w["max_port"] not in (0, None):
        errors.append("webrtc.minPort: 0 (pick a free port) needs webrtc.maxPort 0 too")
    cert, key = w["dtls_certificate_file"], w["dtls_private_key_file"]
    if cert is not None and key is not None and bool(cert) != bool(key):
        missing = "dtlsPrivateKeyFile" if cert else "dtlsCertificateFile"
        errors.append(f"webrtc.{missing}: required when the other of dtlsCertificateFile/"
                      f"dtlsPrivateKeyFile is set (or leave both empty for a self-signed certificate)")
    ws = s["websocket"]
    if ws["ssl"]:
        for key, attr in (("certFile", "cert_file"), ("keyFile", "key_file")):
            if ws[attr] == "":
                errors.append(f"websocket.{key}: required when websocket.ssl is true")
    if check_files:
        for where, value in (("websocket.certFile", ws["cert_file"] if ws["ssl"] else ""),
                             ("websocket.keyFile", ws["key_file"] if ws["ssl"] else ""),
                             ("webrtc.dtlsCertificateFile", w["dtls_certificate_file"]),
                             ("webrtc.dtlsPrivateKeyFile", w["dtls_private_key_file"])):
            if value and not os.path.isfile(value):
                errors.append(f"{where}: file not found: {value}")
    tags = s["log"]["worker_tags"]
    if tags:
        unknown = [t for t in tags if t not in WORKER_TAGS]
        if unknown:
            warnings.append(f"log.workerTags: unknown tags {unknown} are ignored; known: {', '.join(WORKER_TAGS)}")
