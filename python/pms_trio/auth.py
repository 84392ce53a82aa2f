"""Tokens (SPEC section 10): who may publish or play which stream, and who may call the APIs.

Owns :class:`Auth` (the configured ``auth.jwtSecret`` and ``auth.apiToken`` and their checks),
:func:`sign` (what ``pms-trio token`` prints and what a cascade pull sends) and
:func:`stream_matches` (a token's ``stream`` claim against a name). It does no I/O and reads the
clock only through its callers' ``now``; every service asks it the same way.

Rules (where the spec is silent, the decision is written here):

- JWTs are HS256 only, checked by PyJWT with ``algorithms=["HS256"]``: ``none``, ``RS256`` (also
  with the secret as its "public key") and every other algorithm are refused. ``exp`` is required;
  a token whose ``nbf`` or ``iat`` lies in the future (beyond :data:`LEEWAY` s) is refused. A token
  longer than :data:`MAX_TOKEN` bytes is refused before it is parsed.
- Claims: ``stream`` (a name, or a glob where ``*`` is any run of characters but ``/`` and ``?``
  one character but ``/``: ``cam*`` allows ``cam10`` but not ``cam/1``), ``publish`` and ``play``
  (true to allow that action; absent is false).
- Missing, malformed, badly signed or expired: :class:`AuthError` 401; valid but for another stream
  or action: 403.
- RTSP Digest credentials (:func:`rtsp_credentials`): a digest never carries its password, and
  FFmpeg keeps at most 127 bytes of ``user:password``, so a JWT cannot travel there. Instead the
  user name carries the claims, ``STREAM.ACTIONS.EXP`` (``cam*.play.1796476876``; ACTIONS is
  ``play``, ``publish`` or ``both``), and the password is derived from it with the secret
  (HMAC-SHA256, 16 bytes, base64url): the server recomputes the password from the user name and
  checks the digest with it. ``pms-trio token --rtsp`` prints such a pair.
- ``auth.apiToken``: compared in constant time (SHA-256 of both sides, then
  ``hmac.compare_digest``); a source that keeps failing waits before its answer (the SIP digest's
  :class:`~pms_trio.sip.digest.FailureThrottle`: three free, then 1 s doubling to 32 s).
- Without ``auth.jwtSecret`` every publish and play is allowed; without ``auth.apiToken`` every API
  call is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import jwt

from .sip.digest import FailureThrottle

Action = Literal["publish", "play"]
MAX_TOKEN = 4096
LEEWAY = 30.0


class AuthError(Exception):
    """Refused: ``status`` 401 (no usable token) or 403 (a token that does not allow this)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    for c in pattern:
        parts.append("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c))
    return re.compile("".join(parts), re.DOTALL)


def stream_matches(pattern: str, name: str) -> bool:
    return _glob(pattern).fullmatch(name) is not None


def sign(secret: str, stream: str, *, publish: bool = False, play: bool = False, ttl: float = 3600.0,
         now: float | None = None) -> str:
    """An HS256 token for ``stream`` (a name or a glob) allowing the given actions for ``ttl`` s."""
    issued = int(time.time() if now is None else now)
    claims = {"stream": stream, "publish": publish, "play": play, "iat": issued, "exp": issued + int(ttl)}
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass
class Auth:
    jwt_secret: str = ""
    api_token: str = ""
    throttle: FailureThrottle = field(default_factory=FailureThrottle)

    @property
    def tokens_needed(self) -> bool:
        return bool(self.jwt_secret)

    def check(self, token: str | None, stream: str, action: Action, now: float | None = None) -> None:
        """Allow ``action`` on ``stream`` with ``token``, or raise :class:`AuthError`."""
        if not self.jwt_secret:
            return
        self.check_claims(self.claims(token, now), stream, action)

    def check_claims(self, claims: dict[str, Any], stream: str, action: Action) -> None:
        pattern = claims.get("stream")
        if not isinstance(pattern, str) or not stream_matches(pattern, stream):
            raise AuthError(403, f"the token does not allow stream {stream}")
        if claims.get(action) is not True:
            raise AuthError(403, f"the token does not allow {action} of {stream}")

    def claims(self, token: str | None, now: float | None = None) -> dict[str, Any]:
        """The verified claims of ``token`` (401 unless it is a good HS256 token of ours)."""
        if not token:
            raise AuthError(401, "a token is needed (auth.jwtSecret is set)")
        if len(token) > MAX_TOKEN:
            raise AuthError(401, f"the token is over {MAX_TOKEN} bytes")
        try:
            claims = jwt.decode(token, self.jwt_secret, algorithms=["HS256"], leeway=LEEWAY,
                                options={"require": ["exp", "stream"]})
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "the token has expired") from None
        except jwt.InvalidTokenError as e:
            raise AuthError(401, f"the token is not valid ({type(e).__name__})") from None
        issued = claims.get("iat")
        moment = time.time() if now is None else now
        if isinstance(issued, (int, float)) and issued > moment + LEEWAY:
            raise AuthError(401, "the token is issued in the future")
        return dict(claims)

    def digest_user(self, user: str, now: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """For an RTSP Digest user name made by :func:`rtsp_credentials`: (its password, its claims);
        None for a user name of another shape. Expired: :class:`AuthError` 401."""
        if not self.jwt_secret:
            return None
        stream, dot, rest = user.rpartition(".")
        stream, dot2, actions = stream.rpartition(".")
        if not (dot and dot2 and stream and rest.isdigit() and actions in _ACTIONS):
            return None
        if int(rest) < (time.time() if now is None else now):
            raise AuthError(401, "the RTSP credentials have expired")
        play, publish = _ACTIONS[actions]
        return _derive(self.jwt_secret, user), {"stream": stream, "play": play, "publish": publish,
                                                "exp": int(rest)}

    def check_api(self, authorization: str | None, source: str, now: float) -> tuple[bool, float]:
        """``auth.apiToken`` against an ``Authorization: Bearer`` header: (allowed, seconds to wait
        before answering). A source that keeps failing waits, whatever it sends, so a brute force
        cannot run in parallel around the delay."""
        if not self.api_token:
            return True, 0.0
        given = ""
        if authorization and authorization[:7].lower() == "bearer ":
            given = authorization[7:].strip()
        ok = hmac.compare_digest(hashlib.sha256(given.encode("utf-8", "replace")).digest(),
                                 hashlib.sha256(self.api_token.encode()).digest())
        delay = self.throttle.delay(source, now)
        if ok:
            self.throttle.record_success(source)
            return True, delay
        return False, max(delay, self.throttle.record_failure(source, now))


_ACTIONS = {"play": (True, False), "publish": (False, True), "both": (True, True)}


def _derive(secret: str, user: str) -> str:
    mac = hmac.new(secret.encode(), b"pms-trio-rtsp:" + user.encode("utf-8", "replace"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).rstrip(b"=").decode("ascii")


def rtsp_credentials(secret: str, stream: str, *, publish: bool = False, play: bool = False, ttl: float = 3600.0,
                     now: float | None = None) -> tuple[str, str]:
    """(user, password) for RTSP Digest (or Basic) allowing the actions on ``stream`` for ``ttl`` s."""
    actions = "both" if publish and play else "publish" if publish else "play"
    user = f"{stream}.{actions}.{int((time.time() if now is None else now) + ttl)}"
    return user, _derive(secret, user)


def bearer(headers: dict[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header (names in lower case), or None."""
    value = headers.get("authorization", "")
    return value[7:].strip() or None if value[:7].lower() == "bearer " else None
