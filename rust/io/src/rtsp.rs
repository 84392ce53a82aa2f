//! RTSP sessions on a worker: the media path of RTSP players and publishers.
//!
//! The control plane (Python) negotiates RTSP and tells the engine about each SETUP
//! ([`RtspCommand::AddTrack`]); at PLAY or RECORD ([`RtspCommand::Start`]) the worker starts
//! sending or accepting media. Over TCP it takes the connection whole: it reads interleaved
//! `$` frames (RTP/RTCP by channel) and hands every RTSP text message up as an event; it writes
//! `$` frames and the control plane's replies, each whole, through one write buffer.
//!
//! Backpressure: the write buffer holds at most [`WRITE_CAP`] bytes. A frame that does not fit
//! whole is dropped and counted (`rtsp_dropped`); the connection is closed (`stalled`) after
//! [`STALL_TIMEOUT`] without a byte written while data waits. So a slow player never blocks the
//! worker or the other players. Over UDP each track has a socket pair of its own (ports chosen
//! by the system), registered with the worker's poll; datagrams are accepted only from the
//! client's IP.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mio::{Interest, Token};
use pms_core::media::{
    Codec, CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack, TransportId,
};
use pms_core::rtsp_framing::{Frame, InterleavedReader};

use crate::events::Event;
use crate::worker::{Counters, Entry, Peer, Worker};

/// Bytes queued at most for one TCP connection.
pub(crate) const WRITE_CAP: usize = 1 << 20;
/// A connection whose queued bytes make no progress for this long is closed.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer of the worker for RTSP sockets.
pub(crate) const READ_BUFFER: usize = 64 * 1024;

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

pub(crate) struct TcpConn {
    stream: mio::net::TcpStream,
    reader: Option<InterleavedReader>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Since when queued bytes have made no progress.
    waiting_since: Option<Instant>,
}

impl TcpConn {
    fn queued(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Writes what the socket takes. Err: the connection is broken.
    fn flush(&mut self) -> io::Result<()> {
        let mut progressed = false;
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            self.waiting_since = None;
            if self.wbuf.capacity() > 4 * READ_BUFFER {
                self.wbuf.shrink_to(READ_BUFFER);
            }
        } else {
            if progressed || self.waiting_since.is_none() {
                self.waiting_since = Some(Instant::now());
            }
            if self.wpos >= READ_BUFFER {
                self.wbuf.drain(..self.wpos);
                self.wpos = 0;
            }
        }
        Ok(())
    }
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
        }
    }

    /// The router's output towards this peer: by SSRC to the track's channel or UDP socket.
    pub(crate) fn send_packet(&mut self, pkt: &[u8], rtcp: bool, counters: &mut Counters) {
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
        if pkt.len() > usize::from(u16::MAX) {
            return;
        }
        if conn.queued() + 4 + pkt.len() > WRITE_CAP {
            counters.rtsp_dropped += 1;
            return;
        }
        let channel = if rtcp { rtcp_ch } else { rtp_ch };
        conn.wbuf.extend_from_slice(&[b'$', channel]);
        conn.wbuf
            .extend_from_slice(&(pkt.len() as u16).to_be_bytes());
        conn.wbuf.extend_from_slice(pkt);
        counters.packets_out += 1;
        counters.bytes_out += 4 + pkt.len() as u64;
        if conn.flush().is_err() {
            self.closing = Some("eof");
        }
    }

    /// Queues a whole text message (never dropped: replies are small and must arrive).
    fn send_text(&mut self, data: &[u8]) {
        if let Some(conn) = self.conn.as_mut() {
            conn.wbuf.extend_from_slice(data);
            if conn.flush().is_err() {
                self.closing = Some("eof");
            }
        }
    }
}

