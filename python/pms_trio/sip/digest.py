"""HTTP Digest authentication for SIP (RFC 2617, RFC 7616 with MD5; RFC 3261 22), sans-IO.

Owns: :class:`DigestAuthenticator` (challenges with a fresh, self-validating nonce that expires,
and the verification of an ``Authorization`` header), :func:`digest_response` (the hash itself, also
used by tests and a client), :func:`parse_digest` (the ``Digest k=v, k="v"`` parameter list) and
:class:`FailureThrottle` (per-source failure counting: how long to wait before answering the next
attempt). No I/O, no clock (callers pass ``now``), nothing of the package.

Rules:

- The hash uses the ``uri`` parameter from the Authorization header verbatim, never the
  Request-URI: the standard's example hashes ``sip:<serverID>@<ip>:<port>``, Hikvision NVRs send
  ``sip:<serverID>@<domain>``, sipp sends the remote host.
- With ``qop=auth`` (we offer it when ``qop=True``; a device may also use it unasked only if we
  offered it): response = MD5(HA1:nonce:nc:cnonce:auth:HA2); without: MD5(HA1:nonce:HA2). Both
  are accepted. ``algorithm`` absent or MD5 only (Dahua ignores a challenge without ``algorithm=MD5``,
  so we always send it).
- Nonces are ``<issued hex>.<random hex>.<hmac>``: we keep no table; a nonce we did not issue, or
  issued more than ``nonce_ttl`` ago, is stale (answer a new 401 with ``stale=true``), not forbidden.
  nc replay is not tracked (the nonce lifetime bounds replays).
- Verdicts: ``OK`` (200), ``STALE`` or ``MISSING`` (401 with a new challenge), ``FORBIDDEN``
  (403: a well-formed answer with the wrong password, user or realm), ``MALFORMED`` (400).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)')


class DigestError(Exception):
    """An Authorization header we cannot read (answer 400)."""

    status_hint = 400


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def digest_response(*, method: str, uri: str, username: str, realm: str, password: str, nonce: str,
                    qop: str | None = None, nc: str | None = None, cnonce: str | None = None) -> str:
    """The ``response`` value (RFC 2617 3.2.2.1, MD5)."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def parse_digest(value: str) -> dict[str, str]:
    """The parameters of ``Digest a=b, c="d"`` (names lower-cased, quotes removed)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"not a Digest header: {value[:40]!r}")
    params: dict[str, str] = {}
    pos, rest = 0, rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            raise DigestError(f"bad Digest parameter at {rest[pos:pos + 30]!r}")
        raw = m.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(m.group(1).lower(), raw)
        pos = m.end()
    return params


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    opaque: str
    qop: bool = False
    stale: bool = False

    def header_value(self) -> str:
        """The ``WWW-Authenticate`` value."""
        value = f'Digest realm="{self.realm}", nonce="{self.nonce}", opaque="{self.opaque}", algorithm=MD5'
        if self.qop:
            value += ', qop="auth"'
        if self.stale:
            value += ", stale=true"
        return value


class Verdict(Enum):
    OK = 200
    MISSING = 401
    STALE = 4010
    FORBIDDEN = 403
    MALFORMED = 400

    @property
    def status(self) -> int:
        return 401 if self is Verdict.STALE else self.value


@dataclass(frozen=True, slots=True)
class Verification:
    verdict: Verdict
    username: str | None = None
    reason: str = ""


class DigestAuthenticator:
    """Issues challenges and checks answers for one realm."""

    def __init__(self, realm: str, *, qop: bool = False, nonce_ttl: float = 300.0,
                 secret: bytes | None = None) -> None:
        self.realm = realm
        self.qop = qop
        self.nonce_ttl = nonce_ttl
        self._secret = secret or secrets.token_bytes(32)
        self.opaque = hashlib.sha256(self._secret + b"opaque").hexdigest()[:32]

    def challenge(self, now: float, *, stale: bool = False) -> Challenge:
        issued = f"{int(now * 1000):x}.{secrets.token_hex(8)}"
        mac = hmac.new(self._secret, issued.encode(), hashlib.sha256).hexdigest()[:16]
        return Challenge(self.realm, f"{issued}.{mac}", self.opaque, self.qop, stale)

    def nonce_fresh(self, nonce: str, now: float) -> bool:
        issued, _, mac = nonce.rpartition(".")
        good = hmac.new(self._secret, issued.encode(), hashlib.sha256).hexdigest()[:16]
        if not issued or not hmac.compare_digest(mac.encode(), good.encode()):  # str: ASCII only
            return False
        try:
            at = int(issued.split(".")[0], 16) / 1000
        except ValueError:
            return False
        return at - 1.0 <= now <= at + self.nonce_ttl

    def verify(self, method: str, authorization: str | None, password: str, now: float, *,
               username: str | None = None) -> Verification:
        """Check an Authorization header against ``password`` (and ``username`` when given: in
        GB28181 the device ID from From)."""
        if authorization is None:
            return Verification(Verdict.MISSING, reason="no Authorization")
        try:
            params = parse_digest(authorization)
        except DigestError as e:
            return Verification(Verdict.MALFORMED, reason=str(e))
        user = params.get("username")
        for needed in ("username", "realm", "nonce", "uri", "response"):
            if not params.get(needed):
                return Verification(Verdict.MALFORMED, user, f"no {needed} in Authorization")
        algorithm = params.get("algorithm", "MD5")
        if algorithm.upper() != "MD5":
            return Verification(Verdict.FORBIDDEN, user, f"algorithm {algorithm} is not MD5")
        if params["realm"] != self.realm:
            return Verification(Verdict.FORBIDDEN, user, f"realm {params['realm']!r} is not ours")
        if username is not None and user != username:
            return Verification(Verdict.FORBIDDEN, user, f"user {user!r} is not {username!r}")
        if not self.nonce_fresh(params["nonce"], now):
            return Verification(Verdict.STALE, user, "nonce expired or not ours")
        qop = params.get("qop")
        if qop is not None and (qop.lower() != "auth" or not params.get("nc") or not params.get("cnonce")):
            return Verification(Verdict.MALFORMED, user, "qop needs auth, nc and cnonce")
        expected = digest_response(method=method, uri=params["uri"], username=params["username"],
                                   realm=params["realm"], password=password, nonce=params["nonce"],
                                   qop=qop, nc=params.get("nc"), cnonce=params.get("cnonce"))
        if not hmac.compare_digest(expected.encode(), params["response"].lower().encode()):
            return Verification(Verdict.FORBIDDEN, user, "wrong digest response")
        return Verification(Verdict.OK, user)


class FailureThrottle:
    """How long to hold the answer to a source that keeps failing: 0 for the first ``free``
    failures, then ``base * 2**k`` seconds capped at ``cap``. A source is forgotten after
    ``forget_after`` seconds without failing, or on success; at most ``max_sources`` are tracked
    (the oldest is dropped), so memory stays bounded under a spoofed flood."""

    def __init__(self, *, free: int = 3, base: float = 1.0, cap: float = 32.0,
                 forget_after: float = 600.0, max_sources: int = 10_000) -> None:
        self.free, self.base, self.cap = free, base, cap
        self.forget_after, self.max_sources = forget_after, max_sources
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def failures(self, source: str, now: float) -> int:
        entry = self._failures.get(source)
        if entry is None or now - entry[1] > self.forget_after:
            return 0
        return entry[0]

    def record_failure(self, source: str, now: float) -> float:
        """Count one failure; the delay to apply before answering it."""
        count = self.failures(source, now) + 1
        self._failures.pop(source, None)
        self._failures[source] = (count, now)
        while len(self._failures) > self.max_sources:
            self._failures.popitem(last=False)
        return self.delay(source, now)

    def record_success(self, source: str) -> None:
        self._failures.pop(source, None)

    def delay(self, source: str, now: float) -> float:
        extra = self.failures(source, now) - self.free
        if extra <= 0:
            return 0.0
        return min(self.cap, self.base * 2 ** min(extra - 1, 30))
