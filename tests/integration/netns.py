"""A private network namespace joined to this one by a veth pair, for peers that will not use loopback.

Firefox gathers no host ICE candidate on loopback, and none at all in a namespace without a
default route (see shared notes, peers.md). :func:`veth_namespace` makes a namespace with one
end of a veth pair inside (``inner``, a private /30 address, ``lo`` up, a default route via the
other end) and the other end here (``outer``): a server listening on ``outer`` is reachable from
inside, and a program inside is reachable from here on ``inner``. Everything is removed on exit.

:meth:`Netns.enter` moves the *calling thread* into the namespace (``setns(2)`` is per thread);
sockets that thread opens, and programs and threads it starts, live there. A one-thread
executor whose initializer is ``enter`` runs a client (Selenium) inside while the test stays out.
Needs root (CAP_NET_ADMIN), as the tests run in CI.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
# 10.213.0.0/16 cut into /30s; one is picked at random among those no interface here uses.
POOL = ipaddress.IPv4Network("10.213.0.0/16")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _used_addresses() -> set[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10).stdout
    return {word.split("/")[0] for line in out.splitlines() for word in line.split()[3:4]}


@dataclass(frozen=True)
class Netns:
    name: str
    outer: str  # address of the end in this namespace
    inner: str  # address of the end inside the private namespace

    def enter(self) -> None:
        """Moves the calling thread into the namespace (for good: use a thread of its own)."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {self.name}: {os.strerror(err)}")
        finally:
            os.close(fd)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name, *argv]


@contextlib.contextmanager
def veth_namespace(tag: str = "pms") -> Iterator[Netns]:
    """A namespace ``<tag><pid>`` with a veth pair to this one and a default route out of it."""
    suffix = f"{os.getpid() % 100000}{random.randrange(100)}"
    name, outer_if, inner_if = f"{tag}{suffix}", f"{tag[:3]}{suffix}o", f"{tag[:3]}{suffix}i"
    used = _used_addresses()
    subnets = list(POOL.subnets(new_prefix=30))
    for _ in range(100):
        net = random.choice(subnets)
        outer, inner = (str(a) for a in list(net.hosts())[:2])
        if outer not in used and inner not in used:
            break
    else:
        raise RuntimeError(f"no free /30 in {POOL}")
    _ip("netns", "add", name)
    try:
        _ip("link", "add", outer_if, "type", "veth", "peer", "name", inner_if, "netns", name)
        _ip("addr", "add", f"{outer}/30", "dev", outer_if)
        _ip("link", "set", outer_if, "up")
        _ip("-n", name, "addr", "add", f"{inner}/30", "dev", inner_if)
        _ip("-n", name, "link", "set", inner_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "route", "add", "default", "via", outer)
        yield Netns(name, outer, inner)
    finally:
        # Deleting one end deletes both; the namespace's own clean-up would do it, but later.
        subprocess.run(["ip", "link", "del", outer_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
