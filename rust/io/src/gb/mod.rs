//! The GB28181 media port on a worker: TCP connections (RFC 4571) and the UDP socket, matched
//! to ingests, each ingest's packet path into the router, and its timers.
//!
//! What this module owns: the listener, the UDP socket, the accepted and dialled connections,
//! and per ingest a [`PsIngest`] (`pms_core::gb`: reorder, PS demux, packetizers). What it may
//! not do: parse SIP or decide when to BYE (the control plane does, on the events below).
//! The TCP connections themselves (accept, connect, read, bind, close) are in [`tcp`].
//!
//! - **Matching.** A connection is unbound until its first RTP packet; the packet's SSRC (or
//!   the camera's IP, see [`Matcher`]) names the ingest, and every later packet of that
//!   connection goes to it without a lookup. A UDP packet is matched on each arrival by SSRC
//!   (one hash lookup). A packet nobody matches is dropped and counted (`gb_unknown_ssrc`); an
//!   unbound connection is closed after [`MEDIA_TIMEOUT`]. A new connection bound to an ingest
//!   that has one replaces it (a camera that reconnects).
//! - **Ending.** An ingest ends by itself with `transport_closed(id, reason)`:
//!   `media-timeout` (no RTP for [`MEDIA_TIMEOUT`], counted from its creation too), `eof` (its
//!   connection closed or failed), `protocol-error` (unusable framing on its connection:
//!   [`pms_core::gb::FramingError`]), `connect-failed` (tcp-active could not connect within the timeout). A
//!   connection with bad framing that is bound to no ingest is closed alone.
//! - **Going live.** When the ingest knows its tracks, the reservation in the registry becomes
//!   a live stream (registry lock, once) and the router gets a producer; the first RTP packet
//!   then raises `producer_started` through the router as for any publisher.
//! - **Keyframes.** The router asks producers for keyframes with PLI (player joins, player
//!   PLI). For an ingest that request lands in [`GbPeer::note_rtcp`]; the housekeeping raises
//!   `keyframe_wanted` when the router's cache has no keyframe to give, at most once per
//!   [`KEYFRAME_EVENT_INTERVAL`] per stream.
//! - **Hot path.** Read into the worker's buffer, deframe in place, demux, packetize into
//!   scratch buffers, route: no lock and no allocation per packet (the demuxer allocates once
//!   per access unit). Timers are checked every [`HOUSEKEEPING`], reorder deadlines every tick.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Interest, Token};
use pms_core::gb::{Deframer, IngestOutput, Matcher, PsIngest};
use pms_core::media::TransportId;
use pms_core::rtcp::{parse_compound, Rtcp};

use crate::events::Event;
use crate::registry::StreamEntry;
use crate::worker::{Entry, Out, Peer, Worker};

mod tcp;

/// The worker that owns the media port and every GB28181 ingest.
pub(crate) const GB_WORKER: usize = 0;
/// No RTP for this long ends an ingest (`media-timeout`), and closes an unbound connection.
pub(crate) const MEDIA_TIMEOUT: Duration = Duration::from_secs(10);
/// Minimum spacing of `keyframe_wanted` events for one stream.
pub const KEYFRAME_EVENT_INTERVAL: Duration = Duration::from_secs(2);
/// How often timeouts and keyframe requests are looked at.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
const LISTENER: Token = Token(usize::MAX - 1);
const UDP: Token = Token(usize::MAX - 2);
/// Bytes read per UDP datagram at most (RTP over UDP stays under the MTU; 64 KiB is the limit).
const UDP_BUFFER: usize = 65536;

/// How the camera's media reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IngestMode {
    TcpPassive,
    Udp,
    /// We connect to the camera at this address.
    TcpActive(SocketAddr),
}

pub(crate) enum GbCommand {
    Listen {
        listener: std::net::TcpListener,
        udp: std::net::UdpSocket,
    },
    Add {
        id: TransportId,
        stream: String,
        ssrc: u32,
        mode: IngestMode,
        peer_ip: Option<IpAddr>,
    },
}

/// The ingest's entry among the worker's transports: what the router's output needs.
pub(crate) struct GbPeer {
    id: TransportId,
    keyframe_wanted: bool,
}

impl GbPeer {
    pub(crate) fn id(&self) -> TransportId {
        self.id
    }

    /// RTCP the router sends to the ingest: a PLI or FIR means a consumer waits for a keyframe.
    pub(crate) fn note_rtcp(&mut self, pkt: &[u8]) {
        if parse_compound(pkt).any(|r| matches!(r, Ok(Rtcp::Pli { .. } | Rtcp::Fir { .. }))) {
            self.keyframe_wanted = true;
        }
    }
}

