"""Tokens on RTSP (SPEC section 10), sans-IO: where an RTSP client puts its token, and the 401.

Owns :class:`RtspAuth`: given a DESCRIBE (play) or ANNOUNCE (publish) request, it finds the token
and asks :class:`~pms_trio.auth.Auth` whether it allows the action on the stream, or raises the
:class:`~pms_trio.textframe.RemoteProtocolError` to answer (401 with ``WWW-Authenticate`` challenges
for Basic and Digest, or 403). It does no I/O and reads the clock only through ``now``.

Where a token may be (the first found wins):

- ``?token=JWT`` in the request URL (``rtsp://host/cam?token=...``: what a player can always do);
- Basic authentication: the password is the token (any user name): ``rtsp://user:JWT@host/cam``;
- Digest (or Basic) with the credentials of :func:`~pms_trio.auth.rtsp_credentials` (``pms-trio
  token --rtsp``): the user name carries the claims and the password is derived from it with the
  secret, so the server can check a digest (which never carries its password) and the pair fits
  FFmpeg's 127 bytes of ``user:password``. A Digest whose user name is a whole JWT (and password
  the same JWT) is accepted too. Digests are checked against nonces we issued
  (:class:`~pms_trio.sip.digest.DigestAuthenticator`, realm ``pms-trio``).

A 401 offers both ``Digest`` and ``Basic`` (FFmpeg answers the Digest one, GStreamer either).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import Any
from urllib.parse import parse_qs

from ..auth import Action, Auth, AuthError
from ..sip.digest import DigestAuthenticator, DigestError, Verdict, parse_digest
from ..textframe import RemoteProtocolError
from .protocol import Request

REALM = "pms-trio"


class RtspAuth:
    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        self.digest = DigestAuthenticator(REALM, qop=False)

    @property
    def enabled(self) -> bool:
        return self.auth.tokens_needed

    def check(self, request: Request, query: str, stream: str, action: Action, now: float) -> None:
        """Allow ``action`` on ``stream``, or raise the reply (401 with challenges, or 403)."""
        if not self.enabled:
            return
        try:
            found = self._token(request, query, now)
            if isinstance(found, dict):
                self.auth.check_claims(found, stream, action)
            else:
                self.auth.check(found, stream, action)
        except AuthError as e:
            if e.status == 401:
                raise RemoteProtocolError(e.message, 401, headers=self._challenges(now)) from None
            raise RemoteProtocolError(e.message, 403) from None

    def _token(self, request: Request, query: str, now: float) -> str | dict[str, Any] | None:
        """A JWT, or the claims of RTSP credentials already checked, or None."""
        for value in parse_qs(query, keep_blank_values=False).get("token", []):
            return value
        header = request.header("Authorization")
        if not header:
            return None
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(rest.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise RemoteProtocolError("Authorization: Basic is not base64 of user:password", 400) from None
            derived = self.auth.digest_user(user, time.time())
            if derived is not None:
                if not hmac.compare_digest(derived[0].encode(), password.encode("utf-8", "replace")):
                    raise AuthError(401, "wrong password for these RTSP credentials")
                return derived[1]
            return password or user or None
        if scheme.lower() == "digest":
            try:
                user = parse_digest(header).get("username", "")
            except DigestError as e:
                raise RemoteProtocolError(f"Authorization: {e}", 400) from None
            derived = self.auth.digest_user(user, time.time())
            password = derived[0] if derived is not None else user
            verdict = self.digest.verify(request.method, header, password, now).verdict
            if verdict is Verdict.OK:
                return derived[1] if derived is not None else user
            if verdict is Verdict.MALFORMED:
                raise RemoteProtocolError("Authorization: Digest is missing a parameter", 400)
            stale = verdict is Verdict.STALE
            raise RemoteProtocolError("the digest does not match (use the pair pms-trio token --rtsp prints)",
                                      401, headers=self._challenges(now, stale=stale))
        return None

    def _challenges(self, now: float, *, stale: bool = False) -> tuple[tuple[str, str], ...]:
        return (("WWW-Authenticate", self.digest.challenge(now, stale=stale).header_value()),
                ("WWW-Authenticate", f'Basic realm="{REALM}"'))
