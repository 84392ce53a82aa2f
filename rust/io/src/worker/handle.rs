//! What a peer may do through its handle [`PeerCtx`] (register sockets, set its deadline, send,
//! feed the router, raise events, close peers, message peers), and [`dispatch`], the one place
//! that runs a peer's method: take it out of the table, run it under `catch_unwind`, put it
//! back, and move its deadline in the heap when the call changed it.

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use mio::event::Source;
use mio::{Interest, Token};
use pms_core::media::TransportId as PeerId;
use pms_core::router::Router;

use super::peer::{MediaSink, Message, Out, Parts, Peer, PeerCtx, Table};
use super::routing;
use super::shared::Shared;
use crate::events::Event;
use crate::registry::Registry;
use crate::stats::Counters;

/// The size of the read buffer lent to peers.
pub(crate) const READ_BUFFER: usize = 64 * 1024;

/// Runs `f` on peer `id` with its handle. False when there is no such peer, or it is running
/// already (a peer is never re-entered), or it panicked (it is then queued for closing with
/// `internal-error`).
pub(super) fn dispatch(
    peers: &mut Table,
    parts: &mut Parts,
    id: PeerId,
    now: Instant,
    f: impl FnOnce(&mut dyn Peer, &mut PeerCtx<'_>),
) -> bool {
    let Some(slot) = peers.get_mut(&id) else {
        return false;
    };
    let Some(mut peer) = slot.peer.take() else {
        return false;
    };
    let before = slot.deadline;
    let mut ctx = PeerCtx {
        id,
        now,
        deadline: before,
        peers,
        parts,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&mut *peer, &mut ctx)));
    let after = ctx.deadline;
    let PeerCtx { peers, parts, .. } = ctx;
    let Some(slot) = peers.get_mut(&id) else {
        return false;
    };
    if result.is_err() {
        log::error!(target: "pms_io::worker", "peer {id} panicked; closing it");
        parts.closing.push((id, "internal-error"));
        return false;
    }
    slot.peer = Some(peer);
    if after != before {
        slot.deadline = after;
        parts.deadlines.set(id, after);
    }
    true
}

