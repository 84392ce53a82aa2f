"""sip.digest: RFC 2617's example vector, the device texts' Authorization headers (Hikvision without
qop, Dahua with qop=auth and a folded header, sipp with the remote host as uri), nonce expiry, 403 on
a wrong password, 400 on garbage, and the per-source failure throttle."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pms_trio.sip import digest as d
from pms_trio.sip import message as m

DATA = Path(__file__).parents[1] / "data" / "sip"
REALM = "3402000000"
SECRET = b"pms-trio-test-secret"  # tests/data/sip nonces were issued with it at t=1_700_000_000
ISSUED = 1_700_000_000.0
PASSWORD = "12345678"


def load(name: str) -> m.Request:
    request = m.parse_datagram((DATA / name).read_bytes())
    assert isinstance(request, m.Request)
    return request


def test_rfc2617_example():
    assert d.digest_response(method="GET", uri="/dir/index.html", username="Mufasa", realm="testrealm@host.com",
                             password="Circle Of Life", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth",
                             nc="00000001", cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_rfc2069_style_without_qop():
    # MD5(MD5(user:realm:pass):nonce:MD5(method:uri)) computed independently
    import hashlib

    def h(s):
        return hashlib.md5(s.encode()).hexdigest()

    expected = h(f"{h('dev:3402000000:pw')}:abc:{h('REGISTER:sip:34020000002000000001@3402000000')}")
    assert d.digest_response(method="REGISTER", uri="sip:34020000002000000001@3402000000", username="dev",
                             realm=REALM, password="pw", nonce="abc") == expected


@pytest.mark.parametrize("name", ["hikvision_register_auth.txt", "dahua_register_auth_qop.txt",
                                  "sipp_register_auth.txt", "hikvision_unregister.txt"])
def test_device_authorizations_verify(name):
    request = load(name)
    auth = d.DigestAuthenticator(REALM, secret=SECRET)
    device = request.from_.sip_uri.user
    result = auth.verify("REGISTER", request.header("Authorization"), PASSWORD, ISSUED + 10, username=device)
    assert result.verdict is d.Verdict.OK and result.username == device
    wrong = auth.verify("REGISTER", request.header("Authorization"), "87654321", ISSUED + 10, username=device)
    assert wrong.verdict is d.Verdict.FORBIDDEN and wrong.verdict.status == 403
    other = auth.verify("REGISTER", request.header("Authorization"), PASSWORD, ISSUED + 10,
                        username="34020000001320000099")
    assert other.verdict is d.Verdict.FORBIDDEN


def test_sipp_uri_is_hashed_not_the_request_uri():
    request = load("sipp_register_auth.txt")
    params = d.parse_digest(request.header("Authorization"))
    assert params["uri"] == "sip:192.168.1.10:5060" != request.uri
    bad = d.digest_response(method="REGISTER", uri=request.uri, username=params["username"], realm=REALM,
                            password=PASSWORD, nonce=params["nonce"])
    assert bad != params["response"]


def test_stale_and_foreign_nonces_are_401_not_403():
    request = load("hikvision_register_auth.txt")
    auth = d.DigestAuthenticator(REALM, secret=SECRET, nonce_ttl=300)
    late = auth.verify("REGISTER", request.header("Authorization"), PASSWORD, ISSUED + 301)
    assert late.verdict is d.Verdict.STALE and late.verdict.status == 401
    stranger = d.DigestAuthenticator(REALM, secret=b"another")
    assert stranger.verify("REGISTER", request.header("Authorization"), PASSWORD, ISSUED).verdict is d.Verdict.STALE
    assert auth.verify("REGISTER", None, PASSWORD, ISSUED).verdict is d.Verdict.MISSING


def test_challenge_is_fresh_each_time_and_verifies():
    auth = d.DigestAuthenticator(REALM, qop=True)
    a, b = auth.challenge(100.0), auth.challenge(100.0)
    assert a.nonce != b.nonce and a.opaque == b.opaque
    value = a.header_value()
    assert value.startswith('Digest realm="3402000000", nonce="') and "algorithm=MD5" in value
    assert 'qop="auth"' in value
    params = d.parse_digest(value)
    assert params["realm"] == REALM and params["nonce"] == a.nonce
    uri = "sip:34020000002000000001@3402000000"
    response = d.digest_response(method="REGISTER", uri=uri, username="dev", realm=REALM, password="pw",
                                 nonce=a.nonce, qop="auth", nc="00000001", cnonce="xyz")
    header = (f'Digest username="dev", realm="{REALM}", nonce="{a.nonce}", uri="{uri}", response="{response}", '
              f'qop=auth, nc=00000001, cnonce="xyz", opaque="{a.opaque}"')
    assert auth.verify("REGISTER", header, "pw", 101.0).verdict is d.Verdict.OK
    assert "stale=true" in auth.challenge(1.0, stale=True).header_value()


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwdw==", 'Digest username="a"', 'Digest username="a", realm=3402000000, nonce="n", uri="u"',
    'Digest username="a" realm="b"',
    'Digest username="a", realm="3402000000", nonce="n", uri="u", response="r", qop=auth',
])
def test_malformed_authorization_is_400(header):
    auth = d.DigestAuthenticator(REALM)
    assert auth.verify("REGISTER", header, "pw", 0.0).verdict in (d.Verdict.MALFORMED, d.Verdict.STALE)
    assert auth.verify("REGISTER", header, "pw", 0.0).verdict is not d.Verdict.OK


def test_wrong_realm_or_algorithm_is_403():
    auth = d.DigestAuthenticator(REALM)
    base = 'Digest username="a", realm="{}", nonce="n", uri="u", response="r"{}'
    assert auth.verify("REGISTER", base.format("other", ""), "pw", 0).verdict is d.Verdict.FORBIDDEN
    assert auth.verify("REGISTER", base.format(REALM, ", algorithm=SHA-256"), "pw", 0).verdict is d.Verdict.FORBIDDEN


@given(st.text(max_size=200))
def test_any_header_gives_a_verdict(header):
    auth = d.DigestAuthenticator(REALM)
    assert auth.verify("REGISTER", "Digest " + header, "pw", 0.0).verdict is not d.Verdict.OK


def test_failure_throttle_is_exponential_capped_and_forgets():
    throttle = d.FailureThrottle(free=2, base=1.0, cap=8.0, forget_after=60.0, max_sources=3)
    delays = [throttle.record_failure("1.2.3.4", float(t)) for t in range(8)]
    assert delays == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert throttle.delay("1.2.3.4", 7.0) == 8.0 and throttle.delay("5.6.7.8", 7.0) == 0.0
    assert throttle.delay("1.2.3.4", 7.0 + 61) == 0.0  # forgotten after a quiet minute
    throttle.record_success("1.2.3.4")
    assert throttle.failures("1.2.3.4", 8.0) == 0
    for n in range(10):  # bounded
        throttle.record_failure(f"10.0.0.{n}", 9.0)
    assert len(throttle._failures) == 3
