"""signaling.protocol (sans-IO): every error code path, reply shape, Session and its heartbeat."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from pms_trio.signaling import protocol as p


def frame(**fields) -> str:
    return json.dumps(fields)


def error_of(raw) -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as info:
        p.parse_request(raw)
    return info.value


# -- requests that parse


def test_publish_seed_003_format():
    r = p.parse_request(frame(version="1.0", method="stream.publish", stream="cam", session="",
                              data={"max_bitrate": 1000000, "sdp": "v=0\r\n"}))
    assert r == p.Publish("stream.publish", "cam", "", "v=0\r\n", 1000000)


def test_seed_001_format_without_session():
    r = p.parse_request(frame(version="1.0", method="stream.play", stream="cam", data={"sdp": "v=0"}))
    assert isinstance(r, p.Play) and r.session == "" and r.sdp == "v=0"


def test_bytes_frame_accepted():
    assert isinstance(p.parse_request(frame(method="stream.close", stream="x").encode()), p.Close)


def test_mute_flags_optional():
    assert p.parse_request(frame(method="stream.mute", stream="s", data={"video": True})) == \
        p.Mute("stream.mute", "s", "", True, None)
    assert p.parse_request(frame(method="stream.mute", stream="s")) == p.Mute("stream.mute", "s", "", None, None)


def test_heartbeat_needs_no_stream():
    assert p.parse_request(frame(method="stream.heartbeat")) == p.Heartbeat("stream.heartbeat", "", "")
    assert p.parse_request(frame(method="stream.heartbeat", stream="")).stream == ""


def test_max_bitrate_defaults_to_zero_and_accepts_integral_float():
    assert p.parse_request(frame(method="stream.publish", stream="s", data={"sdp": "v=0"})).max_bitrate == 0
    assert p.parse_request(frame(method="stream.publish", stream="s",
                                 data={"sdp": "v=0", "max_bitrate": 5e5})).max_bitrate == 500000


# -- 400


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"a string"', "42", "null", '{"method": 5}',
                                 '{"version": "1.0"}', '{"method": null, "data": {}}', "", b"\xff\xfe",
                                 "[" * 10000 + "]" * 10000])
def test_not_an_object_with_a_method_is_400_ack(raw):
    e = error_of(raw)
    assert (e.code, e.method) == (400, "ack") and e.message
    reply = json.loads(p.error_reply(e, "sid"))
    assert reply == {"version": "1.0", "err": 400, "err_msg": e.message, "method": "ack", "session": "sid",
                     "data": {}}


@pytest.mark.parametrize("fields", [
    dict(method="stream.publish", stream=5, data={"sdp": "v=0"}),
    dict(method="stream.publish", stream="", data={"sdp": "v=0"}),
    dict(method="stream.publish", data={"sdp": "v=0"}),
    dict(method="stream.publish", stream="x" * 256, data={"sdp": "v=0"}),
    dict(method="stream.publish", stream="a\nb", data={"sdp": "v=0"}),
    dict(method="stream.publish", stream="s", data="not an object"),
    dict(method="stream.publish", stream="s", data=None),
    dict(method="stream.publish", stream="s", data={"sdp": 5}),
    dict(method="stream.publish", stream="s", data={}),
    dict(method="stream.publish", stream="s", data={"sdp": "  "}),
    dict(method="stream.publish", stream="s", data={"sdp": "v=0", "max_bitrate": "fast"}),
    dict(method="stream.publish", stream="s", data={"sdp": "v=0", "max_bitrate": -1}),
    dict(method="stream.publish", stream="s", data={"sdp": "v=0", "max_bitrate": True}),
    dict(method="stream.publish", stream="s", data={"sdp": "v=0", "max_bitrate": 1.5}),
    dict(method="stream.play", stream="s", data={"sdp": ["v=0"]}),
    dict(method="stream.play", stream=["s"], data={"sdp": "v=0"}),
    dict(method="stream.mute", stream="s", data={"video": "yes"}),
    dict(method="stream.mute", stream="s", data={"audio": 1}),
    dict(method="stream.close", stream="s", session=5),
    dict(method="stream.close", stream="s", version=1),
    dict(method="stream.heartbeat", stream=7),
])
def test_wrong_field_types_are_400_echoing_the_method(fields):
    e = error_of(frame(**fields))
    assert e.code == 400 and e.method == fields["method"] and e.message


def test_400_names_the_field():
    assert "max_bitrate" in error_of(frame(method="stream.publish", stream="s",
                                           data={"sdp": "v=0", "max_bitrate": "x"})).message
    assert "stream" in error_of(frame(method="stream.play", stream=1, data={"sdp": "v=0"})).message


# -- 405, 410, 413


def test_unknown_method_is_405():
    e = error_of(frame(method="stream.dance", stream="x"))
    assert (e.code, e.method) == (405, "stream.dance") and "stream.publish" in e.message


def test_frame_over_256_kib_is_413():
    big = frame(method="stream.heartbeat", data={"pad": "x" * (256 * 1024)})
    assert error_of(big).code == 413
    assert error_of(big.encode()).code == 413
    # multi-byte characters count as bytes: 90k characters of 3 bytes each is over the limit
    assert error_of(frame(method="stream.heartbeat", data={"pad": "\u4e2d" * 90000}).replace("\\u4e2d", "\u4e2d")).code == 413


def test_frame_just_under_the_limit_parses():
    pad = "x" * (256 * 1024 - 100)
    assert isinstance(p.parse_request(frame(method="stream.heartbeat", data={"pad": pad})), p.Heartbeat)


def test_wrong_session_is_410():
    s = p.Session(id="abc", heartbeat_timeout=30, last_activity=0)
    with pytest.raises(p.ProtocolError) as info:
        s.receive(frame(method="stream.heartbeat", session="other"), 1)
    assert (info.value.code, info.value.method) == (410, "stream.heartbeat")
    assert "abc" in info.value.message
    assert s.receive(frame(method="stream.heartbeat", session=""), 2).session == ""
    assert s.receive(frame(method="stream.heartbeat", session="abc"), 3).session == "abc"
    assert s.receive(frame(method="stream.heartbeat"), 4).session == ""


def test_error_code_values():
    assert sorted(p.KNOWN_CODES) == [400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 500]  # 401/403: SPEC 10


# -- replies


def test_reply_shape():
    reply = json.loads(p.build_reply("stream.publish", "sid", {"sdp": "v=0"}))
    assert reply == {"version": "1.0", "err": 0, "err_msg": "success", "method": "stream.publish",
                     "session": "sid", "data": {"sdp": "v=0"}}


def test_error_reply_echoes_method():
    e = p.ProtocolError(409, "busy", method="stream.publish", stream="s")
    reply = json.loads(p.error_reply(e, "sid"))
    assert (reply["err"], reply["err_msg"], reply["method"], reply["data"]) == (409, "busy", "stream.publish", {})


def test_closed_notification():
    n = json.loads(p.closed_notification("sid", "cam", "producer-closed"))
    assert n["method"] == "stream.closed" and n["stream"] == "cam" and n["data"] == {"reason": "producer-closed"}
    assert "publisher" in n["err_msg"]


def test_replies_are_ascii_so_lone_surrogates_can_be_sent():
    e = error_of('{"method": "\\ud800"}')
    p.error_reply(e, "sid").encode("utf-8")


# -- Session state


def test_session_tracks_transports():
    s = p.Session(id="a", heartbeat_timeout=5, last_activity=0)
    s.publishing["cam"] = 1
    s.playing["cam"] = 2
    s.playing["other"] = 3
    assert sorted(s.transports()) == [1, 2, 3]
    assert s.transports_of("cam") == [1, 2]
    assert s.forget(2) == ("cam", "play")
    assert s.forget(2) is None
    assert s.forget(1) == ("cam", "publish") and s.transports() == [3]


def test_any_frame_counts_as_life_even_an_invalid_one():
    s = p.Session(id="a", heartbeat_timeout=10, last_activity=0)
    with pytest.raises(p.ProtocolError):
        s.receive("garbage", 7)
    assert s.next_deadline() == 17
    assert not s.handle_timeout(16.9) and s.handle_timeout(17) and s.expired


@pytest.mark.trio
async def test_heartbeat_expiry_with_mock_clock(autojump_clock):
    """The adapter's loop shape (wait for a frame until next_deadline(), then handle_timeout):
    heartbeats every 10 s keep a 30 s session alive; silence ends it 30 s after the last one."""
    send, receive = trio.open_memory_channel[str](10)
    session = p.Session(id="a", heartbeat_timeout=30, last_activity=trio.current_time())
    start = trio.current_time()

    async def client():
        for _ in range(6):
            await trio.sleep(10)
            await send.send(frame(method="stream.heartbeat", session="a"))

    ended_at = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        while True:
            got = None
            with trio.move_on_at(session.next_deadline()):
                got = await receive.receive()
            if got is None:
                if session.handle_timeout(trio.current_time()):
                    ended_at = trio.current_time() - start
                    break
                continue
            session.receive(got, trio.current_time())
    assert ended_at == pytest.approx(60 + 30)


# -- property: arbitrary input never escapes as anything but ProtocolError


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
request_like = st.fixed_dictionaries(
    {}, optional={"version": json_values, "method": st.sampled_from(list(p.METHODS) + ["x"]) | json_values,
                  "stream": st.text(max_size=8) | json_values, "session": st.text(max_size=4) | json_values,
                  "data": st.fixed_dictionaries({}, optional={"sdp": st.text(max_size=8) | json_values,
                                                             "max_bitrate": st.integers() | json_values,
                                                             "video": json_values, "audio": json_values})
                  | json_values})


def _assert_total(raw):
    try:
        request = p.parse_request(raw)
        text = p.build_reply(request.method, "sid", {})
    except p.ProtocolError as e:
        assert e.code in p.KNOWN_CODES
        text = p.error_reply(e, "sid")
    reply = json.loads(text)
    assert isinstance(reply["err"], int) and isinstance(reply["method"], str)
    text.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text(raw):
    _assert_total(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_arbitrary_bytes(raw):
    _assert_total(raw)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_arbitrary_json(value):
    _assert_total(json.dumps(value))


@settings(max_examples=500, deadline=None)
@given(request_like)
def test_request_shaped_json(value):
    _assert_total(json.dumps(value))
