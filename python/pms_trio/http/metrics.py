"""The per-stream series and the join histogram of ``/metrics`` (SPEC section 12), as Prometheus
text: pure functions of the media core's ``stream_stats()`` / ``join_histogram()`` and the
registry's players. No I/O, no state.

Series (``kind`` is ``video`` or ``audio``; a kind with nothing counted yet is left out):

- ``pms_stream_bytes_in_total``, ``pms_stream_packets_in_total`` {stream, kind}: RTP from the
  publisher (retransmissions included);
- ``pms_stream_bytes_out_total``, ``pms_stream_packets_out_total`` {stream, kind}: RTP to the
  players (retransmissions and keyframe replays included);
- ``pms_stream_lost_packets_total`` {stream, kind}: publisher packets that never arrived;
- ``pms_stream_nacks_total`` {stream, kind}: NACKs the players sent;
- ``pms_stream_plis_total`` {stream, kind}: keyframe requests (PLI/FIR) sent to the publisher;
- ``pms_stream_bitrate_bps`` {stream, kind}: gauge, what the publisher sent over about the last
  second;
- ``pms_stream_players`` {stream}: gauge, players in the registry (WebRTC, RTSP, WHEP,
  recorders are not players);
- ``pms_join_keyframe_seconds`` histogram: from a player's transport connecting to its first
  video keyframe sent.

**The label set is bounded.** At most :data:`MAX_STREAM_LABELS` stream names get a label of
their own: those with the most players, ties broken by name (so the choice is stable between
scrapes while nothing changes). The rest are summed under ``stream="_other"`` (a live stream that
is itself named ``_other`` adds into it too). Counters of a stream that moves into or out of
``_other`` jump; Prometheus' ``rate()`` treats a fall as a reset, which is the honest reading.

The core publishes its counters about once a second, so a stream live for less than that may
show players but no counters yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["KIND_SERIES", "MAX_STREAM_LABELS", "OTHER", "bound_streams", "escape_label", "join_lines",
           "stream_lines", "worker_lines"]

MAX_STREAM_LABELS = 1000
OTHER = "_other"

# (key in the core's per-kind dict, series name, type, help)
KIND_SERIES: tuple[tuple[str, str, str, str], ...] = (
    ("bytes_in", "pms_stream_bytes_in_total", "counter", "RTP bytes received from the stream's publisher."),
    ("packets_in", "pms_stream_packets_in_total", "counter", "RTP packets received from the stream's publisher."),
    ("bytes_out", "pms_stream_bytes_out_total", "counter", "RTP bytes sent to the stream's players."),
    ("packets_out", "pms_stream_packets_out_total", "counter", "RTP packets sent to the stream's players."),
    ("lost", "pms_stream_lost_packets_total", "counter", "Publisher RTP packets that never arrived."),
    ("nacks", "pms_stream_nacks_total", "counter", "NACK messages the stream's players sent."),
    ("plis", "pms_stream_plis_total", "counter", "Keyframe requests (PLI/FIR) sent to the publisher."),
    ("bitrate_bps", "pms_stream_bitrate_bps", "gauge", "Bits per second the publisher sent over the last second."),
)
KINDS = ("video", "audio")
JOIN_NAME = "pms_join_keyframe_seconds"


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def bound_streams(players: Mapping[str, int], limit: int = MAX_STREAM_LABELS) -> dict[str, str]:
    """Stream name -> its label value: itself for the ``limit`` streams with the most players
    (ties by name), :data:`OTHER` for the rest."""
    ranked = sorted(players, key=lambda name: (-players[name], name))
    return {name: (name if i < limit else OTHER) for i, name in enumerate(ranked)}


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def stream_lines(core_streams: Mapping[str, Mapping[str, Any]], players: Mapping[str, int],
                 limit: int = MAX_STREAM_LABELS) -> list[str]:
    """The per-stream families. ``core_streams``: ``Core.stream_stats()``; ``players``: live
    stream name -> players (the registry's)."""
    names = {**{n: 0 for n in core_streams}, **players}
    labels = bound_streams(names, limit)
    # label -> kind -> key -> summed value; label -> players
    sums: dict[str, dict[str, dict[str, float]]] = {}
    player_sums: dict[str, int] = {}
    for name, label in labels.items():
        player_sums[label] = player_sums.get(label, 0) + int(players.get(name, 0))
        stats = core_streams.get(name)
        if stats is None:
            continue
        for kind in KINDS:
            k = stats.get(kind) or {}
            if not any(k.get(key, 0) for key, *_ in KIND_SERIES):
                continue  # no track of this kind (or nothing yet)
            dst = sums.setdefault(label, {}).setdefault(kind, {})
            for key, *_ in KIND_SERIES:
                dst[key] = dst.get(key, 0) + float(k.get(key, 0))
    lines: list[str] = []
    order = sorted(player_sums, key=lambda lab: (lab == OTHER, lab))
    for key, name, typ, help_text in KIND_SERIES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {typ}"]
        for label in order:
            for kind, values in sums.get(label, {}).items():
                lines.append(f'{name}{{stream="{escape_label(label)}",kind="{kind}"}} {_number(values[key])}')
    lines += ["# HELP pms_stream_players Players of the stream.", "# TYPE pms_stream_players gauge"]
    lines += [f'pms_stream_players{{stream="{escape_label(label)}"}} {player_sums[label]}' for label in order]
    return lines


def join_lines(hist: Mapping[str, Any]) -> list[str]:
    """The join histogram family from ``Core.join_histogram()``."""
    lines = [f"# HELP {JOIN_NAME} Time from a player's transport connecting to its first video keyframe.",
             f"# TYPE {JOIN_NAME} histogram"]
    bounds: Iterable[float] = hist.get("bounds", ())
    for bound, count in zip(bounds, hist.get("buckets", ()), strict=True):
        lines.append(f'{JOIN_NAME}_bucket{{le="{float(bound)!r}"}} {int(count)}')
    count = int(hist.get("count", 0))
    lines += [f'{JOIN_NAME}_bucket{{le="+Inf"}} {count}', f"{JOIN_NAME}_sum {float(hist.get('sum', 0.0))!r}",
              f"{JOIN_NAME}_count {count}"]
    return lines


WORKER_SERIES = (
    ("pms_worker_transports", "gauge", "transports", "Transports (publishers, players, ingests) on the worker.", 1),
    ("pms_worker_gb_ingests", "gauge", "gb_ingests", "GB28181 ingests on the worker.", 1),
    ("pms_worker_packets_out_total", "counter", "packets_out", "Packets the worker sent.", 1),
    ("pms_worker_cpu_seconds_total", "counter", "cpu_us", "CPU time of the worker thread.", 1e-6),
)


def worker_lines(workers: Sequence[Mapping[str, int]]) -> list[str]:
    """The per-worker families (label ``worker``: its index) from ``Core.worker_stats()``."""
    lines: list[str] = []
    for name, kind, key, help_text, scale in WORKER_SERIES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{worker="{i}"}} {_number(w.get(key, 0) * scale)}' for i, w in enumerate(workers)]
    return lines
