//! An RTSP server session as a peer of its worker: the media path of one RTSP player or
//! publisher, over the TCP connection (interleaved) or UDP port pairs.
//!
//! The control plane (Python) negotiates RTSP and tells the engine about each SETUP
//! ([`RtspMessage::AddTrack`]); at PLAY or RECORD ([`RtspMessage::Start`]) the peer starts
//! sending or accepting media. Over TCP it takes the connection whole: it reads interleaved
//! `$` frames (RTP/RTCP by channel) and hands every RTSP text message up as an event; it writes
//! `$` frames and the control plane's replies, each whole, through one write buffer ([`conn`]:
//! one `write` per connection per poll iteration, or per `rtsp.mergeWriteMs`). It never parses
//! an RTSP message beyond finding where it ends.
//!
//! Backpressure: the write buffer holds at most [`WRITE_CAP`] bytes. A frame that does not fit
//! whole is dropped and counted (`rtsp_dropped`); the connection is closed (`stalled`) after
//! [`STALL_TIMEOUT`] without a byte written while data waits. So a slow player never blocks the
//! worker or the other players. Over UDP each track has a socket pair of its own (ports chosen
//! by the system), registered with the worker's poll; datagrams are accepted only from the
//! client's IP.
//!
//! Sign of life: whatever the core reads from a peer (interleaved frames or text on a TCP
//! connection it owns, any datagram from the client on a UDP pair) raises `Event::RtspAlive`,
//! at most once per [`ALIVE_INTERVAL`] per peer, so the control plane's session timeout (which
//! otherwise sees only requests) keeps a player that sends only RTCP, or a publisher, alive.
//!
//! Files: `mod.rs` the peer and its messages, [`conn`] the TCP write path, [`input`] reading,
//! [`setup`] the ANNOUNCE track model and the UDP port pairs (used by the engine).

mod conn;
mod input;
mod setup;

use conn::TcpConn;
pub(crate) use setup::{bind_pair, producer_track};

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mio::{Interest, Token};
use pms_core::media::{ConsumerTrack, ProducerTrack, TransportId};

use crate::events::Event;
use crate::stats;
use crate::worker::{MediaOut, MediaSink, Message, Peer, PeerCtx, Readiness};

/// Bytes queued at most for one TCP connection.
pub(crate) const WRITE_CAP: usize = 1 << 20;
/// A connection whose queued bytes make no progress for this long is closed.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one `RtspAlive` event per peer in this time (a few per session timeout, so a session
/// that sends anything never expires, and 15,000 players send Python at most 7,500 a second).
pub(crate) const ALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// The engine's messages for an RTSP peer (by its id).
pub(crate) enum RtspMessage {
    /// One SETUP. `source`: producer track index (`None`: a publisher's track we do not forward).
    AddTrack {
        source: Option<usize>,
        consumer: Option<(ConsumerTrack, u16, u32)>,
        channels: Option<(u8, u8)>,
        udp: Option<(UdpSocket, UdpSocket, SocketAddr, SocketAddr)>,
    },
    Start {
        tcp: Option<std::net::TcpStream>,
        reply: Vec<u8>,
        pending: Vec<u8>,
    },
    Pause,
    Send {
        data: Vec<u8>,
    },
    /// A pull's new connection to its origin after [`Event::RtspDisconnected`]: the tracks'
    /// channels (in the order of AddTrack) as the new SETUPs answered them, and bytes already
    /// read past the PLAY reply.
    Resume {
        tcp: std::net::TcpStream,
        channels: Vec<(u8, u8)>,
        pending: Vec<u8>,
    },
}

struct UdpPair {
    rtp: mio::net::UdpSocket,
    rtcp: mio::net::UdpSocket,
    rtp_token: Token,
    rtcp_token: Token,
    client_rtp: SocketAddr,
    client_rtcp: SocketAddr,
}

struct RtspTrack {
    /// Producer track index: the source track (player) or the track itself (publisher).
    source: Option<usize>,
    /// Our SSRC towards a player.
    ssrc: Option<u32>,
    channels: Option<(u8, u8)>,
    udp: Option<UdpPair>,
}

/// What the peer joins in the router at start.
enum Join {
    Player(TransportId),
    Publisher(Vec<ProducerTrack>),
    Done,
}

pub(crate) struct RtspServerPeer {
    publisher: bool,
    /// A cascade pull (a publisher whose connection is ours, to an origin): a broken
    /// connection waits for a new one ([`RtspMessage::Resume`]) instead of ending the stream,
    /// and an RTCP BYE from the origin ends it (`origin-ended`).
    resumable: bool,
    join: Join,
    tracks: Vec<RtspTrack>,
    conn: Option<TcpConn>,
    tcp_token: Option<Token>,
    /// Playing (player) / recording (publisher).
    started: bool,
    /// Set when the connection broke inside the router's output; the peer closes at its flush.
    closing: Option<&'static str>,
    /// When the last `rtsp_alive` event was raised.
    last_alive: Option<Instant>,
    /// `mergeWriteMs`: queued frames wait until then.
    merge_due: Option<Instant>,
    /// When to look at a stalled connection again (lazily later than its last progress).
    stall_check: Option<Instant>,
}

