//! How peers end: a removed publisher takes its players along; a leaving peer says goodbye
//! ([`Peer::close`](super::Peer::close)), then its tokens, claimed keys, deadline, router entry,
//! registry entry and the control-plane event go with it; at shutdown every peer closes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use pms_core::media::TransportId as PeerId;

use super::peer::{PeerCtx, PeerInfo, Slot};
use super::Worker;
use crate::events::Event;
use crate::stats;

impl Worker {
    /// Removes peer `id` with `reason` and, for a publisher, its players (`producer-closed`).
    pub(super) fn remove(&mut self, id: PeerId, reason: &'static str) {
        let Some(slot) = self.peers.remove(&id) else {
            return;
        };
        let info = self.retire(id, slot, reason);
        let consumers = self.parts.router.remove(id);
        self.forget(id, &info, reason);
        for c in consumers {
            if let Some(slot) = self.peers.remove(&c) {
                let info = self.retire(c, slot, "producer-closed");
                self.parts.router.remove(c);
                self.forget(c, &info, "producer-closed");
            }
        }
    }

    /// Lets a peer that left the table close (unless it panicked), and releases what the worker
    /// holds for it.
    pub(super) fn retire(&mut self, id: PeerId, mut slot: Slot, reason: &'static str) -> PeerInfo {
        if let Some(mut peer) = slot.peer.take() {
            let mut ctx = PeerCtx {
                id,
                now: Instant::now(),
                deadline: None,
                peers: &mut self.peers,
                parts: &mut self.parts,
            };
            if catch_unwind(AssertUnwindSafe(|| peer.close(&mut ctx, reason))).is_err() {
                log::error!(target: "pms_io::worker", "peer {id} panicked while closing");
            }
        }
        for t in &slot.tokens {
            if self.parts.tokens.get(t) == Some(&id) {
                self.parts.tokens.remove(t);
            }
        }
        self.parts.mux.forget(id);
        self.parts.deadlines.set(id, None);
        if slot.info.stream.is_some() {
            self.parts.counters.sub(stats::STAT_TRANSPORTS, 1);
            if slot.info.publisher {
                self.parts.counters.sub(stats::STAT_PUBLISHERS, 1);
            }
        }
        slot.info
    }

    /// Removes a transport from the registry and tells the control plane.
    fn forget(&mut self, id: PeerId, info: &PeerInfo, reason: &'static str) {
        if info.stream.is_none() {
            return;
        }
        self.parts.shared.registry().remove_transport(id);
        self.parts
            .shared
            .events
            .push(Event::TransportClosed { id, reason });
    }

    /// Shutdown: every peer closes (a WebRTC transport sends its DTLS close first); no events.
    pub(super) fn close_all(&mut self) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            if let Some(slot) = self.peers.remove(&id) {
                self.retire(id, slot, "shutdown");
            }
        }
        self.parts.messages.clear();
        self.parts.closing.clear();
        self.publish_stats();
    }
}
