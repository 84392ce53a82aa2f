"""Tokens (SPEC section 10) without sockets: what :class:`pms_trio.auth.Auth` accepts and refuses."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from pms_trio.auth import MAX_TOKEN, Auth, AuthError, sign, stream_matches

SECRET = "a-secret-of-at-least-thirty-two-bytes!!"


def _refused(auth: Auth, token: str | None, stream: str = "cam1", action: str = "play") -> int:
    with pytest.raises(AuthError) as e:
        auth.check(token, stream, action)  # type: ignore[arg-type]
    return e.value.status


def test_good_tokens_and_what_they_allow() -> None:
    auth = Auth(SECRET)
    auth.check(sign(SECRET, "cam1", play=True), "cam1", "play")
    auth.check(sign(SECRET, "cam*", publish=True), "cam10", "publish")
    assert _refused(auth, sign(SECRET, "cam1", play=True), "cam10") == 403  # cam1 is not cam10
    assert _refused(auth, sign(SECRET, "cam1", play=True), "cam1", "publish") == 403
    assert _refused(auth, sign(SECRET, "cam*", play=True), "cam/1") == 403  # a glob stops at /
    Auth("").check(None, "anything", "publish")  # no secret: open


def test_globs() -> None:
    assert stream_matches("cam*", "cam") and stream_matches("cam*", "cam-7")
    assert not stream_matches("cam*", "cam/7") and not stream_matches("cam?", "cam/")
    assert stream_matches("a.b", "a.b") and not stream_matches("a.b", "axb")  # only * and ? are special
    assert stream_matches("*", "x") and not stream_matches("*", "a/b")


def test_bad_tokens_are_401() -> None:
    auth = Auth(SECRET)
    now = int(time.time())
    assert _refused(auth, None) == 401
    assert _refused(auth, sign(SECRET, "cam1", play=True, ttl=-120)) == 401  # expired
    assert _refused(auth, sign("another-secret-of-thirty-two-bytes!!", "cam1", play=True)) == 401
    future = jwt.encode({"stream": "cam1", "play": True, "iat": now + 3600, "exp": now + 7200}, SECRET,
                        algorithm="HS256")
    assert _refused(auth, future) == 401
    not_before = jwt.encode({"stream": "cam1", "play": True, "nbf": now + 3600, "exp": now + 7200}, SECRET,
                            algorithm="HS256")
    assert _refused(auth, not_before) == 401
    no_exp = jwt.encode({"stream": "cam1", "play": True}, SECRET, algorithm="HS256")
    assert _refused(auth, no_exp) == 401
    good = sign(SECRET, "cam1", play=True)
    assert _refused(auth, good[:-5]) == 401  # truncated signature
    assert _refused(auth, good + "x" * MAX_TOKEN) == 401  # oversized


def _b64(document: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


def test_algorithm_confusion_is_refused() -> None:
    auth = Auth(SECRET)
    claims = {"stream": "cam1", "play": True, "exp": int(time.time()) + 60}
    none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    assert _refused(auth, none) == 401
    import hashlib
    import hmac

    head_body = f"{_b64({'alg': 'HS512', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(SECRET.encode(), head_body.encode(), hashlib.sha512).digest()
    assert _refused(auth, head_body + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()) == 401
    rs = f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(SECRET.encode(), rs.encode(), hashlib.sha256).digest()  # the secret used as an RSA "key"
    assert _refused(auth, rs + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()) == 401


def test_api_token_and_its_throttle() -> None:
    auth = Auth(api_token="api-secret")
    assert auth.check_api("Bearer api-secret", "10.0.0.1", 0.0) == (True, 0.0)
    assert auth.check_api("bearer api-secret", "10.0.0.1", 0.0)[0]
    results = [auth.check_api("Bearer wrong", "10.0.0.2", float(i)) for i in range(6)]
    assert [ok for ok, _ in results] == [False] * 6
    assert [d for _, d in results][:3] == [0.0, 0.0, 0.0] and results[-1][1] > 0
    ok, delay = auth.check_api("Bearer api-secret", "10.0.0.2", 6.0)
    assert ok and delay > 0  # a throttled source waits even when right
    assert auth.check_api("Bearer api-secret", "10.0.0.2", 7.0) == (True, 0.0)  # then forgiven
    assert auth.check_api(None, "10.0.0.3", 0.0)[0] is False
    assert Auth().check_api(None, "x", 0.0) == (True, 0.0)