impl RtspServerPeer {
    /// A player of `producer`'s stream (tracks come with [`RtspMessage::AddTrack`]).
    pub(crate) fn player(producer: TransportId) -> RtspServerPeer {
        RtspServerPeer::new(false, Join::Player(producer))
    }

    /// A publisher with the producer tracks of its ANNOUNCE.
    pub(crate) fn publisher(tracks: Vec<ProducerTrack>) -> RtspServerPeer {
        RtspServerPeer::new(true, Join::Publisher(tracks))
    }

    /// A cascade pull: a publisher whose connection may be replaced ([`RtspMessage::Resume`]).
    pub(crate) fn pull(tracks: Vec<ProducerTrack>) -> RtspServerPeer {
        let mut peer = RtspServerPeer::new(true, Join::Publisher(tracks));
        peer.resumable = true;
        peer
    }

    fn new(publisher: bool, join: Join) -> RtspServerPeer {
        RtspServerPeer {
            publisher,
            resumable: false,
            join,
            tracks: Vec::new(),
            conn: None,
            tcp_token: None,
            started: false,
            closing: None,
            last_alive: None,
            merge_due: None,
            stall_check: None,
        }
    }

    /// Queues a whole text message (never dropped: replies are small and must arrive).
    fn send_text(&mut self, ctx: &mut PeerCtx<'_>, data: &[u8]) {
        if let Some(conn) = self.conn.as_mut() {
            if conn.send_text(data).is_err() {
                self.connection_lost(ctx, "eof");
                if ctx.closing() {
                    self.closing = Some("eof");
                }
                return;
            }
        }
        self.arm(ctx);
    }

    /// The TCP connection broke (`reason`): a pull drops it and waits for a new one (its
    /// players stay); any other peer closes.
    pub(super) fn connection_lost(&mut self, ctx: &mut PeerCtx<'_>, reason: &'static str) {
        if !(self.resumable && self.started) {
            ctx.close_me(reason);
            return;
        }
        if let (Some(mut c), Some(token)) = (self.conn.take(), self.tcp_token.take()) {
            ctx.deregister(&mut c.stream, token);
        }
        self.started = false;
        self.merge_due = None;
        self.stall_check = None;
        self.arm(ctx);
        log::info!(target: "pms_io::rtsp", "pull {}: connection lost ({reason}); waiting for a new one", ctx.id());
        ctx.event(Event::RtspDisconnected {
            id: ctx.id(),
            reason,
        });
    }

    /// A pull's new connection: new channels, the producer's source restarted.
    fn resume(
        &mut self,
        ctx: &mut PeerCtx<'_>,
        tcp: std::net::TcpStream,
        channels: Vec<(u8, u8)>,
        pending: &[u8],
    ) {
        if !self.resumable || self.conn.is_some() {
            return;
        }
        for (t, ch) in self.tracks.iter_mut().zip(channels) {
            t.channels = Some(ch);
        }
        let id = ctx.id();
        ctx.router().restart_producer(id);
        self.start_media(ctx, Some(tcp), &[], pending);
    }

    /// Whether a sign of life read now is to be reported (at most one per [`ALIVE_INTERVAL`]).
    fn alive(&mut self, now: Instant) -> bool {
        if self
            .last_alive
            .is_some_and(|t| now.saturating_duration_since(t) < ALIVE_INTERVAL)
        {
            return false;
        }
        self.last_alive = Some(now);
        true
    }

