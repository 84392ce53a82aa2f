//! RTSP sessions on a worker: the media path of RTSP players and publishers.
//!
//! The control plane (Python) negotiates RTSP and tells the engine about each SETUP
//! ([`RtspCommand::AddTrack`]); at PLAY or RECORD ([`RtspCommand::Start`]) the worker starts
//! sending or accepting media. Over TCP it takes the connection whole: it reads interleaved
//! `$` frames (RTP/RTCP by channel) and hands every RTSP text message up as an event; it writes
//! `$` frames and the control plane's replies, each whole, through one write buffer ([`conn`]:
//! one `write` per connection per poll iteration, or per `rtsp.mergeWriteMs`).
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
//! Files: `mod.rs` commands and the peer, [`conn`] the TCP write path, [`input`] reading,
//! [`setup`] the ANNOUNCE track model and the UDP port pairs.

mod conn;
mod input;
mod setup;

pub(crate) use conn::RtspOut;
use conn::TcpConn;
pub(crate) use setup::{bind_pair, producer_track};

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mio::{Interest, Token};
use pms_core::media::{ConsumerTrack, ProducerTrack, TransportId};

use crate::worker::{Counters, Entry, Peer, Worker};

/// Bytes queued at most for one TCP connection.
pub(crate) const WRITE_CAP: usize = 1 << 20;
/// A connection whose queued bytes make no progress for this long is closed.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer of the worker for RTSP sockets.
pub(crate) const READ_BUFFER: usize = 64 * 1024;
/// At most one `RtspAlive` event per peer in this time (a few per session timeout, so a session
/// that sends anything never expires, and 15,000 players send Python at most 7,500 a second).
pub(crate) const ALIVE_INTERVAL: Duration = Duration::from_secs(2);

pub(crate) enum RtspCommand {
    AddPlayer {
        id: TransportId,
        stream: String,
        producer: TransportId,
    },
    AddPublisher {
        id: TransportId,
        stream: String,
        tracks: Vec<ProducerTrack>,
    },
    /// One SETUP. `source`: producer track index (`None`: a publisher's track we do not forward).
    AddTrack {
        id: TransportId,
        source: Option<usize>,
        consumer: Option<(ConsumerTrack, u16, u32)>,
        channels: Option<(u8, u8)>,
        udp: Option<(UdpSocket, UdpSocket, SocketAddr, SocketAddr)>,
    },
    Start {
        id: TransportId,
        tcp: Option<std::net::TcpStream>,
        reply: Vec<u8>,
        pending: Vec<u8>,
    },
    Pause {
        id: TransportId,
    },
    Send {
        id: TransportId,
        data: Vec<u8>,
    },
}

/// Which socket of an RTSP peer a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketRole {
    Tcp,
    UdpRtp(usize),
    UdpRtcp(usize),
}

pub(crate) struct UdpPair {
    rtp: mio::net::UdpSocket,
    rtcp: mio::net::UdpSocket,
    client_rtp: SocketAddr,
    client_rtcp: SocketAddr,
}

pub(crate) struct RtspTrack {
    /// Producer track index: the source track (player) or the track itself (publisher).
    source: Option<usize>,
    /// Our SSRC towards a player.
    ssrc: Option<u32>,
    channels: Option<(u8, u8)>,
    udp: Option<UdpPair>,
}

pub(crate) struct RtspPeer {
    tracks: Vec<RtspTrack>,
    conn: Option<TcpConn>,
    tcp_token: Option<Token>,
    /// Every poll token of this peer.
    all_tokens: Vec<Token>,
    /// Playing (player) / recording (publisher).
    started: bool,
    /// Set when the connection broke inside the sink; the worker closes the peer on its tick.
    closing: Option<&'static str>,
    /// When the last `rtsp_alive` event was raised.
    last_alive: Option<Instant>,
}

