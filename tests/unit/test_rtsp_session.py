"""rtsp.session (sans-IO): the RFC 2326 Appendix A state machine (play and record paths, 455 with
Allow for a request out of order, 454 for an unknown or missing session, 501, SETUP errors,
interleaved channels) and its timeout, run with trio's MockClock."""

from __future__ import annotations

import pytest

from pms_trio.rtsp import headers as h
from pms_trio.rtsp import protocol as p
from pms_trio.rtsp import session as s

SID = "1a2b3c4d5e6f7081"


def req(method, uri="rtsp://h/cam", session=None, **extra):
    headers = [("CSeq", "1")] + ([("Session", session)] if session else []) + list(extra.items())
    return p.Request(method, uri, headers=tuple(headers))


def status_of(call) -> int:
    with pytest.raises(p.RemoteProtocolError) as info:
        call()
    return info.value.status_hint


def played(now=0.0) -> s.RtspSession:
    session = s.RtspSession(SID, last_activity=now)
    session.check(req("DESCRIBE"), now)
    session.describe("cam", ["trackID=0", "trackID=1"])
    session.check(req("SETUP", "rtsp://h/cam/trackID=0"), now)
    session.setup("trackID=0", h.TransportSpec("TCP", interleaved=(0, 1)))
    return session


def test_play_path_transitions():
    session = played()
    assert session.state is s.State.READY and session.established
    session.check(req("SETUP", "rtsp://h/cam/trackID=1", SID), 1.0)
    track = session.setup("trackID=1", h.TransportSpec("TCP"))  # the server picks free channels
    assert track.transport.interleaved == (2, 3) and track.transport.mode == "PLAY"
    assert session.session_header() == f"{SID};timeout=60"
    session.check(req("PLAY", session=SID), 2.0)
    session.play()
    assert session.state is s.State.PLAYING
    session.check(req("PLAY", session=SID), 2.5)  # PLAY while playing: allowed (seek / no-op)
    session.play()
    session.check(req("PAUSE", session=SID), 3.0)
    session.pause()
    assert session.state is s.State.READY
    for method in ("GET_PARAMETER", "OPTIONS", "SET_PARAMETER", "DESCRIBE"):
        session.check(req(method, session=SID), 4.0)
    assert session.track_for_channel(2) == (track, False) and session.track_for_channel(3) == (track, True)
    assert session.track_for_channel(9) is None
    session.check(req("TEARDOWN", "rtsp://h/cam/trackID=1", SID), 5.0)
    assert session.teardown("trackID=1") is False and list(session.tracks) == ["trackID=0"]
    assert session.teardown(None) is True
    assert session.state is s.State.INIT and not session.established and session.stream is None
    assert status_of(lambda: session.check(req("PLAY", session=SID), 6.0)) == 454  # the id is gone


def test_record_path_transitions_udp():
    session = s.RtspSession(SID, last_activity=0.0)
    session.check(req("ANNOUNCE"), 0)
    session.announce("pub", ["streamid=0", "streamid=1"])
    session.check(req("SETUP", "rtsp://h/pub/streamid=0"), 0)
    track = session.setup("streamid=0", h.TransportSpec("UDP", client_port=(5000, 5001), mode="RECORD"))
    assert track.transport.client_port == (5000, 5001) and track.transport.interleaved is None
    session.setup("streamid=1", h.TransportSpec("UDP", client_port=(5002, 5003)))  # mode absent: the session's
    assert session.tracks["streamid=1"].transport.mode == "RECORD"
    session.check(req("RECORD", session=SID), 1)
    session.record()
    assert session.state is s.State.RECORDING
    session.check(req("PAUSE", session=SID), 1)
    session.pause()
    assert session.state is s.State.READY


@pytest.mark.parametrize("steps, method", [
    ([], "SETUP"),  # SETUP before DESCRIBE
    ([], "PLAY"), ([], "RECORD"), ([], "PAUSE"),
    (["describe"], "PLAY"),  # PLAY before SETUP
    (["describe", "setup"], "RECORD"),  # RECORD on a play session
    (["describe", "setup"], "PAUSE"),  # PAUSE in Ready
    (["describe", "setup", "play"], "SETUP"),  # SETUP while playing
    (["describe", "setup"], "ANNOUNCE"),  # ANNOUNCE after SETUP
    (["announce", "setup"], "PLAY"),  # PLAY on a publishing session
    (["announce", "setup", "record"], "SETUP"),
])
def test_out_of_order_is_455_with_allow(steps, method):
    session = s.RtspSession(SID, last_activity=0.0)
    for step in steps:
        if step == "describe":
            session.describe("cam", ["trackID=0"])
        elif step == "announce":
            session.announce("cam", ["trackID=0"])
        elif step == "setup":
            session.setup("trackID=0", h.TransportSpec("TCP"))
        else:
            getattr(session, step)()
    header = SID if session.established else None
    with pytest.raises(p.RemoteProtocolError) as info:
        session.check(req(method, session=header), 1.0)
    e = info.value
    assert e.status_hint == 455 and method in e.message
    allow = dict(e.headers)["Allow"]
    assert method not in allow.split(", ") and "OPTIONS" in allow
    assert p.error_response(e).header("Allow") == allow
    if method in ("PLAY", "RECORD", "PAUSE", "SETUP"):  # the transition itself refuses too
        transition = {"SETUP": lambda: session.setup("trackID=0", h.TransportSpec("TCP"))}.get(
            method, getattr(session, method.lower(), None))
        assert status_of(transition) == 455


