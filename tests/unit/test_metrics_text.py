"""The per-stream part of ``/metrics`` read back with the official ``prometheus_client`` parser:
hostile stream names round-trip, the label set is bounded at 1,000 streams (the rest summed under
``_other``), the join histogram is well formed. The live server is in
``tests/integration/test_metrics.py``."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pms_trio.http import metrics

KIND_KEYS = [key for key, *_ in metrics.KIND_SERIES]


def kind(n: int) -> dict[str, int]:
    return {key: n * (i + 1) for i, key in enumerate(KIND_KEYS)}


def parse(lines: list[str]) -> dict[str, Any]:
    """family name -> list of (labels, value)"""
    out: dict[str, Any] = {}
    for fam in text_string_to_metric_families("\n".join(lines) + "\n"):
        out[fam.name] = fam
    return out


def samples(fams: dict[str, Any], family: str, sample: str) -> dict[tuple[str, ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in fams[family].samples if s.name == sample}


def test_hostile_names_round_trip() -> None:
    names = ['a"b', "back\\slash", "line\nbreak", "sp ace", "{braces}=,", "ünï©ødé", "x\\n"]
    core = {n: {"consumers": 1, "video": kind(i + 1), "audio": {k: 0 for k in KIND_KEYS}} for i, n in enumerate(names)}
    fams = parse(metrics.stream_lines(core, {n: 2 for n in names}))
    got = samples(fams, "pms_stream_bytes_in", "pms_stream_bytes_in_total")
    assert set(got) == {(("kind", "video"), ("stream", n)) for n in names}
    for i, n in enumerate(names):
        assert got[(("kind", "video"), ("stream", n))] == (i + 1) * 1
    players = samples(fams, "pms_stream_players", "pms_stream_players")
    assert players == {(("stream", n),): 2 for n in names}
    # A kind with nothing counted is left out.
    assert all(dict(k)["kind"] == "video" for k in got)


def test_label_set_bounded_most_players_kept() -> None:
    n = 1200
    names = [f"s{i:04d}" for i in range(n)]
    players = {name: (i % 7) for i, name in enumerate(names)}
    core = {name: {"consumers": players[name], "video": kind(1), "audio": kind(2)} for name in names}
    fams = parse(metrics.stream_lines(core, players))
    got = samples(fams, "pms_stream_packets_in", "pms_stream_packets_in_total")
    labels = {dict(k)["stream"] for k in got}
    assert len(labels) == metrics.MAX_STREAM_LABELS + 1 and metrics.OTHER in labels
    kept = sorted(names, key=lambda s: (-players[s], s))[: metrics.MAX_STREAM_LABELS]
    assert labels - {metrics.OTHER} == set(kept)
    # Nothing is lost: the sums over all labels equal the sums over all streams.
    video = {k: v for k, v in got.items() if dict(k)["kind"] == "video"}
    assert sum(video.values()) == n * kind(1)["packets_in"]
    assert video[(("kind", "video"), ("stream", metrics.OTHER))] == (n - 1000) * kind(1)["packets_in"]
    pl = samples(fams, "pms_stream_players", "pms_stream_players")
    assert sum(pl.values()) == sum(players.values())
    assert pl[(("stream", metrics.OTHER),)] == sum(players[s] for s in names if s not in set(kept))
    # The streams folded into _other are the ones with the fewest players.
    assert max(players[s] for s in names if s not in set(kept)) <= min(players[s] for s in kept)


def test_bound_streams_ties_by_name_and_limit() -> None:
    labels = metrics.bound_streams({"b": 1, "a": 1, "c": 5}, limit=2)
    assert labels == {"c": "c", "a": "a", "b": metrics.OTHER}
    assert metrics.bound_streams({}, limit=2) == {}


def test_join_histogram_parses() -> None:
    hist = {"bounds": [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0], "buckets": [0, 1, 2, 2, 3, 3, 3, 3],
            "count": 4, "sum": 13.5}
    fams = parse(metrics.join_lines(hist))
    fam = fams["pms_join_keyframe_seconds"]
    assert fam.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in fam.samples if s.name.endswith("_bucket")}
    assert buckets["0.1"] == 1 and buckets["1.0"] == 3 and buckets["+Inf"] == 4
    count = [s.value for s in fam.samples if s.name.endswith("_count")]
    total = [s.value for s in fam.samples if s.name.endswith("_sum")]
    assert count == [4] and total == [13.5]