impl RtspPeer {
    fn new() -> Self {
        RtspPeer {
            tracks: Vec::new(),
            conn: None,
            tcp_token: None,
            all_tokens: Vec::new(),
            started: false,
            closing: None,
            last_alive: None,
        }
    }

    /// The router's output towards this peer: by SSRC to the track's channel or UDP socket.
    /// TCP frames are queued here and written by [`Worker::rtsp_flush`] (see [`conn`]).
    pub(crate) fn send_packet(
        &mut self,
        id: TransportId,
        pkt: &[u8],
        rtcp: bool,
        counters: &mut Counters,
        out: &mut RtspOut,
    ) {
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
                Ok(n) => {
                    counters.packets_out += 1;
                    counters.bytes_out += n as u64;
                }
                Err(_) => counters.send_errors += 1,
            }
            return;
        }
        let (Some((rtp_ch, rtcp_ch)), Some(conn)) = (track.channels, self.conn.as_mut()) else {
            return;
        };
        let channel = if rtcp { rtcp_ch } else { rtp_ch };
        if conn.queue_frame(id, channel, pkt, out) {
            counters.packets_out += 1;
            counters.bytes_out += 4 + pkt.len() as u64;
        } else {
            counters.rtsp_dropped += 1;
        }
    }

    /// Queues a whole text message (never dropped: replies are small and must arrive).
    fn send_text(&mut self, data: &[u8]) {
        if let Some(conn) = self.conn.as_mut() {
            if conn.send_text(data).is_err() {
                self.closing = Some("eof");
            }
        }
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
}

