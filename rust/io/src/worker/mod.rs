//! One media worker thread: its poll, its shared UDP socket, a table of peers, a deadline heap
//! and one router. It knows peers only through the [`Peer`] trait (see [`peer`]); the kinds
//! live in `crate::peers`, and this module names none of them.
//!
//! The loop: wait (mio) until a socket is ready, a command arrives or the earliest deadline
//! comes; run commands (a new peer, a message for a peer by its id, close...); read the shared
//! UDP socket and hand each datagram to the peer that claimed its ICE ufrag or source address
//! ([`udp`]); hand each ready socket to the peer that registered it; run due deadlines (a heap,
//! [`deadlines`]: no scan of every peer); run the router's timers; call the peers that asked for
//! a flush at the end of the iteration (RTSP's merged writes); publish counters at most every
//! [`HOUSEKEEPING`], per-producer counters about once a second ([`media_stats`]).
//!
//! Peers feed the router through their handle ([`handle`]); the router writes back through
//! [`peer::Out`], which reaches each consumer by id. Nothing here takes a lock per packet; the
//! shared registry is locked on connect and close only. A datagram for a peer of another worker
//! (several workers sharing one port) is handed to that worker through its command channel.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use pms_core::media::TransportId as PeerId;
use pms_core::router::Router;

use crate::batch::SendBatch;
use crate::media_stats;
use crate::stats::{self, Counters};

mod close;
mod deadlines;
mod handle;
mod mux;
mod peer;
mod routing;
mod shared;
#[cfg(test)]
mod tests;
mod udp;

pub(crate) use handle::READ_BUFFER;
pub(crate) use peer::{MediaOut, MediaSink, Message, Peer, PeerCtx, PeerInfo, Readiness};
pub(crate) use shared::{Shared, WorkerHandle};

use peer::{Parts, Slot, Table};

pub(crate) const SOCKET: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);

/// How often, at most, counters are published and the router's next timer is asked for again
/// while the worker is busy (an idle worker sleeps until its next deadline).
const HOUSEKEEPING: Duration = Duration::from_millis(10);
/// A deadline a peer sets again at or before `now` while handling it waits this long (a peer
/// that keeps asking for a past time must not spin the worker).
const MIN_REARM: Duration = Duration::from_millis(1);
/// The largest datagram we read on the shared socket; anything longer is not media we handle.
const RECV_BUFFER: usize = 4096;

/// Datagrams read from the shared socket between two sends of the batch.
pub(super) const SEND_EVERY: usize = 32;

pub(crate) enum Command {
    /// A new peer, built by the engine; its `start` runs on the worker.
    Add {
        id: PeerId,
        info: PeerInfo,
        peer: Box<dyn Peer>,
    },
    /// A message for peer `id` (its kind downcasts it); dropped when there is no such peer.
    Message {
        id: PeerId,
        msg: Message,
    },
    /// Mutes a consumer's tracks in the router (`None` keeps a kind).
    SetMuted {
        id: PeerId,
        video: Option<bool>,
        audio: Option<bool>,
    },
    Close {
        id: PeerId,
    },
    /// A datagram another worker read for a peer of ours.
    Foreign {
        from: SocketAddr,
        data: Vec<u8>,
    },
    Shutdown,
}