impl PeerCtx<'_> {
    /// The peer's id (its transport id).
    pub(crate) fn id(&self) -> PeerId {
        self.id
    }

    /// When the worker started this call.
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// The index of the worker thread.
    pub(crate) fn worker_index(&self) -> usize {
        self.parts.index
    }

    /// Registers a socket with the worker's poll; its events reach this peer's `on_ready`.
    pub(crate) fn register(
        &mut self,
        source: &mut impl Source,
        interest: Interest,
    ) -> io::Result<Token> {
        let token = Token(self.parts.next_token);
        self.parts
            .poll
            .registry()
            .register(source, token, interest)?;
        self.parts.next_token += 1;
        self.parts.tokens.insert(token, self.id);
        if let Some(slot) = self.peers.get_mut(&self.id) {
            slot.tokens.push(token);
        }
        Ok(token)
    }

    pub(crate) fn reregister(
        &mut self,
        source: &mut impl Source,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.parts
            .poll
            .registry()
            .reregister(source, token, interest)
    }

    /// Deregisters a socket (before it is dropped) and forgets its token.
    pub(crate) fn deregister(&mut self, source: &mut impl Source, token: Token) {
        let _ = self.parts.poll.registry().deregister(source);
        if self.parts.tokens.get(&token) == Some(&self.id) {
            self.parts.tokens.remove(&token);
        }
        if let Some(slot) = self.peers.get_mut(&self.id) {
            slot.tokens.retain(|t| *t != token);
        }
    }

    /// The peer's deadline (one-shot: cleared when `on_deadline` runs).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Wakes this peer's `on_deadline` at `at` (`None`: never), replacing the previous one.
    /// Costs nothing when unchanged; a peer whose natural deadline moves with every packet
    /// keeps the earlier one and checks again when it fires.
    pub(crate) fn set_deadline(&mut self, at: Option<Instant>) {
        self.deadline = at;
    }

    /// STUN requests for local ICE `ufrag` on the worker's shared socket come to this peer.
    pub(crate) fn claim_ufrag(&mut self, ufrag: &str) {
        self.parts.mux.claim_ufrag(self.id, ufrag.to_string());
    }

    /// Datagrams from `addr` on the worker's shared socket come to this peer.
    pub(crate) fn claim_addr(&mut self, addr: SocketAddr) {
        self.parts.mux.claim_addr(self.id, addr);
    }

    /// Sends one datagram on the worker's shared socket now (counted).
    pub(crate) fn send_to(&mut self, data: &[u8], to: SocketAddr) {
        match self.parts.socket.send_to(data, to) {
            Ok(n) => self.parts.counters.sent(n as u64),
            Err(_) => self.parts.counters.add(crate::stats::STAT_SEND_ERRORS, 1),
        }
    }

    /// The router, for calls that write nothing (add/pause/query).
    pub(crate) fn router(&mut self) -> &mut Router {
        &mut self.parts.router
    }

    /// Runs `f` with the router and its output; output for this peer goes to `me`. The output
    /// is dropped (its batch sent) when `f` returns.
    pub(crate) fn with_router<R>(
        &mut self,
        me: &mut dyn MediaSink,
        f: impl FnOnce(&mut Router, &mut Out<'_>) -> R,
    ) -> R {
        routing::with_router(self.peers, self.parts, Some((self.id, me)), f)
    }

    /// Hands one plain RTP or RTCP packet of this peer to the router (and, after RTP, turns
    /// the router's events into control-plane events).
    pub(crate) fn route(&mut self, me: &mut dyn MediaSink, pkt: &[u8], rtcp: bool) {
        let (id, now) = (self.id, self.now);
        self.with_router(me, |router, out| {
            if rtcp {
                router.handle_rtcp(now, id, pkt, out)
            } else {
                router.handle_rtp(now, id, pkt, out)
            }
        });
        if !rtcp {
            self.router_events();
        }
    }

    /// Turns the router's pending events into control-plane events.
    pub(crate) fn router_events(&mut self) {
        routing::router_events(&mut self.parts.router, self.peers, &self.parts.shared);
    }

    /// Raises an event for the control plane.
    pub(crate) fn event(&self, event: Event) {
        self.parts.shared.events.push(event);
    }

    /// The shared registry (a lock: on state changes only, never per packet).
    pub(crate) fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.parts.shared.registry()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.parts.shared
    }

    /// The worker's counters (see `crate::stats`).
    pub(crate) fn counters(&mut self) -> &mut Counters {
        &mut self.parts.counters
    }

    /// Closes peer `id` (this one or another) with `reason` once the running method returns.
    pub(crate) fn close(&mut self, id: PeerId, reason: &'static str) {
        self.parts.closing.push((id, reason));
    }

    /// Closes this peer with `reason` once the running method returns.
    pub(crate) fn close_me(&mut self, reason: &'static str) {
        self.close(self.id, reason);
    }

    /// Whether this peer is to be closed (then it should stop work in progress).
    pub(crate) fn closing(&self) -> bool {
        self.parts.closing.iter().any(|(id, _)| *id == self.id)
    }

    /// Sends `msg` to peer `to`'s `on_message` once the running method returns.
    pub(crate) fn message(&mut self, to: PeerId, msg: Message) {
        self.parts.messages.push_back((to, msg));
    }

    /// Sends `msg` to peer `to` on worker `worker`: this worker's queue (as [`message`]) or
    /// the other worker's command channel (a peer that is gone there drops it).
    ///
    /// [`message`]: Self::message
    pub(crate) fn message_on(&mut self, worker: usize, to: PeerId, msg: Message) {
        if worker == self.parts.index {
            self.message(to, msg);
        } else if let Some(h) = self.parts.shared.workers().get(worker) {
            h.send(super::Command::Message { id: to, msg });
        }
    }

    /// Hands a datagram to peer `to`'s `on_datagram` now. False when there is no such peer (or
    /// it is running, or it panicked on this datagram).
    pub(crate) fn forward(&mut self, to: PeerId, from: SocketAddr, data: &[u8]) -> bool {
        let now = self.now;
        dispatch(self.peers, self.parts, to, now, |p, ctx| {
            p.on_datagram(ctx, from, data)
        })
    }

    /// Borrows the worker's read buffer ([`READ_BUFFER`] bytes); give it back with
    /// [`put_read_buffer`](Self::put_read_buffer).
    pub(crate) fn take_read_buffer(&mut self) -> Vec<u8> {
        let buf = std::mem::take(&mut self.parts.rbuf);
        if buf.len() < READ_BUFFER {
            return vec![0; READ_BUFFER]; // lent out already (a nested call): a fresh one
        }
        buf
    }

    pub(crate) fn put_read_buffer(&mut self, buf: Vec<u8>) {
        if buf.len() >= READ_BUFFER {
            self.parts.rbuf = buf;
        }
    }
}
