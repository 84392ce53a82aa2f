"""Tokens (SPEC section 10) through the real server: with ``auth.jwtSecret`` every way in (WebSocket
signaling, WHIP/WHEP, RTSP with ``?token=``, Basic and Digest) refuses a missing or bad token and
takes a good one, which ``pms-trio token`` prints; ``auth.apiToken`` guards the HTTP API and the
record command port; cascade nodes sharing the secret sign their own pulls.
"""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from pms_trio.sip.digest import digest_response, parse_digest

from . import peers
from .conftest import Server, ServerFactory, pms_trio_command
from .peers import BLUE, RED, all_match, publish, run
from .rtsp_peers import AvPlayer, RawRtsp

pytestmark = pytest.mark.integration

SECRET = "tests-secret-of-thirty-two-bytes-or-more"
API_TOKEN = "api-token-for-the-tests"


def token(srv: Server, stream: str, *actions: str, ttl: float = 600) -> str:
    """``pms-trio token`` with the server's own config file (``"rtsp"`` among the actions: the
    Digest/Basic credentials ``USER:PASSWORD``)."""
    flags = [f"--{a}" for a in actions]
    out = subprocess.run([*pms_trio_command(), "token", "-c", str(srv.config_path), "--stream", stream, *flags,
                          "--ttl", str(ttl)], capture_output=True, timeout=30, check=True)
    return out.stdout.decode().strip()


def secured(server: ServerFactory, **extra: Any) -> Server:
    return server({"auth": {"jwtSecret": SECRET, "apiToken": API_TOKEN}, **extra})


def api_get(srv: Server, path: str, bearer: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.get(srv.http_url + path, headers=headers, timeout=10).status_code


async def _request_err(srv: Server, method: str, stream: str, data: dict[str, Any]) -> int:
    sig = await peers.SignalingClient.connect(srv.ws_url)
    try:
        await sig.request(method, stream, data, timeout=15)
        return 0
    except peers.SignalingError as e:
        return int(e.reply["err"])
    finally:
        await sig.close()


def test_signaling_and_whip_need_a_token(server: ServerFactory) -> None:
    srv = secured(server)
    publish_token = token(srv, "cam*", "publish")
    play_token = token(srv, "cam1", "play")

    async def scenario() -> None:
        pc, _, _ = peers.build_publisher_pc("video/H264", None, RED)
        offer = await peers.make_offer(pc)
        await pc.close()
        assert await _request_err(srv, "stream.publish", "cam1", {"sdp": offer}) == 401
        assert await _request_err(srv, "stream.publish", "cam1", {"sdp": offer, "token": "x.y.z"}) == 401
        assert await _request_err(srv, "stream.publish", "cam1", {"sdp": offer, "token": play_token}) == 403
        sig = await peers.SignalingClient.connect(srv.ws_url)
        pub = await publish(srv.ws_url, "cam1", colour=BLUE, signaling=sig, token=publish_token)
        try:
            offer = await peers.make_offer(peers.build_player_pc())
            assert await _request_err(srv, "stream.play", "cam1", {"sdp": offer}) == 401
            assert await _request_err(srv, "stream.play", "cam10", {"sdp": offer, "token": play_token}) in (403, 404)
            player = await peers.play(srv.ws_url, "cam1", token=play_token)
            try:
                await player.wait_video_frames(20, timeout=20)
                assert all_match(player.colours_since(player.video[-5].t), BLUE)
            finally:
                await player.close()
            async with httpx.AsyncClient(base_url=srv.http_url, timeout=10) as http:
                sdp = {"Content-Type": "application/sdp"}
                r = await http.post("/whep/cam1", content=offer.encode(), headers=sdp)
                assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), r.text
                r = await http.post("/whep/cam1", content=offer.encode(),
                                    headers={**sdp, "Authorization": f"Bearer {publish_token}"})
                assert r.status_code == 403, r.text  # a publish token does not play
                r = await http.post("/whep/cam1", content=offer.encode(),
                                    headers={**sdp, "Authorization": f"Bearer {play_token}"})
                assert r.status_code == 201, r.text
                assert (await http.delete(r.headers["location"])).status_code == 200
        finally:
            await pub.close()

    run(scenario(), 90)


def _rtsp_status(srv: Server, path: str, headers: dict[str, str] | None = None) -> tuple[int, list[str]]:
    raw = RawRtsp(srv.rtsp_url)
    try:
        r = raw.request("DESCRIBE", path, headers)
        return r.status, [v for k, v in r.headers if k.lower() == "www-authenticate"]
    finally:
        raw.sock.close()