pub(crate) struct Worker {
    parts: Parts,
    peers: Table,
    rx: Receiver<Command>,
    /// Source addresses whose peer lives on another worker (shared-port mode).
    foreign: HashMap<SocketAddr, usize>,
    /// When the router's `handle_timeout` is due.
    router_due: Option<Instant>,
    last_housekeeping: Instant,
    /// Something happened since the last housekeeping.
    busy: bool,
    /// Spare list for the flush phase (keeps its capacity).
    flushing: Vec<PeerId>,
    /// Publishes the router's per-producer counters about once a second.
    media: media_stats::Publisher,
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
            parts: Parts {
                index,
                poll,
                socket,
                shared,
                // The worker's one router (pms-core, sans-IO).
                router: Router::new(Box::new(rand::rngs::OsRng)),
                counters: Counters::default(),
                batch: SendBatch::new(),
                mux: Default::default(),
                deadlines: Default::default(),
                tokens: Default::default(),
                next_token: 2,
                rbuf: vec![0u8; READ_BUFFER],
                flush: Vec::new(),
                closing: Vec::new(),
                messages: Default::default(),
            },
            peers: Table::new(),
            rx,
            foreign: HashMap::new(),
            router_due: None,
            last_housekeeping: Instant::now(),
            busy: true,
            flushing: Vec::new(),
            media: media_stats::Publisher::new(),
        })
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(64);
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut ready = Vec::with_capacity(64);
        while self.iterate(&mut events, &mut buf, &mut ready, None) {}
    }

    /// One poll iteration; false on shutdown. `max_wait` bounds the wait (tests).
    fn iterate(
        &mut self,
        events: &mut Events,
        buf: &mut [u8],
        ready: &mut Vec<(Token, Readiness)>,
        max_wait: Option<Duration>,
    ) -> bool {
        let now = Instant::now();
        let mut timeout = self.next_wake().map(|t| t.saturating_duration_since(now));
        if let Some(max) = max_wait {
            timeout = Some(timeout.map_or(max, |t| t.min(max)));
        }
        if let Err(e) = self.parts.poll.poll(events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!(target: "pms_io::worker", "worker {}: poll failed: {e}", self.parts.index);
                self.close_all();
                return false;
            }
        }
        if !events.is_empty() {
            self.busy = true;
        }
        let readable = events.iter().any(|e| e.token() == SOCKET);
        ready.clear();
        ready.extend(
            events
                .iter()
                .filter(|e| e.token() != SOCKET && e.token() != WAKER)
                .map(|e| {
                    let r = Readiness {
                        readable: e.is_readable() || e.is_read_closed() || e.is_error(),
                        writable: e.is_writable(),
                    };
                    (e.token(), r)
                }),
        );
        if !self.drain_commands() {
            self.close_all();
            return false;
        }
        if readable {
            self.read_socket(buf);
        }
        for (token, r) in ready.drain(..) {
            if let Some(id) = self.parts.tokens.get(&token).copied() {
                self.dispatch(id, Instant::now(), |p, ctx| p.on_ready(ctx, token, r));
            }
        }
        let now = Instant::now();
        self.run_deadlines(now);
        self.run_router_timeout(now);
        self.run_flushes();
        self.send_batch();
        self.housekeeping(now);
        if let Some(slot) = self.parts.shared.media.get(self.parts.index) {
            self.media.maybe_publish(&self.parts.router, slot, now);
        }
        true
    }

    /// When the worker must wake up at the latest (`None`: only for I/O or a command).
    fn next_wake(&mut self) -> Option<Instant> {
        let mut wake = self.parts.deadlines.next();
        let mut take = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        if let Some(t) = self.router_due {
            take(t);
        }
        if self.busy {
            take(self.last_housekeeping + HOUSEKEEPING);
        }
        if !self.parts.flush.is_empty() {
            take(Instant::now());
        }
        wake
    }

    /// Runs `f` on peer `id`, then what it queued (closes, messages).
    fn dispatch(
        &mut self,
        id: PeerId,
        now: Instant,
        f: impl FnOnce(&mut dyn Peer, &mut PeerCtx<'_>),
    ) -> bool {
        let done = handle::dispatch(&mut self.peers, &mut self.parts, id, now, f);
        self.settle();
        done
    }

    /// Closes the peers queued for closing and delivers queued messages, until none is left.
    fn settle(&mut self) {
        loop {
            if !self.parts.closing.is_empty() {
                let closing = std::mem::take(&mut self.parts.closing);
                for (id, reason) in closing {
                    self.remove(id, reason);
                }
                continue;
            }
            let Some((id, msg)) = self.parts.messages.pop_front() else {
                return;
            };
            let now = Instant::now();
            handle::dispatch(&mut self.peers, &mut self.parts, id, now, |p, ctx| {
                p.on_message(ctx, msg)
            });
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
            Command::Add { id, info, peer } => self.add(id, info, peer, now),
            Command::Message { id, msg } => {
                self.dispatch(id, now, |p, ctx| p.on_message(ctx, msg));
            }
            Command::SetMuted { id, video, audio } => {
                self.parts.router.set_muted(id, video, audio);
            }
            Command::Close { id } => self.remove(id, "closed"),
            Command::Foreign { from, data } => self.handle_datagram(now, from, &data),
            Command::Shutdown => {}
        }
        // What a closing peer queued (a message to another peer) runs now.
        self.settle();
    }

    fn add(&mut self, id: PeerId, info: PeerInfo, peer: Box<dyn Peer>, now: Instant) {
        if info.stream.is_some() {
            self.parts.counters.add(stats::STAT_TRANSPORTS, 1);
            if info.publisher {
                self.parts.counters.add(stats::STAT_PUBLISHERS, 1);
            }
        }
        let slot = Slot {
            peer: Some(peer),
            info,
            deadline: None,
            tokens: Vec::new(),
        };
        if let Some(old) = self.peers.insert(id, slot) {
            // Ids are unique; should one come twice, the old peer goes quietly.
            self.retire(id, old, "closed");
        }
        let mut started = Ok(());
        self.dispatch(id, now, |p, ctx| started = p.start(ctx));
        if let Err(reason) = started {
            // Never started: dropped without `close`, then forgotten as any peer.
            if let Some(slot) = self.peers.get_mut(&id) {
                slot.peer = None;
            }
            self.remove(id, reason);
        }
    }

    /// Runs the deadlines due at `now`.
    fn run_deadlines(&mut self, now: Instant) {
        while let Some(id) = self.parts.deadlines.pop_due(now) {
            self.busy = true;
            if let Some(slot) = self.peers.get_mut(&id) {
                slot.deadline = None;
            }
            self.dispatch(id, now, |p, ctx| p.on_deadline(ctx));
            if let Some(slot) = self.peers.get_mut(&id) {
                if slot.deadline.is_some_and(|t| t <= now) {
                    slot.deadline = Some(now + MIN_REARM);
                    self.parts.deadlines.set(id, slot.deadline);
                }
            }
        }
    }

    fn run_router_timeout(&mut self, now: Instant) {
        if self.router_due.is_none_or(|t| t > now) {
            return;
        }
        self.busy = true;
        routing::with_router(&mut self.peers, &mut self.parts, None, |r, out| {
            r.handle_timeout(now, out)
        });
        self.router_due = self.parts.router.poll_timeout();
        self.settle();
    }

    /// End of the iteration: the peers that asked for it write what they queued.
    fn run_flushes(&mut self) {
        if self.parts.flush.is_empty() {
            return;
        }
        let mut list = std::mem::replace(&mut self.parts.flush, std::mem::take(&mut self.flushing));
        let now = Instant::now();
        for id in list.drain(..) {
            self.dispatch(id, now, |p, ctx| p.on_flush(ctx));
        }
        self.flushing = list;
    }

    /// End of the iteration (and every [`SEND_EVERY`] datagrams read): what the peers batched
    /// leaves (see `crate::batch`).
    pub(super) fn send_batch(&mut self) {
        if self.parts.batch.is_empty() {
            return;
        }
        let gso = self.parts.shared.udp_gso.load(Ordering::Relaxed);
        let done = self.parts.batch.flush(&self.parts.socket, gso);
        let c = &mut self.parts.counters;
        c.add(stats::STAT_PACKETS_OUT, done.packets);
        c.add(stats::STAT_BYTES_OUT, done.bytes);
        c.add(stats::STAT_SEND_ERRORS, done.errors);
        c.add(stats::STAT_GSO_SENDS, done.gso_messages);
    }

    /// At most every [`HOUSEKEEPING`] while busy: the router's next timer, published counters.
    fn housekeeping(&mut self, now: Instant) {
        if !self.busy || now < self.last_housekeeping + HOUSEKEEPING {
            return;
        }
        self.busy = false;
        self.last_housekeeping = now;
        self.router_due = self.parts.router.poll_timeout();
        self.publish_stats();
    }

    fn publish_stats(&self) {
        let Some(slot) = self.parts.shared.stats.get(self.parts.index) else {
            return;
        };
        let c = &self.parts.counters;
        for (i, s) in slot.iter().enumerate() {
            s.store(c.get(i), Ordering::Relaxed);
        }
        let r = self.parts.router.stats();
        let set = |i: usize, v: u64| slot[i].store(v, Ordering::Relaxed);
        set(stats::STAT_PRODUCERS, r.producers as u64);
        set(stats::STAT_CONSUMERS, r.consumers as u64);
        set(stats::STAT_NACKS, r.nacks);
        set(stats::STAT_PLIS, r.plis);
        set(stats::STAT_RETRANSMITS, r.retransmits);
        set(
            stats::STAT_RTP_DROPPED,
            r.rtp_dropped + c.get(stats::STAT_RTP_DROPPED),
        );
        set(stats::STAT_CPU_US, stats::thread_cpu_us());
    }
}
