"""GB28181 ingests spread over the media core's workers (issue 13): with two workers, TCP
cameras (tcp-passive, matched by the media port on worker 0 and handed to their ingest's worker)
land on both, and each stream plays with its own camera's picture; a camera that reconnects to
an ingest on the other worker is handed over again; a connection whose framing breaks, before or
after the hand-over, ends its ingest with ``protocol-error``. UDP ingests stay on the port's
worker. Real core in this process, camera-like senders and RTSP players that decode with PyAV,
as in ``test_gb_ingest_core``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pms_trio._core as core_module
import pytest

from .gb_ingest_support import (
    BLUE,
    GREEN,
    LOOPBACK,
    RED,
    WAIT,
    Camera,
    Events,
    RtspUdpPlayer,
    camera_frames,
    closed_by_peer,
    connect_tcp,
    framed,
    wait_live,
    wait_until,
)
from .peers import colour_matches, run


@pytest.fixture
def core() -> Iterator[Any]:
    c = core_module.Core(workers=2, listen_ip=LOOPBACK, announced_ips=[LOOPBACK], min_port=0, max_port=0,
                         log_level="warn")
    try:
        yield c
    finally:
        c.shutdown()


def ingests_per_worker(core: Any) -> list[int]:
    return [int(w["gb_ingests"]) for w in core.worker_stats()]


def test_tcp_cameras_spread_over_both_workers_and_each_plays_its_picture(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, udp_port = core.gb_listen(LOOPBACK, 0)
        colours = [RED, GREEN, BLUE, GREEN]
        names = [f"cam-w{i}" for i in range(4)]
        for i, name in enumerate(names):
            core.create_gb_ingest(name, 610000 + i)
        core.create_gb_ingest("cam-udp", 620000, transport="udp")
        socks = [connect_tcp(tcp_port) for _ in names]
        cams = [Camera(camera_frames("h264", colours[i], 250, 610000 + i), tcp=socks[i]).start()
                for i in range(4)]
        udp_cam = Camera(camera_frames("h264", RED, 250, 620000), udp_to=(LOOPBACK, udp_port)).start()
        players: list[RtspUdpPlayer] = []
        try:
            for name in [*names, "cam-udp"]:
                await wait_live(events, name)
            # Four TCP ingests alternate between the workers; the UDP one is on the port's worker.
            await wait_until(lambda: ingests_per_worker(core) == [3, 2], WAIT,
                             f"ingests per worker {ingests_per_worker(core)}")
            for name in [*names, "cam-udp"]:
                p = RtspUdpPlayer(core, name, "H264")
                p.start()
                players.append(p)
            for p, colour in zip(players, [*colours, RED], strict=True):
                await p.wait_frames(15)
                assert all(colour_matches(c, colour) for c in p.colours[-5:]), (p.stream, p.colours[-3:])
            per_worker = core.worker_stats()
            assert all(w["gb_tcp_connections"] == 2 for w in per_worker), per_worker
            assert all(w["packets_out"] > 0 for w in per_worker), per_worker
            stats = core.stats()
            assert stats["gb_seq_gaps"] == 0 and stats["gb_unknown_ssrc"] == 0
            assert not [e for e in events.log if isinstance(e, core_module.TransportClosed)]
        finally:
            for c in [*cams, udp_cam]:
                c.stop()
            for s in socks:
                s.close()
            for p in players:
                p.close()

    run(main())


def test_a_camera_reconnecting_to_an_ingest_on_the_other_worker(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        core.create_gb_ingest("cam-a", 630001)  # worker 0
        tid = core.create_gb_ingest("cam-b", 630002)  # worker 1: its connection is handed over
        assert [int(w["transports"]) for w in core.worker_stats()] in ([1, 1], [0, 0])
        a_sock, old = connect_tcp(tcp_port), connect_tcp(tcp_port)
        cam_a = Camera(camera_frames("h264", RED, 250, 630001), tcp=a_sock).start()
        cam_old = Camera(camera_frames("h264", BLUE, 250, 630002), tcp=old).start()
        player = None
        new = connect_tcp(tcp_port)
        cam_new = Camera(camera_frames("h264", GREEN, 250, 630002, first_seq=20000), tcp=new)
        try:
            await wait_live(events, "cam-b")
            await wait_until(lambda: ingests_per_worker(core) == [1, 1], WAIT, "one ingest per worker")
            player = RtspUdpPlayer(core, "cam-b", "H264")
            player.start()
            await player.wait_frames(10)
            assert colour_matches(player.colours[-1], BLUE)
            # The camera comes back on a new connection while the old one still hangs open: the
            # new one replaces it (the ingest closes the old), the stream goes on with its picture.
            cam_old.stop()
            cam_new.start()
            assert closed_by_peer(old, timeout=WAIT)
            n = len(player.colours)
            await player.wait_frames(n + 30)
            assert all(colour_matches(c, GREEN) for c in player.colours[-5:]), player.colours[-3:]
            assert events.closed(tid) == []
            assert [int(w["gb_tcp_connections"]) for w in core.worker_stats()] == [1, 1]
        finally:
            for c in (cam_a, cam_old, cam_new):
                c.stop()
            for s in (a_sock, old, new):
                s.close()
            if player:
                player.close()

    run(main())


def test_broken_framing_on_a_handed_over_connection_ends_its_ingest(core: Any) -> None:
    async def main() -> None:
        events = Events(core)
        tcp_port, _ = core.gb_listen(LOOPBACK, 0)
        core.create_gb_ingest("cam-0", 640000)  # worker 0
        after = core.create_gb_ingest("cam-after", 640001)  # worker 1
        core.create_gb_ingest("cam-2", 640002)  # worker 0
        within = core.create_gb_ingest("cam-within", 640003)  # worker 1
        groups = camera_frames("h264", RED, 30, 640001)
        s_after = connect_tcp(tcp_port)
        s_after.sendall(framed([p for g in groups[:10] for p in g]))
        # Packets then a length below an RTP header in one write: the port reads both at once,
        # before its hand-over.
        s_within = connect_tcp(tcp_port)
        first = camera_frames("h264", RED, 5, 640003)
        s_within.sendall(framed([p for g in first for p in g]) + b"\x00\x03abc")
        try:
            await wait_live(events, "cam-after")
            await events.wait(lambda e: e == core_module.TransportClosed(within, "protocol-error"))
            assert closed_by_peer(s_within)
            # The handed-over connection breaks later: the ingest's worker ends it.
            await asyncio.sleep(0.2)
            s_after.sendall(b"\x00\x03abc")
            await events.wait(lambda e: e == core_module.TransportClosed(after, "protocol-error"))
            assert closed_by_peer(s_after)
            assert core.stream_codecs("cam-after") is None
            await wait_until(lambda: sum(int(w["gb_tcp_connections"]) for w in core.worker_stats()) == 0,
                             WAIT, "no connection left")
        finally:
            s_after.close()
            s_within.close()

    run(main())
