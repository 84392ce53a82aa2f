"""SIP header values (RFC 3261 sections 19, 20, 25): :class:`Via`, :class:`SipUri`, :class:`NameAddr`
(From/To/Contact/Route) and their parsers, and :func:`split_commas` for comma-separated values. Pure
string work: no I/O; a value we cannot read raises :class:`~.errors.SipParseError`. Used by
``sip.message`` (which re-exports these names) and the layers above it."""

from __future__ import annotations

import functools

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from .errors import SipParseError

_TOKEN = re.compile(r"[!%'*+._`~0-9A-Za-z-]+")


def split_commas(value: str) -> list[str]:
    """Split a header value on commas outside double quotes and angle brackets."""
    if '"' not in value and "<" not in value:  # the common case (Via): a plain split says the same
        return [p for p in (part.strip() for part in value.split(",")) if p]
    parts: list[str] = []
    current: list[str] = []
    quoted = angle = escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            angle = True
        elif not quoted and ch == ">":
            angle = False
        elif ch == "," and not quoted and not angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    params = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        params.append((name.strip().lower(), value.strip().strip('"') if eq else None))
    return tuple(params)


def _format_params(params: Iterable[tuple[str, str | None]]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _param(params: tuple[tuple[str, str | None], ...], name: str) -> str | None:
    for key, value in params:
        if key == name:
            return "" if value is None else value
    return None


def _split_hostport(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host:
            raise SipParseError(f"bad IPv6 reference {text!r}")
        port_text = rest[1:] if rest.startswith(":") else (rest or None)
        host = f"[{host}]"
    else:
        host, colon, port_text_s = text.partition(":")
        port_text = port_text_s if colon else None
    if not host or any(c in host for c in " \t<>\"@;,"):
        raise SipParseError(f"bad host {text!r}")
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise SipParseError(f"bad port in {text!r}")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        """The parameter's value, ``""`` for a flag (``;rport``), None when absent."""
        return _param(self.params, name.lower())

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_param(self, name: str, value: str | None) -> Via:
        """This Via with ``name`` set (replaced in place, or appended)."""
        name = name.lower()
        if any(k == name for k, _ in self.params):
            params = tuple((k, value) if k == name else (k, v) for k, v in self.params)
        else:
            params = (*self.params, (name, value))
        return Via(self.transport, self.host, self.port, params)

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{_format_params(self.params)}"


def parse_via(value: str) -> list[Via]:
    """Every Via in one header value (comma-separated values allowed)."""
    return list(_parse_via(value))


@functools.lru_cache(maxsize=4096)
def _parse_via(value: str) -> tuple[Via, ...]:
    # Memoised: a request's top Via is read several times on its way through the transaction layer
    # and the service (stamp, key, destination, answer); the values are frozen, and a failure is
    # not cached (lru_cache keeps results only).
    vias = []
    for part in split_commas(value):
        proto, _, rest = part.partition(" ")
        pieces = [p.strip() for p in proto.split("/")]
        if len(pieces) != 3 or pieces[0].upper() != "SIP" or not pieces[2] or not _TOKEN.fullmatch(pieces[2]):
            raise SipParseError(f"not a Via (SIP/2.0/UDP host;branch=...): {part[:60]!r}")
        sent_by, _, params = rest.strip().partition(";")
        host, port = _split_hostport(sent_by)
        vias.append(Via(pieces[2].upper(), host, port, _parse_params(params)))
    if not vias:
        raise SipParseError("an empty Via")
    return tuple(vias)


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:user@host:port;params`` (headers after ``?`` are kept in ``params`` text untouched)."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        return _param(self.params, name.lower())

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}:{user}{self.host}{port}{_format_params(self.params)}"


@functools.lru_cache(maxsize=4096)
def parse_uri(text: str) -> SipUri:
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips", "tel"):
        raise SipParseError(f"not a SIP URI: {text[:60]!r}")
    rest = rest.split("?", 1)[0]
    userinfo, at, hostpart = rest.rpartition("@")
    user = userinfo.split(":", 1)[0] if at else None
    hostport, _, params = hostpart.partition(";")
    host, port = _split_hostport(hostport)
    return SipUri(scheme.lower(), user, host, port, _parse_params(params))


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From/To/Contact/Route: ``"display" <uri>;tag=...`` or a bare ``uri;tag=...``."""

    uri: str
    display: str = ""
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        return _param(self.params, name.lower())

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    @property
    def sip_uri(self) -> SipUri:
        return parse_uri(self.uri)

    def with_tag(self, tag: str) -> NameAddr:
        params = tuple((k, v) for k, v in self.params if k != "tag")
        return replace(self, params=(*params, ("tag", tag)))

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return f"{display}<{self.uri}>{_format_params(self.params)}"


@functools.lru_cache(maxsize=4096)
def parse_name_addr(value: str) -> NameAddr:
    """Memoised like :func:`parse_via` (From and To are read for every tag, user and answer)."""
    value = value.strip()
    if "<" in value:
        display, _, rest = value.partition("<")
        uri, close, params = rest.partition(">")
        if not close or not uri.strip():
            raise SipParseError(f"unclosed <uri> in {value[:60]!r}")
        display = display.strip().strip('"')
    else:  # a bare URI: its parameters belong to the header (RFC 3261 20.10)
        uri, _, params = value.partition(";")
        display = ""
        if not uri.strip():
            raise SipParseError("an empty address")
    return NameAddr(uri.strip(), display, _parse_params(params))
