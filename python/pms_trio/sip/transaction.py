"""SIP transactions (RFC 3261 section 17, RFC 6026 Accepted states), sans-IO state machines.

Owns: :class:`ClientTransaction` (INVITE: timers A, B, D, M; non-INVITE: E, F, K),
:class:`ServerTransaction` (INVITE: 100 Trying at once, G, H, I, L; non-INVITE: J) and
:class:`TransactionLayer`, the matching table (RFC 3261 17.1.3: branch + CSeq method for responses;
17.2.3: branch + sent-by + method, ACK matching INVITE, for requests). No I/O, no clock: every call
takes ``now`` and returns outputs; :meth:`next_deadline` says when to call :meth:`handle_timeout`.

Outputs (frozen, slotted nouns): :class:`Send` (bytes for a :class:`Destination`), :class:`Deliver`
(a message for the transaction user: a new request, a response, or a stray ACK/2xx the dialog layer
owns), :class:`TimedOut` (Timer B/F/H fired: the TU acts as on a 408).

Reliable transports (TCP) never retransmit and make D, I, J, K zero (RFC 3261 17.1.1.2 and
following). Retransmissions over UDP: A doubles without cap until B (64*T1); E doubles up to T2, and
is T2 once a provisional arrived; G doubles up to T2 until H. The server INVITE transaction keeps the
2xx it sent in Accepted (Timer L = 64*T1) and resends it when the INVITE is retransmitted; sending
the 2xx until the ACK arrives (RFC 3261 13.3.1.4) is the dialog user's job and is not done here.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .addressing import Destination, response_destination, stamp_received
from .message import (
    LocalProtocolError,
    Message,
    Request,
    Response,
    SipParseError,
    response_to,
    serialize,
)

T1 = 0.5
T2 = 4.0
T4 = 5.0
MAX_TRANSACTIONS = 10_000


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes
    destination: Destination


@dataclass(frozen=True, slots=True)
class Deliver:
    message: Message
    source: Destination | None = None


@dataclass(frozen=True, slots=True)
class TimedOut:
    request: Request


Output = Send | Deliver | TimedOut


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def _key(branch: str | None, method: str, sent_by: str = "") -> tuple[str, str, str]:
    return (branch or "", "INVITE" if method == "ACK" else method, sent_by)


def _ack_for(request: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (RFC 3261 17.1.1.3): same top Via, From, Call-ID,
    Request-URI, Route; the response's To; CSeq number with ACK."""
    headers: list[tuple[str, str]] = []
    number, _ = request.cseq
    via_value = request.header("Via") or ""
    headers.append(("Via", via_value.split(",")[0].strip()))
    for name in ("From", "Call-ID"):
        headers.append((name, request.header(name) or ""))
    headers.append(("To", response.header("To") or request.header("To") or ""))
    headers.append(("CSeq", f"{number} ACK"))
    headers.extend(("Route", v) for v in request.header_all("Route"))
    headers.append(("Max-Forwards", "70"))
    return Request("ACK", request.uri, tuple(headers))


class _Transaction:
    """What client and server transactions share: the request, where it goes or came from, the
    timer values, and three deadlines (retransmit, time out, end) that :meth:`next_deadline`
    reports and :meth:`_end_or_time_out` acts on. The subclasses set ``key``, ``state`` and the
    deadlines their RFC 3261 state machine starts with."""

    key: tuple[str, str, str]
    state: State

    def __init__(self, request: Request, destination: Destination, *, t1: float, t2: float, t4: float) -> None:
        self.request = request
        self.destination = destination
        self.invite = request.method == "INVITE"
        self.reliable = destination.reliable
        self.t1, self.t2, self.t4 = t1, t2, t4
        self._interval = t1
        self._retransmit_at: float | None = None
        self._timeout_at: float | None = None
        self._end_at: float | None = None

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def next_deadline(self) -> float | None:
        times = [t for t in (self._retransmit_at, self._timeout_at, self._end_at) if t is not None]
        return min(times) if times else None

    def _end_or_time_out(self, now: float) -> list[Output] | None:
        """At ``now``: the end timer (terminated, nothing to send) or the time-out timer (terminated,
        :class:`TimedOut`) if one is due, else None (the caller goes on to retransmissions)."""
        if self._end_at is not None and now >= self._end_at:
            self.state = State.TERMINATED
            self._end_at = None
            return []
        if self._timeout_at is not None and now >= self._timeout_at:
            self.state = State.TERMINATED
            self._timeout_at = self._retransmit_at = None
            return [TimedOut(self.request)]
        return None


