"""``GET /metrics`` of the real server with a real aiortc publisher and players, read with the
official ``prometheus_client`` parser: the per-stream series (SPEC section 12) exist with values
that match what the peers did, the join histogram counts each player that got video, and a stream
name full of characters the text format must escape round-trips.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Server
from .peers import close_all, play, publish, run

pytestmark = pytest.mark.integration

# No control characters (signaling refuses them), everything else the format escapes or quotes.
HOSTILE = 'cam "quoted" back\\slash {x}=1,y é'


def scrape(srv: Server) -> dict[str, list[Any]]:
    """family name -> its samples, as the official parser reads them. Two families can share a
    name there (the gauge ``pms_recordings`` and the counter ``pms_recordings_total``, whose
    family the parser calls ``pms_recordings``): their samples are kept together."""
    with urllib.request.urlopen(srv.http_url + "/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    out: dict[str, list[Any]] = {}
    for f in text_string_to_metric_families(text):
        out.setdefault(f.name, []).extend(f.samples)
    return out


async def scrape_async(srv: Server) -> dict[str, list[Any]]:
    return await asyncio.wait_for(asyncio.to_thread(scrape, srv), 10)


def value(fams: dict[str, list[Any]], sample: str, **labels: str) -> float | None:
    family = sample.removesuffix("_total").removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
    for s in fams.get(family, []):
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return None


async def sent_bytes(pc: Any) -> int:
    """Bytes the aiortc publisher sent (its own outbound-rtp stats, payload bytes)."""
    report = await pc.getStats()
    return sum(int(s.bytesSent) for s in report.values() if s.type == "outbound-rtp")


def test_stream_series_and_join_histogram(server: Any) -> None:
    srv: Server = server()

    async def go() -> None:
        pub = await publish(srv.ws_url, HOSTILE, video_codec="video/VP8")
        players = []
        try:
            for _ in range(2):
                players.append(await play(srv.ws_url, HOSTILE))
            for p in players:
                await p.wait_video_frames(10)
            # Players and counters: the workers publish about once a second.
            fams: dict[str, list[Any]] = {}

            async def ready() -> bool:
                nonlocal fams
                fams = await scrape_async(srv)
                return (value(fams, "pms_join_keyframe_seconds_count") == 2
                        and (value(fams, "pms_stream_packets_out_total", stream=HOSTILE, kind="video") or 0) > 0)

            deadline = time.monotonic() + 10
            while not await ready():
                assert time.monotonic() < deadline, f"metrics never showed 2 joins and packets out: {fams}"
                await asyncio.sleep(0.3)
            assert value(fams, "pms_stream_players", stream=HOSTILE) == 2
            assert value(fams, "pms_players") == 2
            # The histogram: every player that got video joined once; buckets are cumulative.
            buckets = [(s.labels["le"], s.value) for s in fams["pms_join_keyframe_seconds"]
                       if s.name == "pms_join_keyframe_seconds_bucket"]
            assert buckets[-1] == ("+Inf", 2)
            assert [v for _, v in buckets] == sorted(v for _, v in buckets)
            join_sum = value(fams, "pms_join_keyframe_seconds_sum")
            assert join_sum is not None and 0 <= join_sum < 20
            for kind in ("video", "audio"):
                for name in ("pms_stream_bytes_in_total", "pms_stream_packets_in_total",
                             "pms_stream_bytes_out_total", "pms_stream_packets_out_total",
                             "pms_stream_lost_packets_total", "pms_stream_nacks_total", "pms_stream_plis_total",
                             "pms_stream_bitrate_bps"):
                    assert value(fams, name, stream=HOSTILE, kind=kind) is not None, (name, kind)
            # Joins asked the publisher for keyframes.
            assert (value(fams, "pms_stream_plis_total", stream=HOSTILE, kind="video") or 0) >= 1
            # Bytes in grow, and the bitrate matches what the publisher says it sends.
            pc = pub.pc
            b0 = value(fams, "pms_stream_bytes_in_total", stream=HOSTILE, kind="video") or 0
            audio0 = [value(fams, f"pms_stream_packets_{d}_total", stream=HOSTILE, kind="audio") or 0
                      for d in ("in", "out")]
            s0, t0 = await sent_bytes(pc), time.monotonic()
            gauges = []
            for _ in range(8):
                await asyncio.sleep(0.5)
                f = await scrape_async(srv)
                gauges.append(sum(value(f, "pms_stream_bitrate_bps", stream=HOSTILE, kind=k) or 0
                                  for k in ("video", "audio")))
            s1, t1 = await sent_bytes(pc), time.monotonic()
            fams = await scrape_async(srv)
            b1 = value(fams, "pms_stream_bytes_in_total", stream=HOSTILE, kind="video") or 0
            assert b1 > b0, (b0, b1)
            sent_bps = (s1 - s0) * 8 / (t1 - t0)
            measured = sum(gauges[2:]) / len(gauges[2:])
            print(f"publisher sent {sent_bps:.0f} bps (aiortc getStats); /metrics bitrate {measured:.0f} bps")
            assert sent_bps > 0
            assert 0.5 * sent_bps <= measured <= 1.5 * sent_bps, (sent_bps, measured, gauges)
            # Out: meanwhile, each of the two players got every audio packet that came in.
            audio1 = [value(fams, f"pms_stream_packets_{d}_total", stream=HOSTILE, kind="audio") or 0
                      for d in ("in", "out")]
            inn, out = audio1[0] - audio0[0], audio1[1] - audio0[1]
            assert inn > 100 and 1.8 * inn <= out <= 2.2 * inn, (audio0, audio1)
            # Per worker (two here): the stream's worker sent packets and spent CPU on it.
            sent = [value(fams, "pms_worker_packets_out_total", worker=w) for w in ("0", "1")]
            cpu = [value(fams, "pms_worker_cpu_seconds_total", worker=w) for w in ("0", "1")]
            assert None not in sent and None not in cpu, (sent, cpu)
            busiest = max((0, 1), key=lambda i: sent[i] or 0)
            assert (sent[busiest] or 0) >= out and (cpu[busiest] or 0) > 0, (sent, cpu)
            assert value(fams, "pms_worker_transports", worker=str(busiest)) == 3  # pub + 2 players
        finally:
            await close_all(*players, pub)
        # The stream ends: its labels go with it.
        deadline = time.monotonic() + 10
        while value(await scrape_async(srv), "pms_stream_players", stream=HOSTILE) is not None:
            assert time.monotonic() < deadline, "the ended stream still has series"
            await asyncio.sleep(0.3)

    run(go(), 90)


def test_dashboard_series_are_scraped(server: Any) -> None:
    """Every series ``conf/grafana-dashboard.json`` queries is in a live scrape (GB28181 on, one
    stream with a player that got video)."""
    from tests.unit.test_grafana_dashboard import dashboard_series

    srv: Server = server({"sip": {"enable": True}})

    async def go() -> set[str]:
        pub = await publish(srv.ws_url, "dash", video_codec="video/VP8")
        player = None
        try:
            player = await play(srv.ws_url, "dash")
            await player.wait_video_frames(5)
            deadline = time.monotonic() + 10
            while True:
                fams = await scrape_async(srv)
                if value(fams, "pms_join_keyframe_seconds_count") == 1 and value(
                        fams, "pms_stream_bitrate_bps", stream="dash", kind="video"):
                    return {s.name for samples in fams.values() for s in samples}
                assert time.monotonic() < deadline, fams
                await asyncio.sleep(0.3)
        finally:
            await close_all(player, pub)

    scraped = run(go(), 60)
    missing = dashboard_series() - scraped
    assert not missing, f"the dashboard queries series the server does not emit: {sorted(missing)}"