/// The producer track of ANNOUNCE track `index`; `Ok(None)` for a codec we do not forward.
pub(crate) fn producer_track(
    index: usize,
    t: &crate::RtspTrackSpec,
) -> Result<Option<ProducerTrack>, String> {
    let kind = match t.kind.to_ascii_lowercase().as_str() {
        "audio" => MediaKind::Audio,
        "video" => MediaKind::Video,
        _ => return Ok(None),
    };
    let Some(name) = CodecName::from_encoding_name(&t.codec) else {
        return Ok(None);
    };
    if name.kind() != kind {
        return Ok(None);
    }
    if t.payload_type > 127 {
        return Err(format!(
            "track {index}: payload type {} out of range",
            t.payload_type
        ));
    }
    let mut fmtp = t.fmtp.trim().to_string();
    if name == CodecName::H264 && !fmtp.to_ascii_lowercase().contains("packetization-mode") {
        // RTSP senders use FU-A/STAP-A (mode 1) in practice; WebRTC players require the flag.
        fmtp = if fmtp.is_empty() {
            "packetization-mode=1".into()
        } else {
            format!("packetization-mode=1;{fmtp}")
        };
    }
    let clock_rate = match (t.clock_rate, name) {
        (0, CodecName::Opus) => 48000,
        (0, CodecName::Pcma | CodecName::Pcmu) => 8000,
        (0, _) => 90000,
        (c, _) => c,
    };
    let channels = if kind == MediaKind::Audio {
        t.channels.max(1)
    } else {
        0
    };
    Ok(Some(ProducerTrack {
        kind,
        mid: index.to_string(),
        codec: Codec {
            name,
            payload_type: t.payload_type,
            clock_rate,
            channels,
            fmtp,
            rtx_payload_type: None,
            rtcp_fb: Vec::new(),
        },
        ssrc: None,
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
    }))
}

