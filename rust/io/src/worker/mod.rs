//! One media worker thread: a UDP socket, the transports it owns, and one router.
//!
//! The loop: wait on the socket and the command waker (mio) until the next timer; read every
//! datagram; demultiplex it to a transport (STUN by the local ICE ufrag, everything else by the
//! source address the transport's ICE selected); feed the transport; hand decrypted RTP/RTCP to
//! the router, which writes rewritten packets back through [`Out`] (encrypt, `send_to`).
//!
//! A datagram for a transport this worker does not own (several workers sharing one port) is
//! handed to the owner through its command channel. Nothing here takes a lock per packet; the
//! shared registry is locked on connect and close only.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use pms_core::ice::{classify, stun_local_ufrag, PacketClass};
use pms_core::media::{ConsumerTrack, ProducerTrack, TransportId};
use pms_core::router::{Router, RouterEvent, Sink};
use pms_core::transport::{Received, TransportEvent, WebRtcTransport};

use crate::batch::SendBatch;
use crate::events::Event;
use crate::Shared;

pub(crate) const SOCKET: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);

/// How often transports' and the router's timers are checked.
const TICK: Duration = Duration::from_millis(10);
/// The largest datagram we read; anything longer is not media we handle.
const RECV_BUFFER: usize = 4096;

pub(crate) enum Command {
    AddPublisher {
        id: TransportId,
        stream: String,
        transport: Box<WebRtcTransport>,
        tracks: Vec<ProducerTrack>,
        max_bitrate: u32,
    },
    AddPlayer {
        id: TransportId,
        stream: String,
        producer: TransportId,
        transport: Box<WebRtcTransport>,
        tracks: Vec<ConsumerTrack>,
    },
    SetMuted {
        id: TransportId,
        video: Option<bool>,
        audio: Option<bool>,
    },
    /// RTSP commands (see [`crate::rtsp`]).
    Rtsp(crate::rtsp::RtspCommand),
    /// GB28181 media port and ingests (see [`crate::gb`]).
    Gb(crate::gb::GbCommand),
    Close {
        id: TransportId,
    },
    /// A datagram another worker read for a transport of ours.
    Foreign {
        from: SocketAddr,
        data: Vec<u8>,
    },
    Shutdown,
}

/// One peer of the worker: a WebRTC transport, an RTSP session (TCP interleaved or UDP), or a
/// GB28181 ingest (whose packet path lives in the worker's [`crate::gb::GbState`]).
pub(crate) enum Peer {
    WebRtc(Box<WebRtcTransport>),
    Rtsp(Box<crate::rtsp::RtspPeer>),
    Gb(crate::gb::GbPeer),
}

pub(crate) struct Entry {
    pub peer: Peer,
    pub stream: String,
    pub publisher: bool,
}

impl Entry {
    fn webrtc(&mut self) -> Option<&mut WebRtcTransport> {
        match &mut self.peer {
            Peer::WebRtc(t) => Some(t),
            _ => None,
        }
    }

    pub(crate) fn rtsp(&mut self) -> Option<&mut crate::rtsp::RtspPeer> {
        match &mut self.peer {
            Peer::Rtsp(p) => Some(p),
            _ => None,
        }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub send_errors: u64,
    pub unknown_datagrams: u64,
    /// Packets not queued for a slow RTSP TCP reader (its write buffer was full).
    pub rtsp_dropped: u64,
}

pub(crate) struct Worker {
    pub(crate) index: usize,
    pub(crate) poll: Poll,
    pub(crate) socket: mio::net::UdpSocket,
    rx: Receiver<Command>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) transports: HashMap<TransportId, Entry>,
    by_ufrag: HashMap<String, TransportId>,
    by_addr: HashMap<SocketAddr, TransportId>,
    /// Source addresses whose transport lives on another worker (shared-port mode).
    foreign: HashMap<SocketAddr, usize>,
    pub(crate) router: Router,
    pub(crate) counters: Counters,
    /// The GB28181 media port and ingests (only the worker given `gb_listen` has sockets).
    pub(crate) gb: crate::gb::GbState,
    next_tick: Instant,
    /// RTSP sockets: token → owning transport and which socket it is.
    pub(crate) tokens: HashMap<Token, (TransportId, crate::rtsp::SocketRole)>,
    pub(crate) next_token: usize,
    /// Read buffer for RTSP TCP connections and UDP pairs.
    pub(crate) rbuf: Vec<u8>,
    /// Outgoing WebRTC datagrams of the current input (see [`Out`]).
    pub(crate) batch: SendBatch,
    /// RTSP TCP connections with frames to write (see [`crate::rtsp::RtspOut`]).
    pub(crate) rtsp_out: crate::rtsp::RtspOut,
}