impl Worker {
    fn new_token(&mut self, id: TransportId, role: SocketRole) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        self.tokens.insert(t, (id, role));
        if let Some(p) = self.rtsp_peer(id) {
            p.all_tokens.push(t);
        }
        t
    }

    fn rtsp_peer(&mut self, id: TransportId) -> Option<&mut RtspPeer> {
        self.transports.get_mut(&id).and_then(Entry::rtsp)
    }

    pub(crate) fn handle_rtsp_command(&mut self, cmd: RtspCommand, now: Instant) {
        match cmd {
            RtspCommand::AddPlayer {
                id,
                stream,
                producer,
            } => {
                if let Err(e) = self.router.add_consumer(id, producer, Vec::new(), now) {
                    log::info!(target: "pms_io::rtsp", "RTSP player {id} of {stream}: {e}");
                    self.forget(id, "producer-closed");
                    return;
                }
                let peer = Peer::Rtsp(Box::new(RtspPeer::new()));
                self.transports.insert(
                    id,
                    Entry {
                        peer,
                        stream,
                        publisher: false,
                    },
                );
            }
            RtspCommand::AddPublisher { id, stream, tracks } => {
                self.router.add_producer(id, tracks, 0, now);
                let peer = Peer::Rtsp(Box::new(RtspPeer::new()));
                self.transports.insert(
                    id,
                    Entry {
                        peer,
                        stream,
                        publisher: true,
                    },
                );
            }
            RtspCommand::AddTrack {
                id,
                source,
                consumer,
                channels,
                udp,
            } => {
                if self.rtsp_peer(id).is_none() {
                    return;
                }
                let mut ssrc = None;
                if let Some((track, seq, ts)) = consumer {
                    ssrc = Some(track.ssrc);
                    if let Err(e) = self.router.add_consumer_track(id, track, Some((seq, ts))) {
                        log::warn!(target: "pms_io::rtsp", "RTSP player {id}: {e}");
                        self.remove(id, "producer-closed");
                        return;
                    }
                }
                let index = self.rtsp_peer(id).map_or(0, |p| p.tracks.len());
                let udp = match udp {
                    Some((rtp, rtcp, client_rtp, client_rtcp)) => {
                        let (mut rtp, mut rtcp) = (
                            mio::net::UdpSocket::from_std(rtp),
                            mio::net::UdpSocket::from_std(rtcp),
                        );
                        let t1 = self.new_token(id, SocketRole::UdpRtp(index));
                        let t2 = self.new_token(id, SocketRole::UdpRtcp(index));
                        let reg = self.poll.registry();
                        if reg.register(&mut rtp, t1, Interest::READABLE).is_err()
                            || reg.register(&mut rtcp, t2, Interest::READABLE).is_err()
                        {
                            self.remove(id, "internal-error");
                            return;
                        }
                        Some(UdpPair {
                            rtp,
                            rtcp,
                            client_rtp,
                            client_rtcp,
                        })
                    }
                    None => None,
                };
                if let Some(p) = self.rtsp_peer(id) {
                    p.tracks.push(RtspTrack {
                        source,
                        ssrc,
                        channels,
                        udp,
                    });
                }
            }
            RtspCommand::Start {
                id,
                tcp,
                reply,
                pending,
            } => self.rtsp_start(id, tcp, &reply, &pending, now),
            RtspCommand::Pause { id } => {
                if let Some(p) = self.rtsp_peer(id) {
                    p.started = false;
                }
                self.router.pause_consumer(id);
            }
            RtspCommand::Send { id, data } => {
                if let Some(p) = self.rtsp_peer(id) {
                    p.send_text(&data);
                }
            }
        }
    }

    fn rtsp_start(
        &mut self,
        id: TransportId,
        tcp: Option<std::net::TcpStream>,
        reply: &[u8],
        pending: &[u8],
        now: Instant,
    ) {
        let Some(publisher) = self.transports.get(&id).map(|e| e.publisher) else {
            return;
        };
        if let Some(stream) = tcp {
            let token = self.new_token(id, SocketRole::Tcp);
            let mut stream = mio::net::TcpStream::from_std(stream);
            if self
                .poll
                .registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                self.remove(id, "internal-error");
                return;
            }
            let Some(p) = self.rtsp_peer(id) else { return };
            if let Some(old) = p.tcp_token.replace(token) {
                self.tokens.remove(&old);
            }
            let Some(p) = self.rtsp_peer(id) else { return };
            p.conn = Some(TcpConn::new(stream));
        }
        let Some(p) = self.rtsp_peer(id) else { return };
        p.send_text(reply);
        p.started = true;
        if !publisher {
            self.with_router(|r, out| r.consumer_connected(id, now, out));
        }
        if !pending.is_empty() {
            self.rtsp_input(id, pending, now);
        }
    }

    /// Closes peers whose connection broke or stalled.
    pub(crate) fn rtsp_tick(&mut self, now: Instant) {
        let mut doomed = Vec::new();
        for (id, e) in self.transports.iter() {
            let Peer::Rtsp(p) = &e.peer else { continue };
            if let Some(reason) = p.closing {
                doomed.push((*id, reason));
            } else if p
                .conn
                .as_ref()
                .and_then(|c| c.waiting_since)
                .is_some_and(|t| now.duration_since(t) >= STALL_TIMEOUT)
            {
                doomed.push((*id, "stalled"));
            }
        }
        for (id, reason) in doomed {
            self.remove(id, reason);
        }
    }

    /// Releases what a removed peer holds (its poll tokens; its sockets close on drop).
    pub(crate) fn drop_peer(&mut self, entry: Entry) {
        if let Peer::Gb(g) = &entry.peer {
            self.gb_forget(g.id());
        }
        if let Peer::Rtsp(mut p) = entry.peer {
            for t in &p.all_tokens {
                self.tokens.remove(t);
            }
            let reg = self.poll.registry();
            if let Some(c) = p.conn.as_mut() {
                let _ = reg.deregister(&mut c.stream);
            }
            for t in &mut p.tracks {
                if let Some(u) = t.udp.as_mut() {
                    let _ = reg.deregister(&mut u.rtp);
                    let _ = reg.deregister(&mut u.rtcp);
                }
            }
        }
    }
}
