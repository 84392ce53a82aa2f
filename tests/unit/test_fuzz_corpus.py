"""Replays the saved fuzz corpora (signaling, rtsp) through the atheris targets' checks (no atheris
needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FUZZ = Path(__file__).parents[2] / "fuzz"
CORPUS = sorted((FUZZ / "corpus" / "signaling").iterdir())
RTSP_CORPUS = sorted((FUZZ / "corpus" / "rtsp").iterdir())


def _target(name: str):
    spec = importlib.util.spec_from_file_location(name, FUZZ / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_one = _target("atheris_signaling").check_one
check_rtsp = _target("atheris_rtsp").check_one


def test_corpus_is_not_empty():
    assert len(CORPUS) >= 10
    assert len(RTSP_CORPUS) >= 10


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_file(path: Path):
    data = path.read_bytes()
    check_one(data)
    for cut in range(0, len(data), max(1, len(data) // 16)):  # truncated inputs too
        check_one(data[:cut])


@pytest.mark.parametrize("path", RTSP_CORPUS, ids=lambda p: p.name)
def test_rtsp_corpus_file(path: Path):
    data = path.read_bytes()
    check_rtsp(data)  # whole and byte by byte
    for cut in range(0, len(data), max(1, len(data) // 16)):  # truncated inputs too
        check_rtsp(data[:cut])