    /// Sets the deadline: the merge time of held output, or the next look at a stall.
    fn arm(&mut self, ctx: &mut PeerCtx<'_>) {
        let waiting = self.conn.as_ref().and_then(|c| c.waiting_since);
        match waiting {
            None => self.stall_check = None,
            Some(since) if self.stall_check.is_none() => {
                self.stall_check = Some(since + STALL_TIMEOUT)
            }
            Some(_) => {}
        }
        let at = match (self.merge_due, self.stall_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ctx.set_deadline(at);
    }

    fn add_track(
        &mut self,
        ctx: &mut PeerCtx<'_>,
        source: Option<usize>,
        consumer: Option<(ConsumerTrack, u16, u32)>,
        channels: Option<(u8, u8)>,
        udp: Option<(UdpSocket, UdpSocket, SocketAddr, SocketAddr)>,
    ) {
        let id = ctx.id();
        let mut ssrc = None;
        if let Some((track, seq, ts)) = consumer {
            ssrc = Some(track.ssrc);
            if let Err(e) = ctx.router().add_consumer_track(id, track, Some((seq, ts))) {
                log::warn!(target: "pms_io::rtsp", "RTSP player {id}: {e}");
                ctx.close_me("producer-closed");
                return;
            }
        }
        let udp = match udp {
            Some((rtp, rtcp, client_rtp, client_rtcp)) => {
                let (mut rtp, mut rtcp) = (
                    mio::net::UdpSocket::from_std(rtp),
                    mio::net::UdpSocket::from_std(rtcp),
                );
                let tokens = ctx.register(&mut rtp, Interest::READABLE).and_then(|t1| {
                    ctx.register(&mut rtcp, Interest::READABLE)
                        .map(|t2| (t1, t2))
                });
                let Ok((rtp_token, rtcp_token)) = tokens else {
                    ctx.close_me("internal-error");
                    return;
                };
                Some(UdpPair {
                    rtp,
                    rtcp,
                    rtp_token,
                    rtcp_token,
                    client_rtp,
                    client_rtcp,
                })
            }
            None => None,
        };
        self.tracks.push(RtspTrack {
            source,
            ssrc,
            channels,
            udp,
        });
    }

    fn start_media(
        &mut self,
        ctx: &mut PeerCtx<'_>,
        tcp: Option<std::net::TcpStream>,
        reply: &[u8],
        pending: &[u8],
    ) {
        let id = ctx.id();
        if let Some(stream) = tcp {
            let mut stream = mio::net::TcpStream::from_std(stream);
            let Ok(token) = ctx.register(&mut stream, Interest::READABLE | Interest::WRITABLE)
            else {
                ctx.close_me("internal-error");
                return;
            };
            if let (Some(mut old), Some(old_token)) = (self.conn.take(), self.tcp_token.take()) {
                ctx.deregister(&mut old.stream, old_token);
            }
            self.tcp_token = Some(token);
            self.conn = Some(TcpConn::new(stream));
        }
        self.send_text(ctx, reply);
        self.started = true;
        if !self.publisher {
            let now = ctx.now();
            ctx.with_router(self, |r, out| r.consumer_connected(id, now, out));
        }
        if !pending.is_empty() {
            self.input(ctx, pending);
        }
    }
}

impl RtspServerPeer {
    /// One RTCP BYE for each of a player's tracks, on its RTCP channel, written now if the
    /// socket takes it.
    fn send_byes(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut frames = Vec::new();
        for t in &self.tracks {
            if let (Some(ssrc), Some((_, rtcp))) = (t.ssrc, t.channels) {
                frames.extend_from_slice(&[b'$', rtcp, 0, 8, 0x81, 203, 0, 1]);
                frames.extend_from_slice(&ssrc.to_be_bytes());
            }
        }
        if !frames.is_empty() {
            let _ = conn.send_text(&frames);
        }
    }
}

impl MediaSink for RtspServerPeer {
    /// The router's output towards this peer: by SSRC to the track's channel or UDP socket.
    /// TCP frames are queued and written at the end of the poll iteration (see [`conn`]).
    fn send_media(&mut self, out: &mut MediaOut<'_>, pkt: &[u8], rtcp: bool) {
        if !self.started || self.closing.is_some() {
            return;
        }
        let ssrc_at = if rtcp { 4 } else { 8 };
        let ssrc = pkt
            .get(ssrc_at..ssrc_at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let by_ssrc = self
            .tracks
            .iter()
            .position(|t| t.ssrc.is_some() && t.ssrc == ssrc);
        let index = match (by_ssrc, rtcp) {
            (Some(i), _) => i,
            // RR, REMB, PLI, NACK towards a publisher: the first track that has a path.
            (None, true) => match self
                .tracks
                .iter()
                .position(|t| t.channels.is_some() || t.udp.is_some())
            {
                Some(i) => i,
                None => return,
            },
            (None, false) => return,
        };
        let track = &self.tracks[index];
        if let Some(udp) = &track.udp {
            let (sock, to) = if rtcp {
                (&udp.rtcp, udp.client_rtcp)
            } else {
                (&udp.rtp, udp.client_rtp)
            };
            match sock.send_to(pkt, to) {
                Ok(n) => out.counters().sent(n as u64),
                Err(_) => out.counters().add(stats::STAT_SEND_ERRORS, 1),
            }
            return;
        }
        let (Some((rtp_ch, rtcp_ch)), Some(conn)) = (track.channels, self.conn.as_mut()) else {
            return;
        };
        let channel = if rtcp { rtcp_ch } else { rtp_ch };
        if conn.queue_frame(channel, pkt, out) {
            out.counters().sent(4 + pkt.len() as u64);
        } else {
            out.counters().add(stats::STAT_RTSP_DROPPED, 1);
        }
    }
}

impl Peer for RtspServerPeer {
    fn start(&mut self, ctx: &mut PeerCtx<'_>) -> Result<(), &'static str> {
        let (id, now) = (ctx.id(), ctx.now());
        match std::mem::replace(&mut self.join, Join::Done) {
            Join::Player(producer) => {
                if let Err(e) = ctx.router().add_consumer(id, producer, Vec::new(), now) {
                    log::info!(target: "pms_io::rtsp", "RTSP player {id}: {e}");
                    return Err("producer-closed");
                }
            }
            Join::Publisher(tracks) => ctx.router().add_producer(id, tracks, 0, now),
            Join::Done => {}
        }
        Ok(())
    }

    fn on_message(&mut self, ctx: &mut PeerCtx<'_>, msg: Message) {
        let Ok(msg) = msg.downcast::<RtspMessage>() else {
            return;
        };
        match *msg {
            RtspMessage::AddTrack {
                source,
                consumer,
                channels,
                udp,
            } => self.add_track(ctx, source, consumer, channels, udp),
            RtspMessage::Start {
                tcp,
                reply,
                pending,
            } => self.start_media(ctx, tcp, &reply, &pending),
            RtspMessage::Pause => {
                self.started = false;
                let id = ctx.id();
                ctx.router().pause_consumer(id);
            }
            RtspMessage::Send { data } => self.send_text(ctx, &data),
            RtspMessage::Resume {
                tcp,
                channels,
                pending,
            } => self.resume(ctx, tcp, channels, &pending),
        }
    }

    fn on_ready(&mut self, ctx: &mut PeerCtx<'_>, token: Token, ready: Readiness) {
        if Some(token) == self.tcp_token {
            if ready.writable {
                if let Some(c) = self.conn.as_mut() {
                    if c.flush().is_err() {
                        self.connection_lost(ctx, "eof");
                        return;
                    }
                }
                self.arm(ctx);
            }
            if ready.readable {
                self.read_tcp(ctx);
            }
            return;
        }
        let hit = self.tracks.iter().enumerate().find_map(|(i, t)| {
            let u = t.udp.as_ref()?;
            (u.rtp_token == token)
                .then_some((i, false))
                .or((u.rtcp_token == token).then_some((i, true)))
        });
        if let Some((i, rtcp)) = hit {
            self.read_udp(ctx, i, rtcp);
        }
    }

    /// Merge time of held output, or a look at a stalled connection.
    fn on_deadline(&mut self, ctx: &mut PeerCtx<'_>) {
        let now = ctx.now();
        if self.merge_due.is_some_and(|t| t <= now) {
            self.merge_due = None;
            if let Some(c) = self.conn.as_mut() {
                if c.waiting_since.is_none() && c.flush().is_err() {
                    self.connection_lost(ctx, "eof");
                    return;
                }
            }
        }
        if self.stall_check.is_some_and(|t| t <= now) {
            self.stall_check = None;
            let since = self.conn.as_ref().and_then(|c| c.waiting_since);
            if since.is_some_and(|t| now.duration_since(t) >= STALL_TIMEOUT) {
                self.connection_lost(ctx, "stalled");
                return;
            }
            self.stall_check = since.map(|t| t + STALL_TIMEOUT);
        }
        self.arm(ctx);
    }

    /// End of the poll iteration after frames were queued: write them now, or hold them for
    /// `mergeWriteMs`.
    fn on_flush(&mut self, ctx: &mut PeerCtx<'_>) {
        if let Some(reason) = self.closing {
            ctx.close_me(reason);
            return;
        }
        let merge = self.flush_queued(ctx);
        if let Err(()) = merge {
            self.connection_lost(ctx, "eof");
            if ctx.closing() {
                self.closing = Some("eof");
            }
            return;
        }
        self.arm(ctx);
    }

    /// Releases the poll tokens (the sockets close when the peer is dropped). A TCP player
    /// whose stream ended gets an RTCP BYE per track first (RFC 3550 6.6), best effort: a
    /// cascade edge pulling from us tells that from a broken connection, which it would retry.
    fn close(&mut self, ctx: &mut PeerCtx<'_>, reason: &'static str) {
        if !self.publisher && reason == "producer-closed" {
            self.send_byes();
        }
        if let (Some(c), Some(token)) = (self.conn.as_mut(), self.tcp_token) {
            ctx.deregister(&mut c.stream, token);
        }
        for t in &mut self.tracks {
            if let Some(u) = t.udp.as_mut() {
                ctx.deregister(&mut u.rtp, u.rtp_token);
                ctx.deregister(&mut u.rtcp, u.rtcp_token);
            }
        }
    }
}
