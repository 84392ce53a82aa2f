"""An RTSP client on trio: what a cascade pull (SPEC section 6) and a remote recording target use.

Owns :class:`RtspClient`: one TCP connection to any RTSP server (ours, FFmpeg's, a camera's,
gst-rtsp-server), driven through OPTIONS, DESCRIBE, SETUP (TCP interleaved) and PLAY. At PLAY the
caller hands the socket to the media core (:meth:`RtspClient.detach`), which reads the media; the
client then only builds the requests the core writes on that connection (:meth:`keepalive`,
:meth:`teardown`). Framing is :mod:`pms_trio.rtsp.protocol` in the ``CLIENT`` role and the SDP is
:func:`~pms_trio.rtsp.sdp.parse_describe_sdp`: nothing here parses bytes by hand.

Rules:

- Every request has a CSeq (from 1), ``User-Agent``, the caller's extra headers (a pull sends
  ``X-Pms-Cascade: 1``) and, once SETUP answered one, ``Session``. Each reply is awaited at most
  ``timeout`` s; no reply, a closed connection, bytes that are not RTSP, or a status >= 300 raise
  :class:`RtspClientError` (``status`` the server's, or 0 when there was no usable reply).
- 401: the request is sent again once with the credentials of the URL (``rtsp://user:pass@...``):
  Digest (MD5; ``qop=auth`` when offered) when the server offers it, else Basic. The answer is then
  sent with every later request (Digest counts ``nc``). Credentials never appear in a Request-URI,
  and a server that asks again after our answer gets :class:`RtspClientError` 401.
- SETUP asks for ``RTP/AVP/TCP;unicast;interleaved=2i-2i+1`` for the i-th track taken; the pair
  the server answers with is the one used. A server that refuses TCP (461) is an error: pulls are
  TCP only (SPEC section 6), so a pull crosses NATs and firewalls like its control connection.
- Track URLs: an absolute ``a=control`` is used as is; a relative one is joined to the base
  (``Content-Base``, else ``Content-Location``, else the DESCRIBE URL) with one ``/``. PLAY goes to
  the session-level control when the SDP has one other than ``*``, else to the base.
- Keep-alive: ``GET_PARAMETER`` when OPTIONS listed it, else ``OPTIONS``, every half of the
  session timeout the server announced (``Session: id;timeout=N``, 60 s when absent).
- Bytes read past the PLAY reply (media the server sent at once) go with the socket to the core.
"""

from __future__ import annotations

import base64
import re
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import trio

from .. import __version__
from ..rtsp import headers as h
from ..rtsp import protocol as p
from ..rtsp.sdp import SdpError, parse_describe_sdp
from ..sip.digest import DigestError, digest_response, parse_digest

USER_AGENT = f"pms-trio/{__version__}"
DEFAULT_PORT = 554
RECV_SIZE = 65536
DEFAULT_SESSION_TIMEOUT = 60


class RtspClientError(Exception):
    """A request that did not succeed: ``status`` the server's reply (0: no usable reply)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Target:
    """An ``rtsp://[user:pass@]host[:port]/path`` split into what the client needs."""

    host: str
    port: int
    url: str  # without credentials: the Request-URI of DESCRIBE
    user: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Target:
        try:
            parts = urlsplit(url)
            port = parts.port or DEFAULT_PORT
        except ValueError as e:
            raise RtspClientError(0, f"{url[:80]!r} is not a URL ({e})") from None
        if parts.scheme.lower() != "rtsp" or not parts.hostname:
            raise RtspClientError(0, f"{url[:80]!r} is not rtsp://HOST[:PORT]/PATH")
        host = parts.hostname
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        clean = urlunsplit(("rtsp", netloc, parts.path or "/", parts.query, ""))
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(host, port, clean, user, password)


@dataclass(slots=True)
class Description:
    """What DESCRIBE told: the tracks we can take (:func:`parse_describe_sdp` dicts, each with
    ``url``, its SETUP URL), why others were left out, the aggregate URL and the SDP itself."""

    tracks: list[dict[str, Any]]
    skipped: list[str]
    base: str
    play_url: str
    sdp: bytes


@dataclass(slots=True)
class _Auth:
    scheme: str  # "Digest" or "Basic"
    params: dict[str, str] = field(default_factory=dict)
    nc: int = 0


def join_url(base: str, control: str) -> str:
    """A track's URL from the base and its ``a=control`` (module docstring)."""
    if control.lower().startswith("rtsp://"):
        return control
    if not control or control == "*":
        return base
    return base.rstrip("/") + "/" + control.lstrip("/")


