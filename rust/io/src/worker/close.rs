//! How peers end: a removed publisher takes its players along; every index entry, the
//! registry entry and the control-plane event go with a transport; at shutdown every peer
//! closes (a WebRTC transport sends its DTLS close first).

use pms_core::media::TransportId;

use super::{Entry, Worker};
use crate::events::Event;

impl Worker {
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

    pub(super) fn close_all(&mut self) {
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
