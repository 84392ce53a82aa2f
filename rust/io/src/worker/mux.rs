//! Which peer a datagram of the worker's shared UDP socket belongs to: by the local ICE ufrag a
//! STUN request names, else by the source address the peer claimed (for WebRTC, the address
//! ICE selected). Peers claim keys through their handle; the worker forgets a peer's keys when
//! it leaves, in O(1). Owns only these maps; it reads no packet.

use std::collections::HashMap;
use std::net::SocketAddr;

use pms_core::media::TransportId as PeerId;

#[derive(Default)]
pub(crate) struct Mux {
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    /// The keys each peer claimed, to forget them without a scan.
    ufrag_of: HashMap<PeerId, String>,
    addr_of: HashMap<PeerId, SocketAddr>,
}

impl Mux {
    pub(crate) fn by_ufrag(&self, ufrag: &str) -> Option<PeerId> {
        self.by_ufrag.get(ufrag).copied()
    }

    pub(crate) fn by_addr(&self, addr: &SocketAddr) -> Option<PeerId> {
        self.by_addr.get(addr).copied()
    }

    pub(crate) fn claim_ufrag(&mut self, peer: PeerId, ufrag: String) {
        if let Some(old) = self.ufrag_of.insert(peer, ufrag.clone()) {
            if self.by_ufrag.get(&old) == Some(&peer) {
                self.by_ufrag.remove(&old);
            }
        }
        self.by_ufrag.insert(ufrag, peer);
    }

    /// Datagrams from `addr` go to `peer` (and no longer to its previous address's).
    pub(crate) fn claim_addr(&mut self, peer: PeerId, addr: SocketAddr) {
        if self.by_addr.get(&addr) == Some(&peer) {
            return;
        }
        if let Some(old) = self.addr_of.insert(peer, addr) {
            if self.by_addr.get(&old) == Some(&peer) {
                self.by_addr.remove(&old);
            }
        }
        self.by_addr.insert(addr, peer);
    }

    pub(crate) fn forget(&mut self, peer: PeerId) {
        if let Some(u) = self.ufrag_of.remove(&peer) {
            if self.by_ufrag.get(&u) == Some(&peer) {
                self.by_ufrag.remove(&u);
            }
        }
        if let Some(a) = self.addr_of.remove(&peer) {
            if self.by_addr.get(&a) == Some(&peer) {
                self.by_addr.remove(&a);
            }
        }
    }
}