_SESSION_CONTROL = re.compile(r"^a=control:(.*)$", re.MULTILINE)


def _session_control(sdp: bytes) -> str | None:
    """The ``a=control`` before the first ``m=`` line, if any."""
    text = sdp.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    head = text.split("\nm=", 1)[0]
    m = _SESSION_CONTROL.search(head)
    return m.group(1).strip() if m else None


class RtspClient:
    def __init__(self, url: str, *, extra_headers: tuple[tuple[str, str], ...] = (), timeout: float = 5.0) -> None:
        self.target = Target.parse(url)
        self.extra_headers = extra_headers
        self.timeout = timeout
        self.session: str | None = None
        self.session_timeout = DEFAULT_SESSION_TIMEOUT
        self.public: set[str] = set()
        self._conn = p.Connection(p.CLIENT)
        self._stream: trio.SocketStream | None = None
        self._cseq = 0
        self._auth: _Auth | None = None
        self._next_channel = 0
        self.peer: str = f"{self.target.host}:{self.target.port}"

    # -- connection

    async def connect(self) -> None:
        try:
            with trio.fail_after(self.timeout):
                self._stream = await trio.open_tcp_stream(self.target.host, self.target.port)
        except trio.TooSlowError:
            raise RtspClientError(0, f"{self.peer}: no connection in {self.timeout:g} s") from None
        except OSError as e:
            raise RtspClientError(0, f"{self.peer}: cannot connect ({e.strerror or e})") from None
        self._stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def aclose(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            with trio.move_on_after(0.5):
                await stream.aclose()

    def detach(self) -> tuple[int, bytes]:
        """Give up the socket: its file descriptor (the caller owns it now) and the bytes read
        past the last reply."""
        if self._stream is None:
            raise RtspClientError(0, "not connected")
        sock = self._stream.socket
        self._stream = None
        trio.lowlevel.notify_closing(sock)  # no task waits on it; drop trio's epoll registration
        return sock.detach(), self._conn.trailing_data

    # -- requests

    def build(self, method: str, uri: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> bytes:
        """The bytes of one request (CSeq, session, credentials added)."""
        self._cseq += 1
        all_headers: list[tuple[str, str]] = [("CSeq", str(self._cseq)), ("User-Agent", USER_AGENT),
                                              *self.extra_headers, *headers]
        if self.session is not None:
            all_headers.append(("Session", self.session))
        authorization = self._authorization(method, uri)
        if authorization is not None:
            all_headers.append(("Authorization", authorization))
        return self._conn.send_request(p.Request(method, uri, headers=tuple(all_headers), body=body))

    async def request(self, method: str, uri: str, headers: tuple[tuple[str, str], ...] = (),
                      body: bytes = b"") -> p.Response:
        """Send one request and return its reply (>= 300 raises; a 401 is answered once)."""
        response = await self._exchange(self.build(method, uri, headers, body), method)
        if response.status == 401 and self._auth is None and self._challenge(response):
            response = await self._exchange(self.build(method, uri, headers, body), method)
        if response.status >= 300:
            detail = response.body.decode("utf-8", "replace").strip()[:200]
            raise RtspClientError(response.status, f"{self.peer}: {method} {uri} -> {response.status} "
                                  f"{response.reason}" + (f" ({detail})" if detail else ""))
        return response

    async def _exchange(self, data: bytes, method: str) -> p.Response:
        if self._stream is None:
            raise RtspClientError(0, "not connected")
        try:
            with trio.fail_after(self.timeout):
                await self._stream.send_all(data)
                while True:
                    event = self._conn.next_event()
                    if event is p.NEED_DATA:
                        self._conn.receive_data(await self._stream.receive_some(RECV_SIZE))
                        continue
                    if isinstance(event, p.Response):
                        return event
                    if isinstance(event, p.ConnectionClosed):
                        raise RtspClientError(0, f"{self.peer}: the server closed the connection during {method}")
                    # interleaved frames before PLAY's reply belong to no track yet: dropped
        except trio.TooSlowError:
            raise RtspClientError(0, f"{self.peer}: no reply to {method} in {self.timeout:g} s") from None
        except p.RemoteProtocolError as e:
            raise RtspClientError(0, f"{self.peer}: the reply to {method} is not RTSP ({e.message})") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            raise RtspClientError(0, f"{self.peer}: connection lost during {method} ({e})") from None

    # -- the steps of a pull

    async def options(self) -> None:
        response = await self.request("OPTIONS", self.target.url)
        self.public = {m.strip().upper() for m in (response.header("Public") or "").split(",") if m.strip()}

    async def describe(self) -> Description:
        response = await self.request("DESCRIBE", self.target.url, (("Accept", "application/sdp"),))
        try:
            tracks, skipped = parse_describe_sdp(response.body)
        except SdpError as e:
            raise RtspClientError(e.status_hint, f"{self.peer}: DESCRIBE {self.target.url}: {e.message}") from None
        base = response.header("Content-Base") or response.header("Content-Location") or self.target.url
        for t in tracks:
            t["url"] = join_url(base, t.get("control_uri") or t["control"])
        session_control = _session_control(response.body)
        play_url = join_url(base, session_control) if session_control else base
        return Description(tracks, skipped, base, play_url, response.body)

    async def setup(self, track: dict[str, Any]) -> tuple[int, int]:
        """SETUP one track over TCP; returns its interleaved (RTP, RTCP) channels."""
        ask = (self._next_channel, self._next_channel + 1)
        transport = f"RTP/AVP/TCP;unicast;interleaved={ask[0]}-{ask[1]}"
        response = await self.request("SETUP", track["url"], (("Transport", transport),))
        session = response.header("Session")
        if session is None and self.session is None:
            raise RtspClientError(0, f"{self.peer}: SETUP answered without a Session header")
        if session is not None:
            try:
                session_id, timeout = h.parse_session(session)
            except p.RemoteProtocolError as e:
                raise RtspClientError(0, f"{self.peer}: SETUP: bad Session header ({e.message})") from None
            self.session = session_id
            if timeout:
                self.session_timeout = timeout
        channels = ask
        answered = response.header("Transport")
        if answered:
            try:
                spec = h.parse_transport(answered)[0]
            except p.RemoteProtocolError as e:
                raise RtspClientError(461, f"{self.peer}: SETUP {track['url']}: {e.message}") from None
            if not spec.is_tcp:
                raise RtspClientError(461, f"{self.peer}: SETUP {track['url']}: the server did not accept TCP")
            if spec.interleaved is not None:
                channels = spec.interleaved
        self._next_channel = max(self._next_channel, channels[1]) + 1
        return channels

    async def play(self, url: str) -> p.Response:
        return await self.request("PLAY", url, (("Range", "npt=0.000-"),))

    def keepalive(self) -> bytes:
        method = "GET_PARAMETER" if "GET_PARAMETER" in self.public else "OPTIONS"
        return self.build(method, self.target.url)

    def teardown(self) -> bytes:
        return self.build("TEARDOWN", self.target.url)

    @property
    def keepalive_interval(self) -> float:
        return max(1.0, self.session_timeout / 2)

    # -- authentication

    def _challenge(self, response: p.Response) -> bool:
        """Take the 401's challenge when the URL has credentials; False when we cannot answer."""
        if self.target.user is None:
            return False
        offers = [v for k, v in response.headers if k.lower() == "www-authenticate"]
        for value in offers:
            if value.strip().lower().startswith("digest"):
                try:
                    params = parse_digest(value)
                except DigestError:
                    continue
                if params.get("algorithm", "MD5").upper() != "MD5" or "nonce" not in params:
                    continue
                self._auth = _Auth("Digest", params)
                return True
        if any(v.strip().lower().startswith("basic") for v in offers):
            self._auth = _Auth("Basic")
            return True
        return False

    def _authorization(self, method: str, uri: str) -> str | None:
        auth = self._auth
        if auth is None or self.target.user is None:
            return None
        user, password = self.target.user, self.target.password or ""
        if auth.scheme == "Basic":
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        realm, nonce = auth.params.get("realm", ""), auth.params["nonce"]
        fields = [f'username="{_quote(user)}"', f'realm="{_quote(realm)}"', f'nonce="{_quote(nonce)}"',
                  f'uri="{_quote(uri)}"']
        qops = {q.strip() for q in auth.params.get("qop", "").split(",")}
        if "auth" in qops:
            auth.nc += 1
            nc, cnonce = f"{auth.nc:08x}", secrets.token_hex(8)
            answer = digest_response(method=method, uri=uri, username=user, realm=realm, password=password,
                                     nonce=nonce, qop="auth", nc=nc, cnonce=cnonce)
            fields += [f'response="{answer}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            answer = digest_response(method=method, uri=uri, username=user, realm=realm, password=password,
                                     nonce=nonce)
            fields.append(f'response="{answer}"')
        if "opaque" in auth.params:
            fields.append(f'opaque="{_quote(auth.params["opaque"])}"')
        fields.append("algorithm=MD5")
        return "Digest " + ", ".join(fields)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
