"""Feeds the answers written by `cargo test -p pms-core --test sdp` (in $TMPDIR/pms-sdp-answers/)
to aiortc's RTCPeerConnection.setRemoteDescription, on a peer connection that made the same kind
of offer as the fixture (aiortc assigns mids and payload types deterministically).

Run by hand: python3 rust/core/tests/data/check_answers.py
"""
import asyncio
import os
import sys
import tempfile

from aiortc import RTCPeerConnection, RTCSessionDescription

DIR = os.path.join(tempfile.gettempdir(), "pms-sdp-answers")
CASES = [
    ("aiortc_publish_av.answer.sdp", ["audio", "video"], "sendonly"),
    ("aiortc_play_av.answer.sdp", ["audio", "video"], "recvonly"),
]


async def check(name, kinds, direction):
    pc = RTCPeerConnection()
    for kind in kinds:
        pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    answer = open(os.path.join(DIR, name)).read()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    out = []
    for t in pc.getTransceivers():
        codecs = [f"{c.mimeType}/{c.payloadType}" for c in (t._codecs or [])]
        out.append(f"{t.kind} mid={t.mid} dir={t.currentDirection} codecs={codecs}")
    ice = pc.getTransceivers()[0].receiver.transport.transport
    print(f"OK {name}: " + "; ".join(out) + f"; remote ice-lite={ice._connection.remote_is_lite}")
    await pc.close()


async def main():
    failed = 0
    for case in CASES:
        try:
            await check(*case)
        except Exception as e:  # report every case
            failed += 1
            print(f"FAIL {case[0]}: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)


asyncio.run(main())