@pytest.mark.parametrize("header", ["deadbeef", "garbage value", SID + "x"])
def test_unknown_session_is_454(header):
    session = played()
    assert status_of(lambda: session.check(req("PLAY", session=header), 1.0)) == 454
    fresh = s.RtspSession(SID, last_activity=0.0)  # a Session header before any SETUP
    assert status_of(lambda: fresh.check(req("OPTIONS", session=SID), 1.0)) == 454


def test_missing_session_header_once_set_up_is_454_except_setup():
    session = played()
    for method in ("PLAY", "PAUSE", "RECORD", "TEARDOWN"):
        assert status_of(lambda method=method: session.check(req(method), 1.0)) == 454
    session.check(req("SETUP", "rtsp://h/cam/trackID=1"), 1.0)
    session.check(req("GET_PARAMETER"), 1.0)


def test_unknown_method_is_501():
    session = s.RtspSession(SID, last_activity=0.0)
    for method in ("REDIRECT", "PLAY_NOTIFY", "GET"):
        with pytest.raises(p.RemoteProtocolError) as info:
            session.check(req(method), 0)
        assert info.value.status_hint == 501 and ("Public", s.PUBLIC) in info.value.headers


def test_setup_errors():
    session = played()
    assert status_of(lambda: session.setup("trackID=7", h.TransportSpec("TCP"))) == 404
    assert status_of(lambda: session.setup("trackID=1", h.TransportSpec("TCP", interleaved=(1, 2)))) == 461
    assert status_of(lambda: session.setup("trackID=1", h.TransportSpec("TCP", interleaved=(4, 4)))) == 461
    assert status_of(lambda: session.setup("trackID=1", h.TransportSpec("TCP", mode="RECORD"))) == 461
    # re-SETUP of the same track may keep its own channels
    assert session.setup("trackID=0", h.TransportSpec("TCP", interleaved=(0, 1))).transport.interleaved == (0, 1)
    assert status_of(lambda: session.describe("other", ["trackID=0"])) == 455
    assert status_of(lambda: session.teardown("trackID=9")) == 404


def test_interleaved_channels_run_out_at_128_tracks():
    session = s.RtspSession(SID, last_activity=0.0)
    controls = [f"trackID={i}" for i in range(129)]
    session.describe("many", controls)
    for control in controls[:128]:
        session.setup(control, h.TransportSpec("TCP"))
    assert session.tracks["trackID=127"].transport.interleaved == (254, 255)
    assert status_of(lambda: session.setup("trackID=128", h.TransportSpec("TCP"))) == 461


def test_timeout_runs_from_the_last_sign_of_life():
    session = s.RtspSession(SID, last_activity=100.0)
    assert session.next_deadline() == 160.0 and not session.handle_timeout(159.999)
    session.check(req("OPTIONS"), 130.0)  # any request counts
    assert session.next_deadline() == 190.0
    session.touch(150.0)  # RTCP, reported by the adapter
    session.touch(120.0)  # late news does not move the deadline back
    assert session.next_deadline() == 210.0
    try:
        session.check(req("PLAY"), 170.0)  # even a refused request
    except p.RemoteProtocolError:
        pass
    assert session.next_deadline() == 230.0
    assert not session.handle_timeout(229.0) and session.handle_timeout(230.0) and session.expired
    with pytest.raises(p.LocalProtocolError):
        s.RtspSession("bad id", last_activity=0.0)


def test_timeout_with_trio_mock_clock_runs_instantly():
    import trio
    import trio.testing

    async def adapter(session):
        while not session.handle_timeout(trio.current_time()):
            with trio.move_on_at(session.next_deadline()):
                await trio.sleep_forever()
        return trio.current_time()

    async def main():
        session = played(now=trio.current_time())
        start = trio.current_time()
        assert await adapter(session) - start == 60.0

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
