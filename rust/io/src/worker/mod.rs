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
//!
//! The parts: [`routing`] (the router's output [`Out`], packets into the router, its events out),
//! [`udp`] (the socket's datagrams to WebRTC transports and a transport's own output), and
//! [`close`] (how peers end). RTSP and GB28181 peers live in [`crate::rtsp`] and [`crate::gb`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use pms_core::media::{ConsumerTrack, ProducerTrack, TransportId};
use pms_core::router::Router;
use pms_core::transport::WebRtcTransport;

use crate::batch::SendBatch;
use crate::Shared;

mod close;
mod routing;
mod udp;

pub(crate) use routing::Out;

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
            router: Router::new(Box::new(rand::rngs::OsRng)),
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
            self.with_router(|r, out| r.handle_timeout(now, out));
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
}