/// The router's output: encrypt for the target transport and send.
pub(crate) struct Out<'a> {
    pub transports: &'a mut HashMap<TransportId, Entry>,
    pub socket: &'a mio::net::UdpSocket,
    pub counters: &'a mut Counters,
    /// WebRTC datagrams wait here and leave in one `sendmmsg` when `Out` is dropped (or the
    /// batch is full): one system call per fan-out instead of one per player.
    pub batch: &'a mut SendBatch,
    /// RTSP TCP frames are queued per connection and written by [`Worker::rtsp_flush`].
    pub rtsp: &'a mut crate::rtsp::RtspOut,
}

impl Out<'_> {
    fn flush(&mut self) {
        let done = self.batch.flush(self.socket);
        self.counters.packets_out += done.packets;
        self.counters.bytes_out += done.bytes;
        self.counters.send_errors += done.errors;
    }
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Out<'_> {
    fn send(&mut self, to: TransportId, pkt: &[u8], rtcp: bool) {
        let Some(entry) = self.transports.get_mut(&to) else {
            return;
        };
        let transport = match &mut entry.peer {
            Peer::WebRtc(t) => t,
            Peer::Rtsp(p) => {
                p.send_packet(to, pkt, rtcp, self.counters, self.rtsp);
                return;
            }
            Peer::Gb(g) => {
                // The router's keyframe request (PLI/FIR) for a camera: noted, raised as an
                // event by the GB housekeeping (rate-limited). Its RR/REMB have no receiver.
                if rtcp {
                    g.note_rtcp(pkt);
                }
                return;
            }
        };
        let Some(addr) = transport.remote_addr() else {
            return;
        };
        let protected = if rtcp {
            transport.protect_rtcp(pkt)
        } else {
            transport.protect_rtp(pkt)
        };
        let Some(buf) = protected else { return };
        self.batch.push(addr, buf);
        if self.batch.is_full() {
            self.flush();
        }
    }
}