/// What moves an ingest's media path on: a camera packet, or its reorder deadline.
#[derive(Clone, Copy)]
enum IngestInput<'a> {
    Rtp(&'a [u8]),
    ReorderTimeout,
}

struct Ingest {
    stream: String,
    mode: IngestMode,
    media: PsIngest,
    conn: Option<Token>,
    last_media: Instant,
    last_keyframe_event: Option<Instant>,
}

struct Conn {
    stream: TcpStream,
    deframer: Deframer,
    peer: SocketAddr,
    ingest: Option<TransportId>,
    /// tcp-active: the connect is in progress.
    connecting: bool,
    since: Instant,
}

/// A worker's GB28181 state (empty on workers other than [`GB_WORKER`]).
#[derive(Default)]
pub(crate) struct GbState {
    listener: Option<TcpListener>,
    udp: Option<UdpSocket>,
    conns: HashMap<Token, Conn>,
    ingests: HashMap<TransportId, Ingest>,
    matcher: Matcher,
    udp_buf: Vec<u8>,
    next_housekeeping: Option<Instant>,
    unknown_ssrc: u64,
    bytes_in: u64,
    /// Counters of ingests that ended, so the published sums never go back.
    closed: (u64, u64, u64),
}

impl GbState {
    pub(crate) fn owns(&self, token: Token) -> bool {
        token == LISTENER || token == UDP || self.conns.contains_key(&token)
    }

    pub(crate) fn publish_stats(&self, slot: &[AtomicU64]) {
        let set = |i: usize, v: u64| {
            if let Some(s) = slot.get(i) {
                s.store(v, Ordering::Relaxed)
            }
        };
        set(crate::STAT_GB_INGESTS, self.ingests.len() as u64);
        set(crate::STAT_GB_TCP_CONNECTIONS, self.conns.len() as u64);
        set(crate::STAT_GB_UNKNOWN_SSRC, self.unknown_ssrc);
        set(crate::STAT_GB_BYTES_IN, self.bytes_in);
        let mut sums = self.closed;
        for i in self.ingests.values() {
            let c = counters(i);
            sums = (sums.0 + c.0, sums.1 + c.1, sums.2 + c.2);
        }
        set(crate::STAT_GB_PS_RESYNCS, sums.0);
        set(crate::STAT_GB_PACKETS_IN, sums.1);
        set(crate::STAT_GB_SEQ_GAPS, sums.2);
    }
}

fn counters(i: &Ingest) -> (u64, u64, u64) {
    let s = i.media.stats();
    (i.media.demux_stats().resyncs, s.packets, s.gaps)
}

impl Worker {
    pub(crate) fn handle_gb_command(&mut self, cmd: GbCommand, now: Instant) {
        match cmd {
            GbCommand::Listen { listener, udp } => {
                let mut l = TcpListener::from_std(listener);
                let mut u = UdpSocket::from_std(udp);
                let reg = self.poll.registry();
                if let Err(e) = reg
                    .register(&mut l, LISTENER, Interest::READABLE)
                    .and_then(|_| reg.register(&mut u, UDP, Interest::READABLE))
                {
                    log::error!(target: "pms_io::gb", "cannot poll the media port: {e}");
                    return;
                }
                self.gb.listener = Some(l);
                self.gb.udp = Some(u);
                self.gb.udp_buf = vec![0; UDP_BUFFER];
            }
            GbCommand::Add {
                id,
                stream,
                ssrc,
                mode,
                peer_ip,
            } => self.gb_add(id, stream, ssrc, mode, peer_ip, now),
        }
    }

    fn gb_add(
        &mut self,
        id: TransportId,
        stream: String,
        ssrc: u32,
        mode: IngestMode,
        peer_ip: Option<IpAddr>,
        now: Instant,
    ) {
        let media = PsIngest::new(mode == IngestMode::Udp, rand::random(), rand::random());
        self.transports.insert(
            id,
            Entry {
                peer: Peer::Gb(GbPeer {
                    id,
                    keyframe_wanted: false,
                }),
                stream: stream.clone(),
                publisher: true,
            },
        );
        self.gb.ingests.insert(
            id,
            Ingest {
                stream,
                mode,
                media,
                conn: None,
                last_media: now,
                last_keyframe_event: None,
            },
        );
        match mode {
            IngestMode::TcpActive(addr) => {
                let Ok(mut stream) = TcpStream::connect(addr) else {
                    self.remove(id, "connect-failed");
                    return;
                };
                let token = Token(self.next_token);
                self.next_token += 1;
                let interest = Interest::READABLE | Interest::WRITABLE;
                if self
                    .poll
                    .registry()
                    .register(&mut stream, token, interest)
                    .is_err()
                {
                    self.remove(id, "connect-failed");
                    return;
                }
                self.gb.conns.insert(
                    token,
                    Conn {
                        stream,
                        deframer: Deframer::new(),
                        peer: addr,
                        ingest: Some(id),
                        connecting: true,
                        since: now,
                    },
                );
                if let Some(i) = self.gb.ingests.get_mut(&id) {
                    i.conn = Some(token);
                }
            }
            _ => self.gb.matcher.add(id, ssrc, peer_ip),
        }
    }

