"""SIP over UDP and TCP on one port: the thin trio adapter under the GB28181 service.

Owns the UDP socket and the TCP listener on ``sip.listenIp:sip.port`` (the same number for both:
with port 0 the system picks the TCP port and UDP binds the same one), the TCP connections (one
:class:`~pms_trio.sip.message.StreamFramer` each, many devices at once) and :meth:`SipTransport.send`.
It parses and frames; it does not interpret: every message goes to ``on_message(message, source)``,
a synchronous callback of the service (never blocking), with ``source`` a
:class:`~pms_trio.sip.addressing.Destination` naming the transport and the packet's real address.

Bad input (RFC 3261 18.3, 21.4.1): a datagram that does not parse is answered 400 when its
Via/From/To/Call-ID/CSeq can be read (``error_response``), else dropped; on TCP the stream cannot be
resynchronised, so the same answer is sent and the connection closed. Other connections and the
UDP socket are never affected. A TCP connection idle for :data:`TCP_IDLE` seconds (devices keep
theirs busy with Keepalives every 60 s) is closed; at most :data:`MAX_CONNECTIONS` are served.
The UDP receive buffer asks for :data:`UDP_RCVBUF` (4 MiB, capped by ``net.core.rmem_max``) so a
burst of a thousand REGISTERs is queued, not dropped.

Where a message goes: :meth:`send` with a ``Destination``. Over TCP it uses the open connection to
that address (a device's own connection: RFC 3261 18.2.2 answers on it), else opens one (a device
registered over TCP whose connection closed; bounded by :data:`CONNECT_TIMEOUT`). Sends on one
connection are serialised by a lock. Failures to send are logged and dropped: SIP retransmission
and the transaction timers decide what happens next.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable

import trio

from ..sip.addressing import Destination
from ..sip.message import (
    ConnectionClosed,
    Message,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    error_response,
    parse_datagram,
    serialize,
)

log = logging.getLogger("pms_trio.sip")

MAX_DATAGRAM = 65_535
READ_SIZE = 64 * 1024
TCP_IDLE = 600.0
CONNECT_TIMEOUT = 3.0
MAX_CONNECTIONS = 20_000
UDP_RCVBUF = 4 * 1024 * 1024
UDP_BATCH = 64
# How long the UDP reader pauses between batches while traffic flows (see SipTransport._udp_loop):
# a SIP answer waits at most this much more; a handshake's T1 is 500 ms.
UDP_COALESCE = 0.02


class _Connection:
    __slots__ = ("lock", "peer", "stream")

    def __init__(self, stream: trio.SocketStream, peer: tuple[str, int]) -> None:
        self.stream = stream
        self.peer = peer
        self.lock = trio.Lock()


class SipTransport:
    def __init__(self, on_message: Callable[[Message, Destination], None]) -> None:
        self.on_message = on_message
        self.udp: socket.socket | None = None  # non-blocking; trio waits on it (see _udp_loop)
        self.address: tuple[str, int] = ("", 0)
        self.connections: dict[tuple[str, int], _Connection] = {}
        self.dropped = 0  # unreadable datagrams/streams, for tests and stats
        self.closing = False  # stopping: connections opened to send are not served any more
        self._nursery: trio.Nursery | None = None

    # -- serving

    async def serve(self, ip: str, port: int, *,
                    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind UDP and TCP on ``ip:port`` and serve until cancelled. Raises ``OSError`` when either
        cannot be bound (the app names the port)."""
        listener, udp = await self._bind(ip, port)
        self.udp = udp
        self.address = listener.socket.getsockname()[:2]
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._udp_loop, udp)
            await nursery.start(trio.serve_listeners, self._tcp_handler, [listener])
            task_status.started(self.address)

    async def _bind(self, ip: str, port: int) -> tuple[trio.SocketListener, socket.socket]:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        for _ in range(20 if port == 0 else 1):
            tcp = trio.socket.socket(family, socket.SOCK_STREAM)
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.setblocking(False)
            try:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                await tcp.bind((ip, port))
                chosen = tcp.getsockname()[1]
                try:
                    udp.bind((ip, chosen))
                except OSError as e:
                    if port == 0 and e.errno == errno.EADDRINUSE:
                        tcp.close()
                        udp.close()
                        continue  # the system's TCP pick is taken on UDP: try another
                    raise
                tcp.listen(1024)
                try:  # a burst of REGISTERs (a site's cameras after a power cut) must not overflow it
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
                except OSError:
                    pass  # the system's limit (net.core.rmem_max) applies
                return trio.SocketListener(tcp), udp
            except BaseException:
                tcp.close()
                udp.close()
                raise
        raise OSError(errno.EADDRINUSE, "no port free for both TCP and UDP after 20 tries")

    async def _udp_loop(self, udp: socket.socket) -> None:
        """Read datagrams in batches: one wait, then non-blocking reads until the socket is empty
        (a checkpoint after every :data:`UDP_BATCH`); then, while datagrams keep coming, sleep
        :data:`UDP_COALESCE` and read what gathered meanwhile before going back to waiting. A trio
        round trip per datagram cost more than handling it, and a fleet's Keepalives arrive spread
        evenly: without the pause every one of them would be a wake-up of its own. A burst (full
        batches) is read without pauses. The socket stays open after this task ends: :meth:`close`
        closes it, after the service's last BYEs at stop."""
        while True:
            await trio.lowlevel.wait_readable(udp)
            while True:
                got = self._drain(udp)
                if got == UDP_BATCH:
                    await trio.lowlevel.checkpoint()  # more may wait: let the others run, read on
                elif got:
                    await trio.sleep(UDP_COALESCE)
                else:
                    break

    def _drain(self, udp: socket.socket) -> int:
        """Handle up to :data:`UDP_BATCH` datagrams the socket holds; how many there were."""
        got = 0
        while got < UDP_BATCH:
            try:
                data, address = udp.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                break
            except OSError as e:  # ICMP port unreachable from an earlier send, on some systems
                log.debug("sip udp: recvfrom: %s", e)
                got += 1
                continue
            got += 1
            self._datagram(data, address)
        return got

    def _datagram(self, data: bytes, address: tuple[str, int]) -> None:
        source = Destination("UDP", address[0], address[1])
        try:
            message = parse_datagram(data)
        except SipParseError as e:
            self.dropped += 1
            log.info("sip udp %s:%d: bad message (%s)", address[0], address[1], e.message)
            answer = error_response(e)
            if answer is not None and not self.send_udp_now(serialize(answer), source):
                self.send_soon(serialize(answer), source)
            return
        if message is not None:
            self._deliver(message, source)

    def send_udp_now(self, data: bytes, destination: Destination) -> bool:
        """Send a datagram at once from synchronous code; False when the socket buffer is full
        or there is no socket (queue it: :meth:`send` waits for room)."""
        if self.udp is None:
            return False  # not bound (socket-less tests read the service's queue) or closed
        try:
            self.udp.sendto(data, (destination.host, destination.port))
        except BlockingIOError:
            return False
        except OSError as e:
            log.info("sip udp: send to %s:%d failed: %s", destination.host, destination.port, e)
        return True

    def close(self) -> None:
        """Close the UDP socket (the service calls it last, after its BYEs at stop)."""
        self.closing = True
        if self.udp is not None:
            trio.lowlevel.notify_closing(self.udp)
            self.udp.close()
            self.udp = None

    def _deliver(self, message: Message, source: Destination) -> None:
        try:
            self.on_message(message, source)
        except Exception:  # a bug in handling one message must not stop the socket
            log.exception("sip %s %s:%d: handling a message failed", source.transport, source.host, source.port)

    async def _tcp_handler(self, stream: trio.SocketStream) -> None:
        peer = stream.socket.getpeername()[:2]
        if len(self.connections) >= MAX_CONNECTIONS:
            log.warning("sip tcp: %d connections already; %s:%d refused", len(self.connections), *peer)
            await trio.aclose_forcefully(stream)
            return
        await self._run_connection(_Connection(stream, peer))

    async def _run_connection(self, conn: _Connection) -> None:
        host, port = conn.peer
        source = Destination("TCP", host, port)
        self.connections[conn.peer] = conn
        framer = StreamFramer()
        try:
            while True:
                with trio.move_on_after(TCP_IDLE) as idle:
                    data = await conn.stream.receive_some(READ_SIZE)
                if idle.cancelled_caught:
                    log.info("sip tcp %s:%d: idle for %g s, closed", host, port, TCP_IDLE)
                    return
                framer.receive_data(data)
                while True:
                    try:
                        event = framer.next_event()
                    except SipParseError as e:
                        self.dropped += 1
                        log.info("sip tcp %s:%d: bad message (%s), connection closed", host, port, e.message)
                        answer = error_response(e)
                        if answer is not None:
                            await self._send_on(conn, serialize(answer))
                        return
                    if isinstance(event, ConnectionClosed):
                        return
                    if not isinstance(event, (Request, Response)):
                        break  # NEED_DATA
                    self._deliver(event, source)
                if not data:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            if self.connections.get(conn.peer) is conn:
                del self.connections[conn.peer]
            await trio.aclose_forcefully(conn.stream)

    # -- sending

    async def send(self, data: bytes, destination: Destination) -> None:
        """Send ``data`` to ``destination`` (see the module docstring). Never raises for network
        trouble."""
        if destination.transport.upper() == "UDP":
            await self._sendto(data, destination)
            return
        conn = self.connections.get((destination.host, destination.port))
        if conn is None:
            conn = await self._connect(destination)
            if conn is None:
                return
        await self._send_on(conn, data)
        if self.closing:
            await trio.aclose_forcefully(conn.stream)

    def send_soon(self, data: bytes, destination: Destination, delay: float = 0.0) -> None:
        """Queue a send from synchronous code (event handlers)."""
        if self._nursery is None:
            return
        self._nursery.start_soon(self._send_later, data, destination, delay)

    async def _send_later(self, data: bytes, destination: Destination, delay: float) -> None:
        if delay > 0:
            await trio.sleep(delay)
        await self.send(data, destination)

    async def _sendto(self, data: bytes, destination: Destination) -> None:
        for _ in range(50):  # a full socket buffer drains in microseconds; give up after 50 waits
            if self.send_udp_now(data, destination) or self.udp is None:
                return
            await trio.lowlevel.wait_writable(self.udp)
        log.info("sip udp: send to %s:%d dropped: the socket stays full", destination.host, destination.port)

    async def _send_on(self, conn: _Connection, data: bytes) -> None:
        try:
            async with conn.lock:
                await conn.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            log.info("sip tcp %s:%d: send failed: %s", conn.peer[0], conn.peer[1], e)

    async def _connect(self, destination: Destination) -> _Connection | None:
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(destination.host, destination.port)
        except (OSError, trio.TooSlowError) as e:
            log.info("sip tcp: cannot connect to %s:%d: %s", destination.host, destination.port, e)
            return None
        conn = _Connection(stream, (destination.host, destination.port))
        if self._nursery is not None and not self.closing:
            self.connections[conn.peer] = conn
            self._nursery.start_soon(self._run_connection, conn)
        return conn
