"""The media core (Rust, ``rust/py``): the only object that touches media.

Commands are methods on :class:`Core`; none of them blocks on the network. Events come back
through :meth:`Core.poll_events` after the core has written a byte to :meth:`Core.event_fd`
(one trio task waits on it with ``trio.lowlevel.wait_readable``, see ``pms_trio.core``).

Event tuples (first item is the event name; ids are the ``int`` transport ids returned by the
``create_*`` commands):

- ``("transport_connected", transport_id)``: ICE and DTLS are up; media may flow.
- ``("transport_closed", transport_id, reason)``: the transport is gone (``"closed"`` when asked
  to, ``"ice-timeout"``, ``"dtls-failed"``, ``"connect-timeout"`` when ICE/DTLS never completed
  within the connect timeout, ``"producer-closed"`` for a player whose stream ended).
- ``("producer_started", stream, [codec, ...])``: the first media packet of a published stream
  arrived; codecs are ``"video/H264"``-style names.
- ``("log", level, tag, message)``: a core log record that passed ``log_level``/``log_tags``;
  ``level`` is ``"debug" | "info" | "warn" | "error"``.
"""

from typing import Literal, Sequence

EventTuple = tuple

class CoreError(Exception):
    """A command the core refused. ``code`` follows the signaling error codes.

    404 no such stream, 409 stream already published, 415 no codec in common with the offer
    (the message lists the codecs on offer), 422 unusable SDP, 500 internal.
    """

    code: int
    message: str

class Core:
    def __init__(
        self,
        *,
        workers: int = 0,
        listen_ip: str = "0.0.0.0",
        announced_ips: Sequence[str] = (),
        min_port: int = 20000,
        max_port: int = 30000,
        cert_file: str = "",
        key_file: str = "",
        log_level: Literal["debug", "info", "warn", "error", "none"] = "warn",
        log_tags: Sequence[str] = (),
        connect_timeout: float = 30.0,
    ) -> None:
        """Start ``workers`` media threads (0: one per CPU) and bind their UDP sockets.

        ``announced_ips`` are the addresses put in ICE candidates (empty: ``listen_ip``, or every
        local address when that is ``0.0.0.0``). Raises ``OSError`` when no port of the range can
        be bound, ``ValueError`` for a bad certificate/key file.
        """

    def event_fd(self) -> int:
        """The read end of the wakeup pipe; readable when events are queued."""

    def poll_events(self) -> list[EventTuple]:
        """Drain every queued event (and the wakeup pipe). Never blocks."""

    def bound_ports(self) -> list[int]:
        """UDP ports the workers listen on."""

    def fingerprint(self) -> str:
        """``sha-256 AB:CD:...`` of the DTLS certificate."""

    def create_publisher(self, stream: str, offer: str, max_bitrate: int = 0) -> tuple[int, str]:
        """Accept a publisher's SDP offer; returns ``(transport_id, answer_sdp)``.

        ``max_bitrate`` (bits/s, 0 = no cap) goes into ``b=AS``/``b=TIAS`` and caps REMB.
        Raises :class:`CoreError` (409, 415, 422).
        """

    def create_player(self, stream: str, offer: str) -> tuple[int, str]:
        """Accept a player's SDP offer for a live ``stream``; returns ``(transport_id, answer_sdp)``.

        Raises :class:`CoreError` (404, 415, 422).
        """

    def stream_codecs(self, stream: str) -> list[str] | None:
        """The codecs of a live stream (``"video/H264"``...), or ``None`` when it is not live."""

    def set_muted(self, transport_id: int, video: bool | None = None, audio: bool | None = None) -> tuple[bool, bool]:
        """Change the mute state of a publisher (all its players) or one player; ``None`` keeps
        a kind as it is. Returns ``(video_muted, audio_muted)``. Raises ``KeyError`` for an unknown id."""

    def close_transport(self, transport_id: int) -> None:
        """Close a transport (a publisher's close also closes its players). Unknown ids are ignored."""

    def stats(self) -> dict[str, int]:
        """Counters: ``transports``, ``producers``, ``consumers``, ``packets_in``, ``packets_out``,
        ``bytes_in``, ``bytes_out``, ``nacks``, ``plis``, ``retransmits``, ``rtp_dropped``."""

    def shutdown(self) -> None:
        """Stop the workers and close every socket. Idempotent."""