def test_rtsp_token_in_the_url_basic_and_digest(server: ServerFactory) -> None:
    srv = secured(server)
    play_token = token(srv, "cam*", "play")

    async def scenario() -> None:
        pub = await publish(srv.ws_url, "cam2", colour=RED, token=token(srv, "cam2", "publish"))
        try:
            status, challenges = _rtsp_status(srv, "cam2")
            assert status == 401
            assert any(c.startswith("Digest") for c in challenges) and any(c.startswith("Basic") for c in challenges)
            basic = base64.b64encode(f"me:{play_token}".encode()).decode()
            assert _rtsp_status(srv, "cam2", {"Authorization": f"Basic {basic}"})[0] == 200
            wrong = base64.b64encode(f"me:{token(srv, 'other', 'play')}".encode()).decode()
            assert _rtsp_status(srv, "cam2", {"Authorization": f"Basic {wrong}"})[0] == 403
            host = urlsplit(srv.rtsp_url).netloc
            credentials = token(srv, "cam*", "play", "rtsp")
            user = credentials.split(":", 1)[0]
            assert len(credentials) < 128  # FFmpeg keeps 127 bytes of user:password
            forged = base64.b64encode(f"{user}:AAAAAAAAAAAAAAAAAAAAAA".encode()).decode()
            assert _rtsp_status(srv, "cam2", {"Authorization": f"Basic {forged}"})[0] == 401
            # a Digest answer (the password never travels) to the server's own challenge
            password = credentials.split(":", 1)[1]
            raw = RawRtsp(srv.rtsp_url)
            try:
                challenge = next(v for k, v in raw.request("DESCRIBE", "cam2").headers
                                 if k.lower() == "www-authenticate" and v.startswith("Digest"))
                params = parse_digest(challenge)
                uri = f"{srv.rtsp_url}/cam2"
                answer = digest_response(method="DESCRIBE", uri=uri, username=user, realm=params["realm"],
                                         password=password, nonce=params["nonce"])
                digest = (f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
                          f'uri="{uri}", response="{answer}", opaque="{params["opaque"]}", algorithm=MD5')
                assert raw.request("DESCRIBE", "cam2", {"Authorization": digest}).status == 200
                wrong = digest.replace(answer, "0" * 32)
                assert raw.request("DESCRIBE", "cam2", {"Authorization": wrong}).status == 401
            finally:
                raw.sock.close()
            for url in (f"{srv.rtsp_url}/cam2?token={play_token}",  # in the URL
                        f"rtsp://{credentials}@{host}/cam2"):  # FFmpeg answers the Digest challenge
                player = AvPlayer(url).start()
                try:
                    await player.wait_video_frames(20, timeout=20)
                    assert all_match([s.rgb for s in player.video[-5:]], RED)
                finally:
                    await player.astop()
        finally:
            await pub.close()

    run(scenario(), 90)


def test_api_token_guards_the_apis_and_the_record_port(server: ServerFactory) -> None:
    srv = secured(server)
    assert api_get(srv, "/api/v1/server") == 401
    assert api_get(srv, "/api/v1/server", "wrong") == 401
    assert api_get(srv, "/api/v1/server", API_TOKEN) == 200
    assert api_get(srv, "/srs-sip/v1/channels") == 401
    assert api_get(srv, "/metrics") == 200  # stays open (SPEC 10)
    record = urlsplit(srv.ready["record"])
    body = json.dumps({"stream": "x", "method": "record.stop", "data": {}}).encode()
    for headers, expected in (({}, 401), ({"Authorization": f"Bearer {API_TOKEN}"}, 404)):
        conn = http.client.HTTPConnection(record.hostname, record.port, timeout=10)
        conn.request("POST", "/", body=body, headers=headers)
        assert conn.getresponse().status == expected
        conn.close()


def test_cascade_nodes_sharing_the_secret_sign_their_pulls(server: ServerFactory) -> None:
    origin = secured(server)
    edge = secured(server, pull=[{"ip": "127.0.0.1", "port": int(origin.rtsp_url.rsplit(":", 1)[1])}])

    async def scenario() -> None:
        pub = await publish(origin.ws_url, "far", colour=BLUE, token=token(origin, "far", "publish"))
        try:
            assert await _request_err(edge, "stream.play", "far",
                                      {"sdp": await peers.make_offer(peers.build_player_pc())}) == 401
            player = await peers.play(edge.ws_url, "far", token=token(edge, "far", "play"))
            try:
                await player.wait_video_frames(20, timeout=20)
                assert all_match(player.colours_since(player.video[-5].t), BLUE)
            finally:
                await player.close()
        finally:
            await pub.close()

    run(scenario(), 90)