    /// Forgets what the ingest `id` holds here (called when its transport entry is removed).
    pub(crate) fn gb_forget(&mut self, id: TransportId) {
        self.gb.matcher.remove(id);
        if let Some(i) = self.gb.ingests.remove(&id) {
            let c = counters(&i);
            self.gb.closed.0 += c.0;
            self.gb.closed.1 += c.1;
            self.gb.closed.2 += c.2;
            if let Some(token) = i.conn {
                self.gb_close_conn(token);
            }
        }
    }

    /// A poll event for the listener, the UDP socket or a connection.
    pub(crate) fn gb_ready(&mut self, token: Token, readable: bool, writable: bool) {
        let now = Instant::now();
        match token {
            LISTENER => self.gb_accept(now),
            UDP => self.gb_read_udp(now),
            _ => {
                let connecting = self.gb.conns.get(&token).is_some_and(|c| c.connecting);
                if connecting && (readable || writable) && !self.gb_connected(token) {
                    return;
                }
                if readable {
                    self.gb_read_tcp(token, now);
                }
            }
        }
        self.router_events();
    }

    fn gb_read_udp(&mut self, now: Instant) {
        let mut buf = std::mem::take(&mut self.gb.udp_buf);
        while let Some(sock) = self.gb.udp.as_ref() {
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => continue,
            };
            self.gb.bytes_in += n as u64;
            let pkt = &buf[..n];
            let Some(ssrc) = rtp_ssrc(pkt) else { continue };
            match self.gb.matcher.find(ssrc, from.ip()) {
                Some(m) => self.gb_deliver(m.id(), pkt, now),
                None => self.gb.unknown_ssrc += 1,
            }
        }
        self.gb.udp_buf = buf;
    }

    /// One camera packet of ingest `id` through its media path into the router.
    fn gb_deliver(&mut self, id: TransportId, pkt: &[u8], now: Instant) {
        self.gb_feed(id, IngestInput::Rtp(pkt), now);
    }

    /// Runs ingest `id`'s media path on `input`: the stream goes live (registry and router
    /// producer) when its tracks are known, and its RTP goes into the router. A panic (a bug;
    /// none is known) closes this ingest, never the worker.
    fn gb_feed(&mut self, id: TransportId, input: IngestInput<'_>, now: Instant) {
        let Worker {
            gb,
            router,
            transports,
            socket,
            counters,
            batch,
            rtsp_out,
            shared,
            index,
            ..
        } = self;
        let Some(ingest) = gb.ingests.get_mut(&id) else {
            return;
        };
        if let IngestInput::Rtp(_) = input {
            ingest.last_media = now;
        }
        let mut out = Out {
            transports,
            socket,
            counters,
            batch,
            rtsp: rtsp_out,
        };
        let stream = &ingest.stream;
        let media = &mut ingest.media;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut emit = |o: IngestOutput<'_>| match o {
                IngestOutput::Live(tracks) => {
                    go_live(shared, *index, id, stream, tracks);
                    router.add_producer(id, tracks.to_vec(), 0, now);
                }
                IngestOutput::Rtp(p) => router.handle_rtp(now, id, p, &mut out),
            };
            match input {
                IngestInput::Rtp(pkt) => media.push_rtp(pkt, now, &mut emit),
                // Packets held for reordering go on now; they may complete the first frame (Live).
                IngestInput::ReorderTimeout => media.handle_timeout(now, &mut emit),
            }
        }));
        drop(out);
        if result.is_err() {
            let during = match input {
                IngestInput::Rtp(_) => "on a packet",
                IngestInput::ReorderTimeout => "in its reorder timer",
            };
            log::error!(target: "pms_io::gb", "ingest {id} panicked {during}; closing it");
            self.remove(id, "internal-error");
        }
    }

    /// Reorder deadlines (every tick); timeouts and keyframe events (every [`HOUSEKEEPING`]).
    pub(crate) fn gb_tick(&mut self, now: Instant) {
        if self.gb.ingests.is_empty() && self.gb.conns.is_empty() {
            return;
        }
        let due: Vec<TransportId> = self
            .gb
            .ingests
            .iter()
            .filter(|(_, i)| i.media.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.gb_feed(id, IngestInput::ReorderTimeout, now);
            self.router_events();
        }
        if self.gb.next_housekeeping.is_some_and(|t| now < t) {
            return;
        }
        self.gb.next_housekeeping = Some(now + HOUSEKEEPING);
        let mut doomed = Vec::new();
        for (id, i) in &self.gb.ingests {
            if now.saturating_duration_since(i.last_media) >= MEDIA_TIMEOUT {
                let connecting = matches!(i.mode, IngestMode::TcpActive(_))
                    && i.conn
                        .and_then(|t| self.gb.conns.get(&t))
                        .is_some_and(|c| c.connecting);
                doomed.push((
                    *id,
                    if connecting {
                        "connect-failed"
                    } else {
                        "media-timeout"
                    },
                ));
            }
        }
        for (id, reason) in doomed {
            self.remove(id, reason);
        }
        let stale: Vec<Token> = self
            .gb
            .conns
            .iter()
            .filter(|(_, c)| {
                c.ingest.is_none() && now.saturating_duration_since(c.since) >= MEDIA_TIMEOUT
            })
            .map(|(t, _)| *t)
            .collect();
        for t in stale {
            self.gb_close_conn(t);
        }
        self.gb_keyframe_events(now);
    }

    fn gb_keyframe_events(&mut self, now: Instant) {
        for (id, ingest) in self.gb.ingests.iter_mut() {
            let Some(Entry {
                peer: Peer::Gb(peer),
                ..
            }) = self.transports.get_mut(id)
            else {
                continue;
            };
            if !std::mem::take(&mut peer.keyframe_wanted) || self.router.keyframe_cached(*id) {
                continue;
            }
            if ingest
                .last_keyframe_event
                .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_EVENT_INTERVAL)
            {
                continue;
            }
            ingest.last_keyframe_event = Some(now);
            self.shared.events.push(Event::KeyframeWanted {
                stream: ingest.stream.clone(),
            });
        }
    }
}

