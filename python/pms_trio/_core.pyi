"""The media core (Rust, ``rust/py``): the only object that touches media.

Commands are methods on :class:`Core`; none of them blocks on the network. Events come back
through :meth:`Core.poll_events` after the core has written a byte to :meth:`Core.event_fd`
(one trio task waits on it with ``trio.lowlevel.wait_readable``, see ``pms_trio.events``).

Events are frozen records, one class per kind, built in ``rust/py/src/events.rs`` (ids are the
``int`` transport ids returned by the ``create_*`` commands); ``pms_trio.events`` dispatches on the
class:

- :class:`TransportConnected`: ICE and DTLS are up; media may flow.
- :class:`TransportClosed`: the transport is gone (``reason`` ``"closed"`` when asked
  to, ``"ice-timeout"``, ``"dtls-failed"``, ``"connect-timeout"`` when ICE/DTLS never completed
  within the connect timeout, ``"producer-closed"`` for a player whose stream ended; RTSP
  transports also ``"eof"`` when the peer closed the TCP connection, ``"stalled"`` after 10 s
  without write progress, ``"protocol-error"`` for a header block over 64 KiB or a bad
  ``Content-Length`` on a connection the core owns, ``"internal-error"``). GB28181 ingests end
  by themselves with ``"media-timeout"`` (no RTP for 10 s, including never any),
  ``"eof"`` (the camera closed its TCP connection), ``"connect-failed"`` (tcp-active),
  ``"protocol-error"`` (unusable RFC 4571 framing on its connection).
- :class:`ProducerStarted`: the first media packet of a published stream arrived; ``codecs`` are
  ``"video/H264"``-style names.
- :class:`RtspMessage`: an RTSP text message (headers, empty line, ``Content-Length`` body, at most
  :data:`RTSP_MAX_HEADER` + :data:`RTSP_MAX_BODY` bytes) the core read on a TCP connection it owns
  since ``rtsp_start``; answer with :meth:`Core.rtsp_send`.
- :class:`RtspAlive`: the core read something from an RTSP peer since
  :meth:`Core.rtsp_add_track`/``rtsp_start`` (interleaved frames or text on a TCP connection it
  owns, any datagram from the client's address on a UDP pair: RTCP receiver reports, a
  publisher's media). At most one per transport every 2 s. The session timeout counts it like a
  request (SPEC 4: sessions expire after 60 s without a request or RTCP).
- :class:`RtspDisconnected`: the connection of a pull (``create_rtsp_publisher(...,
  resumable=True)``) to its origin broke (``reason`` ``"eof"``, ``"stalled"``,
  ``"protocol-error"``); the transport and its players stay until :meth:`Core.rtsp_resume` or
  :meth:`Core.close_transport`. A pull whose origin sends an RTCP BYE closes instead
  (``transport_closed`` with ``"origin-ended"``), and an RTSP player whose stream ends gets one
  BYE per track before its connection closes.
- :class:`ParameterSets`: the H.264 ``[SPS, PPS]`` or H.265 ``[VPS, SPS, PPS]`` of a producer track
  changed in band (``codec`` is ``"H264"``/``"H265"``); raised when they change, not per packet,
  and not for the sets of the SDP ``fmtp``.
- :class:`KeyframeWanted`: a player of the GB28181 stream waits for a keyframe and the cache has
  none (at most one per 2 s per stream); the SIP side may send DeviceControl ``IFameCmd``.
- :class:`RecordingFileStarted`: a recorder (:meth:`Core.create_recorder`) opened a file (its first, or
  the next segment).
- :class:`RecordingFile`: a recorder finished a file: complete when ``error`` is empty (sizes,
  duration and index written), else given up on (write error, folder gone; what was written stays
  playable). ``duration`` is seconds of media, ``bytes`` the file's size.
- :class:`RecordingEnded`: a recorder ended (``reason``: ``"closed"``, ``"producer-closed"``,
  ``"no-media"`` after 30 s without media, ``"write-failed"``, ``"shutdown"``); every file it
  opened was reported before. A ``TransportClosed`` for its id follows (except at shutdown).
- :class:`LogRecord`: a core log record that passed ``log_level``/``log_tags``; ``level`` is
  ``"debug" | "info" | "warn" | "error"``.

Each record compares equal to another of its class with the same fields, and can be built from
Python (tests, fakes) with the same arguments the core uses.
"""

from collections.abc import Sequence
from typing import Any

