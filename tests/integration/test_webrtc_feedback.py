"""RTCP feedback through the real server, seen from real aiortc peers: NACK answered with RTX
under packet loss, REMB capping a publisher at ``max_bitrate``, an H.264 High profile publisher
played by a baseline-only player, and a late player that starts at once (keyframe cache/PLI).

Each test is a plain function that runs its asyncio part with :func:`run` (bounded in time); the
server is the ``server`` fixture from ``conftest.py`` (a real ``pms-trio run`` child process).
Checks are what a user sees (decoded frames and colours, SDP, the publisher's encoder, bytes
sent, ``GET /api/v1/server`` counters), never the server's log. Everything is on 127.0.0.1.

aiortc internals used on purpose (aiortc 1.16): ``RTCRtpSender.__encoder`` (its
``target_bitrate`` is what aiortc sets from REMB), ``aiortc.codecs.CODECS`` (the codec table SDP
is built from), ``aiortc.rtcrtpsender.get_encoder`` (which encoder a sender makes) and
``aiortc.codecs.h264.MIN_BITRATE`` (aiortc clamps REMB to at least 500 kbps for H.264).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fractions
import random
import re
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Awaitable, Callable, Iterator

import aiortc.codecs
import aiortc.codecs.h264
import aiortc.rtcrtpsender
import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import VideoStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from . import peers
from .conftest import Server, ServerFactory
from .peers import BLUE, GREEN, RED, ColourVideoTrack, SignalingClient, all_match, close_all, colour_matches, run

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------------------------
# SDP helpers


def media_section(sdp: str, kind: str) -> str:
    """The text of the first ``m=KIND`` section (up to the next ``m=`` line)."""
    m = re.search(rf"^m={kind} .*?(?=^m=|\Z)", sdp, re.M | re.S)
    assert m, f"no m={kind} section in:\n{sdp}"
    return m.group(0)


def rtpmaps(section: str) -> dict[int, str]:
    """``{payload type: "H264/90000"}`` of one media section."""
    return {int(pt): enc for pt, enc in re.findall(r"^a=rtpmap:(\d+) (\S+)", section, re.M)}


def fmtps(section: str) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for pt, params in re.findall(r"^a=fmtp:(\d+) (.*?)\s*$", section, re.M):
        kv = (p.split("=", 1) for p in params.split(";") if "=" in p)
        out[int(pt)] = {k.strip().lower(): v.strip() for k, v in kv}
    return out


def payload_types(section: str, encoding: str) -> list[int]:
    """Payload types whose rtpmap encoding name is ``encoding`` (case-insensitive), in order."""
    return [pt for pt, enc in rtpmaps(section).items() if enc.split("/")[0].lower() == encoding.lower()]


# --------------------------------------------------------------------------------------------
# Custom publish/play flows (peers.publish/play build their own peer connections)


async def connect_publisher(
    url: str, stream: str, pc: RTCPeerConnection, video: Any, *, max_bitrate: int | None = None,
    timeout: float = peers.DEFAULT_TIMEOUT,
) -> peers.Publisher:
    sig = await SignalingClient.connect(url)
    pub = peers.Publisher(sig, pc, stream, video, None)
    try:
        data: dict[str, Any] = {"sdp": await peers.make_offer(pc, timeout)}
        if max_bitrate is not None:
            data["max_bitrate"] = max_bitrate
        reply = await sig.request("stream.publish", stream, data, timeout=timeout)
        pub.answer = reply["sdp"]
        await asyncio.wait_for(pc.setRemoteDescription(RTCSessionDescription(pub.answer, "answer")), timeout)
        await peers.wait_connection_state(pc, ["connected"], timeout)
    except BaseException:
        await pub.close()
        raise
    return pub


@dataclass
class TimedPlayer:
    player: peers.Player
    offer: str
    connected_at: float


async def connect_player(
    url: str, stream: str, pc: RTCPeerConnection, *,
    rewrite_answer: Callable[[str], Awaitable[str]] | None = None,
    timeout: float = peers.DEFAULT_TIMEOUT,
) -> TimedPlayer:
    """The play flow with a given peer connection; ``rewrite_answer`` may edit the server's answer
    before ``setRemoteDescription`` (``player.answer`` keeps the server's original)."""
    sig = await SignalingClient.connect(url)
    player = peers.Player(sig, pc, stream)
    connected: list[float] = []

    @pc.on("track")
    def on_track(track: Any) -> None:
        player._tasks.append(asyncio.create_task(player._consume(track)))

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState == "connected" and not connected:
            connected.append(time.monotonic())

    try:
        offer = await peers.make_offer(pc, timeout)
        reply = await sig.request("stream.play", stream, {"sdp": offer}, timeout=timeout)
        player.answer = reply["sdp"]
        answer = await rewrite_answer(player.answer) if rewrite_answer else player.answer
        await asyncio.wait_for(pc.setRemoteDescription(RTCSessionDescription(answer, "answer")), timeout)
        await peers.wait_connection_state(pc, ["connected"], timeout)
    except BaseException:
        await player.close()
        raise
    return TimedPlayer(player, offer, connected[0] if connected else time.monotonic())


def outbound_video_bytes(stats: Any) -> int:
    return sum(s.bytesSent for s in stats.values() if s.type == "outbound-rtp" and s.kind == "video")


def video_sender(pc: RTCPeerConnection) -> RTCRtpSender:
    found = [s for s in pc.getSenders() if s.track is not None and s.track.kind == "video"]
    assert found, "the publisher has no video sender"
    return found[0]


def sender_encoder(sender: RTCRtpSender) -> Any:
    """The encoder aiortc made for this sender (None before the first frame)."""
    return sender._RTCRtpSender__encoder


# --------------------------------------------------------------------------------------------
# 1. NACK/RTX under loss


def is_srtp_rtp(data: bytes) -> bool:
    """RTP (not RTCP, STUN or DTLS): version 2 and a second byte outside RTCP's 192-223."""
    return len(data) >= 12 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223


class LossyRelay(asyncio.DatagramProtocol):
    """A UDP relay on 127.0.0.1 between one player and the server's WebRTC port.

    One socket: datagrams from the server go to the player (the last address that sent
    anything else), everything else goes to the server, so the server sees one stable address.
    Once ``drop_after`` s have passed since the first server RTP datagram, each server→player
    RTP datagram that is not RTX (``rtx_pts``) is dropped with probability ``drop_rate``
    (seeded RNG). Retransmissions are never dropped: aiortc NACKs a packet again only when a
    new gap appears, so a lost RTX would test aiortc, not the server.
    """

    def __init__(self, server_addr: tuple[str, int], rtx_pts: set[int], video_pts: set[int], *,
                 drop_rate: float = 0.05,
                 drop_after: float = 1.0, seed: int = 20240601) -> None:
        self.server_addr = server_addr
        self.rtx_pts = rtx_pts
        self.video_pts = video_pts
        self.drop_rate = drop_rate
        self.drop_after = drop_after
        self.rng = random.Random(seed)
        self.transport: asyncio.DatagramTransport | None = None
        self.player_addr: tuple[str, int] | None = None
        self.first_rtp: float | None = None
        self.loss_start: float | None = None
        self.forwarded_rtp = 0
        self.dropped = 0
        self.dropped_video = 0
        self.rtx = 0
        self.to_server = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if addr[:2] != self.server_addr:
            self.player_addr = addr
            self.to_server += 1
            self.transport.sendto(data, self.server_addr)
            return
        if self.player_addr is None:
            return
        if is_srtp_rtp(data):
            now = time.monotonic()
            if self.first_rtp is None:
                self.first_rtp = now
            if data[1] & 0x7F in self.rtx_pts:
                self.rtx += 1
            elif now - self.first_rtp >= self.drop_after:
                if self.loss_start is None:
                    self.loss_start = now
                if self.rng.random() < self.drop_rate:
                    self.dropped += 1
                    self.dropped_video += data[1] & 0x7F in self.video_pts
                    return
            self.forwarded_rtp += 1
        self.transport.sendto(data, self.player_addr)


def redirect_answer(sdp: str, relay_port: int) -> tuple[str, tuple[str, int]]:
    """Points the answer at the relay: the first ``127.0.0.1`` UDP candidate's port (and the
    ``m=`` ports that equal it) becomes ``relay_port``; other candidates are removed so the
    player can reach the server only through the relay. Returns the new SDP and the server's
    address."""
    server: tuple[str, int] | None = None
    out = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            parts = line.split(" ")
            if server is None and parts[2].lower() == "udp" and parts[4] == "127.0.0.1":
                server = (parts[4], int(parts[5]))
                parts[5] = str(relay_port)
                line = " ".join(parts)
            else:
                continue
        out.append(line)
    assert server is not None, f"no 127.0.0.1 UDP candidate in the answer:\n{sdp}"
    text = "\r\n".join(out)
    text = re.sub(rf"^(m=\S+ ){server[1]}( )", rf"\g<1>{relay_port}\g<2>", text, flags=re.M)
    return text, server


async def _nack_rtx_under_loss(srv: Server) -> None:
    pub = await peers.publish(srv.ws_url, "lossy", video_codec="video/H264", colour=GREEN)
    loop = asyncio.get_running_loop()
    relay_transport: asyncio.DatagramTransport | None = None
    relay: LossyRelay | None = None
    tp: TimedPlayer | None = None
    try:
        before = await srv.api_async("/api/v1/server")

        async def via_relay(answer: str) -> str:
            nonlocal relay_transport, relay
            video = media_section(answer, "video")
            h264 = payload_types(video, "H264")
            assert h264, f"the player's answer has no H264:\n{answer}"
            apts = {pt: int(p["apt"]) for pt, p in fmtps(video).items() if "apt" in p}
            rtx_pts = {pt for pt, apt in apts.items() if apt == h264[0]}
            assert rtx_pts and f"apt={h264[0]}" in video, f"the answer negotiates no RTX for H264 {h264[0]}:\n{video}"
            _, server_addr = redirect_answer(answer, 0)
            relay = LossyRelay(server_addr, rtx_pts, {h264[0]})
            relay_transport, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
            return redirect_answer(answer, relay.port)[0]

        pc = peers.build_player_pc("video/H264", "audio/opus")
        tp = await connect_player(srv.ws_url, "lossy", pc, rewrite_answer=via_relay)
        player = tp.player
        assert relay is not None and relay.player_addr is not None, "the player did not talk through the relay"

        # Loss starts 1 s after the first RTP; let it run for 5 s (and >= 60 frames after it).
        await peers.wait_until(lambda: relay.loss_start is not None, 10, "loss to start (first RTP + 1 s)")
        assert relay.loss_start is not None
        loss_start = relay.loss_start
        await asyncio.sleep(max(0.0, loss_start + 5.0 - time.monotonic()))
        await peers.wait_until(lambda: len(player.colours_since(loss_start)) >= 60, 10,
                               "60 frames decoded after the loss started (have {})",
                               lambda: len(player.colours_since(loss_start)))

        after = [s for s in player.video if s.t >= loss_start]
        assert relay.dropped >= 10 and relay.dropped_video >= 3, \
            f"the relay dropped only {relay.dropped} RTP datagrams ({relay.dropped_video} video)"
        assert all_match([s.rgb for s in after], GREEN), \
            f"wrong colours after the loss started: {[s.rgb for s in after if not colour_matches(s.rgb, GREEN)][:5]}"
        times = [loss_start] + [s.t for s in after]
        gaps = [b - a for a, b in zip(times, times[1:])]
        worst = max(gaps)
        assert worst <= 0.5, (
            f"decoding stalled for {worst:.2f} s after the loss began (dropped {relay.dropped}, "
            f"RTX seen {relay.rtx}, frames after loss {len(after)})"
        )
        assert relay.rtx > 0, f"no RTX packet reached the player (dropped {relay.dropped})"

        core = (await srv.api_async("/api/v1/server"))["core"]
        assert core["nacks"] > before["core"]["nacks"] and core["retransmits"] > before["core"]["retransmits"], \
            f"core counters did not rise: before {before['core']}, after {core}"
        print(f"loss: dropped {relay.dropped} ({relay.dropped_video} video) of {relay.dropped + relay.forwarded_rtp} RTP, "
              f"RTX {relay.rtx}, frames after loss {len(after)}, worst gap {worst:.3f} s, core {core}")
    finally:
        await close_all(tp.player if tp else None, pub)
        if relay_transport is not None:
            relay_transport.close()


def test_nack_answered_with_rtx_under_loss_h264(server: ServerFactory) -> None:
    run(_nack_rtx_under_loss(server()))


# --------------------------------------------------------------------------------------------
# 2. REMB caps the publisher at max_bitrate


class NoiseVideoTrack(VideoStreamTrack):
    """Random pixels (a cycle of 32 pre-made pictures): an encoder spends whatever bitrate it is
    allowed, so bytes sent follow its target."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self._images = [rng.integers(0, 256, (peers.HEIGHT, peers.WIDTH, 3), dtype=np.uint8) for _ in range(32)]
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self._images[self._n % len(self._images)], format="rgb24")
        self._n += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


CAP = 200_000


async def _remb_cap(srv: Server) -> None:
    pubs: dict[str, peers.Publisher] = {}
    try:
        for name, cap, seed in (("capped", CAP, 1), ("free", None, 2)):
            pc = RTCPeerConnection(peers.no_ice_servers())
            track = NoiseVideoTrack(seed)
            pc.addTransceiver(track, direction="sendonly").setCodecPreferences(
                peers.codec_preferences("video", "video/H264"))
            pubs[name] = await connect_publisher(srv.ws_url, name, pc, track, max_bitrate=cap)

        video = media_section(pubs["capped"].answer, "video")
        assert re.search(r"^b=AS:200\s*$", video, re.M) or re.search(r"^b=TIAS:200000\s*$", video, re.M), \
            f"the answer to a publish with max_bitrate {CAP} has no b=AS:200 / b=TIAS:{CAP} on video:\n{video}"
        free_video = media_section(pubs["free"].answer, "video")
        assert not re.search(r"^b=(AS|TIAS):", free_video, re.M), f"uncapped publish got a bandwidth line:\n{free_video}"

        enc = {n: (lambda s=video_sender(p.pc): sender_encoder(s)) for n, p in pubs.items()}  # noqa: B008

        def target(name: str) -> int | None:
            e = enc[name]()
            return None if e is None else int(e.target_bitrate)

        # REMB goes out every second; give it a few.
        await peers.wait_until(lambda: (t := target("capped")) is not None and t <= CAP, 8,
                               f"the capped publisher's encoder target to fall to <= {CAP} (now {{}})",
                               lambda: target("capped"))
        await peers.wait_until(lambda: (t := target("free")) is not None and t > 2 * CAP, 8,
                               "the uncapped publisher's encoder target to be well above the cap (now {})",
                               lambda: target("free"))

        # Sent bitrate over 3 s, once the encoders have been rebuilt at their new target.
        await asyncio.sleep(1.5)
        t0 = time.monotonic()
        b0 = {n: outbound_video_bytes(await p.pc.getStats()) for n, p in pubs.items()}
        await asyncio.sleep(3.0)
        dt = time.monotonic() - t0
        rate = {n: (outbound_video_bytes(await p.pc.getStats()) - b0[n]) * 8 / dt for n, p in pubs.items()}
        targets = {n: target(n) for n in pubs}
        print(f"REMB: targets {targets}, sent bps {rate}")
        assert targets["capped"] is not None and targets["capped"] <= CAP, targets
        assert rate["capped"] <= 1.5 * CAP, f"capped publisher sent {rate['capped']:.0f} bps (cap {CAP}); {targets}"
        assert rate["free"] >= 2 * rate["capped"], \
            f"uncapped publisher sent {rate['free']:.0f} bps, capped {rate['capped']:.0f} bps; {targets}"
    finally:
        await close_all(*pubs.values())


def test_remb_caps_publisher_at_max_bitrate(server: ServerFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # aiortc clamps a REMB below 500 kbps to 500 kbps for H.264; lower the floor so the encoder
    # follows the server's REMB exactly (the server's REMB is what is under test).
    monkeypatch.setattr(aiortc.codecs.h264, "MIN_BITRATE", 50_000)
    run(_remb_cap(server()))


# --------------------------------------------------------------------------------------------
# 3. H.264 High profile publisher -> baseline-only player


HIGH_PROFILE_LEVEL_ID = "640c1f"  # Constrained High 3.1, as browsers offer it


class HighProfileH264Encoder(H264Encoder):
    """aiortc's H.264 encoder with libx264 set to the High profile (aiortc forces Baseline);
    records ``(profile_idc, constraint flags, level_idc)`` of every SPS it emits."""

    def __init__(self) -> None:
        super().__init__()
        self.sps: list[tuple[int, int, int]] = []

    def _encode_frame(self, frame: av.VideoFrame, force_keyframe: bool) -> Iterator[bytes]:
        if self.codec and (
            frame.width != self.codec.width
            or frame.height != self.codec.height
            or abs(self.target_bitrate - self.codec.bit_rate) / self.codec.bit_rate > 0.1
        ):
            self.buffer_data, self.buffer_pts, self.codec = b"", None, None
        if self.codec is None:
            self.codec = av.CodecContext.create("libx264", "w")
            self.codec.width, self.codec.height = frame.width, frame.height
            self.codec.bit_rate = self.target_bitrate
            self.codec.pix_fmt = "yuv420p"
            self.codec.framerate = fractions.Fraction(aiortc.codecs.h264.MAX_FRAME_RATE, 1)
            self.codec.time_base = fractions.Fraction(1, aiortc.codecs.h264.MAX_FRAME_RATE)
            self.codec.options = {"level": "31", "tune": "zerolatency", "profile": "high"}
        for nal in super()._encode_frame(frame, force_keyframe):
            if len(nal) >= 4 and nal[0] & 0x1F == 7:
                self.sps.append((nal[1], nal[2], nal[3]))
            yield nal


@contextlib.contextmanager
def high_profile_codec_registered() -> Iterator[RTCRtpCodecParameters]:
    """Adds H.264 ``profile-level-id=640c1f`` (+ RTX) to aiortc's codec table, then removes it."""
    table = aiortc.codecs.CODECS["video"]
    saved = list(table)
    base = next(c for c in table if c.mimeType.lower() == "video/h264")
    pt = max(c.payloadType for c in table) + 1
    high = copy.deepcopy(base)
    high.payloadType = pt
    high.parameters = {"level-asymmetry-allowed": "1", "packetization-mode": "1",
                       "profile-level-id": HIGH_PROFILE_LEVEL_ID}
    rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=pt + 1, parameters={"apt": pt})
    table.extend([high, rtx])
    try:
        yield high
    finally:
        table[:] = saved