/// The SSRC of an RTP packet; `None` for RTCP (PT 200..=204) and packets too short.
fn rtp_ssrc(pkt: &[u8]) -> Option<u32> {
    if pkt.len() < 12 || pkt[0] >> 6 != 2 || (200..=204).contains(&pkt[1]) {
        return None;
    }
    Some(u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]))
}

/// The ingest's reservation becomes a live stream (registry lock, once per ingest).
fn go_live(
    shared: &Arc<crate::Shared>,
    worker: usize,
    id: TransportId,
    stream: &str,
    tracks: &[pms_core::media::ProducerTrack],
) {
    let mut reg = shared.registry();
    if reg.reserved.get(stream) != Some(&id) {
        return; // closed meanwhile: its Close command is on the way
    }
    reg.reserved.remove(stream);
    reg.streams.insert(
        stream.to_string(),
        StreamEntry {
            worker,
            producer: id,
            tracks: Arc::new(tracks.to_vec()),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrc_of_rtp_only() {
        let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
        assert_eq!(rtp_ssrc(&rtp), Some(0x1234_5678));
        rtp[1] = 200; // an RTCP sender report
        assert_eq!(rtp_ssrc(&rtp), None);
        rtp[1] = 96;
        rtp[0] = 0x40; // version 1
        assert_eq!(rtp_ssrc(&rtp), None);
        assert_eq!(rtp_ssrc(&[0x80; 11]), None);
    }

    #[test]
    fn keyframe_requests_are_noted_from_pli_and_fir_only() {
        let mut peer = GbPeer {
            id: 1,
            keyframe_wanted: false,
        };
        let mut rr = Vec::new();
        pms_core::rtcp::write_rr(&mut rr, 1, &[]);
        peer.note_rtcp(&rr);
        assert!(!peer.keyframe_wanted);
        peer.note_rtcp(&[0xff; 3]);
        assert!(!peer.keyframe_wanted);
        let mut pli = Vec::new();
        pms_core::rtcp::write_pli(&mut pli, 1, 2);
        peer.note_rtcp(&pli);
        assert!(peer.keyframe_wanted);
    }
}
