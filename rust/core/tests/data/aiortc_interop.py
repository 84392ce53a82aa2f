"""Manual interop check: aiortc publishes video to `cargo run --example loopback_peer`.

    CARGO_TARGET_DIR=... cargo build -p pms-core --example loopback_peer
    python3 rust/core/tests/data/aiortc_interop.py PATH/TO/loopback_peer
"""
import asyncio
import subprocess
import sys
import tempfile
import os

from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack


async def main(binary):
    pc = RTCPeerConnection()
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    d = tempfile.mkdtemp()
    offer_path, answer_path = os.path.join(d, "offer.sdp"), os.path.join(d, "answer.sdp")
    open(offer_path, "w").write(pc.localDescription.sdp)
    proc = subprocess.Popen([binary, offer_path, answer_path])
    for _ in range(100):
        if os.path.exists(answer_path) and os.path.getsize(answer_path) > 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=open(answer_path).read(), type="answer"))
    for _ in range(300):
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.1)
    print("aiortc connectionState:", pc.connectionState)
    dtls = pc.getTransceivers()[0].sender.transport
    print("aiortc DTLS role:", dtls._role)
    await pc.close()
    sys.exit(proc.wait())


asyncio.run(main(sys.argv[1]))
