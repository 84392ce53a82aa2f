#!/usr/bin/env python3
"""The SIP service's own cost per Keepalive, in process: no socket, no trio wake-ups.

Builds a :class:`~pms_trio.gb28181.service.GbService` with ``--devices`` registered devices, then
feeds it Keepalive datagrams through the same entry point the UDP reader uses
(``SipTransport._datagram``: parse, transaction, registrar, MANSCDP, the 200 serialized) with the
send replaced by a counter, and ends the transactions (Timer J) as the timer task would. Prints the
best of ``--repeat`` rounds in microseconds of CPU per Keepalive. ``run.py`` measures the real
server; this isolates the Python work from the socket and the event loop.

    python bench/sip_load/inproc.py                   # 10,000 devices, 2 Keepalives each, best of 4
    python bench/sip_load/inproc.py --profile         # and a cProfile of one round
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import trio
from pms_trio.config import SipConfig
from pms_trio.gb28181.registrar import Device
from pms_trio.gb28181.service import DeviceState, GbService
from pms_trio.sip.addressing import Destination

SERVER_ID = "34020000002000000001"
REALM = "3402000000"


def keepalive(i: int, sn: int) -> bytes:
    dev = f"3402000000132{i:07d}"
    body = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>{sn}'
            f"</SN>\r\n<DeviceID>{dev}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n").encode()
    head = (f"MESSAGE sip:{SERVER_ID}@{REALM} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{40000 + i % 100};rport;branch=z9hG4bK{sn:x}b{i}\r\n"
            f"From: <sip:{dev}@{REALM}>;tag=t{i}\r\nTo: <sip:{SERVER_ID}@{REALM}>\r\nCall-ID: ka-{i}-{sn}\r\n"
            f"CSeq: {sn} MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: Application/MANSCDP+xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def measure(args: argparse.Namespace) -> None:
    config = SipConfig(True, SERVER_ID, REALM, "127.0.0.1", 0, "", "secret", 3600.0, 0, "tcp-passive")
    service = GbService(config, None, None)
    sent = [0]

    def count(data: bytes, destination: Destination) -> None:
        sent[0] += 1

    service.send = count  # type: ignore[method-assign]
    now = trio.current_time()
    for i in range(args.devices):
        device_id = f"3402000000132{i:07d}"
        source = Destination("UDP", "127.0.0.1", 40000 + i % 100)
        service.registrar.devices[device_id] = Device(device_id, source, "", now, now + 3600, now)
        service.devices[device_id] = DeviceState(device_id, source)
    best = float("inf")
    profile = cProfile.Profile() if args.profile else None
    for round_ in range(args.repeat):
        datagrams = [keepalive(i, 2 + 2 * round_ + k) for k in range(2) for i in range(args.devices)]
        if profile is not None and round_ == args.repeat - 1:
            profile.enable()
        start = time.process_time()
        for data in datagrams:
            service.transport._datagram(data, ("127.0.0.1", 40000))
        service._outputs(service.tx.handle_timeout(trio.current_time() + 100))  # Timer J for all
        best = min(best, (time.process_time() - start) / len(datagrams))
        if profile is not None and round_ == args.repeat - 1:
            profile.disable()
    answered = sent[0] / args.repeat
    print(f"in process: {best * 1e6:.1f} us of CPU per Keepalive (best of {args.repeat} rounds of "
          f"{2 * args.devices}; {answered:.0f} answers per round); at {args.devices / 60:.1f}/s that is "
          f"{best * args.devices / 60 * 100:.2f}% of one core")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--profile", action="store_true")
    trio.run(measure, ap.parse_args())


if __name__ == "__main__":
    main()