class ClientTransaction(_Transaction):
    """One request we sent and the responses it gets."""

    def __init__(self, request: Request, destination: Destination, now: float, *,
                 t1: float = T1, t2: float = T2, t4: float = T4) -> None:
        super().__init__(request, destination, t1=t1, t2=t2, t4=t4)
        self.key = _key(request.top_via.branch, request.method)
        self.state = State.CALLING if self.invite else State.TRYING
        self._data = serialize(request)
        self._ack: bytes | None = None
        self._retransmit_at = None if self.reliable else now + t1  # Timer A / E
        self._timeout_at = now + 64 * t1  # Timer B / F
        # _end_at: Timer D / K / M

    def start(self) -> list[Output]:
        return [Send(self._data, self.destination)]

    def handle_response(self, response: Response, now: float) -> list[Output]:
        status = response.status
        state = self.state
        if state in (State.CALLING, State.TRYING, State.PROCEEDING):
            if status < 200:
                self.state = State.PROCEEDING
                if self.invite:
                    self._retransmit_at = None
                    self._timeout_at = None
                elif self._retransmit_at is not None:
                    self._interval = self.t2
                return [Deliver(response)]
            self._retransmit_at = None
            self._timeout_at = None
            if self.invite and status < 300:
                self.state = State.ACCEPTED
                self._end_at = now + 64 * self.t1  # Timer M
                return [Deliver(response)]
            self.state = State.COMPLETED
            out: list[Output] = [Deliver(response)]
            if self.invite:
                self._ack = serialize(_ack_for(self.request, response))
                out.append(Send(self._ack, self.destination))
                self._end_at = now + (0 if self.reliable else 32.0)  # Timer D
            else:
                self._end_at = now + (0 if self.reliable else self.t4)  # Timer K
            return out
        if state is State.ACCEPTED and 200 <= status < 300:
            return [Deliver(response)]  # a 2xx retransmission: the dialog re-ACKs
        if state is State.COMPLETED and self._ack is not None and status >= 300:
            return [Send(self._ack, self.destination)]
        return []

    def handle_timeout(self, now: float) -> list[Output]:
        finished = self._end_or_time_out(now)
        if finished is not None:
            return finished
        out: list[Output] = []
        if self._retransmit_at is not None and now >= self._retransmit_at:
            out.append(Send(self._data, self.destination))
            if self.invite:
                self._interval *= 2
            elif self.state is State.PROCEEDING:
                self._interval = self.t2
            else:
                self._interval = min(self._interval * 2, self.t2)
            self._retransmit_at = now + self._interval
        return out


