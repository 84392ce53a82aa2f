"""INVITE dialogs (RFC 3261 section 12, 13.2.2.4, 15), sans-IO.

Owns: :class:`Dialog` (Call-ID, local and remote tags, local and remote CSeq, remote target, route
set, state), built from the INVITE and its answer on either side (:meth:`Dialog.from_uac`,
:meth:`Dialog.from_uas`); the ACK for a 2xx, which the UAC builds itself (new branch, same CSeq
number, sent to the remote target through the route set); in-dialog requests (BYE, INFO) with the
next CSeq; and the checks on in-dialog requests from the peer (:meth:`Dialog.receive_request`: 481
when it is not ours, 500 when its CSeq went backwards). No I/O, no clock, no randomness beyond fresh
tags/branches; nothing of the package but ``sip.message`` and ``sip.addressing``.

GB28181 specifics (notes section 5): ACK carries the INVITE's Call-ID and From tag, the 200's To tag,
the INVITE's CSeq number; BYE the same Call-ID and tags with the next CSeq, addressed to the 200's
Contact. Dialogs are keyed by (Call-ID, local tag, remote tag), never by SSRC. Only loose routing
(``;lr``) is supported: a strict-routing first hop is treated as loose.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from enum import Enum

from .addressing import make_via
from .message import (
    LocalProtocolError,
    Request,
    Response,
    SipParseError,
    parse_name_addr,
    split_commas,
)


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # the From (UAC) / To (UAS) value without its tag
    remote_uri: str
    local_seq: int
    remote_seq: int | None
    remote_target: str  # the peer's Contact URI
    route_set: tuple[str, ...] = ()
    state: DialogState = DialogState.EARLY
    invite_cseq: int = 0
    extra: dict[str, str] = field(default_factory=dict)  # the user's notes (channel, ssrc...)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    # -- creation

    @classmethod
    def from_uac(cls, invite: Request, response: Response) -> Dialog:
        """Our INVITE and the 1xx (with a To tag) or 2xx that created the dialog."""
        if invite.method != "INVITE" or not 101 <= response.status < 300:
            raise LocalProtocolError("a dialog comes from an INVITE and a 101-299 response")
        remote_tag = response.to.tag
        local_tag = invite.from_.tag
        if not remote_tag or not local_tag:
            raise SipParseError("the response has no To tag (or our INVITE no From tag)")
        contact = response.header("Contact")
        target = parse_name_addr(contact).uri if contact else invite.uri
        routes = [r for value in response.header_all("Record-Route") for r in split_commas(value)]
        number, _ = invite.cseq
        state = DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY
        return cls(invite.call_id, local_tag, remote_tag, _untagged(invite.header("From")),
                   _untagged(invite.header("To")), number, None, target, tuple(reversed(routes)), state,
                   number)

    @classmethod
    def from_uas(cls, invite: Request, response: Response) -> Dialog:
        """An INVITE we received and the 2xx (with our To tag) we answered."""
        local_tag = response.to.tag
        remote_tag = invite.from_.tag
        if not local_tag:
            raise LocalProtocolError("our response needs a To tag")
        if not remote_tag:
            raise SipParseError("the INVITE has no From tag")
        contact = invite.header("Contact")
        if not contact:
            raise SipParseError("the INVITE has no Contact")
        routes = [r for value in invite.header_all("Record-Route") for r in split_commas(value)]
        number, _ = invite.cseq
        return cls(invite.call_id, local_tag, remote_tag, _untagged(invite.header("To")),
                   _untagged(invite.header("From")), 0, number, parse_name_addr(contact).uri,
                   tuple(routes), DialogState.CONFIRMED, number)

    def update_from_response(self, response: Response) -> None:
        """A 2xx confirms an early dialog and refreshes the remote target (RFC 3261 12.2.1.2)."""
        if 200 <= response.status < 300 and self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED
        contact = response.header("Contact")
        if contact and response.status < 300:
            self.remote_target = parse_name_addr(contact).uri

    # -- requests we send

    def _headers(self, method: str, number: int, via: str) -> list[tuple[str, str]]:
        return [("Via", via), ("From", f"{self.local_uri};tag={self.local_tag}"),
                ("To", f"{self.remote_uri};tag={self.remote_tag}"), ("Call-ID", self.call_id),
                ("CSeq", f"{number} {method}"), *(("Route", r) for r in self.route_set),
                ("Max-Forwards", "70")]

    def _first_hop(self) -> str:
        """The request URI: the remote target (loose routing: Route carries the hops)."""
        return self.remote_target

    def ack(self, transport: str, host: str, port: int, *, body: bytes = b"",
            content_type: str | None = None) -> Request:
        """The ACK for the 2xx to our INVITE: new branch, the INVITE's CSeq number."""
        headers = self._headers("ACK", self.invite_cseq, make_via(transport, host, port))
        if content_type:
            headers.append(("Content-Type", content_type))
        return Request("ACK", self._first_hop(), tuple(headers), body)

    def request(self, method: str, transport: str, host: str, port: int, *, body: bytes = b"",
                content_type: str | None = None, headers: tuple[tuple[str, str], ...] = ()) -> Request:
        """An in-dialog request with the next local CSeq (BYE, INFO with MANSRTSP...)."""
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} reuses a CSeq: use ack() or the transaction")
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"{method} in a terminated dialog")
        self.local_seq += 1
        out = self._headers(method, self.local_seq, make_via(transport, host, port))
        if content_type:
            out.append(("Content-Type", content_type))
        out.extend(headers)
        return Request(method, self._first_hop(), tuple(out), body)

    def bye(self, transport: str, host: str, port: int) -> Request:
        request = self.request("BYE", transport, host, port)
        self.state = DialogState.TERMINATED
        return request

    # -- requests we receive

    def matches(self, message: Request | Response) -> bool:
        if isinstance(message, Request):
            return (message.call_id, message.to.tag, message.from_.tag) == self.key
        return (message.call_id, message.from_.tag, message.to.tag) == self.key

    def receive_request(self, request: Request) -> int:
        """Check an in-dialog request from the peer; the status to answer (200 for a BYE, which
        also ends the dialog; the caller answers other methods with what it decides on 200)."""
        if not self.matches(request):
            return 481
        if request.method == "ACK":
            return 200
        number, _ = request.cseq
        if self.remote_seq is not None and number <= self.remote_seq:
            return 500  # RFC 3261 12.2.2: lower CSeq
        self.remote_seq = number
        if request.method == "BYE":
            self.state = DialogState.TERMINATED
        return 200


def _untagged(value: str | None) -> str:
    address = parse_name_addr(value or "")
    address = replace(address, params=tuple((k, v) for k, v in address.params if k != "tag"))
    return str(address)


class DialogTable:
    """Dialogs by (Call-ID, local tag, remote tag), with a lookup for an incoming message."""

    def __init__(self) -> None:
        self._dialogs: dict[tuple[str, str, str], Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def add(self, dialog: Dialog) -> None:
        self._dialogs[dialog.key] = dialog

    def remove(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.key, None)

    def find(self, message: Request | Response) -> Dialog | None:
        if isinstance(message, Request):
            key = (message.call_id, message.to.tag or "", message.from_.tag or "")
        else:
            key = (message.call_id, message.from_.tag or "", message.to.tag or "")
        return self._dialogs.get(key)

    def by_call_id(self, call_id: str) -> list[Dialog]:
        return [d for d in self._dialogs.values() if d.call_id == call_id]
