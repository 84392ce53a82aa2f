"""The event pump hands ``KeyframeWanted`` (GB28181 ingests) to the stream registry."""

from __future__ import annotations

from pms_trio import _core
from pms_trio.events import dispatch
from pms_trio.streams import StreamRegistry


class Recording(StreamRegistry):
    def __init__(self) -> None:
        super().__init__(None)
        self.wanted: list[str] = []

    def on_keyframe_wanted(self, name: str) -> None:
        super().on_keyframe_wanted(name)
        self.wanted.append(name)


def test_keyframe_wanted_reaches_the_registry() -> None:
    registry = Recording()
    dispatch(_core.KeyframeWanted("34020000001320000001"), registry)
    assert registry.wanted == ["34020000001320000001"]


def test_keyframe_wanted_for_an_unknown_stream_is_harmless() -> None:
    StreamRegistry(None).on_keyframe_wanted("nobody")
