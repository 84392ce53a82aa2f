"""``conf/grafana-dashboard.json`` is a Grafana dashboard Grafana can import (the shape its import
needs: a datasource input and variable, panels with unique ids, grid positions and targets on that
datasource) whose expressions name only series ``/metrics`` emits. The series names here come from
the renderer's own tables; ``tests/integration/test_metrics.py`` checks them against a live scrape.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pms_trio.http import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "conf" / "grafana-dashboard.json"
SERIES = re.compile(r"\bpms_[a-zA-Z0-9_]+")


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_series() -> set[str]:
    """Every ``pms_*`` name in a panel's or variable's query."""
    dash = load()
    names: set[str] = set()
    for p in panels(dash):
        for t in p.get("targets", []):
            names |= set(SERIES.findall(t["expr"]))
    for v in dash["templating"]["list"]:
        names |= set(SERIES.findall(json.dumps(v.get("query", ""))))
    return names


def test_importable_shape() -> None:
    dash = load()
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["DS_PROMETHEUS"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in panels(dash):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["type"] in ("timeseries", "stat"), p["type"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["expr"].strip()
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
            assert t["expr"].count("{") == t["expr"].count("}"), t["expr"]


def test_panels_cover_the_issue() -> None:
    """Streams, players, bitrate per stream, loss, NACK and PLI rates, join quantiles, GB28181
    devices online, recordings, pulls."""
    exprs = " ".join(t["expr"] for p in panels(load()) for t in p.get("targets", []))
    for needle in ("pms_streams", "pms_players", "pms_stream_players", "pms_stream_bitrate_bps",
                   "pms_stream_lost_packets_total", "pms_stream_nacks_total", "pms_stream_plis_total",
                   "histogram_quantile(0.9, sum by (le) (rate(pms_join_keyframe_seconds_bucket",
                   "pms_gb28181_devices_online", "pms_recordings", "pms_pulls"):
        assert needle in exprs, needle


def test_series_are_ones_metrics_emits() -> None:
    emitted = {name for _, name, _, _ in metrics.KIND_SERIES} | {"pms_stream_players"}
    emitted |= {f"{metrics.JOIN_NAME}_{s}" for s in ("bucket", "sum", "count")}
    api = (Path(metrics.__file__).parent / "api.py").read_text()
    emitted |= set(re.findall(r'metric\("(pms_[a-z0-9_]+)"', api))
    # pms_core_*: from the media core's counter names (gauges plain, the rest with _total).
    emitted |= {"pms_core_bytes_in_total", "pms_core_bytes_out_total"}
    emitted |= {name for name, *_ in metrics.WORKER_SERIES}
    unknown = dashboard_series() - emitted
    assert not unknown, f"the dashboard names series /metrics does not emit: {sorted(unknown)}"
