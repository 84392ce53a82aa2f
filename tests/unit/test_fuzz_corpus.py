"""Replays the saved fuzz corpora (signaling, rtsp, rtsp_client, sip, manscdp, mansrtsp, gb_service) through the atheris targets' checks
(no atheris needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FUZZ = Path(__file__).parents[2] / "fuzz"
CORPUS = sorted((FUZZ / "corpus" / "signaling").iterdir())
RTSP_CORPUS = sorted((FUZZ / "corpus" / "rtsp").iterdir())
SIP_CORPUS = sorted((FUZZ / "corpus" / "sip").iterdir())
MANSCDP_CORPUS = sorted((FUZZ / "corpus" / "manscdp").iterdir())
GB_SERVICE_CORPUS = sorted((FUZZ / "corpus" / "gb_service").iterdir())
RTSP_CLIENT_CORPUS = sorted((FUZZ / "corpus" / "rtsp_client").iterdir())
MANSRTSP_CORPUS = sorted((FUZZ / "corpus" / "mansrtsp").iterdir())


def _target(name: str):
    spec = importlib.util.spec_from_file_location(name, FUZZ / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_one = _target("atheris_signaling").check_one
check_rtsp = _target("atheris_rtsp").check_one
check_sip = _target("atheris_sip").check_one
check_manscdp = _target("atheris_manscdp").check_one
check_gb_service = _target("atheris_gb_service").check_one
check_rtsp_client = _target("atheris_rtsp_client").check_one
check_mansrtsp = _target("atheris_mansrtsp").check_one


def test_corpus_is_not_empty():
    assert len(CORPUS) >= 10
    assert len(RTSP_CORPUS) >= 10
    assert len(SIP_CORPUS) >= 10
    assert len(MANSCDP_CORPUS) >= 10
    assert len(GB_SERVICE_CORPUS) >= 10
    assert len(RTSP_CLIENT_CORPUS) >= 10
    assert len(MANSRTSP_CORPUS) >= 10


@pytest.mark.parametrize("path", RTSP_CLIENT_CORPUS, ids=lambda p: p.name)
def test_rtsp_client_corpus_file(path: Path):
    data = path.read_bytes()
    check_rtsp_client(data)  # an origin's replies, whole and byte by byte
    for cut in range(0, len(data), max(1, len(data) // 16)):  # truncated inputs too
        check_rtsp_client(data[:cut])


@pytest.mark.parametrize("path", GB_SERVICE_CORPUS, ids=lambda p: p.name)
def test_gb_service_corpus_file(path: Path):
    data = path.read_bytes()
    check_gb_service(data)  # a datagram to the service, a MESSAGE body, a POST body
    for cut in range(0, len(data), max(1, len(data) // 16)):  # truncated inputs too
        check_gb_service(data[:cut])


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


@pytest.mark.parametrize("path", SIP_CORPUS, ids=lambda p: p.name)
def test_sip_corpus_file(path: Path):
    data = path.read_bytes()
    check_sip(data)  # datagram, and stream whole, byte by byte and split in two
    for cut in range(0, len(data), max(1, len(data) // 16)):  # truncated inputs too
        check_sip(data[:cut])


@pytest.mark.parametrize("path", MANSCDP_CORPUS, ids=lambda p: p.name)
def test_manscdp_corpus_file(path: Path):
    data = path.read_bytes()
    check_manscdp(data)  # whole, and carried in a SIP MESSAGE split in two
    for cut in range(0, len(data), max(1, len(data) // 16)):
        check_manscdp(data[:cut])


@pytest.mark.parametrize("path", MANSRTSP_CORPUS, ids=lambda p: p.name)
def test_mansrtsp_corpus_file(path: Path):
    data = path.read_bytes()
    check_mansrtsp(data)  # whole, as text, rebuilt
    for cut in range(0, len(data), max(1, len(data) // 16)):
        check_mansrtsp(data[:cut])
