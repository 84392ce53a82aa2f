"""The cluster's stream directory (SPEC section 6, ``cluster.redis``) with a real Redis (Debian
``redis-server``, started here on a free port and stopped by the test) and three real servers
with empty ``pull`` lists: a stream published on one plays on the others; Redis going away leaves
running pulls alone and makes look-ups fail cleanly; Redis coming back (empty, as after a restart
that lost its data) is repopulated and new pulls work again. ``GET /api/v1/cluster`` lists the nodes.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import peers
from .conftest import Server, ServerFactory
from .peers import BLUE, GREEN, RED, all_match, publish, run

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Redis:
    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (Debian: apt-get install redis-server; .ci/run does it)"
        self.binary, self.folder, self.port = binary, folder, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop()


async def _until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def _play_status(srv: Server, stream: str) -> int:
    sig = await peers.SignalingClient.connect(srv.ws_url)
    pc = peers.build_player_pc()
    try:
        await sig.request("stream.play", stream, {"sdp": await peers.make_offer(pc)}, timeout=20)
        return 0
    except peers.SignalingError as e:
        return int(e.reply["err"])
    finally:
        await pc.close()
        await sig.close()


def test_three_nodes_find_each_others_streams_through_redis(server: ServerFactory, redis_server: Redis) -> None:
    nodes = [server({"cluster": {"redis": redis_server.url}}) for _ in range(3)]
    a, b, c = nodes

    async def scenario() -> None:
        pub = await publish(a.ws_url, "cam", colour=BLUE)
        players = []
        pub2 = None
        try:
            await _until(lambda: any("cam" in n["streams"] for n in b.api("/api/v1/cluster")["nodes"]), 10,
                         "cam in the directory")
            cluster = b.api("/api/v1/cluster")
            assert len(cluster["nodes"]) == 3, cluster
            for srv in (b, c):
                player = await peers.play(srv.ws_url, "cam")
                players.append(player)
                await player.wait_video_frames(30, timeout=20)
                assert all_match(player.colours_since(player.video[-10].t), BLUE)
            streams = {s["name"]: s for s in b.api("/api/v1/streams")["streams"]}
            assert streams["cam"]["source"] == "cascade"
            assert streams["cam"]["origin"].endswith(f"{a.rtsp_url.split('//')[1]}/cam"), streams["cam"]
            # pulled streams are not written: the directory still names a as cam's owner
            owners = [n["node"] for n in b.api("/api/v1/cluster")["nodes"] if "cam" in n["streams"]]
            assert len(owners) == 1, owners

            # Redis goes away: the pulls go on, a new look-up fails cleanly
            redis_server.stop()
            before = [p.video_frames for p in players]
            await asyncio.sleep(3)
            assert all(p.video_frames - n >= 60 for p, n in zip(players, before)), \
                [p.video_frames - n for p, n in zip(players, before)]
            pub2 = await publish(a.ws_url, "cam2", colour=GREEN)
            started = time.monotonic()
            assert await _play_status(c, "cam2") == 404
            assert time.monotonic() - started < 5

            # Redis comes back empty: every node writes its entries again, new pulls work
            redis_server.start()
            await _until(lambda: any("cam2" in n["streams"] for n in c.api("/api/v1/cluster")["nodes"]), 15,
                         "cam2 in the directory again")
            player = await peers.play(c.ws_url, "cam2")
            players.append(player)
            await player.wait_video_frames(30, timeout=20)
            assert all_match(player.colours_since(player.video[-10].t), GREEN)
        finally:
            await peers.close_all(*players, pub, pub2)

    run(scenario(), 150)


def test_a_directory_entry_naming_a_dead_node_falls_back_to_the_pull_list(server: ServerFactory,
                                                                          redis_server: Redis) -> None:
    import redis

    origin = server()
    edge = server({"cluster": {"redis": redis_server.url},
                   "pull": [{"ip": "127.0.0.1", "port": int(origin.rtsp_url.rsplit(":", 1)[1])}]})
    silent = socket.socket()  # a dead node: accepts, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    client = redis.Redis.from_url(redis_server.url)
    client.set("pms:stream:cam", f'{{"node": "dead", "rtsp": "rtsp://127.0.0.1:{silent.getsockname()[1]}", '
                                 f'"since": 0}}', ex=60)

    async def scenario() -> None:
        pub = await publish(origin.ws_url, "cam", colour=RED)
        try:
            started = time.monotonic()
            player = await peers.play(edge.ws_url, "cam")
            try:
                await player.wait_video_frames(20, timeout=20)
                assert all_match(player.colours_since(player.video[-5].t), RED)
            finally:
                await player.close()
            assert time.monotonic() - started < 10
        finally:
            await pub.close()

    try:
        run(scenario(), 60)
    finally:
        silent.close()
        client.close()