async def _high_profile(srv: Server, encoders: list[HighProfileH264Encoder]) -> None:
    pub = None
    tp: TimedPlayer | None = None
    try:
        with high_profile_codec_registered() as high:
            pc = RTCPeerConnection(peers.no_ice_servers())
            track = ColourVideoTrack(BLUE)
            caps = RTCRtpSender.getCapabilities("video").codecs
            prefs = [c for c in caps if c.mimeType.lower() == "video/h264"
                     and c.parameters.get("profile-level-id") == HIGH_PROFILE_LEVEL_ID]
            prefs += [c for c in caps if c.mimeType.lower() == "video/rtx"]
            pc.addTransceiver(track, direction="sendonly").setCodecPreferences(prefs)
            pub = await connect_publisher(srv.ws_url, "high", pc, track)
            pub_pt = high.payloadType

        offer_video = media_section(pub.pc.localDescription.sdp, "video")
        assert payload_types(offer_video, "H264") == [pub_pt], offer_video
        assert fmtps(offer_video)[pub_pt]["profile-level-id"] == HIGH_PROFILE_LEVEL_ID, offer_video
        answer_video = media_section(pub.answer, "video")
        assert payload_types(answer_video, "H264") == [pub_pt], \
            f"the publisher's answer does not accept its High profile H264 {pub_pt}:\n{answer_video}"

        # An ordinary aiortc player that offers only constrained baseline 42e01f (+ RTX).
        pc = RTCPeerConnection(peers.no_ice_servers())
        caps = RTCRtpReceiver.getCapabilities("video").codecs
        prefs = [c for c in caps if c.mimeType.lower() == "video/h264"
                 and c.parameters.get("profile-level-id") == "42e01f"]
        prefs += [c for c in caps if c.mimeType.lower() == "video/rtx"]
        pc.addTransceiver("video", direction="recvonly").setCodecPreferences(prefs)
        tp = await connect_player(srv.ws_url, "high", pc)
        player = tp.player

        offered = media_section(tp.offer, "video")
        player_pts = payload_types(offered, "H264")
        assert len(player_pts) == 1 and player_pts[0] != pub_pt, (player_pts, pub_pt)
        player_pt = player_pts[0]
        answered = media_section(player.answer, "video")
        assert payload_types(answered, "H264") == [player_pt], \
            f"the player offered H264 {player_pt} (the publisher uses {pub_pt}); the answer says:\n{answered}"
        plid = fmtps(answered).get(player_pt, {}).get("profile-level-id", "")
        assert plid.lower() == "42e01f", f"answer profile-level-id {plid!r}, the player offered 42e01f:\n{answered}"

        await player.wait_video_frames(60, 20)
        recent = [s.rgb for s in player.video[-60:]]
        assert all_match(recent, BLUE), f"player decodes {recent[-1]}, the publisher sends {BLUE}"

        assert encoders, "the High profile encoder was never used"
        sps = [s for e in encoders for s in e.sps]
        assert sps and all(p == 100 for p, _, _ in sps), f"SPS (profile_idc, flags, level) sent: {sps}"
        print(f"High profile: SPS {sorted(set(sps))}, publisher PT {pub_pt}, player PT {player_pt}")
    finally:
        await close_all(tp.player if tp else None, pub)


