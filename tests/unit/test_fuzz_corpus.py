"""Replays the saved signaling fuzz corpus through the atheris target's check (no atheris needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FUZZ = Path(__file__).parents[2] / "fuzz"
CORPUS = sorted((FUZZ / "corpus" / "signaling").iterdir())


def _target():
    spec = importlib.util.spec_from_file_location("atheris_signaling", FUZZ / "atheris_signaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_one = _target().check_one


def test_corpus_is_not_empty():
    assert len(CORPUS) >= 10


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_file(path: Path):
    data = path.read_bytes()
    check_one(data)
    for cut in range(0, len(data), max(1, len(data) // 16)):  # truncated inputs too
        check_one(data[:cut])
