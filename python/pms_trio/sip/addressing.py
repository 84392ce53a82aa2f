"""Where SIP messages go (RFC 3261 18.2.1/18.2.2, RFC 3581 rport), sans-IO.

Owns: :class:`Destination` (transport + host + port: the adapter sends there, over the connection
the request came in on for TCP), :func:`stamp_received` (the server adds ``received``/``rport`` to the
top Via of a request it receives) and :func:`response_destination` (where a response to that request
goes), :func:`make_via` for our own requests. No I/O, no clock, nothing of the package but
``sip.message``.

Why this matters for GB28181: a camera behind NAT writes its private address in Via and Contact.
Answering the top Via's ``received``/``rport`` (the packet's real source) is what reaches it; the
Contact and the ``Route`` some NVRs add to REGISTER are ignored for responses.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .message import (
    BRANCH_MAGIC,
    Message,
    Request,
    Via,
    split_commas,
)

DEFAULT_PORT = 5060
RELIABLE = frozenset({"TCP", "TLS", "SCTP", "WS", "WSS"})


@dataclass(frozen=True, slots=True)
class Destination:
    transport: str  # "UDP" or "TCP" (upper case)
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport.upper() in RELIABLE


def stamp_received(request: Request, source: tuple[str, int]) -> Request:
    """``request`` with its top Via stamped as RFC 3261 18.2.1 and RFC 3581 say: ``received`` when
    the source IP differs from sent-by (always when rport was asked for), and ``rport=<port>`` when
    the Via carries ``rport``. The first Via header's first value is the one rewritten. The stamped
    request keeps what the original had already parsed (every header but Via is the same)."""
    headers = request.headers
    at = next((i for i, (key, _) in enumerate(headers) if key.lower() == "via"), None)
    if at is None:
        return request
    name, value = headers[at]
    parts = split_commas(value)
    if not parts:
        return request
    top = request.top_via  # the first value of the first Via header, parsed once per message
    host, port = source
    asked_rport = top.param("rport") is not None
    if top.host.strip("[]") != host or asked_rport:
        top = top.with_param("received", host)
    if asked_rport:
        top = top.with_param("rport", str(port))
    value = ", ".join((str(top), *parts[1:]))
    stamped = Request(request.method, request.uri, (*headers[:at], (name, value), *headers[at + 1:]),
                      request.body, request.version)
    stamped.inherit(request, via=value, top_via=top)
    return stamped


def response_destination(message: Message | Via, transport: str) -> Destination:
    """Where a response goes, from the (stamped) top Via of the request it answers.

    Reliable transports answer on the connection the request came on: the destination is its
    source (``received``/``rport``, which :func:`stamp_received` set), so the adapter can find that
    connection (and open a new one to it if it closed, 18.2.2). Unreliable: ``maddr`` if present,
    else ``received`` with ``rport`` (or the sent-by port), else sent-by (default port 5060)."""
    via = message if isinstance(message, Via) else message.top_via
    sent_port = via.port or DEFAULT_PORT
    received = via.param("received")
    rport = via.param("rport")
    port = int(rport) if rport and rport.isdigit() and 0 < int(rport) <= 65535 else sent_port
    transport = transport.upper()
    if transport in RELIABLE:
        return Destination(transport, received or via.host, port)
    maddr = via.param("maddr")
    if maddr:
        return Destination(transport, maddr, sent_port)
    if received:
        return Destination(transport, received, port)
    return Destination(transport, via.host, port if rport else sent_port)


def new_branch() -> str:
    """A fresh RFC 3261 branch (the magic cookie, then 96 random bits)."""
    return BRANCH_MAGIC + secrets.token_hex(12)


def make_via(transport: str, host: str, port: int, branch: str | None = None, *, rport: bool = True) -> str:
    """Our Via value for a request we send: ``SIP/2.0/UDP host:port;rport;branch=...``."""
    params = ";rport" if rport else ""
    return f"SIP/2.0/{transport.upper()} {host}:{port}{params};branch={branch or new_branch()}"