def test_h264_high_profile_publisher_to_baseline_player(server: ServerFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    encoders: list[HighProfileH264Encoder] = []
    original = aiortc.rtcrtpsender.get_encoder

    def get_encoder(codec: RTCRtpCodecParameters) -> Any:
        if codec.mimeType.lower() == "video/h264" and \
                str(codec.parameters.get("profile-level-id", "")).lower().startswith("64"):
            encoders.append(HighProfileH264Encoder())
            return encoders[-1]
        return original(codec)

    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", get_encoder)
    run(_high_profile(server(), encoders))


# --------------------------------------------------------------------------------------------
# 4. A late player starts at once


async def _pli_on_join(srv: Server) -> None:
    pub = await peers.publish(srv.ws_url, "join", video_codec="video/H264", colour=RED)
    first = second = None
    try:
        first = await connect_player(srv.ws_url, "join", peers.build_player_pc("video/H264", "audio/opus"))
        await first.player.wait_video_frames(30, 15)
        await asyncio.sleep(max(0.0, first.connected_at + 3.0 - time.monotonic()))

        second = await connect_player(srv.ws_url, "join", peers.build_player_pc("video/H264", "audio/opus"))
        p2 = second.player
        await peers.wait_until(lambda: p2.video_frames > 0, 5, "the late player's first frame")
        delay = p2.video[0].t - second.connected_at
        assert delay <= 1.0, f"the late player decoded its first frame {delay:.2f} s after connecting"
        await p2.wait_video_frames(30, 5)
        assert all_match([s.rgb for s in p2.video[:30]], RED), p2.video[0]
        core = (await srv.api_async("/api/v1/server"))["core"]
        assert core["plis"] > 0, f"no keyframe request was sent to the publisher: {core}"
        print(f"late join: first frame {delay:.3f} s after connecting; core {core}")
    finally:
        await close_all(second.player if second else None, first.player if first else None, pub)


def test_late_player_starts_within_1s(server: ServerFactory) -> None:
    run(_pli_on_join(server()))