/// Binds an RTP/RTCP socket pair on `ip` with ports chosen by the system: an even/odd pair
/// when a few tries find one, else any two ports.
pub(crate) fn bind_pair(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..16 {
        let a = UdpSocket::bind((ip, 0))?;
        let port = a.local_addr()?.port();
        let pair = if port % 2 == 0 {
            UdpSocket::bind((ip, port.wrapping_add(1))).map(|b| (a, b))
        } else {
            UdpSocket::bind((ip, port - 1)).map(|b| (b, a))
        };
        if let Ok((rtp, rtcp)) = pair {
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            return Ok((rtp, rtcp));
        }
    }
    let (rtp, rtcp) = (UdpSocket::bind((ip, 0))?, UdpSocket::bind((ip, 0))?);
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    Ok((rtp, rtcp))
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
            p.conn = Some(TcpConn {
                stream,
                reader: Some(InterleavedReader::new()),
                wbuf: Vec::new(),
                wpos: 0,
                waiting_since: None,
            });
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

    /// Feeds bytes read on `id`'s connection to its framing reader and acts on each frame.
    fn rtsp_input(&mut self, id: TransportId, data: &[u8], now: Instant) {
        let Some(mut reader) = self
            .rtsp_peer(id)
            .and_then(|p| p.conn.as_mut())
            .and_then(|c| c.reader.take())
        else {
            return;
        };
        let mut failed = None;
        for frame in reader.push(data) {
            match frame {
                Ok(Frame::Message(m)) => self.shared.events.push(Event::RtspMessage {
                    id,
                    data: m.to_vec(),
                }),
                Ok(Frame::Interleaved { channel, payload }) => {
                    self.counters.packets_in += 1;
                    self.counters.bytes_in += payload.len() as u64 + 4;
                    let hit = self.rtsp_peer(id).and_then(|p| {
                        p.tracks
                            .iter()
                            .enumerate()
                            .find_map(|(i, t)| match t.channels {
                                Some((rtp, _)) if rtp == channel => Some((i, false)),
                                Some((_, rtcp)) if rtcp == channel => Some((i, true)),
                                _ => None,
                            })
                    });
                    if !self.rtsp_packet(id, hit, payload, now) {
                        return;
                    }
                }
                Err(e) => {
                    log::info!(target: "pms_io::rtsp", "RTSP transport {id}: {e}; closing");
                    failed = Some(e);
                }
            }
        }
        if failed.is_some() {
            self.remove(id, "protocol-error");
            return;
        }
        if let Some(c) = self.rtsp_peer(id).and_then(|p| p.conn.as_mut()) {
            c.reader = Some(reader);
        }
    }

    /// Routes one packet of peer `id` that arrived for its track `hit` (`(index, is_rtcp)`;
    /// `None`: no track). False when the peer is gone.
    fn rtsp_packet(
        &mut self,
        id: TransportId,
        hit: Option<(usize, bool)>,
        pkt: &[u8],
        now: Instant,
    ) -> bool {
        let Some(entry) = self.transports.get_mut(&id) else {
            return false;
        };
        let publisher = entry.publisher;
        let Some(p) = entry.rtsp() else { return false };
        let source = hit
            .and_then(|(i, _)| p.tracks.get(i))
            .and_then(|t| t.source);
        match hit {
            Some((_, true)) if p.started => self.feed_router(now, id, pkt, true),
            Some((_, false)) if publisher && p.started && source.is_some() => {
                self.feed_router(now, id, pkt, false)
            }
            _ => {
                // A channel never set up, a player's RTP, a track we do not forward, or media
                // before PLAY/RECORD.
                self.counters.unknown_datagrams += 1;
                true
            }
        }
    }

    /// A poll event for an RTSP socket.
    pub(crate) fn rtsp_ready(&mut self, token: Token, readable: bool, writable: bool) {
        let Some(&(id, role)) = self.tokens.get(&token) else {
            return;
        };
        let now = Instant::now();
        match role {
            SocketRole::Tcp => {
                if writable {
                    let broken = self
                        .rtsp_peer(id)
                        .and_then(|p| p.conn.as_mut())
                        .is_some_and(|c| c.flush().is_err());
                    if broken {
                        self.remove(id, "eof");
                        return;
                    }
                }
                if readable {
                    self.rtsp_read_tcp(id, now);
                }
            }
            SocketRole::UdpRtp(i) | SocketRole::UdpRtcp(i) => {
                let rtcp = matches!(role, SocketRole::UdpRtcp(_));
                let mut buf = std::mem::take(&mut self.rbuf);
                loop {
                    let got = {
                        let Some(udp) = self
                            .rtsp_peer(id)
                            .and_then(|p| p.tracks.get(i))
                            .and_then(|t| t.udp.as_ref())
                        else {
                            break;
                        };
                        let sock = if rtcp { &udp.rtcp } else { &udp.rtp };
                        match sock.recv_from(&mut buf) {
                            Ok((n, from)) => Some((n, from.ip() == udp.client_rtp.ip())),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                            Err(_) => continue,
                        }
                    };
                    let Some((n, from_client)) = got else { break };
                    self.counters.packets_in += 1;
                    self.counters.bytes_in += n as u64;
                    if !from_client {
                        self.counters.unknown_datagrams += 1;
                        continue;
                    }
                    if !self.rtsp_packet(id, Some((i, rtcp)), &buf[..n], now) {
                        break;
                    }
                }
                self.rbuf = buf;
            }
        }
    }

    fn rtsp_read_tcp(&mut self, id: TransportId, now: Instant) {
        let mut buf = std::mem::take(&mut self.rbuf);
        loop {
            let read = {
                let Some(conn) = self.rtsp_peer(id).and_then(|p| p.conn.as_mut()) else {
                    break;
                };
                match conn.stream.read(&mut buf) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                }
            };
            match read {
                Ok(0) | Err(_) => {
                    self.remove(id, "eof");
                    break;
                }
                Ok(n) => self.rtsp_input(id, &buf[..n], now),
            }
        }
        self.rbuf = buf;
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