from pms_trio.core_types import CoreTrack, PublishTrack, TrackSetup

RTSP_MAX_HEADER: int
"""Longest header block of an RTSP text message (64 KiB), in the core and in ``textframe``."""
RTSP_MAX_BODY: int
"""Longest body of an RTSP (and SIP) text message (256 KiB), in the core and in ``textframe``."""

class CoreError(Exception):
    """A command the core refused. ``code`` follows the signaling error codes.

    400 bad arguments, 404 no such stream, 409 stream already published (or reserved by a GB28181
    ingest), 415 no codec in common with the offer
    (the message lists the codecs on offer), 422 unusable SDP, 500 internal.
    :func:`pms_trio.core_errors.core_error_status` maps it to each protocol's reply code.
    """

    code: int
    message: str

    def __init__(self, code: int, message: str) -> None: ...

class TransportConnected:
    def __init__(self, transport_id: int) -> None: ...
    @property
    def transport_id(self) -> int: ...

class TransportClosed:
    def __init__(self, transport_id: int, reason: str) -> None: ...
    @property
    def transport_id(self) -> int: ...
    @property
    def reason(self) -> str: ...

class ProducerStarted:
    def __init__(self, stream: str, codecs: Sequence[str]) -> None: ...
    @property
    def stream(self) -> str: ...
    @property
    def codecs(self) -> tuple[str, ...]: ...

class RtspMessage:
    def __init__(self, transport_id: int, data: bytes) -> None: ...
    @property
    def transport_id(self) -> int: ...
    @property
    def data(self) -> bytes: ...

class RtspAlive:
    def __init__(self, transport_id: int) -> None: ...
    @property
    def transport_id(self) -> int: ...

class RtspDisconnected:
    def __init__(self, transport_id: int, reason: str) -> None: ...
    @property
    def transport_id(self) -> int: ...
    @property
    def reason(self) -> str: ...

class ParameterSets:
    def __init__(self, stream: str, codec: str, nals: Sequence[bytes]) -> None: ...
    @property
    def stream(self) -> str: ...
    @property
    def codec(self) -> str: ...
    @property
    def nals(self) -> tuple[bytes, ...]: ...

class KeyframeWanted:
    def __init__(self, stream: str) -> None: ...
    @property
    def stream(self) -> str: ...

class RecordingFileStarted:
    def __init__(self, transport_id: int, path: str) -> None: ...
    @property
    def transport_id(self) -> int: ...
    @property
    def path(self) -> str: ...

