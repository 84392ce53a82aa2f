//! Which ingest a packet on the shared media port belongs to.
//!
//! GB28181 asks the camera to use the SSRC of the INVITE's `y=` line, so packets are matched by
//! SSRC. Some cameras ignore `y=`; a packet with an SSRC nobody expects is then matched by its
//! source when exactly one *waiting* ingest (one that has had no media yet) names that source IP
//! as its camera: the ingest takes it and is re-keyed to the SSRC seen, so its later packets
//! match by SSRC again. With two or more waiting ingests for that IP the packet is ambiguous
//! and dropped (counted by the caller) rather than guessed: a wrong guess would show one
//! channel's picture under another's name.

use std::collections::HashMap;
use std::net::IpAddr;

/// An ingest's id (the transport id).
pub type IngestId = u64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    ssrc: u32,
    peer: Option<IpAddr>,
    waiting: bool,
}

/// The SSRC and source index of the ingests of one media port.
#[derive(Debug, Default)]
pub struct Matcher {
    by_ssrc: HashMap<u32, IngestId>,
    ingests: HashMap<IngestId, Entry>,
}

/// How a packet was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// By its SSRC.
    Ssrc(IngestId),
    /// By its source; the ingest now expects this SSRC.
    Source(IngestId),
}

impl Match {
    pub fn id(self) -> IngestId {
        match self {
            Match::Ssrc(id) | Match::Source(id) => id,
        }
    }
}

impl Matcher {
    pub fn new() -> Matcher {
        Matcher::default()
    }

    /// Adds a waiting ingest. Another ingest expecting the same SSRC loses the key (the
    /// latest INVITE wins, as GB/T 28181 M says for a repeated stream).
    pub fn add(&mut self, id: IngestId, ssrc: u32, peer: Option<IpAddr>) {
        self.remove(id);
        self.by_ssrc.insert(ssrc, id);
        self.ingests.insert(
            id,
            Entry {
                ssrc,
                peer,
                waiting: true,
            },
        );
    }

    pub fn remove(&mut self, id: IngestId) {
        if let Some(e) = self.ingests.remove(&id) {
            if self.by_ssrc.get(&e.ssrc) == Some(&id) {
                self.by_ssrc.remove(&e.ssrc);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.ingests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ingests.is_empty()
    }

    /// The ingest of a packet with `ssrc` from `source`, if any. A match ends the ingest's
    /// waiting (it no longer takes packets by source).
    pub fn find(&mut self, ssrc: u32, source: IpAddr) -> Option<Match> {
        if let Some(id) = self.by_ssrc.get(&ssrc).copied() {
            if let Some(e) = self.ingests.get_mut(&id) {
                e.waiting = false;
            }
            return Some(Match::Ssrc(id));
        }
        let mut found = None;
        for (id, e) in &self.ingests {
            if e.waiting && e.peer == Some(source) {
                if found.is_some() {
                    return None; // ambiguous
                }
                found = Some(*id);
            }
        }
        let id = found?;
        let e = self.ingests.get_mut(&id)?;
        if self.by_ssrc.get(&e.ssrc) == Some(&id) {
            self.by_ssrc.remove(&e.ssrc);
        }
        e.ssrc = ssrc;
        e.waiting = false;
        self.by_ssrc.insert(ssrc, id);
        Some(Match::Source(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn by_ssrc_then_by_source_with_rekey() {
        let mut m = Matcher::new();
        m.add(1, 100, Some(ip("10.0.0.1")));
        m.add(2, 200, Some(ip("10.0.0.2")));
        assert_eq!(m.find(100, ip("10.9.9.9")), Some(Match::Ssrc(1)));
        // Camera 2 ignores y=: matched by its IP, then by the SSRC it uses.
        assert_eq!(m.find(777, ip("10.0.0.2")), Some(Match::Source(2)));
        assert_eq!(m.find(777, ip("10.0.0.2")), Some(Match::Ssrc(2)));
        assert_eq!(m.find(200, ip("10.0.0.2")), None);
        // Unknown SSRC from an unknown source.
        assert_eq!(m.find(5, ip("10.0.0.3")), None);
        // Ingest 1 had media: it no longer takes packets by source.
        assert_eq!(m.find(6, ip("10.0.0.1")), None);
        m.remove(2);
        assert_eq!(m.find(777, ip("10.0.0.2")), None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn two_waiting_ingests_for_one_camera_are_ambiguous() {
        let mut m = Matcher::new();
        m.add(1, 100, Some(ip("10.0.0.1")));
        m.add(2, 200, Some(ip("10.0.0.1")));
        m.add(3, 300, None);
        assert_eq!(m.find(9, ip("10.0.0.1")), None);
        assert_eq!(m.find(200, ip("10.0.0.1")), Some(Match::Ssrc(2)));
        // Now only ingest 1 waits for that IP.
        assert_eq!(m.find(9, ip("10.0.0.1")), Some(Match::Source(1)));
    }

    #[test]
    fn latest_ingest_takes_a_repeated_ssrc() {
        let mut m = Matcher::new();
        m.add(1, 100, None);
        m.add(2, 100, None);
        assert_eq!(m.find(100, ip("10.0.0.1")), Some(Match::Ssrc(2)));
        m.remove(1); // must not remove 2's key
        assert_eq!(m.find(100, ip("10.0.0.1")), Some(Match::Ssrc(2)));
    }
}