impl Sink for Out<'_> {
    fn send_rtp(&mut self, to: TransportId, pkt: &[u8]) {
        self.send(to, pkt, false);
    }
    fn send_rtcp(&mut self, to: TransportId, pkt: &[u8]) {
        self.send(to, pkt, true);
    }
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        poll: Poll,
        socket: std::net::UdpSocket,
        rx: Receiver<Command>,
        shared: Arc<Shared>,
    ) -> io::Result<Worker> {
        let mut socket = mio::net::UdpSocket::from_std(socket);
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        Ok(Worker {
            index,
            poll,
            socket,
            rx,
            shared,
            transports: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            foreign: HashMap::new(),
            router: Router::new(),
            counters: Counters::default(),
            gb: crate::gb::GbState::default(),
            next_tick: Instant::now(),
            tokens: HashMap::new(),
            next_token: 2,
            rbuf: vec![0u8; crate::rtsp::READ_BUFFER],
            batch: SendBatch::new(),
            rtsp_out: crate::rtsp::RtspOut::default(),
        })
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(64);
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut ready: Vec<(Token, bool, bool)> = Vec::with_capacity(64);
        loop {
            let now = Instant::now();
            let wake = self
                .rtsp_next_flush()
                .map_or(self.next_tick, |t| t.min(self.next_tick));
            let timeout = wake.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!(target: "pms_io::worker", "worker {}: poll failed: {e}", self.index);
                    return;
                }
            }
            let readable = events.iter().any(|e| e.token() == SOCKET);
            ready.clear();
            ready.extend(
                events
                    .iter()
                    .filter(|e| e.token() != SOCKET && e.token() != WAKER)
                    .map(|e| {
                        (
                            e.token(),
                            e.is_readable() || e.is_read_closed() || e.is_error(),
                            e.is_writable(),
                        )
                    }),
            );
            if !self.drain_commands() {
                self.close_all();
                return;
            }
            if readable {
                self.read_socket(&mut buf);
            }
            for (token, r, w) in ready.drain(..) {
                if self.gb.owns(token) {
                    self.gb_ready(token, r, w);
                } else {
                    self.rtsp_ready(token, r, w);
                }
            }
            let now = Instant::now();
            if now >= self.next_tick {
                self.tick(now);
                self.next_tick = now + TICK;
            }
            self.rtsp_flush(now);
        }
    }

    /// Runs queued commands; false on shutdown.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Ok(cmd) => self.handle_command(cmd),
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::AddPublisher {
                id,
                stream,
                transport,
                tracks,
                max_bitrate,
            } => {
                self.by_ufrag
                    .insert(transport.local_ufrag().to_string(), id);
                self.router.add_producer(id, tracks, max_bitrate, now);
                self.transports.insert(
                    id,
                    Entry {
                        peer: Peer::WebRtc(transport),
                        stream,
                        publisher: true,
                    },
                );
            }
            Command::AddPlayer {
                id,
                stream,
                producer,
                transport,
                tracks,
            } => {
                if let Err(e) = self.router.add_consumer(id, producer, tracks, now) {
                    // The producer went away between the answer and now.
                    log::info!(target: "pms_io::worker", "player {id} of {stream}: {e}");
                    self.forget(id, "producer-closed");
                    return;
                }
                self.by_ufrag
                    .insert(transport.local_ufrag().to_string(), id);
                self.transports.insert(
                    id,
                    Entry {
                        peer: Peer::WebRtc(transport),
                        stream,
                        publisher: false,
                    },
                );
            }
            Command::SetMuted { id, video, audio } => {
                self.router.set_muted(id, video, audio);
            }
            Command::Close { id } => {
                if let Some(t) = self.transports.get_mut(&id).and_then(Entry::webrtc) {
                    t.close();
                    self.drive(id, now);
                }
                // Whatever the transport said, it is gone now.
                if self.transports.contains_key(&id) {
                    self.remove(id, "closed");
                }
            }
            Command::Foreign { from, data } => self.handle_datagram(now, from, &data),
            Command::Rtsp(cmd) => self.handle_rtsp_command(cmd, now),
            Command::Gb(cmd) => self.handle_gb_command(cmd, now),
            Command::Shutdown => {}
        }
    }

    fn read_socket(&mut self, buf: &mut [u8]) {
        loop {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    let now = Instant::now();
                    self.counters.packets_in += 1;
                    self.counters.bytes_in += n as u64;
                    self.handle_datagram(now, from, &buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors surface as ECONNREFUSED on some systems: nothing to do.
                Err(_) => continue,
            }
        }
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let id = match classify(data) {
            PacketClass::Stun => match stun_local_ufrag(data) {
                Some(ufrag) => match self.by_ufrag.get(ufrag) {
                    Some(id) => Some(*id),
                    None => {
                        let owner = self.shared.registry().ufrags.get(ufrag).copied();
                        if let Some(w) = owner.filter(|w| *w != self.index) {
                            self.foreign.insert(from, w);
                            self.hand_over(w, from, data);
                        } else {
                            self.counters.unknown_datagrams += 1;
                        }
                        return;
                    }
                },
                None => self.by_addr.get(&from).copied(),
            },
            PacketClass::Other => None,
            _ => self.by_addr.get(&from).copied(),
        };
        let Some(id) = id else {
            if let Some(w) = self.foreign.get(&from).copied() {
                self.hand_over(w, from, data);
            } else {
                self.counters.unknown_datagrams += 1;
            }
            return;
        };
        let result = {
            let Some(t) = self.transports.get_mut(&id).and_then(Entry::webrtc) else {
                return;
            };
            catch_unwind(AssertUnwindSafe(|| t.handle_datagram(now, from, data)))
        };
        match result {
            Ok(Some(Received::Rtp(pkt))) => {
                if !self.feed_router(now, id, &pkt, false) {
                    return;
                }
            }
            Ok(Some(Received::Rtcp(pkt))) => {
                if !self.feed_router(now, id, &pkt, true) {
                    return;
                }
            }
            Ok(None) => {}
            Err(_) => {
                log::error!(target: "pms_io::worker", "transport {id} panicked on a datagram from {from}; closing it");
                self.remove(id, "internal-error");
                return;
            }
        }
        self.drive(id, now);
    }

    /// Hands a plain RTP or RTCP packet of transport `id` to the router. False when the router
    /// panicked (the transport is then closed).
    pub(crate) fn feed_router(
        &mut self,
        now: Instant,
        id: TransportId,
        pkt: &[u8],
        rtcp: bool,
    ) -> bool {
        let mut out = Out {
            transports: &mut self.transports,
            socket: &self.socket,
            counters: &mut self.counters,
            batch: &mut self.batch,
            rtsp: &mut self.rtsp_out,
        };
        let router = &mut self.router;
        let result = if rtcp {
            catch_unwind(AssertUnwindSafe(|| {
                router.handle_rtcp(now, id, pkt, &mut out)
            }))
        } else {
            catch_unwind(AssertUnwindSafe(|| {
                router.handle_rtp(now, id, pkt, &mut out)
            }))
        };
        drop(out); // sends the batch
        if result.is_err() {
            let what = if rtcp { "RTCP" } else { "RTP" };
            log::error!(target: "pms_io::worker", "router panicked on {what} of transport {id}; closing it");
            self.remove(id, "internal-error");
            return false;
        }
        if !rtcp {
            self.router_events();
        }
        true
    }

    /// Runs `f` with the router and its output (the sink) borrowed together.
    pub(crate) fn with_router<R>(&mut self, f: impl FnOnce(&mut Router, &mut Out<'_>) -> R) -> R {
        let mut out = Out {
            transports: &mut self.transports,
            socket: &self.socket,
            counters: &mut self.counters,
            batch: &mut self.batch,
            rtsp: &mut self.rtsp_out,
        };
        f(&mut self.router, &mut out)
    }

    fn hand_over(&mut self, worker: usize, from: SocketAddr, data: &[u8]) {
        if let Some(handle) = self.shared.workers().get(worker) {
            handle.send(Command::Foreign {
                from,
                data: data.to_vec(),
            });
        }
    }

    /// Sends what the transport queued and acts on its events.
    fn drive(&mut self, id: TransportId, now: Instant) {
        loop {
            let Some(entry) = self.transports.get_mut(&id) else {
                return;
            };
            let publisher = entry.publisher;
            let Some(transport) = entry.webrtc() else {
                return;
            };
            let mut progressed = false;
            while let Some((to, buf)) = transport.poll_transmit() {
                progressed = true;
                match self.socket.send_to(&buf, to) {
                    Ok(n) => {
                        self.counters.packets_out += 1;
                        self.counters.bytes_out += n as u64;
                    }
                    Err(_) => self.counters.send_errors += 1,
                }
            }
            if let Some(addr) = transport.remote_addr() {
                if self.by_addr.get(&addr) != Some(&id) {
                    self.by_addr.retain(|_, v| *v != id);
                    self.by_addr.insert(addr, id);
                }
            }
            match transport.poll_event() {
                Some(TransportEvent::Connected) => {
                    progressed = true;
                    if !publisher {
                        let mut out = Out {
                            transports: &mut self.transports,
                            socket: &self.socket,
                            counters: &mut self.counters,
                            batch: &mut self.batch,
                            rtsp: &mut self.rtsp_out,
                        };
                        self.router.consumer_connected(id, now, &mut out);
                    }
                    self.shared.events.push(Event::TransportConnected { id });
                }
                Some(TransportEvent::Closed(reason)) => {
                    self.remove(id, reason);
                    return;
                }
                None => {}
            }
            if !progressed {
                return;
            }
        }
    }

    pub(crate) fn router_events(&mut self) {
        while let Some(ev) = self.router.poll_event() {
            match ev {
                RouterEvent::ProducerStarted { producer } => {
                    let Some(entry) = self.transports.get(&producer) else {
                        continue;
                    };
                    let codecs = self
                        .shared
                        .registry()
                        .streams
                        .get(&entry.stream)
                        .map(|s| crate::registry::codec_names(&s.tracks))
                        .unwrap_or_default();
                    self.shared.events.push(Event::ProducerStarted {
                        stream: entry.stream.clone(),
                        codecs,
                    });
                }
                RouterEvent::ParameterSets {
                    producer,
                    track,
                    nals,
                } => {
                    let Some(entry) = self.transports.get(&producer) else {
                        continue;
                    };
                    let codec = self
                        .shared
                        .registry()
                        .streams
                        .get(&entry.stream)
                        .and_then(|s| {
                            s.tracks
                                .get(track)
                                .map(|t| t.codec.name.encoding_name().to_string())
                        })
                        .unwrap_or_default();
                    self.shared.events.push(Event::ParameterSets {
                        stream: entry.stream.clone(),
                        codec,
                        nals,
                    });
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }

    /// Drops a transport and, for a publisher, its players.
    pub(crate) fn remove(&mut self, id: TransportId, reason: &'static str) {
        let Some(entry) = self.transports.remove(&id) else {
            return;
        };
        self.drop_peer(entry);
        let consumers = self.router.remove(id);
        self.forget(id, reason);
        for c in consumers {
            if let Some(t) = self.transports.get_mut(&c).and_then(Entry::webrtc) {
                t.close();
            }
            self.drive_transmits_only(c);
            if let Some(entry) = self.transports.remove(&c) {
                self.drop_peer(entry);
                self.router.remove(c);
                self.forget(c, "producer-closed");
            }
        }
    }

    fn drive_transmits_only(&mut self, id: TransportId) {
        let Some(transport) = self.transports.get_mut(&id).and_then(Entry::webrtc) else {
            return;
        };
        while let Some((to, buf)) = transport.poll_transmit() {
            let _ = self.socket.send_to(&buf, to);
        }
    }

    /// Removes every index entry of `id` here and in the registry, and tells the control plane.
    pub(crate) fn forget(&mut self, id: TransportId, reason: &'static str) {
        self.by_ufrag.retain(|_, v| *v != id);
        self.by_addr.retain(|_, v| *v != id);
        self.shared.registry().remove_transport(id);
        self.shared
            .events
            .push(Event::TransportClosed { id, reason });
    }

    fn tick(&mut self, now: Instant) {
        let due: Vec<TransportId> = self
            .transports
            .iter()
            .filter(|(_, e)| match &e.peer {
                Peer::WebRtc(t) => t.poll_timeout().is_some_and(|t| t <= now),
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let panicked = {
                let Some(t) = self.transports.get_mut(&id).and_then(Entry::webrtc) else {
                    continue;
                };
                catch_unwind(AssertUnwindSafe(|| t.handle_timeout(now))).is_err()
            };
            if panicked {
                self.remove(id, "internal-error");
            } else {
                self.drive(id, now);
            }
        }
        if self.router.poll_timeout().is_some_and(|t| t <= now) {
            let mut out = Out {
                transports: &mut self.transports,
                socket: &self.socket,
                counters: &mut self.counters,
                batch: &mut self.batch,
                rtsp: &mut self.rtsp_out,
            };
            self.router.handle_timeout(now, &mut out);
        }
        self.rtsp_tick(now);
        self.gb_tick(now);
        self.publish_stats();
    }

    fn publish_stats(&self) {
        let Some(slot) = self.shared.stats.get(self.index) else {
            return;
        };
        let r = self.router.stats();
        let publishers = self.transports.values().filter(|e| e.publisher).count();
        let set = |i: usize, v: u64| slot[i].store(v, Ordering::Relaxed);
        set(crate::STAT_TRANSPORTS, self.transports.len() as u64);
        set(crate::STAT_PRODUCERS, r.producers as u64);
        set(crate::STAT_CONSUMERS, r.consumers as u64);
        set(crate::STAT_PACKETS_IN, self.counters.packets_in);
        set(crate::STAT_PACKETS_OUT, self.counters.packets_out);
        set(crate::STAT_BYTES_IN, self.counters.bytes_in);
        set(crate::STAT_BYTES_OUT, self.counters.bytes_out);
        set(crate::STAT_NACKS, r.nacks);
        set(crate::STAT_PLIS, r.plis);
        set(crate::STAT_RETRANSMITS, r.retransmits);
        set(
            crate::STAT_RTP_DROPPED,
            r.rtp_dropped + self.counters.unknown_datagrams,
        );
        set(crate::STAT_SEND_ERRORS, self.counters.send_errors);
        set(crate::STAT_PUBLISHERS, publishers as u64);
        set(crate::STAT_RTSP_DROPPED, self.counters.rtsp_dropped);
        self.gb.publish_stats(slot);
    }

    fn close_all(&mut self) {
        let ids: Vec<TransportId> = self.transports.keys().copied().collect();
        for id in ids {
            if let Some(t) = self.transports.get_mut(&id).and_then(Entry::webrtc) {
                t.close();
            }
            self.drive_transmits_only(id);
        }
        for (_, entry) in std::mem::take(&mut self.transports) {
            self.drop_peer(entry);
        }
        self.publish_stats();
    }
}