class RecordingFile:
    def __init__(self, transport_id: int, path: str, bytes: int, duration: float, error: str = "") -> None: ...
    @property
    def transport_id(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def bytes(self) -> int: ...
    @property
    def duration(self) -> float: ...
    @property
    def error(self) -> str: ...

class RecordingEnded:
    def __init__(self, transport_id: int, reason: str) -> None: ...
    @property
    def transport_id(self) -> int: ...
    @property
    def reason(self) -> str: ...

class LogRecord:
    def __init__(self, level: str, tag: str, message: str) -> None: ...
    @property
    def level(self) -> str: ...
    @property
    def tag(self) -> str: ...
    @property
    def message(self) -> str: ...

Event = (TransportConnected | TransportClosed | ProducerStarted | RtspMessage | RtspAlive | RtspDisconnected
         | ParameterSets | KeyframeWanted | RecordingFileStarted | RecordingFile | RecordingEnded | LogRecord)

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
        log_level: str = "warn",  # "debug" | "info" | "warn" | "error" | "none"
        log_tags: Sequence[str] = (),
        connect_timeout: float = 30.0,
        rtsp_merge_write_ms: int = 0,
    ) -> None:
        """Start ``workers`` media threads (0: one per CPU) and bind their UDP sockets.

        ``announced_ips`` are the addresses put in ICE candidates (empty: ``listen_ip``, or every
        local address when that is ``0.0.0.0``). Raises ``OSError`` when no port of the range can
        be bound, ``ValueError`` for a bad certificate/key file. ``rtsp_merge_write_ms``
        (``rtsp.mergeWriteMs``): hold an RTSP TCP player's output up to that long so that its
        frames leave in one system call (0: one write per player per worker wake-up).
        """

    def event_fd(self) -> int:
        """The read end of the wakeup pipe; readable when events are queued."""

    def poll_events(self) -> list[Event]:
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

    def set_transcode_audio(self, enabled: bool, linger_ms: int, complexity: int = 5) -> None:
        """``webrtc.transcodeAudio`` (SPEC 11): WebRTC players of AAC, or of G.711 without PCMA/PCMU
        in their offer, get Opus from a transcoder in the core; it stops ``linger_ms`` after its last
        player; ``complexity`` is libopus's (0-10) for new transcoders. Takes effect for the next
        player."""
    def stream_transcodes(self, stream: str) -> list[tuple[str, str, int, bool]]:
        """The transcoded tracks of a live stream: ``(source, codec, players, running)``, e.g.
        ``("audio/MPEG4-GENERIC", "audio/opus", 1, True)``."""
    def stream_codecs(self, stream: str) -> list[str] | None:
        """The codecs of a live stream (``"video/H264"``...), or ``None`` when it is not live."""

    def stream_tracks(self, stream: str) -> list[CoreTrack] | None:
        """Per producer track of a live stream, for DESCRIBE: ``{"index": int, "kind": "audio" |
        "video", "codec": str ("H264", "opus", "MPEG4-GENERIC"...), "payload_type": int,
        "clock_rate": int, "channels": int (0 for video), "fmtp": str}``; ``None`` when not live.
        ``index`` is the ``track`` of :meth:`rtsp_add_track` for players."""

    def create_rtsp_player(self, stream: str) -> int:
        """An RTSP player of the live ``stream`` on the stream's worker, not started; returns its
        transport id. Add tracks with :meth:`rtsp_add_track`, then :meth:`rtsp_start`. Raises
        :class:`CoreError` (404 when the stream is not live)."""

    def create_rtsp_publisher(self, stream: str, tracks: Sequence[PublishTrack], *, resumable: bool = False) -> int:
        """An RTSP publisher of ``stream`` (ANNOUNCE); the stream is live at once. ``tracks`` as
        parsed from the ANNOUNCE SDP, in order: ``{"kind", "codec", "payload_type", "clock_rate",
        "channels", "fmtp"}`` (the last three optional). ``sprop-parameter-sets`` in an H.264
        ``fmtp`` are kept and sent before every IDR a player gets; ``packetization-mode=1`` is
        added when absent. Tracks with codecs we do not forward are accepted and their packets
        dropped; AAC (``MPEG4-GENERIC``) is forwarded to RTSP players only. Raises
        :class:`CoreError` (409 already live, 415 no track with a codec we forward, 400 bad
        payload type). ``resumable``: a cascade pull, whose broken connection raises
        :class:`RtspDisconnected` and waits for :meth:`rtsp_resume`."""

    def rtsp_add_track(
        self,
        transport_id: int,
        track: int,
        *,
        channels: tuple[int, int] | None = None,
        client: tuple[str, int, int] | None = None,
    ) -> TrackSetup:
        """One SETUP. ``track``: for a player the ``index`` of :meth:`stream_tracks`, for a
        publisher the position in its ANNOUNCE ``tracks``. Give exactly one of ``channels=(rtp,
        rtcp)`` (TCP interleaved) or ``client=(ip, rtp_port, rtcp_port)`` (UDP: the core binds a
        socket pair of its own on ``listen_ip``, ports chosen by the system, even/odd when it
        can). Returns for players ``{"ssrc", "seq", "rtptime"}`` (the first sequence number and
        RTP timestamp the player will get, for ``RTP-Info``), plus ``"server_port": (rtp, rtcp)``
        over UDP; for publishers ``{"server_port": (rtp, rtcp)}`` over UDP, ``{}`` over TCP.
        Raises :class:`CoreError` (404 unknown transport, 400 bad track or arguments, 500 no UDP
        port)."""

    def rtsp_start(self, transport_id: int, *, fd: int = -1, reply: bytes = b"", pending: bytes = b"") -> None:
        """PLAY or RECORD. With ``fd >= 0`` (TCP interleaved) the core takes the connected TCP
        socket (``sock.detach()``; closed by the core on any error), writes ``reply`` (the
        PLAY/RECORD response) first, then treats ``pending`` (bytes read past the request) as
        received. From then on it reads ``$`` frames (RTP/RTCP by channel; frames on channels
        never set up are dropped and counted) and raises ``rtsp_message`` events for text
        messages. A player starts at a keyframe (cache or PLI). Over UDP (``fd=-1``) media starts
        flowing to the client ports / is accepted from the client's IP only. Called again after
        :meth:`rtsp_pause`, it resumes (``reply`` is written first when the core owns the
        connection). Raises :class:`CoreError` (404 unknown transport, 400 not a TCP socket)."""

    def rtsp_resume(self, transport_id: int, *, fd: int, channels: Sequence[tuple[int, int]],
                    pending: bytes = b"") -> None:
        """A pull's new connection after :class:`RtspDisconnected`: the core takes the connected
        TCP socket ``fd`` (closed on error), with each track's interleaved ``channels`` (in SETUP
        order) and the bytes read past the PLAY reply. The producer's source restarts: players
        stay, and go on at the next keyframe with contiguous sequence numbers and timestamps.
        Raises :class:`CoreError` (404 unknown transport, 400 not a TCP socket)."""

    def rtsp_pause(self, transport_id: int) -> None:
        """PAUSE: stop forwarding to an RTSP player; :meth:`rtsp_start` resumes at a keyframe
        with contiguous sequence numbers. Raises :class:`CoreError` (404)."""

    def rtsp_send(self, transport_id: int, data: bytes) -> None:
        """Write an RTSP message on a connection the core owns, whole, between frames (never
        dropped for backpressure). Ignored when the core holds no connection for the transport.
        Raises :class:`CoreError` (404)."""

    def set_muted(self, transport_id: int, video: bool | None = None, audio: bool | None = None) -> tuple[bool, bool]:
        """Change the mute state of a publisher (all its players) or one player; ``None`` keeps
        a kind as it is. Returns ``(video_muted, audio_muted)``. Raises ``KeyError`` for an unknown id."""

    def gb_listen(self, ip: str, port: int) -> tuple[int, int]:
        """Bind the GB28181 media port (``sip.mediaPort``): a TCP listener (RFC 4571: 2-byte
        big-endian length before each RTP packet, many cameras on one port) and a UDP socket, on
        ``ip``. ``port`` 0: the system picks a port for TCP and the UDP socket takes the same
        number when it can. Returns ``(tcp_port, udp_port)``. Call once; raises ``OSError`` when
        it cannot bind (or was called before)."""

    def create_gb_ingest(
        self,
        stream: str,
        ssrc: int,
        *,
        transport: str = "tcp-passive",
        peer_ip: str = "",
        connect: tuple[str, int] | None = None,
    ) -> int:
        """Wait for a camera's PS-over-RTP stream and publish it as ``stream`` (the channel id).
        Returns the transport id. ``transport``: ``"tcp-passive"`` (camera connects to our TCP
        media port), ``"udp"`` (camera sends to our UDP media port), ``"tcp-active"`` (the core
        connects to ``connect=(ip, port)``, the address of the camera's 200 OK SDP, and reads
        RFC 4571 frames from it). Packets are matched by RTP SSRC == ``ssrc``. A camera that
        ignores ``y=`` (another SSRC) is matched by source: when exactly one waiting ingest has
        ``peer_ip`` equal to the packet's source IP (TCP connection or UDP source), the ingest
        takes that connection/source and re-keys to the SSRC seen. The stream name is reserved
        at once. It becomes live (``create_player`` / ``create_rtsp_player`` / ``stream_tracks``
        work; ``producer_started`` is raised) when the PS demuxer knows the codecs: the video
        codec (H264 or H265, from the PSM or sniffed from the elementary stream) and the audio
        codec if the PSM lists one (PCMA/PCMU, or MPEG4-GENERIC at the AAC sample rate with the
        ``config=`` of the first ADTS header: it waits up to 50 video frames for the first audio
        frame, ADTS deciding AAC whatever the PSM says). ``close_transport(id)`` ends it
        (its players get ``producer-closed``, its TCP connection is closed). Raises
        :class:`CoreError` 409 (name taken), 400 (bad transport / arguments, or the media port
        is not bound for tcp-passive/udp)."""

    def gb_set_scale(self, transport_id: int, scale: float) -> None:
        """A GB28181 playback ingest's speed (the MANSRTSP ``Scale`` the device was told): its
        video RTP timestamps are re-timed so players keep a 1x clock while the device sends
        ``scale`` times faster (``out = anchor + (pts - anchor_pts) / scale``, re-anchored at each
        call); a PTS jump of more than 5 s (a seek) continues one frame after the last output.
        Audio is dropped while the scale is not 1. Any call turns re-timing on (1.0: same pace,
        seeks continuous). A device that ignores the scale (its PTS keep coming at about 1x over 3 s
        of frames after the call; a pause or seek restarts that watch) is found out and the ingest
        goes back to 1x. Raises :class:`CoreError` 404 (not a GB ingest), 400 (scale not > 0)."""

    def create_recorder(self, stream: str, folder: str, pattern: str, *, container: str,
                        segment_seconds: float = 0.0) -> int:
        """Record the live ``stream`` into ``folder`` as ``container`` (``"webm"``, ``"mkv"``,
        ``"mp4"``: fragmented), in files named by the ``strftime`` ``pattern`` formatted in local
        time when each opens (a name that exists gets ``-1``, ``-2``...: nothing is overwritten).
        The recorder is a consumer of every track of the stream on the stream's worker; it starts
        at a keyframe and writes as it goes (a crash loses well under a second).
        ``segment_seconds`` > 0: a new file at the first video keyframe after that long (a
        keyframe is asked for then). Returns its transport id; :meth:`close_transport` finishes
        the file. Events: :class:`RecordingFileStarted`, :class:`RecordingFile`,
        :class:`RecordingEnded`. Raises :class:`CoreError` (404 not live, 415 a codec the
        container cannot hold, 400 bad container or pattern)."""

    def close_transport(self, transport_id: int) -> None:
        """Close a transport, WebRTC or RTSP (a publisher's close also closes its players, RTSP
        ones included; an RTSP TCP connection the core owns is closed). Unknown ids are ignored."""

    def stream_stats(self) -> dict[str, dict[str, Any]]:
        """Per live stream, as the workers last published it (about once a second; a stream just
        made may be missing): ``{"consumers": int, "video": {...}, "audio": {...}}``, each kind
        with ``bytes_in``, ``packets_in``, ``bytes_out``, ``packets_out`` (to players,
        retransmissions included), ``lost`` (packets that never arrived), ``nacks`` (NACKs from
        players), ``plis`` (keyframe requests sent to the publisher), ``bitrate_bps`` (received
        over about the last second)."""

    def join_histogram(self) -> dict[str, Any]:
        """Time from a player's transport connecting to its first video keyframe sent:
        ``{"bounds": [s, ...], "buckets": [cumulative count per bound], "count": n, "sum": s}``."""

    def stats(self) -> dict[str, int]:
        """Counters: ``transports``, ``producers``, ``consumers``, ``packets_in``, ``packets_out``,
        ``bytes_in``, ``bytes_out``, ``nacks``, ``plis``, ``retransmits``, ``rtp_dropped`` (also
        RTSP frames on channels never set up, and media before PLAY/RECORD), ``send_errors``,
        ``publishers``, ``rtsp_dropped`` (packets not queued for a slow RTSP TCP reader). RTSP
        transports count in ``transports``/``producers``/``consumers``/``publishers``. GB28181:
        ``gb_ingests`` (live or waiting), ``gb_tcp_connections``, ``gb_unknown_ssrc`` (RTP packets
        dropped: no ingest matched), ``gb_ps_resyncs``, ``gb_bytes_in``, ``gb_packets_in`` (RTP
        packets taken by ingests, in order), ``gb_seq_gaps`` (sequence gaps seen by ingests); the
        last three count ended ingests too. Recording: ``recordings`` (recorders now),
        ``record_bytes`` (written to files), ``record_files`` (files finished complete),
        ``record_failures`` (files given up on), ``record_frames_dropped`` (frames a recorder could
        not write: loss broke them, or a track never started). Cascade: ``pull_bytes_in`` (read from
        origins on pulls' connections). ``cpu_us``: the workers' CPU time in microseconds.
        ``gso_sends``: segmented (UDP GSO) sends. Audio transcoding (SPEC 11): ``transcoders`` (running
        now), ``transcode_cpu_us`` (their thread CPU time), ``transcode_frames_corrupt`` (source frames
        skipped), ``transcode_packets`` (Opus packets made)."""

    def set_udp_gso(self, on: bool) -> None:
        """``webrtc.udpGso``: a player's datagrams of one poll iteration may leave as one segmented
        (UDP GSO) send; default on; a kernel that refuses it turns it off by itself (``gso_sends``
        in ``stats()`` counts the segmented sends)."""

    def worker_stats(self) -> list[dict[str, int]]:
        """Per worker, in order, the counters of ``stats()`` as that worker last published them."""

    def shutdown(self) -> None:
        """Stop the workers and close every socket. Idempotent."""