class ServerTransaction(_Transaction):
    """One request we received and the responses we send to it."""

    def __init__(self, request: Request, destination: Destination, now: float, *,
                 t1: float = T1, t2: float = T2, t4: float = T4) -> None:
        super().__init__(request, destination, t1=t1, t2=t2, t4=t4)
        via = request.top_via
        self.key = _key(via.branch, request.method, via.sent_by)
        self.state = State.PROCEEDING if self.invite else State.TRYING
        self._last: bytes | None = None
        # _retransmit_at: Timer G. _timeout_at: Timer H once a final response is out; before it, how
        # long the TU may stay silent (not in the RFC: a request nobody answers must not hold memory
        # forever; 180 s is Timer C's value). _end_at: Timer I / J / L.
        self._timeout_at = now + (180.0 if self.invite else 64 * t1)

    def start(self) -> list[Output]:
        out: list[Output] = [Deliver(self.request, self.destination)]
        if self.invite:
            self._last = serialize(response_to(self.request, 100))
            out.insert(0, Send(self._last, self.destination))
        return out

    def handle_request(self, request: Request, now: float) -> list[Output]:
        """A retransmission of our request, or the ACK for our non-2xx final response."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._retransmit_at = self._timeout_at = None
                self._end_at = now + (0 if self.reliable else self.t4)  # Timer I
            return []
        if self.state is State.TRYING or self._last is None:
            return []
        return [Send(self._last, self.destination)]

    def send_response(self, response: Response, now: float) -> list[Output]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            raise LocalProtocolError(f"a {response.status} after the final response")
        self._last = serialize(response)
        out: list[Output] = [Send(self._last, self.destination)]
        if response.status < 200:
            self.state = State.PROCEEDING
            return out
        self._timeout_at = None
        if not self.invite:
            self.state = State.COMPLETED
            self._end_at = now + (0 if self.reliable else 64 * self.t1)  # Timer J
        elif response.status < 300:
            self.state = State.ACCEPTED
            self._end_at = now + 64 * self.t1  # Timer L
        else:
            self.state = State.COMPLETED
            if not self.reliable:
                self._retransmit_at = now + self.t1  # Timer G
            self._timeout_at = now + 64 * self.t1  # Timer H
        return out

    def handle_timeout(self, now: float) -> list[Output]:
        finished = self._end_or_time_out(now)
        if finished is not None:
            return finished
        if self._retransmit_at is not None and now >= self._retransmit_at and self._last is not None:
            self._interval = min(self._interval * 2, self.t2)
            self._retransmit_at = now + self._interval
            return [Send(self._last, self.destination)]
        return []


class TransactionLayer:
    """All transactions of one SIP endpoint, matched as RFC 3261 17.1.3 and 17.2.3 say."""

    def __init__(self, *, t1: float = T1, t2: float = T2, t4: float = T4,
                 max_transactions: int = MAX_TRANSACTIONS) -> None:
        self.timers = {"t1": t1, "t2": t2, "t4": t4}
        self.max_transactions = max_transactions
        self.clients: dict[tuple[str, str, str], ClientTransaction] = {}
        self.servers: dict[tuple[str, str, str], ServerTransaction] = {}
        # (deadline, seq, tx): pushed whenever a transaction is touched (every change of its deadline
        # goes through this layer), so the live deadline is always in it; an entry whose transaction
        # ended or whose deadline moved is stale and dropped when it comes up. Timers cost O(log n)
        # per event instead of a sweep of every transaction on each tick.
        self._heap: list[tuple[float, int, ClientTransaction | ServerTransaction]] = []
        self._seq = itertools.count()

    def _schedule(self, tx: ClientTransaction | ServerTransaction) -> None:
        deadline = tx.next_deadline()
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, next(self._seq), tx))

    def _current(self, tx: ClientTransaction | ServerTransaction) -> bool:
        table: dict[tuple[str, str, str], Any] = self.clients if isinstance(tx, ClientTransaction) else self.servers
        return table.get(tx.key) is tx

    def send_request(self, request: Request, destination: Destination, now: float) -> list[Output]:
        """Start a client transaction (not for ACK: send an ACK for a 2xx directly)."""
        tx = ClientTransaction(request, destination, now, **self.timers)
        self.clients[tx.key] = tx
        self._schedule(tx)
        return tx.start()

    def receive(self, message: Message, source: Destination, now: float) -> list[Output]:
        """A parsed message from ``source`` (its transport and address)."""
        if isinstance(message, Response):
            try:
                key = _key(message.top_via.branch, message.cseq[1])
            except SipParseError:
                return []
            tx = self.clients.get(key)
            if tx is None:
                return [Deliver(message, source)]  # e.g. a 2xx retransmission: the dialog re-ACKs
            outputs = tx.handle_response(message, now)
            self._schedule(tx)
            return outputs
        request = stamp_received(message, (source.host, source.port))
        via = request.top_via
        server = self.servers.get(_key(via.branch, request.method, via.sent_by))
        if server is not None and via.branch:
            outputs = server.handle_request(request, now)
            self._schedule(server)
            return outputs
        if request.method == "ACK":
            return [Deliver(request, source)]  # the ACK for a 2xx belongs to the dialog
        destination = response_destination(request, source.transport)
        if len(self.servers) >= self.max_transactions:
            busy = response_to(request, 503, headers=(("Retry-After", "5"),))
            return [Send(serialize(busy), destination)]
        server_tx = ServerTransaction(request, destination, now, **self.timers)
        self.servers[server_tx.key] = server_tx
        self._schedule(server_tx)
        return server_tx.start()

    def send_response(self, request: Request, response: Response, now: float) -> list[Output]:
        """Answer ``request`` (as delivered) through its server transaction."""
        via = request.top_via
        server_tx = self.servers.get(_key(via.branch, request.method, via.sent_by))
        if server_tx is None or server_tx.terminated:
            raise LocalProtocolError(f"no open transaction for {request.method} {via.branch}")
        outputs = server_tx.send_response(response, now)
        self._schedule(server_tx)
        return outputs

    def _valid(self, entry: tuple[float, int, ClientTransaction | ServerTransaction]) -> bool:
        deadline, _, tx = entry
        return not tx.terminated and self._current(tx) and tx.next_deadline() == deadline

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)  # stale: every deadline change pushed its own entry
        return heap[0][0] if heap else None

    def handle_timeout(self, now: float) -> list[Output]:
        out: list[Output] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._valid(entry):
                continue
            tx = entry[2]
            out.extend(self._expire(tx, now))
            if tx.terminated:
                table: dict[tuple[str, str, str], Any] = (self.clients if isinstance(tx, ClientTransaction)
                                                          else self.servers)
                del table[tx.key]
            else:
                self._schedule(tx)
        return out

    @staticmethod
    def _expire(tx: ClientTransaction | ServerTransaction, now: float) -> list[Output]:
        out: list[Output] = []
        while not tx.terminated and (deadline := tx.next_deadline()) is not None and now >= deadline:
            out.extend(tx.handle_timeout(now))
        return out
